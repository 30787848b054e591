"""Per-role decisions: what each job runs and which settings it gets.

Everything about Matomo-on-Nomad that is a choice lives here, in plain data
(`RoleJob`); the renderers after this stage only lay that data out as HCL, API JSON
and config.ini.php, and must not decide anything themselves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ._exporter import LISTEN_PORT, PASSWORD_VARIABLE, exporter_args
from ._global_ini import KEY_ORDER
from ._ini import SecretRef, Section, Value
from ._model import (
    MATOMO_ROLES,
    ArchiverRole,
    ExporterJob,
    Constraint,
    Deployment,
    HealthCheck,
    QueueProcessorRole,
    Restart,
    Role,
    Schedule,
    Service,
    SetupRole,
    Update,
    _version_tuple,
    nanoseconds,
)

CONSOLE = "/var/www/html/console"
CONFIG_TARGET = "/var/www/html/config/config.ini.php"
# Under secrets/: the docker driver only sees local/, secrets/ and alloc/, and secrets/
# is the one that is never written to the client's disk in the clear.
CONFIG_DESTINATION = "secrets/config.ini.php"
HTTP_PORT = "http"
METRICS_PORT = "metrics"
CONTAINER_HTTP_PORT = 80
# Baked into the image by `matomo-nomad image` (templates/image/setup.php).
SETUP_SCRIPT = "/usr/local/lib/matomo-nomad/setup.php"
# The docker driver mounts the task's secrets/ directory at /secrets.
SUPERUSER_PASSWORD_DESTINATION = "secrets/superuser_password"
SUPERUSER_PASSWORD_FILE = "/secrets/superuser_password"

JOB_TYPES = {
    Role.admin: "service",
    Role.ingestion: "service",
    Role.queue_processor: "service",
    Role.archiver: "batch",
    Role.setup: "batch",
    Role.monitoring: "service",
}
CONSOLE_ROLES = (Role.queue_processor, Role.archiver, Role.setup)
"""Roles whose main process is PHP on the command line rather than Apache."""

META_SETUP = "matomo_nomad_setup"
"""Job meta: the fingerprint of what the setup job prepared the database for."""
META_QUEUES = "matomo_nomad_queues"
"""Job meta: QueuedTracking's numQueueWorkers the jobs were rendered with."""
META_PLUGINS = "matomo_nomad_plugins"
"""Job meta: the plugins baked into the image, `Name=version` by name, comma-separated
(with `matomo_version`, what `run` compares to tell an upgrade from a downgrade)."""


def plugin_versions(d: Deployment) -> str:
    """The value of META_PLUGINS: "QueuedTracking=5.2.0,SecurityInfo=5.0.1"."""
    return ",".join(f"{p.name}={p.version}" for p in sorted(d.plugins, key=lambda p: p.name))


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where a job's template reads secrets, and how to address one key there."""

    provider: str  # "nomad" | "vault"
    path: str
    vault_role: str | None
    vault_policies: tuple[str, ...] = ()
    """The legacy token workflow's policies (Nomad before 1.10), when there is no role."""

    @property
    def opening(self) -> str:
        function = "nomadVar" if self.provider == "nomad" else "secret"
        return f'{{{{ with {function} "{self.path}" -}}}}'

    @property
    def item(self) -> str:
        # nomadVar yields NomadVarItem structs (consul-template dependency/nomad_var_structs.go):
        # the string is in .Value. A KV v2 secret nests its data under .Data.data.
        return ".{key}.Value" if self.provider == "nomad" else ".Data.data.{key}"


@dataclass(frozen=True, slots=True)
class ServiceCheck:
    path: str
    interval: str
    timeout: str
    headers: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class ServiceRegistration:
    name: str
    tags: list[str]
    provider: str
    port: str
    check: ServiceCheck | None


@dataclass(frozen=True, slots=True)
class SecretFile:
    """A file the task gets at `destination`, holding exactly one secret's value."""

    destination: str
    key: str


@dataclass(frozen=True, slots=True)
class RoleJob:
    """Everything the renderers need to write one role's job and its config."""

    role: Role
    job_id: str
    job_type: str
    group: str
    task: str
    datacenters: list[str]
    region: str
    namespace: str
    node_pool: str
    priority: int
    meta: dict[str, str]
    count: int
    image: str
    command: str | None
    args: list[str]
    env: dict[str, str]
    cpu: int
    memory: int
    memory_max: int | None
    constraints: list[Constraint]
    restart: Restart
    update: Update | None
    service: ServiceRegistration | None
    port: str | None
    periodic: Schedule | None
    kill_timeout: str | None
    kill_signal: str | None
    init: bool
    """The docker driver runs an init as PID 1 that forwards the stop signal."""
    reschedule: bool
    """False: a failed allocation is final (Nomad's batch default reschedules it once)."""
    secrets: SecretSource
    config: list[Section] = field(default_factory=list)
    secret_files: list[SecretFile] = field(default_factory=list)
    secret_env: dict[str, str] = field(default_factory=dict)
    """Environment variables read from the secret store: name -> secret key (`_envfile`)."""
    container_port: int = CONTAINER_HTTP_PORT
    """What `port` maps to inside the container."""

    @property
    def runs_matomo(self) -> bool:
        """Matomo's image, with config.ini.php mounted (every job but monitoring)."""
        return self.role is not Role.monitoring

    @property
    def secret_keys(self) -> list[str]:
        """Every secret key the job reads, in the order it first reads them."""
        keys: list[str] = []
        for section in self.config:
            for value in section.values.values():
                if isinstance(value, SecretRef) and value.key not in keys:
                    keys.append(value.key)
        for key in [f.key for f in self.secret_files] + list(self.secret_env.values()):
            if key not in keys:
                keys.append(key)
        return keys


def plan_roles(deployment: Deployment) -> list[RoleJob]:
    """Every job, in a fixed order (admin, ingestion, queue processor, archiver, setup,
    then monitoring when [monitoring.exporter] asks for it)."""
    jobs = [_role_job(deployment, role) for role in MATOMO_ROLES]
    if deployment.monitoring.exporter is not None:
        jobs.append(_monitoring_job(deployment, deployment.monitoring.exporter))
    return jobs


def setup_fingerprint(d: Deployment) -> str:
    """What the setup job brings the database to: the code (image, Matomo and plugin
    versions) and the database it works on. A running job whose meta carries another
    value was started against a database that has not seen this setup."""
    basis = {
        "image": d.matomo.image,
        "matomo": d.matomo.version,
        "plugins": sorted((p.name, p.version) for p in d.plugins),
        "database": [d.database.host, d.database.port, d.database.name, d.database.table_prefix],
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def pinned_queues(spec: QueueProcessorRole) -> bool:
    # One pinned process works one queue id and never another (QueuedTracking 5.1.1
    # Queue/Manager.php 259-270): pinning with fewer processors than queues would leave
    # queues unworked, with more it would pin two to one id and leave none for others.
    return spec.pin_queues and spec.count == spec.queues


def _role_job(d: Deployment, role: Role) -> RoleJob:
    spec = getattr(d.roles, role.value)
    job_id = d.job_id(role)
    is_service = JOB_TYPES[role] == "service"
    command, args = _command(d, role)
    registration = _service(d, role) if role in (Role.admin, Role.ingestion) else None
    console = role in CONSOLE_ROLES
    # The role's own env, plain or secret, wins over what setup.php would get.
    plain_env, secret_env = _split_env({**(_install_env(d) if role is Role.setup else {}), **spec.env})
    return RoleJob(
        role=role,
        job_id=job_id,
        job_type=JOB_TYPES[role],
        group=role.slug,
        task=job_id,
        **_placement(d),  # type: ignore[arg-type]
        meta={
            "matomo_nomad_deployment": d.name,
            "matomo_nomad_role": role.value,
            "matomo_version": d.matomo.version,
            META_SETUP: setup_fingerprint(d),
            META_QUEUES: str(d.roles.queue_processor.queues),
            META_PLUGINS: plugin_versions(d),
        },
        count=spec.count if is_service else 1,
        image=d.matomo.image,
        command=command,
        args=args,
        env=plain_env,
        secret_env=secret_env,
        cpu=spec.cpu,
        memory=spec.memory,
        memory_max=spec.memory_max,
        constraints=list(spec.constraints),
        restart=spec.restart,
        update=spec.update if is_service else None,
        service=registration,
        port=HTTP_PORT if registration is not None else None,
        periodic=spec.schedule if isinstance(spec, ArchiverRole) else None,
        kill_timeout=spec.kill_timeout if isinstance(spec, (ArchiverRole, SetupRole)) else None,
        # The official apache image's STOPSIGNAL is SIGWINCH (Apache's graceful stop),
        # which PHP on the command line ignores; and PID 1 of a container drops every
        # signal it has no handler for, which is PHP's case (reference/matomo.md,
        # "Signals"). So console roles get SIGTERM, delivered through an init.
        kill_signal="SIGTERM" if console else None,
        init=console,
        reschedule=JOB_TYPES[role] == "service",
        secrets=_secret_source(d, job_id),
        config=_config(d, role),
        secret_files=[SecretFile(SUPERUSER_PASSWORD_DESTINATION, d.secrets.superuser_password_key)]
        if role is Role.setup and d.install is not None
        else [],
    )


def _monitoring_job(d: Deployment, spec: ExporterJob) -> RoleJob:
    """redis_exporter, reading the queue's Redis with the flags `_exporter` derives.
    One allocation: two would export every series twice."""
    job_id = d.job_id(Role.monitoring)
    plain_env, secret_env = _split_env(spec.env)
    if d.redis.password:
        secret_env[PASSWORD_VARIABLE] = d.secrets.redis_password_key
    return RoleJob(
        role=Role.monitoring,
        job_id=job_id,
        job_type=JOB_TYPES[Role.monitoring],
        group=Role.monitoring.slug,
        task="redis-exporter",
        **_placement(d),  # type: ignore[arg-type]
        meta={
            "matomo_nomad_deployment": d.name,
            "matomo_nomad_role": Role.monitoring.value,
            META_QUEUES: str(d.roles.queue_processor.queues),
        },
        count=1,
        image=spec.image,
        # The image's ENTRYPOINT is the exporter itself (oliver006/redis_exporter's
        # Dockerfile), so the arguments are its flags.
        command=None,
        args=exporter_args(d),
        env=plain_env,
        secret_env=secret_env,
        cpu=spec.cpu,
        memory=spec.memory,
        memory_max=spec.memory_max,
        constraints=list(spec.constraints),
        restart=spec.restart,
        update=spec.update,
        service=_registration(spec.service, f"{d.name}-redis-exporter", METRICS_PORT),
        # The port is there for scraping even without a registered service.
        port=METRICS_PORT,
        container_port=LISTEN_PORT,
        periodic=None,
        kill_timeout=None,
        kill_signal=None,
        init=False,
        reschedule=True,
        secrets=_secret_source(d, job_id),
    )


def _split_env(env: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """A job's `env` (text or `{ secret = ... }`, EnvValue) as (plain variables, secret
    variables: name -> secret key). A secret's value never enters the job: it comes from
    a template with env = true (`_envfile`)."""
    plain = {name: value for name, value in env.items() if not isinstance(value, SecretRef)}
    return plain, {name: value.key for name, value in env.items() if isinstance(value, SecretRef)}


def _install_env(d: Deployment) -> dict[str, str]:
    """What setup.php reads to create the first superuser and website (env names are
    setup.php's); the password comes as a file, never through the environment."""
    install = d.install
    if install is None:
        return {}
    return {
        "MATOMO_NOMAD_SUPERUSER_LOGIN": install.superuser_login,
        "MATOMO_NOMAD_SUPERUSER_EMAIL": install.superuser_email,
        "MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE": SUPERUSER_PASSWORD_FILE,
        "MATOMO_NOMAD_SITE_NAME": install.site_name or d.hosts[0],
        "MATOMO_NOMAD_SITE_URL": install.site_url or f"https://{d.hosts[0]}",
        "MATOMO_NOMAD_SITE_TIMEZONE": install.timezone,
        "MATOMO_NOMAD_SITE_CURRENCY": install.currency,
    }


def _secret_source(d: Deployment, job_id: str) -> SecretSource:
    s = d.secrets
    if s.provider == "vault":
        assert s.path is not None  # the model requires it for vault
        return SecretSource("vault", s.path, s.vault_role, tuple(s.vault_policies))
    # A job may read nomad/jobs/<its own id> without any ACL policy (nomad acl/acl.go).
    return SecretSource("nomad", s.path or f"nomad/jobs/{job_id}", None)


def _command(d: Deployment, role: Role) -> tuple[str | None, list[str]]:
    if role is Role.queue_processor:
        return _queue_command(d)
    if role is Role.archiver:
        return CONSOLE, _archive_args(d, d.roles.archiver)
    if role is Role.setup:
        return "php", [SETUP_SCRIPT]
    # admin and ingestion: the image's own command (apache2-foreground).
    return None, []


def _queue_command(d: Deployment) -> tuple[str, list[str]]:
    spec = d.roles.queue_processor
    # Whole seconds, at least one: --sleep takes an integer >= 1, POSIX sleep too.
    pause = max(1, round(nanoseconds(spec.sleep) / 10**9))
    if _version_tuple(d.queued_tracking.version) >= (5, 1):
        # The command's own loop (QueuedTracking 5.1.0 Commands/Process.php: --cycle=0
        # runs forever). Only inside it does the batch size drop to 1 after ~10 s with
        # nothing processed, so a quiet queue holding fewer than numRequestsToProcess
        # requests is flushed; short runs from a shell loop never get there.
        args = ["queuedtracking:process", "--cycle=0", f"--sleep={pause}"]
        if pinned_queues(spec):
            # Interpolated by the Nomad client in the driver's args.
            args.append("--queue-id=${NOMAD_ALLOC_INDEX}")
        return CONSOLE, args
    return "/bin/sh", ["-c", _queue_loop(spec, pause)]


def _queue_loop(spec: QueueProcessorRole, pause: int) -> str:
    # QueuedTracking 5.0 has no loop of its own, and queuedtracking:process exits as soon
    # as too few requests are queued, so a bare `while true` would spin: pause after
    # every run. A run that keeps failing (database or Redis down) ends the task after a
    # bound, so Nomad's restart policy and the allocation's health show it instead of a
    # loop that looks alive. Shell `$VAR` (never `${VAR}`) keeps the text free of HCL
    # interpolation syntax.
    process = f"{CONSOLE} queuedtracking:process"
    if pinned_queues(spec):
        process += ' --queue-id="$NOMAD_ALLOC_INDEX"'
    # One line, so the job file shows it as it will run.
    return (
        "failures=0; while :; do "
        f"if {process}; then failures=0; "
        "else failures=$((failures + 1)); "
        'echo "queuedtracking:process failed $failures time(s) in a row" >&2; '
        f'[ "$failures" -lt {spec.max_consecutive_failures} ] || exit 1; fi; '
        f"sleep {pause}; done"
    )


def _archive_args(d: Deployment, spec: ArchiverRole) -> list[str]:
    options = spec.archive
    args = ["core:archive", f"--url=https://{d.hosts[0]}/"]
    if options.concurrent_requests_per_website is not None:
        args.append(f"--concurrent-requests-per-website={options.concurrent_requests_per_website}")
    if options.concurrent_archivers is not None:
        args.append(f"--concurrent-archivers={options.concurrent_archivers}")
    if options.force_idsites:
        args.append("--force-idsites=" + ",".join(str(i) for i in options.force_idsites))
    if options.skip_all_segments:
        args.append("--skip-all-segments")
    if options.disable_scheduled_tasks:
        args.append("--disable-scheduled-tasks")
    if options.max_websites_to_process is not None:
        args.append(f"--max-websites-to-process={options.max_websites_to_process}")
    if options.max_archives_to_process is not None:
        args.append(f"--max-archives-to-process={options.max_archives_to_process}")
    return args + list(options.extra_args)


def _service(d: Deployment, role: Role) -> ServiceRegistration | None:
    return _registration(getattr(d.roles, role.value).service, f"{d.name}-{role.slug}", HTTP_PORT)


def _registration(service: Service, default_name: str, port: str) -> ServiceRegistration | None:
    if not service.enabled:
        return None
    check: HealthCheck | None = service.check
    return ServiceRegistration(
        name=service.name or default_name,
        tags=list(service.tags),
        provider=service.provider,
        port=port,
        check=None if check is None else ServiceCheck(check.path, check.interval, check.timeout, dict(check.headers)),
    )


def _placement(d: Deployment) -> dict[str, object]:
    """Where every job of the deployment runs (the same for all of them)."""
    return {
        "datacenters": list(d.datacenters),
        "region": d.region,
        "namespace": d.namespace,
        "node_pool": d.node_pool,
        "priority": d.priority,
    }


def _config(d: Deployment, role: Role) -> list[Section]:
    """config.ini.php for one role: the shared base, then the role's own differences."""
    keys = d.secrets
    db = d.database
    database: dict[str, Value] = {
        "host": db.host,
        "port": db.port,
        "username": db.user,
        "password": SecretRef(keys.database_password_key),
        "dbname": db.name,
        "tables_prefix": db.table_prefix,
        "adapter": db.adapter,
        "charset": db.charset,
    }
    if db.collation is not None:
        database["collation"] = db.collation
    if db.db_schema is not None:
        database["schema"] = db.db_schema
    database.update(_database_tls(d))
    sections = [Section("database", database)]

    if db.reader is not None:
        reader: dict[str, Value] = {
            "host": db.reader.host,
            "port": db.reader.port,
            "username": db.reader.user or db.user,
            "password": SecretRef(keys.database_reader_password_key if db.reader.user else keys.database_password_key),
            "dbname": db.name,
            "tables_prefix": db.table_prefix,
            "adapter": db.adapter,
            "charset": db.charset,
        }
        reader.update(_database_tls(d))
        sections.append(Section("database_reader", reader))

    general: dict[str, Value] = {
        "salt": SecretRef(keys.salt_key),
        "trusted_hosts": list(d.hosts),
        "proxy_client_headers": list(d.proxy.client_headers),
    }
    if d.proxy.ips:
        general["proxy_ips"] = list(d.proxy.ips)
    general.update(
        {
            "force_ssl": d.proxy.force_ssl,
            # The seed's settings, and what makes them do what the seed meant
            # (reference/matomo.md: enforce alone covers only segments).
            "enable_auto_update": False,
            "multi_server_environment": True,
            "browser_archiving_disabled_enforce": True,
            "enable_browser_archiving_triggering": False,
            "enable_general_settings_admin": False,
            # Plugins are baked into the image; (de)activating one in the UI would write
            # the read-only config (reference/matomo.md, "Plugin state").
            "enable_plugins_admin": False,
        }
    )
    if d.proxy.assume_secure_protocol:
        general["assume_secure_protocol"] = True
    if role is Role.ingestion:
        # Tracking keeps working in maintenance mode; the UI and API do not. Never on the
        # archiver: core:archive refuses to run in maintenance mode.
        general["maintenance_mode"] = True
    sections.append(Section("General", general))

    sections.append(Section("QueuedTracking", _queued_tracking(d)))

    if d.redis_cache is not None:
        cache = d.redis_cache
        sections.append(Section("Cache", {"backend": "redis"}))
        redis_cache: dict[str, Value] = {
            "host": cache.host,
            "port": cache.port,
            "database": cache.database,
            "timeout": cache.timeout,
        }
        if cache.password:
            redis_cache["password"] = SecretRef(keys.redis_cache_password_key)
        sections.append(Section("RedisCache", redis_cache))

    return _in_matomo_order(_merge_extra(sections, d.settings, getattr(d.roles, role.value).settings))


def _in_matomo_order(sections: list[Section]) -> list[Section]:
    """Each section's keys in global.ini.php's order, then the others as they came.

    Matomo's dirty check compares each section serialised in that order with the file
    as read (core/Config/IniFileChain.php 5.1.2, dumpChanges): in any other order every
    save Matomo attempts is a rewrite, and with the read-only config an error."""
    ordered: list[Section] = []
    for section in sections:
        rank = _KEY_RANK.get(section.name, {})
        values = sorted(section.values.items(), key=lambda item: rank.get(item[0], len(rank)))
        ordered.append(Section(section.name, dict(values)))
    return ordered


_KEY_RANK = {section: {key: i for i, key in enumerate(keys)} for section, keys in KEY_ORDER.items()}


def _database_tls(d: Deployment) -> dict[str, Value]:
    tls = d.database.tls
    if not tls.enabled:
        return {}
    values: dict[str, Value] = {"enable_ssl": True}
    for key, path in (("ssl_ca", tls.ca), ("ssl_cert", tls.cert), ("ssl_key", tls.key)):
        if path is not None:
            values[key] = path
    values["ssl_no_verify"] = not tls.verify
    return values


def _queued_tracking(d: Deployment) -> dict[str, Value]:
    redis = d.redis
    values: dict[str, Value] = {"backend": "redis"}
    if redis.sentinel is not None:
        hosts, ports = zip(*(a.rsplit(":", 1) for a in redis.sentinel.addresses))
        values["redisHost"] = ",".join(hosts)
        values["redisPort"] = ",".join(ports)
    else:
        assert redis.host is not None
        values["redisHost"] = redis.host
        values["redisPort"] = redis.port
    values["redisDatabase"] = redis.database
    values["redisTimeout"] = redis.timeout
    if redis.password:
        values["redisPassword"] = SecretRef(d.secrets.redis_password_key)
    if redis.sentinel is not None:
        # The sentinel switch was renamed in QueuedTracking 5.1.0 (Updates/5.1.0.php).
        if _version_tuple(d.queued_tracking.version) >= (5, 1):
            values["useWhatRedisBackendType"] = 2
        else:
            values["useSentinelBackend"] = True
        values["sentinelMasterName"] = redis.sentinel.master
    elif _version_tuple(d.queued_tracking.version) >= (5, 1):
        # 1 = standalone Redis, said in the config so a backend type once saved in the
        # UI (stored in the database) cannot win (QueuedTracking 5.1.0 SystemSettings).
        values["useWhatRedisBackendType"] = 1
    values.update(
        {
            "queueEnabled": True,
            # The number of queues, not of processors: requests go to queue
            # visitorId mod numQueueWorkers (QueuedTracking 5.1.1 Queue/Manager.php 215-228).
            "numQueueWorkers": d.roles.queue_processor.queues,
            "numRequestsToProcess": d.roles.queue_processor.requests_per_batch,
            # Dedicated processors run; tracking requests should only enqueue.
            "processDuringTrackingRequest": False,
        }
    )
    return values


def _merge_extra(sections: list[Section], shared: dict, own: dict) -> list[Section]:
    by_name = {s.name: s for s in sections}
    for extra in (shared, own):
        for name, values in extra.items():
            if name in by_name:
                by_name[name].values.update(values)
            else:
                section = Section(name, dict(values))
                sections.append(section)
                by_name[name] = section
    return sections

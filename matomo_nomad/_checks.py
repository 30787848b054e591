"""Matomo-aware checks of a whole deployment, beyond what each field allows on its own.

A deployment can be valid field by field and still not work: a plugin built for
another Matomo major, a health check that force_ssl answers with a redirect, a Nomad
too old for what the jobs use. Each rule here explains itself (the reason and the fix).
Errors stop `render` and `run`; warnings are printed and let them proceed.

Several of the issue's rules are enforced earlier, by the model, and cannot be broken
in a valid deployment: maintenance_mode anywhere but ingestion, browser archiving
switched back on, numQueueWorkers differing from roles.queue_processor.queues, the Redis cache
sharing the queue's database, a 6-field cron, an unpinned image. `RULES` lists those
too, so `validate` can say which rules a deployment was checked against.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import DeploymentError, Problem
from ._model import Deployment, Role, _version_tuple, nanoseconds
from ._roles import RoleJob, pinned_queues, plan_roles

ERROR, WARNING = "error", "warning"

# Rules the model enforces (see _model): id -> what is guaranteed.
ENFORCED_BY_MODEL = {
    "maintenance-mode-ingestion-only": "maintenance_mode = 1 is set on ingestion only (settings cannot set it)",
    "browser-archiving-off": "browser archiving is off by all three settings (settings cannot turn it on)",
    "queue-workers-match": "numQueueWorkers equals roles.queue_processor.queues, within the plugin's limit",
    "redis-cache-database": "the Redis cache never shares the QueuedTracking database",
    "trusted-hosts": "trusted_hosts[] is never empty (hosts needs at least one entry)",
    "image-pinned": "matomo.image has a version tag or digest, never latest",
    "cron-five-fields": "the archiver's schedule has 5 fields",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "error" | "warning"
    location: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.location}: {self.message} ({self.fix}) [{self.rule}]"


def check(deployment: Deployment, jobs: list[RoleJob] | None = None) -> list[Finding]:
    """Every finding for this deployment, errors first, in rule order (public as
    `matomo_nomad.validate`). `jobs`: the deployment's planned jobs, when the caller has
    planned them already (render does), so they are not planned twice."""
    findings: list[Finding] = []
    for rule in _RULES:
        findings.extend(rule(deployment))
    findings.extend(_maintenance_mode_rendered(plan_roles(deployment) if jobs is None else jobs))
    return sorted(findings, key=lambda f: f.severity != ERROR)


def refuse_errors(findings: list[Finding]) -> None:
    """Raise DeploymentError, one problem per error finding, if there is any."""
    errors = [Problem(f.location, f"{f.message} [{f.rule}]", f.fix) for f in findings if f.severity == ERROR]
    if errors:
        raise DeploymentError(errors)


def _plugins_match_matomo(d: Deployment) -> list[Finding]:
    # Marketplace plugins are built per Matomo major: QueuedTracking 5.x requires
    # Matomo >=5,<6 in its plugin.json, 4.x requires 4.
    major = _version_tuple(d.matomo.version)[0]
    return [
        Finding(
            "plugin-matomo-major",
            ERROR,
            f"plugins[{i}].version",
            f"{p.name} {p.version} is built for Matomo {_version_tuple(p.version)[0]}.x, but matomo.version is {d.matomo.version}",
            f"use a {p.name} {major}.x release",
        )
        for i, p in enumerate(d.plugins)
        if _version_tuple(p.version)[0] != major
    ]


def _image_tag_matches_version(d: Deployment) -> list[Finding]:
    reference = d.matomo.image.split("@")[0]
    name, _, tag = reference.rpartition(":") if ":" in reference.rsplit("/", 1)[-1] else (reference, "", "")
    if not tag or d.matomo.version in tag:
        return []
    return [
        Finding(
            "image-tag-version",
            WARNING,
            "matomo.image",
            f"the tag {tag!r} does not mention matomo.version {d.matomo.version}",
            "tag images with the Matomo version they contain, so one pin drives everything",
        )
    ]


def _proxy_ips_behind_proxies(d: Deployment) -> list[Finding]:
    if d.proxy.count > 1 and not d.proxy.ips:
        return [
            Finding(
                "proxy-ips",
                WARNING,
                "proxy.ips",
                f"{d.proxy.count} proxies are declared but none is listed; Matomo 5 takes the last address "
                "of X-Forwarded-For, which is then one of your proxies",
                "list your proxies' addresses or ranges in proxy.ips",
            )
        ]
    return []


def _health_checks_pass_force_ssl(d: Deployment) -> list[Finding]:
    if not d.proxy.force_ssl:
        return []
    findings = []
    for role in (Role.admin, Role.ingestion):
        service = getattr(d.roles, role.value).service
        if not service.enabled or service.check is None:
            continue
        forwarded = {k.lower(): v for k, v in service.check.headers.items()}.get("x-forwarded-proto", [])
        if "https" not in forwarded:
            findings.append(
                Finding(
                    "health-check-force-ssl",
                    ERROR,
                    f"roles.{role.value}.service.check.headers",
                    "with force_ssl Matomo answers a plain-http check with a redirect, so the check never passes",
                    'send X-Forwarded-Proto = ["https"]',
                )
            )
    return findings


def _archiver_resources(d: Deployment) -> list[Finding]:
    archiver = d.roles.archiver
    findings = []
    if nanoseconds(archiver.kill_timeout) < 30 * 10**9:
        findings.append(
            Finding(
                "archiver-kill-timeout",
                WARNING,
                "roles.archiver.kill_timeout",
                f"{archiver.kill_timeout} leaves core:archive little time to finish the report it is writing when stopped",
                "give it at least 30s, and raise the clients' max_kill_timeout to match",
            )
        )
    # A rule of thumb, not a law: core:archive needs PHP's memory_limit (512M is Matomo's
    # minimum advice) plus headroom, and more as the number of sites grows.
    needed = 512 if not archiver.sites else 512 + 512 * min(4, (archiver.sites - 1) // 100)
    available = archiver.memory_max or archiver.memory
    if available < needed:
        sites = f" for {archiver.sites} sites" if archiver.sites else ""
        findings.append(
            Finding(
                "archiver-memory",
                WARNING,
                "roles.archiver.memory",
                f"{available} MB is below the {needed} MB core:archive usually needs{sites}",
                f"give the archiver at least {needed} MB in memory or memory_max",
            )
        )
    return findings


def _nomad_version_supports_jobs(d: Deployment) -> list[Finding]:
    declared = _version_tuple(d.nomad_version)
    # Versions from reference/nomad.md ("Version notes") and Nomad's changelog.
    needs = [((1, 6), "node pools (node_pool)")]
    if d.secrets.provider == "vault" and d.secrets.vault_role:
        needs.append(((1, 7), "Vault workload identity (vault.role)"))
    if d.secrets.provider == "nomad":
        needs.append(((1, 4), "Nomad Variables (nomadVar)"))
    missing = [(v, what) for v, what in needs if declared < v]
    if not missing:
        return []
    version, what = max(missing)
    return [
        Finding(
            "nomad-version",
            ERROR,
            "nomad_version",
            f"the jobs use {what}, which Nomad {version[0]}.{version[1]} introduced; {d.nomad_version} is declared",
            f"run Nomad {version[0]}.{version[1]} or newer and declare it",
        )
    ]


def _vault_auth(d: Deployment) -> list[Finding]:
    """The jobs' vault block must authenticate the way the declared Nomad accepts.

    reference/nomad.md: before 1.7 only the legacy token workflow exists and the server
    rejects a vault block without policies; 1.7 rejects an empty `vault {}` unless its
    servers have a default Vault identity; `policies` has no effect from 1.10."""
    s = d.secrets
    if s.provider != "vault":
        return []
    declared = _version_tuple(d.nomad_version)
    found: list[Finding] = []

    def finding(severity: str, location: str, message: str, fix: str) -> None:
        found.append(Finding("vault-auth", severity, location, message, fix))

    if s.vault_role is None and not s.vault_policies:
        if declared < (1, 7):
            finding(
                ERROR, "secrets.vault_policies",
                f"the jobs would carry an empty vault block, which Nomad {d.nomad_version} rejects "
                "(before 1.7 a vault block needs policies)",
                "list the Vault policies that can read secrets.path in secrets.vault_policies, or run Nomad 1.7+ "
                "and set secrets.vault_role",
            )
        else:
            finding(
                WARNING, "secrets.vault_role",
                "unset: the jobs carry an empty vault block, which Nomad accepts only when its servers have a "
                "default Vault identity (vault.default_identity)",
                "set secrets.vault_role to the Vault role the jobs log in with",
            )
    if s.vault_policies and declared >= (1, 10):
        finding(
            ERROR, "secrets.vault_policies",
            f"Nomad {d.nomad_version} ignores vault policies (the legacy token workflow ended in 1.10): the jobs "
            "would get no Vault token",
            "use workload identity: set secrets.vault_role and remove secrets.vault_policies",
        )
    elif s.vault_policies and s.vault_role is not None:
        finding(
            WARNING, "secrets.vault_policies",
            "set together with secrets.vault_role: with workload identity Nomad uses the role, and the policies "
            "apply only to the legacy workflow",
            "keep one: secrets.vault_role (Nomad 1.7+) or secrets.vault_policies (before 1.10)",
        )
    return found


def _secrets_path_needs_policy(d: Deployment) -> list[Finding]:
    path = d.secrets.path
    if d.secrets.provider != "nomad" or path is None or path == "nomad/jobs" or path.startswith("nomad/jobs/"):
        return []
    return [
        Finding(
            "secrets-path-acl",
            WARNING,
            "secrets.path",
            f"jobs can read {path} only with an ACL policy attached to them",
            "apply one with `nomad acl policy apply -namespace NS -job JOB ...` for each job, or use nomad/jobs",
        )
    ]


def _queue_pinning(d: Deployment) -> list[Finding]:
    processor = d.roles.queue_processor
    if pinned_queues(processor) and processor.update.canary:
        return [
            Finding(
                "queue-pinning-canary",
                WARNING,
                "roles.queue_processor.update.canary",
                "canaries share allocation indexes with the allocations they replace, so two processors pin the same queue",
                "set canary = 0 for the queue processor, or pin_queues = false",
            )
        ]
    return []


def _idle_processors(d: Deployment) -> list[Finding]:
    processor = d.roles.queue_processor
    if processor.count <= processor.queues:
        return []
    # Each queue has one lock (QueuedTracking Queue/Manager.php): a processor beyond the
    # number of queues finds every queue locked and waits.
    return [
        Finding(
            "queue-processors-idle",
            WARNING,
            "roles.queue_processor.count",
            f"{processor.count} processors for {processor.queues} queue(s): a queue is worked by one "
            f"processor at a time, so {processor.count - processor.queues} of them only wait",
            f"raise roles.queue_processor.queues to {processor.count} (never lower it), or run fewer processors",
        )
    ]


def _collation(d: Deployment) -> list[Finding]:
    if d.database.collation is not None:
        return []
    return [
        Finding(
            "database-collation",
            WARNING,
            "database.collation",
            "unset: Matomo's installer writes it, and the 5.1.2 and 5.2.0 migrations store it when empty "
            "(core/Updates/5.1.2-rc1.php), which the read-only config refuses, so the setup job would stop there",
            "set it to your tables' collation, e.g. utf8mb4_general_ci "
            "(SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_NAME LIKE '%log_visit')",
        )
    ]


def _redis_eviction(d: Deployment) -> list[Finding]:
    policy = d.redis.maxmemory_policy
    if policy is None or policy == "noeviction":
        return []
    # Redis 7.2 evict.c: allkeys-* pick from every key, volatile-* only from keys with a
    # TTL. The queues are lists without one; each processor's lock has one
    # (QueuedTracking 5.1.1 Queue/Backend/Redis.php setIfNotExists: SET NX EX), and a
    # processor that finds its lock gone rolls its batch back (Queue/Processor.php,
    # LockExpiredException) while another processor may take the queue.
    if policy.startswith("allkeys-"):
        message = (f"is {policy}: when this Redis is full it deletes keys to make room, whole queued lists "
                   "of tracking requests among them, and those visits are lost without an error anywhere")
    else:
        message = (f"is {policy}: when this Redis is full it deletes keys that expire first, the queue "
                   "processors' QueuedTrackingLock keys among them (a processor whose lock vanishes rolls its batch "
                   "back and another may take the queue), then refuses new requests once none is left")
    return [
        Finding(
            "redis-eviction",
            WARNING,
            "redis.maxmemory_policy",
            message,
            "give the queue a Redis with maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and "
            "the same in redis.conf), so a full Redis refuses new requests loudly; watch its memory with "
            "`status --redis` or the alerting rules",
        )
    ]


def _maintenance_mode_rendered(jobs: list[RoleJob]) -> list[Finding]:
    # The rendered decisions, checked directly: defence in depth for the model's rule.
    return [
        Finding(
            "maintenance-mode-ingestion-only",
            ERROR,
            f"roles.{job.role.value}",
            "maintenance_mode would be on outside ingestion (core:archive refuses to run, the UI is off)",
            "report this as a bug",
        )
        for job in jobs
        if job.role is not Role.ingestion
        and any(s.name == "General" and s.values.get("maintenance_mode") for s in job.config)
    ]


_RULES = (
    _plugins_match_matomo,
    _health_checks_pass_force_ssl,
    _nomad_version_supports_jobs,
    _vault_auth,
    _image_tag_matches_version,
    _proxy_ips_behind_proxies,
    _archiver_resources,
    _secrets_path_needs_policy,
    _queue_pinning,
    _idle_processors,
    _collation,
    _redis_eviction,
)

RULES = {
    "plugin-matomo-major": "plugin releases match the Matomo major version",
    "health-check-force-ssl": "health checks send X-Forwarded-Proto: https when force_ssl is on",
    "nomad-version": "the declared Nomad version supports what the jobs use",
    "vault-auth": "the jobs' vault block authenticates the way the declared Nomad accepts (role or policies)",
    "image-tag-version": "the image tag names the Matomo version",
    "proxy-ips": "proxy_ips is set when more than one proxy is declared",
    "archiver-kill-timeout": "the archiver's kill timeout leaves time to finish",
    "archiver-memory": "the archiver has the memory core:archive needs for the declared sites",
    "secrets-path-acl": "a custom Variables path comes with an ACL policy",
    "queue-pinning-canary": "pinned queue processors are not canaried",
    "queue-processors-idle": "there are no more queue processors than queues",
    "database-collation": "database.collation is set, so no migration needs to write it",
    "redis-eviction": "the queue's Redis, where its policy is known, never evicts (maxmemory-policy noeviction)",
    **ENFORCED_BY_MODEL,
}

"""Migrating a single-server Matomo: its config.ini.php into a deployment file and secrets.

Three steps, each usable on its own:

- `read_matomo_config(text)` (`_php_ini`): the settings exactly as Matomo reads them.
- `import_config(settings, name=..., image=...)`: Matomo's settings mapped onto the
  deployment file's fields; the salt and passwords come back separately as secrets
  (every credential setting included: it is written `{ secret = "..." }` and its value
  stored under that key), and every setting that is dropped or changed comes back as a note.
- `deployment_toml(deployment)`: the deployment as a readable TOML file.

`import_matomo_config(text, ...)` does the first two and adds the reader's own notes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._credentials import derived_key, is_credential
from ._errors import DeploymentError, Problem
from ._php_ini import php_float_text, php_text as _php_text, read_matomo_config, read_with_notes

__all__ = [
    "FLAGS", "ImportResult", "MatomoPlugins", "deployment_toml", "import_config", "import_matomo_config", "matomo_plugins",
    "read_matomo_config",
]

# --- importing the settings ----------------------------------------------------------


@dataclass
class ImportResult:
    """A deployment dict for `parse_deployment`, the secrets to store (never in the
    deployment), and one note per setting that was dropped or changed."""

    deployment: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)
    notes: list[str] = field(default_factory=list)


# Matomo's own defaults (config/global.ini.php, 4.x and 5.x) for the settings
# matomo-nomad decides, so a note can say what actually changes.
_MATOMO_DEFAULTS: dict[str, object] = {
    "enable_auto_update": 1,
    "multi_server_environment": 0,
    "browser_archiving_disabled_enforce": 0,
    "enable_browser_archiving_triggering": 1,
    "enable_general_settings_admin": 1,
    "maintenance_mode": 0,
}
# What matomo-nomad writes for them (_roles._config); maintenance_mode is per role.
_MANAGED_VALUES: dict[str, int] = {
    "enable_auto_update": 0,
    "multi_server_environment": 1,
    "browser_archiving_disabled_enforce": 1,
    "enable_browser_archiving_triggering": 0,
    "enable_general_settings_admin": 0,
}

# Matomo's own plugins, read in matomo-org/matomo at every minor release from 4.0.0 to
# 5.2.0-b5: config/global.ini.php [Plugins] Plugins[] (active by default; the release
# build deletes TestRunner from it, .github/scripts/build-package.sh), core/Plugin/
# Manager.php $pluginToAlwaysActivate (active whatever the config says; DEFAULT_THEME is
# Morpheus), core/Application/Kernel/PluginList.php $corePluginsDisabledByDefault (in
# the release, off by default; the Example* plugins are deleted by clean-build.sh).
# Between 4.0.0 and 5.2.0-b5 only three plugins joined (tested against the extracted
# lists of tests/fixtures/matomo-trees); later releases are assumed to be 5.2's.
_ACTIVE_4_0: frozenset[str] = frozenset(
    """
    API Actions Annotations BulkTracking Contents CoreAdminHome CoreConsole CoreHome
    CorePluginsAdmin CoreUpdater CoreVisualizations CustomDimensions CustomJsTracker Dashboard
    DevicePlugins DevicesDetection Diagnostics Ecommerce Events Feedback GeoIp2 Goals Heartbeat
    ImageGraph Insights Installation Intl IntranetMeasurable LanguagesManager Live Login
    Marketplace MobileMessaging Monolog Morpheus MultiSites Overlay PagePerformance
    PrivacyManager ProfessionalServices Proxy Referrers Resolution RssWidget SEO
    ScheduledReports SegmentEditor SitesManager Tour Transitions TwoFactorAuth UserCountry
    UserCountryMap UserId UserLanguage UsersManager VisitFrequency VisitTime VisitorInterest
    VisitsSummary WebsiteMeasurable Widgetize
    """.split()  # noqa: SIM905 (reads like the list in global.ini.php)
)
_ALWAYS_4_0: frozenset[str] = frozenset(
    """
    API BulkTracking CoreAdminHome CoreConsole CoreHome CorePluginsAdmin CoreUpdater
    CoreVisualizations Installation Intl LanguagesManager Morpheus Proxy SitesManager
    UsersManager WebsiteMeasurable
    """.split()  # noqa: SIM905
)
# (first release, plugin, always activated too)
_ADDED_PLUGINS: tuple[tuple[tuple[int, int, int], str, bool], ...] = (
    ((4, 6, 0), "CoreVue", True),
    ((5, 0, 0), "JsTrackerInstallCheck", False),
    ((5, 2, 0), "FeatureFlags", True),
)
_SHIPPED_OFF: frozenset[str] = frozenset({"DBStats", "MobileAppMeasurable", "TagManager"})
_DEVELOPMENT_PLUGINS: frozenset[str] = frozenset({"TestRunner"})
"""In global.ini.php's list in git, deleted from release builds (and from the image)."""


@dataclass(frozen=True)
class MatomoPlugins:
    """The plugins a Matomo release ships: active by default, activated whatever the
    config says, and shipped but off by default."""

    active: frozenset[str]
    always: frozenset[str]
    shipped_off: frozenset[str]

    @property
    def shipped(self) -> frozenset[str]:
        return self.active | self.shipped_off


def matomo_plugins(version: str) -> MatomoPlugins:
    """The plugins of Matomo `version` (4.0.0 or later)."""
    release = _version_tuple(version)
    added = [(name, always) for since, name, always in _ADDED_PLUGINS if release >= since]
    return MatomoPlugins(
        active=_ACTIVE_4_0 | {name for name, _ in added},
        always=_ALWAYS_4_0 | {name for name, always in added if always},
        shipped_off=_SHIPPED_OFF,
    )


_VERSION_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.]+)?")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-")[0].split("."))


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})


def _as_int(value: object) -> object:
    """A number of digits as an int; anything else as it is (the model then says what is wrong)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


def _truthy(value: object) -> bool:
    """PHP's `!empty($value)` for a config value."""
    return value not in (None, False, 0, 0.0, "", "0") and value != []


def _show(value: object, limit: int = 60) -> str:
    """A value for a note: INI-like, one line, control characters escaped, shortened."""
    if isinstance(value, list):
        return "[" + ", ".join(_show(v, 30) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v, 30)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return _php_text(value)
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= limit else shown[: limit - 4] + '..."'


class _Importer:
    def __init__(self, settings: Mapping[str, Mapping[str, object]]) -> None:
        # Working copies: every handled key is taken out; what is left is carried over.
        self.left: dict[str, dict[str, object]] = {
            str(section): dict(values) if isinstance(values, Mapping) else {}
            for section, values in settings.items()
        }
        self.notes: list[str] = []
        self.problems: list[Problem] = []
        self.secrets: dict[str, str] = {}

    # helpers

    def has(self, section: str, key: str) -> bool:
        return key in self.left.get(section, {})

    def take(self, section: str, key: str, default: object = None) -> object:
        return self.left.get(section, {}).pop(key, default)

    def note(self, section: str, key: str, value: object, what: str, secret: bool = False) -> None:
        suffix = "[]" if isinstance(value, list) else ""
        shown = "" if secret else f" = {_show(value)}"
        self.notes.append(f"[{section}] {key}{suffix}{shown} {what}")

    def text(self, section: str, key: str, value: object) -> str | None:
        try:
            return _php_text(value)
        except TypeError:
            self.problems.append(
                Problem(f"[{section}] {key}", f"is a list or keyed value ({_show(value)}), Matomo expects one value", "write one value")
            )
            return None

    def drop_rest(self, section: str, reason: str) -> None:
        for key, value in self.left.pop(section, {}).items():
            self.note(section, key, value, f"dropped: {reason}", secret=is_credential(key))


FLAGS = {
    "name": "--name",
    "image": "--image",
    "hosts": "--host",
    "redis_host": "--redis-host",
    "matomo_version": "--matomo-version",
}
"""How `matomo-nomad secrets import` names each of `import_config`'s arguments."""


def import_config(
    settings: Mapping[str, Mapping[str, object]],
    *,
    name: str,
    image: str,
    hosts: list[str] | None = None,
    redis_host: str | None = None,
    matomo_version: str | None = None,
    given_as: Mapping[str, str] | None = None,
) -> ImportResult:
    """Map a single-server Matomo's settings (as `read_matomo_config` returns them) to a
    deployment dict that `parse_deployment` accepts.

    `hosts` replaces `[General] trusted_hosts[]`; `redis_host` is the Redis server for
    QueuedTracking when the file has no `[QueuedTracking] redisHost` (a single server
    usually keeps QueuedTracking's settings in the database, or has none);
    `matomo_version` is the Matomo the deployment runs (matomo.version), which decides
    which plugins are Matomo's own. Raises DeploymentError listing every problem when no
    valid deployment can be made; a problem with a value given here rather than read
    from the file names the argument, as `given_as` spells it (default: its name).
    """
    from ._loading import parse_deployment
    from ._model import Secrets

    keys = Secrets()
    im = _Importer(settings)
    deployment: dict[str, Any] = {"name": name, "matomo": {"image": image}}
    if matomo_version is not None:
        deployment["matomo"]["version"] = matomo_version

    deployment["hosts"] = _hosts(im, hosts)
    deployment["proxy"] = _proxy(im)
    deployment["database"] = _database(im, keys)
    redis, queue_role = _queued_tracking(im, keys, redis_host)
    if redis is not None:
        deployment["redis"] = redis
    redis_cache = _redis_cache(im, keys)
    if redis_cache is not None:
        deployment["redis_cache"] = redis_cache
    _general(im, keys)
    # A version that is not one is refused by the model below, blamed on its argument.
    _plugins(im, matomo_version if matomo_version and _VERSION_RE.fullmatch(matomo_version) else None)
    if queue_role:
        deployment["roles"] = {"queue_processor": queue_role}
    extra = _settings(im, keys)
    if extra:
        deployment["settings"] = extra
    if matomo_version is None:
        im.notes.append(
            "matomo.version is left at matomo-nomad's default; set it to the Matomo version the "
            "old server ran (or newer), the one your image is built from"
        )
    if im.problems:
        raise DeploymentError(im.problems)
    try:
        parse_deployment(deployment, source="imported deployment")
    except DeploymentError as error:
        spelled = {**{argument: argument for argument in FLAGS}, **(given_as or {})}
        given = {"name": "name", "matomo.image": "image", "matomo.version": "matomo_version"}
        if hosts:
            given["hosts"] = "hosts"
        if redis_host:
            given["redis.host"] = "redis_host"

        def source(location: str) -> str:
            for field_path, argument in given.items():
                if location == field_path or location.startswith((field_path + ".", field_path + "[")):
                    return spelled[argument]
            return "the imported config.ini.php"

        raise DeploymentError(
            [Problem(p.location, f"{p.message} (from {source(p.location)})", p.fix) for p in error.problems]
        ) from None
    return ImportResult(deployment=deployment, secrets=im.secrets, notes=im.notes)


def _hosts(im: _Importer, given: list[str] | None) -> list[str]:
    from ._model import _public_host

    found = im.take("General", "trusted_hosts")
    if isinstance(found, dict):  # trusted_hosts[name] = ...: Matomo uses the values
        found = list(found.values())
    valid: list[str] = []
    if isinstance(found, list):
        for host in found:
            try:
                valid.append(_public_host(_php_text(host)))
            except (ValueError, TypeError):
                im.notes.append(
                    f"[General] trusted_hosts[] {_show(host)} dropped: not a host name with an optional :port "
                    "(matomo-nomad's hosts); add it back to hosts in its plain form"
                )
    elif found is not None:
        im.note("General", "trusted_hosts", found, "dropped: Matomo ignores trusted_hosts without [] (it expects a list)")
    if given:
        if valid and valid != list(given):
            im.notes.append(
                f"[General] trusted_hosts[] = {_show(valid)} replaced by the hosts given: {_show(list(given))}"
            )
        return list(given)
    if not valid:
        im.problems.append(
            Problem(
                "[General] trusted_hosts[]",
                "gives no host name Matomo is reached at",
                "pass the public host names explicitly (hosts)",
            )
        )
    return valid


def _proxy(im: _Importer) -> dict[str, Any]:
    from ._model import _network

    proxy: dict[str, Any] = {}
    headers = im.take("General", "proxy_client_headers")
    if isinstance(headers, list):
        kept = []
        for header in headers:
            if isinstance(header, str) and re.fullmatch(r"HTTP_[A-Z0-9_]+", header):
                kept.append(header)
            else:
                im.notes.append(
                    f"[General] proxy_client_headers[] {_show(header)} dropped: not a $_SERVER HTTP_* key "
                    "(proxy.client_headers)"
                )
        proxy["client_headers"] = kept
    else:
        if headers is not None:
            im.note("General", "proxy_client_headers", headers, "dropped: Matomo ignores it without [] (it expects a list)")
        im.notes.append(
            "[General] proxy_client_headers[] was not set (Matomo took the client IP from the connection); "
            "matomo-nomad's default proxy.client_headers reads HTTP_X_FORWARDED_FOR, for the load balancer "
            "in front of the jobs: check that it is the header yours sets"
        )
    ips = im.take("General", "proxy_ips")
    if isinstance(ips, list):
        kept = []
        for ip in ips:
            try:
                kept.append(_network(_php_text(ip)))
            except (ValueError, TypeError):
                im.notes.append(
                    f"[General] proxy_ips[] {_show(ip)} dropped: not an IP address or CIDR range "
                    "(rewrite ranges such as 10.0.*.* as 10.0.0.0/16 in proxy.ips)"
                )
        if kept:
            proxy["ips"] = kept
    elif ips is not None:
        im.note("General", "proxy_ips", ips, "dropped: Matomo ignores it without [] (it expects a list)")
    if im.has("General", "force_ssl"):
        proxy["force_ssl"] = _truthy(im.take("General", "force_ssl"))
    else:
        proxy["force_ssl"] = False
        im.notes.append(
            "[General] force_ssl was not set (Matomo's default 0): proxy.force_ssl = false keeps it so; "
            "matomo-nomad's default is true when Matomo is only served over https"
        )
    return proxy


_ADAPTERS = {"PDO\\MYSQL": "PDO\\MYSQL", "PDO_MYSQL": "PDO\\MYSQL", "MYSQLI": "MYSQLI"}


def _database(im: _Importer, keys: Any) -> dict[str, Any]:
    section = "database"
    database: dict[str, Any] = {}
    host = im.text(section, "host", im.take(section, "host", ""))
    if not host:
        im.problems.append(Problem("[database] host", "is empty: this Matomo is not installed", "import the config.ini.php of an installed Matomo"))
    else:
        database["host"] = host
        if host.lower() in _LOCAL_HOSTS:
            im.notes.append(
                f"[database] host = {_show(host)} kept, but the Nomad jobs run in containers on other machines: "
                "set database.host to an address of the database they can reach"
            )
    port = im.take(section, "port", "")
    if port not in ("", None):
        if isinstance(port, int) and not isinstance(port, bool):
            database["port"] = port
        elif isinstance(port, str) and port.isdigit():
            database["port"] = int(port)
        else:
            im.problems.append(Problem("[database] port", f"is {_show(port)}, not a port number", "write the port as a number"))
    user = im.text(section, "username", im.take(section, "username", ""))
    if not user:
        im.problems.append(
            Problem("[database] username", "is empty: Matomo counts as installed only when it is set", "import the config.ini.php of an installed Matomo")
        )
    else:
        database["user"] = user
    password = im.text(section, "password", im.take(section, "password", ""))
    if password is not None:
        im.secrets[keys.database_password_key] = password
        if password == "":
            im.notes.append("[database] password is empty; the secret database_password is stored empty")
    for model_key, ini_key, default in (("name", "dbname", ""), ("table_prefix", "tables_prefix", "")):
        # Absent keys take global.ini.php's default (empty), not matomo-nomad's.
        value = im.text(section, ini_key, im.take(section, ini_key, default))
        if value is not None:
            database[model_key] = value
    adapter = im.text(section, "adapter", im.take(section, "adapter", "PDO\\MYSQL"))
    if adapter is not None:
        # Matomo's Adapter::factory lowercases the name and reads _ like \.
        normal = _ADAPTERS.get(adapter.upper())
        if normal is None:
            im.problems.append(Problem("[database] adapter", f"is {_show(adapter)}", "use PDO\\MYSQL or MYSQLI"))
        else:
            database["adapter"] = normal
            if normal != adapter:
                im.notes.append(f"[database] adapter = {_show(adapter)} written as {_show(normal)}, the same adapter to Matomo")
    charset = im.text(section, "charset", im.take(section, "charset", "utf8"))
    if charset is not None:
        database["charset"] = charset.lower()
        if charset.lower() != charset:
            im.notes.append(f"[database] charset = {_show(charset)} written in lowercase, as MySQL names it")
    tls = _database_tls(im, section)
    if tls:
        database["tls"] = tls
    if im.has(section, "type"):
        given = im.take(section, "type")
        effect = "Matomo's default is the same" if given == "InnoDB" else "Matomo uses its default InnoDB instead"
        im.note(section, "type", given, f"dropped: the deployment file has no field for it; {effect}")
    if im.has(section, "schema"):
        _database_schema(im, section, database)
    collation = im.take(section, "collation")
    if collation not in (None, ""):
        # Kept: with a read-only config, an empty collation stops the 5.1.2 and 5.2.0
        # migrations that would store it (core/Updates/5.1.2-rc1.php).
        database["collation"] = _php_text(collation)
    im.drop_rest(section, "the deployment file's database table has no field for it")

    reader = _database_reader(im, keys, database, password)
    if reader is not None:
        database["reader"] = reader
    return database


_SCHEMAS = ("Mysql", "Mariadb", "Tidb")


def _database_schema(im: _Importer, section: str, database: dict[str, Any]) -> None:
    """`[database] schema` as the class Matomo loads for it (core/Db/Schema.php 5.1.2,
    getSchemaClassName: trimmed, lowercased then capitalised; empty or myisam is Mysql)."""
    given = im.take(section, "schema")
    text = im.text(section, "schema", given)
    if text is None:
        return
    normal = text.strip().lower()
    name = "Mysql" if normal in ("", "myisam") else normal.capitalize()
    if name not in _SCHEMAS:
        im.problems.append(
            Problem(f"[{section}] schema", f"is {_show(given)}, which Matomo has no schema class for", "use Mysql, Mariadb or Tidb")
        )
        return
    database["schema"] = name
    if name != text:
        im.note(section, "schema", given, f"written as {_show(name)}, the schema Matomo loads for it")


def _database_tls(im: _Importer, section: str) -> dict[str, Any]:
    enabled = _truthy(im.take(section, "enable_ssl", 0))
    paths = {name: im.take(section, f"ssl_{name}", "") for name in ("ca", "cert", "key")}
    no_verify = im.take(section, "ssl_no_verify", "")
    unsupported = {key: im.take(section, key) for key in ("ssl_ca_path", "ssl_cipher") if im.has(section, key)}
    if not enabled:
        for name, value in paths.items():
            if value not in ("", None):
                im.note(section, f"ssl_{name}", value, "dropped: enable_ssl is off, so Matomo does not use it")
        if no_verify not in ("", None):
            im.note(section, "ssl_no_verify", no_verify, "dropped: enable_ssl is off, so Matomo does not use it")
        for key, value in unsupported.items():
            if value not in ("", None):
                im.note(section, key, value, "dropped: enable_ssl is off, so Matomo does not use it")
        return {}
    tls: dict[str, Any] = {"enabled": True}
    for name, value in paths.items():
        text = im.text(section, f"ssl_{name}", value)
        if text:
            tls[name] = text
    tls["verify"] = not _truthy(no_verify)
    for key, value in unsupported.items():
        if value not in ("", None):
            im.note(section, key, value, "dropped: the deployment file's database.tls has no field for it")
    return tls


def _database_reader(im: _Importer, keys: Any, primary: dict[str, Any], primary_password: str | None) -> dict[str, Any] | None:
    section = "database_reader"
    if section not in im.left:
        return None
    host = im.text(section, "host", im.take(section, "host", ""))
    if not host:
        im.drop_rest(section, "[database_reader] has no host, so Matomo uses no reader")
        im.left.pop(section, None)
        return None
    reader: dict[str, Any] = {"host": host}
    port = im.take(section, "port", "")
    if isinstance(port, int) and not isinstance(port, bool):
        reader["port"] = port
    elif isinstance(port, str) and port.isdigit():
        reader["port"] = int(port)
    elif port not in ("", None):
        im.problems.append(Problem("[database_reader] port", f"is {_show(port)}, not a port number", "write the port as a number"))
    user = im.text(section, "username", im.take(section, "username", ""))
    password = im.text(section, "password", im.take(section, "password", ""))
    if user and (user != primary.get("user") or password != primary_password):
        # Its own credentials: read from their own secret key.
        reader["user"] = user
        im.secrets[keys.database_reader_password_key] = password or ""
    elif not user and password:
        im.note(section, "password", password, "dropped: without a username the reader uses the primary's user and password", secret=True)
    for key, model_key in (("dbname", "name"), ("tables_prefix", "table_prefix"), ("adapter", "adapter"), ("charset", "charset")):
        if im.has(section, key):
            value = im.take(section, key)
            same = isinstance(value, (str, int, float)) and _php_text(value) == primary.get(model_key)
            if same:
                im.note(section, key, value, "dropped: matomo-nomad writes the primary's value for the reader, which is the same")
            elif value in ("", None):
                im.note(section, key, value, f"dropped: matomo-nomad gives the reader the primary's {key} ({_show(primary.get(model_key))})")
            else:
                im.note(section, key, value, f"changed: matomo-nomad gives the reader the primary's {key} ({_show(primary.get(model_key))})")
    for key in ("enable_ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_no_verify", "ssl_ca_path", "ssl_cipher"):
        if im.has(section, key):
            im.note(section, key, im.take(section, key), "dropped: matomo-nomad gives the reader the primary's TLS settings")
    im.drop_rest(section, "the deployment file's database.reader has no field for it")
    return reader


def _queued_tracking(im: _Importer, keys: Any, redis_host: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    section = "QueuedTracking"
    redis: dict[str, Any] = {}
    role: dict[str, Any] = {}
    backend = im.take(section, "backend")
    if backend not in (None, "redis"):
        im.note(section, "backend", backend, "changed: matomo-nomad queues tracking requests in Redis")
    sentinel_type = im.take(section, "useWhatRedisBackendType")
    legacy_sentinel = im.take(section, "useSentinelBackend")
    sentinel = sentinel_type == 2 or (sentinel_type is None and _truthy(legacy_sentinel))
    if sentinel_type not in (None, 1, 2):
        im.problems.append(
            Problem("[QueuedTracking] useWhatRedisBackendType", f"is {_show(sentinel_type)}: only 1 (Redis) and 2 (Sentinel) can be deployed", "switch to one of those")
        )
    host = im.take(section, "redisHost")
    port = im.take(section, "redisPort")
    master = im.take(section, "sentinelMasterName")
    # The switch is written again only for Sentinel, in the form the plugin version reads.
    if sentinel_type is not None:
        im.note(section, "useWhatRedisBackendType", sentinel_type, "dropped: matomo-nomad writes the backend type itself (for Sentinel)")
    if legacy_sentinel is not None:
        im.note(section, "useSentinelBackend", legacy_sentinel, "dropped: matomo-nomad writes the Sentinel switch itself, as the QueuedTracking version in plugins reads it")
    if master not in (None, "") and not sentinel:
        im.note(section, "sentinelMasterName", master, "dropped: Sentinel is not in use")
    if redis_host:
        if host not in (None, ""):
            im.note(section, "redisHost", host, f"replaced by the Redis host given: {_show(redis_host)}")
        redis["host"] = redis_host
        if sentinel:
            im.notes.append("[QueuedTracking] Sentinel settings dropped: the Redis host given replaces them")
    elif sentinel and host not in (None, ""):
        hosts = [h.strip() for h in _php_text(host).split(",")]
        ports = [p.strip() for p in _php_text(port if port is not None else "26379").split(",")]
        if len(ports) == 1:
            ports = ports * len(hosts)
        if len(ports) != len(hosts):
            im.problems.append(Problem("[QueuedTracking] redisPort", "does not give one port per Sentinel host", "list as many ports as hosts"))
        redis["sentinel"] = {"master": _php_text(master) if master not in (None, "") else "mymaster", "addresses": [f"{h}:{p}" for h, p in zip(hosts, ports)]}
        if master in (None, ""):
            im.notes.append("[QueuedTracking] sentinelMasterName was not set: redis.sentinel.master = \"mymaster\", QueuedTracking's default")
    elif host not in (None, ""):
        redis["host"] = _php_text(host)
        if port not in (None, ""):
            redis["port"] = _as_int(port)
        if redis["host"].lower() in _LOCAL_HOSTS:
            im.notes.append(
                f"[QueuedTracking] redisHost = {_show(redis['host'])} kept, but the Nomad jobs run on other machines: "
                "set redis.host to an address they can reach"
            )
    else:
        im.problems.append(
            Problem(
                "[QueuedTracking] redisHost",
                "is not in config.ini.php (QueuedTracking keeps its settings in the database, or is not installed)",
                "give the Redis host the queue should use (redis_host)",
            )
        )
        return None, role
    database = im.take(section, "redisDatabase")
    if database not in (None, ""):
        redis["database"] = _as_int(database)
    timeout = im.take(section, "redisTimeout")
    if timeout not in (None, ""):
        try:
            redis["timeout"] = float(_php_text(timeout))
        except ValueError:
            redis["timeout"] = timeout
    password = im.take(section, "redisPassword")
    if password not in (None, ""):
        redis["password"] = True
        im.secrets[keys.redis_password_key] = _php_text(password)
    enabled = im.take(section, "queueEnabled")
    if enabled is not None and not _truthy(enabled):
        im.note(section, "queueEnabled", enabled, "changed: matomo-nomad always queues (queueEnabled = 1)")
    workers = im.take(section, "numQueueWorkers")
    if workers not in (None, ""):
        if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1:
            # The number of queues must be kept (lowering it strands queued requests);
            # one processor per queue works each queue on its own.
            role["queues"] = workers
            role["count"] = workers
        else:
            im.note(section, "numQueueWorkers", workers, "dropped: not a number of workers")
    batch = im.take(section, "numRequestsToProcess")
    if batch not in (None, ""):
        if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
            role["requests_per_batch"] = batch
        else:
            im.note(section, "numRequestsToProcess", batch, "dropped: not a number of requests")
    during = im.take(section, "processDuringTrackingRequest")
    if during is not None and _truthy(during):
        im.note(
            section,
            "processDuringTrackingRequest",
            during,
            "changed to 0: the queue processor jobs process the queue, tracking requests only enqueue",
        )
    im.drop_rest(section, "the deployment file's redis table and roles.queue_processor have no field for it")
    return redis, role


def _redis_cache(im: _Importer, keys: Any) -> dict[str, Any] | None:
    backend = im.take("Cache", "backend")
    chained = im.left.get("ChainedCache", {}).get("backends")
    uses_redis = backend == "redis" or (backend == "chained" and isinstance(chained, list) and "redis" in chained)
    if backend is not None and backend != "redis":
        if uses_redis:
            im.note("Cache", "backend", backend, "changed to redis: the chain's Redis cache becomes the cache (redis_cache)")
        else:
            im.note(
                "Cache",
                "backend",
                backend,
                "dropped: each container would keep its own cache; Matomo's default (array and file) applies, "
                "or set redis_cache to share one",
            )
    section = "RedisCache"
    if not uses_redis:
        if section in im.left:
            im.drop_rest(section, "[Cache] backend is not redis, so Matomo does not use it")
            im.left.pop(section, None)
        return None
    cache: dict[str, Any] = {}
    host = im.take(section, "host", "127.0.0.1")
    cache["host"] = _php_text(host)
    if cache["host"].lower() in _LOCAL_HOSTS:
        im.notes.append(
            f"[RedisCache] host = {_show(cache['host'])} kept, but the Nomad jobs run on other machines: "
            "set redis_cache.host to an address they can reach"
        )
    for key, default in (("port", 6379), ("database", 14)):
        value = im.take(section, key, default)
        cache[key] = _as_int(value)
    timeout = im.take(section, "timeout", 0.0)
    try:
        cache["timeout"] = float(_php_text(timeout) or 0)
    except ValueError:
        cache["timeout"] = timeout
    password = im.take(section, "password", "")
    if password not in ("", None):
        cache["password"] = True
        im.secrets[keys.redis_cache_password_key] = _php_text(password)
    socket = im.take(section, "unix_socket", "")
    if socket not in ("", None):
        im.note(section, "unix_socket", socket, "dropped: the jobs reach Redis over the network (redis_cache.host)")
    im.drop_rest(section, "the deployment file's redis_cache table has no field for it")
    return cache


def _general(im: _Importer, keys: Any) -> None:
    from ._model import _MANAGED_SETTINGS

    section = "General"
    salt = im.take(section, "salt")
    if salt in (None, ""):
        im.problems.append(Problem("[General] salt", "is not set: this Matomo is not installed", "import the config.ini.php of an installed Matomo"))
    else:
        text = im.text(section, "salt", salt)
        if text is not None:
            im.secrets[keys.salt_key] = text
    reasons = _MANAGED_SETTINGS.get(section, {})
    for key, ours in _MANAGED_VALUES.items():
        present = im.has(section, key)
        value = im.take(section, key) if present else _MATOMO_DEFAULTS[key]
        effective = 1 if _truthy(value) else 0
        why = reasons.get(key, "matomo-nomad sets it")
        if present:
            what = f"matomo-nomad keeps it at {ours}" if effective != ours else f"matomo-nomad writes the same value ({ours})"
            im.note(section, key, value, f"dropped: {what}; {why}")
        elif effective != ours:
            im.notes.append(f"[General] {key} was not set (Matomo's default {effective}); matomo-nomad sets it to {ours} ({why})")
    if im.has(section, "maintenance_mode"):
        value = im.take(section, "maintenance_mode")
        state = "the old server was in maintenance mode; " if _truthy(value) else ""
        im.note(section, "maintenance_mode", value, f"dropped: {state}{reasons.get('maintenance_mode', 'matomo-nomad sets it per role')}")
    handler = im.left.get(section, {}).get("session_save_handler")
    if handler not in (None, "dbtable"):
        im.take(section, "session_save_handler")
        im.note(
            section,
            "session_save_handler",
            handler,
            "dropped: sessions in files live on one container only; Matomo's default (dbtable) shares them between the admin allocations",
        )
    # Anything else the model manages (a table kept in _model), with the model's reason.
    for key in list(im.left.get(section, {})):
        if key in reasons:
            im.note(section, key, im.take(section, key), f"dropped: {reasons[key]}")


def _plugins(im: _Importer, version: str | None) -> None:
    listed = im.left.get("Plugins", {}).get("Plugins")
    if isinstance(listed, list):
        # Without the Matomo version, a plugin any release ships is Matomo's, and only
        # plugins every release activates count as deactivated when missing.
        ships = matomo_plugins(version or "99.0.0")
        base = matomo_plugins(version or "4.0.0")
        names = [p for p in listed if isinstance(p, str)]
        extra = [p for p in names if p not in ships.active and p not in _DEVELOPMENT_PLUGINS]
        absent = sorted(base.active - base.always - set(names))
        im.left["Plugins"].pop("Plugins")
        text = f"[Plugins] Plugins[] ({len(names)} plugins) dropped: a Plugins[] list replaces Matomo's whole default list; the image's common.config.ini.php lists every plugin"
        if extra:
            known = [p for p in extra if p in ("QueuedTracking", "SecurityInfo")]
            off = [p for p in extra if p in ships.shipped_off]
            bake = [p for p in extra if p not in known and p not in off]
            if bake:
                text += (
                    f". Not shipped with Matomo{' ' + version if version else ''}, so bake them into the image: "
                    f"{', '.join(bake)} (add each to plugins with its version, from plugins/<Name>/plugin.json on "
                    "the old server)"
                )
            if off:
                text += (
                    f". Shipped with Matomo but off by default: {', '.join(off)} (the image activates only "
                    "Matomo's default plugins and the plugins list; listing one there fetches its marketplace "
                    "release over the shipped copy)"
                )
            if known:
                text += f". Already in matomo-nomad's default plugins: {', '.join(known)}"
        development = [p for p in names if p in _DEVELOPMENT_PLUGINS]
        if development:
            text += f". Development plugins, which release builds and the image leave out: {', '.join(development)}"
        if absent:
            text += (
                f". Default plugins the old server had deactivated, which Matomo activates again without a "
                f"Plugins[] list: {', '.join(absent)} (deactivate them in the image if you still want them off)"
            )
        im.notes.append(text)
    im.drop_rest("Plugins", "the image's common.config.ini.php lists the plugins, generated at build time")
    im.left.pop("Plugins", None)
    installed = im.left.get("PluginsInstalled", {}).pop("PluginsInstalled", None)
    if installed is not None:
        count = len(installed) if isinstance(installed, list) else 1
        im.notes.append(
            f"[PluginsInstalled] PluginsInstalled[] ({count} plugins) dropped: the image's common.config.ini.php "
            "lists every plugin as installed, and the setup job installs any the database has not seen"
        )
    im.drop_rest("PluginsInstalled", "the image's common.config.ini.php lists the plugins, generated at build time")
    im.left.pop("PluginsInstalled", None)
    for old in ("Plugins_Tracker",):
        im.drop_rest(old, "Matomo has not read this section since 2.x")
        im.left.pop(old, None)


def _settings(im: _Importer, keys: Any) -> dict[str, dict[str, Any]]:
    """Everything not handled above, as the deployment's settings, or a note why not.
    A credential becomes `{ secret = "<key>" }`, its value a secret stored under that key."""
    from ._model import _MANAGED_SECTIONS, _MANAGED_SETTINGS

    # Keys matomo-nomad manages (salt, database_password, ...) are never derived.
    taken = {getattr(keys, name) for name in type(keys).model_fields if name.endswith("_key")} | set(im.secrets)
    extra: dict[str, dict[str, Any]] = {}
    for section, values in list(im.left.items()):
        if not values:
            continue
        if section in _MANAGED_SECTIONS:
            im.drop_rest(section, _MANAGED_SECTIONS[section])
            continue
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", section):
            im.drop_rest(section, "the section name cannot be a deployment-file settings section (letters, digits, '_')")
            continue
        for key, value in values.items():
            reason = _MANAGED_SETTINGS.get(section, {}).get(key)
            if section == "Cache" and key == "backend":
                reason = "set the redis_cache table"
            why = _unsettable(key, value) if reason is None else f"dropped: {reason}"
            if why is not None:
                im.note(section, key, value, why, secret=is_credential(key))
                continue
            if is_credential(key) and _php_text(value) != "":
                secret = derived_key(section, key, taken)
                taken.add(secret)
                im.secrets[secret] = _php_text(value)
                extra.setdefault(section, {})[key] = {"secret": secret}
                im.notes.append(
                    f"[{section}] {key} is a credential: stored as the secret {secret}, which the deployment file "
                    f'names ({{ secret = "{secret}" }}) and the jobs read at run time'
                )
                continue
            extra.setdefault(section, {})[key] = "" if is_credential(key) else _carried(value)
            if section == "log" and key == "log_writers" and isinstance(value, list) and "file" in value:
                im.notes.append(
                    "[log] log_writers[] includes file: each container writes its own log file, lost when it "
                    "restarts (screen or syslog reach Nomad's logs)"
                )
    im.left.clear()
    return extra


def _unsettable(key: str, value: object) -> str | None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", key):
        return "dropped: the key cannot be a deployment-file settings key (letters, digits, '_')"
    if isinstance(value, dict):
        return "dropped: keyed entries (key[name] = ...) cannot be written in the deployment file's settings"
    items = value if isinstance(value, list) else [value]
    if any(item is None for item in items):
        return "dropped: null cannot be written in the deployment file; Matomo falls back to global.ini.php's default"
    if any(isinstance(item, (list, dict)) for item in items):
        return "dropped: nested values cannot be written in the deployment file's settings"
    if is_credential(key) and isinstance(value, list):
        return "dropped: a credential that is a list cannot be one secret; set it again after the move"
    return None


def _carried(value: object) -> object:
    """A value the renderer writes back so that Matomo reads the same thing: a float whose
    Python spelling PHP would not turn back into that number (1e-05, 1e+16) goes as
    PHP's own spelling ("1.0E-5"), which Matomo reads as the same float."""
    if isinstance(value, list):
        return [_carried(item) for item in value]
    if isinstance(value, float) and repr(value) != php_float_text(value):
        return php_float_text(value)
    return value


def import_matomo_config(
    text: str,
    *,
    name: str,
    image: str,
    hosts: list[str] | None = None,
    redis_host: str | None = None,
    matomo_version: str | None = None,
    given_as: Mapping[str, str] | None = None,
) -> ImportResult:
    """`read_matomo_config` then `import_config`, with the reader's own notes first."""
    settings, reader_notes = read_with_notes(text)
    result = import_config(
        settings,
        name=name,
        image=image,
        hosts=hosts,
        redis_host=redis_host,
        matomo_version=matomo_version,
        given_as=given_as,
    )
    result.notes[:0] = reader_notes
    return result


# --- writing the deployment file -----------------------------------------------------

_ORDER = ("name", "hosts", "matomo", "proxy", "database", "redis", "redis_cache", "roles", "settings")
_COMMENT_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _comment(text: str) -> str:
    # TOML comments may not hold control characters other than tab.
    return _COMMENT_UNSAFE.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def deployment_toml(
    deployment: Mapping[str, Any],
    *,
    source: str = "an existing Matomo config.ini.php",
    notes: Iterable[str] = (),
) -> str:
    """The deployment dict as a TOML deployment file, with a header saying where it came
    from, that no secret is in it, and the import's notes as comments.

    Written with tomli-w: every value a deployment dict holds (tables, arrays of
    scalars, strings with any character, ints, finite floats, booleans) has a TOML form
    it writes, and `tomllib` reads the result back to the same dict (tested). The
    settings come last, each secret reference as an inline table on its key's line
    (`password = { secret = "mail_password" }`), which tomli-w cannot write.
    """
    import tomli_w

    ordered = {key: deployment[key] for key in _ORDER if key in deployment}
    ordered.update({key: value for key, value in deployment.items() if key not in ordered})
    settings = ordered.pop("settings", None)
    header = [
        f"# matomo-nomad deployment file, imported from {_comment(source)}.",
        "#",
        "# Secrets are NOT in this file: the salt and the passwords go to the secret store the",
        "# jobs read at run time (`matomo-nomad secrets`); this file only says which keys to read.",
        "# Check it with `matomo-nomad validate`, then render or plan.",
    ]
    notes = list(notes)
    if notes:
        header += ["#", "# What the import dropped or changed:"]
        header += [f"#   - {_comment(note)}" for note in notes]
    text = "\n".join(header) + "\n\n" + tomli_w.dumps(ordered)
    if settings:
        text += "\n" + _settings_toml(settings)
    return text


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _settings_toml(settings: Mapping[str, Mapping[str, Any]]) -> str:
    import tomli_w

    tables = []
    for section, values in settings.items():
        if not _BARE_KEY.fullmatch(section):
            tables.append(tomli_w.dumps({"settings": {section: values}}))
            continue
        lines = [f"[settings.{section}]\n"]
        for key, value in values.items():
            if isinstance(value, dict) and set(value) == {"secret"} and _BARE_KEY.fullmatch(str(value["secret"])):
                key_text = tomli_w.dumps({key: ""}).rsplit("=", 1)[0]  # the key as TOML spells it
                lines.append(f'{key_text}= {{ secret = "{value["secret"]}" }}\n')
            else:
                lines.append(tomli_w.dumps({key: value}))
        tables.append("".join(lines))
    return "\n".join(tables)

"""The deployment file, as typed Pydantic models.

This module only says what a valid deployment looks like; what each role does with it
is decided in `_roles`. Every default lives here, in a `Field(description=...)`, so the
JSON Schema (`matomo-nomad schema`) documents it for editors.

Free-text fields (`Text`) accept any Unicode except NUL: the renderer escapes them for
every layer they cross. Names that Nomad, Matomo or DNS restrict get a pattern instead,
and a value outside it is refused with the reason.
"""

from __future__ import annotations

import ipaddress
import json
import math
import unicodedata
import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ._credentials import SECRET_KEY_PATTERN, derived_key, is_credential, is_secret_key, literal_fix
from ._ini import SecretRef

# --- value types ---------------------------------------------------------------------


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character, which config.ini.php cannot carry (remove it)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode: it has a lone surrogate (fix the text encoding)") from None
    if not unicodedata.is_normalized("NFC", value):
        # HashiCorp's HCL parser normalises every string literal to NFC (found by the
        # property tests: U+212A KELVIN SIGN came back as K), so the job would not say
        # what the file says. Refuse rather than change it silently.
        raise ValueError(
            "is not in Unicode NFC form, which Nomad's HCL parser would silently change "
            f"(write it as {json.dumps(unicodedata.normalize('NFC', value), ensure_ascii=False)})"
        )
    return value


Text = Annotated[str, AfterValidator(_text)]
"""Free text: carried to Nomad, consul-template and Matomo exactly as given."""

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")


def _host(value: str) -> str:
    if _HOSTNAME_RE.match(value):
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            "is not a host name or IP address (use letters, digits, '-' and '.'; "
            "internationalised names in their xn-- form)"
        ) from None
    return value


Host = Annotated[str, AfterValidator(_host)]


def _public_host(value: str) -> str:
    if "://" in value or "/" in value:
        raise ValueError("is a URL, not a host name (write only the host, e.g. analytics.example.com)")
    name, sep, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if sep and port.isdigit() and not 0 < int(port) < 65536:
        raise ValueError("has a port that is not a number from 1 to 65535 (fix the port, or leave it out)")
    if sep and not port.isdigit():
        name = value
    if not _HOSTNAME_RE.match(name or value) or value.endswith("."):
        raise ValueError(
            "is not a public host name such as analytics.example.com, optionally with :port "
            "(use the xn-- form for internationalised names)"
        )
    return value


PublicHost = Annotated[str, AfterValidator(_public_host)]
"""A host name users reach Matomo at: goes to trusted_hosts[] and the archiver's --url."""

def _matching(pattern: str, what: str) -> object:
    """A string type checked against `pattern`, refused with `what` as the reason."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(what)
        return value

    return Annotated[str, AfterValidator(check), WithJsonSchema({"type": "string", "pattern": pattern})]


DnsLabel = _matching(
    r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$",
    "cannot be part of job ids and service names "
    "(use 1-40 lowercase letters, digits or '-', not starting or ending with '-')",
)
Port = Annotated[int, Field(ge=1, le=65535)]
NomadName = _matching(
    r"^[A-Za-z0-9*][A-Za-z0-9_.*-]{0,127}$",
    "is not a Nomad name (use letters, digits, '_', '.', '-', and '*' in datacenters)",
)
EnvName = _matching(
    r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
    "is not an environment variable name (use letters, digits and '_', not starting with a digit)",
)
IniSection = _matching(
    r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
    "is not a config.ini.php section name (use letters, digits and '_', starting with a letter)",
)
IniKey = _matching(
    r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
    "must be a config.ini.php key: letters, digits and '_' (write lists as TOML arrays, without [])",
)
Version = _matching(
    r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.]+)?$", "is not a version (write it like 5.10.0)"
)

_DURATION_RE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def nanoseconds(duration: str) -> int:
    """A Go duration string ("1m30s") as integer nanoseconds, as Nomad's API JSON wants."""
    return round(sum(float(n) * _UNIT_NS[u] for n, u in _DURATION_PART.findall(duration)))


def _duration(value: str) -> str:
    if not _DURATION_RE.match(value):
        raise ValueError("is not a duration (write it like 30s, 5m or 1h30m)")
    return value


Duration = Annotated[str, AfterValidator(_duration)]

_IMAGE_RE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


def _image(value: str) -> str:
    match = _IMAGE_RE.match(value)
    if not match:
        raise ValueError(
            "is not a Docker image reference (write it like registry.example.com/matomo:5.10.0-1)"
        )
    tag, digest = match.group("tag"), match.group("digest")
    if not tag and not digest:
        raise ValueError("has no tag or digest (pin one, e.g. :5.10.0-1 or @sha256:..., so every node runs the same build)")
    if tag == "latest" and not digest:
        raise ValueError("uses the tag 'latest' (pin a version tag or a digest so every node runs the same build)")
    return value


ImageRef = Annotated[str, AfterValidator(_image)]



def _secret_ref(value: dict) -> SecretRef:
    """`{ secret = "<key>" }`: a value read from the secret store at run time."""
    key = value.get("secret")
    if set(value) != {"secret"} or not isinstance(key, str):
        raise ValueError(
            'is a table, and the only table a value can be is { secret = "<key>" } (write a value, or a secret reference)'
        )
    if not is_secret_key(key):
        raise ValueError(
            f"names the secret key {json.dumps(key, ensure_ascii=False)}, which the templates cannot read "
            "(use letters, digits and '_', not starting with a digit)"
        )
    return SecretRef(key)


def _setting_value(value: object) -> object:
    # One check with one message: a plain Union would report a failure per member.
    if isinstance(value, dict):
        return _secret_ref(value)
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        raise ValueError("is a list holding a table: a list item cannot be a secret (write the list's values)")

    def scalar(item: object) -> bool:
        return isinstance(item, (bool, int, float)) or (isinstance(item, str) and _text(item) is item)

    if scalar(value) or (isinstance(value, list) and all(scalar(item) for item in value)):
        numbers = value if isinstance(value, list) else [value]
        if any(isinstance(n, float) and not math.isfinite(n) for n in numbers):
            # inf and nan have no INI spelling Matomo reads back as a number
            raise ValueError("must be a finite number (config.ini.php has no inf or nan: write a number)")
        return value
    raise ValueError("must be a string, number, boolean, or a list of those (write one value, or a flat list)")


_SCALAR_SCHEMA = {"type": ["string", "number", "boolean"]}
_SECRET_SCHEMA = {
    "type": "object",
    "properties": {"secret": {"type": "string", "pattern": SECRET_KEY_PATTERN}},
    "required": ["secret"],
    "additionalProperties": False,
    "description": "A secret's key: the value is read from the secret store at run time (matomo-nomad secrets init).",
}


def _dumped(value: object) -> object:
    return {"secret": value.key} if isinstance(value, SecretRef) else value


SettingValue = Annotated[
    object,
    PlainValidator(_setting_value),
    PlainSerializer(_dumped),
    WithJsonSchema({"anyOf": [_SCALAR_SCHEMA, {"type": "array", "items": _SCALAR_SCHEMA}, _SECRET_SCHEMA]}),
]


def _env_value(value: object) -> object:
    if isinstance(value, dict):
        return _secret_ref(value)
    if isinstance(value, str) and _text(value) is value:
        return value
    raise ValueError('must be a string or { secret = "<key>" } (write the value in double quotes)')


EnvValue = Annotated[
    object,
    PlainValidator(_env_value),
    PlainSerializer(_dumped),
    WithJsonSchema({"anyOf": [{"type": "string"}, _SECRET_SCHEMA]}),
]
"""An environment variable's value: text, or a secret read at run time."""
def _unmanaged(settings: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    return _check_settings(settings)  # defined below, with the settings it protects


Settings = Annotated[dict[IniSection, dict[IniKey, SettingValue]], AfterValidator(_unmanaged)]
"""Extra config.ini.php settings by section; what matomo-nomad manages is refused."""


class _Model(BaseModel):
    # strict: a deployment file that says `force_ssl = 1` or `priority = "50"` has a
    # mistake in it, and guessing what was meant is how configuration drifts.
    # An empty list default is written `[]` (pydantic copies it for each model), not
    # `default_factory=list`: building the classes would parse list's signature per field.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _merge_with_defaults(cls, data: Any) -> Any:
        """A partial table changes only the keys it names: `[roles.ingestion.service]
        tags = [...]` keeps the ingestion's default health check. Each table given for a
        field whose default is a model is laid over that default, nested tables too."""
        if not isinstance(data, dict):
            return data
        merged = None
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if isinstance(field.default_factory, type) and issubclass(field.default_factory, BaseModel):
                continue  # the class's own defaults, which its own validation fills in
            if isinstance(data.get(key), dict) and (field.default_factory is not None or isinstance(field.default, BaseModel)):
                default = field.get_default(call_default_factory=True)
                if isinstance(default, BaseModel):
                    merged = merged if merged is not None else dict(data)
                    merged[key] = _overlay(data[key], default)
        return data if merged is None else merged


def _overlay(given: dict[str, Any], default: BaseModel) -> dict[str, Any]:
    """`given` over the fields `default` was built with, recursively for tables given over
    a default's own tables. Maps and lists are values: the given one replaces the default."""
    fields = type(default).model_fields
    merged = {fields[name].alias or name: getattr(default, name) for name in default.model_fields_set}
    for name, value in given.items():
        inner = merged.get(name)
        merged[name] = _overlay(value, inner) if isinstance(value, dict) and isinstance(inner, BaseModel) else value
    return merged


# --- the deployment's parts ----------------------------------------------------------


class MatomoSpec(_Model):
    version: Version = Field(
        "5.10.0",
        description="Matomo version baked into the image (official image tag without variant).",
    )
    image: ImageRef = Field(
        description="The image every role runs: the official matomo image plus the baked-in plugins "
        "and GeoIP database. Pin a tag or digest; 'latest' is refused.",
    )


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("is not an IP address or CIDR range (write it like 10.0.0.0/8)") from None
    return value


class Proxy(_Model):
    client_headers: list[_matching(r"^HTTP_[A-Z0-9_]+$", "is not a $_SERVER key (write it like HTTP_X_FORWARDED_FOR)")] = Field(
        default_factory=lambda: ["HTTP_X_FORWARDED_FOR"],
        description="[General] proxy_client_headers[]: the $_SERVER keys Matomo reads the client IP from.",
    )
    ips: list[Annotated[str, AfterValidator(_network)]] = Field(
        [],
        description="[General] proxy_ips[]: addresses or CIDR ranges of your own proxies, skipped "
        "when reading the client IP from a forwarded list.",
    )
    force_ssl: bool = Field(True, description="[General] force_ssl: redirect plain http to https.")
    assume_secure_protocol: bool = Field(
        False,
        description="[General] assume_secure_protocol: always assume https. Matomo then ignores the "
        "forwarded protocol headers entirely (core/Url.php), which is right only when every request "
        "reaches Matomo over https or through a proxy that terminates it.",
    )
    count: int = Field(
        1,
        ge=0,
        description="How many reverse proxies sit in front of Matomo (load balancer, ingress...). "
        "With more than one, `validate` asks for proxy.ips: Matomo 5 reads the last forwarded address.",
    )


class DatabaseTLS(_Model):
    enabled: bool = Field(False, description="[database] enable_ssl.")
    ca: Text | None = Field(None, description="[database] ssl_ca: CA file path inside the container.")
    cert: Text | None = Field(None, description="[database] ssl_cert: client certificate path.")
    key: Text | None = Field(None, description="[database] ssl_key: client key path.")
    verify: bool = Field(True, description="Verify the server certificate ([database] ssl_no_verify = !verify).")


class DatabaseReader(_Model):
    host: Host = Field(description="[database_reader] host: a read replica for archiving and Live queries.")
    port: Port = Field(3306, description="[database_reader] port.")
    user: Text | None = Field(
        None,
        description="[database_reader] username; unset means the primary's user and password.",
    )


class Database(_Model):
    host: Host = Field(description="[database] host.")
    port: Port = Field(3306, description="[database] port.")
    name: Text = Field("matomo", min_length=1, description="[database] dbname.")
    user: Text = Field("matomo", min_length=1, description="[database] username (Matomo counts as installed only when set).")
    table_prefix: Text = Field("matomo_", description="[database] tables_prefix.")
    adapter: Literal["PDO\\MYSQL", "MYSQLI"] = Field("PDO\\MYSQL", description="[database] adapter.")
    charset: _matching(r"^[a-z0-9_]+$", "is not a MySQL charset name (write it like utf8mb4)") = Field(
        "utf8mb4", description="[database] charset."
    )
    collation: _matching(r"^[a-z0-9_]+$", "is not a MySQL collation name (write it like utf8mb4_general_ci)") | None = Field(
        None,
        description="[database] collation, e.g. utf8mb4_general_ci. The web installer writes it; here the "
        "config is read-only, and the 5.1.2 and 5.2.0 migrations store it when it is empty, so the setup "
        "job stops and names the value to set when an update needs it.",
    )
    # `schema` would shadow BaseModel.schema(): the file's key is the alias.
    db_schema: Literal["Mysql", "Mariadb", "Tidb"] | None = Field(
        None,
        alias="schema",
        description="[database] schema: the server's SQL dialect, Mysql, Mariadb or Tidb (Matomo 5.1+ has the "
        "last two: core/Db/Schema/). Unset: not written, and Matomo uses global.ini.php's Mysql.",
    )
    tls: DatabaseTLS = Field(default_factory=DatabaseTLS, description="TLS to the database ([database] enable_ssl, ssl_*).")
    reader: DatabaseReader | None = Field(None, description="Optional read replica ([database_reader]).")


class RedisSentinel(_Model):
    master: Text = Field(min_length=1, description="QueuedTracking sentinelMasterName.")
    addresses: list[_matching(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$", "is not host:port (write it like sentinel-1:26379)")] = Field(
        min_length=1, description="Sentinel host:port pairs (QueuedTracking redisHost/redisPort lists)."
    )


class Redis(_Model):
    host: Host | None = Field(None, description="QueuedTracking redisHost (unset when sentinel is used).")
    port: Port = Field(6379, description="QueuedTracking redisPort.")
    database: int = Field(0, ge=0, le=255, description="QueuedTracking redisDatabase.")
    timeout: float = Field(0.0, ge=0, description="QueuedTracking redisTimeout in seconds (0 = none).")
    password: bool = Field(
        False, description="Redis requires a password: read it from the secret key secrets.redis_password_key."
    )
    sentinel: RedisSentinel | None = Field(None, description="Use Redis Sentinel instead of host/port.")
    maxmemory_policy: Literal[
        "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
        "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
    ] | None = Field(
        None,
        description="The maxmemory-policy this Redis runs with, if you know it (e.g. a Redis shared with "
        "other applications): `validate` warns unless it is noeviction, with which a full Redis refuses "
        "new requests instead of dropping queued ones. `status --redis` reads the live value.",
    )

    @model_validator(mode="after")
    def _one_address(self) -> "Redis":
        if self.host is not None and self.sentinel is not None:
            raise ValueError("@sentinel: cannot be used together with host (remove host or sentinel)")
        if self.host is None and self.sentinel is None:
            raise ValueError("@host: is required unless sentinel is set (set host, or a sentinel table)")
        return self


class RedisCache(_Model):
    host: Host = Field(description="[RedisCache] host: Matomo's cache backend (optional).")
    port: Port = Field(6379, description="[RedisCache] port.")
    database: int = Field(1, ge=0, le=255, description="[RedisCache] database: must differ from redis.database.")
    timeout: float = Field(0.0, ge=0, description="[RedisCache] timeout in seconds.")
    password: bool = Field(False, description="Read a password from secrets.redis_cache_password_key.")


class Plugin(_Model):
    name: _matching(r"^[A-Za-z][A-Za-z0-9]{0,59}$", "is not a Matomo plugin name (write it like QueuedTracking)") = Field(
        description="The plugin's name as the marketplace spells it, e.g. QueuedTracking."
    )
    version: Version = Field(description="The plugin's own release (not Matomo's version).")
    sha256: _matching(r"^[a-f0-9]{64}$", "is not a SHA-256 sum (write its 64 hex digits in lowercase)") | None = Field(
        None, description="SHA-256 of the marketplace zip, checked when the image is built."
    )


def _default_plugins() -> list[Plugin]:
    # Releases checked in the plugins' CHANGELOG.md / plugin.json (matomo-org).
    return [Plugin(name="QueuedTracking", version="5.2.0"), Plugin(name="SecurityInfo", version="5.0.0")]


# --- the image (`matomo-nomad image`) ------------------------------------------------

# URLs end up in a shell script (quoted there too): a character set without quotes,
# `$`, backticks, `;`, spaces or control characters keeps them harmless even to a
# careless copy, and catches pasting mistakes. `&`, `?` and `=` stay: query strings.
_URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/%+=&?,@:-]*)?$"
DownloadUrl = _matching(
    _URL_PATTERN,
    "must be an http(s) URL of letters, digits and - . _ ~ / % + = & ? , @ : only "
    "(no quotes, spaces, $, `, ; or other shell characters)",
)
Sha256 = _matching(r"^[a-f0-9]{64}$", "is not a SHA-256 sum (write its 64 hex digits in lowercase)")


class GeoIP(_Model):
    url: DownloadUrl = Field(
        description="Download URL of the gzip-compressed .mmdb, e.g. DB-IP's free city database "
        "https://download.db-ip.com/free/dbip-city-lite-YYYY-MM.mmdb.gz (CC BY 4.0: credit DB-IP).",
    )
    sha256: Sha256 | None = Field(
        None,
        description="SHA-256 of the downloaded .mmdb.gz, checked before anything is unpacked. "
        "Strongly recommended: without it the build says so loudly and prints the sum to pin.",
    )
    file: _matching(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,90}\.mmdb$", "is not a .mmdb file name (write it like DBIP-City.mmdb)"
    ) = Field(
        "DBIP-City.mmdb",
        description="File name in Matomo's misc/ directory. Matomo only looks for names it knows: "
        "DBIP-City.mmdb is the one for a DB-IP city database.",
    )


def _variant(value: str) -> str:
    if value.startswith("fpm"):
        raise ValueError(
            "is an fpm variant, which runs php-fpm without a web server, but admin and ingestion "
            "run the image's apache2-foreground (use 'apache')"
        )
    if value != "apache":
        raise ValueError("is not a variant of the official matomo image that can serve Matomo (use 'apache')")
    return value


class ImageBuild(_Model):
    variant: Annotated[str, AfterValidator(_variant), WithJsonSchema({"type": "string", "enum": ["apache"]})] = Field(
        "apache",
        description="Variant of the official image to build FROM (matomo:<matomo.version>-<variant>). "
        "Only 'apache' serves Matomo itself; the fpm variants are refused.",
    )
    geoip: GeoIP | None = Field(
        None,
        description="GeoIP database baked into misc/. Matomo uses it once the 'DBIP / GeoIP 2 (Php)' "
        "location provider is selected (System > Geolocation, stored in the database, once per "
        "installation); until then, and without a database, it guesses a visitor's country from the "
        "browser language.",
    )


_VAR_PATH_RE = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")


class Secrets(_Model):
    provider: Literal["nomad", "vault"] = Field(
        "nomad", description="Where the templates read secrets at run time: Nomad Variables or Vault KV v2."
    )
    path: str | None = Field(
        None,
        description="Nomad: a Variables path (default: each job's own nomad/jobs/<job id>; "
        "'nomad/jobs' is readable by every job in the namespace). Vault: the KV v2 read path, "
        "e.g. 'kv/data/matomo' (required).",
    )
    vault_role: _matching(r"^[A-Za-z0-9_.-]{1,128}$", "is not a Vault role name (use letters, digits, _ . -)") | None = Field(
        None, description="Vault workload-identity role for the jobs' vault block (Nomad 1.7+)."
    )
    vault_policies: list[
        _matching(r"^[A-Za-z0-9_.-]{1,128}$", "is not a Vault policy name (use letters, digits, _ . -)")
    ] = Field(
        [],
        description="Vault policies for the legacy token workflow (vault { policies = [...] }): what Nomad "
        "1.6 needs, still read by 1.7 to 1.9 for jobs without a role, ignored from 1.10.",
    )
    salt_key: IniKey = Field("salt", description="Key holding [General] salt (32 hex chars, never changes).")
    database_password_key: IniKey = Field("database_password", description="Key holding [database] password.")
    database_reader_password_key: IniKey = Field(
        "database_reader_password", description="Key holding [database_reader] password (when reader.user is set)."
    )
    redis_password_key: IniKey = Field("redis_password", description="Key holding QueuedTracking redisPassword.")
    redis_cache_password_key: IniKey = Field("redis_cache_password", description="Key holding [RedisCache] password.")
    superuser_password_key: IniKey = Field(
        "superuser_password",
        description="Key holding the first superuser's password, read by the setup job only (when [install] is set).",
    )

    @model_validator(mode="after")
    def _path_fits_provider(self) -> "Secrets":
        if self.provider == "nomad":
            if self.vault_role is not None:
                raise ValueError("@vault_role: is only for provider = 'vault' (remove it, or set provider = 'vault')")
            if self.vault_policies:
                raise ValueError("@vault_policies: is only for provider = 'vault' (remove it, or set provider = 'vault')")
            if self.path is not None:
                if not _VAR_PATH_RE.match(self.path):
                    raise ValueError("@path: is not a Nomad Variables path (use 1-128 of a-z A-Z 0-9 - _ ~ /)")
                if self.path.startswith("nomad/") and not self.path.startswith("nomad/jobs"):
                    raise ValueError(
                        "@path: is under Nomad's reserved nomad/ prefix, where only nomad/jobs... is allowed "
                        "(use nomad/jobs or a path outside nomad/)"
                    )
        else:
            if not self.path or "/data/" not in f"/{self.path}" or not re.match(r"^[A-Za-z0-9_./-]+$", self.path):
                raise ValueError(
                    "@path: is not a Vault KV v2 read path (write it with /data/, like 'kv/data/matomo')"
                )
        return self


# --- roles ---------------------------------------------------------------------------


class Role(str, Enum):
    """The jobs of a deployment: the four roles of the write-up, the one-shot setup job
    that brings the database to what the image needs, and the optional monitoring job
    (Redis exporter). Values are the keys under [roles], except monitoring's, which is
    [monitoring.exporter] and runs another image."""

    admin = "admin"
    ingestion = "ingestion"
    queue_processor = "queue_processor"
    archiver = "archiver"
    setup = "setup"
    monitoring = "monitoring"

    @property
    def slug(self) -> str:
        """The role as it appears in job ids and service names."""
        return self.value.replace("_", "-")


MATOMO_ROLES = tuple(role for role in Role if role is not Role.monitoring)
"""The jobs that run the Matomo image, each with its table under [roles]."""


class Constraint(_Model):
    """A Nomad `constraint` block on the role's group."""

    attribute: Text = Field(
        "",
        description="What the constraint examines, e.g. ${attr.kernel.name} or ${meta.tier}. Required, "
        "except with distinct_hosts, which takes none.",
    )
    operator: Literal[
        "=", "!=", ">", ">=", "<", "<=", "distinct_hosts", "distinct_property",
        "regexp", "set_contains", "set_contains_any", "version", "semver", "is_set", "is_not_set",
    ] = Field("=", description="Nomad's comparison operator.")
    value: Text = Field(
        "",
        description="What the attribute is compared with. For distinct_hosts: empty or \"true\" (every "
        "allocation of the role on its own client), or \"false\".",
    )

    @model_validator(mode="after")
    def _attribute_fits_operator(self) -> "Constraint":
        # Nomad's Constraint.Validate: every operator but distinct_hosts needs an LTarget;
        # distinct_hosts reads only its value, as a boolean, empty meaning true.
        if self.operator == "distinct_hosts":
            if self.attribute:
                raise ValueError("@attribute: distinct_hosts takes no attribute (remove it)")
            if self.value not in ("", "true", "false"):
                raise ValueError("@value: distinct_hosts takes \"true\" or \"false\" (or no value, meaning true)")
        elif not self.attribute:
            raise ValueError(f"@attribute: is required with operator {self.operator!r} (name what to compare, e.g. ${{meta.tier}})")
        return self


class Update(_Model):
    max_parallel: int = Field(1, ge=0, description="Allocations updated at once (0 disables deployments).")
    min_healthy_time: Duration = Field(
        "10s", description="How long an allocation must stay healthy before it counts as healthy."
    )
    healthy_deadline: Duration = Field(
        "5m", description="How long an allocation may take to become healthy before it counts as failed."
    )
    progress_deadline: Duration = Field(
        "10m", description="How long a deployment may go without an allocation turning healthy before it fails."
    )
    auto_revert: bool = Field(True, description="Go back to the last stable job version when a deployment fails.")
    canary: int = Field(0, ge=0, description="Canary allocations placed first, next to the old ones (0: none).")
    auto_promote: bool = Field(False, description="Promote the canaries once they are all healthy (needs canary > 0).")

    @model_validator(mode="after")
    def _deadlines(self) -> "Update":
        if nanoseconds(self.progress_deadline) <= nanoseconds(self.healthy_deadline):
            raise ValueError(
                "@progress_deadline: must be longer than healthy_deadline, or Nomad refuses the job "
                "(raise progress_deadline)"
            )
        if self.auto_promote and not self.canary:
            raise ValueError("@auto_promote: needs canary > 0 (set canary or turn auto_promote off)")
        return self


class Restart(_Model):
    attempts: int = Field(3, ge=0, description="Restarts allowed within interval (0: none).")
    interval: Duration = Field("30m", description="The window the attempts are counted in.")
    delay: Duration = Field("15s", description="Wait before each restart.")
    mode: Literal["fail", "delay"] = Field(
        "fail",
        description="When the attempts are used up: 'fail' the allocation (Nomad may reschedule it), or "
        "'delay' until the interval is over and try again.",
    )


HeaderName = _matching(r"^[A-Za-z0-9-]{1,128}$", "is not an HTTP header name (use letters, digits and -)")


class HealthCheck(_Model):
    path: Text = Field(description="HTTP path the check requests.")
    interval: Duration = Field("10s", description="Time between checks (at least 1s).")
    timeout: Duration = Field("3s", description="How long one check may take (at least 1s).")
    headers: dict[HeaderName, list[Text]] = Field(
        default_factory=lambda: {"X-Forwarded-Proto": ["https"]},
        description="Request headers. X-Forwarded-Proto: https keeps force_ssl from redirecting the check.",
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with / (write it like /matomo.php)")
        return value

    @field_validator("interval", "timeout")
    @classmethod
    def _at_least_a_second(cls, value: str) -> str:
        if nanoseconds(value) < 10**9:
            raise ValueError("is shorter than 1s, Nomad's minimum for checks (use 1s or more)")
        return value


ServiceName = _matching(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    "is not an RFC 1123 service name (use up to 63 lowercase letters, digits and -, not at either end)",
)


class Service(_Model):
    enabled: bool = Field(True, description="Register the service (false: no service block, and no check).")
    name: ServiceName | None = Field(None, description="The service's name; unset: <deployment name>-<role>.")
    tags: list[Text] = Field([], description="Service tags, e.g. for a load balancer such as Traefik or Fabio.")
    provider: Literal["consul", "nomad"] = Field(
        "nomad", description="'nomad' needs no Consul; 'consul' registers in Consul's catalog."
    )
    check: HealthCheck | None = Field(
        None,
        description="The service's HTTP health check; a table changes only the keys it names. "
        "false: no check (deployments then wait for the tasks to run, not to answer).",
        json_schema_extra=lambda schema: schema["anyOf"].insert(1, {"const": False}),
    )

    @field_validator("check", mode="before")
    @classmethod
    def _check_false(cls, value: Any) -> Any:
        # TOML has no null: `check = false` is how a file says "no health check".
        if value is False:
            return None
        if value is True:
            raise ValueError(
                "true is not a health check (leave check out to keep the role's default check, write a "
                "table with path = \"/...\" for your own, or check = false for none)"
            )
        return value


class _RoleBase(_Model):
    cpu: int = Field(500, ge=1, description="CPU in MHz.")
    memory: int = Field(512, ge=10, description="Memory in MB.")
    memory_max: int | None = Field(None, description="Memory oversubscription limit in MB (>= memory).")
    constraints: list[Constraint] = Field(
        [],
        description="Nomad constraint blocks on the role's group: where its allocations may run, e.g. "
        "{ attribute = \"${meta.tier}\", value = \"web\" } or { operator = \"distinct_hosts\" }.",
    )
    restart: Restart = Field(
        default_factory=Restart, description="Nomad restart block: how a failed task is restarted in place."
    )
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Extra environment variables. A value { secret = \"<key>\" } is read from the secret "
        "store at run time (a template with env = true), exactly as stored; credentials must be written so.",
    )
    settings: Settings = Field(
        default_factory=dict,
        description="Extra config.ini.php settings for this role only, by section; they win over "
        "the deployment-wide settings.",
    )

    @field_validator("env")
    @classmethod
    def _no_literal_credentials(cls, env: dict[str, object]) -> dict[str, object]:
        return _refuse_literal_credentials(env)

    @model_validator(mode="after")
    def _memory_max(self) -> "_RoleBase":
        return _refuse_memory_below(self)


def _literal_credentials(env: dict[str, object]) -> list[str]:
    return [
        f"@{name}: is a credential written as plain text ({literal_fix(name.lower())})"
        for name, value in env.items()
        if not isinstance(value, SecretRef) and value != "" and is_credential(name)
    ]


def _refuse_literal_credentials(env: dict[str, object], *more: str) -> dict[str, object]:
    errors = _literal_credentials(env) + list(more)
    if errors:
        raise ValueError("\n".join(errors))
    return env


def _refuse_memory_below(spec: Any) -> Any:
    if spec.memory_max is not None and spec.memory_max < spec.memory:
        raise ValueError("@memory_max: is below memory (raise memory_max or leave it unset)")
    return spec


class _ServiceRoleBase(_RoleBase):
    count: int = Field(1, ge=0, le=1000, description="Allocations of the role.")
    update: Update = Field(
        default_factory=Update,
        description="Nomad update block: how a new job version rolls out. Its health_check mode follows the "
        "service: 'checks' with a health check, 'task_states' without.",
    )


def _check(path: str) -> HealthCheck:
    return HealthCheck(path=path)


class AdminRole(_ServiceRoleBase):
    service: Service = Field(
        default_factory=lambda: Service(check=_check("/index.php?module=Login")),
        description="Defaults to a check of the login page with X-Forwarded-Proto: https.",
    )


class IngestionRole(_ServiceRoleBase):
    count: int = Field(2, ge=0, le=1000, description="Allocations of the role: two, so tracking survives one node.")
    service: Service = Field(
        default_factory=lambda: Service(check=_check("/matomo.php")),
        description="Defaults to a check of matomo.php with X-Forwarded-Proto: https.",
    )


class QueueProcessorRole(_ServiceRoleBase):
    count: int = Field(
        1,
        ge=1,
        le=4096,
        description="Processor allocations. Independent of queues: with as many processors as queues "
        "each works its own queue, otherwise every processor works every queue.",
    )
    queues: int = Field(
        1,
        ge=1,
        le=4096,
        description="QueuedTracking numQueueWorkers: how many Redis queues tracking requests are spread "
        "over (a request goes to queue visitorId mod queues). 1 is the plugin's own default; raise it "
        "with the processor count. Lowering it is refused by plan and run: the requests waiting in the "
        "removed queues would never be processed.",
    )
    cpu: int = Field(250, ge=1, description="CPU in MHz.")
    sleep: Duration = Field(
        "5s",
        description="Pause between processing rounds (whole seconds, at least 1): queuedtracking:process "
        "--sleep from QueuedTracking 5.1, the shell loop's sleep before.",
    )
    pin_queues: bool = Field(
        True,
        description="When processors equal queues, run each allocation on its own queue "
        "(--queue-id from NOMAD_ALLOC_INDEX). Never pinned otherwise, so every queue is worked.",
    )
    requests_per_batch: int = Field(25, ge=1, description="QueuedTracking numRequestsToProcess.")
    max_consecutive_failures: int = Field(
        10,
        ge=1,
        description="QueuedTracking 5.0 only (the shell loop): exit, so Nomad restarts the task, after "
        "this many failed runs in a row. From 5.1 the command loops itself and exits on its first failure.",
    )


class Schedule(_Model):
    cron: str = Field(
        "5 * * * *",
        description="5-field cron (minute hour day month weekday); Matomo advises hourly.",
    )
    time_zone: str = Field("UTC", description="IANA time zone of the cron expression.")
    prohibit_overlap: bool = Field(True, description="Never start a run while the previous one is running.")

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if value in {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}:
            return value
        fields = value.split()
        if len(fields) == 6:
            raise ValueError(
                "has 6 fields, and Nomad reads a 6-field expression as starting with SECONDS "
                "(write 5 fields: minute hour day month weekday)"
            )
        if len(fields) != 5 or not all(re.match(r"^[0-9A-Za-z*/,?LW#-]+$", f) for f in fields):
            raise ValueError("is not a 5-field cron expression (write it like '5 * * * *': minute hour day month weekday)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _iana_zone(value)


def _iana_zone(value: str) -> str:
    if value == "UTC":
        return value
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not an IANA time zone (write it like Europe/Berlin, or UTC)") from None
    return value


class ArchiveOptions(_Model):
    concurrent_requests_per_website: int | None = Field(
        None, ge=1, description="core:archive --concurrent-requests-per-website (unset: Matomo's own, 3)."
    )
    concurrent_archivers: int | None = Field(
        None, ge=1, description="core:archive --concurrent-archivers: archivers allowed to run at once (unset: no limit)."
    )
    force_idsites: list[Annotated[int, Field(ge=1)]] = Field(
        [], description="core:archive --force-idsites: archive only these site ids (empty: all)."
    )
    skip_all_segments: bool = Field(False, description="core:archive --skip-all-segments.")
    disable_scheduled_tasks: bool = Field(
        False, description="core:archive --disable-scheduled-tasks: do not run Matomo's scheduled tasks."
    )
    max_websites_to_process: int | None = Field(
        None, ge=1, description="core:archive --max-websites-to-process (Matomo 5+)."
    )
    max_archives_to_process: int | None = Field(
        None, ge=1, description="core:archive --max-archives-to-process (Matomo 5+)."
    )
    extra_args: list[Text] = Field([], description="More core:archive arguments, passed as given.")

    @field_validator("extra_args")
    @classmethod
    def _no_url(cls, value: list[str]) -> list[str]:
        for arg in value:
            if arg.startswith("--url"):
                raise ValueError("must not set --url (it comes from the first entry of hosts)")
        return value


def _no_restart() -> Restart:
    return Restart(attempts=0)


class ArchiverRole(_RoleBase):
    memory: int = Field(1024, ge=10, description="Memory in MB (core:archive is the hungriest role).")
    restart: Restart = Field(
        default_factory=_no_restart,
        description="Defaults to no restart: core:archive exits 1 whenever it logged a warning (Matomo "
        "core/Console.php), not only when it failed, and a restart reruns the whole archive; the next "
        "scheduled launch is the retry.",
    )
    schedule: Schedule = Field(default_factory=Schedule, description="When the periodic job launches core:archive.")
    archive: ArchiveOptions = Field(default_factory=ArchiveOptions, description="core:archive's options.")
    kill_timeout: Duration = Field(
        "2m", description="Grace period before a stopped run is killed (clients cap it at max_kill_timeout)."
    )
    sites: int | None = Field(
        None, ge=1, description="How many sites Matomo tracks; `validate` checks the archiver's memory against it."
    )


class SetupRole(_RoleBase):
    """The one-shot setup job: installs an empty database, installs new plugins, runs the updater."""

    memory: int = Field(1024, ge=10, description="Memory in MB (migrations of large tables need it).")
    restart: Restart = Field(
        default_factory=_no_restart,
        description="Defaults to no restart: `run` reports a failed setup with its task events and "
        "registers nothing else; running it again is a new attempt.",
    )
    kill_timeout: Duration = Field(
        "5m", description="Grace period before a stopped setup is killed: a migration should finish."
    )


class Roles(_Model):
    admin: AdminRole = Field(default_factory=AdminRole, description="The UI and API (job <name>-admin).")
    ingestion: IngestionRole = Field(
        default_factory=IngestionRole, description="Tracking only, in maintenance mode (job <name>-ingestion)."
    )
    queue_processor: QueueProcessorRole = Field(
        default_factory=QueueProcessorRole,
        description="Replays QueuedTracking's Redis queues into the database (job <name>-queue-processor).",
    )
    archiver: ArchiverRole = Field(
        default_factory=ArchiverRole, description="core:archive on a schedule (periodic job <name>-archiver)."
    )
    setup: SetupRole = Field(
        default_factory=SetupRole,
        description="The one-shot job that installs or updates the database before the others (<name>-setup).",
    )


_LOGIN = r"^[A-Za-z0-9_.@-]{2,100}$"


class Install(_Model):
    """What the setup job creates in an empty database: the first superuser and website.

    Without this table, a setup job that finds an empty database stops and names it."""

    superuser_login: _matching(_LOGIN, "is not a Matomo login (use 2-100 letters, digits, _ . @ or -)") = Field(
        description="Login of the first superuser; the password is the secret secrets.superuser_password_key."
    )
    superuser_email: _matching(
        r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$", "is not an email address (write it like admin@example.com)"
    ) = Field(description="Email address of the first superuser.")
    site_name: Text | None = Field(None, min_length=1, description="Name of the first website. Default: the first host.")
    site_url: _matching(
        r"^https?://[^\s\x00-\x1f]+$", "is not an http(s) URL (write it like https://www.example.com)"
    ) | None = Field(None, description="URL of the first website. Default: https://<first host>.")
    timezone: str = Field("UTC", description="Time zone of the first website (IANA name or UTC).")
    currency: _matching(r"^[A-Z]{3}$", "is not an ISO 4217 currency code (write three capitals, like EUR)") = Field(
        "USD", description="Currency of the first website."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _iana_zone(value)


# Settings the deployment file describes elsewhere: allowing them in free-form settings
# would give two sources of truth, or undo what the architecture relies on.
_MANAGED_SETTINGS: dict[str, dict[str, str]] = {
    "General": {
        "salt": "comes from the secret secrets.salt_key",
        "trusted_hosts": "set hosts",
        "proxy_client_headers": "set proxy.client_headers",
        "proxy_ips": "set proxy.ips",
        "force_ssl": "set proxy.force_ssl",
        "enable_auto_update": "kept at 0 so nodes never update themselves",
        "multi_server_environment": "kept at 1 so the UI never writes config or installs plugins",
        "browser_archiving_disabled_enforce": "kept at 1: only the archiver archives",
        "enable_browser_archiving_triggering": "kept at 0: only the archiver archives",
        "enable_general_settings_admin": "kept at 0 so the UI cannot turn browser archiving back on",
        "enable_plugins_admin": "kept at 0: plugins are baked into the image, and (de)activating one from "
        "the UI would write the read-only config",
        "assume_secure_protocol": "set proxy.assume_secure_protocol",
        "maintenance_mode": "matomo-nomad sets it on ingestion only; core:archive refuses to run in maintenance mode",
    },
}
_MANAGED_SECTIONS: dict[str, str] = {
    "database": "set [database] in the database table",
    "database_reader": "set database.reader",
    "QueuedTracking": "set the redis table and roles.queue_processor",
    "RedisCache": "set the redis_cache table",
    "Plugins": "the image's common.config.ini.php holds the complete list, generated at build time; a list "
    "here would replace it, and a partial one disables Login",
    "PluginsInstalled": "the image's common.config.ini.php holds the complete list, generated at build time",
}


def _check_settings(settings: Settings) -> Settings:
    """Refuse what the deployment file says elsewhere; lines name `@section.key`."""
    errors: list[str] = []
    for section, values in settings.items():
        if section in _MANAGED_SECTIONS:
            errors.append(f"@{section}: cannot be set here ({_MANAGED_SECTIONS[section]})")
            continue
        if section == "Cache" and "backend" in values:
            errors.append("@Cache.backend: cannot be set here (set the redis_cache table)")
        for key, value in values.items():
            reason = _MANAGED_SETTINGS.get(section, {}).get(key)
            if reason:
                errors.append(f"@{section}.{key}: cannot be set here ({reason})")
            elif isinstance(value, list) and not value:
                errors.append(
                    f"@{section}.{key}: an empty list cannot be written to config.ini.php "
                    "(remove the key: Matomo keeps global.ini.php's default)"
                )
            elif not isinstance(value, SecretRef) and value != "" and is_credential(key):
                # The deployment file and the jobs would carry it in clear (_credentials).
                suggestion = derived_key(section, key, set())
                errors.append(f"@{section}.{key}: is a credential written as plain text ({literal_fix(suggestion)})")
    if errors:
        raise ValueError("\n".join(errors))
    return settings


class ExporterJob(_Model):
    """The monitoring job: Prometheus' Redis exporter (oliver006/redis_exporter), set to
    export the queue lists' sizes and a count of each queue's lock key, for the rules
    `matomo-nomad alerts` writes."""

    image: ImageRef = Field(
        # A release tag of oliver006/redis_exporter (v1.88.0, 2026-07); its main.go has
        # every flag the job passes (matomo_nomad/_exporter.py).
        "oliver006/redis_exporter:v1.88.0",
        description="The redis_exporter image, pinned (tag or digest; 'latest' is refused); v1.83.0 or later.",
    )
    redis_host: Host | None = Field(
        None,
        description="The Redis node the exporter reads; unset: redis.host. Required with redis.sentinel "
        "(the exporter cannot ask a sentinel for the master): any node of the set will do, replicas hold "
        "the same queue lists and locks.",
    )
    redis_port: Port | None = Field(None, description="Its port; unset: redis.port.")
    cpu: int = Field(100, ge=1, description="CPU in MHz.")
    memory: int = Field(64, ge=10, description="Memory in MB.")
    memory_max: int | None = Field(None, description="Memory oversubscription limit in MB (>= memory).")
    constraints: list[Constraint] = Field([], description="Nomad constraint blocks on the exporter's group.")
    restart: Restart = Field(default_factory=lambda: Restart(mode="delay"), description="Nomad restart block.")
    update: Update = Field(default_factory=Update, description="Nomad update block.")
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Extra environment variables for the exporter (REDIS_EXPORTER_*); { secret = \"<key>\" } "
        "reads one from the secret store. REDIS_PASSWORD is set from secrets.redis_password_key when "
        "redis.password is true.",
    )
    service: Service = Field(
        default_factory=lambda: Service(tags=["metrics"], check=HealthCheck(path="/health", headers={})),
        description="The service Prometheus discovers the exporter by (nomad_sd_configs or consul_sd_configs); "
        "unnamed: <deployment name>-redis-exporter. Its default check is the exporter's /health.",
    )

    @field_validator("env")
    @classmethod
    def _no_literal_credentials(cls, env: dict[str, object]) -> dict[str, object]:
        taken = ["@REDIS_PASSWORD: is the job's own, set from secrets.redis_password_key when redis.password = true (remove it)"] if "REDIS_PASSWORD" in env else []
        return _refuse_literal_credentials(env, *taken)

    @field_validator("image")
    @classmethod
    def _new_enough(cls, image: str) -> str:
        from ._exporter import HARDENING_SINCE

        tag = re.search(r":v?([0-9]+)\.([0-9]+)\.([0-9]+)[^:/@]*$", image.split("@")[0])
        if tag is not None and tuple(map(int, tag.groups())) < HARDENING_SINCE:
            raise ValueError(
                "predates redis_exporter v1.83.0: the job passes --disable-scrape-endpoint, without which anyone "
                "reaching the port can make the exporter send the Redis password to another host "
                "(use v1.83.0 or later, e.g. oliver006/redis_exporter:v1.88.0)"
            )
        return image

    @model_validator(mode="after")
    def _memory_max(self) -> "ExporterJob":
        return _refuse_memory_below(self)


class Monitoring(_Model):
    """Thresholds of the queue checks (`status --redis`) and of the alerting rules (`alerts`),
    and the optional monitoring job."""

    exporter: ExporterJob | None = Field(
        None,
        description="Run Prometheus' Redis exporter as the job <name>-monitoring, registered as a service "
        "for scraping ([monitoring.exporter], even empty, turns it on). The series the alerting rules read.",
    )

    max_request_age: Duration = Field(
        "10m", description="status --redis warns when a queue's oldest waiting request is older than this."
    )
    unworked_for: Duration = Field(
        "5m",
        description="Alert when a queue holds at least requests_per_batch requests and no processor has "
        "held its lock (QueuedTrackingLock<id>) for this long.",
    )
    backlog_growing_for: Duration = Field(
        "15m", description="Alert when the total backlog has grown, and is above one batch, for this long."
    )
    queue_behind_factor: float = Field(
        10.0,
        ge=2,
        description="Alert when one queue's backlog is above this many times the other queues' average and "
        "above one batch: visitors hashing to it (e.g. all-zero visitor ids, queue 0) wait alone.",
    )
    redis_memory_ratio: float = Field(
        0.8, gt=0, le=1, description="Warn (status --redis) and alert when Redis uses this share of maxmemory."
    )
    restarts: int = Field(3, ge=1, description="Alert when a role's allocations restart more than this often in an hour.")
    prometheus_selector: str = Field(
        "",
        description='Extra PromQL label matchers for the Redis series in the alerting rules, e.g. '
        'instance="queue-exporter:9121", when one Prometheus watches several Redis instances.',
    )

    @field_validator("prometheus_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        from ._alerts import valid_selector

        if not valid_selector(value):
            raise ValueError('is not a list of PromQL label matchers (write it like job="redis", instance=~"q.*")')
        return value


class Deployment(_Model):
    """One Matomo deployment: four Nomad jobs sharing one image, database and Redis."""

    name: DnsLabel = Field(
        description="Deployment name: job ids are <name>-admin, <name>-ingestion, "
        "<name>-queue-processor, <name>-archiver and <name>-setup.",
    )
    datacenters: list[NomadName] = Field(
        default_factory=lambda: ["*"], min_length=1, description="Nomad datacenters the jobs may run in ('*': any)."
    )
    region: NomadName = Field(
        "global",
        description="Nomad region of the jobs. Written here it wins over NOMAD_REGION; the --region flag wins over both.",
    )
    namespace: NomadName = Field(
        "default",
        description="Nomad namespace of the jobs. Written here it wins over NOMAD_NAMESPACE; the --namespace flag "
        "wins over both.",
    )
    node_pool: NomadName = Field("default", description="Nomad node pool (Nomad 1.6+).")
    priority: int = Field(50, ge=1, le=100, description="Nomad job priority, 1-100.")
    nomad_version: Version = Field(
        "1.6.0",
        description="The oldest Nomad version the jobs must run on; `validate` refuses features it lacks "
        "(node pools need 1.6, Vault workload identity 1.7).",
    )
    matomo: MatomoSpec = Field(description="The Matomo version and the image every role runs.")
    hosts: list[PublicHost] = Field(
        min_length=1,
        description="Public host names: [General] trusted_hosts[]; the first is the archiver's --url.",
    )
    proxy: Proxy = Field(
        default_factory=Proxy, description="The reverse proxies in front of Matomo: [General] proxy_* and force_ssl."
    )
    database: Database = Field(description="Matomo's MySQL/MariaDB database ([database]).")
    redis: Redis = Field(description="QueuedTracking's Redis, where tracking requests wait ([QueuedTracking]).")
    redis_cache: RedisCache | None = Field(None, description="Optional Redis cache backend for Matomo.")
    plugins: list[Plugin] = Field(
        default_factory=_default_plugins,
        description="Plugins baked into the image, with their own versions. QueuedTracking is required.",
    )
    secrets: Secrets = Field(
        default_factory=Secrets, description="Where the jobs read the salt and passwords at run time, and under which keys."
    )
    install: Install | None = Field(
        None,
        description="The first superuser and website, created by the setup job in an empty database "
        "(Matomo's web installer is never used: the config is read-only).",
    )
    settings: Settings = Field(
        default_factory=dict,
        description="Extra config.ini.php settings for every role, by section, e.g. "
        "[settings.General] login_allow_logme = 0.",
    )
    roles: Roles = Field(
        default_factory=Roles, description="Each job's resources, count and settings; a table changes only the keys it names."
    )
    image: ImageBuild = Field(
        default_factory=ImageBuild,
        description="How `matomo-nomad image` builds matomo.image: the official image's variant and "
        "the GeoIP database (the plugins are the plugins list).",
    )
    monitoring: Monitoring = Field(
        default_factory=Monitoring,
        description="Thresholds of `status --redis` and of the Prometheus alerting rules `matomo-nomad alerts` writes.",
    )

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, plugins: list[Plugin]) -> list[Plugin]:
        names = [p.name for p in plugins]
        errors = [f"@[{i}].name: lists {n} a second time (keep one entry per plugin)" for i, n in enumerate(names) if n in names[:i]]
        if "QueuedTracking" not in names:
            errors.append("@: QueuedTracking is missing (add it: the ingestion and queue processor roles need it)")
        if errors:
            raise ValueError("\n".join(errors))
        return plugins

    @model_validator(mode="after")
    def _whole(self) -> "Deployment":
        # Checks across sections; they run once every field is valid on its own.
        errors: list[str] = []
        if self.redis_cache is not None and self.redis.sentinel is None and (
            self.redis_cache.host, self.redis_cache.port, self.redis_cache.database
        ) == (self.redis.host, self.redis.port, self.redis.database):
            errors.append(
                "redis_cache.database: the cache would share the QueuedTracking queue's Redis database "
                "(pick another database number)"
            )
        exporter = self.monitoring.exporter
        if exporter is not None and self.redis.sentinel is not None and exporter.redis_host is None:
            errors.append(
                "monitoring.exporter.redis_host: is required with redis.sentinel, since redis_exporter cannot ask a "
                "sentinel for the master (name one node of the set: replicas hold the same queue lists and locks)"
            )
        queues = self.roles.queue_processor.queues
        if queues > 16 and _version_tuple(self.queued_tracking.version) < (5, 1):
            # Config values skip the settings' validators (reference/matomo.md), so the plugin
            # would not refuse it: this is the only place the 1-16 range of QueuedTracking 5.0.7
            # (SystemSettings.php 199, NumberRange(1, 16)) is enforced.
            errors.append(
                f"roles.queue_processor.queues: {queues} queues, but QueuedTracking "
                f"{self.queued_tracking.version} allows at most 16 (use 16 or fewer, or QueuedTracking 5.1.0 "
                "or later, which allows 4096)"
            )
        if errors:
            raise ValueError("\n".join(errors))
        return self

    @model_validator(mode="after")
    def _secret_references(self) -> "Deployment":
        # A { secret = "..." } naming a key matomo-nomad manages would read (or make
        # `secrets init` write) the salt or a password meant for something else.
        managed = {
            getattr(self.secrets, name): name
            for name in type(self.secrets).model_fields
            if name.endswith("_key") and isinstance(getattr(self.secrets, name), str)
        }
        errors: list[str] = []
        for where, value in self.secret_references():
            if value.key in managed:
                section, key = where.split(".")[-2:]
                other = derived_key("" if section == "env" else section, key, set(managed))
                errors.append(
                    f"{where}: names the secret key {json.dumps(value.key)}, which is secrets.{managed[value.key]} "
                    f"(name a key of its own, e.g. {{ secret = {json.dumps(other)} }})"
                )
        if self.database.db_schema not in (None, "Mysql") and _version_tuple(self.matomo.version) < (5, 1):
            errors.append(
                f"database.schema: {self.database.db_schema} needs Matomo 5.1.0 or later (core/Db/Schema/), but "
                f"matomo.version is {self.matomo.version} (use Mysql, or a newer Matomo)"
            )
        if errors:
            raise ValueError("\n".join(errors))
        return self

    def secret_references(self) -> list[tuple[str, SecretRef]]:
        """Every `{ secret = "..." }` in settings and env, with where it is."""
        found = [
            (f"settings.{section}.{key}", value)
            for section, values in self.settings.items()
            for key, value in values.items()
            if isinstance(value, SecretRef)
        ]
        for role in MATOMO_ROLES:
            spec = getattr(self.roles, role.value)
            found += [
                (f"roles.{role.value}.settings.{section}.{key}", value)
                for section, values in spec.settings.items()
                for key, value in values.items()
                if isinstance(value, SecretRef)
            ]
            found += [(f"roles.{role.value}.env.{name}", value) for name, value in spec.env.items() if isinstance(value, SecretRef)]
        if (exporter := self.monitoring.exporter) is not None:
            found += [(f"monitoring.exporter.env.{name}", value) for name, value in exporter.env.items()
                      if isinstance(value, SecretRef)]
        return found

    @property
    def queued_tracking(self) -> Plugin:
        # Present: the plugins validator refuses a list without it.
        return next(p for p in self.plugins if p.name == "QueuedTracking")

    def job_id(self, role: Role) -> str:
        return f"{self.name}-{role.slug}"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-")[0].split("."))


def json_schema() -> dict[str, Any]:
    """The deployment file's JSON Schema, each default also spelled out in its description
    (editors show descriptions on hover, rarely the `default` keyword)."""
    import json

    from pydantic.json_schema import GenerateJsonSchema

    changed = "x-matomo-nomad-changed"  # a table default's own keys; removed below

    class WithEveryDefault(GenerateJsonSchema):
        """Also the defaults that come from a factory (lists, maps, tables), which
        pydantic leaves out of the schema."""

        def get_default_value(self, schema: Any) -> Any:
            factory = schema.get("default_factory")
            if factory is not None and not schema.get("default_factory_takes_data"):
                return factory()
            return super().get_default_value(schema)

        def default_schema(self, schema: Any) -> Any:
            result = super().default_schema(schema)
            default = self.get_default_value(schema)
            if isinstance(default, BaseModel) and "default" in result:
                # The keys this table's default sets itself: the rest are its keys' own defaults.
                result[changed] = {name: result["default"][name] for name in default.model_fields_set}
            return result

    schema = Deployment.model_json_schema(schema_generator=WithEveryDefault)

    def annotate(node: object) -> None:
        if isinstance(node, dict):
            if changed in node:
                own = node.pop(changed)
                shown = "its keys' own defaults" + (
                    f", except {json.dumps(own, ensure_ascii=False)}" if own else ""
                )
                node["description"] = (node.get("description", "").rstrip() + f" Default: {shown}.").lstrip()
            elif "default" in node:
                shown = json.dumps(node["default"], ensure_ascii=False)
                node["description"] = (node.get("description", "").rstrip() + f" Default: {shown}.").lstrip()
            for child in node.values():
                annotate(child)
        elif isinstance(node, list):
            for child in node:
                annotate(child)

    annotate(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema

"""Deployments the conformance tests render: the two examples and one that uses every
option, with hostile strings wherever the model takes free text."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

from matomo_nomad import Deployment, example_path, parse_deployment

# Every character a layer treats specially: HCL (" \ ${ %{), consul-template ({{ }}),
# PHP's INI scanner (; ' " $ { } | & ^ ! ~ ( ) = [ ] and constants), Matomo's entity
# decoding (&amp; &quot; &#36;), line breaks, and non-ASCII.
HOSTILE = 'a"b\\c${HOME}%{x}{{ .y }}}};\'|&^!~()=[]E_ALL &amp; &quot; &#36; \n\r\t é 漢 🙂 EOT'

SECRETS = {
    "salt": "0123456789abcdef0123456789abcdef",
    "database_password": 'p"w$d\\&amp;&#36;{{ . }}${X}%{y};\n\r\'é',
    "database_reader_password": "reader-" + HOSTILE,
    "redis_password": "r&d$;{{",
    "redis_cache_password": "c" + HOSTILE,
    # Read as a file, raw: its trailing newline and spaces are part of it.
    "superuser_password": " su" + HOSTILE + "\n",
    # A setting's secret (config.ini.php) and an environment variable's (an env template,
    # read back by go-envparse): every control character but NUL, quotes, backslashes.
    "mail_password": "m" + HOSTILE,
    "smtp_token": ' t"\\' + HOSTILE + "".join(chr(c) for c in range(1, 32)) + "\x7f #x '",
}


def _example(name: str) -> dict[str, Any]:
    with open(example_path().parent / name, "rb") as handle:
        return tomllib.load(handle)


def everything() -> dict[str, Any]:
    """One deployment that switches every option on."""
    data = copy.deepcopy(_example("seed.toml"))
    data["database"].update(
        {
            "user": "user " + HOSTILE,
            "name": "db" + HOSTILE,
            "table_prefix": "p_" + HOSTILE,
            "adapter": "MYSQLI",
            "tls": {"enabled": True, "ca": "/etc/ssl/" + HOSTILE, "verify": False},
            "reader": {"host": "10.0.0.7", "port": 3307, "user": "reader"},
            "collation": "utf8mb4_unicode_520_ci",
            "schema": "Mariadb",
        }
    )
    data["proxy"]["assume_secure_protocol"] = True
    data["install"] = {
        "superuser_login": "root.admin@x",
        "superuser_email": "a+b@example.org",
        "site_name": "site " + HOSTILE,
        "site_url": "https://example.org/" + "a%20b?c=d&e",
        "timezone": "Asia/Kolkata",
        "currency": "JPY",
    }
    data["redis"] = {"sentinel": {"master": "mymaster" + HOSTILE, "addresses": ["s1:26379", "s2:26379"]}, "database": 3, "timeout": 2.5, "password": True}
    data["redis_cache"] = {"host": "cache.internal", "database": 4, "password": True}
    data["secrets"] = {"provider": "vault", "path": "kv/data/matomo", "vault_role": "matomo"}
    data["nomad_version"] = "1.7.0"  # workload identity (the nomad-version rule)
    data["settings"] = {
        "General": {"login_allow_logme": False, "some_text": HOSTILE, "ratio": 0.25, "count": 7, "hosts_list": ["a", HOSTILE]},
        "Tracker": {"ignore_visits_cookie_name": "x" + HOSTILE},
        "mail": {"host": "smtp.example.org", "password": {"secret": "mail_password"}},
    }
    # The monitoring job: a node of its own (the exporter cannot follow a sentinel).
    data["monitoring"] = {
        "exporter": {
            "redis_host": "redis-1.internal",
            "redis_port": 6380,
            "memory_max": 128,
            "env": {"REDIS_EXPORTER_INCL_SYSTEM_METRICS": "true", "NOTE": HOSTILE, "SMTP_TOKEN": {"secret": "smtp_token"}},
            "constraints": [{"attribute": "${meta.tier}", "value": HOSTILE}],
            "service": {"name": "queue-metrics", "provider": "consul", "tags": ["prometheus", HOSTILE]},
        }
    }
    roles = data["roles"]
    roles["admin"].update(
        {
            "memory_max": 1024,
            "env": {"PHP_MEMORY_LIMIT": "512M", "HOSTILE": HOSTILE, "SMTP_TOKEN": {"secret": "smtp_token"}},
            "constraints": [{"attribute": "${attr.kernel.name}", "value": "linux"}, {"attribute": "${meta.tier}", "operator": "regexp", "value": HOSTILE}],
            "service": {"provider": "consul", "tags": ["ui", HOSTILE], "check": {"path": "/index.php?module=Login&x=" + HOSTILE, "headers": {"X-Forwarded-Proto": ["https"], "X-Odd": [HOSTILE]}}},
            "settings": {"General": {"some_text": "admin override"}},
            "update": {"canary": 1, "auto_promote": True, "max_parallel": 2},
        }
    )
    roles["ingestion"]["service"] = {"enabled": True, "check": None, "tags": []}
    roles["queue_processor"].update({"count": 3, "queues": 4, "sleep": "1m30s", "requests_per_batch": 50})
    roles["setup"] = {"memory": 2048, "env": {"EXTRA": HOSTILE}}
    roles["archiver"].update(
        {
            "schedule": {"cron": "15 */2 * * 1-5", "time_zone": "Europe/Berlin", "prohibit_overlap": False},
            "archive": {
                "concurrent_archivers": 2,
                "force_idsites": [1, 5],
                "skip_all_segments": True,
                "disable_scheduled_tasks": True,
                "max_websites_to_process": 10,
                "max_archives_to_process": 100,
                "extra_args": ["--php-cli-options=-d memory_limit=2G", HOSTILE],
            },
            "env": {"TZ": "Europe/Berlin"},
        }
    )
    return data


def legacy_sentinel() -> dict[str, Any]:
    """QueuedTracking before 5.1 names the sentinel switch differently."""
    data = everything()
    data["plugins"] = [{"name": "QueuedTracking", "version": "5.0.7"}]
    data["secrets"] = {"provider": "nomad", "path": "nomad/jobs"}
    return data


def vault_legacy() -> dict[str, Any]:
    """Vault through the legacy token workflow (policies), as Nomad 1.6 needs it."""
    data = everything()
    data["secrets"] = {"provider": "vault", "path": "kv/data/matomo", "vault_policies": ["matomo-read", "kv-" + "x" * 8]}
    data["nomad_version"] = "1.6.0"
    return data


def all_deployments() -> dict[str, Deployment]:
    return {
        "minimal": parse_deployment(_example("minimal.toml")),
        "seed": parse_deployment(_example("seed.toml")),
        "everything": parse_deployment(everything()),
        "legacy_sentinel": parse_deployment(legacy_sentinel()),
        "vault_legacy": parse_deployment(vault_legacy()),
    }


def secret_stubs(deployment: Deployment) -> dict[str, Any]:
    """What the stubbed nomadVar/secret functions return for this deployment's jobs."""
    from matomo_nomad import Role

    s = deployment.secrets
    if s.provider == "vault":
        return {"vault": {s.path: dict(SECRETS)}}
    paths = {s.path} if s.path else {f"nomad/jobs/{deployment.job_id(role)}" for role in Role}
    return {"nomad": {path: dict(SECRETS) for path in paths}}

"""What oliver006/redis_exporter is told, so it exports exactly our queue's series.

`--check-single-keys` gets each queue list (`redis_key_size{db,key}` = LLEN; lists
have no numeric value, so no `redis_key_value`), `--count-keys` each queue's lock key
(`redis_keys_count{db,key}` = 0 or 1: a count, never the lock's value, which
`--check-single-keys` would export as `redis_key_value`, or as a label when it is not a number). Key
lists and flag names: the exporter's README ("Command line flags") and `exporter/keys.go`.
These are the monitoring job's arguments (`_roles`) and the series the alerting rules
(`_alerts`) read.

The password is never a flag (flags show in `ps` and in the job): the exporter reads
REDIS_PASSWORD from its environment when --redis.password is not given (main.go,
`getEnv("REDIS_PASSWORD", "")`), which the job fills from the secret store at run time.

Two switches close what the exporter opens by default (v1.88.0 main.go and
exporter/http.go): `--disable-scrape-endpoint` (v1.83.0+) turns off /scrape, which takes
a `target` and key lists from its query string and scrapes them with the exporter's own
password, so anyone reaching the port could send that password to a host of their
choosing or read any key's value; `--disable-exporting-key-values` (v1.52.0+) keeps
`--check-single-keys` from exporting a string key's value as a label
(`redis_key_value_as_string`), should one of our keys ever hold one.
"""

from __future__ import annotations

from typing import Any

from ._queue_keys import lock_key, queue_key

PASSWORD_VARIABLE = "REDIS_PASSWORD"
HARDENING_FLAGS = ("--disable-scrape-endpoint", "--disable-exporting-key-values")
HARDENING_SINCE = (1, 83, 0)
"""The first release that has both flags (an older exporter exits on an unknown flag)."""
LISTEN_PORT = 9121
"""The exporter's default --web.listen-address port, inside the container."""


def redis_address(deployment: Any) -> str:
    """The Redis the exporter reads: its own host if set (required with a sentinel), else
    the queue's."""
    exporter = deployment.monitoring.exporter
    redis = deployment.redis
    host = (exporter.redis_host if exporter is not None else None) or redis.host
    port = (exporter.redis_port if exporter is not None else None) or redis.port
    # redis:// URLs take an IPv6 address in brackets.
    return f"redis://[{host}]:{port}" if ":" in str(host) else f"redis://{host}:{port}"


def exporter_flags(deployment: Any) -> list[str]:
    db = deployment.redis.database
    queues = range(deployment.roles.queue_processor.queues)
    return [
        "--check-single-keys=" + ",".join(f"db{db}={queue_key(q)}" for q in queues),
        "--count-keys=" + ",".join(f"db{db}={lock_key(q)}" for q in queues),
    ]


def exporter_args(deployment: Any) -> list[str]:
    """The monitoring job's whole command line (after the image's entrypoint)."""
    return [f"--redis.addr={redis_address(deployment)}", *exporter_flags(deployment), *HARDENING_FLAGS]

"""The flags oliver006/redis_exporter needs to export exactly our queue's series.

`--check-single-keys` gets each queue list (`redis_key_size{db,key}` = LLEN; lists
have no numeric value, so no `redis_key_value`), `--count-keys` each queue's lock key
(`redis_keys_count{db,key}` = 0 or 1: a count, never the lock's value, which
`--check-single-keys` would export whenever it happens to parse as a number). Key
lists and flag names: the exporter's README ("Command line flags") and `exporter/keys.go`.
The monitoring job that runs the exporter on Nomad is not written yet; these flags are
what it will pass (and what the alerting rules in `_alerts` read).
"""

from __future__ import annotations

from typing import Any

from ._queue_health import lock_key, queue_key


def exporter_flags(deployment: Any) -> list[str]:
    db = deployment.redis.database
    queues = range(deployment.roles.queue_processor.queues)
    return [
        "--check-single-keys=" + ",".join(f"db{db}={queue_key(q)}" for q in queues),
        "--count-keys=" + ",".join(f"db{db}={lock_key(q)}" for q in queues),
    ]

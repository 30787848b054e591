"""`matomo-nomad status --redis`: the QueuedTracking queue read live from its Redis.

Signals (README, "Monitoring"): 1. backlog per queue (LLEN) and its change over the
sampling interval; 2. age of each queue's oldest request (LINDEX key 0: the plugin
RPUSHes and LTRIMs from the left, so index 0 is the oldest); 3. processor liveness from
the `QueuedTrackingLock<id>` keys; 5. Redis memory against maxmemory, evictions and the
eviction policy.

Layout (QueuedTracking 5.1.1, reference/matomo.md): queue 0 is the list
`trackingQueueV1`, queue N >= 1 `trackingQueueV1_N`; items are `gzcompress(json)` (zlib
format; older plugin versions stored plain JSON) of `{requests, env, tokenAuth, time}`.
The items hold token_auth and IP addresses: only `time` is read, and nothing else of an
item is ever kept, printed or logged (errors about an item name the queue, never the
content). The Redis password is never printed either: it comes from
MATOMO_REDIS_PASSWORD or stdin, and every message is scrubbed of it.

`redis` (redis-py) is imported here, lazily, and only this command imports this module.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from ._errors import MatomoNomadError
from ._queue_keys import QUEUE_KEY, lock_key, queue_key

PASSWORD_VARIABLE = "MATOMO_REDIS_PASSWORD"

#: Exit codes of `status --redis` (0: healthy, nothing to report).
EXIT_WARNINGS = 30
EXIT_UNREACHABLE = 31


class RedisCheckError(MatomoNomadError):
    """The queue's Redis could not be read: no password, unreachable, refused, no master."""

    exit_code = EXIT_UNREACHABLE


class RedisPackageMissingError(MatomoNomadError):
    """The `redis` package (the `redis` extra) is not installed: an install problem, not a
    Redis outage, so the usage code (64), never 31, which cron monitoring reads as "Redis down"."""

    exit_code = 64  # _cli_common.EXIT_USAGE; a module of the status stage does not import the CLI


def request_time(item: bytes | None) -> float | None:
    """The `time` of a queued request set, or None when there is no item or no usable time.

    Accepts zlib (gzcompress) and plain JSON. Reads nothing else: the rest of the item
    is dropped here, and no exception carrying it escapes."""
    if item is None:
        return None
    try:
        try:
            text = zlib.decompress(item)
        except zlib.error:
            text = item
        value = json.loads(text).get("time")
    except Exception:  # noqa: BLE001 - any decoding error: the exception may quote the item
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# --- what one check reports ---------------------------------------------------------------


@dataclass
class QueueState:
    queue: int
    key: str
    backlog: int
    backlog_change: int | None  # over the interval; None with one sample
    oldest_time: float | None  # unix time of the oldest request, None when empty or unreadable
    oldest_age_seconds: float | None
    lock_key: str
    locked: bool  # held in any sample
    lock_ttl_seconds: float | None  # in the last sample that saw it held


@dataclass
class RedisState:
    address: str
    database: int
    version: str
    used_memory: int
    maxmemory: int
    maxmemory_policy: str
    evicted_keys: int


@dataclass
class Warning_:
    rule: str
    message: str
    fix: str
    queue: int | None = None


@dataclass
class Report:
    redis: RedisState
    queues: list[QueueState]
    batch_size: int
    interval_seconds: float
    stranded: dict[str, int] = field(default_factory=dict)  # key -> backlog of queues above the count
    warnings: list[Warning_] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "redis": asdict(self.redis),
            "batch_size": self.batch_size,
            "interval_seconds": self.interval_seconds,
            "queues": [asdict(q) for q in self.queues],
            "stranded_queues": self.stranded,
            "warnings": [asdict(w) for w in self.warnings],
        }


# --- connecting ---------------------------------------------------------------------------


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def master_address(deployment: Any, timeout: float) -> tuple[str, int]:
    """host and port of the queue's Redis: the deployment's, or the master a sentinel names
    (`SENTINEL get-master-addr-by-name`, each sentinel in turn)."""
    import redis

    spec = deployment.redis
    if spec.sentinel is None:
        return spec.host, spec.port
    failures = []
    for address in spec.sentinel.addresses:
        host, port = _split(address)
        client = redis.Redis(host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            answer = client.execute_command("SENTINEL", "get-master-addr-by-name", spec.sentinel.master)
        except redis.RedisError as error:
            failures.append(f"{address}: {error}")
            continue
        finally:
            client.close()
        if answer:
            master_host, master_port = answer
            master_host = master_host.decode() if isinstance(master_host, bytes) else str(master_host)
            return master_host, int(master_port)
        failures.append(f"{address}: knows no master named {spec.sentinel.master!r}")
    raise RedisCheckError(
        "no sentinel named the queue's Redis master: " + "; ".join(failures)
        + " (check redis.sentinel.master and addresses, and that the sentinels are up)"
    )


def read_password(use_stdin: bool, stdin: IO[str]) -> str | None:
    """MATOMO_REDIS_PASSWORD, or the first line of stdin with --redis-password-stdin."""
    if use_stdin:
        line = stdin.readline()
        return line.rstrip("\r\n")
    return os.environ.get(PASSWORD_VARIABLE) or None


# --- sampling -------------------------------------------------------------------------------


def _sample(client: Any, queues: int) -> tuple[list[int], list[float | None], list[int | None]]:
    """Backlog, oldest request time and lock TTL (ms; None = no lock) of every queue, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in range(queues):
        pipe.llen(queue_key(queue))
        pipe.lindex(queue_key(queue), 0)
        pipe.pttl(lock_key(queue))
    answers = pipe.execute()
    backlogs, times, ttls = [], [], []
    for queue in range(queues):
        length, item, ttl = answers[3 * queue: 3 * queue + 3]
        backlogs.append(int(length))
        times.append(request_time(item))
        del item  # the payload goes no further
        # PTTL: -2 no key, -1 a key without expiry (a lock is always SET EX; still held).
        ttls.append(None if ttl == -2 else int(ttl))
    return backlogs, times, ttls


def _stranded(client: Any, queues: int) -> dict[str, int]:
    """Queues above the configured count that still hold requests (left by lowering `queues`)."""
    found = {}
    for raw in client.scan_iter(match=f"{QUEUE_KEY}_*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else raw
        suffix = key[len(QUEUE_KEY) + 1:]
        if suffix.isdigit() and int(suffix) >= queues and client.type(key) in (b"list", "list"):
            length = int(client.llen(key))
            if length:
                found[key] = length
    return dict(sorted(found.items(), key=lambda kv: int(kv[0].rpartition("_")[2])))


def check(
    deployment: Any,
    password: str | None,
    *,
    interval: float,
    timeout: float = 5.0,
    now: Any = None,
    sleep: Any = None,
) -> Report:
    """Read the queue's Redis: two samples `interval` seconds apart (one when 0)."""
    import redis

    from ._model import nanoseconds

    now = now or time.time
    sleep = sleep or time.sleep
    spec = deployment.redis
    if spec.password and not password:
        raise RedisCheckError(
            f"the queue's Redis needs a password (redis.password = true): set {PASSWORD_VARIABLE} "
            "or pass it on stdin with --redis-password-stdin"
        )
    host, port = master_address(deployment, timeout)
    address = f"{host}:{port}"
    queues = deployment.roles.queue_processor.queues
    batch = deployment.roles.queue_processor.requests_per_batch
    monitoring = deployment.monitoring
    client = redis.Redis(
        host=host, port=port, db=spec.database, password=password or None,
        socket_timeout=timeout, socket_connect_timeout=timeout,
    )
    try:
        try:
            first = _sample(client, queues)
            first_at = now()
            if interval > 0:
                sleep(interval)
                second = _sample(client, queues)
                at = now()
            else:
                second, at = first, first_at
            memory = client.info("memory")
            stats = client.info("stats")
            server = client.info("server")
            stranded = _stranded(client, queues)
        except redis.AuthenticationError as error:
            if not password:
                raise _password_required(address) from None
            raise RedisCheckError(f"Redis at {address} refused the password: {error} (check {PASSWORD_VARIABLE})") from None
        except redis.ResponseError as error:
            if "NOAUTH" in str(error):
                raise _password_required(address) from None
            raise RedisCheckError(f"Redis at {address} database {spec.database}: {error}") from None
        except redis.RedisError as error:
            raise RedisCheckError(
                f"cannot read the queue's Redis at {address} database {spec.database}: {error} "
                "(check redis.host/port in the deployment file, and that this machine can reach it)"
            ) from None
    finally:
        client.close()

    states = []
    for queue in range(queues):
        backlog = second[0][queue]
        oldest = second[1][queue]
        ttls = (first[2][queue], second[2][queue])
        last_ttl = ttls[1] if ttls[1] is not None else ttls[0]
        states.append(QueueState(
            queue=queue,
            key=queue_key(queue),
            backlog=backlog,
            backlog_change=(backlog - first[0][queue]) if interval > 0 else None,
            oldest_time=oldest,
            oldest_age_seconds=None if oldest is None else round(max(0.0, at - oldest), 1),
            lock_key=lock_key(queue),
            locked=any(t is not None for t in ttls),
            lock_ttl_seconds=None if last_ttl is None else (last_ttl / 1000 if last_ttl >= 0 else -1.0),
        ))
    report = Report(
        redis=RedisState(
            address=address,
            database=spec.database,
            version=str(server.get("redis_version", "?")),
            used_memory=int(memory.get("used_memory", 0)),
            maxmemory=int(memory.get("maxmemory", 0)),
            maxmemory_policy=str(memory.get("maxmemory_policy", "?")),
            evicted_keys=int(stats.get("evicted_keys", 0)),
        ),
        queues=states,
        batch_size=batch,
        interval_seconds=interval,
        stranded=stranded,
    )
    report.warnings = _warnings(report, first, second, nanoseconds(monitoring.max_request_age) / 1e9,
                                monitoring.redis_memory_ratio)
    return report


def _password_required(address: str) -> RedisCheckError:
    return RedisCheckError(
        f"Redis at {address} requires a password (set redis.password = true in the deployment file "
        f"and {PASSWORD_VARIABLE})"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _warnings(report: Report, first: Any, second: Any, max_age: float, memory_ratio: float) -> list[Warning_]:
    found: list[Warning_] = []
    batch = report.batch_size
    sampled = report.interval_seconds > 0
    window = f"in {report.interval_seconds:g}s" if sampled else "at this moment"
    for q, first_backlog, first_time, ttls in zip(report.queues, first[0], first[1], zip(first[2], second[2])):
        if q.backlog >= batch and first_backlog >= batch and not q.locked:
            found.append(Warning_(
                "queue-unworked",
                f"queue {q.queue} ({q.key}) holds {q.backlog} requests (batch size {batch}) and no processor "
                f"held {q.lock_key} {window}",
                "check the queue processor job (`matomo-nomad status`: allocations running against desired, "
                "restarts) and its logs; every queue needs a processor (roles.queue_processor.count, pin_queues)",
                q.queue,
            ))
        elif (sampled and None not in ttls and q.backlog >= batch and first_backlog >= batch
              and q.backlog >= first_backlog and q.oldest_time is not None and q.oldest_time == first_time):
            found.append(Warning_(
                "queue-stuck",
                f"queue {q.queue} ({q.key}): {q.lock_key} is held but the oldest request did not move and the "
                f"backlog did not fall ({first_backlog} -> {q.backlog}) in {report.interval_seconds:g}s",
                "look at the processor holding the lock (its logs, the database it writes to); if it is gone, "
                f"the lock expires by itself within 60 s, or run `console queuedtracking:lock-status --unlock={q.lock_key}`",
                q.queue,
            ))
        if q.oldest_age_seconds is not None and q.oldest_age_seconds > max_age:
            found.append(Warning_(
                "request-old",
                f"queue {q.queue} ({q.key}): the oldest request waits for {_duration(q.oldest_age_seconds)} "
                f"(more than monitoring.max_request_age, {_duration(max_age)})",
                ("fewer requests than one batch wait: only QueuedTracking 5.1's own loop flushes a partial "
                 "batch, so use QueuedTracking 5.1 or later (its version in plugins)") if q.backlog < batch else
                ("the processors fall behind or do not run: check them (`matomo-nomad status`), add processors "
                 "and queues (roles.queue_processor.count and queues), or see whether the database is slow"),
                q.queue,
            ))
    for key, backlog in report.stranded.items():
        found.append(Warning_(
            "queue-stranded",
            f"{key} holds {backlog} requests but is above the configured {len(report.queues)} queue(s): "
            "no processor will ever read it",
            "set roles.queue_processor.queues back above its number and run, or move its requests by saving "
            "the number of queues in QueuedTracking's settings UI",
        ))
    redis = report.redis
    if redis.maxmemory_policy != "noeviction":
        found.append(Warning_(
            "redis-evicts",
            f"Redis maxmemory-policy is {redis.maxmemory_policy}: when it is full it silently drops keys, "
            "queued tracking requests among them",
            "set `maxmemory-policy noeviction` in the Redis configuration (or CONFIG SET maxmemory-policy "
            "noeviction, then persist it); give the queue a Redis of its own if others need eviction",
        ))
    if redis.evicted_keys > 0:
        found.append(Warning_(
            "redis-evicted",
            f"Redis has evicted {redis.evicted_keys} keys since it started: queued requests may have been lost",
            "set maxmemory-policy noeviction and give Redis more memory (maxmemory)",
        ))
    if redis.maxmemory > 0 and redis.used_memory >= memory_ratio * redis.maxmemory:
        found.append(Warning_(
            "redis-memory",
            f"Redis uses {redis.used_memory / redis.maxmemory:.0%} of maxmemory "
            f"({_bytes(redis.used_memory)} of {_bytes(redis.maxmemory)}; "
            f"monitoring.redis_memory_ratio is {memory_ratio:g})",
            "raise maxmemory, or drain the queues (more processors); with noeviction a full Redis refuses "
            "new tracking requests",
        ))
    return found


def _bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


# --- output ---------------------------------------------------------------------------------


def write_text(report: Report, out: IO[str]) -> None:
    r = report.redis
    memory = _bytes(r.used_memory) + (f" of {_bytes(r.maxmemory)}" if r.maxmemory else " (no maxmemory)")
    out.write(
        f"Redis {r.address} database {r.database} (Redis {r.version}): memory {memory}, "
        f"maxmemory-policy {r.maxmemory_policy}, {r.evicted_keys} evicted keys\n"
    )
    header = ("queue", "key", "backlog", "change", "oldest", "lock")
    rows = [header]
    for q in report.queues:
        if not q.locked:
            lock = "free"
        elif q.lock_ttl_seconds is None or q.lock_ttl_seconds < 0:
            lock = "held"
        else:
            lock = f"held (expires in {q.lock_ttl_seconds:.0f}s)"
        rows.append((
            str(q.queue),
            q.key,
            str(q.backlog),
            "-" if q.backlog_change is None else f"{q.backlog_change:+d}",
            "-" if q.oldest_age_seconds is None else _duration(q.oldest_age_seconds),
            lock,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    for key, backlog in report.stranded.items():
        out.write(f"(above the configured queues) {key}: {backlog}\n")
    for w in report.warnings:
        out.write(f"warning: {w.message} (fix: {w.fix}) [{w.rule}]\n")
    if report.healthy:
        out.write("queue healthy\n")


def run(args: Any, deployment: Any, stdin: IO[str] = sys.stdin, stdout: IO[str] = sys.stdout) -> int:
    """The `status --redis` command: print the report; 0 healthy, 30 warnings, 31 Redis unreadable,
    64 the redis package is not installed."""
    try:
        import redis  # noqa: F401
    except ImportError:
        raise RedisPackageMissingError(
            "status --redis needs the redis Python package, which is not installed: "
            "pip install 'matomo-nomad[redis]'"
        ) from None
    password = read_password(args.redis_password_stdin, stdin)
    interval = args.interval
    if interval is None:
        from ._model import nanoseconds

        # Longer than the processors' pause between rounds, when a worked queue has no lock.
        interval = nanoseconds(deployment.roles.queue_processor.sleep) / 1e9 + 2
    try:
        report = check(deployment, password, interval=interval, timeout=getattr(args, "timeout", None) or 5.0)
    except RedisCheckError as error:
        raise RedisCheckError(_scrub(str(error), password)) from None
    if args.output == "json":
        stdout.write(_scrub(json.dumps(report.to_dict(), indent=2), password) + "\n")
    else:
        import io

        buffer = io.StringIO()
        write_text(report, buffer)
        stdout.write(_scrub(buffer.getvalue(), password))
    return 0 if report.healthy else EXIT_WARNINGS


def add_flags(parser: Any) -> None:
    """`status --redis` and its options (on the status sub-command's parser)."""
    group = parser.add_argument_group("the queue's Redis (--redis: read it instead of Nomad)")
    group.add_argument("--redis", action="store_true",
                       help="read the QueuedTracking queue from its Redis (backlog, oldest request, locks, memory); "
                       f"password from {PASSWORD_VARIABLE}; exit 0 healthy, {EXIT_WARNINGS} warnings, "
                       f"{EXIT_UNREACHABLE} Redis unreadable, {RedisPackageMissingError.exit_code} the redis package not installed "
                       "(pip install 'matomo-nomad[redis]'); not with --health/--check (Nomad only)")
    group.add_argument("--redis-password-stdin", action="store_true",
                       help="read the Redis password from the first line of stdin")
    group.add_argument("--interval", type=_non_negative_seconds, metavar="SECONDS",
                       help="seconds between the two samples (backlog change, lock seen, stuck queue); "
                       "0 = one sample; default: roles.queue_processor.sleep + 2")


def _non_negative_seconds(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text

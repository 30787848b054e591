"""`matomo-nomad alerts`: Prometheus alerting rules generated from the deployment.

The queue's series come from oliver006/redis_exporter (README "Command line flags" and
`exporter/keys.go`): `redis_key_size{db="db<N>",key="trackingQueueV1..."}` from
`--check-single-keys` (LLEN of each queue list), `redis_keys_count{db,key}` from
`--count-keys` (how many keys match: for the lock keys `QueuedTrackingLock<id>`, never
their values), and the INFO series `redis_memory_used_bytes`, `redis_memory_max_bytes`,
`redis_evicted_keys_total` and `redis_instance_info{maxmemory_policy}` (`exporter/exporter.go`).
The archiver's come from Nomad's servers (`telemetry { prometheus_metrics = true }`):
`nomad_nomad_job_summary_{complete,failed}{parent_id="<name>-archiver"}`, one series per
periodic launch, published by the leader only (Nomad 1.11 nomad/leader.go,
iterateJobSummaryMetrics adds parent_id for `<job>/periodic-<time>` ids); restarts from
Nomad's clients (`prometheus_metrics = true` too): the counter
`nomad_client_allocs_restart{job,task_group,task,alloc_id,namespace}`, incremented on each
TaskRestarting event whatever publish_allocation_metrics says
(client/allocrunner/taskrunner/task_runner.go, appendEvent).

The longest gap between two consecutive launches is computed from the archiver's cron
and time zone (`cron_longest_gap`), so "no successful archive for twice that" holds for
any schedule, daylight saving time included.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ._errors import DeploymentError, Problem
from ._queue_keys import LOCK_PREFIX, QUEUE_KEYS_RE

LOCK_KEYS_RE = f"{LOCK_PREFIX}[0-9]+"

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


class CronUnsupported(ValueError):
    pass


def _field(text: str, low: int, high: int, names: dict[str, int]) -> set[int] | None:
    """The values of one cron field; None for '*' or '?' (unrestricted)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise CronUnsupported(f"step {step_text!r}")
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(body, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise CronUnsupported(f"{part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        raise CronUnsupported(f"{text!r}")
    return int(text)


def cron_fires(cron: str, zone: str, start: datetime, days: int) -> list[datetime]:
    """Every launch time (UTC) of a 5-field cron from `start` for `days` days.

    Supports numbers, names, '*', '?', ranges, steps, lists, 'L' alone as the day of the
    month, and day-of-week 'nL' (last) and 'n#k' (k-th); day of month and day of week,
    when both are restricted, match either (as cron, and Nomad's cronexpr, do)."""
    from zoneinfo import ZoneInfo

    fields = _MACROS.get(cron, cron).split()
    minute = _field(fields[0], 0, 59, {}) or set(range(60))
    hour = _field(fields[1], 0, 23, {}) or set(range(24))
    last_dom = fields[2].upper() == "L"
    dom = None if last_dom else _field(fields[2], 1, 31, {})
    month = _field(fields[3], 1, 12, _MONTHS) or set(range(1, 13))
    dow_text = fields[4].lower()
    dow_nth: tuple[int, int] | None = None  # (weekday, k; -1 = last)
    if "#" in dow_text:
        day, k = dow_text.split("#")
        dow_nth, dow = (_value(day, _DAYS) % 7, int(k)), set()
    elif dow_text.endswith("l") and dow_text != "l":
        dow_nth, dow = (_value(dow_text[:-1], _DAYS) % 7, -1), set()
    else:
        dow = _field(dow_text, 0, 7, _DAYS)
        if dow is not None:
            dow = {d % 7 for d in dow}
    dom_restricted = last_dom or dom is not None
    dow_restricted = dow is not None or dow_nth is not None
    tz = ZoneInfo(zone)
    fires: list[datetime] = []
    day = start.date()
    for _ in range(days):
        day = day + timedelta(days=1)
        if day.month not in month:
            continue
        last = calendar.monthrange(day.year, day.month)[1]
        dom_ok = (day.day == last) if last_dom else (dom is None or day.day in dom)
        weekday = (day.weekday() + 1) % 7  # cron: Sunday 0
        if dow_nth is not None:
            wd, k = dow_nth
            dow_ok = weekday == wd and ((k == -1 and day.day + 7 > last) or (k > 0 and (day.day - 1) // 7 + 1 == k))
        else:
            dow_ok = dow is None or weekday in dow
        if dom_restricted and dow_restricted:
            ok = dom_ok or dow_ok
        else:
            ok = dom_ok and dow_ok
        if not ok:
            continue
        for h in sorted(hour):
            for m in sorted(minute):
                local = datetime(day.year, day.month, day.day, h, m, tzinfo=tz)
                fires.append(local.astimezone(timezone.utc))
    return sorted(set(fires))


def cron_longest_gap(cron: str, zone: str) -> timedelta:
    """The longest time between two consecutive launches, over 8 years (leap days, DST)."""
    fires = cron_fires(cron, zone, datetime(2024, 1, 1), 8 * 366)
    if len(fires) < 2:
        raise CronUnsupported("it launches at most once in 8 years")
    return max(b - a for a, b in zip(fires, fires[1:]))


def _promql_duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _seconds(duration: str) -> float:
    from ._model import nanoseconds

    return nanoseconds(duration) / 1e9


def rules(deployment: Any) -> dict[str, Any]:
    """The rule file (as a dict, `groups: [...]`) for this deployment."""
    name = deployment.name
    mon = deployment.monitoring
    qp = deployment.roles.queue_processor
    batch, queues = qp.requests_per_batch, qp.queues
    db = f"db{deployment.redis.database}"
    extra = f",{mon.prometheus_selector}" if mon.prometheus_selector else ""
    backlog = f'redis_key_size{{db="{db}",key=~"{QUEUE_KEYS_RE}"{extra}}}'
    locks = f'redis_keys_count{{db="{db}",key=~"{LOCK_KEYS_RE}"{extra}}}'
    redis_sel = f"{{{mon.prometheus_selector}}}" if mon.prometheus_selector else ""
    nomad = f'namespace="{deployment.namespace}"'
    archiver = f"{name}-archiver"
    schedule = deployment.roles.archiver.schedule
    try:
        gap = cron_longest_gap(schedule.cron, schedule.time_zone)
    except CronUnsupported as error:
        raise DeploymentError([Problem(
            "roles.archiver.schedule.cron",
            f"the alerting rules cannot compute the longest gap between launches: {error}",
            "write the schedule with numbers, names, ranges, steps and lists",
        )]) from None
    growing = _promql_duration(_seconds(mon.backlog_growing_for))
    unworked = _promql_duration(_seconds(mon.unworked_for))
    overdue = _promql_duration(2 * gap.total_seconds())
    one_gap = _promql_duration(gap.total_seconds())

    def with_queue(expr: str, key_re: str) -> str:
        # queue="N" from the key: trackingQueueV1_N and QueuedTrackingLockN; trackingQueueV1 is 0.
        if key_re == QUEUE_KEYS_RE:
            inner = f'label_replace({expr}, "queue", "$1", "key", "trackingQueueV1_([0-9]+)")'
            return f'label_replace({inner}, "queue", "0", "key", "trackingQueueV1")'
        return f'label_replace({expr}, "queue", "$1", "key", "QueuedTrackingLock([0-9]+)")'

    labels = {"severity": "warning", "deployment": name}
    critical = {"severity": "critical", "deployment": name}

    def rule(alert: str, expr: str, for_: str, severity: dict[str, str], summary: str, runbook: str) -> dict[str, Any]:
        return {
            "alert": alert,
            "expr": expr,
            "for": for_,
            "labels": dict(severity),
            "annotations": {"summary": summary, "runbook": runbook},
        }

    queue_rules = [
        rule(
            "MatomoQueueBacklogGrowing",
            f"sum by (instance) (deriv({backlog}[{growing}])) > 0 and sum by (instance) ({backlog}) >= {batch}",
            growing, labels,
            f"Matomo {name}: the tracking queue backlog has grown for {growing} and holds over a batch",
            "Processors fall behind: check `matomo-nomad status` and `status --redis`; raise "
            "roles.queue_processor.count and queues together, or look for a slow database.",
        ),
        rule(
            "MatomoQueueUnworked",
            # `for` holds the duration: a window of its own would fire on a partial window right
            # after the exporter starts. 2m of lock history bridges the processors' sleeps and scrapes.
            f"{with_queue(backlog, QUEUE_KEYS_RE)} >= {batch} "
            f"unless ignoring(key) {with_queue(f'max_over_time({locks}[2m])', LOCK_KEYS_RE)} > 0",
            unworked, critical,
            f"Matomo {name}: queue {{{{ $labels.queue }}}} holds at least {batch} requests and no processor "
            f"held its lock for {unworked}",
            "No processor works this queue: check the queue processor job's allocations and logs "
            "(`matomo-nomad status`); every queue needs a processor (roles.queue_processor.count, pin_queues).",
        ),
    ]
    if queues > 1:
        others = f"(sum by (instance) ({backlog}) - on(instance) group_right() {backlog})"
        queue_rules.append(rule(
            "MatomoQueueFarBehind",
            f"{backlog} >= {batch} and ({backlog} * {queues - 1}) > {mon.queue_behind_factor:g} * {others}",
            growing, labels,
            f"Matomo {name}: {{{{ $labels.key }}}} is over {mon.queue_behind_factor:g}x the other queues' average",
            "One queue falls behind alone (visitor ids hashing to it, e.g. all-zero ids to queue 0): check its "
            "processor (pinned to NOMAD_ALLOC_INDEX) and the tracking clients sending the visitor ids.",
        ))
    redis_rules = [
        rule(
            "MatomoQueueExporterMissing",
            # Every queue and Redis rule reads the exporter's series: without them none of
            # them can fire, so their absence is an alert of its own.
            f"absent(redis_up{redis_sel})",
            "10m", critical,
            f"Matomo {name}: Prometheus has no series from the queue's Redis exporter",
            f"The queue and Redis alerts are blind: check the monitoring job ({name}-monitoring, "
            "`matomo-nomad status`) or your own exporter, and that Prometheus scrapes it "
            "(its service, the scrape job, monitoring.prometheus_selector).",
        ),
        rule(
            "MatomoRedisDown",
            # redis_up is the exporter's own verdict on each scrape (0: it could not connect
            # or authenticate), so a scraped exporter that cannot read Redis is caught too.
            f"redis_up{redis_sel} == 0",
            "1m", critical,
            f"Matomo {name}: the exporter cannot read the queue's Redis",
            "Tracking requests are queued in this Redis and processed from it: check that it runs and answers "
            "(redis-cli -h HOST PING), and that the exporter has its password (secret "
            f"{deployment.secrets.redis_password_key}, `matomo-nomad secrets check`).",
        ),
        rule(
            "MatomoRedisEvicting",
            f"increase(redis_evicted_keys_total{redis_sel}[5m]) > 0",
            "0m", critical,
            f"Matomo {name}: the queue's Redis evicts keys: queued tracking requests are being lost",
            "Set maxmemory-policy noeviction on the queue's Redis and raise maxmemory; give the queue a Redis "
            "of its own if other users need eviction.",
        ),
        rule(
            "MatomoRedisEvictionPolicy",
            f'redis_instance_info{{maxmemory_policy!="noeviction"{extra}}}',
            "5m", labels,
            f"Matomo {name}: the queue's Redis runs maxmemory-policy {{{{ $labels.maxmemory_policy }}}}",
            "A full Redis with any policy but noeviction silently drops queued requests: set "
            "maxmemory-policy noeviction in its configuration.",
        ),
        rule(
            "MatomoRedisNearMaxmemory",
            f"redis_memory_used_bytes{redis_sel} / (redis_memory_max_bytes{redis_sel} > 0) >= {mon.redis_memory_ratio:g}",
            "5m", labels,
            f"Matomo {name}: the queue's Redis uses over {mon.redis_memory_ratio:.0%} of maxmemory",
            "Raise maxmemory or drain the queues (more processors); with noeviction a full Redis refuses new "
            "tracking requests.",
        ),
    ]
    # The long-running jobs; the monitoring job too when there is one.
    restarting = "admin|ingestion|queue-processor" + ("|monitoring" if mon.exporter is not None else "")
    nomad_rules = [
        rule(
            "MatomoArchiverLaunchFailed",
            # A failed launch's series stays until Nomad collects the child (about 4 h), long
            # after later launches succeeded: each failure fires for one schedule gap (the
            # series did not show the failure one gap ago), by when the next launch has run.
            f'nomad_nomad_job_summary_failed{{parent_id="{archiver}",{nomad}}} > 0 unless on(job, task_group) '
            f'(nomad_nomad_job_summary_failed{{parent_id="{archiver}",{nomad}}} offset {one_gap} > 0)',
            "0m", labels,
            f"Matomo {name}: archiver launch {{{{ $labels.job }}}} failed",
            "Read the failed allocation's logs (nomad job status {{ $labels.job }}, then nomad alloc logs); the next "
            f"scheduled launch retries, and this alert ends after {one_gap} (the schedule's longest gap); "
            "MatomoArchiveOverdue fires if no launch succeeds; a launch that keeps failing leaves reports stale.",
        ),
        rule(
            "MatomoArchiveOverdue",
            f'absent_over_time((nomad_nomad_job_summary_complete{{parent_id="{archiver}",{nomad}}} > 0)[{overdue}:1m])',
            "0m", critical,
            f"Matomo {name}: no archiver launch completed for {overdue} (twice the schedule's longest gap)",
            f"Check the periodic job {archiver} (nomad job status {archiver}: is it stopped, are launches "
            "skipped by prohibit_overlap behind a stuck run, do they fail?); reports are not being updated.",
        ),
        rule(
            "MatomoRestartsClimbing",
            f'sum by (job, task_group) (increase(nomad_client_allocs_restart{{job=~"{name}-({restarting})",{nomad}}}[1h])) > {mon.restarts}',
            "0m", labels,
            f"Matomo {name}: {{{{ $labels.job }}}} restarted more than {mon.restarts} times in an hour",
            "Read the task's events and logs (nomad alloc status, nomad alloc logs): a crash loop, an "
            "out-of-memory kill (raise memory) or an unreachable database or Redis.",
        ),
    ]
    return {"groups": [
        {"name": f"{name}-queue", "rules": queue_rules + redis_rules},
        {"name": f"{name}-nomad", "rules": nomad_rules},
    ]}


def rules_yaml(deployment: Any) -> str:
    import yaml

    header = (
        f"# Prometheus alerting rules for Matomo deployment {deployment.name!r}, written by matomo-nomad alerts.\n"
        "# Needs: oliver006/redis_exporter on the queue's Redis (--check-single-keys with the queue keys,\n"
        "# --count-keys with the lock keys: the monitoring job runs it so), and telemetry\n"
        "# { prometheus_metrics = true } on Nomad's servers (every one: the leader publishes job summaries)\n"
        "# and clients.\n"
    )
    return header + yaml.safe_dump(rules(deployment), sort_keys=False, width=1000, allow_unicode=True)


_SELECTOR_RE = re.compile(r'^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*(,\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*)*$')


def valid_selector(text: str) -> bool:
    return text == "" or bool(_SELECTOR_RE.match(text))


def add_command(commands: Any) -> None:
    """Register `matomo-nomad alerts` on the CLI's sub-parser collection."""
    from pathlib import Path

    from ._cli_common import file_path

    help_text = "print or write the Prometheus alerting rules for the deployment's queue, Redis and archiver"
    parser = commands.add_parser(
        "alerts", help=help_text,
        description=help_text[0].upper() + help_text[1:] + ". Thresholds come from [monitoring]; the rules need "
        "oliver006/redis_exporter on the queue's Redis and Nomad's Prometheus metrics (see the README). "
        "Without FILE, the built-in example.",
    )
    parser.add_argument("file", nargs="?", type=Path, help="deployment file (.toml, .yaml, .json)")
    parser.add_argument("--out", type=file_path, metavar="FILE", help="write the rules here (e.g. matomo.rules.yml)")
    parser.set_defaults(handler=_command)


def _command(args: Any) -> int:
    import sys

    from ._cli_common import load

    text = rules_yaml(load(args.file))
    if args.out is None:
        sys.stdout.write(text)
        return 0
    from ._output import write_files

    for path in write_files({args.out.name: text}, args.out.parent):
        print(path)
    return 0

"""The health section of `matomo-nomad status`, from the Nomad API alone (issue 11, item d).

* Archiver launches: the periodic children `<archiver>/periodic-<unix time>` listed with
  `GET /v1/jobs?prefix=<archiver>/periodic-`, each one's allocations' task states giving
  its outcome (complete, failed, running, pending), start and duration.
* The next launch: Nomad's API has no field for it on `GET /v1/job/<id>` (only a plan
  answers `NextPeriodicLaunch`); the nomad CLI computes it client-side from the job's
  periodic block (hashicorp/nomad command/job_status.go, `job.Periodic.Next(now)`,
  commit dfa40825823907ec468d0e81ff0a1e8f1e6c54ee). So do we, from the registered job's
  `Periodic.Spec` and `TimeZone`, with the cron reader of `_alerts`.
* "No successful archive for twice the longest gap between schedule fires"
  (`_alerts.cron_longest_gap`), and "the latest finished launch failed", as warnings.
* Allocations running against desired (the job's group counts) and restarts per role:
  the sum of `TaskStates[*].Restarts` over the job's current allocations only
  (`restarts`). Nomad keeps listing the allocations of earlier job versions until it
  garbage-collects them, so a sum over all of them would only ever grow; for the
  archiver, the sum over the launches Nomad still lists (each launch is a job of its own).
* For `status --health/--check`: a long-running job (admin, ingestion, queue processor,
  monitoring when the deployment has it) or the archiver that is not registered, exists
  without this deployment's mark, or is stopped, as a warning (`presence_warning`); the
  one-shot setup job is exempt.

Nomad garbage-collects finished children after about 4 hours by default
(`job_gc_threshold`), so the history here is short; longer history is in the metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

GC_THRESHOLD = timedelta(hours=4)
GC_NOTE = ("Nomad garbage-collects finished archiver launches after about 4 h by default (job_gc_threshold): "
           "older history is in the metrics, not in the API")
_LAUNCH_RE = re.compile(r"/periodic-(\d+)$")


@dataclass(frozen=True)
class Launch:
    """One archiver launch (a periodic child job)."""

    job_id: str
    launched_at: str  # from the child's id, ISO 8601 UTC
    outcome: str  # "complete" | "failed" | "running" | "pending"
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class Health:
    """A role's health as Nomad reports it."""

    running: int = 0
    desired: int | None = None  # None for batch jobs (the archiver, setup)
    restarts: int = 0
    launches: list[Launch] = field(default_factory=list)  # archiver only, oldest first
    next_launch: str | None = None  # archiver only; None when paused or stopped
    last_success: str | None = None  # archiver only: finish of the latest complete launch
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_go_time(text: Any) -> datetime | None:
    """A Go time as Nomad writes it (RFC 3339, nanoseconds); None for the zero time."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        return None
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    try:
        return datetime.fromisoformat(f"{base}.{micro}{zone}")
    except ValueError:
        return None


_TERMINAL = ("complete", "failed", "lost")


def restarts(allocations: list[dict[str, Any]], current_only: bool = True) -> int:
    """Task restarts (`TaskStates[*].Restarts`) summed over the allocations.

    With `current_only` (the default), only the current allocations count: those Nomad
    wants running (`DesiredStatus` "run"; a replaced, stopped or rescheduled one is
    "stop" or "evict"), minus finished ones of a job version older than the newest
    listed. The finished allocations of a batch job's earlier versions (the setup job's
    earlier runs) can stay at "run", so the version test keeps those out too; a
    service's allocations still running an older version during a rollout do count."""
    if current_only:
        wanted = [a for a in allocations if a.get("DesiredStatus") == "run"]
        versions = [int(a["JobVersion"]) for a in wanted if isinstance(a.get("JobVersion"), int)]
        newest = max(versions, default=None)
        allocations = [a for a in wanted
                       if newest is None or a.get("ClientStatus") not in _TERMINAL
                       or not isinstance(a.get("JobVersion"), int) or a["JobVersion"] >= newest]
    return sum(int((state or {}).get("Restarts") or 0)
               for alloc in allocations for state in (alloc.get("TaskStates") or {}).values())


def presence_warning(status: Any) -> str | None:
    """The warning for a job of `status` (a `_cluster.JobStatus`) that should be running and
    is not: not registered, registered without this deployment's mark, or stopped. None
    for the setup job (one-shot: absent or finished is normal) and for a job that is fine."""
    if status.role == "setup":  # Role is a str enum: Role.setup == "setup"
        return None
    if not status.exists:
        return f"{status.job_id}: not registered (run `matomo-nomad run`)"
    if not status.owned:
        return (f"{status.job_id}: exists without this deployment's mark "
                "(`matomo-nomad run --adopt` once you know whose it is)")
    if status.stopped:
        return f"{status.job_id}: stopped (run `matomo-nomad run` to start it again)"
    return None


def job_health(status: Any) -> Health | None:
    """`status.health` with `presence_warning` first among its warnings. A job that is
    absent or not ours has no health of its own: it gets one holding only the warning
    (counts zero, `desired` None: unknown); the setup job then stays None."""
    warning = presence_warning(status)
    if warning is None:
        return status.health
    base = status.health if status.health is not None else Health()
    return replace(base, warnings=[warning, *base.warnings])


def service_health(job: dict[str, Any], allocations: list[dict[str, Any]], label: str) -> Health:
    """Allocations running against the job's group counts, and restarts."""
    desired = 0 if job.get("Stop") else sum(int(g.get("Count") or 0) for g in job.get("TaskGroups") or [])
    running = sum(1 for a in allocations if a.get("ClientStatus") == "running" and a.get("DesiredStatus") == "run")
    warnings = []
    if running < desired:
        warnings.append(f"{label}: {running} of {desired} allocations running")
    count = restarts(allocations)
    return Health(running=running, desired=desired, restarts=count, warnings=warnings)


def launch_of(child_id: str, allocations: list[dict[str, Any]], status: str) -> Launch:
    match = _LAUNCH_RE.search(child_id)
    launched = datetime.fromtimestamp(int(match.group(1)), timezone.utc) if match else None
    states = [s for a in allocations for s in (a.get("TaskStates") or {}).values() if s]
    clients = [str(a.get("ClientStatus")) for a in allocations]
    if any(c == "failed" for c in clients) or any(s.get("Failed") for s in states):
        outcome = "failed"
    elif any(c == "running" for c in clients):
        outcome = "running"
    elif clients and all(c == "complete" for c in clients):
        outcome = "complete"
    elif status == "dead":
        outcome = "failed"  # ended without a completed allocation (stopped, lost)
    else:
        outcome = "pending"
    starts = [t for t in (parse_go_time(s.get("StartedAt")) for s in states) if t]
    ends = [t for t in (parse_go_time(s.get("FinishedAt")) for s in states) if t]
    start = min(starts) if starts else None
    end = max(ends) if ends and outcome in ("complete", "failed") else None
    duration = (end - start).total_seconds() if start and end else None
    return Launch(child_id, _iso(launched) or "", outcome, _iso(start), _iso(end),
                  None if duration is None else round(duration, 3))


def next_launch(job: dict[str, Any], now: datetime, gap: timedelta | None) -> datetime | None:
    from ._alerts import cron_fires

    periodic = job.get("Periodic") or {}
    if job.get("Stop") or not periodic or not periodic.get("Enabled", True):
        return None
    spec = periodic.get("Spec") or (periodic.get("Specs") or [None])[0]
    if not spec:
        return None
    days = 2 + (int(gap.total_seconds() // 86400) if gap else 0)
    start = now.astimezone(timezone.utc).replace(tzinfo=None) - timedelta(days=1)
    try:
        fires = cron_fires(spec, periodic.get("TimeZone") or "UTC", start, days + 1)
    except Exception:  # noqa: BLE001 - a cron our reader does not support: no next launch shown
        return None
    return next((f for f in fires if f > now), None)


def archiver_health(job: dict[str, Any], children: list[tuple[str, str, list[dict[str, Any]]]],
                    now: datetime | None = None) -> Health:
    """The archiver's launches (child id, child status, its allocations), next launch and warnings."""
    from ._alerts import cron_longest_gap

    now = now or datetime.now(timezone.utc)
    periodic = job.get("Periodic") or {}
    spec = periodic.get("Spec") or (periodic.get("Specs") or [None])[0]
    gap: timedelta | None
    try:
        gap = cron_longest_gap(spec, periodic.get("TimeZone") or "UTC") if spec else None
    except Exception:  # noqa: BLE001
        gap = None
    launches = sorted((launch_of(cid, allocs, status) for cid, status, allocs in children),
                      key=lambda launch: (launch.launched_at, launch.job_id))
    warnings: list[str] = []
    notes: list[str] = []
    successes = [parse_go_time(item.finished_at) or parse_go_time(item.launched_at) for item in launches
                 if item.outcome == "complete"]
    last_success = max((s for s in successes if s), default=None)
    finished = [item for item in launches if item.outcome in ("complete", "failed")]
    if finished and finished[-1].outcome == "failed":
        warnings.append(f"archiver: the latest finished launch {finished[-1].job_id} failed")
    paused = bool(job.get("Stop")) or not periodic.get("Enabled", True)
    submitted = datetime.fromtimestamp(int(job.get("SubmitTime") or 0) / 1e9, timezone.utc)
    if gap is not None and not paused:
        overdue = 2 * gap
        if last_success is not None:
            if now - last_success > overdue:
                warnings.append(f"archiver: no successful launch since {_iso(last_success)}, more than "
                                f"{_hours(overdue)} (twice the schedule's longest gap)")
        elif now - submitted > overdue:
            if overdue <= GC_THRESHOLD:
                warnings.append(f"archiver: no successful launch in the last {_hours(overdue)} "
                                "(twice the schedule's longest gap)")
            else:
                notes.append(f"no successful launch in the history Nomad keeps; cannot tell whether one "
                             f"completed in the last {_hours(overdue)}")
    oldest = parse_go_time(launches[0].launched_at) if launches else None
    if oldest is None or (gap is not None and now - oldest < 2 * gap) or now - oldest < GC_THRESHOLD:
        notes.append(GC_NOTE)
    return Health(
        running=sum(1 for item in launches if item.outcome == "running"),
        # Each launch is a job of its own, never updated: every allocation of the launches
        # Nomad still lists (a failed one that was rescheduled too), none older than its GC.
        restarts=sum(restarts(allocs, current_only=False) for _c, _s, allocs in children),
        launches=launches,
        next_launch=_iso(next_launch(job, now, gap)),
        last_success=_iso(last_success),
        warnings=warnings,
        notes=notes,
    )


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h"


def text_lines(health: Health, periodic: bool) -> list[str]:
    """The indented lines under a job's status line."""
    lines = []
    if health.desired is not None:
        lines.append(f"  running {health.running}/{health.desired}, "
                     f"restarts of the running allocations: {health.restarts}")
    elif periodic:
        lines.append(f"  restarts in the launches listed: {health.restarts}")
    else:
        lines.append(f"  restarts of the current allocations: {health.restarts}")
    for launch in health.launches:
        text = f"  launch {launch.job_id}: {launch.outcome}"
        if launch.started_at:
            text += f", started {launch.started_at}"
        if launch.duration_s is not None:
            text += f", took {launch.duration_s:g} s"
        lines.append(text)
    if periodic:
        if health.last_success:
            lines.append(f"  last successful launch finished {health.last_success}")
        lines.append(f"  next launch: {health.next_launch or 'none (paused or stopped)'}")
    lines += [f"  note: {n}" for n in health.notes]
    lines += [f"  WARNING: {w}" for w in health.warnings]
    return lines

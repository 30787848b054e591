"""Coordinated upgrades and queue moves: the ordered steps `run` takes around the setup job.

An upgrade is a running role job (one of ours) whose Matomo or plugin versions (its meta
`matomo_version` and `matomo_nomad_plugins`) differ from the rendering's. Matomo's own
advice for an update that loses no tracking request is to keep requests flowing into
QueuedTracking's queue, stop processing, update, resume (reference/matomo.md, "Updates
and a first install"); `run` does that, one step at a time, each waiting for the one
before:

1. pause the archiver: re-register it with `periodic { enabled = false }` (its old image
   kept), then wait, bounded by `archiver_timeout`, until no launch (a child job
   `<archiver>/periodic-<time>`, reference/nomad.md "Batch and periodic mechanics") is
   pending or running. If one still runs when the time is up, the upgrade stops there and
   changes nothing else: the archiver is re-registered as it was;
2. stop the queue processors: re-register their job with count 0, then wait until their
   allocations have ended (a processor stopped mid-batch loses nothing: QueuedTracking
   commits a batch before it removes it from Redis). Ingestion keeps accepting tracking
   requests, which wait in Redis;
3. run the setup job with the new image and wait for it (`Cluster._run_setup`);
4. roll admin and watch it (from the migration on, the old code answers every UI request,
   health checks included, with an error: Matomo 5.1.2 core/FrontController.php 388,
   678-701), then ingestion and the queue processors (their count restored), each watched;
5. resume the archiver: register the rendered archiver, new image, launches enabled.

Fewer queues is the same kind of ordered operation: the processors are stopped, admin
and ingestion roll to the new count (and their older allocations must have ended, so
nothing writes to a removed queue any more), then QueuedTracking's own
`Manager::moveSomeQueuesIfNeeded($new, $old)` moves the removed queues' requests into the
remaining ones (what saving the setting in its UI does: plugin 5.1.1 SystemSettings.php
388-406, Queue/Manager.php 91-121), run by the setup job's script in a mode of its own;
only then do the processors start again, with the new count. The move must not run
while a processor works a removed queue: it takes no lock, and both would read, re-queue
or track, and trim the same requests (Manager.php 106-121, Queue.php 85-120).

Every step is decided from the cluster, so a second `run` after a failure resumes where
the first stopped: a paused archiver (periodic disabled), processors at count 0, the
setup already done for this rendering (a role registered after it, or the setup job's
completed allocation), each role's version. `--detach` is refused for these changes:
each step's condition is the previous step's outcome, and a detached run would leave the
processors stopped and the archiver paused with nothing to resume them.

A downgrade is refused before anything changes: Matomo has no down-migrations (its
updater ignores a database newer than the code, core/Updater.php 432-433, and every web
request then fails).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import (
    ArchiverBusyError,
    ClusterError,
    ClusterTimeoutError,
    DowngradeError,
    SetupFailedError,
    UnsafeChangeError,
)
from ._model import Deployment, Role
from ._roles import META_PLUGINS, META_SETUP, SETUP_SCRIPT, plugin_versions

if TYPE_CHECKING:
    from ._cluster import Cluster, DeploymentProgress, JobPlan, JobRun, Plan, RunResult
    from ._render import RenderedRole

META_VERSION = "matomo_version"
META_PAUSED = "matomo_nomad_paused"
"""Archiver meta, set by `run` only while an upgrade has its launches disabled."""
META_STOPPED = "matomo_nomad_stopped"
"""Queue processor meta, set by `run` only while an upgrade or a queue move holds it at 0."""
META_MODE = "matomo_nomad_mode"
"""Setup job meta, set by `run` only on the version that moves queues."""
MOVE_QUEUES_MARKER = "matomo-nomad: move-queues"
"""Text only a setup.php that can move queues contains: an image built by an older
matomo-nomad has a script that would ignore the request and run a plain setup, exit 0,
and the processors would then start with the removed queues still full."""
EXIT_MOVE_UNSUPPORTED = 5
RUNNING = ("pending", "running")


# --- versions ------------------------------------------------------------------------------


_SPECIAL_FORMS = (("dev", 0), ("alpha", 1), ("a", 1), ("beta", 2), ("b", 2), ("RC", 3), ("rc", 3), ("#", 4),
                  ("pl", 5), ("p", 5))


def php_version_compare(left: str, right: str) -> int:
    """PHP's `version_compare($left, $right)`: -1, 0 or 1. Matomo orders versions with it
    (core/Updater.php, the update files it runs; "5.2.0-b2" < "5.2.0-rc1" < "5.2.0").
    A transcription of php-src ext/standard/versioning.c (php_canonicalize_version,
    compare_special_version_forms, php_version_compare); the tests check it against PHP."""
    if not left or not right:
        return 0 if not left and not right else (1 if left else -1)
    v1 = left if left[0] == "#" else _canonical(left)
    v2 = right if right[0] == "#" else _canonical(right)
    p1 = p2 = 0
    n1: int | None = 0
    n2: int | None = 0
    compare = 0
    while p1 < len(v1) and p2 < len(v2) and n1 is not None and n2 is not None:
        e1, e2 = v1.find(".", p1), v2.find(".", p2)
        n1 = None if e1 < 0 else e1
        n2 = None if e2 < 0 else e2
        s1 = v1[p1: len(v1) if n1 is None else n1]
        s2 = v2[p2: len(v2) if n2 is None else n2]
        if _digit(s1[:1]) and _digit(s2[:1]):
            compare = _sign(_strtol(s1) - _strtol(s2))
        elif not _digit(s1[:1]) and not _digit(s2[:1]):
            compare = _special(s1, s2)
        else:
            compare = _special("#N#", s2) if _digit(s1[:1]) else _special(s1, "#N#")
        if compare:
            break
        if n1 is not None:
            p1 = n1 + 1
        if n2 is not None:
            p2 = n2 + 1
    if compare == 0:
        if n1 is not None:
            compare = 1 if _digit(v1[p1:p1 + 1]) else php_version_compare(v1[p1:], "#N#")
        elif n2 is not None:
            compare = -1 if _digit(v2[p2:p2 + 1]) else php_version_compare("#N#", v2[p2:])
    return compare


def _digit(c: str) -> bool:
    return c != "" and c in "0123456789"


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def _strtol(text: str) -> int:
    digits = ""
    for c in text:
        if not _digit(c):
            break
        digits += c
    return int(digits or "0")


def _special(form1: str, form2: str) -> int:
    def order(form: str) -> int:
        return next((rank for name, rank in _SPECIAL_FORMS if form.startswith(name)), -1)

    return _sign(order(form1) - order(form2))


def _canonical(version: str) -> str:
    out = [version[0]]
    last = version[0]
    for c in version[1:]:
        is_digit, was_digit = _digit(c), _digit(last)
        if c in "-_+":
            if out[-1] != ".":
                out.append(".")
        elif (not was_digit and last != "." and is_digit) or (was_digit and not is_digit and c != "."):
            if out[-1] != ".":
                out.append(".")
            out.append(c)
        elif not (c.isascii() and c.isalnum()):
            if out[-1] != ".":
                out.append(".")
        else:
            out.append(c)
        last = c
    return "".join(out)


@dataclass(frozen=True)
class Versions:
    """What a job runs: Matomo's version and the plugins' (None: not recorded in its meta)."""

    matomo: str | None
    plugins: dict[str, str] | None

    @classmethod
    def of_job(cls, job: dict[str, Any]) -> "Versions":
        meta = job.get("Meta") or {}
        plugins = meta.get(META_PLUGINS)
        parsed = None
        if isinstance(plugins, str):
            parsed = dict(item.split("=", 1) for item in plugins.split(",") if "=" in item)
        return cls(meta.get(META_VERSION) or None, parsed)

    @classmethod
    def of_deployment(cls, d: Deployment) -> "Versions":
        return cls.of_job({"Meta": {META_VERSION: d.matomo.version, META_PLUGINS: plugin_versions(d)}})

    def short(self) -> str:
        return self.matomo or "an unrecorded version"


def _changes(running: Versions, wanted: Versions) -> tuple[list[str], list[str]]:
    """(upgrades, downgrades) from `running` to `wanted`, each "Name 1.0 -> 2.0"."""
    ups: list[str] = []
    downs: list[str] = []
    if running.matomo and wanted.matomo:
        order = php_version_compare(running.matomo, wanted.matomo)
        if order:
            (ups if order < 0 else downs).append(f"Matomo {running.matomo} -> {wanted.matomo}")
    if running.plugins is not None and wanted.plugins is not None:
        for name in sorted(set(running.plugins) | set(wanted.plugins)):
            before, after = running.plugins.get(name), wanted.plugins.get(name)
            if before is None:
                ups.append(f"{name} (new) {after}")
            elif after is None:
                ups.append(f"{name} {before} (removed)")
            elif (order := php_version_compare(before, after)) != 0:
                (ups if order < 0 else downs).append(f"{name} {before} -> {after}")
    return ups, downs


# --- what run will do ---------------------------------------------------------------------


_UNRECORDED = "the running jobs do not record their plugin versions (registered by an older matomo-nomad)"

PAUSE, STOP, SETUP, ROLL, MOVE, PROCESSORS, ARCHIVER = (
    "pause-archiver", "stop-processors", "setup", "roll", "move-queues", "roll-processors", "resume-archiver")


@dataclass(frozen=True)
class UpgradeStep:
    """One step of an upgrade or queue move, as `plan` shows it and `run` takes it."""

    number: int
    key: str  # PAUSE | STOP | SETUP | ROLL | MOVE | PROCESSORS | ARCHIVER
    title: str
    detail: str
    done: bool = False
    """Done already (by an earlier run): `run` checks it again and goes on."""


@dataclass(frozen=True)
class Upgrade:
    """The ordered operation `run` performs instead of registering every job at once."""

    summary: str
    """"upgrade 5.9.1 -> 5.10.0", "queues 4 -> 2", or both."""
    versions: dict[str, str]
    """Each running role job of ours: the Matomo version it runs."""
    steps: list[UpgradeStep]
    to_version: str
    upgrade: bool
    """Matomo or a plugin changes (not only the number of queues)."""
    queues_from: int | None = None
    queues_to: int | None = None

    @property
    def resuming(self) -> bool:
        return any(step.done for step in self.steps)

    def step(self, key: str) -> UpgradeStep | None:
        return next((s for s in self.steps if s.key == key), None)

    def lines(self) -> list[str]:
        """What `plan` prints."""
        head = f"{self.summary}: run takes these steps, in order, each waiting for the one before"
        if self.resuming:
            head += " (resuming: steps marked done are checked and not repeated)"
        out = [head + ":"]
        for step in self.steps:
            out.append(f"  {step.number}. {'(done) ' if step.done else ''}{step.title}: {step.detail}")
        if self.versions:
            out.append("  running now: " + ", ".join(f"{job} {version}" for job, version in self.versions.items()))
        return out


@dataclass(frozen=True)
class UpgradeEvent:
    """A line `run` reports as a step begins, progresses or ends."""

    step: int
    total: int
    title: str
    message: str

    def line(self) -> str:
        if not self.title:
            return self.message
        if not self.step:
            return f"{self.title}: {self.message}"
        return f"step {self.step}/{self.total} ({self.title}): {self.message}"


@dataclass(frozen=True)
class UpgradeRun:
    """How far `run` got."""

    upgrade: Upgrade
    completed: list[int] = field(default_factory=list)
    stopped_at: UpgradeStep | None = None
    reason: str | None = None
    state: list[str] = field(default_factory=list)
    resume: str | None = None

    @property
    def ok(self) -> bool:
        return self.stopped_at is None

    def report(self) -> list[str]:
        """Lines for a person: where it stopped, why, the cluster's state, how to resume."""
        total = len(self.upgrade.steps)
        if self.stopped_at is None:
            return [f"{self.upgrade.summary}: all {total} steps done"]
        step = self.stopped_at
        lines = [f"{self.upgrade.summary}: STOPPED at step {step.number} of {total} ({step.title}): {self.reason}"]
        lines += [f"  now: {line}" for line in self.state]
        if self.resume:
            lines.append(f"  to resume: {self.resume}")
        return lines


def assess(
    deployment: Deployment,
    rendered: dict[Role, "RenderedRole"],
    current: dict[Role, dict[str, Any] | None],
    jobs: list["JobPlan"],
    setup_allocations: Callable[[], list[dict[str, Any]]],
) -> Upgrade | None:
    """The ordered operation this rendering needs, decided from the jobs in the cluster,
    or None when the jobs can simply be registered. Raises DowngradeError for a
    downgrade, UnsafeChangeError for fewer queues that cannot be moved safely."""
    from ._cluster import ROLES, _owned

    wanted = Versions.of_deployment(deployment)
    fingerprint = rendered[Role.setup].job["Meta"][META_SETUP]
    owned = {role: job for role in ROLES if (job := current[role]) is not None and _owned(job, deployment, role)}

    # Downgrades, first: whatever else changes, nothing may move.
    downs: list[str] = []
    ups_by_job: dict[str, list[str]] = {}
    for role, job in owned.items():
        ups, job_downs = _changes(Versions.of_job(job), wanted)
        downs += [f"{job['ID']} runs {change}" for change in job_downs]
        if ups or (Versions.of_job(job).plugins is None and (job.get("Meta") or {}).get(META_SETUP) != fingerprint):
            # Registered by an older matomo-nomad, which did not record the plugins'
            # versions, and since then the image, plugins or database changed: take the
            # ordered path, it is safe for any change.
            ups_by_job[str(job["ID"])] = ups or [_UNRECORDED]
    setup_job = current[Role.setup]
    if setup_job is not None and not _owned(setup_job, deployment, Role.setup):
        setup_job = None
    setup_meta = (setup_job or {}).get("Meta") or {}
    completed: list[dict[str, Any] | None] = []

    def setup_completed() -> dict[str, Any] | None:
        """The setup job's allocation for its current version, if it completed (read once)."""
        if not completed:
            completed.append(None if setup_job is None else _completed_setup(setup_job, setup_allocations()))
        return completed[0]

    if setup_job is not None:
        setup_downs = _changes(Versions.of_job(setup_job), wanted)[1]
        if setup_downs and (alloc := setup_completed()) is not None:
            downs += [f"the database was migrated by {setup_job['ID']} ({change}; allocation "
                      f"{str(alloc.get('ID'))[:8]} completed)" for change in setup_downs]
    if downs:
        raise DowngradeError(
            f"matomo.version / plugins: refused, a downgrade: {'; '.join(downs)}. Matomo has no down-migrations: "
            "its updater ignores a database newer than the code, and every web request then fails "
            "(core/Updater.php, core/FrontController.php throwIfPiwikVersionIsOlderThanDBSchema). Keep the "
            "versions the cluster runs, or restore the database from a backup taken before the upgrade "
            "and deploy the older versions from scratch. Nothing was changed"
        )

    queues_from, queues_to = _queue_change(deployment, current)
    if not ups_by_job and queues_from is None:
        return None
    upgrade = bool(ups_by_job)

    # Done for this rendering: a role registered after it (run registers roles only
    # once the setup they carry has completed), or the setup job's own completed run.
    setup_done = any((job.get("Meta") or {}).get(META_SETUP) == fingerprint for job in owned.values()) or (
        setup_meta.get(META_SETUP) == fingerprint and not setup_meta.get(META_MODE) and setup_completed() is not None
    )
    changes = list(dict.fromkeys(change for ups in ups_by_job.values() for change in ups))
    summary_parts = []
    if upgrade:
        matomo = [c for c in changes if c.startswith("Matomo ")]
        plugins = [c for c in changes if not c.startswith("Matomo ") and c != _UNRECORDED]
        if matomo or plugins:
            text = "upgrade " + (matomo[0].removeprefix("Matomo ") if matomo else ", ".join(plugins))
            if matomo and plugins:
                text += f" ({', '.join(plugins)})"
        else:
            image = str(rendered[Role.admin].job["TaskGroups"][0]["Tasks"][0]["Config"]["image"])
            text = f"upgrade to {image} ({_UNRECORDED})"
        summary_parts.append(text)
    if queues_from is not None:
        summary_parts.append(f"queues {queues_from} -> {queues_to}")
    plans = {job.role: job for job in jobs}
    ids = {role: rendered[role].job_id for role in rendered}
    image = str(rendered[Role.admin].job["TaskGroups"][0]["Tasks"][0]["Config"]["image"])
    setup_needed_anyway = (not upgrade) and _setup_needed(deployment, rendered, current)

    steps: list[tuple[str, str, str, bool]] = []
    archiver = owned.get(Role.archiver)
    processors = owned.get(Role.queue_processor)
    if upgrade:
        if archiver is None:
            steps.append((PAUSE, "pause the archiver", f"no {ids[Role.archiver]} job runs: nothing to pause", True))
        elif not _periodic_enabled(archiver):
            steps.append((PAUSE, "pause the archiver", f"{ids[Role.archiver]} is paused already; a running launch "
                          "is waited for again", True))
        else:
            steps.append((PAUSE, "pause the archiver", f"re-register {ids[Role.archiver]} as it is but with "
                          "launches disabled (periodic enabled = false), then wait for a running launch to end "
                          "(at most --archiver-timeout; if it is still running then, the archiver is re-registered "
                          "as it was and nothing else changes)", False))
    processor_versions_differ = processors is not None and str(processors["ID"]) in ups_by_job
    if processors is None:
        steps.append((STOP, "stop the queue processors", f"no {ids[Role.queue_processor]} job runs", True))
    elif _count(processors) == 0:
        steps.append((STOP, "stop the queue processors", f"{ids[Role.queue_processor]} is at count 0 already; "
                      "its allocations must have ended", True))
    elif processor_versions_differ or queues_from is not None or not upgrade:
        steps.append((STOP, "stop the queue processors", f"re-register {ids[Role.queue_processor]} as it is but "
                      "with count 0 and wait until its allocations have ended; ingestion keeps accepting tracking "
                      "requests, which wait in Redis", False))
    else:
        steps.append((STOP, "stop the queue processors", f"{ids[Role.queue_processor]} runs "
                      f"{wanted.matomo} already", True))
    if upgrade or setup_needed_anyway:
        if setup_done:
            steps.append((SETUP, "run the setup job", f"done for this rendering already (setup {fingerprint})", True))
        else:
            steps.append((SETUP, "run the setup job", f"register {ids[Role.setup]} with {image} and wait for it: "
                          "it installs new plugins and migrates the database; from then on the old code answers "
                          "every admin UI request, health checks included, with an error until admin is rolled", False))
    roll_roles = [Role.admin, Role.ingestion] + ([] if queues_from is not None else [Role.queue_processor])
    roll_done = all(not plans[r].changed for r in roll_roles if r in plans)
    if queues_from is not None:
        detail = (f"register {ids[Role.admin]}, watch it, then {ids[Role.ingestion]}, watch it, and wait until "
                  f"their older allocations have ended (nothing writes to {_queues_text(queues_to, queues_from - 1)} "
                  "any more)")
    else:
        detail = (f"register {ids[Role.admin]} and watch it, then {ids[Role.ingestion]} and "
                  f"{ids[Role.queue_processor]} (count {deployment.roles.queue_processor.count} again), each watched")
    steps.append((ROLL, "roll admin, then ingestion" + ("" if queues_from is not None else " and the queue processors"),
                  detail, roll_done))
    if queues_from is not None:
        steps.append((MOVE, "move the removed queues' requests", f"run {ids[Role.setup]} in its move-queues mode: "
                      f"QueuedTracking's Manager::moveSomeQueuesIfNeeded({queues_to}, {queues_from}) re-queues "
                      f"the requests of {_queues_text(queues_to, queues_from - 1)} into "
                      f"{_queues_text(0, queues_to - 1)}", False))
        steps.append((PROCESSORS, "roll the queue processors", f"register {ids[Role.queue_processor]} with "
                      f"{queues_to} queue(s) (count {deployment.roles.queue_processor.count}) and watch it",
                      not plans[Role.queue_processor].changed if Role.queue_processor in plans else True))
    archiver_plan = plans.get(Role.archiver)
    title = "resume the archiver" if upgrade else "register the archiver"
    steps.append((ARCHIVER, title, f"register {ids[Role.archiver]} as rendered ({image}, launches enabled)",
                  archiver_plan is not None and not archiver_plan.changed))
    return Upgrade(
        summary=", ".join(summary_parts),
        versions={str(job["ID"]): Versions.of_job(job).short() for job in owned.values()},
        steps=[UpgradeStep(i, key, title, detail, done) for i, (key, title, detail, done) in enumerate(steps, 1)],
        to_version=deployment.matomo.version,
        upgrade=upgrade,
        queues_from=queues_from,
        queues_to=queues_to if queues_from is not None else None,
    )


def _setup_needed(deployment: Deployment, rendered: dict[Role, "RenderedRole"],
                  current: dict[Role, dict[str, Any] | None]) -> bool:
    from ._cluster import _setup_step

    return _setup_step(deployment, rendered, current).needed


def _queue_change(deployment: Deployment, current: dict[Role, dict[str, Any] | None]) -> tuple[int | None, int]:
    """(the number of queues the running writers and processors have, the rendering's)
    when it is lower in the rendering; (None, wanted) otherwise. A job with one of those
    ids that is not ours makes the move unsafe: it cannot be stopped or rolled first."""
    from ._cluster import _owned, _queues

    wanted = deployment.roles.queue_processor.queues
    involved = (Role.admin, Role.ingestion, Role.queue_processor)
    # The archiver's config names the count too, but it neither writes nor reads a queue;
    # it is registered last and must not make a finished move look unfinished.
    running = [(q, str(job["ID"]), role) for role in involved
               if (job := current.get(role)) is not None and (q := _queues(job)) is not None and _owned(job, deployment, role)]
    if not running or max(running)[0] <= wanted:
        return None, wanted
    most, job_id, _ = max(running)
    foreign = [str(job["ID"]) for role in involved if (job := current.get(role)) is not None and not _owned(job, deployment, role)]
    if foreign:
        removed = _queues_text(wanted, most - 1)
        raise UnsafeChangeError(
            f"roles.queue_processor.queues: {job_id} runs with {most} queues; lowering it to {wanted} means moving "
            f"the requests waiting in {removed} while nothing else writes or processes them, and "
            f"{', '.join(foreign)} exists without this deployment's mark, so it cannot be stopped or rolled first "
            f"(keep queues = {most}, or take the job over with run --adopt at the same count first)"
        )
    return most, wanted


def _completed_setup(job: dict[str, Any], allocations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The setup job's allocation for its current version, if it completed."""
    ours = [a for a in allocations if a.get("JobVersion") == job.get("Version")]
    if not ours:
        return None
    last = max(ours, key=lambda a: int(a.get("CreateIndex") or 0))
    return last if last.get("ClientStatus") == "complete" else None


def _queues_text(first: int, last: int) -> str:
    """"queue 3" or "queues 2-3"."""
    return f"queue {first}" if first == last else f"queues {first}-{last}"


def _periodic_enabled(job: dict[str, Any]) -> bool:
    periodic = job.get("Periodic") or {}
    return bool(periodic) and periodic.get("Enabled", True) is not False


def _count(job: dict[str, Any]) -> int:
    return sum(int(group.get("Count") or 0) for group in job.get("TaskGroups") or [])


def move_queues_command(queues_from: int, queues_to: int, script: str = SETUP_SCRIPT) -> tuple[str, list[str]]:
    """The setup job's command in its move-queues mode: only a setup.php that can move
    queues is run (an older one would ignore the mode, run a plain setup and exit 0)."""
    return "/bin/sh", [
        "-c",
        f"grep -q '{MOVE_QUEUES_MARKER}' {script} || "
        f"{{ echo \"setup: move-queues: {script} cannot move queues (an image built by an older matomo-nomad): "
        f"rebuild the image with matomo-nomad image\" >&2; exit {EXIT_MOVE_UNSUPPORTED}; }}; "
        f"exec php {script} --move-queues={queues_from}:{queues_to}",
    ]


# --- run ------------------------------------------------------------------------------------


class _Stop(Exception):
    """A step failed: the run stops there."""

    def __init__(self, step: UpgradeStep, reason: str, error: ClusterError, run: "JobRun | None" = None) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason
        self.error = error
        self.run = run


class Choreography:
    """Takes the steps of one Upgrade on a cluster, in order, stopping at the first failure."""

    def __init__(
        self,
        cluster: "Cluster",
        deployment: Deployment,
        plan: "Plan",
        rendered: dict[Role, "RenderedRole"],
        *,
        adopt: bool,
        on_progress: Callable[["DeploymentProgress"], None] | None,
        on_step: Callable[[UpgradeEvent], None] | None,
        watch_timeout: float,
        archiver_timeout: float,
    ) -> None:
        assert plan.upgrade is not None
        self.cluster = cluster
        self.client = cluster.client
        self.deployment = deployment
        self.ns = deployment.namespace
        self.plan = plan
        self.upgrade: Upgrade = plan.upgrade
        self.rendered = rendered
        self.adopt = adopt
        self.on_progress = on_progress
        self.on_step = on_step
        self.watch_timeout = watch_timeout
        self.archiver_timeout = archiver_timeout
        self.ids = {role: rendered[role].job_id for role in rendered}
        self.runs: dict[str, "JobRun"] = {}
        self.setup_runs: list["JobRun"] = []
        self.completed: list[int] = []
        self.setup_done = bool((s := self.upgrade.step(SETUP)) and s.done) or self.upgrade.step(SETUP) is None
        self._step: UpgradeStep | None = None

    # -- reporting --------------------------------------------------------------------

    def say(self, message: str) -> None:
        if self.on_step is not None:
            step = self._step
            total = len(self.upgrade.steps)
            self.on_step(UpgradeEvent(step.number if step else 0, total, step.title if step else self.upgrade.summary,
                                      message))

    # -- the whole run ----------------------------------------------------------------

    def run(self) -> "RunResult":
        from ._cluster import JobRun, RunResult

        handlers = {PAUSE: self._pause, STOP: self._stop_processors, SETUP: self._setup, ROLL: self._roll_all,
                    MOVE: self._move, PROCESSORS: self._roll_processors, ARCHIVER: self._resume_archiver}
        self.say(f"{len(self.upgrade.steps)} steps" + (" (resuming where an earlier run stopped)"
                                                       if self.upgrade.resuming else ""))
        stop: _Stop | None = None
        for step in self.upgrade.steps:
            self._step = step
            try:
                handlers[step.key]()
            except _Stop as stopped:
                stop = stopped
                break
            except ClusterError as error:
                stop = _Stop(step, str(error), error)
                break
            self.completed.append(step.number)
        self._step = None
        upgrade_run = UpgradeRun(self.upgrade, list(self.completed))
        if stop is not None:
            upgrade_run = UpgradeRun(self.upgrade, list(self.completed), stop.step, stop.reason, self._state(stop),
                                     self._resume_text(stop))
        else:
            self.say("done: every role runs " + self.upgrade.to_version if self.upgrade.upgrade else "done")
            self._register_monitoring()
        failing: Role | None = None
        if stop is not None and stop.run is None:
            # A failure outside a registration (a wait, a refused write): the job it concerns.
            failing = {PAUSE: Role.archiver, STOP: Role.queue_processor, SETUP: Role.setup, ROLL: Role.ingestion,
                       MOVE: Role.setup, PROCESSORS: Role.queue_processor, ARCHIVER: Role.archiver}[stop.step.key]
            if failing is Role.setup:
                self.setup_runs.append(JobRun(Role.setup, self.ids[Role.setup], "failed", failure=stop.reason,
                                              error=stop.error))
        jobs: list[JobRun] = list(self.setup_runs)
        where = f"the upgrade stopped at step {stop.step.number} ({stop.step.title})" if stop else ""
        for job_plan in self.plan.jobs:
            run = self.runs.get(job_plan.job_id)
            if run is None and stop is not None and failing is job_plan.role:
                run = JobRun(job_plan.role, job_plan.job_id, "failed", failure=stop.reason, error=stop.error)
            if run is None:
                if stop is not None:
                    run = JobRun(job_plan.role, job_plan.job_id, "not registered", failure=f"not registered: {where}")
                else:
                    run = JobRun(job_plan.role, job_plan.job_id, "unchanged", job_plan.job_modify_index,
                                 next_periodic_launch=job_plan.next_periodic_launch)
            jobs.append(run)
        return RunResult(self.plan, jobs, upgrade_run)

    def _register_monitoring(self) -> None:
        """The monitoring job is no step of the upgrade (it runs no Matomo): once the
        steps are done it is registered like any job, if it changed."""
        for job_plan in self.plan.jobs:
            if job_plan.role is Role.monitoring:
                self.runs[job_plan.job_id] = self.cluster._register(
                    self.deployment, self.rendered[Role.monitoring], job_plan, False, self.adopt, self.on_progress,
                    self.watch_timeout)

    # -- step 1: pause the archiver -------------------------------------------------------

    def _pause(self) -> None:
        job_id = self.ids[Role.archiver]
        job = self._job(Role.archiver)
        if job is None:
            self.say(f"no {job_id} job: nothing to pause")
        elif _periodic_enabled(job):
            paused = copy.deepcopy(job)
            paused["Periodic"] = {**paused["Periodic"], "Enabled": False}
            paused["Meta"] = {**(paused.get("Meta") or {}),
                              META_PAUSED: f"{self.upgrade.summary}: matomo-nomad run resumes it"}
            self._register(paused, job)
            self.say(f"{job_id} paused: no new launch until the upgrade resumes it (it keeps its old image)")
        else:
            self.say(f"{job_id} is paused already")
        running = self._wait_for_launches(job_id)
        if running:
            what = ", ".join(running)
            if self.setup_done:
                reason = (f"{what} still running after {self.archiver_timeout:g} s; the archiver stays paused "
                          "(the database is migrated already: its old image must not launch again)")
            else:
                self._unpause()
                reason = (f"{what} still running after {self.archiver_timeout:g} s: the upgrade stopped before "
                          f"changing anything else, and {job_id} was re-registered as it was (launches enabled)")
            raise _Stop(self._step, reason, ArchiverBusyError(f"{job_id}: {reason}"))  # type: ignore[arg-type]

    def _wait_for_launches(self, job_id: str) -> list[str]:
        """Launches still pending or running when the archiver timeout is up ([] when none)."""
        deadline = time.monotonic() + self.archiver_timeout
        index = 0
        announced: set[str] = set()
        from ._cluster import _wait

        while True:
            reply = self.client.get("jobs", namespace=self.ns, params={"prefix": f"{job_id}/periodic-"},
                                    wait_index=index or None, wait=_wait(deadline))
            index = max(index, reply.index)
            running = [str(j.get("ID")) for j in reply.data or []
                       if j.get("ParentID") == job_id and j.get("Status") in RUNNING]
            for child in running:
                if child not in announced:
                    announced.add(child)
                    self.say(f"waiting for the running launch {child} to finish (at most {self.archiver_timeout:g} s)")
            if not running:
                if announced:
                    self.say("the running launch finished")
                else:
                    self.say("no launch is running")
                return []
            if time.monotonic() > deadline:
                return running

    def _unpause(self) -> None:
        job = self._job(Role.archiver)
        if job is None or _periodic_enabled(job):
            return
        resumed = copy.deepcopy(job)
        resumed["Periodic"] = {**resumed["Periodic"], "Enabled": True}
        resumed["Meta"] = {k: v for k, v in (resumed.get("Meta") or {}).items() if k != META_PAUSED}
        self._register(resumed, job)

    # -- step 2: stop the queue processors ---------------------------------------------

    def _stop_processors(self) -> None:
        job_id = self.ids[Role.queue_processor]
        job = self._job(Role.queue_processor)
        if job is None:
            self.say(f"no {job_id} job: nothing to stop")
            return
        step = self._step
        assert step is not None
        if _count(job) > 0 and not step.done:
            self._register(self._stopped(job), job)
            self.say(f"{job_id} set to count 0; ingestion keeps accepting tracking requests, which wait in Redis")
        elif _count(job) > 0:
            self.say(f"{job_id} runs {Versions.of_job(job).short()} already: left running")
            return
        self._wait_for_allocations_to_end(job_id, lambda alloc: True, "stopped")

    def _wait_for_allocations_to_end(self, job_id: str, which: Callable[[dict[str, Any]], bool], what: str) -> None:
        from ._cluster import _wait

        deadline = time.monotonic() + self.watch_timeout
        index = 0
        while True:
            reply = self.client.get("job", job_id, "allocations", namespace=self.ns, wait_index=index or None,
                                    wait=_wait(deadline))
            index = max(index, reply.index)
            live = [a for a in reply.data or [] if which(a) and a.get("ClientStatus") in RUNNING]
            if not live:
                self.say(f"{job_id}: no allocation left running ({what})")
                return
            if time.monotonic() > deadline:
                names = ", ".join(str(a.get("ID"))[:8] for a in live[:3])
                reason = (f"{job_id}: allocation(s) {names} still {live[0].get('ClientStatus')} after "
                          f"{self.watch_timeout:g} s (their kill timeout, or a client that does not answer)")
                raise _Stop(self._step, reason, ClusterTimeoutError(reason))  # type: ignore[arg-type]

    # -- step 3: the setup job ---------------------------------------------------------------

    def _setup(self) -> None:
        step = self._step
        assert step is not None
        if step.done:
            self.say("done for this rendering already: not run again")
            return
        job_id = self.ids[Role.setup]
        self.say(f"running {job_id} with {self._image()}")
        run = self.cluster._run_setup(self.deployment, self.rendered[Role.setup], self._job(Role.setup),
                                      self.adopt, self.watch_timeout, after="")
        self.setup_runs.append(run)
        if run.error is not None:
            raise _Stop(step, str(run.failure), run.error, run)
        self.setup_done = True
        if self.upgrade.upgrade:
            self.say(f"{job_id} completed: the database is at {self.upgrade.to_version}; until admin is rolled, "
                     "the admin UI answers every request (health checks included) with an error, while ingestion "
                     "keeps queueing tracking requests")
        else:
            self.say(f"{job_id} completed")

    # -- step 4: roll the roles --------------------------------------------------------------

    def _roll_all(self) -> None:
        from ._cluster import _concurrently

        if self.upgrade.upgrade:
            self.say(f"rolling {self.ids[Role.admin]}: its old allocations answer with an error until replaced")
        self._roll(Role.admin)
        rest = [Role.ingestion] + ([] if self.upgrade.queues_from is not None else [Role.queue_processor])
        self.say("rolling " + " and ".join(self.ids[r] for r in rest))
        failures: list[_Stop] = []

        def one(role: Role) -> None:
            try:
                self._roll(role)
            except _Stop as stop:
                failures.append(stop)

        _concurrently(one, rest)
        if failures:
            raise failures[0]
        if self.upgrade.queues_from is not None:
            for role in (Role.admin, Role.ingestion):
                job = self._job(role)
                if job is not None:
                    version = job.get("Version")
                    self._wait_for_allocations_to_end(self.ids[role], lambda a, v=version: a.get("JobVersion") != v,
                                                      f"older versions, which still had {self.upgrade.queues_from} queues")

    def _roll(self, role: Role) -> None:
        from ._cluster import JobRun

        job_id = self.ids[role]
        try:
            current = self.cluster._current(job_id, self.ns)
            job_plan = self.cluster._plan_job(self.deployment, self.rendered[role], current)
            run = self.cluster._run_job(self.deployment, self.rendered[role], job_plan, False, self.adopt,
                                        self.on_progress, self.watch_timeout)
        except ClusterError as error:
            run = JobRun(role, job_id, "failed", failure=str(error), error=error)
        self.runs[job_id] = run
        if run.error is not None:
            reason = str(run.failure)
            if role is Role.queue_processor and self.upgrade.upgrade and self.setup_done:
                reason += self._stop_reverted_processors()
            raise _Stop(self._step, reason, run.error, run)  # type: ignore[arg-type]
        self.say(f"{job_id}: {run.outcome}" + (f" (deployment {run.deployment.status})" if run.deployment else ""))

    def _stop_reverted_processors(self) -> str:
        """After a failed rollout of the processors, Nomad's auto_revert may have gone
        back to their last stable version: the old code, counted up again, now
        processing against the migrated database. Hold them at 0 again."""
        job: dict[str, Any] | None = None
        try:
            job = self._job(Role.queue_processor)
            if job is None or _count(job) == 0 or Versions.of_job(job).matomo == self.upgrade.to_version:
                return ""
            self._register(self._stopped(job), job)
        except ClusterError as error:
            return (f"; Nomad reverted {self.ids[Role.queue_processor]} to {Versions.of_job(job or {}).short()} "
                    f"and stopping it again failed ({error}): stop it by hand (nomad job scale "
                    f"{self.ids[Role.queue_processor]} 0), its code must not process requests against the "
                    "migrated database")
        return (f"; Nomad reverted {self.ids[Role.queue_processor]} to {Versions.of_job(job).short()}, whose code "
                "must not process requests against the migrated database: it was stopped again (count 0)")

    # -- queues ---------------------------------------------------------------------------

    def _move(self) -> None:
        from ._cluster import JobRun, META_ATTEMPT, _task_failures

        old, new = self.upgrade.queues_from, self.upgrade.queues_to
        assert old is not None and new is not None
        rendered = self.rendered[Role.setup]
        job_id = rendered.job_id
        job = copy.deepcopy(rendered.job)
        task = job["TaskGroups"][0]["Tasks"][0]
        command, args = move_queues_command(old, new)
        task["Config"] = {**task["Config"], "command": command, "args": args}
        job["Meta"] = {**job["Meta"], META_ATTEMPT: uuid.uuid4().hex[:12], META_MODE: f"move-queues {old}->{new}"}
        current = self._job(Role.setup)
        self.say(f"running {job_id} in its move-queues mode: {_queues_text(new, old - 1)} into "
                 f"{_queues_text(0, new - 1)}")
        reply = self.client.post("jobs", namespace=self.ns, body={
            "Job": job, "EnforceIndex": True, "JobModifyIndex": int((current or {}).get("JobModifyIndex") or 0),
            "PolicyOverride": False, "PreserveCounts": False}).data or {}
        modify_index = int(reply.get("JobModifyIndex") or 0)
        eval_id = str(reply.get("EvalID") or "")
        alloc = self.cluster._wait_for_batch(job_id, self.ns, modify_index, eval_id,
                                             time.monotonic() + self.watch_timeout, what="the queue move", after="")
        if alloc.get("ClientStatus") == "complete":
            self.setup_runs.append(JobRun(Role.setup, job_id, "queues moved", modify_index, eval_id))
            self.say(f"{job_id} moved the requests of {_queues_text(new, old - 1)}")
            return
        short = str(alloc.get("ID"))[:8]
        why = _task_failures([alloc])
        reason = (f"{job_id}: the queue move's allocation {short} {alloc.get('ClientStatus')}"
                  + (f": {why}" if why else "")
                  + f"; its output: nomad alloc logs -namespace {self.ns} -stderr {short} {task['Name']}")
        error = SetupFailedError(reason)
        run = JobRun(Role.setup, job_id, "failed", modify_index, eval_id, failure=reason, error=error)
        self.setup_runs.append(run)
        raise _Stop(self._step, reason, error, run)  # type: ignore[arg-type]

    def _roll_processors(self) -> None:
        self._roll(Role.queue_processor)

    # -- step 5: the archiver -----------------------------------------------------------------

    def _resume_archiver(self) -> None:
        self._roll(Role.archiver)

    # -- helpers -------------------------------------------------------------------------------

    def _job(self, role: Role) -> dict[str, Any] | None:
        return self.cluster._current(self.ids[role], self.ns)

    def _image(self) -> str:
        return str(self.rendered[Role.admin].job["TaskGroups"][0]["Tasks"][0]["Config"]["image"])

    def _stopped(self, job: dict[str, Any]) -> dict[str, Any]:
        """The job as it is, at count 0, marked as stopped by this upgrade."""
        stopped = copy.deepcopy(job)
        for group in stopped.get("TaskGroups") or []:
            group["Count"] = 0
        stopped["Meta"] = {**(stopped.get("Meta") or {}),
                           META_STOPPED: f"{self.upgrade.summary}: matomo-nomad run starts it again"}
        return stopped

    def _register(self, job: dict[str, Any], current: dict[str, Any]) -> None:
        """Register a changed copy of a running job, with the check-index of the one read
        (ownership was checked before the first step)."""
        self.client.post("jobs", namespace=self.ns, body={
            "Job": job, "EnforceIndex": True, "JobModifyIndex": int(current.get("JobModifyIndex") or 0),
            "PolicyOverride": False, "PreserveCounts": False})

    def _state(self, stop: _Stop) -> list[str]:
        """The cluster as the run leaves it, read again; what it means for tracking."""
        lines: list[str] = []
        try:
            jobs = {role: self._job(role) for role in (Role.admin, Role.ingestion, Role.queue_processor, Role.archiver)}
        except ClusterError as error:
            return [f"the cluster did not answer ({error}); check it with `matomo-nomad status`"]
        for role, job in jobs.items():
            job_id = self.ids[role]
            if job is None:
                lines.append(f"{job_id}: not registered")
                continue
            version = Versions.of_job(job).short()
            if role is Role.archiver:
                state = "paused (no launch)" if not _periodic_enabled(job) else "launching on schedule"
                lines.append(f"{job_id}: {version}, {state}")
            elif role is Role.queue_processor:
                if _count(job) == 0:
                    lines.append(f"{job_id}: stopped (count 0): nothing processes the queued tracking requests "
                                 "until the upgrade starts it again")
                else:
                    lines.append(f"{job_id}: {version}, count {_count(job)}")
            elif role is Role.ingestion:
                lines.append(f"{job_id}: {version}, accepting tracking requests, which are queued in Redis")
            else:
                lines.append(f"{job_id}: {version}")
        if self.setup_done and self.upgrade.upgrade:
            admin = jobs.get(Role.admin)
            if admin is not None and Versions.of_job(admin).matomo != self.upgrade.to_version:
                lines.append(f"the database is at {self.upgrade.to_version}: the admin UI answers every request with "
                             f"an error until {self.ids[Role.admin]} runs {self.upgrade.to_version}")
            else:
                lines.append(f"the database is at {self.upgrade.to_version}")
        elif self.upgrade.upgrade and any(run.error is not None for run in self.setup_runs):
            lines.append("the setup job did not complete: exit 3 and 4 stop it before it changes anything, other "
                         "failures may leave a migration half done (its output says how far it got); the roles "
                         "still run their old versions")
        elif self.upgrade.upgrade:
            lines.append("the database has not been migrated")
        return lines

    def _resume_text(self, stop: _Stop) -> str:
        done = [n for n in self.completed]
        step = stop.step
        if step.key == PAUSE and not self.setup_done:
            return ("nothing changed; run `matomo-nomad run` again when the archiver's launch has ended "
                    "(or with a longer --archiver-timeout)")
        already = f"steps {done[0]}-{done[-1]} are done and are checked, not repeated; " if done else ""
        return (f"fix the cause above, then run `matomo-nomad run` again with the same file: {already}"
                f"it continues at step {step.number}")

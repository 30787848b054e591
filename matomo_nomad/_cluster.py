"""The jobs on a cluster: plan, run (setup first, then register and watch), status, destroy.

The last stage of the flow: it takes rendered jobs and calls Nomad, and never decides
what a job contains. The four roles are independent jobs, so every operation runs them
concurrently; the setup job comes first whenever the database has not been prepared
for what the roles run (their meta says which setup they were started after). An
upgrade (a new Matomo or plugin version) or fewer queues is instead an ordered sequence
of steps, each waiting for the one before: see `_upgrade`. Each job
carries this deployment's mark (meta matomo_nomad_deployment and matomo_nomad_role);
status and destroy act only on jobs that carry it, and run refuses to overwrite a job
that does not, unless told to adopt it.
"""

from __future__ import annotations

import difflib
import re
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from ._errors import (
    ClusterError,
    DeploymentFailedError,
    DetachRefusedError,
    NotFoundError,
    NotOwnedError,
    SetupFailedError,
)
from ._model import MATOMO_ROLES, Deployment, Role
from ._nomad_api import ConnectionSettings, NomadClient
from ._nomad_health import Health, archiver_health, restarts, service_health
from ._render import RenderedRole, render
from ._roles import META_QUEUES, META_SETUP
from ._upgrade import SETUP as UPGRADE_SETUP
from ._upgrade import Choreography, Upgrade, UpgradeEvent, UpgradeRun, assess

T = TypeVar("T")
TERMINAL_DEPLOYMENT = {"successful", "failed", "cancelled"}
ROLES = tuple(role for role in MATOMO_ROLES if role is not Role.setup)
"""The long-lived roles that run Matomo; the setup job is run before them, not beside
them. The monitoring job, if any, is registered beside them and needs no setup."""
META_ATTEMPT = "matomo_nomad_attempt"
"""Setup job meta, set by `run` only: a new value makes each attempt a new job version
(Nomad places nothing for an unchanged batch job whose allocation failed)."""
# Task events that follow a failure without naming its cause (nomad/structs: TaskNotRestarting, ...).
_AFTERMATH = {"Not Restarting", "Restarting", "Killing", "Killed", "Sibling Task Failed", "Restart Signal", "Signaling"}


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One changed field of a job, as a path through Nomad's plan Diff."""

    path: str
    kind: str  # "added" | "deleted" | "edited"
    old: str | None
    new: str | None


@dataclass(frozen=True)
class GroupChanges:
    """What the scheduler would do to one task group (plan Annotations)."""

    group: str
    place: int = 0
    in_place: int = 0
    destructive: int = 0
    canary: int = 0
    stop: int = 0
    migrate: int = 0
    ignore: int = 0

    def summary(self) -> str:
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.place, "to place"),
                (self.in_place, "in-place update(s)"),
                (self.destructive, "destructive update(s)"),
                (self.canary, "canary(ies)"),
                (self.stop, "to stop"),
                (self.migrate, "to migrate"),
                (self.ignore, "unchanged"),
            )
            if n
        ]
        return f"{self.group}: " + (", ".join(parts) if parts else "nothing to do")


@dataclass(frozen=True)
class JobPlan:
    role: Role
    job_id: str
    change: str  # "create" | "update" | "none"
    exists: bool
    owned: bool
    job_modify_index: int
    changes: list[FieldChange] = field(default_factory=list)
    template_diff: list[str] = field(default_factory=list)
    groups: list[GroupChanges] = field(default_factory=list)
    placement_failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    next_periodic_launch: str | None = None

    @property
    def changed(self) -> bool:
        return self.change != "none"


@dataclass(frozen=True)
class SetupStep:
    """Whether `run` runs the setup job first, decided from the jobs in the cluster."""

    job_id: str
    needed: bool
    reason: str
    fingerprint: str


@dataclass(frozen=True)
class Plan:
    deployment: str
    namespace: str
    jobs: list[JobPlan]
    setup: SetupStep | None = None
    upgrade: Upgrade | None = None
    """Set when `run` takes ordered steps (an upgrade, fewer queues) instead of
    registering every changed job at once."""

    @property
    def changed(self) -> bool:
        return (
            any(job.changed for job in self.jobs)
            or (self.setup is not None and self.setup.needed)
            or (self.upgrade is not None and not all(step.done for step in self.upgrade.steps))
        )

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for job in document["jobs"]:
            job["role"] = job["role"].value
        return document


@dataclass(frozen=True)
class GroupProgress:
    group: str
    desired: int
    placed: int
    healthy: int
    unhealthy: int


@dataclass(frozen=True)
class DeploymentProgress:
    job_id: str
    deployment_id: str
    status: str
    description: str
    groups: list[GroupProgress]

    def line(self) -> str:
        groups = ", ".join(f"{g.group} {g.healthy}/{g.placed}/{g.desired}" for g in self.groups)
        return f"{self.job_id}: {self.status} ({groups} healthy/placed/desired)"


@dataclass(frozen=True)
class JobRun:
    role: Role
    job_id: str
    outcome: str  # "registered" | "unchanged" | "failed" | "completed" (setup) | "queues moved" (setup) | "not registered"
    job_modify_index: int = 0
    eval_id: str = ""
    deployment: DeploymentProgress | None = None
    next_periodic_launch: str | None = None
    failure: str | None = None
    error: ClusterError | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RunResult:
    plan: Plan
    jobs: list[JobRun]
    upgrade: UpgradeRun | None = None
    """For an upgrade or a queue move: the steps done, and where and why it stopped."""

    @property
    def ok(self) -> bool:
        return all(job.error is None for job in self.jobs)

    def first_error(self) -> ClusterError | None:
        return next((job.error for job in self.jobs if job.error is not None), None)


@dataclass(frozen=True)
class JobStatus:
    role: Role
    job_id: str
    exists: bool
    owned: bool
    status: str = "absent"
    version: int | None = None
    stopped: bool = False
    in_sync: bool | None = None
    deployment: DeploymentProgress | None = None
    allocations: dict[str, int] = field(default_factory=dict)
    health: Health | None = None  # from the Nomad API alone (_nomad_health)


@dataclass(frozen=True)
class JobDestroy:
    role: Role
    job_id: str
    outcome: str  # "stopped" | "purged" | "absent" | "refused"
    eval_id: str = ""


# --- the cluster ---------------------------------------------------------------------


class Cluster:
    """Operations on a Nomad cluster for one deployment's jobs.

    >>> cluster = Cluster.from_env()
    >>> plan = cluster.plan(deployment)
    """

    def __init__(self, client: NomadClient) -> None:
        self.client = client

    @classmethod
    def from_env(cls, **overrides: Any) -> "Cluster":
        """Connect like the nomad CLI: NOMAD_* variables, overridden by keyword arguments."""
        return cls(NomadClient(ConnectionSettings.from_env(**overrides)))

    # -- targets ------------------------------------------------------------------

    def target(self, deployment: Deployment) -> Deployment:
        """The deployment as it will be submitted: a namespace or region written in the
        deployment file wins; where the file leaves them out, NOMAD_NAMESPACE and
        NOMAD_REGION apply, as they do for the nomad CLI."""
        update: dict[str, str] = {}
        settings = self.client.settings
        if "namespace" not in deployment.model_fields_set and settings.namespace:
            update["namespace"] = settings.namespace
        if "region" not in deployment.model_fields_set and settings.region:
            update["region"] = settings.region
        return deployment.model_copy(update=update) if update else deployment

    def scoped(self, deployment: Deployment) -> "Cluster":
        """This cluster, sending the region the deployment file names, if it names one
        (a region in the file wins over NOMAD_REGION, as the namespace does)."""
        if "region" in deployment.model_fields_set and deployment.region != self.client.settings.region:
            return Cluster(self.client.with_region(deployment.region))
        return self

    # -- plan ---------------------------------------------------------------------

    def plan(self, deployment: Deployment) -> Plan:
        """What registering the rendered jobs would change, job by job."""
        scoped = self.scoped(deployment)
        if scoped is not self:
            return scoped.plan(deployment)
        return self._plan(self.target(deployment))[0]

    def _plan(self, target: Deployment) -> tuple[Plan, dict[Role, RenderedRole], dict[Role, dict[str, Any] | None]]:
        rendered = {r.role: r for r in render(target)}
        current = dict(zip(rendered, _concurrently(lambda r: self._current(r.job_id, target.namespace), rendered.values())))
        # Every job but the setup job, which `run` takes first, apart (see _setup_step).
        registered = [role for role in rendered if role is not Role.setup]
        jobs = _concurrently(lambda role: self._plan_job(target, rendered[role], current[role]), registered)
        setup = _setup_step(target, rendered, current)
        upgrade = assess(target, rendered, current, jobs, lambda: self._allocations(rendered[Role.setup].job_id, target))
        if upgrade is not None:
            step = upgrade.step(UPGRADE_SETUP)
            if step is None:
                setup = SetupStep(setup.job_id, False, "not needed: the queue move needs no setup", setup.fingerprint)
            else:
                setup = SetupStep(setup.job_id, not step.done, f"step {step.number} of {upgrade.summary}: "
                                  + ("done already" if step.done else step.detail), setup.fingerprint)
        return Plan(target.name, target.namespace, jobs, setup, upgrade), rendered, current

    def _allocations(self, job_id: str, deployment: Deployment) -> list[dict[str, Any]]:
        try:
            return self.client.get("job", job_id, "allocations", namespace=deployment.namespace).data or []
        except NotFoundError:
            return []

    def _plan_job(self, deployment: Deployment, rendered: RenderedRole, current: dict[str, Any] | None) -> JobPlan:
        ns = deployment.namespace
        reply = self.client.post(
            "job", rendered.job_id, "plan", namespace=ns, body={"Job": rendered.job, "Diff": True, "PolicyOverride": False}
        ).data
        if not isinstance(reply, dict):
            from ._errors import MalformedResponseError

            raise MalformedResponseError(f"POST /v1/job/{rendered.job_id}/plan: the answer is not a plan object")
        diff = reply.get("Diff") or {}
        kind = (diff.get("Type") or "None").lower()
        change = "create" if current is None else ("none" if kind == "none" else "update")
        changes, template_diff = _flatten_diff(diff) if change == "update" else ([], [])
        launch = reply.get("NextPeriodicLaunch")
        return JobPlan(
            role=rendered.role,
            job_id=rendered.job_id,
            change=change,
            exists=current is not None,
            owned=current is None or _owned(current, deployment, rendered.role),
            job_modify_index=int(reply.get("JobModifyIndex") or 0),
            changes=changes,
            template_diff=template_diff,
            groups=_group_changes(reply.get("Annotations")),
            placement_failures=_placement_failures(reply.get("FailedTGAllocs")),
            warnings=[w for w in (reply.get("Warnings") or "").split("\n") if w.strip()],
            next_periodic_launch=launch if launch and not str(launch).startswith("0001-") else None,
        )

    def _current(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self.client.get("job", job_id, namespace=namespace).data
        except NotFoundError:
            return None

    # -- run ----------------------------------------------------------------------

    def run(
        self,
        deployment: Deployment,
        *,
        detach: bool = False,
        adopt: bool = False,
        on_progress: Callable[[DeploymentProgress], None] | None = None,
        watch_timeout: float = 3600.0,
        check_secrets: bool = True,
        on_setup: Callable[[SetupStep], None] | None = None,
        on_step: Callable[[UpgradeEvent], None] | None = None,
        archiver_timeout: float = 3600.0,
    ) -> RunResult:
        """Plan, run the setup job if the plan says so, then register each changed job
        (check-index) and wait for its deployment (unless `detach`).

        First, unless `check_secrets` is off, every secret the jobs read must exist:
        a template waiting on a missing Nomad Variable blocks its allocation forever.
        The setup job is always waited for, `detach` or not: the roles must not start
        against a database it has not prepared. If it fails, nothing else is registered.

        An upgrade or fewer queues (`plan.upgrade`) is taken as ordered steps instead
        (`_upgrade`), each reported through `on_step` (`on_setup` is not called: the
        setup job is one of the steps); a running archiver launch is waited for at most
        `archiver_timeout` seconds. `detach` is refused for it (DetachRefusedError), and
        so is a job with one of our ids that lacks our mark, unless `adopt`.
        """
        scoped = self.scoped(deployment)
        if scoped is not self:
            return scoped.run(deployment, detach=detach, adopt=adopt, on_progress=on_progress,
                              watch_timeout=watch_timeout, check_secrets=check_secrets, on_setup=on_setup,
                              on_step=on_step, archiver_timeout=archiver_timeout)
        target = self.target(deployment)
        if check_secrets:
            self._require_secrets(target)
        plan, rendered, current = self._plan(target)
        if plan.upgrade is not None:
            if detach:
                raise DetachRefusedError(
                    f"run --detach: refused for {plan.upgrade.summary}: each step starts only once the one before "
                    "has ended on the cluster (the archiver's launch, the processors' allocations, the setup job, "
                    "each rollout), and a detached run would leave the queue processors stopped and the archiver "
                    "paused with nothing to start them again; run without --detach (nothing was changed)"
                )
            foreign = [str(job["ID"]) for role, job in current.items()
                       if job is not None and not _owned(job, target, role)]
            if foreign and not adopt:
                raise NotOwnedError(
                    f"{', '.join(foreign)}: exists without deployment {target.name!r}'s mark; {plan.upgrade.summary} "
                    "changes every job step by step and would stop halfway at it: nothing was changed (run with "
                    "--adopt to take it over)"
                )
            return Choreography(self, target, plan, rendered, adopt=adopt, on_progress=on_progress, on_step=on_step,
                                watch_timeout=watch_timeout, archiver_timeout=archiver_timeout).run()
        runs: list[JobRun] = []
        if plan.setup is not None and plan.setup.needed:
            if on_setup is not None:
                on_setup(plan.setup)
            # Every role runs code that expects the database this setup produces (new
            # tables, plugin installs, migrations): nothing else is registered before it.
            setup = self._run_setup(target, rendered[Role.setup], current[Role.setup], adopt, watch_timeout)
            runs.append(setup)
            if setup.error is not None:
                skipped = [
                    JobRun(job.role, job.job_id, "not registered", failure="not registered: the setup job did not succeed")
                    for job in plan.jobs
                ]
                return RunResult(plan, runs + skipped)

        return RunResult(plan, runs + _concurrently(
            lambda job_plan: self._register(target, rendered[job_plan.role], job_plan, detach, adopt, on_progress,
                                            watch_timeout),
            plan.jobs,
        ))

    def _run_setup(
        self,
        deployment: Deployment,
        rendered: RenderedRole,
        current: dict[str, Any] | None,
        adopt: bool,
        watch_timeout: float,
        after: str = "; nothing else was registered, the running jobs are unchanged; fix the cause and run again",
    ) -> JobRun:
        """Register a new version of the setup job and wait until its allocation ends.
        `after` ends a failure's message: what the failure means for the other jobs (an
        upgrade reports their state itself)."""
        ns = deployment.namespace
        job_id = rendered.job_id
        try:
            if current is not None and not _owned(current, deployment, Role.setup) and not adopt:
                raise NotOwnedError(
                    f"{job_id}: a job with this id exists but was not registered by deployment "
                    f"{deployment.name!r} (no matching meta); not overwriting it (run with --adopt to take it over)"
                )
            job = {**rendered.job, "Meta": {**rendered.job["Meta"], META_ATTEMPT: uuid.uuid4().hex[:12]}}
            reply = self.client.post(
                "jobs",
                namespace=ns,
                body={
                    "Job": job,
                    # The source as rendered; the attempt id is the one field run adds.
                    "Submission": {"Source": rendered.hcl, "Format": "hcl2", "VariableFlags": {}, "Variables": ""},
                    "EnforceIndex": True,
                    "JobModifyIndex": int((current or {}).get("JobModifyIndex") or 0),
                    "PolicyOverride": False,
                    "PreserveCounts": False,
                },
            ).data or {}
            modify_index = int(reply.get("JobModifyIndex") or 0)
            eval_id = str(reply.get("EvalID") or "")
            alloc = self._wait_for_batch(job_id, ns, modify_index, eval_id, time.monotonic() + watch_timeout,
                                         after=after)
        except ClusterError as error:
            return JobRun(Role.setup, job_id, "failed", failure=str(error), error=error)
        if alloc.get("ClientStatus") == "complete":
            return JobRun(Role.setup, job_id, "completed", modify_index, eval_id)
        why = _task_failures([alloc])
        short = str(alloc.get("ID"))[:8]
        error = SetupFailedError(
            f"{job_id}: allocation {short} {alloc.get('ClientStatus')}"
            + (f": {why}" if why else "")
            + f"; its output: nomad alloc logs -namespace {ns} -stderr {short} {rendered.job['TaskGroups'][0]['Tasks'][0]['Name']}"
            + after
        )
        return JobRun(Role.setup, job_id, "failed", modify_index, eval_id, failure=str(error), error=error)

    def _wait_for_batch(self, job_id: str, namespace: str, modify_index: int, eval_id: str, deadline: float,
                        what: str = "the setup job", after: str = "; nothing else was registered") -> dict[str, Any]:
        """The allocation the registration at `modify_index` placed, once it is terminal."""
        index = modify_index
        while True:
            reply = self.client.get("job", job_id, "allocations", namespace=namespace, wait_index=index, wait=_wait(deadline))
            index = max(index, reply.index)
            # Placed by this registration: created after it (older versions' allocations
            # stay listed until they are garbage-collected).
            ours = [a for a in reply.data or [] if int(a.get("CreateIndex") or 0) > modify_index]
            ended = [a for a in ours if a.get("ClientStatus") in ("complete", "failed", "lost")]
            if ended:
                return ended[-1]
            if not ours and eval_id:
                evaluation = self.client.get("evaluation", eval_id, namespace=namespace).data or {}
                failures = _placement_failures(evaluation.get("FailedTGAllocs"))
                if evaluation.get("Status") == "complete" and failures:
                    raise SetupFailedError(f"{job_id}: " + "; ".join(failures) + (after and "; nothing else was registered"))
            if time.monotonic() > deadline:
                from ._errors import ClusterTimeoutError

                raise ClusterTimeoutError(
                    f"{job_id}: {what} had not finished when the watch timed out"
                    + (after and "; nothing else was registered")
                    + "; follow it with `matomo-nomad status`, then run again"
                )

    def _require_secrets(self, deployment: Deployment) -> None:
        from . import _secrets

        vault = _secrets.VaultKV.from_env()
        if deployment.secrets.provider == "vault" and vault is None:
            from ._errors import MissingSecretsError

            raise MissingSecretsError(
                "the jobs read Vault, which cannot be checked without VAULT_ADDR; set it (and VAULT_TOKEN), "
                "or pass --skip-secrets-check"
            )
        variables = _secrets.NomadVariables(self.client, deployment.namespace)
        _secrets.require(_secrets.check(deployment, variables, vault))

    def _register(self, deployment: Deployment, rendered: RenderedRole, job_plan: JobPlan, detach: bool, adopt: bool,
                  on_progress: Callable[[DeploymentProgress], None] | None, watch_timeout: float) -> JobRun:
        """`_run_job`, with a cluster error reported as this job's failure: one job failing
        does not stop the others."""
        try:
            return self._run_job(deployment, rendered, job_plan, detach, adopt, on_progress, watch_timeout)
        except ClusterError as error:
            return JobRun(job_plan.role, job_plan.job_id, "failed", failure=str(error), error=error)

    def _run_job(
        self,
        deployment: Deployment,
        rendered: RenderedRole,
        job_plan: JobPlan,
        detach: bool,
        adopt: bool,
        on_progress: Callable[[DeploymentProgress], None] | None,
        watch_timeout: float,
    ) -> JobRun:
        ns = deployment.namespace
        if not job_plan.owned and not adopt:
            raise NotOwnedError(
                f"{job_plan.job_id}: a job with this id exists but was not registered by deployment "
                f"{deployment.name!r} (no matching meta); not overwriting it (run with --adopt to take it over)"
            )
        if not job_plan.changed:
            return JobRun(rendered.role, rendered.job_id, "unchanged", job_plan.job_modify_index,
                          next_periodic_launch=job_plan.next_periodic_launch)
        reply = self.client.post(
            "jobs",
            namespace=ns,
            body={
                "Job": rendered.job,
                # The UI shows this source for the job version.
                "Submission": {"Source": rendered.hcl, "Format": "hcl2", "VariableFlags": {}, "Variables": ""},
                # `nomad job run -check-index`: refuse if the job changed since the plan.
                "EnforceIndex": True,
                "JobModifyIndex": job_plan.job_modify_index,
                "PolicyOverride": False,
                "PreserveCounts": False,
            },
        ).data or {}
        modify_index = int(reply.get("JobModifyIndex") or 0)
        eval_id = str(reply.get("EvalID") or "")
        result = JobRun(rendered.role, rendered.job_id, "registered", modify_index, eval_id,
                        next_periodic_launch=job_plan.next_periodic_launch)
        if detach or rendered.job["Type"] != "service" or not _has_deployments(rendered.job):
            return result
        progress = self._watch(rendered.job_id, ns, modify_index, on_progress, watch_timeout)
        if progress.status != "successful":
            why = self._failure_reasons(rendered.job_id, ns, progress)
            error = DeploymentFailedError(
                f"{rendered.job_id}: deployment {progress.deployment_id[:8]} {progress.status}: "
                f"{progress.description}" + (f"; {why}" if why else "")
            )
            return JobRun(rendered.role, rendered.job_id, "failed", modify_index, eval_id, progress,
                          failure=str(error), error=error)
        return JobRun(rendered.role, rendered.job_id, "registered", modify_index, eval_id, progress)

    def _watch(
        self,
        job_id: str,
        namespace: str,
        modify_index: int,
        on_progress: Callable[[DeploymentProgress], None] | None,
        watch_timeout: float,
    ) -> DeploymentProgress:
        """Follow the deployment of the version just registered, with blocking queries."""
        deadline = time.monotonic() + watch_timeout
        version = (self.client.get("job", job_id, namespace=namespace).data or {}).get("Version")
        index = modify_index
        deployment: dict[str, Any] | None = None
        # The deployment for our version appears once the scheduler has processed the eval.
        while deployment is None or deployment.get("JobVersion") != version:
            reply = self.client.get("job", job_id, "deployment", namespace=namespace, wait_index=index,
                                    wait=_wait(deadline))
            deployment, index = reply.data, max(index, reply.index)
            _check_deadline(deadline, job_id)
        last: DeploymentProgress | None = None
        index = 0
        while True:
            reply = self.client.get("deployment", str(deployment["ID"]), namespace=namespace, wait_index=index,
                                    wait=_wait(deadline))
            index = max(index, reply.index)
            progress = _progress(job_id, reply.data)
            if on_progress is not None and progress != last:
                on_progress(progress)
            last = progress
            if progress.status in TERMINAL_DEPLOYMENT:
                return progress
            _check_deadline(deadline, job_id)

    def _failure_reasons(self, job_id: str, namespace: str, progress: DeploymentProgress) -> str:
        allocations = self.client.get("job", job_id, "allocations", namespace=namespace).data or []
        return _task_failures(
            [
                alloc
                for alloc in allocations
                if alloc.get("ClientStatus") == "failed" or (alloc.get("DeploymentStatus") or {}).get("Healthy") is False
            ]
        )

    # -- status -------------------------------------------------------------------

    def status(self, deployment: Deployment) -> list[JobStatus]:
        scoped = self.scoped(deployment)
        if scoped is not self:
            return scoped.status(deployment)
        target = self.target(deployment)
        return _concurrently(lambda r: self._status_job(target, r), list(render(target)))

    def _status_job(self, deployment: Deployment, rendered: RenderedRole) -> JobStatus:
        ns = deployment.namespace
        job = self._current(rendered.job_id, ns)
        if job is None:
            return JobStatus(rendered.role, rendered.job_id, exists=False, owned=False)
        if not _owned(job, deployment, rendered.role):
            return JobStatus(rendered.role, rendered.job_id, exists=True, owned=False, status=str(job.get("Status")))
        latest = self.client.get("job", rendered.job_id, "deployment", namespace=ns).data
        allocations = self.client.get("job", rendered.job_id, "allocations", namespace=ns).data or []
        counts: dict[str, int] = {}
        for alloc in allocations:
            status = str(alloc.get("ClientStatus"))
            counts[status] = counts.get(status, 0) + 1
        running_hash = (job.get("Meta") or {}).get("matomo_nomad_hash")
        return JobStatus(
            rendered.role,
            rendered.job_id,
            exists=True,
            owned=True,
            status=str(job.get("Status")),
            version=job.get("Version"),
            stopped=bool(job.get("Stop")),
            in_sync=running_hash == rendered.job["Meta"]["matomo_nomad_hash"],
            deployment=_progress(rendered.job_id, latest) if latest else None,
            allocations=dict(sorted(counts.items())),
            health=self._health(rendered, job, allocations, ns),
        )

    def _health(self, rendered: RenderedRole, job: dict[str, Any], allocations: list[dict[str, Any]],
                ns: str) -> Health:
        if rendered.role is Role.archiver:
            listed = self.client.get("jobs", namespace=ns, params={"prefix": f"{rendered.job_id}/periodic-"}).data or []
            children = [
                (str(child["ID"]), str(child.get("Status")),
                 self.client.get("job", str(child["ID"]), "allocations", namespace=ns).data or [])
                for child in listed
                if child.get("ParentID") == rendered.job_id
            ]
            return archiver_health(job, children)
        if job.get("Type") == "batch":
            return Health(desired=None, restarts=restarts(allocations))
        return service_health(job, allocations, rendered.role.slug)

    # -- destroy ------------------------------------------------------------------

    def destroy(self, deployment: Deployment, *, purge: bool = False) -> list[JobDestroy]:
        """Stop (or purge) each of this deployment's jobs; jobs without its mark are refused."""
        scoped = self.scoped(deployment)
        if scoped is not self:
            return scoped.destroy(deployment, purge=purge)
        target = self.target(deployment)
        jobs = [(r.role, r.job_id) for r in render(target)]
        if target.monitoring.exporter is None:
            # A monitoring job from when the file still had [monitoring.exporter] is this
            # deployment's too (its mark says so); when there is none, it is not reported.
            jobs.append((Role.monitoring, target.job_id(Role.monitoring)))
        results = _concurrently(lambda job: self._destroy_job(target, *job, purge), jobs)
        # Without the table, a monitoring job is reported only if it was ours: absent or
        # someone else's, it is none of this deployment's business.
        return [r for r in results if r.role is not Role.monitoring or target.monitoring.exporter is not None
                or r.outcome not in ("absent", "refused")]

    def _destroy_job(self, deployment: Deployment, role: Role, job_id: str, purge: bool) -> JobDestroy:
        ns = deployment.namespace
        job = self._current(job_id, ns)
        if job is None:
            return JobDestroy(role, job_id, "absent")
        if not _owned(job, deployment, role):
            return JobDestroy(role, job_id, "refused")
        reply = self.client.delete("job", job_id, namespace=ns, params={"purge": "true" if purge else "false"}).data or {}
        return JobDestroy(role, job_id, "purged" if purge else "stopped", str(reply.get("EvalID") or ""))


# --- helpers -----------------------------------------------------------------------------


def _concurrently(function: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
    """`function` over `items` in parallel threads (one per role), results in input order.
    The first exception is re-raised after all have finished."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(function, item) for item in items]
        results: list[T] = []
        error: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others
                error = error or exc
    if error is not None:
        raise error
    return results


def _task_failures(allocations: list[dict[str, Any]]) -> str:
    """Why these allocations' tasks failed: each one's cause, in its own task events."""
    reasons: list[str] = []
    for alloc in allocations:
        for task, state in (alloc.get("TaskStates") or {}).items():
            events = [e for e in state.get("Events") or [] if e.get("DisplayMessage")]
            if not events or events[-1].get("Type") == "Sibling Task Failed":
                continue  # no word of its own, or failed because another task did
            # The last event only says what happened next ("Not Restarting: Error was
            # unrecoverable"); the cause is the last event before that aftermath.
            cause = next((e for e in reversed(events) if e.get("Type") not in _AFTERMATH), events[-1])
            text = f"{cause.get('Type')}: {cause['DisplayMessage']}"
            if cause is not events[-1]:
                text += f" ({events[-1].get('Type')}: {events[-1]['DisplayMessage']})"
            reasons.append(f"alloc {str(alloc.get('ID'))[:8]} task {task}: {text}")
    unique = list(dict.fromkeys(reasons))
    return "; ".join(unique[:3]) + (f" (+{len(unique) - 3} more)" if len(unique) > 3 else "")


def _setup_step(
    deployment: Deployment, rendered: dict[Role, RenderedRole], current: dict[Role, dict[str, Any] | None]
) -> SetupStep:
    """Run the setup job unless every role's job was registered after a setup for what
    this rendering runs (same image, Matomo and plugin versions, same database). A job
    with one of our ids but without our mark says nothing either way: run refuses to
    touch it (unless adopting)."""
    setup = rendered[Role.setup]
    fingerprint = setup.job["Meta"][META_SETUP]
    absent = [rendered[role].job_id for role in ROLES if current[role] is None]
    stale = [
        (rendered[role].job_id, job)
        for role in ROLES
        if (job := current[role]) is not None
        and _owned(job, deployment, role)
        and (job.get("Meta") or {}).get(META_SETUP) != fingerprint
    ]
    setup_job = current[Role.setup]
    # The setup job last ran for another rendering (an attempt at another version that
    # failed, then a file changed back): the database may have moved; setup.php checks it.
    setup_moved = (
        setup_job is not None
        and _owned(setup_job, deployment, Role.setup)
        and (setup_job.get("Meta") or {}).get(META_SETUP) not in (None, fingerprint)
    )
    if len(absent) == len(ROLES):
        reason = "a new deployment: install or update the database before any role starts"
    elif stale:
        job_id, job = stale[0]
        before = _image(job)
        after = _image(rendered[Role.admin].job)
        what = f"image {before} -> {after}" if before != after else "plugins or database changed"
        reason = f"{what} (since {job_id} was registered): update the database before the roles move"
    elif absent:
        reason = f"{', '.join(absent)} not running: make sure the database is ready for it"
    elif setup_moved:
        reason = (f"{setup.job_id} last ran for another image, plugin set or database "
                  f"({(setup_job or {}).get('Meta', {}).get(META_SETUP)}): run it for this one")
    else:
        return SetupStep(setup.job_id, False, f"not needed: every job runs after setup {fingerprint}", fingerprint)
    return SetupStep(setup.job_id, True, reason, fingerprint)


def _image(job: dict[str, Any]) -> str:
    try:
        return str(job["TaskGroups"][0]["Tasks"][0]["Config"]["image"])
    except (KeyError, IndexError, TypeError):
        return "?"


_NUM_QUEUE_WORKERS = re.compile(r'^numQueueWorkers = "?([0-9]+)"?$', re.MULTILINE)


def _queues(job: dict[str, Any]) -> int | None:
    """The number of queues a running job was rendered with: its meta, or for jobs
    registered before the meta existed, numQueueWorkers in its config template."""
    value = (job.get("Meta") or {}).get(META_QUEUES)
    if value is not None and str(value).isdigit():
        return int(value)
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            for template in task.get("Templates") or []:
                found = _NUM_QUEUE_WORKERS.search(template.get("EmbeddedTmpl") or "")
                if found:
                    return int(found.group(1))
    return None


def _owned(job: dict[str, Any], deployment: Deployment, role: Role) -> bool:
    meta = job.get("Meta") or {}
    return meta.get("matomo_nomad_deployment") == deployment.name and meta.get("matomo_nomad_role") == role.value


def _has_deployments(job: dict[str, Any]) -> bool:
    # Nomad creates a deployment for a service group with an update block and
    # max_parallel > 0; a count of 0 places nothing to watch.
    return any(
        (group.get("Update") or {}).get("MaxParallel", 0) > 0 and group.get("Count", 0) > 0
        for group in job.get("TaskGroups") or []
    )


def _wait(deadline: float) -> float:
    return max(1.0, min(30.0, deadline - time.monotonic()))


def _check_deadline(deadline: float, job_id: str) -> None:
    if time.monotonic() > deadline:
        from ._errors import ClusterTimeoutError

        raise ClusterTimeoutError(
            f"{job_id}: still deploying when the watch timed out; the job is registered, "
            "follow it with `matomo-nomad status` or in the Nomad UI"
        )


def _progress(job_id: str, deployment: dict[str, Any]) -> DeploymentProgress:
    groups = [
        GroupProgress(
            name,
            int(state.get("DesiredTotal") or 0),
            int(state.get("PlacedAllocs") or 0),
            int(state.get("HealthyAllocs") or 0),
            int(state.get("UnhealthyAllocs") or 0),
        )
        for name, state in sorted((deployment.get("TaskGroups") or {}).items())
    ]
    return DeploymentProgress(
        job_id, str(deployment.get("ID") or ""), str(deployment.get("Status") or "unknown"),
        str(deployment.get("StatusDescription") or ""), groups,
    )


def _group_changes(annotations: dict[str, Any] | None) -> list[GroupChanges]:
    updates = (annotations or {}).get("DesiredTGUpdates") or {}
    return [
        GroupChanges(
            group,
            place=int(u.get("Place") or 0),
            in_place=int(u.get("InPlaceUpdate") or 0),
            destructive=int(u.get("DestructiveUpdate") or 0),
            canary=int(u.get("Canary") or 0),
            stop=int(u.get("Stop") or 0),
            migrate=int(u.get("Migrate") or 0),
            ignore=int(u.get("Ignore") or 0),
        )
        for group, u in sorted(updates.items())
    ]


def _placement_failures(failed: dict[str, Any] | None) -> list[str]:
    """FailedTGAllocs in words: why the scheduler could not place a group."""
    lines: list[str] = []
    for group, metric in sorted((failed or {}).items()):
        parts = [f"{metric.get('NodesEvaluated', 0)} node(s) evaluated"]
        if metric.get("NodesAvailable"):
            available = ", ".join(f"{dc}: {n}" for dc, n in sorted(metric["NodesAvailable"].items()))
            parts.append(f"available per datacenter: {available}")
        for key, label in (("ConstraintFiltered", "filtered by constraint"), ("ClassFiltered", "filtered by node class"),
                           ("DimensionExhausted", "resources exhausted"), ("QuotaExhausted", "quota exhausted")):
            values = metric.get(key)
            if isinstance(values, dict) and values:
                parts.append(f"{label}: " + ", ".join(f"{k} ({v})" for k, v in sorted(values.items())))
            elif isinstance(values, list) and values:
                parts.append(f"{label}: " + ", ".join(map(str, values)))
        if metric.get("NodesFiltered") and "ConstraintFiltered" not in metric:
            parts.append(f"{metric['NodesFiltered']} node(s) filtered")
        if metric.get("CoalescedFailures"):
            parts.append(f"{metric['CoalescedFailures']} more allocation(s) failed the same way")
        lines.append(f"group {group} cannot be placed: " + "; ".join(parts))
    return lines


def _flatten_diff(diff: dict[str, Any]) -> tuple[list[FieldChange], list[str]]:
    """Nomad's nested plan Diff as flat field changes; the config template as a line diff."""
    changes: list[FieldChange] = []
    template: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for f in node.get("Fields") or []:
            kind = str(f.get("Type", "")).lower()
            if kind in ("", "none"):
                continue
            name = f"{path}.{f.get('Name')}" if path else str(f.get("Name"))
            if f.get("Name") == "EmbeddedTmpl":
                template.extend(
                    difflib.unified_diff(
                        (f.get("Old") or "").splitlines(), (f.get("New") or "").splitlines(),
                        "running", "rendered", lineterm="",
                    )
                )
                continue
            changes.append(FieldChange(name, kind, f.get("Old") or None, f.get("New") or None))
        for o in node.get("Objects") or []:
            if str(o.get("Type", "")).lower() != "none":
                walk(o, f"{path}.{o.get('Name')}" if path else str(o.get("Name")))
        for group in node.get("TaskGroups") or []:
            if str(group.get("Type", "")).lower() != "none":
                walk(group, f"group[{group.get('Name')}]")
        for task in node.get("Tasks") or []:
            if str(task.get("Type", "")).lower() != "none":
                walk(task, f"{path}.task[{task.get('Name')}]")

    walk(diff, "")
    return changes, template

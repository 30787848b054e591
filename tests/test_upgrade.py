"""Coordinated upgrades and queue moves (matomo_nomad/_upgrade.py) against the fake Nomad.

* An upgrade (Matomo 5.9.1 -> 5.10.0, or a plugin version) is taken in order: the
  archiver paused (launches disabled, its old image kept) and its running launch waited
  for; the queue processors stopped (count 0, their allocations ended); the setup job run
  with the new image; admin rolled, then ingestion and the processors; the archiver
  resumed with the new image, last. Each registration is checked against the cluster as
  it was at that moment (a snapshot the fake takes under its lock).
* A failure at each step stops the run there: nothing after it is registered, the
  report names the step, why, the cluster's state and how to resume; a second `run`
  resumes (what is done is not done again) and converges.
* `plan` lists the steps (text and JSON) with the documented exit codes; a downgrade is
  refused (exit 27), `--detach` too (exit 64); fewer queues is an ordered move
  (processors stopped, admin and ingestion rolled and their old allocations gone, the
  setup job's move-queues mode, then the processors), refused only where it cannot be
  done safely.
* PHP's version_compare, which orders versions for Matomo, transcribed and checked
  against PHP itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from matomo_nomad._errors import (
    ArchiverBusyError,
    DeploymentFailedError,
    DetachRefusedError,
    DowngradeError,
    NotOwnedError,
    ServerError,
    SetupFailedError,
    UnsafeChangeError,
)
from matomo_nomad._upgrade import MOVE_QUEUES_MARKER, php_version_compare
from tests.fakenomad import FakeNomad
from tests.test_cluster import connect, deployment, foreign_job, register_directly, seed_secrets
from tests.test_cluster_cli import Cli, cli, deploy_file  # noqa: F401 (fixtures)

pytest_plugins = ("tests.fakenomad.fixtures",)

ADMIN, INGESTION, PROCESSOR, ARCHIVER, SETUP = (
    "matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver", "matomo-setup")
OLD_IMAGE = "registry.example.com/matomo:5.9.1-1"
NEW_IMAGE = "registry.example.com/matomo:5.10.0-1"  # the minimal example's
OLD = {"matomo": {"version": "5.9.1", "image": OLD_IMAGE}}
EXIT_3 = {"Type": "Terminated", "DisplayMessage": "Exit Code: 3, Exit Message: \"Docker container exited with "
          "non-zero exit code: 3\"", "ExitCode": 3}


@pytest.fixture
def fake(make_fake_nomad: Callable[..., FakeNomad]) -> FakeNomad:
    # Short blocking waits: the tests' timeouts are fractions of a second.
    fake = make_fake_nomad(tick=0.01, block_cap=0.2)
    seed_secrets(fake)
    return fake


def image(job: dict[str, Any]) -> str:
    return str(job["TaskGroups"][0]["Tasks"][0]["Config"]["image"])


@dataclass
class Registration:
    """One job registration the fake accepted, and the cluster just before it."""

    job_id: str
    image: str
    job: dict[str, Any]
    before: dict[str, Any]

    @property
    def label(self) -> str:
        job = self.job
        if job["ID"] == ARCHIVER and not job["Periodic"].get("Enabled", True):
            return "pause archiver"
        if job["ID"] == PROCESSOR and job["TaskGroups"][0]["Count"] == 0:
            return "stop processors"
        if job["ID"] == SETUP and job["TaskGroups"][0]["Tasks"][0]["Config"]["command"] == "/bin/sh":
            return "move queues"
        return f"{job['ID']} {'new' if self.image == NEW_IMAGE else 'old'}"


class Registrations:
    """Every registration of our jobs (not periodic launches, not rollbacks), in order,
    each with a snapshot of what the order depends on, taken under the fake's lock."""

    def __init__(self, fake: FakeNomad) -> None:
        self.fake = fake
        self.items: list[Registration] = []
        original = fake._register_locked

        def wrapped(ns: str, job: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            before = self._snapshot() if "/" not in job["ID"] and not kwargs.get("rollback") else None
            reply = original(ns, job, **kwargs)
            if before is not None:
                self.items.append(Registration(job["ID"], image(job), job, before))
            return reply

        fake._register_locked = wrapped  # type: ignore[method-assign]

    def _snapshot(self) -> dict[str, Any]:
        fake = self.fake
        archiver = fake.job(ARCHIVER)
        setup = fake.job(SETUP)
        setup_allocs = fake.allocations(SETUP)
        return {
            "archiver_enabled": None if archiver is None else archiver["Periodic"].get("Enabled", True),
            "launches_running": [j for j in fake.job_ids(f"{ARCHIVER}/periodic-")
                                 if (fake.job(j) or {}).get("Status") in ("pending", "running")],
            "processors_running": [a["ID"] for a in fake.allocations(PROCESSOR)
                                   if a["ClientStatus"] in ("pending", "running")],
            "setup_latest": None if setup is None or not setup_allocs else
            max((a for a in setup_allocs if a["JobVersion"] == setup["Version"]), key=lambda a: a["CreateIndex"],
                default={"ClientStatus": None})["ClientStatus"],
            "admin_deployment": (fake.deployment(ADMIN) or {}).get("Status"),
            "admin_image": None if fake.job(ADMIN) is None else image(fake.job(ADMIN)),
            "old_ingestion_running": [a["ID"] for a in fake.allocations(INGESTION)
                                      if a["ClientStatus"] in ("pending", "running")
                                      and a["JobVersion"] != (fake.job(INGESTION) or {}).get("Version")],
        }

    def labels(self) -> list[str]:
        return [r.label for r in self.items]

    def first(self, label: str) -> Registration:
        return next(r for r in self.items if r.label == label)

    def clear(self) -> None:
        self.items.clear()


def deployed_old(fake: FakeNomad, **update: Any) -> Registrations:
    """The cluster running Matomo 5.9.1, deployed by an ordinary run; registrations recorded
    from then on."""
    assert connect(fake).run(deployment(**OLD, **update)).ok
    fake.clear_requests()
    return Registrations(fake)


def converged(fake: FakeNomad, version: str = "5.10.0", queues: int = 1, count: int = 1) -> None:
    for job_id in (ADMIN, INGESTION, PROCESSOR, ARCHIVER):
        job = fake.job(job_id)
        assert job is not None and job["Meta"]["matomo_version"] == version, job_id
        assert job["Meta"]["matomo_nomad_queues"] == str(queues)
        assert "matomo_nomad_paused" not in job["Meta"] and "matomo_nomad_stopped" not in job["Meta"]
    assert fake.job(ARCHIVER)["Periodic"]["Enabled"] is True
    assert fake.job(PROCESSOR)["TaskGroups"][0]["Count"] == count
    files = {"5.10.0": {}, "5.9.1": OLD}[version]
    plan = connect(fake).plan(deployment(**files, roles={"queue_processor": {"queues": queues, "count": count}}))
    assert plan.upgrade is None and not plan.changed


# --- the order -------------------------------------------------------------------------------


def test_an_upgrade_takes_its_steps_in_order(fake: FakeNomad) -> None:
    registrations = deployed_old(fake)
    events: list[str] = []
    result = connect(fake).run(deployment(), on_step=lambda e: events.append(e.line()))
    assert result.ok, [(j.job_id, j.failure) for j in result.jobs]
    assert result.upgrade is not None and result.upgrade.ok and result.upgrade.completed == [1, 2, 3, 4, 5]

    labels = registrations.labels()
    assert labels[:4] == ["pause archiver", "stop processors", "matomo-setup new", "matomo-admin new"]
    assert sorted(labels[4:6]) == ["matomo-ingestion new", "matomo-queue-processor new"]
    assert labels[6:] == ["matomo-archiver new"]  # resumed last

    # 1: the pause re-registered the running archiver as it was, old image, launches off
    pause = registrations.first("pause archiver")
    assert pause.image == OLD_IMAGE and pause.job["Meta"]["matomo_version"] == "5.9.1"
    assert pause.job["Meta"]["matomo_nomad_paused"].startswith("upgrade 5.9.1 -> 5.10.0")
    # 2: so did the stop, with count 0
    stop = registrations.first("stop processors")
    assert stop.image == OLD_IMAGE and stop.before["archiver_enabled"] is False
    # 3: the setup job ran with the new image only once the archiver was paused with no
    # launch running, and the processors' allocations had all ended
    setup = registrations.first("matomo-setup new")
    assert setup.before["archiver_enabled"] is False and setup.before["launches_running"] == []
    assert setup.before["processors_running"] == []
    # 4: admin with the new image only after the setup job's allocation completed; the
    # others only after admin's deployment succeeded
    admin = registrations.first("matomo-admin new")
    assert admin.before["setup_latest"] == "complete"
    for label in ("matomo-ingestion new", "matomo-queue-processor new"):
        later = registrations.first(label)
        assert later.before["admin_deployment"] == "successful" and later.before["admin_image"] == NEW_IMAGE
    assert registrations.first("matomo-queue-processor new").job["TaskGroups"][0]["Count"] == 1
    # 5: the archiver last, with the new image and launches enabled
    resume = registrations.items[-1]
    assert resume.image == NEW_IMAGE and resume.job["Periodic"]["Enabled"] is True
    assert "matomo_nomad_paused" not in resume.job["Meta"]

    # every write carried the check-index of what was read just before
    posts = fake.requests_to(r"^/v1/jobs$", "POST")
    assert all(p.json["EnforceIndex"] is True for p in posts) and len(posts) == 7
    assert events[0] == "upgrade 5.9.1 -> 5.10.0: 5 steps"
    assert [e.split(")")[0] for e in events if e.startswith("step ")][:1] == ["step 1/5 (pause the archiver"]
    assert any("the admin UI answers every request (health checks included) with an error" in e for e in events)
    assert events[-1] == "upgrade 5.9.1 -> 5.10.0: done: every role runs 5.10.0"
    assert [(j.job_id, j.outcome) for j in result.jobs] == [
        (SETUP, "completed"), (ADMIN, "registered"), (INGESTION, "registered"), (PROCESSOR, "registered"),
        (ARCHIVER, "registered")]
    converged(fake)


def test_a_running_archive_launch_is_waited_for_before_anything_else(fake: FakeNomad) -> None:
    registrations = deployed_old(fake)
    fake.batch_outcome(ARCHIVER, "complete", runs_for=0.6)  # core:archive takes a while
    child = fake.launch_periodic(ARCHIVER)
    events: list[str] = []
    result = connect(fake).run(deployment(), on_step=lambda e: events.append(e.line()), archiver_timeout=30)
    assert result.ok
    assert fake.job(child)["Status"] == "dead"
    stop = registrations.first("stop processors")
    assert stop.before["launches_running"] == [] and stop.before["archiver_enabled"] is False
    assert f"step 1/5 (pause the archiver): waiting for the running launch {child} to finish (at most 30 s)" in events
    # the launch kept running under the paused parent, and was waited for with blocking queries
    waits = fake.requests_to(r"^/v1/jobs$", "GET")
    assert waits and all(r.query["prefix"] == f"{ARCHIVER}/periodic-" for r in waits)
    assert any(r.blocking for r in waits)
    # a paused archiver launches nothing (Nomad's dispatcher no longer tracks it)
    assert registrations.first("pause archiver")
    converged(fake)


def test_a_plugin_version_is_an_upgrade_too(fake: FakeNomad) -> None:
    older = {"plugins": [{"name": "QueuedTracking", "version": "5.1.1"}, {"name": "SecurityInfo", "version": "5.0.0"}]}
    registrations = deployed_old(fake, **older)
    plan = connect(fake).plan(deployment(**OLD))
    assert plan.upgrade is not None and plan.upgrade.summary == "upgrade QueuedTracking 5.1.1 -> 5.2.0"
    assert connect(fake).run(deployment(**OLD)).ok
    assert registrations.labels()[:3] == ["pause archiver", "stop processors", "matomo-setup old"]


# --- failures at each step, and the resume ------------------------------------------------------


STEP_FAILURES = {
    1: "archiver launch still running",
    2: "processor allocations do not stop",
    3: "setup job fails",
    4: "admin deployment fails",
    5: "archiver registration refused",
}


def _inject(fake: FakeNomad, step: int) -> None:
    if step == 1:
        fake.batch_outcome(ARCHIVER, "running")
        fake.launch_periodic(ARCHIVER)
    elif step == 2:
        fake.stop_delay(PROCESSOR, None)
    elif step == 3:
        fake.batch_outcome(SETUP, "failed", failure=EXIT_3)
    elif step == 4:
        fake.progress(ADMIN, "failed")
    elif step == 5:
        fake.fail(r"^/v1/jobs$", 500, "rpc error: leader unavailable", method="POST", job=ARCHIVER, skip=1)


def _repair(fake: FakeNomad, step: int) -> None:
    if step == 1:
        for child in fake.job_ids(f"{ARCHIVER}/periodic-"):
            fake.finish_batch(child)
        fake.batch_outcome(ARCHIVER, "complete")
    elif step == 2:
        fake.stop_delay(PROCESSOR, fake.tick)
    elif step == 3:
        fake.batch_outcome(SETUP, "complete")
    elif step == 4:
        fake.progress(ADMIN, "successful")
    elif step == 5:
        fake.clear_faults()


EXPECTED_BEFORE_STOP = {
    1: ["pause archiver", "matomo-archiver old"],  # re-registered as it was
    2: ["pause archiver", "stop processors"],
    3: ["pause archiver", "stop processors", "matomo-setup new"],
    4: ["pause archiver", "stop processors", "matomo-setup new", "matomo-admin new"],
    5: ["pause archiver", "stop processors", "matomo-setup new", "matomo-admin new", "*", "*"],
}
ERRORS = {1: ArchiverBusyError, 2: Exception, 3: SetupFailedError, 4: DeploymentFailedError, 5: ServerError}
EXIT_CODES = {1: 28, 2: 14, 3: 25, 4: 23, 5: 19}


@pytest.mark.parametrize("step", sorted(STEP_FAILURES), ids=[f"step{n}-{w.replace(' ', '-')}" for n, w in
                                                             sorted(STEP_FAILURES.items())])
def test_a_failure_stops_the_upgrade_at_its_step_and_a_second_run_resumes(fake: FakeNomad, step: int) -> None:
    registrations = deployed_old(fake)
    _inject(fake, step)
    cluster = connect(fake)
    result = cluster.run(deployment(), watch_timeout=0.4 if step == 2 else 5, archiver_timeout=0.3)

    assert not result.ok and result.upgrade is not None
    run = result.upgrade
    assert run.stopped_at is not None and run.stopped_at.number == step
    assert run.completed == list(range(1, step))
    error = result.first_error()
    assert isinstance(error, ERRORS[step]) and error.exit_code == EXIT_CODES[step]
    report = run.report()
    assert report[0].startswith(f"upgrade 5.9.1 -> 5.10.0: STOPPED at step {step} of 5 ({run.stopped_at.title}): ")
    assert any(line.startswith("  to resume: ") for line in report)

    # nothing after the failing step happened
    labels = registrations.labels()
    expected = EXPECTED_BEFORE_STOP[step]
    assert len(labels) == len(expected), labels
    assert [label for label, want in zip(labels, expected) if want != "*"] == [w for w in expected if w != "*"]
    if step < 4:
        assert not any(label.endswith(" new") and label != "matomo-setup new" for label in labels)
    if step < 5:
        assert "matomo-archiver new" not in labels

    # the state, as a person needs it
    state = "\n".join(run.state)
    ingestion = "5.10.0" if step == 5 else "5.9.1"
    assert f"{INGESTION}: {ingestion}, accepting tracking requests, which are queued in Redis" in state
    if step == 5:
        assert f"{ARCHIVER}: 5.9.1, paused (no launch)" in state and f"{PROCESSOR}: 5.10.0, count 1" in state
        assert "rpc error: leader unavailable" in report[0]
    elif step == 1:
        assert f"{ARCHIVER}: 5.9.1, launching on schedule" in state  # resumed as it was
        assert "the database has not been migrated" in state
        assert report[0].endswith("was re-registered as it was (launches enabled)")
        assert fake.job(ARCHIVER)["Periodic"]["Enabled"] is True and image(fake.job(ARCHIVER)) == OLD_IMAGE
    else:
        assert f"{ARCHIVER}: 5.9.1, paused (no launch)" in state
        assert f"{PROCESSOR}: stopped (count 0): nothing processes the queued tracking requests" in state
    if step == 3:
        assert "the setup job did not complete: exit 3 and 4 stop it before it changes anything" in state
        assert "Terminated: Exit Code: 3" in report[0]
        assert "nomad alloc logs -namespace default -stderr" in report[0]
    if step == 4:
        assert ("the database is at 5.10.0: the admin UI answers every request with an error until "
                f"{ADMIN} runs 5.10.0") in state or f"{ADMIN}: 5.10.0" in state
        assert "Failed due to unhealthy allocations" in report[0]
    if step >= 2:
        assert f"it continues at step {step}" in report[-1]

    # a second run resumes where the first stopped, and converges
    _repair(fake, step)
    registrations.clear()
    plan = cluster.plan(deployment())
    assert plan.upgrade is not None
    # (the processors' count 0 counts as done: the second run checks their allocations again)
    assert [s.number for s in plan.upgrade.steps if s.done] == (
        [] if step == 1 else list(range(1, step)) + ([2] if step == 2 else []))
    second = cluster.run(deployment(), watch_timeout=5)
    assert second.ok, [(j.job_id, j.failure) for j in second.jobs]
    labels = registrations.labels()
    if step >= 2:
        # what was done is not done again: the archiver stays paused, the processors stay
        # stopped, a completed setup job is not run again
        assert "pause archiver" not in labels and "stop processors" not in labels
    if step >= 4:
        assert "matomo-setup new" not in labels
    if step == 5:
        assert labels == ["matomo-archiver new"]
    assert labels[-1] == "matomo-archiver new"
    converged(fake)


def test_processors_that_nomad_reverts_to_the_old_code_are_stopped_again(fake: FakeNomad) -> None:
    """auto_revert (on by default) takes a failed rollout back to the last stable version:
    for the processors, the old code, counted up again, against the migrated database."""
    registrations = deployed_old(fake)
    fake.progress(PROCESSOR, "failed")
    result = connect(fake).run(deployment())
    assert result.upgrade.stopped_at.number == 4
    assert ("Nomad reverted matomo-queue-processor to 5.9.1, whose code must not process requests against the "
            "migrated database: it was stopped again (count 0)") in result.upgrade.reason
    reverted = [r for r in registrations.items if r.job_id == PROCESSOR]
    assert [(r.image, r.job["TaskGroups"][0]["Count"]) for r in reverted] == [
        (OLD_IMAGE, 0), (NEW_IMAGE, 1), (OLD_IMAGE, 0)]  # the revert itself is Nomad's, not recorded
    processor = fake.job(PROCESSOR)
    assert processor["Meta"]["matomo_version"] == "5.9.1" and processor["TaskGroups"][0]["Count"] == 0
    assert "matomo-archiver new" not in registrations.labels()
    fake.progress(PROCESSOR, "successful")
    assert connect(fake).run(deployment()).ok
    converged(fake)


def test_the_run_command_prints_each_step_and_the_report(fake: FakeNomad, cli: Cli,
                                                         deploy_file: Callable[..., str]) -> None:
    deployed_old(fake)
    fake.progress(ADMIN, "failed")
    code, out, err = cli("run", deploy_file(), "--watch-timeout", "5", NOMAD_ADDR=fake.address)
    assert code == DeploymentFailedError.exit_code
    lines = err.splitlines()
    assert lines[0] == "upgrade 5.9.1 -> 5.10.0: 5 steps"
    assert lines[1].startswith("step 1/5 (pause the archiver): matomo-archiver paused")
    assert any(l.startswith("step 3/5 (run the setup job): matomo-setup completed: the database is at 5.10.0")
               for l in lines)
    stopped = next(i for i, l in enumerate(lines) if "STOPPED" in l)
    assert lines[stopped].startswith("upgrade 5.9.1 -> 5.10.0: STOPPED at step 4 of 5 (roll admin, then ingestion "
                                     "and the queue processors): matomo-admin: deployment ")
    assert any(l.startswith("  now: matomo-queue-processor: stopped (count 0)") for l in lines[stopped:])
    assert lines[-1].startswith("  to resume: fix the cause above, then run `matomo-nomad run` again")
    assert any(l.startswith("matomo-admin: FAILED: deployment") for l in lines)
    assert out.splitlines() == [
        f"{SETUP}: completed" + out.splitlines()[0].removeprefix(f"{SETUP}: completed"),
        f"{INGESTION}: not registered: the upgrade stopped at step 4 (roll admin, then ingestion and the queue "
        "processors)",
        f"{PROCESSOR}: not registered: the upgrade stopped at step 4 (roll admin, then ingestion and the queue "
        "processors)",
        f"{ARCHIVER}: not registered: the upgrade stopped at step 4 (roll admin, then ingestion and the queue "
        "processors)",
    ]
    fake.progress(ADMIN, "successful")
    code, out, err = cli("run", deploy_file(), NOMAD_ADDR=fake.address)
    assert code == 0, err
    assert err.splitlines()[0] == "upgrade 5.9.1 -> 5.10.0: 5 steps (resuming where an earlier run stopped)"
    assert "step 3/5 (run the setup job): done for this rendering already: not run again" in err.splitlines()


def test_an_archiver_busy_past_the_timeout_exits_28_and_changes_nothing(fake: FakeNomad, cli: Cli,
                                                                      deploy_file: Callable[..., str]) -> None:
    registrations = deployed_old(fake)
    fake.batch_outcome(ARCHIVER, "running")
    child = fake.launch_periodic(ARCHIVER)
    code, out, err = cli("run", deploy_file(), "--archiver-timeout", "0.2", NOMAD_ADDR=fake.address)
    assert code == 28
    assert f"STOPPED at step 1 of 5 (pause the archiver): {child} still running after 0.2 s" in err
    assert "  to resume: nothing changed; run `matomo-nomad run` again when the archiver's launch has ended" in err
    assert registrations.labels() == ["pause archiver", "matomo-archiver old"]
    assert fake.job(PROCESSOR)["TaskGroups"][0]["Count"] == 1 and fake.job(SETUP)["Meta"]["matomo_version"] == "5.9.1"


# --- plan -----------------------------------------------------------------------------------------


def test_plan_on_a_version_change_lists_the_steps(fake: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    deployed_old(fake)
    code, out, err = cli("plan", deploy_file(), NOMAD_ADDR=fake.address)
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == "upgrade 5.9.1 -> 5.10.0: run takes these steps, in order, each waiting for the one before:"
    assert [l.split(":")[0] for l in lines[1:6]] == [
        "  1. pause the archiver", "  2. stop the queue processors", "  3. run the setup job",
        "  4. roll admin, then ingestion and the queue processors", "  5. resume the archiver"]
    assert "if it is still running then, the archiver is re-registered as it was" in lines[1]
    assert "the old code answers every admin UI request, health checks included, with an error" in lines[3]
    assert lines[6] == ("  running now: matomo-admin 5.9.1, matomo-ingestion 5.9.1, matomo-queue-processor 5.9.1, "
                        "matomo-archiver 5.9.1")
    assert "~ job matomo-admin (changes)" in lines
    assert lines[-1] == "4 of 4 job(s) would change in the steps above in namespace default."
    assert fake.requests_to(r"^/v1/jobs$", "POST") == []  # plan writes nothing

    code, out, err = cli("plan", deploy_file(), "--output", "json", NOMAD_ADDR=fake.address)
    assert (code, err) == (1, "")
    document = json.loads(out)
    assert document["upgrade"]["summary"] == "upgrade 5.9.1 -> 5.10.0"
    assert [s["key"] for s in document["upgrade"]["steps"]] == [
        "pause-archiver", "stop-processors", "setup", "roll", "resume-archiver"]
    assert all(s["done"] is False for s in document["upgrade"]["steps"])
    assert document["setup"]["needed"] is True and document["setup"]["reason"].startswith("step 3 of upgrade")

    assert cli("run", deploy_file(), NOMAD_ADDR=fake.address)[0] == 0
    code, out, err = cli("plan", deploy_file(), NOMAD_ADDR=fake.address)
    assert (code, err) == (0, "") and "upgrade" not in out
    code, out, err = cli("plan", deploy_file(**OLD), NOMAD_ADDR=fake.address)
    assert code == 255 and "refused, a downgrade" in err


def test_an_unchanged_version_with_a_new_image_is_no_upgrade(fake: FakeNomad) -> None:
    deployed_old(fake)
    rebuilt = deployment(matomo={"version": "5.9.1", "image": "registry.example.com/matomo:5.9.1-2"})
    plan = connect(fake).plan(rebuilt)
    assert plan.upgrade is None and plan.setup.needed  # the setup job, then every role at once

    # Jobs an older matomo-nomad registered do not say which plugins they run: a new
    # image then takes the ordered path, which is safe whatever changed in it.
    for job_id in (ADMIN, INGESTION, PROCESSOR, ARCHIVER):
        job = fake.job(job_id)
        del job["Meta"]["matomo_nomad_plugins"]
        register_directly(fake, job)
    assert connect(fake).plan(deployment(**OLD)).upgrade is None  # the same setup: nothing to coordinate
    plan = connect(fake).plan(rebuilt)
    assert plan.upgrade is not None and plan.upgrade.summary == (
        "upgrade to registry.example.com/matomo:5.9.1-2 (the running jobs do not record their plugin versions "
        "(registered by an older matomo-nomad))")
    assert [(s.key, s.done) for s in plan.upgrade.steps][:3] == [
        ("pause-archiver", False), ("stop-processors", False), ("setup", False)]


# --- refusals ---------------------------------------------------------------------------------------


def test_a_downgrade_is_refused_with_the_reason(fake: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    assert connect(fake).run(deployment()).ok
    fake.clear_requests()
    for older in (deployment(**OLD), deployment(plugins=[{"name": "QueuedTracking", "version": "5.1.1"},
                                                         {"name": "SecurityInfo", "version": "5.0.0"}])):
        for attempt in (connect(fake).plan, connect(fake).run):
            with pytest.raises(DowngradeError) as caught:
                attempt(older)
            message = str(caught.value)
            assert "refused, a downgrade" in message and "Matomo has no down-migrations" in message
            assert message.endswith("Nothing was changed")
    assert "matomo-admin runs Matomo 5.10.0 -> 5.9.1" in str(pytest.raises(DowngradeError, connect(fake).plan,
                                                                            deployment(**OLD)).value)
    assert fake.requests_to(r"^/v1/jobs$", "POST") == []
    code, out, err = cli("run", deploy_file(**OLD), NOMAD_ADDR=fake.address)
    assert code == 27 and out == "" and "refused, a downgrade" in err


def test_a_database_migrated_by_the_setup_job_refuses_the_older_version(fake: FakeNomad) -> None:
    registrations = deployed_old(fake)
    # the upgrade migrates the database, then admin's registration fails: every role
    # still runs 5.9.1, but the database does not
    fake.fail(r"^/v1/jobs$", 500, "rpc error", method="POST", job=ADMIN)
    result = connect(fake).run(deployment())
    assert result.upgrade.stopped_at.number == 4 and registrations.labels()[-1] == "matomo-setup new"
    fake.clear_faults()
    with pytest.raises(DowngradeError, match=r"the database was migrated by matomo-setup \(Matomo 5.10.0 -> 5.9.1; "
                                             r"allocation [0-9a-f]{8} completed\)"):
        connect(fake).plan(deployment(**OLD))


def test_a_failed_setup_attempt_for_another_version_makes_the_setup_job_run_again(fake: FakeNomad) -> None:
    """Given up on 5.10.0 after its setup job failed (its migration may have begun), the
    file back at 5.9.1: not a downgrade (nothing completed), but the database must be
    checked again: setup.php refuses a database newer than its code."""
    deployed_old(fake)
    fake.batch_outcome(SETUP, "failed", failure=EXIT_3)
    assert connect(fake).run(deployment()).upgrade.stopped_at.number == 3
    fake.batch_outcome(SETUP, "complete")
    plan = connect(fake).plan(deployment(**OLD))
    assert plan.upgrade is None
    assert plan.setup.needed and plan.setup.reason.startswith("matomo-setup last ran for another image, plugin set "
                                                              "or database")
    assert connect(fake).run(deployment(**OLD)).ok
    converged(fake, version="5.9.1")  # the archiver resumed, the processors started again


def test_detach_is_refused_for_an_upgrade_before_anything_changes(fake: FakeNomad, cli: Cli,
                                                                deploy_file: Callable[..., str]) -> None:
    deployed_old(fake)
    with pytest.raises(DetachRefusedError, match="run --detach: refused for upgrade 5.9.1 -> 5.10.0"):
        connect(fake).run(deployment(), detach=True)
    code, out, err = cli("run", deploy_file(), "--detach", NOMAD_ADDR=fake.address)
    assert code == 64 and out == "" and "nothing was changed" in err
    assert fake.requests_to(r"^/v1/jobs$", "POST") == []


def test_a_job_without_our_mark_stops_an_upgrade_before_it_starts(fake: FakeNomad) -> None:
    deployed_old(fake)
    fake.clear_requests()
    import requests

    requests.delete(f"{fake.address}/v1/job/{INGESTION}", params={"purge": "true"}, timeout=5)
    register_directly(fake, foreign_job(INGESTION))
    with pytest.raises(NotOwnedError, match="matomo-ingestion: exists without deployment 'matomo'"):
        connect(fake).run(deployment())
    assert [r.json["Job"]["ID"] for r in fake.requests_to(r"^/v1/jobs$", "POST")] == [INGESTION]  # ours above only


# --- fewer queues ---------------------------------------------------------------------------------


FOUR = {"roles": {"queue_processor": {"count": 4, "queues": 4}}}
TWO = {"roles": {"queue_processor": {"count": 2, "queues": 2}}}


def test_lowering_the_queue_count_runs_the_ordered_move(fake: FakeNomad) -> None:
    assert connect(fake).run(deployment(**FOUR)).ok
    fake.clear_requests()
    registrations = Registrations(fake)
    plan = connect(fake).plan(deployment(**TWO))
    assert plan.upgrade is not None and plan.upgrade.summary == "queues 4 -> 2"
    assert [s.key for s in plan.upgrade.steps] == [
        "stop-processors", "roll", "move-queues", "roll-processors", "resume-archiver"]
    assert "Manager::moveSomeQueuesIfNeeded(2, 4)" in plan.upgrade.steps[2].detail

    result = connect(fake).run(deployment(**TWO))
    assert result.ok, [(j.job_id, j.failure) for j in result.jobs]
    assert registrations.labels() == ["stop processors", "matomo-admin new", "matomo-ingestion new", "move queues",
                                      "matomo-queue-processor new", "matomo-archiver new"]
    move = registrations.first("move queues")
    # nothing processed or wrote to the removed queues while they were moved
    assert move.before["processors_running"] == [] and move.before["old_ingestion_running"] == []
    task = move.job["TaskGroups"][0]["Tasks"][0]
    assert task["Config"]["args"][1].endswith("exec php /usr/local/lib/matomo-nomad/setup.php --move-queues=4:2")
    assert MOVE_QUEUES_MARKER in task["Config"]["args"][1]
    assert move.job["Meta"]["matomo_nomad_mode"] == "move-queues 4->2" and move.image == NEW_IMAGE
    assert registrations.first("matomo-queue-processor new").job["TaskGroups"][0]["Count"] == 2
    assert registrations.first("matomo-ingestion new").job["Meta"]["matomo_nomad_queues"] == "2"
    assert [(j.job_id, j.outcome) for j in result.jobs][0] == (SETUP, "queues moved")
    converged(fake, queues=2, count=2)
    # the move is not the setup: an unchanged deployment does not run the setup job again
    assert not connect(fake).plan(deployment(**TWO)).setup.needed


def test_a_failed_queue_move_keeps_the_processors_stopped_and_a_second_run_resumes(fake: FakeNomad) -> None:
    assert connect(fake).run(deployment(**FOUR)).ok
    registrations = Registrations(fake)
    fake.batch_outcome(SETUP, "failed", failure={"Type": "Terminated", "DisplayMessage": "Exit Code: 5",
                                                 "ExitCode": 5})
    result = connect(fake).run(deployment(**TWO))
    assert result.upgrade.stopped_at.key == "move-queues"
    assert isinstance(result.first_error(), SetupFailedError)
    assert "Exit Code: 5" in result.upgrade.reason
    assert registrations.labels() == ["stop processors", "matomo-admin new", "matomo-ingestion new", "move queues"]
    assert fake.job(PROCESSOR)["TaskGroups"][0]["Count"] == 0  # requests wait in queues 0-1 meanwhile
    fake.batch_outcome(SETUP, "complete")
    registrations.clear()
    assert connect(fake).run(deployment(**TWO)).ok
    assert registrations.labels() == ["move queues", "matomo-queue-processor new", "matomo-archiver new"]
    converged(fake, queues=2, count=2)


def test_an_upgrade_and_fewer_queues_together(fake: FakeNomad) -> None:
    registrations = deployed_old(fake, **FOUR)
    result = connect(fake).run(deployment(**TWO))
    assert result.ok, [(j.job_id, j.failure) for j in result.jobs]
    assert result.upgrade.upgrade.summary == "upgrade 5.9.1 -> 5.10.0, queues 4 -> 2"
    assert registrations.labels() == ["pause archiver", "stop processors", "matomo-setup new", "matomo-admin new",
                                      "matomo-ingestion new", "move queues", "matomo-queue-processor new",
                                      "matomo-archiver new"]
    converged(fake, queues=2, count=2)


def test_fewer_queues_with_a_foreign_processor_job_are_refused(fake: FakeNomad) -> None:
    assert connect(fake).run(deployment(**FOUR)).ok
    import requests

    requests.delete(f"{fake.address}/v1/job/{PROCESSOR}", params={"purge": "true"}, timeout=5)
    foreign = foreign_job(PROCESSOR)
    register_directly(fake, foreign)
    fake.clear_requests()
    with pytest.raises(UnsafeChangeError, match=r"matomo-queue-processor exists without this deployment's mark, so "
                                                r"it cannot be stopped or rolled first \(keep queues = 4"):
        connect(fake).plan(deployment(**TWO))
    assert fake.requests_to(r"^/v1/jobs$", "POST") == []


# --- versions --------------------------------------------------------------------------------------


VERSIONS = ["5.9.1", "5.10.0", "5.10.0-b1", "5.10.0-rc1", "5.10.0-rc2", "5.2.0-b2", "5.2.0-b5", "5.2.0", "5.1.2-rc1",
            "5.1.2", "4.16.1", "5.0.0-alpha", "5.0.0-dev", "5.0.0-beta1", "5.0.0-p1", "5.0.0-pl2", "5.0.0.1", "5.0",
            "5", "1.0.0-RC1", "1.0.0rc1", "1.0.0-1", "5.1.0-b3.20240515080303", "10.0.0", "5.1.2-x", "5.01.2"]


def test_versions_are_ordered_as_phps_version_compare_orders_them() -> None:
    php = shutil.which("php")
    if php is None:
        pytest.fail("php is not installed (Debian package php-cli; CI installs it: see .ci/run)")
    pairs = [(a, b) for a in VERSIONS for b in VERSIONS]
    script = "foreach (json_decode(stream_get_contents(STDIN)) as [$a, $b]) echo version_compare($a, $b), \"\\n\";"
    out = subprocess.run([php, "-r", script], input=json.dumps(pairs), capture_output=True, text=True, check=True)
    expected = [int(line) for line in out.stdout.splitlines()]
    assert [php_version_compare(a, b) for a, b in pairs] == expected
    assert php_version_compare("5.9.1", "5.10.0") == -1 and php_version_compare("5.10.0-rc1", "5.10.0") == -1

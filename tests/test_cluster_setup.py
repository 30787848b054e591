"""`run` and `plan` around the setup job, and the queue count, against the fake Nomad.

* The setup job runs first and must end well before any role is registered; a failed
  one stops the run with its task event and the command to read its logs, and nothing
  else is registered; a retry is a new job version; an unchanged deployment does not
  run it again; a new image does.
* Fewer queues than the running jobs were given is an ordered move in plan (the move
  itself is tested in test_upgrade.py), whether the running jobs carry the count in
  their meta or (registered by an older matomo-nomad) only in their config template;
  plan and run refuse it, with the fix, where a job without our mark makes it unsafe.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, Callable

import pytest
import requests

from matomo_nomad import Role
from matomo_nomad._cli import main
from matomo_nomad._errors import SetupFailedError
from tests.fakenomad import FakeNomad
from tests.test_cluster import connect, deployment, deployment_data, register_directly, rendered_job, seed_secrets

pytest_plugins = ("tests.fakenomad.fixtures",)

SETUP = "matomo-setup"
ROLE_IDS = ["matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver"]
EXIT_3 = {"Type": "Terminated", "DisplayMessage": "Exit Code: 3, Exit Message: \"Docker container exited with non-zero exit code: 3\"",
          "ExitCode": 3}


@pytest.fixture
def fake(make_fake_nomad: Callable[..., FakeNomad]) -> FakeNomad:
    fake = make_fake_nomad()
    seed_secrets(fake)
    return fake


def _registrations(fake: FakeNomad) -> list[str]:
    return [r.json["Job"]["ID"] for r in fake.requests_to(r"^/v1/jobs$", "POST") if r.status == 200]


def _setup_allocations(fake: FakeNomad) -> list[dict[str, Any]]:
    return fake.allocations(SETUP)


def test_a_new_deployment_runs_setup_to_completion_before_any_role(fake: FakeNomad) -> None:
    cluster = connect(fake)
    plan = cluster.plan(deployment())
    assert plan.setup is not None and plan.setup.needed and "new deployment" in plan.setup.reason
    assert [job.job_id for job in plan.jobs] == ROLE_IDS  # the roles; setup is its own step

    result = cluster.run(deployment())
    assert result.ok, [(j.job_id, j.failure) for j in result.jobs]
    assert [(j.job_id, j.outcome) for j in result.jobs] == [(SETUP, "completed")] + [(i, "registered") for i in ROLE_IDS]
    registrations = _registrations(fake)
    assert registrations[0] == SETUP and sorted(registrations[1:]) == sorted(ROLE_IDS)

    # The setup allocation had ended, complete, before the first role was registered:
    # run saw it so through the allocations query it made between the two.
    posts = [r for r in fake.requests_to(r"^/v1/jobs$", "POST")]
    first_role = next(r for r in posts if r.json["Job"]["ID"] != SETUP)
    watched = [r for r in fake.requests_to(rf"^/v1/job/{SETUP}/allocations$", "GET") if r.time < first_role.time]
    assert watched and all(r.blocking for r in watched[1:])
    (alloc,) = _setup_allocations(fake)
    assert alloc["ClientStatus"] == "complete"

    # Each role was registered carrying the setup it was prepared by.
    fingerprint = plan.setup.fingerprint
    for job_id in ROLE_IDS:
        assert fake.job(job_id)["Meta"]["matomo_nomad_setup"] == fingerprint


def test_an_unchanged_deployment_does_not_run_setup_again(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment()).ok
    before = len(fake.job_versions(SETUP))
    fake.clear_requests()
    plan = cluster.plan(deployment())
    assert not plan.setup.needed and not plan.changed
    result = cluster.run(deployment())
    assert [j.outcome for j in result.jobs] == ["unchanged"] * 4
    assert _registrations(fake) == [] and len(fake.job_versions(SETUP)) == before


def test_a_failed_setup_stops_the_run_names_the_cause_and_registers_nothing_else(fake: FakeNomad) -> None:
    fake.batch_outcome(SETUP, "failed", failure=EXIT_3)
    result = connect(fake).run(deployment())
    setup, *roles = result.jobs
    assert setup.job_id == SETUP and setup.outcome == "failed" and isinstance(setup.error, SetupFailedError)
    assert "Terminated: Exit Code: 3" in setup.failure
    assert "nomad alloc logs -namespace default -stderr" in setup.failure and "matomo-setup" in setup.failure
    assert "nothing else was registered" in setup.failure
    assert [(j.job_id, j.outcome) for j in roles] == [(i, "not registered") for i in ROLE_IDS]
    assert result.first_error() is setup.error and SetupFailedError.exit_code == 25
    assert _registrations(fake) == [SETUP]
    for job_id in ROLE_IDS:
        assert fake.job(job_id) is None


def test_a_retry_is_a_new_version_and_then_the_roles_follow(fake: FakeNomad) -> None:
    cluster = connect(fake)
    fake.batch_outcome(SETUP, "failed", failure=EXIT_3)
    assert not cluster.run(deployment()).ok
    # Nomad places nothing for an unchanged batch job whose allocation failed: run must
    # register a new version for the second attempt, or the failure would stand.
    fake.batch_outcome(SETUP, "complete")
    result = cluster.run(deployment())
    assert result.ok, [(j.job_id, j.failure) for j in result.jobs]
    versions = fake.job_versions(SETUP)
    assert [v["Version"] for v in versions] == [1, 0]
    assert versions[0]["Meta"]["matomo_nomad_attempt"] != versions[1]["Meta"]["matomo_nomad_attempt"]
    statuses = sorted(a["ClientStatus"] for a in _setup_allocations(fake))
    assert statuses == ["complete", "failed"]


def test_setup_is_waited_for_even_with_detach(fake: FakeNomad) -> None:
    result = connect(fake).run(deployment(), detach=True)
    assert result.jobs[0].outcome == "completed"
    assert [j.deployment for j in result.jobs[1:]] == [None] * 4  # the roles are not watched


def test_a_new_image_runs_setup_before_the_roles_move(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment()).ok
    newer = deployment(matomo={"image": "registry.example.com/matomo:5.10.0-2"})
    plan = cluster.plan(newer)
    assert plan.setup.needed
    assert "registry.example.com/matomo:5.10.0-1 -> registry.example.com/matomo:5.10.0-2" in plan.setup.reason
    fake.clear_requests()
    assert cluster.run(newer).ok
    assert _registrations(fake)[0] == SETUP and len(_registrations(fake)) == 5
    # A changed plugin set is new code for the database as well.
    plugins = deployment(matomo={"image": "registry.example.com/matomo:5.10.0-2"},
                         plugins=[{"name": "QueuedTracking", "version": "5.2.1"}])
    assert cluster.plan(plugins).setup.needed


def test_purged_roles_get_setup_first_and_one_purged_role_too(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment()).ok
    assert cluster.destroy(deployment(), purge=True)
    plan = cluster.plan(deployment())
    assert plan.setup.needed and "new deployment" in plan.setup.reason
    assert cluster.run(deployment()).ok
    requests.delete(f"{fake.address}/v1/job/matomo-archiver", params={"purge": "true"}, timeout=5)
    plan = cluster.plan(deployment())
    assert plan.setup.needed and plan.setup.reason.startswith("matomo-archiver not running")


def test_plan_text_shows_the_setup_step(fake: FakeNomad, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps(deployment_data()))
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["plan", str(path)])
    assert code == 1, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0] == "+ job matomo-setup (runs first, and must succeed before the others are registered)"
    assert lines[1].startswith("    why: a new deployment")
    assert lines[-1] == "4 of 4 job(s) would change after the setup job in namespace default."

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["run", str(path)]) == 0
    assert err.getvalue().splitlines()[0].startswith("matomo-setup: running first: a new deployment")
    assert out.getvalue().splitlines()[0].startswith("matomo-setup: completed")
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["plan", str(path)]) == 0
    assert out.getvalue().splitlines()[0].startswith("  job matomo-setup (not run: every job runs after setup ")


def test_run_cli_exits_25_when_setup_fails(fake: FakeNomad, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps(deployment_data()))
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    fake.batch_outcome(SETUP, "failed", failure=EXIT_3)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["run", str(path)]) == 25
    assert "matomo-setup: FAILED: allocation" in err.getvalue() and "Exit Code: 3" in err.getvalue()
    assert out.getvalue().splitlines() == [
        f"{job_id}: not registered: the setup job did not succeed" for job_id in ROLE_IDS
    ]


# --- queues --------------------------------------------------------------------------


def test_fewer_queues_are_an_ordered_move_in_plan(fake: FakeNomad) -> None:
    # The move itself, and its refusals, are tested in test_upgrade.py.
    cluster = connect(fake)
    four = deployment(roles={"queue_processor": {"count": 4, "queues": 4}})
    assert cluster.run(four).ok
    fake.clear_requests()
    two = deployment(roles={"queue_processor": {"count": 2, "queues": 2}})
    plan = cluster.plan(two)
    assert plan.changed and plan.upgrade is not None and plan.upgrade.summary == "queues 4 -> 2"
    assert [s.key for s in plan.upgrade.steps][:3] == ["stop-processors", "roll", "move-queues"]
    assert _registrations(fake) == []
    # Raising the count is no move, and neither is keeping it with fewer processors.
    for other in ({"count": 2, "queues": 4}, {"count": 4, "queues": 8}):
        plan = cluster.plan(deployment(roles={"queue_processor": other}))
        assert plan.changed and plan.upgrade is None


def test_jobs_from_before_the_meta_are_read_from_their_template(fake: FakeNomad) -> None:
    # A job an older matomo-nomad registered: numQueueWorkers followed the processor
    # count, and there was no queues meta.
    old = rendered_job("matomo-queue-processor", deployment(roles={"queue_processor": {"count": 3, "queues": 3}}))
    del old["Meta"]["matomo_nomad_queues"]
    template = old["TaskGroups"][0]["Tasks"][0]["Templates"][0]
    assert "numQueueWorkers = 3\n" in template["EmbeddedTmpl"]
    # ... which wrote its numbers quoted: both spellings are read.
    template["EmbeddedTmpl"] = template["EmbeddedTmpl"].replace("numQueueWorkers = 3\n", 'numQueueWorkers = "3"\n')
    register_directly(fake, old)
    plan = connect(fake).plan(deployment())
    assert plan.upgrade is not None and (plan.upgrade.queues_from, plan.upgrade.queues_to) == (3, 1)
    assert "re-queues the requests of queues 1-2 into queue 0" in plan.upgrade.step("move-queues").detail


def test_the_cli_exits_26_and_plan_255_on_fewer_queues_that_cannot_be_moved(
    fake: FakeNomad, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert connect(fake).run(deployment(roles={"queue_processor": {"queues": 2, "count": 2}})).ok
    # A processor job without our mark: it cannot be stopped before the move.
    requests.delete(f"{fake.address}/v1/job/matomo-queue-processor", params={"purge": "true"}, timeout=5)
    foreign = rendered_job("matomo-queue-processor", deployment(roles={"queue_processor": {"queues": 2, "count": 2}}))
    foreign["Meta"] = {"owner": "someone-else"}
    register_directly(fake, foreign)
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps(deployment_data()))
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    for command, code in (("run", 26), ("plan", 255)):
        err = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            assert main([command, str(path)]) == code
        (line,) = err.getvalue().splitlines()
        assert "lowering it to 1 means moving the requests waiting in queue 1" in line
        assert "matomo-queue-processor exists without this deployment's mark" in line


def test_every_role_job_carries_the_queue_count_and_setup_fingerprint() -> None:
    d = deployment(roles={"queue_processor": {"count": 2, "queues": 5}}, monitoring={"exporter": {}})
    for role in Role:
        meta = rendered_job(d.job_id(role), d)["Meta"]
        assert meta["matomo_nomad_queues"] == "5"
        # The monitoring job runs no Matomo: no setup is needed for it.
        assert len(meta.get("matomo_nomad_setup", "")) == (16 if role is not Role.monitoring else 0)


def test_a_job_without_our_mark_does_not_make_setup_run_again_and_again(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment()).ok
    foreign = rendered_job("matomo-admin")
    foreign["Meta"] = {"owner": "someone-else"}
    requests.delete(f"{fake.address}/v1/job/matomo-admin", params={"purge": "true"}, timeout=5)
    register_directly(fake, foreign)
    plan = cluster.plan(deployment())
    # Not ours: no fingerprint to compare, and run will not touch it without --adopt.
    assert not plan.setup.needed, plan.setup.reason

"""The optional monitoring job (`<name>-monitoring`, redis_exporter) on a cluster, against
the fake Nomad, and on the command line.

* plan lists it after the four Matomo roles (the setup job apart); neither its presence,
  its absence nor a change of it makes the setup job needed.
* run registers it beside the roles (concurrently, after the setup job when that runs),
  with exactly the rendered API job and HCL source; a failed setup job leaves it "not
  registered"; a failed exporter deployment fails it alone.
* an upgrade takes no step for it: it is registered, if changed, once every step has
  succeeded, and not at all when the upgrade stops.
* status reports it (exists, owned, in sync, service health); destroy stops it, and a
  leftover of ours when the file no longer has [monitoring.exporter].
* secrets: its own path with redis_password, filled by `secrets init` with the same
  password the other paths get; run refuses while it is missing.
* render: --role monitoring; refused (64) without the table, and with --format ini;
  --out writes its HCL and JSON, no config.ini.php template.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import requests

from matomo_nomad import Role, render
from matomo_nomad._cli import main
from matomo_nomad._errors import DeploymentFailedError, MissingSecretsError, NotOwnedError, SetupFailedError
from matomo_nomad._model import MATOMO_ROLES
from matomo_nomad._secrets import expected_secrets
from tests.fakenomad import FakeNomad
from tests.test_cli import cli as process_cli
from tests.test_cli import ok
from tests.test_cluster import (
    connect,
    deployment,
    deployment_data,
    register_directly,
    registered_ids,
    rendered_job,
    seed_secrets,
)
from tests.test_upgrade import OLD, NEW_IMAGE, Registrations

pytest_plugins = ("tests.fakenomad.fixtures",)

ADMIN, INGESTION, PROCESSOR, ARCHIVER, SETUP, MONITORING = (
    "matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver", "matomo-setup",
    "matomo-monitoring")
ROLE_IDS = [ADMIN, INGESTION, PROCESSOR, ARCHIVER]
MON = {"monitoring": {"exporter": {}}}
"""[monitoring.exporter], empty: the monitoring job with every default."""
MON_96 = {"monitoring": {"exporter": {"memory": 96}}}
"""The same job with another memory: a change of the monitoring job alone."""
EXIT_3 = {"Type": "Terminated", "DisplayMessage": "Exit Code: 3", "ExitCode": 3}
# What the fake adds to a registered job (server-side fields, and the defaults its
# api.Job.Canonicalize fills): everything else must be the rendered job, unchanged.
FAKE_ADDED = ("Status", "StatusDescription", "Stable", "Version", "SubmitTime", "CreateIndex", "ModifyIndex",
              "JobModifyIndex", "Stop", "ParentID", "Dispatched", "AllAtOnce")


@pytest.fixture
def fake(make_fake_nomad: Callable[..., FakeNomad]) -> FakeNomad:
    fake = make_fake_nomad(tick=0.01, block_cap=0.2)
    seed_secrets(fake, deployment(**MON))
    return fake


def posts_for(fake: FakeNomad, job_id: str) -> list[Any]:
    """The registrations (POST /v1/jobs) of `job_id` the fake received."""
    return [r for r in fake.requests_to(r"^/v1/jobs$", "POST") if r.json["Job"]["ID"] == job_id]


def deletes_of(fake: FakeNomad, job_id: str) -> list[Any]:
    return fake.requests_to(rf"^/v1/job/{job_id}$", "DELETE")


def memory(job: dict[str, Any]) -> int:
    return int(job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"])


def by_id(items: list[Any]) -> dict[str, Any]:
    return {item.job_id: item for item in items}


# --- the roles -----------------------------------------------------------------------------


def test_monitoring_is_a_role_but_not_a_matomo_role() -> None:
    assert Role.monitoring not in MATOMO_ROLES and set(MATOMO_ROLES) | {Role.monitoring} == set(Role)
    assert [r.job_id for r in render(deployment())] == [*ROLE_IDS, SETUP]  # no table: no job
    rendering = render(deployment(**MON))
    assert [r.job_id for r in rendering] == [*ROLE_IDS, SETUP, MONITORING]
    meta = rendering[Role.monitoring].job["Meta"]
    assert (meta["matomo_nomad_deployment"], meta["matomo_nomad_role"]) == ("matomo", "monitoring")
    assert "matomo_nomad_setup" not in meta  # it needs no database setup


# --- plan ----------------------------------------------------------------------------------


def test_plan_lists_monitoring_after_the_four_roles_and_setup_apart(fake: FakeNomad) -> None:
    d = deployment(**MON)
    plan = connect(fake).plan(d)
    assert [(j.job_id, j.role, j.change, j.exists, j.owned) for j in plan.jobs] == [
        *((job_id, role, "create", False, True) for job_id, role in zip(ROLE_IDS, MATOMO_ROLES)),
        (MONITORING, Role.monitoring, "create", False, True)]
    assert plan.setup is not None and plan.setup.job_id == SETUP and plan.setup.needed
    assert [(g.group, g.place) for g in plan.jobs[-1].groups] == [("monitoring", 1)]
    assert plan.to_dict()["jobs"][-1]["role"] == "monitoring"
    # Nomad was asked to plan exactly the rendered monitoring job; nothing was registered.
    (asked,) = fake.requests_to(rf"^/v1/job/{MONITORING}/plan$", "POST")
    assert asked.json["Job"] == render(d)[Role.monitoring].job and asked.json["Diff"] is True
    assert fake.requests_to(r"^/v1/jobs$", "POST") == [] and fake.job(MONITORING) is None


def test_adding_the_exporter_registers_only_monitoring_and_runs_no_setup(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment()).ok
    setup_versions = len(fake.job_versions(SETUP))
    fake.clear_requests()

    plan = cluster.plan(deployment(**MON))
    assert [(j.job_id, j.change) for j in plan.jobs] == [*((i, "none") for i in ROLE_IDS), (MONITORING, "create")]
    assert plan.changed and not plan.setup.needed, plan.setup.reason
    assert plan.setup.reason.startswith("not needed") and plan.upgrade is None

    result = cluster.run(deployment(**MON))
    assert result.ok, [(j.job_id, j.failure) for j in result.jobs]
    assert [(j.job_id, j.outcome) for j in result.jobs] == [*((i, "unchanged") for i in ROLE_IDS),
                                                            (MONITORING, "registered")]
    assert registered_ids(fake) == [MONITORING]  # no setup job, no role touched
    assert len(fake.job_versions(SETUP)) == setup_versions
    assert fake.job(MONITORING)["Meta"]["matomo_nomad_role"] == "monitoring"


def test_a_changed_or_missing_monitoring_job_never_makes_setup_needed(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment(**MON)).ok
    assert not cluster.plan(deployment(**MON)).changed

    # Changed: only it is planned as an update, and only it is registered again.
    plan = cluster.plan(deployment(**MON_96))
    assert [(j.job_id, j.change) for j in plan.jobs] == [*((i, "none") for i in ROLE_IDS), (MONITORING, "update")]
    assert not plan.setup.needed, plan.setup.reason
    fake.clear_requests()
    result = cluster.run(deployment(**MON_96))
    assert result.ok and registered_ids(fake) == [MONITORING]
    assert memory(fake.job(MONITORING)) == 96 and fake.job(MONITORING)["Version"] == 1

    # Purged behind our back: it is created again, still without the setup job.
    requests.delete(f"{fake.address}/v1/job/{MONITORING}", params={"purge": "true"}, timeout=5)
    plan = cluster.plan(deployment(**MON_96))
    assert not plan.setup.needed, plan.setup.reason
    assert by_id(plan.jobs)[MONITORING].change == "create"
    fake.clear_requests()
    assert cluster.run(deployment(**MON_96)).ok and registered_ids(fake) == [MONITORING]

    # The table removed from the file: plan no longer lists it, nor needs setup.
    plan = cluster.plan(deployment())
    assert [j.job_id for j in plan.jobs] == ROLE_IDS and not plan.changed


# --- run -----------------------------------------------------------------------------------


def test_run_registers_exactly_the_rendered_monitoring_job_after_the_setup_job(fake: FakeNomad) -> None:
    d = deployment(**MON)
    rendered = render(d)[Role.monitoring]
    registrations = Registrations(fake)  # a snapshot of the cluster before each registration
    result = connect(fake).run(d)
    assert result.ok, [(j.job_id, j.failure) for j in result.jobs]
    assert [(j.job_id, j.outcome) for j in result.jobs] == [
        (SETUP, "completed"), *((i, "registered") for i in ROLE_IDS), (MONITORING, "registered")]
    monitoring = result.jobs[-1]
    assert monitoring.role is Role.monitoring and monitoring.deployment is not None
    assert monitoring.deployment.status == "successful"  # watched like the roles

    ids = registered_ids(fake)
    assert ids[0] == SETUP and sorted(ids[1:]) == sorted([*ROLE_IDS, MONITORING])
    # the setup job's allocation had completed before the monitoring job was registered
    (registration,) = [r for r in registrations.items if r.job_id == MONITORING]
    assert registration.before["setup_latest"] == "complete"

    # What Nomad received is the rendered API job, unchanged (run adds an attempt id to
    # the setup job only), with the rendered HCL as its submission.
    (post,) = posts_for(fake, MONITORING)
    assert post.json["Job"] == rendered.job
    assert post.json["Submission"] == {"Source": rendered.hcl, "Format": "hcl2", "VariableFlags": {},
                                       "Variables": ""}
    assert post.json["EnforceIndex"] is True and post.json["JobModifyIndex"] == 0
    # ... and what it holds is that job, apart from what the fake itself adds.
    stored = fake.job(MONITORING)
    assert {k: v for k, v in stored.items() if k not in FAKE_ADDED} == rendered.job
    assert stored["Meta"]["matomo_nomad_deployment"] == "matomo" and stored["Meta"]["matomo_nomad_role"] == "monitoring"
    submission = requests.get(f"{fake.address}/v1/job/{MONITORING}/submission", params={"version": "0"}, timeout=5)
    assert submission.status_code == 200 and submission.json()["Source"] == rendered.hcl
    assert [a["ClientStatus"] for a in fake.allocations(MONITORING)] == ["running"]


def test_monitoring_is_registered_beside_the_roles_not_after_them(fake: FakeNomad) -> None:
    # Admin's deployment does not move until told to: monitoring must not wait for it.
    fake.progress(ADMIN, "successful", interval=None)
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(connect(fake).run(deployment(**MON), watch_timeout=10)))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while (fake.deployment(MONITORING) or {}).get("Status") != "successful":
            assert time.monotonic() < deadline, "the monitoring job was not registered and deployed meanwhile"
            time.sleep(0.01)
        assert fake.deployment(ADMIN)["Status"] == "running"
    finally:
        fake.progress(ADMIN, "successful")
        worker.join(10)
    assert not worker.is_alive()
    (result,) = outcome
    assert result.ok and [j.outcome for j in result.jobs][-1] == "registered"


def test_a_failed_setup_job_leaves_monitoring_not_registered(fake: FakeNomad) -> None:
    fake.batch_outcome(SETUP, "failed", failure=EXIT_3)
    result = connect(fake).run(deployment(**MON))
    setup, *others = result.jobs
    assert setup.outcome == "failed" and isinstance(setup.error, SetupFailedError)
    assert [(j.job_id, j.outcome) for j in others] == [(i, "not registered") for i in [*ROLE_IDS, MONITORING]]
    assert others[-1].role is Role.monitoring
    assert others[-1].failure == "not registered: the setup job did not succeed"
    assert registered_ids(fake) == [SETUP]
    assert fake.job(MONITORING) is None


def test_a_failed_exporter_deployment_fails_monitoring_alone(fake: FakeNomad) -> None:
    fake.progress(MONITORING, "failed")
    result = connect(fake).run(deployment(**MON))
    assert not result.ok
    runs = by_id(result.jobs)
    assert all(runs[i].outcome == "registered" for i in ROLE_IDS)
    monitoring = runs[MONITORING]
    assert monitoring.outcome == "failed" and isinstance(monitoring.error, DeploymentFailedError)
    assert result.first_error() is monitoring.error
    assert "task redis-exporter" in monitoring.failure
    assert fake.deployment(MONITORING)["Status"] == "failed"


def test_detach_registers_monitoring_without_watching_it(fake: FakeNomad) -> None:
    result = connect(fake).run(deployment(**MON), detach=True)
    monitoring = result.jobs[-1]
    assert (monitoring.job_id, monitoring.outcome, monitoring.deployment) == (MONITORING, "registered", None)
    assert fake.job(MONITORING) is not None
    assert fake.requests_to(rf"^/v1/job/{MONITORING}/deployment$", "GET") == []


def test_a_monitoring_job_without_our_mark_is_not_overwritten(fake: FakeNomad) -> None:
    foreign = rendered_job(MONITORING, deployment(**MON))
    foreign["Meta"] = {"owner": "someone-else"}
    register_directly(fake, foreign)
    fake.clear_requests()
    result = connect(fake).run(deployment(**MON))
    runs = by_id(result.jobs)
    assert runs[MONITORING].outcome == "failed" and isinstance(runs[MONITORING].error, NotOwnedError)
    assert all(runs[i].outcome == "registered" for i in ROLE_IDS)  # the others go on
    assert posts_for(fake, MONITORING) == []
    assert fake.job(MONITORING)["Meta"] == {"owner": "someone-else"}


# --- upgrade -------------------------------------------------------------------------------


def test_an_upgrade_registers_a_changed_monitoring_job_after_every_step(fake: FakeNomad) -> None:
    assert connect(fake).run(deployment(**OLD, **MON)).ok
    fake.clear_requests()
    registrations = Registrations(fake)
    plan = connect(fake).plan(deployment(**MON_96))
    assert plan.upgrade is not None and plan.upgrade.summary == "upgrade 5.9.1 -> 5.10.0"
    # not a step of its own
    assert [s.key for s in plan.upgrade.steps] == ["pause-archiver", "stop-processors", "setup", "roll",
                                                   "resume-archiver"]
    assert by_id(plan.jobs)[MONITORING].change == "update"

    result = connect(fake).run(deployment(**MON_96))
    assert result.ok, [(j.job_id, j.failure) for j in result.jobs]
    assert result.upgrade.ok and result.upgrade.completed == [1, 2, 3, 4, 5]
    assert [(j.job_id, j.outcome) for j in result.jobs][-1] == (MONITORING, "registered")
    labels = registrations.labels()
    assert labels[:4] == ["pause archiver", "stop processors", "matomo-setup new", "matomo-admin new"]
    assert labels[-2:] == ["matomo-archiver new", "matomo-monitoring old"]  # "old": not Matomo's image
    # registered once every step was done: the archiver resumed with the new image
    (monitoring,) = [r for r in registrations.items if r.job_id == MONITORING]
    assert monitoring.before["archiver_enabled"] is True and monitoring.before["admin_image"] == NEW_IMAGE
    assert monitoring.job == {**render(deployment(**MON_96))[Role.monitoring].job,
                              "Namespace": "default", "Region": "global", "Stop": False, "ParentID": "",
                              "Dispatched": False, "AllAtOnce": False}  # as canonicalized by the fake
    assert len(posts_for(fake, MONITORING)) == 1 and memory(fake.job(MONITORING)) == 96


def test_an_upgrade_leaves_an_unchanged_monitoring_job_alone(fake: FakeNomad) -> None:
    assert connect(fake).run(deployment(**OLD, **MON)).ok
    version = fake.job(MONITORING)["Version"]
    fake.clear_requests()
    result = connect(fake).run(deployment(**MON))
    assert result.ok and result.upgrade is not None and result.upgrade.ok
    assert [(j.job_id, j.outcome) for j in result.jobs][-1] == (MONITORING, "unchanged")
    assert posts_for(fake, MONITORING) == [] and fake.job(MONITORING)["Version"] == version


def test_an_upgrade_that_adds_the_exporter_creates_it_after_the_steps(fake: FakeNomad) -> None:
    assert connect(fake).run(deployment(**OLD)).ok
    registrations = Registrations(fake)
    plan = connect(fake).plan(deployment(**MON))
    assert plan.upgrade is not None and by_id(plan.jobs)[MONITORING].change == "create"
    assert len(plan.upgrade.steps) == 5
    result = connect(fake).run(deployment(**MON))
    assert result.ok and [(j.job_id, j.outcome) for j in result.jobs][-1] == (MONITORING, "registered")
    assert registrations.labels()[-1] == "matomo-monitoring old"
    assert fake.job(MONITORING)["Meta"]["matomo_nomad_role"] == "monitoring"


def test_a_stopped_upgrade_does_not_register_monitoring_and_the_resume_does(fake: FakeNomad) -> None:
    assert connect(fake).run(deployment(**OLD, **MON)).ok
    fake.clear_requests()
    fake.progress(ADMIN, "failed")
    result = connect(fake).run(deployment(**MON_96))
    assert result.upgrade.stopped_at is not None and result.upgrade.stopped_at.number == 4
    monitoring = by_id(result.jobs)[MONITORING]
    assert monitoring.outcome == "not registered"
    assert monitoring.failure.startswith("not registered: the upgrade stopped at step 4")
    assert posts_for(fake, MONITORING) == [] and memory(fake.job(MONITORING)) == 64

    fake.progress(ADMIN, "successful")
    second = connect(fake).run(deployment(**MON_96))
    assert second.ok, [(j.job_id, j.failure) for j in second.jobs]
    assert by_id(second.jobs)[MONITORING].outcome == "registered"
    assert len(posts_for(fake, MONITORING)) == 1 and memory(fake.job(MONITORING)) == 96


# --- status --------------------------------------------------------------------------------


def test_status_reports_monitoring_with_its_health_and_sync(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert [(s.job_id, s.exists) for s in cluster.status(deployment(**MON))][-1] == (MONITORING, False)
    assert cluster.run(deployment(**MON)).ok
    statuses = cluster.status(deployment(**MON))
    assert [s.job_id for s in statuses] == [*ROLE_IDS, SETUP, MONITORING]
    monitoring = statuses[-1]
    assert (monitoring.role, monitoring.exists, monitoring.owned, monitoring.in_sync) == (
        Role.monitoring, True, True, True)
    assert monitoring.status == "running" and monitoring.allocations == {"running": 1}
    assert monitoring.deployment is not None and monitoring.deployment.status == "successful"
    assert (monitoring.health.running, monitoring.health.desired, monitoring.health.warnings) == (1, 1, [])
    # a change of the file's [monitoring.exporter] puts it (only it) out of sync
    changed = by_id(cluster.status(deployment(**MON_96)))
    assert changed[MONITORING].in_sync is False
    assert all(changed[i].in_sync for i in [*ROLE_IDS, SETUP])


def test_status_shows_an_unhealthy_exporter(fake: FakeNomad) -> None:
    fake.progress(MONITORING, "failed")
    connect(fake).run(deployment(**MON))
    monitoring = by_id(connect(fake).status(deployment(**MON)))[MONITORING]
    assert monitoring.owned and monitoring.allocations == {"failed": 1}
    assert monitoring.health.running == 0 and monitoring.health.desired == 1
    assert monitoring.health.warnings == ["monitoring: 0 of 1 allocations running"]


def test_status_does_not_read_a_monitoring_job_without_our_mark(fake: FakeNomad) -> None:
    foreign = rendered_job(MONITORING, deployment(**MON))
    foreign["Meta"] = {"owner": "someone-else"}
    register_directly(fake, foreign)
    fake.clear_requests()
    monitoring = by_id(connect(fake).status(deployment(**MON)))[MONITORING]
    assert (monitoring.exists, monitoring.owned, monitoring.health, monitoring.in_sync) == (True, False, None, None)
    assert fake.requests_to(rf"^/v1/job/{MONITORING}/allocations$") == []


# --- destroy -------------------------------------------------------------------------------


def test_destroy_stops_and_purges_monitoring(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment(**MON)).ok
    results = cluster.destroy(deployment(**MON))
    assert [(r.job_id, r.outcome) for r in results] == [(i, "stopped") for i in [*ROLE_IDS, SETUP, MONITORING]]
    assert results[-1].role is Role.monitoring
    (delete,) = deletes_of(fake, MONITORING)
    assert delete.query.get("purge") == "false"
    assert fake.job(MONITORING)["Stop"] is True
    results = by_id(cluster.destroy(deployment(**MON), purge=True))
    assert results[MONITORING].outcome == "purged" and fake.job(MONITORING) is None


def test_destroy_without_the_table_stops_an_owned_monitoring_job_left_from_before(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment(**MON)).ok
    fake.clear_requests()
    results = cluster.destroy(deployment())  # [monitoring.exporter] removed from the file since
    assert [(r.job_id, r.outcome) for r in results] == [(i, "stopped") for i in [*ROLE_IDS, SETUP, MONITORING]]
    assert results[-1].role is Role.monitoring
    assert len(deletes_of(fake, MONITORING)) == 1 and fake.job(MONITORING)["Stop"] is True


def test_destroy_without_the_table_and_without_a_monitoring_job_does_not_mention_it(fake: FakeNomad) -> None:
    cluster = connect(fake)
    assert cluster.run(deployment()).ok
    fake.clear_requests()
    results = cluster.destroy(deployment())
    assert [(r.job_id, r.outcome) for r in results] == [(i, "stopped") for i in [*ROLE_IDS, SETUP]]
    assert deletes_of(fake, MONITORING) == []
    # With the table, an absent monitoring job is reported as absent like any job.
    results = by_id(cluster.destroy(deployment(**MON), purge=True))
    assert results[MONITORING].outcome == "absent"


def test_destroy_refuses_a_foreign_monitoring_job_the_file_asks_for(fake: FakeNomad) -> None:
    foreign = rendered_job(MONITORING, deployment(**MON))
    foreign["Meta"] = {"owner": "someone-else"}
    register_directly(fake, foreign)
    results = by_id(connect(fake).destroy(deployment(**MON)))
    assert results[MONITORING].outcome == "refused"
    assert deletes_of(fake, MONITORING) == [] and fake.job(MONITORING)["Stop"] is False


def test_destroy_without_the_table_ignores_someone_elses_monitoring_job(
        fake: FakeNomad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another team's job that happens to have the id: not this deployment's, never was.
    foreign = rendered_job(MONITORING, deployment(**MON))
    foreign["Meta"] = {"owner": "someone-else"}
    register_directly(fake, foreign)
    cluster = connect(fake)
    assert cluster.run(deployment()).ok
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps(deployment_data()))
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["destroy", str(path)])
    assert deletes_of(fake, MONITORING) == [] and fake.job(MONITORING)["Stop"] is False
    assert MONITORING not in out.getvalue() + err.getvalue()
    assert code == 0, err.getvalue()


# --- secrets -------------------------------------------------------------------------------


REDIS_PASSWORD = {"redis": {"password": True}}


def secrets_cli(fake: FakeNomad, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], path: Path,
                *argv: str, **env: str) -> tuple[int, str, str]:
    for name in ("VAULT_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "MATOMO_DATABASE_PASSWORD",
                 "MATOMO_REDIS_PASSWORD", "MATOMO_SALT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(["secrets", "init", str(path), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def deploy_json(tmp_path: Path, **update: Any) -> Path:
    path = tmp_path / f"deploy-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(deployment_data(**update)))
    return path


def test_expected_secrets_include_the_monitoring_jobs_own_path() -> None:
    locations = expected_secrets(deployment(**REDIS_PASSWORD, **MON))
    assert [loc.path for loc in locations] == [f"nomad/jobs/{i}" for i in [*ROLE_IDS, SETUP, MONITORING]]
    monitoring = locations[-1]
    assert (monitoring.provider, monitoring.keys, monitoring.jobs) == ("nomad", ("redis_password",), (MONITORING,))
    assert all("redis_password" in loc.keys for loc in locations)
    # No table, no path.
    assert f"nomad/jobs/{MONITORING}" not in [loc.path for loc in expected_secrets(deployment(**REDIS_PASSWORD))]


def test_secrets_init_gives_monitoring_the_same_generated_redis_password(
        make_fake_nomad: Callable[..., FakeNomad], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake = make_fake_nomad()
    path = deploy_json(tmp_path, **REDIS_PASSWORD, **MON)
    code, out, err = secrets_cli(fake, monkeypatch, capsys, path, "--generate", "redis_password",
                                 MATOMO_DATABASE_PASSWORD="db-secret")
    assert code == 0, err
    admin = fake.variable(f"nomad/jobs/{ADMIN}")["Items"]
    # Only what the exporter reads, and the very password every other job has.
    assert fake.variable(f"nomad/jobs/{MONITORING}")["Items"] == {"redis_password": admin["redis_password"]}
    assert {fake.variable(f"nomad/jobs/{i}")["Items"]["redis_password"] for i in [*ROLE_IDS, SETUP]} == {
        admin["redis_password"]}
    assert f"nomad/jobs/{MONITORING}: redis_password generated" in out.splitlines()
    assert admin["redis_password"] not in out + err


def test_secrets_init_gives_monitoring_the_redis_password_given(
        make_fake_nomad: Callable[..., FakeNomad], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake = make_fake_nomad()
    path = deploy_json(tmp_path, **REDIS_PASSWORD, **MON)
    code, out, err = secrets_cli(fake, monkeypatch, capsys, path, MATOMO_DATABASE_PASSWORD="db",
                                 MATOMO_REDIS_PASSWORD="r3dis pass")
    assert code == 0, err
    assert fake.variable(f"nomad/jobs/{MONITORING}")["Items"] == {"redis_password": "r3dis pass"}
    assert fake.variable(f"nomad/jobs/{ADMIN}")["Items"]["redis_password"] == "r3dis pass"
    puts = fake.requests_to(rf"^/v1/var/nomad/jobs/{MONITORING}$", "PUT")
    assert len(puts) == 1 and puts[0].query.get("cas") == "0"


def test_adding_the_exporter_later_copies_the_stored_redis_password(
        make_fake_nomad: Callable[..., FakeNomad], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake = make_fake_nomad()
    before = deploy_json(tmp_path, **REDIS_PASSWORD)
    code, _, err = secrets_cli(fake, monkeypatch, capsys, before, "--generate", "redis_password",
                               MATOMO_DATABASE_PASSWORD="db")
    assert code == 0, err
    stored = fake.variable(f"nomad/jobs/{ADMIN}")["Items"]["redis_password"]
    # [monitoring.exporter] added; the same command run again for the new path
    after = deploy_json(tmp_path, **REDIS_PASSWORD, **MON)
    code, _, err = secrets_cli(fake, monkeypatch, capsys, after, "--generate", "redis_password")
    assert code == 0, err
    assert fake.variable(f"nomad/jobs/{MONITORING}")["Items"] == {"redis_password": stored}


def test_run_refuses_while_the_monitoring_secret_is_missing(make_fake_nomad: Callable[..., FakeNomad],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    fake = make_fake_nomad(tick=0.01, block_cap=0.2)
    seed_secrets(fake, deployment(**REDIS_PASSWORD))  # every path but the monitoring job's
    with pytest.raises(MissingSecretsError) as caught:
        connect(fake).run(deployment(**REDIS_PASSWORD, **MON))
    assert f"nomad/jobs/{MONITORING}:redis_password" in str(caught.value)
    assert fake.requests_to(r"^/v1/jobs$", "POST") == []
    seed_secrets(fake, deployment(**REDIS_PASSWORD, **MON))
    assert connect(fake).run(deployment(**REDIS_PASSWORD, **MON)).ok
    assert fake.job(MONITORING) is not None


# --- render on the command line ------------------------------------------------------------


def test_render_role_monitoring_prints_the_job(tmp_path: Path) -> None:
    path = deploy_json(tmp_path, **MON)
    rendered = render(deployment(**MON))[Role.monitoring]
    assert ok(process_cli("render", path, "--role", "monitoring")) == rendered.hcl
    assert 'job "matomo-monitoring" {' in rendered.hcl
    assert ok(process_cli("render", path, "--role", "monitoring", "--format", "json")) == rendered.api_json


def test_render_role_monitoring_without_the_table_exits_64_naming_it(tmp_path: Path) -> None:
    result = process_cli("render", deploy_json(tmp_path), "--role", "monitoring")
    assert result.returncode == 64 and result.stdout == b""
    (line,) = result.stderr.decode().splitlines()
    assert "[monitoring.exporter]" in line and "--role monitoring" in line


def test_render_role_monitoring_as_ini_exits_64_and_writes_nothing(tmp_path: Path) -> None:
    path = deploy_json(tmp_path, **MON)
    out_dir = tmp_path / "out"
    for extra in ([], ["--out", str(out_dir)]):
        result = process_cli("render", path, "--role", "monitoring", "--format", "ini", *extra)
        assert result.returncode == 64 and result.stdout == b""
        (line,) = result.stderr.decode().splitlines()
        assert "config.ini.php" in line
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_render_out_writes_hcl_and_json_but_no_config_template_for_monitoring(tmp_path: Path) -> None:
    path = deploy_json(tmp_path, **MON)
    out_dir = tmp_path / "jobs"
    ok(process_cli("render", path, "--out", out_dir))
    names = sorted(p.name for p in out_dir.iterdir())
    assert [n for n in names if n.startswith(MONITORING)] == [f"{MONITORING}.json", f"{MONITORING}.nomad.hcl"]
    assert f"{ADMIN}.config.ini.php.tpl" in names  # the Matomo jobs keep theirs
    rendered = render(deployment(**MON))[Role.monitoring]
    assert (out_dir / f"{MONITORING}.nomad.hcl").read_text() == rendered.hcl
    assert json.loads((out_dir / f"{MONITORING}.json").read_text()) == {"Job": json.loads(rendered.api_json)["Job"]}

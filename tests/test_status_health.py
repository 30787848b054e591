"""The health section of `matomo-nomad status` from the Nomad API alone (issue 11, item d;
matomo_nomad/_nomad_health.py), against the fake Nomad.

* Archiver history: successful, failed and running launches (periodic children listed with
  `GET /v1/jobs?prefix=<archiver>/periodic-`), each one's outcome, start and duration, and
  the next launch, computed from the registered job's cron as the nomad CLI does.
* "No successful archive for twice the schedule's longest gap" as a warning; a note, not a
  warning, when Nomad's garbage collection (about 4 h) could have removed the evidence.
* Allocations running against desired, restarts per role (of the current allocations only:
  an earlier version's stopped allocations do not count).
* A long-running job or the archiver not registered, without this deployment's mark, or
  stopped is a warning (the one-shot setup job is exempt).
* Exit codes: 0 by default whatever the warnings; `--check` exits 30 on warnings. The JSON
  output keeps its keys and adds `health`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from matomo_nomad._nomad_health import GC_NOTE, archiver_health, launch_of, next_launch, parse_go_time, restarts
from tests.fakenomad import FakeNomad
from tests.test_cluster import connect, deployment, foreign_job, register_directly, seed_secrets
from tests.test_cluster_cli import Cli, cli, deploy_file  # noqa: F401 (fixtures)

pytest_plugins = ("tests.fakenomad.fixtures",)

ADMIN, INGESTION, PROCESSOR, ARCHIVER, SETUP = (
    "matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver", "matomo-setup")
EXIT_3 = {"Type": "Terminated", "DisplayMessage": "Exit Code: 3", "ExitCode": 3}
HOUR = 3600


@pytest.fixture
def fake(make_fake_nomad: Callable[..., FakeNomad]) -> FakeNomad:
    fake = make_fake_nomad(tick=0.01, block_cap=0.2)
    seed_secrets(fake)
    return fake


def deployed(fake: FakeNomad, **update: Any) -> None:
    assert connect(fake).run(deployment(**update)).ok
    fake.clear_requests()


def launched(fake: FakeNomad, outcome: str, at: int, runs_for: float = 0.0) -> str:
    """A launch of the archiver at unix time `at` ending with `outcome` (or still running)."""
    fake.batch_outcome(ARCHIVER, outcome, runs_for=runs_for, failure=EXIT_3 if outcome == "failed" else None)
    child = fake.launch_periodic(ARCHIVER, at=at)
    if outcome != "running":
        deadline = time.monotonic() + 5
        while (fake.job(child) or {}).get("Status") != "dead":
            assert time.monotonic() < deadline, child
            time.sleep(0.01)
    return child


def health_of(fake: FakeNomad, job_id: str) -> Any:
    status = next(s for s in connect(fake).status(deployment()) if s.job_id == job_id)
    assert status.health is not None
    return status.health


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_hourly_fire(minute: int = 5) -> datetime:
    now = datetime.now(timezone.utc)
    fire = now.replace(minute=minute, second=0, microsecond=0)
    return fire if fire > now else fire + timedelta(hours=1)


# --- archiver history against the fake --------------------------------------------------------


def test_successful_failed_and_running_launches_with_the_next_launch(fake: FakeNomad) -> None:
    deployed(fake)
    now = int(time.time())
    ok = launched(fake, "complete", now - 3000, runs_for=0.2)
    failed = launched(fake, "failed", now - 2000)
    running = launched(fake, "running", now - 100)
    health = health_of(fake, ARCHIVER)
    assert [(item.job_id, item.outcome) for item in health.launches] == [
        (ok, "complete"), (failed, "failed"), (running, "running")]
    assert [item.launched_at for item in health.launches] == [
        iso(datetime.fromtimestamp(t, timezone.utc)) for t in (now - 3000, now - 2000, now - 100)]
    first = health.launches[0]
    assert first.started_at is not None and first.finished_at is not None
    assert first.duration_s is not None and 0.2 <= first.duration_s < 3
    assert health.launches[2].started_at is not None and health.launches[2].duration_s is None
    assert health.last_success == first.finished_at
    assert health.running == 1
    assert health.next_launch in (iso(next_hourly_fire()), iso(next_hourly_fire() + timedelta(hours=1)))
    assert health.warnings == [f"archiver: the latest finished launch {failed} failed"]
    assert GC_NOTE in health.notes  # the history is younger than Nomad's garbage collection
    # the launches were found with a prefix listing, each one's allocations read
    listings = fake.requests_to(r"^/v1/jobs$", "GET")
    assert [r.query.get("prefix") for r in listings] == [f"{ARCHIVER}/periodic-"]
    assert {r.path for r in fake.requests_to(r"/periodic-\d+/allocations$", "GET")} == {
        f"/v1/job/{child}/allocations" for child in (ok, failed, running)}


def test_a_fresh_archiver_has_no_launches_a_next_launch_and_no_warning(fake: FakeNomad) -> None:
    deployed(fake)
    health = health_of(fake, ARCHIVER)
    assert health.launches == [] and health.last_success is None and health.warnings == []
    assert health.next_launch in (iso(next_hourly_fire()), iso(next_hourly_fire() + timedelta(hours=1)))
    assert health.notes == [GC_NOTE]


def test_no_successful_archive_for_twice_the_longest_gap_warns(fake: FakeNomad) -> None:
    deployed(fake)
    child = launched(fake, "complete", int(time.time()) - 3 * HOUR)
    fake.backdate(child, 3 * HOUR)
    fake.backdate(ARCHIVER, 3 * HOUR)
    health = health_of(fake, ARCHIVER)
    assert health.launches[0].outcome == "complete"
    finished = parse_go_time(health.launches[0].finished_at)
    assert finished is not None and timedelta(hours=2.9) < datetime.now(timezone.utc) - finished < timedelta(hours=3.1)
    assert health.warnings == [f"archiver: no successful launch since {health.last_success}, more than 2 h "
                               "(twice the schedule's longest gap)"]


def test_no_launch_at_all_for_twice_the_gap_warns_when_nomad_would_still_list_it(fake: FakeNomad) -> None:
    deployed(fake)
    fake.backdate(ARCHIVER, 3 * HOUR)  # registered 3 h ago, hourly, nothing launched
    assert health_of(fake, ARCHIVER).warnings == [
        "archiver: no successful launch in the last 2 h (twice the schedule's longest gap)"]


def test_a_daily_schedule_past_the_garbage_collection_is_a_note_not_a_warning(fake: FakeNomad) -> None:
    update = {"roles": {"archiver": {"schedule": {"cron": "0 3 * * *"}}}}
    assert connect(fake).run(deployment(**update)).ok
    fake.backdate(ARCHIVER, 72 * HOUR)
    status = next(s for s in connect(fake).status(deployment(**update)) if s.job_id == ARCHIVER)
    assert status.health is not None and status.health.warnings == []
    assert status.health.notes == [
        "no successful launch in the history Nomad keeps; cannot tell whether one completed in the last 48 h",
        GC_NOTE]
    now = datetime.now(timezone.utc)
    three = now.replace(hour=3, minute=0, second=0, microsecond=0)
    assert status.health.next_launch == iso(three if three > now else three + timedelta(days=1))


# --- processors and restarts ----------------------------------------------------------------------


def test_allocations_running_against_desired_and_restarts_per_role(fake: FakeNomad) -> None:
    deployed(fake, roles={"queue_processor": {"count": 2}})
    assert fake.restart_tasks(PROCESSOR, 3) == 2
    health = health_of(fake, PROCESSOR)
    assert (health.running, health.desired, health.restarts, health.warnings) == (2, 2, 6, [])
    assert (health_of(fake, ADMIN).running, health_of(fake, ADMIN).restarts) == (1, 0)
    assert health_of(fake, SETUP).desired is None
    fake.fail_placement("queue-processor")
    assert connect(fake).run(deployment(roles={"queue_processor": {"count": 3}}), detach=True).ok
    health = health_of(fake, PROCESSOR)
    assert (health.running, health.desired) == (2, 3)
    assert health.warnings == ["queue-processor: 2 of 3 allocations running"]


def test_restarts_of_an_earlier_versions_allocations_are_not_counted(fake: FakeNomad) -> None:
    deployed(fake)
    assert fake.restart_tasks(PROCESSOR, 4) == 1
    assert health_of(fake, PROCESSOR).restarts == 4
    # A new version replaces the allocation (create/destroy): Nomad still lists the old
    # one, stopped, with its 4 restarts, until it garbage-collects it.
    assert connect(fake).run(deployment(roles={"queue_processor": {"memory": 640}})).ok
    listed = fake.allocations(PROCESSOR)
    assert any(a["DesiredStatus"] == "stop" and a["TaskStates"] and
               sum(t["Restarts"] for t in a["TaskStates"].values()) == 4 for a in listed)
    health = next(s for s in connect(fake).status(deployment(roles={"queue_processor": {"memory": 640}}))
                  if s.job_id == PROCESSOR).health
    assert health is not None and (health.running, health.desired, health.restarts) == (1, 1, 0)


def test_restarts_count_the_current_allocations_only() -> None:
    def alloc(desired: str, client: str, version: int, count: int) -> dict[str, Any]:
        return {"DesiredStatus": desired, "ClientStatus": client, "JobVersion": version,
                "TaskStates": {"task": {"Restarts": count}}}

    service = [alloc("stop", "complete", 0, 5),  # replaced by version 1
               alloc("run", "running", 0, 1),  # a rollout's old allocation, still running
               alloc("run", "running", 1, 2),
               alloc("run", "failed", 1, 3),  # current version, failed, not replaced
               alloc("evict", "complete", 1, 7)]
    assert restarts(service) == 6
    assert restarts(service, current_only=False) == 18
    # A batch job (setup): Nomad leaves the finished allocations of earlier versions at "run".
    batch = [alloc("run", "complete", 0, 2), alloc("run", "failed", 0, 1), alloc("run", "complete", 1, 1)]
    assert restarts(batch) == 1
    assert restarts([{"DesiredStatus": "run", "TaskStates": {"a": {"Restarts": 2}, "b": None}}]) == 2


# --- the command line -----------------------------------------------------------------------------


def test_text_output_and_exit_codes(fake: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    deployed(fake)
    env = {"NOMAD_ADDR": fake.address}
    code, out, err = cli("status", file, **env)
    assert (code, err, len(out.splitlines())) == (0, "", 5)  # unchanged without --health
    code, out, err = cli("status", file, "--health", **env)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    section = lines[lines.index("health (from the Nomad API):") + 1:]
    assert section[:2] == [f"{ADMIN}:", "  running 1/1, restarts of the running allocations: 0"]
    archiver = section[section.index(f"{ARCHIVER}:") + 1:section.index(f"{SETUP}:")]
    assert archiver[0] == "  restarts in the launches listed: 0"
    assert archiver[1].startswith("  next launch: 20")
    assert archiver[2] == f"  note: {GC_NOTE}"
    assert section[section.index(f"{SETUP}:") + 1] == "  restarts of the current allocations: 0"
    assert section[-1] == "0 warnings"
    assert cli("status", file, "--check", **env)[0] == 0

    failed = launched(fake, "failed", int(time.time()) - 600)
    code, out, _ = cli("status", file, **env)
    assert code == 0  # warnings alone never change the default exit code
    code, out, _ = cli("status", file, "--check", **env)
    assert code == 30
    assert f"  launch {failed}: failed" in out.splitlines()
    assert f"  WARNING: archiver: the latest finished launch {failed} failed" in out.splitlines()
    assert out.splitlines()[-1] == "1 warning"


def test_json_output_keeps_its_keys_and_adds_health(fake: FakeNomad, cli: Cli,
                                                    deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    deployed(fake)
    ok = launched(fake, "complete", int(time.time()) - 1200)
    code, out, err = cli("status", file, "--output", "json", NOMAD_ADDR=fake.address)
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert all({"role", "job_id", "exists", "owned", "status", "version", "stopped", "in_sync", "deployment",
                "allocations", "health"} == set(r) for r in rows)
    archiver = next(r for r in rows if r["job_id"] == ARCHIVER)["health"]
    assert [(item["job_id"], item["outcome"]) for item in archiver["launches"]] == [(ok, "complete")]
    assert set(archiver["launches"][0]) == {"job_id", "launched_at", "outcome", "started_at", "finished_at",
                                            "duration_s"}
    assert archiver["warnings"] == [] and archiver["next_launch"] and archiver["last_success"]
    processor = next(r for r in rows if r["job_id"] == PROCESSOR)["health"]
    assert (processor["running"], processor["desired"], processor["restarts"]) == (1, 1, 0)
    launched(fake, "failed", int(time.time()) - 60)
    assert cli("status", file, "--output", "json", NOMAD_ADDR=fake.address)[0] == 0
    assert cli("status", file, "--output", "json", "--check", NOMAD_ADDR=fake.address)[0] == 30


def test_nothing_registered_warns_for_every_job_but_setup(fake: FakeNomad, cli: Cli,
                                                         deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    code, out, _ = cli("status", file, "--check", "--output", "json", NOMAD_ADDR=fake.address)
    assert code == 30
    rows = {r["job_id"]: r for r in json.loads(out)}
    assert rows[SETUP]["health"] is None  # one-shot: absent is normal
    for job_id in (ADMIN, INGESTION, PROCESSOR, ARCHIVER):
        health = rows[job_id]["health"]
        assert health["warnings"] == [f"{job_id}: not registered (run `matomo-nomad run`)"]
        assert (health["running"], health["desired"], health["restarts"], health["launches"]) == (0, None, 0, [])
    code, out, _ = cli("status", file, "--check", NOMAD_ADDR=fake.address)
    assert code == 30
    lines = out.splitlines()
    section = lines[lines.index("health (from the Nomad API):") + 1:]
    assert section == [line for job_id in (ADMIN, INGESTION, PROCESSOR, ARCHIVER)
                       for line in (f"{job_id}:", f"  WARNING: {job_id}: not registered (run `matomo-nomad run`)")
                       ] + ["4 warnings"]
    # --health shows the same, and keeps exit 0; so does the plain status
    code, health_out, _ = cli("status", file, "--health", NOMAD_ADDR=fake.address)
    assert (code, health_out) == (0, out)
    assert cli("status", file, NOMAD_ADDR=fake.address)[0] == 0
    assert cli("status", file, "--output", "json", NOMAD_ADDR=fake.address)[0] == 0


def test_an_absent_queue_processor_fails_the_check(fake: FakeNomad, cli: Cli,
                                                   deploy_file: Callable[..., str]) -> None:
    deployed(fake)
    assert connect(fake).client.delete("job", PROCESSOR, params={"purge": "true"}) is not None
    assert fake.job(PROCESSOR) is None
    code, out, _ = cli("status", deploy_file(), "--check", NOMAD_ADDR=fake.address)
    assert code == 30
    lines = out.splitlines()
    expected = f"  WARNING: {PROCESSOR}: not registered (run `matomo-nomad run`)"
    assert lines[lines.index(f"{PROCESSOR}:", lines.index("health (from the Nomad API):")) + 1] == expected
    assert [line for line in lines if "WARNING" in line] == [expected] and lines[-1] == "1 warning"


def test_a_queue_processor_without_our_mark_fails_the_check(fake: FakeNomad, cli: Cli,
                                                            deploy_file: Callable[..., str]) -> None:
    deployed(fake)
    register_directly(fake, foreign_job(PROCESSOR))  # another team took the id over
    fake.clear_requests()
    file = deploy_file()
    code, out, _ = cli("status", file, "--check", NOMAD_ADDR=fake.address)
    expected = (f"  WARNING: {PROCESSOR}: exists without this deployment's mark "
                "(`matomo-nomad run --adopt` once you know whose it is)")
    assert code == 30
    assert [line for line in out.splitlines() if "WARNING" in line] == [expected]
    assert out.splitlines()[-1] == "1 warning"
    code, out, _ = cli("status", file, "--check", "--output", "json", NOMAD_ADDR=fake.address)
    processor = next(r for r in json.loads(out) if r["job_id"] == PROCESSOR)
    assert code == 30 and (processor["owned"], processor["health"]["warnings"]) == (False, [expected[11:]])
    # nothing more is read about a job that is not ours
    assert fake.requests_to(rf"^/v1/job/{PROCESSOR}/allocations$") == []


def test_a_stopped_queue_processor_fails_the_check(fake: FakeNomad, cli: Cli,
                                                   deploy_file: Callable[..., str]) -> None:
    deployed(fake)
    connect(fake).client.delete("job", PROCESSOR)  # `nomad job stop`: still registered, Stop set
    assert fake.job(PROCESSOR)["Stop"]
    file = deploy_file()
    code, out, _ = cli("status", file, "--check", NOMAD_ADDR=fake.address)
    assert code == 30
    lines = out.splitlines()
    block = lines[lines.index(f"{PROCESSOR}:", lines.index("health (from the Nomad API):")) + 1:]
    assert block[0] == "  running 0/0, restarts of the running allocations: 0"
    assert block[1] == f"  WARNING: {PROCESSOR}: stopped (run `matomo-nomad run` to start it again)"
    assert lines[-1] == "1 warning"
    code, out, _ = cli("status", file, "--output", "json", NOMAD_ADDR=fake.address)
    processor = next(r for r in json.loads(out) if r["job_id"] == PROCESSOR)
    assert code == 0 and processor["stopped"] and processor["health"]["warnings"] == [block[1][11:]]


def test_a_stopped_archiver_fails_the_check(fake: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    deployed(fake)
    connect(fake).client.delete("job", ARCHIVER)
    code, out, _ = cli("status", deploy_file(), "--check", NOMAD_ADDR=fake.address)
    assert code == 30
    assert [line for line in out.splitlines() if "WARNING" in line] == [
        f"  WARNING: {ARCHIVER}: stopped (run `matomo-nomad run` to start it again)"]
    assert "  next launch: none (paused or stopped)" in out.splitlines()


def test_all_present_and_healthy_passes_and_an_absent_setup_does_not_warn(fake: FakeNomad, cli: Cli,
                                                                         deploy_file: Callable[..., str]) -> None:
    deployed(fake)
    file = deploy_file()
    code, out, _ = cli("status", file, "--check", NOMAD_ADDR=fake.address)
    assert (code, out.splitlines()[-1]) == (0, "0 warnings")
    # the setup job is one-shot: gone (purged, or garbage-collected) is no warning
    connect(fake).client.delete("job", SETUP, params={"purge": "true"})
    assert fake.job(SETUP) is None
    code, out, _ = cli("status", file, "--check", NOMAD_ADDR=fake.address)
    assert (code, out.splitlines()[-1]) == (0, "0 warnings")
    assert f"{SETUP}: not registered" in out.splitlines()  # the status line above still says so
    code, out, _ = cli("status", file, "--check", "--output", "json", NOMAD_ADDR=fake.address)
    assert code == 0 and next(r for r in json.loads(out) if r["job_id"] == SETUP)["health"] is None
    # and a stopped setup job neither
    deployed(fake)
    connect(fake).client.delete("job", SETUP)
    assert cli("status", file, "--check", NOMAD_ADDR=fake.address)[0] == 0


def test_the_monitoring_job_counts_when_the_deployment_has_one(fake: FakeNomad, cli: Cli,
                                                               deploy_file: Callable[..., str]) -> None:
    exporter = {"monitoring": {"exporter": {}}}
    deployed(fake)  # the four roles and setup, no monitoring job
    code, out, _ = cli("status", deploy_file(), "--check", NOMAD_ADDR=fake.address)
    assert code == 0 and "matomo-monitoring" not in out
    code, out, _ = cli("status", deploy_file(**exporter), "--check", NOMAD_ADDR=fake.address)
    assert code == 30
    assert [line for line in out.splitlines() if "WARNING" in line] == [
        "  WARNING: matomo-monitoring: not registered (run `matomo-nomad run`)"]


# --- the pieces ---------------------------------------------------------------------------------


def test_go_times_as_nomad_writes_them() -> None:
    assert parse_go_time("0001-01-01T00:00:00Z") is None
    assert parse_go_time("2026-11-30T18:00:01.123456789Z") == datetime(2026, 11, 30, 18, 0, 1, 123456,
                                                                        tzinfo=timezone.utc)
    assert parse_go_time("2026-11-30T19:00:01+01:00") == datetime(2026, 11, 30, 18, 0, 1, tzinfo=timezone.utc)
    assert parse_go_time(None) is None and parse_go_time("yesterday") is None


def test_launch_outcomes_from_allocations() -> None:
    def alloc(client: str, failed: bool = False) -> dict[str, Any]:
        return {"ClientStatus": client, "TaskStates": {"archiver": {
            "Failed": failed, "StartedAt": "2026-11-30T18:05:00Z", "FinishedAt": "2026-11-30T18:07:30Z"}}}

    child = f"{ARCHIVER}/periodic-1796061900"  # 2026-11-30T18:05:00Z
    assert launch_of(child, [alloc("complete")], "dead").duration_s == 150
    assert launch_of(child, [alloc("complete")], "dead").launched_at == "2026-11-30T18:05:00Z"
    assert launch_of(child, [alloc("failed", True)], "dead").outcome == "failed"
    assert launch_of(child, [], "pending").outcome == "pending"
    assert launch_of(child, [], "dead").outcome == "failed"  # stopped before any allocation completed
    running = launch_of(child, [alloc("running")], "running")
    assert (running.outcome, running.finished_at, running.duration_s) == ("running", None, None)


def test_next_launch_in_the_schedules_time_zone_and_none_when_paused() -> None:
    job = {"Periodic": {"Enabled": True, "Spec": "30 2 * * *", "TimeZone": "Europe/Berlin"}}
    now = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
    assert next_launch(job, now, timedelta(days=1)) == datetime(2026, 7, 2, 0, 30, tzinfo=timezone.utc)
    assert next_launch({"Periodic": {**job["Periodic"], "Enabled": False}}, now, None) is None
    assert next_launch({**job, "Stop": True}, now, None) is None
    weekly = {"Periodic": {"Enabled": True, "Spec": "0 4 * * 0", "TimeZone": "UTC"}}
    assert next_launch(weekly, now, timedelta(days=7)) == datetime(2026, 7, 5, 4, 0, tzinfo=timezone.utc)


def test_a_paused_archiver_is_not_overdue() -> None:
    job = {"Periodic": {"Enabled": False, "Spec": "5 * * * *", "TimeZone": "UTC"}, "SubmitTime": 0}
    health = archiver_health(job, [])
    assert health.warnings == [] and health.next_launch is None

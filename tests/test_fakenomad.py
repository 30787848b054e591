"""Tests of the fake Nomad server itself (tests/fakenomad), with plain requests."""

from __future__ import annotations

import copy
import datetime as dt
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.fakenomad import FakeNomad, cron_next, job_diff

# fake_nomad, fake_nomad_tls, fake_nomad_mtls, make_fake_nomad, nomad_tls_material
pytest_plugins = ("tests.fakenomad.fixtures",)

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 5  # seconds; every request in this file sets a timeout


def _render(role: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "matomo_nomad", "render", "--format", "json", "--role", role],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["Job"]


@pytest.fixture(scope="module")
def admin_job() -> dict:
    return _render("admin")


@pytest.fixture(scope="module")
def archiver_job() -> dict:
    return _render("archiver")


@pytest.fixture
def admin(admin_job: dict) -> dict:
    return copy.deepcopy(admin_job)


def register(fake: FakeNomad, job: dict, **body) -> requests.Response:
    return requests.post(f"{fake.address}/v1/jobs", json={"Job": job, **body}, timeout=TIMEOUT)


def plan(fake: FakeNomad, job: dict, **params) -> dict:
    r = requests.post(
        f"{fake.address}/v1/job/{job['ID']}/plan", json={"Job": job, "Diff": True},
        params=params, timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    return r.json()


def watch_deployment(fake: FakeNomad, job_id: str, wait: str = "60s", limit: float = 10) -> dict:
    """What a well-behaved client does: blocking queries until the deployment ends."""
    index = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        r = requests.get(
            f"{fake.address}/v1/job/{job_id}/deployment",
            params={"index": index, "wait": wait}, timeout=TIMEOUT,
        )
        r.raise_for_status()
        index = int(r.headers["X-Nomad-Index"])
        dep = r.json()
        if dep is not None and dep["Status"] not in ("running", "pending", "paused"):
            return dep
    raise AssertionError("deployment did not finish")


# ---------------------------------------------------------------- jobs


def test_register_enforce_index(fake_nomad: FakeNomad, admin: dict) -> None:
    first = register(fake_nomad, admin, EnforceIndex=True, JobModifyIndex=0)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["EvalID"] and body["JobModifyIndex"] == body["EvalCreateIndex"] == body["Index"]
    assert first.headers["X-Nomad-Index"] == str(body["Index"])

    second = register(fake_nomad, admin, EnforceIndex=True, JobModifyIndex=0)
    assert second.status_code == 500
    assert second.headers["Content-Type"] == "text/plain"
    assert second.text == "Enforcing job modify index 0: job already exists"

    stale = register(fake_nomad, admin, EnforceIndex=True, JobModifyIndex=3)
    assert stale.text == (
        f"Enforcing job modify index 3: job exists with conflicting job modify index: {body['JobModifyIndex']}"
    )
    missing = dict(admin, ID="nope", Name="nope")
    assert register(fake_nomad, missing, EnforceIndex=True, JobModifyIndex=7).text == (
        "Enforcing job modify index 7: job does not exist"
    )
    ok = register(fake_nomad, admin, EnforceIndex=True, JobModifyIndex=body["JobModifyIndex"])
    assert ok.status_code == 200

    sent = fake_nomad.requests_to(r"^/v1/jobs$", "POST")
    assert [r.json["EnforceIndex"] for r in sent] == [True] * 5
    assert sent[0].json["Job"]["ID"] == "matomo-admin"


def test_unchanged_register_new_eval_no_new_version(fake_nomad: FakeNomad, admin: dict) -> None:
    first = register(fake_nomad, admin, Submission={"Source": "job {}", "Format": "hcl2"}).json()
    again = register(fake_nomad, admin).json()
    assert again["JobModifyIndex"] == first["JobModifyIndex"]
    assert again["EvalID"] and again["EvalID"] != first["EvalID"]
    assert again["EvalCreateIndex"] > first["EvalCreateIndex"]
    job = requests.get(f"{fake_nomad.address}/v1/job/matomo-admin", timeout=TIMEOUT).json()
    assert job["Version"] == 0 and job["JobModifyIndex"] == first["JobModifyIndex"]

    sub = requests.get(f"{fake_nomad.address}/v1/job/matomo-admin/submission",
                       params={"version": 0}, timeout=TIMEOUT)
    assert sub.status_code == 200 and sub.json()["Source"] == "job {}" and sub.json()["Format"] == "hcl2"
    no_version = requests.get(f"{fake_nomad.address}/v1/job/matomo-admin/submission", timeout=TIMEOUT)
    assert no_version.status_code == 400
    assert no_version.text == "Unable to parse job submission version parameter"
    assert requests.get(f"{fake_nomad.address}/v1/job/matomo-admin/submission",
                        params={"version": 5}, timeout=TIMEOUT).text == "job source not found"

    admin["TaskGroups"][0]["Count"] = 2
    changed = register(fake_nomad, admin).json()
    assert changed["JobModifyIndex"] > first["JobModifyIndex"]
    assert fake_nomad.job("matomo-admin")["Version"] == 1


def test_namespace_query_overrides_job_namespace(make_fake_nomad, admin: dict) -> None:
    fake = make_fake_nomad(namespaces=["default", "analytics"])
    r = requests.post(f"{fake.address}/v1/jobs", params={"namespace": "analytics"},
                      json={"Job": admin}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert fake.job("matomo-admin", "analytics")["Namespace"] == "analytics"
    assert fake.job("matomo-admin") is None
    assert fake.last_request("/v1/jobs").namespace == "analytics"
    gone = requests.post(f"{fake.address}/v1/jobs", params={"namespace": "nope"}, json={"Job": admin},
                         timeout=TIMEOUT)
    assert gone.status_code == 500 and gone.text == 'job "matomo-admin" is in nonexistent namespace "nope"'


def test_get_list_stop_purge(fake_nomad: FakeNomad, admin: dict) -> None:
    a = fake_nomad.address
    missing = requests.get(f"{a}/v1/job/matomo-admin", timeout=TIMEOUT)
    assert (missing.status_code, missing.text) == (404, "job not found")
    assert "X-Nomad-Index" in missing.headers

    register(fake_nomad, admin)
    job = requests.get(f"{a}/v1/job/matomo-admin", timeout=TIMEOUT).json()
    assert job["Status"] == "pending" and job["Version"] == 0 and job["Stop"] is False
    assert job["Meta"]["matomo_nomad_role"] == "admin"

    stubs = requests.get(f"{a}/v1/jobs", params={"prefix": "matomo-", "meta": "true"}, timeout=TIMEOUT).json()
    assert [s["ID"] for s in stubs] == ["matomo-admin"]
    assert stubs[0]["Meta"]["matomo_nomad_role"] == "admin" and stubs[0]["Type"] == "service"
    assert "Meta" not in requests.get(f"{a}/v1/jobs", timeout=TIMEOUT).json()[0]
    assert requests.get(f"{a}/v1/jobs", params={"prefix": "other"}, timeout=TIMEOUT).json() == []

    stop = requests.delete(f"{a}/v1/job/matomo-admin", params={"purge": "false"}, timeout=TIMEOUT).json()
    assert stop["EvalID"] and stop["JobModifyIndex"] == stop["EvalCreateIndex"]
    stopped = requests.get(f"{a}/v1/job/matomo-admin", timeout=TIMEOUT).json()
    assert stopped["Stop"] is True and stopped["Version"] == 1
    deadline = time.monotonic() + 2
    while fake_nomad.job("matomo-admin")["Status"] != "dead":
        assert time.monotonic() < deadline, fake_nomad.job("matomo-admin")["Status"]
        time.sleep(0.02)

    requests.delete(f"{a}/v1/job/matomo-admin", params={"purge": "true"}, timeout=TIMEOUT)
    assert requests.get(f"{a}/v1/job/matomo-admin", timeout=TIMEOUT).status_code == 404
    nothing = requests.delete(f"{a}/v1/job/never-was", timeout=TIMEOUT).json()
    assert nothing["EvalID"] == "" and nothing["JobModifyIndex"] == 0


def test_acl_tokens(make_fake_nomad) -> None:
    fake = make_fake_nomad(acl_token="s3cr3t")
    url = f"{fake.address}/v1/jobs"
    anonymous = requests.get(url, timeout=TIMEOUT)
    assert (anonymous.status_code, anonymous.text) == (403, "Permission denied")
    wrong = requests.get(url, headers={"X-Nomad-Token": "guess"}, timeout=TIMEOUT)
    assert (wrong.status_code, wrong.text) == (403, "ACL token not found")
    assert requests.get(url, headers={"X-Nomad-Token": "s3cr3t"}, timeout=TIMEOUT).status_code == 200
    assert requests.get(url, headers={"Authorization": "Bearer s3cr3t"}, timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{fake.address}/v1/status/leader", timeout=TIMEOUT).status_code == 200
    assert [r.token for r in fake.requests_to("^/v1/jobs$")] == [None, "guess", "s3cr3t", "s3cr3t"]


# ---------------------------------------------------------------- plan


def test_plan_added_none_edited(fake_nomad: FakeNomad, admin: dict) -> None:
    added = plan(fake_nomad, admin)
    assert added["Diff"]["Type"] == "Added" and added["JobModifyIndex"] == 0
    assert added["Annotations"]["DesiredTGUpdates"]["admin"]["Place"] == 1
    assert added["FailedTGAllocs"] is None and added["NextPeriodicLaunch"] == "0001-01-01T00:00:00Z"
    group = added["Diff"]["TaskGroups"][0]
    assert group["Type"] == "Added" and group["Updates"] == {"create": 1}
    count = next(f for f in group["Fields"] if f["Name"] == "Count")
    assert count == {"Type": "Added", "Name": "Count", "Old": "", "New": "1", "Annotations": ["forces create"]}
    assert group["Tasks"][0]["Annotations"] == ["forces create"]

    jmi = register(fake_nomad, admin).json()["JobModifyIndex"]
    fake_nomad.wait_for_deployment("matomo-admin")
    same = plan(fake_nomad, admin)
    assert same["Diff"]["Type"] == "None" and same["JobModifyIndex"] == jmi
    assert same["Diff"]["TaskGroups"][0]["Type"] == "None" and same["Diff"]["Fields"] is None
    assert same["Annotations"]["DesiredTGUpdates"]["admin"]["Ignore"] == 1
    assert same["Diff"]["TaskGroups"][0]["Updates"] == {"ignore": 1}

    edited_job = copy.deepcopy(admin)
    edited_job["TaskGroups"][0]["Count"] = 3
    template = edited_job["TaskGroups"][0]["Tasks"][0]["Templates"][0]
    template["EmbeddedTmpl"] = template["EmbeddedTmpl"].replace("force_ssl = 1", "force_ssl = 0")
    edited = plan(fake_nomad, edited_job)
    assert edited["Diff"]["Type"] == "Edited"
    group = edited["Diff"]["TaskGroups"][0]
    assert {"Type": "Edited", "Name": "Count", "Old": "1", "New": "3", "Annotations": ["forces create"]} in group["Fields"]
    task = group["Tasks"][0]
    assert task["Annotations"] == ["forces create/destroy update"]
    tmpl = next(o for o in task["Objects"] if o["Name"] == "Template")
    body = next(f for f in tmpl["Fields"] if f["Name"] == "EmbeddedTmpl")
    assert body["Type"] == "Edited" and "force_ssl = 1" in body["Old"] and "force_ssl = 0" in body["New"]
    assert {f["Name"]: f["Type"] for f in tmpl["Fields"]}["DestPath"] == "None"  # contextual
    updates = edited["Annotations"]["DesiredTGUpdates"]["admin"]
    assert (updates["DestructiveUpdate"], updates["Place"]) == (1, 2)
    assert group["Updates"] == {"create": 2, "create/destroy update": 1}

    count_only = copy.deepcopy(admin)
    count_only["TaskGroups"][0]["Count"] = 2
    updates = plan(fake_nomad, count_only)["Annotations"]["DesiredTGUpdates"]["admin"]
    assert (updates["InPlaceUpdate"], updates["Place"], updates["DestructiveUpdate"]) == (1, 1, 0)


def test_plan_config_diff_and_placement_failure(fake_nomad: FakeNomad, admin: dict) -> None:
    register(fake_nomad, admin)
    changed = copy.deepcopy(admin)
    changed["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = "registry.example.com/analytics/matomo:5.11.0-1"
    config = next(o for o in plan(fake_nomad, changed)["Diff"]["TaskGroups"][0]["Tasks"][0]["Objects"]
                  if o["Name"] == "Config")
    assert {"Type": "Edited", "Name": "image", "Old": "registry.example.com/analytics/matomo:5.10.0-1",
            "New": "registry.example.com/analytics/matomo:5.11.0-1", "Annotations": None} in config["Fields"]
    assert any(f["Name"] == "mount[0][source]" for f in config["Fields"])

    fake_nomad.fail_placement("admin", metrics={"DimensionExhausted": {"memory": 2}})
    failed = plan(fake_nomad, changed)["FailedTGAllocs"]["admin"]
    assert failed["NodesEvaluated"] == 3 and failed["NodesFiltered"] == 3
    assert failed["ConstraintFiltered"] == {"${attr.kernel.name} = linux": 3}
    assert failed["DimensionExhausted"] == {"memory": 2} and failed["CoalescedFailures"] == 0


def test_job_diff_matches_field_names() -> None:
    old = {"ID": "j", "Meta": {"a": "1"}, "Datacenters": ["dc1"], "TaskGroups": []}
    new = {"ID": "j", "Meta": {"a": "2"}, "Datacenters": ["dc1", "dc2"], "TaskGroups": []}
    diff = job_diff(old, new)
    assert diff["Type"] == "Edited"
    assert diff["Fields"] == [{"Type": "Edited", "Name": "Meta[a]", "Old": "1", "New": "2", "Annotations": None}]
    assert diff["Objects"][0]["Name"] == "Datacenters" and diff["Objects"][0]["Type"] == "Added"


# ---------------------------------------------------------------- periodic


def test_periodic_job(fake_nomad: FakeNomad, archiver_job: dict) -> None:
    reply = register(fake_nomad, archiver_job).json()
    assert reply["EvalID"] == "" and reply["EvalCreateIndex"] == 0 and reply["JobModifyIndex"] > 0
    again = register(fake_nomad, archiver_job)
    assert again.json()["Index"] == 0 and again.headers["X-Nomad-Index"] == "0"  # nothing written

    launch = plan(fake_nomad, archiver_job)["NextPeriodicLaunch"]
    when = dt.datetime.fromisoformat(launch)
    assert when.minute == 5 and when.second == 0 and when > dt.datetime.now(dt.UTC)

    force = requests.post(f"{fake_nomad.address}/v1/job/matomo-archiver/periodic/force", timeout=TIMEOUT)
    assert force.status_code == 200 and set(force.json()) == {"EvalID", "EvalCreateIndex", "Index"}
    children = requests.get(f"{fake_nomad.address}/v1/jobs", params={"prefix": "matomo-archiver/periodic-"},
                            timeout=TIMEOUT).json()
    assert len(children) == 1 and children[0]["ParentID"] == "matomo-archiver"
    assert requests.get(f"{fake_nomad.address}/v1/job/matomo-archiver", timeout=TIMEOUT).json()["Status"] == "running"
    not_periodic = requests.post(f"{fake_nomad.address}/v1/job/nope/periodic/force", timeout=TIMEOUT)
    assert (not_periodic.status_code, not_periodic.text) == (500, "job not found")


def test_cron_next() -> None:
    start = dt.datetime(2024, 5, 1, 10, 7, 30, tzinfo=dt.UTC)
    assert cron_next("5 * * * *", "UTC", start) == dt.datetime(2024, 5, 1, 11, 5, tzinfo=dt.UTC)
    # six fields start with seconds: "0 4 * * * *" is hourly at :04
    assert cron_next("0 4 * * * *", "UTC", start) == dt.datetime(2024, 5, 1, 11, 4, tzinfo=dt.UTC)
    assert cron_next("30 2 * * 1", "UTC", start).weekday() == 0
    paris = cron_next("0 3 * * *", "Europe/Paris", start)
    assert (paris.hour, paris.utcoffset()) == (3, dt.timedelta(hours=2))


# ---------------------------------------------------------------- deployments and blocking queries


def test_deployment_progresses_to_successful(fake_nomad: FakeNomad, admin: dict) -> None:
    admin["TaskGroups"][0]["Count"] = 2
    fake_nomad.progress("matomo-admin", "successful", interval=0.02)
    register(fake_nomad, admin)
    dep = watch_deployment(fake_nomad, "matomo-admin")
    assert dep["Status"] == "successful" and dep["StatusDescription"] == "Deployment completed successfully"
    group = dep["TaskGroups"]["admin"]
    assert (group["DesiredTotal"], group["PlacedAllocs"], group["HealthyAllocs"], group["UnhealthyAllocs"]) == (2, 2, 2, 0)
    assert requests.get(f"{fake_nomad.address}/v1/deployment/{dep['ID']}", timeout=TIMEOUT).json()["ID"] == dep["ID"]
    allocs = requests.get(f"{fake_nomad.address}/v1/job/matomo-admin/allocations", timeout=TIMEOUT).json()
    assert [(a["ClientStatus"], a["DeploymentStatus"]["Healthy"]) for a in allocs] == [("running", True)] * 2
    job = fake_nomad.job("matomo-admin")
    assert job["Status"] == "running" and job["Stable"] is True
    # 1 non-blocking + about one blocking request per state change; never a busy loop
    stats = fake_nomad.query_stats("/deployment$")["/v1/job/matomo-admin/deployment"]
    assert stats["non_blocking"] == 1 and stats["blocking"] <= 12


def test_deployment_fails_with_failed_allocations(fake_nomad: FakeNomad, admin: dict) -> None:
    fake_nomad.progress("matomo-admin", "failed", interval=0.02)
    register(fake_nomad, admin)
    dep = watch_deployment(fake_nomad, "matomo-admin")
    assert dep["Status"] == "failed"
    # first version: nothing stable to roll back to
    assert dep["StatusDescription"] == "Failed due to unhealthy allocations"
    assert dep["TaskGroups"]["admin"]["UnhealthyAllocs"] == 1
    alloc = requests.get(f"{fake_nomad.address}/v1/job/matomo-admin/allocations", timeout=TIMEOUT).json()[0]
    assert alloc["ClientStatus"] == "failed" and alloc["DeploymentStatus"]["Healthy"] is False
    state = alloc["TaskStates"]["matomo-admin"]
    assert state["State"] == "dead" and state["Failed"] is True
    failure = next(e for e in state["Events"] if e["Type"] == "Driver Failure")
    assert failure["DisplayMessage"].startswith("Failed to pull `registry.example.com/analytics/matomo:5.10.0-1`")


def test_failed_update_rolls_back_to_stable_version(fake_nomad: FakeNomad, admin: dict) -> None:
    fake_nomad.tick = 0.02
    register(fake_nomad, admin)
    assert fake_nomad.wait_for_deployment("matomo-admin")["Status"] == "successful"
    fake_nomad.progress("matomo-admin", steps=["place", "start", "unhealthy", "fail"], interval=0.02,
                        failure={"Type": "Driver Failure", "DisplayMessage": "boom"})
    admin["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = "registry.example.com/analytics/matomo:broken"
    register(fake_nomad, admin)
    deadline = time.monotonic() + 3
    while len(fake_nomad.deployments("matomo-admin")) < 3 or fake_nomad.deployment("matomo-admin")["Status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rolled, failed, _first = fake_nomad.deployments("matomo-admin")
    assert failed["StatusDescription"] == "Failed due to unhealthy allocations - rolling back to job version 0"
    assert rolled["Status"] == "successful" and rolled["JobVersion"] == 2
    assert fake_nomad.job("matomo-admin")["TaskGroups"][0]["Tasks"][0]["Config"]["image"].endswith("5.10.0-1")
    events = [e for a in fake_nomad.allocations("matomo-admin") if a["ClientStatus"] == "failed"
              for e in a["TaskStates"]["matomo-admin"]["Events"]]
    assert any(e["DisplayMessage"] == "boom" for e in events)


def test_placement_failure_blocks_and_misses_the_deadline(fake_nomad: FakeNomad, admin: dict) -> None:
    fake_nomad.tick = 0.02
    fake_nomad.fail_placement("admin", job_id="matomo-admin")
    reply = register(fake_nomad, admin).json()
    dep = fake_nomad.wait_for_deployment("matomo-admin")
    assert (dep["Status"], dep["StatusDescription"]) == ("failed", "Failed due to progress deadline")
    assert dep["TaskGroups"]["admin"]["PlacedAllocs"] == 0
    ev = requests.get(f"{fake_nomad.address}/v1/evaluation/{reply['EvalID']}", timeout=TIMEOUT).json()
    assert ev["Status"] == "complete" and ev["FailedTGAllocs"]["admin"]["NodesFiltered"] == 3
    blocked = requests.get(f"{fake_nomad.address}/v1/evaluation/{ev['BlockedEval']}", timeout=TIMEOUT).json()
    assert blocked["Status"] == "blocked"
    assert fake_nomad.job("matomo-admin")["Status"] == "pending"  # a blocked eval keeps it pending


def test_periodic_child_runs_to_completion(fake_nomad: FakeNomad, archiver_job: dict) -> None:
    fake_nomad.tick = 0.02
    register(fake_nomad, archiver_job)
    requests.post(f"{fake_nomad.address}/v1/job/matomo-archiver/periodic/force", timeout=TIMEOUT)
    jobs = requests.get(f"{fake_nomad.address}/v1/jobs", timeout=TIMEOUT).json()
    (child,) = [j["ID"] for j in jobs if j["ParentID"] == "matomo-archiver"]
    deadline = time.monotonic() + 2
    while fake_nomad.job(child)["Status"] != "dead":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (alloc,) = fake_nomad.allocations(child)
    assert alloc["ClientStatus"] == "complete"
    assert alloc["TaskStates"]["matomo-archiver"]["Events"][-1]["DisplayMessage"] == "Exit Code: 0"


def _until(condition, limit: float = 2.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_batch_outcome_decides_how_later_versions_of_a_batch_job_end(fake_nomad: FakeNomad) -> None:
    fake_nomad.tick = 0.02
    job = _render("setup")
    assert (job["ID"], job["Type"]) == ("matomo-setup", "batch")
    register(fake_nomad, job)  # the default: the task exits 0
    _until(lambda: fake_nomad.job("matomo-setup")["Status"] == "dead")
    (alloc,) = fake_nomad.allocations("matomo-setup")
    assert alloc["ClientStatus"] == "complete"

    exit_3 = {"Type": "Terminated", "DisplayMessage": "Exit Code: 3", "ExitCode": 3}
    fake_nomad.batch_outcome("matomo-setup", "failed", failure=exit_3)
    register(fake_nomad, dict(job, Meta={**job["Meta"], "attempt": "2"}))
    _until(lambda: any(a["ClientStatus"] == "failed" for a in fake_nomad.allocations("matomo-setup")))
    (failed,) = [a for a in fake_nomad.allocations("matomo-setup") if a["ClientStatus"] == "failed"]
    assert failed["JobVersion"] == 1
    events = failed["TaskStates"]["matomo-setup"]["Events"]
    assert [(e["Type"], e["DisplayMessage"]) for e in events[-2:]] == [
        ("Terminated", "Exit Code: 3"), ("Not Restarting", "Error was unrecoverable")]

    fake_nomad.batch_outcome("matomo-setup", "running")
    register(fake_nomad, dict(job, Meta={**job["Meta"], "attempt": "3"}))
    _until(lambda: any(a["JobVersion"] == 2 and a["ClientStatus"] == "running"
                       for a in fake_nomad.allocations("matomo-setup")))
    time.sleep(10 * fake_nomad.tick)  # and it stays so
    (running,) = [a for a in fake_nomad.allocations("matomo-setup") if a["JobVersion"] == 2]
    assert running["ClientStatus"] == "running"
    # the allocations of the earlier versions are still listed, as they ended
    statuses = sorted(a["ClientStatus"] for a in fake_nomad.allocations("matomo-setup"))
    assert statuses == ["complete", "failed", "running"]
    with pytest.raises(ValueError, match="unknown batch outcome"):
        fake_nomad.batch_outcome("matomo-setup", "lost")


def test_periodic_launches_follow_the_parents_script_and_outlive_a_pause(fake_nomad: FakeNomad,
                                                                        archiver_job: dict) -> None:
    fake_nomad.tick = 0.02
    register(fake_nomad, archiver_job)
    fake_nomad.batch_outcome("matomo-archiver", "complete", runs_for=0.3)  # core:archive takes a while
    child = fake_nomad.launch_periodic("matomo-archiver")
    assert child.startswith("matomo-archiver/periodic-") and fake_nomad.job(child)["ParentID"] == "matomo-archiver"
    _until(lambda: fake_nomad.job(child)["Status"] == "running")

    # the parent re-registered with its launches disabled: the launch runs on
    # (reference/nomad.md: a child lives on its own), and no new launch is possible
    current = fake_nomad.job("matomo-archiver")
    paused = dict(archiver_job, Periodic={**archiver_job["Periodic"], "Enabled": False})
    reply = register(fake_nomad, paused, EnforceIndex=True, JobModifyIndex=current["JobModifyIndex"])
    assert reply.status_code == 200 and reply.json()["EvalID"] == ""
    assert plan(fake_nomad, paused)["NextPeriodicLaunch"] == "0001-01-01T00:00:00Z"
    with pytest.raises(ValueError, match="can't force run non-tracked job"):
        fake_nomad.launch_periodic("matomo-archiver")
    forced = requests.post(f"{fake_nomad.address}/v1/job/matomo-archiver/periodic/force", timeout=TIMEOUT)
    assert forced.status_code == 500 and "non-tracked job" in forced.text
    assert fake_nomad.job(child)["Status"] == "running"

    # a blocking list of the launches answers when the running one ends
    listed = requests.get(f"{fake_nomad.address}/v1/jobs", params={"prefix": "matomo-archiver/periodic-"},
                          timeout=TIMEOUT)
    index = int(listed.headers["X-Nomad-Index"])
    assert [j["Status"] for j in listed.json()] == ["running"]
    deadline = time.monotonic() + 3
    while True:
        listed = requests.get(f"{fake_nomad.address}/v1/jobs", params={
            "prefix": "matomo-archiver/periodic-", "index": index, "wait": "5s"}, timeout=TIMEOUT)
        index = int(listed.headers["X-Nomad-Index"])
        if listed.json()[0]["Status"] == "dead":
            break
        assert time.monotonic() < deadline
    (alloc,) = fake_nomad.allocations(child)
    assert alloc["ClientStatus"] == "complete"

    # "running" never ends by itself; finish_batch ends it as the task exiting would
    enabled = fake_nomad.job("matomo-archiver")
    register(fake_nomad, archiver_job, EnforceIndex=True, JobModifyIndex=enabled["JobModifyIndex"])
    fake_nomad.batch_outcome("matomo-archiver", "running")
    second = fake_nomad.launch_periodic("matomo-archiver")
    _until(lambda: fake_nomad.job(second)["Status"] == "running")
    time.sleep(5 * fake_nomad.tick)
    assert fake_nomad.job(second)["Status"] == "running"
    assert fake_nomad.finish_batch(second) == 1
    assert fake_nomad.job(second)["Status"] == "dead"
    assert fake_nomad.job_ids("matomo-archiver/periodic-") == sorted([child, second])
    with pytest.raises(ValueError, match="unknown batch outcome"):
        fake_nomad.finish_batch(second, "lost")


def test_count_zero_stops_the_allocations_without_a_deployment(fake_nomad: FakeNomad, admin: dict) -> None:
    fake_nomad.tick = 0.02
    admin["TaskGroups"][0]["Count"] = 2
    register(fake_nomad, admin)
    assert watch_deployment(fake_nomad, "matomo-admin")["Status"] == "successful"
    first_deployment = fake_nomad.deployment("matomo-admin")["ID"]
    fake_nomad.stop_delay("matomo-admin", None)  # a client that does not finish the stop
    stopped = dict(admin, TaskGroups=[dict(admin["TaskGroups"][0], Count=0)])
    current = fake_nomad.job("matomo-admin")
    assert register(fake_nomad, stopped, EnforceIndex=True, JobModifyIndex=current["JobModifyIndex"]).status_code == 200
    # scheduler/reconcile.go: no deployment for a desired total of 0
    time.sleep(5 * fake_nomad.tick)
    assert fake_nomad.deployment("matomo-admin")["ID"] == first_deployment
    allocs = fake_nomad.allocations("matomo-admin")
    assert [(a["DesiredStatus"], a["ClientStatus"]) for a in allocs] == [("stop", "running")] * 2
    fake_nomad.stop_delay("matomo-admin", 0.05)  # the outstanding stops finish now
    _until(lambda: all(a["ClientStatus"] == "complete" for a in fake_nomad.allocations("matomo-admin")))
    events = fake_nomad.allocations("matomo-admin")[0]["TaskStates"]["matomo-admin"]["Events"]
    assert [e["Type"] for e in events[-2:]] == ["Killing", "Killed"]
    assert fake_nomad.job("matomo-admin")["Status"] == "dead"


def test_a_fault_can_target_one_jobs_registration(fake_nomad: FakeNomad, admin: dict, archiver_job: dict) -> None:
    fake_nomad.fail(r"^/v1/jobs$", 500, "rpc error: no leader", method="POST", job="matomo-archiver")
    assert register(fake_nomad, admin).status_code == 200
    refused = register(fake_nomad, archiver_job)
    assert (refused.status_code, refused.text) == (500, "rpc error: no leader")
    assert [r.fault for r in fake_nomad.requests_to(r"^/v1/jobs$", "POST")] == [None, "status"]
    assert fake_nomad.job("matomo-archiver") is None
    # a body that is not a job never matches
    assert requests.post(f"{fake_nomad.address}/v1/jobs", data="nope", timeout=TIMEOUT).status_code == 400


def test_manual_progress(fake_nomad: FakeNomad, admin: dict) -> None:
    fake_nomad.progress("matomo-admin", "successful", interval=None)
    register(fake_nomad, admin)
    time.sleep(0.1)
    assert fake_nomad.deployment("matomo-admin")["TaskGroups"]["admin"]["PlacedAllocs"] == 0
    assert fake_nomad.advance("matomo-admin")["TaskGroups"]["admin"]["PlacedAllocs"] == 1
    assert fake_nomad.advance("matomo-admin", steps=3)["Status"] == "successful"


def test_blocking_query_returns_on_change_and_on_timeout(make_fake_nomad, admin: dict) -> None:
    fake = make_fake_nomad(block_cap=None, jitter=False)
    url = f"{fake.address}/v1/job/matomo-admin"
    register(fake, admin)
    fake.wait_for_deployment("matomo-admin")  # the job's status changes until then
    first = requests.get(url, timeout=TIMEOUT)
    index = int(first.headers["X-Nomad-Index"])

    # timeout: nothing changes for wait=300ms
    start = time.monotonic()
    r = requests.get(url, params={"index": index, "wait": "300ms"}, timeout=TIMEOUT)
    elapsed = time.monotonic() - start
    assert 0.29 <= elapsed < 1.0 and int(r.headers["X-Nomad-Index"]) == index

    # change: a register during the wait answers at once with a higher index
    changed = copy.deepcopy(admin)
    changed["TaskGroups"][0]["Count"] = 2
    timer = threading.Timer(0.2, lambda: register(fake, changed))
    timer.start()
    start = time.monotonic()
    r = requests.get(url, params={"index": index, "wait": "30s"}, timeout=TIMEOUT)
    elapsed = time.monotonic() - start
    timer.join()
    assert 0.15 < elapsed < 2 and int(r.headers["X-Nomad-Index"]) > index
    assert r.json()["TaskGroups"][0]["Count"] == 2

    # an index already passed answers at once; a bad wait is a 400
    assert requests.get(url, params={"index": 1, "wait": "30s"}, timeout=TIMEOUT).elapsed.total_seconds() < 0.5
    bad = requests.get(url, params={"index": 1, "wait": "soon"}, timeout=TIMEOUT)
    assert (bad.status_code, bad.text) == (400, "Invalid wait time")
    assert fake.count("^/v1/job/matomo-admin$", blocking=True) == 4


def test_blocking_cap_bounds_the_wait(fake_nomad: FakeNomad, admin: dict) -> None:
    fake_nomad.block_cap = 0.2
    register(fake_nomad, admin)
    fake_nomad.wait_for_deployment("matomo-admin")
    url = f"{fake_nomad.address}/v1/job/matomo-admin/deployment"
    index = requests.get(url, timeout=TIMEOUT).headers["X-Nomad-Index"]
    start = time.monotonic()
    requests.get(url, params={"index": index}, timeout=TIMEOUT)  # no wait: Nomad's default is 5 minutes
    assert 0.19 <= time.monotonic() - start < 0.8


def test_concurrent_requests_are_not_blocked(make_fake_nomad) -> None:
    fake = make_fake_nomad(block_cap=None, jitter=False)
    slow = threading.Thread(target=lambda: requests.get(
        f"{fake.address}/v1/job/x/deployment", params={"index": 10**6, "wait": "500ms"}, timeout=TIMEOUT))
    slow.start()
    time.sleep(0.05)
    start = time.monotonic()
    requests.get(f"{fake.address}/v1/status/leader", timeout=TIMEOUT)
    assert time.monotonic() - start < 0.3
    slow.join()


# ---------------------------------------------------------------- variables


def test_variables_cas(fake_nomad: FakeNomad) -> None:
    url = f"{fake_nomad.address}/v1/var/nomad/jobs/matomo-admin"
    created = requests.put(url, params={"cas": 0}, json={"Path": "nomad/jobs/matomo-admin", "Items": {"salt": "a"}},
                           timeout=TIMEOUT)
    assert created.status_code == 200, created.text
    var = created.json()
    assert var["Items"] == {"salt": "a"} and var["Namespace"] == "default" and var["ModifyIndex"] > 0

    again = requests.put(url, params={"cas": 0}, json={"Items": {"salt": "b"}}, timeout=TIMEOUT)
    assert again.status_code == 409
    assert again.json()["Items"] == {"salt": "a"} and again.json()["ModifyIndex"] == var["ModifyIndex"]
    assert again.headers["X-Nomad-Index"] == str(var["ModifyIndex"])
    stale = requests.put(url, params={"cas": var["ModifyIndex"] + 100}, json={"Items": {"salt": "b"}}, timeout=TIMEOUT)
    assert stale.status_code == 409
    updated = requests.put(url, params={"cas": var["ModifyIndex"]}, json={"Items": {"salt": "b"}}, timeout=TIMEOUT)
    assert updated.status_code == 200 and updated.json()["CreateIndex"] == var["CreateIndex"]

    got = requests.get(url, timeout=TIMEOUT)
    assert got.json()["Items"] == {"salt": "b"} and got.headers["X-Nomad-Index"] == str(updated.json()["ModifyIndex"])
    listed = requests.get(f"{fake_nomad.address}/v1/vars", params={"prefix": "nomad/jobs"}, timeout=TIMEOUT).json()
    assert [v["Path"] for v in listed] == ["nomad/jobs/matomo-admin"] and "Items" not in listed[0]
    missing = requests.get(f"{fake_nomad.address}/v1/var/nomad/jobs/none", timeout=TIMEOUT)
    assert (missing.status_code, missing.text) == (404, "variable not found")

    gone = requests.delete(url, params={"cas": updated.json()["ModifyIndex"]}, timeout=TIMEOUT)
    assert gone.status_code == 204 and requests.get(url, timeout=TIMEOUT).status_code == 404


def test_variables_namespace_and_paths(make_fake_nomad) -> None:
    fake = make_fake_nomad(namespaces=None)
    a = fake.address
    r = requests.put(f"{a}/v1/var/nomad/jobs/x", params={"namespace": "query"},
                     json={"Namespace": "body", "Items": {"k": "v"}}, timeout=TIMEOUT)
    assert r.json()["Namespace"] == "body" and fake.variable("nomad/jobs/x", "body") is not None
    reserved = requests.put(f"{a}/v1/var/nomad/secrets", json={"Items": {"k": "v"}}, timeout=TIMEOUT)
    assert reserved.status_code == 500 and reserved.text.startswith('only paths at "nomad/jobs"')
    bad = requests.put(f"{a}/v1/var/has%20space", json={"Items": {"k": "v"}}, timeout=TIMEOUT)
    assert (bad.status_code, bad.text) == (500, 'invalid path "has space"')
    empty = requests.put(f"{a}/v1/var/x", json={"Items": {}}, timeout=TIMEOUT)
    assert (empty.status_code, empty.text) == (400, "variable missing required Items object")


# ---------------------------------------------------------------- TLS


class ServerNameAdapter(HTTPAdapter):
    """Connect to an address, verify the certificate against another name
    (what NOMAD_TLS_SERVER_NAME does)."""

    def __init__(self, server_name: str, **kwargs):
        self.server_name = server_name
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self.server_name
        kwargs["assert_hostname"] = self.server_name
        super().init_poolmanager(*args, **kwargs)


def test_tls_verification(fake_nomad_tls: FakeNomad, nomad_tls_material, monkeypatch) -> None:
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)
    url = f"{fake_nomad_tls.address}/v1/agent/self"
    assert url.startswith("https://127.0.0.1:")
    assert requests.get(url, verify=fake_nomad_tls.ca_path, timeout=TIMEOUT).json()["config"]["Region"] == "global"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, verify=str(nomad_tls_material.other_ca_cert), timeout=TIMEOUT)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, verify=True, timeout=TIMEOUT)

    session = requests.Session()
    session.mount("https://", ServerNameAdapter("server.global.nomad"))
    assert session.get(url, verify=fake_nomad_tls.ca_path, timeout=TIMEOUT).status_code == 200
    assert fake_nomad_tls.requests[-1].sni == "server.global.nomad"
    wrong = requests.Session()
    wrong.mount("https://", ServerNameAdapter("server.other.nomad"))
    with pytest.raises(requests.exceptions.SSLError):
        wrong.get(url, verify=fake_nomad_tls.ca_path, timeout=TIMEOUT)

    # plain HTTP to the TLS port: Go's net/http answer
    plain = requests.get(url.replace("https://", "http://"), timeout=TIMEOUT)
    assert plain.status_code == 400 and plain.text == "Client sent an HTTP request to an HTTPS server.\n"


def test_mutual_tls(fake_nomad_mtls: FakeNomad, nomad_tls_material) -> None:
    url = f"{fake_nomad_mtls.address}/v1/status/leader"
    ok = requests.get(url, verify=fake_nomad_mtls.ca_path, timeout=TIMEOUT,
                      cert=(fake_nomad_mtls.client_cert, fake_nomad_mtls.client_key))
    assert ok.status_code == 200 and fake_nomad_mtls.requests[-1].client_cert_cn == "cli.global.nomad"
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(url, verify=fake_nomad_mtls.ca_path, timeout=TIMEOUT)
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(url, verify=fake_nomad_mtls.ca_path, timeout=TIMEOUT,
                     cert=(str(nomad_tls_material.other_client_cert), str(nomad_tls_material.other_client_key)))


# ---------------------------------------------------------------- faults


def test_latency_injection(fake_nomad: FakeNomad) -> None:
    url = f"{fake_nomad.address}/v1/status/leader"
    fake_nomad.add_latency(0.1, path="^/v1/status/")
    start = time.monotonic()
    for _ in range(3):
        requests.get(url, timeout=TIMEOUT)
    assert 0.3 <= time.monotonic() - start < 0.9
    fake_nomad.clear_faults()
    start = time.monotonic()
    requests.get(url, timeout=TIMEOUT)
    assert time.monotonic() - start < 0.1


def test_hang_times_out_the_client(fake_nomad: FakeNomad) -> None:
    fake_nomad.hang("^/v1/jobs$", times=1)
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{fake_nomad.address}/v1/jobs", timeout=0.3)
    assert time.monotonic() - start < 1.0
    assert requests.get(f"{fake_nomad.address}/v1/jobs", timeout=TIMEOUT).status_code == 200
    assert [r.fault for r in fake_nomad.requests_to("^/v1/jobs$")] == ["hang", None]

    fake_nomad.hang("^/v1/status/leader$")
    failures: list[str] = []

    def call() -> None:
        try:
            requests.get(f"{fake_nomad.address}/v1/status/leader", timeout=TIMEOUT)
        except requests.exceptions.ConnectionError as exc:
            failures.append(type(exc).__name__)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.1)
    fake_nomad.release_hangs()  # the held connection is closed without an answer
    caller.join(TIMEOUT)
    assert failures == ["ConnectionError"]


def test_drop_truncate_status_non_json_redirect(fake_nomad: FakeNomad) -> None:
    a = fake_nomad.address
    fake_nomad.drop("^/v1/jobs$", method="POST", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"{a}/v1/jobs", json={"Job": {"ID": "x"}}, timeout=TIMEOUT)
    assert fake_nomad.last_request("^/v1/jobs$").json == {"Job": {"ID": "x"}}

    fake_nomad.truncate("^/v1/agent/self$", times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{a}/v1/agent/self", timeout=TIMEOUT)

    fake_nomad.fail("^/v1/jobs$", 503, "rpc error: No cluster leader", times=1, skip=1)
    assert requests.get(f"{a}/v1/jobs", timeout=TIMEOUT).status_code == 200
    failing = requests.get(f"{a}/v1/jobs", timeout=TIMEOUT)
    assert (failing.status_code, failing.text) == (503, "rpc error: No cluster leader")

    fake_nomad.non_json("^/v1/jobs$", times=1)
    garbage = requests.get(f"{a}/v1/jobs", timeout=TIMEOUT)
    assert garbage.status_code == 200
    with pytest.raises(ValueError):
        garbage.json()

    fake_nomad.redirect("^/v1/status/leader$", location="/elsewhere", times=1)
    moved = requests.get(f"{a}/v1/status/leader", allow_redirects=False, timeout=TIMEOUT)
    assert (moved.status_code, moved.headers["Location"]) == (301, "/elsewhere")


def test_unclean_paths_are_redirected_and_unknown_paths_404(fake_nomad: FakeNomad) -> None:
    moved = requests.get(f"{fake_nomad.address}//v1/jobs", allow_redirects=False, timeout=TIMEOUT)
    assert (moved.status_code, moved.headers["Location"]) == (301, "/v1/jobs")
    posted = requests.post(f"{fake_nomad.address}//v1/jobs", json={}, allow_redirects=False, timeout=TIMEOUT)
    assert posted.status_code == 301 and posted.text == ""
    # python-nomad's json() on that 301 fails like this
    with pytest.raises(ValueError):
        requests.get(f"{fake_nomad.address}//v1/jobs", allow_redirects=False, timeout=TIMEOUT).json()
    unknown = requests.get(f"{fake_nomad.address}/v1/nope", timeout=TIMEOUT)
    assert (unknown.status_code, unknown.text) == (404, "")  # Nomad's root fallthrough


def test_raw_http_and_recording(fake_nomad: FakeNomad) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake_nomad.port, timeout=TIMEOUT)
    conn.request("GET", "/v1/jobs?namespace=*&prefix=a", headers={"X-Nomad-Token": "t"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("X-Nomad-KnownLeader") == "true"
    response.read()
    conn.close()
    rec = fake_nomad.last_request("^/v1/jobs$", "GET")
    assert rec.query == {"namespace": "*", "prefix": "a"} and rec.namespace == "*"
    assert rec.header("x-nomad-token") == "t" and rec.status == 200 and rec.blocking is False


def test_stop_releases_blocked_and_hanging_requests(admin: dict) -> None:
    fake = FakeNomad(block_cap=None).start()
    fake.hang("^/v1/status/leader$")
    errors: list[BaseException] = []

    def call(path: str) -> None:
        try:
            requests.get(f"{fake.address}{path}", timeout=TIMEOUT)
        except requests.RequestException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(p,)) for p in
               ("/v1/status/leader", "/v1/job/x?index=999999&wait=5m")]
    for t in threads:
        t.start()
    time.sleep(0.1)
    start = time.monotonic()
    fake.stop()
    for t in threads:
        t.join(TIMEOUT)
    assert time.monotonic() - start < 2
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", fake.port), timeout=0.5).close()
    assert fake.internal_errors == []

"""Cluster operations (plan, run, status, destroy) against the fake Nomad server.

What is sent (recorded by the fake: namespace, region, token, EnforceIndex, the
submission, blocking-query parameters) and what comes back (the typed results).
Errors and retries are in test_cluster_faults.py, the command line in
test_cluster_cli.py. Helpers here are imported by those two modules.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from matomo_nomad import (
    Cluster,
    ConnectionSettings,
    Deployment,
    NomadClient,
    Role,
    parse_deployment,
    render,
)
from matomo_nomad._cluster import JobRun, RunResult
from matomo_nomad._errors import (
    ClusterConfigError,
    ClusterTimeoutError,
    ConflictError,
    DeploymentFailedError,
    NotOwnedError,
    RequestRejectedError,
    ServerError,
    TlsError,
)
from matomo_nomad._version import __version__
from tests.deployments import _example
from tests.fakenomad import FakeNomad

# fake_nomad, fake_nomad_tls, fake_nomad_mtls, make_fake_nomad, nomad_tls_material
pytest_plugins = ("tests.fakenomad.fixtures",)

JOB_IDS = ["matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver"]
"""The four roles, in plan and run order (run's setup job comes before them)."""
SERVICES = JOB_IDS[:3]
ARCHIVER = "matomo-archiver"
SETUP = "matomo-setup"
ALL_JOB_IDS = [*JOB_IDS, SETUP]
"""Every job, in status and destroy order (the rendering's: setup last)."""
#: A token distinctive enough that finding it anywhere in output is never a coincidence.
TOKEN = "mn-9f1c3b7e-2d4a-4c8e-b5a6-SECRET-TOKEN"
FOREIGN_META = {"owner": "someone-else"}


# --- helpers (also used by test_cluster_faults.py and test_cluster_cli.py) ----------------


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def deployment_data(**update: Any) -> dict[str, Any]:
    """The minimal example (no namespace or region in the file), deep-updated."""
    return _merge(copy.deepcopy(_example("minimal.toml")), update)


def deployment(**update: Any) -> Deployment:
    return parse_deployment(deployment_data(**update))


def connect(fake: FakeNomad, **settings: Any) -> Cluster:
    """A Cluster on the fake; short backoff so retried failures stay fast."""
    settings.setdefault("address", fake.address)
    return Cluster(NomadClient(ConnectionSettings(**settings), backoff=0.01))


def rendered_job(job_id: str, d: Deployment | None = None) -> dict[str, Any]:
    return copy.deepcopy(next(r.job for r in render(d or deployment()) if r.job_id == job_id))


def register_directly(fake: FakeNomad, job: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """Someone else registering a job, with nothing of ours in between."""
    headers = {"X-Nomad-Token": token} if token else {}
    params = {"namespace": job.get("Namespace") or "default"}
    reply = requests.post(f"{fake.address}/v1/jobs", json={"Job": job}, headers=headers, params=params, timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()


def seed_secrets(fake: FakeNomad, d: Deployment | None = None, namespace: str = "default") -> None:
    """What `matomo-nomad secrets init` leaves behind: run checks for these before registering."""
    from matomo_nomad._secrets import expected_secrets

    for location in expected_secrets(d or deployment()):
        if location.provider == "nomad":
            fake.put_variable(location.path, {key: f"test-{key}" for key in location.keys}, namespace=namespace)


@pytest.fixture
def fake_nomad(make_fake_nomad: Callable[..., FakeNomad]) -> FakeNomad:
    """The plugin's plain fake, with the example deployment's secrets in place; its
    scheduler steps a little faster than the default, as most runs now wait for the
    setup job's allocation to be placed, started and completed before the roles."""
    fake = make_fake_nomad(tick=0.02)
    seed_secrets(fake)
    return fake


def foreign_job(job_id: str) -> dict[str, Any]:
    """A job with one of our ids that another team registered: no deployment mark."""
    job = rendered_job(job_id)
    job["Meta"] = dict(FOREIGN_META)
    return job


def by_id(items: list[Any]) -> dict[str, Any]:
    return {item.job_id: item for item in items}


def role_runs(result: RunResult) -> list[JobRun]:
    """The roles' runs, in plan order, without the setup job's (first, when it ran)."""
    assert all(j.role is not Role.setup for j in result.jobs[1:]), [j.job_id for j in result.jobs]
    return [j for j in result.jobs if j.role is not Role.setup]


def setup_run(result: RunResult) -> JobRun | None:
    """The setup job's run: the first of result.jobs, when run needed it."""
    first = result.jobs[0] if result.jobs else None
    return first if first is not None and first.role is Role.setup else None


def registered_ids(fake: FakeNomad) -> list[str]:
    """The ids of the jobs sent to POST /v1/jobs, in the order they arrived."""
    return [r.json["Job"]["ID"] for r in fake.requests_to(r"^/v1/jobs$", "POST")]


def role_registrations(fake: FakeNomad) -> list[Any]:
    """The POST /v1/jobs requests for role jobs (not for the setup job)."""
    return [r for r in fake.requests_to(r"^/v1/jobs$", "POST") if r.json["Job"]["ID"] != SETUP]


def overlap(a: Any, b: Any) -> bool:
    """Whether two recorded requests were in flight at the same time."""
    return a.time < b.time + (b.duration or 0) and b.time < a.time + (a.duration or 0)


# --- connection settings -----------------------------------------------------------------


def test_settings_read_every_variable_the_nomad_cli_reads() -> None:
    env = {
        "NOMAD_ADDR": "https://nomad.example.com:4646",
        "NOMAD_TOKEN": TOKEN,
        "NOMAD_NAMESPACE": "analytics",
        "NOMAD_REGION": "eu",
        "NOMAD_CACERT": "/etc/nomad/ca.pem",
        "NOMAD_CAPATH": "/etc/nomad/cas",
        "NOMAD_CLIENT_CERT": "/etc/nomad/cli.pem",
        "NOMAD_CLIENT_KEY": "/etc/nomad/cli-key.pem",
        "NOMAD_SKIP_VERIFY": "true",
        "NOMAD_TLS_SERVER_NAME": "server.eu.nomad",
    }
    settings = ConnectionSettings.from_env(env)
    assert settings == ConnectionSettings(
        address="https://nomad.example.com:4646", token=TOKEN, namespace="analytics", region="eu",
        ca_cert="/etc/nomad/ca.pem", ca_path="/etc/nomad/cas", client_cert="/etc/nomad/cli.pem",
        client_key="/etc/nomad/cli-key.pem", skip_verify=True, tls_server_name="server.eu.nomad",
    )
    assert settings.verify() is False
    assert settings.cert() == ("/etc/nomad/cli.pem", "/etc/nomad/cli-key.pem")
    # NOMAD_CACERT wins over NOMAD_CAPATH (as go-rootcerts does), both over the default
    assert ConnectionSettings.from_env({**env, "NOMAD_SKIP_VERIFY": ""}).verify() == "/etc/nomad/ca.pem"
    assert ConnectionSettings.from_env({"NOMAD_CAPATH": "/etc/nomad/cas"}).verify() == "/etc/nomad/cas"


def test_settings_defaults_verify_tls_and_empty_variables_count_as_unset() -> None:
    settings = ConnectionSettings.from_env({"NOMAD_ADDR": "", "NOMAD_TOKEN": "", "NOMAD_SKIP_VERIFY": "0"})
    assert settings == ConnectionSettings()
    assert settings.address == "http://127.0.0.1:4646"
    assert settings.verify() is True  # python-nomad's own default would be False
    assert settings.cert() == ()


def test_keyword_overrides_win_over_the_environment() -> None:
    env = {"NOMAD_ADDR": "http://env:4646", "NOMAD_TOKEN": "env-token", "NOMAD_NAMESPACE": "env-ns",
           "NOMAD_REGION": "env-region", "NOMAD_SKIP_VERIFY": "1"}
    settings = ConnectionSettings.from_env(env, address="http://flag:4646", token=TOKEN, namespace="flag-ns",
                                           region=None, skip_verify=False)
    assert (settings.address, settings.token, settings.namespace) == ("http://flag:4646", TOKEN, "flag-ns")
    assert settings.region == "env-region"  # None means "flag not given"
    assert settings.skip_verify is False


def test_token_is_not_in_the_settings_repr() -> None:
    settings = ConnectionSettings(token=TOKEN)
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert TOKEN not in repr(NomadClient(settings)) and TOKEN not in repr(Cluster(NomadClient(settings)))


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (ConnectionSettings(address="ftp://nomad:4646"), "NOMAD_ADDR"),
        (ConnectionSettings(address="http://"), "NOMAD_ADDR"),
        (ConnectionSettings(client_cert="/x/cli.pem"), "NOMAD_CLIENT_KEY"),
        (ConnectionSettings(client_key="/x/cli-key.pem"), "NOMAD_CLIENT_CERT"),
    ],
)
def test_wrong_settings_are_a_config_error(settings: ConnectionSettings, needle: str) -> None:
    with pytest.raises(ClusterConfigError, match=needle) as caught:
        NomadClient(settings)
    assert caught.value.exit_code == 11


def test_trailing_slash_on_the_address_works(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad, address=fake_nomad.address + "/")
    assert [j.change for j in cluster.plan(deployment()).jobs] == ["create"] * 4
    assert fake_nomad.requests
    assert all(r.target.startswith("/v1/") for r in fake_nomad.requests), [r.target for r in fake_nomad.requests]
    assert {r.status for r in fake_nomad.requests} == {200, 404}  # 404: the jobs do not exist yet; no 301


def test_address_without_a_scheme_is_http(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad, address=f"127.0.0.1:{fake_nomad.port}")
    assert len(cluster.plan(deployment()).jobs) == 4


def test_namespace_region_and_token_go_with_every_request(make_fake_nomad: Callable[..., FakeNomad],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake = make_fake_nomad(acl_token=TOKEN, namespaces=("default", "analytics"), region="eu")
    seed_secrets(fake, namespace="analytics")
    for name in ("NOMAD_CACERT", "NOMAD_CAPATH", "NOMAD_CLIENT_CERT", "NOMAD_CLIENT_KEY", "NOMAD_SKIP_VERIFY",
                 "NOMAD_TLS_SERVER_NAME", "VAULT_ADDR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"NOMAD_ADDR": fake.address, "NOMAD_TOKEN": TOKEN, "NOMAD_NAMESPACE": "analytics",
                        "NOMAD_REGION": "eu"}.items():
        monkeypatch.setenv(name, value)
    cluster = Cluster.from_env()
    d = deployment()
    # one deployment fails, so that run also reads the job's allocations
    fake.progress("matomo-admin", "failed", namespace="analytics")
    assert cluster.plan(d).changed
    result = cluster.run(d)
    assert [(j.job_id, j.outcome) for j in result.jobs] == [
        (SETUP, "completed"), ("matomo-admin", "failed"), *((j, "registered") for j in JOB_IDS[1:])]
    statuses = cluster.status(d)
    assert [s.job_id for s in statuses] == ALL_JOB_IDS and all(s.exists and s.owned for s in statuses)
    fake.put_variable("nomad/jobs/matomo-admin", {"salt": "x"}, namespace="analytics")
    assert cluster.client.get("var", "nomad/jobs/matomo-admin", namespace="analytics").data["Items"] == {"salt": "x"}
    assert cluster.client.get("vars", namespace="analytics", params={"prefix": "nomad/jobs"}).data
    cluster.destroy(d, purge=True)
    assert fake.job("matomo-admin", namespace="analytics") is None

    sent = fake.requests
    for method, pattern in (("POST", r"^/v1/job/[^/]+/plan$"), ("POST", r"^/v1/jobs$"), ("GET", r"^/v1/job/[^/]+$"),
                            ("GET", r"^/v1/job/[^/]+/deployment$"), ("GET", r"^/v1/deployment/[^/]+$"),
                            ("GET", r"^/v1/job/[^/]+/allocations$"), ("GET", r"^/v1/var/nomad/jobs/"),
                            ("GET", r"^/v1/vars$"), ("DELETE", r"^/v1/job/[^/]+$")):
        assert fake.count(pattern, method), (method, pattern)
    for r in sent:
        assert r.query.get("namespace") == "analytics", r.target
        assert r.query.get("region") == "eu", r.target
        assert r.header("X-Nomad-Token") == TOKEN, r.target
        assert r.status in (200, 204, 404), (r.target, r.status)
    # the jobs themselves went into the namespace and region they were sent to
    assert all(r.json["Job"]["Namespace"] == "analytics" and r.json["Job"]["Region"] == "eu"
               for r in fake.requests_to(r"^/v1/jobs$", "POST"))


def test_a_region_written_in_the_file_goes_with_every_request(make_fake_nomad: Callable[..., FakeNomad],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake = make_fake_nomad(region="eu")
    seed_secrets(fake)
    cluster = connect(fake, region="us")  # as NOMAD_REGION=us: the file's region wins over it
    d = deployment(region="eu")
    cluster.run(d, detach=True)
    cluster.status(d)
    cluster.destroy(d, purge=True)
    assert fake.requests and all(r.query.get("region") == "eu" for r in fake.requests), \
        {r.target for r in fake.requests if r.query.get("region") != "eu"}


# --- TLS ---------------------------------------------------------------------------------


def _tls_env(fake: FakeNomad, **extra: str) -> ConnectionSettings:
    return ConnectionSettings.from_env({"NOMAD_ADDR": fake.address, **extra})


def _agent_self(settings: ConnectionSettings) -> Any:
    return NomadClient(settings, backoff=0.01).get("agent", "self").data


@pytest.fixture
def no_ca_bundle_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these override verify=True: unset, so a pass is not borrowed from them
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_tls_is_verified_by_default(fake_nomad_tls: FakeNomad, no_ca_bundle_variables: None) -> None:
    with pytest.raises(TlsError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        _agent_self(_tls_env(fake_nomad_tls))
    assert caught.value.exit_code == 15
    assert fake_nomad_tls.requests == []  # the handshake failed: nothing was sent
    with pytest.raises(TlsError):
        connect(fake_nomad_tls).plan(deployment())


def test_tls_with_the_ca_certificate(fake_nomad_tls: FakeNomad, no_ca_bundle_variables: None) -> None:
    assert _agent_self(_tls_env(fake_nomad_tls, NOMAD_CACERT=fake_nomad_tls.ca_path))["config"]
    assert len(connect(fake_nomad_tls, ca_cert=fake_nomad_tls.ca_path).plan(deployment()).jobs) == 4


def test_tls_rejects_a_certificate_from_another_ca(fake_nomad_tls: FakeNomad, nomad_tls_material: Any,
                                                    no_ca_bundle_variables: None) -> None:
    with pytest.raises(TlsError):
        _agent_self(_tls_env(fake_nomad_tls, NOMAD_CACERT=str(nomad_tls_material.other_ca_cert)))


def test_tls_with_a_ca_directory(fake_nomad_tls: FakeNomad, tmp_path: Path, no_ca_bundle_variables: None) -> None:
    directory = tmp_path / "cas"
    directory.mkdir()
    shutil.copy(fake_nomad_tls.ca_path, directory / "test-ca.pem")
    # OpenSSL looks certificates up in a directory by subject hash: unhashed, it finds nothing
    with pytest.raises(TlsError):
        _agent_self(_tls_env(fake_nomad_tls, NOMAD_CAPATH=str(directory)))
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    assert any(p.name.endswith(".0") for p in directory.iterdir())
    assert _agent_self(_tls_env(fake_nomad_tls, NOMAD_CAPATH=str(directory)))["config"]


def test_skip_verify_connects_without_a_ca(fake_nomad_tls: FakeNomad, no_ca_bundle_variables: None) -> None:
    with pytest.warns(Warning):  # urllib3's InsecureRequestWarning
        assert _agent_self(_tls_env(fake_nomad_tls, NOMAD_SKIP_VERIFY="1"))["config"]


def test_tls_server_name_is_verified_and_sent_as_sni(make_fake_nomad: Callable[..., FakeNomad],
                                                     no_ca_bundle_variables: None) -> None:
    # 127.0.0.2 is not in the certificate; server.global.nomad is
    fake = make_fake_nomad(tls=True, host="127.0.0.2")
    seed_secrets(fake)
    with pytest.raises(TlsError, match="127.0.0.2"):
        _agent_self(_tls_env(fake, NOMAD_CACERT=fake.ca_path))
    assert _agent_self(_tls_env(fake, NOMAD_CACERT=fake.ca_path, NOMAD_TLS_SERVER_NAME="server.global.nomad"))
    assert fake.requests[-1].sni == "server.global.nomad"
    with pytest.raises(TlsError, match="wrong.example"):
        _agent_self(_tls_env(fake, NOMAD_CACERT=fake.ca_path, NOMAD_TLS_SERVER_NAME="wrong.example"))
    cluster = Cluster(NomadClient(_tls_env(fake, NOMAD_CACERT=fake.ca_path, NOMAD_TLS_SERVER_NAME="server.global.nomad")))
    assert cluster.run(deployment(), detach=True).ok
    assert {r.sni for r in fake.requests[1:]} == {"server.global.nomad"}


def test_mutual_tls_with_the_client_certificate(fake_nomad_mtls: FakeNomad, nomad_tls_material: Any,
                                                no_ca_bundle_variables: None) -> None:
    fake = fake_nomad_mtls
    seed_secrets(fake)
    with pytest.raises(TlsError):
        _agent_self(_tls_env(fake, NOMAD_CACERT=fake.ca_path))
    with pytest.raises(TlsError):
        _agent_self(_tls_env(fake, NOMAD_CACERT=fake.ca_path, NOMAD_CLIENT_CERT=str(nomad_tls_material.other_client_cert),
                             NOMAD_CLIENT_KEY=str(nomad_tls_material.other_client_key)))
    settings = _tls_env(fake, NOMAD_CACERT=fake.ca_path, NOMAD_CLIENT_CERT=fake.client_cert,
                        NOMAD_CLIENT_KEY=fake.client_key)
    assert _agent_self(settings)
    assert Cluster(NomadClient(settings)).run(deployment(), detach=True).ok
    assert {r.client_cert_cn for r in fake.requests} == {"cli.global.nomad"}


# --- plan ---------------------------------------------------------------------------------


def test_first_plan_creates_every_job_and_changes_nothing(fake_nomad: FakeNomad) -> None:
    plan = connect(fake_nomad).plan(deployment())
    assert plan.changed and plan.deployment == "matomo" and plan.namespace == "default"
    assert [(j.job_id, j.change, j.exists, j.owned, j.job_modify_index) for j in plan.jobs] == [
        (job_id, "create", False, True, 0) for job_id in JOB_IDS
    ]
    places = {j.job_id: [(g.group, g.place) for g in j.groups] for j in plan.jobs}
    assert places == {"matomo-admin": [("admin", 1)], "matomo-ingestion": [("ingestion", 2)],
                      "matomo-queue-processor": [("queue-processor", 1)], "matomo-archiver": [("archiver", 1)]}
    assert plan.jobs[0].groups[0].summary() == "admin: 1 to place"
    archiver = by_id(plan.jobs)[ARCHIVER]
    assert dt.datetime.fromisoformat(archiver.next_periodic_launch) > dt.datetime.now(dt.UTC)
    assert all(j.next_periodic_launch is None for j in plan.jobs[:3])
    assert all(r.json["Diff"] is True for r in fake_nomad.requests_to("/plan$", "POST"))
    assert fake_nomad.count(r"^/v1/jobs$") == 0 and fake_nomad.job("matomo-admin") is None


def test_plan_after_run_shows_no_change(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment(), detach=True)
    plan = cluster.plan(deployment())
    assert not plan.changed
    assert [(j.change, j.exists, j.owned, j.changes, j.template_diff) for j in plan.jobs] == [
        ("none", True, True, [], [])] * 4
    assert all(j.job_modify_index == fake_nomad.job(j.job_id)["JobModifyIndex"] > 0 for j in plan.jobs)


def test_plan_lists_changed_fields_and_the_config_template_as_a_line_diff(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    assert cluster.run(deployment()).ok  # deployed: the allocations are running
    changed = deployment(roles={"admin": {"count": 2, "settings": {"General": {"login_allow_logme": 1}}}})
    plan = by_id(cluster.plan(changed).jobs)
    assert [plan[j].change for j in JOB_IDS] == ["update", "none", "none", "none"]
    admin = plan["matomo-admin"]
    changes = {c.path: c for c in admin.changes}
    assert (changes["group[admin].Count"].kind, changes["group[admin].Count"].old,
            changes["group[admin].Count"].new) == ("edited", "1", "2")
    assert any(path.startswith("Meta[matomo_nomad_hash]") or path == "Meta[matomo_nomad_hash]" for path in changes)
    # the template is shown as lines, not as one field with the whole file twice
    assert not any("EmbeddedTmpl" in path for path in changes)
    assert admin.template_diff[:2] == ["--- running", "+++ rendered"]
    added = [line for line in admin.template_diff if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in admin.template_diff if line.startswith("-") and not line.startswith("---")]
    assert len(added) == 1 and added[0].startswith("+login_allow_logme = "), admin.template_diff
    assert removed == []
    assert len(admin.template_diff) < 20  # a diff with context, not two copies of the file
    assert [(g.group, g.place, g.in_place, g.destructive) for g in admin.groups] == [("admin", 1, 0, 1)]


def test_plan_summarises_what_the_scheduler_would_do(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    assert cluster.run(deployment()).ok
    plan = by_id(cluster.plan(deployment(matomo={"image": "registry.example.com/matomo:5.10.1-1"})).jobs)
    ingestion = plan["matomo-ingestion"]
    assert ingestion.change == "update"
    assert any(c.path.endswith("Config[image]") or "image" in c.path for c in ingestion.changes), ingestion.changes
    assert [g.summary() for g in ingestion.groups] == ["ingestion: 2 destructive update(s)"]
    assert [g.summary() for g in plan[ARCHIVER].groups] == ["archiver: 1 to place"]


def test_plan_explains_why_a_group_cannot_be_placed(fake_nomad: FakeNomad) -> None:
    fake_nomad.fail_placement("ingestion", "matomo-ingestion", metrics={
        "NodesEvaluated": 3, "NodesFiltered": 1, "NodesAvailable": {"dc1": 3},
        "ConstraintFiltered": {"${attr.kernel.name} = linux": 1}, "DimensionExhausted": {"memory": 2},
        "CoalescedFailures": 1,
    })
    plan = by_id(connect(fake_nomad).plan(deployment()).jobs)
    [failure] = plan["matomo-ingestion"].placement_failures
    assert failure.startswith("group ingestion cannot be placed: 3 node(s) evaluated")
    for part in ("available per datacenter: dc1: 3", "filtered by constraint: ${attr.kernel.name} = linux (1)",
                 "resources exhausted: memory (2)", "1 more allocation(s) failed the same way"):
        assert part in failure
    assert plan["matomo-admin"].placement_failures == []


def test_plan_carries_nomads_warnings(fake_nomad: FakeNomad) -> None:
    fake_nomad.warnings = "1 warning:\n\n* Group \"admin\" has warnings: x"
    plan = connect(fake_nomad).plan(deployment())
    assert plan.jobs[0].warnings == ["1 warning:", "* Group \"admin\" has warnings: x"]


def test_plan_marks_a_job_that_is_not_ours(fake_nomad: FakeNomad) -> None:
    register_directly(fake_nomad, foreign_job("matomo-admin"))
    plan = by_id(connect(fake_nomad).plan(deployment()).jobs)
    assert (plan["matomo-admin"].change, plan["matomo-admin"].exists, plan["matomo-admin"].owned) == ("update", True, False)
    assert all(plan[j].owned for j in JOB_IDS[1:])


def test_plan_to_dict_is_plain_data(fake_nomad: FakeNomad) -> None:
    plan = connect(fake_nomad).plan(deployment())
    document = plan.to_dict()
    assert document["deployment"] == "matomo" and [j["role"] for j in document["jobs"]] == [
        "admin", "ingestion", "queue_processor", "archiver"]
    import json

    assert json.loads(json.dumps(document)) == document


# --- run ----------------------------------------------------------------------------------


def test_run_registers_with_check_index_the_hcl_submission_and_our_mark(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    d = deployment()
    rendering = {r.job_id: r for r in render(d)}
    result = cluster.run(d, detach=True)
    assert result.ok and [j.outcome for j in result.jobs] == ["completed"] + ["registered"] * 4
    sent = {r.json["Job"]["ID"]: r.json for r in fake_nomad.requests_to(r"^/v1/jobs$", "POST")}
    assert sorted(sent) == sorted(ALL_JOB_IDS) and fake_nomad.count(r"^/v1/jobs$", "POST") == 5
    for job_id, body in sent.items():
        assert body["EnforceIndex"] is True and body["JobModifyIndex"] == 0  # create: must not exist yet
        assert body["Submission"]["Source"] == rendering[job_id].hcl
        assert body["Submission"]["Format"] == "hcl2"
        role = rendering[job_id].role
        expected = {"matomo_nomad_deployment": "matomo", "matomo_nomad_role": role.value,
                    "matomo_nomad_version": __version__,
                    "matomo_nomad_hash": rendering[job_id].job["Meta"]["matomo_nomad_hash"]}
        assert expected.items() <= body["Job"]["Meta"].items()
        assert expected.items() <= fake_nomad.job(job_id)["Meta"].items()
        assert len(expected["matomo_nomad_hash"]) >= 8
    assert {j.job_id: j.job_modify_index for j in result.jobs} == {
        j: fake_nomad.job(j)["JobModifyIndex"] for j in ALL_JOB_IDS}
    roles = role_runs(result)
    assert all(j.eval_id for j in roles[:3]) and roles[3].eval_id == ""  # periodic: no eval
    assert setup_run(result).eval_id  # a batch job: evaluated when registered


def test_run_of_a_changed_job_sends_the_index_its_plan_returned(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment(), detach=True)
    fake_nomad.clear_requests()
    changed = deployment(roles={"admin": {"settings": {"General": {"login_allow_logme": 1}}}})
    before = fake_nomad.job("matomo-admin")["JobModifyIndex"]
    result = cluster.run(changed, detach=True)
    plan = by_id(result.plan.jobs)
    [register] = fake_nomad.requests_to(r"^/v1/jobs$", "POST")
    assert register.json["Job"]["ID"] == "matomo-admin"
    assert register.json["EnforceIndex"] is True
    assert register.json["JobModifyIndex"] == plan["matomo-admin"].job_modify_index == before > 0
    assert fake_nomad.job("matomo-admin")["Version"] == 1
    assert [j.outcome for j in result.jobs] == ["registered", "unchanged", "unchanged", "unchanged"]


def test_jobs_without_changes_are_not_registered_again(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment())
    fake_nomad.clear_requests()
    result = cluster.run(deployment())
    assert [j.outcome for j in result.jobs] == ["unchanged"] * 4
    assert fake_nomad.count(r"^/v1/jobs$", "POST") == 0
    assert fake_nomad.count("deployment") == 0  # nothing registered, nothing to watch
    assert [len(fake_nomad.job_versions(j)) for j in JOB_IDS] == [1] * 4


def _change_after_plan(monkeypatch: pytest.MonkeyPatch, fake: FakeNomad, job: dict[str, Any]) -> None:
    """Between run's plan and its registration, someone else registers `job`."""
    original = Cluster._plan

    def plan_then_someone_registers(self: Cluster, target: Deployment) -> Any:
        planned = original(self, target)
        register_directly(fake, job)
        return planned

    monkeypatch.setattr(Cluster, "_plan", plan_then_someone_registers)


def test_a_job_changed_between_plan_and_run_is_a_conflict_and_is_not_overwritten(
        fake_nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment(), detach=True)
    theirs = rendered_job("matomo-admin")
    theirs["TaskGroups"][0]["Count"] = 5
    _change_after_plan(monkeypatch, fake_nomad, theirs)
    changed = deployment(roles={"admin": {"settings": {"General": {"login_allow_logme": 1}}},
                                "ingestion": {"count": 3}})
    result = cluster.run(changed, detach=True)
    admin, ingestion = result.jobs[0], result.jobs[1]
    assert admin.outcome == "failed" and isinstance(admin.error, ConflictError)
    assert admin.error.exit_code == 20
    assert "changed since it was planned" in admin.failure and "plan again" in admin.failure
    assert "\n" not in admin.failure
    assert fake_nomad.job("matomo-admin")["TaskGroups"][0]["Count"] == 5  # theirs, not overwritten
    assert fake_nomad.job("matomo-admin")["Version"] == 1
    assert ingestion.outcome == "registered" and fake_nomad.job("matomo-ingestion")["TaskGroups"][0]["Count"] == 3
    assert result.first_error() is admin.error and not result.ok


def test_a_job_created_by_someone_else_after_the_plan_is_a_conflict(
        fake_nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch) -> None:
    _change_after_plan(monkeypatch, fake_nomad, foreign_job("matomo-admin"))
    result = connect(fake_nomad).run(deployment(), detach=True)
    assert setup_run(result).outcome == "completed"  # the roles' turn came after it
    roles = role_runs(result)
    assert isinstance(roles[0].error, ConflictError)
    assert fake_nomad.job("matomo-admin")["Meta"] == FOREIGN_META
    assert [j.outcome for j in roles[1:]] == ["registered"] * 3


def test_roles_are_registered_and_watched_concurrently(make_fake_nomad: Callable[..., FakeNomad]) -> None:
    fake = make_fake_nomad()
    seed_secrets(fake)
    fake.add_latency(0.4, r"^/v1/jobs$", method="POST")
    for job_id in SERVICES:
        fake.progress(job_id, steps=["place", "start", "healthy", "succeed"], interval=0.3)
    result = connect(fake).run(deployment())
    finished = time.monotonic()
    assert result.ok, result.first_error()
    assert registered_ids(fake)[0] == SETUP  # registered, and waited for, before the roles
    registers = role_registrations(fake)
    assert len(registers) == 4
    # the roles' part of the run, from their first registration on
    elapsed = finished - min(r.time for r in registers)
    # all four registrations were in flight at once: one after the other would take 1.6 s
    assert max(r.time for r in registers) - min(r.time for r in registers) < 0.3
    assert all(overlap(a, b) for a in registers for b in registers)
    # the three deployments were followed side by side (about 1.2 s each, not 3.6 s in a row)
    watches = {job_id: fake.requests_to(rf"^/v1/deployment/{fake.deployment(job_id)['ID']}$") for job_id in SERVICES}
    for a, b in ((SERVICES[0], SERVICES[1]), (SERVICES[1], SERVICES[2]), (SERVICES[0], SERVICES[2])):
        assert any(overlap(x, y) for x in watches[a] for y in watches[b]), (a, b)
    assert elapsed < 0.4 + 1.2 + 1.2, elapsed


def test_the_secrets_check_reads_the_variables_side_by_side(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_latency(0.3, r"^/v1/var/")
    started = time.monotonic()
    assert connect(fake_nomad).run(deployment(), detach=True).ok
    reads = fake_nomad.requests_to(r"^/v1/var/", "GET")
    assert sorted(r.path for r in reads) == sorted(f"/v1/var/nomad/jobs/{j}" for j in ALL_JOB_IDS)  # one per job
    assert all(overlap(a, b) for a in reads for b in reads)
    # the check was over before the first registration (the setup job's), sooner than
    # four of its five reads one after the other
    first_write = min(r.time for r in fake_nomad.requests_to(r"^/v1/jobs$", "POST"))
    assert max(r.time + r.duration for r in reads) <= first_write
    assert first_write - started < 0.3 * 4


def test_the_watch_uses_blocking_queries_and_few_requests(make_fake_nomad: Callable[..., FakeNomad]) -> None:
    # Nomad's own wait (block_cap=None): a slow deployment costs requests per change, not per second
    fake = make_fake_nomad(block_cap=None)
    seed_secrets(fake)
    for job_id in SERVICES:
        fake.progress(job_id, steps=["place", "start", "healthy", "succeed"], interval=0.9)
    seen: list[Any] = []
    started = time.monotonic()
    result = connect(fake).run(deployment(), on_progress=seen.append)
    elapsed = time.monotonic() - started
    assert result.ok and elapsed > 3.0
    for job_id in SERVICES:
        dep_id = fake.deployment(job_id)["ID"]
        watch = fake.requests_to(rf"^/v1/job/{job_id}/deployment$") + fake.requests_to(rf"^/v1/deployment/{dep_id}$")
        assert all("index" in r.query and "wait" in r.query for r in watch), [r.target for r in watch]
        assert sum(not r.blocking for r in watch) <= 1  # only the first look at the deployment itself
        per_job = len(fake.requests_to(rf"^/v1/job/{job_id}(/|$)")) + len(fake.requests_to(rf"^/v1/deployment/{dep_id}$"))
        # plan's read, plan, the version read, the deployment lookup, then one answer per state change
        assert per_job <= 10, (job_id, per_job, fake.query_stats(job_id))
        assert by_id(result.jobs)[job_id].deployment.status == "successful"
    assert fake.count("", blocking=True) >= 3
    # on_progress saw each change once, the last state of each job being successful
    assert {p.job_id for p in seen} == set(SERVICES)
    for job_id in SERVICES:
        mine = [p for p in seen if p.job_id == job_id]
        assert all(a != b for a, b in itertools.pairwise(mine)), mine
    for job_id in SERVICES:
        assert [p for p in seen if p.job_id == job_id][-1].status == "successful"


def test_a_failed_deployment_is_an_error_with_the_task_events(fake_nomad: FakeNomad) -> None:
    message = "Failed to pull `registry.example.com/matomo:5.10.0-1`: manifest unknown"
    fake_nomad.progress("matomo-admin", "failed", failure={"Type": "Driver Failure", "DisplayMessage": message})
    result = connect(fake_nomad).run(deployment())
    assert setup_run(result).outcome == "completed"
    admin = role_runs(result)[0]
    assert admin.outcome == "failed" and isinstance(admin.error, DeploymentFailedError)
    assert admin.error.exit_code == 23 and result.first_error() is admin.error
    assert admin.deployment is not None and admin.deployment.status == "failed"
    assert "Failed due to unhealthy allocations" in admin.failure
    assert f"Driver Failure: {message}" in admin.failure, admin.failure
    assert "\n" not in admin.failure
    assert [j.outcome for j in role_runs(result)[1:]] == ["registered"] * 3
    assert fake_nomad.count(r"^/v1/job/matomo-admin/allocations$") == 1


def test_a_failed_deployment_names_the_exit_code_of_a_crashing_task(fake_nomad: FakeNomad) -> None:
    fake_nomad.progress("matomo-ingestion", "failed", failure={"Type": "Terminated",
                                                               "DisplayMessage": "Exit Code: 255, Exit Message: \"php: not found\""})
    result = connect(fake_nomad).run(deployment())
    ingestion = role_runs(result)[1]
    assert ingestion.job_id == "matomo-ingestion"
    assert 'Terminated: Exit Code: 255, Exit Message: "php: not found"' in ingestion.failure


def test_the_archiver_has_no_deployment_and_run_reports_its_next_launch(fake_nomad: FakeNomad) -> None:
    result = connect(fake_nomad).run(deployment())
    roles = role_runs(result)
    archiver = roles[3]
    assert (archiver.job_id, archiver.outcome, archiver.deployment) == (ARCHIVER, "registered", None)
    assert archiver.next_periodic_launch and archiver.next_periodic_launch.endswith("Z")
    assert fake_nomad.count(rf"^/v1/job/{ARCHIVER}/deployment") == 0
    assert [j.deployment.status for j in roles[:3]] == ["successful"] * 3


@pytest.mark.parametrize(("status", "error"), [(500, ServerError), (400, RequestRejectedError)])
def test_one_job_refused_is_reported_alone_and_a_second_run_converges(
        fake_nomad: FakeNomad, status: int, error: type) -> None:
    # skip=1: the first registration is the setup job's; the next one, a role's, is refused
    fake_nomad.fail(r"^/v1/jobs$", status, "rpc error: something went wrong", method="POST", times=1, skip=1)
    cluster = connect(fake_nomad)
    first = cluster.run(deployment())
    assert setup_run(first).outcome == "completed"
    roles = role_runs(first)
    failed = [j for j in roles if j.outcome == "failed"]
    assert len(failed) == 1 and isinstance(failed[0].error, error), [(j.job_id, j.failure) for j in first.jobs]
    assert f"({status}: rpc error: something went wrong)" in failed[0].failure
    assert sorted(j.outcome for j in roles) == ["failed", "registered", "registered", "registered"]
    assert fake_nomad.job(failed[0].job_id) is None
    assert fake_nomad.count(r"^/v1/jobs$", "POST") == 5  # the setup job and each role once: no write repeated

    fake_nomad.clear_requests()
    second = cluster.run(deployment())
    assert second.ok
    assert by_id(second.jobs)[failed[0].job_id].outcome == "registered"
    # a role job was absent, so setup ran first again; of the roles, only the refused one is sent
    assert registered_ids(fake_nomad) == [SETUP, failed[0].job_id]
    assert not cluster.plan(deployment()).changed


def test_detach_registers_and_does_not_watch(fake_nomad: FakeNomad) -> None:
    for job_id in SERVICES:
        fake_nomad.progress(job_id, "running")
    result = connect(fake_nomad).run(deployment(), detach=True)
    assert result.ok and [j.deployment for j in result.jobs] == [None] * 5
    assert fake_nomad.count("deployment") == 0
    # the one thing waited for is the setup job's allocation, even detached
    assert {r.path for r in fake_nomad.requests if r.blocking} == {f"/v1/job/{SETUP}/allocations"}


def test_the_watch_gives_up_after_its_timeout(fake_nomad: FakeNomad) -> None:
    fake_nomad.progress("matomo-admin", "running")
    result = connect(fake_nomad).run(deployment(), watch_timeout=1.2)
    assert setup_run(result).outcome == "completed"
    admin = role_runs(result)[0]
    assert isinstance(admin.error, ClusterTimeoutError) and admin.error.exit_code == 14
    assert "still deploying" in admin.failure and fake_nomad.job("matomo-admin") is not None
    assert [j.outcome for j in role_runs(result)[1:]] == ["registered"] * 3


def test_a_job_without_our_mark_is_refused_unless_adopted(fake_nomad: FakeNomad) -> None:
    register_directly(fake_nomad, foreign_job("matomo-admin"))
    cluster = connect(fake_nomad)
    fake_nomad.clear_requests()
    result = cluster.run(deployment(), detach=True)
    assert setup_run(result).outcome == "completed"
    admin = role_runs(result)[0]
    assert isinstance(admin.error, NotOwnedError) and admin.error.exit_code == 22
    assert "--adopt" in admin.failure and "'matomo'" in admin.failure
    assert fake_nomad.job("matomo-admin")["Meta"] == FOREIGN_META and fake_nomad.job("matomo-admin")["Version"] == 0
    assert "matomo-admin" not in registered_ids(fake_nomad)
    assert [j.outcome for j in role_runs(result)[1:]] == ["registered"] * 3

    adopted = cluster.run(deployment(), detach=True, adopt=True)
    assert adopted.ok and role_runs(adopted)[0].outcome == "registered"
    assert fake_nomad.job("matomo-admin")["Meta"]["matomo_nomad_deployment"] == "matomo"
    assert fake_nomad.last_request(r"^/v1/jobs$", "POST").json["JobModifyIndex"] == adopted.plan.jobs[0].job_modify_index


def test_a_job_with_another_deployments_mark_is_not_ours(fake_nomad: FakeNomad) -> None:
    # same id, same role, but registered by a deployment named "staging"
    job = rendered_job("matomo-queue-processor")
    job["Meta"]["matomo_nomad_deployment"] = "staging"
    register_directly(fake_nomad, job)
    result = connect(fake_nomad).run(deployment(), detach=True)
    assert setup_run(result).outcome == "completed"
    assert [type(j.error).__name__ for j in role_runs(result)] == ["NoneType", "NoneType", "NotOwnedError", "NoneType"]
    assert fake_nomad.job("matomo-queue-processor")["Meta"]["matomo_nomad_deployment"] == "staging"


def test_run_after_destroy_starts_the_jobs_again(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment(), detach=True)
    cluster.destroy(deployment())
    assert all(fake_nomad.job(j)["Stop"] for j in ALL_JOB_IDS)
    plan = cluster.plan(deployment())
    assert [j.change for j in plan.jobs] == ["update"] * 4
    assert all(any(c.path == "Stop" for c in j.changes) for j in plan.jobs)
    assert cluster.run(deployment(), detach=True).ok
    assert not any(fake_nomad.job(j)["Stop"] for j in JOB_IDS)


# --- status -------------------------------------------------------------------------------


def test_status_of_each_role(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    assert [(s.job_id, s.exists, s.owned, s.status) for s in cluster.status(deployment())] == [
        (j, False, False, "absent") for j in ALL_JOB_IDS]
    cluster.run(deployment())
    statuses = by_id(cluster.status(deployment()))
    for job_id, count in (("matomo-admin", 1), ("matomo-ingestion", 2), ("matomo-queue-processor", 1)):
        s = statuses[job_id]
        assert (s.exists, s.owned, s.status, s.version, s.stopped, s.in_sync) == (True, True, "running", 0, False, True)
        assert s.deployment is not None and s.deployment.status == "successful"
        assert [(g.desired, g.placed, g.healthy) for g in s.deployment.groups] == [(count, count, count)]
        assert s.allocations == {"running": count}
    archiver = statuses[ARCHIVER]
    assert (archiver.exists, archiver.owned, archiver.in_sync, archiver.deployment, archiver.allocations) == (
        True, True, True, None, {})
    setup = statuses[SETUP]  # a batch job: its one allocation ran to completion
    assert (setup.exists, setup.owned, setup.status, setup.version, setup.stopped, setup.in_sync, setup.deployment,
            setup.allocations) == (True, True, "dead", 0, False, True, None, {"complete": 1})

    changed = by_id(cluster.status(deployment(roles={"ingestion": {"count": 3}})))
    assert [changed[j].in_sync for j in ALL_JOB_IDS] == [True, False, True, True, True]


def test_status_reports_a_job_without_our_mark_as_such(fake_nomad: FakeNomad) -> None:
    register_directly(fake_nomad, foreign_job("matomo-ingestion"))
    fake_nomad.clear_requests()
    statuses = by_id(connect(fake_nomad).status(deployment()))
    foreign = statuses["matomo-ingestion"]
    assert (foreign.exists, foreign.owned, foreign.in_sync, foreign.version) == (True, False, None, None)
    assert foreign.status in ("pending", "running")
    # nothing more is read about a job that is not ours
    assert fake_nomad.count(r"^/v1/job/matomo-ingestion/") == 0


def test_status_of_stopped_jobs(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment(), detach=True)
    cluster.destroy(deployment())
    statuses = cluster.status(deployment())
    assert all(s.exists and s.owned and s.stopped for s in statuses)
    assert {s.status for s in statuses} <= {"pending", "dead"}  # "dead" once the allocations have stopped


# --- destroy ------------------------------------------------------------------------------


def test_destroy_stops_only_jobs_with_this_deployments_mark(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    register_directly(fake_nomad, foreign_job("matomo-admin"))
    cluster.run(deployment(), detach=True)  # admin refused, the rest (setup first) registered
    fake_nomad.clear_requests()
    results = by_id(cluster.destroy(deployment()))
    assert [results[j].outcome for j in ALL_JOB_IDS] == ["refused", "stopped", "stopped", "stopped", "stopped"]
    assert fake_nomad.count("", "DELETE") == 4
    assert fake_nomad.count(r"^/v1/job/matomo-admin$", "DELETE") == 0
    untouched = fake_nomad.job("matomo-admin")
    assert untouched["Meta"] == FOREIGN_META and untouched["Stop"] is False
    assert all(fake_nomad.job(j)["Stop"] for j in ALL_JOB_IDS[1:])
    assert all(r.query.get("purge") == "false" for r in fake_nomad.requests_to("", "DELETE"))
    assert all(results[j].eval_id for j in SERVICES[1:])


def test_destroy_purge_removes_the_jobs_and_absent_jobs_are_reported(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    d = deployment()
    cluster.run(d, detach=True)
    cluster.destroy(d, purge=True)
    assert [fake_nomad.job(j) for j in ALL_JOB_IDS] == [None] * 5
    assert all(r.query.get("purge") == "true" for r in fake_nomad.requests_to("", "DELETE"))
    fake_nomad.clear_requests()
    assert [(x.job_id, x.outcome) for x in cluster.destroy(d)] == [(j, "absent") for j in ALL_JOB_IDS]
    assert fake_nomad.count("", "DELETE") == 0


def test_destroy_after_stop_then_purge(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment(), detach=True)
    assert [(x.job_id, x.outcome) for x in cluster.destroy(deployment())] == [(j, "stopped") for j in ALL_JOB_IDS]
    assert [(x.job_id, x.outcome) for x in cluster.destroy(deployment(), purge=True)] == [
        (j, "purged") for j in ALL_JOB_IDS]
    assert all(fake_nomad.job(j) is None for j in ALL_JOB_IDS)


# --- the end-to-end test, against the fake ------------------------------------------------


@pytest.mark.parametrize("setup_outcome", ["complete", "failed"])
def test_the_end_to_end_test_passes_against_the_fake(make_fake_nomad: Callable[..., FakeNomad],
                                                    monkeypatch: pytest.MonkeyPatch, setup_outcome: str) -> None:
    """tests/test_e2e_nomad.py runs against a real cluster when NOMAD_ADDR is set; its
    test function, pointed at the fake, shows that it would pass (it creates its own
    secrets, runs with detach=True, and cleans up jobs and variables), whether the setup
    job completes or fails as it does on a dev agent (no database, no setup.php)."""
    import uuid

    from tests.test_e2e_nomad import test_plan_run_plan_status_destroy as e2e

    fake = make_fake_nomad()
    for name in ("NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "NOMAD_CACERT", "NOMAD_CAPATH",
                 "NOMAD_CLIENT_CERT", "NOMAD_CLIENT_KEY", "NOMAD_SKIP_VERIFY", "NOMAD_TLS_SERVER_NAME",
                 "VAULT_ADDR", "VAULT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NOMAD_ADDR", fake.address)

    data = _example("minimal.toml")  # what its `deployment` fixture builds
    data["name"] = f"mn-e2e-{uuid.uuid4().hex[:8]}"
    data["matomo"]["image"] = "matomo:5.10.0"
    d = parse_deployment(data)
    setup_id = d.job_id(Role.setup)
    fake.batch_outcome(setup_id, setup_outcome, failure={
        "Type": "Terminated", "DisplayMessage": "Exit Code: 1", "ExitCode": 1})
    e2e(d)
    jobs = len(list(render(d)))
    assert jobs == 5
    if setup_outcome == "complete":
        assert registered_ids(fake)[0] == setup_id and fake.count(r"^/v1/jobs$", "POST") == jobs
        assert fake.count(r"^/v1/job/", "DELETE") == jobs
    else:
        assert registered_ids(fake) == [setup_id]  # nothing after the failed setup
        assert fake.count(r"^/v1/job/", "DELETE") == 1  # the others were absent
    assert fake.count(r"^/v1/var/", "PUT") == jobs and fake.count(r"^/v1/var/", "DELETE") == jobs
    # detach=True: it never watches the roles; only the setup job is waited for
    assert {r.path for r in fake.requests if r.blocking} == {f"/v1/job/{setup_id}/allocations"}
    assert all(fake.job(r.job_id) is None for r in render(d))

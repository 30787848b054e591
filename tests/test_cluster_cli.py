"""`matomo-nomad plan | run | status | destroy` against the fake Nomad: flags over the
NOMAD_* variables, output (text, JSON, progress on a pipe and on a terminal), exit codes
(plan 0/1/255; the others 0 or the failure's own code), one line per problem, no
traceback, and never the token. Mostly `main()` in-process; a real process where the
terminal or the process boundary matters."""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from matomo_nomad import Cluster, Deployment, NomadClient
from matomo_nomad._cli import main
from tests.fakenomad import FakeNomad
from tests.test_cluster import (  # noqa: F401  (fake_nomad: the fixture, with secrets seeded)
    ALL_JOB_IDS,
    ARCHIVER,
    FOREIGN_META,
    JOB_IDS,
    SERVICES,
    SETUP,
    TOKEN,
    connect,
    deployment,
    deployment_data,
    fake_nomad,
    foreign_job,
    register_directly,
    registered_ids,
    rendered_job,
    seed_secrets,
)
from tests.test_cluster_faults import closed_port

pytest_plugins = ("tests.fakenomad.fixtures",)

REPO = Path(__file__).resolve().parent.parent
NOMAD_VARIABLES = ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "NOMAD_CACERT", "NOMAD_CAPATH",
                   "NOMAD_CLIENT_CERT", "NOMAD_CLIENT_KEY", "NOMAD_SKIP_VERIFY", "NOMAD_TLS_SERVER_NAME",
                   "VAULT_ADDR", "VAULT_TOKEN", "MATOMO_NOMAD_DEBUG")
PROGRESS = re.compile(r"^matomo-[a-z-]+: [a-z]+ \((?:[a-z-]+ \d+/\d+/\d+(?:, )?)+ healthy/placed/desired\)$")
#: What `run` prints on stderr before it runs the setup job.
SETUP_NOTICE = re.compile(rf"^{SETUP}: running first: \S.*$")
NEW_DEPLOYMENT_NOTICE = (f"{SETUP}: running first: a new deployment: "
                         "install or update the database before any role starts")
SETUP_COMPLETED = re.compile(rf"^{SETUP}: completed \(job modify index \d+, evaluation [0-9a-f]{{8}}\)$")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NOMAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def deploy_file(tmp_path: Path) -> Callable[..., str]:
    """A deployment file (the minimal example, deep-updated), as the CLI reads it."""

    def write(**update: Any) -> str:
        path = tmp_path / f"deploy-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(deployment_data(**update)))
        return str(path)

    return write


class Cli:
    """`matomo-nomad ARGS` in this process, with NOMAD_ADDR on a fake."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.monkeypatch, self.capsys = monkeypatch, capsys
        # no pause between the three tries of a read (their count is tested in test_cluster_faults.py)
        monkeypatch.setattr(NomadClient.__init__, "__kwdefaults__",
                            {**NomadClient.__init__.__kwdefaults__, "backoff": 0.0})

    def __call__(self, *argv: str, **env: str) -> tuple[int, str, str]:
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        self.capsys.readouterr()
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        assert TOKEN not in out + err
        return code, out, err


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(monkeypatch, capsys)


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def after_setup_notice(err: str) -> str:
    """stderr after the line `run` prints first when it runs the setup job (asserted)."""
    first, _, rest = err.partition("\n")
    assert SETUP_NOTICE.match(first), err
    return rest


# --- flags over the environment ---------------------------------------------------------------


def test_connection_flags_override_the_nomad_variables(make_fake_nomad: Callable[..., FakeNomad], cli: Cli,
                                                        deploy_file: Callable[..., str]) -> None:
    fake = make_fake_nomad(acl_token=TOKEN, namespaces=("default", "analytics"), region="eu")
    seed_secrets(fake, namespace="analytics")
    env = {"NOMAD_ADDR": f"http://127.0.0.1:{closed_port()}", "NOMAD_TOKEN": "wrong-token",
           "NOMAD_NAMESPACE": "staging", "NOMAD_REGION": "us"}
    file = deploy_file()
    flags = ["--address", fake.address, "--token", TOKEN, "--namespace", "analytics", "--region", "eu"]
    code, out, err = cli("run", file, "--detach", *flags, **env)
    assert code == 0, err
    code, out, err = cli("status", file, *flags, **env)
    assert code == 0 and out.count("in sync with the deployment file") == 5  # the four roles and setup
    assert fake.requests
    for r in fake.requests:
        assert (r.query.get("namespace"), r.query.get("region"), r.token) == ("analytics", "eu", TOKEN), r.target
    # and without the flags, the variables apply: nothing answers at NOMAD_ADDR
    code, out, err = cli("status", file, **env)
    assert code == 12 and "connection refused" in one_error_line(err)


def test_tls_flags_override_the_tls_variables(make_fake_nomad: Callable[..., FakeNomad], nomad_tls_material: Any,
                                              cli: Cli, deploy_file: Callable[..., str]) -> None:
    fake = make_fake_nomad(tls=True, host="127.0.0.2", require_client_cert=True)
    wrong = {"NOMAD_ADDR": fake.address, "NOMAD_CACERT": str(nomad_tls_material.other_ca_cert),
             "NOMAD_TLS_SERVER_NAME": "wrong.example", "NOMAD_CLIENT_CERT": str(nomad_tls_material.other_client_cert),
             "NOMAD_CLIENT_KEY": str(nomad_tls_material.other_client_key)}
    file = deploy_file()
    code, out, err = cli("status", file, **wrong)
    assert code == 15 and one_error_line(err)
    code, out, err = cli("status", file, "--ca-cert", fake.ca_path, "--tls-server-name", "server.global.nomad",
                         "--client-cert", fake.client_cert, "--client-key", fake.client_key, **wrong)
    assert (code, err) == (0, ""), err
    assert out.splitlines() == [f"{job_id}: not registered" for job_id in ALL_JOB_IDS]
    assert {(r.sni, r.client_cert_cn) for r in fake.requests} == {("server.global.nomad", "cli.global.nomad")}


def test_tls_skip_verify_flag(fake_nomad_tls: FakeNomad, cli: Cli, deploy_file: Callable[..., str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    file = deploy_file()
    assert cli("status", file, NOMAD_ADDR=fake_nomad_tls.address)[0] == 15
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli("status", file, "--tls-skip-verify", NOMAD_ADDR=fake_nomad_tls.address)
    assert code == 0 and out.splitlines() == [f"{job_id}: not registered" for job_id in ALL_JOB_IDS]
    # one line of ours, not urllib3's warning per request
    assert err == "warning: TLS certificates are not verified (NOMAD_SKIP_VERIFY / --tls-skip-verify)\n"
    assert not [w for w in caught if "Unverified HTTPS" in str(w.message)]


def test_ca_path_flag(fake_nomad_tls: FakeNomad, cli: Cli, deploy_file: Callable[..., str], tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "cas"
    directory.mkdir()
    (directory / "ca.pem").write_bytes(Path(fake_nomad_tls.ca_path).read_bytes())
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    code, _out, err = cli("status", deploy_file(), "--ca-path", str(directory), NOMAD_ADDR=fake_nomad_tls.address)
    assert (code, err) == (0, "")


# --- plan ---------------------------------------------------------------------------------


def test_plan_exits_1_with_changes_and_0_without(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    code, out, err = cli("plan", file, NOMAD_ADDR=fake_nomad.address)
    assert (code, err) == (1, "")
    assert out.startswith(f"+ job {SETUP} (runs first, and must succeed before the others are registered)\n"
                          "    why: a new deployment: ")
    for job_id in JOB_IDS:
        assert f"+ job {job_id} (new job)\n" in out
    assert "    scheduler: admin: 1 to place\n" in out and "    next launch: " in out
    assert out.endswith("\n4 of 4 job(s) would change after the setup job in namespace default.\n")
    assert fake_nomad.count(r"^/v1/jobs$") == 0

    assert cli("run", file, "--detach")[0] == 0
    code, out, err = cli("plan", file)
    assert (code, err) == (0, "")
    assert re.match(rf"  job {SETUP} \(not run: every job runs after setup [0-9a-f]+\)\n", out), out
    assert out.endswith("\n0 of 4 job(s) would change in namespace default.\n")
    assert all(f"  job {job_id} (no change)\n" in out for job_id in JOB_IDS)


def test_plan_shows_fields_the_template_diff_the_scheduler_and_placement(
        fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    assert cli("run", deploy_file(), NOMAD_ADDR=fake_nomad.address)[0] == 0
    fake_nomad.fail_placement("ingestion", "matomo-ingestion", metrics={"NodesEvaluated": 2,
                                                                        "DimensionExhausted": {"memory": 2}})
    changed = deploy_file(roles={"admin": {"count": 2, "settings": {"General": {"login_allow_logme": 1}}},
                                 "ingestion": {"memory": 768}})
    code, out, err = cli("plan", changed)
    assert (code, err) == (1, "")
    admin = out[out.index("~ job matomo-admin (changes)"):out.index("job matomo-ingestion")]
    assert "    ~ group[admin].Count: '1' => '2'\n" in admin
    assert "    ~ config.ini.php template:\n" in admin
    assert re.search(r"^        \+login_allow_logme = ", admin, re.MULTILINE), admin
    assert "        --- running\n        +++ rendered\n" in admin
    assert "    scheduler: admin: 1 to place, 1 destructive update(s)\n" in admin
    ingestion = out[out.index("~ job matomo-ingestion (changes)"):out.index("job matomo-queue-processor")]
    assert "MemoryMB: '512' => '768'" in ingestion
    assert re.search(r"^    ! group ingestion cannot be placed: 2 node\(s\) evaluated; .*resources exhausted: memory \(2\)$",
                     ingestion, re.MULTILINE), ingestion
    assert "  job matomo-queue-processor (no change)\n" in out
    assert out.endswith("\n2 of 4 job(s) would change in namespace default.\n")


def test_plan_marks_a_job_that_is_not_ours(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    register_directly(fake_nomad, foreign_job("matomo-admin"))
    code, out, _err = cli("plan", deploy_file(), NOMAD_ADDR=fake_nomad.address)
    assert code == 1
    assert "~ job matomo-admin (changes)\n    ! exists without this deployment's mark: run refuses it unless --adopt\n" in out


def test_plan_json_parses_and_matches_the_library(fake_nomad: FakeNomad, cli: Cli,
                                                  deploy_file: Callable[..., str]) -> None:
    assert cli("run", deploy_file(), NOMAD_ADDR=fake_nomad.address)[0] == 0  # deployed: nothing moves any more
    changed = deploy_file(roles={"admin": {"settings": {"General": {"login_allow_logme": 1}}}})
    code, out, err = cli("plan", changed, "--output", "json")
    assert (code, err) == (1, "")
    document = json.loads(out)
    expected = connect(fake_nomad).plan(deployment(roles={"admin": {"settings": {"General": {"login_allow_logme": 1}}}}))
    assert document == json.loads(json.dumps(expected.to_dict()))
    assert [j["change"] for j in document["jobs"]] == ["update", "none", "none", "none"]
    assert any(line.startswith("+login_allow_logme") for line in document["jobs"][0]["template_diff"])
    assert document["jobs"][0]["role"] == "admin" and document["jobs"][0]["job_modify_index"] > 0
    code, out, err = cli("plan", deploy_file(), "--output", "json")
    assert code == 0 and not any(j["change"] != "none" for j in json.loads(out)["jobs"])


def test_plan_exits_255_on_any_error(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    for address in (f"http://127.0.0.1:{closed_port()}", "http://nomad.mn-test.invalid:4646"):
        code, out, err = cli("plan", file, "--address", address)
        assert (code, out) == (255, "") and one_error_line(err)
    fake_nomad.fail(r"/plan$", 500, "rpc error: No cluster leader", method="POST", times=1)
    code, out, err = cli("plan", file, "--output", "json", NOMAD_ADDR=fake_nomad.address)
    assert (code, out) == (255, "") and "No cluster leader" in one_error_line(err)
    code, out, err = cli("plan", file, "--client-cert", "/x/cli.pem")
    assert code == 255 and "NOMAD_CLIENT_KEY" in one_error_line(err)


# --- run ----------------------------------------------------------------------------------


def test_run_prints_one_line_per_job_and_progress_one_line_per_change(
        fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    code, out, err = cli("run", deploy_file(), NOMAD_ADDR=fake_nomad.address)
    assert code == 0, err
    setup_line, *lines = out.splitlines()
    assert SETUP_COMPLETED.match(setup_line), setup_line
    assert len(lines) == 4
    for job_id, line in zip(SERVICES, lines):
        assert re.fullmatch(rf"{job_id}: registered \(job modify index \d+, evaluation [0-9a-f]{{8}}\); "
                            r"deployment successful", line), line
    assert re.fullmatch(rf"{ARCHIVER}: registered \(job modify index \d+\); next launch \d{{4}}-\d\d-\d\dT.*Z",
                        lines[3]), lines[3]
    notice, *progress = err.splitlines()
    assert notice == NEW_DEPLOYMENT_NOTICE
    assert "\x1b" not in err and progress
    assert all(PROGRESS.match(line) for line in progress), progress
    for job_id in SERVICES:
        mine = [line for line in progress if line.startswith(job_id + ":")]
        assert mine and all(a != b for a, b in itertools.pairwise(mine)), mine  # one line per change
        assert "successful" in mine[-1]
    assert not any(line.startswith((ARCHIVER, SETUP)) for line in progress)

    code, out, err = cli("run", deploy_file())
    assert (code, err) == (0, "")  # no setup this time: nothing it prepares for has changed
    again = out.splitlines()
    assert len(again) == 4
    assert again[:3] == [f"{job_id}: unchanged" for job_id in SERVICES]
    assert re.fullmatch(rf"{ARCHIVER}: unchanged; next launch \d{{4}}-\d\d-\d\dT.*Z", again[3]), again[3]
    assert fake_nomad.count(r"^/v1/jobs$", "POST") == 5  # the first run's (setup and four roles), none more


def test_run_detach_returns_without_watching(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    for job_id in SERVICES:
        fake_nomad.progress(job_id, "running")
    started = time.monotonic()
    code, out, err = cli("run", deploy_file(), "--detach", NOMAD_ADDR=fake_nomad.address)
    assert (code, err) == (0, NEW_DEPLOYMENT_NOTICE + "\n")
    assert out.count(": registered") == 4 and "deployment" not in out
    assert SETUP_COMPLETED.match(out.splitlines()[0])  # the setup job is waited for, detached or not
    assert time.monotonic() - started < 2
    assert fake_nomad.count("deployment") == 0
    assert {r.path for r in fake_nomad.requests if r.blocking} == {f"/v1/job/{SETUP}/allocations"}


def test_a_failed_deployment_exits_23_with_the_task_event(fake_nomad: FakeNomad, cli: Cli,
                                                          deploy_file: Callable[..., str]) -> None:
    message = "Failed to pull `registry.example.com/matomo:5.10.0-1`: manifest unknown"
    fake_nomad.progress("matomo-queue-processor", "failed", failure={"Type": "Driver Failure", "DisplayMessage": message})
    code, out, err = cli("run", deploy_file(), NOMAD_ADDR=fake_nomad.address)
    assert code == 23
    [failure] = [line for line in err.splitlines() if "FAILED" in line]
    assert failure.startswith("matomo-queue-processor: FAILED: deployment ") and message in failure
    assert "Failed due to unhealthy allocations" in failure
    assert sorted(line.split(":")[0] for line in out.splitlines()) == sorted(
        set(ALL_JOB_IDS) - {"matomo-queue-processor"})


def test_a_job_changed_since_the_plan_exits_20_and_is_not_overwritten(
        fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("run", deploy_file(), "--detach", NOMAD_ADDR=fake_nomad.address)[0] == 0
    theirs = rendered_job("matomo-admin")
    theirs["Meta"]["edited_by"] = "a colleague"
    original = Cluster._plan

    def plan_then_someone_registers(self: Cluster, target: Deployment) -> Any:
        planned = original(self, target)
        register_directly(fake_nomad, theirs)
        return planned

    monkeypatch.setattr(Cluster, "_plan", plan_then_someone_registers)
    code, out, err = cli("run", deploy_file(roles={"admin": {"count": 2}}), "--detach")
    assert code == 20
    line = one_error_line(err)
    assert line.startswith("matomo-admin: FAILED: ") and "changed since it was planned" in line and "plan again" in line
    assert fake_nomad.job("matomo-admin")["Meta"]["edited_by"] == "a colleague"
    assert out.count("unchanged") == 3


def test_a_job_without_our_mark_exits_22_unless_adopted(fake_nomad: FakeNomad, cli: Cli,
                                                        deploy_file: Callable[..., str]) -> None:
    register_directly(fake_nomad, foreign_job("matomo-ingestion"))
    file = deploy_file()
    code, out, err = cli("run", file, "--detach", NOMAD_ADDR=fake_nomad.address)
    assert code == 22
    line = one_error_line(after_setup_notice(err))
    assert line.startswith("matomo-ingestion: FAILED: a job with this id exists") and "--adopt" in line
    assert fake_nomad.job("matomo-ingestion")["Meta"] == FOREIGN_META
    code, out, err = cli("run", file, "--detach", "--adopt")
    # The first run's setup prepared the database for this rendering; a job that is not
    # ours says nothing about it, so setup does not run again before adopting.
    assert (code, err) == (0, "") and "matomo-ingestion: registered" in out
    assert fake_nomad.job("matomo-ingestion")["Meta"]["matomo_nomad_deployment"] == "matomo"


def test_one_job_refused_is_reported_on_its_own_line_and_a_rerun_converges(
        fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    # skip=1: the setup job's registration goes through, the first role's is refused
    fake_nomad.fail(r"^/v1/jobs$", 500, "rpc error: raft apply failed", method="POST", times=1, skip=1)
    file = deploy_file()
    code, out, err = cli("run", file, "--detach", NOMAD_ADDR=fake_nomad.address)
    assert code == 19
    line = one_error_line(after_setup_notice(err))
    failed = line.split(":")[0]
    assert "FAILED" in line and "raft apply failed" in line and failed in JOB_IDS
    assert sorted(l.split(":")[0] for l in out.splitlines()) == sorted(set(ALL_JOB_IDS) - {failed})
    fake_nomad.clear_requests()
    code, out, err = cli("run", file, "--detach")
    # a role job was absent: the setup job runs first again, then only the refused role is sent
    assert (code, after_setup_notice(err)) == (0, "")
    assert [l.split(" (")[0] for l in out.splitlines() if ": unchanged" not in l] == [
        f"{SETUP}: completed", f"{failed}: registered"]
    assert out.count(": unchanged") == 3
    assert registered_ids(fake_nomad) == [SETUP, failed]


def _read_until_exit(fd: int, process: subprocess.Popen[bytes], limit: float) -> bytes:
    output = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    return output


def test_progress_is_redrawn_in_place_on_a_terminal(fake_nomad: FakeNomad, deploy_file: Callable[..., str]) -> None:
    for job_id in SERVICES:
        fake_nomad.progress(job_id, "successful", interval=0.1)
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in NOMAD_VARIABLES}
    env.update(NOMAD_ADDR=fake_nomad.address, PYTHONPATH=str(REPO), TERM="xterm")
    process = subprocess.Popen([sys.executable, "-m", "matomo_nomad", "run", deploy_file()], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    try:
        terminal = _read_until_exit(master, process, 30).decode()
        out, _ = process.communicate(timeout=30)
    finally:
        os.close(master)
    assert process.returncode == 0, terminal
    assert "\x1b[2K" in terminal  # each line cleared before it is drawn
    ups = re.findall(r"\x1b\[(\d+)F", terminal)  # back up over the block drawn last time
    assert ups and all(1 <= int(n) <= 3 for n in ups) and "3" in ups
    final = terminal.rsplit(f"\x1b[{ups[-1]}F", 1)[1].replace("\r", "")
    block = [line.replace("\x1b[2K", "") for line in final.splitlines()]
    assert len(block) == 3 and all(PROGRESS.match(line) and "successful" in line for line in block), block
    assert sorted(line.split(":")[0] for line in block) == sorted(SERVICES)
    assert out.decode().count("deployment successful") == 3


# --- status and destroy -------------------------------------------------------------------


def test_status_text(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    code, out, err = cli("status", file, NOMAD_ADDR=fake_nomad.address)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{job_id}: not registered" for job_id in ALL_JOB_IDS]
    assert cli("run", file)[0] == 0
    register_directly(fake_nomad, foreign_job("matomo-queue-processor"))  # someone took it over
    code, out, err = cli("status", deploy_file(roles={"ingestion": {"count": 3}}))
    lines = out.splitlines()
    assert lines[0] == ("matomo-admin: running, version 0, in sync with the deployment file; 1 running; "
                        "last deployment successful admin 1/1/1")
    assert lines[1] == ("matomo-ingestion: running, version 0, differs from the deployment file (run `plan`); "
                        "2 running; last deployment successful ingestion 2/2/2")
    assert re.fullmatch(r"matomo-queue-processor: exists \(\w+\) but not registered by this deployment", lines[2])
    assert lines[3] == f"{ARCHIVER}: running, version 0, in sync with the deployment file; no allocations"
    assert lines[4] == f"{SETUP}: dead, version 0, in sync with the deployment file; 1 complete"
    assert len(lines) == 5


def test_status_json(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    assert cli("run", file, NOMAD_ADDR=fake_nomad.address)[0] == 0
    code, out, err = cli("status", file, "--output", "json")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [(r["job_id"], r["role"], r["exists"], r["owned"], r["in_sync"], r["version"]) for r in rows] == [
        (j, role, True, True, True, 0)
        for j, role in zip(ALL_JOB_IDS, ["admin", "ingestion", "queue_processor", "archiver", "setup"], strict=True)]
    assert rows[1]["allocations"] == {"running": 2}
    assert rows[1]["deployment"]["status"] == "successful" and rows[1]["deployment"]["groups"][0]["healthy"] == 2
    assert rows[3]["deployment"] is None
    assert (rows[4]["status"], rows[4]["allocations"], rows[4]["deployment"]) == ("dead", {"complete": 1}, None)
    library = connect(fake_nomad).status(deployment())
    assert [r["status"] for r in rows] == [s.status for s in library]


def test_destroy_refuses_a_job_without_our_mark_and_leaves_it(fake_nomad: FakeNomad, cli: Cli,
                                                               deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    register_directly(fake_nomad, foreign_job("matomo-archiver"))
    cli("run", file, "--detach", NOMAD_ADDR=fake_nomad.address)
    code, out, err = cli("destroy", file)
    assert code == 22
    assert one_error_line(err) == ("matomo-archiver: exists but does not carry deployment 'matomo''s mark; "
                                   "not touching it")
    assert out.splitlines() == [f"{j}: stopped" for j in [*SERVICES, SETUP]]
    assert fake_nomad.job(ARCHIVER)["Meta"] == FOREIGN_META and not fake_nomad.job(ARCHIVER)["Stop"]
    assert fake_nomad.count(rf"^/v1/job/{ARCHIVER}$", "DELETE") == 0


def test_destroy_purge_and_absent(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    file = deploy_file()
    cli("run", file, "--detach", NOMAD_ADDR=fake_nomad.address)
    code, out, err = cli("destroy", file, "--purge")
    assert (code, err) == (0, "") and out.splitlines() == [f"{j}: purged" for j in ALL_JOB_IDS]
    assert all(fake_nomad.job(j) is None for j in ALL_JOB_IDS)
    code, out, err = cli("destroy", file)
    assert (code, err) == (0, "") and out.splitlines() == [f"{j}: absent" for j in ALL_JOB_IDS]


# --- errors: one line, their own exit code, no traceback, no token --------------------------------


def _setups(fake: FakeNomad, acl_fake: FakeNomad, tls_fake: FakeNomad) -> list[tuple[str, list[str], Callable[[], None], int]]:
    """(name, argv after the file, fault to inject, exit code of status/destroy/run)."""
    nothing = lambda: None
    return [
        ("refused", ["--address", f"http://127.0.0.1:{closed_port()}"], nothing, 12),
        ("dns", ["--address", "http://nomad.mn-test.invalid:4646"], nothing, 13),
        ("timeout", ["--address", fake.address, "--timeout", "0.3"], lambda: fake.hang(r"^/v1/job/"), 14),
        ("tls", ["--address", tls_fake.address], nothing, 15),
        ("acl-no-token", ["--address", acl_fake.address], nothing, 16),
        ("acl-wrong-token", ["--address", acl_fake.address, "--token", TOKEN], nothing, 16),
        ("500", ["--address", fake.address], lambda: fake.fail(r"^/v1/job/", 500, f"rpc error {TOKEN}"), 19),
        ("non-json", ["--address", fake.address], lambda: fake.non_json(r"^/v1/job/", body=f"<p>{TOKEN}</p>"), 21),
        ("redirect", ["--address", fake.address], lambda: fake.redirect(r"^/v1/job/"), 21),
        ("drop", ["--address", fake.address], lambda: fake.drop(r"^/v1/job/"), 12),
        ("truncate", ["--address", fake.address], lambda: fake.truncate(r"^/v1/job/"), 12),
        ("config", ["--address", fake.address, "--client-key", "/x/key.pem"], nothing, 11),
    ]


def test_every_failure_is_one_line_with_its_own_exit_code(
        make_fake_nomad: Callable[..., FakeNomad], cli: Cli, deploy_file: Callable[..., str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    fake, acl_fake, tls_fake = make_fake_nomad(), make_fake_nomad(acl_token="the-right-one"), make_fake_nomad(tls=True)
    file = deploy_file()
    codes: set[int] = set()
    for name, argv, inject, expected in _setups(fake, acl_fake, tls_fake):
        fake.clear_faults()
        inject()
        for command in ("status", "destroy", "plan"):
            # the token is in the environment for every case but "no token" (Cli checks it is never shown)
            code, out, err = cli(command, file, *argv, NOMAD_TOKEN="" if name == "acl-no-token" else TOKEN)
            assert code == (255 if command == "plan" else expected), (name, command, code, err)
            assert out == "" and one_error_line(err), (name, command, out, err)
            codes.add(code)
        fake.release_hangs()
    fake.clear_faults()
    assert codes == {11, 12, 13, 14, 15, 16, 19, 21, 255}


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [(404, "job not found", 17), (400, "Job must be specified", 18), (500, "rpc error: No cluster leader", 19)],
)
def test_run_stops_on_a_plan_error_with_its_code(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str],
                                                 status: int, body: str, code: int) -> None:
    fake_nomad.fail(r"/plan$", status, body, method="POST", times=1)
    got, out, err = cli("run", deploy_file(), NOMAD_ADDR=fake_nomad.address)
    assert got == code and out == "" and body in one_error_line(err)
    assert fake_nomad.count(r"^/v1/jobs$") == 0  # nothing registered after a failed plan


def test_a_register_conflict_exits_20(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    # skip=1: the setup job is registered, then a role's registration conflicts
    fake_nomad.fail(r"^/v1/jobs$", 500, "Enforcing job modify index 0: job already exists", method="POST",
                    times=1, skip=1)
    code, _out, err = cli("run", deploy_file(), "--detach", NOMAD_ADDR=fake_nomad.address)
    line = one_error_line(after_setup_notice(err))
    assert code == 20 and "changed since it was planned" in line and line.split(":")[0] in JOB_IDS


def test_timeout_flag(fake_nomad: FakeNomad, cli: Cli, deploy_file: Callable[..., str]) -> None:
    fake_nomad.hang(r"^/v1/job/")
    started = time.monotonic()
    code, _out, err = cli("status", deploy_file(), "--timeout", "0.2", NOMAD_ADDR=fake_nomad.address)
    assert code == 14 and "did not answer in time" in one_error_line(err)
    assert time.monotonic() - started < 3  # three tries of 0.2 s, not of the default 10 s
    fake_nomad.release_hangs()
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(SystemExit) as caught:
            main(["status", "--timeout", bad])
        assert caught.value.code == 64


def test_errors_in_a_real_process(fake_nomad: FakeNomad, deploy_file: Callable[..., str]) -> None:
    """The process boundary: exit status, nothing but the one line, no traceback, no token."""
    env = {k: v for k, v in os.environ.items() if k not in NOMAD_VARIABLES}
    env.update(PYTHONPATH=str(REPO), NOMAD_TOKEN=TOKEN)
    file = deploy_file()
    fake_nomad.fail(r"^/v1/job/", 403, f"ACL token {TOKEN} not found")
    for argv, code in ((["status", file, "--address", "http://nomad.mn-test.invalid:4646"], 13),
                       (["destroy", file, "--address", fake_nomad.address], 16),
                       (["plan", file, "--address", f"http://127.0.0.1:{closed_port()}"], 255)):
        result = subprocess.run([sys.executable, "-m", "matomo_nomad", *argv], check=False, cwd=REPO,
                                env=env, capture_output=True, timeout=60)
        assert result.returncode == code, result.stderr
        assert result.stdout == b""
        assert len(result.stderr.decode().splitlines()) == 1, result.stderr
        assert b"Traceback" not in result.stderr and TOKEN.encode() not in result.stderr + result.stdout

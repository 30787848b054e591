"""The rendered monitoring job (`<name>-monitoring`), run the way Nomad would run it.

The real exporter (Debian's prometheus-redis-exporter, v1.45.0) is started with exactly
the rendered task's `Config["args"]` and with the environment Nomad would give it: the
rendered env template executed by the Go text/template oracle with a stubbed secret
store, read back with the go-envparse oracle (what Nomad parses an `env = true`
template with). It scrapes a real redis-server whose `requirepass` is a hostile
password, holding queues shaped like QueuedTracking's.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from matomo_nomad import Role, render
from matomo_nomad._exporter import HARDENING_FLAGS
from tests.deployments import SECRETS
from tests.hcl_to_api import api_job
from tests.oracles.envparse import build_envparse, parse_env
from tests.oracles.fixtures import ORACLE_BUILD_DIR
from tests.oracles.runner import execute_template, hcl_check, hcl_dump
from tests.redis_server import RedisServer, free_port
from tests.test_cluster import deployment
from tests.test_exporter import exporter_binary, scrape
from tests.test_queue_health import IP, TOKEN, gz, request_set

DB = 2
QUEUES = 3
# Quotes, backslashes, `$`, a template opener, `;`, runs of spaces, a `#` after a space
# (a comment in many env-file readers), non-ASCII: each would break a naive env file,
# shell line or template. Set with CONFIG SET (a length-prefixed bulk string), since
# redis-server's command line would itself unquote it.
PASSWORD = 'p"a\'ss\\w0rd $HOME ${X} {{ .y }};  é漢🙂 #not-a-comment = tail'
LOCK_VALUE = "987654321098"  # a lock token that parses as a number: never to be exported
MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture(scope="session")
def envparse() -> Path:
    return build_envparse(ORACLE_BUILD_DIR)


def monitoring_deployment(port: int, **update: Any) -> Any:
    return deployment(**{
        "redis": {"host": "127.0.0.1", "port": port, "database": DB, "password": True},
        "roles": {"queue_processor": {"queues": QUEUES, "count": QUEUES}},
        "monitoring": {"exporter": {}},
        **update,
    })


@pytest.fixture(scope="module")
def redis(tmp_path_factory) -> Iterator[tuple[RedisServer, Any]]:
    """A redis-server requiring PASSWORD, db 2 filled like QueuedTracking fills it."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        admin = server.client(0)
        admin.config_set("requirepass", PASSWORD)
        admin.close()
        server.password = PASSWORD  # the server's clients from here on
        d = monitoring_deployment(server.port)
        batch = d.roles.queue_processor.requests_per_batch
        db = server.client(DB)
        db.ping()  # authenticated with the hostile password: requirepass took it as it is
        db.rpush("trackingQueueV1", *[gz(request_set(time.time())) for _ in range(batch + 7)])  # above the batch
        db.rpush("trackingQueueV1_2", gz(request_set(time.time())),
                 json.dumps(request_set(time.time())))  # plain JSON (old plugin versions): TOKEN and IP in the clear
        db.rpush("trackingQueueV1_3", *[gz(request_set(time.time())) for _ in range(4)])  # beyond queues = 3
        db.set("QueuedTrackingLock1", LOCK_VALUE, ex=600)
        db.set("QueuedTrackingLock3", LOCK_VALUE, ex=600)  # a lock beyond the configured count
        db.close()
        yield server, d
    finally:
        server.stop()


def rendered_task(d: Any) -> tuple[Any, dict[str, Any]]:
    rendered = render(d)[Role.monitoring]
    return rendered, rendered.job["TaskGroups"][0]["Tasks"][0]


def env_template(task: dict[str, Any]) -> dict[str, Any]:
    (template,) = [t for t in task.get("Templates") or [] if t.get("Envvars")]
    return template


def nomad_environment(go_oracles: Any, envparse: Path, d: Any, password: str) -> dict[str, str]:
    """The variables Nomad sets from the job: its `Env`, then the env template's file
    (executed with the secret store holding `password`) as go-envparse reads it."""
    _, task = rendered_task(d)
    template = env_template(task)
    stores = {"nomad": {f"nomad/jobs/{d.job_id(Role.monitoring)}": {**SECRETS, d.secrets.redis_password_key: password}}}
    text = execute_template(go_oracles["tmplexec"], template["EmbeddedTmpl"], stores)
    return {**(task.get("Env") or {}), **parse_env(envparse, text)}


@contextmanager
def running_exporter(args: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    port = free_port()
    # Only the listen address is added to the rendered arguments: in Nomad the exporter
    # listens on its default :9121 inside the container (the port's `to`), which a test
    # on a shared host cannot take.
    # Debian's exporter (v1.45) predates the two hardening flags, which the pinned image
    # has (v1.83.0+, see _exporter.py): they are checked to be there, then left out here.
    assert list(args[-2:]) == list(HARDENING_FLAGS)
    command = [exporter_binary(), *args[:-2], f"--web.listen-address=127.0.0.1:{port}"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env={"PATH": MINIMAL_PATH, **env},
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def samples(body: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in body.splitlines() if line and not line.startswith("#")}


def http_get(port: int, path: str, process: subprocess.Popen) -> tuple[int, str]:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the exporter did not answer (exit {process.poll()})")
            time.sleep(0.1)


def test_the_rendered_job_exports_the_queues_with_the_password_from_the_template(
        redis, go_oracles, envparse, tmp_path) -> None:
    server, d = redis
    rendered, task = rendered_task(d)
    args = task["Config"]["args"]
    assert not any(a.startswith("--web.listen-address") for a in args)  # the one we add is the only one
    assert rendered.job["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["To"] == 9121  # the exporter's default
    env = nomad_environment(go_oracles, envparse, d, PASSWORD)
    assert env == {"REDIS_PASSWORD": PASSWORD}, "go-envparse reads back exactly the secret"
    log = tmp_path / "exporter.log"
    with running_exporter(args, env, log) as (port, process):
        body = scrape(port, process)
    found = samples(body)
    assert found["redis_up"] == 1, "the exporter authenticated: the password reached it through the template"
    client = server.client(DB)
    try:
        sizes = {f'redis_key_size{{db="db{DB}",key="{key}"}}': client.llen(key)
                 for key in ("trackingQueueV1", "trackingQueueV1_1", "trackingQueueV1_2")}
        assert sizes[f'redis_key_size{{db="db{DB}",key="trackingQueueV1"}}'] > d.roles.queue_processor.requests_per_batch
    finally:
        client.close()
    assert {name: value for name, value in found.items() if name.startswith("redis_key_size{")} == sizes
    assert {name: value for name, value in found.items() if name.startswith("redis_keys_count{")} == {
        f'redis_keys_count{{db="db{DB}",key="QueuedTrackingLock0"}}': 0,
        f'redis_keys_count{{db="db{DB}",key="QueuedTrackingLock1"}}': 1,
        f'redis_keys_count{{db="db{DB}",key="QueuedTrackingLock2"}}': 0,
    }
    assert "trackingQueueV1_3" not in body and "QueuedTrackingLock3" not in body
    assert "redis_key_value" not in body and LOCK_VALUE not in body
    assert TOKEN not in body and IP not in body
    assert PASSWORD not in body and "漢" not in body and "not-a-comment" not in body
    logged = log.read_text(errors="replace")
    assert PASSWORD not in logged and "not-a-comment" not in logged


def test_without_the_password_the_same_exporter_is_refused(redis, tmp_path) -> None:
    # The negative control: the same rendered args, no REDIS_PASSWORD. redis_up drops to 0,
    # so the test above's redis_up 1 is the template's doing.
    _, d = redis
    _, task = rendered_task(d)
    with running_exporter(task["Config"]["args"], dict(task.get("Env") or {}), tmp_path / "exporter.log") as (port, process):
        found = samples(scrape(port, process))
    assert found["redis_up"] == 0
    assert not any(name.startswith(("redis_key_size{", "redis_keys_count{")) for name in found)


def test_the_rendered_health_check_answers_on_the_real_exporter(redis, go_oracles, envparse, tmp_path) -> None:
    _, d = redis
    rendered, task = rendered_task(d)
    group = rendered.job["TaskGroups"][0]
    (service,) = group["Services"]
    (check,) = service["Checks"]
    assert check["Type"] == "http" and check["Path"] == "/health"
    # The check goes to the service's port, the one mapped to the exporter's listen port.
    (port_block,) = group["Networks"][0]["DynamicPorts"]
    assert service["PortLabel"] == port_block["Label"] and task["Config"]["ports"] == [port_block["Label"]]
    env = nomad_environment(go_oracles, envparse, d, PASSWORD)
    with running_exporter(task["Config"]["args"], env, tmp_path / "exporter.log") as (port, process):
        status, body = http_get(port, check["Path"], process)
        _, other = http_get(port, "/no-such-path-for-the-control", process)
    assert status == 200
    # v1.45 answers 200 on any path (its index page is the catch-all), so the status alone
    # would not show the path is right: the health handler's own body does.
    assert body == "ok" and other != "ok"


@pytest.mark.parametrize("extra_env", [{}, {"REDIS_EXPORTER_INCL_SYSTEM_METRICS": "false"}], ids=["no-env", "plain-env"])
def test_the_job_holds_no_secret_and_the_password_only_comes_through_the_template(
        go_oracles, tmp_path, extra_env) -> None:
    d = monitoring_deployment(6379, monitoring={"exporter": {"env": extra_env}})
    rendered, task = rendered_task(d)
    for value in [PASSWORD, *SECRETS.values()]:
        if len(value) > 3:
            assert value not in rendered.hcl and value not in rendered.api_json
    assert "REDIS_PASSWORD" not in (task.get("Env") or {})
    assert (task.get("Env") or {}) == extra_env
    assert not any("password" in a.lower() for a in task["Config"]["args"])
    template = env_template(task)
    assert template["DestPath"].startswith("secrets/") and template["ChangeMode"] == "restart"
    assert f".{d.secrets.redis_password_key}.Value" in template["EmbeddedTmpl"]
    # The HCL, read by HashiCorp's parser, is the same job: no REDIS_PASSWORD in its env either.
    path = tmp_path / "monitoring.nomad.hcl"
    path.write_text(rendered.hcl, encoding="utf-8")
    hcl_check(go_oracles["hclcheck"], path)
    from_hcl = api_job(hcl_dump(go_oracles["hclcheck"], path))
    assert from_hcl == json.loads(rendered.api_json)["Job"]
    assert "REDIS_PASSWORD" not in (from_hcl["TaskGroups"][0]["Tasks"][0].get("Env") or {})
    # The executed template writes the variable, so the exporter gets it only from there.
    stores = {"nomad": {f"nomad/jobs/{d.job_id(Role.monitoring)}": {**SECRETS, "redis_password": PASSWORD}}}
    assert execute_template(go_oracles["tmplexec"], template["EmbeddedTmpl"], stores).startswith("REDIS_PASSWORD=\"")

"""`matomo-nomad status --redis` against a real redis-server holding QueuedTracking's queues:
lists at the plugin's key names filled with gzcompress'd (zlib) JSON request sets, plain
JSON for old plugin versions, lock keys with TTLs, and the eviction policy set per test."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from matomo_nomad import load_deployment
from matomo_nomad._cli import main
from matomo_nomad._queue_health import (
    EXIT_UNREACHABLE,
    EXIT_WARNINGS,
    RedisCheckError,
    check,
    lock_key,
    queue_key,
    request_time,
    run,
)
from tests.redis_server import RedisServer, free_port

DB = 3  # not 0: the check must read redis.database
TOKEN = "c0ffee5ecrettokenauth0123456789ab"
IP = "203.0.113.77"
PASSWORD = "s3cr&t pa$$word;{{"
# Every field of a request set but `time`, and its values ("requests" and "env" are English words too).
PAYLOAD_BITS = (TOKEN, IP, "tokenAuth", '"requests"', '"env"', "idsite", "cip", "token_auth", "payload.example",
                "UA-Payload-Marker")


def request_set(at: float, n: int = 1) -> dict:
    """A request set as QueuedTracking stores it (RequestSet::getState)."""
    return {
        "requests": [{"idsite": "1", "rec": "1", "cip": IP, "token_auth": TOKEN, "url": "https://payload.example/"}] * n,
        "env": {"server": {"REMOTE_ADDR": IP, "HTTP_USER_AGENT": "UA-Payload-Marker"}},
        "tokenAuth": TOKEN,
        "time": at,
    }


def gz(data: dict) -> bytes:
    return zlib.compress(json.dumps(data).encode())  # PHP gzcompress: zlib format


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = RedisServer(tmp_path_factory.mktemp("redis"))
    yield s
    s.stop()


@pytest.fixture
def redis_db(server):
    client = server.client()
    client.flushall()
    client.config_set("maxmemory", 0)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_resetstat()
    db = server.client(DB)
    yield db
    db.close()
    client.close()


def deployment_file(tmp_path: Path, redis_table: str, queues: int = 3, batch: int = 25, extra: str = "") -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(f"""
name = "matomo"
hosts = ["analytics.example.com"]
[matomo]
image = "registry.example.com/matomo:5.10.0-1"
[database]
host = "mysql.service.consul"
collation = "utf8mb4_general_ci"
{redis_table}
[roles.queue_processor]
count = {queues}
queues = {queues}
requests_per_batch = {batch}
{extra}
""")
    return path


def plain(server: RedisServer, password: bool = False) -> str:
    return f'[redis]\nhost = "127.0.0.1"\nport = {server.port}\ndatabase = {DB}\npassword = {str(password).lower()}\n'


def status(tmp_path, path: Path, *flags: str, env: dict | None = None, stdin: str = "") -> tuple[int, str, str]:
    """Run the real CLI in a subprocess: its whole output, both streams."""
    import os

    environment = {k: v for k, v in os.environ.items() if k != "MATOMO_REDIS_PASSWORD"}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "matomo_nomad", "status", str(path), "--redis", *flags],
        input=stdin, capture_output=True, text=True, env=environment, timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return done.returncode, done.stdout, done.stderr


def assert_no_payload(*texts: str, password: str | None = None) -> None:
    for text in texts:
        for bit in PAYLOAD_BITS:
            assert bit not in text
        if password:
            assert password not in text


def fill(db, now: float) -> None:
    # queue 0: 30 requests (above the batch), oldest 15 minutes old, no lock: unworked, old.
    db.rpush(queue_key(0), *[gz(request_set(now - 900 + i)) for i in range(30)])
    # queue 1: 5 requests in plain JSON (older plugin versions), oldest 42 s, locked (TTL 60 s).
    db.rpush(queue_key(1), *[json.dumps(request_set(now - 42 + i)).encode() for i in range(5)])
    db.set(lock_key(1), "a1b2c3d4e5f6", ex=60)
    # queue 2: empty, no lock.
    # a decoy in database 0 at queue 0's key: the check reads redis.database only.


def test_key_names():
    assert [queue_key(i) for i in range(3)] == ["trackingQueueV1", "trackingQueueV1_1", "trackingQueueV1_2"]
    assert lock_key(0) == "QueuedTrackingLock0" and lock_key(12) == "QueuedTrackingLock12"


@pytest.mark.parametrize("encode", [gz, lambda d: json.dumps(d).encode()])
def test_request_time_reads_only_time(encode):
    assert request_time(encode(request_set(1700000000.5))) == 1700000000.5
    assert request_time(encode({"time": "1700000000"})) == 1700000000.0


@pytest.mark.parametrize("item", [None, b"", b"\x00garbage", zlib.compress(b"not json " + TOKEN.encode()),
                                  gz({"requests": [], "time": "soon"}), gz({"time": True}), b"[1, 2]",
                                  b'{"time": NaN}'])
def test_request_time_unreadable_items(item):
    assert request_time(item) is None


def test_table_per_queue_exact(tmp_path, server, redis_db):
    now = time.time()
    fill(redis_db, now)
    server.client(0).rpush(queue_key(0), gz(request_set(now - 99999)))
    code, out, err = status(tmp_path, deployment_file(tmp_path, plain(server)), "--interval", "0")
    assert code == EXIT_WARNINGS, (out, err)
    assert_no_payload(out, err)
    lines = out.splitlines()
    assert lines[0].startswith(f"Redis 127.0.0.1:{server.port} database {DB} (Redis 7.")
    assert "maxmemory-policy noeviction, 0 evicted keys" in lines[0]
    assert lines[1].split() == ["queue", "key", "backlog", "change", "oldest", "lock"]
    row0, row1, row2 = (line.split(None, 5) for line in lines[2:5])
    assert row0[:4] == ["0", "trackingQueueV1", "30", "-"] and row0[4] in ("15m00s", "15m01s") and row0[5] == "free"
    assert row1[:4] == ["1", "trackingQueueV1_1", "5", "-"] and row1[4] in ("42s", "43s")
    assert row1[5] in ("held (expires in 60s)", "held (expires in 59s)")
    assert row2 == ["2", "trackingQueueV1_2", "0", "-", "-", "free"]
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "queue 0 (trackingQueueV1) holds 30 requests (batch size 25) and no processor held QueuedTrackingLock0" in warnings[0]
    assert warnings[0].endswith("[queue-unworked]") and "fix: " in warnings[0]
    assert "oldest request waits for 15m0" in warnings[1] and warnings[1].endswith("[request-old]")


def test_json_output_exact(tmp_path, server, redis_db):
    now = time.time()
    fill(redis_db, now)
    code, out, err = status(tmp_path, deployment_file(tmp_path, plain(server)), "--interval", "0", "--output", "json")
    assert code == EXIT_WARNINGS
    assert_no_payload(out, err)
    report = json.loads(out)
    assert report["healthy"] is False and report["batch_size"] == 25
    assert report["redis"]["database"] == DB and report["redis"]["maxmemory_policy"] == "noeviction"
    q0, q1, q2 = report["queues"]
    assert (q0["backlog"], q0["locked"], q0["lock_ttl_seconds"], q0["lock_key"]) == (30, False, None, "QueuedTrackingLock0")
    assert q0["oldest_time"] == pytest.approx(now - 900) and 899 <= q0["oldest_age_seconds"] <= 902
    assert (q1["backlog"], q1["locked"]) == (5, True) and 58 <= q1["lock_ttl_seconds"] <= 60
    assert 41 <= q1["oldest_age_seconds"] <= 44
    assert (q2["backlog"], q2["oldest_time"], q2["oldest_age_seconds"], q2["locked"]) == (0, None, None, False)
    assert [(w["rule"], w["queue"]) for w in report["warnings"]] == [("queue-unworked", 0), ("request-old", 0)]
    assert all(w["fix"] for w in report["warnings"])


def test_healthy_queue_exits_zero(tmp_path, server, redis_db):
    now = time.time()
    redis_db.rpush(queue_key(0), *[gz(request_set(now - 3)) for _ in range(24)])  # below the batch: no lock needed
    redis_db.rpush(queue_key(1), *[gz(request_set(now - 5)) for _ in range(100)])
    redis_db.set(lock_key(1), "x", ex=60)
    code, out, err = status(tmp_path, deployment_file(tmp_path, plain(server)), "--interval", "0")
    assert code == 0, out
    assert out.endswith("queue healthy\n") and "warning" not in out + err


def test_eviction_policy_warns(tmp_path, server, redis_db):
    server.client().config_set("maxmemory-policy", "allkeys-lru")
    code, out, _ = status(tmp_path, deployment_file(tmp_path, plain(server)), "--interval", "0", "--output", "json")
    assert code == EXIT_WARNINGS
    (warning,) = json.loads(out)["warnings"]
    assert warning["rule"] == "redis-evicts" and "allkeys-lru" in warning["message"]
    assert "noeviction" in warning["fix"]


def test_evictions_and_memory(tmp_path, server, redis_db):
    admin = server.client()
    admin.config_set("maxmemory", 3 * 1024 * 1024)
    admin.config_set("maxmemory-policy", "allkeys-random")
    for i in range(200):
        admin.set(f"filler{i}", b"x" * 50_000)
    assert int(admin.info("stats")["evicted_keys"]) > 0
    admin.config_set("maxmemory-policy", "noeviction")
    code, out, _ = status(tmp_path, deployment_file(tmp_path, plain(server)), "--interval", "0", "--output", "json")
    report = json.loads(out)
    assert code == EXIT_WARNINGS
    assert [w["rule"] for w in report["warnings"]] == ["redis-evicted", "redis-memory"]
    assert report["redis"]["evicted_keys"] > 0 and report["redis"]["maxmemory"] == 3 * 1024 * 1024


def test_memory_ratio_from_the_deployment(tmp_path, server, redis_db):
    admin = server.client()
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used * 2)  # about 50 %
    path = deployment_file(tmp_path, plain(server), extra="[monitoring]\nredis_memory_ratio = 0.4\n")
    code, out, _ = status(tmp_path, path, "--interval", "0")
    assert code == EXIT_WARNINGS and "[redis-memory]" in out and "monitoring.redis_memory_ratio is 0.4" in out
    path = deployment_file(tmp_path, plain(server), extra="[monitoring]\nredis_memory_ratio = 0.9\n")
    assert status(tmp_path, path, "--interval", "0")[0] == 0


def test_stranded_queue_above_the_count(tmp_path, server, redis_db):
    redis_db.rpush("trackingQueueV1_5", *[gz(request_set(time.time())) for _ in range(3)])
    redis_db.rpush("trackingQueueV1_2", gz(request_set(time.time())))  # configured: not stranded
    redis_db.set("trackingQueueV1_9", "a string, not a queue")
    code, out, _ = status(tmp_path, deployment_file(tmp_path, plain(server)), "--interval", "0", "--output", "json")
    report = json.loads(out)
    assert code == EXIT_WARNINGS and report["stranded_queues"] == {"trackingQueueV1_5": 3}
    assert [w["rule"] for w in report["warnings"]] == ["queue-stranded"]


def test_unreadable_item_is_never_shown(tmp_path, server, redis_db):
    redis_db.rpush(queue_key(0), b"\x78\x9c garbage " + TOKEN.encode(), gz(request_set(time.time())))
    code, out, err = status(tmp_path, deployment_file(tmp_path, plain(server)), "--interval", "0", "--output", "json")
    assert code == 0 and json.loads(out)["queues"][0]["oldest_time"] is None
    assert_no_payload(out, err)


# --- two samples -------------------------------------------------------------------------------


def _deployment(tmp_path, server, **kwargs):
    return load_deployment(deployment_file(tmp_path, plain(server), **kwargs))


def test_growth_over_the_interval(tmp_path, server, redis_db):
    now = time.time()
    redis_db.rpush(queue_key(2), *[gz(request_set(now)) for _ in range(3)])

    def sleep(seconds):
        assert seconds == 1.5
        redis_db.rpush(queue_key(2), *[gz(request_set(now)) for _ in range(10)])
        redis_db.rpush(queue_key(0), gz(request_set(now)))

    report = check(_deployment(tmp_path, server), None, interval=1.5, sleep=sleep)
    assert [q.backlog_change for q in report.queues] == [1, 0, 10]
    assert [q.backlog for q in report.queues] == [1, 0, 13]


def test_lock_seen_in_either_sample_counts_as_worked(tmp_path, server, redis_db):
    now = time.time()
    redis_db.rpush(queue_key(0), *[gz(request_set(now)) for _ in range(40)])
    report = check(_deployment(tmp_path, server), None, interval=1,
                   sleep=lambda s: redis_db.set(lock_key(0), "x", ex=60))
    assert report.queues[0].locked and report.healthy


def test_stuck_queue(tmp_path, server, redis_db):
    now = time.time()
    redis_db.rpush(queue_key(1), *[gz(request_set(now - 30 + i)) for i in range(40)])
    redis_db.set(lock_key(1), "x", ex=60)
    report = check(_deployment(tmp_path, server), None, interval=1, sleep=lambda s: None)
    assert [(w.rule, w.queue) for w in report.warnings] == [("queue-stuck", 1)]
    # The head moved (a batch was removed): worked, not stuck, even though more arrived.
    report = check(_deployment(tmp_path, server), None, interval=1,
                   sleep=lambda s: (redis_db.ltrim(queue_key(1), 25, -1),
                                    redis_db.rpush(queue_key(1), *[gz(request_set(now))] * 30)))
    assert report.healthy and report.queues[1].backlog_change == 5


def test_default_interval_is_the_processor_sleep_plus_two(tmp_path, server, redis_db, monkeypatch):
    seen = []
    monkeypatch.setattr(time, "sleep", seen.append)
    args = SimpleNamespace(redis_password_stdin=False, interval=None, output="text", timeout=None)
    out = io.StringIO()
    assert run(args, _deployment(tmp_path, server, extra='sleep = "7s"'), stdout=out) == 0
    assert seen == [9.0]


# --- password, sentinel, failures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    s = RedisServer(tmp_path_factory.mktemp("redis-pw"), password=PASSWORD)
    yield s
    s.stop()


def test_password_from_the_environment_and_stdin(tmp_path, locked_server):
    db = locked_server.client(DB)
    db.flushdb()
    db.rpush(queue_key(0), gz(request_set(time.time())))
    path = deployment_file(tmp_path, plain(locked_server, password=True))
    code, out, err = status(tmp_path, path, "--interval", "0", env={"MATOMO_REDIS_PASSWORD": PASSWORD})
    assert code == 0, err
    assert_no_payload(out, err, password=PASSWORD)
    code, out, err = status(tmp_path, path, "--interval", "0", "--redis-password-stdin", "--output", "json",
                            stdin=PASSWORD + "\n")
    assert code == 0 and json.loads(out)["queues"][0]["backlog"] == 1
    assert_no_payload(out, err, password=PASSWORD)


def test_password_missing_or_wrong(tmp_path, locked_server):
    path = deployment_file(tmp_path, plain(locked_server, password=True))
    code, out, err = status(tmp_path, path, "--interval", "0")
    assert code == EXIT_UNREACHABLE and out == ""
    assert "MATOMO_REDIS_PASSWORD" in err and "--redis-password-stdin" in err
    wrong = PASSWORD + "-wrong"
    code, out, err = status(tmp_path, path, "--interval", "0", env={"MATOMO_REDIS_PASSWORD": wrong})
    assert code == EXIT_UNREACHABLE and "refused the password" in err
    assert_no_payload(out, err, password=wrong)
    # The file says no password, the server wants one.
    code, out, err = status(tmp_path, deployment_file(tmp_path, plain(locked_server)), "--interval", "0")
    assert code == EXIT_UNREACHABLE and "requires a password" in err


def test_unreachable_redis(tmp_path):
    table = f'[redis]\nhost = "127.0.0.1"\nport = {free_port()}\n'
    code, out, err = status(tmp_path, deployment_file(tmp_path, table), "--interval", "0", "--timeout", "2")
    assert code == EXIT_UNREACHABLE and out == ""
    assert "cannot read the queue's Redis at 127.0.0.1:" in err and err.count("\n") == 1


def test_sentinel_names_the_master(tmp_path, server, redis_db):
    sentinel = RedisServer(tmp_path / "sentinel", sentinel_for=("127.0.0.1", server.port, "queue-master"))
    try:
        redis_db.rpush(queue_key(0), *[gz(request_set(time.time())) for _ in range(7)])
        down = free_port()
        table = (f'[redis]\ndatabase = {DB}\n[redis.sentinel]\nmaster = "queue-master"\n'
                 f'addresses = ["127.0.0.1:{down}", "127.0.0.1:{sentinel.port}"]\n')
        code, out, err = status(tmp_path, deployment_file(tmp_path, table), "--interval", "0", "--output", "json",
                                "--timeout", "2")
        assert code == 0, err
        report = json.loads(out)
        assert report["redis"]["address"] == f"127.0.0.1:{server.port}" and report["queues"][0]["backlog"] == 7
        table = table.replace('master = "queue-master"', 'master = "other"')
        code, out, err = status(tmp_path, deployment_file(tmp_path, table), "--interval", "0", "--timeout", "2")
        assert code == EXIT_UNREACHABLE and "knows no master named 'other'" in err
    finally:
        sentinel.stop()


def test_check_refuses_without_password_before_connecting(tmp_path, locked_server):
    with pytest.raises(RedisCheckError):
        check(load_deployment(deployment_file(tmp_path, plain(locked_server, password=True))), None, interval=0)


def test_usage_errors_exit_64():
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--redis", "--interval", "-1"])
    assert exit_.value.code == 64


def test_help_names_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--redis" in text and "30 warnings" in text and "31 Redis unreadable" in text
    assert "64 the redis package not installed" in text
    # the description names the three modes, and --timeout its other default with --redis
    description = text[text.index("[file]") + len("[file]"):text.index("positional arguments")]
    assert all(flag in description for flag in ("--health", "--check", "--redis"))
    assert "(default 10; blocking queries add their wait; with --redis: default 5," in text


def test_a_missing_redis_package_is_a_usage_error_not_an_outage(tmp_path, monkeypatch, capsys):
    """An install problem must not page cron monitoring as "Redis down" (31)."""
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` raises ImportError
    path = deployment_file(tmp_path, '[redis]\nhost = "127.0.0.1"\nport = 1\n')
    assert main(["status", str(path), "--redis", "--interval", "0"]) == 64
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("status --redis needs the redis Python package, which is not installed: "
                            "pip install 'matomo-nomad[redis]'\n")


@pytest.mark.parametrize("flags", [["--check"], ["--health"], ["--health", "--check"]])
@pytest.mark.parametrize("redis_flag", ["--redis", "--redis-password-stdin"])
def test_nomad_only_flags_are_refused_with_redis(tmp_path, capsys, flags, redis_flag):
    """--check/--health read the Nomad jobs: with --redis they would be silently ignored."""
    path = deployment_file(tmp_path, '[redis]\nhost = "127.0.0.1"\nport = 1\n')
    assert main(["status", str(path), redis_flag, *flags, "--interval", "0"]) == 64
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"matomo-nomad status: {' and '.join(flags)} read")
    assert "not apply with --redis" in captured.err


def test_interval_without_redis_is_refused(tmp_path, capsys):
    """--interval only spaces --redis's samples: without --redis it would be silently ignored."""
    path = deployment_file(tmp_path, '[redis]\nhost = "127.0.0.1"\nport = 1\n')
    assert main(["status", str(path), "--interval", "5"]) == 64
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        "matomo-nomad status: --interval sets the time between --redis's two samples and does not apply "
        "without --redis (add --redis, or leave --interval out)\n")


def test_old_partial_batch_points_at_the_plugin_version(tmp_path, server, redis_db):
    redis_db.rpush(queue_key(1), gz(request_set(time.time() - 3600)))
    code, out, _ = status(tmp_path, deployment_file(tmp_path, plain(server)), "--interval", "0", "--output", "json")
    (warning,) = json.loads(out)["warnings"]
    assert code == EXIT_WARNINGS and (warning["rule"], warning["queue"]) == ("request-old", 1)
    assert "QueuedTracking 5.1" in warning["fix"]


def test_redis_is_imported_only_by_status_redis():
    code = (
        "import sys\n"
        "from matomo_nomad._cli import main\n"
        "assert main(['render']) == 0 and main(['validate']) == 0 and main(['alerts']) == 0\n"
        "sys.stderr.write(repr(sorted(m for m in sys.modules if m.split('.')[0] == 'redis')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0 and done.stderr.splitlines()[-1] == "[]", done.stderr

"""The real Redis exporter (Debian prometheus-redis-exporter) started with the flags we
derive, scraped against a real redis-server: the series the alerting rules read are
there, for exactly our queues, and no key value (lock token, queued payload) is."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request

import pytest
import yaml

from matomo_nomad._alerts import rules_yaml
from matomo_nomad._exporter import exporter_flags
from tests.redis_server import RedisServer, free_port
from tests.test_alerts import deployment
from tests.test_queue_health import IP, TOKEN, gz, request_set


def exporter_binary() -> str:
    path = shutil.which("prometheus-redis-exporter")
    if path is None:
        pytest.fail("prometheus-redis-exporter is not installed (apt-get install prometheus-redis-exporter)")
    return path


def scrape(port: int, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                return answer.read().decode()
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the exporter did not answer (exit {process.poll()})")
            time.sleep(0.1)


def test_flags():
    d = deployment(**{"redis.database": 2, "roles.queue_processor": {"queues": 3, "count": 3}})
    assert exporter_flags(d) == [
        "--check-single-keys=db2=trackingQueueV1,db2=trackingQueueV1_1,db2=trackingQueueV1_2",
        "--count-keys=db2=QueuedTrackingLock0,db2=QueuedTrackingLock1,db2=QueuedTrackingLock2",
    ]


def test_real_exporter_exports_what_the_rules_read(tmp_path):
    server = RedisServer(tmp_path / "redis")
    exporter = None
    try:
        db = server.client(2)
        db.rpush("trackingQueueV1", *[gz(request_set(time.time())) for _ in range(30)])
        db.rpush("trackingQueueV1_2", gz(request_set(time.time())))
        db.rpush("trackingQueueV1_7", gz(request_set(time.time())))  # not ours: not exported
        db.set("QueuedTrackingLock1", "123456789012", ex=60)  # a lock token that parses as a number
        d = deployment(**{"redis.database": 2, "roles.queue_processor": {"queues": 3, "count": 3}})
        port = free_port()
        exporter = subprocess.Popen(
            [exporter_binary(), f"--redis.addr=redis://127.0.0.1:{server.port}",
             f"--web.listen-address=127.0.0.1:{port}", *exporter_flags(d)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        body = scrape(port, exporter)
        samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                   for line in body.splitlines() if line and not line.startswith("#")}
        assert samples['redis_key_size{db="db2",key="trackingQueueV1"}'] == 30
        assert samples['redis_key_size{db="db2",key="trackingQueueV1_1"}'] == 0
        assert samples['redis_key_size{db="db2",key="trackingQueueV1_2"}'] == 1
        assert samples['redis_keys_count{db="db2",key="QueuedTrackingLock0"}'] == 0
        assert samples['redis_keys_count{db="db2",key="QueuedTrackingLock1"}'] == 1
        assert samples['redis_keys_count{db="db2",key="QueuedTrackingLock2"}'] == 0
        assert not any("trackingQueueV1_7" in name for name in samples)
        assert "redis_key_value" not in body and "123456789012" not in body
        assert TOKEN not in body and IP not in body
        # Every metric name the rules read (but Nomad's) is one this exporter writes.
        exported = {name.split("{")[0] for name in samples}
        assert 'maxmemory_policy="noeviction"' in body
        text = "\n".join(r["expr"] for g in yaml.safe_load(rules_yaml(d))["groups"] for r in g["rules"])
        used = set(re.findall(r"\b(redis_[a-z_]+)", text))
        assert len(used) == 7 and used <= exported, used - exported
        assert samples["redis_up"] == 1
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(10)
        server.stop()

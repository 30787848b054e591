"""`matomo-nomad alerts`: the rule file's structure, the schedule gap it is computed from,
and Debian's promtool (package prometheus): `check rules`, and `test rules` with synthetic
series showing each alert fires when it should and stays quiet when it should not."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from datetime import timedelta

import pytest
import yaml

from matomo_nomad import parse_deployment
from matomo_nomad._alerts import CronUnsupported, cron_longest_gap, rules, rules_yaml
from matomo_nomad._cli import main
from matomo_nomad._errors import DeploymentError
from tests.deployments import _example


def deployment(**changes):
    data = copy.deepcopy(_example("minimal.toml"))
    for path, value in changes.items():
        node = data
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return parse_deployment(data)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (apt-get install prometheus): the alert tests need it")
    return path


# --- the schedule's longest gap ----------------------------------------------------------------


@pytest.mark.parametrize(("cron", "zone", "gap"), [
    ("5 * * * *", "UTC", timedelta(hours=1)),
    ("@hourly", "UTC", timedelta(hours=1)),
    ("0 3 * * *", "UTC", timedelta(days=1)),
    ("0 3 * * *", "Europe/Berlin", timedelta(hours=25)),  # the autumn night is an hour longer
    ("*/15 9-17 * * mon-fri", "UTC", timedelta(hours=63, minutes=15)),  # Friday 17:45 to Monday 09:00
    ("0 0 1,15 * *", "UTC", timedelta(days=17)),
    ("0 0 L * *", "UTC", timedelta(days=31)),
    ("0 0 * * 5#3", "UTC", timedelta(days=35)),
    ("0 0 13 * 5", "UTC", timedelta(days=7)),  # day of month OR day of week
    ("@weekly", "UTC", timedelta(days=7)),
    ("0 0 29 2 *", "UTC", timedelta(days=1461)),
    ("30 1 * jan,jul *", "UTC", timedelta(days=154)),  # Jul 31 01:30 to Jan 1 01:30
])
def test_longest_gap(cron, zone, gap):
    assert cron_longest_gap(cron, zone) == gap


@pytest.mark.parametrize("cron", ["0 0 15W * *", "0 0 31 2 *", "61 * * * *"])
def test_unsupported_schedules_are_refused(cron):
    with pytest.raises(CronUnsupported):
        cron_longest_gap(cron, "UTC")
    with pytest.raises(DeploymentError) as error:
        rules(deployment(**{"roles.archiver.schedule.cron": cron}))
    assert error.value.problems[0].location == "roles.archiver.schedule.cron"


# --- structure -------------------------------------------------------------------------------------


def all_rules(doc):
    return {r["alert"]: r for group in doc["groups"] for r in group["rules"]}


def test_structure_and_defaults():
    doc = yaml.safe_load(rules_yaml(deployment()))
    assert set(doc) == {"groups"}
    assert [g["name"] for g in doc["groups"]] == ["matomo-queue", "matomo-nomad"]
    found = all_rules(doc)
    # One queue: no queue can fall behind the others.
    assert set(found) == {
        "MatomoQueueBacklogGrowing", "MatomoQueueUnworked", "MatomoQueueExporterMissing", "MatomoRedisDown", "MatomoRedisEvicting", "MatomoRedisEvictionPolicy",
        "MatomoRedisNearMaxmemory", "MatomoArchiverLaunchFailed", "MatomoArchiveOverdue", "MatomoRestartsClimbing",
    }
    for rule in found.values():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["labels"]["deployment"] == "matomo"
        assert set(rule["annotations"]) == {"summary", "runbook"}
        assert rule["annotations"]["runbook"].strip() and "\n" not in rule["annotations"]["runbook"]
    assert 'db="db0"' in found["MatomoQueueUnworked"]["expr"] and ">= 25" in found["MatomoQueueUnworked"]["expr"]
    assert found["MatomoQueueUnworked"]["for"] == "5m"
    assert found["MatomoQueueBacklogGrowing"]["for"] == "15m"
    assert "[2h:1m]" in found["MatomoArchiveOverdue"]["expr"]  # hourly schedule: twice one hour
    assert 'parent_id="matomo-archiver",namespace="default"' in found["MatomoArchiverLaunchFailed"]["expr"]
    assert ">= 0.8" in found["MatomoRedisNearMaxmemory"]["expr"]
    assert "> 3" in found["MatomoRestartsClimbing"]["expr"]


def test_thresholds_from_the_deployment():
    d = deployment(**{
        "monitoring": {"unworked_for": "10m", "backlog_growing_for": "1h", "queue_behind_factor": 4,
                       "redis_memory_ratio": 0.9, "restarts": 5, "prometheus_selector": 'instance="q:9121"'},
        "redis.database": 4,
        "roles.queue_processor": {"queues": 4, "count": 4, "requests_per_batch": 50},
        "roles.archiver.schedule": {"cron": "0 3 * * *", "time_zone": "Europe/Berlin"},
        "namespace": "analytics",
        "name": "stats",
    })
    found = all_rules(yaml.safe_load(rules_yaml(d)))
    assert "MatomoQueueFarBehind" in found
    far = found["MatomoQueueFarBehind"]["expr"]
    assert "* 3) > 4 *" in far and ">= 50" in far and 'db="db4"' in far and 'instance="q:9121"' in far
    assert found["MatomoQueueUnworked"]["for"] == "10m" and ">= 50" in found["MatomoQueueUnworked"]["expr"]
    assert found["MatomoQueueBacklogGrowing"]["for"] == "1h"
    assert ">= 0.9" in found["MatomoRedisNearMaxmemory"]["expr"]
    assert "[50h:1m]" in found["MatomoArchiveOverdue"]["expr"]  # twice the 25 h autumn gap
    assert 'parent_id="stats-archiver",namespace="analytics"' in found["MatomoArchiveOverdue"]["expr"]
    assert 'job=~"stats-(admin|ingestion|queue-processor)"' in found["MatomoRestartsClimbing"]["expr"]
    assert "> 5" in found["MatomoRestartsClimbing"]["expr"]
    assert found["MatomoRedisDown"]["expr"] == 'redis_up{instance="q:9121"} == 0'
    assert found["MatomoQueueExporterMissing"]["expr"] == 'absent(redis_up{instance="q:9121"})'


def test_the_monitoring_job_restarting_counts_when_there_is_one():
    found = all_rules(yaml.safe_load(rules_yaml(deployment(**{"monitoring.exporter": {}}))))
    assert 'job=~"matomo-(admin|ingestion|queue-processor|monitoring)"' in found["MatomoRestartsClimbing"]["expr"]


def test_bad_selector_is_refused():
    with pytest.raises(DeploymentError) as error:
        deployment(**{"monitoring.prometheus_selector": 'instance="x"} or vector(1) #'})
    assert "monitoring.prometheus_selector" in str(error.value)


def test_cli_prints_and_writes(tmp_path, capsys):
    assert main(["alerts"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Prometheus alerting rules") and yaml.safe_load(printed)["groups"]
    out = tmp_path / "rules" / "matomo.rules.yml"
    assert main(["alerts", "--out", str(out)]) == 0
    assert out.read_text() == printed


def test_promtool_check_rules(tmp_path):
    for d in (deployment(), deployment(**{"roles.queue_processor": {"queues": 8, "count": 2},
                                          "monitoring.prometheus_selector": 'job="redis"'})):
        path = tmp_path / "rules.yml"
        path.write_text(rules_yaml(d))
        done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


# --- promtool test rules: each alert fires when it should, and only then ----------------------------

Q0, Q1, Q2 = (f'redis_key_size{{db="db0",key="{k}",instance="r"}}' for k in
              ("trackingQueueV1", "trackingQueueV1_1", "trackingQueueV1_2"))
L0, L1, L2 = (f'redis_keys_count{{db="db0",key="QueuedTrackingLock{i}",instance="r"}}' for i in range(3))


def series(name: str, values: str) -> dict:
    return {"series": name, "values": values}


def alert_test(interval: str, input_series: list, checks: list) -> dict:
    return {"interval": interval, "input_series": input_series,
            "alert_rule_test": [{"eval_time": t, "alertname": a, "exp_alerts": e} for t, a, e in checks]}


def _labels(alert: str) -> dict:
    return {"severity": "critical" if alert in ("MatomoQueueUnworked", "MatomoRedisEvicting", "MatomoArchiveOverdue",
                                                "MatomoRedisDown", "MatomoQueueExporterMissing")
            else "warning", "deployment": "matomo"}


def test_promtool_test_rules(tmp_path):
    d = deployment(**{"roles.queue_processor": {"queues": 3, "count": 3}})
    (tmp_path / "rules.yml").write_text(rules_yaml(d))
    unworked = "MatomoQueueUnworked"
    tests = [
        # Queue 0 holds 30 (>= 25) without a lock; queue 1 holds 30 with its lock held; queue 2 is small.
        alert_test("1m", [
            series(Q0, "30x20"), series(Q1, "30x20"), series(Q2, "3x20"),
            series(L0, "0x20"), series(L1, "1x20"), series(L2, "0x20"),
        ], [
            ("3m", unworked, []),  # not yet for 5 minutes
            ("10m", unworked, [{"exp_labels": {**_labels(unworked), "db": "db0", "key": "trackingQueueV1",
                                               "instance": "r", "queue": "0"}}]),
        ]),
        # A lock seen once in the window keeps the queue worked.
        alert_test("1m", [series(Q0, "30x20"), series(L0, "0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0")],
                   [("10m", unworked, []), ("16m", unworked, [{"exp_labels": {
                       **_labels(unworked), "db": "db0", "key": "trackingQueueV1", "instance": "r", "queue": "0"}}])]),
        # Backlog growing for 15 minutes: fires; a flat backlog does not.
        alert_test("1m", [series(Q0, "30+10x40"), series(Q1, "100x40"), series(L0, "1x40"), series(L1, "1x40")], [
            ("10m", "MatomoQueueBacklogGrowing", []),
            ("35m", "MatomoQueueBacklogGrowing", [{"exp_labels": {**_labels("x"), "instance": "r"}}]),
        ]),
        alert_test("1m", [series(Q0, "500x40"), series(L0, "1x40")], [("35m", "MatomoQueueBacklogGrowing", [])]),
        # One queue far behind the others (10x their average, and over a batch), for 15 minutes.
        alert_test("1m", [series(Q0, "2000x40"), series(Q1, "10x40"), series(Q2, "30x40"),
                          series(L0, "1x40"), series(L1, "1x40"), series(L2, "1x40")], [
            ("10m", "MatomoQueueFarBehind", []),
            ("20m", "MatomoQueueFarBehind", [{"exp_labels": {**_labels("x"), "db": "db0",
                                                            "key": "trackingQueueV1", "instance": "r"}}]),
        ]),
        alert_test("1m", [series(Q0, "200x40"), series(Q1, "100x40"), series(Q2, "30x40")],
                   [("20m", "MatomoQueueFarBehind", [])]),
        # Redis: unreadable for over a minute (a single failed scrape stays quiet), evictions, policy, memory.
        alert_test("1m", [series('redis_up{instance="r"}', "1x3 0x5 1x5"), series('redis_up{instance="s"}', "1 0 1x10")], [
            ("4m", "MatomoRedisDown", []),
            ("6m", "MatomoRedisDown", [{"exp_labels": {**_labels("MatomoRedisDown"), "instance": "r"}}]),
            ("10m", "MatomoRedisDown", []),
        ]),
        # No exporter series at all for 10 minutes: the other rules are blind.
        alert_test("1m", [series('redis_up{instance="r"}', "1x5 _x25")], [
            ("8m", "MatomoQueueExporterMissing", []),
            # The last sample (5m) counts for 5 more minutes; then 10 minutes of absence.
            ("19m", "MatomoQueueExporterMissing", []),
            ("22m", "MatomoQueueExporterMissing", [{"exp_labels": _labels("MatomoQueueExporterMissing")}]),
        ]),
        alert_test("1m", [series('redis_up{instance="r"}', "0x20")], [("20m", "MatomoQueueExporterMissing", [])]),
        # Restarts of the monitoring job count when there is one (the deployment here has none).
        alert_test("1m", [
            series('nomad_client_allocs_restart{job="matomo-monitoring",task_group="monitoring",namespace="default",alloc_id="c"}', "0 1 2 3 4 5x30"),
        ], [("10m", "MatomoRestartsClimbing", [])]),
        # Redis: evictions, policy, memory.
        alert_test("1m", [series('redis_evicted_keys_total{instance="r"}', "0x5 0 3 3 3x20")], [
            ("4m", "MatomoRedisEvicting", []),
            ("8m", "MatomoRedisEvicting", [{"exp_labels": {**_labels("MatomoRedisEvicting"), "instance": "r"}}]),
            ("20m", "MatomoRedisEvicting", []),
        ]),
        alert_test("1m", [series('redis_instance_info{instance="r",maxmemory_policy="allkeys-lru"}', "1x10"),
                          series('redis_instance_info{instance="s",maxmemory_policy="noeviction"}', "1x10")], [
            ("6m", "MatomoRedisEvictionPolicy", [{"exp_labels": {**_labels("x"), "instance": "r",
                                                                 "maxmemory_policy": "allkeys-lru"}}]),
        ]),
        alert_test("1m", [series('redis_memory_used_bytes{instance="r"}', "90x10"),
                          series('redis_memory_max_bytes{instance="r"}', "100x10"),
                          series('redis_memory_used_bytes{instance="s"}', "90x10"),
                          series('redis_memory_max_bytes{instance="s"}', "0x10"),
                          series('redis_memory_used_bytes{instance="t"}', "50x10"),
                          series('redis_memory_max_bytes{instance="t"}', "100x10")], [
            ("6m", "MatomoRedisNearMaxmemory", [{"exp_labels": {**_labels("x"), "instance": "r"},
                                                 }]),
        ]),
        # Archiver: a failed launch; completed launches keep "overdue" quiet, none for 2 h fires it.
        alert_test("1m", [
            series('nomad_nomad_job_summary_failed{parent_id="matomo-archiver",namespace="default",job="matomo-archiver/periodic-1",task_group="archiver"}', "0 0 1x90"),
            series('nomad_nomad_job_summary_failed{parent_id="other-archiver",namespace="default",job="other-archiver/periodic-1",task_group="archiver"}', "1x5"),
        ], [
            ("1m", "MatomoArchiverLaunchFailed", []),
            ("3m", "MatomoArchiverLaunchFailed", [{"exp_labels": {
                **_labels("x"), "parent_id": "matomo-archiver", "namespace": "default",
                "job": "matomo-archiver/periodic-1", "task_group": "archiver"}}]),
            ("60m", "MatomoArchiverLaunchFailed", [{"exp_labels": {
                **_labels("x"), "parent_id": "matomo-archiver", "namespace": "default",
                "job": "matomo-archiver/periodic-1", "task_group": "archiver"}}]),
            # One schedule gap (hourly: 1 h) after the failure, while Nomad still lists the
            # failed launch: quiet, the next launches have had their turn.
            ("65m", "MatomoArchiverLaunchFailed", []),
            ("85m", "MatomoArchiverLaunchFailed", []),
        ]),
        alert_test("5m", [
            series('nomad_nomad_job_summary_complete{parent_id="matomo-archiver",namespace="default",job="matomo-archiver/periodic-1"}', "0 1x10"),
            series('nomad_nomad_job_summary_complete{parent_id="matomo-archiver",namespace="default",job="matomo-archiver/periodic-2"}', "_x12 0 1x10"),
        ], [
            ("90m", "MatomoArchiveOverdue", []),
            ("170m", "MatomoArchiveOverdue", []),  # launch 2 completed at 65m: within 2 h
            ("230m", "MatomoArchiveOverdue", []),  # its last sample (115m) counts until 120m: 2 h after is 240m
            ("250m", "MatomoArchiveOverdue", [{"exp_labels": _labels("MatomoArchiveOverdue")}]),
        ]),
        # Restarts: more than 3 in an hour.
        alert_test("1m", [
            series('nomad_client_allocs_restart{job="matomo-queue-processor",task_group="queue-processor",task="queue-processor",namespace="default",alloc_id="a"}', "0 1 2 3 4 5x30"),
            series('nomad_client_allocs_restart{job="matomo-admin",task_group="admin",task="admin",namespace="default",alloc_id="b"}', "0 1 2 3x30"),
        ], [
            ("2m", "MatomoRestartsClimbing", []),
            ("10m", "MatomoRestartsClimbing", [{"exp_labels": {**_labels("x"), "job": "matomo-queue-processor",
                                                               "task_group": "queue-processor"}}]),
        ]),
    ]
    # promtool compares annotations too: the rule's, with {{ $labels.x }} filled in.
    annotations = {r["alert"]: r["annotations"] for g in rules(d)["groups"] for r in g["rules"]}
    for test in tests:
        for check in test["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                alert["exp_annotations"] = {
                    k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: alert["exp_labels"][m.group(1)], v)
                    for k, v in annotations[check["alertname"]].items()
                }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                        "tests": tests}, sort_keys=False))
    done = subprocess.run([promtool(), "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

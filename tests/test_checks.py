"""The Matomo-aware rules: each with a deployment that trips it and one that does not,
and `validate`/`render` acting on them (errors stop, warnings are printed)."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest

from matomo_nomad import DeploymentError, parse_deployment
from matomo_nomad._checks import ENFORCED_BY_MODEL, ERROR, RULES, WARNING, check
from matomo_nomad._cli import main
from tests.deployments import _example

Change = Callable[[dict[str, Any]], None]


def _base() -> dict[str, Any]:
    return _example("seed.toml")


def _set(path: str, value: Any) -> Change:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return change


# rule -> (severity, change that trips it, change that keeps it quiet)
CASES: dict[str, tuple[str, Change, Change]] = {
    "plugin-matomo-major": (
        ERROR,
        _set("matomo.version", "4.16.0"),
        _set("plugins", [{"name": "QueuedTracking", "version": "5.2.0"}, {"name": "SecurityInfo", "version": "5.0.0"}]),
    ),
    "health-check-force-ssl": (
        ERROR,
        _set("roles.admin.service", {"check": {"path": "/", "headers": {}}}),
        _set("roles.admin.service", {"check": {"path": "/", "headers": {"x-forwarded-proto": ["https"]}}}),
    ),
    "nomad-version": (ERROR, _set("nomad_version", "1.5.3"), _set("nomad_version", "1.6.0")),
    "image-tag-version": (
        WARNING,
        _set("matomo.image", "registry.example.com/matomo:build-77"),
        _set("matomo.image", "registry.example.com/matomo:5.10.0-build-77"),
    ),
    "proxy-ips": (
        WARNING,
        lambda d: d["proxy"].update({"count": 2, "ips": []}),
        lambda d: d["proxy"].update({"count": 2, "ips": ["10.0.0.0/8"]}),
    ),
    "archiver-kill-timeout": (
        WARNING,
        _set("roles.archiver.kill_timeout", "10s"),
        _set("roles.archiver.kill_timeout", "30s"),
    ),
    "archiver-memory": (
        WARNING,
        lambda d: d["roles"]["archiver"].update({"sites": 450, "memory": 1024}),
        lambda d: d["roles"]["archiver"].update({"sites": 450, "memory": 1024, "memory_max": 2560}),
    ),
    "secrets-path-acl": (
        WARNING,
        _set("secrets", {"path": "matomo/shared"}),
        _set("secrets", {"path": "nomad/jobs"}),
    ),
    "queue-pinning-canary": (
        WARNING,
        _set("roles.queue_processor.update", {"canary": 1}),
        lambda d: d["roles"]["queue_processor"].update({"update": {"canary": 1}, "pin_queues": False}),
    ),
    "vault-auth": (
        ERROR,
        _set("secrets", {"provider": "vault", "path": "kv/data/matomo"}),
        _set("secrets", {"provider": "vault", "path": "kv/data/matomo", "vault_policies": ["matomo-read"]}),
    ),
    "queue-processors-idle": (
        WARNING,
        lambda d: d["roles"]["queue_processor"].update({"count": 3, "queues": 2}),
        lambda d: d["roles"]["queue_processor"].update({"count": 3, "queues": 3}),
    ),
    "database-collation": (
        WARNING,
        lambda d: d["database"].pop("collation"),
        _set("database.collation", "utf8mb3_general_ci"),
    ),
    "redis-eviction": (
        WARNING,
        _set("redis.maxmemory_policy", "allkeys-lru"),
        _set("redis.maxmemory_policy", "noeviction"),
    ),
}


@pytest.mark.parametrize(
    ("policy", "says"),
    [(None, None), ("noeviction", None), ("allkeys-lfu", "whole queued lists"), ("volatile-ttl", "QueuedTrackingLock")],
)
def test_redis_eviction_names_what_the_policy_deletes(policy: str | None, says: str | None) -> None:
    found = [f for f in _findings(_set("redis.maxmemory_policy", policy)) if f.rule == "redis-eviction"]
    if says is None:
        assert found == []
    else:
        (finding,) = found
        assert says in finding.message and "noeviction" in finding.fix


def _findings(change: Change) -> list[Any]:
    data = copy.deepcopy(_base())
    change(data)
    return check(parse_deployment(data))


def test_the_examples_have_no_findings() -> None:
    assert check(parse_deployment(_base())) == []
    assert check(parse_deployment(_example("minimal.toml"))) == []


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_trips(rule: str) -> None:
    severity, trip, _ = CASES[rule]
    found = [f for f in _findings(trip) if f.rule == rule]
    assert found and all(f.severity == severity for f in found)
    assert all(f.message and f.fix and f.location for f in found)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_stays_quiet(rule: str) -> None:
    _, _, quiet = CASES[rule]
    assert [f for f in _findings(quiet) if f.rule == rule] == []


def test_every_rule_is_tested_or_enforced_by_the_model() -> None:
    # The model-enforced rules are tested by the bad-input suite (tests/bad_inputs).
    assert set(RULES) == set(CASES) | set(ENFORCED_BY_MODEL) | {"maintenance-mode-ingestion-only"}


@pytest.mark.parametrize(
    ("rule", "change"),
    [
        ("maintenance-mode-ingestion-only", _set("roles.archiver.settings", {"General": {"maintenance_mode": 1}})),
        ("browser-archiving-off", _set("settings", {"General": {"enable_browser_archiving_triggering": 1}})),
        ("queue-workers-match", lambda d: d.update({"plugins": [{"name": "QueuedTracking", "version": "5.0.7"}]}) or d["roles"]["queue_processor"].update({"queues": 17})),
        ("redis-cache-database", _set("redis_cache", {"host": "redis.service.consul", "database": 0})),
        ("trusted-hosts", _set("hosts", [])),
        ("image-pinned", _set("matomo.image", "registry.example.com/matomo:latest")),
        ("cron-five-fields", _set("roles.archiver.schedule", {"cron": "0 5 * * * *"})),
    ],
)
def test_model_enforced_rules_refuse_the_deployment(rule: str, change: Change) -> None:
    data = copy.deepcopy(_base())
    change(data)
    with pytest.raises(DeploymentError):
        parse_deployment(data)


def test_the_rendered_maintenance_mode_check_sees_a_bad_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    # Defence in depth: if a decision ever put maintenance_mode on the archiver, the check says so.
    from matomo_nomad import _checks, _roles

    real = _roles._config

    def broken(d: Any, role: Any) -> Any:
        sections = real(d, role)
        for section in sections:
            if section.name == "General":
                section.values["maintenance_mode"] = True
        return sections

    monkeypatch.setattr(_roles, "_config", broken)
    found = [f for f in _checks.check(parse_deployment(_base())) if f.rule == "maintenance-mode-ingestion-only"]
    assert {f.location for f in found} == {"roles.admin", "roles.queue_processor", "roles.archiver", "roles.setup"}


def _write(tmp_path: Any, change: Change) -> str:
    data = copy.deepcopy(_base())
    change(data)
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_validate_prints_warnings_and_exits_0(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _set("roles.archiver.kill_timeout", "10s"))
    assert main(["validate", path]) == 0
    out, err = capsys.readouterr()
    assert "valid" in out
    assert err.startswith("warning: roles.archiver.kill_timeout: ") and err.rstrip().endswith("[archiver-kill-timeout]")


def test_errors_stop_validate_and_render_with_nothing_written(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _set("nomad_version", "1.5.0"))
    assert main(["validate", path]) == 2
    assert main(["render", path, "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and not (tmp_path / "out").exists()
    assert err.splitlines()[0].startswith("nomad_version: the jobs use node pools")


def test_validate_json_for_ci(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, lambda d: (_set("nomad_version", "1.5.0")(d), _set("roles.archiver.kill_timeout", "10s")(d)))
    assert main(["validate", path, "--output", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert {(f["rule"], f["severity"]) for f in report["findings"]} == {("nomad-version", "error"), ("archiver-kill-timeout", "warning")}

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "Bad!"}))
    assert main(["validate", str(bad), "--output", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["findings"] == []
    assert any(p["location"] == "name" for p in report["problems"])


@pytest.mark.parametrize(
    ("nomad", "secrets", "expected"),
    [
        ("1.6.0", {}, [(ERROR, "secrets.vault_policies")]),
        ("1.6.0", {"vault_policies": ["matomo-read"]}, []),
        ("1.7.0", {}, [(WARNING, "secrets.vault_role")]),
        ("1.7.0", {"vault_role": "matomo"}, []),
        ("1.8.0", {"vault_role": "matomo", "vault_policies": ["matomo-read"]}, [(WARNING, "secrets.vault_policies")]),
        ("1.9.0", {"vault_policies": ["matomo-read"]}, []),
        ("1.10.0", {"vault_policies": ["matomo-read"]}, [(ERROR, "secrets.vault_policies")]),
        ("1.10.0", {"vault_role": "matomo"}, []),
    ],
)
def test_vault_auth_for_each_nomad_version(nomad: str, secrets: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    found = _findings(lambda d: d.update(
        {"nomad_version": nomad, "secrets": {"provider": "vault", "path": "kv/data/matomo", **secrets}}))
    assert [(f.severity, f.location) for f in found if f.rule == "vault-auth"] == expected


def test_the_python_api_refuses_what_the_cli_refuses() -> None:
    from matomo_nomad import render, validate

    data = copy.deepcopy(_base())
    data["nomad_version"] = "1.5.3"
    deployment = parse_deployment(data)
    findings = validate(deployment)
    assert [(f.rule, f.severity) for f in findings if f.severity == ERROR] == [("nomad-version", ERROR)]
    with pytest.raises(DeploymentError) as caught:
        render(deployment)
    assert str(caught.value).startswith("nomad_version: the jobs use node pools")
    assert render(parse_deployment(_base()))  # and renders what validates

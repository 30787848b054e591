"""A second, independent reading of our job files: HCL (as HashiCorp's parser evaluated
it, via `hclcheck dump`) mapped to Nomad API JSON by the rules of Nomad's jobspec2.

The product builds its API JSON straight from its own decisions; this module builds it
from the HCL text instead. The two agreeing is what shows that the HCL and the JSON
describe the same job. Only the blocks our jobs use are mapped; anything else fails
loudly so a new block cannot slip through unchecked.
"""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def duration(text: str) -> int:
    """Go's time.ParseDuration, for the forms Nomad accepts, in nanoseconds."""
    parts = re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a Go duration: {text!r}"
    return round(sum(float(n) * _UNITS[u] for n, u in parts))


def _blocks(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in body["blocks"] if b["type"] == kind]


def _one(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    found = _blocks(body, kind)
    assert len(found) <= 1, f"more than one {kind} block"
    return found[0] if found else None


def _known(body: dict[str, Any], attrs: set[str], blocks: set[str], where: str) -> None:
    assert set(body["attrs"]) <= attrs, f"{where}: unmapped attributes {set(body['attrs']) - attrs}"
    kinds = {b["type"] for b in body["blocks"]}
    assert kinds <= blocks, f"{where}: unmapped blocks {kinds - blocks}"


def api_job(dump: dict[str, Any]) -> dict[str, Any]:
    jobs = _blocks(dump, "job")
    assert len(jobs) == 1 and not dump["attrs"], "a job file holds exactly one job"
    block = jobs[0]
    body, a = block["body"], block["body"]["attrs"]
    _known(body, {"type", "region", "namespace", "datacenters", "node_pool", "priority"}, {"meta", "periodic", "group"}, "job")
    job: dict[str, Any] = {
        "ID": block["labels"][0],
        "Name": block["labels"][0],
        "Type": a["type"],
        "Region": a["region"],
        "Namespace": a["namespace"],
        "Datacenters": a["datacenters"],
        "NodePool": a["node_pool"],
        "Priority": a["priority"],
        "Meta": _one(body, "meta")["body"]["attrs"],  # type: ignore[index]
    }
    periodic = _one(body, "periodic")
    if periodic is not None:
        p = periodic["body"]["attrs"]
        job["Periodic"] = {
            "Enabled": p.get("enabled", True),
            "Spec": p["cron"],
            "SpecType": "cron",
            "ProhibitOverlap": p["prohibit_overlap"],
            "TimeZone": p["time_zone"],
        }
    job["TaskGroups"] = [_group(g) for g in _blocks(body, "group")]
    return job


def _group(block: dict[str, Any]) -> dict[str, Any]:
    body = block["body"]
    _known(body, {"count"}, {"constraint", "update", "network", "service", "restart", "reschedule", "task"}, "group")
    group: dict[str, Any] = {"Name": block["labels"][0], "Count": body["attrs"]["count"]}
    constraints = _blocks(body, "constraint")
    if constraints:
        group["Constraints"] = [
            # An omitted attribute (distinct_hosts) is an empty LTarget, as Nomad's jobspec decodes it.
            {"LTarget": c["body"]["attrs"].get("attribute", ""), "RTarget": c["body"]["attrs"]["value"], "Operand": c["body"]["attrs"]["operator"]}
            for c in constraints
        ]
    update = _one(body, "update")
    if update is not None:
        u = update["body"]["attrs"]
        group["Update"] = {
            "MaxParallel": u["max_parallel"],
            "HealthCheck": u["health_check"],
            "MinHealthyTime": duration(u["min_healthy_time"]),
            "HealthyDeadline": duration(u["healthy_deadline"]),
            "ProgressDeadline": duration(u["progress_deadline"]),
            "AutoRevert": u["auto_revert"],
            "AutoPromote": u["auto_promote"],
            "Canary": u["canary"],
        }
    network = _one(body, "network")
    if network is not None:
        group["Networks"] = [
            {"DynamicPorts": [{"Label": p["labels"][0], "To": p["body"]["attrs"]["to"]} for p in _blocks(network["body"], "port")]}
        ]
    service = _one(body, "service")
    if service is not None:
        s = service["body"]["attrs"]
        out: dict[str, Any] = {"Name": s["name"], "Provider": s["provider"], "PortLabel": s["port"], "Tags": s["tags"]}
        checks = _blocks(service["body"], "check")
        if checks:
            out["Checks"] = []
            for check in checks:
                c = check["body"]["attrs"]
                header = _one(check["body"], "header")
                out["Checks"].append(
                    {
                        "Type": c["type"],
                        "Path": c["path"],
                        "Interval": duration(c["interval"]),
                        "Timeout": duration(c["timeout"]),
                        "Header": header["body"]["attrs"] if header else {},
                    }
                )
        group["Services"] = [out]
    restart = _one(body, "restart")["body"]["attrs"]  # type: ignore[index]
    group["RestartPolicy"] = {
        "Attempts": restart["attempts"],
        "Interval": duration(restart["interval"]),
        "Delay": duration(restart["delay"]),
        "Mode": restart["mode"],
    }
    reschedule = _one(body, "reschedule")
    if reschedule is not None:
        r = reschedule["body"]["attrs"]
        _known(reschedule["body"], {"attempts", "unlimited"}, set(), "reschedule")
        group["ReschedulePolicy"] = {"Attempts": r["attempts"], "Unlimited": r["unlimited"]}
    group["Tasks"] = [_task(t) for t in _blocks(body, "task")]
    return group


def _task(block: dict[str, Any]) -> dict[str, Any]:
    body = block["body"]
    _known(body, {"driver", "kill_signal", "kill_timeout"}, {"config", "template", "vault", "env", "resources"}, "task")
    config_block = _one(body, "config")["body"]  # type: ignore[index]
    config: dict[str, Any] = dict(config_block["attrs"])
    # Blocks inside a driver config become lists of objects in the API.
    for inner in config_block["blocks"]:
        config.setdefault(inner["type"], []).append(inner["body"]["attrs"])
    task: dict[str, Any] = {"Name": block["labels"][0], "Driver": body["attrs"]["driver"], "Config": config}
    if "kill_signal" in body["attrs"]:
        task["KillSignal"] = body["attrs"]["kill_signal"]
    if "kill_timeout" in body["attrs"]:
        task["KillTimeout"] = duration(body["attrs"]["kill_timeout"])
    task["Templates"] = [_template(t["body"]) for t in _blocks(body, "template")]
    vault = _one(body, "vault")
    if vault is not None:
        v = vault["body"]["attrs"]
        _known(vault["body"], {"role", "policies"}, set(), "vault")
        task["Vault"] = {name: v[key] for key, name in (("role", "Role"), ("policies", "Policies")) if key in v}
    env = _one(body, "env")
    if env is not None:
        task["Env"] = env["body"]["attrs"]
    r = _one(body, "resources")["body"]["attrs"]  # type: ignore[index]
    task["Resources"] = {"CPU": r["cpu"], "MemoryMB": r["memory"]}
    if "memory_max" in r:
        task["Resources"]["MemoryMaxMB"] = r["memory_max"]
    return task


def _template(body: dict[str, Any]) -> dict[str, Any]:
    a = body["attrs"]
    _known(body, {"data", "destination", "change_mode", "error_on_missing_key", "perms", "env"}, set(), "template")
    template = {
        "EmbeddedTmpl": a["data"],
        "DestPath": a["destination"],
        "ChangeMode": a["change_mode"],
        "ErrMissingKey": a["error_on_missing_key"],
    }
    if "env" in a:
        template["Envvars"] = a["env"]
    if "perms" in a:
        template["Perms"] = a["perms"]
    return template

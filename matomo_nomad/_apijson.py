"""A role's job as Nomad API JSON, the shape `nomad job run -output` prints.

Keys are the Go field names of Nomad's `api` package; durations are integer
nanoseconds. Fields the job file does not set are left out rather than written as
null: the API decodes both the same way. `dumps` reproduces Go's encoder where it
differs from Python's (sorted map keys, HTML-safe escapes, 4-space indent), so the
bytes match what Nomad's own CLI would print for the same job.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import _envfile
from ._model import nanoseconds
from ._roles import CONFIG_DESTINATION, CONFIG_TARGET, RoleJob, SecretFile


def job(role: RoleJob, config_template: str, secret_templates: list[str]) -> dict[str, Any]:
    """The API `Job` object for one role (without the `{"Job": ...}` wrapper).

    `secret_templates` are the consul-template texts of `role.secret_files`, in order."""
    document: dict[str, Any] = {
        "ID": role.job_id,
        "Name": role.job_id,
        "Type": role.job_type,
        "Region": role.region,
        "Namespace": role.namespace,
        "Datacenters": list(role.datacenters),
        "NodePool": role.node_pool,
        "Priority": role.priority,
        "Meta": _sorted(role.meta),
    }
    if role.periodic is not None:
        document["Periodic"] = {
            "Enabled": True,
            "Spec": role.periodic.cron,
            "SpecType": "cron",
            "ProhibitOverlap": role.periodic.prohibit_overlap,
            "TimeZone": role.periodic.time_zone,
        }
    document["TaskGroups"] = [_group(role, config_template, secret_templates)]
    return document


def _group(role: RoleJob, config_template: str, secret_templates: list[str]) -> dict[str, Any]:
    group: dict[str, Any] = {"Name": role.group, "Count": role.count}
    if role.constraints:
        group["Constraints"] = [
            {"LTarget": c.attribute, "RTarget": c.value, "Operand": c.operator} for c in role.constraints
        ]
    if role.update is not None:
        u = role.update
        group["Update"] = {
            "MaxParallel": u.max_parallel,
            "HealthCheck": health_check_mode(role),
            "MinHealthyTime": nanoseconds(u.min_healthy_time),
            "HealthyDeadline": nanoseconds(u.healthy_deadline),
            "ProgressDeadline": nanoseconds(u.progress_deadline),
            "AutoRevert": u.auto_revert,
            "AutoPromote": u.auto_promote,
            "Canary": u.canary,
        }
    if role.port is not None:
        group["Networks"] = [{"DynamicPorts": [{"Label": role.port, "To": role.container_port}]}]
    if role.service is not None:
        s = role.service
        service: dict[str, Any] = {"Name": s.name, "Provider": s.provider, "PortLabel": s.port, "Tags": list(s.tags)}
        if s.check is not None:
            service["Checks"] = [
                {
                    "Type": "http",
                    "Path": s.check.path,
                    "Interval": nanoseconds(s.check.interval),
                    "Timeout": nanoseconds(s.check.timeout),
                    "Header": _sorted({k: list(v) for k, v in s.check.headers.items()}),
                }
            ]
        group["Services"] = [service]
    r = role.restart
    group["RestartPolicy"] = {
        "Attempts": r.attempts,
        "Interval": nanoseconds(r.interval),
        "Delay": nanoseconds(r.delay),
        "Mode": r.mode,
    }
    if not role.reschedule:
        group["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
    group["Tasks"] = [_task(role, config_template, secret_templates)]
    return group


def _task(role: RoleJob, config_template: str, secret_templates: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = docker_config(role)
    if config_template:
        config["mount"] = [
            {"type": "bind", "source": CONFIG_DESTINATION, "target": CONFIG_TARGET, "readonly": True}
        ]
    task: dict[str, Any] = {"Name": role.task, "Driver": "docker", "Config": _sorted(config)}
    if role.kill_signal is not None:
        task["KillSignal"] = role.kill_signal
    if role.kill_timeout is not None:
        task["KillTimeout"] = nanoseconds(role.kill_timeout)
    templates: list[dict[str, Any]] = []
    if config_template:
        templates.append(
            {"EmbeddedTmpl": config_template, "DestPath": CONFIG_DESTINATION, "ChangeMode": "restart", "ErrMissingKey": True}
        )
    templates += [_secret_file(file, text) for file, text in zip(role.secret_files, secret_templates, strict=True)]
    env_template = _envfile.for_job(role)
    if env_template is not None:
        templates.append(
            {
                "EmbeddedTmpl": env_template,
                "DestPath": _envfile.DESTINATION,
                "ChangeMode": "restart",
                "ErrMissingKey": True,
                "Envvars": True,
                "Perms": SECRET_FILE_PERMS,
            }
        )
    if templates:
        task["Templates"] = templates
    if role.secrets.provider == "vault" and role.secret_keys:
        vault: dict[str, Any] = {}
        if role.secrets.vault_role:
            vault["Role"] = role.secrets.vault_role
        if role.secrets.vault_policies:
            vault["Policies"] = list(role.secrets.vault_policies)
        task["Vault"] = vault
    if role.env:
        task["Env"] = _sorted(role.env)
    task["Resources"] = resources(role, api=True)
    return task


def _secret_file(file: SecretFile, text: str) -> dict[str, Any]:
    return {
        "EmbeddedTmpl": text,
        "DestPath": file.destination,
        "ChangeMode": "noop",
        "ErrMissingKey": True,
        "Perms": SECRET_FILE_PERMS,
    }


SECRET_FILE_PERMS = "0400"
"""A secret file is read by the task's main process, which starts as root."""


def docker_config(role: RoleJob) -> dict[str, Any]:
    """The docker driver's simple options, in the order the job file shows them."""
    config: dict[str, Any] = {"image": role.image}
    if role.init:
        config["init"] = True
    if role.port is not None:
        config["ports"] = [role.port]
    if role.command is not None:
        config["command"] = role.command
    if role.args:
        config["args"] = list(role.args)
    return config


def resources(role: RoleJob, api: bool = False) -> dict[str, int]:
    names = ("CPU", "MemoryMB", "MemoryMaxMB") if api else ("cpu", "memory", "memory_max")
    values: dict[str, int] = {names[0]: role.cpu, names[1]: role.memory}
    if role.memory_max is not None:
        values[names[2]] = role.memory_max
    return values


def health_check_mode(role: RoleJob) -> str:
    # With a registered check, a deployment waits for it; without one (the queue
    # processor) a running task is the best signal there is.
    return "checks" if role.service is not None and role.service.check is not None else "task_states"


def _sorted(mapping: dict[str, Any]) -> dict[str, Any]:
    # Go encodes maps (Meta, Env, the driver config) with their keys sorted.
    return dict(sorted(mapping.items()))


def dumps(document: dict[str, Any]) -> str:
    """`{"Job": document}` encoded as Go's json.MarshalIndent would, plus a newline."""
    text = json.dumps({"Job": document}, indent=4, ensure_ascii=False, sort_keys=False)
    # Go's encoder escapes these inside strings (they only occur inside strings).
    for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    # Python writes backspace and form feed as \b and \f, Go as \u0008 and \u000c; an
    # escape is one only after an even run of backslashes.
    if "\\b" in text or "\\f" in text:  # rare: skip the regex scan otherwise
        text = _SHORT_ESCAPES.sub(lambda m: m.group(1) + ("\\u0008" if m.group(2) == "b" else "\\u000c"), text)
    return text + "\n"


_SHORT_ESCAPES = re.compile(r"(?<!\\)((?:\\\\)*)\\([bf])")

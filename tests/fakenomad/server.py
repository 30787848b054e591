"""A fake Nomad HTTP API for tests: a real HTTP(S) server on loopback.

It implements the endpoints matomo-nomad's client calls, with Nomad's request
and response shapes, keeps state the way Nomad does (raft-like global index,
per-table indexes, job versions, deployments, allocations, variables) and
records every request so tests can assert on what was sent.

Quick use::

    with FakeNomad() as fake:                       # plain HTTP
        requests.post(f"{fake.address}/v1/jobs", json={"Job": job})
        fake.requests_to(r"^/v1/jobs$")[0].json["EnforceIndex"]

    with FakeNomad(tls=generate_tls_material(tmp)) as fake:   # HTTPS
        requests.get(f"{fake.address}/v1/agent/self", verify=fake.ca_path)

Sources of the shapes and messages (hashicorp/nomad): command/agent/http.go
(error bodies, 301 for unclean paths, 404 fallthrough, X-Nomad-* headers,
parseWait), command/agent/job_endpoint.go (register/plan/delete/submission,
namespace and region precedence), nomad/job_endpoint.go (EnforceIndex
messages, unchanged-spec register, plan index, deregister), nomad/rpc.go and
nomad/structs/structs.go (blocking queries: 300 s default and maximum,
wait/16 jitter), nomad/structs/diff.go and scheduler/annotate.go (plan diff
and annotations), nomad/structs/deployment.go (deployment descriptions),
command/agent/variable_endpoint.go, nomad/variables_endpoint.go,
nomad/structs/variables.go and nomad/state/state_store_variables.go
(variables, CAS), nomad/periodic_endpoint.go (periodic force).

Deliberate simplifications are listed in ``tests/fakenomad/__init__.py``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import heapq
import itertools
import json as _json
import math
import random
import re
import select
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote

NOMAD_VERSION = "1.9.7"

# nomad/structs/structs.go: MaxBlockingRPCQueryTime, DefaultBlockingRPCQueryTime, JitterFraction
MAX_BLOCKING_QUERY_TIME = 300.0
DEFAULT_BLOCKING_QUERY_TIME = 300.0
JITTER_FRACTION = 16

# command/agent/http.go: ErrInvalidMethod
ERR_INVALID_METHOD = "Invalid method"
ERR_PERMISSION_DENIED = "Permission denied"
ERR_TOKEN_NOT_FOUND = "ACL token not found"
ENFORCE_PREFIX = "Enforcing job modify index"  # nomad/job_endpoint.go RegisterEnforceIndexErrPrefix

# nomad/structs/deployment.go
DEPLOY_RUNNING = "Deployment is running"
DEPLOY_SUCCESSFUL = "Deployment completed successfully"
DEPLOY_STOPPED_JOB = "Cancelled because job is stopped"
DEPLOY_NEWER_JOB = "Cancelled due to newer version of job"
DEPLOY_FAILED_ALLOCS = "Failed due to unhealthy allocations"
DEPLOY_PROGRESS_DEADLINE = "Failed due to progress deadline"

ZERO_TIME = "0001-01-01T00:00:00Z"
_VARIABLE_PATH = re.compile(r"^[a-zA-Z0-9-_~/]{1,128}$")  # nomad/structs/variables.go
_MAX_VARIABLE_SIZE = 64 * 1024


# --------------------------------------------------------------------------
# small helpers


def _now_ns() -> int:
    return time.time_ns()


def _go_time(ns: int | None) -> str:
    """Go's time.Time JSON (RFC 3339 with trimmed nanoseconds), zero -> year 1."""
    if not ns:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    out = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        out += "." + f"{frac:09d}".rstrip("0")
    return out + "Z"


def _go_time_dt(moment: _dt.datetime) -> str:
    out = moment.strftime("%Y-%m-%dT%H:%M:%S")
    offset = moment.utcoffset() or _dt.timedelta(0)
    if not offset:
        return out + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{out}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _go_fmt(value: Any) -> str:
    """fmt.Sprintf("%v") of a JSON scalar, as flatmap renders diff values."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


def _multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's default format."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t* ".join(errors)
    return f"{len(errors)} errors occurred:\n\t* {points}\n\n"


def _parse_go_duration(text: str) -> float:
    """time.ParseDuration, in seconds (raises ValueError like Go errors)."""
    if text in ("0", "+0", "-0"):
        return 0.0
    match = re.fullmatch(r"([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+", text)
    if not match:
        raise ValueError(f"time: invalid duration {text!r}")
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text):
        total += float(number) * units[unit]
    return -total if text.startswith("-") else total


def _html_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def _clean_path(path: str) -> str:
    """Go's net/http cleanPath (path.Clean, keeping a trailing slash)."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    cleaned = "/" + "/".join(parts)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def _bool_param(value: str) -> bool:
    """strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


# --------------------------------------------------------------------------
# cron: enough of hashicorp/cronexpr for NextPeriodicLaunch

_CRON_MACROS = {
    "@yearly": "0 0 0 1 1 * *",
    "@annually": "0 0 0 1 1 * *",
    "@monthly": "0 0 0 1 * * *",
    "@weekly": "0 0 0 * * 0 *",
    "@daily": "0 0 0 * * * *",
    "@midnight": "0 0 0 * * * *",
    "@hourly": "0 0 * * * * *",
}
_MONTH_NAMES = {n: i + 1 for i, n in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])}
_DOW_NAMES = {n: i for i, n in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}


def _cron_field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
            if step <= 0:
                raise ValueError("bad step")
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _cron_value(a, names), _cron_value(b, names)
        else:
            start = _cron_value(part, names)
            end = high if step != 1 else start
        if start < low or end > high or start > end:
            raise ValueError(f"value out of range in {text!r}")
        values.update(range(start, end + 1, step))
    return values


def _cron_value(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper()[:3] in names and not text.isdigit():
        return names[text.upper()[:3]]
    return int(text)


def cron_next(spec: str, tz_name: str, after: _dt.datetime) -> _dt.datetime:
    """Next time strictly after ``after`` matching ``spec`` in ``tz_name``.

    5 fields are minute-first; 6 fields start with seconds; 7 add a year
    (hashicorp/cronexpr). Raises ValueError for what it cannot parse.
    """
    spec = _CRON_MACROS.get(spec.strip(), spec)
    fields = spec.split()
    if len(fields) == 5:
        fields = ["0"] + fields + ["*"]
    elif len(fields) == 6:
        fields = fields + ["*"]
    elif len(fields) != 7:
        raise ValueError(f"syntax error in cron expression {spec!r}")
    seconds = _cron_field(fields[0], 0, 59)
    minutes = _cron_field(fields[1], 0, 59)
    hours = _cron_field(fields[2], 0, 23)
    doms = _cron_field(fields[3], 1, 31)
    months = _cron_field(fields[4], 1, 12, _MONTH_NAMES)
    dows = {d % 7 for d in _cron_field(fields[5].replace("7", "0") if fields[5] != "*/7" else "*", 0, 7, _DOW_NAMES)}
    years = _cron_field(fields[6], 1970, 2099)
    dom_any = fields[3] in ("*", "?")
    dow_any = fields[5] in ("*", "?")
    tz = zoneinfo.ZoneInfo(tz_name or "UTC")
    moment = after.astimezone(tz).replace(microsecond=0) + _dt.timedelta(seconds=1)
    limit = moment + _dt.timedelta(days=366 * 5)
    while moment < limit:
        if moment.year not in years or moment.month not in months:
            year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
            moment = moment.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
            continue
        dow = (moment.weekday() + 1) % 7
        if dom_any and dow_any:
            day_ok = True
        elif dom_any:
            day_ok = dow in dows
        elif dow_any:
            day_ok = moment.day in doms
        else:
            day_ok = moment.day in doms or dow in dows
        if not day_ok:
            moment = (moment + _dt.timedelta(days=1)).replace(hour=0, minute=0, second=0)
            continue
        if moment.hour not in hours:
            moment = (moment + _dt.timedelta(hours=1)).replace(minute=0, second=0)
            continue
        if moment.minute not in minutes:
            moment = (moment + _dt.timedelta(minutes=1)).replace(second=0)
            continue
        if moment.second not in seconds:
            moment += _dt.timedelta(seconds=1)
            continue
        return moment
    raise ValueError(f"no time matches cron expression {spec!r}")


# --------------------------------------------------------------------------
# plan diff: a structural diff in the shape of nomad/structs/diff.go

_RANK = {"Edited": 0, "Added": 1, "Deleted": 2, "None": 3}
# Go map[string]string fields: flattened inline as "Meta[key]" (flatmap.Flatten)
_MAP_FIELDS = {"Meta", "Env"}
# Objects Nomad flattens completely (configDiff, checkHeaderDiff)
_FLAT_OBJECTS = {"Config", "Header"}
# Job.Diff's filter (plus fields the fake itself sets)
_JOB_FILTER = {
    "ID", "Status", "StatusDescription", "Version", "Stable", "CreateIndex", "ModifyIndex",
    "JobModifyIndex", "Update", "SubmitTime", "NomadTokenID", "VaultToken", "TaskGroups",
}
_SINGULAR = {
    "Templates": "Template", "Services": "Service", "Checks": "Check", "Networks": "Network",
    "DynamicPorts": "Dynamic Port", "ReservedPorts": "Static Port", "Constraints": "Constraint",
    "Affinities": "Affinity", "Artifacts": "Artifact", "Volumes": "Volume",
    "VolumeMounts": "VolumeMount", "Spreads": "Spread", "Devices": "Device",
}


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _flatten_primitive(obj: dict | None, exclude: Iterable[str] = ()) -> dict[str, str]:
    """flatmap.Flatten(obj, filter, primitiveOnly=true): scalars and string maps."""
    out: dict[str, str] = {}
    if not obj:
        return out
    skip = set(exclude)
    for key, value in obj.items():
        if key in skip:
            continue
        if _is_scalar(value):
            if value is not None:
                out[key] = _go_fmt(value)
        elif key in _MAP_FIELDS and isinstance(value, dict):
            for sub, subvalue in value.items():
                if _is_scalar(subvalue):
                    out[f"{key}[{sub}]"] = _go_fmt(subvalue)
    return out


def _flatten_all(value: Any, prefix: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    """flatmap.Flatten(obj, nil, primitiveOnly=false): "mount[0][source]" keys."""
    if out is None:
        out = {}
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten_all(sub, f"{prefix}[{key}]" if prefix else str(key), out)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _flatten_all(sub, f"{prefix}[{i}]", out)
    elif value is not None:
        out[prefix] = _go_fmt(value)
    return out


def _field_diffs(old: dict[str, str] | None, new: dict[str, str] | None, contextual: bool) -> list[dict]:
    old = old or {}
    new = new or {}
    diffs = []
    for name in set(old) | set(new):
        o, n = old.get(name, ""), new.get(name, "")
        if o == n:
            if not contextual:
                continue
            kind = "None"
        elif o == "":
            kind = "Added"
        elif n == "":
            kind = "Deleted"
        else:
            kind = "Edited"
        diffs.append({"Type": kind, "Name": name, "Old": o, "New": n, "Annotations": None})
    diffs.sort(key=lambda d: (d["Name"], d["Old"], d["New"]))
    return diffs


def _sort_objects(objects: list[dict]) -> list[dict] | None:
    if not objects:
        return None
    objects.sort(key=lambda o: (o["Name"], _RANK[o["Type"]], len(o["Fields"] or ()), len(o["Objects"] or ())))
    return objects


def _string_set_diff(name: str, old: list | None, new: list | None) -> dict | None:
    old_set = {_go_fmt(v) for v in old or []}
    new_set = {_go_fmt(v) for v in new or []}
    if old_set == new_set:
        return None
    fields = [{"Type": "Deleted", "Name": name, "Old": v, "New": "", "Annotations": None} for v in old_set - new_set]
    fields += [{"Type": "Added", "Name": name, "Old": "", "New": v, "Annotations": None} for v in new_set - old_set]
    fields.sort(key=lambda d: (d["Name"], d["Old"], d["New"]))
    added, removed = bool(new_set - old_set), bool(old_set - new_set)
    kind = "Edited" if added and removed else ("Added" if added else "Deleted")
    return {"Type": kind, "Name": name, "Fields": fields, "Objects": None}


def _object_kind(old: Any, new: Any, fields: list[dict], objects: list[dict]) -> str | None:
    if old is None and new is None:
        return None
    if old is None:
        return "Added"
    if new is None:
        return "Deleted"
    if any(f["Type"] != "None" for f in fields) or any(o["Type"] != "None" for o in objects):
        return "Edited"
    return None


def _object_diff(name: str, old: dict | None, new: dict | None) -> dict | None:
    """A contextual ObjectDiff of two JSON objects (primitiveObjectDiff & co)."""
    if old == new:
        return None
    if name in _FLAT_OBJECTS:
        fields = _field_diffs(_flatten_all(old) if old else None, _flatten_all(new) if new else None, True)
        objects: list[dict] = []
    else:
        fields = _field_diffs(_flatten_primitive(old) if old is not None else None,
                              _flatten_primitive(new) if new is not None else None, old is not None and new is not None)
        objects = _nested_objects(old or {}, new or {}, exclude=())
    kind = _object_kind(old, new, fields, objects)
    if kind is None:
        return None
    return {"Type": kind, "Name": name, "Fields": fields or None, "Objects": _sort_objects(objects)}


def _match_key(item: dict) -> Any:
    for key in ("Name", "Label", "DestPath", "LTarget"):
        if key in item:
            return (key, item[key])
    return None


def _list_diffs(key: str, old: list | None, new: list | None) -> list[dict]:
    """Lists of structs: unchanged elements drop out, the rest pair up by name or position."""
    name = _SINGULAR.get(key, key.removesuffix("s"))
    old_items = [o for o in old or [] if isinstance(o, dict)]
    new_items = [n for n in new or [] if isinstance(n, dict)]
    unmatched_new = list(new_items)
    rest_old = []
    for item in old_items:
        if item in unmatched_new:
            unmatched_new.remove(item)
        else:
            rest_old.append(item)
    out = []
    for item in rest_old:
        partner = None
        mk = _match_key(item)
        for cand in unmatched_new:
            if mk is not None and _match_key(cand) == mk:
                partner = cand
                break
        if partner is None and unmatched_new and (mk is None or _match_key(unmatched_new[0]) is None):
            partner = unmatched_new[0]
        if partner is None and len(rest_old) == 1 and len(unmatched_new) == 1:
            partner = unmatched_new[0]  # Nomad's "trivial case": one old, one new
        if partner is not None:
            unmatched_new.remove(partner)
        diff = _object_diff(name, item, partner)
        if diff:
            out.append(diff)
    for item in unmatched_new:
        diff = _object_diff(name, None, item)
        if diff:
            out.append(diff)
    return out


def _nested_objects(old: dict, new: dict, exclude: Iterable[str]) -> list[dict]:
    skip = set(exclude) | _MAP_FIELDS
    out: list[dict] = []
    for key in sorted(set(old) | set(new)):
        if key in skip:
            continue
        o, n = old.get(key), new.get(key)
        if _is_scalar(o) and _is_scalar(n):
            continue
        if isinstance(o, dict) or isinstance(n, dict):
            diff = _object_diff(key, o if isinstance(o, dict) else None, n if isinstance(n, dict) else None)
            if diff:
                out.append(diff)
        elif isinstance(o, list) or isinstance(n, list):
            sample = (o or []) + (n or [])
            if all(_is_scalar(v) for v in sample):
                diff = _string_set_diff(key, o, n)
                if diff:
                    out.append(diff)
            else:
                out.extend(_list_diffs(key, o, n))
    return out


def _task_diff(old: dict | None, new: dict | None) -> dict:
    name = (new or old or {}).get("Name", "")
    kind = "Added" if old is None else "Deleted" if new is None else ("None" if old == new else "Edited")
    fields = _field_diffs(_flatten_primitive(old, ("Name",)) if old is not None else None,
                          _flatten_primitive(new, ("Name",)) if new is not None else None, False)
    objects = _nested_objects(old or {}, new or {}, exclude=("Name",))
    return {"Type": kind, "Name": name, "Fields": fields or None, "Objects": _sort_objects(objects), "Annotations": None}


def _group_diff(old: dict | None, new: dict | None) -> dict:
    name = (new or old or {}).get("Name", "")
    kind = "Added" if old is None else "Deleted" if new is None else ("None" if old == new else "Edited")
    fields = _field_diffs(_flatten_primitive(old, ("Name",)) if old is not None else None,
                          _flatten_primitive(new, ("Name",)) if new is not None else None, False)
    objects = _nested_objects(old or {}, new or {}, exclude=("Name", "Tasks"))
    old_tasks = {t.get("Name"): t for t in (old or {}).get("Tasks") or []}
    new_tasks = {t.get("Name"): t for t in (new or {}).get("Tasks") or []}
    tasks = [_task_diff(old_tasks.get(n), new_tasks.get(n)) for n in sorted(set(old_tasks) | set(new_tasks), key=str)]
    return {"Type": kind, "Name": name, "Fields": fields or None, "Objects": _sort_objects(objects),
            "Tasks": tasks or None, "Updates": None}


def job_diff(old: dict | None, new: dict | None) -> dict:
    """JobDiff of two API-JSON jobs (server-set fields are ignored)."""
    kind = "Added" if old is None else "Deleted" if new is None else "None"
    job_id = (new or old or {}).get("ID", "")
    fields = _field_diffs(_flatten_primitive(old, _JOB_FILTER) if old is not None else None,
                          _flatten_primitive(new, _JOB_FILTER) if new is not None else None, False)
    objects = _nested_objects(old or {}, new or {}, exclude=_JOB_FILTER)
    old_groups = {g.get("Name"): g for g in (old or {}).get("TaskGroups") or []}
    new_groups = {g.get("Name"): g for g in (new or {}).get("TaskGroups") or []}
    groups = [_group_diff(old_groups.get(n), new_groups.get(n)) for n in sorted(set(old_groups) | set(new_groups), key=str)]
    if kind == "None" and (
        any(f["Type"] != "None" for f in fields)
        or any(o["Type"] != "None" for o in objects)
        or any(g["Type"] != "None" for g in groups)
    ):
        kind = "Edited"
    return {"Type": kind, "ID": job_id, "Fields": fields or None, "Objects": _sort_objects(objects),
            "TaskGroups": groups or None}


def _task_is_destructive(task_diff: dict) -> bool:
    """scheduler/annotate.go annotateTask: what forces a create/destroy update."""
    for f in task_diff["Fields"] or ():
        if f["Name"] != "KillTimeout":
            return True
    for o in task_diff["Objects"] or ():
        if o["Name"] not in ("LogConfig", "Service", "Constraint"):
            return True
    return False


def _annotate(diff: dict, updates: dict[str, dict]) -> None:
    """scheduler/annotate.go: Updates per group, Count and task annotations."""
    names = [("Ignore", "ignore"), ("Place", "create"), ("Migrate", "migrate"), ("Stop", "destroy"),
             ("InPlaceUpdate", "in-place update"), ("DestructiveUpdate", "create/destroy update"), ("Canary", "canary")]
    for group in diff["TaskGroups"] or ():
        desired = updates.get(group["Name"])
        if desired is not None:
            group["Updates"] = {label: desired[key] for key, label in names if desired.get(key)}
        for f in group["Fields"] or ():
            if f["Name"] == "Count":
                old = int(f["Old"] or 0)
                new = int(f["New"] or 0)
                if old < new:
                    f["Annotations"] = ["forces create"]
                elif new < old:
                    f["Annotations"] = ["forces destroy"]
        for task in group["Tasks"] or ():
            if task["Type"] == "None":
                continue
            if group["Type"] in ("Added", "Deleted") and task["Type"] in ("Added", "Deleted"):
                task["Annotations"] = ["forces create" if task["Type"] == "Added" else "forces destroy"]
            elif _task_is_destructive(task):
                task["Annotations"] = ["forces create/destroy update"]
            else:
                task["Annotations"] = ["forces in-place update"]


# --------------------------------------------------------------------------
# recording and faults


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    #: Decoded path as Nomad's router sees it (``r.URL.Path``).
    path: str
    #: The request target exactly as sent (path and query).
    target: str
    #: Query parameters, first value of each.
    query: dict[str, str]
    query_all: dict[str, list[str]]
    #: Headers as sent (repeated headers joined with ", ").
    headers: dict[str, str]
    body: bytes
    #: The body decoded as JSON, or None (absent or not JSON).
    json: Any
    #: X-Nomad-Token, else the Bearer token of Authorization, else None.
    token: str | None
    #: ``?namespace=`` or "default" (what a job/variable query would use).
    namespace: str
    region: str | None
    #: True for a blocking query (``?index=`` > 0).
    blocking: bool
    index: int | None
    wait: str | None
    #: time.monotonic() at arrival.
    time: float
    #: TLS SNI the client sent (None over plain HTTP or without SNI).
    sni: str | None = None
    #: Subject common name of the client certificate (mTLS), if any.
    client_cert_cn: str | None = None
    #: HTTP status answered (None while in flight, or when dropped/hung).
    status: int | None = None
    #: Name of the injected fault that handled this request, if any.
    fault: str | None = None
    #: Seconds the request took in the fake (including blocking and latency).
    duration: float | None = None

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Fault:
    """An injected misbehaviour; see :meth:`FakeNomad.inject`."""

    kind: str  # latency | status | hang | drop | truncate | non_json | redirect
    path: re.Pattern | None = None
    method: str | None = None
    latency: float = 0.0
    status: int = 500
    body: str = ""
    content_type: str = "text/plain"
    location: str | None = None
    times: int | None = None  # how many matching requests to affect (None: all)
    skip: int = 0  # let this many matching requests through first
    hits: int = 0  # requests affected so far
    seen: int = 0  # matching requests seen so far
    job: str | None = None  # only requests whose JSON body's Job.ID is this

    def matches(self, method: str, path: str, body: Any = None) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.job is not None:
            job = body.get("Job") if isinstance(body, dict) else None
            if not isinstance(job, dict) or job.get("ID") != self.job:
                return False
        return self.path is None or bool(self.path.search(path))


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    action: str | None = None  # None | "drop" | "hang" | "truncate"


class _Error(Exception):
    """An error answered as Nomad does: a text/plain body with a status code."""

    def __init__(self, status: int, message: str, index: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.index = index


@dataclass
class _Rollout:
    """What the fake's scheduler still has to do for one deployment or job."""

    key: tuple[str, str]
    steps: list[str]
    interval: float | None
    deployment_id: str | None = None
    failure: dict | None = None
    job_version: int = 0
    pos: int = 0
    done: bool = False
    generation: int = 0  # bumped when the script is replaced: stale timers are ignored


@dataclass
class _JobRecord:
    namespace: str
    job_id: str
    job: dict
    versions: dict[int, dict] = field(default_factory=dict)
    submissions: dict[int, dict] = field(default_factory=dict)


def _job_key(ns: str, job_id: str) -> tuple[str, str]:
    return (ns, job_id)


# Fields the server owns; removed before comparing specs (Job.SpecChanged).
_SERVER_JOB_FIELDS = (
    "Status", "StatusDescription", "Stable", "Version", "CreateIndex", "ModifyIndex",
    "JobModifyIndex", "SubmitTime", "NomadTokenID", "VaultToken",
)


def _spec(job: dict) -> dict:
    return {k: v for k, v in job.items() if k not in _SERVER_JOB_FIELDS}


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _is_periodic(job: dict) -> bool:
    return bool(job.get("Periodic"))


def _is_parameterized(job: dict) -> bool:
    return bool(job.get("ParameterizedJob"))


def _group_update(job: dict, group: dict) -> dict | None:
    """The update block that applies to a group (group-level wins), if it enables deployments."""
    if job.get("Type", "service") != "service":
        return None
    update = group.get("Update") or job.get("Update")
    if not update or int(update.get("MaxParallel") or 0) <= 0:
        return None
    merged = dict(job.get("Update") or {})
    merged.update(group.get("Update") or {})
    return merged


def _task_image(group: dict) -> str:
    for task in group.get("Tasks") or []:
        image = (task.get("Config") or {}).get("image")
        if image:
            return str(image)
    return "example/image:latest"


# --------------------------------------------------------------------------
# the fake


class FakeNomad:
    """A fake Nomad agent on 127.0.0.1 (see the module docstring).

    Knobs (all attributes can be changed while it runs):

    * ``acl_token``: when set, every ACL-checked request needs this token
      (403 "Permission denied" without a token, "ACL token not found" with
      another one).
    * ``block_cap``: seconds a blocking query waits at most (default 1.0;
      None = Nomad's real wait). Nomad itself waits ``?wait=`` (default and
      maximum 300 s) plus up to wait/16 jitter (``jitter=False`` turns the
      jitter off); the cap is applied after that.
    * ``tick``: default interval (seconds) between scheduler steps.
    * ``default_outcome``: "successful" (default), "failed", "deadline" or
      "running": how deployments progress without a per-job script.
    * ``warnings``: the Warnings string of plan/register responses.
    * ``namespaces``: existing namespaces (registering into another one fails
      like Nomad); None accepts any.
    """

    def __init__(
        self,
        *,
        tls: Any = None,
        require_client_cert: bool = False,
        acl_token: str | None = None,
        block_cap: float | None = 1.0,
        jitter: bool = True,
        tick: float = 0.05,
        default_outcome: str = "successful",
        region: str = "global",
        datacenter: str = "dc1",
        namespaces: Iterable[str] | None = ("default",),
        host: str = "127.0.0.1",
    ):
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.acl_token = acl_token
        self.block_cap = block_cap
        self.jitter = jitter
        self.tick = tick
        self.default_outcome = default_outcome
        self.region = region
        self.datacenter = datacenter
        self.namespaces: set[str] | None = set(namespaces) if namespaces is not None else None
        self.host = host
        self.warnings = ""
        #: Body of the 404 for paths Nomad has no route for. Nomad's root
        #: fallthrough (command/agent/http.go) sends an empty body.
        self.unknown_path_body = ""
        #: Exceptions raised inside the fake's own handlers (bugs of the fake).
        self.internal_errors: list[str] = []
        #: ``placement_hook(job, group) -> AllocationMetric dict | None``.
        self.placement_hook: Callable[[dict, dict], dict | None] | None = None

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._index = 10
        self._table_index: dict[str, int] = {}
        self._jobs: dict[tuple[str, str], _JobRecord] = {}
        self._deployments: dict[str, dict] = {}
        self._dep_meta: dict[str, dict] = {}
        self._allocs: dict[str, dict] = {}
        self._evals: dict[str, dict] = {}
        self._variables: dict[tuple[str, str], dict] = {}
        self._scripts: dict[tuple[str, str], dict] = {}
        self._batch_scripts: dict[tuple[str, str], dict] = {}
        self._stop_delays: dict[tuple[str, str], float | None] = {}
        self._rollouts: dict[str, _Rollout] = {}  # by deployment id or "job:<ns>/<id>:<n>"
        self._placement_failures: list[tuple[str | None, str | None, str, dict]] = []

        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._record_lock = threading.Lock()
        self._hang_generation = 0  # release_hangs() bumps it; hung requests compare
        self._stopping = threading.Event()

        self._clock_cv = threading.Condition()
        self._clock_heap: list[tuple[float, int, Callable[[], None]]] = []
        self._clock_seq = itertools.count()
        self._clock_thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._server_thread: threading.Thread | None = None
        self._alloc_counter = itertools.count()
        self.node_id = str(uuid.uuid4())

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        context = None
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2  # Nomad's default tls_min_version
            context.load_cert_chain(str(self.tls.server_cert), str(self.tls.server_key))
            if self.require_client_cert:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(str(self.tls.ca_cert))

            def remember_sni(sock, server_name, _ctx):
                sock._fakenomad_sni = server_name

            context.sni_callback = remember_sni
        self._server = _Server((self.host, 0), _Handler, self, context)
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fakenomad-http", daemon=True
        )
        self._server_thread.start()
        self._clock_thread = threading.Thread(target=self._clock_loop, name="fakenomad-clock", daemon=True)
        self._clock_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        with self._clock_cv:
            self._clock_cv.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all_connections()
            self._server.server_close()
        for thread in (self._server_thread, self._clock_thread):
            if thread is not None:
                thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS): a NOMAD_ADDR."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def ca_path(self) -> str | None:
        return str(self.tls.ca_cert) if self.tls is not None else None

    @property
    def client_cert(self) -> str | None:
        return str(self.tls.client_cert) if self.tls is not None else None

    @property
    def client_key(self) -> str | None:
        return str(self.tls.client_key) if self.tls is not None else None

    @property
    def server_name(self) -> str | None:
        return self.tls.server_name if self.tls is not None else None

    @property
    def index(self) -> int:
        """The current global (raft) index."""
        with self._lock:
            return self._index

    # ---------------------------------------------------------------- recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._record_lock:
            return list(self._requests)

    def requests_to(self, path_regex: str = "", method: str | None = None) -> list[RecordedRequest]:
        """Requests whose path matches ``path_regex`` (re.search) and method."""
        pattern = re.compile(path_regex)
        return [
            r for r in self.requests
            if pattern.search(r.path) and (method is None or r.method == method.upper())
        ]

    def last_request(self, path_regex: str = "", method: str | None = None) -> RecordedRequest:
        found = self.requests_to(path_regex, method)
        if not found:
            raise AssertionError(f"no request to {path_regex!r} ({method or 'any method'}) was made")
        return found[-1]

    def count(self, path_regex: str = "", method: str | None = None, blocking: bool | None = None) -> int:
        return sum(
            1 for r in self.requests_to(path_regex, method) if blocking is None or r.blocking == blocking
        )

    def query_stats(self, path_regex: str = "") -> dict[str, dict[str, int]]:
        """Per path: how many requests were blocking and how many were not."""
        stats: dict[str, dict[str, int]] = {}
        for r in self.requests_to(path_regex):
            entry = stats.setdefault(r.path, {"blocking": 0, "non_blocking": 0})
            entry["blocking" if r.blocking else "non_blocking"] += 1
        return stats

    def clear_requests(self) -> None:
        with self._record_lock:
            self._requests.clear()

    # ---------------------------------------------------------------- faults

    def inject(
        self,
        kind: str,
        path: str | None = None,
        *,
        method: str | None = None,
        latency: float = 0.0,
        status: int = 500,
        body: str = "",
        content_type: str = "text/plain",
        location: str | None = None,
        times: int | None = None,
        skip: int = 0,
        job: str | None = None,
    ) -> Fault:
        """Add a fault for requests whose path matches ``path`` (re.search; None: all).

        Kinds: ``latency`` (sleep ``latency`` s, then answer normally; latencies
        add up), ``status`` (answer ``status`` with a text body), ``hang``
        (read the request, never answer until the client goes away, the fake
        stops or :meth:`release_hangs`), ``drop`` (close the connection without
        a response), ``truncate`` (send headers announcing a longer body, then
        close), ``non_json`` (a 200 whose body is not JSON), ``redirect`` (a
        301 to ``location``). ``times`` limits how many requests are affected,
        ``skip`` lets the first N matching requests through; ``job`` limits the fault
        to requests whose JSON body is about that job (``{"Job": {"ID": job}}``: the
        registration or plan of one job among several).
        """
        if kind not in ("latency", "status", "hang", "drop", "truncate", "non_json", "redirect"):
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(
            kind=kind, path=re.compile(path) if path is not None else None, method=method,
            latency=latency, status=status, body=body, content_type=content_type,
            location=location, times=times, skip=skip, job=job,
        )
        with self._record_lock:
            self._faults.append(fault)
        return fault

    def add_latency(self, seconds: float, path: str | None = None, **kw: Any) -> Fault:
        return self.inject("latency", path, latency=seconds, **kw)

    def fail(self, path: str | None, status: int = 500, body: str = "Internal error", **kw: Any) -> Fault:
        return self.inject("status", path, status=status, body=body, **kw)

    def hang(self, path: str | None = None, **kw: Any) -> Fault:
        return self.inject("hang", path, **kw)

    def drop(self, path: str | None = None, **kw: Any) -> Fault:
        return self.inject("drop", path, **kw)

    def truncate(self, path: str | None = None, **kw: Any) -> Fault:
        return self.inject("truncate", path, **kw)

    def non_json(self, path: str | None = None, body: str = "<html><body>502 Bad Gateway</body></html>", **kw: Any) -> Fault:
        return self.inject("non_json", path, body=body, content_type=kw.pop("content_type", "text/html"), **kw)

    def redirect(self, path: str | None = None, location: str = "/v1/jobs", **kw: Any) -> Fault:
        return self.inject("redirect", path, location=location, **kw)

    def clear_faults(self) -> None:
        with self._record_lock:
            self._faults.clear()
        self.release_hangs()

    def release_hangs(self) -> None:
        """Close every connection currently held by a ``hang`` fault."""
        self._hang_generation += 1

    # ---------------------------------------------------------------- scheduling knobs

    def progress(
        self,
        job_id: str,
        outcome: str | None = None,
        *,
        steps: list[str] | None = None,
        interval: float | None | str = "default",
        failure: dict | None = None,
        namespace: str = "default",
    ) -> None:
        """Script how deployments of ``job_id`` progress.

        ``outcome`` builds the steps: "successful" (each new allocation is
        placed, started and becomes healthy, one step per tick, then the
        deployment succeeds), "failed" (the first new allocation fails, the
        deployment fails with "Failed due to unhealthy allocations"),
        "deadline" (allocations are placed but never healthy; "Failed due to
        progress deadline") or "running" (never finishes). ``steps`` gives the
        exact sequence instead; a step is one of ``place``, ``start``,
        ``healthy``, ``unhealthy``, ``succeed``, ``fail``, ``deadline``,
        ``wait``, optionally ``step:group``. ``interval`` is the time between
        steps (None: only :meth:`advance` moves it). ``failure`` replaces the
        failed task's event: ``{"Type": ..., "DisplayMessage": ...}``.

        The script applies to the job's current deployment if it has not moved
        yet, and to every later deployment of the job (rollbacks excepted).
        """
        script = {
            "outcome": outcome,
            "steps": list(steps) if steps is not None else None,
            "interval": self.tick if interval == "default" else interval,
            "failure": failure,
        }
        with self._lock:
            self._scripts[_job_key(namespace, job_id)] = script
            for rollout in self._rollouts.values():
                if rollout.key == _job_key(namespace, job_id) and rollout.deployment_id and rollout.pos == 0 and not rollout.done:
                    dep = self._deployments[rollout.deployment_id]
                    rollout.steps = self._script_steps(dep, script)
                    rollout.interval = script["interval"]
                    rollout.failure = failure
                    rollout.generation += 1
                    if rollout.interval is not None:
                        self._schedule_step(rollout)

    def batch_outcome(
        self,
        job_id: str,
        outcome: str = "complete",
        *,
        failure: dict | None = None,
        runs_for: float = 0.0,
        namespace: str = "default",
    ) -> None:
        """How the allocations of later versions of a batch job (no deployment) end:
        "complete" (the default: the task exits 0), "failed" (the task dies; ``failure``
        replaces its event, e.g. ``{"Type": "Terminated", "DisplayMessage": "Exit Code: 3",
        "ExitCode": 3}``) or "running" (never ends; :meth:`finish_batch` ends it).
        ``runs_for`` seconds pass between the task's start and its end. For a periodic
        job, the script applies to its launches (children without a script of their own)."""
        if outcome not in ("complete", "failed", "running"):
            raise ValueError(f"unknown batch outcome {outcome!r}")
        with self._lock:
            self._batch_scripts[_job_key(namespace, job_id)] = {"outcome": outcome, "failure": failure,
                                                                "runs_for": runs_for}

    def finish_batch(self, job_id: str, outcome: str = "complete", *, failure: dict | None = None,
                     namespace: str = "default") -> int:
        """End the running allocations of a batch job now, as its task would by exiting
        ("complete": exit 0; "failed": ``failure`` as its event). Returns how many ended."""
        if outcome not in ("complete", "failed"):
            raise ValueError(f"unknown batch outcome {outcome!r}")
        with self._lock:
            rec = self._jobs.get(_job_key(namespace, job_id))
            ended = 0
            for alloc in self._allocs_of(namespace, job_id):
                if alloc["DesiredStatus"] == "run" and alloc["ClientStatus"] in ("pending", "running"):
                    if alloc["ClientStatus"] == "pending":
                        self._start_alloc(alloc)
                    if outcome == "complete":
                        self._finish_alloc(alloc, killed=False)
                    else:
                        self._fail_alloc(alloc, failure)
                    ended += 1
            if rec is not None:
                self._refresh_status(rec)
            return ended

    def launch_periodic(self, job_id: str, namespace: str = "default", *, at: int | None = None) -> str:
        """What Nomad's periodic dispatcher does at a launch time (nomad/periodic.go
        dispatch): a child job ``<id>/periodic-<unix time>``, whose ID is returned.
        Refused, as the dispatcher tracks no such job, for a stopped job or one whose
        launches are disabled (``periodic { enabled = false }``). ``at``: the launch time
        (unix seconds) in the child's id, default now (see :meth:`backdate` for the rest)."""
        with self._lock:
            try:
                return self._periodic_force_locked(namespace, job_id, at=at)["ChildID"]
            except _Error as error:
                raise ValueError(error.message) from None

    def backdate(self, job_id: str, seconds: float, namespace: str = "default") -> None:
        """Move a job's submit time and its allocations' task start and finish times
        ``seconds`` into the past, as if all of it had happened that long ago."""
        shift = int(seconds * 1_000_000_000)

        def earlier(text: str) -> str:
            if text == ZERO_TIME:
                return text
            # as _go_time writes it: seconds in UTC, then an optional fraction, then "Z"
            seconds = _dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
            fraction = text[19:].rstrip("Z").lstrip(".")
            ns = int(seconds.timestamp()) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)
            return _go_time(ns - shift)

        with self._lock:
            rec = self._jobs.get(_job_key(namespace, job_id))
            if rec is None:
                raise ValueError(f"no job {job_id!r}")
            rec.job["SubmitTime"] = int(rec.job.get("SubmitTime") or _now_ns()) - shift
            for alloc in self._allocs_of(namespace, job_id):
                for state in (alloc["TaskStates"] or {}).values():
                    state["StartedAt"] = earlier(state["StartedAt"])
                    state["FinishedAt"] = earlier(state["FinishedAt"])

    def restart_tasks(self, job_id: str, restarts: int = 1, namespace: str = "default") -> int:
        """The client restarted the tasks of the job's running allocations ``restarts``
        times more (TaskStates[*].Restarts, LastRestart, a "Restarting" event). Returns how
        many allocations."""
        with self._lock:
            touched = 0
            for alloc in self._allocs_of(namespace, job_id):
                if alloc["ClientStatus"] != "running":
                    continue
                for state in (alloc["TaskStates"] or {}).values():
                    state["Restarts"] += restarts
                    state["LastRestart"] = _go_time(_now_ns())
                    state["Events"].append(self._event("Restarting", "Task restarting in 15s",
                                                       RestartReason="Restart within policy"))
                self._touch_alloc(alloc)
                touched += 1
            return touched

    def stop_delay(self, job_id: str, seconds: float | None, namespace: str = "default") -> None:
        """How long the client takes to stop an allocation of ``job_id`` once the
        scheduler has told it to (default: one tick); None: it never does (a task that
        outlives its kill timeout, or a client that no longer answers). A number also
        finishes, after that long, the stops still outstanding."""
        with self._lock:
            self._stop_delays[_job_key(namespace, job_id)] = seconds
            if seconds is None:
                return
            for alloc in self._allocs_of(namespace, job_id):
                if alloc["DesiredStatus"] == "stop" and alloc["ClientStatus"] in ("pending", "running"):
                    self._after(seconds, lambda alloc_id=alloc["ID"]: self._finish_stop(alloc_id))

    def advance(self, job_id: str, steps: int = 1, namespace: str = "default") -> dict | None:
        """Run the next ``steps`` scheduler steps of the job's active rollout now."""
        with self._lock:
            for _ in range(steps):
                rollout = self._active_rollout(_job_key(namespace, job_id))
                if rollout is None:
                    break
                rollout.generation += 1  # the timer chain, if any, restarts from here
                self._run_step(rollout, reschedule=rollout.interval is not None)
            return copy.deepcopy(self._latest_deployment(namespace, job_id))

    def fail_placement(
        self,
        group: str,
        job_id: str | None = None,
        *,
        namespace: str | None = None,
        metrics: dict | None = None,
    ) -> None:
        """Make placements of ``group`` fail: plan reports FailedTGAllocs for it,
        register places nothing for it (its eval completes with FailedTGAllocs
        and a blocked eval; a deployment then fails on its progress deadline)."""
        with self._lock:
            self._placement_failures.append((job_id, namespace, group, metrics or {}))

    def clear_placement_failures(self) -> None:
        with self._lock:
            self._placement_failures.clear()

    # ---------------------------------------------------------------- state inspection

    def job(self, job_id: str, namespace: str = "default") -> dict | None:
        with self._lock:
            rec = self._jobs.get(_job_key(namespace, job_id))
            return copy.deepcopy(rec.job) if rec else None

    def job_ids(self, prefix: str = "", namespace: str = "default") -> list[str]:
        """The ids of the jobs registered (and not purged) whose id starts with ``prefix``."""
        with self._lock:
            return sorted(job_id for ns, job_id in self._jobs if ns == namespace and job_id.startswith(prefix))

    def job_versions(self, job_id: str, namespace: str = "default") -> list[dict]:
        with self._lock:
            rec = self._jobs.get(_job_key(namespace, job_id))
            return [copy.deepcopy(v) for _, v in sorted(rec.versions.items(), reverse=True)] if rec else []

    def deployment(self, job_id: str, namespace: str = "default") -> dict | None:
        """The job's latest deployment (a copy), or None."""
        with self._lock:
            return copy.deepcopy(self._latest_deployment(namespace, job_id))

    def deployments(self, job_id: str, namespace: str = "default") -> list[dict]:
        with self._lock:
            deps = [d for d in self._deployments.values() if d["JobID"] == job_id and d["Namespace"] == namespace]
            return copy.deepcopy(sorted(deps, key=lambda d: d["CreateIndex"], reverse=True))

    def allocations(self, job_id: str, namespace: str = "default") -> list[dict]:
        with self._lock:
            return [self._alloc_stub(a) for a in self._allocs_of(namespace, job_id)]

    def variable(self, path: str, namespace: str = "default") -> dict | None:
        with self._lock:
            var = self._variables.get((namespace, path))
            return copy.deepcopy(var) if var else None

    def put_variable(self, path: str, items: dict[str, str], namespace: str = "default") -> dict:
        """Seed a variable directly (no request recorded, no ACL)."""
        with self._lock:
            return copy.deepcopy(self._var_set(namespace, path, dict(items)))

    def wait_for_deployment(self, job_id: str, namespace: str = "default", timeout: float = 5.0) -> dict:
        """Wait until the job's latest deployment is no longer running."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                dep = self._latest_deployment(namespace, job_id)
                if dep is not None and dep["Status"] not in ("running", "pending", "paused"):
                    return copy.deepcopy(dep)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"deployment of {job_id} still {dep and dep['Status']} after {timeout}s")
                self._changed.wait(remaining)

    # ================================================================ internals: state

    def _bump(self, *tables: str) -> int:
        self._index += 1
        for table in tables:
            self._table_index[table] = self._index
        self._changed.notify_all()
        return self._index

    def _table(self, *tables: str) -> int:
        return max([self._table_index.get(t, 0) for t in tables] + [1])

    def _allocs_of(self, ns: str, job_id: str) -> list[dict]:
        allocs = [a for a in self._allocs.values() if a["Namespace"] == ns and a["JobID"] == job_id]
        return sorted(allocs, key=lambda a: a["CreateIndex"])

    @staticmethod
    def _alloc_terminal(alloc: dict) -> bool:
        # structs.Allocation.TerminalStatus: desired stop/evict, or client complete/failed/lost
        if alloc["DesiredStatus"] in ("stop", "evict"):
            return True
        return alloc["ClientStatus"] in ("complete", "failed", "lost")

    def _live_allocs(self, ns: str, job_id: str, group: str | None = None) -> list[dict]:
        return [
            a for a in self._allocs_of(ns, job_id)
            if not self._alloc_terminal(a) and (group is None or a["TaskGroup"] == group)
        ]

    def _latest_deployment(self, ns: str, job_id: str) -> dict | None:
        deps = [d for d in self._deployments.values() if d["JobID"] == job_id and d["Namespace"] == ns]
        return max(deps, key=lambda d: d["CreateIndex"]) if deps else None

    def _placement_failure(self, job: dict, group: dict) -> dict | None:
        if self.placement_hook is not None:
            metrics = self.placement_hook(copy.deepcopy(job), copy.deepcopy(group))
            if metrics is not None:
                return self._alloc_metric(metrics)
        for job_id, ns, group_name, metrics in self._placement_failures:
            if group_name != group.get("Name"):
                continue
            if job_id is not None and job_id != job.get("ID"):
                continue
            if ns is not None and ns != job.get("Namespace", "default"):
                continue
            return self._alloc_metric(metrics)
        return None

    def _alloc_metric(self, overrides: dict) -> dict:
        # structs.AllocMetric; the defaults describe a constraint that filtered every node
        metric = {
            "NodesEvaluated": 3,
            "NodesFiltered": 3,
            "NodesInPool": 3,
            "NodesAvailable": {self.datacenter: 3},
            "ClassFiltered": None,
            "ConstraintFiltered": {"${attr.kernel.name} = linux": 3},
            "NodesExhausted": 0,
            "ClassExhausted": None,
            "DimensionExhausted": None,
            "QuotaExhausted": None,
            "ResourcesExhausted": None,
            "Scores": None,
            "ScoreMetaData": None,
            "AllocationTime": 52_000,
            "CoalescedFailures": 0,
        }
        metric.update(copy.deepcopy(overrides))
        return metric

    def _job_status(self, rec: _JobRecord) -> str:
        """state_store.go getJobStatus."""
        job = rec.job
        if job.get("Type") == "system" or _is_periodic(job) or _is_parameterized(job):
            return "dead" if job.get("Stop") else "running"
        allocs = self._allocs_of(rec.namespace, rec.job_id)
        if any(not self._alloc_terminal(a) for a in allocs):
            return "running"
        evals = [e for e in self._evals.values() if e["JobID"] == rec.job_id and e["Namespace"] == rec.namespace]
        if any(e["Status"] in ("pending", "blocked") for e in evals):
            return "pending"
        if allocs or evals:
            return "dead"
        return "pending"

    def _refresh_status(self, rec: _JobRecord) -> None:
        if self._jobs.get((rec.namespace, rec.job_id)) is not rec:
            return
        status = self._job_status(rec)
        if status != rec.job.get("Status"):
            rec.job["Status"] = status
            rec.job["ModifyIndex"] = self._bump("jobs")

    # ---------------------------------------------------------------- evals

    def _new_eval(self, ns: str, job: dict, triggered_by: str, job_modify_index: int, index: int,
                  priority: int | None = None) -> dict:
        now = _now_ns()
        ev = {
            "ID": str(uuid.uuid4()),
            "Namespace": ns,
            "Priority": priority if priority is not None else job.get("Priority", 50),
            "Type": job.get("Type", "service"),
            "TriggeredBy": triggered_by,
            "JobID": job["ID"],
            "JobModifyIndex": job_modify_index,
            "NodeID": "",
            "DeploymentID": "",
            "Status": "pending",
            "StatusDescription": "",
            "Wait": 0,
            "NextEval": "",
            "PreviousEval": "",
            "BlockedEval": "",
            "FailedTGAllocs": None,
            "QueuedAllocations": None,
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": now,
            "ModifyTime": now,
        }
        self._evals[ev["ID"]] = ev
        return ev

    def _complete_eval(self, eval_id: str, failed: dict[str, dict] | None = None, queued: dict | None = None) -> None:
        ev = self._evals.get(eval_id)
        if ev is None or ev["Status"] != "pending":
            return
        ev["Status"] = "complete"
        ev["QueuedAllocations"] = queued or {}
        if failed:
            ev["FailedTGAllocs"] = failed
            blocked_index = self._bump("evals")
            job = {"ID": ev["JobID"], "Type": ev["Type"], "Priority": ev["Priority"]}
            blocked = self._new_eval(ev["Namespace"], job, "queued-allocs", ev["JobModifyIndex"], blocked_index)
            blocked["Status"] = "blocked"
            blocked["StatusDescription"] = "created to place remaining allocations"
            blocked["PreviousEval"] = ev["ID"]
            ev["BlockedEval"] = blocked["ID"]
        ev["ModifyTime"] = _now_ns()
        ev["ModifyIndex"] = self._bump("evals")
        rec = self._jobs.get((ev["Namespace"], ev["JobID"]))
        if rec:
            self._refresh_status(rec)

    # ---------------------------------------------------------------- allocations

    def _new_alloc(self, rec: _JobRecord, group: dict, eval_id: str, deployment_id: str | None) -> dict:
        used = {a["_index"] for a in self._live_allocs(rec.namespace, rec.job_id, group["Name"])}
        slot = next(i for i in itertools.count() if i not in used)
        index = self._bump("allocs", "job_summary")
        now = _now_ns()
        alloc = {
            "ID": str(uuid.uuid4()),
            "EvalID": eval_id,
            "Name": f"{rec.job_id}.{group['Name']}[{slot}]",
            "Namespace": rec.namespace,
            "NodeID": self.node_id,
            "NodeName": "fake-client-1",
            "JobID": rec.job_id,
            "JobType": rec.job.get("Type", "service"),
            "JobVersion": rec.job.get("Version", 0),
            "TaskGroup": group["Name"],
            "AllocatedResources": None,
            "DesiredStatus": "run",
            "DesiredDescription": "",
            "ClientStatus": "pending",
            "ClientDescription": "No tasks have started",
            "DesiredTransition": {"Migrate": None, "Reschedule": None, "ForceReschedule": None, "NoShutdownDelay": None},
            "TaskStates": None,
            "DeploymentStatus": None,
            "FollowupEvalID": "",
            "NextAllocation": "",
            "RescheduleTracker": None,
            "PreemptedAllocations": None,
            "PreemptedByAllocation": "",
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": now,
            "ModifyTime": now,
            "_index": slot,
            "_deployment": deployment_id,
            "_tasks": [t.get("Name", "task") for t in group.get("Tasks") or []],
            "_image": _task_image(group),
        }
        if deployment_id is not None:
            alloc["DeploymentStatus"] = {"Healthy": None, "Timestamp": ZERO_TIME, "Canary": False, "ModifyIndex": 0}
        self._allocs[alloc["ID"]] = alloc
        return alloc

    def _touch_alloc(self, alloc: dict) -> None:
        alloc["ModifyIndex"] = self._bump("allocs", "job_summary")
        alloc["ModifyTime"] = _now_ns()

    @staticmethod
    def _event(kind: str, message: str, **extra: Any) -> dict:
        event = {
            "Type": kind,
            "Time": _now_ns(),
            "Message": "",
            "DisplayMessage": message,
            "Details": {},
            "FailsTask": False,
            "RestartReason": "",
            "SetupError": "",
            "DriverError": "",
            "ExitCode": 0,
            "Signal": 0,
            "KillTimeout": 0,
            "KillError": "",
            "KillReason": "",
            "StartDelay": 0,
            "DownloadError": "",
            "ValidationError": "",
            "DiskLimit": 0,
            "FailedSibling": "",
            "VaultError": "",
            "TaskSignalReason": "",
            "TaskSignal": "",
            "DriverMessage": "",
            "GenericSource": "",
        }
        event.update(extra)
        return event

    def _start_alloc(self, alloc: dict) -> None:
        now = _now_ns()
        states = {}
        for task in alloc["_tasks"]:
            states[task] = {
                "State": "running",
                "Failed": False,
                "Restarts": 0,
                "LastRestart": ZERO_TIME,
                "StartedAt": _go_time(now),
                "FinishedAt": ZERO_TIME,
                "Events": [
                    self._event("Received", "Task received by client"),
                    self._event("Task Setup", "Building Task Directory", Message="Building Task Directory"),
                    self._event("Driver", "Downloading image", DriverMessage="Downloading image"),
                    self._event("Started", "Task started by client"),
                ],
                "TaskHandle": None,
            }
        alloc["TaskStates"] = states
        alloc["ClientStatus"] = "running"
        alloc["ClientDescription"] = "Tasks are running"
        self._touch_alloc(alloc)

    def _fail_alloc(self, alloc: dict, failure: dict | None) -> None:
        now = _now_ns()
        message = f"Failed to pull `{alloc['_image']}`: API error (404): manifest for {alloc['_image']} not found: manifest unknown: manifest unknown"
        failure_event = self._event("Driver Failure", message, DriverError=message, FailsTask=False)
        if failure:
            failure_event.update(copy.deepcopy(failure))
        states = {}
        for i, task in enumerate(alloc["_tasks"]):
            events = [
                self._event("Received", "Task received by client"),
                self._event("Task Setup", "Building Task Directory", Message="Building Task Directory"),
                self._event("Driver", "Downloading image", DriverMessage="Downloading image"),
            ]
            if i == 0:
                events.append(dict(failure_event, Time=_now_ns()))
                events.append(self._event("Not Restarting", "Error was unrecoverable", FailsTask=True))
            else:
                events.append(self._event("Sibling Task Failed", f"Task's sibling {alloc['_tasks'][0]!r} failed",
                                          FailedSibling=alloc["_tasks"][0]))
            states[task] = {
                "State": "dead",
                "Failed": True,
                "Restarts": 0,
                "LastRestart": ZERO_TIME,
                "StartedAt": ZERO_TIME,
                "FinishedAt": _go_time(now),
                "Events": events,
                "TaskHandle": None,
            }
        alloc["TaskStates"] = states
        alloc["ClientStatus"] = "failed"
        alloc["ClientDescription"] = "Failed tasks"
        if alloc["DeploymentStatus"] is not None:
            alloc["DeploymentStatus"].update(Healthy=False, Timestamp=_go_time(now))
        self._touch_alloc(alloc)

    def _finish_alloc(self, alloc: dict, killed: bool) -> None:
        """Client side of a stop (killed) or of a batch task that exited 0."""
        now = _now_ns()
        for state in (alloc["TaskStates"] or {}).values():
            if state["State"] == "dead":
                continue
            if killed:
                state["Events"].append(self._event("Killing", "Sent interrupt. Waiting 5s before force killing"))
                state["Events"].append(self._event("Killed", "Task successfully killed"))
            else:
                state["Events"].append(self._event("Terminated", "Exit Code: 0"))
            state["State"] = "dead"
            state["FinishedAt"] = _go_time(now)
        if alloc["ClientStatus"] in ("pending", "running"):
            alloc["ClientStatus"] = "complete"
            alloc["ClientDescription"] = "All tasks have completed"
        self._touch_alloc(alloc)

    def _stop_alloc(self, alloc: dict, description: str) -> None:
        """Scheduler side of a stop; the client finishes it one tick later."""
        if alloc["DesiredStatus"] == "stop":
            return
        alloc["DesiredStatus"] = "stop"
        alloc["DesiredDescription"] = description
        self._touch_alloc(alloc)
        delay = self._stop_delays.get((alloc["Namespace"], alloc["JobID"]), self.tick)
        if delay is not None:
            self._after(delay, lambda alloc_id=alloc["ID"]: self._finish_stop(alloc_id))

    def _finish_stop(self, alloc_id: str) -> None:
        """Client side of a stop: the allocation ends as killed, unless it ended already."""
        a = self._allocs.get(alloc_id)
        if a is not None and a["ClientStatus"] in ("pending", "running"):
            self._finish_alloc(a, killed=True)
            rec = self._jobs.get((a["Namespace"], a["JobID"]))
            if rec:
                self._refresh_status(rec)

    # ---------------------------------------------------------------- clock

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        with self._clock_cv:
            heapq.heappush(self._clock_heap, (time.monotonic() + max(delay, 0.0), next(self._clock_seq), fn))
            self._clock_cv.notify()

    def _clock_loop(self) -> None:
        while not self._stopping.is_set():
            with self._clock_cv:
                if not self._clock_heap:
                    self._clock_cv.wait(0.5)
                    continue
                when, _, fn = self._clock_heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._clock_cv.wait(delay)
                    continue
                heapq.heappop(self._clock_heap)
            try:
                with self._lock:
                    fn()
            except Exception:  # noqa: BLE001 - a bug in the fake: keep it visible
                self.internal_errors.append(traceback.format_exc())

    # ---------------------------------------------------------------- rollouts

    def _script_for(self, key: tuple[str, str], rollback: bool) -> dict:
        if not rollback and key in self._scripts:
            return self._scripts[key]
        return {"outcome": None, "steps": None, "interval": self.tick, "failure": None}

    def _script_steps(self, dep: dict, script: dict) -> list[str]:
        if script.get("steps") is not None:
            return list(script["steps"])
        outcome = script.get("outcome") or self.default_outcome
        meta = self._dep_meta[dep["ID"]]
        new = sum(meta["new"].values())
        inplace = sum(meta["inplace"].values())
        blocked = bool(meta["blocked"])
        if outcome == "successful":
            steps = ["healthy"] * inplace + ["place", "start", "healthy"] * new
            return steps + (["wait", "wait", "deadline"] if blocked else ["succeed"])
        if outcome == "failed":
            return ["place", "start", "unhealthy", "fail"] if new else ["unhealthy", "fail"]
        if outcome == "deadline":
            return ["place"] * new + ["wait", "wait", "deadline"]
        if outcome == "running":
            return ["place", "start"] * new
        raise ValueError(f"unknown outcome {outcome!r}")

    def _schedule_step(self, rollout: _Rollout) -> None:
        if rollout.interval is None or rollout.done:
            return
        token = (rollout.pos, rollout.generation)

        def fire() -> None:
            if (rollout.pos, rollout.generation) == token and not rollout.done:
                self._run_step(rollout, reschedule=True)

        self._after(rollout.interval, fire)

    def _active_rollout(self, key: tuple[str, str]) -> _Rollout | None:
        for rollout in self._rollouts.values():
            if rollout.key == key and not rollout.done:
                return rollout
        return None

    def _run_step(self, rollout: _Rollout, reschedule: bool) -> None:
        if rollout.done:
            return
        if rollout.pos >= len(rollout.steps):
            rollout.done = True
            return
        step = rollout.steps[rollout.pos]
        rollout.pos += 1
        name, _, group = step.partition(":")
        if rollout.deployment_id is None:
            self._job_step(rollout, name)
        else:
            self._deployment_step(rollout, name, group or None)
        if rollout.pos >= len(rollout.steps):
            rollout.done = True
        elif reschedule:
            self._schedule_step(rollout)

    def _job_step(self, rollout: _Rollout, name: str) -> None:
        """Steps of jobs without deployments: place_all, start_all, complete_all, fail_all."""
        rec = self._jobs.get(rollout.key)
        if rec is None or rec.job.get("Version") != rollout.job_version or rec.job.get("Stop"):
            rollout.done = True
            return
        meta = rollout.failure or {}
        if name == "place_all":
            for group in rec.job.get("TaskGroups") or []:
                missing = int(group.get("Count", 1)) - len(self._live_allocs(rec.namespace, rec.job_id, group["Name"]))
                if group["Name"] in meta.get("blocked", ()):
                    continue
                for _ in range(max(missing, 0)):
                    self._new_alloc(rec, group, meta.get("eval", ""), None)
        elif name in ("start_all", "complete_all", "fail_all"):
            for alloc in self._allocs_of(rec.namespace, rec.job_id):
                if alloc["DesiredStatus"] != "run" or alloc["JobVersion"] != rollout.job_version:
                    continue
                if name == "start_all" and alloc["ClientStatus"] == "pending":
                    self._start_alloc(alloc)
                elif name == "complete_all" and alloc["ClientStatus"] == "running":
                    self._finish_alloc(alloc, killed=False)
                elif name == "fail_all" and alloc["ClientStatus"] == "running":
                    self._fail_alloc(alloc, meta.get("task"))
        self._refresh_status(rec)

    def _deployment_step(self, rollout: _Rollout, name: str, group_name: str | None) -> None:
        dep = self._deployments.get(rollout.deployment_id or "")
        rec = self._jobs.get(rollout.key)
        if dep is None or dep["Status"] != "running" or rec is None:
            rollout.done = True
            return
        meta = self._dep_meta[dep["ID"]]
        groups = {g["Name"]: g for g in meta["job"].get("TaskGroups") or []}
        mine = [a for a in self._allocs_of(rec.namespace, rec.job_id) if a["_deployment"] == dep["ID"]]
        changed = False

        def pick(predicate: Callable[[dict], bool]) -> dict | None:
            for alloc in mine:
                if (group_name is None or alloc["TaskGroup"] == group_name) and predicate(alloc):
                    return alloc
            return None

        def place() -> dict | None:
            for gname in sorted(dep["TaskGroups"]):
                if group_name is not None and gname != group_name:
                    continue
                if gname in meta["blocked"]:
                    continue
                if meta["placed_new"][gname] < meta["new"][gname]:
                    meta["placed_new"][gname] += 1
                    alloc = self._new_alloc(rec, groups[gname], meta["eval"], dep["ID"])
                    alloc["JobVersion"] = dep["JobVersion"]
                    dep["TaskGroups"][gname]["PlacedAllocs"] += 1
                    return alloc
            return None

        if name == "place":
            changed = place() is not None
        elif name == "start":
            alloc = pick(lambda a: a["ClientStatus"] == "pending" and a["DesiredStatus"] == "run")
            if alloc:
                self._start_alloc(alloc)
                changed = True
        elif name == "healthy":
            alloc = pick(lambda a: a["ClientStatus"] == "running" and a["DeploymentStatus"]["Healthy"] is None)
            if alloc:
                alloc["DeploymentStatus"].update(Healthy=True, Timestamp=_go_time(_now_ns()), ModifyIndex=self._index + 1)
                self._touch_alloc(alloc)
                dep["TaskGroups"][alloc["TaskGroup"]]["HealthyAllocs"] += 1
                # the rolling update replaces one old allocation per healthy new one
                for old in self._live_allocs(rec.namespace, rec.job_id, alloc["TaskGroup"]):
                    if old["_deployment"] != dep["ID"] and old["JobVersion"] != dep["JobVersion"]:
                        self._stop_alloc(old, "alloc is being updated due to job update")
                        break
                changed = True
        elif name == "unhealthy":
            alloc = pick(lambda a: a["ClientStatus"] in ("pending", "running") and a["DeploymentStatus"]["Healthy"] is None)
            if alloc is None:
                alloc = place()
            if alloc:
                self._fail_alloc(alloc, rollout.failure)
                dep["TaskGroups"][alloc["TaskGroup"]]["UnhealthyAllocs"] += 1
                changed = True
        elif name in ("succeed", "successful"):
            self._finish_deployment(dep, "successful", DEPLOY_SUCCESSFUL)
            return
        elif name in ("fail", "failed"):
            self._finish_deployment(dep, "failed", DEPLOY_FAILED_ALLOCS)
            return
        elif name == "deadline":
            self._finish_deployment(dep, "failed", DEPLOY_PROGRESS_DEADLINE)
            return
        elif name != "wait":
            raise ValueError(f"unknown deployment step {name!r}")
        if changed:
            dep["ModifyIndex"] = self._bump("deployment")
            dep["ModifyTime"] = _now_ns()
        self._refresh_status(rec)

    def _finish_deployment(self, dep: dict, status: str, description: str) -> None:
        rec = self._jobs.get((dep["Namespace"], dep["JobID"]))
        rollback_to: dict | None = None
        if status == "failed" and rec is not None:
            autorevert = any(s.get("AutoRevert") for s in dep["TaskGroups"].values())
            stable = [v for ver, v in rec.versions.items() if v.get("Stable") and ver < dep["JobVersion"]]
            if autorevert and stable:
                target = max(stable, key=lambda v: v["Version"])
                if _spec(_strip_stop(target)) != _spec(_strip_stop(rec.job)):
                    description = f"{description} - rolling back to job version {target['Version']}"
                    rollback_to = target
                else:
                    description = (f"{description} - not rolling back to stable job version "
                                   f"{target['Version']} as current job has same specification")
        dep["Status"] = status
        dep["StatusDescription"] = description
        dep["ModifyTime"] = _now_ns()
        dep["ModifyIndex"] = self._bump("deployment")
        for rollout in self._rollouts.values():
            if rollout.deployment_id == dep["ID"]:
                rollout.done = True
        if rec is None:
            return
        if status == "successful" and rec.job.get("Version") == dep["JobVersion"]:
            # the deployment watcher marks the job version stable (keeps the version)
            rec.job["Stable"] = True
            rec.job["ModifyIndex"] = self._bump("jobs", "job_version")
            rec.versions[dep["JobVersion"]] = copy.deepcopy(rec.job)
        if rollback_to is not None:
            job = copy.deepcopy(_spec(rollback_to))
            self._register_locked(rec.namespace, job, submission=None, rollback=True)
        self._refresh_status(rec)

    # ---------------------------------------------------------------- plan / register core

    def _desired_updates(self, rec: _JobRecord | None, new_job: dict) -> tuple[dict[str, dict], dict[str, bool], dict]:
        """Per group DesiredUpdates, whether the group update is destructive, and the diff."""
        old_job = _spec(rec.job) if rec is not None else None
        diff = job_diff(_strip_nulls(old_job) if old_job else None, _strip_nulls(_spec(new_job)))
        updates: dict[str, dict] = {}
        destructive: dict[str, bool] = {}
        group_diffs = {g["Name"]: g for g in diff["TaskGroups"] or []}
        meta_changed = any(f["Name"].startswith("Meta[") for f in diff["Fields"] or ())
        for group in new_job.get("TaskGroups") or []:
            name = group["Name"]
            count = int(group.get("Count", 1))
            live = self._live_allocs(rec.namespace, rec.job_id, name) if rec is not None else []
            if _is_periodic(new_job) or _is_parameterized(new_job):
                live = []
            desired = {k: 0 for k in ("Ignore", "Place", "Migrate", "Stop", "InPlaceUpdate", "DestructiveUpdate",
                                     "Canary", "Preemptions", "Disconnect", "Reconnect", "RescheduleNow",
                                     "RescheduleLater")}
            gdiff = group_diffs.get(name)
            keep = min(len(live), count)
            desired["Place"] = max(count - len(live), 0)
            desired["Stop"] = max(len(live) - count, 0)
            is_destructive = False
            if diff["Type"] == "None" or not live:
                desired["Ignore"] = keep
            else:
                is_destructive = meta_changed or any(
                    t["Type"] in ("Added", "Deleted") or _task_is_destructive(t) for t in (gdiff or {}).get("Tasks") or []
                ) or any(o["Name"] in ("Network", "EphemeralDisk", "Volume") for o in (gdiff or {}).get("Objects") or [])
                update = _group_update(new_job, group)
                canary = int((update or {}).get("Canary") or 0)
                if is_destructive and canary:
                    desired["Canary"] = canary
                    desired["Ignore"] = keep
                elif is_destructive:
                    desired["DestructiveUpdate"] = keep
                else:
                    desired["InPlaceUpdate"] = keep
            updates[name] = desired
            destructive[name] = is_destructive
        if rec is not None:
            new_names = {g["Name"] for g in new_job.get("TaskGroups") or []}
            for group in rec.job.get("TaskGroups") or []:
                if group["Name"] not in new_names:
                    live = self._live_allocs(rec.namespace, rec.job_id, group["Name"])
                    updates[group["Name"]] = {"Ignore": 0, "Place": 0, "Migrate": 0, "Stop": len(live),
                                              "InPlaceUpdate": 0, "DestructiveUpdate": 0, "Canary": 0,
                                              "Preemptions": 0, "Disconnect": 0, "Reconnect": 0,
                                              "RescheduleNow": 0, "RescheduleLater": 0}
        return updates, destructive, diff

    def _canonicalize(self, job: dict, ns: str, region: str) -> dict:
        """The few defaults api.Job.Canonicalize fills that the fake relies on."""
        job = copy.deepcopy(job)
        for key in _SERVER_JOB_FIELDS:
            job.pop(key, None)
        job["Namespace"] = ns
        job["Region"] = region
        job.setdefault("Name", job.get("ID"))
        job.setdefault("Type", "service")
        job.setdefault("Priority", 50)
        job.setdefault("Stop", False)
        job.setdefault("ParentID", "")
        job.setdefault("Dispatched", False)
        job.setdefault("AllAtOnce", False)
        job.setdefault("NodePool", "default")
        if not job.get("Datacenters"):
            job["Datacenters"] = ["*"]
        for group in job.get("TaskGroups") or []:
            if group.get("Count") is None:
                group["Count"] = 1
        return job

    @staticmethod
    def _validate(job: dict) -> list[str]:
        """A few of structs.Job.Validate's checks, with Nomad's messages."""
        errors = []
        job_id = job.get("ID") or ""
        if not job_id:
            errors.append("Missing job ID")
        elif " " in job_id:
            errors.append("Job ID contains a space")
        elif "\x00" in job_id:
            errors.append("Job ID contains a null character")
        if job.get("Type") not in ("service", "batch", "system", "sysbatch"):
            errors.append(f"Invalid job type: {job.get('Type')!r}")
        if not job.get("TaskGroups"):
            errors.append("Missing job task groups")
        names = [g.get("Name") for g in job.get("TaskGroups") or []]
        for name in {n for n in names if names.count(n) > 1}:
            errors.append(f"Job task group {name} redefines '{name}' from group 1")
        return errors

    def _check_namespace(self, job: dict) -> None:
        if self.namespaces is not None and job["Namespace"] not in self.namespaces:
            raise _Error(500, f'job "{job["ID"]}" is in nonexistent namespace "{job["Namespace"]}"')

    def _register_locked(
        self,
        ns: str,
        job: dict,
        *,
        submission: dict | None,
        enforce_index: bool = False,
        job_modify_index: int = 0,
        preserve_counts: bool = False,
        rollback: bool = False,
        eval_priority: int = 0,
    ) -> dict:
        rec = self._jobs.get(_job_key(ns, job["ID"]))
        errors = self._validate(job)
        if errors:
            raise _Error(500, _multierror(errors))
        # nomad/job_endpoint.go Register: EnforceIndex
        if enforce_index:
            if rec is not None:
                if job_modify_index == 0:
                    raise _Error(500, f"{ENFORCE_PREFIX} 0: job already exists")
                if job_modify_index != rec.job["JobModifyIndex"]:
                    raise _Error(500, f"{ENFORCE_PREFIX} {job_modify_index}: job exists with conflicting "
                                      f"job modify index: {rec.job['JobModifyIndex']}")
            elif job_modify_index != 0:
                raise _Error(500, f"{ENFORCE_PREFIX} {job_modify_index}: job does not exist")
        if rec is not None:
            old = rec.job
            if old.get("Type") != job.get("Type"):
                raise _Error(500, f'cannot update job from type "{old.get("Type")}" to "{job.get("Type")}"')
            if _is_periodic(old) and not _is_periodic(job):
                raise _Error(500, "cannot update periodic job to being non-periodic")
            if _is_periodic(job) and not _is_periodic(old):
                raise _Error(500, "cannot update non-periodic job to being periodic")
            if preserve_counts:
                counts = {g["Name"]: g.get("Count", 1) for g in old.get("TaskGroups") or []}
                for group in job.get("TaskGroups") or []:
                    if group["Name"] in counts:
                        group["Count"] = counts[group["Name"]]
        self._check_namespace(job)

        periodic = _is_periodic(job) or _is_parameterized(job)
        changed = rec is None or _strip_nulls(_spec(rec.job)) != _strip_nulls(_spec(job))
        reply = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0, "Warnings": self.warnings,
                 "Index": 0, "LastContact": 0, "KnownLeader": True, "NextToken": ""}
        if not changed:
            assert rec is not None
            reply["JobModifyIndex"] = rec.job["JobModifyIndex"]
            if not periodic:
                index = self._bump("evals")
                ev = self._new_eval(ns, rec.job, "job-register", rec.job["JobModifyIndex"], index, eval_priority or None)
                reply.update(EvalID=ev["ID"], EvalCreateIndex=index, Index=index)
                self._after(self.tick, lambda: self._complete_eval(ev["ID"]))
                self._refresh_status(rec)
            return reply

        tables = ["jobs", "job_summary", "job_version"] + ([] if periodic else ["evals"])
        index = self._bump(*tables)
        updates, destructive, _ = self._desired_updates(rec, job)
        stored = copy.deepcopy(job)
        stored.update(
            Status="pending",
            StatusDescription="",
            Stable=False,
            Version=0 if rec is None else rec.job["Version"] + 1,
            SubmitTime=_now_ns(),
            CreateIndex=index if rec is None else rec.job["CreateIndex"],
            ModifyIndex=index,
            JobModifyIndex=index,
        )
        previous = rec.job if rec is not None else None
        if rec is None:
            rec = _JobRecord(namespace=ns, job_id=job["ID"], job=stored)
            self._jobs[_job_key(ns, job["ID"])] = rec
        else:
            rec.job = stored
        rec.versions[stored["Version"]] = copy.deepcopy(stored)
        if submission is not None:
            rec.submissions[stored["Version"]] = {
                "Source": submission.get("Source", ""),
                "Format": submission.get("Format", ""),
                "VariableFlags": submission.get("VariableFlags"),
                "Variables": submission.get("Variables", ""),
                "Namespace": ns,
                "JobID": job["ID"],
                "Version": stored["Version"],
                "JobModifyIndex": index,
            }
        reply.update(JobModifyIndex=index, Index=index)
        if not periodic:
            ev = self._new_eval(ns, stored, "job-register", index, index, eval_priority or None)
            reply.update(EvalID=ev["ID"], EvalCreateIndex=index)
            self._schedule_job(rec, previous, ev, updates, destructive, rollback)
        # the state store sets the status in the same write as the job
        stored["Status"] = self._job_status(rec)
        rec.versions[stored["Version"]] = copy.deepcopy(stored)
        return reply

    def _schedule_job(self, rec: _JobRecord, previous: dict | None, ev: dict, updates: dict[str, dict],
                      destructive: dict[str, bool], rollback: bool) -> None:
        """What the scheduler does with a new job version."""
        job = rec.job
        ns = rec.namespace
        failed: dict[str, dict] = {}
        for group in job.get("TaskGroups") or []:
            metric = self._placement_failure(job, group)
            if metric is not None and updates[group["Name"]]["Place"] + updates[group["Name"]]["DestructiveUpdate"]:
                failed[group["Name"]] = metric
        # groups removed from the job, and count decreases
        new_groups = {g["Name"]: g for g in job.get("TaskGroups") or []}
        for alloc in self._live_allocs(ns, rec.job_id):
            if alloc["TaskGroup"] not in new_groups:
                self._stop_alloc(alloc, "alloc not needed due to job update")
        for name, group in new_groups.items():
            extra = self._live_allocs(ns, rec.job_id, name)[int(group.get("Count", 1)):]
            for alloc in reversed(extra):
                self._stop_alloc(alloc, "alloc not needed due to job update")
        # a newer version cancels the running deployment
        old_dep = self._latest_deployment(ns, rec.job_id)
        if old_dep is not None and old_dep["Status"] == "running":
            old_dep.update(Status="cancelled", StatusDescription=DEPLOY_NEWER_JOB, ModifyTime=_now_ns())
            old_dep["ModifyIndex"] = self._bump("deployment")
        for rollout in self._rollouts.values():
            if rollout.key == (ns, rec.job_id):
                rollout.done = True

        # scheduler/reconcile.go computeGroup: no deployment for a group whose desired
        # total is 0 (a service registered, or scaled, with count 0)
        dep_groups = {n: g for n, g in new_groups.items()
                      if _group_update(job, g) is not None and int(g.get("Count", 1)) > 0}
        other_groups = {n: g for n, g in new_groups.items() if n not in dep_groups}
        ev_id = ev["ID"]
        self._after(self.tick, lambda: self._complete_eval(
            ev_id, failed or None, {n: 0 for n in new_groups}))

        # groups without deployments: in-place now, destructive replaced at once
        if other_groups:
            for name in other_groups:
                for alloc in self._live_allocs(ns, rec.job_id, name):
                    if destructive.get(name):
                        self._stop_alloc(alloc, "alloc is being updated due to job update")
                    elif alloc["JobVersion"] != job["Version"]:
                        alloc["JobVersion"] = job["Version"]
                        self._touch_alloc(alloc)
            steps = ["place_all", "start_all"]
            # A periodic launch runs as its parent's script says, unless it has its own.
            batch = (self._batch_scripts.get((ns, rec.job_id)) or self._batch_scripts.get((ns, job.get("ParentID") or ""))
                     or {"outcome": "complete", "failure": None})
            if job.get("Type") in ("batch", "sysbatch"):
                if batch["outcome"] != "running":
                    steps += ["wait"] * math.ceil(float(batch.get("runs_for") or 0) / self.tick)
                steps += {"complete": ["complete_all"], "failed": ["fail_all"], "running": []}[batch["outcome"]]
            rollout = _Rollout(key=(ns, rec.job_id), steps=steps, interval=self.tick, job_version=job["Version"],
                               failure={"eval": ev_id, "blocked": set(failed), "task": batch["failure"]})
            self._rollouts[f"job:{ns}/{rec.job_id}:{job['Version']}:{next(self._clock_seq)}"] = rollout
            self._schedule_step(rollout)

        if not dep_groups:
            return
        index = self._bump("deployment")
        now = _now_ns()
        dep = {
            "ID": str(uuid.uuid4()),
            "Namespace": ns,
            "JobID": rec.job_id,
            "JobVersion": job["Version"],
            "JobModifyIndex": job["JobModifyIndex"],
            "JobSpecModifyIndex": job["JobModifyIndex"],
            "JobCreateIndex": job["CreateIndex"],
            "IsMultiregion": False,
            "TaskGroups": {},
            "Status": "running",
            "StatusDescription": DEPLOY_RUNNING,
            "EvalPriority": job.get("Priority", 50),
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": now,
            "ModifyTime": now,
        }
        meta = {"new": {}, "inplace": {}, "placed_new": {}, "blocked": set(), "eval": ev_id, "job": copy.deepcopy(job)}
        for name, group in dep_groups.items():
            update = _group_update(job, group) or {}
            count = int(group.get("Count", 1))
            live = self._live_allocs(ns, rec.job_id, name)
            inplace = [] if destructive.get(name) else live[:count]
            new = count - len(inplace)
            progress_ns = int(update.get("ProgressDeadline") or 600_000_000_000)
            dep["TaskGroups"][name] = {
                "AutoRevert": bool(update.get("AutoRevert", False)),
                "AutoPromote": bool(update.get("AutoPromote", False)),
                "ProgressDeadline": progress_ns,
                "RequireProgressBy": _go_time(now + progress_ns),
                "Promoted": False,
                "PlacedCanaries": None,
                "DesiredCanaries": int(update.get("Canary") or 0) if destructive.get(name) else 0,
                "DesiredTotal": count,
                "PlacedAllocs": len(inplace),
                "HealthyAllocs": 0,
                "UnhealthyAllocs": 0,
            }
            for alloc in inplace:
                alloc.update(JobVersion=job["Version"], _deployment=dep["ID"],
                             DeploymentStatus={"Healthy": None, "Timestamp": ZERO_TIME, "Canary": False, "ModifyIndex": 0})
                self._touch_alloc(alloc)
            meta["new"][name] = new
            meta["inplace"][name] = len(inplace)
            meta["placed_new"][name] = 0
            if name in failed:
                meta["blocked"].add(name)
        self._deployments[dep["ID"]] = dep
        self._dep_meta[dep["ID"]] = meta
        ev["DeploymentID"] = dep["ID"]
        script = self._script_for((ns, rec.job_id), rollback)
        rollout = _Rollout(key=(ns, rec.job_id), steps=self._script_steps(dep, script), interval=script["interval"],
                           deployment_id=dep["ID"], failure=script.get("failure"), job_version=job["Version"])
        self._rollouts[dep["ID"]] = rollout
        self._schedule_step(rollout)

    def _deregister_locked(self, ns: str, job_id: str, purge: bool, eval_priority: int = 0) -> dict:
        reply = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0, "VolumeEvalID": "", "VolumeEvalIndex": 0,
                 "Index": 0, "LastContact": 0, "KnownLeader": True, "NextToken": ""}
        rec = self._jobs.get(_job_key(ns, job_id))
        if rec is None:  # nomad/job_endpoint.go Deregister: nothing to do, empty reply
            return reply
        periodic = _is_periodic(rec.job) or _is_parameterized(rec.job)
        index = self._bump("jobs", "job_summary", *(() if purge else ("job_version",)), *(() if periodic else ("evals",)))
        if not periodic:
            ev = self._new_eval(ns, rec.job, "job-deregister", index, index, eval_priority or rec.job.get("Priority", 50))
            ev["Type"] = "service"
            reply["EvalID"] = ev["ID"]
            ev_id = ev["ID"]
            self._after(self.tick, lambda: self._complete_eval(ev_id))
        reply.update(JobModifyIndex=index, EvalCreateIndex=index, Index=index)
        if purge:
            del self._jobs[_job_key(ns, job_id)]
        else:
            stopped = copy.deepcopy(rec.job)
            stopped.update(Stop=True, Stable=False, Version=rec.job["Version"] + 1, ModifyIndex=index,
                           JobModifyIndex=index, SubmitTime=_now_ns())
            rec.job = stopped
            rec.versions[stopped["Version"]] = copy.deepcopy(stopped)
        for alloc in self._live_allocs(ns, job_id):
            self._stop_alloc(alloc, "alloc not needed due to job update")
        for rollout in self._rollouts.values():
            if rollout.key == (ns, job_id):
                rollout.done = True
        dep = self._latest_deployment(ns, job_id)
        if dep is not None and dep["Status"] == "running":
            dep.update(Status="cancelled", StatusDescription=DEPLOY_STOPPED_JOB, ModifyTime=_now_ns())
            dep["ModifyIndex"] = self._bump("deployment")
        if not purge:
            self._refresh_status(rec)
        return reply

    def _next_launch(self, job: dict) -> str:
        periodic = job.get("Periodic") or {}
        if not periodic or not periodic.get("Enabled", True):
            return ZERO_TIME
        spec = periodic.get("Spec") or (periodic.get("Specs") or [None])[0]
        if not spec:
            return ZERO_TIME
        tz = periodic.get("TimeZone") or "UTC"
        try:
            now = _dt.datetime.now(zoneinfo.ZoneInfo(tz))
            return _go_time_dt(cron_next(spec, tz, now))
        except (ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
            raise _Error(500, f"Failed to parse cron expression: {exc}")

    def _plan_locked(self, ns: str, job: dict, want_diff: bool) -> dict:
        rec = self._jobs.get(_job_key(ns, job["ID"]))
        errors = self._validate(job)
        if errors:
            raise _Error(500, _multierror(errors))
        self._check_namespace(job)
        updates, _, diff = self._desired_updates(rec, job)
        failed = {}
        for group in job.get("TaskGroups") or []:
            metric = self._placement_failure(job, group)
            if metric is not None:
                failed[group["Name"]] = metric
        _annotate(diff, updates)
        index = rec.job["JobModifyIndex"] if rec is not None else 0
        return {
            "Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": None},
            "FailedTGAllocs": failed or None,
            "JobModifyIndex": index,
            "CreatedEvals": None,
            "Diff": diff if want_diff else None,
            "NextPeriodicLaunch": self._next_launch(job),
            "Warnings": self.warnings,
            "Index": index,
        }

    def _periodic_force_locked(self, ns: str, job_id: str, at: int | None = None) -> dict:
        rec = self._jobs.get(_job_key(ns, job_id))
        if rec is None:
            raise _Error(500, "job not found")
        if not _is_periodic(rec.job):
            raise _Error(500, "can't force launch non-periodic job")
        if rec.job.get("Stop") or not (rec.job.get("Periodic") or {}).get("Enabled", True):
            raise _Error(500, f'force launch for job "{job_id}" failed: '
                              f'can\'t force run non-tracked job "{job_id}" ({ns})')
        launch = int(time.time()) if at is None else int(at)
        child_id = f"{job_id}/periodic-{launch}"
        while _job_key(ns, child_id) in self._jobs:
            launch += 1
            child_id = f"{job_id}/periodic-{launch}"
        child = copy.deepcopy(_spec(rec.job))
        child.pop("Periodic", None)
        child.update(ID=child_id, Name=child_id, ParentID=job_id)
        reply = self._register_locked(ns, child, submission=None)
        return {"EvalID": reply["EvalID"], "EvalCreateIndex": reply["EvalCreateIndex"], "Index": reply["EvalCreateIndex"],
                "ChildID": child_id}

    # ---------------------------------------------------------------- variables

    def _var_set(self, ns: str, path: str, items: dict[str, str]) -> dict:
        existing = self._variables.get((ns, path))
        now = _now_ns()
        index = self._bump("variables")
        if existing is not None and existing["Items"] == items:
            # state_store_variables.go varSetTxn: an unchanged variable is not rewritten
            return existing
        var = {
            "Namespace": ns,
            "Path": path,
            "CreateIndex": existing["CreateIndex"] if existing else index,
            "CreateTime": existing["CreateTime"] if existing else now,
            "ModifyIndex": index,
            "ModifyTime": now,
            "Items": dict(items),
        }
        self._variables[(ns, path)] = var
        return var

    @staticmethod
    def _var_meta(var: dict) -> dict:
        return {k: var[k] for k in ("Namespace", "Path", "CreateIndex", "CreateTime", "ModifyIndex", "ModifyTime")}

    # ---------------------------------------------------------------- output shapes

    def _alloc_stub(self, alloc: dict) -> dict:
        return copy.deepcopy({k: v for k, v in alloc.items() if not k.startswith("_")})

    def _job_stub(self, rec: _JobRecord, with_meta: bool) -> dict:
        job = rec.job
        summary: dict[str, dict] = {}
        for group in job.get("TaskGroups") or []:
            summary[group["Name"]] = {"Queued": 0, "Complete": 0, "Failed": 0, "Running": 0, "Starting": 0,
                                      "Lost": 0, "Unknown": 0}
        for alloc in self._allocs_of(rec.namespace, rec.job_id):
            entry = summary.setdefault(alloc["TaskGroup"], {"Queued": 0, "Complete": 0, "Failed": 0, "Running": 0,
                                                            "Starting": 0, "Lost": 0, "Unknown": 0})
            key = {"pending": "Starting", "running": "Running", "complete": "Complete", "failed": "Failed",
                   "lost": "Lost"}.get(alloc["ClientStatus"], "Unknown")
            entry[key] += 1
        children = {"Pending": 0, "Running": 0, "Dead": 0}
        for other in self._jobs.values():
            if other.job.get("ParentID") == rec.job_id and other.namespace == rec.namespace:
                children[other.job.get("Status", "pending").capitalize()] = children.get(
                    other.job.get("Status", "pending").capitalize(), 0) + 1
        stub = {
            "ID": job["ID"],
            "ParentID": job.get("ParentID", ""),
            "Name": job.get("Name", job["ID"]),
            "Namespace": rec.namespace,
            "Datacenters": job.get("Datacenters"),
            "NodePool": job.get("NodePool", "default"),
            "Multiregion": None,
            "Type": job.get("Type"),
            "Priority": job.get("Priority", 50),
            "Periodic": _is_periodic(job),
            "ParameterizedJob": _is_parameterized(job),
            "Stop": job.get("Stop", False),
            "Status": job.get("Status"),
            "StatusDescription": job.get("StatusDescription", ""),
            "JobSummary": {"JobID": job["ID"], "Namespace": rec.namespace, "Summary": summary,
                           "Children": children, "CreateIndex": job["CreateIndex"], "ModifyIndex": job["ModifyIndex"]},
            "CreateIndex": job["CreateIndex"],
            "ModifyIndex": job["ModifyIndex"],
            "JobModifyIndex": job["JobModifyIndex"],
            "SubmitTime": job.get("SubmitTime", 0),
        }
        if with_meta:
            stub["Meta"] = copy.deepcopy(job.get("Meta"))
        return stub

    # ================================================================ HTTP side

    def _record(self, rec: RecordedRequest) -> None:
        with self._record_lock:
            self._requests.append(rec)

    def _pick_faults(self, method: str, path: str, body: Any = None) -> tuple[float, Fault | None]:
        latency = 0.0
        chosen = None
        with self._record_lock:
            for fault in self._faults:
                if not fault.matches(method, path, body):
                    continue
                if fault.kind != "latency" and chosen is not None:
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                fault.hits += 1
                if fault.kind == "latency":
                    latency += fault.latency
                else:
                    chosen = fault
        return latency, chosen

    def _handle(self, req: RecordedRequest) -> _Response:
        """Everything between reading a request and writing its answer."""
        latency, fault = self._pick_faults(req.method, req.path, req.json)
        if latency:
            self._stopping.wait(latency)
        if fault is not None:
            req.fault = fault.kind
            if fault.kind == "status":
                return _Response(fault.status, fault.body.encode(), [("Content-Type", fault.content_type)])
            if fault.kind == "non_json":
                return _Response(200, fault.body.encode(), [("Content-Type", fault.content_type)])
            if fault.kind == "redirect":
                return _Response(301, b"", [("Location", fault.location or "/")])
            return _Response(0, action=fault.kind)

        # Go's ServeMux answers an unclean path (//v1/jobs, /v1/../x) with a 301
        cleaned = _clean_path(req.path)
        if cleaned != req.path:
            query = req.target.partition("?")[2]
            location = cleaned + ("?" + query if query else "")
            headers = [("Location", location)]
            body = b""
            if req.method in ("GET", "HEAD"):
                headers.append(("Content-Type", "text/html; charset=utf-8"))
            if req.method == "GET":
                body = f'<a href="{_html_escape(location)}">Moved Permanently</a>.\n\n'.encode()
            return _Response(301, body, headers)
        try:
            return self._route(req)
        except _Error as err:
            headers = [("Content-Type", "text/plain")]
            if err.index is not None:  # the handler called setMeta before failing
                headers += [("X-Nomad-Index", str(err.index)), ("X-Nomad-LastContact", "0"),
                            ("X-Nomad-KnownLeader", "true")]
            return _Response(err.status, err.message.encode(), headers)
        except Exception:  # noqa: BLE001 - a bug in the fake: answer 500 and keep it visible
            detail = traceback.format_exc()
            self.internal_errors.append(detail)
            return _Response(500, f"fake nomad internal error: {detail}".encode(), [("Content-Type", "text/plain")])

    @staticmethod
    def _json(obj: Any, index: int | None = None, meta: bool = False, status: int = 200,
              content_type: str = "application/json") -> _Response:
        headers = [("Content-Type", content_type)]
        if index is not None:
            headers.append(("X-Nomad-Index", str(index)))
        if meta:
            headers += [("X-Nomad-LastContact", "0"), ("X-Nomad-KnownLeader", "true")]
        return _Response(status, _json.dumps(obj).encode(), headers)

    def _acl(self, req: RecordedRequest, body_token: str | None = None) -> None:
        if self.acl_token is None:
            return
        token = req.token if req.token is not None else body_token
        if not token:
            raise _Error(403, ERR_PERMISSION_DENIED)
        if token != self.acl_token:
            raise _Error(403, ERR_TOKEN_NOT_FOUND)

    def _check_region(self, region: str | None) -> None:
        # a request for another region is forwarded; the fake has no other region
        if region and region != self.region:
            raise _Error(500, "No path to region")

    def _body(self, req: RecordedRequest) -> Any:
        # command/agent/http.go decodeBody
        if not req.body:
            raise _Error(400, "Request body is empty")
        try:
            return _json.loads(req.body)
        except _json.JSONDecodeError as exc:
            # roughly encoding/json's wording
            if exc.pos >= len(exc.doc.rstrip()):
                raise _Error(400, "unexpected EOF")
            raise _Error(400, f"invalid character {exc.doc[exc.pos]!r} looking for beginning of value")
        except UnicodeDecodeError:
            raise _Error(400, "invalid character in string literal")

    def _wait_params(self, req: RecordedRequest) -> tuple[int, float]:
        """command/agent/http.go parseWait."""
        wait = 0.0
        if req.query.get("wait", "") != "":
            try:
                wait = _parse_go_duration(req.query["wait"])
            except ValueError:
                raise _Error(400, "Invalid wait time")
        index = 0
        if req.query.get("index", "") != "":
            try:
                index = int(req.query["index"])
                if index < 0:
                    raise ValueError
            except ValueError:
                raise _Error(400, "Invalid index")
        return index, wait

    def _blocking(self, req: RecordedRequest, query: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """nomad/rpc.go blockingRPC, with ``block_cap`` for tests."""
        min_index, wait = self._wait_params(req)
        with self._changed:
            index, result = query()
            if min_index == 0:
                return index, result
            if wait <= 0:
                wait = DEFAULT_BLOCKING_QUERY_TIME
            wait = min(wait, MAX_BLOCKING_QUERY_TIME)
            if self.jitter:
                wait += random.uniform(0, wait / JITTER_FRACTION)
            if self.block_cap is not None:
                wait = min(wait, self.block_cap)
            deadline = time.monotonic() + wait
            while index <= min_index and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
                index, result = query()
            return index, result

    def _route(self, req: RecordedRequest) -> _Response:
        path, method = req.path, req.method
        if path == "/v1/jobs":
            if method == "GET":
                return self._h_job_list(req)
            if method in ("PUT", "POST"):
                return self._h_register(req, "")
            raise _Error(405, ERR_INVALID_METHOD)
        if path.startswith("/v1/job/"):
            rest = path[len("/v1/job/"):]
            # command/agent/job_endpoint.go JobSpecificRequest: suffixes, in Nomad's order
            for suffix, handler in (
                ("/allocations", self._h_job_allocations),
                ("/evaluations", self._h_job_evaluations),
                ("/periodic/force", self._h_periodic_force),
                ("/plan", self._h_plan),
                ("/versions", self._h_job_versions),
                ("/deployments", self._h_job_deployments),
                ("/deployment", self._h_job_deployment),
                ("/submission", self._h_job_submission),
            ):
                if rest.endswith(suffix):
                    return handler(req, rest[: -len(suffix)])
            for suffix in ("/evaluate", "/summary", "/dispatch", "/revert", "/stable", "/scale", "/services",
                           "/actions", "/action"):
                if rest.endswith(suffix):
                    raise _Error(501, f"fake nomad does not implement {path}")
            if method == "GET":
                return self._h_job_get(req, rest)
            if method in ("PUT", "POST"):
                return self._h_register(req, rest)
            if method == "DELETE":
                return self._h_deregister(req, rest)
            raise _Error(405, ERR_INVALID_METHOD)
        if path.startswith("/v1/deployment/"):
            rest = path[len("/v1/deployment/"):]
            if rest.startswith("allocations/"):
                return self._h_deployment_allocations(req, rest[len("allocations/"):])
            if "/" in rest:
                raise _Error(501, f"fake nomad does not implement {path}")
            return self._h_deployment_get(req, rest)
        if path.startswith("/v1/evaluation/"):
            return self._h_eval_get(req, path[len("/v1/evaluation/"):])
        if path == "/v1/vars":
            return self._h_var_list(req)
        if path.startswith("/v1/var/"):
            return self._h_var(req, path[len("/v1/var/"):])
        if path == "/v1/validate/job":
            return self._h_validate(req)
        if path == "/v1/agent/self":
            return self._h_agent_self(req)
        if path == "/v1/status/leader":
            if method != "GET":
                raise _Error(405, ERR_INVALID_METHOD)
            return self._json(f"{self.host}:4647")
        if path == "/v1/jobs/parse":
            raise _Error(501, f"fake nomad does not implement {path}")
        if path == "/":
            # command/agent/http.go handleRootFallthrough
            target = "/ui/" + ("?" + req.target.partition("?")[2] if "?" in req.target else "")
            return _Response(307, b"", [("Location", target)])
        # handleRootFallthrough: any other unknown path is a bare 404 with an empty body
        if self.unknown_path_body:
            return _Response(404, self.unknown_path_body.encode(), [("Content-Type", "text/plain")])
        return _Response(404, b"")

    # ---------------------------------------------------------------- job handlers

    def _job_request_common(self, req: RecordedRequest, body: dict) -> tuple[str, str]:
        """apiJobAndRequestToStructs: namespace and region precedence."""
        job = body["Job"]
        namespace = req.query.get("namespace") or body.get("Namespace") or job.get("Namespace") or "default"
        query_region = req.query.get("region", "")
        request_region = query_region or body.get("Region") or job.get("Region") or ""
        if request_region in ("", "global"):
            request_region = self.region
        self._check_region(request_region)
        return namespace, request_region

    def _h_register(self, req: RecordedRequest, job_id: str) -> _Response:
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise _Error(400, "Job must be specified")
        job = body["Job"]
        if job.get("ID") is None:
            raise _Error(400, "Job ID hasn't been provided")
        if job_id and job["ID"] != job_id:
            raise _Error(400, "Job ID does not match name")
        ns, region = self._job_request_common(req, body)
        self._acl(req, body.get("SecretID"))
        with self._lock:
            canonical = self._canonicalize(job, ns, region)
            reply = self._register_locked(
                ns,
                canonical,
                submission=body.get("Submission"),
                enforce_index=bool(body.get("EnforceIndex")),
                job_modify_index=int(body.get("JobModifyIndex") or 0),
                preserve_counts=bool(body.get("PreserveCounts")),
                eval_priority=int(body.get("EvalPriority") or 0),
            )
        return self._json(reply, index=reply["Index"])

    def _h_plan(self, req: RecordedRequest, job_id: str) -> _Response:
        if req.method not in ("PUT", "POST"):
            raise _Error(405, ERR_INVALID_METHOD)
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise _Error(400, "Job must be specified")
        job = body["Job"]
        if job.get("ID") is None:
            raise _Error(400, "Job must have a valid ID")
        if job_id and job["ID"] != job_id:
            raise _Error(400, "Job ID does not match")
        ns, region = self._job_request_common(req, body)
        self._acl(req, body.get("SecretID"))
        with self._lock:
            canonical = self._canonicalize(job, ns, region)
            reply = self._plan_locked(ns, canonical, bool(body.get("Diff")))
        return self._json(reply, index=reply["Index"])

    def _query_ns(self, req: RecordedRequest) -> str:
        self._check_region(req.region)
        return req.query.get("namespace") or "default"

    def _h_job_get(self, req: RecordedRequest, job_id: str) -> _Response:
        ns = self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            rec = self._jobs.get(_job_key(ns, job_id))
            if rec is None:
                return self._table("jobs"), None
            return rec.job["ModifyIndex"], copy.deepcopy(rec.job)

        index, job = self._blocking(req, query)
        if job is None:
            raise _Error(404, "job not found", index=index)
        return self._json(job, index=index, meta=True)

    def _h_deregister(self, req: RecordedRequest, job_id: str) -> _Response:
        purge = False
        if req.query.get("purge", "") != "":
            try:
                purge = _bool_param(req.query["purge"])
            except ValueError as exc:
                raise _Error(500, f'Failed to parse value of "purge" ({req.query["purge"]}) as a bool: {exc}')
        ns = req.query.get("namespace") or "default"
        self._check_region(req.region)
        self._acl(req)
        priority = int(req.query.get("eval_priority") or 0)
        with self._lock:
            reply = self._deregister_locked(ns, job_id, purge, priority)
        return self._json(reply, index=reply["Index"])

    def _h_job_list(self, req: RecordedRequest) -> _Response:
        ns = self._query_ns(req)
        self._acl(req)
        with_meta = False
        if req.query.get("meta", "") != "":
            try:
                with_meta = _bool_param(req.query["meta"])
            except ValueError as exc:
                raise _Error(500, f'Failed to parse value of "meta" ({req.query["meta"]}) as a bool: {exc}')
        prefix = req.query.get("prefix", "")

        def query() -> tuple[int, Any]:
            stubs = [
                self._job_stub(rec, with_meta)
                for key, rec in sorted(self._jobs.items())
                if (ns == "*" or rec.namespace == ns) and rec.job_id.startswith(prefix)
            ]
            return self._table("jobs", "job_summary"), stubs

        index, stubs = self._blocking(req, query)
        return self._json(stubs, index=index, meta=True)

    def _h_job_allocations(self, req: RecordedRequest, job_id: str) -> _Response:
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        ns = self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            return self._table("allocs"), [self._alloc_stub(a) for a in self._allocs_of(ns, job_id)]

        index, allocs = self._blocking(req, query)
        return self._json(allocs, index=index, meta=True)

    def _h_job_evaluations(self, req: RecordedRequest, job_id: str) -> _Response:
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        ns = self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            evals = [copy.deepcopy(e) for e in self._evals.values() if e["JobID"] == job_id and e["Namespace"] == ns]
            return self._table("evals"), sorted(evals, key=lambda e: e["CreateIndex"], reverse=True)

        index, evals = self._blocking(req, query)
        return self._json(evals, index=index, meta=True)

    def _get_one(self, req: RecordedRequest, store: dict[str, Any], key: str, table: str, what: str) -> _Response:
        """GET of one object by id, as a blocking query on its ModifyIndex (or, while it
        does not exist, its table's index)."""
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            found = store.get(key)
            if found is None:
                return self._table(table), None
            return found["ModifyIndex"], copy.deepcopy(found)

        index, found = self._blocking(req, query)
        if found is None:
            raise _Error(404, f"{what} not found", index=index)
        return self._json(found, index=index, meta=True)

    def _h_eval_get(self, req: RecordedRequest, eval_id: str) -> _Response:
        return self._get_one(req, self._evals, eval_id, "evals", "eval")

    def _h_job_versions(self, req: RecordedRequest, job_id: str) -> _Response:
        ns = self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            rec = self._jobs.get(_job_key(ns, job_id))
            if rec is None or not rec.versions:
                return self._table("job_version"), None
            versions = [copy.deepcopy(v) for _, v in sorted(rec.versions.items(), reverse=True)]
            return max(v["ModifyIndex"] for v in versions), versions

        index, versions = self._blocking(req, query)
        if not versions:
            raise _Error(404, "job versions not found", index=index)
        return self._json({"Versions": versions, "Diffs": None, "Index": index, "LastContact": 0,
                           "KnownLeader": True, "NextToken": ""}, index=index, meta=True)

    def _h_job_deployments(self, req: RecordedRequest, job_id: str) -> _Response:
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        ns = self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            deps = [copy.deepcopy(d) for d in self._deployments.values() if d["JobID"] == job_id and d["Namespace"] == ns]
            return self._table("deployment"), sorted(deps, key=lambda d: d["CreateIndex"], reverse=True)

        index, deps = self._blocking(req, query)
        return self._json(deps, index=index, meta=True)

    def _h_job_deployment(self, req: RecordedRequest, job_id: str) -> _Response:
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        ns = self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            # nomad/job_endpoint.go LatestDeployment: the deployment table's index
            return self._table("deployment"), copy.deepcopy(self._latest_deployment(ns, job_id))

        index, dep = self._blocking(req, query)
        return self._json(dep, index=index, meta=True)

    def _h_job_submission(self, req: RecordedRequest, job_id: str) -> _Response:
        try:
            version = int(req.query.get("version", ""))
            if version < 0:
                raise ValueError
        except ValueError:
            raise _Error(400, "Unable to parse job submission version parameter")
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        ns = self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            rec = self._jobs.get(_job_key(ns, job_id))
            sub = rec.submissions.get(version) if rec else None
            return (sub["JobModifyIndex"], copy.deepcopy(sub)) if sub else (0, None)

        index, sub = self._blocking(req, query)
        if sub is None:
            raise _Error(404, "job source not found", index=index)
        return self._json(sub, index=index, meta=True)

    def _h_periodic_force(self, req: RecordedRequest, job_id: str) -> _Response:
        if req.method not in ("PUT", "POST"):
            raise _Error(405, ERR_INVALID_METHOD)
        ns = req.query.get("namespace") or "default"
        self._check_region(req.region)
        self._acl(req)
        with self._lock:
            reply = self._periodic_force_locked(ns, job_id)
        reply.pop("ChildID")  # for launch_periodic(); structs.PeriodicForceResponse has no such field
        return self._json(reply, index=reply["Index"])

    def _h_deployment_get(self, req: RecordedRequest, dep_id: str) -> _Response:
        return self._get_one(req, self._deployments, dep_id, "deployment", "deployment")

    def _h_deployment_allocations(self, req: RecordedRequest, dep_id: str) -> _Response:
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            allocs = [self._alloc_stub(a) for a in sorted(self._allocs.values(), key=lambda a: a["CreateIndex"])
                      if a["_deployment"] == dep_id]
            return self._table("allocs"), allocs

        index, allocs = self._blocking(req, query)
        return self._json(allocs, index=index, meta=True)

    def _h_validate(self, req: RecordedRequest) -> _Response:
        if req.method not in ("PUT", "POST"):
            raise _Error(405, ERR_INVALID_METHOD)
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise _Error(400, "Job must be specified")
        self._acl(req)
        job = self._canonicalize(body["Job"], body["Job"].get("Namespace") or "default", self.region)
        errors = self._validate(job)
        return self._json({
            "DriverConfigValidated": True,
            "ValidationErrors": errors or None,
            "Error": _multierror(errors) if errors else "",
            "Warnings": self.warnings,
        })

    def _h_agent_self(self, req: RecordedRequest) -> _Response:
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        self._acl(req)
        return self._json({
            "config": {
                "Region": self.region,
                "Datacenter": self.datacenter,
                "NodeName": "fake-nomad",
                "Version": {"Version": NOMAD_VERSION, "VersionPrerelease": "", "VersionMetadata": "", "Revision": ""},
                "ACL": {"Enabled": self.acl_token is not None},
                "TLSConfig": {"EnableHTTP": self.tls is not None, "VerifyHTTPSClient": self.require_client_cert},
            },
            "member": {
                "Name": f"fake-nomad.{self.region}",
                "Addr": self.host,
                "Port": 4648,
                "Tags": {"region": self.region, "dc": self.datacenter, "build": NOMAD_VERSION, "role": "nomad"},
                "Status": "alive",
            },
            "stats": {"nomad": {"leader": "true", "server": "true"}},
        })

    # ---------------------------------------------------------------- variable handlers

    def _h_var_list(self, req: RecordedRequest) -> _Response:
        if req.method != "GET":
            raise _Error(405, ERR_INVALID_METHOD)
        ns = self._query_ns(req)
        self._acl(req)
        prefix = req.query.get("prefix", "")

        def query() -> tuple[int, Any]:
            metas = [self._var_meta(v) for (vns, vpath), v in sorted(self._variables.items())
                     if (ns == "*" or vns == ns) and vpath.startswith(prefix)]
            return self._table("variables"), metas

        index, metas = self._blocking(req, query)
        return self._json(metas, index=index, meta=True)

    def _h_var(self, req: RecordedRequest, path: str) -> _Response:
        if not path:
            raise _Error(400, "missing variable path")
        if req.method == "GET":
            return self._h_var_get(req, path)
        if req.method in ("PUT", "POST"):
            return self._h_var_put(req, path)
        if req.method == "DELETE":
            return self._h_var_delete(req, path)
        raise _Error(400, ERR_INVALID_METHOD)

    def _h_var_get(self, req: RecordedRequest, path: str) -> _Response:
        ns = self._query_ns(req)
        self._acl(req)

        def query() -> tuple[int, Any]:
            var = self._variables.get((ns, path))
            if var is None:
                return self._table("variables"), None
            return var["ModifyIndex"], copy.deepcopy(var)

        index, var = self._blocking(req, query)
        if var is None:
            raise _Error(404, "variable not found", index=index)
        return self._json(var, index=index, meta=True)

    def _parse_cas(self, req: RecordedRequest) -> int | None:
        if req.query.get("cas", "") == "":
            return None
        try:
            cas = int(req.query["cas"])
            if cas < 0:
                raise ValueError
            return cas
        except ValueError:
            raise _Error(400, f'can not parse cas: strconv.ParseUint: parsing "{req.query["cas"]}": invalid syntax')

    def _conflict(self, conflict: dict) -> _Response:
        # variable_endpoint.go writes the 409 header before the body, so Go sniffs the type
        return self._json(conflict, index=conflict.get("ModifyIndex", 0), status=409,
                          content_type="text/plain; charset=utf-8")

    def _h_var_put(self, req: RecordedRequest, path: str) -> _Response:
        body = self._body(req)
        if not isinstance(body, dict):
            raise _Error(400, "json: cannot unmarshal into Go value of type structs.VariableDecrypted")
        items = body.get("Items")
        if items is not None and not isinstance(items, dict):
            raise _Error(400, "json: cannot unmarshal into Go struct field VariableDecrypted.Items of type structs.VariableItems")
        for value in (items or {}).values():
            if not isinstance(value, str):
                kind = "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else (
                    "bool" if isinstance(value, bool) else "object" if isinstance(value, dict) else
                    "array" if isinstance(value, list) else "null")
                if value is None:
                    continue
                raise _Error(400, f"json: cannot unmarshal {kind} into Go struct field "
                                  f"VariableDecrypted.Items of type string")
        if not items:
            raise _Error(400, "variable missing required Items object")
        cas = self._parse_cas(req)
        self._check_region(req.region)
        # nomad/variables_endpoint.go Apply: the body's Namespace wins over ?namespace=
        ns = body.get("Namespace") or req.query.get("namespace") or "default"
        self._acl(req)
        if ns == "*":
            raise _Error(500, 'can not target wildcard ("*")namespace')
        size = sum(len(k) + len(v or "") for k, v in items.items())
        if size > _MAX_VARIABLE_SIZE:
            raise _Error(500, "variables are limited to 64KiB in total size")
        self._validate_var_path(path)
        with self._lock:
            existing = self._variables.get((ns, path))
            if cas is not None:
                if cas == 0 and existing is not None:
                    self._bump()
                    return self._conflict(copy.deepcopy(existing))
                if cas != 0 and existing is None:
                    self._bump()
                    return self._conflict({"Namespace": ns, "Path": path, "CreateIndex": 0, "CreateTime": 0,
                                           "ModifyIndex": 0, "ModifyTime": 0, "Items": None})
                if existing is not None and cas != existing["ModifyIndex"]:
                    self._bump()
                    return self._conflict(copy.deepcopy(existing))
            var = self._var_set(ns, path, {k: v for k, v in items.items() if v is not None})
            return self._json(copy.deepcopy(var), index=self._index)

    @staticmethod
    def _validate_var_path(path: str) -> None:
        # nomad/structs/variables.go validatePath (an RPC error: HTTP 500)
        if not _VARIABLE_PATH.match(path):
            raise _Error(500, f'invalid path "{path}"')
        parts = path.split("/")
        if parts[0] != "nomad":
            return
        if len(parts) == 1:
            raise _Error(500, '"nomad" is a reserved top-level directory path, but you may write variables to '
                              '"nomad/jobs", "nomad/job-templates", or below')
        if parts[1] == "jobs":
            return
        if parts[1] == "job-templates" and len(parts) == 3:
            return
        if parts[1] == "job-templates":
            raise _Error(500, '"nomad/job-templates" is a reserved directory path, but you may write variables at '
                              'the level below it, for example, "nomad/job-templates/template-name"')
        raise _Error(500, 'only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths under '
                          'the top-level "nomad" directory')

    def _h_var_delete(self, req: RecordedRequest, path: str) -> _Response:
        cas = self._parse_cas(req)
        ns = self._query_ns(req)
        self._acl(req)
        with self._lock:
            existing = self._variables.get((ns, path))
            if cas is not None:
                if existing is None and cas != 0:
                    self._bump()
                    return self._conflict({"Namespace": ns, "Path": path, "CreateIndex": 0, "CreateTime": 0,
                                           "ModifyIndex": 0, "ModifyTime": 0, "Items": None})
                if existing is not None and cas != existing["ModifyIndex"]:
                    self._bump()
                    return self._conflict(copy.deepcopy(existing))
            self._variables.pop((ns, path), None)
            index = self._bump("variables")
        return _Response(204, b"", [("X-Nomad-Index", str(index))])


def _strip_stop(job: dict) -> dict:
    return {k: v for k, v in job.items() if k != "Stop"}


# --------------------------------------------------------------------------
# HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: benchmarks open many connections at once

    def __init__(self, address, handler, fake: FakeNomad, context: ssl.SSLContext | None):
        self.fake = fake
        self.ssl_context = context
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        sock = request
        with self._conn_lock:
            self._connections.add(sock)
        try:
            if self.ssl_context is not None:
                sock = self._tls_handshake(request)
                if sock is None:
                    return
                with self._conn_lock:
                    self._connections.add(sock)
            self.RequestHandlerClass(sock, client_address, self)
        finally:
            with self._conn_lock:
                self._connections.discard(request)
                if sock is not None:
                    self._connections.discard(sock)
            if sock is not None and sock is not request:
                try:
                    sock.close()
                except OSError:
                    pass

    def _tls_handshake(self, request: socket.socket) -> ssl.SSLSocket | None:
        # Go's net/http answers plain HTTP on a TLS port with this 400 (server.go)
        request.settimeout(5)
        head = b""
        try:
            deadline = time.monotonic() + 5
            while len(head) < 5 and time.monotonic() < deadline:
                head = request.recv(5, socket.MSG_PEEK)
                if not head:
                    return None
                if len(head) < 5:
                    time.sleep(0.005)
        except OSError:
            return None
        if head[:5] in (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO", b"DELET", b"PATCH"):
            try:
                request.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
            except OSError:
                pass
            return None
        try:
            assert self.ssl_context is not None
            tls_sock = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return None
        tls_sock.settimeout(None)
        return tls_sock

    def close_all_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, OSError)):
            return
        self.fake.internal_errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    # TCP_NODELAY; with the single write below, no 40 ms Nagle/delayed-ACK stall per request
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        # Go sends a Date header but no Server header
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline().strip()
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        fake = self.server.fake
        started = time.monotonic()
        body = self._read_body()
        # http.server rewrites a leading "//" in self.path (gh-87389); Nomad sees the raw target
        parts = self.requestline.split(" ")
        target = parts[1] if len(parts) == 3 else self.path
        raw_path, _, raw_query = target.partition("?")
        query_all = parse_qs(raw_query, keep_blank_values=True)
        query = {k: v[0] for k, v in query_all.items()}
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        token = self.headers.get("X-Nomad-Token")
        if token is None:
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                token = auth[len("Bearer "):].strip()
        parsed: Any = None
        if body:
            try:
                parsed = _json.loads(body)
            except ValueError:
                parsed = None
        index: int | None = None
        try:
            index = int(query["index"]) if query.get("index") else None
        except ValueError:
            index = None
        sni = getattr(self.connection, "_fakenomad_sni", None)
        cert_cn = None
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                cert = self.connection.getpeercert()
            except (ValueError, OSError):
                cert = None
            for rdn in (cert or {}).get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cert_cn = value
        rec = RecordedRequest(
            method=self.command,
            path=unquote(raw_path),
            target=target,
            query=query,
            query_all=query_all,
            headers=headers,
            body=body,
            json=parsed,
            token=token,
            namespace=query.get("namespace") or "default",
            region=query.get("region") or None,
            blocking=bool(index and index > 0),
            index=index,
            wait=query.get("wait"),
            time=started,
            sni=sni,
            client_cert_cn=cert_cn,
        )
        fake._record(rec)
        response = fake._handle(rec)
        rec.duration = time.monotonic() - started
        if response.action == "drop":
            self._drop()
            return
        if response.action == "hang":
            self._hang()
            return
        if response.action == "truncate":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(b'{"ID": "trunc')
            self.wfile.flush()
            self._drop()
            rec.status = 200
            return
        rec.status = response.status
        self.send_response(response.status)
        for key, value in response.headers:
            self.send_header(key, value)
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(response.body)))
        # end_headers(), but with the body in the same write
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and response.status not in (204, 304):
            self._headers_buffer.append(response.body)
        self.flush_headers()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _hang(self) -> None:
        fake = self.server.fake
        sock = self.connection
        generation = fake._hang_generation
        while fake._hang_generation == generation and not fake._stopping.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], 0.05)
            except (OSError, ValueError):
                break
            if readable:
                try:
                    if not sock.recv(1):
                        break  # the client went away
                except (OSError, ssl.SSLError):
                    break
        self._drop()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _dispatch

"""A partial table changes only the keys it names; everything else keeps its default.

The rule is checked for every table of the deployment file whose default is a model
instance, found by walking the model classes from `Deployment` (and, inside a default
instance, the tables that instance sets itself, such as the ingestion's health check),
never from a list: a table added later is covered by the same test. Maps and lists are
values: one given replaces the default, never merges with it.
"""

from __future__ import annotations

import copy
import json
import tomllib
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from matomo_nomad import DeploymentError, Role, example_path, parse_deployment, render
from matomo_nomad._model import Deployment


def _example(name: str) -> dict[str, Any]:
    with open(example_path().parent / name, "rb") as handle:
        return tomllib.load(handle)


MINIMAL = _example("minimal.toml")
SEED = _example("seed.toml")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class a field holds directly (through Optional or Annotated), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _tables_with_defaults(
    model: type[BaseModel], path: tuple[str, ...] = (), instance: BaseModel | None = None
) -> Iterator[tuple[tuple[str, ...], BaseModel, tuple[str, ...] | None]]:
    """(path, default instance, optional table it lies under) for every table whose default
    is a model instance: a field's own default, or a table a default instance sets."""
    for name, field in model.model_fields.items():
        here = path + (name,)
        if instance is not None:
            value = getattr(instance, name)
            if isinstance(value, BaseModel):
                yield here, value, None
                yield from _tables_with_defaults(type(value), here, value)
            continue
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            yield here, default, None
            yield from _tables_with_defaults(type(default), here, default)
            continue
        inner = _model_in(field.annotation)
        if inner is not None:
            # A table without a default (required, or optional and unset): the tables
            # with defaults inside it are found all the same; an optional one must be
            # present in the file for them to apply.
            for found, value, _ in _tables_with_defaults(inner, here):
                yield found, value, (here if not field.is_required() else None)


TABLES = list(_tables_with_defaults(Deployment))


def _leaf_changes(default: BaseModel, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Candidate (keys, other value) pairs for the table's leaves: its own first, then its
    sub-tables' (a table such as `roles` has no leaves of its own)."""
    nested = []
    for name, field in type(default).model_fields.items():
        value = getattr(default, name)
        if isinstance(value, BaseModel):
            nested.append((name, value))
            continue
        candidates: list[Any] = []
        literal = list(typing.get_args(field.annotation)) if typing.get_origin(field.annotation) is Literal else []
        if isinstance(value, bool):
            candidates = [not value]
        elif isinstance(value, int):
            candidates = [value + 1, value - 1]
        elif isinstance(value, float):
            candidates = [value + 1.5]
        elif literal:
            candidates = [choice for choice in literal if choice != value]
        elif isinstance(value, str):
            candidates = ["1h", "20m", "7s", value + "x"]
        elif isinstance(value, dict):
            candidates = [{}] if value else [{"X_ONE": "1"}]
        elif isinstance(value, list):
            candidates = [[]] if value else []
        elif value is None and _model_in(field.annotation) is not None:
            # An optional table left out: as the full example writes it, if it does.
            source: Any = SEED
            for key in path + (name,):
                source = source.get(key) if isinstance(source, dict) else None
            candidates = [source] if source is not None else []
        for candidate in candidates:
            if candidate != value:
                yield (name,), candidate
    for name, value in nested:
        for keys, candidate in _leaf_changes(value, path + (name,)):
            yield (name,) + keys, candidate


def _nested(keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: _nested(keys[1:], value)}


def _replaced(dumped: dict[str, Any], keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    result = dict(dumped)
    result[keys[0]] = value if len(keys) == 1 else _replaced(dumped[keys[0]], keys[1:], value)
    return result


def _with(data: dict[str, Any], path: tuple[str, ...], table: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(data)
    node = result
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = table
    return result


def _at(model: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        model = getattr(model, key)
    return model


def _base_for(under: tuple[str, ...] | None) -> dict[str, Any]:
    base = copy.deepcopy(MINIMAL)
    if under is not None:
        # The optional table this one lies in, as the full example writes it.
        source: Any = SEED
        for key in under:
            assert key in source, f"{'.'.join(under)}: add it to examples/seed.toml so its tables are tested"
            source = source[key]
        base = _with(base, under, copy.deepcopy(source))
    return base


def test_the_walk_finds_the_tables_with_defaults() -> None:
    paths = {".".join(path) for path, _, _ in TABLES}
    # A floor, not a list: the walk must not silently come back empty.
    assert len(paths) >= 20
    assert {"roles.ingestion.service", "roles.ingestion.service.check", "roles.archiver.restart", "database.tls"} <= paths


@pytest.mark.parametrize(("path", "default", "under"), TABLES, ids=[".".join(p) for p, _, _ in TABLES])
def test_a_partial_table_keeps_every_other_default(path: tuple[str, ...], default: BaseModel, under: tuple[str, ...] | None) -> None:
    base = _base_for(under)
    tried = []
    for keys, value in _leaf_changes(default, path):
        try:
            deployment = parse_deployment(_with(base, path, _nested(keys, value)))
        except DeploymentError as error:
            tried.append(f"{'.'.join(keys)}={value!r}: {error}")
            continue
        table = _at(deployment, path)
        changed = _at(table, keys)
        assert changed != _at(default, keys), keys
        # One leaf differs from the default instance: every other one is the default's.
        assert table.model_dump() == _replaced(default.model_dump(), keys, _dump(changed)), keys
        break
    else:
        pytest.fail(f"no leaf of {'.'.join(path)} could be changed on its own: {tried}")


def _dump(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


@pytest.mark.parametrize(("path", "default", "under"), TABLES, ids=[".".join(p) for p, _, _ in TABLES])
def test_an_empty_table_is_the_default(path: tuple[str, ...], default: BaseModel, under: tuple[str, ...] | None) -> None:
    deployment = parse_deployment(_with(_base_for(under), path, {}))
    assert _at(deployment, path).model_dump() == default.model_dump()


def _job(deployment: Any, role: Role) -> dict[str, Any]:
    return json.loads(render(deployment)[role].api_json)["Job"]


def test_the_seed_example_keeps_the_ingestion_health_check() -> None:
    # examples/seed.toml gives [roles.ingestion.service] only its tags.
    assert "check" not in SEED["roles"]["ingestion"]["service"]
    deployment = parse_deployment(SEED)
    service = deployment.roles.ingestion.service
    assert service.tags == ["traefik.enable=true"]
    assert service.check is not None and service.check.path == "/matomo.php"
    group = _job(deployment, Role.ingestion)["TaskGroups"][0]
    assert group["Services"][0]["Tags"] == ["traefik.enable=true"]
    assert group["Services"][0]["Checks"][0]["Path"] == "/matomo.php"
    assert group["Services"][0]["Checks"][0]["Header"] == {"X-Forwarded-Proto": ["https"]}
    assert group["Update"]["HealthCheck"] == "checks"


def test_a_nested_partial_table_keeps_the_role_specific_default() -> None:
    data = _with(MINIMAL, ("roles", "admin", "service", "check"), {"interval": "30s"})
    check = parse_deployment(data).roles.admin.service.check
    assert check is not None
    assert (check.path, check.interval, check.timeout) == ("/index.php?module=Login", "30s", "3s")


@pytest.mark.parametrize("no_check", [False, None], ids=["false", "null"])
def test_check_false_removes_the_health_check(no_check: bool | None) -> None:
    data = _with(MINIMAL, ("roles", "ingestion", "service"), {"check": no_check, "tags": ["t"]})
    deployment = parse_deployment(data)
    assert deployment.roles.ingestion.service.check is None
    assert deployment.roles.ingestion.service.tags == ["t"]
    group = _job(deployment, Role.ingestion)["TaskGroups"][0]
    assert "Checks" not in group["Services"][0] or not group["Services"][0]["Checks"]
    assert group["Update"]["HealthCheck"] == "task_states"
    assert "check {" not in render(deployment)[Role.ingestion].hcl


def test_check_true_is_refused_with_the_fix() -> None:
    with pytest.raises(DeploymentError) as caught:
        parse_deployment(_with(MINIMAL, ("roles", "admin", "service"), {"check": True}))
    [problem] = caught.value.problems
    assert problem.location == "roles.admin.service.check"
    assert "check = false" in problem.message and problem.message.endswith(")")


def test_maps_and_lists_replace_their_default() -> None:
    data = _with(MINIMAL, ("roles", "ingestion", "service", "check"), {"headers": {"X-Probe": ["1"]}})
    data["proxy"] = {"client_headers": ["HTTP_X_REAL_IP"]}
    data["plugins"] = [{"name": "QueuedTracking", "version": "5.1.1"}]
    deployment = parse_deployment(data)
    check = deployment.roles.ingestion.service.check
    assert check is not None and check.path == "/matomo.php"
    assert check.headers == {"X-Probe": ["1"]}  # not merged with X-Forwarded-Proto
    assert deployment.proxy.client_headers == ["HTTP_X_REAL_IP"]
    assert [p.name for p in deployment.plugins] == ["QueuedTracking"]


def test_errors_in_a_partial_table_name_the_files_path() -> None:
    data = _with(MINIMAL, ("roles", "ingestion", "service"), {"tgas": ["x"], "check": {"timeout": "1ms"}})
    with pytest.raises(DeploymentError) as caught:
        parse_deployment(data)
    lines = sorted(str(p) for p in caught.value.problems)
    assert lines == [
        "roles.ingestion.service.check.timeout: is shorter than 1s, Nomad's minimum for checks (use 1s or more)",
        "roles.ingestion.service.tgas: is not a known setting (did you mean 'tags'?)",
    ]


def test_merging_leaves_what_the_file_set_alone() -> None:
    # Cluster.target relies on it: a namespace or region the file leaves out is not "set".
    deployment = parse_deployment(_with(MINIMAL, ("roles", "ingestion", "service"), {"tags": ["x"]}))
    assert "namespace" not in deployment.model_fields_set and "region" not in deployment.model_fields_set
    assert deployment.roles.model_fields_set == {"ingestion"}

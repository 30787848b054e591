"""The JSON Schema (`matomo-nomad schema`): every property described, every default given.

Walked from `Deployment` through every model class the deployment file reaches, never
from a list: a field added later needs a description (and shows its default) too.
"""

from __future__ import annotations

import json
import re
import tomllib
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from matomo_nomad import example_path
from matomo_nomad._model import Deployment, json_schema

SCHEMA = json_schema()


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _reachable(model: type[BaseModel], seen: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    seen[model.__name__] = model
    for field in model.model_fields.values():
        for inner in _models_in(field.annotation):
            if inner.__name__ not in seen:
                _reachable(inner, seen)
    return seen


MODELS = _reachable(Deployment, {})
FIELDS = [(name, field_name) for name, model in MODELS.items() for field_name in model.model_fields]


def _schema_of(model_name: str) -> dict[str, Any]:
    return SCHEMA if model_name == "Deployment" else SCHEMA["$defs"][model_name]


def _own_description(prop: dict[str, Any]) -> str:
    """The description without the "Default: ..." sentence json_schema() appends."""
    return re.sub(r"\s*Default: (?:[^\n]*)\.$", "", prop.get("description", ""))


def test_every_model_is_in_the_schema() -> None:
    assert len(MODELS) > 20
    for name in MODELS:
        assert "properties" in _schema_of(name), name


@pytest.mark.parametrize(("model", "field"), FIELDS, ids=[f"{m}.{f}" for m, f in FIELDS])
def test_every_property_has_a_description_and_its_default(model: str, field: str) -> None:
    info = MODELS[model].model_fields[field]
    prop = _schema_of(model)["properties"][info.alias or field]  # the file's spelling
    assert _own_description(prop).strip(), f"{model}.{field} has no description"
    if info.is_required():
        assert "default" not in prop
        return
    default = info.get_default(call_default_factory=True)
    expected = default.model_dump(mode="json") if isinstance(default, BaseModel) else json.loads(
        json.dumps(default, default=lambda item: item.model_dump(mode="json"))
    )
    assert "default" in prop, f"{model}.{field}: the default is missing"
    assert prop["default"] == expected
    assert "Default: " in prop["description"]


def test_factory_defaults_the_readme_names_are_there() -> None:
    properties = SCHEMA["properties"]
    assert properties["datacenters"]["default"] == ["*"]
    assert [p["name"] for p in properties["plugins"]["default"]] == ["QueuedTracking", "SecurityInfo"]
    assert SCHEMA["$defs"]["Proxy"]["properties"]["client_headers"]["default"] == ["HTTP_X_FORWARDED_FOR"]
    assert 'Default: ["*"].' in properties["datacenters"]["description"]
    for role in ("AdminRole", "IngestionRole", "ArchiverRole"):
        for name in ("update", "restart", "constraints"):
            if name in SCHEMA["$defs"][role]["properties"]:
                assert _own_description(SCHEMA["$defs"][role]["properties"][name])
    assert _own_description(SCHEMA["$defs"]["Service"]["properties"]["tags"])


def test_a_table_default_names_what_differs_from_its_keys_defaults() -> None:
    service = SCHEMA["$defs"]["IngestionRole"]["properties"]["service"]
    assert service["default"]["check"]["path"] == "/matomo.php"
    assert "/matomo.php" in service["description"]
    restart = SCHEMA["$defs"]["ArchiverRole"]["properties"]["restart"]
    assert restart["default"]["attempts"] == 0 and 'except {"attempts": 0}' in restart["description"]
    assert SCHEMA["properties"]["proxy"]["description"].endswith("Default: its keys' own defaults.")
    assert "x-matomo-nomad-changed" not in json.dumps(SCHEMA)


def test_check_accepts_false() -> None:
    check = SCHEMA["$defs"]["Service"]["properties"]["check"]
    assert {"const": False} in check["anyOf"]
    assert "false" in _own_description(check)


def _load(name: str) -> dict[str, Any]:
    with open(example_path().parent / name, "rb") as handle:
        return tomllib.load(handle)


def test_the_schema_is_valid_and_accepts_the_examples() -> None:
    import jsonschema  # the test extra: CI installs it
    validator_class = jsonschema.validators.validator_for(SCHEMA)
    validator_class.check_schema(SCHEMA)
    validator = validator_class(SCHEMA)
    for name in ("seed.toml", "minimal.toml"):
        validator.validate(_load(name))
    no_check = _load("minimal.toml")
    no_check["roles"] = {"ingestion": {"service": {"check": False}}, "admin": {"constraints": [{"operator": "distinct_hosts"}]}}
    validator.validate(no_check)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**no_check, "roles": {"ingestion": {"service": {"check": True}}}})


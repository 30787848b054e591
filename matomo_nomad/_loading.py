"""Deployment files (TOML, YAML, JSON) and dicts into a validated `Deployment`.

Every problem is reported at once, one line each, as `path.to.field: what is wrong
(how to fix)`; syntax errors carry the file's line and column. Pydantic's own messages
are reworded here for people who edit a TOML file rather than Python objects.
"""

from __future__ import annotations

import difflib
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ._errors import DeploymentError, DeploymentFileError, Problem
from ._model import Deployment

EXAMPLE = "seed.toml"


def example_path() -> Path:
    """The built-in example: the seed write-up's architecture."""
    return Path(__file__).parent / "examples" / EXAMPLE


def load_deployment(path: str | os.PathLike[str]) -> Deployment:
    """Read and validate a deployment file (.toml, .yaml/.yml or .json)."""
    path = Path(path)
    return parse_deployment(_read(path), source=str(path))


def parse_deployment(data: Mapping[str, Any], source: str = "deployment") -> Deployment:
    """Validate an already-parsed deployment (a dict as a TOML or YAML reader returns it)."""
    if not isinstance(data, Mapping):
        raise DeploymentError([Problem(source, "must be a table/mapping of settings at the top level")])
    try:
        return Deployment.model_validate(dict(data))
    except ValidationError as error:
        raise DeploymentError(_problems(error)) from None
    except RecursionError:
        raise DeploymentError([Problem(source, "is nested too deeply to validate", "flatten it")]) from None


# --- reading ------------------------------------------------------------------------


def _read(path: Path) -> Mapping[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DeploymentFileError(
            [Problem(str(path), f"cannot be read: {error.strerror or error}", "check the path and permissions")]
        ) from None
    try:
        # utf-8-sig: a byte-order mark some editors add is not part of the content.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line, column = _position(raw[: error.start].decode("utf-8", "replace"))
        raise DeploymentFileError(
            [Problem(f"{path}:{line}:{column}", "is not valid UTF-8", "save the file as UTF-8")]
        ) from None
    readers = {".toml": _toml, ".yaml": _yaml, ".yml": _yaml, ".json": _json}
    reader = readers.get(path.suffix.lower())
    if reader is not None:
        try:
            return reader(text, path)
        except RecursionError:
            raise DeploymentFileError([Problem(str(path), "is nested too deeply to read", "flatten it")]) from None
    raise DeploymentFileError(
        [Problem(str(path), f"has an unknown file type '{path.suffix}'", "use .toml, .yaml, .yml or .json")]
    )


def _position(prefix: str) -> tuple[int, int]:
    return prefix.count("\n") + 1, len(prefix) - (prefix.rfind("\n") + 1) + 1


def _toml(text: str, path: Path) -> Mapping[str, Any]:
    import re
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        # tomllib says "... (at line L, column C)"; move the position to the front.
        match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        where = f"{path}:{match.group(1)}:{match.group(2)}" if match else str(path)
        message = message[: match.start()] if match else message
        raise DeploymentFileError([Problem(where, f"TOML syntax error: {message}", "fix the TOML syntax")]) from None


def _yaml(text: str, path: Path) -> Mapping[str, Any]:
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses duplicate keys instead of keeping the last one."""

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise DeploymentFileError(
            [Problem(where, f"YAML syntax error: {error.problem or error}", "fix the YAML syntax")]
        ) from None
    except yaml.YAMLError as error:
        raise DeploymentFileError([Problem(str(path), f"YAML error: {error}", "fix the YAML syntax")]) from None
    return data if data is not None else {}


def _json(text: str, path: Path) -> Mapping[str, Any]:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DeploymentFileError(
            [Problem(f"{path}:{error.lineno}:{error.colno}", f"JSON syntax error: {error.msg}", "fix the JSON syntax")]
        ) from None


# --- validation errors into problems ------------------------------------------------


def _location(loc: tuple[int | str, ...], relative: str = "") -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if relative:
        text += relative if relative.startswith("[") or not text else f".{relative}"
    return text


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


_MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("is required", "add it"),
    "int_type": ("must be a whole number, got {input}", ""),
    "int_parsing": ("must be a whole number, got {input}", ""),
    "int_from_float": ("must be a whole number, got {input}", ""),
    "float_type": ("must be a number, got {input}", ""),
    "finite_number": ("must be a finite number, got {input}", ""),
    "float_parsing": ("must be a number, got {input}", ""),
    "bool_type": ("must be true or false, got {input}", ""),
    "bool_parsing": ("must be true or false, got {input}", ""),
    "string_type": ("must be a string, got {input}", ""),
    "list_type": ("must be a list, got {input}", "write it as [ ... ]"),
    "dict_type": ("must be a table of keys, got {input}", ""),
    "model_type": ("must be a table of settings, got {input}", ""),
    "model_attributes_type": ("must be a table of settings, got {input}", ""),
    "greater_than_equal": ("must be at least {ge}, got {input}", ""),
    "greater_than": ("must be more than {gt}, got {input}", ""),
    "less_than_equal": ("must be at most {le}, got {input}", ""),
    "less_than": ("must be less than {lt}, got {input}", ""),
    "too_short": ("needs at least {min_length} item(s)", ""),
    "too_long": ("allows at most {max_length} item(s)", ""),
    "string_too_short": ("must not be empty", ""),
    "literal_error": ("must be one of {expected}, got {input}", ""),
    "enum": ("must be one of {expected}, got {input}", ""),
}


def _problems(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        kind = item["type"]
        key = None
        if loc and loc[-1] == "[key]":
            # The problem is a mapping's key, not its value: name the mapping, quote the key.
            key, loc = loc[-2], loc[:-2]
        if kind == "value_error":
            message = str(item["ctx"]["error"]) if "ctx" in item else item["msg"]
            for line in message.splitlines():
                if line.startswith("@"):
                    # A model's own check names the field it is about, relative to the model.
                    relative, _, what = line[1:].partition(": ")
                    problems.append(Problem(_location(loc, relative) or "deployment", what))
                elif not loc and ": " in line:
                    # Whole-deployment checks name the field from the top.
                    where, _, what = line.partition(": ")
                    problems.append(Problem(where, what))
                else:
                    what = f"key {_shown(key)} {line}" if key is not None else line
                    problems.append(Problem(_location(loc) or "deployment", what))
            continue
        if kind == "extra_forbidden":
            problems.append(Problem(_location(loc), "is not a known setting", _suggestion(loc)))
            continue
        template, fix = _MESSAGES.get(kind, (item["msg"], ""))
        context = {k: v for k, v in item.get("ctx", {}).items()}
        context["input"] = _shown(item.get("input"))
        try:
            what = template.format(**context)
        except (KeyError, IndexError):
            what = item["msg"]
        if key is not None:
            what = f"key {_shown(key)} {what}"
        problems.append(Problem(_location(loc) or "deployment", what, fix))
    return problems


def _suggestion(loc: tuple[int | str, ...]) -> str:
    known = _known_fields(loc[:-1])
    if known is None:
        return "remove it"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "remove it; known here: " + ", ".join(known)


def _known_fields(loc: tuple[int | str, ...]) -> list[str] | None:
    """Field names of the model at `loc`, following the Deployment's annotations."""
    model: Any = Deployment
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return None


def _inner_model(annotation: Any) -> Any:
    """The model inside Optional[...], list[...] or Annotated[...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None

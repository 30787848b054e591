"""Deployment files (TOML, YAML, JSON) and dicts into a validated `Deployment`.

Every problem is reported at once, one line each, as `path.to.field: what is wrong
(how to fix)`; syntax errors carry the file's line and column. Pydantic's own messages
are reworded here for people who edit a TOML file rather than Python objects.
"""

from __future__ import annotations

import json
import os
import re
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
        raise DeploymentError(
            [
                Problem(
                    source,
                    "must be a table/mapping of settings at the top level",
                    "write keys such as name and hosts there, not a list or a single value",
                )
            ]
        )
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
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        # tomllib says "... (at line L, column C)", or "(at end of document)" when the
        # file stops mid-value; move the position to the front, the end's included.
        match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        end = re.search(r"\s*\(at end of document\)$", message)
        if match:
            where, message = f"{path}:{match.group(1)}:{match.group(2)}", message[: match.start()]
        elif end:
            where, message = "{}:{}:{}".format(path, *_position(text)), message[: end.start()]
        else:
            where = str(path)
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
    except yaml.reader.ReaderError as error:
        # A character YAML does not allow: located by its index, not by a mark.
        character = error.character if isinstance(error.character, int) else ord(error.character)
        line, column = _position(text[: error.position])
        raise DeploymentFileError(
            [
                Problem(
                    f"{path}:{line}:{column}",
                    f"YAML syntax error: the character U+{character:04X} is not allowed in YAML",
                    f"remove it, or write it as \"\\u{character:04X}\" inside a double-quoted string"
                    if character <= 0xFFFF
                    else f"remove it, or write it as \"\\U{character:08X}\" inside a double-quoted string",
                )
            ]
        ) from None
    except yaml.YAMLError as error:
        message = " ".join(str(error).split())
        raise DeploymentFileError([Problem(str(path), f"YAML error: {message}", "fix the YAML syntax")]) from None
    return data if data is not None else {}


def _json(text: str, path: Path) -> Mapping[str, Any]:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise DeploymentFileError(
            [Problem(f"{path}:{error.lineno}:{error.colno}", f"JSON syntax error: {error.msg}", "fix the JSON syntax")]
        ) from None
    except _DuplicateKey:
        # Refused like TOML and YAML refuse it (json keeps the last value silently).
        key, offset = _first_duplicate_key(text)
        line, column = _position(text[:offset])
        raise DeploymentFileError(
            [Problem(f"{path}:{line}:{column}", f"JSON syntax error: duplicate key {key!r}", "fix the JSON syntax")]
        ) from None


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:]')


def _first_duplicate_key(text: str) -> tuple[str, int]:
    """The first key, in reading order, that its object already has, and its offset.

    Run only on text json has read (so its strings and brackets are well formed):
    strings followed by ':' are keys; each '{' opens a set of them."""
    objects: list[set[str] | None] = []
    tokens = list(_JSON_TOKEN.finditer(text))
    for index, token in enumerate(tokens):
        kind = token.group()
        if kind in "{[":
            objects.append(set() if kind == "{" else None)
        elif kind in "}]":
            objects.pop()
        elif kind.startswith('"') and index + 1 < len(tokens) and tokens[index + 1].group() == ":":
            keys = objects[-1]
            key = json.loads(kind)
            if keys is not None and key in keys:
                return key, token.start()
            if keys is not None:
                keys.add(key)
    raise AssertionError("json found a duplicate key that the scan did not")  # pragma: no cover


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


_TABLE = "write it as a table of keys (a mapping in YAML, an object in JSON)"

# Pydantic's error kinds as `what is wrong` and `how to fix it`: every line has both.
_MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("is required", "add it"),
    "int_type": ("must be a whole number, got {input}", "write digits only, without quotes"),
    "int_parsing": ("must be a whole number, got {input}", "write digits only, without quotes"),
    "int_from_float": ("must be a whole number, got {input}", "write it without a fraction"),
    "float_type": ("must be a number, got {input}", "write a number, without quotes"),
    "finite_number": ("must be a finite number, got {input}", "write a finite number"),
    "float_parsing": ("must be a number, got {input}", "write a number, without quotes"),
    "bool_type": ("must be true or false, got {input}", "write true or false, without quotes"),
    "bool_parsing": ("must be true or false, got {input}", "write true or false, without quotes"),
    "string_type": ("must be a string, got {input}", "write it in double quotes"),
    "list_type": ("must be a list, got {input}", "write it as [ ... ]"),
    "dict_type": ("must be a table of keys, got {input}", _TABLE),
    "model_type": ("must be a table of settings, got {input}", _TABLE),
    "model_attributes_type": ("must be a table of settings, got {input}", _TABLE),
    "greater_than_equal": ("must be at least {ge}, got {input}", "use {ge} or more"),
    "greater_than": ("must be more than {gt}, got {input}", "use more than {gt}"),
    "less_than_equal": ("must be at most {le}, got {input}", "use {le} or less"),
    "less_than": ("must be less than {lt}, got {input}", "use less than {lt}"),
    "too_short": ("needs at least {min_length} item(s)", "add items to the list"),
    "too_long": ("allows at most {max_length} item(s)", "remove items"),
    "string_too_short": ("must not be empty", "write a non-empty value"),
    "literal_error": ("must be one of {expected}, got {input}", "use one of those, spelled exactly"),
    "enum": ("must be one of {expected}, got {input}", "use one of those, spelled exactly"),
}
_ANY_OTHER_FIX = "`matomo-nomad schema` describes what this field takes"


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
        template, fix = _MESSAGES.get(kind, (item["msg"], _ANY_OTHER_FIX))
        context = {k: v for k, v in item.get("ctx", {}).items()}
        context["input"] = _shown(item.get("input"))
        try:
            what, fix = template.format(**context), fix.format(**context)
        except (KeyError, IndexError):
            what, fix = item["msg"], _ANY_OTHER_FIX
        if key is not None:
            what = f"key {_shown(key)} {what}"
        problems.append(Problem(_location(loc) or "deployment", what, fix))
    return problems


def _suggestion(loc: tuple[int | str, ...]) -> str:
    known = _known_fields(loc[:-1])
    if known is None:
        return "remove it"
    import difflib  # only for a misspelt key: a valid file never needs it

    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "remove it; known here: " + ", ".join(known)


def _known_fields(loc: tuple[int | str, ...]) -> list[str] | None:
    """The keys the file may give at `loc` (fields by their alias, as the file spells
    them), following the Deployment's annotations."""
    model: Any = Deployment
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        if part not in fields:
            return None
        model = _inner_model(fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [field.alias or name for name, field in model.model_fields.items()]
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

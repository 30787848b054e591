"""config.ini.php as Matomo reads it, and as consul-template writes it.

Matomo reads config.ini.php with PHP's `parse_ini_string` (normal scanner mode), then
decodes HTML entities in every value TWICE (matomo core/Config/IniFileChain.php). So a
value is safe only when it is double-quoted and the characters PHP's scanner treats
specially inside quotes (`"`, `\\`, `$` as in `${ENV}`) and the line breaks never appear
raw. They are written as entities, `&` first and doubled because of the second decode.
Booleans are written bare (0/1): a quoted "0" is a non-empty string, and truthy in places.

Secret values are unknown until the template runs in the allocation, so the same encoding
is done there by consul-template's `replaceAll`, in one `define`d template every secret
goes through. The encoding table is kept here once and used for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

# Order matters: `&` first, so the entities we introduce are not themselves re-encoded.
# `&amp;amp;` because Matomo decodes twice: `&amp;amp;` -> `&amp;` -> `&`.
INI_ENTITIES: tuple[tuple[str, str], ...] = (
    ("&", "&amp;amp;"),
    ('"', "&quot;"),
    ("$", "&#36;"),
    ("\\", "&#92;"),
    ("\n", "&#10;"),
    ("\r", "&#13;"),
)

# The consul-template helper every secret goes through. Defined once at the top of the
# template; `{{ template "ini_value" .x }}` then encodes like `encode_text` below.
ENCODER_NAME = "matomo_ini_value"


def _go_string(text: str) -> str:
    """A Go string literal (consul-template function arguments are Go literals)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


ENCODER_DEFINITION = (
    "{{- define " + _go_string(ENCODER_NAME) + " }}{{ . "
    + "".join(f"| replaceAll {_go_string(raw)} {_go_string(entity)} " for raw, entity in INI_ENTITIES)
    + "}}{{ end -}}"
)


def encode_text(value: str) -> str:
    """A string as the inside of a double-quoted INI value that Matomo decodes back to it."""
    for raw, entity in INI_ENTITIES:
        value = value.replace(raw, entity)
    return value


def escape_template_text(text: str) -> str:
    """Static text made inert for consul-template: only `{{` opens an action."""
    return text.replace("{{", '{{ "{{" }}')


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A value read from the secret store at run time, by key."""

    key: str


Scalar = Union[bool, int, float, str, SecretRef]
Value = Union[Scalar, list[Union[bool, int, float, str]]]


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    values: dict[str, Value]


def _scalar_text(value: Scalar, secret_item: str) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, SecretRef):
        item = secret_item.format(key=value.key)
        # The action's text is ours, not the user's: it must not be escaped.
        return '"{{ template ' + _go_string(ENCODER_NAME) + f" {item} }}}}" + '"'
    if isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = value
    return '"' + escape_template_text(encode_text(text)) + '"'


def section_lines(section: Section, secret_item: str) -> list[str]:
    """The lines of one section, each `key = value` or `key[] = value` for lists.

    `secret_item` is the template expression for a key, e.g. `.{key}.Value` inside a
    `with nomadVar`, or `.Data.data.{key}` inside a `with secret`.
    """
    lines: list[str] = []
    for key, value in section.values.items():
        if isinstance(value, list):
            # A plain `key = ` for a list is silently ignored by Matomo: lists need `key[]`.
            lines.extend(f"{key}[] = {_scalar_text(item, secret_item)}" for item in value)
        else:
            lines.append(f"{key} = {_scalar_text(value, secret_item)}")
    return lines

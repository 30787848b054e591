"""config.ini.php as Matomo reads it, and as consul-template writes it.

Matomo reads config.ini.php with PHP's `parse_ini_string` (normal scanner mode), then
decodes HTML entities in every value TWICE (matomo core/Config/IniFileChain.php). So a
value is safe only when it is double-quoted and the characters PHP's scanner treats
specially inside quotes (`"`, `\\`, `$` as in `${ENV}`) and the line breaks never appear
raw. They are written as entities, `&` first and doubled because of the second decode.
Booleans are written bare (0/1): a quoted "0" is a non-empty string, and truthy in places.
Numbers are written bare too, ours and the deployment file's alike, spelled as PHP's
`(string)` cast spells them: that is how Matomo's own IniWriter writes a number (and how
global.ini.php has them), and it is the spelling Matomo's IniReader turns back into a
number, which it does only when `(string)($v + 0) === $v`: `1e-05` would stay the string
"1e-05", `1.0E-5` reads as the float. Quoting would change nothing for the reader (PHP's
normal scanner returns the same string either way); bare, a number reads as one.

Secret values are unknown until the template runs in the allocation, so the same encoding
is done there by consul-template's `replaceAll`, in one `define`d template every secret
goes through: the built-in keys and any setting the deployment file writes
`{ secret = "<key>" }` alike (both are a `SecretRef` here). The encoding table is kept
here once and used for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ._consul_template import go_string, replace_all_define, replace_each

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


ENCODER_DEFINITION = replace_all_define(ENCODER_NAME, INI_ENTITIES)


def encode_text(value: str) -> str:
    """A string as the inside of a double-quoted INI value that Matomo decodes back to it."""
    return replace_each(value, INI_ENTITIES)


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
        return '"{{ template ' + go_string(ENCODER_NAME) + f" {item} }}}}" + '"'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return php_number(value)
    return '"' + escape_template_text(encode_text(value)) + '"'


def php_number(value: float) -> str:
    """A float as PHP's `(string)` cast writes it (precision 14, PHP's default), so that
    Matomo's IniReader reads it back as this number: 1.0E-5, 0.25, 1.0E+15, 3 (an int to
    PHP, as Matomo would write 3.0). A float that 14 significant digits cannot hold
    (0.1 + 0.2) has no such spelling: it is written exactly (repr) and reaches PHP as a
    numeric string, which PHP's arithmetic turns into the same float."""
    text = f"{value:.14G}"  # %G switches to an exponent exactly where PHP's zend_gcvt does
    if "E" in text:
        mantissa, exponent = text.split("E")
        text = f"{mantissa if '.' in mantissa else mantissa + '.0'}E{int(exponent):+d}"
    if float(text) != value or text == "-0":
        return repr(value)
    return text


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

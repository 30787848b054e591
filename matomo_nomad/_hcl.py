"""HCL2 text: literals escaped for Nomad's parser, laid out the way `nomad fmt` leaves it.

`nomad fmt` is hclwrite's formatter: two-space indents, and the `=` of consecutive
attribute lines in one block aligned one space after the longest name. The job
templates align their fixed attribute groups by hand; groups whose keys vary (env,
meta, the driver config) go through `attributes()` so they come out aligned too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Inside quoted strings and heredocs `${` starts an interpolation and `%{` a directive;
# doubling the sigil is HCL's escape for both.
_TEMPLATE_SIGILS = re.compile(r"([$%])\{")
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _sigils(text: str) -> str:
    return _TEMPLATE_SIGILS.sub(lambda m: m.group(1) * 2 + "{", text)


def string(text: str) -> str:
    """A quoted HCL string literal whose value is exactly `text`."""
    escaped = text.translate(_STRING_ESCAPES)
    escaped = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return '"' + _sigils(escaped) + '"'


def value(item: object) -> str:
    """A literal for a bool, number, string or list of them."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return repr(item)
    if isinstance(item, str):
        return string(item)
    if isinstance(item, (list, tuple)):
        return "[" + ", ".join(value(i) for i in item) + "]"
    raise TypeError(f"no HCL literal for {type(item).__name__}")


def heredoc(text: str) -> str:
    """`<<MARKER` ... `MARKER` holding exactly `text` (which must end with a newline).

    Heredocs keep text readable in the job file; they have no backslash escapes, so
    only the template sigils need doubling. The marker is chosen so no line of the
    body can end the heredoc early.
    """
    if not text.endswith("\n"):
        raise ValueError("a heredoc body must end with a newline")
    lines = set(text.splitlines())
    marker = "EOT"
    n = 0
    while marker in lines:
        n += 1
        marker = f"EOT{n}"
    return f"<<{marker}\n{_sigils(text)}{marker}"


def attributes(pairs: Mapping[str, object] | Iterable[tuple[str, object]], indent: int) -> str:
    """Attribute lines with aligned `=`, as hclwrite aligns a run of attributes.

    Keys must be HCL identifiers (the model only admits such names); values are
    rendered with `value()`. Empty input gives an empty string.
    """
    items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
    if not items:
        return ""
    width = max(len(k) for k, _ in items)
    pad = " " * indent
    return "\n".join(f"{pad}{k.ljust(width)} = {value(v)}" for k, v in items)

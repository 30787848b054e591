"""Pieces of consul-template source that both config.ini.php and the env file use.

consul-template's function arguments are Go string literals, and an encoding done at
run time (a secret's value is unknown until then) is a chain of `replaceAll` in one
`define`d template every value goes through. The tables themselves belong to the
formats (`_ini.INI_ENTITIES`, `_envfile.ENV_ESCAPES`).
"""

from __future__ import annotations

from collections.abc import Iterable

_SHORT = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def go_string(text: str) -> str:
    """A Go string literal for `text`, every control character escaped, so the job file
    never shows a raw one."""
    out = []
    for char in text:
        if char in _SHORT:
            out.append(_SHORT[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def replace_all_define(name: str, table: Iterable[tuple[str, str]]) -> str:
    """`{{ define name }}` piping its argument through `replaceAll` for each pair, in order."""
    chain = "".join(f"| replaceAll {go_string(raw)} {go_string(replacement)} " for raw, replacement in table)
    return "{{- define " + go_string(name) + " }}{{ . " + chain + "}}{{ end -}}"


def replace_each(value: str, table: Iterable[tuple[str, str]]) -> str:
    """What the define does to `value`, done here for values known when rendering."""
    for raw, replacement in table:
        value = value.replace(raw, replacement)
    return value

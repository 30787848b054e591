"""config.ini.php read exactly as Matomo reads it: the first half of `secrets import`.

`read_matomo_config(text)` gives the settings Matomo would see (PHP's `parse_ini_string`
in normal mode with sections, component-ini's typing pass, then `html_entity_decode`
twice). Whatever this reader cannot read the way PHP would, it refuses, one
`line N: what (fix)` per problem; it never guesses. Mapping the result onto a
deployment is `_migrate`'s job.

How PHP reads the file, as far as this module relies on it (checked against php-cli 8.2
with tests/oracles/read_config.php, and reference/matomo.md):

- Lines end at \\n, \\r\\n or a lone \\r. `;` starts a comment (outside quotes); `#` does
  not (since PHP 7.0 a `# ...` line is a bare key that is silently ignored, or an error).
- `[name]` must start the line: `  [name]` is a syntax error, `[ name ]` keeps the spaces.
  A section given twice REPLACES the first one (in the first one's position).
- `key = value`; the key may be followed by `[]` (append) or `[offset]`. A later `key =`
  replaces a list; a later `key[] =` throws away a plain value. Keys named true, on, yes,
  false, off, no, none or null (any case) are syntax errors.
- Unquoted values: bare true/on/yes read as "1", false/off/no/none/null as "" (any case);
  component-ini then turns exactly `true`/`yes`/`on` into true, `false`/`no`/`off` into
  false and `null` into null by looking at the raw text, so `TRUE` ends up as the integer
  1 and `none` as "". An unquoted name such as `E_ALL` or `PHP_OS` is REPLACED by the PHP
  constant of that name when one exists (and Matomo defines its own, PIWIK_*). Unquoted
  `| & ^ ~ ! ( )` are operators, `=` and a stray quote are errors, `'` opens a string that
  may run to the next `'` anywhere in the file, and `"a"b'c'` pieces are concatenated.
- Double quotes (PHP 8.1 and later, which php-cli 8.2 here is): `\\\\`, `\\"` and `\\$` are
  escapes for one character; any other backslash is kept. A `\\"` right at the end of the
  line closes the string with the backslash kept ("C:\\dir\\"). `${NAME}` is replaced
  from the environment, also inside double quotes. PHP 8.0 and older do NOT unescape and
  `"x\\\\"` does not close the string there (reference/matomo.md), so a value with these
  escapes reads differently on an old server: `read_with_notes` notes each one.
- Single quotes: the text as it is, no escapes, no `${}`; `''` is an empty string.
- Typing (component-ini): a string becomes an int or float only when PHP prints the
  number back as the very same text, with `precision` = 14: "1" and "1.5" and "1.0E+25"
  do, "1.0", "007", "-0", "1e3" and "0.30000000000000004" stay strings.
- Entities (Matomo's IniFileChain, twice, AFTER the typing): HTML 4.01's 252 named
  entities (case-sensitive, `;` required), `&#N;` and `&#xN;` for code points PHP allows
  in HTML 4.01 (tab, LF, CR, U+0020-U+007E, U+00A0-U+D7FF, U+E000-U+10FFFF), except that
  ENT_COMPAT leaves the single quote alone (`&#39;`, `&#x27;`; `&apos;` is not HTML 4.01
  at all). Python's `html.unescape` follows HTML5 (entities without `;`, &#128; as
  windows-1252, ...), so it is not used; `html.entities.name2codepoint` is exactly PHP's
  HTML 4.01 table (checked in the tests).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html.entities import name2codepoint
from typing import Any

from ._errors import DeploymentFileError, Problem

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SECTION_RE = re.compile(r"\[(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\][ \t]*(?P<rest>.*)")
_ENTRY_RE = re.compile(
    # Only spaces between a key and its [ (a tab there is a syntax error in PHP).
    r"[ \t]*(?P<key>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"(?: *\[[ \t]*(?P<offset>[A-Za-z0-9_]*)(?P<close>\]?))?"
    r"[ \t]*(?P<equals>=?)[ \t]*(?P<value>.*)"
)
_KEYWORDS_TRUE = ("true", "on", "yes")
_KEYWORDS_FALSE = ("false", "off", "no", "none")
_KEYWORDS = _KEYWORDS_TRUE + _KEYWORDS_FALSE + ("null",)
_CONSTANT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What PHP's scanner does something with in an unquoted value (besides ; and spaces).
_UNQUOTED_SPECIAL = {
    "$": "'$' (PHP expands ${...} from the environment)",
    "=": "'=' (a syntax error there)",
    '"': "a double quote (PHP joins the quoted piece onto the value)",
    "'": "a single quote (PHP reads on to the next ' anywhere in the file)",
    "&": "'&' (a bitwise operator there)",
    "|": "'|' (a bitwise operator there)",
    "^": "'^' (a bitwise operator there)",
    "~": "'~' (a bitwise operator there)",
    "!": "'!' (an operator there)",
    "(": "'(' (an operator there)",
    ")": "')' (an operator there)",
}
_QUOTE_IT = 'write the value in double quotes, e.g. key = "..."'
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class _Raw:
    """A scalar as parse_ini_string gives it (normal mode), and its INI_SCANNER_RAW text."""

    value: str
    raw: str


class _PhpArray:
    """Enough of a PHP array for `key[] =` and `key[offset] =`: ordered, with the next
    integer index PHP would append at."""

    __slots__ = ("items", "next_index")

    def __init__(self) -> None:
        self.items: dict[int | str, _Raw] = {}
        self.next_index = 0

    def append(self, item: _Raw) -> None:
        self.items[self.next_index] = item
        self.next_index += 1

    def put(self, key: int | str, item: _Raw) -> None:
        if isinstance(key, int) and key >= self.next_index:
            self.next_index = key + 1
        self.items[key] = item


def read_matomo_config(text: str) -> dict[str, dict[str, object]]:
    """The settings Matomo reads from a config.ini.php with this text: section → key →
    value (str, int, float, bool, None; a list for `key[] =`; a dict for `key[name] =`).

    Raises DeploymentFileError with one `line N: what (fix)` problem per line it cannot
    read exactly as PHP and Matomo would.
    """
    settings, _notes = read_with_notes(text)
    return settings


def read_with_notes(text: str) -> tuple[dict[str, dict[str, object]], list[str]]:
    """`read_matomo_config`, and a note per value that PHP 8.0 and older read otherwise."""
    problems: list[Problem] = []
    notes: list[str] = []
    sections: dict[str, dict[str, _Raw | _PhpArray]] = {}
    current: dict[str, _Raw | _PhpArray] | None = None
    current_name = ""
    for number, line in enumerate(_LINE_BREAK.split(text), 1):
        where = f"line {number}"

        def refuse(what: str, fix: str, where: str = where) -> None:
            problems.append(Problem(where, what, fix))

        if number == 1 and line.startswith("\ufeff"):
            refuse("starts with a byte-order mark, which PHP reads as part of the first line", "save the file as UTF-8 without BOM")
            continue
        if "\x00" in line:
            refuse("contains a NUL character", "remove it")
            continue
        if _SURROGATE.search(line):
            refuse("is not valid Unicode (it has a lone surrogate)", "save the file as UTF-8")
            continue
        stripped = line.strip(" \t")
        if not stripped or stripped.startswith(";"):
            continue
        if line.startswith("["):
            match = _SECTION_RE.fullmatch(line)
            if match is None:
                refuse(
                    "is not a section header this reader accepts",
                    "write [Name] with letters, digits, '_', '.' or '-' and no spaces inside the brackets",
                )
                # Its lines are still read, into nothing, so their own problems show.
                current, current_name = {}, "?"
                continue
            rest = match["rest"]
            if rest and not rest.startswith(";"):
                refuse("has text after the section's ]", "remove it, or make it a comment with ;")
            current_name = match["name"]
            # A repeated section replaces the earlier one, where the earlier one was.
            current = sections[current_name] = {}
            continue
        if stripped.startswith("["):
            refuse("has spaces before a section's [, which PHP cannot parse", "start the line with [")
            continue
        if stripped.startswith("#"):
            refuse("starts with #, which is not a comment in PHP's INI syntax", "use ; for comments")
            continue
        match = _ENTRY_RE.fullmatch(line)
        if match is None or not match["equals"] or (match["offset"] is not None and not match["close"]):
            refuse(
                "is not a section, a key = value line or a ; comment",
                "write key = \"value\" with a key of letters, digits, '_', '.' or '-', or key[] = \"value\"",
            )
            continue
        key, offset = match["key"], match["offset"]
        if key.lower() in _KEYWORDS:
            refuse(f"uses '{key}' as a key, which PHP reads as a boolean and refuses", "rename the key")
            continue
        if offset and _CONSTANT_RE.fullmatch(offset) and not offset[0].islower():
            refuse(
                f"has the offset [{offset}], which PHP replaces with the value of a PHP constant of that name if one exists",
                "use [] or an offset starting with a lowercase letter",
            )
            continue
        if current is None:
            refuse("sets a value outside any section", "put it under a [Section] header")
            continue
        parsed = _value(match["value"], refuse)
        if parsed is None:
            continue
        item, escaped = parsed
        if escaped:
            notes.append(
                f"line {number}: [{current_name}] {key}: the value has a backslash escape (\\\\, \\\" or \\$, or a "
                "closing \\\"); PHP 8.1 and later read it as imported here, PHP 8.0 and older keep the backslashes "
                "(check the value if the old server ran PHP 8.0 or older)"
            )
        if offset is None:
            current[key] = item
            continue
        array = current.get(key)
        if not isinstance(array, _PhpArray):
            # `key = x` then `key[] = y`: PHP throws the plain value away, keeping its place.
            array = current[key] = _PhpArray()
        if offset == "":
            array.append(item)
        else:
            array.put(_array_key(offset), item)
    if problems:
        raise DeploymentFileError(problems)
    return {name: {key: _typed_entry(v) for key, v in values.items()} for name, values in sections.items()}, notes


def _value(text: str, refuse: Any) -> tuple[_Raw, bool] | None:
    """One value as parse_ini_string sees it, and whether it had backslash escapes.
    `text` is everything after `=` and its spaces, up to the end of the line."""
    if not text or text.startswith(";"):
        return _Raw("", ""), False
    if text.startswith('"'):
        return _double_quoted(text, refuse)
    if text.startswith("'"):
        end = text.find("'", 1)
        if end < 0:
            refuse(
                "opens a single-quoted value that does not close on this line (PHP would read on to the next ' in the file)",
                "close the quote on the same line",
            )
            return None
        if not _after_value(text[end + 1 :], refuse):
            return None
        content = text[1:end]
        return _Raw(content, text[: end + 1]), False
    token = text.split(";", 1)[0].rstrip(" \t")
    for char in token:
        if char in (" ", "\t"):
            refuse("has an unquoted value with spaces in it (PHP reads each word on its own)", _QUOTE_IT)
            return None
        if char in _UNQUOTED_SPECIAL:
            refuse(f"has an unquoted value with {_UNQUOTED_SPECIAL[char]}", _QUOTE_IT)
            return None
    if token.lower() in _KEYWORDS:
        return _Raw("1" if token.lower() in _KEYWORDS_TRUE else "", token), False
    if _CONSTANT_RE.fullmatch(token) and not token[0].islower():
        refuse(
            f"has the unquoted value {token}, which PHP replaces with the value of a PHP constant of that name "
            "if one exists (E_ALL, PHP_OS, Matomo's PIWIK_* ...)",
            _QUOTE_IT,
        )
        return None
    return _Raw(token, token), False


def _double_quoted(text: str, refuse: Any) -> tuple[_Raw, bool] | None:
    # zend_ini_scanner.l, <ST_DOUBLE_QUOTES> (PHP 8.1+): where the quoted text ends.
    i, n = 1, len(text)
    escaped = False
    while True:
        if i >= n:
            refuse(
                "has a double-quoted value that does not close on this line",
                "close the quote on the same line; write a line break in a value as &#10;",
            )
            return None
        char = text[i]
        if char == '"':
            end = i
            break
        if char == "$" and i + 1 < n and text[i + 1] == "{":
            refuse(
                "has ${...} in a double-quoted value, which PHP replaces from the environment of the "
                "process that reads the file",
                "put the real value in the file; write a literal $ as &#36;",
            )
            return None
        if char == "\\" and i + 1 < n:
            follower = text[i + 1]
            i += 2
            if follower == '"' and i >= n:
                # "C:\dir\" at the end of a line: the quote closes, the backslash stays.
                end = i - 1
                escaped = True
                break
            if follower in '"\\$':
                escaped = True
            continue
        i += 1
    if not _after_value(text[end + 1 :], refuse):
        return None
    return _Raw(_unescape(text[1:end]), text), escaped


def _unescape(content: str) -> str:
    # zend_ini_escape_string with quote type '"': \\, \" and \$ become one character.
    out: list[str] = []
    i, n = 0, len(content)
    while i < n:
        char = content[i]
        if char == "\\":
            if i + 1 >= n:
                out.append("\\")
                break
            follower = content[i + 1]
            out.append(follower if follower in '"\\$' else "\\" + follower)
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _after_value(rest: str, refuse: Any) -> bool:
    rest = rest.lstrip(" \t")
    if rest and not rest.startswith(";"):
        refuse(
            "has text after the quoted value (PHP would join the pieces)",
            "put the whole value inside one pair of quotes, or start a comment with ;",
        )
        return False
    return True


def _array_key(offset: str) -> int | str:
    # zend_symtable_update: a canonical decimal integer is an integer key.
    if re.fullmatch(r"0|[1-9][0-9]*", offset) and int(offset) <= _INT64[1]:
        return int(offset)
    return offset


def _typed_entry(entry: _Raw | _PhpArray) -> object:
    if isinstance(entry, _Raw):
        return _typed(entry)
    keys = list(entry.items)
    if keys == list(range(len(keys))):
        return [_typed(item) for item in entry.items.values()]
    return {str(key): _typed(item) for key, item in entry.items.items()}


def _typed(item: _Raw) -> object:
    """component-ini's IniReader::decode, then IniFileChain's two html_entity_decode passes."""
    value = item.value
    if value == "1" and item.raw in ("true", "yes", "on"):
        return True
    if value == "" and item.raw in ("false", "no", "off"):
        return False
    if value == "" and item.raw == "null":
        return None
    number = _php_number(value)
    if number is not None:
        return number
    return decode_entities(decode_entities(value))


_PHP_INTEGER = re.compile(r"[ \t\n\r\v\f]*([+-]?[0-9]+)[ \t\n\r\v\f]*")
_PHP_NUMERIC = re.compile(r"[ \t\n\r\v\f]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\v\f]*")


def _php_number(text: str) -> int | float | None:
    """`$v + 0` when `is_numeric($v) && (string)($v + 0) === $v`, else None."""
    if not _PHP_NUMERIC.fullmatch(text):
        return None
    integer = _PHP_INTEGER.fullmatch(text)
    if integer is not None:
        number = int(integer.group(1))
        if _INT64[0] <= number <= _INT64[1]:
            # An int in PHP ("007" -> 7, "-0" -> 0): kept only when printed back the same.
            return number if str(number) == text else None
    # Otherwise a float (integer text that overflows included), printed with 14 digits.
    real = float(text)
    return real if php_float_text(real) == text else None


def php_float_text(value: float) -> str:
    """`(string) $float` in PHP 8 (precision = 14): zend_gcvt(value, 14, '.', 'E')."""
    if math.isnan(value):
        return "NAN"
    if value in (float("inf"), float("-inf")):
        return "INF" if value > 0 else "-INF"
    sign = "-" if str(value).startswith("-") else ""
    if value == 0:
        return sign + "0"
    mantissa, exponent = f"{abs(value):.13e}".split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    decpt = int(exponent) + 1
    if decpt < -3 or decpt > 14:
        # exponential: d.ddd E±x, with at least one digit after the point
        shown_exponent = decpt - 1
        body = digits[0] + "." + (digits[1:] or "0")
        return f"{sign}{body}E{'-' if shown_exponent < 0 else '+'}{abs(shown_exponent)}"
    if decpt <= 0:
        return f"{sign}0.{'0' * -decpt}{digits}"
    whole = digits[:decpt].ljust(decpt, "0")
    fraction = digits[decpt:]
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


_ENTITY_RE = re.compile(r"&(?:#([0-9]+)|#[xX]([0-9A-Fa-f]+)|([A-Za-z0-9]+));")


def _allowed_code_point(code: int) -> bool:
    # ext/standard/html.c unicode_cp_is_allowed() for HTML 4.01, minus ENT_COMPAT's "'".
    return (
        code in (0x09, 0x0A, 0x0D)
        or (0x20 <= code <= 0x7E and code != 0x27)
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0x10FFFF
    )


def _entity(match: re.Match[str]) -> str:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        code = name2codepoint.get(name)
        return chr(code) if code is not None else match.group(0)
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    return chr(code) if _allowed_code_point(code) else match.group(0)


def decode_entities(text: str) -> str:
    """PHP's `html_entity_decode($text, ENT_COMPAT, 'UTF-8')` (one pass)."""
    return _ENTITY_RE.sub(_entity, text) if "&" in text else text


def php_text(value: object) -> str:
    """A scalar as PHP turns it into a string (what Matomo passes to MySQL or Redis)."""
    if isinstance(value, bool):
        return "1" if value else ""
    if value is None:
        return ""
    if isinstance(value, float):
        return php_float_text(value)
    if isinstance(value, (int, str)):
        return str(value)
    raise TypeError(type(value).__name__)

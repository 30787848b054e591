"""Migrating a single-server Matomo: its config.ini.php into a deployment file and secrets.

Three steps, each usable on its own:

- `read_matomo_config(text)`: the settings exactly as Matomo reads them (PHP's
  `parse_ini_string` in normal mode with sections, component-ini's typing pass, then
  `html_entity_decode` twice). Whatever this reader cannot read the way PHP would, it
  refuses, one `line N: what (fix)` per problem; it never guesses.
- `import_config(settings, name=..., image=...)`: Matomo's settings mapped onto the
  deployment file's fields; the salt and passwords come back separately as secrets,
  and every setting that is dropped or changed comes back as a note.
- `deployment_toml(deployment)`: the deployment as a readable TOML file.

`import_matomo_config(text, ...)` does the first two and adds the reader's own notes.

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
  escapes reads differently on an old server: `import_matomo_config` notes each one.
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

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.entities import name2codepoint
from typing import Any

from ._errors import DeploymentError, DeploymentFileError, Problem

# --- reading config.ini.php ----------------------------------------------------------

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
    settings, _notes = _read(text)
    return settings


def _read(text: str) -> tuple[dict[str, dict[str, object]], list[str]]:
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


# --- importing the settings ----------------------------------------------------------


@dataclass
class ImportResult:
    """A deployment dict for `parse_deployment`, the secrets to store (never in the
    deployment), and one note per setting that was dropped or changed."""

    deployment: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)
    notes: list[str] = field(default_factory=list)


# Matomo's own defaults (config/global.ini.php, 4.x and 5.x) for the settings
# matomo-nomad decides, so a note can say what actually changes.
_MATOMO_DEFAULTS: dict[str, object] = {
    "enable_auto_update": 1,
    "multi_server_environment": 0,
    "browser_archiving_disabled_enforce": 0,
    "enable_browser_archiving_triggering": 1,
    "enable_general_settings_admin": 1,
    "maintenance_mode": 0,
}
# What matomo-nomad writes for them (_roles._config); maintenance_mode is per role.
_MANAGED_VALUES: dict[str, int] = {
    "enable_auto_update": 0,
    "multi_server_environment": 1,
    "browser_archiving_disabled_enforce": 1,
    "enable_browser_archiving_triggering": 0,
    "enable_general_settings_admin": 0,
}

# [Plugins] Plugins[] in config/global.ini.php of Matomo 4.x and 5.x, plus the plugins
# Matomo always activates (Plugin\Manager::$pluginToAlwaysActivate). Matomo 5 added
# CustomDimensions and JsTrackerInstallCheck; TestRunner is 4.x's (a development plugin).
DEFAULT_PLUGINS: frozenset[str] = frozenset(
    """
    CorePluginsAdmin CoreAdminHome CoreHome WebsiteMeasurable IntranetMeasurable Diagnostics
    CoreVisualizations Proxy API Widgetize Transitions LanguagesManager Actions Dashboard
    MultiSites Referrers UserLanguage DevicesDetection Goals Ecommerce SEO Events UserCountry
    GeoIp2 VisitsSummary VisitFrequency VisitTime VisitorInterest RssWidget Feedback Monolog
    Login TwoFactorAuth UsersManager SitesManager Installation CoreUpdater CoreConsole
    ScheduledReports UserCountryMap Live PrivacyManager ImageGraph Annotations MobileMessaging
    Overlay SegmentEditor Insights Morpheus Contents TestRunner BulkTracking Resolution
    DevicePlugins Heartbeat Intl Marketplace ProfessionalServices UserId CustomJsTracker Tour
    PagePerformance CustomDimensions JsTrackerInstallCheck
    """.split()  # noqa: SIM905 (reads like the list in global.ini.php)
)
# Default in one of the two lines only (TestRunner in 4.x, a development plugin; the other
# two in 5.x): a list without them says nothing about deactivation.
_VERSION_SPECIFIC_PLUGINS = frozenset({"TestRunner", "CustomDimensions", "JsTrackerInstallCheck"})

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})
_SECRET_KEY_RE = re.compile(r"(?i)^(?:password|passwd|secret|token|api_?key)$|(?:password|passwd|_pass|_secret|_token|_api_?key)$")


def _php_text(value: object) -> str:
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


def _as_int(value: object) -> object:
    """A number of digits as an int; anything else as it is (the model then says what is wrong)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


def _truthy(value: object) -> bool:
    """PHP's `!empty($value)` for a config value."""
    return value not in (None, False, 0, 0.0, "", "0") and value != []


def _show(value: object, limit: int = 60) -> str:
    """A value for a note: INI-like, one line, control characters escaped, shortened."""
    if isinstance(value, list):
        return "[" + ", ".join(_show(v, 30) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v, 30)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return _php_text(value)
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= limit else shown[: limit - 4] + '..."'


class _Importer:
    def __init__(self, settings: Mapping[str, Mapping[str, object]]) -> None:
        # Working copies: every handled key is taken out; what is left is carried over.
        self.left: dict[str, dict[str, object]] = {
            str(section): dict(values) if isinstance(values, Mapping) else {}
            for section, values in settings.items()
        }
        self.notes: list[str] = []
        self.problems: list[Problem] = []
        self.secrets: dict[str, str] = {}

    # helpers

    def has(self, section: str, key: str) -> bool:
        return key in self.left.get(section, {})

    def take(self, section: str, key: str, default: object = None) -> object:
        return self.left.get(section, {}).pop(key, default)

    def note(self, section: str, key: str, value: object, what: str, secret: bool = False) -> None:
        suffix = "[]" if isinstance(value, list) else ""
        shown = "" if secret else f" = {_show(value)}"
        self.notes.append(f"[{section}] {key}{suffix}{shown} {what}")

    def text(self, section: str, key: str, value: object) -> str | None:
        try:
            return _php_text(value)
        except TypeError:
            self.problems.append(
                Problem(f"[{section}] {key}", f"is a list or keyed value ({_show(value)}), Matomo expects one value", "write one value")
            )
            return None

    def drop_rest(self, section: str, reason: str) -> None:
        for key, value in self.left.pop(section, {}).items():
            self.note(section, key, value, f"dropped: {reason}", secret=bool(_SECRET_KEY_RE.search(key)))


def import_config(
    settings: Mapping[str, Mapping[str, object]],
    *,
    name: str,
    image: str,
    hosts: list[str] | None = None,
    redis_host: str | None = None,
) -> ImportResult:
    """Map a single-server Matomo's settings (as `read_matomo_config` returns them) to a
    deployment dict that `parse_deployment` accepts.

    `hosts` replaces `[General] trusted_hosts[]`; `redis_host` is the Redis server for
    QueuedTracking when the file has no `[QueuedTracking] redisHost` (a single server
    usually keeps QueuedTracking's settings in the database, or has none). Raises
    DeploymentError listing every problem when no valid deployment can be made.
    """
    from ._loading import parse_deployment
    from ._model import Secrets

    keys = Secrets()
    im = _Importer(settings)
    deployment: dict[str, Any] = {"name": name, "matomo": {"image": image}}

    deployment["hosts"] = _hosts(im, hosts)
    deployment["proxy"] = _proxy(im)
    deployment["database"] = _database(im, keys)
    redis, queue_role = _queued_tracking(im, keys, redis_host)
    if redis is not None:
        deployment["redis"] = redis
    redis_cache = _redis_cache(im, keys)
    if redis_cache is not None:
        deployment["redis_cache"] = redis_cache
    _general(im, keys)
    _plugins(im)
    if queue_role:
        deployment["roles"] = {"queue_processor": queue_role}
    extra = _settings(im)
    if extra:
        deployment["settings"] = extra
    im.notes.append(
        "matomo.version is left at matomo-nomad's default; set it to the Matomo version the "
        "old server ran (or newer), the one your image is built from"
    )
    if im.problems:
        raise DeploymentError(im.problems)
    try:
        parse_deployment(deployment, source="imported deployment")
    except DeploymentError as error:
        raise DeploymentError(
            [Problem(p.location, f"{p.message} (from the imported config.ini.php)", p.fix) for p in error.problems]
        ) from None
    return ImportResult(deployment=deployment, secrets=im.secrets, notes=im.notes)


def _hosts(im: _Importer, given: list[str] | None) -> list[str]:
    from ._model import _public_host

    found = im.take("General", "trusted_hosts")
    if isinstance(found, dict):  # trusted_hosts[name] = ...: Matomo uses the values
        found = list(found.values())
    valid: list[str] = []
    if isinstance(found, list):
        for host in found:
            try:
                valid.append(_public_host(_php_text(host)))
            except (ValueError, TypeError):
                im.notes.append(
                    f"[General] trusted_hosts[] {_show(host)} dropped: not a host name with an optional :port "
                    "(matomo-nomad's hosts); add it back to hosts in its plain form"
                )
    elif found is not None:
        im.note("General", "trusted_hosts", found, "dropped: Matomo ignores trusted_hosts without [] (it expects a list)")
    if given:
        if valid and valid != list(given):
            im.notes.append(
                f"[General] trusted_hosts[] = {_show(valid)} replaced by the hosts given: {_show(list(given))}"
            )
        return list(given)
    if not valid:
        im.problems.append(
            Problem(
                "[General] trusted_hosts[]",
                "gives no host name Matomo is reached at",
                "pass the public host names explicitly (hosts)",
            )
        )
    return valid


def _proxy(im: _Importer) -> dict[str, Any]:
    from ._model import _network

    proxy: dict[str, Any] = {}
    headers = im.take("General", "proxy_client_headers")
    if isinstance(headers, list):
        kept = []
        for header in headers:
            if isinstance(header, str) and re.fullmatch(r"HTTP_[A-Z0-9_]+", header):
                kept.append(header)
            else:
                im.notes.append(
                    f"[General] proxy_client_headers[] {_show(header)} dropped: not a $_SERVER HTTP_* key "
                    "(proxy.client_headers)"
                )
        proxy["client_headers"] = kept
    else:
        if headers is not None:
            im.note("General", "proxy_client_headers", headers, "dropped: Matomo ignores it without [] (it expects a list)")
        im.notes.append(
            "[General] proxy_client_headers[] was not set (Matomo took the client IP from the connection); "
            "matomo-nomad's default proxy.client_headers reads HTTP_X_FORWARDED_FOR, for the load balancer "
            "in front of the jobs: check that it is the header yours sets"
        )
    ips = im.take("General", "proxy_ips")
    if isinstance(ips, list):
        kept = []
        for ip in ips:
            try:
                kept.append(_network(_php_text(ip)))
            except (ValueError, TypeError):
                im.notes.append(
                    f"[General] proxy_ips[] {_show(ip)} dropped: not an IP address or CIDR range "
                    "(rewrite ranges such as 10.0.*.* as 10.0.0.0/16 in proxy.ips)"
                )
        if kept:
            proxy["ips"] = kept
    elif ips is not None:
        im.note("General", "proxy_ips", ips, "dropped: Matomo ignores it without [] (it expects a list)")
    if im.has("General", "force_ssl"):
        proxy["force_ssl"] = _truthy(im.take("General", "force_ssl"))
    else:
        proxy["force_ssl"] = False
        im.notes.append(
            "[General] force_ssl was not set (Matomo's default 0): proxy.force_ssl = false keeps it so; "
            "matomo-nomad's default is true when Matomo is only served over https"
        )
    return proxy


_ADAPTERS = {"PDO\\MYSQL": "PDO\\MYSQL", "PDO_MYSQL": "PDO\\MYSQL", "MYSQLI": "MYSQLI"}


def _database(im: _Importer, keys: Any) -> dict[str, Any]:
    section = "database"
    database: dict[str, Any] = {}
    host = im.text(section, "host", im.take(section, "host", ""))
    if not host:
        im.problems.append(Problem("[database] host", "is empty: this Matomo is not installed", "import the config.ini.php of an installed Matomo"))
    else:
        database["host"] = host
        if host.lower() in _LOCAL_HOSTS:
            im.notes.append(
                f"[database] host = {_show(host)} kept, but the Nomad jobs run in containers on other machines: "
                "set database.host to an address of the database they can reach"
            )
    port = im.take(section, "port", "")
    if port not in ("", None):
        if isinstance(port, int) and not isinstance(port, bool):
            database["port"] = port
        elif isinstance(port, str) and port.isdigit():
            database["port"] = int(port)
        else:
            im.problems.append(Problem("[database] port", f"is {_show(port)}, not a port number", "write the port as a number"))
    user = im.text(section, "username", im.take(section, "username", ""))
    if not user:
        im.problems.append(
            Problem("[database] username", "is empty: Matomo counts as installed only when it is set", "import the config.ini.php of an installed Matomo")
        )
    else:
        database["user"] = user
    password = im.text(section, "password", im.take(section, "password", ""))
    if password is not None:
        im.secrets[keys.database_password_key] = password
        if password == "":
            im.notes.append("[database] password is empty; the secret database_password is stored empty")
    for model_key, ini_key, default in (("name", "dbname", ""), ("table_prefix", "tables_prefix", "")):
        # Absent keys take global.ini.php's default (empty), not matomo-nomad's.
        value = im.text(section, ini_key, im.take(section, ini_key, default))
        if value is not None:
            database[model_key] = value
    adapter = im.text(section, "adapter", im.take(section, "adapter", "PDO\\MYSQL"))
    if adapter is not None:
        # Matomo's Adapter::factory lowercases the name and reads _ like \.
        normal = _ADAPTERS.get(adapter.upper())
        if normal is None:
            im.problems.append(Problem("[database] adapter", f"is {_show(adapter)}", "use PDO\\MYSQL or MYSQLI"))
        else:
            database["adapter"] = normal
            if normal != adapter:
                im.notes.append(f"[database] adapter = {_show(adapter)} written as {_show(normal)}, the same adapter to Matomo")
    charset = im.text(section, "charset", im.take(section, "charset", "utf8"))
    if charset is not None:
        database["charset"] = charset.lower()
        if charset.lower() != charset:
            im.notes.append(f"[database] charset = {_show(charset)} written in lowercase, as MySQL names it")
    tls = _database_tls(im, section)
    if tls:
        database["tls"] = tls
    for key, default, why in (
        ("schema", "Mysql", "the deployment file has no field for it"),
        ("type", "InnoDB", "the deployment file has no field for it"),
    ):
        if im.has(section, key):
            given = im.take(section, key)
            effect = "Matomo's default is the same" if given == default else f"Matomo uses its default {default} instead"
            im.note(section, key, given, f"dropped: {why}; {effect}")
    collation = im.take(section, "collation")
    if collation not in (None, ""):
        # Kept: with a read-only config, an empty collation stops the 5.1.2 and 5.2.0
        # migrations that would store it (core/Updates/5.1.2-rc1.php).
        database["collation"] = _php_text(collation)
    im.drop_rest(section, "the deployment file's database table has no field for it")

    reader = _database_reader(im, keys, database, password)
    if reader is not None:
        database["reader"] = reader
    return database


def _database_tls(im: _Importer, section: str) -> dict[str, Any]:
    enabled = _truthy(im.take(section, "enable_ssl", 0))
    paths = {name: im.take(section, f"ssl_{name}", "") for name in ("ca", "cert", "key")}
    no_verify = im.take(section, "ssl_no_verify", "")
    unsupported = {key: im.take(section, key) for key in ("ssl_ca_path", "ssl_cipher") if im.has(section, key)}
    if not enabled:
        for name, value in paths.items():
            if value not in ("", None):
                im.note(section, f"ssl_{name}", value, "dropped: enable_ssl is off, so Matomo does not use it")
        if no_verify not in ("", None):
            im.note(section, "ssl_no_verify", no_verify, "dropped: enable_ssl is off, so Matomo does not use it")
        for key, value in unsupported.items():
            if value not in ("", None):
                im.note(section, key, value, "dropped: enable_ssl is off, so Matomo does not use it")
        return {}
    tls: dict[str, Any] = {"enabled": True}
    for name, value in paths.items():
        text = im.text(section, f"ssl_{name}", value)
        if text:
            tls[name] = text
    tls["verify"] = not _truthy(no_verify)
    for key, value in unsupported.items():
        if value not in ("", None):
            im.note(section, key, value, "dropped: the deployment file's database.tls has no field for it")
    return tls


def _database_reader(im: _Importer, keys: Any, primary: dict[str, Any], primary_password: str | None) -> dict[str, Any] | None:
    section = "database_reader"
    if section not in im.left:
        return None
    host = im.text(section, "host", im.take(section, "host", ""))
    if not host:
        im.drop_rest(section, "[database_reader] has no host, so Matomo uses no reader")
        im.left.pop(section, None)
        return None
    reader: dict[str, Any] = {"host": host}
    port = im.take(section, "port", "")
    if isinstance(port, int) and not isinstance(port, bool):
        reader["port"] = port
    elif isinstance(port, str) and port.isdigit():
        reader["port"] = int(port)
    elif port not in ("", None):
        im.problems.append(Problem("[database_reader] port", f"is {_show(port)}, not a port number", "write the port as a number"))
    user = im.text(section, "username", im.take(section, "username", ""))
    password = im.text(section, "password", im.take(section, "password", ""))
    if user and (user != primary.get("user") or password != primary_password):
        # Its own credentials: read from their own secret key.
        reader["user"] = user
        im.secrets[keys.database_reader_password_key] = password or ""
    elif not user and password:
        im.note(section, "password", password, "dropped: without a username the reader uses the primary's user and password", secret=True)
    for key, model_key in (("dbname", "name"), ("tables_prefix", "table_prefix"), ("adapter", "adapter"), ("charset", "charset")):
        if im.has(section, key):
            value = im.take(section, key)
            same = isinstance(value, (str, int, float)) and _php_text(value) == primary.get(model_key)
            if same:
                im.note(section, key, value, "dropped: matomo-nomad writes the primary's value for the reader, which is the same")
            elif value in ("", None):
                im.note(section, key, value, f"dropped: matomo-nomad gives the reader the primary's {key} ({_show(primary.get(model_key))})")
            else:
                im.note(section, key, value, f"changed: matomo-nomad gives the reader the primary's {key} ({_show(primary.get(model_key))})")
    for key in ("enable_ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_no_verify", "ssl_ca_path", "ssl_cipher"):
        if im.has(section, key):
            im.note(section, key, im.take(section, key), "dropped: matomo-nomad gives the reader the primary's TLS settings")
    im.drop_rest(section, "the deployment file's database.reader has no field for it")
    return reader


def _queued_tracking(im: _Importer, keys: Any, redis_host: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    section = "QueuedTracking"
    redis: dict[str, Any] = {}
    role: dict[str, Any] = {}
    backend = im.take(section, "backend")
    if backend not in (None, "redis"):
        im.note(section, "backend", backend, "changed: matomo-nomad queues tracking requests in Redis")
    sentinel_type = im.take(section, "useWhatRedisBackendType")
    legacy_sentinel = im.take(section, "useSentinelBackend")
    sentinel = sentinel_type == 2 or (sentinel_type is None and _truthy(legacy_sentinel))
    if sentinel_type not in (None, 1, 2):
        im.problems.append(
            Problem("[QueuedTracking] useWhatRedisBackendType", f"is {_show(sentinel_type)}: only 1 (Redis) and 2 (Sentinel) can be deployed", "switch to one of those")
        )
    host = im.take(section, "redisHost")
    port = im.take(section, "redisPort")
    master = im.take(section, "sentinelMasterName")
    # The switch is written again only for Sentinel, in the form the plugin version reads.
    if sentinel_type is not None:
        im.note(section, "useWhatRedisBackendType", sentinel_type, "dropped: matomo-nomad writes the backend type itself (for Sentinel)")
    if legacy_sentinel is not None:
        im.note(section, "useSentinelBackend", legacy_sentinel, "dropped: matomo-nomad writes the Sentinel switch itself, as the QueuedTracking version in plugins reads it")
    if master not in (None, "") and not sentinel:
        im.note(section, "sentinelMasterName", master, "dropped: Sentinel is not in use")
    if redis_host:
        if host not in (None, ""):
            im.note(section, "redisHost", host, f"replaced by the Redis host given: {_show(redis_host)}")
        redis["host"] = redis_host
        if sentinel:
            im.notes.append("[QueuedTracking] Sentinel settings dropped: the Redis host given replaces them")
    elif sentinel and host not in (None, ""):
        hosts = [h.strip() for h in _php_text(host).split(",")]
        ports = [p.strip() for p in _php_text(port if port is not None else "26379").split(",")]
        if len(ports) == 1:
            ports = ports * len(hosts)
        if len(ports) != len(hosts):
            im.problems.append(Problem("[QueuedTracking] redisPort", "does not give one port per Sentinel host", "list as many ports as hosts"))
        redis["sentinel"] = {"master": _php_text(master) if master not in (None, "") else "mymaster", "addresses": [f"{h}:{p}" for h, p in zip(hosts, ports)]}
        if master in (None, ""):
            im.notes.append("[QueuedTracking] sentinelMasterName was not set: redis.sentinel.master = \"mymaster\", QueuedTracking's default")
    elif host not in (None, ""):
        redis["host"] = _php_text(host)
        if port not in (None, ""):
            redis["port"] = _as_int(port)
        if redis["host"].lower() in _LOCAL_HOSTS:
            im.notes.append(
                f"[QueuedTracking] redisHost = {_show(redis['host'])} kept, but the Nomad jobs run on other machines: "
                "set redis.host to an address they can reach"
            )
    else:
        im.problems.append(
            Problem(
                "[QueuedTracking] redisHost",
                "is not in config.ini.php (QueuedTracking keeps its settings in the database, or is not installed)",
                "give the Redis host the queue should use (redis_host)",
            )
        )
        return None, role
    database = im.take(section, "redisDatabase")
    if database not in (None, ""):
        redis["database"] = _as_int(database)
    timeout = im.take(section, "redisTimeout")
    if timeout not in (None, ""):
        try:
            redis["timeout"] = float(_php_text(timeout))
        except ValueError:
            redis["timeout"] = timeout
    password = im.take(section, "redisPassword")
    if password not in (None, ""):
        redis["password"] = True
        im.secrets[keys.redis_password_key] = _php_text(password)
    enabled = im.take(section, "queueEnabled")
    if enabled is not None and not _truthy(enabled):
        im.note(section, "queueEnabled", enabled, "changed: matomo-nomad always queues (queueEnabled = 1)")
    workers = im.take(section, "numQueueWorkers")
    if workers not in (None, ""):
        if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1:
            # The number of queues must be kept (lowering it strands queued requests);
            # one processor per queue works each queue on its own.
            role["queues"] = workers
            role["count"] = workers
        else:
            im.note(section, "numQueueWorkers", workers, "dropped: not a number of workers")
    batch = im.take(section, "numRequestsToProcess")
    if batch not in (None, ""):
        if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
            role["requests_per_batch"] = batch
        else:
            im.note(section, "numRequestsToProcess", batch, "dropped: not a number of requests")
    during = im.take(section, "processDuringTrackingRequest")
    if during is not None and _truthy(during):
        im.note(
            section,
            "processDuringTrackingRequest",
            during,
            "changed to 0: the queue processor jobs process the queue, tracking requests only enqueue",
        )
    im.drop_rest(section, "the deployment file's redis table and roles.queue_processor have no field for it")
    return redis, role


def _redis_cache(im: _Importer, keys: Any) -> dict[str, Any] | None:
    backend = im.take("Cache", "backend")
    chained = im.left.get("ChainedCache", {}).get("backends")
    uses_redis = backend == "redis" or (backend == "chained" and isinstance(chained, list) and "redis" in chained)
    if backend is not None and backend != "redis":
        if uses_redis:
            im.note("Cache", "backend", backend, "changed to redis: the chain's Redis cache becomes the cache (redis_cache)")
        else:
            im.note(
                "Cache",
                "backend",
                backend,
                "dropped: each container would keep its own cache; Matomo's default (array and file) applies, "
                "or set redis_cache to share one",
            )
    section = "RedisCache"
    if not uses_redis:
        if section in im.left:
            im.drop_rest(section, "[Cache] backend is not redis, so Matomo does not use it")
            im.left.pop(section, None)
        return None
    cache: dict[str, Any] = {}
    host = im.take(section, "host", "127.0.0.1")
    cache["host"] = _php_text(host)
    if cache["host"].lower() in _LOCAL_HOSTS:
        im.notes.append(
            f"[RedisCache] host = {_show(cache['host'])} kept, but the Nomad jobs run on other machines: "
            "set redis_cache.host to an address they can reach"
        )
    for key, default in (("port", 6379), ("database", 14)):
        value = im.take(section, key, default)
        cache[key] = _as_int(value)
    timeout = im.take(section, "timeout", 0.0)
    try:
        cache["timeout"] = float(_php_text(timeout) or 0)
    except ValueError:
        cache["timeout"] = timeout
    password = im.take(section, "password", "")
    if password not in ("", None):
        cache["password"] = True
        im.secrets[keys.redis_cache_password_key] = _php_text(password)
    socket = im.take(section, "unix_socket", "")
    if socket not in ("", None):
        im.note(section, "unix_socket", socket, "dropped: the jobs reach Redis over the network (redis_cache.host)")
    im.drop_rest(section, "the deployment file's redis_cache table has no field for it")
    return cache


def _general(im: _Importer, keys: Any) -> None:
    from ._model import _MANAGED_SETTINGS

    section = "General"
    salt = im.take(section, "salt")
    if salt in (None, ""):
        im.problems.append(Problem("[General] salt", "is not set: this Matomo is not installed", "import the config.ini.php of an installed Matomo"))
    else:
        text = im.text(section, "salt", salt)
        if text is not None:
            im.secrets[keys.salt_key] = text
    reasons = _MANAGED_SETTINGS.get(section, {})
    for key, ours in _MANAGED_VALUES.items():
        present = im.has(section, key)
        value = im.take(section, key) if present else _MATOMO_DEFAULTS[key]
        effective = 1 if _truthy(value) else 0
        why = reasons.get(key, "matomo-nomad sets it")
        if present:
            what = f"matomo-nomad keeps it at {ours}" if effective != ours else f"matomo-nomad writes the same value ({ours})"
            im.note(section, key, value, f"dropped: {what}; {why}")
        elif effective != ours:
            im.notes.append(f"[General] {key} was not set (Matomo's default {effective}); matomo-nomad sets it to {ours} ({why})")
    if im.has(section, "maintenance_mode"):
        value = im.take(section, "maintenance_mode")
        state = "the old server was in maintenance mode; " if _truthy(value) else ""
        im.note(section, "maintenance_mode", value, f"dropped: {state}{reasons.get('maintenance_mode', 'matomo-nomad sets it per role')}")
    handler = im.left.get(section, {}).get("session_save_handler")
    if handler not in (None, "dbtable"):
        im.take(section, "session_save_handler")
        im.note(
            section,
            "session_save_handler",
            handler,
            "dropped: sessions in files live on one container only; Matomo's default (dbtable) shares them between the admin allocations",
        )
    # Anything else the model manages (a table kept in _model), with the model's reason.
    for key in list(im.left.get(section, {})):
        if key in reasons:
            im.note(section, key, im.take(section, key), f"dropped: {reasons[key]}")


def _plugins(im: _Importer) -> None:
    listed = im.left.get("Plugins", {}).get("Plugins")
    if isinstance(listed, list):
        names = [p for p in listed if isinstance(p, str)]
        extra = [p for p in names if p not in DEFAULT_PLUGINS]
        absent = sorted(DEFAULT_PLUGINS - _VERSION_SPECIFIC_PLUGINS - set(names))
        im.left["Plugins"].pop("Plugins")
        text = f"[Plugins] Plugins[] ({len(names)} plugins) dropped: a Plugins[] list replaces Matomo's whole default list; the image's common.config.ini.php lists every plugin"
        if extra:
            known = [p for p in extra if p in ("QueuedTracking", "SecurityInfo")]
            bake = [p for p in extra if p not in known]
            if bake:
                text += (
                    f". Not in Matomo's default set, so bake them into the image: {', '.join(bake)} "
                    "(add each to plugins with its version, from plugins/<Name>/plugin.json on the old server)"
                )
            if known:
                text += f". Already in matomo-nomad's default plugins: {', '.join(known)}"
        if absent:
            text += (
                f". Default plugins the old server had deactivated, which Matomo activates again without a "
                f"Plugins[] list: {', '.join(absent)} (deactivate them in the image if you still want them off)"
            )
        im.notes.append(text)
    im.drop_rest("Plugins", "the image's common.config.ini.php lists the plugins, generated at build time")
    im.left.pop("Plugins", None)
    installed = im.left.get("PluginsInstalled", {}).pop("PluginsInstalled", None)
    if installed is not None:
        count = len(installed) if isinstance(installed, list) else 1
        im.notes.append(
            f"[PluginsInstalled] PluginsInstalled[] ({count} plugins) dropped: the image's common.config.ini.php "
            "lists every plugin as installed, and the setup job installs any the database has not seen"
        )
    im.drop_rest("PluginsInstalled", "the image's common.config.ini.php lists the plugins, generated at build time")
    im.left.pop("PluginsInstalled", None)
    for old in ("Plugins_Tracker",):
        im.drop_rest(old, "Matomo has not read this section since 2.x")
        im.left.pop(old, None)


def _settings(im: _Importer) -> dict[str, dict[str, Any]]:
    """Everything not handled above, as the deployment's settings, or a note why not."""
    from ._model import _MANAGED_SECTIONS, _MANAGED_SETTINGS

    extra: dict[str, dict[str, Any]] = {}
    for section, values in list(im.left.items()):
        if not values:
            continue
        if section in _MANAGED_SECTIONS:
            im.drop_rest(section, _MANAGED_SECTIONS[section])
            continue
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", section):
            im.drop_rest(section, "the section name cannot be a deployment-file settings section (letters, digits, '_')")
            continue
        for key, value in values.items():
            reason = _MANAGED_SETTINGS.get(section, {}).get(key)
            if section == "Cache" and key == "backend":
                reason = "set the redis_cache table"
            why = _unsettable(key, value) if reason is None else f"dropped: {reason}"
            if why is not None:
                im.note(section, key, value, why, secret=bool(_SECRET_KEY_RE.search(key)))
                continue
            extra.setdefault(section, {})[key] = _carried(value)
            if section == "log" and key == "log_writers" and isinstance(value, list) and "file" in value:
                im.notes.append(
                    "[log] log_writers[] includes file: each container writes its own log file, lost when it "
                    "restarts (screen or syslog reach Nomad's logs)"
                )
    im.left.clear()
    return extra


def _unsettable(key: str, value: object) -> str | None:
    if _SECRET_KEY_RE.search(key):
        return (
            "dropped: it looks like a secret, and the deployment file has no secret reference for it "
            "(matomo-nomad never writes secrets into job files); set it again after the move"
        )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", key):
        return "dropped: the key cannot be a deployment-file settings key (letters, digits, '_')"
    if isinstance(value, dict):
        return "dropped: keyed entries (key[name] = ...) cannot be written in the deployment file's settings"
    items = value if isinstance(value, list) else [value]
    if any(item is None for item in items):
        return "dropped: null cannot be written in the deployment file; Matomo falls back to global.ini.php's default"
    if any(isinstance(item, (list, dict)) for item in items):
        return "dropped: nested values cannot be written in the deployment file's settings"
    return None


def _carried(value: object) -> object:
    """A value the renderer writes back so that Matomo reads the same thing: a float whose
    Python spelling PHP would not turn back into that number (1e-05, 1e+16) goes as
    PHP's own spelling ("1.0E-5"), which Matomo reads as the same float."""
    if isinstance(value, list):
        return [_carried(item) for item in value]
    if isinstance(value, float) and repr(value) != php_float_text(value):
        return php_float_text(value)
    return value


def import_matomo_config(
    text: str,
    *,
    name: str,
    image: str,
    hosts: list[str] | None = None,
    redis_host: str | None = None,
) -> ImportResult:
    """`read_matomo_config` then `import_config`, with the reader's own notes first."""
    settings, reader_notes = _read(text)
    result = import_config(settings, name=name, image=image, hosts=hosts, redis_host=redis_host)
    result.notes[:0] = reader_notes
    return result


# --- writing the deployment file -----------------------------------------------------

_ORDER = ("name", "hosts", "matomo", "proxy", "database", "redis", "redis_cache", "roles", "settings")
_COMMENT_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _comment(text: str) -> str:
    # TOML comments may not hold control characters other than tab.
    return _COMMENT_UNSAFE.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def deployment_toml(
    deployment: Mapping[str, Any],
    *,
    source: str = "an existing Matomo config.ini.php",
    notes: Iterable[str] = (),
) -> str:
    """The deployment dict as a TOML deployment file, with a header saying where it came
    from, that no secret is in it, and the import's notes as comments.

    Written with tomli-w: every value a deployment dict holds (tables, arrays of
    scalars, strings with any character, ints, finite floats, booleans) has a TOML form
    it writes, and `tomllib` reads the result back to the same dict (tested).
    """
    import tomli_w

    ordered = {key: deployment[key] for key in _ORDER if key in deployment}
    ordered.update({key: value for key, value in deployment.items() if key not in ordered})
    header = [
        f"# matomo-nomad deployment file, imported from {_comment(source)}.",
        "#",
        "# Secrets are NOT in this file: the salt and the passwords go to the secret store the",
        "# jobs read at run time (`matomo-nomad secrets`); this file only says which keys to read.",
        "# Check it with `matomo-nomad validate`, then render or plan.",
    ]
    notes = list(notes)
    if notes:
        header += ["#", "# What the import dropped or changed:"]
        header += [f"#   - {_comment(note)}" for note in notes]
    return "\n".join(header) + "\n\n" + tomli_w.dumps(ordered)

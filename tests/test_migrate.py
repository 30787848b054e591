"""`secrets import`'s building blocks: reading an existing config.ini.php exactly as
Matomo does, mapping it onto a deployment, and writing that deployment as TOML.

The reader is checked against the PHP oracle (tests/oracles/read_config.php, php-cli):

- on generated files (hypothesis): every file it accepts reads EXACTLY as PHP and
  Matomo's decoding read it, types included (true is not 1, "1" is not 1); files
  built only from the constructs it claims to support must all be accepted. What it
  refuses it refuses with `line N: ...`: those are files where PHP's answer depends on
  things outside the file (the environment, PHP constants, the PHP version) or on
  constructs it deliberately leaves out (multi-line values, concatenated pieces,
  operators);
- on two realistic installer-written files, Matomo 4 and Matomo 5;
- its building blocks against PHP's own functions, in one PHP process each:
  html_entity_decode (every numeric code point class, every named entity),
  (string) of a float, and component-ini's numeric typing.

The import is checked end to end: the fixture files become deployments that validate
and render; the rendered config template, run through Go's text/template with the
imported secrets and read by the PHP oracle, gives Matomo the same settings as the
original file, except exactly the ones a note says were dropped or changed.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from matomo_nomad import DeploymentError, Role, parse_deployment, render
from matomo_nomad._ini import SecretRef
from matomo_nomad._migrate import (
    ImportResult,
    deployment_toml,
    import_config,
    import_matomo_config,
    matomo_plugins,
)
from matomo_nomad._php_ini import _php_number, decode_entities, php_float_text, read_matomo_config
from matomo_nomad._roles import plan_roles
from tests.oracles.runner import execute_template, php_read_config

FIXTURES = Path(__file__).parent / "migrate"
MATOMO4 = FIXTURES / "matomo4.config.ini.php"
MATOMO5 = FIXTURES / "matomo5.config.ini.php"
IMAGE = "registry.example.com/matomo:5.10.0-1"


def _php(code: str, data: Any) -> Any:
    """Run PHP code that reads JSON from stdin and prints JSON (PHP's own functions as the reference)."""
    php = shutil.which("php")
    if php is None:
        raise RuntimeError("these tests need PHP: `php` is not on PATH (apt-get install php-cli)")
    proc = subprocess.run(
        [php, "-d", "display_errors=stderr", "-r", code],
        input=json.dumps(data).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def _same(ours: Any, php: Any) -> bool:
    """Equal, with the same types all the way down and the same key order."""
    if type(ours) is not type(php):
        return False
    if isinstance(ours, dict):
        return list(ours) == list(php) and all(_same(ours[k], php[k]) for k in ours)
    if isinstance(ours, list):
        return len(ours) == len(php) and all(map(_same, ours, php))
    return ours == php


def _read_or_refuse(text: str) -> dict[str, Any] | DeploymentError:
    try:
        return read_matomo_config(text)
    except DeploymentError as error:
        return error


def _assert_located(error: DeploymentError) -> None:
    lines = str(error).splitlines()
    assert lines and all(line.startswith("line ") and ": " in line and line.endswith(")") for line in lines), lines


# --- the reader: building blocks against PHP's own functions ---------------------------

_ENTITY_PHP = r"""
$in = json_decode(file_get_contents('php://stdin'), true);
echo json_encode(array_map(fn($s) => html_entity_decode($s, ENT_COMPAT, 'UTF-8'), $in), JSON_UNESCAPED_UNICODE);
"""


def test_entity_decoding_matches_html_entity_decode() -> None:
    from html.entities import html5, name2codepoint

    samples = [f"&{name.rstrip(';')};" for name in html5]  # HTML5 names: only HTML 4.01's decode
    samples += [f"&{name.upper()};" for name in name2codepoint] + ["&apos;", "&AMP;", "&amp", "&amp ;", "&;", "&#;", "&#x;"]
    # Every class of code point, decimal and hex, with and without leading zeros.
    edges = [0, 8, 9, 10, 11, 12, 13, 14, 31, 32, 34, 38, 39, 60, 126, 127, 128, 150, 159, 160, 255, 0xD7FF, 0xD800,
             0xDFFF, 0xE000, 0xFDD0, 0xFFFE, 0xFFFF, 0x10000, 0x1FFFE, 0x10FFFF, 0x110000, 10**25]
    for code in edges:
        samples += [f"&#{code};", f"&#0{code};", f"&#x{code:x};", f"&#X{code:X};", f"&#x00{code:x};", f"&#{code}", f"&#x{code:x} ;"]
    rng = random.Random(4)
    pieces = ["&", "#", "x", ";", "amp", "quot", "lt", "eacute", "1", "3", "6", "9", "a", "F", " ", "é", "&amp;", "&#38;"]
    samples += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    samples += [f"&#{c};" for c in rng.sample(range(0x110000), 3000)]
    expected = _php(_ENTITY_PHP, samples)
    assert len(expected) == len(samples)
    wrong = [(s, decode_entities(s), e) for s, e in zip(samples, expected) if decode_entities(s) != e]
    assert not wrong, wrong[:10]


def test_float_text_matches_php_string_cast() -> None:
    rng = random.Random(5)
    values = [0.0, -0.0, 0.1, 0.5, 1.5, 1e-4, 1e-5, 9.99999999999999e-5, 1e13, 1e14, 1e15, 99999999999999.9, 123456789012345.6,
              1e25, 1.0e-320, 5e-324, 1.7976931348623157e308, 0.30000000000000004, 2.5e-7, -1234.5678, 100.0, 1e22]
    values += [rng.uniform(-1e6, 1e6) for _ in range(500)]
    values += [rng.random() * 10 ** rng.randint(-30, 30) * rng.choice((1, -1)) for _ in range(1500)]
    code = r"""
$in = json_decode(file_get_contents('php://stdin'), true);
echo json_encode(array_map(fn($f) => (string) (float) $f, $in));
"""
    expected = _php(code, [repr(v) for v in values])
    wrong = [(v, php_float_text(v), e) for v, e in zip(values, expected) if php_float_text(v) != e]
    assert not wrong, wrong[:10]


_TYPING_PHP = r"""
$in = json_decode(file_get_contents('php://stdin'), true);
$out = [];
foreach ($in as $v) {
    $out[] = (is_numeric($v) && (string) ($v + 0) === $v) ? $v + 0 : $v;
}
echo json_encode($out, JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_UNICODE);
"""


def test_numeric_typing_matches_component_ini() -> None:
    texts = ["0", "-0", "00", "007", "1", "-1", "+1", " 1", "1 ", "1.", ".5", "0.5", "1.0", "1.5", "1e3", "1E3", "1.0E+25",
             "1.0e+25", "1.0E+14", "100000000000000", "1.0E-5", "0.00001", "0.0001", "9223372036854775807",
             "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "0x1A", "1_000", "inf", "NAN", "",
             "12345678901234.5", "1.2345678901235E+14", "0.30000000000000004", "-0.0", "1e400", "4.9406564584125E-324"]
    rng = random.Random(6)
    alphabet = "0123456789.eE+- "
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    texts += [php_float_text(rng.random() * 10 ** rng.randint(-20, 20)) for _ in range(1000)]
    texts += [str(rng.randint(-(2**64), 2**64)) for _ in range(300)]
    expected = _php(_TYPING_PHP, texts)
    ours = [t if _php_number(t) is None else _php_number(t) for t in texts]
    wrong = [(t, o, e) for t, o, e in zip(texts, ours, expected) if not _same(o, e)]
    assert not wrong, wrong[:10]


def test_no_php_constant_starts_with_a_lowercase_letter() -> None:
    # The reader accepts an unquoted name only when it starts with a lowercase letter:
    # PHP would replace a name that is a constant, and none of those is lowercase here.
    names = _php("echo json_encode(array_keys(get_defined_constants()));", None)
    assert len(names) > 500
    assert [n for n in names if n[0].islower() and n not in ("true", "false", "null")] == []


# --- the reader against the oracle: fixtures, chosen cases, generated files ------------


@pytest.mark.parametrize("path", [MATOMO4, MATOMO5], ids=["matomo4", "matomo5"])
def test_fixture_reads_exactly_as_matomo_does(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    ours = read_matomo_config(text)
    assert _same(ours, php_read_config(text))
    assert ours["General"]["trusted_hosts"] and isinstance(ours["Plugins"]["Plugins"], list)


CASES = {
    "keywords": '[A]\na = on\nb = TRUE\nc = Off\nd = none\ne = null\nf = NULL\ng = yes ; c\nh = no;c\ni[] = on\ni[] = True\n',
    "escapes": '[A]\na = "x\\\\y"\nb = "x\\"y"\nc = "x\\$y"\nd = "PDO\\MYSQL"\ne = "C:\\\\dir\\"\nf = "a\\\\"\ng = "\\${HOME}"\n',
    "numbers": '[A]\na = 1.0E+25\nb = "1.0E+14"\nc = 0.1\nd = -0\ne = 007\nf = 9223372036854775808\ng = -9223372036854775808\nh = 1.0E-5\ni = "&#49;"\n',
    "lists": '[A]\nx[] = 1\nx[] = 2\ny = 5\ny[] = 6\nz[] = 7\nz = 8\nw[q] = 1\nw[] = 2\nv[3] = a\nv[] = b\nu [ ] = c\nt[0] = d\nt[1] = e\n',
    "repeated section": "[A]\na = 1\n[B]\nb = 2\n[A]\nc = 3\n",
    "entities": '[A]\nn = "&amp;amp;&#39;&#039;&apos;&#34;&quot;&#0;&#xD800;&#x10FFFF;&#65;&eacute;&EACUTE;&#128;"\n',
    "single quotes": "[A]\na = 'sq ${X} \\\" x;' ; c\nb = ''\nc = '1'\n",
    "unquoted": "[A]\na = localhost\nb = a{b}c[d]\nc = x#y\nd = <a>?@%*,/:\ne = PDO\\MYSQL\nf = -\ng = 1e3\n",
    "line ends": '[A]\r\na = 1\r\nb = "x"\rc = 2\n\n  \t\n; comment\nd = 4',
    "empty values": '[A]\na =\nb = \nc = ; c\nd = ""\ne[] =\n',
    "php's first line": "; <?php exit; ?> DO NOT REMOVE THIS LINE\n[General]\nsalt = \"abc\"\n",
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_chosen_cases_read_exactly_as_matomo_does(text: str) -> None:
    ours = _read_or_refuse(text)
    assert not isinstance(ours, DeploymentError), str(ours)
    assert _same(ours, php_read_config(text))


REFUSED = {
    # text: (line, words of the message)
    "[A]\na = ${HOME}\n": (2, "'$'"),
    '[A]\na = "${HOME}"\n': (2, "${...}"),
    "[A]\na = E_ALL\n": (2, "PHP constant"),
    "[A]\na = PIWIK_INCLUDE_PATH\n": (2, "PHP constant"),
    "[A]\na[BTC] = x\n": (2, "PHP constant"),
    "  [A]\n": (1, "spaces before"),
    "[ A ]\n": (1, "section header"),
    "[A] x\n": (1, "after the section"),
    "[A]\nyes = 1\n": (2, "as a key"),
    "a = 1\n": (1, "outside any section"),
    '[A]\na = "x\n"\n': (2, "does not close"),
    "[A]\na = 'x\n'\n": (2, "does not close"),
    '[A]\na = "x" "y"\n': (2, "after the quoted value"),
    "[A]\na = 'x'y\n": (2, "after the quoted value"),
    "[A]\na = x y\n": (2, "spaces"),
    "[A]\na = 1 | 2\n": (2, "spaces"),
    "[A]\na = 1|2\n": (2, "operator"),
    "[A]\na = !x\n": (2, "operator"),
    "[A]\na = it's\n": (2, "single quote"),
    '[A]\na = x"y"\n': (2, "double quote"),
    "[A]\na = b=c\n": (2, "'='"),
    "[A]\n# comment\n": (2, "not a comment"),
    "[A]\njust a label\n": (2, "key = value"),
    "[A]\na[q ] = 1\n": (2, "key = value"),
    "[A]\na\t[] = 1\n": (2, "key = value"),
    "\ufeff; <?php exit; ?>\n": (1, "byte-order mark"),
    "[A]\na = \"x\x00\"\n": (2, "NUL"),
}


@pytest.mark.parametrize("text", REFUSED, ids=[repr(t)[:40] for t in REFUSED])
def test_refused_with_the_line_and_a_fix(text: str) -> None:
    line, words = REFUSED[text]
    with pytest.raises(DeploymentError) as caught:
        read_matomo_config(text)
    _assert_located(caught.value)
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"line {line}: ") and words in first, first


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(DeploymentError) as caught:
        read_matomo_config("[A]\na = E_ALL\nb = ok\nc = ${X}\n[ B ]\n")
    assert [str(p).split(":")[0] for p in caught.value.problems] == ["line 2", "line 4", "line 5"]


def test_escapes_are_noted_for_servers_on_php_8_0_and_older() -> None:
    text = MATOMO5.read_text(encoding="utf-8").replace('username = "matomo_app"', 'username = "app\\\\user"')
    result = import_matomo_config(text, name="matomo", image=IMAGE)
    assert result.deployment["database"]["user"] == "app\\user"
    assert any(n.startswith("line 5: [database] username: ") and "PHP 8.0" in n for n in result.notes)


# Generated files. The alphabet leans on what PHP's scanner and Matomo's decoding treat
# specially; the building blocks repeat so keys and sections collide.
SECTION_NAMES = st.one_of(st.sampled_from(["General", "database", "A", "a.b", "x-y", "_s", "Plugins"]),
                          st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,8}\Z"))
KEYWORDS = [k for word in ("true", "on", "yes", "false", "off", "no", "none", "null") for k in (word, word.upper(), word.title())]
KEYS = st.one_of(
    st.sampled_from(["a", "b", "salt", "Plugins", "1", "01", "0", "a.b", "a-b", "online", "nullable", "_x", "X"]),
    st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}\Z"),
).filter(lambda k: k.lower() not in KEYWORDS)
OFFSETS = st.sampled_from(["", "", "", "0", "1", "3", "007", "q", "name_1", "99999999999999999999"])
NUMBERS = ["0", "-0", "007", "1", "-1", "1.5", ".5", "1.", "1e3", "1.0E+25", "1.0E-5", "0.00001", "0.1", "100000000000000",
           "1.0E+14", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "0.30000000000000004", "1.0"]
ENTITIES = ["&amp;", "&amp;amp;", "&amp;#36;", "&quot;", "&#36;", "&#039;", "&#39;", "&apos;", "&#x41;", "&#0;", "&#xD800;",
            "&eacute;", "&EACUTE;", "&#10;", "&#13;", "&#128;", "&lt;", "&", "&#", "&#49;", "&#x2e;"]
HOSTILE = list(";'|&^!~()=#[]{}%<>?@*,/:+- \t\x0b\x0c\x1b\x7f\x85\u00a0\u2028\u2029\ufeffé漢🙂") + ["E_ALL", "$", "$a", "\\x", "\\n"]

dq_piece = st.one_of(
    st.sampled_from(ENTITIES + HOSTILE + NUMBERS + KEYWORDS + ["\\\\", '\\"', "\\$", "\\\\\\\\"]),
    st.text(st.characters(blacklist_characters='"\\$\r\n\x00', blacklist_categories=("Cs",)), max_size=4),
)
dq_content = st.lists(dq_piece, max_size=6).map("".join).filter(lambda s: "${" not in s and not s.endswith("$"))
sq_content = st.text(st.characters(blacklist_characters="'\r\n\x00", blacklist_categories=("Cs",)), max_size=10)
UNQUOTED_CHARS = st.characters(blacklist_characters=" \t$=;&|^~()!\"'\r\n\x00", blacklist_categories=("Cs",))


def _bare_ok(token: str) -> bool:
    import re

    return bool(token) and token.lower() not in KEYWORDS and not (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token) and not token[0].islower())


unquoted = st.one_of(st.sampled_from(NUMBERS + ["localhost", "PDO\\MYSQL", "a{b}", "x#y", "/var/www", "é", "-"]),
                     st.text(UNQUOTED_CHARS, min_size=1, max_size=8)).filter(_bare_ok)
COMMENTS = st.sampled_from(["", "", " ; comment", ";c", "\t; \"x\" ${X} 'y' E_ALL", " ;"])


@st.composite
def values(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["dq", "dq", "dq", "sq", "bare", "keyword", "empty", "windows"]))
    if kind == "dq":
        return f'"{draw(dq_content)}"' + draw(COMMENTS)
    if kind == "windows":  # "C:\dir\" at the very end of the line
        return f'"{draw(dq_content)}\\"'
    if kind == "sq":
        return f"'{draw(sq_content)}'" + draw(COMMENTS)
    if kind == "bare":
        return draw(unquoted) + draw(COMMENTS)
    if kind == "keyword":
        return draw(st.sampled_from(KEYWORDS)) + draw(st.sampled_from(["", "  ", " ; c", ";c"]))
    return draw(st.sampled_from(["", " ", "; c"]))


@st.composite
def entry_lines(draw: st.DrawFn) -> str:
    key = draw(KEYS)
    if draw(st.booleans()):
        key += draw(st.sampled_from(["[", " [", "[ ", "[\t", "  [ \t"])) + draw(OFFSETS) + "]"
    indent = draw(st.sampled_from(["", "", " ", "\t"]))
    equals = draw(st.sampled_from([" = ", "=", " =\t", "  =  ", "\t=", " \t= "]))
    return f"{indent}{key}{equals}{draw(values())}"


@st.composite
def supported_files(draw: st.DrawFn) -> str:
    lines = [draw(st.sampled_from(["; <?php exit; ?> DO NOT REMOVE THIS LINE", "", "; x"]))]
    for _ in range(draw(st.integers(1, 4))):
        lines.append(f"[{draw(SECTION_NAMES)}]" + draw(st.sampled_from(["", " ", " ; c", ";c"])))
        for _ in range(draw(st.integers(0, 6))):
            lines.append(draw(st.one_of(entry_lines(), entry_lines(), st.sampled_from(["", "  ", "; c", "\t; x"]))))
    # Bare booleans last: if PHP's raw pass failed anywhere, they would read as 1/"".
    lines += ["[Canary]", "t = on", "f = off", "n = null"]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join(lines) + draw(st.sampled_from(["", newline]))


_RANDOM_LINE = st.lists(st.sampled_from(HOSTILE + ENTITIES + KEYWORDS + ['"', "'", "=", " = ", "[", "]", "[]", "\t[", "${X}", "key", "\\"]),
                        max_size=8).map("".join)


@st.composite
def hostile_files(draw: st.DrawFn) -> str:
    """Anything: the supported constructs mixed with lines of special characters."""
    lines = [f"[{draw(SECTION_NAMES)}]"]
    for _ in range(draw(st.integers(1, 10))):
        lines.append(draw(st.one_of(entry_lines(), _RANDOM_LINE, _RANDOM_LINE.map(lambda v: "k = " + v),
                                    _RANDOM_LINE.map(lambda v: f'k = "{v}"'), _RANDOM_LINE.map(lambda v: f"[{v}]"))))
    if draw(st.booleans()):
        lines += ["[Canary]", "t = on", "f = off", "n = null"]
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=supported_files())
def test_supported_files_are_accepted_and_read_exactly_as_matomo_does(text: str) -> None:
    ours = _read_or_refuse(text)
    assert not isinstance(ours, DeploymentError), f"refused a supported file: {ours}"
    assert _same(ours, php_read_config(text)), (ours, php_read_config(text))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_files())
def test_any_file_is_read_exactly_as_matomo_does_or_refused_with_its_line(text: str) -> None:
    ours = _read_or_refuse(text)
    if isinstance(ours, DeploymentError):
        # Refused: PHP may fail too, or read something that depends on the environment,
        # PHP's constants or version, or on constructs outside the supported set.
        _assert_located(ours)
        try:
            php_read_config(text)
        except AssertionError:
            event("refused; PHP fails too")
        else:
            event("refused; PHP reads it")
        return
    event("accepted")
    assert _same(ours, php_read_config(text)), (ours, php_read_config(text))


# --- the import ------------------------------------------------------------------------


def _import(path: Path, **options: Any) -> ImportResult:
    options.setdefault("redis_host", "redis.service.consul" if path == MATOMO4 else None)
    return import_matomo_config(path.read_text(encoding="utf-8"), name="matomo", image=IMAGE, **options)


def _read_keys(deployment: Any) -> set[str]:
    """Every secret key the rendered templates read."""
    keys = set()
    for job in plan_roles(deployment):
        for section in job.config:
            keys.update(v.key for v in section.values.values() if isinstance(v, SecretRef))
    return keys


def _loosely_same(original: Any, rendered: Any) -> bool:
    """The same to Matomo: identical, or a bare 0/1 where the original had false/true
    (matomo-nomad writes booleans as 0/1), or the same text to PHP ("1" and 1)."""
    from matomo_nomad._php_ini import php_text as _php_text

    if isinstance(original, list) or isinstance(rendered, list):
        return isinstance(original, list) and isinstance(rendered, list) and len(original) == len(rendered) and all(
            map(_loosely_same, original, rendered)
        )
    if _same(original, rendered):
        return True
    if isinstance(original, bool) and type(rendered) is int:
        return int(original) == rendered
    if isinstance(original, (dict, type(None))) or isinstance(rendered, (dict, type(None))):
        return False
    if isinstance(rendered, (int, float)) and isinstance(original, str) and _numeric(original):
        # A number matomo-nomad writes as PHP spells it (0.0 as 0), where the original
        # file's spelling left Matomo a numeric string ("0.0"): equal to PHP's ==.
        return float(original) == rendered
    return _php_text(original) == _php_text(rendered)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text


def _noted(notes: list[str], section: str, key: str) -> bool:
    prefix = f"[{section}] {key}"
    return any(n.startswith(prefix) and n[len(prefix) : len(prefix) + 1] in (" ", "[") for n in notes)


@pytest.mark.parametrize("path", [MATOMO4, MATOMO5], ids=["matomo4", "matomo5"])
def test_fixture_imports_to_a_deployment_that_validates_and_renders(path: Path) -> None:
    result = _import(path)
    deployment = parse_deployment(result.deployment)
    rendering = render(deployment)
    assert len(list(rendering)) == 5
    assert set(result.secrets) == _read_keys(deployment)
    assert {"salt", "database_password"} <= set(result.secrets)


@pytest.mark.parametrize("path", [MATOMO4, MATOMO5], ids=["matomo4", "matomo5"])
def test_migration_round_trip_matomo_reads_the_same_settings(go_oracles, path: Path) -> None:
    """Render the imported deployment, run each role's config template with the imported
    secrets, read it as Matomo does: every original setting is there with the same value,
    or a note says it was dropped or changed."""
    text = path.read_text(encoding="utf-8")
    original = php_read_config(text)
    result = _import(path)
    deployment = parse_deployment(result.deployment)
    stubs = {"nomad": {f"nomad/jobs/{deployment.job_id(role)}": dict(result.secrets) for role in Role}}
    for rendered in render(deployment):
        config = php_read_config(execute_template(go_oracles["tmplexec"], rendered.config_template, stubs))
        unexplained = [
            (section, key, value, config.get(section, {}).get(key, "<absent>"))
            for section, values in original.items()
            for key, value in values.items()
            if not (key in config.get(section, {}) and _loosely_same(value, config[section][key]))
            and not _noted(result.notes, section, key)
        ]
        assert not unexplained, (rendered.role, unexplained)

        # What a migration must carry exactly: the database, the salt, the password, the hosts.
        for key in ("host", "port", "username", "password", "dbname", "tables_prefix", "adapter", "charset"):
            assert _same(config["database"][key], original["database"][key]), key
        assert config["General"]["salt"] == original["General"]["salt"]
        assert config["General"]["trusted_hosts"] == original["General"]["trusted_hosts"]
        assert config["General"]["proxy_client_headers"] == original["General"]["proxy_client_headers"]
        assert (config["General"].get("maintenance_mode") == 1) == (rendered.role is Role.ingestion)


def test_matomo5_round_trip_carries_reader_redis_and_cache(go_oracles) -> None:
    original = php_read_config(MATOMO5.read_text(encoding="utf-8"))
    result = _import(MATOMO5)
    deployment = parse_deployment(result.deployment)
    stubs = {"nomad": {f"nomad/jobs/{deployment.job_id(role)}": dict(result.secrets) for role in Role}}
    config = php_read_config(execute_template(go_oracles["tmplexec"], render(deployment)[Role.admin].config_template, stubs))
    for key in ("host", "port", "username", "password"):
        assert config["database_reader"][key] == original["database_reader"][key]
    for key in ("redisHost", "redisPort", "redisDatabase", "redisPassword", "numQueueWorkers", "numRequestsToProcess"):
        assert _same(config["QueuedTracking"][key], original["QueuedTracking"][key]), key
    # `redisTimeout = 0.0` leaves Matomo the string "0.0"; matomo-nomad writes 0.0 as PHP does, 0.
    assert _loosely_same(original["QueuedTracking"]["redisTimeout"], config["QueuedTracking"]["redisTimeout"])
    for key in ("host", "port", "database", "timeout", "password"):
        assert _same(config["RedisCache"][key], original["RedisCache"][key]), key
    assert config["Cache"]["backend"] == "redis"
    assert (config["database"]["enable_ssl"], config["database"]["ssl_ca"], config["database"]["ssl_no_verify"]) == (1, "/etc/ssl/certs/db-ca.pem", 0)
    assert config["General"]["proxy_ips"] == original["General"]["proxy_ips"]
    assert config["General"]["archiving_custom_ranges"] == ["last7", "previous30"]
    assert config["General"]["noreply_email_name"] == "Matomo & «Stats»"
    # A credential setting: now a secret the template reads, Matomo gets it unchanged.
    assert config["mail"]["password"] == original["mail"]["password"] == "m$il"
    assert result.deployment["settings"]["mail"]["password"] == {"secret": "mail_password"}
    assert config["database"]["schema"] == original["database"]["schema"] == "Mysql"


def test_import_secrets_are_separate_and_never_in_the_toml() -> None:
    for path in (MATOMO4, MATOMO5):
        result = _import(path)
        original = read_matomo_config(path.read_text(encoding="utf-8"))
        assert result.secrets["salt"] == original["General"]["salt"]
        assert result.secrets["database_password"] == original["database"]["password"]
        text = deployment_toml(result.deployment, source=str(path), notes=result.notes)
        dumped = json.dumps(result.deployment, ensure_ascii=False)
        secret_values = list(result.secrets.values()) + [original["mail"]["password"]]
        if "LoginLdap_corp" in original:
            secret_values.append(original["LoginLdap_corp"]["admin_pass"])
        for secret in secret_values:
            assert secret and secret not in text and secret not in dumped, "a secret leaked into the deployment"
        assert not [s for s in result.secrets.values() if s in repr(result)]
        assert "Secrets are NOT in this file" in text
    m5 = _import(MATOMO5)
    assert set(m5.secrets) == {
        "salt", "database_password", "database_reader_password", "redis_password", "redis_cache_password", "mail_password"
    }
    assert m5.secrets["redis_password"] == "qu$ue&pass"
    # The credentials the import used to drop are stored too, under derived keys, and the
    # deployment file names those keys.
    m4 = _import(MATOMO4)
    assert (m4.secrets["mail_password"], m4.secrets["loginldap_corp_admin_pass"]) == ("smtp-p&ss", "ld$p-b1nd")
    assert m4.deployment["settings"]["mail"]["password"] == {"secret": "mail_password"}
    assert m4.deployment["settings"]["LoginLdap_corp"]["admin_pass"] == {"secret": "loginldap_corp_admin_pass"}
    text = deployment_toml(m4.deployment, notes=m4.notes)
    assert 'password = { secret = "mail_password" }' in text
    assert 'admin_pass = { secret = "loginldap_corp_admin_pass" }' in text


def test_import_notes_dropped_and_changed_settings() -> None:
    m4 = _import(MATOMO4)
    notes = "\n".join(m4.notes)
    assert "[General] enable_auto_update was not set (Matomo's default 1); matomo-nomad sets it to 0" in notes
    assert '[General] session_save_handler = "files" dropped' in notes
    assert "[mail] password is a credential: stored as the secret mail_password" in notes and "smtp-p" not in notes
    assert "[LoginLdap_corp] admin_pass is a credential: stored as the secret loginldap_corp_admin_pass" in notes
    assert "bake them into the image: MarketingCampaignsReporting, LoginLdap (" in notes
    assert "Shipped with Matomo but off by default: TagManager" in notes
    assert "[database] schema" not in notes and m4.deployment["database"]["schema"] == "Mysql"
    assert "deactivated" in notes and "Feedback" in notes and "ProfessionalServices" in notes
    assert '[database] host = "127.0.0.1" kept' in notes
    assert "[log] log_writers[] includes file" in notes
    m5 = _import(MATOMO5)
    notes = "\n".join(m5.notes)
    assert "[General] multi_server_environment = 0 dropped: matomo-nomad keeps it at 1" in notes
    assert "[General] enable_general_settings_admin = 1 dropped: matomo-nomad keeps it at 0" in notes
    assert "collation" not in notes and m5.deployment["database"]["collation"] == "utf8mb4_0900_ai_ci"
    assert "[QueuedTracking] processDuringTrackingRequest = 1 changed to 0" in notes
    assert "bake them into the image: CustomAlerts, HeatmapSessionRecording" in notes
    assert "Already in matomo-nomad's default plugins: QueuedTracking, SecurityInfo" in notes
    assert "deactivated" not in notes
    # the deployment itself
    d = m5.deployment
    assert d["database"]["reader"] == {"host": "mysql-replica.db.example.net", "port": 3307, "user": "matomo_ro"}
    assert d["roles"] == {"queue_processor": {"count": 4, "queues": 4, "requests_per_batch": 50}}
    assert d["proxy"] == {"client_headers": ["HTTP_CF_CONNECTING_IP", "HTTP_X_FORWARDED_FOR"], "ips": ["10.0.0.0/8", "192.168.10.5"], "force_ssl": True}
    assert "Plugins" not in d["settings"] and "PluginsInstalled" not in d["settings"]


TREES = Path(__file__).parent / "fixtures" / "matomo-trees"


@pytest.mark.parametrize("tag", sorted(p.name for p in TREES.iterdir() if (p / "plugins.json").is_file()))
def test_matomo_plugins_are_the_releases_own(tag: str) -> None:
    """The import's table of Matomo's own plugins, against the lists extracted from each
    release's sources (global.ini.php, Manager::$pluginToAlwaysActivate, PluginList)."""
    data = json.loads((TREES / tag / "plugins.json").read_text(encoding="utf-8"))
    always = {data["manager_constants"].get(name.removeprefix("self::"), name) for name in data["always_activated"]}
    active = (set(data["global_plugins"]) - set(data["release_strips"])) | always
    off = {name for name in data["core_plugins_disabled_by_default"] if not name.startswith("Example")}
    plugins = matomo_plugins(tag)
    assert plugins.active == active
    assert plugins.always == always
    assert plugins.shipped_off == off
    assert "CoreVue" in plugins.always and ("FeatureFlags" in plugins.always) == (tag >= "5.2")


def _minimal(**general: Any) -> dict[str, dict[str, Any]]:
    return {
        "database": {"host": "db.internal", "username": "matomo", "password": "pw-Secret-Value-9f8e", "dbname": "matomo", "tables_prefix": "matomo_"},
        "General": {"salt": "0123456789abcdef0123456789abcdef", "trusted_hosts": ["a.example.com"], **general},
    }


def test_import_refuses_what_cannot_become_a_deployment() -> None:
    broken = {"database": {"host": "", "username": ""}, "General": {}}
    with pytest.raises(DeploymentError) as caught:
        import_config(broken, name="matomo", image=IMAGE)
    locations = [p.location for p in caught.value.problems]
    assert locations == ["[General] trusted_hosts[]", "[database] host", "[database] username", "[QueuedTracking] redisHost", "[General] salt"]
    settings = _minimal()
    settings["database"]["port"] = 70000
    with pytest.raises(DeploymentError) as caught:
        import_config(settings, name="matomo", image=IMAGE, redis_host="redis")
    assert [(p.location, p.message.endswith("(from the imported config.ini.php)")) for p in caught.value.problems] == [
        ("database.port", True)
    ]


def test_errors_in_values_given_name_the_argument_not_the_file() -> None:
    """A value that came from a flag is blamed on the flag (--redis-host), one from the
    file on the file."""
    with pytest.raises(DeploymentError) as caught:
        import_config(
            _minimal(), name="Bad Name", image="registry/m:latest", redis_host="bad host!", hosts=["h/x"],
            matomo_version="5", given_as={"name": "--name", "redis_host": "--redis-host"},
        )
    sources = {p.location.split("[")[0]: p.message.rsplit("(from ", 1)[1] for p in caught.value.problems}
    assert sources == {
        "name": "--name)", "matomo.image": "image)", "matomo.version": "matomo_version)", "hosts": "hosts)",
        "redis.host": "--redis-host)",
    }, caught.value.problems


def test_hosts_and_redis_given_replace_the_file() -> None:
    result = import_config(_minimal(), name="matomo", image=IMAGE, hosts=["new.example.com"], redis_host="redis.internal")
    assert result.deployment["hosts"] == ["new.example.com"]
    assert result.deployment["redis"] == {"host": "redis.internal"}
    assert any("replaced by the hosts given" in n for n in result.notes)
    # An absent charset or prefix is Matomo's global default, not matomo-nomad's.
    settings = _minimal()
    del settings["database"]["tables_prefix"]
    result = import_config(settings, name="matomo", image=IMAGE, redis_host="redis.internal")
    assert (result.deployment["database"]["table_prefix"], result.deployment["database"]["charset"]) == ("", "utf8")


def test_unwritable_settings_are_dropped_with_a_note() -> None:
    settings = _minimal()
    settings["General"].update({"currencies": {"BTC": "Bitcoin"}, "nothing": None, "some-key": 1, "tiny": 1e-05, "huge": 1e16})
    settings["my.section"] = {"a": 1}
    result = import_config(settings, name="matomo", image=IMAGE, redis_host="redis")
    general = result.deployment["settings"]["General"]
    assert general == {"tiny": "1.0E-5", "huge": "1.0E+16"}  # PHP's spelling: Matomo reads the same float
    for section, key in (("General", "currencies"), ("General", "nothing"), ("General", "some-key"), ("my.section", "a")):
        assert _noted(result.notes, section, key), (section, key)
    parse_deployment(result.deployment)


# Random settings as the reader returns them: every import either validates or is refused
# with located problems, and the TOML file reads back to the same dict.
SCALARS = st.one_of(st.booleans(), st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
SETTING = st.one_of(SCALARS, st.lists(SCALARS, min_size=1, max_size=3), st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))
EXTRA = st.dictionaries(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,6}\Z"),
                        st.dictionaries(st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,6}\Z"), SETTING, max_size=4), max_size=4)


@settings(max_examples=150, deadline=None)
@given(extra=EXTRA)
def test_any_settings_import_to_a_valid_deployment_and_toml_round_trips(extra: dict[str, dict[str, Any]]) -> None:
    settings = _minimal()
    for section, values in extra.items():
        settings.setdefault(section, {}).update(values)
    try:
        result = import_config(settings, name="matomo", image=IMAGE, redis_host="redis.internal")
    except DeploymentError as error:
        assert error.problems and all(str(p) for p in error.problems)
        event("refused")
        return
    parse_deployment(result.deployment)
    text = deployment_toml(result.deployment, notes=result.notes)
    assert tomllib.loads(text) == result.deployment
    assert result.secrets["database_password"] not in text.replace("password", "")


@pytest.mark.parametrize("path", [MATOMO4, MATOMO5], ids=["matomo4", "matomo5"])
def test_toml_reads_back_to_the_same_deployment(path: Path) -> None:
    result = _import(path)
    text = deployment_toml(result.deployment, source="config.ini.php\nwith a newline", notes=result.notes + ["a\nb\x00c"])
    assert tomllib.loads(text) == result.deployment
    assert text.startswith("# matomo-nomad deployment file, imported from config.ini.php\\x0awith a newline.\n")
    assert parse_deployment(tomllib.loads(text)) == parse_deployment(result.deployment)


# --- [database] schema -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept", "noted"),
    [("Mysql", "Mysql", False), ("Mariadb", "Mariadb", False), ("MARIADB", "Mariadb", True), (" tidb ", "Tidb", True),
     ("myisam", "Mysql", True), ("", "Mysql", True)],
)
def test_import_keeps_the_database_schema_as_matomo_loads_it(given: str, kept: str, noted: bool) -> None:
    # core/Db/Schema.php 5.1.2, getSchemaClassName: trimmed, lowercased, capitalised;
    # empty and myisam are Mysql. Kept, not dropped: Matomo 5 reads it.
    settings = _minimal()
    settings["database"]["schema"] = given
    result = import_config(settings, name="matomo", image=IMAGE, redis_host="redis")
    assert result.deployment["database"]["schema"] == kept
    assert _noted(result.notes, "database", "schema") == noted
    assert parse_deployment(result.deployment).database.db_schema == kept


def test_import_refuses_a_schema_matomo_has_no_class_for() -> None:
    settings = _minimal()
    settings["database"]["schema"] = "Oracle"
    with pytest.raises(DeploymentError) as caught:
        import_config(settings, name="matomo", image=IMAGE, redis_host="redis")
    assert [str(p) for p in caught.value.problems] == [
        '[database] schema: is "Oracle", which Matomo has no schema class for (use Mysql, Mariadb or Tidb)'
    ]


def test_database_schema_is_written_in_global_ini_order_and_needs_matomo_5_1(go_oracles) -> None:
    settings = _minimal()
    settings["database"].update({"schema": "Mariadb", "collation": "utf8mb4_general_ci", "port": 3307})
    result = import_config(settings, name="matomo", image=IMAGE, redis_host="redis", matomo_version="5.1.2")
    deployment = parse_deployment(result.deployment)
    stubs = {"nomad": {f"nomad/jobs/{deployment.job_id(role)}": dict(result.secrets) for role in Role}}
    config = php_read_config(execute_template(go_oracles["tmplexec"], render(deployment)[Role.admin].config_template, stubs))
    assert config["database"]["schema"] == "Mariadb"
    assert list(config["database"]) == [
        "host", "username", "password", "dbname", "tables_prefix", "port", "adapter", "schema", "charset", "collation"
    ]
    # The Mariadb and Tidb classes arrived in 5.1.0 (core/Db/Schema/): on 5.0 Matomo would not start.
    with pytest.raises(DeploymentError) as caught:
        import_config(settings, name="matomo", image=IMAGE, redis_host="redis", matomo_version="5.0.3")
    assert [p.location for p in caught.value.problems] == ["database.schema"]
    assert "needs Matomo 5.1.0 or later" in str(caught.value) and "(from the imported config.ini.php)" in str(caught.value)


def test_import_never_asks_to_bake_a_plugin_matomo_ships() -> None:
    # Without the Matomo version, a plugin any release ships (CoreVue from 4.6, FeatureFlags
    # from 5.2, TagManager off by default) is Matomo's own; with it, that release decides.
    settings = _minimal()
    settings["Plugins"] = {"Plugins": ["Login", "CoreVue", "FeatureFlags", "TagManager", "TestRunner", "Custom1"]}
    notes = "\n".join(import_config(settings, name="matomo", image=IMAGE, redis_host="redis").notes)
    assert "so bake them into the image: Custom1 (" in notes
    assert "Shipped with Matomo but off by default: TagManager" in notes
    assert "Development plugins, which release builds and the image leave out: TestRunner" in notes
    assert "CoreVue" not in notes and "FeatureFlags" not in notes
    notes = "\n".join(import_config(settings, name="matomo", image=IMAGE, redis_host="redis", matomo_version="5.1.2").notes)
    assert "Not shipped with Matomo 5.1.2, so bake them into the image: FeatureFlags, Custom1 (" in notes
    notes = "\n".join(import_config(settings, name="matomo", image=IMAGE, redis_host="redis", matomo_version="4.5.0").notes)
    assert "bake them into the image: CoreVue, FeatureFlags, Custom1 (" in notes

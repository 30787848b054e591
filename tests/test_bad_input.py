"""Malformed deployment files: every one is refused with exactly the expected lines.

The cases live in `tests/bad_inputs/` (see its README.md): each file carries the
stderr lines the CLI must print as `# expect: ...` comments (JSON files in a
`.expected` sidecar). Every case goes through the CLI's `main()` in-process, for
`validate` and for `render --out`; a representative handful (all of them with
MATOMO_NOMAD_TEST_ALL_SUBPROCESS=1) also through a real `python -m matomo_nomad`
process, which proves the exit code and the absence of a traceback end to end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from matomo_nomad._cli import main

REPO = Path(__file__).resolve().parent.parent
BAD_DIR = Path(__file__).resolve().parent / "bad_inputs"
SUFFIXES = {".toml", ".yaml", ".yml", ".json", ".ini"}
EXIT_INVALID = 2

#: Run as real processes by default: one per kind of failure the loader handles.
SUBPROCESS_CASES = {
    "toml_syntax_missing_value.toml",
    "yaml_syntax_bad_indent.yaml",
    "yaml_duplicate_key.yaml",
    "json_syntax_trailing_comma.json",
    "invalid_utf8.toml",
    "unknown_suffix.ini",
    "yaml_top_level_list.yaml",
    "nul_in_text.json",
    "several_errors.toml",
    "plugins_no_queuedtracking_many_workers.toml",
    "json_duplicate_key.json",
    "toml_syntax_end_of_file.toml",
}
ALL_SUBPROCESS = os.environ.get("MATOMO_NOMAD_TEST_ALL_SUBPROCESS") == "1"


@dataclass(frozen=True)
class BadInput:
    path: Path
    expected: tuple[str, ...]
    xfail: str | None

    @property
    def name(self) -> str:
        return self.path.name


def _read_header(source: Path) -> tuple[tuple[str, ...], str | None]:
    """The `# expect:` and `# xfail:` lines of the leading comment block."""
    expected: list[str] = []
    xfail: str | None = None
    for raw in source.read_bytes().splitlines():
        if not raw.startswith(b"#"):
            break
        line = raw.decode("utf-8")
        if line.startswith("# expect: "):
            expected.append(line[len("# expect: ") :])
        elif line.startswith("# xfail: "):
            xfail = line[len("# xfail: ") :]
    return tuple(expected), xfail


def _collect() -> list[BadInput]:
    cases = []
    for path in sorted(BAD_DIR.iterdir()):
        if path.suffix not in SUFFIXES:
            continue
        header = path.with_name(path.name + ".expected") if path.suffix == ".json" else path
        expected, xfail = _read_header(header)
        cases.append(BadInput(path, expected, xfail))
    return cases


CASES = _collect()


def _params(cases: list[BadInput]) -> list[object]:
    return [
        pytest.param(case, id=case.name, marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [])
        for case in cases
    ]


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    # MATOMO_NOMAD_DEBUG turns the internal-error line back into a traceback.
    monkeypatch.delenv("MATOMO_NOMAD_DEBUG", raising=False)


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.chdir(BAD_DIR)
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- the collection itself ------------------------------------------------------------


def test_enough_cases_each_with_expectations() -> None:
    assert len(CASES) >= 35
    for case in CASES:
        assert case.expected, f"{case.name}: no '# expect:' lines"
    for case in CASES:
        if case.path.suffix == ".json":
            assert case.path.with_name(case.name + ".expected").is_file(), f"{case.name}: no .expected sidecar"
    # Every file in the directory is a case, a sidecar of one, or the README.
    names = {case.name for case in CASES}
    for path in BAD_DIR.iterdir():
        assert (
            path.name in names or path.name == "README.md" or path.name.removesuffix(".expected") in names
        ), f"{path.name}: neither a case nor a sidecar"


# `location: what is wrong (how to fix)`: a location without spaces (a file may carry
# :line:column), then the problem, then the fix in parentheses at the end.
_PROBLEM_LINE = re.compile(r"^\S+: .+ \(.+\)$")


def test_every_expected_line_says_where_what_and_how_to_fix() -> None:
    for case in CASES:
        for line in case.expected:
            assert _PROBLEM_LINE.match(line), f"{case.name}: {line!r} lacks a location or a (fix)"


def test_several_problems_reported_at_once() -> None:
    several = next(case for case in CASES if case.name == "several_errors.toml")
    assert len(several.expected) >= 5
    locations = [line.partition(":")[0] for line in several.expected]
    assert len(set(locations)) == len(locations), "one line per problem, each about its own field"


# --- validate, in-process (every case) -----------------------------------------------


@pytest.mark.parametrize("case", _params(CASES))
def test_validate_refuses(case: BadInput, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run_main(["validate", case.name], capsys, monkeypatch)
    assert "Traceback" not in out + err
    assert out == ""
    assert err.splitlines() == list(case.expected)
    assert err.endswith("\n")
    assert code == EXIT_INVALID


# --- render --out: nothing is written --------------------------------------------------


@pytest.mark.parametrize("case", _params(CASES))
def test_render_out_untouched(
    case: BadInput, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    sentinel = existing / "keep.txt"
    sentinel.write_text("untouched\n")
    before = os.stat(sentinel)

    code, out, err = _run_main(["render", case.name, "--out", str(existing)], capsys, monkeypatch)
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]
    assert sentinel.read_text() == "untouched\n"
    assert os.stat(sentinel).st_mtime_ns == before.st_mtime_ns

    missing = tmp_path / "missing" / "nested"
    code2, out2, err2 = _run_main(["render", case.name, "--out", str(missing)], capsys, monkeypatch)
    assert not (tmp_path / "missing").exists(), "the output directory was created for a bad input"

    for c, o, e in ((code, out, err), (code2, out2, err2)):
        assert "Traceback" not in o + e
        assert o == ""
        assert e.splitlines() == list(case.expected)
        assert c == EXIT_INVALID


# --- validate, as a real process ------------------------------------------------------


def _subprocess_params() -> list[object]:
    chosen = [case for case in CASES if ALL_SUBPROCESS or case.name in SUBPROCESS_CASES]
    return _params(chosen)


def test_subprocess_cases_exist() -> None:
    assert SUBPROCESS_CASES <= {case.name for case in CASES}


@pytest.mark.parametrize("case", _subprocess_params())
def test_validate_refuses_subprocess(case: BadInput) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MATOMO_NOMAD_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "matomo_nomad", "validate", case.name],
        cwd=BAD_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == list(case.expected)
    assert result.returncode == EXIT_INVALID


# --- too deeply nested to parse --------------------------------------------------------

_DEEP = 5000


@pytest.mark.parametrize(
    "name, opening, closing",
    [("deep.json", "", ""), ("deep.toml", "a = ", "\n"), ("deep.yaml", "a: ", "\n")],
    ids=["json", "toml", "yaml"],
)
def test_deeply_nested_input_is_bad_input(
    name: str, opening: str, closing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = opening + "[" * _DEEP + "]" * _DEEP + closing
    path = tmp_path / name
    path.write_text(text)
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert out == ""
    assert "internal error" not in err
    assert len(err.splitlines()) == 1 and err.startswith(f"{path}")
    assert code == EXIT_INVALID

"""The command line as a user runs it: `python -m matomo_nomad ...` in a real process.

Exit codes (see `_cli`): 0 success, 2 bad input, 4 output not writable, 64 bad command
line, 70 internal error. Tests run as root, so an unwritable output is made with a
regular file where a directory is expected rather than with chmod.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from matomo_nomad._version import __version__

REPO = Path(__file__).resolve().parent.parent
SEED = "examples/seed.toml"
MINIMAL = "examples/minimal.toml"
MATOMO_JOB_IDS = ["matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver", "matomo-setup"]
JOB_IDS = [*MATOMO_JOB_IDS, "matomo-monitoring"]  # the seed example's; minimal.toml has no monitoring job
SUFFIXES = [".nomad.hcl", ".json", ".config.ini.php.tpl"]
# The monitoring job runs no Matomo: no config.ini.php for it.
ALL_FILES = [job + suffix for job in MATOMO_JOB_IDS for suffix in SUFFIXES] + [
    "matomo-monitoring.nomad.hcl", "matomo-monitoring.json"
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MATOMO_NOMAD_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def cli(*args: str | Path, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m matomo_nomad ARGS`; stdout and stderr as bytes."""
    return subprocess.run(
        [sys.executable, "-m", "matomo_nomad", *map(str, args)],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    """stdout of a run that must have succeeded silently."""
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return result.stdout.decode("utf-8")


def no_traceback(result: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in result.stdout + result.stderr


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- render ---------------------------------------------------------------------------


def test_render_without_file_prints_the_builtin_example_as_six_hcl_jobs() -> None:
    out = ok(cli("render"))
    assert re.findall(r'^job "([^"]+)" \{$', out, re.MULTILINE) == JOB_IDS
    assert re.findall(r"^# ---- (\S+) ----$", out, re.MULTILINE) == [f"{job}.nomad.hcl" for job in JOB_IDS]
    archiver = out[out.index('job "matomo-archiver"') :]
    assert re.search(r'^  type\s+= "batch"$', archiver, re.MULTILINE)
    assert re.search(r"^\s+periodic \{$", archiver, re.MULTILINE)
    setup = out[out.index('job "matomo-setup"') :]
    assert re.search(r'^  type\s+= "batch"$', setup, re.MULTILINE) and "periodic" not in setup


def test_render_out_writes_three_files_per_job_and_prints_their_paths(tmp_path: Path) -> None:
    out_dir = tmp_path / "new" / "jobs"  # created, parents too
    stdout = ok(cli("render", SEED, "--out", out_dir))
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(ALL_FILES)
    assert stdout.splitlines() == [str(out_dir / name) for name in ALL_FILES]
    for job in JOB_IDS:
        assert f'job "{job}" {{' in (out_dir / f"{job}.nomad.hcl").read_text()
        assert json.loads((out_dir / f"{job}.json").read_text())["Job"]["ID"] == job
    for job in MATOMO_JOB_IDS:
        assert "[database]" in (out_dir / f"{job}.config.ini.php.tpl").read_text()


def test_render_out_files_match_what_stdout_shows(tmp_path: Path) -> None:
    ok(cli("render", SEED, "--out", tmp_path))
    shown = ok(cli("render", SEED, "--role", "archiver", "--format", "json"))
    assert (tmp_path / "matomo-archiver.json").read_text() == shown


def test_render_out_with_role_and_format_writes_only_that_file(tmp_path: Path) -> None:
    stdout = ok(cli("render", SEED, "--out", tmp_path, "--role", "archiver", "--format", "json"))
    assert [p.name for p in tmp_path.iterdir()] == ["matomo-archiver.json"]
    assert stdout == f"{tmp_path / 'matomo-archiver.json'}\n"


def test_render_archiver_as_json_is_one_batch_job() -> None:
    document = json.loads(ok(cli("render", SEED, "--role", "archiver", "--format", "json")))
    assert list(document) == ["Job"]
    assert document["Job"]["Type"] == "batch"
    assert document["Job"]["ID"] == "matomo-archiver"


def test_render_all_roles_as_json_is_an_object_keyed_by_job_id() -> None:
    document = json.loads(ok(cli("render", SEED, "--format", "json")))
    assert list(document) == JOB_IDS
    for job_id, value in document.items():
        assert list(value) == ["Job"]
        assert value["Job"]["ID"] == job_id
    assert [document[j]["Job"]["Type"] for j in JOB_IDS] == ["service", "service", "service", "batch", "batch", "service"]


def _ini_lines(role: str) -> list[str]:
    return [line.strip() for line in ok(cli("render", SEED, "--format", "ini", "--role", role)).splitlines()]


def test_render_ini_ingestion_is_in_maintenance_mode_and_archiver_is_not() -> None:
    assert "maintenance_mode = 1" in _ini_lines("ingestion")
    archiver = _ini_lines("archiver")
    assert "[General]" in archiver
    assert not [line for line in archiver if re.match(r"maintenance_mode\s*=\s*\"?1", line)]


# --- validate, schema, version -------------------------------------------------------


@pytest.mark.parametrize("file", [MINIMAL, SEED, None], ids=["minimal", "seed", "builtin"])
def test_validate_examples(file: str | None) -> None:
    stdout = ok(cli("validate", *([file] if file else [])))
    first, second, *requirements = stdout.splitlines()
    assert first == f"{file or 'built-in example'}: valid ({', '.join(JOB_IDS if file != MINIMAL else MATOMO_JOB_IDS)})"
    # What the jobs expect of the image they run.
    assert second.startswith("the jobs " + ("run" if file == MINIMAL else "but the monitoring job run")
                             + " registry.example.com/") and second.endswith("with:")
    if file != MINIMAL:
        assert requirements[-1] == "the monitoring job runs oliver006/redis_exporter:v1.88.0 as it is published"
    assert any("/usr/local/lib/matomo-nomad/setup.php" in line for line in requirements)
    assert any("common.config.ini.php" in line for line in requirements)


def test_image_snippet_prints_the_dockerfile_lines_of_an_own_image() -> None:
    out = ok(cli("image", SEED, "--snippet"))
    assert "FROM matomo:5.10.0-apache" in out
    assert "RUN php /usr/local/lib/matomo-nomad/plugin-state.php /usr/src/matomo QueuedTracking SecurityInfo" in out
    assert cli("image", SEED, "--snippet", "--out", "x").returncode == 64


def _walk(node: object):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield node
        for child in node.values():
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)


def test_schema_is_json_and_documents_defaults() -> None:
    schema = json.loads(ok(cli("schema")))
    assert schema["$schema"].startswith("https://json-schema.org/")
    properties = schema["properties"]
    for name in ("name", "roles", "matomo", "hosts", "database", "redis"):
        assert name in properties
    assert {"name", "matomo", "hosts", "database", "redis"} <= set(schema["required"])
    assert "50" in properties["priority"]["description"]
    with_default = [node for node in _walk(schema) if "default" in node]
    assert len(with_default) > 20
    undocumented = [node for node in with_default if "default" not in node.get("description", "").lower()]
    assert undocumented == []


def test_version() -> None:
    assert ok(cli("--version")) == f"matomo-nomad {__version__}\n"


# --- command-line errors: exit 64 ------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["render", "--bogus"],
        ["render", "--role", "nobody"],
        ["render", "--format", "yaml"],
        ["validate", "a.toml", "b.toml"],
        ["frobnicate"],
        [],
    ],
    ids=["top-flag", "render-flag", "role", "format", "two-files", "command", "nothing"],
)
def test_bad_command_line_exits_64_with_usage(args: list[str]) -> None:
    result = cli(*args)
    no_traceback(result)
    assert result.returncode == 64
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert lines[0].startswith("usage: matomo-nomad")
    assert re.match(r"^matomo-nomad( \w+)?: error: ", lines[-1])


def test_unknown_render_flag_is_named() -> None:
    assert "unrecognized arguments: --bogus" in cli("render", "--bogus").stderr.decode()


def test_unknown_top_level_flag_is_named() -> None:
    assert "--bogus" in cli("--bogus").stderr.decode()


@pytest.mark.parametrize(
    "command",
    [["render"], ["validate"], ["schema"], ["image"], ["plan"], ["run"], ["secrets", "init"], ["secrets", "import", "c.php"]],
    ids=lambda c: "-".join(c[:2]),
)
def test_an_unknown_flag_after_a_command_shows_that_commands_usage(command: list[str]) -> None:
    result = cli(*command, "--bogus")
    no_traceback(result)
    assert result.returncode == 64
    lines = result.stderr.decode().splitlines()
    name = " ".join(c for c in command if not c.endswith(".php"))
    assert lines[0].startswith(f"usage: matomo-nomad {name} ")
    assert lines[-1] == f"matomo-nomad {name}: error: unrecognized arguments: --bogus" or (
        # secrets import names its missing required flags first
        name == "secrets import" and lines[-1].startswith("matomo-nomad secrets import: error: ")
    )


@pytest.mark.parametrize(
    "args",
    [["render", "--out", ""], ["image", "--out", ""], ["render", "--out", " "],
     ["secrets", "import", "config.ini.php", "--name", "m", "--image", "r/m:1", "--out", ""]],
    ids=["render", "image", "blank", "secrets-import"],
)
def test_an_empty_out_is_a_usage_error_and_writes_nothing(args: list[str], tmp_path: Path) -> None:
    # Path("") is the current directory: `--out "$UNSET_VARIABLE"` must not write there.
    result = cli(*args, cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 64
    assert "argument --out: is empty" in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []


def test_role_takes_the_files_spelling_too() -> None:
    assert ok(cli("render", "--role", "queue_processor")) == ok(cli("render", "--role", "queue-processor"))
    assert ok(cli("render", "--role", "setup", "--format", "json")).startswith('{\n    "Job"')


def _subcommands() -> list[tuple[str, object]]:
    import argparse

    from matomo_nomad._cli import _parser

    found = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((f"{prefix}{name}", sub))
                    walk(sub, f"{prefix}{name} ")

    walk(_parser(), "")
    return found


def test_every_command_has_a_description() -> None:
    commands = _subcommands()
    assert {name for name, _ in commands} >= {
        "render", "validate", "schema", "image", "plan", "run", "status", "destroy",
        "secrets", "secrets init", "secrets check", "secrets import",
    }
    for name, parser in commands:
        assert getattr(parser, "description", None), f"`matomo-nomad {name} --help` has no description"


@pytest.mark.parametrize(("command", "words"), [(["schema"], "JSON Schema"), (["validate"], "Matomo-aware"),
                                                (["secrets"], "never printed")], ids=["schema", "validate", "secrets"])
def test_help_shows_the_description(command: list[str], words: str) -> None:
    text = ok(cli(*command, "--help"))
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: matomo-nomad {command[0]}")
    assert words in rest.split("\n\n")[0].replace("\n", " ")


def test_address_errors_name_the_flag_or_the_variable() -> None:
    from_flag = cli("status", "--address", "ftp://nomad:4646", NOMAD_ADDR="http://127.0.0.1:4646")
    assert from_flag.returncode == 11
    assert from_flag.stderr.decode().startswith("--address: 'ftp://nomad:4646' is not an http(s) address")
    assert b"NOMAD_ADDR" not in from_flag.stderr
    from_variable = cli("status", NOMAD_ADDR="ftp://nomad:4646")
    assert from_variable.returncode == 11
    assert from_variable.stderr.decode().startswith("NOMAD_ADDR: 'ftp://nomad:4646' is not an http(s) address")
    key_missing = cli("status", "--client-cert", "/x/cli.pem")
    assert key_missing.returncode == 11
    assert key_missing.stderr.decode().startswith("--client-cert is set without NOMAD_CLIENT_KEY")
    assert "--client-key" in key_missing.stderr.decode()


# --- how the CLI modules import each other -------------------------------------------------


def _cli_imports() -> dict[str, set[str]]:
    """For each matomo_nomad._cli* module, the _cli* modules it imports (anywhere in it)."""
    import ast

    package = REPO / "matomo_nomad"
    graph: dict[str, set[str]] = {}
    for path in package.glob("_cli*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [alias.name for alias in node.names]
                imported |= {n for n in names if n and n.startswith("_cli")}
        graph[path.stem] = imported
    return graph


def test_the_cli_modules_import_each_other_without_a_circle() -> None:
    graph = _cli_imports()
    assert {"_cli", "_cli_common", "_cli_cluster", "_cli_secrets"} <= set(graph)
    assert graph["_cli_common"] == set()
    for module in graph:
        if module != "_cli":
            assert "_cli" not in graph[module], f"{module} imports _cli"

    for start in graph:
        # Everything `start` imports, directly or through others, must not lead back to it.
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            assert module != start, f"{start} imports itself through others"
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, ()))


@pytest.mark.parametrize("args", [["--help"], ["render", "--bogus"], ["secrets", "init", "--help"]],
                         ids=["help", "usage-error", "secrets-help"])
def test_help_and_usage_errors_load_neither_pydantic_nor_the_model(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from matomo_nomad._cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'jinja2', 'requests')"
        " or m in ('matomo_nomad._model', 'matomo_nomad._loading'))\n"
        "sys.stderr.write(repr(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, timeout=60)
    assert result.stderr.decode().splitlines()[-1] == "[]"


# --- output errors: exit 4 --------------------------------------------------------------


def _listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_out_under_a_regular_file_exits_4(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("keep\n")
    out_dir = blocker / "jobs"
    result = cli("render", SEED, "--out", out_dir)
    no_traceback(result)
    assert result.returncode == 4
    assert result.stdout == b""
    assert result.stderr.decode() == f"{out_dir}: cannot create the output directory (Not a directory)\n"
    assert blocker.read_text() == "keep\n"
    assert _listing(tmp_path) == ["not-a-dir"]


def test_out_is_a_regular_file_exits_4(tmp_path: Path) -> None:
    blocker = tmp_path / "jobs"
    blocker.write_text("keep\n")
    result = cli("render", SEED, "--out", blocker)
    no_traceback(result)
    assert result.returncode == 4
    assert result.stdout == b""
    stderr = result.stderr.decode()
    assert stderr == f"{blocker}: exists and is not a directory (choose another --out)\n"
    assert blocker.read_text() == "keep\n"
    assert _listing(tmp_path) == ["jobs"]


def _collide(tmp_path: Path, name: str) -> Path:
    """An output directory where `name` is already taken by a non-empty directory."""
    out_dir = tmp_path / "out"
    (out_dir / name / "inside").mkdir(parents=True)
    return out_dir


def test_first_target_taken_by_a_directory_exits_4_and_writes_nothing(tmp_path: Path) -> None:
    out_dir = _collide(tmp_path, ALL_FILES[0])
    result = cli("render", SEED, "--out", out_dir)
    no_traceback(result)
    assert result.returncode == 4
    assert result.stdout == b""
    assert result.stderr.decode() == (
        f"{out_dir / ALL_FILES[0]}: is a directory (remove it or choose another --out)\n"
    )
    assert _listing(out_dir) == [ALL_FILES[0], f"{ALL_FILES[0]}/inside"]


def test_last_target_taken_by_a_directory_leaves_no_temp_files(tmp_path: Path) -> None:
    out_dir = _collide(tmp_path, ALL_FILES[-1])
    result = cli("render", SEED, "--out", out_dir)
    no_traceback(result)
    assert result.returncode == 4
    assert len(result.stderr.decode().splitlines()) == 1
    assert [name for name in _listing(out_dir) if name.startswith(".") or name.endswith(".tmp")] == []


def test_last_target_taken_by_a_directory_writes_nothing(tmp_path: Path) -> None:
    out_dir = _collide(tmp_path, ALL_FILES[-1])
    result = cli("render", SEED, "--out", out_dir)
    assert result.returncode == 4
    assert _listing(out_dir) == [ALL_FILES[-1], f"{ALL_FILES[-1]}/inside"]


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    ok(cli("render", SEED, "--out", tmp_path))
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {name: 0o666 & ~_umask() for name in ALL_FILES}


# --- determinism ---------------------------------------------------------------------


def test_rendering_is_byte_identical_across_runs(tmp_path: Path) -> None:
    first = cli("render", SEED, PYTHONHASHSEED="1")
    second = cli("render", SEED, PYTHONHASHSEED="2")
    ok(first)
    assert first.stdout == second.stdout

    a, b = tmp_path / "a", tmp_path / "b"
    ok(cli("render", SEED, "--out", a, PYTHONHASHSEED="3"))
    ok(cli("render", SEED, "--out", b, PYTHONHASHSEED="4"))
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir()) == sorted(ALL_FILES)
    for name in ALL_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


# --- a reader that goes away --------------------------------------------------------


def test_render_piped_into_head_exits_cleanly() -> None:
    # `matomo-nomad render | head -1`
    process = subprocess.Popen(
        [sys.executable, "-m", "matomo_nomad", "render"],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=120) == 0
    assert first == b"# ---- matomo-admin.nomad.hcl ----\n"
    assert stderr == b""


@pytest.mark.parametrize(
    "args",
    [["render"], ["render", "--format", "json"], ["render", "--role", "admin", "--format", "ini"], ["schema"], ["validate"]],
    ids=["hcl", "json", "ini", "schema", "validate"],
)
def test_closed_pipe_before_any_output_exits_cleanly(args: list[str]) -> None:
    # `matomo-nomad ... | true`: the reader is gone before the first write.
    process = subprocess.Popen(
        [sys.executable, "-m", "matomo_nomad", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=120) == 0
    assert stderr == b""

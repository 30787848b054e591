"""The built wheel and sdist work on their own, away from the source tree.

How, and why this way (everything must work offline: tests may not download):

* Build from a snapshot. The project (minus caches and build output) is copied to a
  temporary directory and built there with ``python -m build --no-isolation``: a
  no-isolation build writes ``build/`` and ``*.egg-info`` next to the sources, and the
  working tree is not ours to litter (others edit it while tests run). No isolation
  because an isolated build downloads setuptools. It therefore needs the build backend
  that ``[build-system] requires`` names to be installed in *this* interpreter; when it
  is not (build's own dependency check says what is missing), the test is skipped with
  that reason, or fails if ``MATOMO_NOMAD_REQUIRE_BUILD_TEST=1``.

* Install into a clean venv. ``python -m venv --without-pip`` makes a venv that does not
  see the system site-packages (``--system-site-packages`` would also expose whatever is
  installed there, including an editable install of this very project, so a broken wheel
  could pass). The wheel goes in with this interpreter's pip pointed at the venv
  (``pip --python VENV/bin/python install --no-index --no-deps``), so its console
  script's shebang is the venv's python.

* Dependencies without a network. pydantic, jinja2 and pyyaml cannot be downloaded, so
  they are taken from this interpreter, but *only* they: the closure of the wheel's own
  ``Requires-Dist`` (read from the built wheel, extras and markers evaluated) is
  resolved with importlib.metadata, each distribution's top-level files (from its
  RECORD, dist-info included) are symlinked into one directory, and a ``.pth`` file in
  the venv adds that directory. A dependency missing from the wheel's metadata then
  fails to import in the venv, and ``pip check`` there verifies the versions.

Then: ``import matomo_nomad`` resolves to the venv copy (run from an empty cwd);
``python -m matomo_nomad render`` and the ``matomo-nomad`` console script render the
four jobs, byte-for-byte as the source snapshot does; the wheel holds the templates,
examples and py.typed and nothing but the package; the sdist holds the templates too.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "matomo_nomad"
JOB_IDS = [
    "matomo-admin",
    "matomo-ingestion",
    "matomo-queue-processor",
    "matomo-archiver",
    "matomo-setup",
    "matomo-monitoring",  # the seed example's [monitoring.exporter]
]
TIMEOUT = 180

# Caches, build output and VCS data are not part of the project being built.
_IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".benchmarks",
    ".oracle-build",
    ".tox",
    ".nox",
)


def _run(
    argv: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None
) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        check=False,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited {done.returncode}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
        )
    return done.stdout


def _missing_build_requirements(source: Path) -> str | None:
    """Why this interpreter cannot build `source` without isolation, or None if it can."""
    if importlib.util.find_spec("build") is None:
        return "the 'build' package is not installed"
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools is not importable"
    from build import ProjectBuilder

    builder = ProjectBuilder(source, python_executable=sys.executable)
    with warnings.catch_warnings():
        # The backend's warnings about pyproject.toml are shown, never raised: they are
        # not this test's subject (the builds below print them to their own stderr).
        warnings.simplefilter("default")
        unmet = builder.check_dependencies("wheel") | builder.check_dependencies(
            "sdist"
        )
    if unmet:
        wanted = sorted(" <- ".join(reversed(chain)) for chain in unmet)
        return f"unmet build requirements for a --no-isolation build with {sys.executable}: {wanted}"
    return None


def _top_level(dist: importlib.metadata.Distribution) -> set[str]:
    files = dist.files
    if files is None:
        pytest.fail(
            f"{dist.metadata['Name']} has no RECORD: cannot tell which files are its own"
        )
    tops = set()
    for file in files:
        first = file.parts[0]
        if first not in ("..", "__pycache__") and not first.endswith(".pth"):
            tops.add(first)
    return tops


def _dependency_closure(requires: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions that `requires` needs, recursively, extras included."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [(Requirement(r), "") for r in requires]
    while pending:
        req, extra = pending.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(
                f"dependency {req} is not installed in {sys.executable}: cannot test offline"
            )
        if not req.specifier.contains(dist.version, prereleases=True):
            pytest.fail(f"installed {req.name} {dist.version} does not satisfy {req}")
        extras = set(req.extras)
        if name in found and not extras:
            continue
        found[name] = dist
        for sub in dist.requires or []:
            sub_req = Requirement(sub)
            for wanted in extras or {""}:
                pending.append((sub_req, wanted))
    return list(found.values())


@dataclass(frozen=True)
class Built:
    source: Path
    wheel: Path
    sdist: Path
    venv: Path
    env: dict[str, str]
    empty_cwd: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=_IGNORED)
    why_not = _missing_build_requirements(source)
    if why_not:
        if os.environ.get("MATOMO_NOMAD_REQUIRE_BUILD_TEST") == "1":
            pytest.fail(why_not)
        pytest.skip(why_not)

    dist = root / "dist"
    build_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for kind in ("--wheel", "--sdist"):
        _run([sys.executable, "-m", "build", kind, "--no-isolation", "--outdir", dist, source], cwd=root, env=build_env)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())

    # A clean venv: no pip, no system site-packages.
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    site_packages = Path(
        _run(
            [
                venv / "bin" / "python",
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            cwd=root,
        ).strip()
    )

    # The wheel's declared dependencies (and theirs), symlinked from this interpreter.
    with zipfile.ZipFile(wheels[0]) as wheel:
        metadata_name = next(
            n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")
        )
        metadata = wheel.read(metadata_name).decode("utf-8")
    requires = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert requires, "the wheel declares no dependencies"
    deps = root / "deps"
    deps.mkdir()
    for dependency in _dependency_closure(requires):
        for top in _top_level(dependency):
            target = Path(str(dependency.locate_file(top)))
            if target.exists() and not (deps / top).exists():
                (deps / top).symlink_to(target, target_is_directory=target.is_dir())
    (site_packages / "_matomo_nomad_offline_deps.pth").write_text(f"{deps}\n")

    empty_cwd = root / "cwd"
    empty_cwd.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv / "bin" / "python",
            "install",
            "--no-index",
            "--no-deps",
            "--no-cache-dir",
            wheels[0],
        ],
        cwd=empty_cwd,
        env=env,
    )
    _run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "check"],
        cwd=empty_cwd,
        env=env,
    )
    return Built(source, wheels[0], sdists[0], venv, env, empty_cwd)


def test_venv_is_clean(built: Built) -> None:
    paths = json.loads(
        _run(
            [built.python, "-c", "import json, sys; print(json.dumps(sys.path))"],
            cwd=built.empty_cwd,
            env=built.env,
        )
    )
    system_site = {
        str(Path(p).resolve()) for p in sys.path if p.endswith("site-packages")
    }
    for entry in filter(None, paths):
        resolved = Path(entry).resolve()
        assert str(resolved) not in system_site, (
            f"venv sees system site-packages: {entry}"
        )
        assert not resolved.is_relative_to(REPO), f"venv sees the source tree: {entry}"


def test_import_resolves_to_venv_copy(built: Built) -> None:
    out = _run(
        [
            built.python,
            "-c",
            "import matomo_nomad; print(matomo_nomad.__file__); print(matomo_nomad.__version__)",
        ],
        cwd=built.empty_cwd,
        env=built.env,
    )
    location, version = out.splitlines()
    location_path = Path(location).resolve()
    assert location_path.is_relative_to(built.venv.resolve()), location
    assert not location_path.is_relative_to(REPO) and not location_path.is_relative_to(
        built.source
    )
    assert built.wheel.name.startswith(f"{PACKAGE}-{version}-"), (
        built.wheel.name,
        version,
    )


def _job_ids(hcl: str) -> list[str]:
    return re.findall(r'^job "([^"]+)" \{$', hcl, flags=re.MULTILINE)


def _source_render(built: Built) -> str:
    # The snapshot's own CLI, from its directory, with this interpreter and its dependencies.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return _run([sys.executable, "-m", PACKAGE, "render"], cwd=built.source, env=env)


def test_python_m_render(built: Built) -> None:
    hcl = _run(
        [built.python, "-m", PACKAGE, "render"], cwd=built.empty_cwd, env=built.env
    )
    assert _job_ids(hcl) == JOB_IDS
    assert hcl == _source_render(built), (
        "installed package renders differently from its source"
    )


def test_installed_package_renders_from_compiled_templates(built: Built) -> None:
    # _compiled_templates/ ships and is fresh: no template is compiled from its .tpl
    # (unless they were compiled by another Jinja release: test_compiled_templates says so).
    header = (built.source / PACKAGE / "_compiled_templates" / "service_nomad.py").read_text().splitlines()[1]
    if f"jinja2 {importlib.metadata.version('jinja2')} " not in header:
        pytest.skip(f"compiled by another Jinja release: {header}")
    script = (
        "import jinja2\n"
        "def refuse(*args, **kwargs): raise SystemExit(f'compiled from its .tpl: {args[2]}')\n"
        "jinja2.Environment.compile = refuse\n"
        "from matomo_nomad import example_path, image_context, load_deployment, render\n"
        "deployment = load_deployment(example_path())\n"
        "render(deployment).files(); image_context(deployment); print('ok')\n"
    )
    assert _run([built.python, "-c", script], cwd=built.empty_cwd, env=built.env) == "ok\n"


def test_console_script(built: Built) -> None:
    script = built.venv / "bin" / "matomo-nomad"
    assert script.is_file() and os.access(script, os.X_OK), (
        f"no console script at {script}"
    )
    shebang = script.read_text().splitlines()[0]
    assert shebang == f"#!{built.python}", shebang
    hcl = _run([script, "render"], cwd=built.empty_cwd, env=built.env)
    assert _job_ids(hcl) == JOB_IDS
    assert hcl == _run(
        [built.python, "-m", PACKAGE, "render"], cwd=built.empty_cwd, env=built.env
    )
    version = _run([script, "--version"], cwd=built.empty_cwd, env=built.env)
    assert version.startswith("matomo-nomad "), version


def test_image_build_context(built: Built) -> None:
    # The image templates ship too: the installed package writes the same context.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    source = _run([sys.executable, "-m", PACKAGE, "image"], cwd=built.source, env=env)
    installed = _run([built.venv / "bin" / "matomo-nomad", "image"], cwd=built.empty_cwd, env=built.env)
    assert installed == source
    assert "# ---- Dockerfile ----\n" in installed and "\nFROM matomo:" in installed
    # The static PHP files ship too, byte for byte (package data, not templates).
    for name in ("plugin-state.php", "setup.php"):
        assert f"# ---- {name} ----\n" in installed
        assert (built.source / PACKAGE / "templates" / "image" / name).read_text() in installed


def test_yaml_deployment(built: Built) -> None:
    # pyyaml is imported only for YAML files: this is what proves the wheel declares it.
    (built.empty_cwd / "deploy.yaml").write_text(
        "name: shop\nhosts: [analytics.example.com]\n"
        "matomo: {image: 'registry.example.com/matomo:5.10.0-1'}\n"
        "database: {host: mysql.service.consul}\nredis: {host: redis.service.consul}\n"
    )
    out = _run(
        [built.venv / "bin" / "matomo-nomad", "render", "deploy.yaml"],
        cwd=built.empty_cwd,
        env=built.env,
    )
    assert _job_ids(out) == [j.replace("matomo-", "shop-", 1) for j in JOB_IDS if j != "matomo-monitoring"]


def test_wheel_contents(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(
            wheel.read(n).decode()
            for n in names
            if n.endswith(".dist-info/entry_points.txt")
        )
    package = built.source / PACKAGE
    for pattern in ("templates/*.tpl", "templates/image/*.tpl", "templates/image/*.php", "examples/*.toml", "py.typed", "*.py",
                    "_compiled_templates/*.py", "_compiled_templates/image/*.py"):
        expected = {
            f"{PACKAGE}/{p.relative_to(package).as_posix()}"
            for p in package.glob(pattern)
        }
        assert expected, f"the source has no {pattern}"
        assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert not [n for n in names if n.startswith("tests/")], "the wheel ships tests/"
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {PACKAGE}, sorted(tops)
    assert re.search(
        r"^matomo-nomad\s*=\s*matomo_nomad\._cli:main$",
        entry_points,
        flags=re.MULTILINE,
    ), entry_points


def test_sdist_contents(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = set(sdist.getnames())
    tops = {n.split("/", 1)[0] for n in names}
    assert len(tops) == 1, sorted(tops)
    (top,) = tops
    package = built.source / PACKAGE
    for pattern in ("templates/*.tpl", "templates/image/*.tpl", "templates/image/*.php", "examples/*.toml", "py.typed"):
        expected = {
            f"{top}/{PACKAGE}/{p.relative_to(package).as_posix()}"
            for p in package.glob(pattern)
        }
        assert expected, f"the source has no {pattern}"
        assert expected <= names, f"missing from the sdist: {sorted(expected - names)}"
    assert f"{top}/pyproject.toml" in names

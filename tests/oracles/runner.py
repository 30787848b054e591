"""Run the external oracles that check matomo-nomad's output.

Each oracle is the real consumer's own code, or the closest thing to it that
runs offline:

* ``hclcheck`` (Go, HCL v2 from Debian): parses a job file with
  ``hclsyntax.ParseConfig`` as Nomad does and compares it with
  ``hclwrite.Format``, which is all ``nomad fmt`` does.
* ``tmplexec`` (Go, standard library): renders a ``template`` block's data
  with Go's text/template and consul-template's function semantics, with
  ``nomadVar`` and ``secret`` stubbed from a dict.
* ``read_config.php`` (PHP): reads a ``config.ini.php`` the way Matomo does.

A missing toolchain raises :class:`RuntimeError` naming the Debian package to
install: the tests must fail, not skip, when an oracle cannot run, or a
broken machine would pass them all vacuously.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ORACLES_DIR: Path = Path(__file__).resolve().parent
READ_CONFIG_PHP: Path = ORACLES_DIR / "read_config.php"

#: Where Debian's golang-*-dev packages put their sources; the Go oracles are
#: built against it in GOPATH mode because no modules can be downloaded.
DEBIAN_GOPATH: Path = Path("/usr/share/gocode")
_HCL_SOURCES: Path = DEBIAN_GOPATH / "src/github.com/hashicorp/hcl/v2/hclwrite"

GO_ORACLES: tuple[str, ...] = ("hclcheck", "tmplexec")

_TIMEOUT_S: float = 120.0


def _find_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(
            "the Go oracles need the Go toolchain: `go` is not on PATH "
            "(apt-get install golang-go)"
        )
    return go


def _check_hcl_sources() -> None:
    if not _HCL_SOURCES.is_dir():
        raise RuntimeError(
            f"hclcheck needs the HCL v2 Go sources at {_HCL_SOURCES.parent} "
            "(apt-get install golang-github-hashicorp-hcl-v2-dev)"
        )


def _is_fresh(binary: Path, source_dir: Path) -> bool:
    """Whether ``binary`` was built after every Go file of ``source_dir`` last changed."""
    if not binary.is_file():
        return False
    built = binary.stat().st_mtime
    return all(src.stat().st_mtime < built for src in source_dir.glob("*.go"))


def _go_build(go: str, source_dir: Path, binary: Path, cache_dir: Path) -> None:
    env = dict(os.environ)
    env.update(
        {
            # GOPATH mode against Debian's sources: no go.mod, no module proxy.
            "GO111MODULE": "off",
            "GOPATH": str(DEBIAN_GOPATH),
            "GOFLAGS": "",
            # A build cache of our own, so that builds work with a read-only
            # or absent $HOME and later rebuilds are quick.
            "GOCACHE": str(cache_dir / "go-build-cache"),
        }
    )
    # Build to a temporary name and rename, so that concurrent test sessions
    # never run a half-written binary.
    tmp = binary.with_name(f".{binary.name}.{os.getpid()}.tmp")
    try:
        proc = subprocess.run(
            [go, "build", "-o", str(tmp), "."],
            cwd=source_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"building the {binary.name} oracle failed "
                f"(are golang-go and golang-github-hashicorp-hcl-v2-dev installed?):\n"
                f"{proc.stderr}{proc.stdout}"
            )
        os.replace(tmp, binary)
    finally:
        tmp.unlink(missing_ok=True)


def build_go_oracles(cache_dir: Path) -> dict[str, Path]:
    """Build ``hclcheck`` and ``tmplexec`` into ``cache_dir`` and return their paths.

    A binary newer than all of its Go sources is reused as it is.
    """
    go = _find_go()
    _check_hcl_sources()
    cache_dir = cache_dir.resolve()  # go insists on an absolute GOCACHE
    cache_dir.mkdir(parents=True, exist_ok=True)
    binaries: dict[str, Path] = {}
    for name in GO_ORACLES:
        source_dir = ORACLES_DIR / name
        binary = cache_dir / name
        if not _is_fresh(binary, source_dir):
            _go_build(go, source_dir, binary, cache_dir)
        binaries[name] = binary
    return binaries


def _run(
    args: list[str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        args,
        input=stdin,
        capture_output=True,
        timeout=_TIMEOUT_S,
        check=False,
    )


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stderr.decode("utf-8", errors="replace")


def hcl_check(binary: Path, path: Path) -> None:
    """Assert that ``path`` parses as Nomad HCL and is exactly what ``nomad fmt`` writes."""
    proc = _run([str(binary), "check", str(path)])
    if proc.returncode != 0:
        raise AssertionError(f"hclcheck rejected {path}:\n{_stderr(proc)}")


def hcl_dump(binary: Path, path: Path) -> dict[str, Any]:
    """The job file as HashiCorp's parser reads it: blocks, labels and attribute values.

    Attributes are evaluated with no variables or functions, so text that would still
    interpolate in Nomad (a live ``${...}`` or ``%{...}``) fails here.
    """
    proc = _run([str(binary), "dump", str(path)])
    if proc.returncode != 0:
        raise AssertionError(f"hclcheck could not evaluate {path}:\n{_stderr(proc)}")
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def hcl_fmt(binary: Path, text: str) -> str:
    """Return the canonical (``nomad fmt``) form of HCL ``text``; it must parse."""
    with tempfile.TemporaryDirectory(prefix="hclfmt-") as tmp:
        path = Path(tmp) / "input.nomad.hcl"
        path.write_bytes(text.encode("utf-8"))
        proc = _run([str(binary), "fmt", str(path)])
    if proc.returncode != 0:
        raise AssertionError(f"hclcheck fmt failed:\n{_stderr(proc)}")
    return proc.stdout.decode("utf-8")


def execute_template(binary: Path, template_text: str, secrets: dict[str, Any]) -> str:
    """Render a consul-template template with stubbed ``nomadVar``/``secret`` data.

    ``secrets`` is ``{"nomad": {PATH: {KEY: VALUE}}, "vault": {PATH: {KEY: VALUE}}}``;
    either part may be left out. Raises AssertionError on a parse or
    execution error (a missing key or an unknown path included).
    """
    with tempfile.TemporaryDirectory(prefix="tmplexec-") as tmp:
        stubs = Path(tmp) / "secrets.json"
        stubs.write_text(json.dumps(secrets), encoding="utf-8")
        proc = _run([str(binary), str(stubs)], stdin=template_text.encode("utf-8"))
    if proc.returncode != 0:
        raise AssertionError(f"template failed to render:\n{_stderr(proc)}")
    return proc.stdout.decode("utf-8")


def php_read_config(text: str) -> dict[str, Any]:
    """Return the settings Matomo reads from a ``config.ini.php`` with contents ``text``.

    Values keep Matomo's types: int, float, bool, None, str, and lists for
    ``key[] = ...``. Raises AssertionError when PHP cannot parse the file.
    """
    php = shutil.which("php")
    if php is None:
        raise RuntimeError(
            "the config.ini.php oracle needs PHP: `php` is not on PATH (apt-get install php-cli)"
        )
    with tempfile.TemporaryDirectory(prefix="readconfig-") as tmp:
        path = Path(tmp) / "config.ini.php"
        path.write_bytes(text.encode("utf-8"))
        # display_errors=stderr: a PHP fatal error would otherwise go to stdout.
        proc = _run(
            [php, "-d", "display_errors=stderr", str(READ_CONFIG_PHP), str(path)]
        )
    if proc.returncode != 0:
        raise AssertionError(
            f"Matomo cannot read this config.ini.php:\n{_stderr(proc)}"
        )
    settings: dict[str, Any] = json.loads(proc.stdout)
    return settings

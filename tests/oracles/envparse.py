"""The go-envparse oracle: an env file read as Nomad reads an `env = true` template.

Built like the other Go oracles (GOPATH mode against Debian's sources, no module
downloads), but on its own, so the HCL and template oracles do not depend on it. A
missing toolchain or library raises RuntimeError naming the Debian package: a test
must fail, not skip, when its oracle cannot run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .runner import DEBIAN_GOPATH, ORACLES_DIR, _find_go, _go_build, _is_fresh

_SOURCES: Path = DEBIAN_GOPATH / "src/github.com/hashicorp/go-envparse"


class EnvParseError(AssertionError):
    """go-envparse refused the file; the message is its own (what Nomad reports)."""


def build_envparse(cache_dir: Path) -> Path:
    """The `envparse` binary, built into `cache_dir` unless a fresh one is there."""
    go = _find_go()
    if not (_SOURCES / "envparse.go").is_file():
        raise RuntimeError(
            f"the envparse oracle needs go-envparse's Go sources at {_SOURCES} "
            "(apt-get install golang-github-hashicorp-go-envparse-dev)"
        )
    cache_dir = cache_dir.resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    source_dir = ORACLES_DIR / "envparse"
    binary = cache_dir / "envparse"
    if not _is_fresh(binary, source_dir):
        _go_build(go, source_dir, binary, cache_dir)
    return binary


def parse_env(binary: Path, text: str) -> dict[str, str]:
    """The variables Nomad would set from an env file with this text."""
    proc = subprocess.run([str(binary)], input=text.encode("utf-8"), capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise EnvParseError(proc.stderr.decode("utf-8", errors="replace").strip())
    result: dict[str, str] = json.loads(proc.stdout)
    return result

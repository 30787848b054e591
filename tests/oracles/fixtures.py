"""pytest fixtures for the external oracles (wired in by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .runner import build_go_oracles

#: Build output of the Go oracles; listed in .gitignore.
ORACLE_BUILD_DIR: Path = Path(__file__).resolve().parent.parent / ".oracle-build"


@pytest.fixture(scope="session")
def go_oracles() -> dict[str, Path]:
    """Paths of the built ``hclcheck`` and ``tmplexec`` binaries.

    Errors (and so fails every test using it) when Go or the HCL sources are
    missing: an oracle that cannot run must never let a test pass.
    """
    return build_go_oracles(ORACLE_BUILD_DIR)

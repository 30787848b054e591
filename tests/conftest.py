"""Shared pytest configuration for matomo-nomad's tests."""

import sys
from pathlib import Path

# Make `tests.oracles` importable however pytest is started (`pytest` as well
# as `python -m pytest`). Redundant once pyproject.toml sets
# [tool.pytest.ini_options] pythonpath = ["."].
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.oracles.fixtures import go_oracles  # noqa: F401  (session fixture)

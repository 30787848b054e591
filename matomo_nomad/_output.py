"""Writing rendered files: all of them or none.

Everything is rendered in memory before this stage runs. Files are first written
under temporary names beside their targets, then renamed into place, so a failure
part-way (disk full, permissions) leaves no half-written or partial set behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ._errors import OutputError


def write_files(files: Mapping[str, str], directory: Path) -> list[Path]:
    """Write `files` (name -> text) into `directory`, creating it; return the paths."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{directory}: cannot create the output directory ({error.strerror or error})") from None
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in files.items():
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            staged.append((temporary, directory / name))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        for temporary, target in staged:
            os.replace(temporary, target)
    except OSError as error:
        for temporary, _ in staged:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
        raise OutputError(
            f"{directory}: cannot write the rendered files ({error.strerror or error}); nothing was written"
        ) from None
    return [target for _, target in staged]



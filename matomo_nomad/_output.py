"""Writing rendered files: all of them or none.

Everything is rendered in memory before this stage runs. Each file is first written
under a temporary name beside its target, and only when all are written are they
renamed into place. What can stop a rename (a directory in the way) is checked before
the first one, so a failure leaves no half-written or partial set behind; the
temporary files are removed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ._errors import OutputError


def _file_mode() -> int:
    # mkstemp creates files 0600; rendered jobs are not secret, so honour the umask
    # as a plain open() would (0644 under the usual 022).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_files(files: Mapping[str, str], directory: Path) -> list[Path]:
    """Write `files` (name -> text) into `directory`, creating it; return the paths."""
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: exists and is not a directory (choose another --out)")
    for name in files:
        if (directory / name).is_dir():
            raise OutputError(f"{directory / name}: is a directory (remove it or choose another --out)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{directory}: cannot create the output directory ({error.strerror or error})") from None
    mode = _file_mode()
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in files.items():
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            staged.append((temporary, directory / name))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            os.chmod(temporary, mode)
        for temporary, target in staged:
            os.replace(temporary, target)
    except OSError as error:
        for temporary, _ in staged:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
        where = error.filename or directory
        raise OutputError(f"{where}: cannot write the rendered files ({error.strerror or error}); nothing was written") from None
    return [target for _, target in staged]

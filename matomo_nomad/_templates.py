"""The Jinja environment every template in the package is read with.

One set of delimiters everywhere: nomad-pack's `[[ ]]`, `[% %]`, `[# #]`, which none of
the target languages uses (HCL and consul-template use `{ }`; sh, make and Dockerfiles
use neither). Templates only lay out text: callers pass values already escaped, and
the filters for the target language.

Compiled templates. Jinja turns a template into Python the first time it is used, and
that costs more than rendering it: about 30 ms for the jobs' templates, in every
`matomo-nomad render`. `_compiled_templates/` holds that Python, one module per
template (`templates/image/Dockerfile.tpl` -> `_compiled_templates/image/Dockerfile.py`),
written by

    python -m matomo_nomad._templates

and read as the import system reads a module (from its .pyc, which pip writes at
install). The .tpl files stay the only thing to read and edit.

Each compiled module starts with a fingerprint of what it was compiled from: Jinja's
version, and a hash of the options below, the template's name and its text. A template
whose module is missing or carries another fingerprint is compiled from its .tpl, as
Jinja always does, so a stale module is never used (with another Jinja release, every
template is: correct, only slower); tests/test_compiled_templates.py fails until the
command is run again.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, MutableMapping
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import CodeType
from typing import Any

import jinja2

PACKAGE = Path(__file__).parent
COMPILED = PACKAGE / "_compiled_templates"

OPTIONS: dict[str, Any] = {
    "block_start_string": "[%",
    "block_end_string": "%]",
    "variable_start_string": "[[",
    "variable_end_string": "]]",
    "comment_start_string": "[#",
    "comment_end_string": "#]",
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": True,
    "undefined": jinja2.StrictUndefined,
    "autoescape": False,
    # Templates ship inside the package and do not change while it runs.
    "auto_reload": False,
}


def environment(folder: str, filters: dict[str, Callable[..., Any]]) -> jinja2.Environment:
    """An environment over `matomo_nomad/<folder>`; cache it at the call site."""
    env = jinja2.Environment(loader=_Loader(folder), **OPTIONS)
    env.filters.update(filters)
    return env


def fingerprint(name: str, source: str) -> str:
    """What a compiled template depends on: Jinja's version, and a hash of the options
    above, the template's name and its text."""
    options = ", ".join(f"{key}={value!r}" for key, value in sorted(OPTIONS.items()))
    digest = hashlib.sha256(f"{options}\n{name}\n{source}".encode("utf-8")).hexdigest()
    return f"jinja2 {jinja2.__version__} sha256 {digest}"


def compiled_path(folder: str, name: str) -> Path:
    """`templates/image/fetch.sh.tpl` -> `_compiled_templates/image/fetch_sh.py`."""
    relative = Path(folder).relative_to("templates") / name.removesuffix(".tpl").replace(".", "_")
    return COMPILED / relative.with_suffix(".py")


class _Loader(jinja2.PackageLoader):
    """Reads `matomo_nomad/<folder>`, and takes a template's compiled module when its
    fingerprint matches the .tpl (otherwise compiles the .tpl, as PackageLoader does)."""

    def __init__(self, folder: str) -> None:
        super().__init__("matomo_nomad", folder)
        self.folder = folder

    def load(
        self,
        environment: jinja2.Environment,
        name: str,
        globals: MutableMapping[str, Any] | None = None,
    ) -> jinja2.Template:
        source, filename, _ = self.get_source(environment, name)
        code = _fresh_code(compiled_path(self.folder, name), fingerprint(name, source))
        if code is None:
            return super().load(environment, name, globals)
        # What Template.from_code does, with the .tpl as the file tracebacks name.
        namespace: dict[str, Any] = {"environment": environment, "__file__": filename}
        exec(code, namespace)
        return environment.template_class.from_module_dict(environment, namespace, {} if globals is None else globals)


_HEADER = """\
# Compiled from matomo_nomad/{folder}/{name} by `python -m matomo_nomad._templates`: do not edit.
# Used only while this is the .tpl's fingerprint (see _templates.py): {fingerprint}
"""
_HEADER_LINES = _HEADER.count("\n")
_FINGERPRINT_RE = re.compile(r"\A#[^\n]*\n#[^\n]*: (jinja2 \S+ sha256 [0-9a-f]{64})\n")


def recorded_fingerprint(path: Path) -> str | None:
    """The fingerprint the compiled module at `path` was written with, if it is there."""
    try:
        with path.open(encoding="utf-8") as file:
            return fingerprint_in(file.readline() + file.readline())
    except OSError:
        return None


def fingerprint_in(text: str) -> str | None:
    """The fingerprint in a compiled module's text (its first two lines)."""
    found = _FINGERPRINT_RE.match(text)
    return found.group(1) if found else None


def _fresh_code(path: Path, wanted: str) -> CodeType | None:
    """The compiled module at `path` (through its .pyc), if its fingerprint is `wanted`."""
    if recorded_fingerprint(path) != wanted:
        return None
    module = ".".join(("matomo_nomad",) + path.relative_to(PACKAGE).with_suffix("").parts)
    return SourceFileLoader(module, str(path)).get_code(module)


def compiled_module(environment: jinja2.Environment, name: str) -> str:
    """The text of `name`'s compiled module: Jinja's Python for it, under the header."""
    loader = environment.loader
    assert isinstance(loader, _Loader)
    source, filename, _ = loader.get_source(environment, name)
    python = environment.compile(source, name, filename, raw=True)
    # The header moves Jinja's code down: its map from code lines to template lines
    # (what tracebacks show) moves with it.
    python = re.sub(
        r"^debug_info = '([0-9=&]*)'$",
        lambda m: "debug_info = " + repr(_shifted(m.group(1), _HEADER_LINES)),
        python,
        count=1,
        flags=re.MULTILINE,
    )
    header = _HEADER.format(folder=loader.folder, name=name, fingerprint=fingerprint(name, source))
    return header + python.rstrip("\n") + "\n"


def _shifted(debug_info: str, lines: int) -> str:
    pairs = (pair.split("=") for pair in debug_info.split("&") if pair)
    return "&".join(f"{template}={int(code) + lines}" for template, code in pairs)


def _environments() -> list[jinja2.Environment]:
    """Every environment the package renders with: compiling needs their filters."""
    from ._image import _environment as image_environment
    from ._render import _environment as job_environment

    return [job_environment(), image_environment()]


def compiled_files() -> dict[Path, str]:
    """Every file `_compiled_templates/` should hold, by path: a module per .tpl, and
    the packages' `__init__.py`."""
    files: dict[Path, str] = {}
    for env in _environments():
        loader = env.loader
        assert isinstance(loader, _Loader)
        for tpl in sorted((PACKAGE / loader.folder).glob("*.tpl")):
            path = compiled_path(loader.folder, tpl.name)
            assert path not in files, f"two templates compile to {path}"
            files[path] = compiled_module(env, tpl.name)
            for package in path.relative_to(COMPILED).parents:
                folder = Path("templates") / package
                files.setdefault(
                    COMPILED / package / "__init__.py",
                    f'"""matomo_nomad/{folder}/*.tpl compiled to Python by _templates.py: do not edit."""\n',
                )
    return dict(sorted(files.items()))


def existing_files() -> dict[Path, str]:
    """What `_compiled_templates/` holds now (caches aside)."""
    return {
        path: path.read_text(encoding="utf-8")
        for path in sorted(COMPILED.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def main() -> int:
    """Write `_compiled_templates/` from the .tpl files; remove what no .tpl needs."""
    wanted = compiled_files()
    existing = existing_files()
    for path, text in wanted.items():
        if existing.get(path) != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(PACKAGE.parent)}")
    for path in existing.keys() - wanted.keys():
        path.unlink()
        print(f"removed {path.relative_to(PACKAGE.parent)}")
    return 0


if __name__ == "__main__":
    # `python -m` runs this file as __main__, a second copy of the module: use the one
    # _render and _image build their environments with.
    from matomo_nomad._templates import main as _main

    sys.exit(_main())

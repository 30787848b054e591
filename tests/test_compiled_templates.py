"""The compiled templates (`_compiled_templates/`, see `_templates.py`): what
`python -m matomo_nomad._templates` writes from the .tpl files, used only while fresh."""

from __future__ import annotations

import difflib
import traceback
from pathlib import Path

import jinja2
import pytest

from matomo_nomad import _image, _render, _templates
from matomo_nomad._loading import example_path, load_deployment

REGENERATE = "run `python -m matomo_nomad._templates` (the .tpl files are the source)"


def _relative(path: Path) -> str:
    return str(path.relative_to(_templates.PACKAGE.parent))


def _other_jinja() -> str | None:
    """Why the compiled modules cannot be compared here: they were compiled by another
    Jinja release than this one (None when it is this one)."""
    recorded = {_templates.recorded_fingerprint(path) for path in _templates.compiled_files()}
    versions = {fingerprint.split()[1] for fingerprint in recorded if fingerprint}
    if versions and versions != {jinja2.__version__}:
        return (
            f"compiled by Jinja {', '.join(sorted(versions))}, this is {jinja2.__version__}: every template is "
            f"compiled from its .tpl at run time (correct, slower); {REGENERATE} with this Jinja to use them"
        )
    return None


def test_every_template_has_a_compiled_form_from_its_current_text() -> None:
    # Whatever the Jinja release: an edited .tpl, a new or a removed one fails here.
    wanted = _templates.compiled_files()
    existing = _templates.existing_files()
    missing = sorted(_relative(p) for p in wanted.keys() - existing.keys())
    extra = sorted(_relative(p) for p in existing.keys() - wanted.keys())
    assert not missing, f"no compiled form for {missing}: {REGENERATE}"
    assert not extra, f"{extra} compiled from no template: {REGENERATE}"

    def digest(fingerprint: str | None) -> str | None:  # without Jinja's version
        return fingerprint.split()[-1] if fingerprint else None

    stale = [
        _relative(path)
        for path, text in wanted.items()
        if path.name != "__init__.py"
        and digest(_templates.recorded_fingerprint(path)) != digest(_templates.fingerprint_in(text))
    ]
    assert not stale, f"compiled from another text of their .tpl (or other options): {stale}: {REGENERATE}"


def test_every_compiled_form_is_what_its_tpl_compiles_to() -> None:
    # Byte for byte, with the Jinja release that wrote them: a hand edit fails here.
    if reason := _other_jinja():
        pytest.skip(reason)
    for path, text in _templates.compiled_files().items():
        found = path.read_text(encoding="utf-8")
        if found != text:
            diff = "".join(
                difflib.unified_diff(found.splitlines(True), text.splitlines(True), _relative(path), "compiled now", n=1)
            )
            pytest.fail(f"{_relative(path)} differs from its .tpl compiled now: {REGENERATE}\n{diff[:3000]}")


def test_every_template_is_rendered_from_its_compiled_form(monkeypatch: pytest.MonkeyPatch) -> None:
    if reason := _other_jinja():
        pytest.skip(reason)

    # Fresh environments, as a new process has: nothing may be compiled from a .tpl.
    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"compiled from its .tpl: {args[2] if len(args) > 2 else args}")

    _render._environment.cache_clear()
    _image._environment.cache_clear()
    try:
        monkeypatch.setattr(jinja2.Environment, "compile", no_compiling)
        deployment = load_deployment(example_path())
        _render.render(deployment).files()
        _image.image_context(deployment)
        for env in _templates._environments():
            for tpl in (_templates.PACKAGE / env.loader.folder).glob("*.tpl"):  # type: ignore[union-attr]
                env.get_template(tpl.name)  # the includes too, even when a render skips one
    finally:
        _render._environment.cache_clear()
        _image._environment.cache_clear()


def test_a_stale_compiled_form_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # As after editing a .tpl and not running the command: the .tpl wins.
    read = _templates._Loader.get_source

    def edited(self: _templates._Loader, environment: jinja2.Environment, name: str) -> tuple[str, str, object]:
        source, filename, uptodate = read(self, environment, name)
        return source + "; edited\n", filename, uptodate

    monkeypatch.setattr(_templates._Loader, "get_source", edited)
    env = _templates.environment("templates", {})
    text = env.get_template("config.ini.php.tpl").render(
        encoder="", secrets_opening="", job_id="x", version="0", sections=[]
    )
    assert text.endswith("{{ end -}}\n; edited\n")


def test_a_fingerprint_covers_the_text_the_name_jinja_and_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    base = _templates.fingerprint("a.tpl", "x")
    assert _templates.fingerprint("a.tpl", "x") == base
    assert _templates.fingerprint("b.tpl", "x") != base
    assert _templates.fingerprint("a.tpl", "y") != base
    monkeypatch.setattr(jinja2, "__version__", "0.0.0")
    assert _templates.fingerprint("a.tpl", "x") != base
    monkeypatch.undo()
    monkeypatch.setitem(_templates.OPTIONS, "trim_blocks", False)
    assert _templates.fingerprint("a.tpl", "x") != base


def test_an_error_in_a_compiled_template_names_the_tpl_and_its_line() -> None:
    env = _templates.environment("templates", {})
    with pytest.raises(jinja2.UndefinedError) as raised:
        env.get_template("config.ini.php.tpl").render(encoder="", secrets_opening="", version="0", sections=[])
    last = traceback.extract_tb(raised.value.__traceback__)[-1]
    tpl = _templates.PACKAGE / "templates" / "config.ini.php.tpl"
    assert Path(last.filename) == tpl
    assert "[[ job_id ]]" in tpl.read_text(encoding="utf-8").splitlines()[last.lineno - 1]

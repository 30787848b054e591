"""Tests of the external oracles themselves.

The product tests trust hclcheck, tmplexec and read_config.php to say no when
something is wrong. These tests make sure each oracle both accepts what it
should and rejects what it should, so a broken oracle cannot make the product
tests pass vacuously.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.oracles import runner
from tests.oracles.runner import (
    execute_template,
    hcl_check,
    hcl_fmt,
    php_read_config,
)

# --------------------------------------------------------------------------
# hclcheck: Nomad's parser and `nomad fmt`
# --------------------------------------------------------------------------

CANONICAL_BLOCK = 'task "t" {\n  a   = 1\n  bbb = 2\n}\n'


def _write(tmp_path: Path, text: str, name: str = "job.nomad.hcl") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_hclcheck_accepts_canonical(
    go_oracles: dict[str, Path], tmp_path: Path
) -> None:
    hcl_check(go_oracles["hclcheck"], _write(tmp_path, CANONICAL_BLOCK))


def test_hclcheck_rejects_unaligned_equals(
    go_oracles: dict[str, Path], tmp_path: Path
) -> None:
    path = _write(tmp_path, 'task "t" {\n  a = 1\n  bbb = 2\n}\n')
    with pytest.raises(AssertionError) as err:
        hcl_check(go_oracles["hclcheck"], path)
    message = str(err.value)
    assert f"{path}: not in canonical format" in message
    # The diff names the line and shows both versions.
    assert "line 2:" in message
    assert 'have: "  a = 1"' in message
    assert 'want: "  a   = 1"' in message


def test_hclcheck_rejects_syntax_error(
    go_oracles: dict[str, Path], tmp_path: Path
) -> None:
    path = _write(tmp_path, 'job "x" {\n  type = "service\n}\n')
    with pytest.raises(AssertionError) as err:
        hcl_check(go_oracles["hclcheck"], path)
    assert f"{path}:2:" in str(err.value)


def test_hclcheck_rejects_duplicate_attribute(
    go_oracles: dict[str, Path], tmp_path: Path
) -> None:
    path = _write(tmp_path, "a {\n  x = 1\n  x = 2\n}\n")
    with pytest.raises(AssertionError, match="Attribute redefined"):
        hcl_check(go_oracles["hclcheck"], path)


def test_hclcheck_checks_every_file(
    go_oracles: dict[str, Path], tmp_path: Path
) -> None:
    good = _write(tmp_path, CANONICAL_BLOCK, "good.hcl")
    bad = _write(tmp_path, "a {\nx = 1\n}\n", "bad.hcl")
    with pytest.raises(AssertionError, match="bad.hcl: not in canonical format"):
        hcl_check(go_oracles["hclcheck"], bad)
    hcl_check(go_oracles["hclcheck"], good)


# The example from the renderer's design notes, as a person might type it,
# and the exact bytes `nomad fmt` turns it into. Pinned here so the Python
# renderer has a concrete target: `=` is aligned within each run of
# consecutive single-line attributes; a heredoc attribute is part of the run
# (its body and closing marker neither break it nor get re-indented), while
# a nested block, a blank line or a multi-line list/object ends it.
UNFORMATTED_JOB = """\
job "x" {
  type = "service"
  datacenters = ["dc1"]
  group "g" {
    count = 2
    task "t" {
      driver = "docker"
      config {
        image = "a:b"
        args = ["-c", "x"]
      }
      template {
        data = <<EOT
line with    spaces
  indented
EOT
        destination = "secrets/x"
        change_mode = "restart"
      }
      env {
        A = "1"
        LONGER_NAME = "2"
      }
    }
  }
}
"""

CANONICAL_JOB = """\
job "x" {
  type        = "service"
  datacenters = ["dc1"]
  group "g" {
    count = 2
    task "t" {
      driver = "docker"
      config {
        image = "a:b"
        args  = ["-c", "x"]
      }
      template {
        data        = <<EOT
line with    spaces
  indented
EOT
        destination = "secrets/x"
        change_mode = "restart"
      }
      env {
        A           = "1"
        LONGER_NAME = "2"
      }
    }
  }
}
"""


def test_hcl_fmt_canonical_job(go_oracles: dict[str, Path], tmp_path: Path) -> None:
    assert hcl_fmt(go_oracles["hclcheck"], UNFORMATTED_JOB) == CANONICAL_JOB
    hcl_check(go_oracles["hclcheck"], _write(tmp_path, CANONICAL_JOB))


@pytest.mark.parametrize(
    ("source", "canonical"),
    [
        # A heredoc line aligns with the attributes before and after it.
        (
            "a {\n  x = 1\n  data = <<EOT\nhi\nEOT\n  bbbbbbbb = 2\n}\n",
            "a {\n  x        = 1\n  data     = <<EOT\nhi\nEOT\n  bbbbbbbb = 2\n}\n",
        ),
        # A nested block ends the run: count and longer_name are not aligned.
        (
            'a {\n  count = 2\n  task "t" {\n    x = 1\n  }\n  longer_name = 3\n}\n',
            'a {\n  count = 2\n  task "t" {\n    x = 1\n  }\n  longer_name = 3\n}\n',
        ),
        # So does a blank line.
        (
            "a {\n  x = 1\n\n  yyyy = 2\n}\n",
            "a {\n  x = 1\n\n  yyyy = 2\n}\n",
        ),
        # A multi-line list is outside any run; its items are re-indented.
        (
            'a {\n  x = 1\n  longname = [\n  "a",\n  ]\n  y = 2\n  zzz = 3\n}\n',
            'a {\n  x = 1\n  longname = [\n    "a",\n  ]\n  y   = 2\n  zzz = 3\n}\n',
        ),
        # <<- heredocs: neither the body nor the closing marker is re-indented.
        (
            "a {\n    data = <<-EOT\n    body\n    EOT\n  x = 1\n}\n",
            "a {\n  data = <<-EOT\n    body\n    EOT\n  x    = 1\n}\n",
        ),
        # HCL interpolations inside a heredoc are normalised; Go template
        # actions are plain text to HCL and left alone.
        (
            "a {\n  data = <<EOT\n${ x } {{ .k.Value }}\nEOT\n}\n",
            "a {\n  data = <<EOT\n${x} {{ .k.Value }}\nEOT\n}\n",
        ),
    ],
)
def test_hcl_fmt_alignment_rules(
    go_oracles: dict[str, Path], source: str, canonical: str
) -> None:
    assert hcl_fmt(go_oracles["hclcheck"], source) == canonical


# --------------------------------------------------------------------------
# tmplexec: consul-template as run by Nomad
# --------------------------------------------------------------------------

SECRETS: dict[str, dict[str, dict[str, str]]] = {
    "nomad": {
        "p": {"k": "a&b<c"},
        "nomad/jobs/matomo-admin": {"database_password": "s3cr$t"},
    },
    "vault": {"kv/data/matomo": {"database_password": "v&ult"}},
}


def test_tmplexec_nomad_var_with_replace_all(go_oracles: dict[str, Path]) -> None:
    template = '{{ with nomadVar "p" }}{{ .k.Value | replaceAll "&" "&amp;" }}{{ end }}'
    assert execute_template(go_oracles["tmplexec"], template, SECRETS) == "a&amp;b<c"


def test_tmplexec_nomad_var_item_prints_its_value(go_oracles: dict[str, Path]) -> None:
    # NomadVarItem is a Stringer, so printing the item gives its value.
    template = '{{ with nomadVar "p" }}{{ .k }}{{ end }}'
    assert execute_template(go_oracles["tmplexec"], template, SECRETS) == "a&b<c"


def test_tmplexec_keeps_text_exactly(go_oracles: dict[str, Path]) -> None:
    template = 'x = "{{ with nomadVar "p" }}{{ .k.Value }}{{ end }}"\n\n  y\n'
    assert (
        execute_template(go_oracles["tmplexec"], template, SECRETS)
        == 'x = "a&b<c"\n\n  y\n'
    )


def test_tmplexec_fails_on_missing_key(go_oracles: dict[str, Path]) -> None:
    template = '{{ with nomadVar "p" }}{{ .missing.Value }}{{ end }}'
    with pytest.raises(AssertionError, match='map has no entry for key "missing"'):
        execute_template(go_oracles["tmplexec"], template, SECRETS)


def test_tmplexec_fails_on_unknown_path(go_oracles: dict[str, Path]) -> None:
    template = '{{ with nomadVar "nomad/jobs/nope" }}{{ .k.Value }}{{ end }}'
    with pytest.raises(AssertionError, match="nomad/jobs/nope"):
        execute_template(go_oracles["tmplexec"], template, SECRETS)


def test_tmplexec_fails_on_parse_error(go_oracles: dict[str, Path]) -> None:
    with pytest.raises(AssertionError, match="template"):
        execute_template(go_oracles["tmplexec"], '{{ with nomadVar "p" }}', SECRETS)


def test_tmplexec_literal_braces(go_oracles: dict[str, Path]) -> None:
    assert execute_template(go_oracles["tmplexec"], '{{ "{{" }} }}', SECRETS) == "{{ }}"


def test_tmplexec_vault_kv_v2_is_nested(go_oracles: dict[str, Path]) -> None:
    binary = go_oracles["tmplexec"]
    template = (
        '{{ with secret "kv/data/matomo" }}{{ .Data.data.database_password }}{{ end }}'
    )
    assert execute_template(binary, template, SECRETS) == "v&ult"
    # KV v2 keeps the pairs under .Data.data, so the KV v1 form must fail.
    flat = '{{ with secret "kv/data/matomo" }}{{ .Data.database_password }}{{ end }}'
    with pytest.raises(AssertionError, match="database_password"):
        execute_template(binary, flat, SECRETS)
    with pytest.raises(AssertionError, match="kv/data/other"):
        execute_template(binary, '{{ with secret "kv/data/other" }}x{{ end }}', SECRETS)


def test_tmplexec_replace_all_argument_order(go_oracles: dict[str, Path]) -> None:
    # consul-template: replaceAll OLD NEW S, so the piped string goes last.
    template = '{{ "a-b-c" | replaceAll "-" "+" }}'
    assert execute_template(go_oracles["tmplexec"], template, {}) == "a+b+c"


def test_tmplexec_env(
    go_oracles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPLEXEC_TEST_VAR", "hello")
    assert (
        execute_template(go_oracles["tmplexec"], '{{ env "TMPLEXEC_TEST_VAR" }}', {})
        == "hello"
    )


# --------------------------------------------------------------------------
# read_config.php: Matomo's config reader
# --------------------------------------------------------------------------

HEADER = "; <?php exit; ?> DO NOT REMOVE THIS LINE\n"


def test_php_decodes_entities_twice() -> None:
    config = php_read_config(
        HEADER
        + "[s]\n"
        + 'amp = "x&amp;amp;y"\n'  # the way to write a literal "&"
        + 'once = "x&amp;y"\n'  # decoded twice: "&amp;" -> "&" -> "&"
        + 'dollar = "&amp;#36;{HOME}"\n'  # "$" must be an entity, see below
        + 'lt = "&amp;lt;"\n'
        + 'thrice = "&amp;amp;amp;"\n'
    )
    assert config == {
        "s": {
            "amp": "x&y",
            "once": "x&y",
            "dollar": "${HOME}",
            "lt": "<",
            "thrice": "&amp;",
        }
    }


def test_php_interpolates_raw_dollar() -> None:
    # parse_ini_string expands ${VAR} in double quotes; hence Matomo's "&#36;".
    config = php_read_config('[s]\na = "${TMPLEXEC_SURELY_UNSET_VARIABLE}x"\n')
    assert config == {"s": {"a": "x"}}


def test_php_types() -> None:
    config = php_read_config(
        HEADER
        + "[database]\n"
        + "port = 3306\n"
        + 'quoted_number = "1"\n'
        + "ratio = 1.5\n"
        + "one_point_oh = 1.0\n"
        + "leading_zero = 007\n"
        + "bare_on = on\n"
        + 'quoted_on = "on"\n'
        + "bare_true = true\n"
        + "bare_off = off\n"
        + "bare_no = no\n"
        + "bare_null = null\n"
        + 'empty = ""\n'
        + 'text = "matomo"\n'
    )
    db = config["database"]
    assert db["port"] == 3306 and type(db["port"]) is int
    # The normal scanner drops the quotes, so "1" becomes an int as well.
    assert db["quoted_number"] == 1 and type(db["quoted_number"]) is int
    assert db["ratio"] == 1.5 and type(db["ratio"]) is float
    # Only numbers that print back as the same text become numbers.
    assert db["one_point_oh"] == "1.0"
    assert db["leading_zero"] == "007"
    assert db["bare_on"] is True
    assert db["quoted_on"] == "on"
    assert db["bare_true"] is True
    assert db["bare_off"] is False
    assert db["bare_no"] is False
    assert db["bare_null"] is None
    assert db["empty"] == ""
    assert db["text"] == "matomo"


def test_php_lists_and_empty_sections() -> None:
    config = php_read_config(
        HEADER
        + '[General]\ntrusted_hosts[] = "a.example"\ntrusted_hosts[] = "b.example:8080"\n[empty]\n'
    )
    assert config == {
        "General": {"trusted_hosts": ["a.example", "b.example:8080"]},
        "empty": {},
    }


def test_php_escaped_quote() -> None:
    assert php_read_config('[s]\na = "say \\"hi\\""\n') == {"s": {"a": 'say "hi"'}}


def test_php_rejects_syntax_error() -> None:
    with pytest.raises(AssertionError, match="syntax error"):
        php_read_config(HEADER + '[s]\na = "unterminated\nb = 2\n')


# --------------------------------------------------------------------------
# A missing toolchain is an error, never a skip
# --------------------------------------------------------------------------


def test_missing_go_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="golang-go"):
        runner.build_go_oracles(tmp_path / "build")


def test_missing_hcl_sources_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runner, "_HCL_SOURCES", tmp_path / "nowhere")
    with pytest.raises(RuntimeError, match="golang-github-hashicorp-hcl-v2-dev"):
        runner.build_go_oracles(tmp_path / "build")


def test_missing_php_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="php-cli"):
        php_read_config("[s]\n")

"""A secret can be any setting: `{ secret = "<key>" }` in `settings` (deployment-wide and
per role) and in a role's `env`, and a credential written as a literal is refused.

- config.ini.php: the reference becomes the same run-time read every built-in secret
  gets (consul-template, INI-encoded); Go's text/template runs it and PHP reads the
  result as Matomo does: the exact value;
- env: a Nomad template with `env = true`; Go's text/template renders it and
  hashicorp/go-envparse (Debian's golang-github-hashicorp-go-envparse-dev, v0.1.0, the
  version Nomad 1.9+ pins; earlier Nomads pin 310ca18, whose value parsing is the same)
  reads it back as Nomad does: the exact value, whatever characters it holds;
- the literal-credential rule runs over every key of two real global.ini.php files
  (5.1.2's key names in tests/fixtures/global-ini-keys-5.1.2.json, 5.2.0-b5's in
  matomo_nomad/_global_ini.py): only Matomo's own credentials are refused;
- `secrets init`, `check` and `run` know the keys, at the paths of the jobs that read them.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matomo_nomad import DeploymentError, Role, parse_deployment, render
from matomo_nomad._credentials import KNOWN_CREDENTIALS, is_credential
from matomo_nomad._envfile import DESTINATION, encode_value
from matomo_nomad._global_ini import KEY_ORDER
from matomo_nomad._model import json_schema
from matomo_nomad._roles import plan_roles
from matomo_nomad._secrets import expected_secrets
from tests.deployments import HOSTILE, _example
from tests.oracles.envparse import EnvParseError, build_envparse, parse_env
from tests.test_secrets import _cli
from tests.oracles.fixtures import ORACLE_BUILD_DIR
from tests.oracles.runner import execute_template, php_read_config

pytest_plugins = ("tests.fakenomad.fixtures",)

GLOBAL_INI_KEYS = Path(__file__).parent / "fixtures" / "global-ini-keys-5.1.2.json"
JOBS = ["matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver", "matomo-setup"]


@pytest.fixture(scope="session")
def envparse() -> Path:
    return build_envparse(ORACLE_BUILD_DIR)


def _seed(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(_example("seed.toml"))
    data.update(changes)
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(DeploymentError) as caught:
        parse_deployment(data)
    return [str(p) for p in caught.value.problems]


def _env_template(rendered: Any) -> dict[str, Any]:
    (template,) = [t for t in rendered.job["TaskGroups"][0]["Tasks"][0]["Templates"] if t.get("Envvars")]
    return template


# --- config.ini.php ----------------------------------------------------------------------


def test_a_setting_secret_reaches_matomo_exactly(go_oracles) -> None:
    value = 'smtp "p$ss" \\ &amp; ; \n' + HOSTILE
    data = _seed(settings={"mail": {"host": "smtp.example.org", "password": {"secret": "mail_password"}}})
    data["roles"]["archiver"]["settings"] = {"proxy": {"password": {"secret": "proxy_password"}}}
    deployment = parse_deployment(data)
    stores = {"nomad": {f"nomad/jobs/{job}": {"salt": "s" * 32, "database_password": "d", "redis_password": "r",
                                            "superuser_password": "u", "mail_password": value, "proxy_password": "x&y"}
                        for job in JOBS}}
    for rendered in render(deployment):
        assert value not in rendered.hcl and value not in rendered.api_json
        if not rendered.config_template:
            continue  # the monitoring job: no config.ini.php
        read = php_read_config(execute_template(go_oracles["tmplexec"], rendered.config_template, stores))
        assert read["mail"]["password"] == value
        assert ("proxy" in read) == (rendered.role is Role.archiver)
    assert read_keys(deployment) == {
        job.job_id: set(job.secret_keys) for job in plan_roles(deployment)
    }
    admin = next(job for job in plan_roles(deployment) if job.role is Role.admin)
    archiver = next(job for job in plan_roles(deployment) if job.role is Role.archiver)
    assert "mail_password" in admin.secret_keys and "proxy_password" not in admin.secret_keys
    assert {"mail_password", "proxy_password"} <= set(archiver.secret_keys)


def read_keys(deployment: Any) -> dict[str, set[str]]:
    return {job: set(location.keys) for location in expected_secrets(deployment) for job in location.jobs}


def test_vault_reads_a_setting_secret_from_the_secret(go_oracles) -> None:
    data = _seed(settings={"mail": {"password": {"secret": "mail_password"}}}, nomad_version="1.7.0")
    data["secrets"] = {"provider": "vault", "path": "kv/data/matomo", "vault_role": "matomo"}
    data["roles"]["admin"]["env"] = {"SMTP_PASSWORD": {"secret": "mail_password"}}
    deployment = parse_deployment(data)
    secrets = {"salt": "s" * 32, "database_password": "d", "redis_password": "r", "superuser_password": "u",
               "mail_password": 'v"\n'}
    admin = render(deployment)[Role.admin]
    read = php_read_config(execute_template(go_oracles["tmplexec"], admin.config_template, {"vault": {"kv/data/matomo": secrets}}))
    assert read["mail"]["password"] == 'v"\n'
    env = execute_template(go_oracles["tmplexec"], _env_template(admin)["EmbeddedTmpl"], {"vault": {"kv/data/matomo": secrets}})
    assert env == 'SMTP_PASSWORD="v\\"\\n"\n'
    (location,) = expected_secrets(deployment)
    assert "mail_password" in location.keys


# --- env ---------------------------------------------------------------------------------


def _env_deployment(values: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    data = _seed()
    data["roles"]["queue_processor"]["env"] = {
        "PLAIN": "kept in the job",
        **{f"V{i}": {"secret": f"value_{i}"} for i in range(len(values))},
    }
    deployment = parse_deployment(data)
    items = {"salt": "s" * 32, "database_password": "d", "redis_password": "r", "superuser_password": "u"}
    items.update({f"value_{i}": value for i, value in enumerate(values.values())})
    return deployment, {"nomad": {f"nomad/jobs/{job}": dict(items) for job in JOBS}}


def _nomad_env(go_oracles: Any, envparse: Path, values: dict[str, str]) -> dict[str, str]:
    """Render the role's env template, run it, and read it back as Nomad does."""
    deployment, stores = _env_deployment(values)
    rendered = render(deployment)[Role.queue_processor]
    template = _env_template(rendered)
    assert (template["DestPath"], template["ChangeMode"], template["ErrMissingKey"]) == (DESTINATION, "restart", True)
    task = rendered.job["TaskGroups"][0]["Tasks"][0]
    assert task["Env"] == {"PLAIN": "kept in the job"}, "a secret's name must not be in the job's env"
    for value in values.values():
        if len(value) > 3:
            assert value not in rendered.hcl and value not in rendered.api_json
    text = execute_template(go_oracles["tmplexec"], template["EmbeddedTmpl"], stores)
    parsed = parse_env(envparse, text)
    assert set(parsed) == {f"V{i}" for i in range(len(values))}, "the file sets exactly the secret variables"
    return {name: parsed[f"V{i}"] for i, name in enumerate(values)}


HARD_VALUES = {
    "hostile": HOSTILE,
    "every control character but NUL": "".join(chr(c) for c in range(1, 32)) + "\x7f",
    "quotes and backslashes": '"\'\\"\\\\\\n\\u0041\\',
    "leading and trailing spaces": "  spaced  ",
    "comment and equals": "# not a comment = x",
    "empty": "",
    "non-ASCII": "é漢🙂\u2028\u00a0\ufeff",
    "dollar and braces": "${HOME} $HOME %{x} {{ .y }}",
    "line breaks": "a\nb\r\nc\r",
}


def test_env_secrets_read_back_exactly_as_nomad_sets_them(go_oracles, envparse) -> None:
    assert _nomad_env(go_oracles, envparse, HARD_VALUES) == HARD_VALUES


def test_env_secrets_random_values_read_back_exactly(go_oracles, envparse) -> None:
    rng = random.Random(9)
    alphabet = [chr(c) for c in range(1, 128)] + list("é漢🙂\u2028\u00a0\ufeff\u0301")
    values = {f"r{i}": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for i in range(300)}
    assert _nomad_env(go_oracles, envparse, values) == values


@settings(max_examples=40, deadline=None)
@given(value=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30))
def test_the_python_encoding_is_what_envparse_reads_back(value: str) -> None:
    # The template's table, applied in Python (one process per example would be slow;
    # the tests above run the real template): decode by go-envparse's documented rules.
    encoded = encode_value(value)
    assert "\n" not in encoded and not any(ord(c) < 0x20 for c in encoded)
    assert json.loads(f'"{encoded}"') == value  # JSON's escapes, which go-envparse implements


def test_a_nul_in_an_env_secret_fails_loudly_instead_of_truncating(go_oracles, envparse) -> None:
    deployment, stores = _env_deployment({"nul": "before\x00after"})
    template = _env_template(render(deployment)[Role.queue_processor])
    text = execute_template(go_oracles["tmplexec"], template["EmbeddedTmpl"], stores)
    with pytest.raises(EnvParseError, match="0x00 is an invalid value character"):
        parse_env(envparse, text)


def test_a_secret_env_overrides_a_name_matomo_nomad_sets(go_oracles, envparse) -> None:
    data = _seed()
    data["roles"].setdefault("setup", {})["env"] = {"MATOMO_NOMAD_SITE_NAME": {"secret": "site_name"}}
    rendered = render(parse_deployment(data))[Role.setup]
    task = rendered.job["TaskGroups"][0]["Tasks"][0]
    assert "MATOMO_NOMAD_SITE_NAME" not in task["Env"] and "MATOMO_NOMAD_SUPERUSER_LOGIN" in task["Env"]
    stores = {"nomad": {"nomad/jobs/matomo-setup": {"site_name": "Site «1»"}}}
    assert parse_env(envparse, execute_template(go_oracles["tmplexec"], _env_template(rendered)["EmbeddedTmpl"], stores)) == {
        "MATOMO_NOMAD_SITE_NAME": "Site «1»"
    }


# --- what is refused -----------------------------------------------------------------------


def test_a_literal_credential_is_refused_with_the_fix() -> None:
    data = _seed(settings={"mail": {"password": "hunter2", "host": "smtp"}, "LoginLdap_corp": {"admin_pass": 1234}})
    data["roles"]["admin"]["settings"] = {"QueuedTrackingX": {"redisPassword": "x"}}
    data["roles"]["admin"]["env"] = {"SMTP_PASSWORD": "hunter2", "API_KEY": "k", "PHP_MEMORY_LIMIT": "512M", "X_TOKEN": ""}
    problems = _problems(data)
    assert problems == [
        'settings.mail.password: is a credential written as plain text (write it as { secret = "mail_password" } '
        "and store the value with matomo-nomad secrets init)",
        'settings.LoginLdap_corp.admin_pass: is a credential written as plain text (write it as { secret = '
        '"loginldap_corp_admin_pass" } and store the value with matomo-nomad secrets init)',
        'roles.admin.env.SMTP_PASSWORD: is a credential written as plain text (write it as { secret = "smtp_password" } '
        "and store the value with matomo-nomad secrets init)",
        'roles.admin.env.API_KEY: is a credential written as plain text (write it as { secret = "api_key" } '
        "and store the value with matomo-nomad secrets init)",
        'roles.admin.settings.QueuedTrackingX.redisPassword: is a credential written as plain text (write it as '
        '{ secret = "queuedtrackingx_redispassword" } and store the value with matomo-nomad secrets init)',
    ]
    assert not any("hunter2" in p for p in problems)


def test_malformed_references_are_refused() -> None:
    data = _seed(settings={"mail": {"password": {"secret": "1st"}, "a": {"secret": "k", "b": 1}, "l": [{"secret": "k"}]}})
    data["roles"]["admin"]["env"] = {"E": {"key": "k"}, "F": 5}
    problems = "\n".join(_problems(data))
    assert 'settings.mail.password: names the secret key "1st", which the templates cannot read' in problems
    assert 'settings.mail.a: is a table, and the only table a value can be is { secret = "<key>" }' in problems
    assert "settings.mail.l: is a list holding a table: a list item cannot be a secret" in problems
    assert 'roles.admin.env.E: is a table, and the only table a value can be is { secret = "<key>" }' in problems
    assert 'roles.admin.env.F: must be a string or { secret = "<key>" }' in problems


@pytest.mark.parametrize(
    "managed", ["salt", "database_password", "database_reader_password", "redis_password", "redis_cache_password",
                "superuser_password"]
)
def test_a_reference_to_a_managed_key_is_refused(managed: str) -> None:
    data = _seed(settings={"mail": {"password": {"secret": managed}}})
    data["roles"]["admin"]["env"] = {"SMTP": {"secret": managed}}
    field = next(name for name in ("salt_key", "database_password_key", "database_reader_password_key",
                                   "redis_password_key", "redis_cache_password_key", "superuser_password_key")
                 if name.removesuffix("_key") == managed)
    assert _problems(data) == [
        f'settings.mail.password: names the secret key "{managed}", which is secrets.{field} '
        '(name a key of its own, e.g. { secret = "mail_password" })',
        f'roles.admin.env.SMTP: names the secret key "{managed}", which is secrets.{field} '
        '(name a key of its own, e.g. { secret = "smtp" })',
    ]
    # Renamed managed keys are what counts: the default name is then free.
    data["secrets"] = {"salt_key": "matomo_salt", "database_password_key": "db_pw", "database_reader_password_key": "r_pw",
                       "redis_password_key": "q_pw", "redis_cache_password_key": "c_pw", "superuser_password_key": "su_pw"}
    parse_deployment(data)
    data["settings"]["mail"]["password"] = {"secret": "db_pw"}
    assert _problems(data)[0].startswith('settings.mail.password: names the secret key "db_pw", which is secrets.database_password_key')


def _global_ini_keys() -> list[tuple[str, str, str]]:
    fixture = json.loads(GLOBAL_INI_KEYS.read_text(encoding="utf-8"))
    keys = [("5.1.2", section, key) for section, names in fixture["sections"].items() for key in names]
    keys += [("5.2.0-b5", section, key) for section, names in KEY_ORDER.items() for key in names]
    return keys


def test_the_rule_refuses_only_matomo_s_own_credentials_in_a_real_global_ini() -> None:
    keys = _global_ini_keys()
    assert len(keys) > 600 and ("5.1.2", "General", "password_hash_algorithm") in keys
    flagged = {(section, key) for _, section, key in keys if is_credential(key)}
    assert flagged == {
        ("database", "password"), ("database_reader", "password"), ("database_tests", "password"),
        ("RedisCache", "password"), ("mail", "password"), ("proxy", "password"),
    }
    for name in ("password_hash_algorithm", "only_allow_secure_auth_tokens", "ssl_key", "enable_framed_allow_write_admin_token_auth",
                 "default_invite_user_token_expiry_days", "login_password_recovery_replyto_email_name", "campaign_keyword_var_name"):
        assert not is_credential(name), name


def test_every_non_credential_key_of_global_ini_is_accepted_as_a_literal() -> None:
    data = _seed()
    settings: dict[str, dict[str, Any]] = {}
    for _, section, key in _global_ini_keys():
        if not is_credential(key) and section not in ("database", "database_reader", "QueuedTracking", "RedisCache",
                                                      "Plugins", "PluginsInstalled"):
            settings.setdefault(section, {})[key] = "x"
    for section, values in settings.items():
        data["settings"] = {section: values}
        try:
            parse_deployment(data)
        except DeploymentError as error:
            assert all("cannot be set here" in str(p) for p in error.problems), error


def test_known_plugin_credentials_are_credentials() -> None:
    for section, key, _source in KNOWN_CREDENTIALS:
        assert is_credential(key), (section, key)
    for name in ("clientSecret", "apiKey", "secretKey", "secretAccessKey", "certificatePassphrase", "SMTP_PASS", "passwd"):
        assert is_credential(name), name


def test_the_json_schema_describes_secret_references() -> None:
    schema = json.dumps(json_schema())
    assert '"required": ["secret"]' in schema


# --- secrets init, check, run ----------------------------------------------------------------


def test_secrets_init_check_and_run_know_the_referenced_keys(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    data = _seed(settings={"mail": {"password": {"secret": "mail_password"}}})
    data["roles"]["admin"]["env"] = {"SMTP_TOKEN": {"secret": "smtp_token"}}
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps(data))
    for key, value in {"database": "d", "redis": "r", "superuser": "u", "mail": 'm"\n'}.items():
        monkeypatch.setenv(f"MATOMO_{key.upper()}_PASSWORD", value)
    code, out, err = _cli(fake_nomad, "secrets", "init", str(path), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 24 and "nomad/jobs/matomo-admin:" in out and "smtp_token MISSING" in out
    for job in JOBS:
        assert fake_nomad.variable(f"nomad/jobs/{job}")["Items"]["mail_password"] == 'm"\n'
    code, _, err = _cli(fake_nomad, "run", str(path), "--detach", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 24 and "nomad/jobs/matomo-admin:smtp_token" in err
    assert fake_nomad.requests_to(r"^/v1/jobs$", "POST") == []
    monkeypatch.setenv("MATOMO_SMTP_TOKEN", "t")
    assert _cli(fake_nomad, "secrets", "init", str(path), monkeypatch=monkeypatch, capsys=capsys)[0] == 0
    # Only the job that reads it gets it.
    assert "smtp_token" in fake_nomad.variable("nomad/jobs/matomo-admin")["Items"]
    assert "smtp_token" not in fake_nomad.variable("nomad/jobs/matomo-ingestion")["Items"]
    code, out, _ = _cli(fake_nomad, "secrets", "check", str(path), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "mail_password present" in out and "smtp_token present" in out
    assert 'm"' not in out

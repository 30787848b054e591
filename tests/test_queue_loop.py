"""The queue processor's loop, run by a real /bin/sh with stub `console` and `sleep`:
it pauses after every run (never a busy loop), pins its queue from NOMAD_ALLOC_INDEX,
and gives up after the configured number of failures in a row."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from matomo_nomad import Role, parse_deployment, render
from matomo_nomad._roles import CONSOLE
from tests.deployments import _example


def _loop(overrides: dict) -> tuple[str, list[str]]:
    data = _example("minimal.toml")
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

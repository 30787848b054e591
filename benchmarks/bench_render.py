#!/usr/bin/env python3
"""Render benchmarks for matomo-nomad: cold start, warm render, 1,000 deployments.

Run from anywhere:  python benchmarks/bench_render.py [--runs 15]

Every figure is measured in this one run and, where the machine's speed matters, given
as a ratio to a baseline timed interleaved with it, so a noisy or slow machine moves
both sides alike. Prints a summary with each figure's target and exits 1 if any target
is missed. This is a script, not a test: the test suite does not run it.

Figures
  cold      median wall time of the process `python -m matomo_nomad render` (built-in
            example, stdout to /dev/null) over the median of the pydantic "floor",
            `python -c` importing pydantic and jinja2 and building and using one
            trivial model (what any pydantic-validating CLI pays; `import pydantic`
            alone is lazy), runs interleaved. Target <= 1.25. The same for the
            installed `matomo-nomad` console script next to this python or on PATH,
            if there is one and it is a python script (not, say, a pyenv shim). Printed
            too, without a target: the ratio to `python -c "import pydantic, jinja2"`
            (the old baseline, target 1.5 until issue 9), and where the render's time
            goes (see "breakdown").
  startup   `python -m matomo_nomad --help` and a usage error (`render --bogus`, exit
            64) over `python -c pass`, interleaved with the above. Target <= 3: neither
            may import pydantic, Jinja or the model.
  breakdown where the cold render's time goes, from one more process, interleaved with
            the others, that runs the render step by step (STAGES): interpreter start,
            pydantic and jinja2 (the floor's work), our models (`import _model`: pydantic
            building the classes), our other modules, the templates (their compiled
            forms), the command itself (parser, reading and validating the example,
            rendering, writing), interpreter exit. The median of each step, in ms and
            as a share of the render's median; no target.
  warm      in-process median per call: `render(deployment)` with the example parsed
            once, and `parse_deployment(dict) + render`. Target < 5 ms each.
  bulk      1,000 distinct deployments (built deterministically from their index)
            validated with `parse_deployment` and rendered with `render`. Target < 5 s
            in total. Printed too, without a target: the same with `files()`, which
            also serialises each job's API JSON (as `render --out` does).

Every child process runs with bytecode caching on (PYTHONDONTWRITEBYTECODE dropped, the
.pyc files in a temporary PYTHONPYCACHEPREFIX, written by a warm-up run), as an
installed copy runs: pip compiles the .pyc files at install. Printed too (info): the
render without them, as a source checkout runs under PYTHONDONTWRITEBYTECODE=1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure the working tree, not an installed copy

COLD_RATIO_TARGET = 1.25  # render / floor
OLD_COLD_RATIO_TARGET = 1.5  # render / `import pydantic, jinja2`, until issue 9 (info)
STARTUP_RATIO_TARGET = 3.0  # --help, a usage error / `python -c pass`
WARM_MS_TARGET = 5.0
BULK_S_TARGET = 5.0
BULK_COUNT = 1000
EXIT_USAGE = 64
BASELINE = "import pydantic, jinja2"
FLOOR = "import pydantic, jinja2\nfrom pydantic import BaseModel\nclass M(BaseModel):\n    x: int = 0\nM(x=1)"

# `python -m matomo_nomad render` step by step. Prints the wall-clock time (time.time(),
# comparable with the parent's) after each step, the first when the interpreter has
# started and runs this script; the last step is the command itself, with everything
# it imports already imported, and ends as the command does (main() may set up how the
# process exits).
STAGES = """
import time
marks = [time.time()]
import pydantic, jinja2
from pydantic import BaseModel
class M(BaseModel):
    x: int = 0
M(x=1)
marks.append(time.time())
import matomo_nomad._model
marks.append(time.time())
import matomo_nomad._cli, matomo_nomad._loading, matomo_nomad._render
marks.append(time.time())
from matomo_nomad._templates import PACKAGE
env = matomo_nomad._render._environment()
for tpl in sorted((PACKAGE / "templates").glob("*.tpl")):
    env.get_template(tpl.name)
marks.append(time.time())
import contextlib, os
with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
    assert matomo_nomad._cli.main(["render"]) == 0
marks.append(time.time())
print(" ".join(repr(mark) for mark in marks))
"""
BREAKDOWN = [
    "interpreter start (until the first line runs)",
    "pydantic + jinja2 + one trivial model",
    "our models: import _model (pydantic builds them)",
    "our other modules: the CLI, reading, rendering",
    "templates: loading their compiled forms",
    "the command: parser, example read + validated, rendered, written",
    "interpreter exit",
]


# --- cold start ------------------------------------------------------------------------


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str]
    expect: int = 0  # exit code
    capture: bool = False  # keep stdout (the steps' marks), else /dev/null
    times: list[float] = field(default_factory=list)
    spans: list[tuple[float, float, bytes]] = field(default_factory=list)  # spawned, ended, stdout

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def _run_process(command: Command) -> tuple[float, float, float, bytes]:
    """Run `command`: its wall time in seconds, the time.time() it was spawned and ended
    at, its stdout (when it is captured; /dev/null otherwise)."""
    start = time.perf_counter()
    spawned = time.time()
    done = subprocess.run(
        command.argv,
        check=False,
        cwd=REPO,
        env=command.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if command.capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != command.expect:
        raise SystemExit(
            f"{' '.join(command.argv)} exited {done.returncode}, not {command.expect}: "
            f"{done.stderr.decode(errors='replace')}"
        )
    return elapsed, spawned, time.time(), done.stdout or b""


def child_env(pycache: str | None) -> dict[str, str]:
    """The environment of every child: this one, minus PYTHONPATH (`-m` from cwd=REPO
    finds the working tree; the baselines see the same path), with .pyc files written
    to and read from `pycache` (None: no .pyc files at all)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def cold(commands: dict[str, Command], runs: int) -> None:
    """Run every command `runs` times, round-robin (order reversed every other round)."""
    names = list(commands)
    for name in names:  # warm-up: page cache, .pyc files
        _run_process(commands[name])
    for i in range(runs):
        for name in names if i % 2 == 0 else reversed(names):
            command = commands[name]
            elapsed, spawned, ended, out = _run_process(command)
            command.times.append(elapsed)
            command.spans.append((spawned, ended, out))


def console_script(python: str) -> tuple[str, str] | None:
    """The installed `matomo-nomad` and the python its shebang runs: the one next to
    `python` (where pip puts it), else the first on PATH. None when there is none, or
    when it is not a python script (a pyenv shim is a shell script)."""
    for candidate in (str(Path(python).parent / "matomo-nomad"), shutil.which("matomo-nomad")):
        if candidate is None or not os.access(candidate, os.X_OK):
            continue
        try:
            first = Path(candidate).read_bytes().split(b"\n", 1)[0].decode()
        except (OSError, UnicodeDecodeError):
            continue
        words = first[2:].split() if first.startswith("#!") else []
        if words and Path(words[0]).name == "env":
            words = words[1:]
        interpreter = shutil.which(words[0]) if words else None
        if interpreter and Path(interpreter).name.startswith("python"):
            return candidate, interpreter
    return None


def breakdown(stages: Command) -> list[tuple[str, float]]:
    """Where the time of the process that runs STAGES goes: the median of each step, in
    ms, from its spawn to its exit."""
    steps: list[list[float]] = []
    for spawned, ended, out in stages.spans:
        marks = [spawned, *map(float, out.split()), ended]
        steps.append([(b - a) * 1000 for a, b in zip(marks, marks[1:])])
    assert len(steps[0]) == len(BREAKDOWN), (steps[0], BREAKDOWN)
    return [(label, statistics.median(s[i] for s in steps)) for i, label in enumerate(BREAKDOWN)]


# --- in-process ------------------------------------------------------------------------


def per_call_ms(
    fn: Callable[[], object], min_calls: int, min_seconds: float
) -> list[float]:
    for _ in range(10):
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + min_seconds
    while len(samples) < min_calls or time.perf_counter() < deadline:
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
_CRONS = ["5 * * * *", "*/15 * * * *", "0 2 * * *", "@hourly", "30 */2 * * 1-5"]


def deployment_dict(i: int) -> dict[str, Any]:
    """A valid deployment that differs from every other index in name, sizes and settings."""
    name = f"mt{i:04d}"
    dcs = [f"dc{j}" for j in range(1 + i % 3)]
    hosts = [f"a{i}.example.com"] + [f"h{j}.site{i}.example.org" for j in range(i % 4)]
    if i % 5 == 0:
        hosts.append(f"stats{i}.example.net:{8000 + i % 1000}")
    sentinel = i % 7 == 0
    redis: dict[str, Any] = (
        {
            "sentinel": {
                "master": f"master-{i}",
                "addresses": [f"s{j}.redis.local:26379" for j in range(1 + i % 3)],
            }
        }
        if sentinel
        else {
            "host": f"redis{i % 13}.service.consul",
            "port": 6379 + i % 5,
            "database": i % 16,
        }
    )
    redis["password"] = i % 2 == 0
    vault = i % 4 == 1
    data: dict[str, Any] = {
        "name": name,
        "datacenters": dcs,
        "region": f"r{i % 5}",
        "namespace": "default" if i % 3 else f"ns-{i % 11}",
        "priority": 1 + i % 100,
        # Vault workload identity (vault_role) needs Nomad 1.7
        "nomad_version": "1.7.0" if vault else "1.6.0",
        "hosts": hosts,
        "matomo": {
            "version": f"5.{i % 11}.{i % 7}",
            "image": f"registry.example.com/matomo:5.{i % 11}.{i % 7}-{i}",
        },
        "proxy": {
            "ips": [f"10.{i % 256}.0.0/16"] + ([f"192.0.2.{i % 250}"] if i % 2 else []),
            "force_ssl": i % 6 != 0,
        },
        "database": {
            "host": f"db{i % 9}.service.consul",
            "port": 3306 + i % 3,
            "name": f"matomo_{i}",
            "user": f"user{i}",
            "table_prefix": f"m{i}_",
            "tls": {
                "enabled": i % 3 == 0,
                "ca": "/etc/ssl/ca.pem" if i % 3 == 0 else None,
            },
        },
        "redis": redis,
        "plugins": [{"name": "QueuedTracking", "version": "5.2.0"}]
        + ([{"name": "SecurityInfo", "version": "5.0.0"}] if i % 2 else [])
        + ([{"name": f"Custom{i}", "version": f"5.{i % 10}.0"}] if i % 3 == 0 else []),
        "secrets": {
            "provider": "vault",
            "path": f"kv/data/matomo{i}",
            "vault_role": f"role-{i % 4}",
        }
        if vault
        else {
            "provider": "nomad",
            **({"path": f"nomad/jobs/m{i}"} if i % 4 == 2 else {}),
        },
        "settings": {
            "General": {
                "login_password_recovery_email_address": f"admin{i}@example.com",
                "archiving_range_force_on_browser_request": i % 2,
            },
            **(
                {
                    "Tracker": {
                        "ignore_visits_cookie_name": f"skip_{i}",
                        "cookie_expire": 3600 * (1 + i % 48),
                    }
                }
                if i % 2
                else {}
            ),
        },
        "roles": {
            "admin": {
                "count": i % 3,
                "cpu": 200 + i % 800,
                "memory": 256 + i % 512,
                "env": {"PHP_MEMORY_LIMIT": f"{256 + i % 4 * 128}M"},
            },
            "ingestion": {
                "count": 1 + i % 20,
                "cpu": 500 + 10 * (i % 100),
                "memory": 512,
                "memory_max": 512 + 64 * (i % 9),
                "service": {
                    "tags": [
                        f"traefik.http.routers.m{i}.rule=Host(`a{i}.example.com`)"
                    ],
                    "provider": "consul" if i % 2 else "nomad",
                },
                "update": {
                    "max_parallel": 1 + i % 4,
                    "canary": i % 3,
                    "auto_promote": i % 3 != 0,
                },
                "settings": {"Tracker": {"bulk_requests_use_transaction": i % 2}},
            },
            "queue_processor": {
                "count": 1 + i % 32,
                "sleep": f"{1 + i % 30}s",
                "pin_queues": i % 4 != 3,
                "requests_per_batch": 10 + i % 90,
            },
            "archiver": {
                "cpu": 1000 + i % 1000,
                "memory": 1024 + 8 * (i % 128),
                "kill_timeout": f"{1 + i % 10}m",
                "schedule": {
                    "cron": _CRONS[i % len(_CRONS)],
                    "time_zone": _ZONES[i % len(_ZONES)],
                    "prohibit_overlap": i % 5 != 0,
                },
                "archive": {
                    "concurrent_requests_per_website": 1 + i % 4,
                    "force_idsites": list(range(1, 1 + i % 4)),
                    "extra_args": [f"--php-cli-options=-dmemory_limit={1 + i % 4}G"]
                    if i % 2
                    else [],
                },
                "env": {"ARCHIVE_RUN": str(i)},
                "constraints": [{"attribute": "${meta.tier}", "value": f"tier{i % 3}"}],
            },
        },
    }
    if i % 6 == 3:
        data["database"]["reader"] = {
            "host": f"replica{i % 4}.service.consul",
            "user": f"ro{i}",
        }
    if i % 8 == 5 and not sentinel:
        data["redis_cache"] = {
            "host": f"cache{i % 3}.service.consul",
            "database": 16 + i % 200,
        }
    return data


# --- report ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=15, help="cold-start runs per command (default 15)"
    )
    parser.add_argument(
        "--warm-seconds",
        type=float,
        default=2.0,
        help="minimum seconds per warm figure",
    )
    parser.add_argument(
        "--count", type=int, default=BULK_COUNT, help="deployments in the bulk figure"
    )
    parser.add_argument(
        "--cold-only", action="store_true", help="only the cold-start figures (no warm, no bulk)"
    )
    args = parser.parse_args()

    python = sys.executable
    print(
        f"python: {python} {sys.version.split()[0]}; cores: {os.cpu_count()}; repo: {REPO}"
    )
    results: list[tuple[str, str, str, bool]] = []  # figure, value, target, passed

    # Cold start: every process interleaved with the others, .pyc files as installed.
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache:
        env = child_env(pycache)
        commands = {
            "render": Command([python, "-m", "matomo_nomad", "render"], env),
            "floor": Command([python, "-c", FLOOR], env),
            "baseline (info)": Command([python, "-c", BASELINE], env),
            "floor, timed exit (info)": Command(
                [python, "-c", FLOOR + "\nimport time\nprint(repr(time.time()))"], env, capture=True
            ),
            "pass": Command([python, "-c", "pass"], env),
            "--help": Command([python, "-m", "matomo_nomad", "--help"], env),
            "usage error": Command([python, "-m", "matomo_nomad", "render", "--bogus"], env, EXIT_USAGE),
            "stages": Command([python, "-c", STAGES], env, capture=True),
            "render, no .pyc (info)": Command([python, "-m", "matomo_nomad", "render"], child_env(None)),
        }
        found = console_script(python)
        script = None
        if found:
            script, script_python = found
            commands["script"] = Command([script, "render"], env)
            if os.path.realpath(script_python) != os.path.realpath(python):
                commands["script floor"] = Command([script_python, "-c", FLOOR], env)
        print(
            f"\ncold start: {args.runs} interleaved runs each (+1 warm-up), cwd={REPO}, "
            ".pyc files in a temporary PYTHONPYCACHEPREFIX"
        )
        cold(commands, args.runs)

    for name, command in commands.items():
        values = sorted(command.times)
        shown = " ".join(command.argv).replace(STAGES, "STAGES").replace(FLOOR, "FLOOR")
        print(
            f"  {name:22} median {command.median * 1000:7.1f} ms  (min {values[0] * 1000:.1f}, "
            f"max {values[-1] * 1000:.1f})  {shown}"
        )

    def ratio(name: str, base: str) -> float:
        return commands[name].median / commands[base].median

    def ms(name: str) -> str:
        return f"{commands[name].median * 1000:.0f}"

    render_floor = ratio("render", "floor")
    print(
        f"  ratio render / floor = {render_floor:.2f}; (info) render / baseline = "
        f"{ratio('render', 'baseline (info)'):.2f} (the target was {OLD_COLD_RATIO_TARGET} until issue 9), "
        f"floor / baseline = {ratio('floor', 'baseline (info)'):.2f}, render without .pyc / floor = "
        f"{ratio('render, no .pyc (info)', 'floor'):.2f}"
    )
    results.append(
        (
            "cold: python -m matomo_nomad render / pydantic floor",
            f"{render_floor:.2f}x ({ms('render')} / {ms('floor')} ms)",
            f"<= {COLD_RATIO_TARGET}",
            render_floor <= COLD_RATIO_TARGET,
        )
    )
    if script:
        base = "script floor" if "script floor" in commands else "floor"
        script_ratio = ratio("script", base)
        print(f"  ratio console script / floor = {script_ratio:.2f}  ({script})")
        results.append(
            (
                "cold: matomo-nomad render (console script) / floor",
                f"{script_ratio:.2f}x ({ms('script')} / {ms(base)} ms)",
                f"<= {COLD_RATIO_TARGET}",
                script_ratio <= COLD_RATIO_TARGET,
            )
        )
    else:
        print("  console script matomo-nomad: none next to this python or on PATH (not installed), skipped")
    for name, figure in (("--help", "--help"), ("usage error", "a usage error (render --bogus)")):
        startup = ratio(name, "pass")
        print(f"  ratio {name} / python -c pass = {startup:.2f}")
        results.append(
            (
                f"startup: matomo-nomad {figure} / python -c pass",
                f"{startup:.2f}x ({ms(name)} / {ms('pass')} ms)",
                f"<= {STARTUP_RATIO_TARGET:g}",
                startup <= STARTUP_RATIO_TARGET,
            )
        )

    total = commands["render"].median * 1000
    floor = commands["floor"].median * 1000
    print(
        f"\nwhere the cold render's {total:.0f} ms go: the median of each step in the process "
        "that runs them one by one (STAGES), as a share of the render's median:"
    )
    rows = breakdown(commands["stages"])
    floor_exit = statistics.median(
        (ended - float(out)) * 1000 for _, ended, out in commands["floor, timed exit (info)"].spans
    )
    for label, value in rows:
        print(f"  {label:66} {value:6.1f} ms  {value / total:6.1%}")
    steps = sum(value for _, value in rows)
    print(
        f"  {'sum of the steps':66} {steps:6.1f} ms  {steps / total:6.1%}\n"
        f"  (info) the floor's own exit takes {floor_exit:.1f} ms (the median over its runs): its interpreter "
        "collects what pydantic built, which matomo-nomad leaves to the OS (gc.freeze at exit)\n"
        f"  the target ({COLD_RATIO_TARGET} x the floor, {floor:.0f} ms) allows {floor * COLD_RATIO_TARGET:.0f} ms: "
        f"{floor * (COLD_RATIO_TARGET - 1):.0f} ms above the floor; the render takes {total - floor:.0f} ms above it"
    )

    if args.cold_only:
        return summary(results)

    # Warm, in-process (imports happen here, outside every timed call).
    import matomo_nomad
    from matomo_nomad import example_path, parse_deployment, render
    from matomo_nomad._model import MATOMO_ROLES

    print(f"\nwarm, in-process: matomo_nomad from {Path(matomo_nomad.__file__).parent}")
    data = tomllib.loads(example_path().read_text(encoding="utf-8"))
    deployment = parse_deployment(data)
    assert len(list(render(deployment))) == len(MATOMO_ROLES) + 1  # the seed's monitoring job too
    warm = {
        "render(deployment)": per_call_ms(
            lambda: render(deployment), 200, args.warm_seconds
        ),
        "parse_deployment(dict) + render": per_call_ms(
            lambda: render(parse_deployment(data)), 200, args.warm_seconds
        ),
    }
    files = per_call_ms(lambda: render(deployment).files(), 200, args.warm_seconds / 2)
    for label, samples in warm.items():
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(
            f"  {label:34} median {median:6.3f} ms  p90 {p90:6.3f} ms  ({len(samples)} calls)"
        )
        results.append(
            (
                f"warm: {label}",
                f"{median:.3f} ms",
                f"< {WARM_MS_TARGET:g} ms",
                median < WARM_MS_TARGET,
            )
        )
    print(
        f"  {'(info) render(deployment).files()':34} median {statistics.median(files):6.3f} ms"
        "  (adds API JSON serialisation)"
    )

    # Bulk: distinct deployments, validated and rendered (the target), then the same
    # with every artifact serialised, as `render --out` writes them (info).
    dicts = [
        deployment_dict(i) for i in range(args.count)
    ]  # building the input is not timed
    start = time.perf_counter()
    renderings = [render(parse_deployment(item)) for item in dicts]
    bulk = time.perf_counter() - start
    start = time.perf_counter()
    for item in dicts:
        render(parse_deployment(item)).files()
    bulk_files = time.perf_counter() - start
    digests = {hash(tuple(r.files().values())) for r in renderings}
    # The Matomo jobs only: these deployments have no [monitoring.exporter].
    assert all(len(list(r)) == len(MATOMO_ROLES) for r in renderings)
    assert len(digests) == args.count, f"only {len(digests)} distinct renderings"
    print(
        f"\nbulk: {args.count} distinct deployments, parse_deployment + render: {bulk:.2f} s "
        f"({bulk / args.count * 1000:.2f} ms each)"
    )
    print(
        f"  (info) the same + files() (API JSON serialised too): {bulk_files:.2f} s "
        f"({bulk_files / args.count * 1000:.2f} ms each)"
    )
    results.append(
        (
            f"bulk: {args.count} deployments validated + rendered",
            f"{bulk:.2f} s",
            f"< {BULK_S_TARGET:g} s",
            bulk < BULK_S_TARGET,
        )
    )

    return summary(results)


def summary(results: list[tuple[str, str, str, bool]]) -> int:
    print("\n==== summary " + "=" * 66)
    for figure, value, target, passed in results:
        print(
            f"{'PASS' if passed else 'FAIL'}  {figure:62} {value:>24}  target {target}"
        )
    failed = [r for r in results if not r[3]]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0

if __name__ == "__main__":
    raise SystemExit(main())

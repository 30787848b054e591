#!/usr/bin/env python3
"""Render benchmarks for matomo-nomad: cold start, warm render, 1,000 deployments.

Run from anywhere:  python benchmarks/bench_render.py [--runs 15]

Every figure is measured in this one run and, where the machine's speed matters, given
as a ratio to a baseline timed interleaved with it, so a noisy or slow machine moves
both sides alike. Prints a summary with each figure's target and exits 1 if any target
is missed. This is a script, not a test: the test suite does not run it.

Figures
  cold      median wall time of the process `python -m matomo_nomad render` (built-in
            example, stdout to /dev/null) over the median of `python -c "import
            pydantic, jinja2"`, runs interleaved. Target <= 1.5. The same for the
            installed `matomo-nomad` console script, if there is one on PATH.
            Printed too, without a target: a "floor", the baseline plus one trivial
            pydantic model (`import pydantic` is lazy: the baseline has not yet loaded
            the model machinery that any pydantic-validating CLI pays for).
  warm      in-process median per call: `render(deployment)` with the example parsed
            once, and `parse_deployment(dict) + render`. Target < 5 ms each.
  bulk      1,000 distinct deployments (built deterministically from their index)
            validated with `parse_deployment` and rendered with `render`. Target < 5 s
            in total. Printed too, without a target: the same with `files()`, which
            also serialises each job's API JSON (as `render --out` does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure the working tree, not an installed copy

COLD_RATIO_TARGET = 1.5
WARM_MS_TARGET = 5.0
BULK_S_TARGET = 5.0
BULK_COUNT = 1000
FLOOR = "import pydantic, jinja2\nfrom pydantic import BaseModel\nclass M(BaseModel):\n    x: int = 0\nM(x=1)"


# --- cold start ------------------------------------------------------------------------


def _time_process(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        argv,
        check=False,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
        )
    return elapsed


def cold(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Run every command `runs` times, round-robin (order reversed every other round)."""
    env = dict(os.environ)
    env.pop(
        "PYTHONPATH", None
    )  # `-m` from cwd=REPO finds the working tree; baseline sees the same path
    names = list(commands)
    for name in names:  # warm-up: page cache, .pyc files
        _time_process(commands[name], env)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs):
        for name in names if i % 2 == 0 else reversed(names):
            times[name].append(_time_process(commands[name], env))
    return times


def _shebang_python(script: str) -> str | None:
    try:
        first = Path(script).read_bytes().split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith("#!"):
        return None
    interpreter = first[2:].strip().split()[0]
    return interpreter if os.access(interpreter, os.X_OK) else None


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
        + ([{"name": f"Custom{i}", "version": f"1.{i % 10}.0"}] if i % 3 == 0 else []),
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
    args = parser.parse_args()

    python = sys.executable
    print(
        f"python: {python} {sys.version.split()[0]}; cores: {os.cpu_count()}; repo: {REPO}"
    )
    results: list[tuple[str, str, str, bool]] = []  # figure, value, target, passed

    # Cold start.
    commands = {
        "render": [python, "-m", "matomo_nomad", "render"],
        "baseline": [python, "-c", "import pydantic, jinja2"],
        # Not a target: `import pydantic` is lazy, so the baseline above has not loaded
        # pydantic's model machinery yet. This is what any one-model pydantic CLI pays.
        "floor (info)": [python, "-c", FLOOR],
    }
    script = shutil.which("matomo-nomad")
    script_python = _shebang_python(script) if script else None
    if script:
        commands["script"] = [script, "render"]
        if script_python and os.path.realpath(script_python) != os.path.realpath(
            python
        ):
            commands["script-baseline"] = [
                script_python,
                "-c",
                "import pydantic, jinja2",
            ]
    print(f"\ncold start: {args.runs} interleaved runs each (+1 warm-up), cwd={REPO}")
    times = cold(commands, args.runs)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, argv in commands.items():
        values = sorted(times[name])
        print(
            f"  {name:16} median {medians[name] * 1000:7.1f} ms  (min {values[0] * 1000:.1f}, "
            f"max {values[-1] * 1000:.1f})  {' '.join(argv)!r}"
        )
    ratio = medians["render"] / medians["baseline"]
    print(
        f"  ratio render / baseline = {ratio:.2f}; (info) floor / baseline = "
        f"{medians['floor (info)'] / medians['baseline']:.2f}, render / floor = "
        f"{medians['render'] / medians['floor (info)']:.2f}"
    )
    results.append(
        (
            "cold: python -m matomo_nomad render / import pydantic, jinja2",
            f"{ratio:.2f}x ({medians['render'] * 1000:.0f} / {medians['baseline'] * 1000:.0f} ms)",
            f"<= {COLD_RATIO_TARGET}",
            ratio <= COLD_RATIO_TARGET,
        )
    )
    if script:
        base = medians.get("script-baseline", medians["baseline"])
        script_ratio = medians["script"] / base
        print(f"  ratio console script / baseline = {script_ratio:.2f}  ({script})")
        results.append(
            (
                "cold: matomo-nomad render (console script) / baseline",
                f"{script_ratio:.2f}x ({medians['script'] * 1000:.0f} / {base * 1000:.0f} ms)",
                f"<= {COLD_RATIO_TARGET}",
                script_ratio <= COLD_RATIO_TARGET,
            )
        )
    else:
        print("  console script matomo-nomad: not on PATH (not installed), skipped")

    # Warm, in-process (imports happen here, outside every timed call).
    import matomo_nomad
    from matomo_nomad import Role, example_path, parse_deployment, render

    print(f"\nwarm, in-process: matomo_nomad from {Path(matomo_nomad.__file__).parent}")
    data = tomllib.loads(example_path().read_text(encoding="utf-8"))
    deployment = parse_deployment(data)
    assert len(list(render(deployment))) == len(Role)
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
    assert all(len(list(r)) == len(Role) for r in renderings)
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

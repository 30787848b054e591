#!/usr/bin/env python3
"""Cluster benchmarks for matomo-nomad, against the fake Nomad server (tests/fakenomad).

Run from anywhere:  python benchmarks/bench_cluster.py [--runs 5] [--watch-seconds 60]

Every figure is measured in this one run. Prints each with its target, PASS or FAIL,
and exits 1 if any target is missed. A script, not a test: the suite does not run it.

Figures
  concurrency  The fake adds 100 ms to every answer. `run --detach` of a new deployment:
               the four roles (Cluster.run(detach=True): the secrets check, per job a
               read and a plan, the setup job registered and waited for, then per role
               a register) over the same for one role alone (the deployment reduced to
               the admin role and the setup job: only those rendered, only their
               secrets checked). Medians of --runs runs each, interleaved, each on a
               fresh fake. Target <= 1.5: the roles are independent, so four should
               cost about what one does; the setup job is in both, once. Printed too (info): the same without the secrets check,
               and the secrets check alone.
  watch        A deployment that takes --watch-seconds (default 60: the real duration,
               not scaled) for each of the three service jobs, watched by `run` with
               the fake answering blocking queries as Nomad does (it holds a query
               until the state changes or the wait passes). Counts every request per
               job from registration to the end of its deployment. Target <= 12 per
               job (what polling every 5 s would cost; every second would be 60): a
               handful, one per change of the deployment. With a shorter
               --watch-seconds the count is the same (it follows the changes, not the
               clock); the figure printed says which duration was run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure the working tree, not an installed copy

from matomo_nomad import (
    Cluster,
    ConnectionSettings,
    NomadClient,
    Role,
    _cluster,
    _secrets,
    parse_deployment,
)
from tests.deployments import _example
from tests.fakenomad import FakeNomad

LATENCY = 0.1
CONCURRENCY_TARGET = 1.5
WATCH_REQUESTS_TARGET = 12
SERVICES = ["matomo-admin", "matomo-ingestion", "matomo-queue-processor"]


def _deployment() -> Any:
    return parse_deployment(_example("minimal.toml"))


def _seed(fake: FakeNomad, deployment: Any) -> None:
    for location in _secrets.expected_secrets(deployment):
        fake.put_variable(location.path, {key: "x" for key in location.keys})


def _run_once(one_job: bool, check_secrets: bool, only_secrets: bool = False) -> float:
    deployment = _deployment()
    with FakeNomad() as fake:
        _seed(fake, deployment)
        fake.add_latency(LATENCY)
        cluster = Cluster(NomadClient(ConnectionSettings(address=fake.address)))
        patches = []
        if one_job:
            real_render, real_expected = _cluster.render, _secrets.expected_secrets
            # One role, and the setup job that runs before it on a new deployment.
            patches = [
                mock.patch.object(_cluster, "render",
                                  lambda d: [r for r in real_render(d) if r.role in (Role.admin, Role.setup)]),
                mock.patch.object(_cluster, "ROLES", (Role.admin,)),
                mock.patch.object(_secrets, "expected_secrets", lambda d: [
                    loc for loc in real_expected(d) if {"matomo-admin", "matomo-setup"} & set(loc.jobs)]),
            ]
        for patch in patches:
            patch.start()
        try:
            started = time.perf_counter()
            if only_secrets:
                cluster._require_secrets(cluster.target(deployment))
            else:
                result = cluster.run(deployment, detach=True, check_secrets=check_secrets)
                assert result.ok, result.first_error()
                assert len(result.jobs) == (2 if one_job else 5)  # the setup job first
            return time.perf_counter() - started
        finally:
            for patch in patches:
                patch.stop()


def concurrency(runs: int) -> list[tuple[str, float, float | None]]:
    figures: list[tuple[str, float, float | None]] = []
    for label, kwargs, target in (
        ("run --detach, 4 jobs / 1 job (secrets check included)", {"check_secrets": True}, CONCURRENCY_TARGET),
        ("run --detach, 4 jobs / 1 job (no secrets check)", {"check_secrets": False}, None),
        ("secrets check alone, 4 jobs / 1 job", {"check_secrets": True, "only_secrets": True}, None),
    ):
        four, one = [], []
        for _ in range(runs):  # interleaved, so drift moves both sides alike
            four.append(_run_once(False, **kwargs))
            one.append(_run_once(True, **kwargs))
        m4, m1 = statistics.median(four), statistics.median(one)
        print(f"  {label}: {m4 * 1000:.0f} ms / {m1 * 1000:.0f} ms = {m4 / m1:.2f}x "
              f"(latency {LATENCY * 1000:.0f} ms per answer, median of {runs})")
        figures.append((label, m4 / m1, target))
    return figures


def watch(seconds: float) -> tuple[int, dict[str, int], float]:
    deployment = _deployment()
    with FakeNomad(block_cap=None) as fake:  # blocking queries wait as long as Nomad would
        _seed(fake, deployment)
        cluster = Cluster(NomadClient(ConnectionSettings(address=fake.address)))
        # each service's deployment: the fake's usual script (place, start, healthy per
        # allocation, then succeed), its steps spread evenly over `seconds`
        steps = {"matomo-admin": 1, "matomo-ingestion": 2, "matomo-queue-processor": 1}
        for job_id, allocations in steps.items():
            script = ["place", "start", "healthy"] * allocations + ["succeed"]
            fake.progress(job_id, steps=script, interval=seconds / len(script))
        started = time.perf_counter()
        result = cluster.run(deployment)
        elapsed = time.perf_counter() - started
        assert result.ok, result.first_error()
        per_job: dict[str, int] = {}
        for job_id in SERVICES:
            dep_id = fake.deployment(job_id)["ID"]
            [register] = [r for r in fake.requests_to(r"^/v1/jobs$", "POST") if r.json["Job"]["ID"] == job_id]
            per_job[job_id] = 1 + sum(
                1 for r in fake.requests
                if r.time > register.time
                and (r.path in (f"/v1/job/{job_id}", f"/v1/deployment/{dep_id}") or r.path.startswith(f"/v1/job/{job_id}/"))
            )
        changes = max(3 * n + 1 for n in steps.values())
        return changes, per_job, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per side of the concurrency ratio (default 5)")
    parser.add_argument("--watch-seconds", type=float, default=60.0,
                        help="how long each watched deployment takes (default 60)")
    args = parser.parse_args()
    failed = False

    print("concurrency (the fake adds 100 ms to every answer):")
    for label, ratio, target in concurrency(args.runs):
        if target is not None:
            ok = ratio <= target
            failed |= not ok
            print(f"{'PASS' if ok else 'FAIL'} {label}: {ratio:.2f}x (target <= {target}x)")

    print(f"watch (three service deployments of {args.watch_seconds:.0f} s each, Nomad-like blocking queries):")
    changes, per_job, elapsed = watch(args.watch_seconds)
    for job_id, count in per_job.items():
        print(f"  {job_id}: {count} requests from register to the end of its deployment")
    worst = max(per_job.values())
    ok = worst <= WATCH_REQUESTS_TARGET
    failed |= not ok
    poll = int(args.watch_seconds)
    print(f"{'PASS' if ok else 'FAIL'} watch of a {args.watch_seconds:.0f} s deployment: at most {worst} requests per "
          f"job (target <= {WATCH_REQUESTS_TARGET}; the busiest deployment changed state {changes} times; polling "
          f"every second would be ~{poll}); run took {elapsed:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

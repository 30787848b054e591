"""End to end against a real Nomad cluster: runs only when NOMAD_ADDR is set.

    nomad agent -dev &                       # a throwaway local cluster
    NOMAD_ADDR=http://127.0.0.1:4646 python -m pytest tests/test_e2e_nomad.py -v

It creates the jobs' secrets (`secrets init`, generated values), registers four jobs
under a unique deployment name (detached: a dev agent has no database for Matomo, so the
allocations are not expected to become healthy), checks that a second plan finds nothing
to change, reads their status, and purges the jobs and the secrets. Every job it
touches carries its own deployment mark, so it cannot affect other jobs.
"""

from __future__ import annotations

import os
import uuid

import pytest

from matomo_nomad import Role, parse_deployment
from tests.deployments import _example

pytestmark = pytest.mark.skipif(not os.environ.get("NOMAD_ADDR"), reason="NOMAD_ADDR is not set: no cluster to test against")


@pytest.fixture()
def deployment():
    data = _example("minimal.toml")
    data["name"] = f"mn-e2e-{uuid.uuid4().hex[:8]}"
    data["matomo"]["image"] = "matomo:5.10.0"
    return parse_deployment(data)


def test_plan_run_plan_status_destroy(deployment) -> None:
    from matomo_nomad import Cluster
    from matomo_nomad._secrets import InitPlan, NomadVariables, expected_secrets, init

    cluster = Cluster.from_env()
    target = cluster.target(deployment)
    variables = NomadVariables(cluster.client, target.namespace)
    keys = {key for location in expected_secrets(target) for key in location.keys}
    try:
        states = init(target, variables, InitPlan(generate=keys))
        assert all(state.present for state in states)

        first = cluster.plan(deployment)
        assert [job.change for job in first.jobs] == ["create"] * 4

        result = cluster.run(deployment, detach=True)
        assert result.ok, result.first_error()
        assert [job.outcome for job in result.jobs] == ["registered"] * 4

        again = cluster.plan(deployment)
        assert not again.changed, [(j.job_id, j.changes) for j in again.jobs if j.changed]

        statuses = cluster.status(deployment)
        assert all(s.exists and s.owned and s.in_sync for s in statuses)
        archiver = next(s for s in statuses if s.role is Role.archiver)
        assert archiver.deployment is None
    finally:
        outcomes = {d.outcome for d in cluster.destroy(deployment, purge=True)}
        for location in expected_secrets(target):
            cluster.client.delete("var", location.path, namespace=target.namespace)
        assert outcomes <= {"purged", "absent"}
    assert all(not s.exists for s in cluster.status(deployment))

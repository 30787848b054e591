"""End to end against a real Nomad cluster: runs only when NOMAD_ADDR is set.

    nomad agent -dev &                       # a throwaway local cluster
    NOMAD_ADDR=http://127.0.0.1:4646 python -m pytest tests/test_e2e_nomad.py -v

It creates the jobs' secrets (`secrets init`, generated values), plans the four role
jobs and the setup job that runs before them under a unique deployment name, and runs
(detached: the roles are registered but not watched; the setup job is always waited
for). On a dev agent the setup job fails (there is no database for Matomo, and the
official image has no setup.php): run must then report it with SetupFailedError and
register nothing else, and a second plan still wants the setup job and all four roles.
Where the setup job can succeed, the four roles are registered and a second plan finds
nothing to change. Either way it reads their status, and purges the jobs and the
secrets. Every job it touches carries its own deployment mark, so it cannot affect
other jobs.
"""

from __future__ import annotations

import os
import uuid

import pytest

from matomo_nomad import Role, parse_deployment
from matomo_nomad._model import MATOMO_ROLES
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
    from matomo_nomad._errors import SetupFailedError
    from matomo_nomad._secrets import InitPlan, NomadVariables, expected_secrets, init

    cluster = Cluster.from_env()
    target = cluster.target(deployment)
    variables = NomadVariables(cluster.client, target.namespace)
    keys = {key for location in expected_secrets(target) for key in location.keys}
    setup_id = target.job_id(Role.setup)
    role_ids = [target.job_id(role) for role in MATOMO_ROLES if role is not Role.setup]  # minimal.toml: no monitoring
    try:
        states = init(target, variables, InitPlan(generate=keys))
        assert all(state.present for state in states)

        first = cluster.plan(deployment)
        assert [job.job_id for job in first.jobs] == role_ids
        assert [job.change for job in first.jobs] == ["create"] * 4
        assert first.setup is not None and first.setup.job_id == setup_id
        assert first.setup.needed and "new deployment" in first.setup.reason

        result = cluster.run(deployment, detach=True, watch_timeout=600)
        setup, *roles = result.jobs
        assert setup.job_id == setup_id and [job.job_id for job in roles] == role_ids
        statuses = {s.job_id: s for s in cluster.status(deployment)}
        assert list(statuses) == [*role_ids, setup_id]
        assert statuses[setup_id].exists and statuses[setup_id].owned and statuses[setup_id].in_sync
        assert statuses[setup_id].deployment is None  # a batch job
        if setup.outcome == "completed":
            assert result.ok, result.first_error()
            assert [job.outcome for job in roles] == ["registered"] * 4

            again = cluster.plan(deployment)
            assert not again.changed, [(j.job_id, j.changes) for j in again.jobs if j.changed] + [again.setup]

            assert all(s.exists and s.owned and s.in_sync for s in statuses.values())
            archiver = next(s for s in statuses.values() if s.role is Role.archiver)
            assert archiver.deployment is None
        else:
            assert setup.outcome == "failed" and isinstance(setup.error, SetupFailedError), setup.failure
            assert "nothing else was registered" in setup.failure
            assert result.first_error() is setup.error
            assert [(job.outcome, job.error) for job in roles] == [("not registered", None)] * 4
            assert not any(statuses[job_id].exists for job_id in role_ids)

            again = cluster.plan(deployment)
            assert again.setup.needed and [job.change for job in again.jobs] == ["create"] * 4
    finally:
        outcomes = {d.outcome for d in cluster.destroy(deployment, purge=True)}
        for location in expected_secrets(target):
            cluster.client.delete("var", location.path, namespace=target.namespace)
        assert outcomes <= {"purged", "absent"}
    assert all(not s.exists for s in cluster.status(deployment))

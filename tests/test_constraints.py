"""Constraints: `distinct_hosts` takes no attribute (Nomad's Constraint.Validate requires an
LTarget for every other operator, and its docs say to omit it for this one), and is
rendered without one in HCL and as an empty LTarget in the API JSON, as Nomad decodes it.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from matomo_nomad import DeploymentError, Role, example_path, parse_deployment, render
from tests.hcl_to_api import api_job
from tests.oracles.runner import hcl_check, hcl_dump


def _minimal(**roles: Any) -> dict[str, Any]:
    with open(example_path().parent / "minimal.toml", "rb") as handle:
        data = tomllib.load(handle)
    data["roles"] = copy.deepcopy(roles)
    return data


@pytest.mark.parametrize("value", [None, "true", "false"], ids=["no-value", "true", "false"])
def test_distinct_hosts_without_an_attribute_renders_as_nomad_reads_it(go_oracles, tmp_path: Path, value: str | None) -> None:
    constraint = {"operator": "distinct_hosts"} | ({"value": value} if value is not None else {})
    data = _minimal(ingestion={"constraints": [constraint, {"attribute": "${meta.tier}", "value": "web"}]})
    rendered = render(parse_deployment(data))[Role.ingestion]
    assert "attribute" not in rendered.hcl.split("constraint {")[1].split("}")[0]
    group = json.loads(rendered.api_json)["Job"]["TaskGroups"][0]
    assert group["Constraints"] == [
        {"LTarget": "", "RTarget": value or "", "Operand": "distinct_hosts"},
        {"LTarget": "${meta.tier}", "RTarget": "web", "Operand": "="},
    ]
    path = tmp_path / "ingestion.nomad.hcl"
    path.write_text(rendered.hcl, encoding="utf-8")
    hcl_check(go_oracles["hclcheck"], path)  # parses, and `nomad fmt` leaves it as it is
    assert api_job(hcl_dump(go_oracles["hclcheck"], path)) == json.loads(rendered.api_json)["Job"]


@pytest.mark.parametrize(
    ("constraint", "line"),
    [
        ({"value": "linux"}, "roles.admin.constraints[0].attribute: is required with operator '='"),
        ({"operator": "regexp", "value": "^a"}, "roles.admin.constraints[0].attribute: is required with operator 'regexp'"),
        ({"operator": "distinct_hosts", "attribute": "${node.unique.id}"},
         "roles.admin.constraints[0].attribute: distinct_hosts takes no attribute (remove it)"),
        ({"operator": "distinct_hosts", "value": "yes"}, "roles.admin.constraints[0].value: distinct_hosts takes"),
    ],
    ids=["no-attribute", "regexp-no-attribute", "distinct-hosts-attribute", "distinct-hosts-value"],
)
def test_constraints_nomad_would_refuse_are_refused_with_the_fix(constraint: dict[str, str], line: str) -> None:
    with pytest.raises(DeploymentError) as caught:
        parse_deployment(_minimal(admin={"constraints": [constraint]}))
    [problem] = caught.value.problems
    assert str(problem).startswith(line)
    assert str(problem).endswith(")")


def test_the_example_deployments_keep_their_constraints() -> None:
    # Every other operator keeps its attribute in the HCL, aligned as `nomad fmt` aligns it.
    data = _minimal(admin={"constraints": [{"attribute": "${attr.kernel.name}", "value": "linux"}]})
    hcl = render(parse_deployment(data))[Role.admin].hcl
    assert '      attribute = "$${attr.kernel.name}"\n      operator  = "="\n      value     = "linux"\n' in hcl

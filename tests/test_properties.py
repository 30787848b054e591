"""Property tests: arbitrary Unicode in every free-text field either survives every
layer unchanged (HCL, API JSON, consul-template, PHP's INI reader with Matomo's
decoding) or is refused with a clean, located error. Never a broken file.

Each example runs the real oracles (Go hcl/v2, Go text/template, PHP), so the example
count is modest; the alphabet is biased towards the characters each layer treats
specially, where the bugs would be.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matomo_nomad import DeploymentError, Role, parse_deployment, render
from tests.deployments import SECRETS, _example, secret_stubs
from tests.hcl_to_api import api_job
from tests.oracles.runner import execute_template, hcl_check, hcl_dump, php_read_config
from tests.test_conformance import _intended, _same_to_matomo

SPECIAL = list('"\\$%{}[];\'|&^!~()=#\n\r\t\x00\x01\x0b\x1b\x7f\u0085\u00a0\u2028\u2029\ufeff\u212a\u0301') + [
    "${", "%{", "{{", "}}", "$${", "%%{", "&amp;", "&quot;", "&#36;", "&#10;", "EOT", "\nEOT\n", "E_ALL", "true", "null", "0", "1.5",
]
free_text = st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(max_size=4)), max_size=8).map("".join)

def _uncarriable(text: str) -> bool:
    """What the model refuses, with its reason: NUL (PHP's INI reader stops at it), and
    text not in NFC form (HashiCorp's HCL parser normalises string literals to NFC)."""
    return "\x00" in text or not unicodedata.is_normalized("NFC", text)


FIELDS = (
    "database.user",
    "database.name",
    "database.table_prefix",
    "database.tls.ca",
    "redis.sentinel.master",
    "settings.General.free_text",
    "settings.General.free_list",
    "roles.admin.env.FREE",
    "roles.admin.service.tags",
    "roles.admin.constraints.value",
    "roles.admin.service.check.path",
    "roles.admin.service.check.headers",
    "roles.archiver.archive.extra_args",
    "install.site_name",
    "monitoring.exporter.env.FREE",
    "monitoring.exporter.service.tags",
)


def _place(data: dict[str, Any], field: str, text: str) -> None:
    """Put `text` into the deployment dict where `field` says."""
    if field == "database.tls.ca":
        data["database"]["tls"] = {"enabled": True, "ca": text}
    elif field == "redis.sentinel.master":
        data["redis"] = {"sentinel": {"master": text or "m", "addresses": ["s1:26379"]}}
        data["monitoring"]["exporter"] = {"redis_host": "redis-1"}  # the exporter cannot follow a sentinel
    elif field == "settings.General.free_text":
        data.setdefault("settings", {}).setdefault("General", {})["free_text"] = text
    elif field == "settings.General.free_list":
        data.setdefault("settings", {}).setdefault("General", {})["free_list"] = [text, "plain"]
    elif field == "roles.admin.env.FREE":
        data["roles"]["admin"]["env"] = {"FREE": text}
    elif field == "roles.admin.service.tags":
        data["roles"]["admin"]["service"] = {"tags": [text]}
    elif field == "roles.admin.constraints.value":
        data["roles"]["admin"]["constraints"] = [{"attribute": "${meta.x}", "value": text}]
    elif field == "roles.admin.service.check.path":
        data["roles"]["admin"]["service"] = {"check": {"path": "/" + text}}
    elif field == "roles.admin.service.check.headers":
        # X-Forwarded-Proto kept: without it force_ssl would redirect the check (a validate error)
        data["roles"]["admin"]["service"] = {"check": {"path": "/", "headers": {"X-Forwarded-Proto": ["https"], "X-Free": [text]}}}
    elif field == "roles.archiver.archive.extra_args":
        data["roles"]["archiver"]["archive"] = {"extra_args": [text]}
    elif field == "install.site_name":
        data["install"]["site_name"] = text or "x"  # min_length 1: empty is refused, tested elsewhere
    elif field == "monitoring.exporter.env.FREE":
        data["monitoring"]["exporter"] = {"env": {"FREE": text}}
    elif field == "monitoring.exporter.service.tags":
        data["monitoring"]["exporter"] = {"service": {"tags": [text]}}
    else:
        section, key = field.split(".")
        if key in ("name", "user") and not text:
            text = "x"  # min_length: an empty name or user is refused, tested elsewhere
        data[section][key] = text


def _given_back(job: dict[str, Any], field: str) -> list[str]:
    """Where a field's text must appear, unchanged, in the emitted API job."""
    group = job["TaskGroups"][0]
    task = group["Tasks"][0]
    if field.endswith("env.FREE"):
        return [task["Env"]["FREE"]]
    if field.endswith("service.tags"):
        return group["Services"][0]["Tags"]
    if field == "roles.admin.constraints.value":
        return [group["Constraints"][0]["RTarget"]]
    if field == "roles.admin.service.check.path":
        return [group["Services"][0]["Checks"][0]["Path"][1:]]
    if field == "roles.admin.service.check.headers":
        return group["Services"][0]["Checks"][0]["Header"]["X-Free"]
    if field == "roles.archiver.archive.extra_args":
        return [task["Config"]["args"][-1]]
    if field == "install.site_name":
        return [task["Env"]["MATOMO_NOMAD_SITE_NAME"]]
    return []


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    data = _example("seed.toml")
    data["roles"]["admin"].pop("service", None)
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), text=free_text)
def test_free_text_survives_every_layer_or_is_refused(go_oracles, base, tmp_path: Path, field: str, text: str) -> None:
    data = copy.deepcopy(base)
    _place(data, field, text)
    try:
        deployment = parse_deployment(data)
        rendering = render(deployment)
    except DeploymentError as error:
        # Refused cleanly: one located line per problem, naming the field.
        lines = str(error).splitlines()
        assert lines and all(": " in line for line in lines)
        assert any(line.startswith(field.split(".")[0]) for line in lines), lines
        assert _uncarriable(text), f"refused text that should be carried: {text!r}: {lines}"
        return
    assert not _uncarriable(text)

    role = (Role.archiver if field.startswith("roles.archiver") else Role.setup if field.startswith("install")
            else Role.monitoring if field.startswith("monitoring") else Role.admin)
    rendered = rendering[role]
    path = tmp_path / "job.nomad.hcl"
    path.write_text(rendered.hcl, encoding="utf-8")
    hcl_check(go_oracles["hclcheck"], path)
    emitted = json.loads(rendered.api_json)["Job"]
    assert api_job(hcl_dump(go_oracles["hclcheck"], path)) == emitted
    given_back = _given_back(emitted, field)
    assert given_back or not field.startswith(("roles.admin.env", "monitoring"))
    for value in given_back:
        assert value == text or (field == "install.site_name" and not text)
    if role is Role.monitoring:
        return  # no config.ini.php: it runs redis_exporter

    config = execute_template(go_oracles["tmplexec"], rendered.config_template, secret_stubs(deployment))
    read = php_read_config(config)
    intended = _intended(deployment, role)
    assert list(read) == list(intended)
    for section, values in intended.items():
        for key, value in values.items():
            assert _same_to_matomo(value, read[section][key]), (section, key, value, read[section][key])
    assert read["database"]["password"] == SECRETS["database_password"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=free_text.filter(lambda s: "\x00" not in s))
def test_any_secret_value_reaches_matomo_unchanged(go_oracles, base, secret: str) -> None:
    deployment = parse_deployment(base)
    rendered = render(deployment)[Role.ingestion]
    stubs = secret_stubs(deployment)
    for values in stubs["nomad"].values():
        values["database_password"] = secret
        values["redis_password"] = secret
    read = php_read_config(execute_template(go_oracles["tmplexec"], rendered.config_template, stubs))
    assert _same_to_matomo(secret, read["database"]["password"])
    assert _same_to_matomo(secret, read["QueuedTracking"]["redisPassword"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=free_text.filter(lambda s: "\x00" not in s))
def test_any_superuser_password_reaches_its_file_unchanged(go_oracles, base, secret: str) -> None:
    deployment = parse_deployment(base)
    (template,) = render(deployment)[Role.setup].job["TaskGroups"][0]["Tasks"][0]["Templates"][1:]
    stubs = secret_stubs(deployment)
    for values in stubs["nomad"].values():
        values["superuser_password"] = secret
    assert execute_template(go_oracles["tmplexec"], template["EmbeddedTmpl"], stubs) == secret

"""The rendered artifacts, checked by their real consumers.

- HCL: HashiCorp's hcl/v2 parses every job file and its formatter (`nomad fmt`)
  leaves it unchanged; its evaluated values, mapped to the API by jobspec2's rules,
  equal the API JSON we emit (same job in both formats).
- python-hcl2 reads the same files, and its template text equals the JSON's EmbeddedTmpl.
- config.ini.php: the template runs under Go's text/template with consul-template's
  functions; PHP then reads the result as Matomo does and gets exactly the intended
  values, secrets included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2.utils import SerializationOptions

from matomo_nomad import Deployment, Role, render
from matomo_nomad._ini import SecretRef
from matomo_nomad._model import MATOMO_ROLES
from matomo_nomad._global_ini import KEY_ORDER
from matomo_nomad._roles import plan_roles
from tests.deployments import SECRETS, all_deployments, secret_stubs
from tests.hcl_to_api import api_job
from tests.oracles.runner import execute_template, hcl_check, hcl_dump, php_read_config

DEPLOYMENTS = all_deployments()
# Every job each deployment has (the monitoring job only where [monitoring.exporter] is).
CASES = [(name, job.role) for name in DEPLOYMENTS for job in plan_roles(DEPLOYMENTS[name])]
# The jobs with a config.ini.php: those that run Matomo.
CONFIG_CASES = [(name, role) for name, role in CASES if role in MATOMO_ROLES]


@pytest.fixture(scope="module")
def rendered_files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, Role], Path]:
    directory = tmp_path_factory.mktemp("jobs")
    paths = {}
    for name, deployment in DEPLOYMENTS.items():
        for rendered in render(deployment):
            path = directory / f"{name}-{rendered.job_id}.nomad.hcl"
            path.write_text(rendered.hcl, encoding="utf-8")
            paths[(name, rendered.role)] = path
    return paths


def test_every_job_file_parses_and_is_nomad_fmt_canonical(go_oracles, rendered_files) -> None:
    for path in rendered_files.values():
        hcl_check(go_oracles["hclcheck"], path)


@pytest.mark.parametrize(("name", "role"), CASES, ids=[f"{n}-{r.value}" for n, r in CASES])
def test_hcl_and_api_json_describe_the_same_job(go_oracles, rendered_files, name: str, role: Role) -> None:
    rendered = render(DEPLOYMENTS[name])[role]
    from_hcl = api_job(hcl_dump(go_oracles["hclcheck"], rendered_files[(name, role)]))
    emitted = json.loads(rendered.api_json)
    assert set(emitted) == {"Job"}
    assert from_hcl == emitted["Job"]


def _python_hcl2_job(text: str) -> dict[str, Any]:
    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    document = hcl2.loads(text, serialization_options=options)
    (job,) = document["job"]
    return next(iter(job.values()))


def _heredoc_body(heredoc: str) -> str:
    # python-hcl2 returns heredocs as written: markers on, HCL's $${ and %%{ escapes in.
    assert heredoc.startswith("<<EOT") and heredoc.endswith("EOT")
    return heredoc.split("\n", 1)[1][: -len("EOT")].replace("$${", "${").replace("%%{", "%{")


@pytest.mark.parametrize(("name", "role"), CASES, ids=[f"{n}-{r.value}" for n, r in CASES])
def test_python_hcl2_reads_the_template_the_json_embeds(name: str, role: Role) -> None:
    rendered = render(DEPLOYMENTS[name])[role]
    job = _python_hcl2_job(rendered.hcl)
    (group,) = job["group"]
    (task_block,) = next(iter(group.values()))["task"]
    task = next(iter(task_block.values()))
    templates = task.get("template", [])
    embedded = rendered.job["TaskGroups"][0]["Tasks"][0].get("Templates", [])
    if role in MATOMO_ROLES:
        body = _heredoc_body(templates[0]["data"])
        assert body == embedded[0]["EmbeddedTmpl"] == rendered.config_template
    else:
        assert rendered.config_template == ""
        assert all(t["DestPath"] != "secrets/config.ini.php" for t in embedded)
    # The secret files and env template (secrets as environment variables, a heredoc).
    offset = 1 if role in MATOMO_ROLES else 0
    assert [_heredoc_body(f["data"]) if f["data"].startswith("<<EOT") else f["data"] for f in templates[offset:]] == [
        t["EmbeddedTmpl"] for t in embedded[offset:]
    ]
    assert next(iter(group.values()))["count"] == rendered.job["TaskGroups"][0]["Count"]


def _intended(deployment: Deployment, role: Role) -> dict[str, dict[str, Any]]:
    job = next(j for j in plan_roles(deployment) if j.role is role)

    def resolve(value: Any) -> Any:
        return SECRETS[value.key] if isinstance(value, SecretRef) else value

    return {s.name: {k: resolve(v) for k, v in s.values.items()} for s in job.config}


def _same_to_matomo(intended: Any, read: Any) -> bool:
    """Whether Matomo's reading equals what we meant, allowing for Matomo's own typing:
    bare 0/1 booleans read as ints, and numeric text reads as a number."""
    if isinstance(intended, list):
        return isinstance(read, list) and len(read) == len(intended) and all(map(_same_to_matomo, intended, read))
    if isinstance(intended, bool):
        return read == int(intended) and not isinstance(read, bool)
    if isinstance(intended, (int, float)):
        return read == intended or (isinstance(read, str) and float(read) == intended)
    if isinstance(read, (int, float)) and not isinstance(read, bool):
        # IniReader turns text into a number only when it prints back identically.
        return float(intended) == read
    return read == intended


@pytest.mark.parametrize(("name", "role"), CONFIG_CASES, ids=[f"{n}-{r.value}" for n, r in CONFIG_CASES])
def test_matomo_reads_exactly_the_intended_config(go_oracles, name: str, role: Role) -> None:
    deployment = DEPLOYMENTS[name]
    rendered = render(deployment)[role]
    config = execute_template(go_oracles["tmplexec"], rendered.config_template, secret_stubs(deployment))
    assert config.startswith("; <?php exit; ?> DO NOT REMOVE THIS LINE\n")
    read = php_read_config(config)
    intended = _intended(deployment, role)
    assert list(read) == list(intended)
    for section, values in intended.items():
        assert list(read[section]) == list(values), section
        for key, value in values.items():
            assert _same_to_matomo(value, read[section][key]), (section, key, value, read[section][key])


def test_secrets_reach_matomo_unchanged_and_never_appear_in_the_job(go_oracles) -> None:
    deployment = DEPLOYMENTS["everything"]
    for rendered in render(deployment):
        for secret in SECRETS.values():
            assert secret not in rendered.hcl and secret not in rendered.api_json
        if rendered.role not in MATOMO_ROLES:
            continue
        config = execute_template(go_oracles["tmplexec"], rendered.config_template, secret_stubs(deployment))
        read = php_read_config(config)
        assert read["database"]["password"] == SECRETS["database_password"]
        assert read["database_reader"]["password"] == SECRETS["database_reader_password"]
        assert read["QueuedTracking"]["redisPassword"] == SECRETS["redis_password"]
        assert read["RedisCache"]["password"] == SECRETS["redis_cache_password"]
        assert read["General"]["salt"] == SECRETS["salt"]


def test_a_missing_secret_fails_the_template_instead_of_rendering_empty(go_oracles) -> None:
    deployment = DEPLOYMENTS["seed"]
    rendered = render(deployment)[Role.admin]
    stubs = secret_stubs(deployment)
    for values in stubs["nomad"].values():
        del values["salt"]
    with pytest.raises(AssertionError, match="salt"):
        execute_template(go_oracles["tmplexec"], rendered.config_template, stubs)


def test_seed_settings_and_role_differences_as_matomo_reads_them(go_oracles) -> None:
    deployment = DEPLOYMENTS["seed"]
    read = {}
    for rendered in render(deployment):
        if rendered.role not in MATOMO_ROLES:
            continue
        text = execute_template(go_oracles["tmplexec"], rendered.config_template, secret_stubs(deployment))
        read[rendered.role] = php_read_config(text)
    for role, config in read.items():
        general = config["General"]
        assert general["proxy_client_headers"] == ["HTTP_X_FORWARDED_FOR"]
        assert general["trusted_hosts"] == ["analytics.example.com"]
        assert (general["force_ssl"], general["enable_auto_update"], general["multi_server_environment"]) == (1, 0, 1)
        assert general["browser_archiving_disabled_enforce"] == 1
        assert general["enable_browser_archiving_triggering"] == 0
        assert general["enable_general_settings_admin"] == 0
        assert ("maintenance_mode" in general) == (role is Role.ingestion)
        assert general["enable_plugins_admin"] == 0
        # The lists come from the image's common.config.ini.php (tests/test_plugin_state.py).
        assert "Plugins" not in config and "PluginsInstalled" not in config
        queue = config["QueuedTracking"]
        assert (queue["backend"], queue["queueEnabled"], queue["processDuringTrackingRequest"]) == ("redis", 1, 0)
        assert queue["numQueueWorkers"] == deployment.roles.queue_processor.queues == 2
        assert queue["useWhatRedisBackendType"] == 1
        assert config["database"]["adapter"] == "PDO\\MYSQL"
    assert read[Role.ingestion]["General"]["maintenance_mode"] == 1


@pytest.mark.parametrize(("name", "role"), CONFIG_CASES, ids=[f"{n}-{r.value}" for n, r in CONFIG_CASES])
def test_sections_keep_global_ini_key_order(go_oracles, name: str, role: Role) -> None:
    # Matomo compares each section serialised in global.ini.php's key order with the file
    # as read (core/Config/IniFileChain.php 5.1.2, dumpChanges): another order turns any
    # save into a rewrite, which the read-only config refuses.
    deployment = DEPLOYMENTS[name]
    rendered = render(deployment)[role]
    read = php_read_config(execute_template(go_oracles["tmplexec"], rendered.config_template, secret_stubs(deployment)))
    for section, values in read.items():
        order = KEY_ORDER.get(section, ())
        known = [key for key in values if key in order]
        assert known == sorted(known, key=order.index), section
        # Keys global.ini.php lacks come after all of its own.
        kinds = [key in order for key in values]
        assert kinds == sorted(kinds, reverse=True), section
    assert list(read["database"])[:5] == ["host", "username", "password", "dbname", "tables_prefix"]


def test_the_superuser_password_file_holds_the_secret_exactly(go_oracles) -> None:
    for name in ("seed", "everything"):
        deployment = DEPLOYMENTS[name]
        rendered = render(deployment)[Role.setup]
        templates = rendered.job["TaskGroups"][0]["Tasks"][0]["Templates"]
        (secret_file,) = templates[1:]
        assert secret_file["DestPath"] == "secrets/superuser_password" and secret_file["Perms"] == "0400"
        text = execute_template(go_oracles["tmplexec"], secret_file["EmbeddedTmpl"], secret_stubs(deployment))
        assert text == SECRETS["superuser_password"]
        assert SECRETS["superuser_password"] not in rendered.hcl + rendered.api_json
    for role in MATOMO_ROLES:
        if role is not Role.setup:
            assert len(render(DEPLOYMENTS["seed"])[role].job["TaskGroups"][0]["Tasks"][0]["Templates"]) == 1

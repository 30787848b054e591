"""Artifacts: each role's job as HCL and API JSON, and its config.ini.php template.

The job text is laid out by the Jinja templates in `templates/` (readable as files, as
in a nomad-pack); this module only hands them values that `_roles` decided and
`_hcl`/`_ini` escaped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, Iterator

import jinja2

from . import _apijson, _envfile, _hcl
from ._checks import check, refuse_errors
from ._ini import ENCODER_DEFINITION, section_lines
from ._model import Deployment, Role
from ._roles import CONFIG_DESTINATION, CONFIG_TARGET, RoleJob, SecretFile, plan_roles
from ._templates import environment
from ._version import __version__


@dataclass(frozen=True)
class RenderedRole:
    """One role's artifacts."""

    role: Role
    job_id: str
    hcl: str
    """The job file, formatted as `nomad fmt` leaves it."""
    job: dict[str, Any] = field(repr=False)
    """The API `Job` object (what `{"Job": ...}` wraps)."""
    config_template: str = field(repr=False)
    """config.ini.php as consul-template source: secrets are read at run time ("" for
    the monitoring job, which runs no Matomo)."""

    @property
    def api_json(self) -> str:
        """`{"Job": ...}` as `nomad job run -output` prints it."""
        return _apijson.dumps(self.job)

    def files(self) -> dict[str, str]:
        """File name -> content, as `render --out` writes them."""
        files = {f"{self.job_id}.nomad.hcl": self.hcl, f"{self.job_id}.json": self.api_json}
        if self.config_template:
            files[f"{self.job_id}.config.ini.php.tpl"] = self.config_template
        return files


@dataclass(frozen=True)
class Rendering:
    """Every job's artifacts, in role order (the four roles, the setup job, then the
    monitoring job if the deployment has one)."""

    deployment: Deployment = field(repr=False)
    roles: dict[Role, RenderedRole]

    def __iter__(self) -> Iterator[RenderedRole]:
        return iter(self.roles.values())

    def __getitem__(self, role: Role | str) -> RenderedRole:
        return self.roles[Role(role)]

    def files(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for rendered in self:
            out.update(rendered.files())
        return out


@cache
def _environment() -> jinja2.Environment:
    return environment(
        "templates", {"hcl": _hcl.value, "hcl_heredoc": _hcl.heredoc, "hcl_attributes": _hcl.attributes}
    )


def config_template(job: RoleJob) -> str:
    sections = [
        {"name": s.name, "lines": section_lines(s, job.secrets.item)} for s in job.config
    ]
    return _environment().get_template("config.ini.php.tpl").render(
        encoder=ENCODER_DEFINITION,
        secrets_opening=job.secrets.opening,
        job_id=job.job_id,
        version=__version__,
        sections=sections,
    )


def secret_file_template(job: RoleJob, file: SecretFile) -> str:
    """consul-template source printing one secret exactly as stored: no newline added,
    no encoding (the reader takes the file's bytes)."""
    item = job.secrets.item.format(key=file.key)
    return f"{job.secrets.opening}{{{{ {item} }}}}{{{{- end }}}}"


def job_hcl(job: RoleJob, config: str, secret_templates: list[str]) -> str:
    template = "service.nomad.tpl" if job.job_type == "service" else "batch.nomad.tpl"
    task_attributes: dict[str, object] = {"driver": "docker"}
    if job.kill_signal is not None:
        task_attributes["kill_signal"] = job.kill_signal
    if job.kill_timeout is not None:
        task_attributes["kill_timeout"] = job.kill_timeout
    return _environment().get_template(template).render(
        job=job,
        health_check=_apijson.health_check_mode(job),
        container_port=job.container_port,
        task_attributes=task_attributes,
        docker_config=_apijson.docker_config(job),
        resources=_apijson.resources(job),
        config_template=config,
        config_destination=CONFIG_DESTINATION,
        config_target=CONFIG_TARGET,
        secret_files=[
            {"template": text, "destination": file.destination, "perms": _apijson.SECRET_FILE_PERMS}
            for file, text in zip(job.secret_files, secret_templates, strict=True)
        ],
        env_template=_envfile.for_job(job),
        env_destination=_envfile.DESTINATION,
        env_perms=_apijson.SECRET_FILE_PERMS,
    )


def job_hash(document: dict[str, Any]) -> str:
    """A fingerprint of a rendered API job, stable across runs and Python versions."""
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def render_role(job: RoleJob) -> RenderedRole:
    config = config_template(job) if job.runs_matomo else ""
    secrets = [secret_file_template(job, file) for file in job.secret_files]
    # The mark that says which deployment owns the job (status and destroy act only on
    # marked jobs) and which rendering it is: a hash of everything else in the job.
    mark = {"matomo_nomad_version": __version__, "matomo_nomad_hash": job_hash(_apijson.job(job, config, secrets))}
    job = replace(job, meta={**job.meta, **mark})
    return RenderedRole(
        role=job.role,
        job_id=job.job_id,
        hcl=job_hcl(job, config, secrets),
        job=_apijson.job(job, config, secrets),
        config_template=config,
    )


def render(deployment: Deployment) -> Rendering:
    """Every role's job (HCL and API JSON) and config.ini.php template.

    Refuses (DeploymentError) a deployment in which `validate()` finds an error, as the
    command line does: a file can be valid field by field and still not run."""
    jobs = plan_roles(deployment)
    refuse_errors(check(deployment, jobs))
    return Rendering(deployment, {job.role: render_role(job) for job in jobs})

"""matomo-nomad: one typed description of a Matomo deployment, rendered as Nomad jobs.

    >>> from matomo_nomad import load_deployment, render, validate
    >>> deployment = load_deployment("deploy.toml")
    >>> for finding in validate(deployment):   # errors and warnings, as `matomo-nomad validate`
    ...     print(finding)
    >>> rendering = render(deployment)          # raises DeploymentError on an error finding
    >>> for role in rendering:
    ...     print(role.job_id, len(role.hcl), len(role.api_json), len(role.config_template))

Everything not listed in `__all__` is private and may change.
"""

from typing import TYPE_CHECKING

from ._errors import (
    ClusterError,
    ConflictError,
    DeploymentError,
    DeploymentFailedError,
    DeploymentFileError,
    MatomoNomadError,
    NotOwnedError,
    OutputError,
    Problem,
)
from ._version import __version__

# Every other name is imported on first use (PEP 562): `matomo-nomad --help` and a
# usage error then import neither pydantic nor Jinja, `render` never imports requests
# or python-nomad, and a command loads only the stages it runs.
_LAZY = {
    "Finding": ("_checks", "Finding"),
    "validate": ("_checks", "check"),
    "image_context": ("_image", "image_context"),
    "example_path": ("_loading", "example_path"),
    "load_deployment": ("_loading", "load_deployment"),
    "parse_deployment": ("_loading", "parse_deployment"),
    "Deployment": ("_model", "Deployment"),
    "Role": ("_model", "Role"),
    "RenderedRole": ("_render", "RenderedRole"),
    "Rendering": ("_render", "Rendering"),
    "render": ("_render", "render"),
    "Cluster": ("_cluster", "Cluster"),
    "DeploymentProgress": ("_cluster", "DeploymentProgress"),
    "JobDestroy": ("_cluster", "JobDestroy"),
    "JobPlan": ("_cluster", "JobPlan"),
    "JobRun": ("_cluster", "JobRun"),
    "JobStatus": ("_cluster", "JobStatus"),
    "Plan": ("_cluster", "Plan"),
    "RunResult": ("_cluster", "RunResult"),
    "ConnectionSettings": ("_nomad_api", "ConnectionSettings"),
    "NomadClient": ("_nomad_api", "NomadClient"),
}

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from ._checks import Finding
    from ._checks import check as validate
    from ._cluster import Cluster, DeploymentProgress, JobDestroy, JobPlan, JobRun, JobStatus, Plan, RunResult
    from ._image import image_context
    from ._loading import example_path, load_deployment, parse_deployment
    from ._model import Deployment, Role
    from ._nomad_api import ConnectionSettings, NomadClient
    from ._render import RenderedRole, Rendering, render


def __getattr__(name: str) -> object:
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module 'matomo_nomad' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = found
    value = getattr(import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

__all__ = [
    "Cluster",
    "ClusterError",
    "ConflictError",
    "ConnectionSettings",
    "Deployment",
    "DeploymentFailedError",
    "DeploymentProgress",
    "DeploymentError",
    "DeploymentFileError",
    "Finding",
    "JobDestroy",
    "JobPlan",
    "JobRun",
    "JobStatus",
    "MatomoNomadError",
    "NomadClient",
    "NotOwnedError",
    "OutputError",
    "Plan",
    "Problem",
    "RenderedRole",
    "Rendering",
    "Role",
    "RunResult",
    "__version__",
    "example_path",
    "image_context",
    "load_deployment",
    "parse_deployment",
    "render",
    "validate",
]

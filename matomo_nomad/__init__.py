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
from ._checks import Finding
from ._checks import check as validate
from ._image import image_context
from ._loading import example_path, load_deployment, parse_deployment
from ._model import Deployment, Role
from ._render import RenderedRole, Rendering, render
from ._version import __version__

# The cluster side pulls in requests and python-nomad; rendering needs neither, so
# those names are imported on first use (PEP 562) to keep `render` starting fast.
_LAZY = {
    "Cluster": "_cluster",
    "DeploymentProgress": "_cluster",
    "JobDestroy": "_cluster",
    "JobPlan": "_cluster",
    "JobRun": "_cluster",
    "JobStatus": "_cluster",
    "Plan": "_cluster",
    "RunResult": "_cluster",
    "ConnectionSettings": "_nomad_api",
    "NomadClient": "_nomad_api",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'matomo_nomad' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

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

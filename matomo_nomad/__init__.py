"""matomo-nomad: one typed description of a Matomo deployment, rendered as Nomad jobs.

    >>> from matomo_nomad import load_deployment, render
    >>> rendering = render(load_deployment("deploy.toml"))
    >>> for role in rendering:
    ...     print(role.job_id, len(role.hcl), len(role.api_json), len(role.config_template))

Everything not listed in `__all__` is private and may change.
"""

from ._errors import DeploymentError, DeploymentFileError, MatomoNomadError, OutputError, Problem
from ._image import image_context
from ._loading import example_path, load_deployment, parse_deployment
from ._model import Deployment, Role
from ._render import RenderedRole, Rendering, render
from ._version import __version__

__all__ = [
    "Deployment",
    "DeploymentError",
    "DeploymentFileError",
    "MatomoNomadError",
    "OutputError",
    "Problem",
    "RenderedRole",
    "Rendering",
    "Role",
    "__version__",
    "example_path",
    "image_context",
    "load_deployment",
    "parse_deployment",
    "render",
]

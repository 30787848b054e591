"""The image every role runs, as a Docker build context (`matomo-nomad image`).

The jobs and the image come from the same deployment file, so nothing can drift
apart: the Dockerfile builds FROM the official image at `matomo.version`, fetch.sh
asks the marketplace for each plugin's own release built for that same Matomo version,
and the Makefile tags the result exactly `matomo.image`, the reference every rendered
job runs. What goes where is decided here (`plan_image`); the templates in
`templates/image/` only lay it out, and every value from the deployment file reaches
shell text through `shlex.quote`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import cache

import jinja2

from ._errors import DeploymentError, Problem
from ._model import _IMAGE_RE, Deployment
from ._templates import environment
from ._version import __version__

MARKETPLACE_URL = "https://plugins.matomo.org/api/2.0/plugins"
# The official image keeps Matomo's code in /usr/src/matomo and copies it into the
# /var/www/html volume when a container starts. What we bake in goes into the former:
# a file put under /var/www/html at build time sits under a VOLUME path, so it reaches
# a container only through Docker's volume seeding, and never one whose volume already
# holds Matomo.
SOURCE_DIR = "/usr/src/matomo"
HTML_DIR = "/var/www/html"
ENTRYPOINT = "/usr/local/bin/matomo-nomad-entrypoint.sh"
FILE_OWNER = "www-data:www-data"
# The default command of the official Apache image, which a new ENTRYPOINT clears.
COMMAND = "apache2-foreground"
PAYLOAD = "payload"
"""fetch.sh's output directory in the build context, laid out like Matomo's own tree."""
# The directories Matomo's system check wants writable (Diagnostics' write access check).
TMP_DIRS = (
    "tmp",
    "tmp/assets",
    "tmp/cache",
    "tmp/cache/tracker",
    "tmp/climulti",
    "tmp/latest",
    "tmp/logs",
    "tmp/sessions",
    "tmp/tcpdf",
    "tmp/templates_c",
)
FILES = ("Dockerfile", "Makefile", "fetch.sh", "entrypoint.sh")
"""The build context's files, in the order they are printed and written."""


@dataclass(frozen=True, slots=True)
class ImageName:
    """`matomo.image` in the parts the Makefile takes as variables."""

    registry: str
    """'' for Docker Hub."""
    repository: str
    tag: str

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True, slots=True)
class Download:
    """One file fetch.sh downloads and checks before anything is unpacked."""

    archive: str
    """Its name in fetch.sh's download directory."""
    sha256: str | None
    pin_at: str
    """Where the deployment file takes its checksum, for fetch.sh's warning."""


@dataclass(frozen=True, slots=True)
class PluginFile:
    name: str
    version: str
    download: Download
    path: str
    """The marketplace URL after its base: the plugin's own release, for `matomo.version`."""


@dataclass(frozen=True, slots=True)
class GeoIPFile:
    url: str
    file: str
    """Its name in Matomo's misc/ directory."""
    download: Download


@dataclass(frozen=True, slots=True)
class ImagePlan:
    """Everything the build context's files say, decided once."""

    deployment: str
    image: ImageName
    matomo_version: str
    base: str
    """The official image the Dockerfile builds FROM."""
    plugins: list[PluginFile]
    geoip: GeoIPFile | None

    @property
    def downloads(self) -> list[Download]:
        return [p.download for p in self.plugins] + ([self.geoip.download] if self.geoip else [])


def plan_image(deployment: Deployment) -> ImagePlan:
    """What goes into the image; refuses an `matomo.image` that no build can produce."""
    version = deployment.matomo.version
    plugins = [
        PluginFile(
            name=plugin.name,
            version=plugin.version,
            download=Download(f"{plugin.name}.zip", plugin.sha256, f"plugins[{index}].sha256"),
            # The path names the plugin's own release; coreVersion picks the build of it
            # that fits this Matomo (reference: plugins.matomo.org API 2.0).
            path=f"{plugin.name}/download/{plugin.version}?coreVersion={version}",
        )
        for index, plugin in enumerate(deployment.plugins)
    ]
    geoip = deployment.image.geoip
    return ImagePlan(
        deployment=deployment.name,
        image=image_name(deployment.matomo.image),
        matomo_version=version,
        base=f"matomo:{version}-{deployment.image.variant}",
        plugins=plugins,
        geoip=None
        if geoip is None
        else GeoIPFile(geoip.url, geoip.file, Download("geoip.mmdb.gz", geoip.sha256, "image.geoip.sha256")),
    )


def image_name(reference: str) -> ImageName:
    """Split a (validated) tag reference as Docker does; refuse a digest."""
    match = _IMAGE_RE.match(reference)
    assert match is not None, reference  # the model only lets valid references through
    if match.group("digest"):
        # Building makes a new image with a digest of its own: the jobs would keep
        # running the pinned one, never what the Makefile builds.
        if match.group("tag"):
            what, fix = "pins a digest as well as a tag", "remove the @sha256:... part to build; the jobs then run the tag you push"
        else:
            what, fix = "pins only a digest", "give it a tag to build, e.g. registry.example.com/matomo:5.10.0-1"
        raise DeploymentError([Problem("matomo.image", f"{what}, and a build cannot produce a chosen digest", fix)])
    name, tag = match.group("name"), match.group("tag")
    first, slash, rest = name.partition("/")
    # Docker's rule (distribution/reference): the first component names a registry
    # when it contains '.' or ':' or is 'localhost'; otherwise the image is on Docker Hub.
    if slash and ("." in first or ":" in first or first == "localhost"):
        result = ImageName(first, rest, tag)
    else:
        result = ImageName("", name, tag)
    assert str(result) == reference, (result, reference)
    return result


@cache
def _environment() -> jinja2.Environment:
    return environment("templates/image", {"sh": shlex.quote})


def image_context(deployment: Deployment) -> dict[str, str]:
    """The Docker build context for `deployment`'s image: file name -> text
    (Dockerfile, Makefile, fetch.sh, entrypoint.sh)."""
    plan = plan_image(deployment)
    values = {
        "plan": plan,
        "version": __version__,
        "marketplace_url": MARKETPLACE_URL,
        "source_dir": SOURCE_DIR,
        "html_dir": HTML_DIR,
        "entrypoint": ENTRYPOINT,
        "owner": FILE_OWNER,
        "command": COMMAND,
        "payload": PAYLOAD,
        "tmp_dirs": TMP_DIRS,
    }
    env = _environment()
    return {name: env.get_template(f"{name}.tpl").render(values) for name in FILES}

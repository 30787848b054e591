"""The image every role runs, as a Docker build context (`matomo-nomad image`).

The jobs and the image come from the same deployment file, so nothing can drift
apart: the Dockerfile builds FROM the official image at `matomo.version`, fetch.sh
asks the marketplace for each plugin's own release built for that same Matomo version,
and the Makefile tags the result exactly `matomo.image`, the reference every rendered
job runs. What goes where is decided here (`plan_image`); the templates in
`templates/image/` only lay it out, and every value from the deployment file reaches
shell text through `shlex.quote`.

Two files of the context are static PHP, copied as they are (not templates):
plugin-state.php, which the Dockerfile runs to write Matomo's complete plugin lists
into config/common.config.ini.php and the plugins' tracker code into matomo.js, and
setup.php, the setup job's command.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jinja2

from ._errors import DeploymentError, Problem
from ._model import _IMAGE_RE, Deployment
from ._roles import SETUP_SCRIPT
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
SCRIPTS_DIR = posixpath.dirname(SETUP_SCRIPT)
"""Where the image keeps matomo-nomad's PHP scripts (outside the /var/www/html volume);
the setup job runs SETUP_SCRIPT from there."""
PLUGIN_STATE_SCRIPT = f"{SCRIPTS_DIR}/plugin-state.php"
"""Run once by the Dockerfile, as `php PLUGIN_STATE_SCRIPT SOURCE_DIR PLUGIN...`."""
STATIC_FILES = ("plugin-state.php", "setup.php")
"""Files of templates/image/ copied into the context as they are, not rendered."""
FILES = ("Dockerfile", "Makefile", "fetch.sh", "entrypoint.sh", *STATIC_FILES)
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


@cache
def _static_file(name: str) -> str:
    return resources.files("matomo_nomad").joinpath("templates", "image", name).read_text(encoding="utf-8")


def _values(plan: ImagePlan) -> dict[str, object]:
    return {
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
        "scripts_dir": SCRIPTS_DIR,
        "static_files": STATIC_FILES,
        "plugin_state_script": PLUGIN_STATE_SCRIPT,
    }


def image_context(deployment: Deployment) -> dict[str, str]:
    """The Docker build context for `deployment`'s image: file name -> text
    (Dockerfile, Makefile, fetch.sh, entrypoint.sh, plugin-state.php, setup.php)."""
    plan = plan_image(deployment)
    env = _environment()
    values = _values(plan)
    return {
        name: _static_file(name) if name in STATIC_FILES else env.get_template(f"{name}.tpl").render(values)
        for name in FILES
    }


def plugin_state_command(deployment: Deployment) -> str:
    """The Dockerfile's RUN argument that writes the plugin state (shell form)."""
    names = " ".join(shlex.quote(plugin.name) for plugin in deployment.plugins)
    return f"php {PLUGIN_STATE_SCRIPT} {SOURCE_DIR} {names}".rstrip()


def byo_dockerfile_snippet(deployment: Deployment) -> str:
    """The Dockerfile lines an image of your own needs to run these jobs ("bring your
    own image"): built FROM the official image, with the deployment's plugins in
    /usr/src/matomo/plugins/, plugin-state.php run over them, and matomo-nomad's
    entrypoint (the official one chowns the read-only config mount and fails)."""
    plan = plan_image(deployment)
    names = ", ".join(p.name for p in plan.plugins)
    return "\n".join(
        [
            f'# What an image of your own needs to run the jobs of deployment "{plan.deployment}".',
            "# plugin-state.php, setup.php and entrypoint.sh come from",
            "# `matomo-nomad image DEPLOYMENT --out DIR`: build in DIR.",
            f"FROM {plan.base}",
            f"# ... your own steps. The plugins must be in {SOURCE_DIR}/plugins/ before the",
            f"# RUN below, which fails the build when one is missing: {names}.",
            f"COPY {' '.join(STATIC_FILES)} {SCRIPTS_DIR}/",
            f"RUN {plugin_state_command(deployment)}",
            "# The official entrypoint chowns all of /var/www/html, and chown fails on the",
            "# read-only config.ini.php the jobs mount there: use matomo-nomad's.",
            f"COPY entrypoint.sh {ENTRYPOINT}",
            f"RUN chmod 0755 {ENTRYPOINT}",
            f'ENTRYPOINT ["{ENTRYPOINT}"]',
            f'CMD ["{COMMAND}"]',
            "",
        ]
    )


def image_requirements(deployment: Deployment) -> list[str]:
    """What the rendered jobs expect of matomo.image, one line each (for `validate`)."""
    names = ", ".join(p.name for p in deployment.plugins)
    return [
        f"FROM matomo:{deployment.matomo.version}-{deployment.image.variant} (the official image)",
        f"the plugins {names} in {SOURCE_DIR}/plugins/",
        f"{SOURCE_DIR}/config/common.config.ini.php with the complete plugin lists, and matomo.js "
        f"with their tracker code, written by {PLUGIN_STATE_SCRIPT}",
        f"{SETUP_SCRIPT}, the setup job's command",
        f"{ENTRYPOINT} as the entrypoint (the official one chowns the read-only config mount and fails)",
    ]

"""`matomo-nomad` / `python -m matomo_nomad`: render, validate, schema, image, and the cluster commands.

Exit codes: 0 success; 2 the deployment file is unreadable or invalid (one line per
problem); 4 the output could not be written; 64 the command line itself is wrong;
70 an internal error (a bug: set MATOMO_NOMAD_DEBUG=1 for the traceback). The cluster
commands (plan, run, status, destroy) live in `_cli_cluster`, with their own codes.
Nothing is written unless everything rendered.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Sequence

from ._errors import MatomoNomadError
from ._version import __version__

if TYPE_CHECKING:
    from ._model import Deployment

EXIT_USAGE = 64
EXIT_INTERNAL = 70
FORMATS = ("hcl", "json", "ini")
ROLE_NAMES = ("admin", "ingestion", "queue-processor", "archiver", "setup")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="matomo-nomad",
        description="Render a Matomo deployment (admin, ingestion, queue processor, archiver, setup) as Nomad jobs.",
    )
    parser.add_argument("--version", action="version", version=f"matomo-nomad {__version__}")
    # Not required=True: argparse would then complain about the missing command before
    # naming an unknown option such as `--bogus`; main() asks for the command itself.
    commands = parser.add_subparsers(dest="command", metavar="{render,validate,schema,image,plan,run,status,destroy,secrets}", parser_class=_Parser)

    render = commands.add_parser(
        "render",
        help="print or write the jobs (HCL, API JSON) and each role's config.ini.php template",
        description="Without FILE, renders the built-in example (the seed architecture).",
    )
    render.add_argument("file", nargs="?", type=Path, help="deployment file (.toml, .yaml, .json)")
    render.add_argument("--role", choices=ROLE_NAMES, help="only this role")
    render.add_argument(
        "--format",
        choices=FORMATS,
        help="hcl (default on stdout), json (API JSON, as `nomad job run -output`), "
        "ini (config.ini.php template); with --out, only this format is written",
    )
    render.add_argument("--out", type=Path, help="write <job>.nomad.hcl, <job>.json, <job>.config.ini.php.tpl here")

    validate = commands.add_parser(
        "validate",
        help="check a deployment file, and the deployment as a whole as Matomo needs it; report every problem",
    )
    validate.add_argument("file", nargs="?", type=Path, help="deployment file; default: the built-in example")
    validate.add_argument("--output", choices=("text", "json"), default="text", help="json for CI")

    commands.add_parser("schema", help="print the deployment file's JSON Schema (for editors)")

    image = commands.add_parser(
        "image",
        help="print or write the Docker build context of the image the jobs run",
        description="Dockerfile, Makefile, fetch.sh, entrypoint.sh, plugin-state.php and setup.php for "
        "matomo.image. Without --out, prints them, each after a '# ---- <file name> ----' line. Without FILE, "
        "the built-in example.",
    )
    image.add_argument("file", nargs="?", type=Path, help="deployment file (.toml, .yaml, .json)")
    output = image.add_mutually_exclusive_group()
    output.add_argument("--out", type=Path, help="write the build context here (then: make -C DIR build push)")
    output.add_argument(
        "--snippet",
        action="store_true",
        help="print only the Dockerfile lines an image of your own needs (built FROM the official image)",
    )

    from . import _cli_cluster, _cli_secrets

    _cli_cluster.add_commands(commands, _load)
    _cli_secrets.add_commands(commands, _load, _cli_cluster.connection_flags)
    return parser


def _load(path: Path | None) -> "Deployment":
    from ._loading import example_path, load_deployment

    return load_deployment(path if path is not None else example_path())


def checked(deployment: "Deployment") -> "Deployment":
    """Apply the Matomo-aware checks: print warnings, refuse on errors (exit 2)."""
    from ._checks import ERROR, check
    from ._errors import DeploymentError, Problem

    findings = check(deployment)
    for finding in findings:
        if finding.severity != ERROR:
            sys.stderr.write(f"warning: {finding.location}: {finding.message} ({finding.fix}) [{finding.rule}]\n")
    errors = [Problem(f.location, f"{f.message} [{f.rule}]", f.fix) for f in findings if f.severity == ERROR]
    if errors:
        raise DeploymentError(errors)
    return deployment


def _render(args: argparse.Namespace) -> int:
    from ._output import write_files
    from ._render import render

    rendering = render(checked(_load(args.file)))
    selected = [r for r in rendering if args.role is None or r.role.slug == args.role]
    if args.out is not None:
        files: dict[str, str] = {}
        for rendered in selected:
            for name, text in rendered.files().items():
                if args.format is None or name.endswith(_SUFFIX[args.format]):
                    files[name] = text
        for path in write_files(files, args.out):
            print(path)
        return 0

    fmt = args.format or "hcl"
    if fmt == "json" and args.role is None:
        # Several jobs: one JSON object keyed by job id, each value what -output prints.
        import json

        from ._apijson import dumps

        combined = {r.job_id: json.loads(dumps(r.job)) for r in selected}
        sys.stdout.write(json.dumps(combined, indent=4, ensure_ascii=False) + "\n")
        return 0
    for index, rendered in enumerate(selected):
        text = {"hcl": rendered.hcl, "json": rendered.api_json, "ini": rendered.config_template}[fmt]
        if len(selected) > 1:
            name = next(n for n in rendered.files() if n.endswith(_SUFFIX[fmt]))
            sys.stdout.write(("\n" if index else "") + f"# ---- {name} ----\n")
        sys.stdout.write(text)
    return 0


_SUFFIX = {"hcl": ".nomad.hcl", "json": ".json", "ini": ".config.ini.php.tpl"}


def _validate(args: argparse.Namespace) -> int:
    from ._checks import ERROR, check
    from ._errors import DeploymentError
    from ._render import render

    from ._image import image_requirements

    source = str(args.file or "built-in example")
    if args.output == "json":
        import json

        report: dict[str, object] = {"file": source, "valid": False, "problems": [], "findings": [], "jobs": []}
        try:
            deployment = _load(args.file)
            findings = check(deployment)
            # render() refuses a deployment with an error finding: those are reported below.
            if not any(f.severity == ERROR for f in findings):
                report["jobs"] = [r.job_id for r in render(deployment)]
            report["image"] = {"reference": deployment.matomo.image, "requires": image_requirements(deployment)}
        except DeploymentError as error:
            report["problems"] = [{"location": p.location, "message": p.message, "fix": p.fix} for p in error.problems]
        else:
            report["findings"] = [vars(f) for f in findings]
            report["valid"] = not any(f.severity == ERROR for f in findings)
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return 0 if report["valid"] else DeploymentError.exit_code

    deployment = checked(_load(args.file))
    # Rendering is part of validation: a value no layer can carry is refused there.
    jobs = [r.job_id for r in render(deployment)]
    print(f"{source}: valid ({', '.join(jobs)})")
    print(f"the jobs run {deployment.matomo.image}, built by `matomo-nomad image` (or see `image --snippet`) with:")
    for line in image_requirements(deployment):
        print(f"  - {line}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    import json

    from ._model import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
    return 0


def _image(args: argparse.Namespace) -> int:
    from ._image import byo_dockerfile_snippet, image_context

    if args.snippet:
        sys.stdout.write(byo_dockerfile_snippet(_load(args.file)))
        return 0
    files = image_context(_load(args.file))
    if args.out is not None:
        from ._output import write_files

        for path in write_files(files, args.out):
            print(path)
        return 0
    for index, (name, text) in enumerate(files.items()):
        # '#' starts a comment in all six files (PHP too), so each part stays valid on its own.
        sys.stdout.write(("\n" if index else "") + f"# ---- {name} ----\n" + text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose a command: render, validate, schema, image, plan, run, status, destroy or secrets")
    local = {"render": _render, "validate": _validate, "schema": _schema, "image": _image}
    command = local.get(args.command) or args.handler
    try:
        return command(args)
    except MatomoNomadError as error:
        sys.stderr.write(f"{error}\n")
        return error.exit_code
    except BrokenPipeError:
        # `matomo-nomad render | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # noqa: BLE001 - the last line of defence, no traceback
        if os.environ.get("MATOMO_NOMAD_DEBUG"):
            raise
        sys.stderr.write(
            f"matomo-nomad: internal error: {type(error).__name__}: {error} "
            "(please report it; MATOMO_NOMAD_DEBUG=1 shows the traceback)\n"
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())

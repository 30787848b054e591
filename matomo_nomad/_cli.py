"""`matomo-nomad` / `python -m matomo_nomad`: render, validate, schema, image, and the cluster commands.

Exit codes: 0 success; 2 the deployment file is unreadable or invalid (one line per
problem); 4 the output could not be written; 64 the command line itself is wrong;
70 an internal error (a bug: set MATOMO_NOMAD_DEBUG=1 for the traceback). The cluster
commands (plan, run, status, destroy) live in `_cli_cluster` and `secrets` in
`_cli_secrets`, with their own codes; what every command shares is in `_cli_common`.
Nothing is written unless everything rendered.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
from pathlib import Path
from typing import Sequence

from ._cli_common import EXIT_INTERNAL, EXIT_USAGE, UsageParser, checked, directory, load, write_and_list
from ._errors import MatomoNomadError
from ._version import __version__

FORMATS = ("hcl", "json", "ini")
ROLE_NAMES = ("admin", "ingestion", "queue-processor", "archiver", "setup", "monitoring")
COMMANDS = ("render", "validate", "schema", "image", "alerts", "plan", "run", "status", "destroy", "secrets")


def _role(text: str) -> str:
    # Job ids spell it queue-processor; the deployment file's [roles] table, queue_processor.
    return text.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="matomo-nomad",
        description="Render a Matomo deployment (admin, ingestion, queue processor, archiver, setup) as Nomad jobs.",
    )
    parser.add_argument("--version", action="version", version=f"matomo-nomad {__version__}")
    # Not required=True: argparse would then complain about the missing command before
    # naming an unknown option such as `--bogus`; main() asks for the command itself.
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}", parser_class=UsageParser)

    def command(name: str, help_text: str, more: str = "") -> argparse.ArgumentParser:
        # The description is what `matomo-nomad NAME --help` says first: the help line, and more.
        description = f"{help_text[0].upper()}{help_text[1:]}. {more}".strip()
        return commands.add_parser(name, help=help_text, description=description)

    render = command(
        "render",
        "print or write the jobs (HCL, API JSON) and each role's config.ini.php template",
        "Without FILE, renders the built-in example (the seed architecture). Nothing is written unless "
        "everything rendered.",
    )
    render.add_argument("file", nargs="?", type=Path, help="deployment file (.toml, .yaml, .json)")
    render.add_argument("--role", type=_role, choices=ROLE_NAMES,
                        help="only this role (queue_processor, as the file spells it, works too)")
    render.add_argument(
        "--format",
        choices=FORMATS,
        help="hcl (default on stdout), json (API JSON, as `nomad job run -output`), "
        "ini (config.ini.php template); with --out, only this format is written",
    )
    render.add_argument("--out", type=directory, metavar="DIR",
                        help="write <job>.nomad.hcl, <job>.json, <job>.config.ini.php.tpl here")

    validate = command(
        "validate",
        "check a deployment file, and the deployment as a whole as Matomo needs it; report every problem",
        "Each field first, then the Matomo-aware rules (errors and warnings, each with its fix), then a render. "
        "Exit 0 when valid, 2 otherwise. Without FILE, the built-in example.",
    )
    validate.add_argument("file", nargs="?", type=Path, help="deployment file; default: the built-in example")
    validate.add_argument("--output", choices=("text", "json"), default="text", help="json for CI")

    command(
        "schema",
        "print the deployment file's JSON Schema (for editors)",
        "Every field with its description and default, for taplo, the YAML language server or any "
        "JSON Schema tool: matomo-nomad schema > deployment.schema.json",
    )

    image = command(
        "image",
        "print or write the Docker build context of the image the jobs run",
        "Dockerfile, Makefile, fetch.sh, entrypoint.sh, plugin-state.php and setup.php for "
        "matomo.image. Without --out, prints them, each after a '# ---- <file name> ----' line. Without FILE, "
        "the built-in example.",
    )
    image.add_argument("file", nargs="?", type=Path, help="deployment file (.toml, .yaml, .json)")
    output = image.add_mutually_exclusive_group()
    output.add_argument("--out", type=directory, metavar="DIR",
                        help="write the build context here (then: make -C DIR build push)")
    output.add_argument(
        "--snippet",
        action="store_true",
        help="print only the Dockerfile lines an image of your own needs (built FROM the official image)",
    )

    from . import _alerts, _cli_cluster, _cli_secrets

    _alerts.add_command(commands)
    _cli_cluster.add_commands(commands)
    _cli_secrets.add_commands(commands)
    return parser


def _render(args: argparse.Namespace) -> int:
    from ._render import render

    rendering = render(checked(load(args.file)))
    selected = [r for r in rendering if args.role is None or r.role.slug == args.role]
    if not selected:
        sys.stderr.write(f"matomo-nomad render: error: --role {args.role}: the job is not in this deployment "
                         "(add a [monitoring.exporter] table)\n")
        return EXIT_USAGE
    if args.format == "ini":
        # The monitoring job runs no Matomo: it has no config.ini.php.
        selected = [r for r in selected if r.config_template]
        if not selected:
            sys.stderr.write(f"matomo-nomad render: error: --role {args.role}: the job has no config.ini.php "
                             "(it runs redis_exporter, not Matomo; use --format hcl or json)\n")
            return EXIT_USAGE
    if args.out is not None:
        files: dict[str, str] = {}
        for rendered in selected:
            for name, text in rendered.files().items():
                if args.format is None or name.endswith(_SUFFIX[args.format]):
                    files[name] = text
        write_and_list(files, args.out)
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
            deployment = load(args.file)
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

    deployment = checked(load(args.file))
    # Rendering is part of validation: a value no layer can carry is refused there.
    jobs = [r.job_id for r in render(deployment)]
    print(f"{source}: valid ({', '.join(jobs)})")
    matomo_jobs = "the jobs but the monitoring job" if deployment.monitoring.exporter is not None else "the jobs"
    print(f"{matomo_jobs} run {deployment.matomo.image}, built by `matomo-nomad image` (or see `image --snippet`) with:")
    for line in image_requirements(deployment):
        print(f"  - {line}")
    if deployment.monitoring.exporter is not None:
        print(f"the monitoring job runs {deployment.monitoring.exporter.image} as it is published")
    return 0


def _schema(args: argparse.Namespace) -> int:
    import json

    from ._model import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
    return 0


def _image(args: argparse.Namespace) -> int:
    from ._image import byo_dockerfile_snippet, image_context

    if args.snippet:
        sys.stdout.write(byo_dockerfile_snippet(load(args.file)))
        return 0
    files = image_context(load(args.file))
    if args.out is not None:
        write_and_list(files, args.out)
        return 0
    for index, (name, text) in enumerate(files.items()):
        # '#' starts a comment in all six files (PHP too), so each part stays valid on its own.
        sys.stdout.write(("\n" if index else "") + f"# ---- {name} ----\n" + text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # The process ends with the command: at exit, the interpreter would collect every
    # class, schema and validator pydantic built, one by one (~35 ms, a tenth of a
    # render); frozen, they are left to the OS. atexit runs this before that clean-up.
    atexit.register(gc.freeze)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error(f"choose a command: {', '.join(COMMANDS[:-1])} or {COMMANDS[-1]}")
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

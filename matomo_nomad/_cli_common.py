"""What the CLI's commands share: the parser that exits 64, loading a deployment file,
the Matomo-aware checks, the connection flags and the cluster they name, and writing files.

`_cli` (render, validate, schema, image), `_cli_cluster` (plan, run, status, destroy) and
`_cli_secrets` (secrets init, check, import) import this module and never each other's
helpers, so the imports form no circle: `_cli` -> `_cli_cluster`, `_cli_secrets` -> here.
At import time it needs only argparse and our exceptions: `--help` and a usage error must
not pay for pydantic, the model or requests, so everything else is imported where used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

if TYPE_CHECKING:
    from ._model import Deployment

EXIT_USAGE = 64
EXIT_INTERNAL = 70


class UsageParser(argparse.ArgumentParser):
    """An argument parser whose errors exit 64, each with its own command's usage.

    argparse hands arguments a sub-command does not know back to the top-level parser,
    which then prints the top-level usage; here the sub-command that was given them
    refuses them itself, so `render --bogus` shows `usage: matomo-nomad render ...`."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def directory(text: str) -> Path:
    """An `--out DIR` value: an empty string would silently mean the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (name a directory; use . for the current one)")
    return Path(text)


def file_path(text: str) -> Path:
    """An `--out FILE` value: the empty string names no file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (name a file)")
    return Path(text)


def load(path: Path | None) -> "Deployment":
    """The deployment file at `path`, or the built-in example when none is given."""
    from ._loading import example_path, load_deployment

    return load_deployment(path if path is not None else example_path())


def checked(deployment: "Deployment") -> "Deployment":
    """Apply the Matomo-aware checks: print warnings, refuse on errors (exit 2)."""
    from ._checks import ERROR, check, refuse_errors

    findings = check(deployment)
    for finding in findings:
        if finding.severity != ERROR:
            sys.stderr.write(f"warning: {finding.location}: {finding.message} ({finding.fix}) [{finding.rule}]\n")
    refuse_errors(findings)
    return deployment


def write_and_list(files: Mapping[str, str], out: Path) -> None:
    """Write `files` (name -> text) into `out`, all or nothing, and print each path."""
    from ._output import write_files

    for path in write_files(files, out):
        print(path)


# --- talking to a cluster ---------------------------------------------------------------

#: Each connection setting's flag, named in errors about a value that came from it.
CONNECTION_FLAGS: dict[str, str] = {
    "address": "--address",
    "token": "--token",
    "namespace": "--namespace",
    "region": "--region",
    "ca_cert": "--ca-cert",
    "ca_path": "--ca-path",
    "client_cert": "--client-cert",
    "client_key": "--client-key",
    "tls_server_name": "--tls-server-name",
    "skip_verify": "--tls-skip-verify",
}


def connection_flags(parser: argparse.ArgumentParser, timeout_also: str = "") -> None:
    """The nomad CLI's connection flags. `timeout_also`: what else --timeout sets on this
    command (status: the Redis client's, whose default differs)."""
    group = parser.add_argument_group("connection (default: the NOMAD_* environment variables)")
    group.add_argument("--address", help="NOMAD_ADDR")
    group.add_argument("--token", help="NOMAD_TOKEN (prefer the variable: flags show in process lists)")
    group.add_argument("--namespace", help="NOMAD_NAMESPACE; a namespace in the deployment file wins over the variable")
    group.add_argument("--region", help="NOMAD_REGION")
    group.add_argument("--ca-cert", help="NOMAD_CACERT")
    group.add_argument("--ca-path", help="NOMAD_CAPATH")
    group.add_argument("--client-cert", help="NOMAD_CLIENT_CERT")
    group.add_argument("--client-key", help="NOMAD_CLIENT_KEY")
    group.add_argument("--tls-server-name", help="NOMAD_TLS_SERVER_NAME")
    group.add_argument("--tls-skip-verify", action="store_true", default=None, help="NOMAD_SKIP_VERIFY (insecure)")
    group.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                       help="give up on an answer after this long (default 10; blocking queries add their wait"
                       + (f"; {timeout_also}" if timeout_also else "") + ")")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def cluster_for(args: argparse.Namespace, deployment: Any) -> tuple[Any, Any]:
    """The cluster the connection flags (over NOMAD_*) name, and the deployment with
    the --namespace/--region flags applied."""
    from ._cluster import Cluster

    if args.namespace:
        deployment = deployment.model_copy(update={"namespace": args.namespace})
    if args.region:
        deployment = deployment.model_copy(update={"region": args.region})
    cluster = Cluster.from_env(
        address=args.address,
        token=args.token,
        namespace=args.namespace,
        region=args.region,
        ca_cert=args.ca_cert,
        ca_path=args.ca_path,
        client_cert=args.client_cert,
        client_key=args.client_key,
        tls_server_name=args.tls_server_name,
        skip_verify=args.tls_skip_verify,
        timeout=getattr(args, "timeout", None),
        names=CONNECTION_FLAGS,
    )
    if cluster.client.settings.skip_verify:
        # One line of ours instead of urllib3's multi-line warning on every request.
        import warnings

        from urllib3.exceptions import InsecureRequestWarning

        warnings.simplefilter("ignore", InsecureRequestWarning)
        sys.stderr.write("warning: TLS certificates are not verified (NOMAD_SKIP_VERIFY / --tls-skip-verify)\n")
    return cluster, deployment

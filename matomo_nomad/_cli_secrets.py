"""`matomo-nomad secrets init | check | import`: the secrets the jobs read.

Values never travel on the command line (process lists show it): passwords come from
MATOMO_<KEY> environment variables (MATOMO_DATABASE_PASSWORD, MATOMO_REDIS_PASSWORD,
...) or standard input (`--stdin`: key=value lines, or one JSON object), or are
generated with `--generate KEY`. Nothing prints a value. Exit codes: 0 all present,
24 something is still missing, and the cluster error codes (10-23).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._cli_common import cluster_for, connection_flags, file_path, load
from ._errors import DeploymentError, MissingSecretsError, Problem


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "secrets",
        help="create, check or import the secrets the jobs read",
        description="The salt and passwords the jobs read at run time, in Nomad Variables (or Vault): "
        "init creates them, check says which exist, import turns an existing config.ini.php into a "
        "deployment file and its secrets. Values come from MATOMO_<KEY> variables or standard input, "
        "never from arguments, and are never printed.",
    )
    actions = parser.add_subparsers(dest="secrets_command", metavar="{init,check,import}", parser_class=type(parser))

    init = actions.add_parser(
        "init",
        help="create the Nomad Variables the jobs read; what exists is kept, the salt is never overwritten",
        description="Create the Nomad Variables the jobs read, at exactly the paths and keys their templates "
        "read; what exists is kept, and the salt is never overwritten. With Vault, prints the `vault kv put` "
        "command instead. Exit 24 when a key is still missing.",
    )
    init.add_argument("file", nargs="?", type=Path, help="deployment file; default: the built-in example")
    init.add_argument("--generate", action="append", default=[], metavar="KEY",
                      help="generate this key's value if it does not exist yet (repeatable)")
    init.add_argument("--stdin", action="store_true", help="read values from standard input (key=value lines or JSON)")
    connection_flags(init)
    init.set_defaults(handler=_init, load=load)

    check = actions.add_parser(
        "check",
        help="say for each expected key whether it exists (never its value)",
        description="Say for each key the jobs read whether it exists (never its value). Exit 24 when one is missing.",
    )
    check.add_argument("file", nargs="?", type=Path, help="deployment file; default: the built-in example")
    connection_flags(check)
    check.set_defaults(handler=_check, load=load)

    imported = actions.add_parser(
        "import",
        help="turn an existing single-server config.ini.php into a deployment file, and store its secrets",
        description="Read an existing single-server Matomo's config.ini.php as Matomo reads it and write a "
        "deployment file (TOML) with its database, hosts, proxy and other settings; with --store, also store "
        "its salt and passwords as the jobs' secrets. Every setting dropped or changed is noted.",
    )
    imported.add_argument("config", type=Path, help="the existing Matomo's config/config.ini.php")
    imported.add_argument("--name", required=True, help="the deployment's name (job ids derive from it)")
    imported.add_argument("--image", required=True, help="the image reference the jobs will run")
    imported.add_argument("--host", action="append", dest="hosts", metavar="HOST",
                          help="public host name (repeatable); default: the file's trusted_hosts[]")
    imported.add_argument("--redis-host", help="QueuedTracking's Redis host, when the file does not name one")
    imported.add_argument("--matomo-version", metavar="VERSION",
                          help="the Matomo version the deployment runs (matomo.version), which decides which of the "
                          "file's plugins are Matomo's own; default: matomo-nomad's default version")
    imported.add_argument("--out", type=file_path, required=True,
                          help="where to write the deployment file (TOML); an existing file is kept unless --force")
    imported.add_argument("--force", action="store_true", help="replace --out if it exists")
    imported.add_argument("--store", action="store_true",
                          help="also store the salt and passwords as the jobs' secrets (as `secrets init` does); "
                          "the file is written only once they are stored")
    connection_flags(imported)
    imported.set_defaults(handler=_import, load=load)
    parser.set_defaults(handler=lambda args: parser.error("choose init, check or import"), load=load)


def _stores(args: argparse.Namespace, deployment: Any) -> tuple[Any, Any, Any]:
    from ._secrets import NomadVariables, VaultKV

    cluster, deployment = cluster_for(args, deployment)
    target = cluster.target(deployment)
    client = cluster.scoped(deployment).client
    return target, NomadVariables(client, target.namespace), VaultKV.from_env()


def _report(states: list[Any]) -> int:
    by_path: dict[str, list[str]] = {}
    for state in states:
        label = state.action or ("present" if state.present else "MISSING")
        by_path.setdefault(state.path, []).append(f"{state.key} {label if state.present else 'MISSING'}")
    for path, keys in by_path.items():
        sys.stdout.write(f"{path}: {', '.join(keys)}\n")
    absent = [s for s in states if not s.present]
    if absent:
        sys.stderr.write(
            f"{len(absent)} key(s) missing: give values as MATOMO_<KEY> environment variables or with --stdin, "
            "or --generate KEY\n"
        )
        return MissingSecretsError.exit_code
    return 0


def _init(args: argparse.Namespace) -> int:
    from ._secrets import InitPlan, expected_secrets, init, parse_stdin, sources_from_env

    deployment, variables, vault = _stores(args, args.load(args.file))
    locations = expected_secrets(deployment)
    if deployment.secrets.provider == "vault":
        # matomo-nomad does not write to Vault: say exactly what to create, then check it.
        for location in locations:
            keys = " ".join(f"{key}=@{key}.txt" for key in location.keys)
            sys.stdout.write(f"vault kv put {location.path.replace('/data/', '/', 1)} {keys}\n")
        if vault is None:
            sys.stderr.write("create the secret above (salt: 32 hex characters), then run `secrets check` with VAULT_ADDR set\n")
            return 0
        from ._secrets import check

        return _report(check(deployment, None, vault))
    wanted = {key for location in locations for key in location.keys}
    values = sources_from_env(wanted)
    if args.stdin:
        try:
            values.update(parse_stdin(sys.stdin.read()))
        except ValueError as error:
            raise DeploymentError([Problem("standard input", str(error), "write key=value lines or one JSON object")]) from None
    unknown = sorted(set(values) - wanted)
    if unknown:
        raise DeploymentError([Problem("standard input", f"unknown key(s) {', '.join(unknown)}", f"the jobs read {', '.join(sorted(wanted))}")])
    bad = sorted(set(args.generate) - wanted)
    if bad:
        raise DeploymentError([Problem("--generate", f"unknown key(s) {', '.join(bad)}", f"the jobs read {', '.join(sorted(wanted))}")])
    return _report(init(deployment, variables, InitPlan(values, set(args.generate))))


def _check(args: argparse.Namespace) -> int:
    from ._secrets import check

    deployment, variables, vault = _stores(args, args.load(args.file))
    nomad = variables if deployment.secrets.provider == "nomad" else None
    return _report(check(deployment, nomad, vault))


def _import(args: argparse.Namespace) -> int:
    from ._errors import DeploymentFileError, MatomoNomadError, OutputError
    from ._loading import parse_deployment
    from ._migrate import FLAGS, deployment_toml, import_matomo_config

    out: Path = args.out
    if not args.force and (out.exists() or out.is_symlink()):
        raise OutputError(f"{out}: exists; nothing was written or stored (choose another --out, or --force to replace it)")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; nothing was written or stored (name a file with --out)")
    try:
        text = args.config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
        raise DeploymentFileError([Problem(str(args.config), f"cannot be read: {reason}", "check the path")]) from None
    try:
        result = import_matomo_config(
            text,
            name=args.name,
            image=args.image,
            hosts=args.hosts,
            redis_host=args.redis_host,
            matomo_version=args.matomo_version,
            given_as=FLAGS,
        )
    except DeploymentFileError as error:
        # The reader's problems are located by line: say in which file.
        raise DeploymentFileError(
            [Problem(f"{args.config}: {p.location}", p.message, p.fix) for p in error.problems]
        ) from None
    deployment = parse_deployment(result.deployment, source=str(args.config))
    toml = deployment_toml(result.deployment, source=str(args.config), notes=result.notes)
    for note in result.notes:
        sys.stderr.write(f"note: {note}\n")
    code = 0
    if args.store:
        # Stored first, written after: a failed store (a salt already stored that differs,
        # the cluster unreachable) leaves no deployment file that names missing secrets.
        try:
            code = _store(args, deployment, result.secrets)
        except MatomoNomadError:
            sys.stderr.write(f"{out}: not written, since the secrets were not stored\n")
            raise
    _write_file(out, toml, replace=args.force, stored=args.store)
    sys.stdout.write(f"{out}: written (secrets are not in it)\n")
    if not args.store:
        sys.stderr.write("secrets not stored: run again with --store, or `secrets init` with MATOMO_<KEY> variables\n")
    return code


def _store(args: argparse.Namespace, deployment: Any, secrets: dict[str, str]) -> int:
    from ._secrets import InitPlan, init

    target, variables, _ = _stores(args, deployment)
    if target.secrets.provider != "nomad":
        sys.stderr.write("the deployment reads Vault: store the secrets there (see `secrets init`)\n")
        return 0
    return _report(init(target, variables, InitPlan(dict(secrets))))


def _write_file(path: Path, text: str, *, replace: bool, stored: bool) -> None:
    """Write `path` whole or not at all: a temporary file beside it, then renamed into
    place, or, without `replace`, linked there, which fails if `path` appeared meanwhile."""
    import errno
    import os
    import tempfile

    from ._errors import OutputError

    umask = os.umask(0)
    os.umask(umask)
    after = "; the secrets are stored: run the import again to write it" if stored else ""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(temporary, 0o666 & ~umask)
        if replace:
            os.replace(temporary, path)
            temporary = None
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise OutputError(
                    f"{path}: appeared while the import ran; not replaced (use --force to replace it){after}"
                ) from None
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK) or path.exists():
                    raise
                os.replace(temporary, path)  # a file system without hard links
                temporary = None
    except OSError as error:
        raise OutputError(f"{path}: cannot be written ({error.strerror or error}){after}") from None
    finally:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass

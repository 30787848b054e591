"""`matomo-nomad plan | run | status | destroy`: the cluster commands' flags and output.

Connection flags mirror the nomad CLI's environment variables and override them.
Exit codes: `plan` is 0 (no change), 1 (changes) or 255 (error), like `nomad job plan`;
the other commands exit 0 on success and otherwise with the code of the failure's
kind (see `_errors`: 10-23), the first failing job's when several fail. `status --check`
exits 30 when the health section (`_nomad_health`) has warnings, a long-running job or the
archiver that is not registered, not this deployment's, or stopped among them; without
it, warnings never change the exit code. `status --redis` reads the queue's Redis instead
(`_queue_health`, its own exit codes); the Nomad-only `--health`/`--check` are refused
with it (64).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from ._cli_common import EXIT_USAGE, checked, cluster_for, connection_flags, load
from ._errors import ClusterError

PLAN_NO_CHANGE, PLAN_CHANGES, PLAN_ERROR = 0, 1, 255

STATUS_DESCRIPTION = (
    "each role's job: status, version, deployment health, allocations. --health adds a health section from "
    "the Nomad API (archiver launches, next launch, allocations running against desired, restarts, a job "
    "not registered, not this deployment's or stopped); --check prints it too and exits 30 on its warnings. "
    "--redis reads the QueuedTracking queue from its Redis instead of Nomad (exit 0, 30 warnings, "
    "31 Redis unreadable, 64 the redis package not installed); --health and --check do not apply to it."
)


def add_commands(commands: Any) -> None:
    """Register the cluster sub-commands on the CLI's sub-parser collection."""
    for name, help_text in (
        ("plan", "show what would change on the cluster, per job (exit 0 none, 1 changes, 255 error)"),
        ("run", "plan, register each changed job, then wait for its deployment"),
        ("status", "each role's job: status, version, deployment health, allocations; "
                   "--health/--check: health from the Nomad API; --redis: the queue's Redis"),
        ("destroy", "stop this deployment's jobs (only jobs carrying its mark)"),
    ):
        description = STATUS_DESCRIPTION if name == "status" else help_text
        parser = commands.add_parser(name, help=help_text, description=description)
        parser.add_argument("file", nargs="?", type=Path, help="deployment file; default: the built-in example")
        # `status --redis` waits 5 s by default (_queue_health.run), not the Nomad client's 10.
        connection_flags(parser, "with --redis: default 5, per Redis connection and command" if name == "status" else "")
        if name in ("plan", "status"):
            parser.add_argument("--output", choices=("text", "json"), default="text", help="json for CI")
        if name == "status":
            from ._queue_health import add_flags

            add_flags(parser)
            parser.add_argument("--health", action="store_true",
                                help="add the health section (Nomad API: archiver launches, next launch, "
                                "allocations running against desired, restarts of the running allocations, "
                                "a job not registered, not this deployment's or stopped) to the text output; "
                                "the JSON output always has it; the exit code stays 0 (not with --redis)")
            parser.add_argument("--check", action="store_true",
                                help="like --health, and exit 30 when the health section has warnings "
                                "(default: exit 0; not with --redis, which exits 30 on its own warnings)")
        if name == "run":
            parser.add_argument("--detach", action="store_true", help="register and return; do not wait for deployments "
                                "(refused for an upgrade or fewer queues, whose steps each wait for the one before)")
            parser.add_argument("--adopt", action="store_true", help="take over existing jobs with the same ids that lack this deployment's mark")
            parser.add_argument("--watch-timeout", type=float, default=3600.0, metavar="SECONDS", help="give up waiting after this long (default 3600)")
            parser.add_argument("--archiver-timeout", type=float, default=3600.0, metavar="SECONDS",
                                help="an upgrade waits this long for a running archiver launch; then it stops, "
                                "changing nothing, and the archiver is resumed as it was (default 3600)")
            parser.add_argument("--skip-secrets-check", action="store_true",
                                help="register even if the secrets the jobs read cannot be checked or are missing")
        if name == "destroy":
            parser.add_argument("--purge", action="store_true", help="remove the jobs from Nomad's state entirely")
        parser.set_defaults(handler=_HANDLERS[name])


def _cluster_and_deployment(args: argparse.Namespace) -> tuple[Any, Any]:
    return cluster_for(args, load(args.file))


# --- plan ------------------------------------------------------------------------------


def _plan(args: argparse.Namespace) -> int:
    try:
        cluster, deployment = _cluster_and_deployment(args)
        plan = cluster.plan(deployment)
    except ClusterError as error:
        sys.stderr.write(f"{error}\n")
        return PLAN_ERROR
    if args.output == "json":
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        write_plan(plan, sys.stdout)
    return PLAN_CHANGES if plan.changed else PLAN_NO_CHANGE


def write_plan(plan: Any, out: IO[str]) -> None:
    sign = {"create": "+", "update": "~", "none": " "}
    if plan.upgrade is not None:
        # An upgrade or a queue move: ordered steps, the setup job among them.
        for line in plan.upgrade.lines():
            out.write(line + "\n")
    elif plan.setup is not None:
        if plan.setup.needed:
            out.write(f"+ job {plan.setup.job_id} (runs first, and must succeed before the others are registered)\n")
            out.write(f"    why: {plan.setup.reason}\n")
        else:
            out.write(f"  job {plan.setup.job_id} (not run: {plan.setup.reason.removeprefix('not needed: ')})\n")
    for job in plan.jobs:
        label = {"create": "new job", "update": "changes", "none": "no change"}[job.change]
        out.write(f"{sign[job.change]} job {job.job_id} ({label})\n")
        if not job.owned:
            out.write("    ! exists without this deployment's mark: run refuses it unless --adopt\n")
        for change in job.changes:
            mark = {"added": "+", "deleted": "-", "edited": "~"}.get(change.kind, "~")
            if change.kind == "edited":
                out.write(f"    {mark} {change.path}: {change.old!r} => {change.new!r}\n")
            else:
                out.write(f"    {mark} {change.path}: {(change.new if change.kind == 'added' else change.old)!r}\n")
        if job.template_diff:
            out.write("    ~ config.ini.php template:\n")
            for line in job.template_diff:
                out.write(f"        {line}\n")
        for group in job.groups:
            out.write(f"    scheduler: {group.summary()}\n")
        for failure in job.placement_failures:
            out.write(f"    ! {failure}\n")
        for warning in job.warnings:
            out.write(f"    warning: {warning}\n")
        if job.next_periodic_launch:
            out.write(f"    next launch: {job.next_periodic_launch}\n")
    changed = sum(job.changed for job in plan.jobs)
    first = " after the setup job" if plan.setup is not None and plan.setup.needed else ""
    if plan.upgrade is not None:
        first = " in the steps above"
    out.write(f"\n{changed} of {len(plan.jobs)} job(s) would change{first} in namespace {plan.namespace}.\n")


# --- run -------------------------------------------------------------------------------


class _Progress:
    """Deployment progress: rewritten in place on a terminal, one line per change otherwise."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.tty = out.isatty()
        self.lines: dict[str, str] = {}
        self.shown = 0

    def __call__(self, progress: Any) -> None:
        # Called from one thread per job.
        with _LOCK:
            self.lines[progress.job_id] = progress.line()
            if not self.tty:
                self.out.write(progress.line() + "\n")
            else:
                # Move up over the block drawn last time, then redraw every job's line.
                if self.shown:
                    self.out.write(f"\x1b[{self.shown}F")
                for line in self.lines.values():
                    self.out.write("\x1b[2K" + line + "\n")
                self.shown = len(self.lines)
            self.out.flush()


_LOCK = threading.Lock()


def _run(args: argparse.Namespace) -> int:
    cluster, deployment = _cluster_and_deployment(args)
    progress = _Progress(sys.stderr)

    def on_step(event: Any) -> None:
        # An upgrade's step lines, between deployment progress blocks: the next block
        # starts below them instead of redrawing over them.
        with _LOCK:
            sys.stderr.write(event.line() + "\n")
            sys.stderr.flush()
            progress.lines.clear()
            progress.shown = 0

    result = cluster.run(
        checked(deployment), detach=args.detach, adopt=args.adopt, on_progress=progress,
        watch_timeout=args.watch_timeout, check_secrets=not args.skip_secrets_check,
        on_setup=lambda step: sys.stderr.write(f"{step.job_id}: running first: {step.reason}\n"),
        on_step=on_step, archiver_timeout=args.archiver_timeout,
    )
    for job in result.jobs:
        if job.error is not None:
            # Most failures already start with the job id; say it once.
            failure = str(job.failure).removeprefix(f"{job.job_id}: ")
            sys.stderr.write(f"{job.job_id}: FAILED: {failure}\n")
            continue
        text = f"{job.job_id}: {job.outcome}"
        if job.outcome == "not registered":
            text = f"{job.job_id}: {job.failure}"
        if job.outcome in ("registered", "completed"):
            text += f" (job modify index {job.job_modify_index}" + (f", evaluation {job.eval_id[:8]})" if job.eval_id else ")")
        if job.deployment is not None:
            text += f"; deployment {job.deployment.status}"
        if job.next_periodic_launch:
            text += f"; next launch {job.next_periodic_launch}"
        sys.stdout.write(text + "\n")
    if result.upgrade is not None and not result.upgrade.ok:
        # Where an upgrade or queue move stopped, why, the cluster's state, how to resume.
        for line in result.upgrade.report():
            sys.stderr.write(line + "\n")
    error = result.first_error()
    return 0 if error is None else error.exit_code


# --- status ----------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    if args.redis or args.redis_password_stdin:
        nomad_only = [flag for flag, given in (("--health", args.health), ("--check", args.check)) if given]
        if nomad_only:
            # One line, as a usage error; nothing read: the two checks read different systems.
            one = len(nomad_only) == 1
            sys.stderr.write(
                f"matomo-nomad status: {' and '.join(nomad_only)} {'reads' if one else 'read'} the Nomad jobs and "
                f"{'does' if one else 'do'} not apply with --redis (run `status FILE --check` and "
                "`status FILE --redis` separately; --redis exits 30 on its own warnings)\n")
            return EXIT_USAGE
        # The queue's Redis alone (_queue_health): a cron host needs no Nomad access for it.
        from ._queue_health import run as queue_status

        return queue_status(args, load(args.file))
    if args.interval is not None:
        sys.stderr.write("matomo-nomad status: --interval sets the time between --redis's two samples and does "
                         "not apply without --redis (add --redis, or leave --interval out)\n")
        return EXIT_USAGE
    cluster, deployment = _cluster_and_deployment(args)
    statuses = cluster.status(deployment)
    from ._nomad_health import job_health, text_lines
    from ._queue_health import EXIT_WARNINGS

    # The health each job reports, with a warning for a long-running job or the archiver
    # that is not registered, not ours, or stopped (the setup job is exempt: one-shot).
    healths = {s.job_id: job_health(s) for s in statuses}
    warnings = sum(len(h.warnings) for h in healths.values() if h is not None)
    code = EXIT_WARNINGS if warnings and args.check else 0
    if args.output == "json":
        rows = []
        for status in statuses:
            row = asdict(status)
            row["role"] = status.role.value
            health = healths[status.job_id]
            row["health"] = None if health is None else asdict(health)
            rows.append(row)
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return code
    for s in statuses:
        if not s.exists:
            sys.stdout.write(f"{s.job_id}: not registered\n")
            continue
        if not s.owned:
            sys.stdout.write(f"{s.job_id}: exists ({s.status}) but not registered by this deployment\n")
            continue
        sync = "in sync with the deployment file" if s.in_sync else "differs from the deployment file (run `plan`)"
        allocs = ", ".join(f"{n} {state}" for state, n in s.allocations.items()) or "no allocations"
        line = f"{s.job_id}: {s.status}{' (stopped)' if s.stopped else ''}, version {s.version}, {sync}; {allocs}"
        if s.deployment is not None:
            line += f"; last deployment {s.deployment.status} " + ", ".join(
                f"{g.group} {g.healthy}/{g.placed}/{g.desired}" for g in s.deployment.groups
            )
        sys.stdout.write(line + "\n")
    if args.health or args.check:
        from ._model import Role

        sys.stdout.write("health (from the Nomad API):\n")
        for s in statuses:
            health = healths[s.job_id]
            if health is None:
                continue
            sys.stdout.write(f"{s.job_id}:\n")
            if s.health is None:
                # Absent or not ours: nothing was read about it but that.
                extras = [f"  WARNING: {w}" for w in health.warnings]
            else:
                extras = text_lines(health, periodic=s.role is Role.archiver)
            for extra in extras:
                sys.stdout.write(extra + "\n")
        sys.stdout.write(f"{warnings} warning{'' if warnings == 1 else 's'}\n")
    return code


# --- destroy ---------------------------------------------------------------------------


def _destroy(args: argparse.Namespace) -> int:
    cluster, deployment = _cluster_and_deployment(args)
    refused = []
    for result in cluster.destroy(deployment, purge=args.purge):
        if result.outcome == "refused":
            refused.append(result.job_id)
            sys.stderr.write(
                f"{result.job_id}: exists but does not carry deployment {deployment.name!r}'s mark; not touching it\n"
            )
        else:
            sys.stdout.write(f"{result.job_id}: {result.outcome}\n")
    if refused:
        from ._errors import NotOwnedError

        return NotOwnedError.exit_code
    return 0


_HANDLERS = {"plan": _plan, "run": _run, "status": _status, "destroy": _destroy}

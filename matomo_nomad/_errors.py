"""The exceptions matomo-nomad raises, as a small hierarchy.

Every exception carries text meant for a person: one line per problem, naming where
it is and how to fix it. The CLI prints these lines as they are and maps each class
to its own exit code, so callers can tell bad input from a failed write.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input: where it is, what is wrong, how to fix it."""

    location: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} ({self.fix})" if self.fix else text


class MatomoNomadError(Exception):
    """Base class: anything matomo-nomad raises on purpose."""

    exit_code = 1


class DeploymentError(MatomoNomadError):
    """The deployment description is invalid; `problems` lists every finding at once."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class DeploymentFileError(DeploymentError):
    """The deployment file could not be read or parsed (I/O, TOML or YAML syntax).

    Same exit code as any other bad input: to a caller it is the same kind of failure.
    """


class OutputError(MatomoNomadError):
    """The rendered files could not be written where asked."""

    exit_code = 4


class ClusterError(MatomoNomadError):
    """Talking to the Nomad cluster failed. Subclasses say how; each has its own exit code."""

    exit_code = 10


class ClusterConfigError(ClusterError):
    """The connection settings themselves are wrong (address, certificate pair)."""

    exit_code = 11


class ConnectError(ClusterError):
    """Nothing answered at the address, or the connection broke."""

    exit_code = 12


class DnsError(ClusterError):
    """The host name in the address does not resolve."""

    exit_code = 13


class ClusterTimeoutError(ClusterError):
    """The server did not answer in time."""

    exit_code = 14


class TlsError(ClusterError):
    """The TLS handshake or certificate verification failed."""

    exit_code = 15


class AccessDeniedError(ClusterError):
    """401/403: the ACL token is missing, unknown or lacks a permission."""

    exit_code = 16


class NotFoundError(ClusterError):
    """404 where something was expected to exist."""

    exit_code = 17


class RequestRejectedError(ClusterError):
    """400: Nomad refused the request as invalid."""

    exit_code = 18


class ServerError(ClusterError):
    """5xx from Nomad."""

    exit_code = 19


class ConflictError(ClusterError):
    """Someone changed a job (or variable) between our read and our write."""

    exit_code = 20


class MalformedResponseError(ClusterError):
    """The answer was not what Nomad sends (not JSON, a redirect, a wrong shape)."""

    exit_code = 21


class NotOwnedError(ClusterError):
    """A job with our id exists but does not carry this deployment's mark."""

    exit_code = 22


class DeploymentFailedError(ClusterError):
    """A job was registered but its Nomad deployment failed."""

    exit_code = 23


class MissingSecretsError(ClusterError):
    """A secret the jobs read does not exist yet: the allocations would block on it."""

    exit_code = 24


class SetupFailedError(ClusterError):
    """The setup job did not bring the database up to date; nothing else was registered."""

    exit_code = 25


class UnsafeChangeError(ClusterError):
    """A change the running jobs cannot take without losing data (fewer queues)."""

    exit_code = 26


class DowngradeError(UnsafeChangeError):
    """The running jobs (or the database, as the setup job left it) are at a newer Matomo
    or plugin version than the deployment file: Matomo has no down-migrations."""

    exit_code = 27


class ArchiverBusyError(ClusterTimeoutError):
    """An upgrade waited for a running archiver launch to end, and it did not in time:
    the upgrade stopped before changing anything else."""

    exit_code = 28


class DetachRefusedError(ClusterError):
    """`run --detach` for a change that must be waited for step by step (an upgrade, a
    queue move): refused before anything changed, as a wrong command line is."""

    exit_code = 64

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

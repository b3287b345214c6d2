"""One exception hierarchy for escalator.

Library code raises these; only the command-line layer turns them into
messages and exit codes (ConfigError and UsageError -> 2, everything else
-> 1).  Each error carries its data so callers need not parse messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class EscalatorError(Exception):
    """Base class of every error escalator raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file: where, which key, what was expected."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ConfigError(EscalatorError):
    """A config file cannot be used; ``problems`` lists every error found."""

    exit_code = 2

    def __init__(self, problems: Sequence[ConfigProblem] | str):
        if isinstance(problems, str):
            problems = [ConfigProblem("<config>", None, "", problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(EscalatorError):
    """The command line or an input file is not usable as given."""

    exit_code = 2


class SpoolError(EscalatorError):
    """The spool cannot be written or read safely (permissions, symlink, disk full)."""


class StepError(EscalatorError):
    """A step could not be started or failed in a way that is not an exit status."""


class LockedError(EscalatorError):
    """Another collector holds the lock of this spool."""

    def __init__(self, lock_file: str, pid: int | None = None):
        self.lock_file = lock_file
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"another collector holds {lock_file}{who}")

"""The faultserver error family.

    FaultserverError
    ├── ProfileError      a profile is not valid; holds every Problem found
    ├── StartError        a valid profile could not be put in force (port taken...)
    └── UsageError        a bad argument on the command line or the Python API

Every message is meant for the user's eyes as is: one line, saying what was expected
and what arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FaultserverError", "Problem", "ProfileError", "StartError", "UsageError"]


class FaultserverError(Exception):
    """Base of every error faultserver raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a profile, located as `FILE:LINE:COLUMN: PATH: message`."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ProfileError(FaultserverError):
    """A profile that is not valid. `problems` lists every one, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StartError(FaultserverError):
    """A valid profile that cannot be put in force, e.g. a port already taken."""


class UsageError(FaultserverError):
    """A bad argument."""

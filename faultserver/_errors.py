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

from typing import Optional, TypeVar

__all__ = [
    "FaultserverError",
    "Problem",
    "ProfileError",
    "StartError",
    "UsageError",
    "find_exception",
]

_E = TypeVar("_E", bound=BaseException)


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


def find_exception(exc: BaseException, kind: type[_E]) -> Optional[_E]:
    """The first `kind` in `exc` or, depth first, in the exception groups around it.

    Trio's nurseries wrap what their tasks raise in exception groups; the edges that
    report a bind failure or a user error need the exception itself.
    """
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_exception(inner, kind)
            if found is not None:
                return found
    return None

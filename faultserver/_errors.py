"""The faultserver error family.

    FaultserverError
    ├── ProfileError              a profile (or a list of rules) is not valid; holds every Problem
    ├── StartError                a valid profile could not be put in force (port taken...)
    │   └── BindPolicyError       a bind the policy refuses (public admin API without a token,
    │                             a port below 1024 over the admin API without --allow-any-bind)
    ├── UsageError                a bad argument on the command line, the Python API or the admin API
    │   └── UnknownListenerError  a listener name that the server does not have
    └── CapacityError             a limit on concurrent use was reached (event stream readers)

Every message is meant for the user's eyes as is: one line, saying what was expected and
what arrived. The admin API maps each type to one HTTP status in one table
(`faultserver._admin.errors.STATUS_OF`); a test keeps that table complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "BindPolicyError",
    "CapacityError",
    "FaultserverError",
    "Problem",
    "ProfileError",
    "StartError",
    "UnknownListenerError",
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
    """A profile that is not valid. `problems` lists every one, in file order.

    `summary` names what was invalid in a few words ("invalid profile", "invalid rules"):
    the admin API's error message, with the problems beside it.
    """

    def __init__(self, problems: list[Problem], summary: str = "invalid profile") -> None:
        self.problems = list(problems)
        self.summary = summary
        super().__init__("\n".join(str(p) for p in self.problems))


class StartError(FaultserverError):
    """A valid profile that cannot be put in force, e.g. a port already taken."""


class BindPolicyError(StartError):
    """A bind that faultserver refuses on purpose, whatever the kernel would allow."""


class UsageError(FaultserverError):
    """A bad argument."""


class UnknownListenerError(UsageError):
    """A listener name the server does not have; the message names the ones it has."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = list(known)
        super().__init__(f"no listener named {name!r} (listeners: {', '.join(known) or 'none'})")


class CapacityError(FaultserverError):
    """A limit on concurrent use was reached; trying again later may succeed."""


def find_exception(exc: BaseException, kind: type[_E]) -> _E | None:
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

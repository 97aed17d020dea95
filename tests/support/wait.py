"""Polling for a condition that another thread or process makes true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["LONG_S", "wait_until"]

#: The timeout for anything that should succeed.
LONG_S = 5.0

_T = TypeVar("_T")


def wait_until(
    predicate: Callable[[], _T],
    timeout: float = LONG_S,
    what: str | Callable[[], str] = "condition",
    interval: float = 0.01,
) -> _T:
    """The first truthy value of `predicate()`, polled every `interval` seconds; an
    AssertionError naming `what` if none comes within `timeout` seconds (a callable `what`
    is asked then, so that it can show how things stand at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"{said}: not true within {timeout:g} s")
        time.sleep(interval)

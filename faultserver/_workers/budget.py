"""`times: N` across workers: one budget per rule, shared through a small file.

The parent writes each `times` rule's N into its own 8-byte slot of a private file; a
worker takes one under `flock`, so the whole fleet acts N times in total, whichever
worker the kernel gave each connection. A take costs a few system calls, and only when a
rule with `times` has matched and drawn (not on the request path otherwise). The budget
lasts the run: a restarted worker takes from what is left. (A shared counter rather than
the parent granting each fault: the decision stays synchronous in the worker, with no
round trip on the request's path.)
"""

from __future__ import annotations

import fcntl
import os
import struct
import tempfile
from collections.abc import Callable

from .._decide.rules import RuleSet
from .._profile.model import Profile

__all__ = ["SharedBudget", "budget_slots"]

_SLOT = struct.Struct("<q")


def budget_slots(profile: Profile) -> dict[tuple[str, int], int]:
    """(listener, rule position) -> its slot, for every rule with `times`."""
    slots: dict[tuple[str, int], int] = {}
    for listener in profile.listeners:
        for position, rule in enumerate(listener.rules):
            if rule.times is not None:
                slots[(listener.name, position)] = len(slots)
    return slots


class SharedBudget:
    """The budgets file, open in this process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    @classmethod
    def create(cls, profile: Profile) -> SharedBudget:
        """The parent's file, each slot holding its rule's `times`."""
        fd, path = tempfile.mkstemp(prefix="faultserver-times-")
        try:
            for listener in profile.listeners:
                for rule in listener.rules:
                    if rule.times is not None:
                        os.write(fd, _SLOT.pack(rule.times))
        finally:
            os.close(fd)
        return cls(path)

    def take(self, slot: int) -> bool:
        """One from `slot`'s budget; False when it is spent."""
        offset = slot * _SLOT.size
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            (left,) = _SLOT.unpack(os.pread(self.fd, _SLOT.size, offset))
            if left <= 0:
                return False
            os.pwrite(self.fd, _SLOT.pack(left - 1), offset)
            return True
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def attach(self, listener: str, ruleset: RuleSet, slots: dict[tuple[str, int], int]) -> None:
        """Make each `times` rule of `ruleset` take from its shared slot."""
        for compiled in ruleset.compiled():
            position = next(i for i, r in enumerate(ruleset.rules) if r is compiled.rule)
            slot = slots.get((listener, position))
            if slot is not None:
                compiled.take = self._taker(slot)

    def _taker(self, slot: int) -> Callable[[], bool]:
        return lambda: self.take(slot)

    def close(self, remove: bool = False) -> None:
        os.close(self.fd)
        if remove:
            try:
                os.unlink(self.path)
            except OSError:
                pass

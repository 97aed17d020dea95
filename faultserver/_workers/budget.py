"""`times: N` across workers: one budget per rule, shared through a small file.

The parent writes each `times` rule's N into its own 8-byte slot of a private file (new
slots for each rule set it builds: a reload, a reset, rules set through the API, a
schedule's phase, so each starts with its full N, as in one process); a
worker takes one under `flock`, so the whole fleet acts N times in total, whichever
worker the kernel gave each connection. A take costs a few system calls, and only when a
rule with `times` has matched and drawn (not on the request path otherwise). The budget
lasts the run: a restarted worker takes from what is left. (A shared counter rather than
the parent granting each fault: the decision stays synchronous in the worker, with no
round trip on the request's path.)
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from .._decide.rules import RuleSet
from .shared_file import SharedFile

__all__ = ["SharedBudget"]

_SLOT = struct.Struct("<q")


class SharedBudget(SharedFile):
    """The budgets file, open in this process."""

    @classmethod
    def create(cls) -> SharedBudget:
        """The parent's file, empty (`allocate` adds the slots)."""
        return cls(cls.make("faultserver-times-"))

    def allocate(self, ruleset: RuleSet) -> list[int | None]:
        """New slots for the `times` rules of `ruleset`, each holding its rule's N: for
        each rule in order, its slot (None: no `times`). Only the parent allocates."""
        slots: list[int | None] = []
        end = os.fstat(self.fd).st_size // _SLOT.size
        for rule in ruleset.rules:
            if rule.times is None:
                slots.append(None)
                continue
            os.pwrite(self.fd, _SLOT.pack(rule.times), end * _SLOT.size)
            slots.append(end)
            end += 1
        return slots

    def take(self, slot: int) -> bool:
        """One from `slot`'s budget; False when it is spent."""
        offset = slot * _SLOT.size
        with self.locked():
            (left,) = _SLOT.unpack(os.pread(self.fd, _SLOT.size, offset))
            if left <= 0:
                return False
            os.pwrite(self.fd, _SLOT.pack(left - 1), offset)
            return True

    def attach(self, ruleset: RuleSet, slots: list[int | None]) -> None:
        """Make each `times` rule of `ruleset` take from its shared slot (`allocate`'s)."""
        by_rule = {id(rule): slot for rule, slot in zip(ruleset.rules, slots, strict=True)}
        for compiled in ruleset.compiled():
            slot = by_rule.get(id(compiled.rule))
            if slot is not None:
                compiled.take = self._taker(slot)

    def _taker(self, slot: int) -> Callable[[], bool]:
        return lambda: self.take(slot)

"""The checker: problems collected on the side, and the checks of plain values.

Each check returns the value it read, or None after reporting a problem; the sections of the
format (`listener.py`, `rule.py`, ...) build their model objects from what came back. A
section knows whether everything inside it was valid by comparing `errors` before and after
(`mark` and `clean_since`): that also counts values the builder had already reported
(`BadNode`), which add no second problem.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from .._errors import Problem, ProfileError
from .describe import choice_problem, expected_integer, unknown_key
from .nodes import BadNode, MapNode, Node, ScalarNode, SeqNode, describe, key_path
from .units import UnitError, number_problem

__all__ = ["Checker", "check_each"]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


class Checker:
    """Collects the problems of one document (or one list of rules) from `source`."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        #: problems found by this checker, including those at values already reported
        self.errors = 0

    # -- bookkeeping

    def problem(self, node: Node, path: str, message: str, *, again: bool = False) -> None:
        """Report `message` at `node`; at a `BadNode` only when `again` (the builder has
        reported it already, in its own words)."""
        self.errors += 1
        if isinstance(node, BadNode) and not again:
            return
        self.problems.append(Problem(self.source, node.line, node.column, path, message))

    def mark(self) -> int:
        return self.errors

    def clean_since(self, mark: int) -> bool:
        """Whether no problem was found since `mark()` returned `mark`."""
        return self.errors == mark

    def raise_if_any(self) -> None:
        if self.problems:
            # stable: problems at one position stay in the order they were found
            ordered = sorted(self.problems, key=lambda p: (p.line, p.column))
            raise ProfileError(ordered)

    # -- mappings of the format

    def fields(
        self,
        node: Node,
        path: str,
        allowed: Sequence[str],
        *,
        required: Sequence[str] = (),
        what: str = "a mapping",
    ) -> dict[str, Node] | None:
        """The known keys of a mapping; unknown keys (but `x-` ones) and missing required keys
        are problems. None when `node` is not a mapping."""
        if not isinstance(node, MapNode):
            self.problem(node, path, f"expected {what}, got {describe(node)}")
            return None
        known: dict[str, Node] = {}
        for key, (key_node, value_node) in node.entries.items():
            if key.startswith("x-"):
                continue
            if key in allowed:
                known[key] = value_node
            else:
                self.problem(key_node, key_path(path, key), unknown_key(key, allowed))
        for key in required:
            if key not in known:
                self.problem(node, path, f"missing required key {key!r}")
        return known

    # -- scalars

    def integer(
        self,
        node: Node,
        path: str,
        low: int | None = None,
        high: int | None = None,
        *,
        sane: tuple[int, int] | None = None,
    ) -> int | None:
        """An integer from `low` to `high`; `sane` is a range beyond which a value cannot be
        meant (a count of 10**30), refused with a message of its own."""
        value = node.value if isinstance(node, ScalarNode) else None
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            self.problem(node, path, f"expected {expected_integer(low, high)}, got {describe(node)}")
            return None
        if sane is not None and not sane[0] <= value <= sane[1]:
            self.problem(node, path, f"expected {expected_integer(*sane)}, got {describe(node)}")
            return None
        return value

    def string(self, node: Node, path: str, what: str = "a string") -> str | None:
        if not isinstance(node, ScalarNode) or not isinstance(node.value, str):
            self.problem(node, path, f"expected {what}, got {describe(node)}")
            return None
        return node.value

    def boolean(self, node: Node, path: str) -> bool | None:
        if not isinstance(node, ScalarNode) or not isinstance(node.value, bool):
            self.problem(node, path, f"expected true or false, got {describe(node)}")
            return None
        return node.value

    def choice(
        self, node: Node, path: str, options: Sequence[str], what: str, article: str = ""
    ) -> str | None:
        """One of a closed set of strings, read in any case (`REFUSE` is `refuse`); `what`
        names it in messages ("accept mode")."""
        value = node.value if isinstance(node, ScalarNode) else None
        if isinstance(value, str) and value.lower() in options:
            return value.lower()
        shown = describe(node)
        self.problem(node, path, choice_problem(value, shown, options, what, article))
        return None

    def member(
        self, node: Node, path: str, members: Sequence[E], what: str, article: str = ""
    ) -> E | None:
        """One member of an enum whose values are strings, chosen among `members`."""
        by_value = {str(m.value): m for m in members}
        value = self.choice(node, path, list(by_value), what, article)
        return None if value is None else by_value[value]

    def unit(self, node: Node, path: str, parse: Callable[[object], T]) -> T | None:
        """Run a `units.py` parser; its `UnitError` message becomes the problem."""
        value: object = node.value if isinstance(node, ScalarNode) else _placeholder(node)
        message = number_problem(value)
        if message is None:
            try:
                return parse(value)
            except UnitError as exc:
                message = str(exc)
            except (ValueError, OverflowError):
                message = f"number too large, got {describe(node)}"
        self.problem(node, path, message)
        return None

    def number(self, node: Node, path: str, low: float, high: float) -> float | None:
        """A finite number from `low` to `high` (an int is taken as a float)."""
        value = node.value if isinstance(node, ScalarNode) else None
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and low <= value <= high
        ):
            return float(value)
        message = f"expected a number from {low:g} to {high:g}, got {describe(node)}"
        self.problem(node, path, message)
        return None


def check_each(
    c: Checker, node: SeqNode, path: str, check: Callable[[Node, str, int], T | None]
) -> tuple[T, ...] | None:
    """Every item of a list, checked by `check(item, its path, its index)`; None when any of
    them had a problem."""
    mark = c.mark()
    checked = [check(item, f"{path}[{i}]", i) for i, item in enumerate(node.items)]
    if not c.clean_since(mark):
        return None
    return tuple(item for item in checked if item is not None)


def _placeholder(node: Node) -> object:
    """What a units parser is given for a collection: it says "a mapping" or "a list"."""
    return {} if isinstance(node, MapNode) else []

"""Deciding which fault a request or a connection gets: matching, `times` and seeded draws.

Theory of operation. A `RuleSet` is built once from a listener's rules (globs and
regexes compiled then, never per request). It owns the mutable state the spec gives
rules: how many times each has acted (`times`) and one random stream per rule. Each
stream is seeded from the profile's seed, the listener's name and the rule's key (its
name, `rule-<index>` by default), and is drawn only when the rule's `match` holds and
it is not spent, so the same requests in the same order get the same decisions, and
adding a rule leaves the other rules' draws alone. Time and sockets never enter here.
"""

from __future__ import annotations

import fnmatch
import operator
import random
import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from .._profile.model import Action, At, Match, Rule
from .request import Request

__all__ = ["CompiledRule", "Decision", "RuleSet", "stream"]

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def stream(seed: int, *parts: str) -> random.Random:
    """A random stream derived from the seed and a path of names.

    `random.Random` seeds from a str through SHA-512, so this is the same on every run
    and every machine, whatever PYTHONHASHSEED says.
    """
    return random.Random("/".join((str(seed),) + parts))


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do: `action` after `delay_s`, drawing any further randomness from `rng`."""

    rule: str
    action: Action
    delay_s: float
    rng: random.Random


class CompiledRule:
    """A rule with its patterns compiled and its mutable state (`times`, random stream)."""

    __slots__ = ("rule", "rng", "remaining", "_path_re", "_header_res", "_methods", "_roc")

    def __init__(self, rule: Rule, rng: random.Random) -> None:
        self.rule = rule
        self.rng = rng
        self.remaining = rule.times
        m: Match = rule.match
        self._methods = m.methods
        if m.path_regex is not None:
            self._path_re: Optional[re.Pattern[str]] = m.path_regex
        elif m.path_glob is not None:
            self._path_re = re.compile(fnmatch.translate(m.path_glob))
        else:
            self._path_re = None
        self._header_res = tuple(
            (name, re.compile(fnmatch.translate(glob))) for name, glob in m.headers
        )
        if m.request_on_connection is not None:
            op, n = m.request_on_connection
            cmp = _COMPARE[op]
            self._roc: Optional[Callable[[int], bool]] = lambda number: cmp(number, n)
        else:
            self._roc = None

    def matches(self, request: Request) -> bool:
        if self._methods is not None and request.method not in self._methods:
            return False
        if self._roc is not None and not self._roc(request.number):
            return False
        if self._path_re is not None:
            # a regex is searched (anchor it with ^...$ to match all); a glob matches all
            if self.rule.match.path_regex is not None:
                if not self._path_re.search(request.path):
                    return False
            elif not self._path_re.match(request.path):
                return False
        for name, pattern in self._header_res:
            if not any(pattern.match(v) for v in request.header_values(name)):
                return False
        return True

    def draw(self) -> Optional[Decision]:
        """Called on a match: `None` when spent or when the probability draw fails."""
        if self.remaining is not None and self.remaining <= 0:
            return None
        rule = self.rule
        if rule.probability < 1.0 and self.rng.random() >= rule.probability:
            return None
        if self.remaining is not None:
            self.remaining -= 1
        delay_s = rule.delay.draw(self.rng) if rule.delay is not None else 0.0
        return Decision(rule.name, rule.action, delay_s, self.rng)


class RuleSet:
    """A listener's rules, in order, with their state. First match that acts wins."""

    __slots__ = ("rules", "_request", "_connect")

    def __init__(self, rules: Sequence[Rule], seed: int, listener: str, scope: str = "") -> None:
        self.rules = tuple(rules)
        prefix = (scope,) if scope else ()
        compiled = [CompiledRule(r, stream(seed, listener, *prefix, r.name)) for r in self.rules]
        self._request = tuple(c for c in compiled if c.rule.at is At.REQUEST)
        self._connect = tuple(c for c in compiled if c.rule.at is At.CONNECT)

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def has_connect_rules(self) -> bool:
        return bool(self._connect)

    def decide_request(self, request: Request) -> Optional[Decision]:
        for c in self._request:
            if c.matches(request):
                decision = c.draw()
                if decision is not None:
                    return decision
        return None

    def decide_connect(self) -> Optional[Decision]:
        for c in self._connect:
            decision = c.draw()
            if decision is not None:
                return decision
        return None

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
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._profile.model import Action, At, Match, Rule
from .._profile.regex import PathRegex
from .request import Request

__all__ = ["CompiledRule", "Decision", "RuleSet", "stream"]


def stream(seed: int, *parts: str) -> random.Random:
    """A random stream derived from the seed and a path of names.

    `random.Random` seeds from a str through SHA-512, so this is the same on every run
    and every machine, whatever PYTHONHASHSEED says.
    """
    return random.Random("/".join((str(seed), *parts)))


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do: `action` after `delay_s`, drawing any further randomness from `rng`."""

    rule: str
    action: Action
    delay_s: float
    rng: random.Random


class CompiledRule:
    """A rule with its patterns compiled and its mutable state (`times`, random stream)."""

    __slots__ = (
        "_alpn",
        "_headers",
        "_methods",
        "_number",
        "_path_glob",
        "_path_regex",
        "_sni_glob",
        "remaining",
        "rng",
        "rule",
        "take",
    )

    def __init__(self, rule: Rule, rng: random.Random) -> None:
        self.rule = rule
        self.rng = rng
        self.remaining = rule.times
        #: `run --workers N`: takes one from the budget all workers share (None: one process)
        self.take: Callable[[], bool] | None = None
        m: Match = rule.match
        self._methods = m.methods
        # a glob matches the whole path; a regex is searched (anchor it with ^...$)
        self._path_glob = _glob(m.path_glob) if m.path_glob is not None else None
        self._path_regex: PathRegex | None = m.path_regex
        self._headers = tuple((name, _glob(glob)) for name, glob in m.headers)
        self._number: Callable[[int], bool] | None = None
        if m.request_on_connection is not None:
            op, n = m.request_on_connection
            self._number = lambda number: op.holds(number, n)
        # `at: handshake`: server names ignore case; a client that sent none matches no glob
        self._sni_glob = _glob(m.sni_glob.lower()) if m.sni_glob is not None else None
        self._alpn = m.alpn

    def matches(self, request: Request) -> bool:
        if self._methods is not None and request.method not in self._methods:
            return False
        if self._number is not None and not self._number(request.number):
            return False
        if self._path_glob is not None and not self._path_glob.match(request.path):
            return False
        if self._path_regex is not None and not self._path_regex.search(request.path):
            return False
        return all(
            any(glob.match(value) for value in request.header_values(name))
            for name, glob in self._headers
        )

    def matches_hello(self, sni: str | None, alpn: tuple[str, ...]) -> bool:
        """`at: handshake`: the server name asked for and the protocols offered."""
        if self._sni_glob is not None and (sni is None or not self._sni_glob.match(sni.lower())):
            return False
        return self._alpn is None or self._alpn in alpn

    def draw(self) -> Decision | None:
        """Called on a match: `None` when spent or when the probability draw fails."""
        if self.remaining is not None and self.remaining <= 0:
            return None
        rule = self.rule
        if rule.probability < 1.0 and self.rng.random() >= rule.probability:
            return None
        if self.remaining is not None:
            if self.take is not None and not self.take():
                self.remaining = 0  # the other workers spent it
                return None
            self.remaining -= 1
        delay_s = rule.delay.draw(self.rng) if rule.delay is not None else 0.0
        return Decision(rule.name, rule.action, delay_s, self.rng)


def _glob(pattern: str) -> re.Pattern[str]:
    """fnmatch's translation: `*` also matches `/`; linear-time for any glob."""
    return re.compile(fnmatch.translate(pattern))


class RuleSet:
    """A listener's rules, in order, with their state. First match that acts wins."""

    __slots__ = ("_connect", "_handshake", "_request", "rules", "scope")

    def __init__(self, rules: Sequence[Rule], seed: int, listener: str, scope: str = "") -> None:
        self.rules = tuple(rules)
        #: what the random streams are named after besides the listener and rule ("phase-0")
        self.scope = scope
        prefix = (scope,) if scope else ()
        compiled = [CompiledRule(r, stream(seed, listener, *prefix, r.name)) for r in self.rules]
        self._request = tuple(c for c in compiled if c.rule.at is At.REQUEST)
        self._connect = tuple(c for c in compiled if c.rule.at is At.CONNECT)
        self._handshake = tuple(c for c in compiled if c.rule.at is At.HANDSHAKE)

    def compiled(self) -> tuple[CompiledRule, ...]:
        """Every rule with its state (request, connect, then handshake rules)."""
        return self._request + self._connect + self._handshake

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def has_connect_rules(self) -> bool:
        return bool(self._connect)

    def decide_request(self, request: Request) -> Decision | None:
        for c in self._request:
            if c.matches(request):
                decision = c.draw()
                if decision is not None:
                    return decision
        return None

    @property
    def has_handshake_rules(self) -> bool:
        return bool(self._handshake)

    def decide_handshake(self, sni: str | None, alpn: tuple[str, ...]) -> Decision | None:
        for c in self._handshake:
            if c.matches_hello(sni, alpn):
                decision = c.draw()
                if decision is not None:
                    return decision
        return None

    def decide_connect(self) -> Decision | None:
        for c in self._connect:
            decision = c.draw()
            if decision is not None:
                return decision
        return None

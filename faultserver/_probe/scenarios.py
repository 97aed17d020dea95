"""The probe's scenarios: one table, each row a real-world cause and how to stage it.

A scenario says what the backend does (a listener's `accept`, `keepalive`, `rules` and
`response`, exactly as a profile spells them) and how the probe drives the gateway (its
`Plan`). `run.py` puts each scenario in force through `Server.load`, the code behind the
admin API's `PUT /profile`, and `verdicts.py` judges each row by the scenario's name.
Nothing here does I/O: the profile data are plain dicts, checked by the loader.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import UsageError

__all__ = [
    "IDLE_CLOSE_S",
    "LISTENER",
    "PARTIAL_BODY_BYTES",
    "PARTIAL_CUT_BYTES",
    "POOL_DELAY_S",
    "POOL_MIN_DELAY_S",
    "SCENARIOS",
    "Plan",
    "Scenario",
    "pool_delay",
    "pool_listener",
    "profile_data",
    "select_scenarios",
    "slow_listener",
]

#: The name of the probe's one listener (the backend the gateway's route points at).
LISTENER = "backend"
#: `idle-close`: the backend closes a kept-alive connection idle this long; the probe's
#: next request goes one second later.
IDLE_CLOSE_S = 1.0
#: `partial-response`: the body's size, and where the backend cuts the response (bytes
#: from its start: the status line and headers are under 200 bytes, so the cut is in the body).
PARTIAL_BODY_BYTES = 1000
PARTIAL_CUT_BYTES = 300
#: `pool-exhaustion`: every request takes this long, so concurrent ones overlap; or, if
#: shorter, this share of the longest delay `slow-first-byte` saw answered (at least
#: `POOL_MIN_DELAY_S`). Long enough for a gateway's queue timeout to show, short enough for
#: no answer to be a read timeout.
POOL_DELAY_S = 1.0
POOL_READ_TIMEOUT_SHARE = 0.8
POOL_MIN_DELAY_S = 0.3


class Plan(str, enum.Enum):
    """How the probe drives the gateway for a scenario."""

    #: the scenario's requests in turn, on one client connection
    IN_TURN = "in-turn"
    #: a warm-up GET, then the scenario's request on the same client connection, so that
    #: the gateway may send it on the upstream connection the warm-up left open
    REUSE = "reuse"
    #: a warm-up GET, a wait past the backend's idle close, then the scenario's request
    IDLE = "idle"
    #: a request that is never answered (the gateway's read timeout shows), then a
    #: bisection of the backend's delay between "answered" and "timed out"
    READ_TIMEOUT = "read-timeout"
    #: concurrency raised step by step until the gateway queues or refuses
    POOL = "pool"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One row of the report.

    `cause`: the real-world cause it stands for; `expects`: what that cause should produce
    at a gateway, in one line. `listener`: the backend's listener fields (no name, no
    bind). `methods`: the methods of the probe's own requests (warm-ups not counted).
    `limit_s`: the scenario's time limit beyond its `waits` longest waits for one answer
    (`--max-wait` each). `own_connections`: each request on a client connection of its own
    (else one client connection, kept alive, for all of them).
    """

    name: str
    cause: str
    expects: str
    plan: Plan
    listener: Mapping[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ("GET",)
    limit_s: float = 10.0
    waits: int = 0
    own_connections: bool = False

    def limit_for(self, max_wait_s: float) -> float:
        """The scenario's time limit, given the longest wait for one answer."""
        return self.limit_s + self.waits * max_wait_s


def _on_reuse(action: str) -> dict[str, Any]:
    """A backend that answers the first request on each connection and meets every later
    one with `action` (`close`: FIN, `reset`: RST), as a backend that closed a kept-alive
    connection the gateway was about to reuse."""
    return {
        "rules": [
            {"name": f"{action}-on-reuse", "match": {"request_on_connection": ">=2"}, "action": action}
        ]
    }


_FIN_CAUSE = "the backend closed (FIN) a kept-alive connection just as the gateway reused it"
_RST_CAUSE = "the backend reset (RST) a kept-alive connection just as the gateway reused it"
_GET_AGAIN = "a GET sent again on a new connection, or an error"

#: Every scenario, in the order the probe runs them.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "healthy",
        "baseline: a healthy backend",
        "200 for every request; ideally kept-alive upstream connections",
        Plan.IN_TURN,
        methods=("GET", "GET", "POST", "GET"),
    ),
    Scenario(
        "refused",
        "the backend is down or restarting: its port refuses connections",
        "a 502 or 503 at once",
        Plan.IN_TURN,
        {"accept": "refuse"},
        limit_s=15.0,
        waits=1,
    ),
    Scenario(
        "connect-timeout",
        "the backend is unreachable: SYNs are dropped (firewall, overloaded host)",
        "a 502, 503 or 504 after the gateway's connect timeout, a few seconds at most",
        Plan.IN_TURN,
        {"accept": "stall"},
        limit_s=5.0,
        waits=1,
    ),
    Scenario("fin-get", _FIN_CAUSE, _GET_AGAIN, Plan.REUSE, _on_reuse("close")),
    Scenario(
        "fin-post", _FIN_CAUSE, "a POST not sent again (it may have been processed)", Plan.REUSE,
        _on_reuse("close"), methods=("POST",),
    ),
    Scenario("rst-get", _RST_CAUSE, _GET_AGAIN, Plan.REUSE, _on_reuse("reset")),
    Scenario(
        "rst-post", _RST_CAUSE, "a POST not sent again (it may have been processed)", Plan.REUSE,
        _on_reuse("reset"), methods=("POST",),
    ),
    Scenario(
        "idle-close",
        f"the backend closes kept-alive connections idle for {IDLE_CLOSE_S:g} s (its keep-alive "
        "timeout is shorter than the gateway's)",
        "200: the gateway saw the FIN and opened a new connection",
        Plan.IDLE,
        {"keepalive": {"idle_close": IDLE_CLOSE_S}},
    ),
    Scenario(
        "reset",
        "the backend crashes mid-request: it resets the connection after reading the request",
        "a 502, the request not sent again (POST especially)",
        Plan.IN_TURN,
        {"rules": [{"name": "reset", "action": "reset"}]},
        methods=("GET", "POST"),
        own_connections=True,
    ),
    Scenario(
        "partial-response",
        f"the backend dies mid-response: {PARTIAL_CUT_BYTES} bytes of a {PARTIAL_BODY_BYTES}-byte "
        "body, then FIN",
        "an error; a gateway that has sent the status line already can only cut the body",
        Plan.IN_TURN,
        {
            "response": {"body": {"size": PARTIAL_BODY_BYTES}},
            "rules": [{"name": "partial", "action": "partial", "bytes": PARTIAL_CUT_BYTES}],
        },
    ),
    Scenario(
        "slow-first-byte",
        "the backend is slow to answer (a long query, a GC pause, a stuck dependency)",
        "a 504 after the gateway's read timeout, which the probe measures",
        Plan.READ_TIMEOUT,
        limit_s=20.0,
        waits=1,
    ),
    Scenario(
        "pool-exhaustion",
        "more concurrent requests than the gateway allows upstream (each takes "
        f"{POOL_DELAY_S:g} s, or less to stay within the read timeout)",
        "a queue with a bounded wait, or a fast 503, above the gateway's limit",
        Plan.POOL,
        limit_s=40.0,
    ),
)


def slow_listener(delay_s: float | None) -> dict[str, Any]:
    """`slow-first-byte`: every request answered after `delay_s`, or never (None: `hang`)."""
    if delay_s is None:
        return {"rules": [{"name": "hang", "action": "hang"}]}
    return {"rules": [{"name": "slow", "delay": round(delay_s, 3), "action": "respond"}]}


def pool_delay(read_timeout_s: float | None) -> float:
    """How long each `pool-exhaustion` request takes: well within the gateway's read timeout
    (its lower bound, when `slow-first-byte` found one), so no answer is a read timeout."""
    if read_timeout_s is None:
        return POOL_DELAY_S
    return max(POOL_MIN_DELAY_S, min(POOL_DELAY_S, read_timeout_s * POOL_READ_TIMEOUT_SHARE))


def pool_listener(delay_s: float = POOL_DELAY_S) -> dict[str, Any]:
    """`pool-exhaustion`: every request answered after `delay_s`, concurrently."""
    return {"rules": [{"name": "slow", "delay": round(delay_s, 3), "action": "respond"}]}


def profile_data(bind: str, listener: Mapping[str, Any]) -> dict[str, Any]:
    """A profile with the probe's one listener on `bind`, set up as `listener` says."""
    return {"version": 1, "listeners": [{"name": LISTENER, "bind": bind, **listener}]}


def select_scenarios(names: Sequence[str] | None) -> tuple[Scenario, ...]:
    """The scenarios named (in the table's order), or all of them for None.

    An unknown name is a UsageError naming the known ones.
    """
    if names is None:
        return SCENARIOS
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"probe: --scenarios: unknown scenario {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(known)}"
        )
    if not names:
        raise UsageError(f"probe: --scenarios: expected at least one of {', '.join(known)}")
    wanted = set(names)
    return tuple(s for s in SCENARIOS if s.name in wanted)

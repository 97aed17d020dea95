"""One-line verdicts: what the gateway did, compared with what the cause should produce.

Pure code. Each scenario has one judge in `JUDGES`, which reads the scenario's
`Observation` and says, in one line, what a client of this gateway will live with, at one
of three levels: OK (what the cause should produce), NOTE (worth knowing) and RISK (a
client will wait, fail where it need not, or see a side effect twice).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from .analyse import Observation
from .model import Failure, Reply
from .scenarios import IDLE_CLOSE_S, PARTIAL_BODY_BYTES

__all__ = ["CONNECT_SLOW_S", "FAST_S", "JUDGES", "Level", "Verdict", "judge"]

#: A failure answered within this long is "at once".
FAST_S = 0.5
#: A connect timeout above this keeps clients waiting.
CONNECT_SLOW_S = 5.0
#: A read timeout above this keeps clients waiting.
READ_SLOW_S = 30.0
#: A request never answered that took this many read timeouts was sent more than once.
RETRIED_FACTOR = 1.5


class Level(str, enum.Enum):
    OK = "ok"
    NOTE = "note"
    RISK = "risk"


@dataclass(frozen=True, slots=True)
class Verdict:
    level: Level
    text: str

    def __str__(self) -> str:
        return f"{self.level.value}: {self.text}"


def seconds(value: float) -> str:
    """`0.52 s`, `12 s`: two decimals below ten seconds."""
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"


def _ok(reply: Reply) -> bool:
    return reply.failure is None and reply.status is not None and 200 <= reply.status < 300


def _unanswered(reply: Reply) -> bool:
    """The gateway dropped the client connection without a status line."""
    return reply.status is None and reply.failure in (Failure.CLOSED, Failure.RESET)


def _first(obs: Observation) -> Reply | None:
    return obs.probes[0] if obs.probes else None


def _not_run(obs: Observation) -> Verdict:
    return Verdict(Level.NOTE, f"not measured ({obs.cut_short or 'no request was sent'})")


# --- the judges ---------------------------------------------------------------------------


def judge_healthy(obs: Observation) -> Verdict:
    probes = obs.probes
    if not probes:
        return _not_run(obs)
    if not all(_ok(r) for r in probes):
        outcomes = ", ".join(obs.outcomes)
        return Verdict(Level.RISK, f"the baseline fails ({outcomes}): the other rows mean little")
    conns = {a.conn for r in probes for a in obs.arrivals_of(r)}
    if obs.reused:
        return Verdict(
            Level.OK, f"200; upstream keep-alive: {len(probes)} requests over {len(conns)} connection(s)"
        )
    return Verdict(
        Level.NOTE,
        "200; a new upstream connection per request (no upstream keep-alive): every request "
        "pays a connect, and the reuse races below cannot happen",
    )


def judge_refused(obs: Observation) -> Verdict:
    reply = _first(obs)
    if reply is None:
        return _not_run(obs)
    if reply.failure is Failure.TIMEOUT:
        return Verdict(Level.RISK, f"no answer within {seconds(reply.took_s)}: clients wait")
    if _ok(reply):
        return Verdict(Level.NOTE, f"{reply.status} although the backend refuses: another upstream answered")
    if _unanswered(reply):
        return Verdict(Level.NOTE, f"the gateway drops the client connection ({reply.outcome}), no 502/503")
    if reply.took_s < FAST_S:
        return Verdict(Level.OK, f"{reply.outcome} at once ({seconds(reply.took_s)}): fails fast")
    return Verdict(
        Level.NOTE,
        f"{reply.outcome} after {seconds(reply.took_s)}: the gateway retries the connect; clients wait",
    )


def judge_connect_timeout(obs: Observation) -> Verdict:
    reply = _first(obs)
    if reply is None:
        return _not_run(obs)
    if reply.failure is Failure.TIMEOUT:
        return Verdict(Level.RISK, f"no connect timeout below {seconds(reply.took_s)}: clients will wait")
    if _ok(reply):
        return Verdict(Level.NOTE, f"{reply.status}: the request did not meet the stalled backend")
    if reply.took_s > CONNECT_SLOW_S:
        return Verdict(
            Level.RISK,
            f"{reply.outcome} only after {seconds(reply.took_s)} (connect timeout x retries): clients wait",
        )
    return Verdict(Level.OK, f"{reply.outcome} after {seconds(reply.took_s)}: the gateway's connect timeout")


def _judge_reuse(how: str) -> Callable[[Observation], Verdict]:
    def judge(obs: Observation) -> Verdict:
        reply = _first(obs)
        if reply is None:
            return _not_run(obs)
        method = reply.method
        arrivals = obs.arrivals_of(reply)
        if not arrivals:
            return Verdict(Level.NOTE, f"{reply.outcome}: the {method} never reached the backend")
        if arrivals[0].request_on_connection == 1:
            return Verdict(
                Level.NOTE,
                f"{reply.outcome}: the {method} came on a new upstream connection, not a reused one; "
                "this race cannot happen here",
            )
        if len(arrivals) > 1:
            if method == "POST":
                return Verdict(
                    Level.RISK,
                    f"gateway retries POST after {how} ({reply.outcome}): risk of duplicate side effects",
                )
            return Verdict(
                Level.OK if _ok(reply) else Level.NOTE,
                f"gateway retries {method} after {how} on a reused connection: the client gets "
                f"{reply.outcome}",
            )
        if _unanswered(reply):
            return Verdict(
                Level.NOTE,
                f"gateway passes the {how} on: the client connection closes without an answer "
                f"({reply.outcome}); the client must retry",
            )
        if method == "POST":
            return Verdict(Level.OK, f"POST after {how} gets {reply.outcome}, not retried: no duplicate")
        return Verdict(
            Level.NOTE, f"{method} after {how} gets {reply.outcome}, not retried: clients see the error"
        )

    judge.__name__ = f"judge_{how.lower()}_on_reuse"
    return judge


def judge_idle_close(obs: Observation) -> Verdict:
    reply = _first(obs)
    if reply is None:
        return _not_run(obs)
    arrivals = obs.arrivals_of(reply)
    if obs.idle_closes == 0:
        return Verdict(
            Level.NOTE, f"{reply.outcome}: no upstream connection stayed idle for the backend to close"
        )
    if _ok(reply):
        fresh = bool(arrivals) and arrivals[-1].request_on_connection == 1
        where = "opened a new connection" if fresh else "recovered"
        return Verdict(Level.OK, f"{reply.outcome}: the gateway saw the idle close and {where}")
    return Verdict(
        Level.RISK,
        f"{reply.outcome}: the gateway reused a connection the backend had closed after "
        f"{IDLE_CLOSE_S:g} s idle; keep its upstream idle timeout below the backend's",
    )


def judge_reset(obs: Observation) -> Verdict:
    probes = obs.probes
    if not probes:
        return _not_run(obs)
    if obs.retried.get("POST"):
        return Verdict(Level.RISK, "gateway sends a POST again after a reset: risk of duplicate side effects")
    outcomes = ", ".join(f"{r.method} {r.outcome}" for r in probes)
    if obs.retried.get("GET"):
        return Verdict(Level.NOTE, f"gateway retries GET after a reset: {outcomes}")
    if any(_unanswered(r) for r in probes):
        return Verdict(Level.NOTE, f"the gateway drops the client connection without an answer: {outcomes}")
    if any(r.failure is Failure.TIMEOUT for r in probes):
        return Verdict(Level.RISK, f"no answer after the backend reset: {outcomes}")
    return Verdict(Level.OK, f"{outcomes}, not retried: clients see the crash as an error")


def judge_partial(obs: Observation) -> Verdict:
    reply = _first(obs)
    if reply is None:
        return _not_run(obs)
    if reply.status is not None and 200 <= reply.status < 300:
        if reply.failure is None and reply.body_bytes >= PARTIAL_BODY_BYTES:
            return Verdict(Level.RISK, f"{reply.status} with the whole body although the backend cut it")
        return Verdict(
            Level.NOTE,
            f"{reply.status} with the body cut short ({reply.body_bytes} of {PARTIAL_BODY_BYTES} bytes): "
            "only the length tells clients",
        )
    if _unanswered(reply):
        return Verdict(Level.NOTE, f"the gateway drops the client connection ({reply.outcome})")
    return Verdict(Level.OK, f"{reply.outcome}: the gateway turns a cut response into an error")


def judge_slow_first_byte(obs: Observation) -> Verdict:
    found = obs.read_timeout
    if found is None:
        return _not_run(obs)
    if found.hi_s is None:
        return Verdict(Level.RISK, f"no read timeout below {seconds(found.waited_s)}: clients will wait")
    low = found.lo_s or 0.0
    text = (
        f"{found.first} after {seconds(found.first_took_s)}: read timeout between {low:.2f} and "
        f"{found.hi_s:.2f} s"
    )
    if found.first_took_s > READ_SLOW_S:
        return Verdict(Level.RISK, f"{text}: clients will wait")
    if found.first_took_s > RETRIED_FACTOR * found.hi_s:
        return Verdict(Level.NOTE, f"{text}, and the request sent again after it")
    return Verdict(Level.OK, text)


def judge_pool(obs: Observation) -> Verdict:
    found = obs.pool
    if found is None or not found.steps:
        return _not_run(obs)
    step = found.limiting
    if step is None:
        return Verdict(
            Level.NOTE,
            f"no pool limit up to {found.largest_tried} concurrent requests "
            f"({found.peak} upstream at once): the backend takes the whole load",
        )
    if step.refused:
        wait = step.refused_wait_s or 0.0
        when = "at once" if wait < FAST_S / 5 else f"after {seconds(wait)}"
        return Verdict(
            Level.OK,
            f"pool gives up {when} with {step.refused_outcome} above {found.limit} concurrent requests",
        )
    return Verdict(
        Level.NOTE,
        f"pool queues above {found.limit} concurrent requests: up to {seconds(step.queue_wait_s or 0.0)} "
        "extra wait, then 200",
    )


JUDGES: dict[str, Callable[[Observation], Verdict]] = {
    "healthy": judge_healthy,
    "refused": judge_refused,
    "connect-timeout": judge_connect_timeout,
    "fin-get": _judge_reuse("FIN"),
    "fin-post": _judge_reuse("FIN"),
    "rst-get": _judge_reuse("RST"),
    "rst-post": _judge_reuse("RST"),
    "idle-close": judge_idle_close,
    "reset": judge_reset,
    "partial-response": judge_partial,
    "slow-first-byte": judge_slow_first_byte,
    "pool-exhaustion": judge_pool,
}


def judge(scenario: str, obs: Observation) -> Verdict:
    """The verdict on one scenario; a scenario cut short says so after it."""
    verdict = JUDGES[scenario](obs)
    if obs.cut_short and obs.probes:
        return Verdict(verdict.level, f"{verdict.text} (stopped early: {obs.cut_short})")
    return verdict

"""The probe's Trio part: a faultserver `Server` as the backend, the scenarios driven in turn.

The backend is an in-process `Server` bound to `--backend HOST:PORT`, without the admin
API. Each scenario is put in force with `Server.load` (the code behind `PUT /profile`)
and, before it, `Server.drop` (behind `POST /listeners/NAME/drop`) closes the upstream
connections left from the scenario before, so each starts with none. The requests go
through `client.py` in worker threads; each driver below only decides what to send next
(`search.py` decides for the two searches) and keeps what came back in a `Progress`, so a
scenario stopped by its time limit still reports what it saw.

Bounds: each request waits at most `max_wait_s` (and never past its scenario's end); each
scenario has its time limit (`Scenario.limit_for`); the whole run stops starting new
scenarios at `max_duration_s`; and whatever happens, the backend is put back to healthy
before the server stops.
"""

from __future__ import annotations

import datetime
import functools
import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from .._errors import FaultserverError, StartError, UsageError, find_exception
from .._events import EventLog
from .._profile.load import load_profile_data
from .._profile.model import CloseHow
from .._server import Server
from .analyse import Observation, observe, peak_in_flight, token_of
from .client import GatewayURL, Session
from .model import Failure, Reply, Role
from .report import Report, make_row
from .scenarios import (
    IDLE_CLOSE_S,
    LISTENER,
    SCENARIOS,
    Plan,
    Scenario,
    pool_delay,
    pool_listener,
    profile_data,
    slow_listener,
)
from .search import (
    Bisection,
    PoolStep,
    ReadTimeoutFinding,
    classify_step,
    first_bound,
    next_concurrency,
    pool_finding,
)
from .verdicts import judge

__all__ = [
    "DEFAULT_MAX_DURATION_S", "DEFAULT_MAX_WAIT_S", "ProbeInputError", "ProbeOptions", "probe", "run_probe",
]

#: `--max-duration`: the whole run, and `--max-wait`: one answer.
DEFAULT_MAX_DURATION_S = 180.0
DEFAULT_MAX_WAIT_S = 30.0
#: The preflight request: how long it may take, and how long its arrival at the backend
#: may lag the gateway's answer.
PREFLIGHT_WAIT_S = 10.0
ARRIVAL_LAG_S = 0.3
#: After closing upstream connections, time for the gateway to see the FIN.
SETTLE_S = 0.3
#: Between a warm-up's answer and the request meant for the connection it left open.
REUSE_PAUSE_S = 0.1
#: The shortest wait any one request gets.
MIN_WAIT_S = 0.5
#: A request delayed `d` in the read-timeout search may take `d` times this, plus slack.
BISECT_WAIT_FACTOR = 2.0
BISECT_WAIT_SLACK_S = 2.0


class ProbeInputError(UsageError):
    """The probe cannot run with what it was given (a gateway that is down or does not
    reach the backend, a backend port that is taken): exit 2, one line."""


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """`faultserver probe`'s arguments, parsed."""

    gateway: GatewayURL
    backend: tuple[str, int]
    scenarios: tuple[Scenario, ...] = SCENARIOS
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    max_wait_s: float = DEFAULT_MAX_WAIT_S

    @property
    def backend_text(self) -> str:
        host, port = self.backend
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Progress:
    """What a scenario has gathered so far (kept when its time limit stops it)."""

    replies: list[Reply] = field(default_factory=list)
    read_timeout: ReadTimeoutFinding | None = None
    pool_steps: list[PoolStep] = field(default_factory=list)
    pool_delay_s: float | None = None


Driver = Callable[["_Probe", Scenario, Progress, float], Awaitable[None]]


class _Probe:
    """One run: the server, the options, and the helpers the drivers share."""

    def __init__(self, server: Server, events: EventLog, options: ProbeOptions) -> None:
        self.server = server
        self.events = events
        self.options = options
        self._numbers = itertools.count(1)
        #: the longest backend delay the gateway waited for, once `slow-first-byte` ran
        self.read_timeout_lo_s: float | None = None
        #: requests in flight when their scenario's time ran out
        self.interrupted: list[Reply] = []

    def token(self, scenario: str) -> str:
        return f"probe-{scenario}-{next(self._numbers)}"

    async def load(self, listener: Mapping[str, Any]) -> None:
        """Put the backend into a state, as `PUT /profile` would."""
        data = profile_data(self.options.backend_text, listener)
        await self.server.load(load_profile_data(data, source="<probe>"))

    async def close_connections(self) -> None:
        """Close every upstream connection (FIN), as `POST /listeners/NAME/drop` would."""
        if self.server.drop(LISTENER, CloseHow.FIN):
            await trio.sleep(SETTLE_S)

    def wait_for(self, deadline: float, longest: float | None = None) -> float:
        """How long the next request may wait: `--max-wait` (or `longest`), never past
        `deadline`, and never less than `MIN_WAIT_S`."""
        cap = self.options.max_wait_s if longest is None else min(longest, self.options.max_wait_s)
        return max(MIN_WAIT_S, min(cap, deadline - trio.current_time()))

    async def send(
        self, session: Session, method: str, token: str, role: Role, wait_s: float, note: str = ""
    ) -> Reply:
        call = functools.partial(session.send, method, token, role, timeout_s=wait_s, note=note)
        start = trio.current_time()
        try:
            return await trio.to_thread.run_sync(call, abandon_on_cancel=True)
        except trio.Cancelled:
            # the scenario's time ran out: the request counts as unanswered so far
            took = trio.current_time() - start
            detail = "no answer before the scenario's time ran out"
            self.interrupted.append(Reply(token, method, role, took, failure=Failure.TIMEOUT, detail=detail))
            raise

    async def send_fresh(self, method: str, token: str, wait_s: float, note: str = "") -> Reply:
        """One request on a client connection of its own."""
        session = Session(self.options.gateway, wait_s)
        try:
            return await self.send(session, method, token, Role.PROBE, wait_s, note)
        finally:
            session.close()


# --- the drivers, one per plan -------------------------------------------------------------


async def _in_turn(p: _Probe, scenario: Scenario, progress: Progress, deadline: float) -> None:
    if scenario.own_connections:
        for method in scenario.methods:
            progress.replies.append(await p.send_fresh(method, p.token(scenario.name), p.wait_for(deadline)))
        return
    session = Session(p.options.gateway, p.options.max_wait_s)
    try:
        for method in scenario.methods:
            reply = await p.send(session, method, p.token(scenario.name), Role.PROBE, p.wait_for(deadline))
            progress.replies.append(reply)
    finally:
        session.close()


async def _reuse(p: _Probe, scenario: Scenario, progress: Progress, deadline: float) -> None:
    await _warm_then(p, scenario, progress, deadline, REUSE_PAUSE_S, scenario.methods)


async def _idle(p: _Probe, scenario: Scenario, progress: Progress, deadline: float) -> None:
    await _warm_then(p, scenario, progress, deadline, IDLE_CLOSE_S + 1.0, ("GET",))


async def _warm_then(
    p: _Probe,
    scenario: Scenario,
    progress: Progress,
    deadline: float,
    pause_s: float,
    methods: tuple[str, ...],
) -> None:
    """A GET that opens a kept-alive connection, a pause, then `methods` on that connection."""
    session = Session(p.options.gateway, p.options.max_wait_s)
    try:
        warm = await p.send(session, "GET", p.token(scenario.name), Role.WARM_UP, p.wait_for(deadline))
        progress.replies.append(warm)
        await trio.sleep(pause_s)
        for method in methods:
            reply = await p.send(session, method, p.token(scenario.name), Role.PROBE, p.wait_for(deadline))
            progress.replies.append(reply)
    finally:
        session.close()


async def _read_timeout(p: _Probe, scenario: Scenario, progress: Progress, deadline: float) -> None:
    await p.load(slow_listener(None))
    first = await p.send_fresh("GET", p.token(scenario.name), p.wait_for(deadline), note="never answered")
    progress.replies.append(first)
    bound = first_bound(first)
    progress.read_timeout = ReadTimeoutFinding(
        first.outcome, first.took_s, None, None, round(first.took_s, 3)
    )
    if bound is None:
        return
    search = Bisection(0.0, bound)
    progress.read_timeout = _finding(first, search)
    while (delay := search.next_delay()) is not None:
        await p.close_connections()
        await p.load(slow_listener(delay))
        wait = p.wait_for(deadline, delay * BISECT_WAIT_FACTOR + BISECT_WAIT_SLACK_S)
        reply = await p.send_fresh("GET", p.token(scenario.name), wait, note=f"delay={delay:.3f}s")
        progress.replies.append(reply)
        search = search.after(delay, reply)
        progress.read_timeout = _finding(first, search)


def _finding(first: Reply, search: Bisection) -> ReadTimeoutFinding:
    return ReadTimeoutFinding(
        first.outcome, first.took_s, search.lo_s, search.hi_s, round(first.took_s, 3), search.tried
    )


async def _pool(p: _Probe, scenario: Scenario, progress: Progress, deadline: float) -> None:
    delay = pool_delay(p.read_timeout_lo_s)
    progress.pool_delay_s = delay
    await p.load(pool_listener(delay))
    while (concurrency := next_concurrency(progress.pool_steps)) is not None:
        if deadline - trio.current_time() < delay * 2:
            return
        mark = p.events.last_id
        wait = p.wait_for(deadline, delay + p.options.max_wait_s)
        replies: list[Reply] = []

        async def one(token: str, note: str, wait: float = wait, replies: list[Reply] = replies) -> None:
            replies.append(await p.send_fresh("GET", token, wait, note))

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(one, p.token(scenario.name), f"step={concurrency}")
        progress.replies.extend(replies)
        await trio.sleep(ARRIVAL_LAG_S)
        peak = peak_in_flight(p.events.select(since=mark))
        progress.pool_steps.append(classify_step(concurrency, replies, peak, delay))


DRIVERS: dict[Plan, Driver] = {
    Plan.IN_TURN: _in_turn,
    Plan.REUSE: _reuse,
    Plan.IDLE: _idle,
    Plan.READ_TIMEOUT: _read_timeout,
    Plan.POOL: _pool,
}


# --- the run -------------------------------------------------------------------------------


async def _preflight(p: _Probe) -> None:
    """One GET through the gateway to the healthy backend: the gateway must answer, and
    the request must arrive. Raises ProbeInputError saying which it was not."""
    url, backend = p.options.gateway, p.options.backend_text
    token = p.token("preflight")
    reply = await p.send_fresh("GET", token, min(PREFLIGHT_WAIT_S, p.options.max_wait_s))
    if reply.status is None:
        if reply.failure is Failure.REFUSED:
            raise ProbeInputError(f"probe: the gateway {url} is down: it refused the connection")
        raise ProbeInputError(f"probe: the gateway {url} did not answer: {reply.detail or reply.outcome}")
    await trio.sleep(ARRIVAL_LAG_S)
    arrived = [e for e in p.events.select(type="request") if token_of(str(e.get("path", ""))) == token]
    if not arrived:
        raise ProbeInputError(
            f"probe: no request reached the backend at {backend}: GET {url.target(token)} got "
            f"{reply.outcome} from the gateway; point the gateway's route for {url} at {backend}"
        )


async def _run_scenario(p: _Probe, scenario: Scenario, run_deadline: float) -> Observation:
    now = trio.current_time()
    deadline = min(now + scenario.limit_for(p.options.max_wait_s), run_deadline)
    await p.close_connections()
    await p.load(scenario.listener)
    mark = p.events.last_id
    progress = Progress()
    with trio.move_on_at(deadline) as scope:
        await DRIVERS[scenario.plan](p, scenario, progress, deadline)
    cut_short = None
    progress.replies.extend(p.interrupted)
    p.interrupted.clear()
    if scope.cancelled_caught:
        cut_short = "--max-duration" if deadline == run_deadline else "its time limit"
    await trio.sleep(REUSE_PAUSE_S)  # the events of a request the gateway just gave up on
    pool = pool_finding(progress.pool_steps, progress.pool_delay_s) if scenario.plan is Plan.POOL else None
    found = progress.read_timeout
    if found is not None and found.hi_s is not None and found.lo_s:
        p.read_timeout_lo_s = found.lo_s
    return observe(
        progress.replies,
        p.events.select(since=mark),
        read_timeout=progress.read_timeout,
        pool=pool,
        cut_short=cut_short,
    )


async def probe(options: ProbeOptions, progress: Callable[[str], None] | None = None) -> Report:
    """Run every scenario of `options` against the gateway; returns the report."""
    from .. import __version__

    events = EventLog()
    bind = options.backend_text
    server = Server(
        load_profile_data(profile_data(bind, {}), source="<probe>"), with_admin=False, events=events
    )
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    start = trio.current_time()
    run_deadline = start + options.max_duration_s
    rows = []
    skipped: list[str] = []
    async with trio.open_nursery() as nursery:
        try:
            await nursery.start(server.run)
        except BaseException as exc:
            error = find_exception(exc, StartError)
            if error is not None:
                raise ProbeInputError(f"probe: --backend {bind}: {_after_listener(str(error))}") from None
            raise
        p = _Probe(server, events, options)
        try:
            await _preflight(p)
            for scenario in options.scenarios:
                if trio.current_time() >= run_deadline:
                    skipped.append(scenario.name)
                    continue
                observation = await _run_scenario(p, scenario, run_deadline)
                row = make_row(scenario, observation, judge(scenario.name, observation))
                rows.append(row)
                if progress is not None:
                    progress(f"{scenario.name}: {row.statuses}: {row.verdict}")
        finally:
            with trio.CancelScope(shield=True):
                await p.load({})  # healthy again, whatever happened
                server.stop()
    return Report(
        gateway=str(options.gateway),
        backend=bind,
        started=started,
        duration_s=trio.current_time() - start,
        version=__version__,
        rows=tuple(rows),
        skipped=tuple(skipped),
    )


def _after_listener(message: str) -> str:
    """`listener backend: cannot bind ...` -> `cannot bind ...` (the user named no listener)."""
    return message.partition(": ")[2] if message.startswith(f"listener {LISTENER}: ") else message


def run_probe(options: ProbeOptions, progress: Callable[[str], None] | None = None) -> Report:
    """`probe` for synchronous callers: its own Trio loop; a FaultserverError comes out
    bare, not inside an exception group."""
    try:
        return trio.run(probe, options, progress)
    except BaseExceptionGroup as group:
        error = find_exception(group, FaultserverError)
        if error is not None:
            raise error from None
        raise

"""Per-listener counters, and their rendering in the Prometheus text format.

The counters are plain attributes bumped by the data plane (one Trio thread, so no
locks); the admin API and the fixture read them.

Faults and delays are counted apart. A rule (or the X-Fault header) that acts is a fault
when what the client gets differs from the listener's own answer: every action but a
`respond` that overrides nothing and `delay`. A plain `respond` that waits first, and
`delay`, are counted as delays (`faultserver_delayed_total`); a fault that waits first
is counted in both.

Retries. A retry is a request sent again on a new connection after its earlier sending met
trouble: a fault, or the end of its connection before its answer was sent (a reset met
while writing, a drop, a client that gave up). Requests are told apart by their
fingerprint (method, path, a hash of the body, X-Request-Id). So twenty clients that send
the same GET and get their answers make no retry, and a client that sends a request again
after a FIN (`close`), an RST (`reset`), a hang or a partial answer makes one. Each trouble
makes at most one retry. The older, wider count stays as `repeats`: the same fingerprint
on another connection than the one that last sent it, whatever happened to it.

A request sent again while its first sending still waits out a delay is not a retry: the
server cannot tell a client that gave up from a second client asking the same (it reads the
first client's FIN only after writing the answer). Only a hash of each fingerprint is kept,
so the memory is the same whatever the paths' length.

A request answered before its body was read (`Expect: 100-continue` meeting `close`) has
no body hash; its head (method, path, X-Request-Id) is kept apart, and the next request
with that head on another connection counts as its repeat (and its retry, as it met a
fault).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ._profile.model import Action, Forward, Respond

if TYPE_CHECKING:
    from ._decide.request import Request

__all__ = [
    "REPEAT", "RETRY", "ListenerStats", "is_delay", "is_fault", "render_prometheus", "render_state_metrics",
]

#: How many recent request fingerprints each listener remembers for retry detection.
FINGERPRINT_MEMORY = 10_000
#: How many heads of requests whose body was never read are remembered.
UNREAD_MEMORY = 1_000

#: `saw_request`'s answer, bits: seen last on another connection; sent again after trouble.
REPEAT = 1
RETRY = 2

#: Actions that are not faults: the listener's own answer, late.
_NOT_FAULTS = frozenset({"delay"})
#: `respond` with nothing overridden: the listener's own answer.
_PLAIN_RESPOND = Respond()
#: `forward` with nothing applied: a proxy's own answer (the upstream's).
_PLAIN_FORWARD = Forward()


def is_fault(action: Action) -> bool:
    """Whether `action` gives the client something else than the listener's own answer."""
    name = action.name.value
    if name == "respond":
        return action != _PLAIN_RESPOND
    if name == "forward":
        return action != _PLAIN_FORWARD
    return name not in _NOT_FAULTS


def is_delay(action: Action, delay_s: float) -> bool:
    """Whether a decision waits before it acts (a rule's `delay`, or the `delay` action)."""
    return delay_s > 0 or action.name.value == "delay"


class ListenerStats:
    __slots__ = (
        "_recent",
        "_troubled",
        "_troubled_heads",
        "_unread",
        "connections",
        "delayed",
        "faults",
        "in_flight",
        "open_connections",
        "peak_connections",
        "repeats",
        "requests",
        "responses",
        "retries",
    )

    def __init__(self) -> None:
        self.open_connections = 0
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Counters back to zero; connections open and requests in flight stay counted."""
        self.connections = 0
        self.peak_connections = self.open_connections
        self.requests = 0
        #: (rule, action) -> count: faults (see the module docstring)
        self.faults: collections.Counter[tuple[str, str]] = collections.Counter()
        #: (rule, action) -> count: decisions that waited before acting
        self.delayed: collections.Counter[tuple[str, str]] = collections.Counter()
        #: status -> count
        self.responses: collections.Counter[int] = collections.Counter()
        self.retries = 0
        self.repeats = 0
        #: hash of a fingerprint -> the connection that last sent it
        self._recent: collections.OrderedDict[int, int] = collections.OrderedDict()
        #: hash of a head whose body was never read -> its connection
        self._unread: collections.OrderedDict[int, int] = collections.OrderedDict()
        #: hash of a fingerprint (of a head, body unread) -> the connection where it met trouble
        self._troubled: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._troubled_heads: collections.OrderedDict[int, int] = collections.OrderedDict()

    def opened(self) -> None:
        self.connections += 1
        self.open_connections += 1
        if self.open_connections > self.peak_connections:
            self.peak_connections = self.open_connections

    def closed(self) -> None:
        self.open_connections -= 1

    def saw_request(self, request: Request, fingerprint: str, conn_id: int) -> int:
        """Count a request; `REPEAT` and/or `RETRY` (bits) as it was seen before, else 0."""
        self.requests += 1
        key = hash(fingerprint)
        recent = self._recent
        previous = recent.get(key)
        recent[key] = conn_id
        if previous is not None:
            recent.move_to_end(key)
        elif len(recent) > FINGERPRINT_MEMORY:
            recent.popitem(last=False)
        if self._unread or not request.body_read:
            previous = self._head_seen(request, conn_id, previous)
        seen = 0
        if previous is not None and previous != conn_id:
            self.repeats += 1
            seen = REPEAT
        if (self._troubled or self._troubled_heads) and self._after_trouble(request, key, conn_id):
            self.retries += 1
            seen |= RETRY
        return seen

    def _after_trouble(self, request: Request, key: int, conn_id: int) -> bool:
        """Whether the request met trouble on another connection (and forget that trouble)."""
        troubled = self._troubled.get(key)
        if troubled is not None and troubled != conn_id:
            del self._troubled[key]
            return True
        if self._troubled_heads:
            head = hash(request.head_key)
            troubled = self._troubled_heads.get(head)
            if troubled is not None and troubled != conn_id:
                del self._troubled_heads[head]
                return True
        return False

    def met_trouble(self, request: Request, fingerprint: str, conn_id: int) -> None:
        """`request` met a fault, or its connection ended before its answer was sent: sent
        again on another connection, it is a retry."""
        if request.body_read:
            _remember(self._troubled, hash(fingerprint), conn_id, FINGERPRINT_MEMORY)
        else:
            _remember(self._troubled_heads, hash(request.head_key), conn_id, UNREAD_MEMORY)

    def acted(self, rule: str, action: Action, delay_s: float) -> bool:
        """Count what a rule (or the fault header) did; True when it was a fault."""
        key = (rule, action.name.value)
        if is_delay(action, delay_s):
            self.delayed[key] += 1
        if is_fault(action):
            self.faults[key] += 1
            return True
        return False

    def _head_seen(self, request: Request, conn_id: int, previous: int | None) -> int | None:
        head = hash(request.head_key)
        unread = self._unread
        if not request.body_read:
            unread[head] = conn_id
            if len(unread) > UNREAD_MEMORY:
                unread.popitem(last=False)
            return previous
        earlier = unread.pop(head, None)
        if previous is not None and previous != conn_id:
            return previous
        return earlier

    def faults_by_action(self) -> dict[str, int]:
        return _by_action(self.faults)

    def delayed_by_action(self) -> dict[str, int]:
        return _by_action(self.delayed)


def _by_action(counts: collections.Counter[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, action), n in counts.items():
        out[action] = out.get(action, 0) + n
    return out


def _remember(memory: collections.OrderedDict[int, int], key: int, conn_id: int, size: int) -> None:
    memory[key] = conn_id
    memory.move_to_end(key)
    if len(memory) > size:
        memory.popitem(last=False)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kv: str) -> str:
    return ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items())


#: (labels, value) samples of one listener's stats
Samples = Callable[[ListenerStats], Iterable[tuple[dict[str, str], int]]]


def _one(attribute: str) -> Samples:
    return lambda s: [({}, getattr(s, attribute))]


#: Every metric family: name, type, help, and its samples for one listener.
_FAMILIES: tuple[tuple[str, str, str, Samples], ...] = (
    ("faultserver_connections_total", "counter", "Connections accepted.", _one("connections")),
    ("faultserver_requests_total", "counter", "Requests read completely.", _one("requests")),
    (
        "faultserver_responses_total", "counter", "Responses sent, by status.",
        lambda s: [({"status": str(st)}, c) for st, c in sorted(s.responses.items())],
    ),
    (
        "faultserver_faults_total", "counter",
        "Faults acted, by rule and action (a plain delayed respond is no fault: see delayed).",
        lambda s: [({"rule": r, "action": a}, c) for (r, a), c in sorted(s.faults.items())],
    ),
    (
        "faultserver_delayed_total", "counter",
        "Rules that waited before acting (a delay, or the delay action), by rule and action.",
        lambda s: [({"rule": r, "action": a}, c) for (r, a), c in sorted(s.delayed.items())],
    ),
    (
        "faultserver_retries_total", "counter",
        "Requests sent again on a new connection after a fault or the end of their connection "
        "(same method, path, body hash, X-Request-Id).",
        _one("retries"),
    ),
    (
        "faultserver_repeats_total", "counter",
        "Requests seen again on another connection than the one that last sent them, for any reason.",
        _one("repeats"),
    ),
    ("faultserver_open_connections", "gauge", "Connections open now.", _one("open_connections")),
    ("faultserver_peak_connections", "gauge", "Most connections open at once.", _one("peak_connections")),
    ("faultserver_requests_in_flight", "gauge", "Requests read and not yet answered.", _one("in_flight")),
)


def render_prometheus(stats: Iterable[tuple[str, ListenerStats]]) -> str:
    """The metrics page: counters and gauges labelled by listener (and status, rule, action)."""
    rows = list(stats)
    out: list[str] = []
    for name, kind, help_, samples in _FAMILIES:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for listener, s in rows:
            for labels, value in samples(s):
                # ints as ints: `:g` would round a counter above 999,999 to 6 digits
                out.append(f"{name}{{{_labels(listener=listener, **labels)}}} {value}")
    return "\n".join(out) + "\n"


def render_state_metrics(
    modes: Iterable[tuple[str, str]],
    phases: Iterable[tuple[str, int, int | None]],
    paused: bool,
    all_modes: Iterable[str],
) -> str:
    """What is in force, as gauges: `faultserver_accept_mode{listener,mode}` (1 for the mode
    in force, 0 for the others), `faultserver_schedule_phase{listener,phase}` (1 for the
    phase in force; every phase of each listener with a schedule) and
    `faultserver_schedule_paused` (1 while phase changes are paused).

    `modes`: (listener, mode in force); `phases`: (listener, number of phases, phase in
    force or None).
    """
    mode_names = list(all_modes)
    out = [
        "# HELP faultserver_accept_mode The accept mode in force (1), by listener and mode.",
        "# TYPE faultserver_accept_mode gauge",
    ]
    for listener, mode in modes:
        for name in mode_names:
            labels = _labels(listener=listener, mode=name)
            out.append(f"faultserver_accept_mode{{{labels}}} {int(name == mode)}")
    out += [
        "# HELP faultserver_schedule_phase The schedule's phase in force (1), by listener and phase.",
        "# TYPE faultserver_schedule_phase gauge",
    ]
    for listener, count, current in phases:
        for index in range(count):
            labels = _labels(listener=listener, phase=str(index))
            out.append(f"faultserver_schedule_phase{{{labels}}} {int(index == current)}")
    out += [
        "# HELP faultserver_schedule_paused 1 while the schedules' phase changes are paused.",
        "# TYPE faultserver_schedule_paused gauge",
        f"faultserver_schedule_paused {int(paused)}",
    ]
    return "\n".join(out) + "\n"

"""What a connection may know of its listener: what it reads, what it writes, nothing more.

A connection reads the limits, the keep-alive settings, the rules in force, the prepared
responses, the random streams and the fault header's name; it writes events and counters,
and it adds itself to and removes itself from the set of open connections. The listener
(`listener.py`) owns one context, fills it at start and at each reload, and swaps the rules
a schedule phase or the admin API puts in force. A connection reads the fields afresh at
each request, so a change applies from its next request on.
"""

from __future__ import annotations

import collections
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from .._decide.fault_header import FaultHeaderError, decide_fault_header
from .._decide.request import Request
from .._decide.response import PreparedResponse, merge_response
from .._decide.rules import Decision, RuleSet, stream
from .._events import MAX_FIELD_CHARS, EventLog, cut_long_fields
from .._metrics import REPEAT, RETRY, ListenerStats
from .._profile.model import CloseHow, Keepalive, Limits, Listener, Respond
from .._protocol.events import Refusal
from .._tls.listener import ListenerTLS
from .upstream import UpstreamPool, pool_for

__all__ = ["PREPARED_CACHE_SIZE", "Droppable", "ListenerContext"]

log = logging.getLogger("faultserver")

#: `respond` actions with overrides whose encoded answers are kept. The profile's own rules
#: have a few; `X-Fault: respond; body=...` can ask for a new one with every request, so the
#: cache is bounded and the least recently used answer goes first.
PREPARED_CACHE_SIZE = 128


class Droppable(Protocol):
    """An open connection, as the listener sees it: busy or not, and how to end it."""

    @property
    def busy(self) -> bool: ...

    def shutdown(self, how: CloseHow) -> None: ...


class ListenerContext:
    """One listener's settings and state, as its connections use them."""

    __slots__ = (
        "_prepared_cache",
        "config",
        "connection_ended",
        "connections",
        "events",
        "fault_header",
        "fault_header_name",
        "header_rng",
        "keepalive",
        "keepalive_rng",
        "limits",
        "log_debug",
        "name",
        "prepared",
        "rules",
        "seed",
        "stats",
        "tls",
        "upstream",
    )

    def __init__(
        self,
        config: Listener,
        events: EventLog,
        seed: int,
        fault_header: str | None,
        connection_ended: Callable[[], None],
    ) -> None:
        self.events = events
        self.stats = ListenerStats()
        #: a TLS listener's certificate and context (the listener sets it; None: plain TCP)
        self.tls: ListenerTLS | None = None
        self.connections: set[Droppable] = set()
        #: called once a connection has ended and left `connections` (a slot is free)
        self.connection_ended = connection_ended
        #: proxy mode: the pool to the listener's upstream (None: no upstream)
        self.upstream: UpstreamPool | None = None
        self.configure(config, seed, fault_header)

    def configure(self, config: Listener, seed: int, fault_header: str | None) -> None:
        """(Re)build everything derived from the config: responses, rules, streams."""
        self.config = config
        self.name = config.name
        self.seed = seed
        self.limits: Limits = config.limits
        self.keepalive: Keepalive = config.keepalive
        #: per-request DEBUG lines cost one attribute test when DEBUG is off (read at each load)
        self.log_debug = log.isEnabledFor(logging.DEBUG)
        self.fault_header_name = fault_header or ""
        self.fault_header = fault_header.lower().encode("latin-1") if fault_header else None
        self.prepared = PreparedResponse(config.response, config.name)
        self._prepared_cache: collections.OrderedDict[Respond, PreparedResponse] = (
            collections.OrderedDict()
        )
        self.rules = RuleSet(config.rules, seed, config.name)
        self.header_rng: random.Random = stream(seed, config.name, "x-fault")
        self.keepalive_rng: random.Random = stream(seed, config.name, "keepalive")
        self.upstream = pool_for(config.upstream, self.upstream)

    def decide(self, request: Request) -> Decision | Refusal | None:
        """The fault header's decision, else the first rule that acts, else None (healthy).

        A fault header that asks for what does not exist is a 400 that names the mistake.
        """
        header = self.fault_header
        if header is not None:
            raw = request.header(header)
            if raw is not None:
                try:
                    return decide_fault_header(raw, self.header_rng, self.limits)
                except FaultHeaderError as exc:
                    return Refusal(400, f"{self.fault_header_name}: {exc}")
        rules = self.rules
        return rules.decide_request(request) if rules else None

    def record_request(
        self, request: Request, conn_id: int, peer: str, client: str | None = None
    ) -> dict[str, Any]:
        """Count the request and emit its `request` event; returns its event fields, which
        its other events share (so they must not change afterwards). `client`: the address a
        PROXY protocol header gave."""
        fingerprint = request.fingerprint
        seen = self.stats.saw_request(request, fingerprint, conn_id)
        retry = bool(seen & RETRY)
        path = request.path
        fields: dict[str, Any] = {
            "conn": conn_id,
            "peer": peer,
            "method": request.method,
            "path": path,
            "request_on_connection": request.number,
            "fingerprint": fingerprint,  # bounded whatever the path (`Request.fingerprint`)
        }
        if client is not None:
            fields["client"] = client
        if request.stream_id:
            fields["stream"] = request.stream_id
        if seen:
            if retry:
                fields["retry"] = True  # sent again after a fault or its connection's end
            if seen & REPEAT:
                fields["repeat"] = True  # seen last on another connection, for any reason
        if len(path) > MAX_FIELD_CHARS:  # the one field that can be long: cut, and say so
            cut_long_fields(fields)
        self.events.emit_fields("request", self.name, fields)
        if self.log_debug:
            log.debug(
                "request listener=%s conn=%d peer=%s method=%s path=%s n=%d retry=%s",
                self.name, conn_id, peer, request.method, fields["path"], request.number, retry,
            )
        return fields

    def prepared_for(self, action: Respond) -> PreparedResponse:
        """The encoded answer of a `respond` action: the listener's own when it overrides
        nothing, else one built once and kept while it is in use."""
        if action == _NO_OVERRIDES:
            return self.prepared
        cache = self._prepared_cache
        prepared = cache.get(action)
        if prepared is None:
            prepared = PreparedResponse(merge_response(self.config.response, action), self.name)
            cache[action] = prepared
            if len(cache) > PREPARED_CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(action)
        return prepared


_NO_OVERRIDES = Respond()

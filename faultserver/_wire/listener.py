"""A listener: its socket, its accept mode and the connections it accepted.

Accept modes (profile-v1.md), carried out by the kernel:

- `open`: `listen(backlog)` and an accept loop. With `max_connections` open the loop
  stops accepting; the kernel then queues `backlog`+1 handshakes (a read timeout for
  those clients) and drops further SYNs (a connect timeout).
- `refuse`: the socket stops listening but stays bound (`sockets.unlisten`): SYN meets
  RST, the port stays ours. Handshakes queued but not accepted are reset.
- `stall`: `listen(0)` and no accepting, and the listener connects placeholder sockets
  to itself until the accept queue is full; from then on the kernel drops every new
  SYN, so the very first new client meets a connect timeout. Placeholders are known by
  their address; when the listener opens again they are accepted and closed unseen.

A switch never closes the socket, so the port number stays.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Callable, Optional

import trio

from .._decide.response import PreparedResponse
from .._decide.rules import RuleSet, stream
from .._events import EventLog
from .._metrics import ListenerStats
from .._profile.model import AcceptMode, Listener, Respond, Rule
from .connection import Connection
from .sockets import bind_listener, unlisten

__all__ = ["ListenerRuntime"]

log = logging.getLogger("faultserver")

#: How long a placeholder connect may take before the accept queue counts as full.
PLACEHOLDER_CONNECT_S = 0.05
#: At most this many placeholders (a queue never needs more than backlog 0 + a few).
MAX_PLACEHOLDERS = 64
#: EMFILE and friends: log, wait this long, accept again (as trio's serve_listeners does).
ACCEPT_RETRY_S = 0.1
#: While accepts keep failing, one log line per this many (about every 30 s).
ACCEPT_FAILURES_PER_LOG = 300
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
#: Every connection task's name: one string, not one built per task (held connections add up).
_CONNECTION_TASK = "faultserver._wire.connection.Connection.run"


class ListenerRuntime:
    """One listener at run time. All methods run in the server's Trio thread."""

    def __init__(
        self,
        config: Listener,
        events: EventLog,
        seed: int,
        fault_header: Optional[str],
        next_conn_id: Callable[[], int],
    ) -> None:
        self.config = config
        self.name = config.name
        self.events = events
        self.seed = seed
        self.stats = ListenerStats()
        self.limits = config.limits
        self.fault_header_name = fault_header or ""
        self.fault_header = fault_header.lower().encode("latin-1") if fault_header else None
        self._next_conn_id = next_conn_id
        self.connections: set[Connection] = set()
        self.sock: Optional[trio.socket.SocketType] = None
        self.port = config.port
        self.mode = AcceptMode.OPEN
        self._placeholders: list[trio.socket.SocketType] = []
        self._placeholder_addrs: set[tuple] = set()
        self._accepting_scope: Optional[trio.CancelScope] = None
        self._changed = trio.Event()
        self._slot_freed = trio.Event()
        self._nursery: Optional[trio.Nursery] = None
        self._closed = False
        #: accepts failed in a row for lack of resources (EMFILE...): logged once, not each time
        self._accept_failures = 0
        self.reset_state(config)

    # --- configuration --------------------------------------------------------------

    def reset_state(self, config: Listener) -> None:
        """(Re)build everything derived from the config: responses, rules, streams."""
        self.config = config
        #: per-request DEBUG lines cost one attribute test when DEBUG is off (read at each (re)load)
        self.log_debug = log.isEnabledFor(logging.DEBUG)
        self.limits = config.limits
        self.prepared = PreparedResponse(config.response, config.name)
        self._prepared_overrides: dict[Respond, PreparedResponse] = {}
        self.base_rules = RuleSet(config.rules, self.seed, config.name)
        self.rules = self.base_rules
        self.header_rng = stream(self.seed, config.name, "x-fault")
        self.keepalive_rng = stream(self.seed, config.name, "keepalive")

    def set_rules(self, rules: tuple[Rule, ...], scope: str = "") -> RuleSet:
        ruleset = RuleSet(rules, self.seed, self.name, scope)
        self.rules = ruleset
        return ruleset

    def prepared_for(self, action: Respond) -> PreparedResponse:
        prepared = self._prepared_overrides.get(action)
        if prepared is None:
            from .._decide.response import merge_response

            prepared = PreparedResponse(merge_response(self.config.response, action), self.name)
            self._prepared_overrides[action] = prepared
        return prepared

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- socket and modes -----------------------------------------------------------

    def bind(self) -> None:
        """Bind now (synchronously, so a taken port is reported before anything starts)."""
        self.sock = bind_listener(self.config.host, self.config.port)
        self.port = self.sock.getsockname()[1]

    async def run(self, nursery: trio.Nursery) -> None:
        """Accept whenever the mode is open and there is room (`apply_mode` comes first)."""
        self._nursery = nursery
        while not self._closed:
            if self.mode is not AcceptMode.OPEN:
                await self._wait_changed()
                continue
            limit = self.config.max_connections
            if limit is not None and len(self.connections) >= limit:
                self._slot_freed = trio.Event()
                with trio.CancelScope() as self._accepting_scope:
                    await self._slot_freed.wait()
                continue
            with trio.CancelScope() as self._accepting_scope:
                await self._accept_one(nursery)

    async def _wait_changed(self) -> None:
        self._changed = trio.Event()
        await self._changed.wait()

    async def _accept_one(self, nursery: trio.Nursery) -> None:
        assert self.sock is not None
        try:
            sock, addr = await self.sock.accept()
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRNOS:
                self._accept_failures += 1
                if self._accept_failures % ACCEPT_FAILURES_PER_LOG == 1:
                    log.error(
                        "accept failed listener=%s error=%s (%s) in_a_row=%d; retrying every %.1fs",
                        self.name, errno.errorcode.get(exc.errno, exc.errno), exc.strerror,
                        self._accept_failures, ACCEPT_RETRY_S,
                    )
                    self.events.emit("error", self.name, error=f"accept: {exc.strerror}")
                await trio.sleep(ACCEPT_RETRY_S)
                return
            if exc.errno in (errno.EINVAL, errno.EBADF):
                # the socket stopped listening under us (a mode switch); the loop re-checks
                await trio.sleep(0)
                return
            if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                return
            raise
        if self._accept_failures:
            log.warning(
                "accept recovered listener=%s after=%d failed accepts", self.name, self._accept_failures
            )
            self._accept_failures = 0
        if addr[:2] in self._placeholder_addrs:
            self._placeholder_addrs.discard(addr[:2])
            sock.close()
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        host, port = addr[0], addr[1]
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        conn = Connection(self, sock, peer, self._next_conn_id())
        self.connections.add(conn)
        nursery.start_soon(conn.run, name=_CONNECTION_TASK)

    def connection_ended(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._slot_freed.set()

    async def apply_mode(self, mode: AcceptMode) -> None:
        """Switch the accept mode now, keeping the port."""
        assert self.sock is not None
        if self._accepting_scope is not None:
            self._accepting_scope.cancel()
        self._close_placeholders()
        if mode is AcceptMode.REFUSE:
            try:
                unlisten(self.sock)
            except OSError:
                pass  # never listened yet: bound and not listening is refuse already
            self._placeholder_addrs.clear()  # the kernel reset whatever was queued
        elif mode is AcceptMode.STALL:
            self.sock.listen(0)
            self.mode = mode
            await self._fill_queue()
        else:
            self.sock.listen(self.config.backlog)
        self.mode = mode
        self._changed.set()
        # the Server logs the change, with its cause

    async def _fill_queue(self) -> None:
        """Connect placeholders to ourselves until the kernel stops completing handshakes."""
        assert self.sock is not None
        family = self.sock.family
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        for _ in range(MAX_PLACEHOLDERS):
            try:
                ph = trio.socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:  # EMFILE: a queue not quite full beats a crashed server
                log.warning("stall placeholder failed listener=%s error=%s", self.name, exc.strerror)
                return
            done = False
            with trio.move_on_after(PLACEHOLDER_CONNECT_S):
                try:
                    await ph.connect((host, self.port))
                    done = True
                except OSError:
                    pass
            if not done:
                ph.close()
                return
            self._placeholders.append(ph)
            self._placeholder_addrs.add(ph.getsockname()[:2])

    def _close_placeholders(self) -> None:
        for ph in self._placeholders:
            ph.close()
        self._placeholders = []
        # the accepted-side twins may still sit in the queue: their addresses stay
        # known until accepted (open) or reset by the kernel (refuse)

    def drop(self, how: str, idle_only: bool = False) -> int:
        """End open connections (FIN or RST), as a backend restart does; returns how many."""
        count = 0
        for conn in list(self.connections):
            if idle_only and conn.busy:
                continue
            conn.shutdown(how)
            count += 1
        return count

    def close(self) -> None:
        """Stop listening and release the port (at shutdown)."""
        self._closed = True
        self._changed.set()
        if self._accepting_scope is not None:
            self._accepting_scope.cancel()
        self._close_placeholders()
        if self.sock is not None:
            self.sock.close()

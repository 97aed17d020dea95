"""A listener: its socket, its accept mode and the connections it accepted.

Accept modes (the profile format), carried out by the kernel:

- `open`: `listen(backlog)` and an accept loop. With `max_connections` open the loop
  stops accepting; the kernel then queues `backlog`+1 handshakes (a read timeout for
  those clients) and drops further SYNs (a connect timeout).
- `refuse`: the socket stops listening but stays bound (`sockets.unlisten`): SYN meets
  RST, the port stays ours. Handshakes queued but not accepted are reset.
- `stall`: `listen(0)` and no accepting, and the listener connects placeholder sockets
  to itself until the accept queue is full; from then on the kernel drops every new
  SYN, so the very first new client meets a connect timeout. Placeholders are known by
  their address; when the listener opens again they are accepted and closed unseen.

A switch never closes the socket, so the port number stays. Switches are serialised: a
switch waits for the one in progress (a `stall` fills its queue for a while), and they apply
in the order they were asked for, so the last one asked for is the one in force.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

import trio

from .._address import format_hostport, url_of
from .._decide.rules import RuleSet
from .._events import EventLog
from .._metrics import ListenerStats
from .._profile.model import AcceptMode, CloseHow, Listener, Rule
from .._tls.listener import CAFiles, ListenerTLS
from .connection import Connection
from .context import Droppable, ListenerContext
from .forwarding import ProxiedConnection
from .sockets import (
    ACCEPT_FAILURES_PER_LOG,
    ACCEPT_GONE_ERRNOS,
    ACCEPT_RESOURCE_ERRNOS,
    ACCEPT_RETRY_S,
    bind_listener,
    unlisten,
)
from .transport import SocketTransport

__all__ = ["Admission", "ListenerRuntime"]

log = logging.getLogger("faultserver")

#: How long a placeholder connect may take before the accept queue counts as full.
PLACEHOLDER_CONNECT_S = 0.05
#: At most this many placeholders (a queue never needs more than backlog 0 + a few).
MAX_PLACEHOLDERS = 64
#: Every connection task's name: one string, not one built per task (held connections add up).
_CONNECTION_TASK = "faultserver._wire.connection.Connection.run"


class Admission(Protocol):
    """`run --workers N`: the open connections of the whole fleet (`_workers/counts.py`)."""

    def take(self, limit: int | None) -> bool:
        """One more open connection, unless `limit` are open; False: none taken."""

    def release(self) -> None: ...

    def has_room(self, limit: int) -> bool: ...


#: While the fleet is full (`Admission`): how often to look for a free slot.
ADMISSION_POLL_S = 0.01


class ListenerRuntime:
    """One listener at run time: its socket, accept mode, context and connections.

    All methods run in the server's Trio thread.
    """

    def __init__(
        self,
        config: Listener,
        events: EventLog,
        seed: int,
        fault_header: str | None,
        next_conn_id: Callable[[], int],
        ca_files: CAFiles | None = None,
    ) -> None:
        self.events = events
        self.ctx = ListenerContext(config, events, seed, fault_header, self._connection_ended)
        self._tls_kept: ListenerTLS | None = None
        self._ca_files = ca_files if ca_files is not None else CAFiles()
        self._configure_tls(config)
        self.base_rules = self.ctx.rules
        self._next_conn_id = next_conn_id
        self.sock: trio.socket.SocketType | None = None
        self.port = config.port
        #: the mode in force (OPEN until the first `set_mode`)
        self.mode = AcceptMode.OPEN
        self._applied = False
        self._accepting = False
        self._mode_lock = trio.Lock()
        self._placeholders: list[trio.socket.SocketType] = []
        #: placeholder connects tried at once when filling the queue (`_fill_queue`)
        self.placeholder_width = 1
        #: `run --workers N`: the socket joins its port's SO_REUSEPORT group (the parent's,
        #: which only holds the port, and each worker's)
        self.reuse_port = False
        self._placeholder_addrs: set[tuple[str, int]] = set()
        self._accepting_scope: trio.CancelScope | None = None
        self._changed = trio.Event()
        self._slot_freed = trio.Event()
        self._closed = False
        #: `run --workers N`: the parent's socket only holds the port; `remote(name, mode)`
        #: applies a mode in every worker (None: this socket serves, as always)
        self.remote: Callable[[str, AcceptMode], Awaitable[None]] | None = None
        #: accepts failed in a row for lack of resources (EMFILE...): logged once, not each time
        self._accept_failures = 0
        #: `run --workers N`, in a worker: the fleet's count of open connections, which
        #: `max_connections` limits (None: this process's connections are all there are)
        self.admission: Admission | None = None

    # --- what the server reads --------------------------------------------------------

    @property
    def config(self) -> Listener:
        return self.ctx.config

    @property
    def name(self) -> str:
        return self.ctx.name

    @property
    def host(self) -> str:
        return self.ctx.config.host

    @property
    def url(self) -> str:
        return url_of("https" if self.ctx.tls is not None else "http", self.host, self.port)

    @property
    def tls(self) -> ListenerTLS | None:
        """The certificate and context of a TLS listener (None: plain TCP)."""
        return self.ctx.tls

    @property
    def stats(self) -> ListenerStats:
        return self.ctx.stats

    @property
    def connections(self) -> Collection[Droppable]:
        return self.ctx.connections

    @property
    def rules(self) -> RuleSet:
        """The rules in force (a schedule phase swaps them)."""
        return self.ctx.rules

    @rules.setter
    def rules(self, ruleset: RuleSet) -> None:
        self.ctx.rules = ruleset

    # --- configuration --------------------------------------------------------------

    def configure(self, config: Listener, seed: int, fault_header: str | None) -> None:
        """A reload or reset: new config, rules, random streams and prepared responses."""
        self.ctx.configure(config, seed, fault_header)
        self.base_rules = self.ctx.rules
        self._configure_tls(config)

    def _configure_tls(self, config: Listener) -> None:
        """TLS on, changed or off; a generated CA stays the same as long as the listener."""
        if config.tls is None:
            self.ctx.tls = None
            return
        tls = self.ctx.tls or self._tls_kept
        if tls is None:
            tls = ListenerTLS(config.name, config.host, self._ca_files)
        tls.configure(config.tls, config.protocols)
        self.ctx.tls = self._tls_kept = tls

    def set_rules(self, rules: tuple[Rule, ...], scope: str = "") -> RuleSet:
        """Build a rule set (fresh `times` and random streams) and put it in force."""
        ruleset = RuleSet(rules, self.ctx.seed, self.name, scope)
        self.ctx.rules = ruleset
        return ruleset

    def reset_stats(self) -> None:
        """Counters back to zero; open connections and requests in flight stay counted (and
        an upstream pool's connections in use and idle, which are not counters)."""
        self.ctx.stats.reset()
        if self.ctx.upstream is not None:
            self.ctx.upstream.stats.reset()

    # --- socket and modes -----------------------------------------------------------

    def bind(self) -> None:
        """Bind now (synchronously, so a taken port is reported before anything starts)."""
        self.sock = bind_listener(self.config.host, self.config.port, reuse_port=self.reuse_port)
        self.port = self.sock.getsockname()[1]

    async def run(self, nursery: trio.Nursery) -> None:
        """Accept whenever the mode is open and there is room (`set_mode` comes first)."""
        while not self._closed:
            if not self._accepting:
                self._changed = trio.Event()
                await self._changed.wait()
                continue
            limit = self.config.max_connections
            if limit is not None and self.admission is not None:
                if not self.admission.has_room(limit):  # another worker's connections
                    with trio.CancelScope() as self._accepting_scope:
                        await trio.sleep(ADMISSION_POLL_S)
                    continue
            elif limit is not None and len(self.ctx.connections) >= limit:
                self._slot_freed = trio.Event()
                with trio.CancelScope() as self._accepting_scope:
                    await self._slot_freed.wait()
                continue
            with trio.CancelScope() as self._accepting_scope:
                await self._accept_one(nursery)

    async def _accept_one(self, nursery: trio.Nursery) -> None:
        assert self.sock is not None
        try:
            sock, addr = await self.sock.accept()
        except OSError as exc:
            await self._accept_failed(exc)
            return
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
        peer = format_hostport(addr[0], addr[1])
        kind = Connection if self.ctx.upstream is None else ProxiedConnection
        conn = kind(self.ctx, SocketTransport(sock), peer, self._next_conn_id())
        if self.admission is not None and not self.admission.take(self.config.max_connections):
            nursery.start_soon(self._admit_later, conn, name=_CONNECTION_TASK)
            return
        nursery.start_soon(conn.run, name=_CONNECTION_TASK)

    async def _admit_later(self, conn: Connection) -> None:
        """Another worker took the fleet's last slot: hold `conn` unread, as the kernel's
        accept queue would, until a slot frees."""
        assert self.admission is not None
        while not self.admission.take(self.config.max_connections):
            await trio.sleep(ADMISSION_POLL_S)
        await conn.run()

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in ACCEPT_RESOURCE_ERRNOS:
            self._accept_failures += 1
            if self._accept_failures % ACCEPT_FAILURES_PER_LOG == 1:
                log.error(
                    "accept failed listener=%s error=%s (%s) in_a_row=%d; retrying every %.1fs",
                    self.name, errno.errorcode.get(exc.errno, exc.errno), exc.strerror,
                    self._accept_failures, ACCEPT_RETRY_S,
                )
                self.events.emit("error", self.name, error=f"accept: {exc.strerror}")
            await trio.sleep(ACCEPT_RETRY_S)
        elif exc.errno in (errno.EINVAL, errno.EBADF):
            # the socket stopped listening under us (a mode switch); the loop re-checks
            await trio.sleep(0)
        elif exc.errno not in ACCEPT_GONE_ERRNOS:
            raise exc

    def _connection_ended(self) -> None:
        if self.admission is not None:
            self.admission.release()
        self._slot_freed.set()

    async def set_mode(self, mode: AcceptMode, cause: str) -> bool:
        """Switch the accept mode now, keeping the port; False when it was in force already.

        Serialised: a switch waits for the one in progress, so switches apply in the order
        they were asked for and the last one wins. Emits the `mode` event and logs the change.
        """
        async with self._mode_lock:
            if self._applied and mode is self.mode:
                return False
            was = self.mode if self._applied else None
            self._applied = False  # until this switch is complete (it may be cancelled)
            await self._apply_mode(mode)
            self.mode = mode
            self._applied = True
            if was is not None:
                log.info(
                    "mode listener=%s accept=%s was=%s cause=%s", self.name, mode.value, was.value, cause
                )
            self.events.emit("mode", self.name, accept=mode.value, cause=cause)
        return True

    async def _apply_mode(self, mode: AcceptMode) -> None:
        assert self.sock is not None
        self._accepting = False
        if self._accepting_scope is not None:
            self._accepting_scope.cancel()
        self._close_placeholders()
        if self.remote is not None:
            await self.remote(self.name, mode)
        elif mode is AcceptMode.REFUSE:
            try:
                unlisten(self.sock)
            except OSError:
                pass  # never listened yet: bound and not listening is refuse already
            self._placeholder_addrs.clear()  # the kernel reset whatever was queued
        elif mode is AcceptMode.STALL:
            self.sock.listen(0)
            await self._fill_queue()
        else:
            self.sock.listen(self.config.backlog)
            self._accepting = True
        self._changed.set()

    async def _fill_queue(self) -> None:
        """Connect placeholders to ourselves until the kernel stops completing handshakes:
        in rounds of `placeholder_width` connects at once, until a round in which none
        completed. One at a time (width 1) is enough when this is the port's only listening
        socket; a worker of `run --workers N` shares the port, and a connect that met another
        worker's full queue says nothing of its own, so it tries many at once (the kernel
        spreads them by hash): a round that fills nothing then means every queue is full."""
        assert self.sock is not None
        family = self.sock.family
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        while len(self._placeholders) < MAX_PLACEHOLDERS:
            landed: list[trio.socket.SocketType] = []
            failed: list[OSError] = []
            async with trio.open_nursery() as nursery:
                for _ in range(self.placeholder_width):
                    nursery.start_soon(_placeholder, family, (host, self.port), landed, failed)
            for ph in landed:
                self._placeholders.append(ph)
                self._placeholder_addrs.add(ph.getsockname()[:2])
            if failed:  # EMFILE: a queue not quite full beats a crashed server
                log.warning("stall placeholder failed listener=%s error=%s", self.name, failed[0].strerror)
                return
            if not landed:
                return

    def _close_placeholders(self) -> None:
        for ph in self._placeholders:
            ph.close()
        self._placeholders = []
        # the accepted-side twins may still sit in the queue: their addresses stay
        # known until accepted (open) or reset by the kernel (refuse)

    def drop(self, how: CloseHow, idle_only: bool = False) -> int:
        """End open connections (FIN or RST), as a backend restart does; returns how many."""
        count = 0
        for conn in list(self.ctx.connections):
            if idle_only and conn.busy:
                continue
            conn.shutdown(how)
            count += 1
        return count

    def drop_for_shutdown(self) -> int:
        """Every connection gets a FIN and a short drain (a stop, a listener removed)."""
        return self.drop(CloseHow.FIN)

    def close(self) -> None:
        """Stop listening and release the port (at shutdown)."""
        self._closed = True
        self._accepting = False
        self._changed.set()
        if self._accepting_scope is not None:
            self._accepting_scope.cancel()
        self._close_placeholders()
        if self.sock is not None:
            self.sock.close()


async def _placeholder(
    family: int, address: tuple[str, int], landed: list[trio.socket.SocketType], failed: list[OSError]
) -> None:
    """One placeholder connect: kept in `landed` if its handshake completed in time."""
    try:
        ph = trio.socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        failed.append(exc)
        return
    with trio.move_on_after(PLACEHOLDER_CONNECT_S):
        try:
            await ph.connect(address)
        except OSError:
            pass
        else:
            landed.append(ph)
            return
    ph.close()

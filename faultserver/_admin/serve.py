"""Serving the admin API: Hypercorn's HTTP/1.1 machinery (`TCPServer`) on our own accept loop.

Why our own loop. Hypercorn accepts through `trio.serve_listeners`, which meets EMFILE
(the process at its open-file limit, e.g. holding 15,000 client connections) by logging
a traceback and retrying every 0.1 s, for as long as the limit lasts, and the admin API
answers nobody meanwhile: the one tool that could drop those connections is locked out.
Our loop keeps one descriptor in reserve (`SpareDescriptor`, /dev/null). When an accept
meets EMFILE it closes the spare, accepts into the freed slot and serves that
connection as any other; the spare is taken back as soon as a descriptor is free. With
no spare left (one admin connection already uses it), it waits `ACCEPT_RETRY_S` and tries
again. Each episode is logged once when it starts and once when it ends, never per try.

Two fixes sit at the ASGI edge (`AdminASGI`), between Hypercorn and Quart. Hypercorn
closes a connection that must close (`Connection: close`, HTTP/1.0, an error) from inside
the app's last `send`; quart-trio cancels the request's nursery as soon as the request
side reports the stream closed, which happens during that very send, so the
cancellation would land on Hypercorn's `send_eof()` and the socket would never be shut
down nor closed. Every `send` therefore runs shielded; the cancellation arrives after
it, once the socket is closed. And because sends are shielded, a response to a client
that stopped reading (an SSE reader paused in a pager) would block for ever, and with
it the server's stop: the wrapper knows each request's socket, and when the admin API
stops it closes the sockets of the requests still running, which wakes any blocked send.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, ConnectionState, Scope
from hypercorn.utils import wrap_app

from .._address import format_hostport, url_of
from .._errors import StartError
from .._wire.sockets import (
    ACCEPT_FAILURES_PER_LOG,
    ACCEPT_GONE_ERRNOS,
    ACCEPT_RESOURCE_ERRNOS,
    ACCEPT_RETRY_S,
)
from .app import create_app
from .protocol import AdminServer

__all__ = ["AdminASGI", "SpareDescriptor", "serve_admin"]

log = logging.getLogger("faultserver")

#: How long Hypercorn keeps an idle kept-alive admin connection open.
KEEP_ALIVE_S = 5.0
#: How long a stopping admin API gives requests in flight.
GRACEFUL_S = 0.5
#: Pending admin connections the kernel queues.
BACKLOG = 128


class _QuietStartFilter(logging.Filter):
    """Drop Hypercorn's 'Running on ... (CTRL + C to quit)': faultserver logs its own line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Running on ")


_ADMIN_LOG = logging.getLogger("faultserver.admin")
_ADMIN_LOG.addFilter(_QuietStartFilter())


class AdminASGI:
    """The ASGI app Hypercorn runs: Quart, with every `send` shielded (module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        #: the sockets of the requests being answered now (closed by `abort_running`)
        self.running: set[trio.SocketStream] = set()

    def abort_running(self) -> int:
        """Close the socket of every request still being answered; returns how many."""
        count = 0
        for stream in list(self.running):
            try:
                stream.socket.close()  # wakes a send blocked on it (trio notifies the waiter)
                count += 1
            except OSError:  # pragma: no cover - already closed
                pass
        self.running.clear()
        return count

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        async def shielded_send(message: ASGISendEvent) -> None:
            with trio.CancelScope(shield=True):
                await send(message)

        stream = _socket_stream_of(send)
        if stream is not None:
            self.running.add(stream)
        try:
            await self.app(scope, receive, shielded_send)
        finally:
            if stream is not None:
                self.running.discard(stream)


def _socket_stream_of(send: Any) -> trio.SocketStream | None:
    """The `trio.SocketStream` behind Hypercorn's ASGI `send`, or None.

    The ASGI scope does not expose the connection, but Hypercorn's `send` is a bound
    method whose owner sends through another bound method, down to its TCP server
    (`HTTPStream.app_send` -> `H11Protocol.stream_send` -> `TCPServer.protocol_send`,
    whose owner holds `stream`). Should that change, None: nothing is tracked.
    """
    fn = send
    for _ in range(6):
        owner = getattr(fn, "__self__", None)
        if owner is None:
            return None
        stream = getattr(owner, "stream", None)
        if isinstance(stream, trio.SSLStream):  # the admin API over TLS: the socket under it
            stream = stream.transport_stream
        if isinstance(stream, trio.SocketStream):
            return stream
        fn = getattr(owner, "send", None)
    return None


class SpareDescriptor:
    """One open file held in reserve, given up for an accept at the open-file limit."""

    def __init__(self) -> None:
        self._fd = -1
        self.take()

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def take(self) -> None:
        """Hold the spare again if it was given up (quietly keeps trying while none is free)."""
        if self._fd < 0:
            try:
                self._fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass

    def give_up(self) -> bool:
        """Free the spare's slot for the caller; False when it was not held."""
        if self._fd < 0:
            return False
        os.close(self._fd)
        self._fd = -1
        return True


def _hypercorn_config() -> Config:
    config = Config()
    config.accesslog = None
    config.errorlog = _ADMIN_LOG
    config.graceful_timeout = GRACEFUL_S
    config.keep_alive_timeout = KEEP_ALIVE_S
    return config


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise StartError(
            f"control: cannot bind {format_hostport(host, port)}: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    return sock


async def serve_admin(
    server: AdminServer, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the admin API until cancelled; reports its base URL as started."""
    host, port = server.control_bind  # Server.run refused a public one without a token
    listening = _bind(host, port)
    tls = server.control_tls
    url = url_of("https" if tls is not None else "http", host, listening.getsockname()[1])
    config = _hypercorn_config()
    asgi = AdminASGI(create_app(server))
    app = wrap_app(asgi, config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            await _warm_up(asgi.app)
            log.info("control start url=%s token=%s", url, "yes" if server.token else "no")
            task_status.started(url)

            async def serve_connection(client: socket.socket) -> None:
                stream: trio.abc.Stream = trio.SocketStream(trio.socket.from_stdlib_socket(client))
                if tls is not None:  # Hypercorn shakes hands (ssl_handshake_timeout)
                    stream = trio.SSLStream(stream, tls.context, server_side=True, https_compatible=True)
                state = ConnectionState(lifespan_state.copy())
                try:
                    # Hypercorn annotates the stream as SSLStream, and handles a plain one too
                    await TCPServer(app, config, context, state, stream).run()  # type: ignore[arg-type]
                finally:
                    # after a failed TLS handshake Hypercorn returns without closing the
                    # socket (it would stay open until collected): close it here, always
                    await trio.aclose_forcefully(stream)

            try:
                await _accept_forever(listening, nursery, serve_connection)
            finally:
                # stopping: a send blocked on a client that stopped reading must not hold us
                asgi.abort_running()
    finally:
        listening.close()


class _NoClient(enum.Enum):
    PENDING_NONE = "nothing pending"  # a spurious wake-up, or the client already went away
    NO_DESCRIPTOR = "no descriptor"  # the open-file limit, and the spare is in use


async def _warm_up(app: Any) -> None:
    """One request through Quart before the first real one, so that what it imports on first
    use (`encodings.idna`, to read the Host) is imported now and not at the open-file limit,
    when importing a module fails for want of a descriptor."""
    await app.test_client().get("/healthz")


async def _accept_forever(
    listening: socket.socket,
    nursery: trio.Nursery,
    serve: Callable[[socket.socket], Awaitable[None]],
) -> None:
    """Accept and serve admin connections, using the spare descriptor at the file limit."""
    spare = SpareDescriptor()
    failures = 0

    async def serve_then_take_spare(client: socket.socket) -> None:
        try:
            await serve(client)
        finally:
            spare.take()  # a descriptor may just have been freed

    while True:
        await trio.lowlevel.wait_readable(listening)
        spare.take()
        client = _accept(listening, spare, quiet=failures > 0)
        if client is _NoClient.PENDING_NONE:
            continue
        if client is _NoClient.NO_DESCRIPTOR:
            failures += 1
            if failures % ACCEPT_FAILURES_PER_LOG == 1:
                log.error(
                    "control accept failed: too many open files and the spare descriptor is in "
                    "use; retrying every %.1fs in_a_row=%d", ACCEPT_RETRY_S, failures,
                )
            await trio.sleep(ACCEPT_RETRY_S)
            continue
        if failures:
            log.warning("control accept recovered after=%d failed accepts", failures)
            failures = 0
        nursery.start_soon(serve_then_take_spare, client)


def _accept(listening: socket.socket, spare: SpareDescriptor, quiet: bool) -> socket.socket | _NoClient:
    """One pending connection; at the open-file limit, accepted in the spare's slot."""
    try:
        return listening.accept()[0]
    except BlockingIOError:
        return _NoClient.PENDING_NONE
    except OSError as exc:
        if exc.errno in ACCEPT_GONE_ERRNOS:
            return _NoClient.PENDING_NONE
        if exc.errno not in ACCEPT_RESOURCE_ERRNOS:
            raise
    if not spare.give_up():
        return _NoClient.NO_DESCRIPTOR
    if not quiet:
        log.warning("control accept at the open-file limit: this connection uses the spare descriptor")
    try:
        return listening.accept()[0]
    except OSError:
        return _NoClient.NO_DESCRIPTOR

"""The admin API (interfaces-v1.md "Admin API"): quart-trio on Hypercorn, in the server's nursery.

Handlers only parse, call a `Server` method and serialise. Every 4xx is JSON with an
`error` message (unknown paths, wrong methods and oversized bodies included). With a
token, every request needs `Authorization: Bearer TOKEN`, compared in constant time.
Never on the data plane: the listeners do not go through here.

One fix sits at the ASGI edge (`_AdminASGI`), between Hypercorn and Quart: Hypercorn
closes a connection that must close (`Connection: close`, HTTP/1.0, an error) from inside
the app's last `send`. quart-trio cancels the request's nursery as soon as the request
side reports the stream closed, which happens during that very send, so the cancellation
lands on Hypercorn's `send_eof()` and the socket is never shut down nor closed: the
client waits for a FIN that never comes. Every `send` therefore runs shielded; the
cancellation arrives after it, once the socket is closed.

Hypercorn's own sends are shielded too, so a response to a client that stopped reading
(an SSE reader paused in a pager) would block in `send` for ever, and with it the
server's shutdown. The wrapper therefore knows each request's socket, and when the
admin API stops it closes the sockets of the requests still running, which wakes any
blocked send.

A body over `MAX_BODY_BYTES` gets its 413 at once and the connection closes with the
rest of the body unread, so the close is an RST; Linux keeps the bytes a client has
already received readable after an RST, and httpx, requests and curl all read the 413.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any, Awaitable, Callable, Optional

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from .._errors import ProfileError, StartError, UsageError, find_exception
from .._metrics import render_prometheus

__all__ = ["create_app", "is_loopback", "serve_admin"]

log = logging.getLogger("faultserver")

#: Bodies larger than this are refused (413): profiles are small.
MAX_BODY_BYTES = 1024 * 1024
#: The SSE stream sends a comment this often so proxies and clients see it is alive.
SSE_KEEPALIVE_S = 15.0
#: The SSE stream buffers this many events for a slow client, then reports what it missed.
SSE_BUFFER = 1000
#: How long Hypercorn keeps an idle kept-alive admin connection open.
KEEP_ALIVE_S = 5.0

ACCEPT_MODES = ("open", "refuse", "stall")

ASGIMessage = dict[str, Any]


def _json_text(data: Any) -> str:
    return json.dumps(data, default=str) + "\n"


def _json(data: Any, status: int = 200) -> Response:
    return Response(_json_text(data), status=status, content_type="application/json")


def _error(status: int, message: str, **extra: Any) -> Response:
    return _json({"error": message, **extra}, status)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: addresses only this machine can reach."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _AdminASGI:
    """The ASGI app Hypercorn runs: Quart, with every `send` shielded (module docstring)."""

    def __init__(self, app: QuartTrio) -> None:
        self.app = app
        #: the sockets of the requests being answered now (closed by `abort_running`)
        self.running: set[Any] = set()

    def abort_running(self) -> int:
        """Close the socket of every request still being answered; returns how many."""
        count = 0
        for stream in list(self.running):
            try:
                stream.socket.close()  # wakes a send blocked on it (trio notifies the waiter)
                count += 1
            except Exception:  # pragma: no cover - already closed
                pass
        self.running.clear()
        return count

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[ASGIMessage]],
        send: Callable[[ASGIMessage], Awaitable[None]],
    ) -> None:
        async def shielded_send(message: ASGIMessage) -> None:
            with trio.CancelScope(shield=True):
                await send(message)

        stream = _socket_stream_of(send)
        if stream is not None:
            self.running.add(stream)
        try:
            await self.app(scope, receive, shielded_send)
        finally:
            self.running.discard(stream)


def _socket_stream_of(send: Any) -> Optional[trio.SocketStream]:
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
        if isinstance(stream, trio.SocketStream):
            return stream
        fn = getattr(owner, "send", None)
    return None


def create_app(server: Any) -> QuartTrio:
    """The Quart app; `server` is the `Server` whose methods the handlers call."""
    # no static folder: Quart would serve /static/<path> from the package's directory,
    # and no endpoint may read a file the caller names
    app = QuartTrio("faultserver", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 30

    @app.before_request
    async def check_token() -> Optional[Response]:
        token = server.token
        if not token:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # the scheme is case-insensitive (RFC 9110); the token is compared in constant time
        ok = hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))
        if not (ok and scheme.lower() == "bearer"):
            resp = _error(401, "missing or wrong token: send 'Authorization: Bearer TOKEN'")
            resp.headers["www-authenticate"] = 'Bearer realm="faultserver"'
            # answered before any body is read: Hypercorn may close after it, so say so
            resp.headers["connection"] = "close"
            return resp
        return None

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        if isinstance(exc, NotFound):
            message = f"no such endpoint: {request.method} {request.path}"
        elif isinstance(exc, MethodNotAllowed):
            allowed = ", ".join(sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"}))
            message = f"method {request.method} not allowed for {request.path} (allowed: {allowed})"
        elif isinstance(exc, RequestEntityTooLarge):
            message = f"request body too large (at most {MAX_BODY_BYTES} bytes)"
        else:
            message = exc.description or exc.name
        resp = _error(exc.code or 500, message)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            resp.headers["allow"] = ", ".join(exc.valid_methods)
        if isinstance(exc, RequestEntityTooLarge):
            # the connection may be closed after it (body unread): say so, so no client reuses it
            resp.headers["connection"] = "close"
        return resp

    async def body_json() -> Any:
        raw = await request.get_data(as_text=False)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise UsageError(f"body is not valid JSON: {exc}") from None

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok", "listeners": len(server.listeners)})

    @app.get("/listeners")
    async def listeners() -> Response:
        return _json({"listeners": [server.listener_info(rt) for rt in server.listeners.values()]})

    @app.get("/listeners/<name>")
    async def listener(name: str) -> Response:
        rt = server.listeners.get(name)
        if rt is None:
            return _no_listener(name)
        return _json(server.listener_info(rt))

    def _no_listener(name: str) -> Response:
        known = ", ".join(server.listeners) or "none"
        return _error(404, f"no listener named {name!r} (listeners: {known})")

    @app.patch("/listeners/<name>")
    async def patch_listener(name: str) -> Response:
        if name not in server.listeners:
            return _no_listener(name)
        try:
            body = await body_json()
        except UsageError as exc:
            return _error(400, str(exc))
        if not isinstance(body, dict) or not body:
            return _error(400, "expected a JSON object with 'accept' and/or 'rules'")
        unknown = sorted(set(body) - {"accept", "rules"})
        if unknown:
            return _error(400, f"unknown key {unknown[0]!r} (expected 'accept' and/or 'rules')")
        # check everything first: an invalid body changes nothing
        accept = body.get("accept")
        if "accept" in body and (not isinstance(accept, str) or accept not in ACCEPT_MODES):
            return _error(
                400,
                f"unknown accept mode {json.dumps(accept)} (expected one of: {', '.join(ACCEPT_MODES)})",
            )
        rules = None
        if "rules" in body:
            from .._profile.load import load_rules

            try:
                rules = load_rules(body["rules"], name, source="<request>")
            except ProfileError as exc:
                return _error(400, "invalid rules", problems=[str(p) for p in exc.problems])
        if rules is not None:
            server.set_rules(name, rules)
        if accept is not None:
            await server.set_accept(name, accept)
        return _json(server.listener_info(server.listeners[name]))

    @app.post("/listeners/<name>/drop")
    async def drop(name: str) -> Response:
        if name not in server.listeners:
            return _no_listener(name)
        try:
            body = await body_json()
        except UsageError as exc:
            return _error(400, str(exc))
        if not isinstance(body, dict):
            return _error(400, 'expected a JSON object such as {"how": "fin"}')
        unknown = sorted(set(body) - {"how", "idle_only"})
        if unknown:
            return _error(400, f"unknown key {unknown[0]!r} (expected 'how' and 'idle_only')")
        how = body.get("how", "fin")
        idle_only = body.get("idle_only", False)
        if how not in ("fin", "rst"):
            return _error(400, f"unknown how {json.dumps(how)} (expected 'fin' or 'rst')")
        if not isinstance(idle_only, bool):
            return _error(400, f"idle_only must be true or false, got {json.dumps(idle_only)}")
        count = server.drop(name, how, idle_only)
        return _json({"dropped": count, "how": how, "idle_only": idle_only})

    @app.get("/profile")
    async def get_profile() -> Response:
        return _json(server.profile.raw)

    @app.put("/profile")
    async def put_profile() -> Response:
        raw = await request.get_data(as_text=False)
        from .._profile.load import load_profile_text

        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _error(400, f"profile is not valid UTF-8 (byte {exc.start})")
        try:
            # JSON is YAML, so one loader takes both
            profile = load_profile_text(text, source="<request>")
        except ProfileError as exc:
            return _error(400, "invalid profile", problems=[str(p) for p in exc.problems])
        problem = server.check_binds_allowed(profile)
        if problem:
            return _error(403, problem)
        try:
            await server.load(profile, cause="api")
        except StartError as exc:
            return _error(409, str(exc))
        return _json({"listeners": [server.listener_info(rt) for rt in server.listeners.values()]})

    @app.get("/events")
    async def events() -> Response:
        try:
            since = _count("since", request.args.get("since")) or 0
            limit = _count("limit", request.args.get("limit"))
        except UsageError as exc:
            return _error(400, str(exc))
        items, missed = server.events.since(since, limit)
        return _json({"events": items, "missed": missed})

    @app.get("/events/stream")
    async def events_stream() -> Response:
        # ?since=ID, or the Last-Event-ID a reconnecting EventSource sends; default: live only
        try:
            since = _count("since", request.args.get("since"))
            if since is None:
                since = _count("Last-Event-ID", request.headers.get("last-event-id") or None)
        except UsageError as exc:
            return _error(400, str(exc))
        log_ = server.events
        send, receive = trio.open_memory_channel[dict](SSE_BUFFER)
        dropped = [0]

        def push(event: dict) -> None:
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                dropped[0] += 1

        # subscribe before reading the backlog, so nothing falls between them
        unsubscribe = log_.subscribe(push)
        if since is None:
            since = log_.last_id
        backlog, missed = log_.since(since)

        async def stream() -> Any:
            try:
                yield b": faultserver events\n\n"
                if missed:
                    yield _sse("missed", {"missed": missed})
                last = since
                for event in backlog:
                    last = event["id"]
                    yield _sse(None, event)
                while True:
                    with trio.move_on_after(SSE_KEEPALIVE_S) as waiting:
                        event = await receive.receive()
                    if waiting.cancelled_caught:
                        yield b": keep-alive\n\n"
                        continue
                    if event["id"] <= last:
                        continue
                    if dropped[0]:
                        yield _sse("missed", {"missed": dropped[0]})
                        dropped[0] = 0
                    last = event["id"]
                    yield _sse(None, event)
            finally:
                unsubscribe()

        resp = Response(stream(), content_type="text/event-stream")
        resp.headers["cache-control"] = "no-cache"
        resp.timeout = None
        return resp

    @app.post("/reset")
    async def reset() -> Response:
        await server.reset()
        return _json({"reset": True})

    @app.get("/metrics")
    async def metrics() -> Response:
        text = render_prometheus((name, rt.stats) for name, rt in server.listeners.items())
        return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def _count(name: str, value: Optional[str]) -> Optional[int]:
    """A query parameter or header that must be an integer 0 or more (None when absent)."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise UsageError(f"{name} must be an integer 0 or more, got {value!r}")
    return number


def _sse(kind: Optional[str], data: dict) -> bytes:
    head = f"event: {kind}\n" if kind else f"id: {data['id']}\n"
    return f"{head}data: {json.dumps(data, default=str)}\n\n".encode()


class _QuietStartFilter(logging.Filter):
    """Drop Hypercorn's 'Running on ... (CTRL + C to quit)': faultserver logs its own line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Running on ")


_ADMIN_LOG = logging.getLogger("faultserver.admin")
_ADMIN_LOG.addFilter(_QuietStartFilter())


async def serve_admin(server: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the admin API until the server stops; reports its base URL as started."""
    host, port = server.control_bind  # Server.run refused a public one without a token
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = _ADMIN_LOG
    config.graceful_timeout = 0.5
    config.keep_alive_timeout = KEEP_ALIVE_S
    app = _AdminASGI(create_app(server))
    async with trio.open_nursery() as nursery:
        try:
            binds = await nursery.start(_serve_hypercorn, app, config)
        except BaseException as exc:
            oserror = find_exception(exc, OSError)
            if oserror is None:
                raise
            raise StartError(
                f"control: cannot bind {host}:{port}: {oserror.strerror or oserror}"
            ) from None
        log.info("control start url=%s token=%s", binds[0], "yes" if server.token else "no")
        task_status.started(binds[0])
        try:
            await trio.sleep_forever()
        finally:
            # stopping: a send blocked on a client that stopped reading must not hold us
            app.abort_running()


def refuse_message(host: str, port: int) -> str:
    """Why a non-loopback admin API without a token does not start (one line)."""
    shown = f"[{host}]" if ":" in host else host
    return (
        f"control: refusing to bind {shown}:{port} without a token: set control.token or "
        "FAULTSERVER_TOKEN (anyone who can reach it could change the faults)"
    )


async def _serve_hypercorn(app: Any, config: Config, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    await serve(app, config, shutdown_trigger=trio.sleep_forever, task_status=task_status, mode="asgi")


"""The admin API's routes: each one parses (`parse.py`), calls the server, serialises.

Every answer is JSON, errors included (unknown paths, wrong methods and oversized bodies
too): handlers raise faultserver's errors and `errors.py` maps them to statuses, in one
place. Every request passes the guard first (`guard.py`: Host, Origin, token, Content-Type).
Never on the data plane: the listeners do not go through here.

A body over `MAX_BODY_BYTES` gets its 413 at once and the connection closes with the
rest of the body unread, so the close is an RST; Linux keeps the bytes a client has
already received readable after an RST, and httpx, requests and curl all read the 413.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cached_property

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from .._errors import FaultserverError, UsageError
from .._metrics import render_prometheus, render_state_metrics
from .._metrics_upstream import render_upstream_metrics
from .._profile.model import AcceptMode
from .._reload import ReloadCause
from . import parse
from .errors import error_response, json_response
from .guard import RequestGuard, RequestHead
from .pages import PATHS as PAGE_PATHS
from .pages import serve_page
from .parse import check_query
from .protocol import AdminServer
from .streams import EventStreams
from .views import listener_view, state_view

__all__ = ["MAX_BODY_BYTES", "create_app"]

log = logging.getLogger("faultserver")

#: Bodies larger than this are refused (413): profiles are small.
MAX_BODY_BYTES = 1024 * 1024
#: How long a request body may take to arrive.
BODY_TIMEOUT_S = 30

View = Callable[..., Awaitable[Response]]


def create_app(server: AdminServer) -> QuartTrio:
    """The Quart app whose routes call `server` (nothing is read from it until a request)."""
    # no static folder: Quart would serve /static/<path> from the package's directory,
    # and no endpoint may read a file the caller names
    app = QuartTrio("faultserver", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT_S
    routes = _Routes(server)
    for method, path, view in routes.table():
        app.add_url_rule(path, f"{method} {path}", view, methods=[method])
    app.before_request(routes.guard)
    app.register_error_handler(FaultserverError, _on_faultserver_error)
    app.register_error_handler(HTTPException, _on_http_error)
    app.register_error_handler(Exception, _on_unexpected_error)
    return app


class _Routes:
    """One short method per endpoint of the README's "Admin API"."""

    def __init__(self, server: AdminServer) -> None:
        self.server = server

    def table(self) -> list[tuple[str, str, View]]:
        return [
            ("GET", "/healthz", self.healthz),
            ("GET", "/readyz", self.readyz),
            ("GET", "/listeners", self.listeners),
            ("GET", "/listeners/<name>", self.listener),
            ("PATCH", "/listeners/<name>", self.patch_listener),
            ("POST", "/listeners/<name>/drop", self.drop),
            ("GET", "/profile", self.get_profile),
            ("PUT", "/profile", self.put_profile),
            ("POST", "/reload", self.reload),
            ("GET", "/events", self.events),
            ("GET", "/events/stream", self.events_stream),
            ("POST", "/reset", self.reset),
            ("GET", "/metrics", self.metrics),
            ("GET", "/state", self.state),
            ("POST", "/schedule/pause", self.pause),
            ("POST", "/schedule/resume", self.resume),
            ("POST", "/panic", self.panic),
            # the dashboard: `GET /` and its assets (pages.py), fixed paths
            *(("GET", path, serve_page) for path in sorted(PAGE_PATHS)),
        ]

    @cached_property
    def _guard(self) -> RequestGuard:
        scheme = "https" if self.server.control_tls is not None else "http"
        return RequestGuard(self.server.token, self.server.allowed_hosts, scheme, PAGE_PATHS)

    @cached_property
    def _streams(self) -> EventStreams:
        return EventStreams(self.server.events, self.server.max_subscribers)

    async def guard(self) -> Response | None:
        headers = {name.lower(): value for name, value in request.headers.items()}
        server = request.scope.get("server") or ("", 0)  # the address the request arrived at
        local = (str(server[0]), int(server[1] or 0))
        refusal = self._guard.check(RequestHead(request.method, request.path, headers, local))
        if refusal is None:
            return None
        resp = json_response({"error": refusal.message}, refusal.status)
        for name, value in refusal.headers:
            resp.headers[name] = value
        return resp

    async def healthz(self) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self) -> Response:
        if self.server.ready:
            return json_response({"status": "ready"})
        return json_response({"error": "not ready: the server is starting or stopping"}, 503)

    async def listeners(self) -> Response:
        return json_response({"listeners": [listener_view(rt) for rt in self.server.listeners.values()]})

    async def listener(self, name: str) -> Response:
        return json_response(listener_view(self.server.listener(name)))

    async def patch_listener(self, name: str) -> Response:
        self.server.listener(name)  # 404 before the body is looked at
        update = parse.listener_update(parse.json_body(await _body()), name)
        await self.server.update_listener(
            name, accept=update.accept, rules=update.rules, certificate=update.certificate
        )
        return json_response(listener_view(self.server.listener(name)))

    async def drop(self, name: str) -> Response:
        self.server.listener(name)
        how, idle_only = parse.drop_request(parse.json_body(await _body()))
        count = await self.server.drop_connections(name, how, idle_only)
        return json_response({"dropped": count, "how": how.value, "idle_only": idle_only})

    async def get_profile(self) -> Response:
        # the profile as loaded, not what the API changed since: GET /state says that
        resp = json_response(self.server.profile.raw)
        resp.headers["x-faultserver-profile"] = "as-loaded (what is in force now: GET /state)"
        return resp

    async def state(self) -> Response:
        check_query("GET /state", list(request.args), [])
        return json_response(state_view(self.server))

    async def pause(self) -> Response:
        _no_body(await _body())
        changed = self.server.pause_schedule()
        return json_response({"paused": True, "changed": changed})

    async def resume(self) -> Response:
        _no_body(await _body())
        changed = self.server.resume_schedule()
        return json_response({"paused": False, "changed": changed})

    async def panic(self) -> Response:
        _no_body(await _body())
        done = await self.server.panic()
        return json_response({"panic": True, "paused": True, **done})

    async def put_profile(self) -> Response:
        profile = parse.profile_body(await _body())
        await self.server.load(profile, ReloadCause.API, check_binds=True)
        return await self.listeners()

    async def reload(self) -> Response:
        """No body: read the server's own profile file again, as SIGHUP does; or
        `{"profile": NAME}`: a shipped profile by its name."""
        raw = await _body()
        if not raw.strip():
            await self.server.reload_source(ReloadCause.API)
        else:
            profile = parse.reload_request(parse.json_body(raw))
            await self.server.load(profile, ReloadCause.API, check_binds=True)
        return await self.listeners()

    async def events(self) -> Response:
        query = parse.events_query(_query())
        body = await self._streams.page_body(query.since or 0, query.limit, query.newest, query.wanted)
        return Response(body, content_type="application/json")

    async def events_stream(self) -> Response:
        # ?since=ID, or the Last-Event-ID a reconnecting EventSource sends; default: live only
        query = parse.events_query(_query(), paging=False)
        since = query.since
        if since is None:
            since = parse.query_count("Last-Event-ID", request.headers.get("last-event-id") or None)
        stream = self._streams.open(since, query.wanted, query.rate, query.burst)
        resp = Response(stream, content_type="text/event-stream")
        resp.headers["cache-control"] = "no-cache"
        resp.timeout = None
        return resp

    async def reset(self) -> Response:
        await self.server.reset()
        return json_response({"reset": True})

    async def metrics(self) -> Response:
        text = render_prometheus((name, rt.stats) for name, rt in self.server.listeners.items())
        text += render_upstream_metrics(
            (name, rt.ctx.upstream) for name, rt in self.server.listeners.items() if rt.ctx.upstream
        )
        in_force = self.server.in_force()
        text += render_state_metrics(
            [(item.rt.name, item.rt.mode.value) for item in in_force],
            [(item.rt.name, item.schedule.phases, item.schedule.phase)
             for item in in_force if item.schedule is not None],
            self.server.schedule_paused,
            [mode.value for mode in AcceptMode],
        )
        return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")


def _no_body(raw: bytes) -> None:
    """An endpoint that takes no body: none, or an empty JSON object."""
    body = parse.json_body(raw)
    if body != {}:
        raise UsageError(f"this endpoint takes no body (or {{}}), got {parse.show(body)}")


def _query() -> dict[str, list[str]]:
    """The query parameters, each with every value it was given."""
    return {name: request.args.getlist(name) for name in request.args}


async def _body() -> bytes:
    """The request's body (at most MAX_BODY_BYTES: Quart answers 413 beyond)."""
    return await request.get_data(cache=True, as_text=False, parse_form_data=False)


async def _on_faultserver_error(exc: FaultserverError) -> Response:
    return error_response(exc)


async def _on_http_error(exc: HTTPException) -> Response:
    if isinstance(exc, NotFound):
        message = f"no such endpoint: {request.method} {request.path}"
    elif isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"}))
        message = f"method {request.method} not allowed for {request.path} (allowed: {allowed})"
    elif isinstance(exc, RequestEntityTooLarge):
        message = f"request body too large (at most {MAX_BODY_BYTES} bytes)"
    else:
        message = exc.description or exc.name
    resp = json_response({"error": message}, exc.code or 500)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        resp.headers["allow"] = ", ".join(exc.valid_methods)
    if isinstance(exc, RequestEntityTooLarge):
        # the connection may be closed after it (body unread): say so, so no client reuses it
        resp.headers["connection"] = "close"
    return resp


async def _on_unexpected_error(exc: Exception) -> Response:
    log.error("admin API error method=%s path=%s", request.method, request.path, exc_info=exc)
    return json_response({"error": f"internal error ({type(exc).__name__}); see the server's log"}, 500)

"""The admin API (interfaces-v1.md "Admin API"): quart-trio on Hypercorn, in the server's nursery.

Handlers only parse, call a `Server` method and serialise. Every 4xx is JSON with an
`error` message. With a token, every request needs `Authorization: Bearer TOKEN`,
compared in constant time. Never on the data plane: the listeners do not go through here.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any, Optional

import trio
import yaml
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .._errors import ProfileError, StartError, UsageError
from .._metrics import render_prometheus

__all__ = ["create_app", "serve_admin"]

log = logging.getLogger("faultserver")

#: Bodies larger than this are refused (413): profiles are small.
MAX_BODY_BYTES = 1024 * 1024
#: The SSE stream sends a comment this often so proxies and clients see it is alive.
SSE_KEEPALIVE_S = 15.0


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data) + "\n", status=status, content_type="application/json")


def _error(status: int, message: str, **extra: Any) -> Response:
    return _json({"error": message, **extra}, status)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(server: Any) -> QuartTrio:
    app = QuartTrio("faultserver")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    @app.before_request
    async def check_token() -> Optional[Response]:
        token = server.token
        if not token:
            return None
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            resp = _error(401, "missing or wrong token: send 'Authorization: Bearer TOKEN'")
            resp.headers["www-authenticate"] = 'Bearer realm="faultserver"'
            return resp
        return None

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, exc.description or exc.name)

    async def body_json() -> Any:
        raw = await request.get_data(as_text=False)
        if not raw:
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
            return _error(404, f"no listener named {name!r}")
        return _json(server.listener_info(rt))

    @app.patch("/listeners/<name>")
    async def patch_listener(name: str) -> Response:
        if name not in server.listeners:
            return _error(404, f"no listener named {name!r}")
        try:
            body = await body_json()
        except UsageError as exc:
            return _error(400, str(exc))
        if not isinstance(body, dict) or not body:
            return _error(400, "expected a JSON object with 'accept' and/or 'rules'")
        unknown = sorted(set(body) - {"accept", "rules"})
        if unknown:
            return _error(400, f"unknown key {unknown[0]!r} (expected 'accept' and/or 'rules')")
        rules = None
        if "rules" in body:
            from .._profile.load import load_rules

            try:
                rules = load_rules(body["rules"], name, source="<request>")
            except ProfileError as exc:
                return _error(400, "invalid rules", problems=[str(p) for p in exc.problems])
        if "accept" in body and body["accept"] not in ("open", "refuse", "stall"):
            return _error(
                400, f"unknown accept mode {body['accept']!r} (expected one of: open, refuse, stall)"
            )
        if rules is not None:
            server.set_rules(name, rules)
        if "accept" in body:
            await server.set_accept(name, body["accept"])
        return _json(server.listener_info(server.listeners[name]))

    @app.post("/listeners/<name>/drop")
    async def drop(name: str) -> Response:
        if name not in server.listeners:
            return _error(404, f"no listener named {name!r}")
        try:
            body = await body_json()
        except UsageError as exc:
            return _error(400, str(exc))
        if not isinstance(body, dict):
            return _error(400, "expected a JSON object such as {\"how\": \"fin\"}")
        unknown = sorted(set(body) - {"how", "idle_only"})
        if unknown:
            return _error(400, f"unknown key {unknown[0]!r} (expected 'how' and 'idle_only')")
        how = body.get("how", "fin")
        idle_only = body.get("idle_only", False)
        if how not in ("fin", "rst"):
            return _error(400, f"unknown how {how!r} (expected 'fin' or 'rst')")
        if not isinstance(idle_only, bool):
            return _error(400, "idle_only must be true or false")
        count = server.drop(name, how, idle_only)
        return _json({"dropped": count, "how": how})

    @app.get("/profile")
    async def get_profile() -> Response:
        return _json(server.profile.raw)

    @app.put("/profile")
    async def put_profile() -> Response:
        raw = await request.get_data(as_text=False)
        from .._profile.load import load_profile_text

        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "profile is not valid UTF-8")
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
            since = int(request.args.get("since", "0"))
            limit = int(request.args["limit"]) if "limit" in request.args else None
        except ValueError:
            return _error(400, "since and limit must be integers")
        if limit is not None and limit < 0:
            return _error(400, "limit must be 0 or more")
        items, missed = server.events.since(since, limit)
        return _json({"events": items, "missed": missed})

    @app.get("/events/stream")
    async def events_stream() -> Response:
        try:
            since = int(request.args.get("since", str(server.events.last_id)))
        except ValueError:
            return _error(400, "since must be an integer")
        send, receive = trio.open_memory_channel[dict](1000)
        dropped = [0]

        def push(event: dict) -> None:
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                dropped[0] += 1

        backlog, missed = server.events.since(since)
        unsubscribe = server.events.subscribe(push)

        async def stream() -> Any:
            try:
                if missed:
                    yield f"event: missed\ndata: {json.dumps({'missed': missed})}\n\n".encode()
                last = since
                for event in backlog:
                    last = event["id"]
                    yield f"id: {event['id']}\ndata: {json.dumps(event)}\n\n".encode()
                while True:
                    with trio.move_on_after(SSE_KEEPALIVE_S) as waiting:
                        event = await receive.receive()
                    if waiting.cancelled_caught:
                        yield b": keep-alive\n\n"
                        continue
                    if event["id"] <= last:
                        continue
                    if dropped[0]:
                        yield f"event: missed\ndata: {json.dumps({'missed': dropped[0]})}\n\n".encode()
                        dropped[0] = 0
                    yield f"id: {event['id']}\ndata: {json.dumps(event)}\n\n".encode()
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


async def serve_admin(server: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the admin API until the server stops; reports its base URL as started."""
    host, port = server.control_bind
    if not server.token and not is_loopback(host):
        raise StartError(
            f"control: refusing to bind {host}:{port} without a token: set control.token or "
            "FAULTSERVER_TOKEN (anyone who can reach it could change the faults)"
        )
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("faultserver.admin")
    config.graceful_timeout = 0.5
    config.keep_alive_timeout = 5
    app = create_app(server)
    async with trio.open_nursery() as nursery:
        try:
            binds = await nursery.start(_serve_hypercorn, app, config)
        except BaseException as exc:
            oserror = _find_oserror(exc)
            if oserror is None:
                raise
            raise StartError(
                f"control: cannot bind {host}:{port}: {oserror.strerror or oserror}"
            ) from None
        task_status.started(binds[0])


async def _serve_hypercorn(app: QuartTrio, config: Config, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    await serve(app, config, shutdown_trigger=trio.sleep_forever, task_status=task_status)


def _find_oserror(exc: BaseException) -> Optional[OSError]:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_oserror(inner)
            if found is not None:
                return found
    return None

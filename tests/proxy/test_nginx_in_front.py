"""nginx in front of faultserver in front of a real upstream: each fault row gives nginx's
client the same status and nginx the same error.log message as with faultserver as a mock
(the rows of tests/gateway/test_gateway_matrix.py), while the other requests reach the
upstream through both proxies."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any

from faultserver.testing import FaultServer
from tests.proxy.upstream import Upstream

RULES = [
    {"name": "reset", "match": {"path": "/reset"}, "action": "reset"},
    {"name": "partial", "match": {"path": "/partial"}, "action": "partial", "bytes": 20},
    {"name": "hang", "match": {"path": "/hang"}, "action": "hang"},
]
#: nginx's `proxy_read_timeout 1s` answers /hang after a second
ROWS = ("/reset", "/partial", "/hang")


def backend(upstream: str | None) -> dict[str, Any]:
    listener: dict[str, Any] = {"name": "backend", "bind": "127.0.0.1:0", "rules": RULES}
    if upstream is not None:
        listener["upstream"] = upstream
    return {"version": 1, "listeners": [listener]}


def get(url: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def outcomes(gw: Any) -> dict[str, tuple[int, str]]:
    """Per fault row: the status nginx's client got, and nginx's error.log message."""
    return {path: (get(gw.url, path)[0], gw.message(gw.error_line("GET", path))) for path in ROWS}


def test_nginx_sees_the_same_rows_through_the_proxy_as_with_a_mock(
    faultserver: Callable[..., FaultServer], nginx: Callable[..., Any], upstream: Upstream
) -> None:
    mock = faultserver(backend(None))
    proxy = faultserver(backend(upstream.url))
    with_mock = outcomes(nginx(mock["backend"].port))
    gw = nginx(proxy["backend"].port)
    assert outcomes(gw) == with_mock
    assert [status for status, _ in with_mock.values()] == [502, 502, 504]
    status, body, headers = get(gw.url, "/ok")
    assert (status, body, headers["x-upstream"]) == (200, b"ok\n", "yes")
    assert upstream.connections == 1  # only /ok reached the upstream

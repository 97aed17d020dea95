"""A full pool: a request waits for a connection to come back, within the connect timeout."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from faultserver.testing import FaultServer
from tests.support import net


def test_full_pool_request_waits_for_a_connection_to_come_back(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(pool={"max_connections": 1}, upstream_timeouts={"read": "300ms", "connect": "5s"})
    with net.connect("127.0.0.1", srv["proxy"].port, 5) as holder:
        holder.sendall(net.get_request("/stall"))  # takes the only connection until its 504
        srv.wait_for(type="request", path="/stall")
        answer = httpx.get(srv.url + "/ok", timeout=5)
        assert answer.status_code == 200
        assert net.RawReader(holder).read_response().status == 504
    errors = srv.events(type="upstream_error")
    assert [(e["path"], e["reason"], e["phase"]) for e in errors] == [("/stall", "timeout", "read")]


def test_full_pool_request_times_out_within_the_connect_timeout(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(pool={"max_connections": 1}, upstream_timeouts={"read": "3s", "connect": "200ms"})
    with net.connect("127.0.0.1", srv["proxy"].port, 5) as holder:
        holder.sendall(net.get_request("/stall"))
        srv.wait_for(type="request", path="/stall")
        assert httpx.get(srv.url + "/ok", timeout=5).status_code == 504
        event = srv.wait_for(type="upstream_error", path="/ok")
        assert (event["reason"], event["phase"], event["error"]) == (
            "timeout",
            "connect",
            "upstream timeout (connect): the pool is full",
        )

"""A proxied listener across the handle's and the admin API's life events: `srv.load` with
an `upstream=`, `POST /reset` and the upstream's counts, a reload that replaces the pool."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from faultserver.testing import FaultServer
from tests.proxy.conftest import proxy_profile
from tests.proxy.upstream import Upstream, pattern_bytes
from tests.support import net
from tests.support.wait import wait_until

MOCK = {"version": 1, "listeners": [{"name": "proxy", "bind": "127.0.0.1:0"}]}


def upstream_samples(srv: FaultServer) -> dict[str, float]:
    text = httpx.get(f"{srv.control_url}/metrics", timeout=5).text
    return {
        s.name + "".join(f",{k}={v}" for k, v in sorted(s.labels.items()) if k != "listener"): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("faultserver_upstream")
        for s in family.samples
    }


def test_load_with_upstream_points_listeners_without_one_at_it(
    faultserver: Callable[..., FaultServer], upstream: Upstream
) -> None:
    srv = faultserver(MOCK)
    assert "x-upstream" not in httpx.get(srv.url + "/ok", timeout=5).headers
    srv.load(MOCK, keep_binds=True, upstream=upstream.url)
    answer = httpx.get(srv.url + "/ok", timeout=5)
    assert (answer.status_code, answer.headers["x-upstream"], answer.text) == (200, "yes", "ok\n")
    assert srv.wait_for(type="forward")["upstream_status"] == 200


def test_reset_clears_the_upstream_counts(
    faultserver: Callable[..., FaultServer], upstream: Upstream
) -> None:
    srv = faultserver(proxy_profile(upstream.url), admin=True)
    with httpx.Client(timeout=5) as client:
        for path in ("/ok", "/status/404"):
            client.get(srv.url + path)
    before = upstream_samples(srv)
    assert before["faultserver_upstream_responses_total,class=2xx"] == 1
    assert before["faultserver_upstream_latency_seconds_count"] == 2
    srv.reset()
    after = upstream_samples(srv)
    assert not any(name.startswith("faultserver_upstream_responses_total") for name in after)
    assert after["faultserver_upstream_latency_seconds_count"] == 0
    assert after["faultserver_upstream_latency_seconds_bucket,le=+Inf"] == 0
    # the pool is not a counter: its idle connection is still there, and still used
    assert after["faultserver_upstream_pool_idle"] == 1
    assert httpx.get(srv.url + "/ok", timeout=5).status_code == 200
    assert upstream.connections == 1


def test_reload_closes_the_old_pools_connections_in_use_when_they_come_back(
    faultserver: Callable[..., FaultServer], upstream: Upstream
) -> None:
    size = 8 * 1024 * 1024
    with Upstream() as other:
        srv = faultserver(proxy_profile(upstream.url))
        with net.connect("127.0.0.1", srv["proxy"].port, 5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(net.get_request(f"/file/{size}"))
            reader = net.RawReader(sock)
            reader.read_head()  # the answer is on its way: its upstream connection is in use
            srv.load(proxy_profile(other.url), keep_binds=True)
            reader._need(size)
            body, reader.buf = reader.buf[:size], reader.buf[size:]
            assert body == pattern_bytes(size)
            sock.sendall(net.get_request("/ok"))  # the same client connection, the new upstream
            assert reader.read_response().status == 200
        assert (upstream.connections, other.connections) == (1, 1)
        wait_until(lambda: upstream.open == 0)  # given back to the old pool: closed, not kept
        assert other.open == 1

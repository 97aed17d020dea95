"""Proxy mode's events, metrics and fixture argument, as a test author uses them."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faultserver import ProfileError
from faultserver.testing import FaultServer, running
from tests.proxy.conftest import proxy_profile
from tests.proxy.upstream import Upstream
from tests.support.profiles import one_listener


def test_fixture_upstream_sets_listeners_without_one(
    faultserver: Callable[..., FaultServer], upstream: Upstream
) -> None:
    profile = one_listener(rules=[{"match": {"path": "/fail"}, "action": "reset"}])
    srv = faultserver(profile, upstream=upstream.url)
    r = httpx.get(srv.url + "/ok", timeout=5)
    assert (r.status_code, r.headers["x-upstream"]) == (200, "yes")
    with pytest.raises(httpx.ReadError):
        httpx.get(srv.url + "/fail", timeout=5)


def test_running_upstream_keeps_a_listeners_own(upstream: Upstream) -> None:
    with Upstream() as other:
        with running(proxy_profile(other.url), upstream=upstream.url) as srv:
            httpx.get(srv.url + "/ok", timeout=5)
        assert (other.connections, upstream.connections) == (1, 0)


def test_running_upstream_bad_url_is_a_located_error() -> None:
    with pytest.raises(ProfileError) as caught:
        with running(one_listener(), upstream="ftp://127.0.0.1:21"):
            pass
    assert str(caught.value) == (
        "<upstream>:0:0: upstream: expected a URL with scheme http or https (http://HOST:PORT), "
        "got 'ftp' in 'ftp://127.0.0.1:21'"
    )


def test_forward_event_says_status_latency_reuse(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    with httpx.Client(timeout=5) as client:
        client.get(srv.url + "/status/201")
        client.get(srv.url + "/ok")
    srv.wait_for(type="forward", path="/ok")
    first, second = srv.events(type="forward")
    assert (first["status"], first["upstream_status"], first["reused"]) == (201, 201, False)
    assert (second["status"], second["reused"]) == (200, True)
    assert 0 < first["upstream_ms"] < 5000
    assert first["conn"] == second["conn"]


def test_metrics_upstream_families(faultserver: Callable[..., FaultServer], upstream: Upstream) -> None:
    srv = faultserver(proxy_profile(upstream.url, upstream_timeouts={"read": "200ms"}), admin=True)
    with httpx.Client(timeout=5) as client:
        for path in ("/ok", "/ok", "/status/404", "/stall", "/ok"):
            client.get(srv.url + path)
        text = client.get(f"{srv.control_url}/metrics").text
    samples = {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "listener"))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("faultserver_upstream_responses_total", (("class", "2xx"),))] == 3
    assert samples[("faultserver_upstream_responses_total", (("class", "4xx"),))] == 1
    errors = ("faultserver_upstream_errors_total", (("phase", "read"), ("reason", "timeout")))
    assert samples[errors] == 1
    assert samples[("faultserver_upstream_latency_seconds_count", ())] == 4
    assert samples[("faultserver_upstream_latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("faultserver_upstream_pool_in_use", ())] == 0
    # the stalled connection was closed, and the last /ok opened the one now idle
    assert samples[("faultserver_upstream_pool_idle", ())] == 1


def test_plain_forward_is_no_fault_a_changed_one_is(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(
        {"name": "late", "match": {"path": "/ok"}, "action": "forward", "delay": "10ms"},
        {"name": "broken", "match": {"path": "/status/*"}, "action": "forward", "status": 500},
    )
    with httpx.Client(timeout=5) as client:
        assert client.get(srv.url + "/ok").status_code == 200
        assert client.get(srv.url + "/status/200").status_code == 500
    assert srv["proxy"].faults() == {"forward": 1}
    assert srv["proxy"].delayed() == {"forward": 1}

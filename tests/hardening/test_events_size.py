"""Events stay small, and reading them does not freeze the data plane (issue 19 item 6).

Long text fields are cut to 1 KiB and the event says which (`truncated`); `GET /events`
answers at most 1,000 events unless asked for more, with `next` and `more` to page on; a page
of the whole buffer is sent in pieces, so a healthy request meanwhile is answered at once.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from faultserver.testing import running
from tests.support.profiles import one_listener

PROFILE = one_listener()
#: What a healthy request may take while /events is being read.
HEALTHY_BUDGET_S = 0.5


def healthy_get(port: int) -> float:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), data[:100]
    return time.monotonic() - start


def test_events_long_path_is_cut_to_1_kib_and_says_so():
    path = "/" + "a" * 6000
    with running(PROFILE, admin=True) as srv:
        r = httpx.get(srv.url + path, timeout=5)
        assert r.status_code == 200
        request = srv.wait_for(type="request", timeout=5)
        response = srv.wait_for(type="response", timeout=5)
        with httpx.Client(base_url=srv.control_url, timeout=5) as api:
            listed = [e for e in api.get("/events").json()["events"] if e["type"] == "request"]
    for event in (request, response, listed[0]):
        assert event["path"] == path[:1024]
        assert len(event["fingerprint"]) <= 1024
        assert "path" in event["truncated"], event
    assert request["method"] == "GET" and "truncated" not in {k for k, v in request.items() if v == "GET"}


def test_events_short_fields_are_left_alone():
    with running(PROFILE, admin=True) as srv:
        httpx.get(srv.url + "/short", timeout=5)
        event = srv.wait_for(type="response", timeout=5)
    assert event["path"] == "/short" and "truncated" not in event


def test_events_page_default_limit_is_1000_with_next():
    with running(PROFILE, admin=True) as srv:
        srv._call_sync(lambda: [srv.events_log.emit("x", "backend", n=i) for i in range(2500)])
        with httpx.Client(base_url=srv.control_url, timeout=10) as api:
            page = api.get("/events").json()
            assert len(page["events"]) == 1000
            assert page["more"] is True and page["next"] == page["events"][-1]["id"]
            seen = [e["id"] for e in page["events"]]
            while page["more"]:
                page = api.get("/events", params={"since": page["next"]}).json()
                seen += [e["id"] for e in page["events"]]
    assert seen == list(range(1, len(seen) + 1)) and len(seen) > 2500


@pytest.mark.parametrize("limit", [None, 10_000])
def test_events_reading_the_whole_buffer_does_not_freeze_the_data_plane(limit):
    blob = "b" * 16_000
    with running(PROFILE, admin=True) as srv:
        # 10,000 events of two 16 KB fields: 320 MB of JSON if nothing were cut
        srv._call_sync(lambda: [srv.events_log.emit("big", "backend", a=blob, b=blob) for _ in range(10_000)])
        port = srv["backend"].port
        healthy_get(port)
        result: dict = {}

        def read_events() -> None:
            params = {"since": 0} if limit is None else {"since": 0, "limit": limit}
            started = time.monotonic()
            r = httpx.get(srv.control_url + "/events", params=params, timeout=60)
            result["took"] = time.monotonic() - started
            result["page"] = r.json()

        reader = threading.Thread(target=read_events)
        reader.start()
        slowest = 0.0
        while reader.is_alive():
            slowest = max(slowest, healthy_get(port))
            time.sleep(0.02)
        reader.join()
    print(f"slowest healthy GET {slowest:.3f} s, GET /events took {result['took']:.2f} s")
    assert slowest < HEALTHY_BUDGET_S, f"a healthy GET took {slowest:.2f} s during GET /events"
    events = result["page"]["events"]
    assert len(events) == (1000 if limit is None else 10_000)
    assert events[0]["a"] == blob[:1024] and events[0]["truncated"] == ["a", "b"]

"""Events (the README's "Events") as GET /events and GET /events/stream deliver them:
every field on every type, fingerprints and retries, the bounded buffer and `missed`."""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import pytest
from httpx_sse import connect_sse

from tests.support.net import pipeline_gets

EXPECTED_TYPES = {"accept", "request", "response", "fault", "peer_close", "mode"}


def fetch(api: httpx.Client, **params: object) -> dict:
    r = api.get("/events", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_events_carry_every_field_of_the_spec(admin, adm):
    srv, api = admin(
        adm.profile(
            adm.listener(rules=[{"name": "boom", "match": {"path": "/boom"}, "action": "close"}]),
            adm.listener("early", rules=[{"at": "connect", "action": "close", "times": 1}]),
        )
    )
    start = time.time()
    a = adm.connect(srv["backend"].port)
    a_peer = f"127.0.0.1:{a.getsockname()[1]}"
    assert adm.roundtrip(a, "/a?q=1")[0] == 200
    a.sendall(adm.request_bytes("/boom", method="POST", body=b"payload"))
    assert a.recv(100) == b""  # the close fault: FIN
    a.close()
    b = adm.connect(srv["early"].port)
    b_peer = f"127.0.0.1:{b.getsockname()[1]}"
    assert b.recv(100) == b""  # the connect-level close
    b.close()
    srv.wait_for(type="peer_close", listener="backend", timeout=3)

    events = fetch(api)["events"]
    assert fetch(api)["missed"] == 0
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for e in events:
        assert isinstance(e["time"], float) and start - 5 < e["time"] < time.time() + 1
        assert "listener" in e and "type" in e
    assert {e["type"] for e in events} >= EXPECTED_TYPES

    def one(**match: object) -> dict:
        found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
        assert len(found) == 1, (match, found)
        return found[0]

    accept = one(type="accept", listener="backend")
    conn = accept["conn"]
    assert accept["peer"] == a_peer
    assert isinstance(conn, int)
    first = one(type="request", path="/a")
    assert {k: first[k] for k in ("listener", "conn", "peer", "method", "request_on_connection")} == {
        "listener": "backend", "conn": conn, "peer": a_peer, "method": "GET", "request_on_connection": 1,
    }
    assert isinstance(first["fingerprint"], str) and first["fingerprint"]
    response = one(type="response", path="/a")
    assert response["status"] == 200
    for key in ("conn", "peer", "method", "path", "request_on_connection", "fingerprint"):
        assert response[key] == first[key], key
    second = one(type="request", path="/boom")
    assert (second["method"], second["request_on_connection"], second["conn"]) == ("POST", 2, conn)
    assert second["fingerprint"] != first["fingerprint"]
    fault = one(type="fault", listener="backend")
    assert (fault["rule"], fault["action"]) == ("boom", "close")
    for key in ("conn", "peer", "method", "path", "request_on_connection", "fingerprint"):
        assert fault[key] == second[key], key
    closed = one(type="peer_close", listener="backend")
    assert (closed["conn"], closed["peer"], closed["how"]) == (conn, a_peer, "fin")

    early_accept = one(type="accept", listener="early")
    assert early_accept["peer"] == b_peer and early_accept["conn"] != conn
    early_fault = one(type="fault", listener="early")
    assert (early_fault["rule"], early_fault["action"]) == ("rule-0", "close")
    assert (early_fault["conn"], early_fault["peer"]) == (early_accept["conn"], b_peer)
    assert "method" not in early_fault  # connection-level: no request

    modes = [e for e in events if e["type"] == "mode"]
    assert [(e["listener"], e["accept"], e["cause"]) for e in modes] == [
        ("backend", "open", "profile"), ("early", "open", "profile"),
    ]
    assert all("conn" not in e for e in modes)


def test_peer_close_says_fin_or_rst_as_the_client_ended(admin, adm):
    srv, api = admin(adm.profile())
    port = srv["backend"].port
    polite = adm.connect(port)
    assert adm.roundtrip(polite, "/")[0] == 200
    polite_peer = f"127.0.0.1:{polite.getsockname()[1]}"
    polite.close()
    rude = adm.connect(port)
    assert adm.roundtrip(rude, "/")[0] == 200
    rude_peer = f"127.0.0.1:{rude.getsockname()[1]}"
    adm.rst_close(rude)
    adm.wait_until(lambda: len(srv.events(type="peer_close")) == 2, what="two peer_close events")
    time.sleep(0.1)  # no duplicates may follow
    closes = {e["peer"]: e["how"] for e in fetch(api)["events"] if e["type"] == "peer_close"}
    assert closes == {polite_peer: "fin", rude_peer: "rst"}
    assert len(srv.events(type="peer_close")) == 2


def test_idle_and_max_requests_close_events_name_the_connection(admin, adm):
    srv, api = admin(
        adm.profile(
            adm.listener("idle", keepalive={"idle_close": "200ms"}),
            adm.listener("counted", keepalive={"max_requests": 1}),
        )
    )
    a = adm.connect(srv["idle"].port)
    assert adm.roundtrip(a, "/")[0] == 200
    assert a.recv(10) == b""
    b = adm.connect(srv["counted"].port)
    assert adm.roundtrip(b, "/")[0] == 200
    assert b.recv(10) == b""
    events = fetch(api)["events"]
    idle = [e for e in events if e["type"] == "idle_close"]
    counted = [e for e in events if e["type"] == "max_requests_close"]
    assert [(e["listener"], e["peer"]) for e in idle] == [("idle", f"127.0.0.1:{a.getsockname()[1]}")]
    assert [(e["listener"], e["peer"]) for e in counted] == [("counted", f"127.0.0.1:{b.getsockname()[1]}")]
    assert isinstance(idle[0]["conn"], int) and isinstance(counted[0]["conn"], int)
    a.close()
    b.close()


def test_mode_events_name_their_cause_profile_api_or_schedule(admin, adm):
    srv, api = admin(
        adm.profile(
            adm.listener(accept="refuse"),
            adm.listener(
                "timed", schedule={"repeat": False, "phases": [{"duration": "100ms", "accept": "stall"}]}
            ),
        )
    )
    api.patch("/listeners/backend", json={"accept": "open"})
    adm.wait_until(lambda: srv.events(type="phase", listener="timed", phase=None), what="schedule over")
    modes = [(e["listener"], e["accept"], e["cause"]) for e in fetch(api)["events"] if e["type"] == "mode"]
    assert ("backend", "refuse", "profile") in modes
    assert ("backend", "open", "api") in modes
    assert ("timed", "stall", "schedule") in modes
    assert ("timed", "open", "schedule") in modes


def test_repeats_are_the_same_request_again_on_a_new_connection_retries_need_trouble(admin, adm):
    srv, api = admin(adm.profile())
    port = srv["backend"].port
    order = dict(method="POST", body=b'{"n": 1}', headers="X-Request-Id: r1\r\n")
    one = adm.connect(port)
    assert adm.roundtrip(one, "/orders", **order)[0] == 200
    assert adm.roundtrip(one, "/orders", **order)[0] == 200  # same connection: not a retry
    two = adm.connect(port)
    assert adm.roundtrip(two, "/orders", **order)[0] == 200  # a retry
    assert (
        adm.roundtrip(two, "/orders", method="POST", body=b'{"n": 2}', headers="X-Request-Id: r1\r\n")[0]
        == 200
    )
    three = adm.connect(port)
    assert (
        adm.roundtrip(three, "/orders", method="POST", body=b'{"n": 1}', headers="X-Request-Id: r2\r\n")[0]
        == 200
    )
    assert adm.roundtrip(three, "/orders")[0] == 200
    for sock in (one, two, three):
        sock.close()

    requests = [e for e in fetch(api)["events"] if e["type"] == "request"]
    prints = [e["fingerprint"] for e in requests]
    assert prints[0] == prints[1] == prints[2]
    assert len(set(prints[2:])) == 4  # other body, other X-Request-Id, other method: all different
    # answered every time: the third is seen again on a new connection (a repeat), but its
    # first sending met no fault and no connection end, so it is no retry
    assert [bool(e.get("repeat")) for e in requests] == [False, False, True, False, False, False]
    assert [bool(e.get("retry")) for e in requests] == [False] * 6
    listener = api.get("/listeners").json()["listeners"][0]
    assert (listener["retries"], listener["repeats"]) == (0, 1)
    metrics = api.get("/metrics").text
    assert 'faultserver_retries_total{listener="backend"} 0\n' in metrics
    assert 'faultserver_repeats_total{listener="backend"} 1\n' in metrics


def test_events_since_and_limit(admin, adm):
    srv, api = admin(adm.profile())
    sock = adm.connect(srv["backend"].port)
    for _ in range(3):
        assert adm.roundtrip(sock, "/")[0] == 200
    sock.close()
    srv.wait_for(type="peer_close", timeout=2)
    everything = fetch(api)
    ids = [e["id"] for e in everything["events"]]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    rest = everything["events"][3:]
    assert fetch(api, since=ids[2]) == {"events": rest, "missed": 0, "next": ids[-1], "more": False}
    assert fetch(api, since=ids[2], limit=2) == {
        "events": rest[:2],
        "missed": 0,
        "next": ids[4],
        "more": True,
    }
    assert fetch(api, since=ids[4]) == {"events": rest[2:], "missed": 0, "next": ids[-1], "more": False}
    assert fetch(api, limit=0) == {"events": [], "missed": 0, "next": 0, "more": True}
    assert fetch(api, since=ids[-1]) == {"events": [], "missed": 0, "next": ids[-1], "more": False}
    assert fetch(api, since=ids[-1] + 100) == {
        "events": [],
        "missed": 0,
        "next": ids[-1] + 100,
        "more": False,
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=-1", "since must be an integer 0 or more, got '-1'"),
        ("since=abc", "since must be an integer 0 or more, got 'abc'"),
        ("limit=x", "limit must be an integer 0 or more, got 'x'"),
    ],
)
def test_events_bad_query_is_400(admin, adm, query, message):
    _srv, api = admin(adm.profile())
    adm.assert_json_error(api.get(f"/events?{query}"), 400, message)
    if query.startswith("since"):
        adm.assert_json_error(api.get(f"/events/stream?{query}"), 400, message)


def test_events_stream_bad_last_event_id_is_400(admin, adm):
    _srv, api = admin(adm.profile())
    r = api.get("/events/stream", headers={"last-event-id": "x"})
    adm.assert_json_error(r, 400, "Last-Event-ID must be an integer 0 or more, got 'x'")


def test_events_buffer_keeps_the_newest_10000_and_says_how_many_were_missed(admin, adm):
    srv, api = admin(adm.profile())
    sock = adm.connect(srv["backend"].port, timeout=30)
    batch = 100  # pipelined, 52 batches: a request and a response event each, 10,400 in all
    pipeline_gets(sock, batch, batches=52)
    sock.close()

    head = fetch(api, since=0, limit=3)
    first_page = fetch(api, since=0)  # without a limit: at most 1,000, and a `next` to go on from
    assert len(first_page["events"]) == 1000 and first_page["more"] is True
    assert first_page["next"] == first_page["events"][-1]["id"]
    newest = fetch(api, since=0, limit=10_000)  # streamed in pieces
    assert len(newest["events"]) == 10_000 and newest["more"] is False
    assert newest["events"][:1000] == first_page["events"]
    oldest_kept = newest["events"][0]["id"]
    last = newest["events"][-1]["id"]
    assert last - oldest_kept == 9_999
    assert head["missed"] == oldest_kept - 1 > 0
    assert [e["id"] for e in head["events"]] == [oldest_kept, oldest_kept + 1, oldest_kept + 2]
    behind = fetch(api, since=oldest_kept - 11, limit=1)
    assert behind["missed"] == 10 and behind["events"][0]["id"] == oldest_kept
    assert fetch(api, since=oldest_kept, limit=1)["missed"] == 0

    # the stream says the same when asked to start before the oldest kept event
    with httpx.Client(base_url=srv.control_url, timeout=5) as client:
        with connect_sse(client, "GET", "/events/stream", params={"since": oldest_kept - 6}) as source:
            stream = source.iter_sse()
            missed = next(stream)
            assert (missed.event, json.loads(missed.data)) == ("missed", {"missed": 5})
            first = next(stream)
            assert (first.event, first.id, json.loads(first.data)["id"]) == (
                "message",
                str(oldest_kept),
                oldest_kept,
            )


def test_events_stream_delivers_each_event_as_it_happens(admin, adm):
    srv, _api = admin(adm.profile())
    port = srv["backend"].port
    with httpx.Client(base_url=srv.control_url, timeout=5) as client:
        with connect_sse(client, "GET", "/events/stream") as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            stream = source.iter_sse()
            sock = adm.connect(port)
            seen = []
            for i in range(3):
                # lock-step: request i exists, request i+1 does not yet
                assert adm.roundtrip(sock, f"/live/{i}")[0] == 200
                while True:
                    sse = next(stream)
                    event = json.loads(sse.data)
                    seen.append(event)
                    assert sse.id == str(event["id"])
                    if event["type"] == "response":
                        assert event["path"] == f"/live/{i}"
                        break
            sock.close()
    assert [e["type"] for e in seen] == [
        "accept",
        "request",
        "response",
        "request",
        "response",
        "request",
        "response",
    ]
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids)


def test_events_stream_replays_from_since_then_goes_live(admin, adm):
    srv, api = admin(adm.profile())
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/before")[0] == 200
    with httpx.Client(base_url=srv.control_url, timeout=5) as client:
        with connect_sse(client, "GET", "/events/stream", params={"since": 0}) as source:
            stream = source.iter_sse()
            types = []
            while "response" not in types:
                types.append(json.loads(next(stream).data)["type"])
            assert types[:2] == ["start", "mode"]
            assert adm.roundtrip(sock, "/after")[0] == 200
            while True:
                event = json.loads(next(stream).data)
                if event["type"] == "response":
                    assert event["path"] == "/after"
                    break
        # a reconnecting EventSource sends Last-Event-ID: only what came after it
        last = fetch(api)["events"][-1]["id"]
        assert adm.roundtrip(sock, "/later")[0] == 200
        with connect_sse(client, "GET", "/events/stream", headers={"last-event-id": str(last)}) as source:
            event = json.loads(next(source.iter_sse()).data)
            assert (event["id"], event["type"], event["path"]) == (last + 1, "request", "/later")
    sock.close()


def test_event_log_unit_missed_and_limit_arithmetic():
    from faultserver._events import EventLog

    log = EventLog(maxlen=3)
    for i in range(5):
        log.emit("x", "l", n=i)
    events, missed = log.since(0)
    assert [e["id"] for e in events] == [3, 4, 5] and missed == 2
    assert log.since(1, limit=1) == ([events[0]], 1)
    assert log.since(4) == ([events[2]], 0)
    log.clear()
    assert log.since(5) == ([], 0)
    assert log.since(3) == ([], 2)
    assert log.emit("y")["id"] == 6  # ids go on after a clear


def slow_stream_reader(control_url: str) -> socket.socket:
    """A `GET /events/stream` reader with a small receive buffer that has read the head of the
    answer and reads no more unless the test does."""
    port = int(control_url.rsplit(":", 1)[1])
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.settimeout(5)
    reader.connect(("127.0.0.1", port))
    reader.sendall(f"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert reader.recv(100).startswith(b"HTTP/1.1 200 ")
    return reader


def test_events_stream_reader_that_stopped_reading_does_not_block_the_stop(admin, adm):
    # Hypercorn's sends are shielded: without the admin API closing the sockets of the
    # requests still running at stop, a stalled reader would hold the server for ever
    srv, _api = admin(adm.profile())
    reader = slow_stream_reader(srv.control_url)  # then it reads no more
    sock = adm.connect(srv["backend"].port)
    # 20,000 events, some MB of SSE: far more than the socket buffers
    pipeline_gets(sock, 100, batches=100)
    sock.close()
    started = time.monotonic()
    srv.stop()  # raises FaultserverError if the server has not stopped within 5 s
    assert time.monotonic() - started < 5
    reader.close()


def test_events_stream_tells_a_slow_reader_how_many_it_missed(admin, adm):
    srv, _api = admin(adm.profile())
    reader = slow_stream_reader(srv.control_url)
    sock = adm.connect(srv["backend"].port)
    pipeline_gets(sock, 100, batches=100)
    sock.close()
    stream = b""
    while b"event: missed\ndata: " not in stream or not stream.endswith(b"\n"):
        data = reader.recv(1 << 20)
        assert data, "the stream ended before saying what was missed"
        stream += data
    before, after = stream.split(b"event: missed\ndata: ", 1)
    missed = json.loads(after.split(b"\n", 1)[0])["missed"]
    ids = [int(m) for m in re.findall(rb"\nid: (\d+)\n", before)]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no gap before the missed report
    assert 0 < missed < 20_000
    reader.close()

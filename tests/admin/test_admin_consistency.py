"""The admin API says what the handle says: `GET /events` takes `srv.events(...)`'s filters,
unknown query parameters are refused, retries need trouble, faults and delays are counted
apart, closed sets read any case, and `POST /reload` loads a shipped profile by name."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
import yaml
from httpx_sse import connect_sse

from faultserver._shipped import find_shipped, shipped_names


def fetch(api: httpx.Client, params: object = None) -> dict:
    r = api.get("/events", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def traffic(srv, adm) -> None:
    """backend: /a answered, /boom closed (FIN); other: /c answered; both connections ended."""
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/a")[0] == 200
    sock.sendall(adm.request_bytes("/boom"))
    assert sock.recv(100) == b""
    sock.close()
    other = adm.connect(srv["other"].port)
    assert adm.roundtrip(other, "/c")[0] == 200
    other.close()
    adm.wait_until(
        lambda: srv["backend"].open_connections == srv["other"].open_connections == 0,
        what="both connections ended",
    )


def two_listeners(adm) -> dict:
    boom = {"name": "boom", "match": {"path": "/boom"}, "action": "close", "drain": "0s"}
    return adm.profile(adm.listener(rules=[boom]), adm.listener("other"))


# --- GET /events filters ----------------------------------------------------------------------


def test_events_filters_are_the_handles(admin, adm):
    srv, api = admin(two_listeners(adm))
    traffic(srv, adm)

    def ids(**filters):
        return [e["id"] for e in srv.events(**filters)]

    def api_ids(params):
        return [e["id"] for e in fetch(api, params)["events"]]

    assert api_ids({"type": "request"}) == ids(type="request") and len(ids(type="request")) == 3
    assert api_ids({"type": "fault", "action": "close", "rule": "boom"}) == ids(type="fault") != []
    assert api_ids({"listener": "other", "type": "request"}) == ids(listener="other", type="request")
    first_request = ids(type="request")[0]
    assert api_ids({"since": first_request, "type": "request"}) == ids(type="request")[1:]
    assert api_ids({"since": first_request, "type": "request"}) == ids(since=first_request, type="request")
    conn = srv.events(type="fault")[0]["conn"]
    assert api_ids({"conn": conn, "type": "request"}) == ids(conn=conn, type="request")
    # a parameter given twice: any of its values; closed sets in any case
    assert api_ids([("type", "fault"), ("type", "peer_close")]) == ids(type=("fault", "peer_close"))
    assert api_ids({"type": "FAULT", "action": "Close"}) == ids(type="fault")
    assert api_ids({"type": "nothing-like-this"}) == []


def test_events_newest_and_limit_with_filters(admin, adm):
    srv, api = admin(two_listeners(adm))
    traffic(srv, adm)
    requests = [e["id"] for e in srv.events(type="request")]
    everything = fetch(api)["events"]
    newest = fetch(api, {"type": "request", "newest": 2})
    handle = [e["id"] for e in srv.events(type="request", newest=2)]
    assert [e["id"] for e in newest["events"]] == requests[-2:] == handle
    assert (newest["more"], newest["next"], newest["missed"]) == (False, everything[-1]["id"], 0)
    assert [e["id"] for e in fetch(api, {"newest": 1})["events"]] == [everything[-1]["id"]]
    # limit pages: `next` is the last event returned, and the next page goes on from it
    page = fetch(api, {"type": "request", "limit": 2})
    assert [e["id"] for e in page["events"]] == requests[:2]
    assert (page["more"], page["next"]) == (True, requests[1])
    rest = fetch(api, {"type": "request", "limit": 2, "since": page["next"]})
    assert [e["id"] for e in rest["events"]] == requests[2:]
    assert (rest["more"], rest["next"]) == (False, everything[-1]["id"])
    assert fetch(api, {"type": "request", "limit": 0}) == {
        "events": [], "missed": 0, "next": 0, "more": True,
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("typ=fault", "unknown query parameter 'typ' for GET /events (expected: since, limit, newest, "
         "type, listener, conn, peer, method, path, fingerprint, rule, action, status, how, accept, cause)"),
        ("conn=x", "conn must be an integer 0 or more, got 'x'"),
        ("since=1&since=2", "since given 2 times (expected it once)"),
        (
            "limit=1&newest=1",
            "limit and newest do not go together (limit pages from since; newest: the newest N)",
        ),
    ],
)
def test_events_bad_query_is_400_naming_it(admin, adm, query, message):
    _srv, api = admin(adm.profile())
    adm.assert_json_error(api.get(f"/events?{query}"), 400, message)


def test_events_stream_takes_the_filters_and_refuses_unknown_parameters(admin, adm):
    srv, api = admin(two_listeners(adm))
    adm.assert_json_error(
        api.get("/events/stream?limit=3"), 400,
        "unknown query parameter 'limit' for GET /events/stream (expected: since, rate, burst, type, "
        "listener, conn, peer, method, path, fingerprint, rule, action, status, how, accept, cause)",
    )
    with httpx.Client(base_url=srv.control_url, timeout=5) as client:
        with connect_sse(client, "GET", "/events/stream", params={"since": 0, "type": "fault"}) as source:
            traffic(srv, adm)
            for sse in source.iter_sse():
                if sse.event == "message":
                    event = json.loads(sse.data)
                    break
    assert (event["type"], event["action"], event["path"]) == ("fault", "close", "/boom")


# --- retries ----------------------------------------------------------------------------------


def test_twenty_clients_sending_the_same_get_are_no_retries(admin, adm):
    srv, api = admin(adm.profile())
    for _ in range(20):
        sock = adm.connect(srv["backend"].port)
        assert adm.roundtrip(sock, "/orders")[0] == 200
        sock.close()
    listener = api.get("/listeners").json()["listeners"][0]
    assert (listener["requests"], listener["retries"], listener["repeats"]) == (20, 0, 19)
    assert 'faultserver_retries_total{listener="backend"} 0\n' in api.get("/metrics").text
    assert srv.retries() == []
    assert len(srv.retries(all_repeats=True)) == 19
    assert (srv["backend"].retry_count, srv["backend"].repeat_count) == (0, 19)


def test_retry_after_a_fault_and_after_a_connection_end(admin, adm):
    rules = [
        {"name": "boom", "match": {"path": "/boom"}, "action": "close", "drain": "0s", "times": 1},
        {"name": "slow", "match": {"path": "/slow"}, "delay": "5s", "action": "respond"},
    ]
    srv, api = admin(adm.profile(adm.listener(rules=rules)))
    port = srv["backend"].port
    # a fault: FIN instead of an answer; the client sends it again on a new connection
    sock = adm.connect(port)
    sock.sendall(adm.request_bytes("/boom", method="POST", body=b"x"))
    assert sock.recv(100) == b""
    sock.close()
    again = adm.connect(port)
    assert adm.roundtrip(again, "/boom", method="POST", body=b"x")[0] == 200
    assert adm.roundtrip(again, "/boom", method="POST", body=b"x")[0] == 200  # same connection
    again.close()
    # a connection end before the answer: a delayed answer, and the connection dropped meanwhile
    slow = adm.connect(port)
    slow.sendall(adm.request_bytes("/slow"))
    srv.wait_for(type="fault", rule="slow", timeout=2)
    assert api.post("/listeners/backend/drop", json={"how": "rst"}).json()["dropped"] == 1
    adm.wait_until(lambda: srv["backend"].open_connections == 0, what="the dropped connection gone")
    slow.close()
    srv.set_rules("backend", [])
    fresh = adm.connect(port)
    assert adm.roundtrip(fresh, "/slow")[0] == 200
    fresh.close()

    retried = [(e["path"], e["request_on_connection"]) for e in srv.retries()]
    assert retried == [("/boom", 1), ("/slow", 1)]
    assert [e["path"] for e in srv.retries(all_repeats=True)] == ["/boom", "/slow"]
    requests = srv.requests()
    assert [bool(e.get("retry")) for e in requests] == [False, True, False, False, True]
    assert all("retry" not in e and "repeat" not in e for e in srv.events(type="fault"))
    listener = api.get("/listeners").json()["listeners"][0]
    assert (listener["retries"], listener["repeats"]) == (2, 2)
    assert 'faultserver_retries_total{listener="backend"} 2\n' in api.get("/metrics").text


# --- faults and delays ------------------------------------------------------------------------


def test_a_plain_delayed_respond_is_a_delay_not_a_fault(admin, adm):
    rules = [
        {"name": "boom", "match": {"path": "/boom"}, "action": "close", "drain": "0s"},
        {"name": "late-503", "match": {"path": "/late-503"}, "delay": "10ms", "action": "respond",
         "status": 503},
        {"name": "slow-backend", "delay": "10ms", "action": "respond"},
    ]
    srv, api = admin(adm.profile(adm.listener(rules=rules)))
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/a")[0] == 200
    assert adm.roundtrip(sock, "/b")[0] == 200
    assert adm.roundtrip(sock, "/late-503")[0] == 503
    sock.sendall(adm.request_bytes("/boom"))
    assert sock.recv(100) == b""
    sock.close()
    listener = api.get("/listeners").json()["listeners"][0]
    assert listener["faults"] == {"close": 1, "respond": 1}  # the 503, not the plain delays
    assert listener["delayed"] == {"respond": 3}
    assert (srv["backend"].faults(), srv["backend"].delayed()) == ({"close": 1, "respond": 1}, {"respond": 3})
    text = api.get("/metrics").text
    faults = sorted(line for line in text.splitlines() if line.startswith("faultserver_faults_total{"))
    assert faults == [
        'faultserver_faults_total{listener="backend",rule="boom",action="close"} 1',
        'faultserver_faults_total{listener="backend",rule="late-503",action="respond"} 1',
    ]
    delayed = sorted(line for line in text.splitlines() if line.startswith("faultserver_delayed_total{"))
    assert delayed == [
        'faultserver_delayed_total{listener="backend",rule="late-503",action="respond"} 1',
        'faultserver_delayed_total{listener="backend",rule="slow-backend",action="respond"} 2',
    ]
    # every rule that acted still has its `fault` event (the event log is what happened)
    assert len(srv.events(type="fault")) == 4


# --- case in closed sets ----------------------------------------------------------------------


def test_closed_sets_read_any_case(admin, adm):
    srv, api = admin(adm.profile())
    r = api.patch("/listeners/backend", json={"accept": "REFUSE"})
    assert (r.status_code, r.json()["accept"]) == (200, "refuse")
    srv.set_accept("backend", "Open")
    assert srv["backend"].accept == "open"
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/")[0] == 200
    r = api.post("/listeners/backend/drop", json={"how": "FIN"})
    assert (r.status_code, r.json()) == (200, {"dropped": 1, "how": "fin", "idle_only": False})
    sock.close()
    adm.wait_until(lambda: srv["backend"].open_connections == 0, what="the dropped connection gone")
    assert srv.drop(how="Rst") == 0
    adm.assert_json_error(
        api.post("/listeners/backend/drop", json={"how": "KILL"}),
        400,
        "unknown how \"KILL\" (expected 'fin' or 'rst')",
    )


# --- POST /reload -----------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_reload_by_name_refuses_what_is_not_a_shipped_name(admin, adm):
    srv, api = admin(adm.profile())
    names = ", ".join(shipped_names())
    adm.assert_json_error(api.post("/reload", json={"profile": "fni"}), 400,
                          f'no shipped profile named "fni" (shipped: {names})')
    adm.assert_json_error(
        api.post("/reload", json={"profile": "/etc/passwd"}), 400,
        'profile must be a shipped profile\'s name, got "/etc/passwd" '
        "(to load a profile of your own, PUT /profile with its text)",
    )
    message = 'expected a JSON object such as {"profile": "fin"}'
    adm.assert_json_error(api.post("/reload", json={}), 400, message)
    assert list(srv.listeners) == ["backend"]


def test_reload_by_name_loads_the_shipped_profile(admin, adm):
    if not _port_free(8080):
        pytest.skip("fin.yaml binds 127.0.0.1:8080, which is taken here")
    srv, api = admin(adm.profile())
    r = api.post("/reload", json={"profile": "fin"})
    assert r.status_code == 200, r.text
    [listener] = r.json()["listeners"]
    assert (listener["name"], listener["url"]) == ("backend", "http://127.0.0.1:8080")
    with open(find_shipped("fin")) as file:
        assert api.get("/profile").json() == yaml.safe_load(file)
    assert srv.events(type="reload")

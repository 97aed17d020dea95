"""The admin API over real HTTP (the README's "Admin API"): every endpoint, its success
and its error cases, observed by httpx and by raw sockets on the listeners."""

from __future__ import annotations

import errno
import socket
import time

import pytest

UNKNOWN_CLSE = (
    "unknown action 'clse' (did you mean 'close'? expected one of: "
    "respond, close, reset, hang, partial, dribble, garbage, delay, goaway, rst_stream, forward)"
)


# --- GET /healthz, GET /listeners ---------------------------------------------------------


def test_healthz_answers_200_while_running(admin, adm):
    _srv, api = admin(adm.profile(adm.listener("a"), adm.listener("b")))
    r = api.get("/healthz")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": "ok"}  # answers any caller: says nothing more


def test_listeners_reports_every_field_of_the_spec(admin, adm):
    srv, api = admin(
        adm.profile(
            adm.listener(
                rules=[
                    {"name": "boom", "match": {"path": "/boom"}, "action": "close", "drain": "0s"},
                    {"match": {"path": "/503"}, "action": "respond", "status": 503},
                ]
            ),
            adm.listener("other", accept="refuse"),
        )
    )
    port = srv["backend"].port
    held = adm.connect(port)
    assert adm.roundtrip(held, "/ok")[0] == 200
    assert adm.roundtrip(held, "/503")[0] == 503
    for _ in range(2):  # the second time on a new connection: a retry
        sock = adm.connect(port)
        sock.sendall(adm.request_bytes("/boom"))
        assert sock.recv(100) == b""  # the close fault: FIN, no response
        sock.close()
    adm.wait_until(lambda: srv["backend"].open_connections == 1, what="one connection open")

    body = api.get("/listeners").json()
    assert [entry["name"] for entry in body["listeners"]] == ["backend", "other"]
    backend, other = body["listeners"]
    assert backend["url"] == f"http://127.0.0.1:{port}"
    assert backend["accept"] == "open"
    assert backend["open_connections"] == 1
    assert backend["peak_connections"] >= 2
    assert backend["requests"] == 4
    assert backend["faults"] == {"close": 2, "respond": 1}
    assert backend["retries"] == 1  # GET /boom again on a new connection
    assert other["accept"] == "refuse"
    assert other["url"] == f"http://127.0.0.1:{srv['other'].port}"
    assert (other["open_connections"], other["requests"], other["faults"], other["retries"]) == (0, 0, {}, 0)
    held.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/listeners/nope"), ("PATCH", "/listeners/nope"), ("POST", "/listeners/nope/drop")],
)
def test_listener_unknown_name_is_404(admin, adm, method, path):
    _srv, api = admin(adm.profile())
    r = api.request(method, path, json={"accept": "refuse"} if method == "PATCH" else {})
    adm.assert_json_error(r, 404, "no listener named 'nope' (listeners: backend)")


# --- PATCH /listeners/NAME ----------------------------------------------------------------


def test_patch_accept_switches_refuse_then_open_on_the_same_port(admin, adm):
    srv, api = admin(adm.profile())
    port = srv["backend"].port
    r = api.patch("/listeners/backend", json={"accept": "refuse"})
    assert r.status_code == 200
    assert r.json()["accept"] == "refuse"
    assert isinstance(adm.connect_error(port), ConnectionRefusedError)
    r = api.patch("/listeners/backend", json={"accept": "open"})
    assert r.json()["accept"] == "open"
    assert srv["backend"].port == port
    sock = adm.connect(port)
    assert adm.roundtrip(sock, "/")[0] == 200
    sock.close()
    modes = [(e["accept"], e["cause"]) for e in srv.events(type="mode")]
    assert modes == [("open", "profile"), ("refuse", "api"), ("open", "api")]


def test_patch_accept_stall_makes_connect_time_out(admin, adm):
    srv, api = admin(adm.profile())
    assert api.patch("/listeners/backend", json={"accept": "stall"}).status_code == 200
    assert isinstance(adm.connect_error(srv["backend"].port, timeout=0.5), (socket.timeout, TimeoutError))


def test_patch_rules_replace_the_rules_now_on_a_kept_alive_connection(admin, adm):
    srv, api = admin(adm.profile())
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/a")[0] == 200
    r = api.patch(
        "/listeners/backend", json={"rules": [{"name": "teapot", "action": "respond", "status": 418}]}
    )
    assert r.status_code == 200
    assert adm.roundtrip(sock, "/a")[0] == 418
    r = api.patch("/listeners/backend", json={"accept": "open", "rules": []})
    assert r.status_code == 200
    assert adm.roundtrip(sock, "/a")[0] == 200
    sock.close()
    assert srv.events(type="fault", rule="teapot", action="respond")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        # a valid accept with invalid rules: the mode must not switch
        ({"accept": "refuse", "rules": [{"action": "clse"}]}, 400, "invalid rules"),
        # valid rules with an invalid accept: the rules must not change
        (
            {"accept": "closed", "rules": [{"action": "reset"}]},
            400,
            'unknown accept mode "closed" (expected one of: open, refuse, stall)',
        ),
        (
            {"accept": ["refuse"]},
            400,
            'unknown accept mode ["refuse"] (expected one of: open, refuse, stall)',
        ),
        ({"accept": "refuse", "rules": {"action": "reset"}}, 400, "invalid rules"),
        (
            {"accept": "refuse", "colour": "red"},
            400,
            "unknown key 'colour' (expected 'accept', 'rules' and/or 'tls')",
        ),
        ({}, 400, "expected a JSON object with 'accept', 'rules' and/or 'tls'"),
        (["refuse"], 400, "expected a JSON object with 'accept', 'rules' and/or 'tls'"),
    ],
)
def test_patch_invalid_body_is_400_and_changes_nothing(admin, adm, body, status, message):
    srv, api = admin(adm.profile(adm.listener(rules=[{"name": "keep", "action": "respond", "status": 203}])))
    r = api.patch("/listeners/backend", json=body)
    data = adm.assert_json_error(r, status, message)
    if message == "invalid rules":
        assert data["problems"] and all(p.startswith("<request>:0:0: rules") for p in data["problems"])
    port = srv["backend"].port
    sock = adm.connect(port)  # still open
    assert adm.roundtrip(sock, "/")[0] == 203  # still the old rules
    sock.close()
    assert srv["backend"].accept == "open"
    assert [e["cause"] for e in srv.events(type="mode")] == ["profile"]


def test_patch_invalid_rules_lists_every_problem(admin, adm):
    _srv, api = admin(adm.profile())
    r = api.patch(
        "/listeners/backend", json={"rules": [{"action": "clse"}, {"action": "close", "drian": "1s"}]}
    )
    data = adm.assert_json_error(r, 400, "invalid rules")
    assert data["problems"][0] == f"<request>:0:0: rules[0].action: {UNKNOWN_CLSE}"
    assert len(data["problems"]) == 2
    assert data["problems"][1].startswith("<request>:0:0: rules[1]")
    assert "drian" in data["problems"][1]


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe"])
def test_patch_body_not_json_is_400(admin, adm, raw):
    _srv, api = admin(adm.profile())
    r = api.patch("/listeners/backend", content=raw, headers={"content-type": "application/json"})
    data = adm.assert_json_error(r, 400)
    assert data["error"].startswith("body is not valid JSON: ")


# --- POST /listeners/NAME/drop ------------------------------------------------------------


def test_drop_fin_gives_clients_eof(admin, adm):
    srv, api = admin(adm.profile())
    socks = [adm.connect(srv["backend"].port) for _ in range(2)]
    for sock in socks:
        assert adm.roundtrip(sock, "/")[0] == 200
    r = api.post("/listeners/backend/drop", json={"how": "fin"})
    assert r.status_code == 200
    assert r.json() == {"dropped": 2, "how": "fin", "idle_only": False}
    for sock in socks:
        assert sock.recv(100) == b""  # a clean FIN, not a reset
        sock.close()
    event = srv.wait_for(type="drop", timeout=2)
    assert (event["listener"], event["how"], event["connections"]) == ("backend", "fin", 2)
    adm.wait_until(lambda: srv["backend"].open_connections == 0, what="connections closed")
    # the listener itself goes on
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/")[0] == 200
    sock.close()


def test_drop_rst_gives_clients_econnreset(admin, adm):
    srv, api = admin(adm.profile())
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/")[0] == 200
    r = api.post("/listeners/backend/drop", json={"how": "rst"})
    assert r.json() == {"dropped": 1, "how": "rst", "idle_only": False}
    with pytest.raises(ConnectionResetError) as info:
        sock.recv(100)
    assert info.value.errno == errno.ECONNRESET
    sock.close()


def test_drop_with_no_body_means_fin(admin, adm):
    srv, api = admin(adm.profile())
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/")[0] == 200
    assert api.post("/listeners/backend/drop").json() == {"dropped": 1, "how": "fin", "idle_only": False}
    assert sock.recv(100) == b""
    sock.close()


def test_drop_idle_only_leaves_a_connection_mid_request_alone(admin, adm):
    srv, api = admin(adm.profile())
    port = srv["backend"].port
    idle = adm.connect(port)
    assert adm.roundtrip(idle, "/")[0] == 200
    busy = adm.connect(port)
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")  # headers not finished yet
    adm.wait_until(lambda: srv["backend"].open_connections == 2, what="two connections")
    time.sleep(0.05)  # let the server read the first bytes
    r = api.post("/listeners/backend/drop", json={"how": "rst", "idle_only": True})
    assert r.json() == {"dropped": 1, "how": "rst", "idle_only": True}
    with pytest.raises(ConnectionResetError):
        idle.recv(100)
    busy.sendall(b"\r\n")
    assert adm.read_response(busy)[0] == 200
    busy.close()
    idle.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"how": "kill"}, 'unknown how "kill" (expected \'fin\' or \'rst\')'),
        ({"how": "fin", "idle_only": "yes"}, 'idle_only must be true or false, got "yes"'),
        ({"how": "fin", "when": "now"}, "unknown key 'when' (expected 'how' and 'idle_only')"),
        (["fin"], 'expected a JSON object such as {"how": "fin"}'),
    ],
)
def test_drop_invalid_body_is_400_and_drops_nothing(admin, adm, body, message):
    srv, api = admin(adm.profile())
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/")[0] == 200
    adm.assert_json_error(api.post("/listeners/backend/drop", json=body), 400, message)
    assert adm.roundtrip(sock, "/")[0] == 200  # still open
    sock.close()
    assert not srv.events(type="drop")


# --- GET and PUT /profile -----------------------------------------------------------------

PROFILE_YAML = """\
version: 1
seed: 3
x-note: a comment the loader ignores
listeners:
  - name: backend
    bind: 127.0.0.1:0
    rules:
      - {name: new-rule, match: {path: /x}, action: respond, status: 299}
  - name: added
    bind: 127.0.0.1:0
"""


def test_profile_get_returns_the_profile_in_force(admin, adm):
    source = adm.profile(adm.listener(rules=[{"action": "reset", "match": {"path": "/r"}}]))
    _srv, api = admin(source)
    r = api.get("/profile")
    assert r.status_code == 200
    data = r.json()
    assert data["version"] == 1 and data["seed"] == 7
    assert data["listeners"][0]["name"] == "backend"
    assert data["listeners"][0]["rules"] == [{"action": "reset", "match": {"path": "/r"}}]
    api.put("/profile", content=PROFILE_YAML, headers=adm.YAML)
    data = api.get("/profile").json()
    assert [entry["name"] for entry in data["listeners"]] == ["backend", "added"]
    assert data["x-note"] == "a comment the loader ignores"


@pytest.mark.parametrize("as_json", [False, True], ids=["yaml", "json"])
def test_profile_put_replaces_the_profile_and_keeps_live_connections(admin, adm, as_json):
    import json as _json

    import yaml

    srv, api = admin(adm.profile(adm.listener(), adm.listener("removed")))
    port = srv["backend"].port
    removed_port = srv["removed"].port
    kept_alive = adm.connect(port)
    assert adm.roundtrip(kept_alive, "/x")[0] == 200
    body = _json.dumps(yaml.safe_load(PROFILE_YAML)) if as_json else PROFILE_YAML
    r = api.put("/profile", content=body, headers=adm.YAML)
    assert r.status_code == 200, r.text
    listeners = {entry["name"]: entry for entry in r.json()["listeners"]}
    assert set(listeners) == {"backend", "added"}
    assert listeners["backend"]["url"] == f"http://127.0.0.1:{port}"  # same socket, same port
    # the kept-alive connection survived and meets the new rules
    assert adm.roundtrip(kept_alive, "/x")[0] == 299
    kept_alive.close()
    # the added listener is open, the removed one is closed
    added_port = int(listeners["added"]["url"].rsplit(":", 1)[1])
    sock = adm.connect(added_port)
    assert adm.roundtrip(sock, "/")[0] == 200
    sock.close()
    assert isinstance(adm.connect_error(removed_port), ConnectionRefusedError)
    changes = {e["listener"]: (e["change"], e["cause"]) for e in srv.events(type="reload")}
    assert changes == {"backend": ("kept", "api"), "added": ("added", "api"), "removed": ("removed", "api")}


def test_profile_put_invalid_is_400_with_the_problems_and_changes_nothing(admin, adm):
    srv, api = admin(adm.profile(adm.listener(rules=[{"action": "respond", "status": 203}])))
    port = srv["backend"].port
    bad = PROFILE_YAML.replace("action: respond, status: 299", "action: clse").replace("seed: 3", "sed: 3")
    r = api.put("/profile", content=bad, headers=adm.YAML)
    data = adm.assert_json_error(r, 400, "invalid profile")
    assert data["problems"] == [
        "<request>:2:1: sed: unknown key 'sed' (did you mean 'seed'?)",
        f"<request>:8:53: listeners[0].rules[0].action: {UNKNOWN_CLSE}",
    ]
    sock = adm.connect(port)
    assert adm.roundtrip(sock, "/x")[0] == 203
    sock.close()
    assert [entry["name"] for entry in api.get("/listeners").json()["listeners"]] == ["backend"]
    assert not srv.events(type="reload")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "invalid profile"),
        (b"\xff\xfe\x00", "profile is not valid UTF-8 (byte 0)"),
        (b"[1, 2", "invalid profile"),
    ],
)
def test_profile_put_unreadable_body_is_400(admin, adm, content, message):
    _srv, api = admin(adm.profile())
    adm.assert_json_error(api.put("/profile", content=content, headers=adm.YAML), 400, message)


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        (
            "127.0.0.1:80",
            "listener backend: port 80 is below 1024; start the server with --allow-any-bind to allow it",
        ),
        (
            "0.0.0.0:0",
            "listener backend: 0.0.0.0 is not a loopback address; "
            "start the server with --allow-any-bind to allow it",
        ),
    ],
)
def test_profile_put_privileged_or_public_bind_is_403(admin, adm, bind, message):
    srv, api = admin(adm.profile())
    port = srv["backend"].port
    r = api.put("/profile", json=adm.profile(adm.listener(bind=bind, accept="refuse")))
    adm.assert_json_error(r, 403, message)
    assert srv["backend"].port == port and srv["backend"].accept == "open"


def test_profile_put_port_taken_is_409_and_changes_nothing(admin, adm):
    srv, api = admin(adm.profile())
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        body = adm.profile(adm.listener(accept="refuse"), adm.listener("new", bind=f"127.0.0.1:{port}"))
        r = api.put("/profile", json=body)
        adm.assert_json_error(r, 409, f"listener new: cannot bind 127.0.0.1:{port}: Address already in use")
    finally:
        taken.close()
    assert srv["backend"].accept == "open"
    assert list(srv.listeners) == ["backend"]


def test_profile_put_may_pin_the_port_in_force(admin, adm):
    srv, api = admin(adm.profile())
    port = srv["backend"].port
    sock = adm.connect(port)
    assert adm.roundtrip(sock, "/")[0] == 200
    r = api.put("/profile", json=adm.profile(adm.listener(bind=f"127.0.0.1:{port}", accept="refuse")))
    assert r.status_code == 200, r.text
    assert adm.roundtrip(sock, "/")[0] == 200  # the same socket: the connection lives on
    sock.close()
    assert isinstance(adm.connect_error(port), ConnectionRefusedError)


# --- POST /reset --------------------------------------------------------------------------


def test_reset_puts_back_modes_rules_times_streams_schedules_counters_and_events(admin, adm):
    srv, api = admin(
        adm.profile(
            adm.listener(
                rules=[
                    {
                        "name": "once",
                        "match": {"path": "/once"},
                        "times": 1,
                        "action": "respond",
                        "status": 201,
                    },
                    {
                        "name": "coin",
                        "match": {"path": "/coin"},
                        "probability": 0.5,
                        "action": "respond",
                        "status": 503,
                    },
                ]
            ),
            adm.listener(
                "sched",
                schedule={
                    "repeat": False,
                    "phases": [{"duration": "300ms"}, {"duration": "60s", "accept": "refuse"}],
                },
            ),
        )
    )
    port = srv["backend"].port

    def run() -> list[int]:
        sock = adm.connect(port)
        statuses = [adm.roundtrip(sock, "/once")[0], adm.roundtrip(sock, "/once")[0]]
        statuses += [adm.roundtrip(sock, "/coin")[0] for _ in range(16)]
        sock.close()
        return statuses

    first = run()
    assert first[:2] == [201, 200]
    assert 200 in first[2:] and 503 in first[2:]
    adm.wait_until(lambda: adm.connect_error(srv["sched"].port) is not None, what="sched refusing")
    api.patch("/listeners/backend", json={"accept": "refuse", "rules": [{"action": "reset"}]})
    assert isinstance(adm.connect_error(port), ConnectionRefusedError)
    before = api.get("/events").json()["events"]
    last_id = before[-1]["id"]

    r = api.post("/reset")
    assert r.status_code == 200 and r.json() == {"reset": True}

    # counters
    info = {entry["name"]: entry for entry in api.get("/listeners").json()["listeners"]}
    assert info["backend"]["accept"] == "open"
    assert (info["backend"]["requests"], info["backend"]["faults"], info["backend"]["retries"]) == (0, {}, 0)
    assert (info["backend"]["open_connections"], info["backend"]["peak_connections"]) == (0, 0)
    # events: only what the reset itself did, ids going on from before
    events = api.get("/events").json()
    assert events["missed"] == last_id
    assert {e["type"] for e in events["events"]} <= {"mode", "phase", "reset"}
    assert events["events"][0]["id"] > last_id
    assert [e for e in events["events"] if e["type"] == "reset"]
    # schedule: back to its first phase (open), then on to refuse again
    assert adm.connect_error(srv["sched"].port, timeout=1) is None
    assert [e["phase"] for e in events["events"] if e["type"] == "phase" and e["listener"] == "sched"] == [0]
    # mode, rules, times and random streams as at the start
    assert run() == first
    assert isinstance(
        adm.wait_until(lambda: adm.connect_error(srv["sched"].port), what="sched refusing again"),
        ConnectionRefusedError,
    )


# --- GET /metrics ---------------------------------------------------------------------------


def test_metrics_parse_as_prometheus_text(admin, adm):
    from prometheus_client.parser import text_string_to_metric_families

    srv, api = admin(
        adm.profile(
            adm.listener(
                rules=[{"name": "boom", "match": {"path": "/boom"}, "action": "close", "drain": "0s"}]
            ),
            adm.listener("quiet"),
        )
    )
    port = srv["backend"].port
    held = adm.connect(port)
    assert adm.roundtrip(held, "/a")[0] == 200
    for _ in range(2):
        sock = adm.connect(port)
        sock.sendall(adm.request_bytes("/boom"))
        assert sock.recv(10) == b""
        sock.close()
    adm.wait_until(lambda: srv["backend"].open_connections == 1, what="one open")

    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    types = {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert types["faultserver_connections"] == "counter"
    assert types["faultserver_requests"] == "counter"
    assert types["faultserver_faults"] == "counter"
    assert types["faultserver_retries"] == "counter"
    assert types["faultserver_open_connections"] == "gauge"
    assert types["faultserver_peak_connections"] == "gauge"
    assert types["faultserver_requests_in_flight"] == "gauge"
    assert value("faultserver_connections_total", listener="backend") == 3
    assert value("faultserver_requests_total", listener="backend") == 3
    assert value("faultserver_faults_total", listener="backend", rule="boom", action="close") == 2
    assert value("faultserver_retries_total", listener="backend") == 1
    assert value("faultserver_open_connections", listener="backend") == 1
    assert value("faultserver_peak_connections", listener="backend") >= 2
    assert value("faultserver_requests_in_flight", listener="backend") == 0
    assert value("faultserver_connections_total", listener="quiet") == 0
    assert value("faultserver_responses_total", listener="backend", status="200") == 1
    held.close()


def test_metrics_requests_in_flight_counts_a_delayed_request(admin, adm):
    srv, api = admin(adm.profile(adm.listener(rules=[{"delay": "1s", "action": "respond"}])))
    sock = adm.connect(srv["backend"].port)
    sock.sendall(adm.request_bytes("/"))
    srv.wait_for(type="fault", timeout=2)
    assert 'faultserver_requests_in_flight{listener="backend"} 1\n' in api.get("/metrics").text
    assert adm.read_response(sock)[0] == 200
    sock.close()


def test_metrics_counters_keep_every_digit():
    from faultserver._metrics import ListenerStats, render_prometheus

    stats = ListenerStats()
    stats.connections = 12_345_678
    assert 'faultserver_connections_total{listener="x"} 12345678\n' in render_prometheus([("x", stats)])


# --- errors are JSON, connections that must close do close ---------------------------------


def test_unknown_path_is_json_404(admin, adm):
    _srv, api = admin(adm.profile())
    adm.assert_json_error(api.get("/nope"), 404, "no such endpoint: GET /nope")


def test_wrong_method_is_json_405(admin, adm):
    _srv, api = admin(adm.profile())
    r = api.delete("/healthz")
    adm.assert_json_error(r, 405, "method DELETE not allowed for /healthz (allowed: GET)")
    assert "GET" in r.headers["allow"]
    adm.assert_json_error(api.get("/reset"), 405, "method GET not allowed for /reset (allowed: POST)")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_json_413_that_clients_can_read(admin, adm, chunked):
    srv, api = admin(adm.profile())
    big = b"x" * (3 * 1024 * 1024)
    content = (big[i : i + 65536] for i in range(0, len(big), 65536)) if chunked else big
    r = api.put("/profile", content=content, headers=adm.YAML)
    adm.assert_json_error(r, 413, "request body too large (at most 1048576 bytes)")
    assert list(srv.listeners) == ["backend"]


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /listeners HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n",
        b"GET /healthz HTTP/1.0\r\n\r\n",
        b"GET /nope HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n",
        b"DELETE /healthz HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n",
        b"PATCH /listeners/backend HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /listeners HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    ],
    ids=["200", "http1.0", "404", "405", "400-with-body", "403-host"],
)
def test_connection_close_response_is_followed_by_fin(admin, adm, raw):
    # Hypercorn under quart-trio used not to shut the socket after such a response
    srv, _api = admin(adm.profile())
    port = int(srv.control_url.rsplit(":", 1)[1])
    sock = adm.connect(port, timeout=1.0)
    sock.sendall(raw.replace(b"HOST", f"127.0.0.1:{port}".encode()))
    data = b""
    while True:
        chunk = sock.recv(65536)  # socket.timeout here means no FIN within a second
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 ")
    assert data.endswith(b"}\n")


def test_kept_alive_admin_connection_serves_several_requests(admin, adm):
    srv, _api = admin(adm.profile())
    port = int(srv.control_url.rsplit(":", 1)[1])
    sock = adm.connect(port)
    for _ in range(3):
        assert adm.roundtrip(sock, "/listeners", host=f"127.0.0.1:{port}")[0] == 200
    sock.close()

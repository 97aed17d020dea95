"""What is in force and the operator's controls (issue 14): `GET /state`, `POST
/schedule/pause|resume`, `POST /panic`, `POST /reload` without a body, the three state metrics,
and the probes that answer without the token.

No assertion here depends on how fast the machine is: a paused schedule is checked by
waiting past its phase's end and finding nothing changed, and "eventually" is a wait."""

from __future__ import annotations

import time

import httpx
import pytest

TOKEN = "s3cret-token"
HOUR = "1h"


def _scheduled(adm, *phases: dict, **fields) -> dict:
    return adm.profile(adm.listener(schedule={"phases": list(phases)}, **fields))


def _listener_state(api: httpx.Client, name: str = "backend") -> dict:
    state = api.get("/state").json()
    return next(item for item in state["listeners"] if item["name"] == name)


# --- GET /state ------------------------------------------------------------------------------


def test_state_shows_modes_rules_schedule_and_profile_with_their_causes(admin, adm):
    rules = [{"name": "boom", "match": {"path": "/boom"}, "action": "close", "drain": "0s"}]
    srv, api = admin(_scheduled(adm, {"duration": HOUR}, {"duration": HOUR, "accept": "refuse"}, rules=rules))
    state = api.get("/state").json()
    assert set(state) == {"profile", "schedule", "listeners"}
    assert state["profile"]["source"] == "<dict>"
    assert len(state["profile"]["sha256"]) == 64
    assert state["profile"]["cause"] == "start"
    assert state["schedule"] == {"paused": False}
    [backend] = state["listeners"]
    assert backend["name"] == "backend"
    assert backend["url"] == srv.url
    assert backend["accept"] == "open"
    assert backend["accept_cause"] in ("profile", "schedule")  # phase 0 keeps the profile's mode
    assert backend["rules_cause"] == "profile"
    assert backend["rules"] == [
        {"name": "boom", "action": {"name": "close", "drain_s": 0.0}, "match": {"path_glob": "/boom"}}
    ]
    schedule = backend["schedule"]
    assert schedule["phase"] == 0 and schedule["phases"] == 2 and schedule["cycle"] == 0
    assert schedule["paused"] is False and schedule["ended"] is False and schedule["repeat"] is True
    assert 0 < schedule["next_in_s"] <= 3600


def test_state_says_the_api_changed_the_mode_and_the_rules(admin, adm):
    _srv, api = admin(adm.profile(adm.listener(), adm.listener("other")))
    r = api.patch("/listeners/backend", json={"accept": "refuse", "rules": [{"action": "reset"}]})
    assert r.status_code == 200
    backend = _listener_state(api)
    assert (backend["accept"], backend["accept_cause"]) == ("refuse", "api")
    assert backend["rules_cause"] == "api"
    assert [rule["action"]["name"] for rule in backend["rules"]] == ["reset"]
    other = _listener_state(api, "other")
    assert (other["accept"], other["accept_cause"], other["rules_cause"]) == ("open", "profile", "profile")
    assert other["schedule"] is None and other["rules"] == []
    # GET /profile still answers the profile as loaded, and says so
    r = api.get("/profile")
    assert r.json()["listeners"][0].get("rules") is None
    assert r.headers["x-faultserver-profile"].startswith("as-loaded")


def test_state_shows_a_phase_s_own_rules_as_the_schedule_s(admin, adm):
    srv, api = admin(_scheduled(adm, {"duration": HOUR, "accept": "refuse", "rules": [{"action": "hang"}]}))
    srv.wait_for(type="phase", phase=0)
    backend = _listener_state(api)
    assert (backend["accept"], backend["accept_cause"]) == ("refuse", "schedule")
    assert backend["rules_cause"] == "schedule"
    assert backend["rules"][0]["action"] == {"name": "hang"}


def test_state_hash_is_the_same_for_the_same_profile_whatever_its_spacing(admin, adm):
    _a, api_a = admin("version: 1\nseed: 7\nlisteners:\n  - {name: backend, bind: '127.0.0.1:0'}\n")
    _b, api_b = admin("version: 1\nseed: 7\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n")
    assert api_a.get("/state").json()["profile"]["sha256"] == api_b.get("/state").json()["profile"]["sha256"]


def test_state_refuses_query_parameters(admin, adm):
    _srv, api = admin(adm.profile())
    adm.assert_json_error(
        api.get("/state", params={"listener": "x"}),
        400,
        "unknown query parameter 'listener' for GET /state (it takes none)",
    )


# --- pause and resume -----------------------------------------------------------------------


def test_pause_freezes_the_phase_and_its_time_left(admin, adm):
    srv, api = admin(_scheduled(adm, {"duration": HOUR}, {"duration": HOUR, "accept": "refuse"}))
    r = api.post("/schedule/pause")
    assert r.status_code == 200 and r.json() == {"paused": True, "changed": True}
    first = _listener_state(api)["schedule"]
    time.sleep(0.05)
    second = _listener_state(api)["schedule"]
    assert first["paused"] is True and first == second  # the clock stands still
    assert api.get("/state").json()["schedule"] == {"paused": True}
    assert api.post("/schedule/pause").json() == {"paused": True, "changed": False}
    events = srv.events(type="schedule_paused")
    assert [(e["paused"], e["changed"], e["cause"]) for e in events] == [
        (True, True, "api"),
        (True, False, "api"),
    ]
    assert events[0]["listener"] is None

    assert api.post("/schedule/resume").json() == {"paused": False, "changed": True}
    assert api.post("/schedule/resume").json() == {"paused": False, "changed": False}
    assert [e["paused"] for e in srv.events(type="schedule_paused")] == [True, True, False, False]
    adm.wait_until(
        lambda: _listener_state(api)["schedule"]["next_in_s"] < second["next_in_s"],
        what="the phase's time running again",
    )


def test_a_paused_schedule_changes_no_phase_until_resumed(admin, adm):
    srv, api = admin(_scheduled(adm, {"duration": "0.3s"}, {"duration": "0.3s", "accept": "refuse"}))
    srv.wait_for(type="phase")
    api.post("/schedule/pause")
    held = _listener_state(api)
    last_phase_event = srv.events(type="phase")[-1]["id"]
    time.sleep(1.0)  # more than three phases' time: nothing may change while paused
    now = _listener_state(api)
    assert now["schedule"]["phase"] == held["schedule"]["phase"]
    assert now["accept"] == held["accept"]
    assert srv.events(type="phase", since=last_phase_event) == []
    api.post("/schedule/resume")
    srv.wait_for(type="phase", since=last_phase_event, timeout=5)


def test_a_reload_while_paused_starts_its_schedules_paused_and_reset_resumes(admin, adm):
    profile = _scheduled(adm, {"duration": "0.2s"}, {"duration": "0.2s", "accept": "refuse"})
    srv, api = admin(profile)
    api.post("/schedule/pause")
    r = api.put("/profile", json=profile)
    assert r.status_code == 200, r.text
    state = api.get("/state").json()
    assert state["schedule"]["paused"] is True
    assert state["listeners"][0]["schedule"]["paused"] is True
    assert api.post("/reset").status_code == 200
    state = api.get("/state").json()
    assert state["schedule"]["paused"] is False
    srv.wait_for(type="phase", phase=1, timeout=5)


# --- panic -----------------------------------------------------------------------------------


def test_panic_opens_every_listener_clears_api_rules_and_pauses(admin, adm):
    srv, api = admin(
        adm.profile(
            adm.listener(rules=[{"name": "own", "match": {"path": "/own"}, "action": "reset"}]),
            adm.listener("other", schedule={"phases": [{"duration": HOUR, "accept": "refuse"}]}),
            adm.listener("third", accept="stall"),
        )
    )
    srv.wait_for(type="phase", listener="other")
    api.patch("/listeners/backend", json={"accept": "refuse", "rules": [{"action": "hang"}]})
    r = api.post("/panic")
    assert r.status_code == 200
    body = r.json()
    assert body["panic"] is True and body["paused"] is True
    assert sorted(body["opened"]) == ["backend", "other", "third"]
    assert body["rules_cleared"] == ["backend"]
    state = api.get("/state").json()
    assert state["schedule"]["paused"] is True
    modes = {item["name"]: (item["accept"], item["accept_cause"]) for item in state["listeners"]}
    assert modes == {"backend": ("open", "api"), "other": ("open", "api"), "third": ("open", "api")}
    backend = state["listeners"][0]
    assert backend["rules_cause"] == "profile"
    assert [rule["name"] for rule in backend["rules"]] == ["own"]  # the profile's own rule stays
    # clients are served again at once
    sock = adm.connect(srv["backend"].port)
    assert adm.roundtrip(sock, "/")[0] == 200
    sock.close()
    [event] = srv.events(type="panic")
    assert event["rules_cleared"] == ["backend"] and event["paused"] is True
    assert srv.events(type="schedule_paused")[-1]["cause"] == "panic"
    assert ("backend", "open", "api") in [
        (e["listener"], e["accept"], e["cause"]) for e in srv.events(type="mode")
    ]


def test_panic_through_the_handle_matches_the_api(faultserver):
    srv = faultserver(
        {"version": 1, "listeners": [{"name": "backend", "bind": "127.0.0.1:0", "accept": "refuse"}]}
    )
    assert srv.panic() == {"opened": ["backend"], "rules_cleared": []}
    state = srv.state()
    assert state["schedule"]["paused"] is True
    assert state["listeners"][0]["accept"] == "open"
    assert srv.resume_schedule() is True
    assert srv.pause_schedule() is True


@pytest.mark.parametrize("path", ["/panic", "/schedule/pause", "/schedule/resume"])
def test_control_endpoints_take_no_body(admin, adm, path):
    _srv, api = admin(adm.profile())
    adm.assert_json_error(
        api.post(path, json={"listener": "backend"}),
        400,
        'this endpoint takes no body (or {}), got {"listener": "backend"}',
    )
    assert api.get("/state").json()["schedule"]["paused"] is False  # nothing happened


# --- POST /reload without a body: the server's own file ----------------------------------------


def test_profile_reload_without_a_file_says_to_put_the_profile(admin, adm):
    _srv, api = admin(adm.profile())
    adm.assert_json_error(
        api.post("/reload"),
        400,
        "this server's profile has no file to read again (it came from standard input or from code): "
        "send the profile with PUT /profile",
    )


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_show_the_mode_phase_and_pause_in_force(admin, adm):
    srv, api = admin(
        adm.profile(
            adm.listener(schedule={"phases": [{"duration": HOUR}, {"duration": HOUR, "accept": "refuse"}]}),
            adm.listener("other", accept="refuse"),
        )
    )
    srv.wait_for(type="phase", listener="backend")
    text = api.get("/metrics").text
    lines = set(text.splitlines())
    for line in [
        "# TYPE faultserver_accept_mode gauge",
        'faultserver_accept_mode{listener="backend",mode="open"} 1',
        'faultserver_accept_mode{listener="backend",mode="refuse"} 0',
        'faultserver_accept_mode{listener="backend",mode="stall"} 0',
        'faultserver_accept_mode{listener="other",mode="refuse"} 1',
        "# TYPE faultserver_schedule_phase gauge",
        'faultserver_schedule_phase{listener="backend",phase="0"} 1',
        'faultserver_schedule_phase{listener="backend",phase="1"} 0',
        "# TYPE faultserver_schedule_paused gauge",
        "faultserver_schedule_paused 0",
    ]:
        assert line in lines, (line, text)
    assert not [line for line in lines if 'schedule_phase{listener="other"' in line]
    api.post("/schedule/pause")
    assert "faultserver_schedule_paused 1" in api.get("/metrics").text.splitlines()


def test_metrics_parse_with_the_prometheus_client(admin, adm):
    from prometheus_client.parser import text_string_to_metric_families

    _srv, api = admin(adm.profile())
    families = {f.name: f for f in text_string_to_metric_families(api.get("/metrics").text)}
    assert families["faultserver_accept_mode"].type == "gauge"
    assert families["faultserver_schedule_paused"].samples[0].value == 0


# --- tokens and probes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/state"),
        ("POST", "/panic"),
        ("POST", "/schedule/pause"),
        ("POST", "/schedule/resume"),
        ("POST", "/reload"),
    ],
)
def test_new_endpoints_need_the_token(admin, adm, method, path):
    srv, _api = admin(adm.profile(control={"token": TOKEN}), token=TOKEN)
    for headers in ({}, {"authorization": "Bearer wrong"}):
        r = httpx.request(method, srv.control_url + path, headers=headers, timeout=5)
        adm.assert_json_error(r, 401, "missing or wrong token: send 'Authorization: Bearer TOKEN'")
    assert srv.state()["schedule"]["paused"] is False  # the refused pause did nothing
    assert srv["backend"].accept == "open"


def test_probes_answer_without_the_token_and_reveal_nothing(admin, adm):
    srv, _api = admin(adm.profile(control={"token": TOKEN}), token=TOKEN)
    for path, body in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        r = httpx.get(srv.control_url + path, headers={"host": "10.1.2.3:8474"}, timeout=5)
        assert r.status_code == 200 and r.json() == body

"""Schedules: a timeline of phases that switch accept mode and rules on the same port.

Each check waits for the `phase` event that starts the phase it looks at, so the timing
of a loaded machine only needs each phase to last longer than one request (phases are
0.2-0.6 s; a check's connect timeout is 0.3 s, and a SYN dropped in a `stall` phase is
not sent again within it, whenever the phase ends).
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

import httpx
import pytest

from tests.support.profiles import TEXT_OK, one_listener


def profile(schedule: dict, **listener: Any) -> dict:
    return one_listener(3, response=TEXT_OK, schedule=schedule, **listener)


def outcome(srv: Any, port: int) -> str:
    """What one GET meets: a status code, "refused" or "connect-timeout"."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=0.3)
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "connect-timeout"
    with sock:
        sock.settimeout(5)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data[9:12].decode()


def at_phase(srv: Any, phase: Any, cycle: int = 0, timeout: float = 5) -> dict:
    return srv.wait_for(type="phase", phase=phase, cycle=cycle, timeout=timeout)


def test_schedule_phases_switch_accept_mode_and_rules_on_the_same_port(faultserver):
    srv = faultserver(
        profile(
            {
                "phases": [
                    {"duration": "500ms"},
                    {"duration": "500ms", "accept": "refuse"},
                    {"duration": "500ms", "rules": [{"action": "respond", "status": 503}]},
                    {"duration": "500ms", "accept": "stall"},
                ]
            }
        )
    )
    port = srv["backend"].port
    at_phase(srv, 0)
    assert outcome(srv, port) == "200"
    at_phase(srv, 1)
    assert outcome(srv, port) == "refused"
    assert srv["backend"].port == port
    at_phase(srv, 2)
    assert outcome(srv, port) == "503"
    at_phase(srv, 3)
    assert outcome(srv, port) == "connect-timeout"
    at_phase(srv, 0, cycle=1)  # repeat defaults to true
    assert outcome(srv, port) == "200"
    modes = [(e["accept"], e["cause"]) for e in srv.events(type="mode")]
    assert modes[:5] == [
        ("open", "profile"),
        ("refuse", "schedule"),
        ("open", "schedule"),
        ("stall", "schedule"),
        ("open", "schedule"),
    ]


def test_schedule_phase_events_say_phase_cycle_duration_and_mode(faultserver):
    srv = faultserver(
        profile(
            {"repeat": True, "phases": [{"duration": "200ms"}, {"duration": "200ms", "accept": "refuse"}]}
        )
    )
    at_phase(srv, 1, cycle=1)
    phases = [(e["phase"], e["cycle"], e["duration"], e["accept"]) for e in srv.events(type="phase")]
    assert phases[:4] == [
        (0, 0, 0.2, "open"),
        (1, 0, 0.2, "refuse"),
        (0, 1, 0.2, "open"),
        (1, 1, 0.2, "refuse"),
    ]


def test_schedule_without_repeat_returns_to_the_configuration(faultserver):
    srv = faultserver(
        profile(
            {"repeat": False, "phases": [{"duration": "400ms", "accept": "refuse"}]},
            rules=[{"match": {"path": "/x"}, "action": "respond", "status": 418}],
        )
    )
    port = srv["backend"].port
    at_phase(srv, 0)
    assert outcome(srv, port) == "refused"
    end = at_phase(srv, None, cycle=1)
    assert end["accept"] == "open"
    assert outcome(srv, port) == "200"
    with httpx.Client(timeout=5, verify=False) as client:
        assert client.get(srv.url + "/x").status_code == 418  # the listener's own rules again
    time.sleep(0.5)  # longer than the phase
    assert srv.events(type="phase", phase=0, cycle=1) == []  # it did not start over


def test_schedule_phase_without_rules_uses_the_listeners_rules(faultserver):
    srv = faultserver(
        profile(
            {
                "phases": [
                    {"duration": "500ms"},
                    {"duration": "500ms", "rules": [{"action": "respond", "status": 503}]},
                ]
            },
            rules=[{"action": "respond", "status": 418}],
        )
    )
    port = srv["backend"].port
    at_phase(srv, 0)
    assert outcome(srv, port) == "418"
    at_phase(srv, 1)
    assert outcome(srv, port) == "503"
    at_phase(srv, 0, cycle=1)
    assert outcome(srv, port) == "418"


def test_schedule_mode_set_from_outside_holds_until_the_next_phase(faultserver):
    srv = faultserver(profile({"phases": [{"duration": "600ms"}, {"duration": "600ms"}]}))
    port = srv["backend"].port
    at_phase(srv, 0)
    srv.set_accept("backend", "refuse")
    assert outcome(srv, port) == "refused"
    time.sleep(0.2)
    assert outcome(srv, port) == "refused"  # the phase did not take it back
    at_phase(srv, 1)
    assert outcome(srv, port) == "200"  # the next phase did
    assert [e["cause"] for e in srv.events(type="mode")] == ["profile", "api", "schedule"]


def test_schedule_keeps_accepted_connections_across_a_switch(faultserver):
    srv = faultserver(profile({"phases": [{"duration": "400ms"}, {"duration": "400ms", "accept": "refuse"}]}))
    at_phase(srv, 0)
    with socket.create_connection(("127.0.0.1", srv["backend"].port), timeout=5) as sock:
        at_phase(srv, 1)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")


def test_schedule_restarts_on_reset(faultserver):
    srv = faultserver(profile({"phases": [{"duration": "600ms"}, {"duration": "600ms", "accept": "refuse"}]}))
    port = srv["backend"].port
    at_phase(srv, 1)
    assert outcome(srv, port) == "refused"
    srv.reset()  # clears the events, then the timeline begins again
    at_phase(srv, 0)
    assert outcome(srv, port) == "200"


def test_schedule_phase_rules_draw_the_same_on_every_run(faultserver):
    schedule = {
        "repeat": False,
        "phases": [{"duration": "1s", "rules": [{"probability": 0.5, "action": "respond", "status": 503}]}],
    }

    def statuses() -> list[int]:
        srv = faultserver(profile(schedule))
        at_phase(srv, 0)
        with httpx.Client(timeout=5, verify=False) as client:
            return [client.get(srv.url + f"/{i}").status_code for i in range(12)]

    first = statuses()
    assert set(first) == {200, 503}
    assert statuses() == first


def test_schedule_refuse_phase_gives_clients_a_connect_error(faultserver):
    srv = faultserver(profile({"phases": [{"duration": "900ms", "accept": "refuse"}, {"duration": "900ms"}]}))
    at_phase(srv, 0)
    with httpx.Client(timeout=5, verify=False) as client:
        with pytest.raises(httpx.ConnectError, match=r"Connection refused"):
            client.get(srv.url + "/")
    with pytest.raises(ConnectionRefusedError) as info:
        socket.create_connection(("127.0.0.1", srv["backend"].port), timeout=1).close()
    assert info.value.errno == errno.ECONNREFUSED

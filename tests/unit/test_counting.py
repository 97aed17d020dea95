"""What the counters call a retry, a repeat, a fault and a delay (`_metrics.py`), and how
events are filtered (`_events.EventFilter`), without sockets: requests and actions in,
counts and events out."""

from __future__ import annotations

import pytest

from faultserver._decide.request import Request
from faultserver._events import EventFilter, EventLog
from faultserver._metrics import REPEAT, RETRY, ListenerStats, is_delay, is_fault, render_prometheus
from faultserver._profile.model import Close, Delay, Hang, Reset, Respond
from faultserver._profile.units import Fixed


def req(path: str = "/orders", method: str = "GET", body: bytes = b"", body_read: bool = True) -> Request:
    return Request(method=method, target=path, path=path, headers=[], body=body, body_read=body_read)


def send(stats: ListenerStats, request: Request, conn: int) -> int:
    return stats.saw_request(request, request.fingerprint, conn)


# --- retries and repeats ----------------------------------------------------------------------


def test_stats_twenty_clients_sending_the_same_get_make_no_retry():
    stats = ListenerStats()
    seen = [send(stats, req(), conn) for conn in range(1, 21)]
    assert seen == [0] + [REPEAT] * 19
    assert (stats.requests, stats.retries, stats.repeats) == (20, 0, 19)


def test_stats_the_same_request_after_a_fault_on_another_connection_is_a_retry():
    stats = ListenerStats()
    first = req(method="POST", body=b'{"n": 1}')
    assert send(stats, first, 1) == 0
    stats.met_trouble(first, first.fingerprint, 1)  # e.g. `close`: FIN, no answer
    again = req(method="POST", body=b'{"n": 1}')
    assert send(stats, again, 1) == 0  # the same connection: neither
    assert send(stats, again, 2) == REPEAT | RETRY
    assert send(stats, again, 3) == REPEAT  # one trouble, one retry
    other_body = req(method="POST", body=b'{"n": 2}')
    assert send(stats, other_body, 4) == 0
    assert (stats.retries, stats.repeats) == (1, 2)


def test_stats_a_retry_after_each_of_several_troubles():
    stats = ListenerStats()
    r = req()
    for conn in (1, 2, 3):
        send(stats, r, conn)
        stats.met_trouble(r, r.fingerprint, conn)
    assert send(stats, r, 4) == REPEAT | RETRY
    assert stats.retries == 3  # conns 2, 3 and 4 each followed a trouble


def test_stats_a_request_whose_body_was_never_read_is_retried_with_its_body():
    stats = ListenerStats()
    head_only = req(method="POST", body_read=False)  # Expect: 100-continue met `close`
    send(stats, head_only, 1)
    stats.met_trouble(head_only, head_only.fingerprint, 1)
    assert send(stats, req(method="POST", body=b"payload"), 2) == REPEAT | RETRY
    assert (stats.retries, stats.repeats) == (1, 1)


def test_stats_reset_forgets_troubles():
    stats = ListenerStats()
    r = req()
    send(stats, r, 1)
    stats.met_trouble(r, r.fingerprint, 1)
    stats.reset()
    assert send(stats, r, 2) == 0
    assert (stats.retries, stats.repeats) == (0, 0)


# --- faults and delays ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "delay_s", "fault", "delayed"),
    [
        (Respond(), 0.0, False, False),  # a rule that lets the request through
        (Respond(), 1.0, False, True),  # pool-exhaustion.yaml, slow.yaml: late, not wrong
        (Delay(for_s=Fixed(1.0)), 0.0, False, True),
        (Respond(status=503), 0.0, True, False),
        (Respond(status=503), 0.5, True, True),
        (Close(), 0.0, True, False),
        (Reset(), 2.0, True, True),
        (Hang(), 0.0, True, False),
    ],
    ids=["plain", "plain-delayed", "delay-action", "503", "503-delayed", "close", "reset-delayed", "hang"],
)
def test_stats_faults_and_delays_are_counted_apart(action, delay_s, fault, delayed):
    assert (is_fault(action), is_delay(action, delay_s)) == (fault, delayed)
    stats = ListenerStats()
    assert stats.acted("r", action, delay_s) is fault
    name = action.name.value
    assert stats.faults_by_action() == ({name: 1} if fault else {})
    assert stats.delayed_by_action() == ({name: 1} if delayed else {})


def test_metrics_render_faults_and_delays_apart():
    stats = ListenerStats()
    stats.acted("slow-backend", Respond(), 1.0)
    stats.acted("slow-backend", Respond(), 1.0)
    stats.acted("boom", Close(), 0.0)
    text = render_prometheus([("backend", stats)])
    assert 'faultserver_faults_total{listener="backend",rule="boom",action="close"} 1\n' in text
    faults = [line for line in text.splitlines() if line.startswith("faultserver_faults_total{")]
    assert faults == ['faultserver_faults_total{listener="backend",rule="boom",action="close"} 1']
    assert 'faultserver_delayed_total{listener="backend",rule="slow-backend",action="respond"} 2\n' in text
    assert "# TYPE faultserver_delayed_total counter\n" in text
    assert 'faultserver_repeats_total{listener="backend"} 0\n' in text


# --- event filters ----------------------------------------------------------------------------


def make_log() -> EventLog:
    log = EventLog()
    log.emit("accept", "backend", conn=1)
    log.emit_fields("request", "backend", {"conn": 1, "path": "/a", "retry": True, "repeat": True})
    log.emit_fields("fault", "backend", {"conn": 1, "path": "/a", "retry": True, "repeat": True},
                    ("retry", "repeat"), rule="boom", action="close")
    log.emit("accept", "other", conn=2)
    log.emit("peer_close", "other", conn=2, how="rst")
    return log


def test_event_log_fault_events_leave_out_request_only_fields():
    [fault] = make_log().select(type="fault")
    assert fault["action"] == "close" and "retry" not in fault and "repeat" not in fault


def test_event_log_select_since_limit_newest_and_any_of():
    log = make_log()
    assert [e["id"] for e in log.select()] == [1, 2, 3, 4, 5]
    assert [e["id"] for e in log.select(since=2)] == [3, 4, 5]
    assert [e["id"] for e in log.select(limit=2)] == [1, 2]
    assert [e["id"] for e in log.select(newest=2)] == [4, 5]
    assert [e["id"] for e in log.select(type="accept", newest=1)] == [4]
    assert [e["id"] for e in log.select(type=("fault", "peer_close"))] == [3, 5]
    assert [e["id"] for e in log.select(listener="other", since=4)] == [5]
    assert log.select(type="accept", conn=3) == []


def test_event_filter_closed_sets_ignore_case():
    log = make_log()
    assert [e["id"] for e in log.select(type="FAULT", action="Close")] == [3]
    assert [e["id"] for e in log.select(how="RST")] == [5]
    assert log.select(path="/A") == []  # a path is not a closed set
    assert not EventFilter.of({})
    assert EventFilter.of({"type": "Fault"}).fields == (("type", ("fault",)),)

"""The probe's pure parts, without sockets or an event loop: the scenario table, the
analysis of events, the two searches, the verdicts and the report."""

from __future__ import annotations

import json
from typing import Any

import pytest

from faultserver._errors import UsageError
from faultserver._probe.analyse import Observation, observe, peak_in_flight, token_of
from faultserver._probe.model import Failure, Reply, Role
from faultserver._probe.report import Report, make_row, summarise_outcomes
from faultserver._probe.scenarios import SCENARIOS, pool_delay, profile_data, select_scenarios, slow_listener
from faultserver._probe.search import (
    Bisection,
    PoolStep,
    ReadTimeoutFinding,
    classify_step,
    first_bound,
    next_concurrency,
    pool_finding,
)
from faultserver._probe.verdicts import JUDGES, Level, Verdict, judge
from faultserver._profile.load import load_profile_data

# --- helpers ------------------------------------------------------------------------------


def reply(token: str, status: int | None = 200, *, method: str = "GET", took: float = 0.01,
          failure: Failure | None = None, role: Role = Role.PROBE, size: int = 3) -> Reply:
    return Reply(token, method, role, took, status, b"ok\n"[:size], size, failure)


def request(conn: int, n: int, token: str, t: float = 0.0) -> dict[str, Any]:
    return {"type": "request", "conn": conn, "request_on_connection": n, "path": f"/api/{token}", "time": t}


def accept(conn: int) -> dict[str, Any]:
    return {"type": "accept", "conn": conn, "time": 0.0}


def response(conn: int, n: int, t: float) -> dict[str, Any]:
    return {"type": "response", "conn": conn, "request_on_connection": n, "time": t}


# --- scenarios ----------------------------------------------------------------------------


def test_scenarios_each_profile_loads_and_each_has_a_judge():
    for scenario in SCENARIOS:
        load_profile_data(profile_data("127.0.0.1:8080", scenario.listener))
        assert scenario.name in JUDGES
    for delay in (None, 0.25, 1.5):
        load_profile_data(profile_data("127.0.0.1:8080", slow_listener(delay)))
    assert list(JUDGES) == [s.name for s in SCENARIOS]


def test_select_scenarios_keeps_the_table_order():
    assert [s.name for s in select_scenarios(["reset", "healthy"])] == ["healthy", "reset"]
    assert select_scenarios(None) == SCENARIOS


def test_select_scenarios_unknown_name_lists_the_known_ones():
    expected = r"^probe: --scenarios: unknown scenario 'fin', 'x'; expected some of healthy, refused, "
    with pytest.raises(UsageError, match=expected):
        select_scenarios(["fin", "x"])


def test_pool_delay_stays_within_the_read_timeout():
    assert pool_delay(None) == 1.0
    assert pool_delay(0.95) == pytest.approx(0.76)
    assert pool_delay(0.2) == 0.3
    assert pool_delay(30.0) == 1.0


# --- analysis -----------------------------------------------------------------------------


def test_token_of_ignores_prefix_query_and_trailing_slash():
    assert token_of("/api/v1/probe-fin-get-3") == "probe-fin-get-3"
    assert token_of("/probe-fin-get-3/?x=1") == "probe-fin-get-3"
    assert token_of("/probe-fin-get-33") != "probe-fin-get-3"


def test_observe_a_get_sent_again_on_a_new_connection_is_retried():
    replies = [reply("w", role=Role.WARM_UP), reply("t")]
    events = [accept(1), request(1, 1, "w"), request(1, 2, "t"), accept(2), request(2, 1, "t")]
    obs = observe(replies, events)
    assert obs.retried == {"GET": True}
    assert (obs.opened, obs.reused) == (2, 1)
    assert obs.outcomes == ("200",)  # the warm-up is not the scenario's request


def test_observe_a_request_that_never_arrived_cannot_show_a_retry():
    obs = observe([reply("t", 502)], [])
    assert obs.retried == {"GET": None}
    assert (obs.opened, obs.reused) == (0, 0)


def test_observe_a_connection_from_before_the_scenario_is_reused_not_opened():
    obs = observe([reply("a"), reply("b", method="POST")], [request(7, 3, "a"), request(7, 4, "b")])
    assert obs.retried == {"GET": False, "POST": False}
    assert (obs.opened, obs.reused) == (0, 2)


def test_peak_in_flight_counts_requests_held_at_once():
    events = [
        request(1, 1, "a", 0.0), {"type": "fault", "action": "respond", "conn": 1, "request_on_connection": 1,
                                  "time": 0.0},
        request(2, 1, "b", 0.1), request(3, 1, "c", 0.2),
        response(1, 1, 1.0), response(2, 1, 1.1), response(3, 1, 1.2),
        request(1, 2, "d", 1.0),  # on a connection just handed back: no overlap with its first
        response(1, 2, 2.0),
    ]
    assert peak_in_flight(events) == 3


def test_peak_in_flight_a_request_ended_by_a_fault_is_no_longer_held():
    events = [
        request(1, 1, "a", 0.0), {"type": "fault", "action": "reset", "conn": 1, "request_on_connection": 1,
                                  "time": 0.0},
        request(2, 1, "b", 0.5),
    ]
    assert peak_in_flight(events) == 1


# --- searches -----------------------------------------------------------------------------


def test_first_bound_is_the_time_the_gateway_gave_up():
    assert first_bound(reply("t", 504, took=1.02)) == 1.02
    assert first_bound(reply("t", None, took=30.0, failure=Failure.TIMEOUT)) is None


def test_bisection_tries_just_below_the_first_failure_then_halves():
    search = Bisection(0.0, 1.0)
    assert search.next_delay() == 0.9
    search = search.after(0.9, reply("t", 504))
    assert (search.lo_s, search.hi_s) == (0.0, 0.9)
    assert search.next_delay() == 0.45
    search = search.after(0.45, reply("t", 200)).after(0.675, reply("t", 200))
    assert search.next_delay() == pytest.approx(0.7875)
    search = search.after(0.7875, reply("t", 504))
    assert search.next_delay() == pytest.approx(0.73125)
    search = search.after(0.73125, reply("t", 200))
    assert search.next_delay() is None  # 0.73125 to 0.7875: within 0.1 s
    assert (search.lo_s, search.hi_s, search.tried) == (0.73125, 0.7875, 5)


def test_bisection_stops_at_once_when_just_below_is_answered():
    search = Bisection(0.0, 2.0).after(1.8, reply("t", 200))
    assert search.next_delay() is None
    assert (search.lo_s, search.hi_s) == (1.8, 2.0)


def test_classify_step_sorts_answers_into_in_time_queued_and_refused():
    replies = [
        reply("a", took=1.0), reply("b", took=1.1), reply("c", 503, took=0.5), reply("d", 503, took=0.52),
        reply("e", took=2.1),
    ]
    step = classify_step(5, replies, peak=2, delay_s=1.0)
    assert (step.ok, step.queued, step.refused) == (2, 1, 2)
    assert step.refused_outcome == "503"
    assert step.refused_wait_s == 0.51
    assert step.queue_wait_s == pytest.approx(1.1)
    assert step.limited


def test_next_concurrency_steps_up_until_a_step_is_limited():
    free = PoolStep(2, 2, 2, 0, 0, None, None, None)
    limited = PoolStep(4, 2, 2, 0, 2, "503", 0.5, None)
    assert next_concurrency([]) == 2
    assert next_concurrency([free]) == 4
    assert next_concurrency([free, limited]) is None
    many = [PoolStep(c, c, c, 0, 0, None, None, None) for c in (2, 4, 8, 16, 32)]
    assert next_concurrency(many) is None
    finding = pool_finding([free, limited])
    assert (finding.limit, finding.largest_tried, finding.limiting) == (2, 4, limited)
    assert pool_finding(many).limit is None


# --- verdicts -----------------------------------------------------------------------------


def observed(replies: list[Reply], events: list[dict[str, Any]] | None = None, **kw: Any) -> Observation:
    return observe(replies, events or [], **kw)


def test_verdict_post_retried_after_fin_is_a_risk():
    obs = observed([reply("w", role=Role.WARM_UP), reply("t", 200, method="POST")],
                   [request(1, 1, "w"), request(1, 2, "t"), request(2, 1, "t")])
    assert judge("fin-post", obs) == Verdict(
        Level.RISK, "gateway retries POST after FIN (200): risk of duplicate side effects"
    )


def test_verdict_get_retried_after_rst_is_ok():
    obs = observed([reply("t")], [request(1, 2, "t"), request(2, 1, "t")])
    assert judge("rst-get", obs) == Verdict(
        Level.OK, "gateway retries GET after RST on a reused connection: the client gets 200"
    )


def test_verdict_fin_passed_on_to_the_client():
    obs = observed([reply("t", None, failure=Failure.CLOSED)], [request(1, 2, "t")])
    assert str(judge("fin-get", obs)) == (
        "note: gateway passes the FIN on: the client connection closes without an answer (closed); "
        "the client must retry"
    )


def test_verdict_no_reuse_means_the_race_cannot_happen():
    obs = observed([reply("t")], [request(4, 1, "t")])
    assert judge("fin-get", obs).text.startswith("200: the GET came on a new upstream connection")


def test_verdict_no_connect_timeout_below_the_wait():
    obs = observed([reply("t", None, took=30.0, failure=Failure.TIMEOUT)])
    verdict = Verdict(Level.RISK, "no connect timeout below 30 s: clients will wait")
    assert judge("connect-timeout", obs) == verdict


def test_verdict_refused_fast_and_slow():
    fast = judge("refused", observed([reply("t", 502, took=0.002)]))
    assert str(fast) == "ok: 502 at once (0.00 s): fails fast"
    assert str(judge("refused", observed([reply("t", 503, took=3.0)]))) == (
        "note: 503 after 3.00 s: the gateway retries the connect; clients wait"
    )


def test_verdict_pool_gives_up_with_a_status():
    steps = [PoolStep(2, 2, 2, 0, 0, None, None, None), PoolStep(4, 2, 2, 0, 2, "503", 0.5, None)]
    obs = observed([], pool=pool_finding(steps))
    verdict = judge("pool-exhaustion", obs)
    assert str(verdict) == "ok: pool gives up after 0.50 s with 503 above 2 concurrent requests"


def test_verdict_pool_queues_or_has_no_limit():
    queued = pool_finding(
        [PoolStep(2, 2, 2, 0, 0, None, None, None), PoolStep(4, 2, 2, 2, 0, None, None, 1.0)]
    )
    assert judge("pool-exhaustion", observed([], pool=queued)).text == (
        "pool queues above 2 concurrent requests: up to 1.00 s extra wait, then 200"
    )
    free = pool_finding([PoolStep(c, c, c, 0, 0, None, None, None) for c in (2, 4, 8, 16, 32)])
    assert judge("pool-exhaustion", observed([], pool=free)).text.startswith(
        "no pool limit up to 32 concurrent requests (32 upstream at once)"
    )


def test_verdict_read_timeout_found_or_not():
    found = ReadTimeoutFinding("504", 1.0, 0.9, 1.0, 1.0, 1)
    assert str(judge("slow-first-byte", observed([reply("t", 504)], read_timeout=found))) == (
        "ok: 504 after 1.00 s: read timeout between 0.90 and 1.00 s"
    )
    retried = ReadTimeoutFinding("504", 4.0, 1.91, 2.03, 4.0, 5)
    assert str(judge("slow-first-byte", observed([reply("t", 504)], read_timeout=retried))) == (
        "note: 504 after 4.00 s: read timeout between 1.91 and 2.03 s, and the request sent again after it"
    )
    none = ReadTimeoutFinding("timeout", 30.0, None, None, 30.0)
    assert str(judge("slow-first-byte", observed([reply("t", None)], read_timeout=none))) == (
        "risk: no read timeout below 30 s: clients will wait"
    )


def test_verdict_partial_body_cut_and_idle_close():
    cut = reply("t", 200, failure=Failure.CUT, size=222)
    assert judge("partial-response", observed([cut])).text == (
        "200 with the body cut short (222 of 1000 bytes): only the length tells clients"
    )
    warm, probe = reply("w", role=Role.WARM_UP), reply("t", 502)
    obs = observed([warm, probe], [request(1, 1, "w"), {"type": "idle_close", "conn": 1, "time": 1.0}])
    assert judge("idle-close", obs).level is Level.RISK


def test_verdict_of_a_scenario_stopped_early_says_so():
    obs = observed([reply("t", 502)], cut_short="its time limit")
    assert judge("refused", obs).text == "502 at once (0.01 s): fails fast (stopped early: its time limit)"
    assert judge("healthy", observed([], cut_short="--max-duration")).text == "not measured (--max-duration)"


# --- report -------------------------------------------------------------------------------


def test_summarise_outcomes_counts_in_first_seen_order():
    assert summarise_outcomes(["504", "200", "504", "200 cut"]) == "504 x2, 200, 200 cut"
    assert summarise_outcomes([]) == "-"


def sample_report() -> Report:
    healthy, fin = SCENARIOS[0], SCENARIOS[3]
    obs = observed([reply("a"), reply("b")], [accept(1), request(1, 1, "a"), request(1, 2, "b")])
    obs_fin = observed([reply("t", None, failure=Failure.CLOSED)], [request(1, 2, "t")])
    rows = (make_row(healthy, obs, judge("healthy", obs)), make_row(fin, obs_fin, judge("fin-get", obs_fin)))
    return Report("http://gw:8080/api", "127.0.0.1:9000", "2026-01-01T00:00:00+00:00", 12.3, "0.1.0", rows,
                  skipped=("pool-exhaustion",))


def test_report_table_has_one_line_per_scenario_and_the_whole_verdict():
    lines = sample_report().to_table().splitlines()
    assert lines[0] == "faultserver 0.1.0 probe of http://gw:8080/api (backend 127.0.0.1:9000), " \
                       "2026-01-01T00:00:00+00:00, 12 s"
    assert lines[2].split() [:3] == ["scenario", "statuses", "latency"]
    assert lines[4].split()[:6] == ["healthy", "200", "x2", "0.01", "/", "0.01"]
    assert lines[4].endswith("ok: 200; upstream keep-alive: 2 requests over 1 connection(s)")
    assert lines[5].split()[:2] == ["fin-get", "closed"]
    assert lines[-1] == "not run (--max-duration reached): pool-exhaustion"


def test_report_markdown_and_json_carry_the_same_rows():
    report = sample_report()
    md = report.to_markdown().splitlines()
    assert md[2] == (
        "| scenario | statuses | latency p50 / max | retried GET / POST | upstream opened / reused "
        "| verdict |"
    )
    assert md[4].startswith("| `healthy` | 200 x2 | 0.01 / 0.01 s | no / - | 1 / 1 | ok: 200; ")
    data = json.loads(report.to_json())
    assert [r["scenario"] for r in data["rows"]] == ["healthy", "fin-get"]
    fin = data["rows"][1]
    assert fin["statuses"] == ["closed"]
    assert fin["retried"] == {"GET": False, "POST": None}
    assert fin["verdict"]["level"] == "note"
    assert fin["requests"][0]["arrivals"] == [[1, 2]]
    assert data["skipped"] == ["pool-exhaustion"]

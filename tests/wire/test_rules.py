"""Rules on the wire: each match key, first match wins, probability, times, seeds.

A matched rule answers `respond` with a status that names it, so the status a client
reads tells which rule acted. Decisions are read back from the `fault` events. A rule's
`delay` is tested without the kernel, to the millisecond, in tests/shell/test_actions.py.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support import net
from tests.support.profiles import TEXT_OK, one_listener


def profile(*rules: dict, seed: int | None = 42) -> dict:
    return one_listener(seed, response=TEXT_OK, rules=list(rules))


def status_rule(status: int, match: dict | None = None, **keys: Any) -> dict:
    rule: dict[str, Any] = {"action": "respond", "status": status, **keys}
    if match is not None:
        rule["match"] = match
    return rule


def status(srv: Any, path: str, method: str = "GET", headers: dict | None = None) -> int:
    """One request on a new connection (verify=False: no CA bundle to load for plain HTTP)."""
    with httpx.Client(timeout=5, verify=False) as client:
        return client.request(method, srv.url + path, headers=headers).status_code


def statuses_on_one_connection(srv: Any, count: int) -> list[int]:
    with net.connect("127.0.0.1", srv["backend"].port) as sock:
        sock.sendall(b"GET /n HTTP/1.1\r\nhost: x\r\n\r\n" * count)
        data = b""
        while data.count(b"HTTP/1.1 ") < count or not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def decisions(srv: Any) -> list[tuple[str, str]]:
    """(path, rule) of each fault, in order."""
    return [(e["path"], e["rule"]) for e in srv.events(type="fault")]


# --- match keys -----------------------------------------------------------------------


def test_match_method_as_a_string(faultserver):
    srv = faultserver(profile(status_rule(503, {"method": "POST"})))
    assert [status(srv, "/x", m) for m in ("GET", "POST", "PUT")] == [200, 503, 200]


def test_match_method_as_a_list(faultserver):
    srv = faultserver(profile(status_rule(503, {"method": ["put", "DELETE"]})))
    assert [status(srv, "/x", m) for m in ("GET", "POST", "PUT", "DELETE")] == [200, 200, 503, 503]


def test_match_path_glob_star_also_matches_slash(faultserver):
    srv = faultserver(profile(status_rule(503, {"path": "/api/*"})))
    assert status(srv, "/api/v1/orders/7") == 503
    assert status(srv, "/api/") == 503
    assert status(srv, "/api") == 200
    assert status(srv, "/apix/1") == 200
    assert status(srv, "/other/api/1") == 200


def test_match_path_ignores_the_query_string(faultserver):
    srv = faultserver(profile(status_rule(503, {"path": "/orders"})))
    assert status(srv, "/orders?page=2&x=/y") == 503
    assert status(srv, "/orders/2") == 200


def test_match_path_glob_question_mark_and_class(faultserver):
    srv = faultserver(profile(status_rule(503, {"path": "/v[12]/item?"})))
    assert [status(srv, p) for p in ("/v1/items", "/v2/itemX", "/v3/items", "/v1/item")] == [
        503,
        503,
        200,
        200,
    ]


def test_match_path_regex_is_searched(faultserver):
    srv = faultserver(
        profile(
            status_rule(503, {"path": {"regex": "^/items/[0-9]+$"}}),
            status_rule(502, {"path": {"regex": "admin"}}),
        )
    )
    assert [status(srv, p) for p in ("/items/12", "/items/12/x", "/items/ab")] == [503, 200, 200]
    assert status(srv, "/v1/admin/users") == 502


def test_match_headers_any_case_name_and_glob_value(faultserver):
    srv = faultserver(profile(status_rule(503, {"headers": {"X-Tenant": "blue*"}})))
    assert status(srv, "/", headers={"x-tenant": "blueberry"}) == 503
    assert status(srv, "/", headers={"X-TENANT": "blue"}) == 503
    assert status(srv, "/", headers={"X-Tenant": "red"}) == 200
    assert status(srv, "/", headers={"X-Tenant": "Blue"}) == 200  # values keep their case
    assert status(srv, "/") == 200


def test_match_several_headers_must_all_hold(faultserver):
    srv = faultserver(profile(status_rule(503, {"headers": {"x-a": "1", "x-b": "*"}})))
    assert status(srv, "/", headers={"x-a": "1", "x-b": "anything"}) == 503
    assert status(srv, "/", headers={"x-a": "1"}) == 200


def test_match_all_conditions_together(faultserver):
    srv = faultserver(
        profile(status_rule(503, {"method": "POST", "path": "/api/*", "headers": {"x-t": "b"}}))
    )
    assert status(srv, "/api/1", "POST", {"x-t": "b"}) == 503
    assert status(srv, "/api/1", "GET", {"x-t": "b"}) == 200
    assert status(srv, "/web/1", "POST", {"x-t": "b"}) == 200
    assert status(srv, "/api/1", "POST", {"x-t": "c"}) == 200


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (2, [200, 503, 200, 200]),
        ("==3", [200, 200, 503, 200]),
        (">=2", [200, 503, 503, 503]),
        ("<3", [503, 503, 200, 200]),
        (">3", [200, 200, 200, 503]),
        ("<=1", [503, 200, 200, 200]),
        ("!=2", [503, 200, 503, 503]),
    ],
)
def test_match_request_on_connection(faultserver, condition, expected):
    srv = faultserver(profile(status_rule(503, {"request_on_connection": condition})))
    assert statuses_on_one_connection(srv, 4) == expected


def test_match_request_on_connection_counts_per_connection(faultserver):
    srv = faultserver(profile(status_rule(503, {"request_on_connection": 1})))
    assert statuses_on_one_connection(srv, 2) == [503, 200]
    assert statuses_on_one_connection(srv, 2) == [503, 200]


# --- order, times, probability --------------------------------------------------------------


def test_first_matching_rule_wins(faultserver):
    srv = faultserver(
        profile(status_rule(501, {"path": "/a/*"}), status_rule(502, {"path": "/a/b"}), status_rule(503))
    )
    assert [status(srv, p) for p in ("/a/b", "/x")] == [501, 503]


def test_a_spent_rule_lets_the_next_one_act(faultserver):
    srv = faultserver(profile(status_rule(501, times=2), status_rule(502, times=1)))
    assert [status(srv, "/") for _ in range(5)] == [501, 501, 502, 200, 200]


def test_times_is_restored_by_a_reset(faultserver):
    srv = faultserver(profile(status_rule(503, times=1)))
    assert [status(srv, "/") for _ in range(2)] == [503, 200]
    srv.reset()
    assert [status(srv, "/") for _ in range(2)] == [503, 200]


def test_times_counts_only_when_the_rule_acts(faultserver):
    srv = faultserver(profile(status_rule(503, {"path": "/hit"}, times=1)))
    assert [status(srv, p) for p in ("/miss", "/miss", "/hit", "/hit")] == [200, 200, 503, 200]


def test_probability_zero_and_one(faultserver):
    srv = faultserver(profile(status_rule(501, probability=0), status_rule(502, probability=1.0)))
    assert {status(srv, "/") for _ in range(10)} == {502}


def test_probability_failing_draw_falls_through_to_the_next_rule(faultserver):
    srv = faultserver(profile(status_rule(501, probability=0.5), status_rule(502)))
    seen = [status(srv, "/") for _ in range(40)]
    assert set(seen) == {501, 502}
    assert 8 <= seen.count(501) <= 32  # about half (seeded: the same on every run)


# --- seeded decisions -------------------------------------------------------------------------

FLAKY = {"name": "flaky", "match": {"path": "/a/*"}, "probability": 0.5, "action": "respond", "status": 503}


def run_sequence(srv: Any, paths: list[str]) -> list[int]:
    return [status(srv, p) for p in paths]


def test_seed_same_requests_give_identical_decisions(faultserver):
    paths = [f"/a/{i}" for i in range(30)]
    one = faultserver(profile(FLAKY, seed=1234))
    two = faultserver(profile(FLAKY, seed=1234))
    first, second = run_sequence(one, paths), run_sequence(two, paths)
    assert first == second
    assert set(first) == {200, 503}
    other = run_sequence(faultserver(profile(FLAKY, seed=4321)), paths)
    assert other != first


def test_seed_adding_a_rule_leaves_another_rules_decisions_unchanged(faultserver):
    a_paths = [f"/a/{i}" for i in range(30)]
    alone = faultserver(profile(FLAKY, seed=99))
    expected = run_sequence(alone, a_paths)
    newcomer = {
        "name": "newcomer",
        "match": {"path": "/b/*"},
        "probability": 0.5,
        "action": "respond",
        "status": 502,
    }
    both = faultserver(profile(newcomer, FLAKY, seed=99))  # added before it, drawing on other requests
    got = []
    for i, path in enumerate(a_paths):
        got.append(status(both, path))
        status(both, f"/b/{i}")  # interleaved: the newcomer draws from its own stream
    assert got == expected
    assert {e["rule"] for e in both.events(type="fault")} == {"flaky", "newcomer"}


def test_seed_a_later_rule_catching_the_misses_changes_nothing_before_it(faultserver):
    paths = [f"/a/{i}" for i in range(20)]
    expected = run_sequence(faultserver(profile(FLAKY, seed=7)), paths)
    catch_all = {"name": "fallback", "probability": 0.5, "action": "respond", "status": 502}
    got = run_sequence(faultserver(profile(FLAKY, catch_all, seed=7)), paths)
    assert [s == 503 for s in got] == [s == 503 for s in expected]
    assert 502 in got


def test_seed_reset_restarts_the_streams(faultserver):
    paths = [f"/a/{i}" for i in range(20)]
    srv = faultserver(profile(FLAKY, seed=3))
    first = run_sequence(srv, paths)
    srv.reset()
    assert run_sequence(srv, paths) == first


def test_seed_unnamed_rules_draw_by_position(faultserver):
    paths = [f"/a/{i}" for i in range(20)]
    unnamed = {k: v for k, v in FLAKY.items() if k != "name"}
    expected = run_sequence(faultserver(profile(unnamed, seed=8)), paths)
    appended = {"match": {"path": "/b/*"}, "probability": 0.5, "action": "respond", "status": 502}
    assert run_sequence(faultserver(profile(unnamed, appended, seed=8)), paths) == expected


def test_seed_absent_is_chosen_and_reported_in_the_first_event(faultserver):
    srv = faultserver(profile(FLAKY, seed=None))
    start = srv.events(type="start")[0]
    assert isinstance(start["seed"], int)
    assert start["seed"] == srv.seed
    assert start["id"] == min(e["id"] for e in srv.events())
    first = run_sequence(srv, [f"/a/{i}" for i in range(20)])
    again = faultserver(profile(FLAKY, seed=start["seed"]))
    assert run_sequence(again, [f"/a/{i}" for i in range(20)]) == first


def test_seed_connect_rules_are_reproducible(faultserver):
    rule = {"at": "connect", "probability": 0.5, "action": "close"}

    def outcomes(srv: Any) -> list[str]:
        out = []
        for _ in range(16):
            try:
                status(srv, "/")
                out.append("ok")
            except httpx.RemoteProtocolError:
                out.append("closed")
        return out

    first = outcomes(faultserver(profile(rule, seed=21)))
    assert set(first) == {"ok", "closed"}
    assert outcomes(faultserver(profile(rule, seed=21))) == first

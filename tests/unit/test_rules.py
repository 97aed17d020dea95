"""RuleSet without sockets: matching, first match wins, `times`, seeded draws, delays."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from faultserver._decide.request import Request
from faultserver._decide.rules import RuleSet, stream
from faultserver._profile.load import load_rules
from faultserver._profile.model import ActionName, Close, Respond


def ruleset(*rules: dict, seed: int = 1, listener: str = "backend") -> RuleSet:
    return RuleSet(load_rules(list(rules), listener), seed, listener)


def req(
    path: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    number: int = 1,
) -> Request:
    pairs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request(method=method, target=path, path=path.partition("?")[0], headers=pairs, number=number)


def acting(rules: RuleSet, request: Request) -> str | None:
    decision = rules.decide_request(request)
    return decision.rule if decision is not None else None


def rule(name: str, match: dict | None = None, **keys: Any) -> dict:
    out: dict[str, Any] = {"name": name, "action": "close", **keys}
    if match is not None:
        out["match"] = match
    return out


# --- matching --------------------------------------------------------------------------


def test_rules_empty_decide_nothing():
    rules = ruleset()
    assert not rules
    assert rules.decide_request(req()) is None
    assert rules.decide_connect() is None
    assert not rules.has_connect_rules


def test_rules_no_match_means_any_request():
    assert acting(ruleset(rule("all")), req("/anything", "DELETE")) == "all"


@pytest.mark.parametrize(
    ("method", "expected"),
    [("GET", None), ("POST", "r"), ("PUT", "r"), ("post", None)],
)
def test_rules_match_method_list(method, expected):
    # methods are upper-cased in the profile; a request's method is taken as sent
    assert acting(ruleset(rule("r", {"method": ["post", "PUT"]})), req(method=method)) == expected


def test_rules_match_method_string():
    rules = ruleset(rule("r", {"method": "PATCH"}))
    assert [acting(rules, req(method=m)) for m in ("PATCH", "GET")] == ["r", None]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/x", "r"),
        ("/api/x/y/z", "r"),
        ("/api/", "r"),
        ("/api", None),
        ("/v1/api/x", None),
        ("/API/x", None),
    ],
)
def test_rules_match_path_glob(path, expected):
    assert acting(ruleset(rule("r", {"path": "/api/*"})), req(path)) == expected


def test_rules_match_path_glob_is_whole_path():
    rules = ruleset(rule("r", {"path": "/health"}))
    assert [acting(rules, req(p)) for p in ("/health", "/healthz", "/x/health")] == ["r", None, None]


def test_rules_match_path_regex_searches():
    rules = ruleset(
        rule("anchored", {"path": {"regex": "^/u/[0-9]+$"}}), rule("anywhere", {"path": {"regex": "pay"}})
    )
    assert acting(rules, req("/u/42")) == "anchored"
    assert acting(rules, req("/u/42/x")) is None
    assert acting(rules, req("/v2/payments")) == "anywhere"


def test_rules_match_headers_glob_and_name_case():
    rules = ruleset(rule("r", {"headers": {"X-Tenant": "blue-*"}}))
    assert acting(rules, req(headers={"x-tenant": "blue-1"})) == "r"
    assert acting(rules, req(headers={"X-TENANT": "blue-"})) == "r"
    assert acting(rules, req(headers={"x-tenant": "red-1"})) is None
    assert acting(rules, req()) is None


def test_rules_match_header_any_of_repeated_values():
    rules = ruleset(rule("r", {"headers": {"accept": "*json*"}}))
    request = Request("GET", "/", "/", [(b"accept", b"text/html"), (b"accept", b"application/json")])
    assert acting(rules, request) == "r"


@pytest.mark.parametrize(
    ("condition", "matching"),
    [
        (2, [2]),
        ("2", [2]),
        ("=2", [2]),
        ("==2", [2]),
        ("!=2", [1, 3, 4]),
        (">=2", [2, 3, 4]),
        (">2", [3, 4]),
        ("<3", [1, 2]),
        ("<=3", [1, 2, 3]),
    ],
)
def test_rules_match_request_on_connection(condition, matching):
    rules = ruleset(rule("r", {"request_on_connection": condition}))
    assert [n for n in range(1, 5) if acting(rules, req(number=n)) == "r"] == matching


def test_rules_all_conditions_must_hold():
    match = {"method": "POST", "path": "/a/*", "headers": {"x": "1"}, "request_on_connection": ">=2"}
    rules = ruleset(rule("r", match))
    good = dict(path="/a/b", method="POST", headers={"x": "1"}, number=2)
    assert acting(rules, req(**good)) == "r"
    for key, bad in (("path", "/b"), ("method", "GET"), ("headers", {"x": "2"}), ("number", 1)):
        assert acting(rules, req(**{**good, key: bad})) is None


# --- order and times -------------------------------------------------------------------------


def test_rules_first_match_wins():
    rules = ruleset(rule("first", {"path": "/a"}), rule("second"), rule("third"))
    assert acting(rules, req("/a")) == "first"
    assert acting(rules, req("/b")) == "second"


def test_rules_times_spends_a_rule_then_the_next_acts():
    rules = ruleset(rule("twice", times=2), rule("always"))
    assert [acting(rules, req()) for _ in range(4)] == ["twice", "twice", "always", "always"]


def test_rules_times_counts_only_acting():
    rules = ruleset(rule("once", {"path": "/x"}, times=1))
    assert [acting(rules, req(p)) for p in ("/y", "/x", "/x")] == [None, "once", None]


def test_rules_a_new_ruleset_restores_times():
    specs = (rule("once", times=1),)
    first = ruleset(*specs)
    assert [acting(first, req()) for _ in range(2)] == ["once", None]
    again = ruleset(*specs)
    assert acting(again, req()) == "once"


def test_rules_decision_carries_the_action_and_zero_delay():
    decision = ruleset({"name": "r", "action": "respond", "status": 503}).decide_request(req())
    assert decision is not None
    assert decision.action == Respond(status=503)
    assert decision.action.name is ActionName.RESPOND
    assert decision.delay_s == 0.0


# --- connect rules ----------------------------------------------------------------------------


def test_rules_connect_rules_are_separate_from_request_rules():
    rules = ruleset({"name": "c", "at": "connect", "action": "reset"}, rule("r"))
    assert rules.has_connect_rules
    assert rules.decide_connect().rule == "c"
    assert acting(rules, req()) == "r"


def test_rules_connect_times_and_order():
    rules = ruleset(
        {"name": "c1", "at": "connect", "action": "close", "times": 1},
        {"name": "c2", "at": "connect", "action": "hang"},
    )
    assert [rules.decide_connect().rule for _ in range(3)] == ["c1", "c2", "c2"]
    assert rules.decide_connect().action == rules.rules[1].action


# --- seeded draws -------------------------------------------------------------------------------


def sequence(rules: RuleSet, n: int = 200, path: str = "/") -> list[str | None]:
    return [acting(rules, req(path)) for _ in range(n)]


def test_draws_same_seed_same_decisions():
    spec = rule("flaky", probability=0.3)
    first, second = sequence(ruleset(spec, seed=5)), sequence(ruleset(spec, seed=5))
    assert first == second
    assert 30 <= first.count("flaky") <= 90


def test_draws_different_seed_or_listener_differs():
    spec = rule("flaky", probability=0.5)
    base = sequence(ruleset(spec, seed=5))
    assert sequence(ruleset(spec, seed=6)) != base
    assert sequence(ruleset(spec, seed=5, listener="other")) != base


def test_draws_probability_edges():
    assert set(sequence(ruleset(rule("never", probability=0)), 50)) == {None}
    assert set(sequence(ruleset(rule("always", probability=1)), 50)) == {"always"}


def test_draws_only_when_the_match_holds():
    spec = rule("flaky", {"path": "/a"}, probability=0.5)
    plain = ruleset(spec)
    expected = [acting(plain, req("/a")) for _ in range(100)]
    mixed = ruleset(spec)
    got = []
    for _ in range(100):
        assert acting(mixed, req("/other")) is None  # no match: no draw
        got.append(acting(mixed, req("/a")))
    assert got == expected


def test_draws_adding_a_rule_leaves_a_named_rules_stream_alone():
    flaky = rule("flaky", {"path": "/a"}, probability=0.5)
    expected = sequence(ruleset(flaky), 100, "/a")
    newcomer = rule("newcomer", {"path": "/b"}, probability=0.5)
    with_newcomer = ruleset(newcomer, flaky)
    got = []
    for _ in range(100):
        acting(with_newcomer, req("/b"))
        got.append(acting(with_newcomer, req("/a")))
    assert got == expected


def test_draws_later_rule_does_not_disturb_an_earlier_one():
    flaky = rule("flaky", probability=0.5)
    expected = sequence(ruleset(flaky), 100)
    got = sequence(ruleset(flaky, rule("fallback", probability=0.5)), 100)
    assert [g == "flaky" for g in got] == [e == "flaky" for e in expected]
    assert "fallback" in got


def test_draws_spent_rule_stops_drawing():
    # with times, draws stop once spent: a second identical ruleset agrees throughout
    spec = rule("few", probability=0.5, times=3)
    first, second = sequence(ruleset(spec), 60), sequence(ruleset(spec), 60)
    assert first == second and first.count("few") == 3


def test_draws_scope_separates_phase_rules():
    specs = load_rules([rule("flaky", probability=0.5)], "backend")
    base = RuleSet(specs, 9, "backend")
    phase = RuleSet(specs, 9, "backend", scope="phase-0")
    assert sequence(base) != sequence(phase)


def test_stream_is_stable_across_runs():
    # the derivation is part of the reproducibility promise (a seed in a bug report must
    # replay on another machine and a later version): pin one value
    assert stream(42, "backend", "flaky").random() == 0.4345473346861024
    assert stream(42, "backend", "a").random() != stream(42, "backend", "b").random()


# --- delays -----------------------------------------------------------------------------------


def delays(delay: Any, n: int = 400) -> list[float]:
    rules = ruleset({"name": "d", "action": "close", "delay": delay})
    out = []
    for _ in range(n):
        decision = rules.decide_request(req())
        assert decision is not None and decision.action == Close()
        out.append(decision.delay_s)
    return out


def test_delay_fixed():
    assert set(delays("250ms", 5)) == {0.25}
    assert set(delays(2, 5)) == {2.0}


def test_delay_uniform_within_bounds():
    values = delays({"uniform": ["100ms", "300ms"]})
    assert all(0.1 <= v <= 0.3 for v in values)
    assert 0.18 <= statistics.mean(values) <= 0.22
    assert len(set(values)) > 300  # drawn afresh per request


def test_delay_normal_mean_and_clip():
    values = delays({"normal": {"mean": "200ms", "stddev": "20ms"}})
    assert 0.19 <= statistics.mean(values) <= 0.21
    assert 0.015 <= statistics.stdev(values) <= 0.025
    clipped = delays({"normal": {"mean": "0ms", "stddev": "100ms"}})
    assert min(clipped) == 0.0 and max(clipped) > 0


def test_delay_lognormal_median():
    values = delays({"lognormal": {"median": "100ms", "sigma": 0.5}}, 1000)
    assert 0.09 <= statistics.median(values) <= 0.11
    assert max(values) > 0.25  # the long tail
    assert min(values) > 0


def test_delay_draws_are_seeded():
    spec = {"uniform": ["0ms", "1s"]}
    assert delays(spec, 20) == delays(spec, 20)

"""Valid profiles load into exactly the expected objects (the profile format, pure, no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faultserver._profile.load import load_profile_data, load_profile_file, load_profile_text, load_rules
from faultserver._profile.model import (
    AcceptMode,
    ActionName,
    At,
    Body,
    Close,
    Control,
    Dribble,
    Framing,
    Garbage,
    Hang,
    Keepalive,
    Limits,
    Listener,
    Match,
    Partial,
    Phase,
    Profile,
    Reset,
    Respond,
    Response,
    Rule,
    Schedule,
)
from faultserver._profile.regex import PathRegex
from faultserver._profile.units import Fixed, LogNormal, Normal, Uniform

VALID = Path(__file__).parent.parent / "data" / "valid"


def test_load_profile_file_everything() -> None:
    path = str(VALID / "everything.yaml")
    profile = load_profile_file(path)
    slow = Uniform(0.1, 0.3)
    assert profile == Profile(
        version=1,
        seed=42,
        fault_header="x-fault",
        control=Control(bind=("127.0.0.1", 8474), token="s3cret"),
        source=path,
        listeners=(
            Listener(
                name="backend",
                host="127.0.0.1",
                port=8080,
                accept=AcceptMode.OPEN,
                backlog=64,
                max_connections=10,
                response=Response(
                    status=201,
                    headers=(
                        ("content-type", "text/plain"),
                        ("x-version", "1.10"),
                        ("retry-after", "3"),
                    ),
                    body=Body(data=b"ok\n"),
                    framing=Framing.CHUNKED,
                ),
                keepalive=Keepalive(idle_close=Fixed(2.0), max_requests=100),
                limits=Limits(
                    header_timeout_s=5.0, max_header_bytes=8192, max_body_bytes=1024 * 1024
                ),
                rules=(
                    Rule(
                        name="respond-all-keys",
                        at=At.REQUEST,
                        match=Match(
                            methods=frozenset({"POST", "PUT"}),
                            path_glob="/api/*",
                            headers=(("x-tenant", "blue"), ("x-version", "2")),
                            request_on_connection=(">=", 2),
                        ),
                        probability=0.25,
                        times=3,
                        delay=slow,
                        action=Respond(
                            status=503,
                            headers=(("retry-after", "1"),),
                            body=Body(size=4096),
                            framing=Framing.CLOSE,
                        ),
                    ),
                    Rule(
                        name="close-drain",
                        match=Match(
                            methods=frozenset({"GET"}),
                            path_regex=PathRegex.compile("^/orders/[0-9]+$"),
                            request_on_connection=("==", 2),
                        ),
                        delay=Normal(0.2, 0.02),
                        action=Close(drain_s=0.5),
                    ),
                    Rule(name="reset", action=Reset()),
                    Rule(name="hang-for", delay=Fixed(1.5), action=Hang(for_s=LogNormal(0.1, 0.5))),
                    Rule(name="partial", action=Partial(bytes=20, then=ActionName.HANG)),
                    Rule(
                        name="dribble-interval",
                        action=Dribble(chunk_bytes=16, interval=Fixed(0.01)),
                    ),
                    Rule(
                        name="dribble-rate",
                        action=Dribble(chunk_bytes=1024, rate_bytes_per_s=100_000.0),
                    ),
                    Rule(name="garbage", action=Garbage(bytes=128)),
                    Rule(name="connect-close", at=At.CONNECT, probability=0.1, action=Close()),
                    Rule(name="connect-reset", at=At.CONNECT, times=1, action=Reset()),
                    Rule(name="connect-hang", at=At.CONNECT, action=Hang(for_s=Fixed(60.0))),
                    Rule(name="connect-garbage", at=At.CONNECT, action=Garbage(bytes=1000)),
                ),
                schedule=Schedule(
                    repeat=False,
                    phases=(
                        Phase(duration_s=20.0),
                        Phase(duration_s=5.0, accept=AcceptMode.REFUSE),
                        Phase(duration_s=0.5, accept=AcceptMode.STALL),
                        Phase(
                            duration_s=60.0,
                            rules=(Rule(name="rule-0", action=Respond(status=503)),),
                        ),
                        Phase(duration_s=3600.0, rules=()),
                    ),
                ),
            ),
            Listener(
                name="v6", host="::1", port=0, accept=AcceptMode.STALL, backlog=0,
                response=Response(body=Body(data=b"")),
                keepalive=Keepalive(idle_close=Uniform(1.0, 2.0)),
            ),
        ),
    )
    assert profile.listener("v6").bind == "[::1]:0"
    assert profile.listener("backend").bind == "127.0.0.1:8080"


def test_load_profile_file_minimal_has_the_defaults() -> None:
    path = str(VALID / "minimal.yaml")
    assert load_profile_file(path) == Profile(
        listeners=(Listener(name="backend", host="127.0.0.1", port=0),), source=path
    )
    listener = load_profile_file(path).listeners[0]
    assert listener.accept is AcceptMode.OPEN
    assert listener.backlog == 128
    assert listener.response == Response(status=200, headers=(), body=None, framing=Framing.LENGTH)
    assert listener.limits == Limits(
        header_timeout_s=30.0, max_header_bytes=64 * 1024, max_body_bytes=16 * 1024 * 1024
    )
    profile = load_profile_file(path)
    assert (profile.seed, profile.fault_header, profile.control) == (None, "x-fault", Control())


def test_load_profile_file_json_text() -> None:
    path = str(VALID / "json.yaml")
    assert load_profile_file(path) == Profile(
        fault_header=None,
        source=path,
        listeners=(
            Listener(
                name="api",
                host="0.0.0.0",
                port=9000,
                accept=AcceptMode.REFUSE,
                response=Response(status=204, body=Body(data=b"ignored by clients but allowed")),
                rules=(Rule(name="rule-0", action=Dribble(rate_bytes_per_s=100.0)),),
            ),
        ),
    )


def test_load_profile_raw_is_the_plain_document() -> None:
    profile = load_profile_file(str(VALID / "everything.yaml"))
    raw = profile.raw
    assert isinstance(raw, dict)
    json.dumps(raw)  # JSON-able, for GET /profile
    assert raw["x-notes"] == "keys that begin with x- are ignored anywhere"
    backend = raw["listeners"][0]
    # merge keys and aliases are expanded; values stay as written
    assert backend["accept"] == "open" and backend["backlog"] == 64
    assert backend["rules"][0]["delay"] == {"uniform": ["100ms", "300ms"]}
    assert backend["bind"] == "localhost:8080"


@pytest.mark.parametrize("name", ["spec-examples.yaml", "json.yaml", "minimal.yaml"])
def test_load_profile_text_and_data_agree(name: str) -> None:
    # (not everything.yaml: its header value 1.10 is the float 1.1 once parsed)
    text = (VALID / name).read_text()
    from_text = load_profile_text(text)
    from_data = load_profile_data(from_text.raw)
    assert from_text.source == "<string>" and from_data.source == "<data>"
    assert from_data.listeners == from_text.listeners
    assert from_data.raw == from_text.raw


def test_load_profile_text_merge_key_explicit_keys_win() -> None:
    text = """
version: 1
x-base: &base {name: base, bind: "127.0.0.1:1", backlog: 5}
x-more: &more {backlog: 7, accept: stall}
listeners:
  - <<: [*base, *more]
    name: mine
"""
    (listener,) = load_profile_text(text).listeners
    assert (listener.name, listener.port, listener.backlog) == ("mine", 1, 5)
    assert listener.accept is AcceptMode.STALL


def test_load_profile_text_normalises_hosts() -> None:
    text = """
version: 1
listeners:
  - {name: a, bind: "localhost:1"}
  - {name: b, bind: "[0:0:0:0:0:0:0:1]:2"}
  - {name: c, bind: "[::]:3"}
  - {name: d, bind: "0.0.0.0:65535"}
"""
    binds = [(x.host, x.port) for x in load_profile_text(text).listeners]
    assert binds == [("127.0.0.1", 1), ("::1", 2), ("::", 3), ("0.0.0.0", 65535)]


@pytest.mark.parametrize(
    ("written", "loaded"),
    [
        ("{method: get}", Match(methods=frozenset({"GET"}))),
        ("{method: [Get, GET, post]}", Match(methods=frozenset({"GET", "POST"}))),
        ("{path: '*'}", Match(path_glob="*")),
        ("{headers: {X-A: '*b*'}}", Match(headers=(("x-a", "*b*"),))),
        ("{request_on_connection: '<3'}", Match(request_on_connection=("<", 3))),
        ("{request_on_connection: '=1'}", Match(request_on_connection=("==", 1))),
        ("{request_on_connection: '!= 2'}", Match(request_on_connection=("!=", 2))),
        ("null", Match()),
        ("{x-later: {method: GET}}", Match()),
    ],
)
def test_load_rules_match(written: str, loaded: Match) -> None:
    text = (
        "version: 1\nlisteners: [{name: a, bind: '127.0.0.1:0', "
        f"rules: [{{match: {written}, action: reset}}]}}]\n"
    )
    assert load_profile_text(text).listeners[0].rules[0].match == loaded


@pytest.mark.parametrize(
    ("written", "loaded"),
    [
        ("{action: respond}", Respond()),
        ("{action: respond, status: null, body: null, framing: null}", Respond()),
        ("{action: respond, body: ''}", Respond(body=Body(data=b""))),
        ("{action: respond, body: 'é'}", Respond(body=Body(data="é".encode()))),
        ("{action: close}", Close(drain_s=1.0)),
        ("{action: close, drain: 0}", Close(drain_s=0.0)),
        ("{action: hang}", Hang()),
        ("{action: hang, for: null}", Hang()),
        ("{action: partial, bytes: 0}", Partial(bytes=0)),
        ("{action: partial, bytes: 1KiB, then: reset}", Partial(bytes=1024, then=ActionName.RESET)),
        ("{action: dribble, interval: 1s}", Dribble(chunk_bytes=1, interval=Fixed(1.0))),
        ("{action: dribble, interval: null, rate: 1MiB/s}", Dribble(rate_bytes_per_s=1048576.0)),
        ("{action: garbage}", Garbage(bytes=64)),
        ("{action: garbage, bytes: 0}", Garbage(bytes=0)),
    ],
)
def test_load_rules_actions(written: str, loaded: object) -> None:
    (rule,) = load_rules([__import__("yaml").safe_load(written)], "backend")
    assert rule.action == loaded


def test_load_rules_names_default_to_their_index() -> None:
    rules = load_rules(
        [
            {"action": "reset"},
            {"name": "two", "action": "close"},
            {"name": None, "action": "reset"},
        ],
        "backend",
    )
    assert [r.name for r in rules] == ["rule-0", "two", "rule-2"]
    assert load_rules([], "backend") == ()


def test_load_rules_rule_defaults() -> None:
    (rule,) = load_rules([{"action": "reset"}], "backend")
    assert rule == Rule(
        name="rule-0",
        action=Reset(),
        at=At.REQUEST,
        match=Match(),
        probability=1.0,
        times=None,
        delay=None,
    )


@pytest.mark.parametrize(
    ("written", "loaded"),
    [
        ("0", Fixed(0.0)),
        ("1.5", Fixed(1.5)),
        ("250ms", Fixed(0.25)),
        ("'2 s'", Fixed(2.0)),
        ("{uniform: [0, 1m]}", Uniform(0.0, 60.0)),
        ("{uniform: [1s, 1s]}", Uniform(1.0, 1.0)),
        ("{normal: {mean: 1s, stddev: 0}}", Normal(1.0, 0.0)),
        ("{lognormal: {median: 1ms, sigma: 0}}", LogNormal(0.001, 0.0)),
        ("{lognormal: {median: 1h, sigma: 10}, x-why: tails}", LogNormal(3600.0, 10.0)),
    ],
)
def test_load_profile_text_timings(written: str, loaded: object) -> None:
    text = (
        "version: 1\nlisteners: [{name: a, bind: '127.0.0.1:0', "
        f"rules: [{{delay: {written}, action: reset}}]}}]\n"
    )
    assert load_profile_text(text).listeners[0].rules[0].delay == loaded


def test_load_profile_text_accepts_a_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(
        b"\xef\xbb\xbfversion: 1\r\nlisteners:\r\n  - {name: a, bind: '127.0.0.1:0'}\r\n"
    )
    assert load_profile_file(str(path)).listeners[0].name == "a"


def test_load_profile_text_seed_and_fault_header() -> None:
    text = (
        "version: 1\nseed: 0\nfault_header: X-Chaos\nlisteners: [{name: a, bind: '127.0.0.1:0'}]\n"
    )
    profile = load_profile_text(text)
    assert (profile.seed, profile.fault_header) == (0, "x-chaos")
    text = (
        "version: 1\nseed: null\nfault_header: null\nlisteners: [{name: a, bind: '127.0.0.1:0'}]\n"
    )
    profile = load_profile_text(text)
    assert (profile.seed, profile.fault_header) == (None, None)


def test_load_profile_file_same_with_pure_python_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml parses when it is there; PyYAML's own parser gives the same profiles."""
    import yaml

    import faultserver._profile.compose as compose

    paths = sorted(VALID.glob("*.yaml"))
    with_libyaml = [load_profile_file(str(p)) for p in paths]
    monkeypatch.setattr(compose, "_EventLoader", yaml.SafeLoader)
    assert [load_profile_file(str(p)) for p in paths] == with_libyaml


def test_load_profile_text_merge_key_with_one_mapping() -> None:
    text = (
        "version: 1\n"
        "x-base: &base {bind: '127.0.0.1:0', accept: refuse}\n"
        "listeners:\n"
        "  - {<<: *base, name: a}\n"
        "  - {<<: *base, name: b, accept: open}\n"
    )
    a, b = load_profile_text(text).listeners
    assert (a.accept, b.accept) == (AcceptMode.REFUSE, AcceptMode.OPEN)


def test_load_profile_data_raw_is_a_copy() -> None:
    data = {"version": 1, "listeners": [{"name": "a", "bind": "127.0.0.1:0"}]}
    profile = load_profile_data(data)
    assert profile.raw == data
    data["listeners"].clear()
    assert profile.raw["listeners"] == [{"name": "a", "bind": "127.0.0.1:0"}]  # type: ignore[index]


def test_load_profile_text_phase_rules_null_or_empty() -> None:
    text = (
        "version: 1\n"
        "listeners:\n"
        "  - name: a\n"
        "    bind: 127.0.0.1:0\n"
        "    schedule: {phases: [{duration: 1s, rules: null}, {duration: 1s, rules: []}]}\n"
    )
    schedule = load_profile_text(text).listeners[0].schedule
    assert schedule == Schedule(phases=(Phase(duration_s=1.0), Phase(duration_s=1.0, rules=())))

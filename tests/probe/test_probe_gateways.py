"""The probe against real gateways: nginx and HAProxy, started here in front of the probe's
backend, each row of each report asserted.

Each gateway runs with short timeouts (1 s to connect, 1 s to read) and a limit of 4
upstream connections, so a whole probe takes about 15 s. One probe runs per gateway
(module fixtures) and each test checks one row: the statuses, whether GET and POST were
retried, the verdict's level, and for the searches, the threshold within a stated
tolerance. Timings are only checked as such thresholds, never to the millisecond.
`pytest -s` prints each report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from faultserver._probe.client import parse_gateway_url
from faultserver._probe.report import Report
from faultserver._probe.run import ProbeOptions, run_probe
from faultserver._probe.scenarios import select_scenarios
from faultserver._probe.verdicts import Level
from tests.probe.gateways import (
    HAProxySettings,
    NginxSettings,
    find_binary,
    free_port,
    start_gateway,
)

pytestmark = pytest.mark.gateway

#: The gateways' settings here: the timeouts the thresholds below are checked against.
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 1.0
MAX_CONNS = 4
NGINX = NginxSettings(keepalive=8, connect_timeout="1s", read_timeout="1s", max_conns=MAX_CONNS)
HAPROXY = HAProxySettings(
    timeout_connect="1s", timeout_server="1s", timeout_queue="500ms", retries=1, maxconn=MAX_CONNS
)
#: Tolerances: the read timeout the bisection brackets, and the pool's limit.
READ_TIMEOUT_TOLERANCE_S = 0.3
POOL_LIMIT_TOLERANCE = 1
#: A bound on each probe here (the slowest scenario, connect-timeout via HAProxy, takes 2 s).
MAX_WAIT_S = 5.0


def run(
    tmp: Path, kind: str, settings: NginxSettings | HAProxySettings, scenarios: str | None = None
) -> Report:
    if find_binary(kind) is None:
        pytest.skip(f"{kind} is not installed (apt-get install -y {kind}; .ci/run does)")
    port = free_port()
    gateway = start_gateway(kind, tmp, f"127.0.0.1:{port}", settings)
    try:
        options = ProbeOptions(
            parse_gateway_url(gateway.url + "/api"),
            ("127.0.0.1", port),
            select_scenarios(scenarios.split(",") if scenarios else None),
            max_wait_s=MAX_WAIT_S,
        )
        report = run_probe(options)
    finally:
        gateway.stop()
    print(f"\n{kind} ({settings.describe()}):\n{report.to_table()}")
    return report


@pytest.fixture(scope="module")
def nginx_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    yield run(tmp_path_factory.mktemp("nginx"), "nginx", NGINX)


@pytest.fixture(scope="module")
def haproxy_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    yield run(tmp_path_factory.mktemp("haproxy"), "haproxy", HAPROXY)


@dataclass(frozen=True)
class Expected:
    """One row: its statuses, retried (GET, POST; None: not seen at the backend), level."""

    statuses: tuple[str, ...]
    get: bool | None
    post: bool | None
    level: Level


OK, NOTE, RISK = Level.OK, Level.NOTE, Level.RISK
#: What each gateway does, as docs/conformance.md found it cause by cause.
EXPECTED = {
    "nginx": {
        "healthy": Expected(("200",) * 4, False, False, OK),
        "refused": Expected(("502",), None, None, OK),
        "connect-timeout": Expected(("504",), None, None, OK),
        # a request lost on a cached connection: a GET is sent again, a POST is not
        "fin-get": Expected(("200",), True, None, OK),
        "fin-post": Expected(("502",), None, False, OK),
        "rst-get": Expected(("200",), True, None, OK),
        "rst-post": Expected(("502",), None, False, OK),
        "idle-close": Expected(("200",), False, None, OK),
        "reset": Expected(("502", "502"), False, False, OK),
        "partial-response": Expected(("200 cut",), False, None, NOTE),
    },
    "haproxy": {
        "healthy": Expected(("200",) * 4, False, False, OK),
        # `retries 1`: one more connect, a second later
        "refused": Expected(("503",), None, None, NOTE),
        "connect-timeout": Expected(("503",), None, None, OK),
        # the backend's close passed on to the client: no answer, no retry
        "fin-get": Expected(("closed",), False, None, NOTE),
        "fin-post": Expected(("closed",), None, False, NOTE),
        "rst-get": Expected(("closed",), False, None, NOTE),
        "rst-post": Expected(("closed",), None, False, NOTE),
        "idle-close": Expected(("200",), False, None, OK),
        "reset": Expected(("502", "502"), False, False, OK),
        "partial-response": Expected(("200 cut",), False, None, NOTE),
    },
}


def check_row(report: Report, name: str, expected: Expected) -> None:
    row = report.row(name)
    obs = row.observation
    assert obs.outcomes == expected.statuses, row.cells()
    assert (obs.retried.get("GET"), obs.retried.get("POST")) == (expected.get, expected.post), row.cells()
    assert row.verdict.level is expected.level, row.cells()
    assert obs.cut_short is None


@pytest.mark.parametrize("scenario", list(EXPECTED["nginx"]))
def test_probe_nginx_row(nginx_report, scenario):
    check_row(nginx_report, scenario, EXPECTED["nginx"][scenario])


@pytest.mark.parametrize("scenario", list(EXPECTED["haproxy"]))
def test_probe_haproxy_row(haproxy_report, scenario):
    check_row(haproxy_report, scenario, EXPECTED["haproxy"][scenario])


def test_probe_nginx_reuses_upstream_connections(nginx_report):
    assert nginx_report.row("healthy").observation.reused == 3  # 4 requests over 1 connection
    assert nginx_report.row("fin-get").observation.reused == 1  # the request met the FIN there


@pytest.mark.parametrize("gateway", ["nginx", "haproxy"])
def test_probe_connect_timeout_is_the_gateways_own(nginx_report, haproxy_report, gateway):
    report = nginx_report if gateway == "nginx" else haproxy_report
    reply = report.row("connect-timeout").observation.probes[0]
    tries = 1 if gateway == "nginx" else 2  # HAProxy's `retries 1`
    assert tries * CONNECT_TIMEOUT_S - 0.1 <= reply.took_s < tries * CONNECT_TIMEOUT_S + 2


@pytest.mark.parametrize("gateway", ["nginx", "haproxy"])
def test_probe_read_timeout_is_bracketed(nginx_report, haproxy_report, gateway):
    report = nginx_report if gateway == "nginx" else haproxy_report
    row = report.row("slow-first-byte")
    found = row.observation.read_timeout
    assert found is not None and found.hi_s is not None and found.lo_s is not None, row.cells()
    assert found.first == "504"
    assert found.lo_s < found.hi_s
    assert READ_TIMEOUT_S - READ_TIMEOUT_TOLERANCE_S <= found.lo_s <= READ_TIMEOUT_S + 0.05
    assert READ_TIMEOUT_S - 0.05 <= found.hi_s <= READ_TIMEOUT_S + READ_TIMEOUT_TOLERANCE_S
    assert row.verdict.level is Level.OK


@pytest.mark.parametrize(("gateway", "outcome"), [("nginx", "502"), ("haproxy", "503")])
def test_probe_pool_threshold_within_tolerance(nginx_report, haproxy_report, gateway, outcome):
    report = nginx_report if gateway == "nginx" else haproxy_report
    row = report.row("pool-exhaustion")
    found = row.observation.pool
    assert found is not None and found.limit is not None, row.cells()
    assert abs(found.limit - MAX_CONNS) <= POOL_LIMIT_TOLERANCE, row.cells()
    step = found.limiting
    assert step is not None and step.refused > 0 and step.refused_outcome == outcome
    assert step.refused_wait_s is not None
    if gateway == "nginx":
        assert step.refused_wait_s < 0.3  # `no live upstreams`, at once
    else:
        assert 0.4 <= step.refused_wait_s < 1.0  # `timeout queue 500ms`
    assert row.verdict.text.startswith("pool gives up ")
    assert row.verdict.text.endswith(f"with {outcome} above {found.limit} concurrent requests")


def test_probe_nginx_non_idempotent_retries_post(tmp_path):
    settings = NginxSettings(keepalive=8, read_timeout="1s", next_upstream="error timeout non_idempotent")
    report = run(tmp_path, "nginx", settings, "fin-post,rst-post")
    for name in ("fin-post", "rst-post"):
        row = report.row(name)
        assert row.observation.outcomes == ("200",)
        assert row.observation.retried["POST"] is True
        assert row.verdict.level is Level.RISK
        assert "risk of duplicate side effects" in row.verdict.text


def test_probe_nginx_without_keepalive_never_reuses(tmp_path):
    report = run(tmp_path, "nginx", NginxSettings(), "healthy,fin-get")
    healthy, fin = report.row("healthy"), report.row("fin-get")
    assert healthy.observation.reused == 0
    assert healthy.observation.opened == 4
    assert healthy.verdict.level is Level.NOTE
    assert fin.observation.outcomes == ("200",)
    assert fin.verdict.text == (
        "200: the GET came on a new upstream connection, not a reused one; this race cannot happen here"
    )


def test_probe_max_duration_stops_the_run_and_says_what_was_not_run(tmp_path):
    """nginx's default connect timeout is 60 s: a 4 s run stops inside that scenario."""
    if find_binary("nginx") is None:
        pytest.skip("nginx is not installed")
    port = free_port()
    gateway = start_gateway("nginx", tmp_path, f"127.0.0.1:{port}", NginxSettings())
    try:
        options = ProbeOptions(
            parse_gateway_url(gateway.url),
            ("127.0.0.1", port),
            select_scenarios(["healthy", "connect-timeout", "reset"]),
            max_duration_s=4.0,
        )
        report = run_probe(options)
    finally:
        gateway.stop()
    assert [r.scenario.name for r in report.rows] == ["healthy", "connect-timeout"]
    assert report.skipped == ("reset",)
    stalled = report.row("connect-timeout")
    assert stalled.observation.cut_short == "--max-duration"
    assert stalled.verdict.text.endswith("(stopped early: --max-duration)")
    assert report.duration_s < 4.0 + 3.0  # the deadline, and putting the backend back to healthy


def test_probe_self_test_writes_the_table_json_and_markdown(tmp_path):
    if find_binary("nginx") is None:
        pytest.skip("nginx is not installed")
    from tests.support.cli import run_cli

    done, _took = run_cli(
        "probe", "--self-test", "--scenarios", "healthy,fin-get,fin-post", "--json", tmp_path / "r.json",
        "--markdown", tmp_path / "r.md", timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("faultserver ") and " probe of http://127.0.0.1:" in lines[0]
    assert [line.split()[0] for line in lines[4:]] == ["healthy", "fin-get", "fin-post"]
    assert "probe: self-test: nginx on http://127.0.0.1:" in done.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    rows = {r["scenario"]: r for r in data["rows"]}
    assert rows["fin-get"]["retried"] == {"GET": True, "POST": None}
    assert rows["fin-post"]["statuses"] == ["502"]
    markdown = (tmp_path / "r.md").read_text()
    assert "| `fin-post` | 502 |" in markdown

"""The conformance matrix, gateway half: what nginx and HAProxy say for each D504CO cause.

Every test starts faultserver with one profile, puts a real nginx or HAProxy in front of
it (see conftest.py), sends requests through the gateway and checks both the status the
gateway returned and the line its log wrote. Each prints a `MATRIX |` line with the
observed values; the README's table is copied from those lines (`pytest -s -m gateway`).

The keep-alive race has two flavours, each a shipped profile: fin.yaml (the second request on
a kept-alive upstream connection meets a FIN) and fin-rst.yaml (an RST); every fin row runs
with both. The race itself (`keepalive: {max_requests: 1}`, the next request sent at once)
has no single outcome: its tests run 20 tries, print how often each outcome came, and assert
only that each is one of the race's faces.

Gateway settings (conftest.py): nginx with `keepalive 8` to the upstream, HTTP/1.1,
`proxy_connect_timeout 1s`, `proxy_read_timeout 1s`; HAProxy with `maxconn 2` on the
server, `timeout connect 1s`, `timeout server 1s`, `timeout queue 500ms`, `retries 1`.
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import re
import threading
import time
from typing import Any

import pytest

from tests.support.profiles import BODY_BYTES, TEXT_OK, matrix_profile, one_listener

pytestmark = pytest.mark.gateway





def start_backend(faultserver: Any, name: str) -> tuple[Any, int]:
    return start_backend_profile(faultserver, matrix_profile(name))


def start_backend_profile(faultserver: Any, profile: Any) -> tuple[Any, int]:
    srv = faultserver(profile)
    listener = next(iter(srv.listeners.values()))
    return srv, listener.port


@dataclasses.dataclass
class Answer:
    status: int | None = None
    body: bytes = b""
    error: BaseException | None = None
    took_s: float = 0.0

    def __str__(self) -> str:
        if self.error is not None:
            return f"{self.status or ''} {type(self.error).__name__}: {self.error}".strip()
        return f"{self.status} ({len(self.body)} bytes)"


def send(
    gateway_url: str,
    method: str,
    path: str,
    conn: http.client.HTTPConnection | None = None,
    timeout: float = 10.0,
) -> Answer:
    """One request through the gateway; a broken answer is kept, not raised."""
    host, port = gateway_url.removeprefix("http://").split(":")
    c = conn or http.client.HTTPConnection(host, int(port), timeout=timeout)
    body = b"order=1" if method == "POST" else None
    answer = Answer()
    start = time.monotonic()
    try:
        c.request(method, path, body=body)
        response = c.getresponse()
        answer.status = response.status
        answer.body = response.read()
    except (http.client.HTTPException, OSError) as exc:
        answer.error = exc
        if isinstance(exc, http.client.IncompleteRead):
            answer.body = exc.partial
    finally:
        answer.took_s = time.monotonic() - start
        if conn is None:
            c.close()
    return answer


def send_concurrently(gateway_url: str, paths: list[str], timeout: float = 10.0) -> list[Answer]:
    answers: list[Answer | None] = [None] * len(paths)

    def one(i: int) -> None:
        answers[i] = send(gateway_url, "GET", paths[i], timeout=timeout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    assert all(a is not None for a in answers), "a request thread did not finish"
    return answers  # type: ignore[return-value]


def report(gateway: str, cause: str, **observed: Any) -> None:
    """Print the observed cell; the README's table is copied from these lines."""
    cells = " | ".join(f"{k}={v}" for k, v in observed.items())
    print(f"\nMATRIX | {gateway} | {cause} | {cells}")


def requests_for(srv: Any, path: str) -> list[dict]:
    return [e for e in srv.requests() if e["path"] == path]


# --- one GET: the status and the log line of each cause -----------------------------------


@dataclasses.dataclass(frozen=True)
class OneGet:
    """One GET through a gateway to a backend with one fault: what the gateway says of it."""

    label: str  # the cause, as the matrix's MATRIX line names it
    path: str
    status: int
    #: nginx: its error.log message; HAProxy: (status, termination state, retries) of its log line
    said: Any
    #: whether the backend read the request (once), or never saw one
    reaches_backend: bool
    #: the answer waits for gateway timeouts of 1 s: (at least, under) seconds
    took_s: tuple[float, float] | None = None


def check_one_get(srv: Any, answer: Answer, said: Any, row: OneGet) -> None:
    assert answer.status == row.status
    assert said == row.said
    assert len(requests_for(srv, row.path)) == (1 if row.reaches_backend else 0)
    if row.took_s is not None:
        low, high = row.took_s
        assert low <= answer.took_s < high
    if row.reaches_backend and row.took_s is not None:
        srv.wait_for(type="peer_close", timeout=2)  # the gateway gave up on the connection


def took(answer: Answer, row: OneGet) -> dict[str, str]:
    return {"took": f"{answer.took_s:.2f}s"} if row.took_s is not None else {}


PREMATURE = "[error] upstream prematurely closed connection while reading response header from upstream"
#: `proxy_connect_timeout 1s` and `proxy_read_timeout 1s`
NGINX_ONE_GET = {
    "refused": OneGet(
        "refused",
        "/refused",
        502,
        "[error] connect() failed (111: Connection refused) while connecting to upstream",
        False,
    ),
    "connect-timeout": OneGet(
        "connect-timeout",
        "/stall",
        504,
        "[error] upstream timed out (110: Connection timed out) while connecting to upstream",
        False,
        (0.9, 5),
    ),
    "reset": OneGet(
        "reset",
        "/reset",
        502,
        "[error] recv() failed (104: Connection reset by peer) while reading response header from upstream",
        True,  # a fresh connection: not retried
    ),
    "partial-headers": OneGet("partial (cut in the headers)", "/partial", 502, PREMATURE, True),
    "hang": OneGet(
        "hang",
        "/hang",
        504,
        "[error] upstream timed out (110: Connection timed out) while reading response header from upstream",
        True,
        (0.9, 5),
    ),
}

#: Termination states: the first letter says who (S server, s a timeout), the second when
#: (C connect, H waiting for the headers). `timeout connect 1s`, `timeout server 1s`,
#: `retries 1` (a failed connect is tried twice).
HAPROXY_ONE_GET = {
    "refused": OneGet("refused", "/refused", 503, ("503", "SC--", "1"), False),
    "connect-timeout": OneGet("connect-timeout", "/stall", 503, ("503", "sC--", "1"), False, (1.8, 6)),
    "reset": OneGet("reset", "/reset", 502, ("502", "SH--", "0"), True),
    "partial-headers": OneGet("partial (cut in the headers)", "/partial", 502, ("502", "SH--", "0"), True),
    "hang": OneGet("hang", "/hang", 504, ("504", "sH--", "0"), True, (0.9, 5)),
}

ONE_GET = {"nginx": NGINX_ONE_GET, "haproxy": HAPROXY_ONE_GET}


def what_it_said(gateway: str, gw: Any, path: str) -> tuple[Any, dict[str, Any]]:
    """What the gateway logged of one request (as `OneGet.said` has it), and its matrix cell."""
    if gateway == "nginx":
        message = gw.message(gw.error_line("GET", path))
        return message, {"error_log": message}
    line = gw.log_line("GET", path)
    return gw.summary(line), {"log": _haproxy_cell(gw, line)}


@pytest.mark.parametrize(("gateway", "cause"), [(g, c) for g, rows in ONE_GET.items() for c in rows])
def test_gateway_one_get_gives_the_status_and_log_line_of_its_cause(faultserver, request, gateway, cause):
    row = ONE_GET[gateway][cause]
    srv, port = start_backend(faultserver, cause)
    gw = request.getfixturevalue(gateway)(port)
    answer = send(gw.url, "GET", row.path)
    said, cell = what_it_said(gateway, gw, row.path)
    report(gateway, row.label, status=answer.status, **took(answer, row), **cell)
    check_one_get(srv, answer, said, row)


# --- the keep-alive race: max_requests 1, the next request sent at once ----------------------

#: `keepalive: {max_requests: 1}`: the backend closes every connection (FIN, and no
#: `Connection: close` to warn) right after its first answer. A gateway that sends the next
#: request on that connection at once races the FIN: it may see the FIN first (and open a
#: new connection), or send into the closing connection.
RACE = one_listener(response=TEXT_OK, keepalive={"max_requests": 1})
#: Tries per gateway and method: each a new client connection sending /w-N, then /r-N on it
#: as soon as /w-N is answered. The row counts the /r-N outcomes. A /w-N may race too, where
#: the gateway shares its upstream connections between clients (nginx's `keepalive` cache).
RACE_TRIES = 20


def race_tries(gw: Any, method: str) -> list[tuple[str, Answer]]:
    """RACE_TRIES tries through the gateway: (path, answer) of every request, in order."""
    host, port = gw.url.removeprefix("http://").split(":")
    out = []
    for i in range(RACE_TRIES):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            for path in (f"/w-{i}", f"/r-{i}"):
                out.append((path, send(gw.url, method, path, conn=conn)))
        finally:
            conn.close()
    return out


def _counted(outcomes: list[str]) -> str:
    return ", ".join(f"{n} x {o}" for o, n in collections.Counter(outcomes).most_common())


def check_race(srv: Any, gateway: str, method: str, outcomes: list[tuple[str, str]], faces: tuple[str, ...],
               answered: list[str]) -> None:
    """Print how often each outcome came; assert each is one of the race's `faces` (regular
    expressions, whole outcomes), and that faultserver read each answered request once, on a
    new connection: it never reads a request on a connection it closed, so it sees no retry."""
    second = [o for path, o in outcomes if path.startswith("/r-")]
    first = [o for path, o in outcomes if path.startswith("/w-")]
    for path in answered:
        srv.wait_for(type="request", path=path, timeout=2)
    seen = [e for e in srv.requests() if e["path"].startswith(("/w-", "/r-"))]
    numbers = sorted({e["request_on_connection"] for e in seen})
    report(gateway, f"max-requests-1 ({method}, the next request at once, {RACE_TRIES} tries)",
           outcomes=_counted(second), first_requests=_counted(first),
           backend_saw=f"{len(seen)} requests, request_on_connection {numbers}",
           retried=[e["path"] for e in srv.retries()] or "no")
    assert len(second) == RACE_TRIES
    patterns = [re.compile(face) for face in faces]
    unexpected = sorted({o for _, o in outcomes if not any(p.fullmatch(o) for p in patterns)})
    assert not unexpected, f"{gateway} {method}: outcomes that are not a face of the race: {unexpected}"
    assert sorted(e["path"] for e in seen) == sorted(answered)
    assert {e["request_on_connection"] for e in seen} == {1}
    assert srv.retries() == []


# --- nginx ------------------------------------------------------------------------------

#: The two flavours of the keep-alive race: what the second request on a kept-alive upstream
#: connection meets, as faultserver's fault event names it.
ON_REUSE = {"fin": "close", "fin-rst": "reset"}

#: nginx's error.log message for a request sent on a cached connection that the backend closed
NGINX_ON_REUSE = {
    "fin": "[error] upstream prematurely closed connection while reading response header from upstream",
    "fin-rst": (
        "[error] recv() failed (104: Connection reset by peer) while reading response header from upstream"
    ),
}


@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_nginx_fin_on_reuse_get_is_retried_on_a_fresh_connection(faultserver, nginx, cause):
    srv, port = start_backend(faultserver, cause)
    gw = nginx(port)
    assert send(gw.url, "GET", "/warm").status == 200  # opens the upstream connection
    gw.access_line("GET", "/warm")  # logged when done: the upstream connection is cached now
    answer = send(gw.url, "GET", "/fin-get")
    line = gw.error_line("GET", "/fin-get")
    seen = requests_for(srv, "/fin-get")
    access = gw.access_line("GET", "/fin-get")
    report("nginx", f"{cause} (GET on a reused connection)", status=answer.status,
           error_log=gw.message(line), backend_saw=[(e["conn"], e["request_on_connection"]) for e in seen],
           access_log=access.split(" ", 3)[3])
    assert answer.status == 200
    echo = json.loads(answer.body)  # the backend's echo: the answer came from the new connection
    assert (echo["path"], echo["request_on_connection"]) == ("/fin-get", 1)
    assert gw.message(line) == NGINX_ON_REUSE[cause]
    # first on the reused connection (closed with FIN or RST), then again on a new one
    assert [e["request_on_connection"] for e in seen] == [2, 1]
    assert seen[0]["conn"] != seen[1]["conn"]
    assert [e["path"] for e in srv.retries()] == ["/fin-get"]
    assert srv.events(type="fault", action=ON_REUSE[cause], path="/fin-get")
    assert "upstream_status=502, 200" in access


@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_nginx_fin_on_reuse_post_gets_502(faultserver, nginx, cause):
    srv, port = start_backend(faultserver, cause)
    gw = nginx(port)
    assert send(gw.url, "POST", "/warm").status == 200
    gw.access_line("POST", "/warm")  # logged when done: the upstream connection is cached now
    answer = send(gw.url, "POST", "/fin-post")
    line = gw.error_line("POST", "/fin-post")
    seen = requests_for(srv, "/fin-post")
    report("nginx", f"{cause} (POST on a reused connection)", status=answer.status,
           error_log=gw.message(line), backend_saw=[(e["conn"], e["request_on_connection"]) for e in seen])
    assert answer.status == 502
    assert gw.message(line) == NGINX_ON_REUSE[cause]
    # not idempotent: nginx does not send it again (proxy_next_upstream without non_idempotent)
    assert [e["request_on_connection"] for e in seen] == [2]
    assert srv.retries() == []


@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_nginx_fin_idle_close_is_noticed_before_reuse(faultserver, nginx, cause):
    srv, port = start_backend(faultserver, cause)
    gw = nginx(port)
    assert send(gw.url, "GET", "/warm").status == 200
    gw.access_line("GET", "/warm")  # logged when done: the upstream connection is cached now
    srv.wait_for(type="idle_close", timeout=5)
    srv.wait_for(type="peer_close", timeout=2)  # nginx closed its cached connection at once
    answer = send(gw.url, "GET", "/after-idle")
    seen = requests_for(srv, "/after-idle")
    report("nginx", f"{cause} (idle_close, then a request)", status=answer.status,
           error_log=gw.error_lines("GET", "/after-idle") or "(none)",
           backend_saw=[(e["conn"], e["request_on_connection"]) for e in seen])
    assert answer.status == 200
    assert [e["request_on_connection"] for e in seen] == [1]  # a new connection
    assert gw.error_lines("GET", "/after-idle") == []
    assert srv.retries() == []


#: nginx's words for a request sent on a cached upstream connection that the backend is
#: closing: the FIN or the RST met while waiting for the answer (as in NGINX_ON_REUSE), or
#: while the request was still being written
_NGINX_RACE_ERROR = (
    r"\[error\] (upstream prematurely closed connection|recv\(\) failed \(104: Connection reset by peer\))"
    r" while reading response header from upstream"
    r"|\[error\] (writev|send)\(\) failed \((32: Broken pipe|104: Connection reset by peer)\)"
    r" while sending request to upstream"
)
#: (status, and when nginx tried more than once, the statuses of its tries) then the error line
NGINX_RACE_FACES = {
    # a GET is sent again on a new connection: 200, its access log saying `502, 200`
    "GET": ("200", rf"200 \(upstream_status=502, 200\), ({_NGINX_RACE_ERROR})"),
    # a POST is not (nginx counts it as sent once it began writing it): 502
    "POST": ("200", rf"502, ({_NGINX_RACE_ERROR})"),
}


def test_nginx_keepalive_race_max_requests_1(faultserver, nginx):
    """20 tries per method: a request through nginx, then one more on the same client
    connection as soon as it is answered; nginx reuses its cached upstream connection, which
    the backend is closing. nginx shares that cache between clients, so a try's first request
    may meet the previous try's closing connection too (`first_requests`)."""
    for method in ("GET", "POST"):
        srv, port = start_backend_profile(faultserver, RACE)
        gw = nginx(port)
        outcomes, answered = [], []
        for path, answer in race_tries(gw, method):
            upstream = gw.access_line(method, path).split("upstream_status=")[1].split(" request_time=")[0]
            errors = [gw.message(line) for line in gw.error_lines(method, path)]
            outcome = str(answer.status)
            if upstream != outcome:
                outcome += f" (upstream_status={upstream})"
            outcomes.append((path, ", ".join([outcome, *errors])))
            if answer.status == 200:
                answered.append(path)
        check_race(srv, "nginx", method, outcomes, NGINX_RACE_FACES[method], answered)


def test_nginx_pool_exhaustion_opens_more_connections(faultserver, nginx):
    srv, port = start_backend(faultserver, "pool-exhaustion")
    gw = nginx(port, read_timeout="5s")
    answers = send_concurrently(gw.url, [f"/pool-{i}" for i in range(6)])
    peak = next(iter(srv.listeners.values())).peak_connections
    report("nginx", "pool-exhaustion (no max_conns)", statuses=[a.status for a in answers],
           slowest=f"{max(a.took_s for a in answers):.2f}s", backend_peak_connections=peak,
           error_log=gw.errors().strip() or "(none)")
    assert [a.status for a in answers] == [200] * 6
    assert all(0.9 <= a.took_s < 5 for a in answers)
    assert peak == 6  # no pool limit: one upstream connection per waiting request
    assert gw.errors().strip() == ""


def test_nginx_pool_exhaustion_with_max_conns_gives_502_no_live_upstreams(faultserver, nginx):
    srv, port = start_backend(faultserver, "pool-exhaustion")
    gw = nginx(port, read_timeout="5s", max_conns=2)
    paths = [f"/pool-{i}" for i in range(6)]
    answers = send_concurrently(gw.url, paths)
    statuses = sorted(a.status for a in answers)
    rejected = [p for p, a in zip(paths, answers, strict=True) if a.status == 502]
    lines = {gw.message(gw.error_line("GET", p)) for p in rejected}
    peak = next(iter(srv.listeners.values())).peak_connections
    report("nginx", "pool-exhaustion (max_conns=2)", statuses=statuses,
           backend_peak_connections=peak, error_log=sorted(lines))
    assert statuses == [200, 200, 502, 502, 502, 502]
    assert lines == {"[error] no live upstreams while connecting to upstream"}
    assert all(a.took_s < 0.9 for a in answers if a.status == 502)  # refused at once, no queue
    assert peak == 2


def test_nginx_partial_body_passes_a_truncated_200(faultserver, nginx):
    _srv, port = start_backend(faultserver, "partial-body")
    gw = nginx(port)
    answer = send(gw.url, "GET", "/partial")
    line = gw.error_line("GET", "/partial")
    access = gw.access_line("GET", "/partial")
    report("nginx", "partial (cut in the body)", client=str(answer), error_log=gw.message(line),
           access_log=access)
    # the status line had gone out already: the client gets 200 and a body cut short
    assert answer.status == 200
    assert isinstance(answer.error, http.client.IncompleteRead)
    assert 0 < len(answer.body) < BODY_BYTES
    assert gw.message(line) == "[error] upstream prematurely closed connection while reading upstream"
    assert access.startswith("GET /partial 200 ")


# --- HAProxy ----------------------------------------------------------------------------


def _haproxy_cell(gw: Any, line: str) -> str:
    status, term, retries = gw.summary(line)
    return f"status={status} term={term} retries={retries}"


@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_haproxy_fin_on_reuse_closes_the_client_connection_silently(faultserver, haproxy, cause):
    srv, port = start_backend(faultserver, cause)
    gw = haproxy(port)
    results = {}
    for method in ("GET", "POST"):
        host, gw_port = gw.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(gw_port), timeout=10)
        try:
            first = send(gw.url, method, f"/{method.lower()}-1", conn=conn)
            second = send(gw.url, method, f"/{method.lower()}-2", conn=conn)
        finally:
            conn.close()
        results[method] = (first, second)
    # a log line is written when its stream ends; these ended before a last request was sent,
    # and with one thread HAProxy writes its lines in turn: once that request's line is
    # there, any line of theirs would be too
    assert send(gw.url, "GET", "/logged").status == 200
    gw.log_line("GET", "/logged")
    log = gw.log()
    for method, (first, second) in results.items():
        path = f"/{method.lower()}-2"
        seen = requests_for(srv, path)
        report("haproxy", f"{cause} ({method}, second request on one client connection)",
               first=str(first), second=str(second),
               log=[line for line in log.splitlines() if path in line] or "(no line)",
               backend_saw=[(e["conn"], e["request_on_connection"]) for e in seen])
        assert first.status == 200
        # HAProxy passes the backend's close on to the client: no response, no log line,
        # so that the client (whose connection was a reused one too) may retry
        assert isinstance(second.error, http.client.RemoteDisconnected)
        assert second.status is None
        assert [e["request_on_connection"] for e in seen] == [2]
        assert path not in log
    assert srv.retries() == []


@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_haproxy_fin_on_reuse_across_clients_gives_502_sh(faultserver, haproxy, cause):
    srv, port = start_backend(faultserver, cause)
    # the default (`http-reuse safe`) never sends a client's first request on an idle
    # server connection; `always` does, and that is where the backend's FIN lands
    gw = haproxy(port, backend_extra="http-reuse always")
    for method in ("GET", "POST"):
        warm = f"/{method.lower()}-warm"
        path = f"/{method.lower()}-reused"
        assert send(gw.url, method, warm).status == 200
        gw.log_line(method, warm)  # logged at the stream's end: the connection is idle now
        answer = send(gw.url, method, path)
        line = gw.log_line(method, path)
        seen = requests_for(srv, path)
        report("haproxy", f"{cause} ({method} on a reused server connection, http-reuse always)",
               status=answer.status, log=_haproxy_cell(gw, line),
               backend_saw=[(e["conn"], e["request_on_connection"]) for e in seen])
        assert answer.status == 502
        # SH: the server (S) closed while HAProxy waited for the headers (H); no retry
        assert gw.summary(line) == ("502", "SH--", "0")
        assert [e["request_on_connection"] for e in seen] == [2]
    assert srv.retries() == []


@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_haproxy_fin_default_reuse_gives_every_client_its_own_connection(faultserver, haproxy, cause):
    srv, port = start_backend(faultserver, cause)
    gw = haproxy(port)
    answers = [send(gw.url, m, f"/{m.lower()}-{i}") for i in range(2) for m in ("GET", "POST")]
    report("haproxy", f"{cause} (one request per client connection, http-reuse safe)",
           statuses=[a.status for a in answers],
           backend_saw=[e["request_on_connection"] for e in srv.requests()])
    assert [a.status for a in answers] == [200] * 4
    assert [e["request_on_connection"] for e in srv.requests()] == [1] * 4
    assert srv.events(type="fault") == []


@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_haproxy_fin_idle_close_is_noticed_before_reuse(faultserver, haproxy, cause):
    srv, port = start_backend(faultserver, cause)
    gw = haproxy(port, backend_extra="http-reuse always")  # the idle connection is a candidate
    assert send(gw.url, "GET", "/warm").status == 200
    gw.log_line("GET", "/warm")
    srv.wait_for(type="idle_close", timeout=5)
    srv.wait_for(type="peer_close", timeout=2)  # HAProxy closed its idle connection at once
    answer = send(gw.url, "GET", "/after-idle")
    line = gw.log_line("GET", "/after-idle")
    seen = requests_for(srv, "/after-idle")
    report("haproxy", f"{cause} (idle_close, then a request, http-reuse always)", status=answer.status,
           log=_haproxy_cell(gw, line), backend_saw=[(e["conn"], e["request_on_connection"]) for e in seen])
    assert answer.status == 200
    assert gw.summary(line) == ("200", "----", "0")
    assert [e["request_on_connection"] for e in seen] == [1]  # a new connection
    assert srv.retries() == []


#: The client's view, then HAProxy's log line (status and termination state) or none
HAPROXY_RACE_FACES = (
    # HAProxy saw the FIN first and opened a new server connection
    r"200 \(3 bytes\), log 200 ----",
    # HAProxy sent the request into the closing connection: as for fin.yaml and fin-rst.yaml,
    # it closes the client connection without an answer and without a log line, so that the
    # client may retry
    r"RemoteDisconnected: Remote end closed connection without response, no log line",
)


def test_haproxy_keepalive_race_max_requests_1(faultserver, haproxy):
    """20 tries per method: a request through HAProxy, then one more on the same client
    connection as soon as it is answered. The server connection stays with the client's
    (`http-reuse safe`), so HAProxy sends the second request on it unless it has read the FIN."""
    for method in ("GET", "POST"):
        srv, port = start_backend_profile(faultserver, RACE)
        gw = haproxy(port)
        tries = race_tries(gw, method)
        # with one thread HAProxy writes its lines in turn: once a last request's line is
        # there, the line of every earlier stream that has one is too
        assert send(gw.url, "GET", "/logged").status == 200
        gw.log_line("GET", "/logged")
        log = gw.log().splitlines()
        outcomes, answered = [], []
        for path, answer in tries:
            lines = [line for line in log if f" {path} HTTP/1.1" in line]
            said = ", ".join("log {} {}".format(*gw.summary(line)[:2]) for line in lines) or "no log line"
            outcomes.append((path, f"{answer}, {said}"))
            if answer.status == 200:
                answered.append(path)
        check_race(srv, "haproxy", method, outcomes, HAPROXY_RACE_FACES, answered)


def test_haproxy_pool_exhaustion_queue_timeout_gives_503_sq(faultserver, haproxy):
    srv, port = start_backend(faultserver, "pool-exhaustion")
    gw = haproxy(port, maxconn=2, timeout_queue="500ms", timeout_server="5s")
    paths = [f"/pool-{i}" for i in range(6)]
    answers = send_concurrently(gw.url, paths)
    statuses = sorted(a.status for a in answers)
    terms = sorted(gw.fields(gw.log_line("GET", p))["term"] for p in paths)
    peak = next(iter(srv.listeners.values())).peak_connections
    report("haproxy", "pool-exhaustion (maxconn 2, timeout queue 500ms)", statuses=statuses,
           terms=terms, backend_peak_connections=peak,
           queued=[f"{a.took_s:.2f}s" for a in answers if a.status == 503])
    assert statuses == [200, 200, 503, 503, 503, 503]
    # sQ: a timeout (s) while waiting in the queue (Q)
    assert terms == ["----", "----", "sQ--", "sQ--", "sQ--", "sQ--"]
    assert all(0.4 <= a.took_s < 0.9 for a in answers if a.status == 503)
    assert peak == 2
    assert len(srv.requests()) == 2  # the queued ones never reached the backend


def test_haproxy_partial_body_passes_a_truncated_200_sd(faultserver, haproxy):
    _srv, port = start_backend(faultserver, "partial-body")
    gw = haproxy(port)
    answer = send(gw.url, "GET", "/partial")
    line = gw.log_line("GET", "/partial")
    report("haproxy", "partial (cut in the body)", client=str(answer), log=_haproxy_cell(gw, line))
    assert answer.status == 200
    assert isinstance(answer.error, http.client.IncompleteRead)
    assert 0 < len(answer.body) < BODY_BYTES
    # SD: the server (S) closed during the data phase (D)
    assert gw.summary(line) == ("200", "SD--", "0")



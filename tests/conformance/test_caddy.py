"""Caddy as a gateway: `reverse_proxy` to faultserver, with keep-alive to it, per fault.

Caddy (conftest.py) runs with a JSON config: admin off, no automatic HTTPS, logs as JSON at
level DEBUG; the reverse_proxy http transport has `dial_timeout 1s`,
`response_header_timeout 2s` and keep-alive. For each cause a test records the status the
client got, the `http.log.error` line's message (Caddy logs the error as `msg`), and the
`upstream roundtrip` debug line's `error` field.

Caddy proxies with Go's http.Transport, so Go's own rule decides what happens on a reused
connection that the backend closed: a GET is sent again on a new connection inside the same
round trip (the client gets 200, Caddy logs no error, faultserver sees the retry), a POST
fails with 502 and `EOF` (FIN) or `connection reset by peer` (RST). Caddy's own retries
(`lb_try_duration`) are off by default.
"""

from __future__ import annotations

import dataclasses
import http.client
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.conformance._probes import RACE, RACE_TRIES, check_race, normalize, profile_for, report

pytestmark = pytest.mark.gateway

CLIENT = "Caddy"


@dataclasses.dataclass
class Answer:
    status: int | None = None
    error: str | None = None
    took_s: float = 0.0

    @property
    def cell(self) -> str:
        return str(self.status) if self.error is None else self.error


def send(url: str, method: str, path: str, timeout: float = 10.0) -> Answer:
    """One request on a new client connection; a broken answer is kept, not raised."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    answer = Answer()
    start = time.monotonic()
    try:
        conn.request(method, path, body=b"order=1" if method == "POST" else None)
        response = conn.getresponse()
        response.read()
        answer.status = response.status
    except (http.client.HTTPException, OSError) as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
    finally:
        answer.took_s = time.monotonic() - start
        conn.close()
    return answer


@dataclasses.dataclass(frozen=True)
class Row:
    """Requests sent through Caddy one after another (each waits for the previous one's
    access line, so that its upstream connection is idle again), and what Caddy did."""

    cause: str
    profile: str
    requests: tuple[tuple[str, str], ...]
    statuses: tuple[int, ...]
    #: each request's `http.log.error` message, "" where Caddy logged no error
    errors: tuple[str, ...]
    retried: tuple[str, ...] = ()
    took_s: tuple[float, float] | None = None  # bounds for the last request's time


RESET = "read tcp 127.0.0.1:PORT->127.0.0.1:PORT: read: connection reset by peer"

ROWS = {
    "refused": Row("refused", "refused", (("GET", "/refused"),), (502,),
                   ("dial tcp 127.0.0.1:PORT: connect: connection refused",)),
    "connect-timeout": Row("connect-timeout (dial_timeout 1s)", "connect-timeout", (("GET", "/stall"),),
                           (502,), ("dial tcp 127.0.0.1:PORT: i/o timeout",), took_s=(0.9, 5)),
    "fin-get": Row("fin (GET on a reused upstream connection)", "fin",
                   (("GET", "/warm"), ("GET", "/fin-get")), (200, 200), ("", ""), retried=("/fin-get",)),
    "fin-post": Row("fin (POST on a reused upstream connection)", "fin",
                    (("POST", "/warm"), ("POST", "/fin-post")), (200, 502), ("", "EOF")),
    "fin-rst-get": Row("fin-rst (GET on a reused upstream connection)", "fin-rst",
                       (("GET", "/warm"), ("GET", "/rst-get")), (200, 200), ("", ""), retried=("/rst-get",)),
    "fin-rst-post": Row("fin-rst (POST on a reused upstream connection)", "fin-rst",
                        (("POST", "/warm"), ("POST", "/rst-post")), (200, 502), ("", RESET)),
    "reset": Row("reset", "reset", (("GET", "/reset"),), (502,), (RESET,)),
    "hang": Row("hang (response_header_timeout 2s)", "hang", (("GET", "/hang"),), (504,),
                ("net/http: timeout awaiting response headers",), took_s=(1.9, 6)),
    "partial-headers": Row("partial (cut in the headers)", "partial-headers", (("GET", "/partial"),), (502,),
                           ('net/http: HTTP/1.x transport connection broken: malformed MIME header: '
                            'missing colon: "dat"',)),
}


def run_row(faultserver: Any, caddy: Callable[..., Any], row: Row) -> dict[str, Any]:
    srv = faultserver(profile_for(row.profile))
    gw = caddy(srv.listeners["backend"].port)
    answers, errors, roundtrips = [], [], []
    for method, path in row.requests:
        answers.append(send(gw.url, method, path))
        gw.wait_access(path)  # written when Caddy is done: the upstream connection is idle again
        errors.append("; ".join(normalize(line["msg"]) for line in gw.log_lines("http.log.error", path)))
        roundtrips.append([normalize(line.get("error", f"status {line.get('status')}"))
                           for line in gw.log_lines("http.handlers.reverse_proxy", path)
                           if line.get("msg") == "upstream roundtrip"])
    return {"answers": answers, "errors": errors, "roundtrips": roundtrips,
            "retried": [e["path"] for e in srv.retries()],
            "backend_saw": [(e["path"], e["request_on_connection"]) for e in srv.requests()]}


def in_threads(work: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each callable in its own thread; their results (or the first exception)."""
    results: dict[str, Any] = {}

    def one(key: str) -> None:
        try:
            results[key] = work[key]()
        except BaseException as exc:  # raised in the test below
            results[key] = exc

    threads = [threading.Thread(target=one, args=(key,)) for key in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for key in work:
        if isinstance(results.get(key), BaseException):
            raise results[key]
        assert key in results, f"{key}: did not finish"
    return results


def test_caddy_versions(caddy_version):
    report(CLIENT, "versions", caddy=caddy_version)


def test_caddy_each_cause_gives_its_status_and_error_log(faultserver, caddy):
    """Every row with its own faultserver and Caddy, all at once."""
    results = in_threads(
        {key: (lambda row=row: run_row(faultserver, caddy, row)) for key, row in ROWS.items()}
    )
    got, want = {}, {}
    for key, row in ROWS.items():
        r = results[key]
        statuses = tuple(a.status for a in r["answers"])
        report(CLIENT, row.cause, status=list(statuses), error_log=r["errors"],
               roundtrip_error=r["roundtrips"], retried=r["retried"] or "no", backend_saw=r["backend_saw"],
               took=f"{r['answers'][-1].took_s:.2f}s")
        got[key] = (statuses, tuple(r["errors"]), tuple(r["retried"]))
        want[key] = (row.statuses, row.errors, row.retried)
    assert got == want
    for key, row in ROWS.items():
        if row.took_s is not None:
            low, high = row.took_s
            assert low <= results[key]["answers"][-1].took_s < high, key


def test_caddy_pool_exhaustion_with_max_conns_per_host_queues(faultserver, caddy):
    """6 requests at once, `max_conns_per_host 2`, 1 s answers: no error, they wait in turn."""
    srv = faultserver(profile_for("pool-exhaustion"))
    gw = caddy(srv.listeners["backend"].port, max_conns_per_host=2)
    answers = in_threads({f"/pool-{i}": (lambda i=i: send(gw.url, "GET", f"/pool-{i}")) for i in range(6)})
    took = sorted(a.took_s for a in answers.values())
    peak = srv.listeners["backend"].peak_connections
    report(CLIENT, "pool-exhaustion (max_conns_per_host 2, 6 at once)",
           statuses=sorted(a.cell for a in answers.values()), took="/".join(f"{t:.2f}" for t in took) + " s",
           backend_peak_connections=peak, error_log=gw.log_lines("http.log.error", "/pool-0") or "(none)")
    assert [a.cell for a in answers.values()] == ["200"] * 6
    assert peak == 2
    # Go's Transport has no timeout for the wait for a connection: three waves of 1 s
    assert took[-1] >= 2.9


#: Go's rule through Caddy: a GET on a closed connection is sent again (200); a POST meets
#: the FIN (502 EOF), the RST, or a socket that Go's read loop has closed already.
RACE_FACES = {
    "GET": ("200",),
    "POST": ("200", "502 EOF", re.escape(f"502 {RESET}"),
             r"502 (readfrom|write) tcp .*: use of closed network connection"),
}


def test_caddy_keepalive_race_max_requests_1(faultserver, caddy):
    """20 tries per method: a request through Caddy, then one more as soon as it is answered."""

    def race(method: str) -> Counter[str]:
        srv = faultserver(profile_for(RACE))
        gw = caddy(srv.listeners["backend"].port)
        counts: Counter[str] = Counter()
        for i in range(RACE_TRIES):
            send(gw.url, method, f"/w-{i}")
            answer = send(gw.url, method, f"/r-{i}")
            if answer.status == 502:
                gw.wait_access(f"/r-{i}")
                said = "; ".join(normalize(line["msg"]) for line in gw.log_lines("http.log.error", f"/r-{i}"))
                counts[f"502 {said}"] += 1
            else:
                counts[answer.cell] += 1
        return counts

    results = in_threads({method: (lambda method=method: race(method)) for method in ("GET", "POST")})
    for method, counts in results.items():
        check_race(CLIENT, method, counts, RACE_FACES[method])

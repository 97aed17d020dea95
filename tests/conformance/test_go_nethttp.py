"""Go net/http: what a Go service (and every Go gateway: Caddy, Traefik) reports per fault.

clients/probe.go, built once per session: an http.Transport with keep-alive,
MaxConnsPerHost 2, a 1 s dial timeout and ResponseHeaderTimeout 2 s. Each cell is the
error's text as Go prints it (`err.Error()`, a *url.Error around the cause), ports as PORT.

Go resends a request by itself when a reused connection dies before any byte of the answer,
if the request can be replayed: a GET (no body) is sent again on a new connection and
succeeds, faultserver sees it twice (`srv.retries()`); a POST is not, and fails with `EOF`
(FIN) or `connection reset by peer` (RST). Go has no timeout for the wait for a pooled
connection: the request's context ends it, with `context deadline exceeded`.
"""

from __future__ import annotations

import re

from tests.conformance._probes import (
    Observed,
    Row,
    check_race,
    check_rows,
    report,
    run_race,
    run_rows,
)

CLIENT = "Go net/http"


def url_error(method: str, path: str, cause: str) -> str:
    return f'*url.Error: {method} "http://127.0.0.1:PORT{path}": {cause}'


RESET_BY_PEER = "read tcp 127.0.0.1:PORT->127.0.0.1:PORT: read: connection reset by peer"

ROWS = {
    "refused": Row("refused", "refused", "get",
                   (url_error("Get", "/get", "dial tcp 127.0.0.1:PORT: connect: connection refused"),)),
    "connect-timeout": Row("connect-timeout (dial timeout 1 s)", "connect-timeout", "get",
                           (url_error("Get", "/get", "dial tcp 127.0.0.1:PORT: i/o timeout"),),
                           failed_in_s=(0.9, 5)),
    # the GET is sent again on a new connection: both 200, and faultserver saw /2 twice
    "fin-get": Row("fin (GET, 2nd request on a kept-alive connection)", "fin", "get2", ("200", "200"),
                   retried=("/2",)),
    "fin-post": Row("fin (POST, 2nd request on a kept-alive connection)", "fin", "post2",
                    ("200", url_error("Post", "/2", "EOF"))),
    "fin-rst-get": Row("fin-rst (GET, 2nd request on a kept-alive connection)", "fin-rst", "get2",
                       ("200", "200"), retried=("/2",)),
    "fin-rst-post": Row("fin-rst (POST, 2nd request on a kept-alive connection)", "fin-rst", "post2",
                        ("200", url_error("Post", "/2", RESET_BY_PEER))),
    # /pool-0 and /pool-1 hold both connections for 1 s; the next four, with a 500 ms
    # deadline, wait for a connection until their context ends
    "pool-exhaustion": Row(
        "pool-exhaustion (MaxConnsPerHost 2; 2 requests, then 4 with a 500 ms deadline)",
        "pool-exhaustion", "burst6",
        ("200", "200", *(url_error("Get", f"/pool-{i}", "context deadline exceeded") for i in range(2, 6))),
        failed_in_s=(0.45, 3),
    ),
    "reset": Row("reset", "reset", "get", (url_error("Get", "/get", RESET_BY_PEER),)),
    "hang": Row("hang (ResponseHeaderTimeout 2 s)", "hang", "get",
                (url_error("Get", "/get", "net/http: timeout awaiting response headers"),),
                failed_in_s=(1.9, 6)),
    # "HTTP/1.1 200 OK\r\ndat", then FIN
    "partial-headers": Row(
        "partial (cut in the headers)", "partial-headers", "get",
        (url_error("Get", "/get", 'net/http: HTTP/1.x transport connection broken: malformed MIME header: '
                   'missing colon: "dat"'),),
    ),
    # Do() returned the 200; reading the body fails with a bare io.ErrUnexpectedEOF
    "partial-body": Row("partial (cut in the body)", "partial-body", "get",
                        ("*errors.errorString: unexpected EOF",)),
}


def chains(seen: Observed) -> dict[str, object]:
    """The types errors.Unwrap walks through, and whether the request had a connection."""
    failed = [line for line in seen.lines if "error" in line]
    if not failed:
        return {}
    return {"chain": sorted({" <- ".join(line["chain"]) for line in failed}),
            "got_conn": sorted({line["got_conn"] for line in failed})}


def test_go_versions(go_probe):
    report(CLIENT, "versions", go=go_probe.version)


def test_go_each_profile_gives_its_error(faultserver, go_probe):
    """All rows in one process, each with its own Transport and faultserver, at once."""
    observed = run_rows(faultserver, go_probe, ROWS)
    check_rows(CLIENT, ROWS, observed, extra=chains)
    # the four that failed never had a connection: it was the wait for the pool that ended
    assert [line["got_conn"] for line in observed["pool-exhaustion"].lines] == [True] * 2 + [False] * 4


#: A GET on a connection the server has closed is sent again on a new one (no error); a POST
#: meets the FIN (EOF) or, when its bytes reach the closed socket, the RST.
RACE_FACES = {
    "GET": ("200",),
    "POST": ("200", re.escape(url_error("Post", "/r-N", "")) + r"(EOF|.*connection reset by peer|"
             r".*use of closed network connection|http: server closed idle connection)"),
}


def test_go_keepalive_race_max_requests_1(faultserver, go_probe):
    """20 tries per method: a request, then one sent as soon as the first is answered."""
    for method, counts in run_race(faultserver, go_probe).items():
        check_race(CLIENT, method, counts, RACE_FACES[method])

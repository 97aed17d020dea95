"""Node: the built-in fetch (undici) and node:http with a keep-alive Agent, per fault.

clients/probe.mjs (built-ins only). fetch: undici's Agent with 2 connections per origin,
connect timeout 1 s, headers timeout 2 s; every failure is `TypeError: fetch failed` with
the real error as its `cause` (the cell shows `... <- CAUSE`). node:http: Agent({keepAlive:
true, maxSockets: 2}), `timeout: 2000` on each request and `req.destroy()` when it fires
(node:http has no connect timeout, so that one timer ends a stalled connect too, with the
same `socket hang up` as a hang).

Neither client resends a request on a new connection by itself. Both have no timeout for
the wait for a pooled connection: the pool row aborts the waiting requests with
AbortSignal.timeout(500). undici rejects them at 500 ms; node:http only when the Agent
hands the request a socket, when a connection comes back (about 1 s): HttpAsyncClient's
lease quirk again.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from tests.conformance._probes import (
    Row,
    check_race,
    check_rows,
    report,
    run_race,
    run_rows,
)

FETCH_FAILED = "TypeError: fetch failed <- "
ECONNRESET = "Error: read ECONNRESET (ECONNRESET)"
HANG_UP = "Error: socket hang up (ECONNRESET)"
KEPT_ALIVE = "2nd request on a kept-alive connection"

FETCH = {
    "refused": Row("refused", "refused", "get",
                   (FETCH_FAILED + "Error: connect ECONNREFUSED 127.0.0.1:PORT (ECONNREFUSED)",)),
    # undici's timers tick every 500 ms: the 1 s connect timeout fires after 1 to 1.5 s
    "connect-timeout": Row(
        "connect-timeout (connect timeout 1 s)", "connect-timeout", "get",
        (FETCH_FAILED + "ConnectTimeoutError: Connect Timeout Error (attempted address: 127.0.0.1:PORT, "
         "timeout: 1000ms) (UND_ERR_CONNECT_TIMEOUT)",),
        failed_in_s=(0.9, 5),
    ),
    "fin-get": Row(f"fin (GET, {KEPT_ALIVE})", "fin", "get2",
                   ("200", FETCH_FAILED + "SocketError: other side closed (UND_ERR_SOCKET)")),
    "fin-post": Row(f"fin (POST, {KEPT_ALIVE})", "fin", "post2",
                    ("200", FETCH_FAILED + "SocketError: other side closed (UND_ERR_SOCKET)")),
    "fin-rst-get": Row(f"fin-rst (GET, {KEPT_ALIVE})", "fin-rst", "get2", ("200", FETCH_FAILED + ECONNRESET)),
    "fin-rst-post": Row(f"fin-rst (POST, {KEPT_ALIVE})", "fin-rst", "post2",
                        ("200", FETCH_FAILED + ECONNRESET)),
    "pool-exhaustion": Row(
        "pool-exhaustion (connections 2; 2 requests, then 4 with AbortSignal.timeout(500))",
        "pool-exhaustion", "burst6",
        ("200", "200", *["TimeoutError: The operation was aborted due to timeout (23)"] * 4),
        failed_in_s=(0.45, 3),
    ),
    "reset": Row("reset", "reset", "get", (FETCH_FAILED + ECONNRESET,)),
    "hang": Row("hang (headers timeout 2 s)", "hang", "get",
                (FETCH_FAILED + "HeadersTimeoutError: Headers Timeout Error (UND_ERR_HEADERS_TIMEOUT)",),
                failed_in_s=(1.9, 6)),
    "partial-headers": Row("partial (cut in the headers)", "partial-headers", "get",
                           (FETCH_FAILED + "SocketError: other side closed (UND_ERR_SOCKET)",)),
    # fetch() resolved with the 200; reading the body rejects
    "partial-body": Row("partial (cut in the body)", "partial-body", "get",
                        ("TypeError: terminated <- SocketError: other side closed (UND_ERR_SOCKET)",)),
}

HTTP = {
    "refused": Row("refused", "refused", "get",
                   ("Error: connect ECONNREFUSED 127.0.0.1:PORT (ECONNREFUSED)",)),
    "connect-timeout": Row("connect-timeout (no connect timeout; socket timeout 2 s, then destroy())",
                           "connect-timeout", "get", (HANG_UP,), failed_in_s=(1.9, 6)),
    "fin-get": Row(f"fin (GET, {KEPT_ALIVE})", "fin", "get2", ("200", HANG_UP)),
    "fin-post": Row(f"fin (POST, {KEPT_ALIVE})", "fin", "post2", ("200", HANG_UP)),
    "fin-rst-get": Row(f"fin-rst (GET, {KEPT_ALIVE})", "fin-rst", "get2", ("200", ECONNRESET)),
    "fin-rst-post": Row(f"fin-rst (POST, {KEPT_ALIVE})", "fin-rst", "post2", ("200", ECONNRESET)),
    "pool-exhaustion": Row(
        "pool-exhaustion (maxSockets 2; 2 requests, then 4 with AbortSignal.timeout(500))",
        "pool-exhaustion", "burst6",
        ("200", "200", *["AbortError: The operation was aborted (ABORT_ERR) <- "
                         "TimeoutError: The operation was aborted due to timeout (23)"] * 4),
        failed_in_s=(0.45, 5),
    ),
    "reset": Row("reset", "reset", "get", (ECONNRESET,)),
    "hang": Row("hang (socket timeout 2 s, then destroy())", "hang", "get", (HANG_UP,),
                failed_in_s=(1.9, 6)),
    "partial-headers": Row("partial (cut in the headers)", "partial-headers", "get", (HANG_UP,)),
    # the response's `error` event, after its headers came
    "partial-body": Row("partial (cut in the body)", "partial-body", "get", ("Error: aborted (ECONNRESET)",)),
}

ROWS = {"node-fetch": FETCH, "node-http": HTTP}


def test_node_versions(node_fetch):
    report("node", "versions", node=node_fetch.version)


def test_node_each_profile_gives_its_error(faultserver, node_fetch, node_http):
    """fetch and node:http at once, every row with its own faultserver."""
    probes = {"node-fetch": node_fetch, "node-http": node_http}
    with ThreadPoolExecutor(len(probes)) as pool:
        futures = {name: pool.submit(run_rows, faultserver, probe, ROWS[name])
                   for name, probe in probes.items()}
        observed = {name: future.result() for name, future in futures.items()}
    failures = []
    for name in probes:
        try:
            check_rows(name, ROWS[name], observed[name])
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)
    # node:http rejects an aborted request only when the Agent hands it a socket: after the
    # first answer, not at 500 ms
    lines = observed["node-http"]["pool-exhaustion"].lines
    first_answer = min(line["at"] for line in lines if "error" not in line)
    assert all(line["at"] >= first_answer for line in lines if "error" in line)


#: node:http sends the next request at once on the socket the Agent got back; fetch on the
#: next turn of the event loop (see probe.mjs): either meets the FIN, or opens a new connection.
OS_RESET = r"Error: (read|write) (ECONNRESET|EPIPE) \((ECONNRESET|EPIPE)\)"
RACE_FACES = {
    "node-fetch": ("200", re.escape(FETCH_FAILED) + r"SocketError: other side closed \(UND_ERR_SOCKET\)",
                   re.escape(FETCH_FAILED) + OS_RESET),
    "node-http": ("200", re.escape(HANG_UP), OS_RESET),
}


def test_node_keepalive_race_max_requests_1(faultserver, node_fetch, node_http):
    """20 tries per client and method: a request, then one on the same connection at once."""
    probes = {"node-fetch": node_fetch, "node-http": node_http}
    with ThreadPoolExecutor(len(probes)) as pool:
        futures = {name: pool.submit(run_race, faultserver, probe) for name, probe in probes.items()}
        results = {name: future.result() for name, future in futures.items()}
    for name, by_method in results.items():
        for method, counts in by_method.items():
            check_race(name, method, counts, RACE_FACES[name])

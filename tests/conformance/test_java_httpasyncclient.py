"""Apache HttpAsyncClient 4.1 (HttpCore NIO 4.4): the client the D504CO gateway uses itself.

The D504CO guide's four messages, "Connection refused", "Timeout connecting to [HOST:PORT]",
"Connection is closed" and "Connection lease request time out", are this library's own
exception messages. Against the shipped profiles, clients/D504Probe.java (compiled by the
session against Debian's jars) prints each of them, word for word; this module pins them.

Client settings (the gateway's): a pool of 2 connections per route, connectionRequestTimeout
500 ms (the lease queue), connectTimeout 1 s, socketTimeout 2 s. HttpAsyncClient 4.1 never
resends a request by itself.

The lease timeout's quirk: the pool checks lease deadlines only when a connection is
released, so with a backend that answers after 1 s the 500 ms lease timeout fires at about
1 s, when the first connection comes back, not at 0.5 s (a real slow backend does the same).
"""

from __future__ import annotations

import re

from tests.conformance._probes import (
    Row,
    check_race,
    check_rows,
    report,
    run_race,
    run_rows,
)

CLOSED = "org.apache.http.ConnectionClosedException: Connection is closed"
RESET = "java.net.SocketException: Connection reset"
CLIENT = "HttpAsyncClient 4.1"
LEASE = "java.util.concurrent.TimeoutException: Connection lease request time out"

ROWS = {
    "refused": Row("refused", "refused", "get", ("java.net.ConnectException: Connection refused",)),
    # the IOReactor checks connect deadlines once per select interval (1 s by default): the
    # 1 s connect timeout fires after 1 to 2 s
    "connect-timeout": Row(
        "connect-timeout", "connect-timeout", "get",
        ("java.net.ConnectException: Timeout connecting to [/127.0.0.1:PORT]",),
        failed_in_s=(0.9, 5),
    ),
    "fin-get": Row("fin (GET, 2nd request on a kept-alive connection)", "fin", "get2", ("200", CLOSED)),
    "fin-post": Row("fin (POST, 2nd request on a kept-alive connection)", "fin", "post2", ("200", CLOSED)),
    "fin-rst-get": Row("fin-rst (GET, 2nd request on a kept-alive connection)", "fin-rst", "get2",
                       ("200", RESET)),
    "fin-rst-post": Row("fin-rst (POST, 2nd request on a kept-alive connection)", "fin-rst", "post2",
                        ("200", RESET)),
    # 6 requests at once, a pool of 2, 1 s answers: 2 answered, 4 lease timeouts, which fire
    # when the first connection is released (about 1 s), not after the 500 ms asked for
    "pool-exhaustion": Row(
        "pool-exhaustion (6 at once, pool 2, lease timeout 500 ms)", "pool-exhaustion", "burst6",
        ("200",) * 2 + (LEASE,) * 4, failed_in_s=(0.9, 5), unordered=True,
    ),
    "reset": Row("reset", "reset", "get", (RESET,)),
    # seeded log-normal delays (median 200 ms): the first ten are all under the 2 s socket timeout
    "slow": Row("slow (10 GETs in turn, socketTimeout 2 s)", "slow", "seq10", ("200",) * 10),
    "hang": Row(
        "hang (socketTimeout 2 s)", "hang", "get",
        ("java.net.SocketTimeoutException: 2,000 milliseconds timeout on connection "
         "http-outgoing-N [ACTIVE]",),
        failed_in_s=(1.9, 6),
    ),
    # "HTTP/1.1 200 OK\r\ndat", then FIN: the library names the half header line
    "partial-headers": Row("partial (cut in the headers)", "partial-headers", "get",
                           ("org.apache.http.ProtocolException: Invalid header: dat",)),
    "partial-body": Row(
        "partial (cut in the body)", "partial-body", "get",
        ("org.apache.http.ConnectionClosedException: Premature end of Content-Length delimited message "
         "body (expected: 1,000; received: 222)",),
    ),
}


def test_java_versions(java_probe):
    report(CLIENT, "versions", java=java_probe.version)


def test_java_each_profile_gives_the_d504co_message(faultserver, java_probe):
    """All rows in one JVM, each with its own client, pool and faultserver, at once."""
    observed = run_rows(faultserver, java_probe, ROWS)
    check_rows(CLIENT, ROWS, observed)


#: What a request sent at once on a connection that the server closes after one answer may
#: get: an answer on a new connection (the FIN was seen first), or the FIN or RST flavour.
RACE_FACES = (
    "200",
    # "Connection is closed" (HttpAsyncRequestExecutor) when the FIN comes after the request
    # went out; "Connection closed" (AbstractClientExchangeHandler.connectionAllocated) when
    # the leased connection is found stale, its FIN read between the lease and the write
    r"org\.apache\.http\.ConnectionClosedException: Connection (is )?closed( unexpectedly)?",
    re.escape(RESET),
    r"java\.io\.IOException: (Connection reset by peer|Broken pipe)",
)


def test_java_keepalive_race_max_requests_1(faultserver, java_probe):
    """20 tries per method: a request, then one sent as soon as the first is answered."""
    for method, counts in run_race(faultserver, java_probe).items():
        check_race(CLIENT, method, counts, RACE_FACES)

"""The conformance matrix, client half: what curl, requests, httpx and aiohttp report.

For each D504CO cause (and reset, partial, hang) every client talks to faultserver
directly. A test asserts the exact outcome: curl's exit code and message, or the
chain of exception types down to the OS error (`requests.ConnectionError <-
urllib3.MaxRetryError <- ... <- ConnectionRefusedError(111)`), and which requests the
client sent again, as faultserver saw it (`srv.retries()`: the same request on a new
connection). Each prints a `MATRIX |` line; the README's table is copied from them
(`pytest -s tests/clients`). The chains are those of the versions installed in the
test environment (`MATRIX | versions` prints them).

The keep-alive race has two flavours, each a shipped profile: fin.yaml (the second request
on a kept-alive connection meets a FIN) and fin-rst.yaml (an RST); their cells carry the
exception's message too (`exc_cell`). The race itself, `keepalive: {max_requests: 1}` with a
client that reuses its connection at once, has no single outcome: its test runs 20 tries,
prints how often each outcome came, and asserts only that each is one of the race's faces.

Client timeouts: curl `--connect-timeout 1 -m 1.5`; requests `timeout=(1, 1)`; httpx
`Timeout(1.0)`; aiohttp `ClientTimeout(total=5, sock_connect=1, sock_read=1)`.
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import requests.adapters
import urllib3

from faultserver.testing import load_source
from tests.support.profiles import BODY_BYTES, TEXT_OK, matrix_profile, one_listener

CURL = shutil.which("curl")




# --- what a client reports, as one comparable string -------------------------------------


def _exc_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        errno = getattr(exc, "errno", None)
        return f"{cls.__name__}({errno})" if errno else cls.__name__
    package = cls.__module__.split(".")[0]
    if cls.__module__ == "http.client":
        package = "http.client"
    return f"{package}.{cls.__name__}"


def _next_exc(exc: BaseException) -> BaseException | None:
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return exc.reason
    if exc.__cause__ is not None:
        return exc.__cause__
    for arg in exc.args:
        if isinstance(arg, BaseException):
            return arg
    context = exc.__context__
    if isinstance(context, asyncio.CancelledError):
        return None
    return context


def exc_chain(exc: BaseException) -> str:
    """`requests.ConnectionError <- urllib3.MaxRetryError <- ... <- ConnectionRefusedError(111)`."""
    names: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(names) < 6:
        seen.add(id(current))
        names.append(_exc_name(current))
        if type(current).__module__ == "builtins":
            break  # the OS's word: the end of the chain
        current = _next_exc(current)
    return " <- ".join(names)


#: An address with a port (the server's, in a URL) varies from run to run.
_ADDRESS = re.compile(r"127\.0\.0\.1:\d+")


def exc_cell(exc: BaseException) -> str:
    """The chain and the message the program would print (`str(exc)`), ports as PORT:
    `httpx.ReadError <- httpcore.ReadError <- ConnectionResetError(104): [Errno 104] ...`."""
    return f"{exc_chain(exc)}: {_ADDRESS.sub('127.0.0.1:PORT', str(exc))}"


def _answer(status: int, body: bytes) -> str:
    return f"{status} ({len(body)} bytes)"


def _curl_message(stderr: str) -> str:
    """curl's error line and its retry notice (`-v` shows it), with the failure that made it
    retry (`Recv failure: Connection reset by peer`, an RST), without the varying numbers."""
    verbose = stderr.splitlines()
    lines = []
    for line, after in zip(verbose, [*verbose[1:], ""], strict=True):
        retried = after.startswith("* Connection died")
        if line.startswith(("curl: (", "* Connection died")) or (
            retried and line.startswith(("* Recv failure", "* Send failure"))
        ):
            lines.append(line.removeprefix("* "))
    text = "; ".join(lines)
    text = re.sub(r"port \d+", "port PORT", text)
    return re.sub(r"after \d+ ms", "after N ms", text)


# --- the clients ----------------------------------------------------------------------------

#: `run(base_url, method, paths) -> [one string per request]`; a failure ends the sequence
#: (as a program that gets an exception would), and the requests share one keep-alive connection.
#: The Python clients take `describe=`, how a failure becomes its cell (`exc_chain`, `exc_cell`).
Runner = Callable[..., list[str]]

#: How a failure becomes a cell.
Describe = Callable[[BaseException], str]


def run_curl(
    base: str, method: str, paths: list[str], extra: tuple[str, ...] = (), describe: Describe | None = None
) -> list[str]:
    """One curl invocation for all paths (so it reuses its connection): exit code and codes.
    (`describe` is unused: curl's cell holds its own message.)"""
    args = [CURL or "curl", "-sSv", "--connect-timeout", "1", "-m", "1.5", *extra]
    if method == "POST":
        args += ["-d", "order=1"]
    for path in paths:
        args += ["-o", "/dev/null", "-w", "%{http_code}\\n", base + path]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    codes = " ".join(proc.stdout.split())
    message = _curl_message(proc.stderr)
    return [f"exit {proc.returncode}, codes {codes}" + (f", {message}" if message else "")]


def _one_by_one(
    paths: list[str],
    send: Callable[[str], tuple[int, bytes]],
    errors: type[Exception],
    describe: Describe = exc_chain,
) -> list[str]:
    """`send(path)` for each path in turn, a cell each; a failure is the last cell."""
    out = []
    for path in paths:
        try:
            status, body = send(path)
        except errors as exc:
            out.append(describe(exc))
            break
        out.append(_answer(status, body))
    return out


def run_requests(base: str, method: str, paths: list[str], describe: Describe = exc_chain) -> list[str]:
    body = b"order=1" if method == "POST" else None
    with requests.Session() as session:

        def send(path: str) -> tuple[int, bytes]:
            r = session.request(method, base + path, data=body, timeout=(1, 1))
            return r.status_code, r.content

        return _one_by_one(paths, send, requests.RequestException, describe)


#: httpx builds an SSL context for every client unless given one (about 50 ms each); the
#: matrices speak plain HTTP, so one context serves every client (the race starts 40)
_SSL_CONTEXT = ssl.create_default_context()


def run_httpx(base: str, method: str, paths: list[str], describe: Describe = exc_chain) -> list[str]:
    body = b"order=1" if method == "POST" else None
    with httpx.Client(timeout=httpx.Timeout(1.0), verify=_SSL_CONTEXT) as client:

        def send(path: str) -> tuple[int, bytes]:
            r = client.request(method, base + path, content=body)
            return r.status_code, r.content

        return _one_by_one(paths, send, httpx.HTTPError, describe)


def run_aiohttp(base: str, method: str, paths: list[str], describe: Describe = exc_chain) -> list[str]:
    async def main() -> list[str]:
        out = []
        timeout = aiohttp.ClientTimeout(total=5, sock_connect=1, sock_read=1)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for path in paths:
                try:
                    async with session.request(
                        method, base + path, data=b"order=1" if method == "POST" else None
                    ) as r:
                        out.append(_answer(r.status, await r.read()))
                except (TimeoutError, aiohttp.ClientError) as exc:
                    out.append(describe(exc))
                    break
        return out

    return asyncio.run(main())


RUNNERS: dict[str, Runner] = {
    "curl": run_curl,
    "requests": run_requests,
    "httpx": run_httpx,
    "aiohttp": run_aiohttp,
}
CLIENTS = list(RUNNERS)


def report(client: str, cause: str, **observed: Any) -> None:
    """Print the observed cell; the README's table is copied from these lines."""
    cells = " | ".join(f"{k}={v}" for k, v in observed.items())
    print(f"\nMATRIX | {client} | {cause} | {cells}")


def observe(
    faultserver: Any, client: str, cause: str, method: str, paths: list[str], describe: Describe = exc_chain
) -> tuple[list[str], list[str], Any]:
    if client == "curl" and CURL is None:
        pytest.skip("curl is not installed (apt-get install -y curl)")
    srv = faultserver(matrix_profile(cause))
    listener = next(iter(srv.listeners.values()))
    start = time.monotonic()
    got = RUNNERS[client](listener.url, method, paths, describe=describe)
    took = time.monotonic() - start
    # a request is logged as the server reads it, before any answer (or fault) the client
    # could have seen; this only gives the server thread its turn
    time.sleep(0.01)
    retried = [e["path"] for e in srv.retries()]
    report(client, f"{cause} {method}", got=got, retried=retried or "no", took=f"{took:.2f}s")
    return got, retried, took


CONNECT_CHAINS = {
    "refused": {
        "curl": [
            "exit 7, codes 000, curl: (7) Failed to connect to 127.0.0.1 port PORT after N ms: "
            "Couldn't connect to server"
        ],
        "requests": [
            "requests.ConnectionError <- urllib3.MaxRetryError <- urllib3.NewConnectionError "
            "<- ConnectionRefusedError(111)"
        ],
        "httpx": ["httpx.ConnectError <- httpcore.ConnectError <- ConnectionRefusedError(111)"],
        "aiohttp": ["aiohttp.ClientConnectorError <- ConnectionRefusedError(111)"],
    },
    "connect-timeout": {
        "curl": [
            "exit 28, codes 000, curl: (28) Failed to connect to 127.0.0.1 port PORT after N ms: "
            "Timeout was reached"
        ],
        "requests": [
            "requests.ConnectTimeout <- urllib3.MaxRetryError <- urllib3.ConnectTimeoutError <- TimeoutError"
        ],
        "httpx": ["httpx.ConnectTimeout <- httpcore.ConnectTimeout <- TimeoutError"],
        "aiohttp": ["aiohttp.ConnectionTimeoutError <- TimeoutError"],
    },
}


@pytest.mark.parametrize("client", CLIENTS)
def test_client_refused_fails_at_once(faultserver, client):
    got, retried, took = observe(faultserver, client, "refused", "GET", ["/1"])
    assert got == CONNECT_CHAINS["refused"][client]
    assert retried == []
    assert took < 2  # RST to the SYN: no waiting


@pytest.mark.parametrize("client", CLIENTS)
def test_client_connect_timeout_fails_after_the_connect_timeout(faultserver, client):
    got, retried, took = observe(faultserver, client, "connect-timeout", "GET", ["/1"])
    assert got == CONNECT_CHAINS["connect-timeout"][client]
    assert retried == []
    assert 0.9 <= took < 5  # every client's connect timeout is 1 s


OK = f"200 ({BODY_BYTES} bytes)"
OK_ECHO = re.compile(r"^200 \(\d+ bytes\)$")

#: curl's word for a reused connection that died before its answer; it resends the request
#: on a new connection, whatever its method (faultserver sees the retry)
CURL_RESENDS = "exit 0, codes 200 200, Connection died, retrying a fresh connect (retry count: 1)"
CURL_RESENDS_AFTER_RST = (
    "exit 0, codes 200 200, Recv failure: Connection reset by peer; "
    "Connection died, retrying a fresh connect (retry count: 1)"
)
REMOTE_DISCONNECTED = (
    "requests.ConnectionError <- urllib3.ProtocolError <- http.client.RemoteDisconnected: "
    "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))"
)
CONNECTION_RESET = (
    "requests.ConnectionError <- urllib3.ProtocolError <- ConnectionResetError(104): "
    "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
)
HTTPX_DISCONNECTED = (
    "httpx.RemoteProtocolError <- httpcore.RemoteProtocolError: "
    "Server disconnected without sending a response."
)
HTTPX_RESET = (
    "httpx.ReadError <- httpcore.ReadError <- ConnectionResetError(104): [Errno 104] Connection reset by peer"
)
AIOHTTP_DISCONNECTED = "aiohttp.ServerDisconnectedError: Server disconnected"
AIOHTTP_RESET = "aiohttp.ClientOSError <- ConnectionResetError(104): [Errno 104] Connection reset by peer"

#: The second request on a kept-alive connection meets a FIN (fin.yaml) or an RST
#: (fin-rst.yaml): (cells, paths faultserver saw again on a new connection).
ON_REUSE = {
    "fin": {
        ("curl", "GET"): ([CURL_RESENDS], ["/2"]),
        ("curl", "POST"): ([CURL_RESENDS], ["/2"]),
        ("requests", "GET"): (["OK", REMOTE_DISCONNECTED], []),
        ("requests", "POST"): (["OK", REMOTE_DISCONNECTED], []),
        ("httpx", "GET"): (["OK", HTTPX_DISCONNECTED], []),
        ("httpx", "POST"): (["OK", HTTPX_DISCONNECTED], []),
        # aiohttp resends an idempotent request once on a new connection
        ("aiohttp", "GET"): (["OK", "OK"], ["/2"]),
        ("aiohttp", "POST"): (["OK", AIOHTTP_DISCONNECTED], []),
    },
    "fin-rst": {
        ("curl", "GET"): ([CURL_RESENDS_AFTER_RST], ["/2"]),
        ("curl", "POST"): ([CURL_RESENDS_AFTER_RST], ["/2"]),
        ("requests", "GET"): (["OK", CONNECTION_RESET], []),
        ("requests", "POST"): (["OK", CONNECTION_RESET], []),
        ("httpx", "GET"): (["OK", HTTPX_RESET], []),
        ("httpx", "POST"): (["OK", HTTPX_RESET], []),
        ("aiohttp", "GET"): (["OK", "OK"], ["/2"]),
        ("aiohttp", "POST"): (["OK", AIOHTTP_RESET], []),
    },
}


def _normal(got: list[str]) -> list[str]:
    return ["OK" if OK_ECHO.match(g) else g for g in got]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_client_second_request_on_a_kept_alive_connection(faultserver, cause, client, method):
    """fin.yaml and fin-rst.yaml: the first request is answered, the second meets FIN or RST."""
    got, retried, _ = observe(faultserver, client, cause, method, ["/1", "/2"], describe=exc_cell)
    assert (_normal(got), retried) == ON_REUSE[cause][(client, method)]


def _idle_close_s(cause: str) -> float | None:
    keepalive = load_source(matrix_profile(cause)).listeners[0].keepalive
    return getattr(keepalive.idle_close, "seconds", None)


def _in_threads(jobs: dict[str, Callable[[], Any]], timeout: float = 30.0) -> dict[str, Any]:
    """Each job in a thread of its own, at once; its result, or the exception it raised."""
    results: dict[str, Any] = {}

    def one(key: str) -> None:
        try:
            results[key] = jobs[key]()
        except BaseException as exc:  # re-raised in the test below
            results[key] = exc

    threads = [threading.Thread(target=one, args=(key,)) for key in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert set(results) == set(jobs), f"jobs that did not finish: {set(jobs) - set(results)}"
    for value in results.values():
        if isinstance(value, BaseException):
            raise value
    return results


@pytest.mark.parametrize("cause", list(ON_REUSE))
def test_client_idle_close_is_noticed(faultserver, cause):
    """A connection the backend closed while idle (idle_close: a FIN, in both flavours) is
    not reused: no error. The four clients run at once, each against its own server."""
    idle = _idle_close_s(cause)
    if idle is None:
        pytest.skip(f"the {cause} profile's idle_close is not a fixed duration")
    clients = [c for c in CLIENTS if c != "curl" or CURL is not None]

    def one(client: str) -> tuple[list[str], list[tuple[int, int]], list[Any]]:
        srv = faultserver(matrix_profile(cause))
        url = next(iter(srv.listeners.values())).url
        if client == "curl":
            # one invocation; `--rate N/m` starts the second transfer 60/N s after the first,
            # at least half a second after the connection went idle-closed
            per_minute = int(60 // (idle + 0.5))
            got = run_curl(url, "GET", ["/1", "/2"], extra=("--rate", f"{per_minute}/m"))
        else:
            got = _with_pause(client, url, lambda: srv.wait_for(type="idle_close", timeout=5))
        srv.wait_for(type="response", path="/2", timeout=2)
        seen = [(e["conn"], e["request_on_connection"]) for e in srv.requests()]
        report(client, f"{cause} (idle_close, then a request)", got=got, backend_saw=seen,
               retried=[e["path"] for e in srv.retries()] or "no")
        return got, seen, [srv.events(type="idle_close"), srv.retries()]

    results = _in_threads({client: (lambda client=client: one(client)) for client in clients})
    for client, (got, seen, (idle_closes, retries)) in results.items():
        assert idle_closes, client
        assert _normal(got) == (["exit 0, codes 200 200"] if client == "curl" else ["OK", "OK"]), client
        assert [n for _, n in seen] == [1, 1], client  # the second request on a new connection, once
        assert retries == [], client
    if CURL is None:
        pytest.skip("curl is not installed (apt-get install -y curl); the other clients passed")


def _with_pause(client: str, url: str, pause: Callable[[], Any]) -> list[str]:
    """GET /1, pause(), GET /2 with one client (one pool)."""
    out: list[str] = []
    if client == "requests":
        with requests.Session() as s:
            out.append(_answer((r := s.get(url + "/1", timeout=(1, 1))).status_code, r.content))
            pause()
            time.sleep(0.1)  # the FIN reaches the client's socket
            try:
                r = s.get(url + "/2", timeout=(1, 1))
                out.append(_answer(r.status_code, r.content))
            except requests.RequestException as exc:
                out.append(exc_chain(exc))
    elif client == "httpx":
        with httpx.Client(timeout=httpx.Timeout(1.0)) as c:
            out.append(_answer((r := c.get(url + "/1")).status_code, r.content))
            pause()
            time.sleep(0.1)
            try:
                r = c.get(url + "/2")
                out.append(_answer(r.status_code, r.content))
            except httpx.HTTPError as exc:
                out.append(exc_chain(exc))
    else:
        async def main() -> None:
            timeout = aiohttp.ClientTimeout(total=5, sock_connect=1, sock_read=1)
            async with aiohttp.ClientSession(timeout=timeout) as s:
                async with s.get(url + "/1") as r:
                    out.append(_answer(r.status, await r.read()))
                await asyncio.to_thread(pause)
                await asyncio.sleep(0.1)
                try:
                    async with s.get(url + "/2") as r:
                        out.append(_answer(r.status, await r.read()))
                except aiohttp.ClientError as exc:
                    out.append(exc_chain(exc))

        asyncio.run(main())
    return out


#: Requests after the first fault are not sent: each list is what one request got.
AFTER_A_REQUEST = {
    "reset": {
        "curl": (["exit 56, codes 000, curl: (56) Recv failure: Connection reset by peer"], []),
        "requests": (["requests.ConnectionError <- urllib3.ProtocolError <- ConnectionResetError(104)"], []),
        "httpx": (["httpx.ReadError <- httpcore.ReadError <- ConnectionResetError(104)"], []),
        # aiohttp sends an idempotent request once more after a connection error
        "aiohttp": (["aiohttp.ClientOSError <- ConnectionResetError(104)"], ["/1"]),
    },
    "partial-headers": {
        # "HTTP/1.1 200 OK\r\ndat" then FIN: curl and http.client take it as a 200 with no body
        "curl": (["exit 0, codes 200"], []),
        "requests": (["200 (0 bytes)"], []),
        "httpx": (["httpx.RemoteProtocolError <- httpcore.RemoteProtocolError"], []),
        "aiohttp": (["aiohttp.ServerDisconnectedError"], ["/1"]),
    },
    "partial-body": {
        "curl": (["exit 18, codes 200, curl: (18) transfer closed with 778 bytes remaining to read"], []),
        "requests": (
            ["requests.ChunkedEncodingError <- urllib3.ProtocolError <- urllib3.IncompleteRead"],
            [],
        ),
        "httpx": (
            ["httpx.RemoteProtocolError <- httpcore.RemoteProtocolError <- h11.RemoteProtocolError"],
            [],
        ),
        "aiohttp": (["aiohttp.ClientPayloadError <- aiohttp.ContentLengthError"], []),
    },
    "hang": {
        "curl": (
            [
                "exit 28, codes 000, curl: (28) Operation timed out after 1500 milliseconds "
                "with 0 bytes received"
            ],
            [],
        ),
        "requests": (["requests.ReadTimeout <- urllib3.ReadTimeoutError <- TimeoutError"], []),
        "httpx": (["httpx.ReadTimeout <- httpcore.ReadTimeout <- TimeoutError"], []),
        "aiohttp": (["aiohttp.SocketTimeoutError"], []),
    },
}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("cause", list(AFTER_A_REQUEST))
def test_client_fault_after_the_request(faultserver, client, cause):
    got, retried, took = observe(faultserver, client, cause, "GET", ["/1"])
    expected = AFTER_A_REQUEST[cause][client]
    if client == "curl" and cause == "hang":
        got = [re.sub(r"after \d+ milliseconds", "after 1500 milliseconds", g) for g in got]
    assert (got, retried) == expected
    if cause == "hang":
        assert 0.9 <= took < 5
    else:
        assert took < 2


# --- the keep-alive race itself: max_requests 1, a client that reuses at once ---------------

#: `keepalive: {max_requests: 1}`: the server closes every connection (FIN, and no
#: `Connection: close` to warn) right after its first answer. A client that sends its next
#: request at once races that FIN: it may see the FIN first (and open a new connection),
#: or write into the closing connection and meet the FIN, or an RST when its request
#: arrives before the server's socket is gone.
RACE = one_listener(response=TEXT_OK, keepalive={"max_requests": 1})
#: Tries per client and method: each with a new client, /w-N then /r-N on its connection.
RACE_TRIES = 20

_CURL_RACE = (
    r"exit 0, codes 200 200"
    r"(, ((Recv|Send) failure: [^;]+; )?Connection died, retrying a fresh connect \(retry count: 1\))?"
)
#: Every outcome the race may give, per client (regular expressions, whole cells): an
#: answer, or this client's name for the FIN or the RST (as in the ON_REUSE rows).
RACE_FACES = {
    "curl": (_CURL_RACE,),
    "requests": ("OK", re.escape(REMOTE_DISCONNECTED), re.escape(CONNECTION_RESET)),
    "httpx": ("OK", re.escape(HTTPX_DISCONNECTED), re.escape(HTTPX_RESET)),
    "aiohttp": (
        "OK",
        re.escape(AIOHTTP_DISCONNECTED),
        re.escape(AIOHTTP_RESET),
        # the FIN was read after aiohttp took the connection from its pool, before the body went
        re.escape(
            "aiohttp.ClientOSError <- aiohttp.ClientConnectionResetError: [Errno None] "
            "Can not write request body for http://127.0.0.1:PORT/r-N"
        ),
    ),
}


def _race(faultserver: Any, client: str, method: str) -> tuple[collections.Counter[str], list[Any], float]:
    """RACE_TRIES tries against one server: how often each outcome came, what the server read."""
    srv = faultserver(RACE)
    url = next(iter(srv.listeners.values())).url
    counts: collections.Counter[str] = collections.Counter()
    answered = []
    start = time.monotonic()
    for i in range(RACE_TRIES):
        got = _normal(RUNNERS[client](url, method, [f"/w-{i}", f"/r-{i}"], describe=exc_cell))
        outcome = re.sub(r"/r-\d+", "/r-N", got[-1])
        counts[outcome] += 1
        if outcome == "OK" or outcome.startswith("exit 0"):
            answered.append(f"/r-{i}")
    took = time.monotonic() - start
    if answered:
        srv.wait_for(type="response", path=answered[-1], timeout=2)
    seen = [e for e in srv.requests() if e["path"].startswith("/r-")]
    return counts, [answered, seen, srv.retries()], took


@pytest.mark.parametrize("client", CLIENTS)
def test_client_keepalive_race_max_requests_1(faultserver, client):
    """20 tries per method (GET and POST at once, a server each): a request, then one more on
    the same connection as soon as the answer is read. Only the frequencies are stable."""
    if client == "curl" and CURL is None:
        pytest.skip("curl is not installed (apt-get install -y curl)")
    results = _in_threads(
        {method: (lambda method=method: _race(faultserver, client, method)) for method in ("GET", "POST")}
    )
    patterns = [re.compile(face) for face in RACE_FACES[client]]
    for method, (counts, (answered, seen, retries), took) in results.items():
        frequencies = ", ".join(f"{n} x {c}" for c, n in counts.most_common())
        numbers = sorted({e["request_on_connection"] for e in seen})
        report(client, f"max-requests-1 ({method} at once, {RACE_TRIES} tries)", outcomes=frequencies,
               backend_saw=f"{len(seen)} of /r-N, request_on_connection {numbers}",
               retried=[e["path"] for e in retries] or "no", took=f"{took:.2f}s")
        assert sum(counts.values()) == RACE_TRIES
        unexpected = [c for c in counts if not any(p.fullmatch(c) for p in patterns)]
        assert not unexpected, f"{client} {method}: outcomes that are not a face of the race: {unexpected}"
        # the server never reads a request on a connection it closed: each answered /r-N
        # was read once, on a new connection, and none is a retry in faultserver's eyes
        assert sorted(e["path"] for e in seen) == sorted(answered)
        assert {e["request_on_connection"] for e in seen} <= {1}
        assert retries == []


# --- pool exhaustion: the client's own pool runs dry ------------------------------------------


def _threads(fn: Callable[[int], str], n: int) -> list[tuple[str, float]]:
    out: list[tuple[str, float] | None] = [None] * n

    def one(i: int) -> None:
        start = time.monotonic()
        try:
            result = fn(i)
        except Exception as exc:  # kept as the cell's value
            result = exc_chain(exc)
        out[i] = (result, time.monotonic() - start)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert all(o is not None for o in out), "a request thread did not finish"
    return out  # type: ignore[return-value]


def _pool_report(client: str, setting: str, results: list[tuple[str, float]], srv: Any) -> list[str]:
    peak = next(iter(srv.listeners.values())).peak_connections
    report(client, f"pool-exhaustion ({setting})", got=[r for r, _ in results],
           took=[f"{t:.2f}s" for _, t in results], backend_peak_connections=peak)
    return sorted(r for r, _ in results)


def assert_two_leased_two_timed_out(got: list[str], results: list[tuple[str, float]], error: str) -> None:
    """Of four requests through a pool of two: two answered, two failed with `error` after
    the pool's 0.5 s wait for a connection."""
    assert [OK_ECHO.match(g) is not None for g in got] == [True, True, False, False]
    assert got[2:] == [error] * 2
    assert all(0.4 <= t < 0.9 for r, t in results if r == error)


def test_client_pool_exhaustion_curl_parallel_waits(faultserver):
    if CURL is None:
        pytest.skip("curl is not installed (apt-get install -y curl)")
    srv = faultserver(matrix_profile("pool-exhaustion"))
    url = next(iter(srv.listeners.values())).url
    args = [CURL, "-sS", "--no-progress-meter", "--parallel", "--parallel-max", "2", "-m", "5"]
    for i in range(4):
        args += ["-o", "/dev/null", "-w", "%{http_code}\\n", f"{url}/{i}"]
    start = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    took = time.monotonic() - start
    peak = next(iter(srv.listeners.values())).peak_connections
    report("curl", "pool-exhaustion (--parallel-max 2, 4 URLs)", exit=proc.returncode,
           codes=proc.stdout.split(), took=f"{took:.2f}s", backend_peak_connections=peak)
    # no lease timeout: transfers beyond the limit wait their turn, and all succeed
    assert (proc.returncode, proc.stdout.split()) == (0, ["200"] * 4)
    assert took >= 1.9
    assert peak == 2


def test_client_pool_exhaustion_requests_blocking_pool_waits_unbounded(faultserver):
    srv = faultserver(matrix_profile("pool-exhaustion"))
    url = next(iter(srv.listeners.values())).url
    with requests.Session() as session:
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=2, pool_block=True))
        results = _threads(
            lambda i: _answer((r := session.get(f"{url}/{i}", timeout=(1, 3))).status_code, r.content), 4
        )
    got = _pool_report("requests", "pool_maxsize=2, pool_block=True", results, srv)
    # requests passes no pool_timeout to urllib3: `timeout=` does not bound the wait for a lease
    assert [OK_ECHO.match(g) is not None for g in got] == [True] * 4
    assert sorted(round(t) for _, t in results) == [1, 1, 2, 2]


def test_client_pool_exhaustion_urllib3_pool_timeout_gives_empty_pool_error(faultserver):
    srv = faultserver(matrix_profile("pool-exhaustion"))
    port = next(iter(srv.listeners.values())).port
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=2, block=True,
                                      timeout=urllib3.Timeout(connect=1, read=3), retries=False)
    try:
        results = _threads(
            lambda i: _answer((r := pool.urlopen("GET", f"/{i}", pool_timeout=0.5)).status, r.data), 4
        )
    finally:
        pool.close()
    got = _pool_report("urllib3", "maxsize=2, block=True, pool_timeout=0.5", results, srv)
    assert_two_leased_two_timed_out(got, results, "urllib3.EmptyPoolError <- _queue.Empty")


def test_client_pool_exhaustion_httpx_gives_pool_timeout(faultserver):
    srv = faultserver(matrix_profile("pool-exhaustion"))
    url = next(iter(srv.listeners.values())).url
    with httpx.Client(limits=httpx.Limits(max_connections=2), timeout=httpx.Timeout(3.0, pool=0.5)) as c:
        results = _threads(lambda i: _answer((r := c.get(f"{url}/{i}")).status_code, r.content), 4)
    got = _pool_report("httpx", "max_connections=2, pool=0.5", results, srv)
    assert_two_leased_two_timed_out(got, results, "httpx.PoolTimeout <- httpcore.PoolTimeout")


def test_client_pool_exhaustion_aiohttp_gives_connection_timeout(faultserver):
    srv = faultserver(matrix_profile("pool-exhaustion"))
    url = next(iter(srv.listeners.values())).url

    async def main() -> list[tuple[str, float]]:
        timeout = aiohttp.ClientTimeout(total=5, connect=0.5, sock_read=3)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2), timeout=timeout) as s:
            async def one(i: int) -> tuple[str, float]:
                start = time.monotonic()
                try:
                    async with s.get(f"{url}/{i}") as r:
                        result = _answer(r.status, await r.read())
                except (TimeoutError, aiohttp.ClientError) as exc:
                    result = exc_chain(exc)
                return result, time.monotonic() - start

            return list(await asyncio.gather(*(one(i) for i in range(4))))

    results = asyncio.run(main())
    got = _pool_report("aiohttp", "TCPConnector(limit=2), connect=0.5", results, srv)
    # `connect` covers the wait for a free connection from the pool
    assert_two_leased_two_timed_out(got, results, "aiohttp.ConnectionTimeoutError <- TimeoutError")


def test_client_versions_are_reported():
    """The chains above are these versions' (printed for the README)."""
    curl = (
        subprocess.run([CURL, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[1]
        if CURL
        else "absent"
    )
    versions = {"curl": curl, "requests": requests.__version__, "urllib3": urllib3.__version__,
                "httpx": httpx.__version__, "aiohttp": aiohttp.__version__}
    report("versions", "-", **versions)
    assert all(re.match(r"^\d+\.\d+", v) for v in versions.values()), versions

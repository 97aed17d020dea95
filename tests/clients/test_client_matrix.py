"""The conformance matrix, client half: what curl, requests, httpx and aiohttp report.

For each D504CO cause (and reset, partial, hang) every client talks to faultserver
directly. A test asserts the exact outcome: curl's exit code and message, or the
chain of exception types down to the OS error (`requests.ConnectionError <-
urllib3.MaxRetryError <- ... <- ConnectionRefusedError(111)`), and which requests the
client sent again, as faultserver saw it (`srv.retries()`: the same request on a new
connection). Each prints a `MATRIX |` line; the README's table is copied from them
(`pytest -s tests/clients`). The chains are those of the versions installed in the
test environment (`MATRIX | versions` prints them).

Client timeouts: curl `--connect-timeout 1 -m 1.5`; requests `timeout=(1, 1)`; httpx
`Timeout(1.0)`; aiohttp `ClientTimeout(total=5, sock_connect=1, sock_read=1)`.
"""

from __future__ import annotations

import asyncio
import re
import shutil
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
from tests.support.profiles import BODY_BYTES, matrix_profile

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


def _answer(status: int, body: bytes) -> str:
    return f"{status} ({len(body)} bytes)"


def _curl_message(stderr: str) -> str:
    """curl's error line and its retry notice (`-v` shows it), without the varying numbers."""
    lines = [
        line.removeprefix("* ")
        for line in stderr.splitlines()
        if line.startswith("curl: (") or line.startswith("* Connection died")
    ]
    text = "; ".join(lines)
    text = re.sub(r"port \d+", "port PORT", text)
    return re.sub(r"after \d+ ms", "after N ms", text)


# --- the clients ----------------------------------------------------------------------------

#: `run(base_url, method, paths) -> [one string per request]`; a failure ends the sequence
#: (as a program that gets an exception would), and the requests share one keep-alive connection.
Runner = Callable[[str, str, list[str]], list[str]]


def run_curl(base: str, method: str, paths: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    """One curl invocation for all paths (so it reuses its connection): exit code and codes."""
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
    paths: list[str], send: Callable[[str], tuple[int, bytes]], errors: type[Exception]
) -> list[str]:
    """`send(path)` for each path in turn, a cell each; a failure is the last cell."""
    out = []
    for path in paths:
        try:
            status, body = send(path)
        except errors as exc:
            out.append(exc_chain(exc))
            break
        out.append(_answer(status, body))
    return out


def run_requests(base: str, method: str, paths: list[str]) -> list[str]:
    body = b"order=1" if method == "POST" else None
    with requests.Session() as session:

        def send(path: str) -> tuple[int, bytes]:
            r = session.request(method, base + path, data=body, timeout=(1, 1))
            return r.status_code, r.content

        return _one_by_one(paths, send, requests.RequestException)


def run_httpx(base: str, method: str, paths: list[str]) -> list[str]:
    body = b"order=1" if method == "POST" else None
    with httpx.Client(timeout=httpx.Timeout(1.0)) as client:

        def send(path: str) -> tuple[int, bytes]:
            r = client.request(method, base + path, content=body)
            return r.status_code, r.content

        return _one_by_one(paths, send, httpx.HTTPError)


def run_aiohttp(base: str, method: str, paths: list[str]) -> list[str]:
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
                    out.append(exc_chain(exc))
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
    faultserver: Any, client: str, cause: str, method: str, paths: list[str]
) -> tuple[list[str], list[str], Any]:
    if client == "curl" and CURL is None:
        pytest.skip("curl is not installed (apt-get install -y curl)")
    srv = faultserver(matrix_profile(cause))
    listener = next(iter(srv.listeners.values()))
    start = time.monotonic()
    got = RUNNERS[client](listener.url, method, paths)
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

#: The second request on a kept-alive connection meets FIN (fin-on-reuse).
FIN_ON_REUSE = {
    ("curl", "GET"): (
        ["exit 0, codes 200 200, Connection died, retrying a fresh connect (retry count: 1)"],
        ["/2"],
    ),
    ("curl", "POST"): (
        ["exit 0, codes 200 200, Connection died, retrying a fresh connect (retry count: 1)"],
        ["/2"],
    ),
    ("requests", "GET"): (
        ["OK", "requests.ConnectionError <- urllib3.ProtocolError <- http.client.RemoteDisconnected"],
        [],
    ),
    ("requests", "POST"): (
        ["OK", "requests.ConnectionError <- urllib3.ProtocolError <- http.client.RemoteDisconnected"],
        [],
    ),
    ("httpx", "GET"): (["OK", "httpx.RemoteProtocolError <- httpcore.RemoteProtocolError"], []),
    ("httpx", "POST"): (["OK", "httpx.RemoteProtocolError <- httpcore.RemoteProtocolError"], []),
    ("aiohttp", "GET"): (["OK", "OK"], ["/2"]),
    ("aiohttp", "POST"): (["OK", "aiohttp.ServerDisconnectedError"], []),
}


def _normal(got: list[str]) -> list[str]:
    return ["OK" if OK_ECHO.match(g) else g for g in got]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("client", CLIENTS)
def test_client_fin_on_reuse(faultserver, client, method):
    got, retried, _ = observe(faultserver, client, "fin", method, ["/1", "/2"])
    assert (_normal(got), retried) == FIN_ON_REUSE[(client, method)]


def _idle_close_s(cause: str) -> float | None:
    keepalive = load_source(matrix_profile(cause)).listeners[0].keepalive
    return getattr(keepalive.idle_close, "seconds", None)


@pytest.mark.parametrize("client", CLIENTS)
def test_client_fin_idle_close_is_noticed(faultserver, client):
    """A connection the backend closed while idle (idle_close) is not reused: no error."""
    if client == "curl" and CURL is None:
        pytest.skip("curl is not installed (apt-get install -y curl)")
    srv = faultserver(matrix_profile("fin"))
    url = next(iter(srv.listeners.values())).url
    if client == "curl":
        # one invocation; `--rate N/m` starts the second transfer 60/N s after the first,
        # at least half a second after the connection went idle-closed
        idle = _idle_close_s("fin")
        if idle is None:
            pytest.skip("the fin profile's idle_close is not a fixed duration")
        per_minute = int(60 // (idle + 0.5))
        got = run_curl(url, "GET", ["/1", "/2"], extra=("--rate", f"{per_minute}/m"))
    else:
        got = _with_pause(client, url, lambda: srv.wait_for(type="idle_close", timeout=5))
    time.sleep(0.05)
    seen = [(e["conn"], e["request_on_connection"]) for e in srv.requests()]
    report(client, "fin (idle_close, then a request)", got=got, backend_saw=seen,
           retried=[e["path"] for e in srv.retries()] or "no")
    assert srv.events(type="idle_close")
    assert _normal(got) == (["exit 0, codes 200 200"] if client == "curl" else ["OK", "OK"])
    assert [n for _, n in seen] == [1, 1]  # the second request on a new connection, once
    assert srv.retries() == []


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

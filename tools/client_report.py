"""What curl, requests, httpx and aiohttp report against each shipped profile.

Every file in profiles/ opens with a comment block, "What clients report", whose figures come
from this script. It serves each profile in this process (`faultserver.testing.running`, so
every listener moves to 127.0.0.1 on a free port), drives each client against it the way the
profile's comment says (two GETs on one kept-alive session, 40 GETs on one session, six at
once through a pool of two...), and prints one line per client per profile, for example:

    fin.yaml         curl      exit 0; 200, 200 after 0.02 s (1 retry seen)

Run it from the repository's root with the Python that has faultserver and its test extras
installed, with curl on PATH:

    .venv/bin/python tools/client_report.py                 # every shipped profile, about 3 minutes
    .venv/bin/python tools/client_report.py fin reset.yaml  # some of them

Client settings, unless a line says otherwise: connect timeout 3 s, read timeout 5 s (curl:
`--connect-timeout 3 -m 5`), one kept-alive session per client. Before each client the server
is reset (`srv.reset()`: rules, random streams, schedules and counters start again), so seeded
profiles give every client the same draws. "N retries seen" is `len(srv.retries())`: requests
the server saw again on a new connection. Port numbers are printed as PORT.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import httpx
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from faultserver.testing import running

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
CONNECT_S = 3
READ_S = 5

Line = tuple[str, str]  # (client, what it reported)


# --- how an outcome is written -------------------------------------------------------------


def mask_ports(text: str) -> str:
    """Port numbers after 127.0.0.1 (`:45121`, `', 45121)`, `port 45121`, `port=45121`) as PORT."""
    text = re.sub(r"(127\.0\.0\.1(?::|'?, | port ))\d+", r"\1PORT", text)
    return re.sub(r"(host='127\.0\.0\.1', port=)\d+", r"\1PORT", text)


def outcome(exc: BaseException) -> str:
    """`package.ExceptionName: message`, as a user reads it."""
    name = f"{type(exc).__module__.split('.')[0]}.{type(exc).__name__}"
    message = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "...", str(exc))  # no object addresses
    return mask_ports(f"{name}: {message}" if message else name)


def tally(results: Sequence[str]) -> str:
    """`30 x 200, 4 x httpx.ReadError: ...`, the most frequent first."""
    return ", ".join(f"{n} x {what}" for what, n in Counter(results).most_common())


def in_turn(results: Sequence[str]) -> str:
    """`2 x 200 after 1.0 s, 4 x ...`: runs of equal results, in order."""
    runs: list[list[Any]] = []
    for result in results:
        if runs and runs[-1][1] == result:
            runs[-1][0] += 1
        else:
            runs.append([1, result])
    return ", ".join(what if n == 1 else f"{n} x {what}" for n, what in runs)


def retries_seen(srv: Any) -> str:
    n = len(srv.retries())
    return f"{n} retr{'y' if n == 1 else 'ies'} seen"


# --- the clients: one kept-alive session each ----------------------------------------------


class Client(Protocol):
    name: str

    def get(self, url: str) -> str: ...

    def close(self) -> None: ...


class RequestsClient:
    name = "requests"

    def __init__(self, adapter: HTTPAdapter | None = None) -> None:
        self.session = requests.Session()
        if adapter is not None:
            self.session.mount("http://", adapter)

    def get(self, url: str) -> str:
        return self.call("GET", url)

    def call(self, method: str, url: str) -> str:
        try:
            return str(self.session.request(method, url, timeout=(CONNECT_S, READ_S)).status_code)
        except requests.RequestException as exc:
            return outcome(exc)

    def close(self) -> None:
        self.session.close()


class HttpxClient:
    name = "httpx"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", httpx.Timeout(READ_S, connect=CONNECT_S))
        self.client = httpx.Client(**kwargs)

    def get(self, url: str) -> str:
        try:
            return str(self.client.get(url).status_code)
        except httpx.HTTPError as exc:
            return outcome(exc)

    def close(self) -> None:
        self.client.close()


class AiohttpClient:
    """An aiohttp `ClientSession` on a loop of its own, driven from synchronous code."""

    name = "aiohttp"

    def __init__(self, **session: Any) -> None:
        session.setdefault("timeout", aiohttp.ClientTimeout(sock_connect=CONNECT_S, sock_read=READ_S))
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession = self.loop.run_until_complete(self._open(session))

    @staticmethod
    async def _open(kwargs: dict[str, Any]) -> aiohttp.ClientSession:
        if "limit" in kwargs:
            kwargs["connector"] = aiohttp.TCPConnector(limit=kwargs.pop("limit"))
        return aiohttp.ClientSession(**kwargs)

    async def _get(self, url: str) -> str:
        try:
            async with self.session.get(url) as response:
                await response.read()
                return str(response.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return outcome(exc)

    def get(self, url: str) -> str:
        return self.loop.run_until_complete(self._get(url))

    def get_at_once(self, urls: Sequence[str]) -> list[tuple[float, str]]:
        """All `urls` at once: (seconds, outcome) each, in order of arrival."""
        start = time.monotonic()

        async def one(url: str) -> tuple[float, str]:
            result = await self._get(url)
            return time.monotonic() - start, result

        async def all_of() -> list[tuple[float, str]]:
            return list(await asyncio.gather(*(one(url) for url in urls)))

        return sorted(self.loop.run_until_complete(all_of()))

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


PYTHON_CLIENTS: tuple[Callable[[], Client], ...] = (RequestsClient, HttpxClient, AiohttpClient)


@contextmanager
def opened(make: Callable[[], Client]) -> Iterator[Client]:
    client = make()
    try:
        yield client
    finally:
        client.close()


def gets(client: Client, urls: Sequence[str]) -> list[tuple[float, str]]:
    """GET each URL in turn on the client's session: (seconds, outcome) each."""
    results = []
    for url in urls:
        start = time.monotonic()
        result = client.get(url)
        results.append((time.monotonic() - start, result))
    return results


def curl(urls: Sequence[str], *extra: str) -> tuple[int, list[str], str, float]:
    """One curl run: (exit status, status per URL, its `curl: (N) ...` lines, seconds)."""
    args = ["curl", "-sS", "--connect-timeout", str(CONNECT_S), "-m", str(READ_S)]
    args += ["-w", "%{http_code}\\n", *extra]
    for url in urls:
        args += ["-o", "/dev/null", url]
    start = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    took = time.monotonic() - start
    errors = Counter(mask_ports(line) for line in done.stderr.splitlines() if line.startswith("curl:"))
    error = " ".join(line if n == 1 else f"{line} (x{n})" for line, n in errors.items())
    return done.returncode, done.stdout.split(), error, took


def curl_line(urls: Sequence[str], *extra: str) -> str:
    code, statuses, error, took = curl(urls, *extra)
    shown = ", ".join("-" if s == "000" else s for s in statuses)
    return f"exit {code}; {shown}" + (f' "{error}"' if error else "") + f" after {took:.2f} s"


def listing(results: Sequence[tuple[float, str]], sep: str = ", ") -> str:
    return sep.join(result for _, result in results)


# --- one function per kind of profile ------------------------------------------------------


def keepalive_race(srv: Any) -> list[Line]:
    """fin.yaml, fin-rst.yaml: two GETs on one kept-alive session; then the idle close."""
    url = srv.url
    srv.reset()
    lines = [("curl", f"{curl_line([url + '/a', url + '/b'])} ({retries_seen(srv)})")]
    for make in PYTHON_CLIENTS:
        srv.reset()
        with opened(make) as client:
            got = listing(gets(client, [url + "/a", url + "/b"]))
            lines.append((client.name, f"{got} ({retries_seen(srv)})"))
    srv.reset()
    retrying = RequestsClient(HTTPAdapter(max_retries=Retry(total=1)))
    try:
        got = listing(gets(retrying, [url + "/a", url + "/b"]))
        retrying.call("GET", url + "/c")
        post = retrying.call("POST", url + "/d")
    finally:
        retrying.close()
    lines.append(("requests", f"HTTPAdapter(max_retries=Retry(total=1)): GET {got}; a POST: {post}"))
    for make in PYTHON_CLIENTS:
        srv.reset()
        with opened(make) as client:
            first = client.get(url + "/a")
            time.sleep(2.5)  # past idle_close (2 s): the server has closed the pooled connection
            second = client.get(url + "/b")
        lines.append((client.name, f"a GET, 2.5 s idle, a GET: {first}, {second} ({retries_seen(srv)})"))
    return lines


def one_request(srv: Any) -> list[Line]:
    """refused.yaml, connect-timeout.yaml: one GET each, and how long it took."""
    url = srv.url + "/a"
    lines = [("curl", curl_line([url]))]
    for make in PYTHON_CLIENTS:
        with opened(make) as client:
            [(took, result)] = gets(client, [url])
        lines.append((client.name, f"{result} after {took:.2f} s"))
    return lines


def two_requests(srv: Any) -> list[Line]:
    """reset.yaml: two GETs on one session."""
    urls = [srv.url + "/a", srv.url + "/b"]
    srv.reset()
    lines = [("curl", f"{curl_line(urls)} ({retries_seen(srv)})")]
    for make in PYTHON_CLIENTS:
        srv.reset()
        with opened(make) as client:
            lines.append((client.name, f"{listing(gets(client, urls), ' | ')} ({retries_seen(srv)})"))
    return lines


def at_once(get: Callable[[], str], n: int = 6) -> str:
    """`n` calls of `get` at once, each outcome with when it came, in order of arrival."""
    start = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    lock = threading.Lock()

    def call() -> None:
        result = get()
        with lock:
            arrivals.append((time.monotonic() - start, result))

    with ThreadPoolExecutor(n) as pool:
        for _ in range(n):
            pool.submit(call)
    return arrived(arrivals)


def arrived(arrivals: Sequence[tuple[float, str]]) -> str:
    return in_turn([f"{result} after {took:.1f} s" for took, result in sorted(arrivals)])


def pool_exhaustion(srv: Any) -> list[Line]:
    """pool-exhaustion.yaml: one GET each, then six at once through a pool of two connections."""
    url = srv.url + "/lease"
    lines = one_request(srv)
    parallel = curl_line([url] * 6, "--parallel", "--parallel-max", "2")
    lines.append(("curl", f"6 URLs, --parallel --parallel-max 2: {parallel}"))
    for block in (True, False):
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=2, pool_block=block)
        with opened(lambda a=adapter: RequestsClient(a)) as client:  # type: ignore[misc]
            got = at_once(lambda c=client: c.get(url))  # type: ignore[misc]
        lines.append(("requests", f"6 at once, HTTPAdapter(pool_maxsize=2, pool_block={block}): {got}"))
    limits = httpx.Limits(max_connections=2)
    timeout = httpx.Timeout(READ_S, connect=CONNECT_S, pool=0.5)
    with opened(lambda: HttpxClient(limits=limits, timeout=timeout)) as client:
        got = at_once(lambda: client.get(url))
    lines.append(("httpx", f"6 at once, Limits(max_connections=2), Timeout(pool=0.5): {got}"))
    aio = AiohttpClient(limit=2, timeout=aiohttp.ClientTimeout(connect=0.5, sock_read=READ_S))
    try:
        got = arrived(aio.get_at_once([url] * 6))
    finally:
        aio.close()
    lines.append(("aiohttp", f"6 at once, TCPConnector(limit=2), ClientTimeout(connect=0.5): {got}"))
    return lines


def forty(srv: Any) -> list[Line]:
    """slow.yaml, flaky.yaml: 40 GETs per client, the server reset before each client.

    curl runs once per request, so each request has its own exit status (and connection).
    """
    urls = [f"{srv.url}/r{i}" for i in range(40)]
    srv.reset()
    start = time.monotonic()
    exits = []
    for url in urls:
        code, statuses, _, _ = curl([url])
        exits.append(f"exit {code}" + (f" ({statuses[0]})" if statuses and statuses[0] != "200" else ""))
    lines = [("curl", f"{tally(exits)}; {time.monotonic() - start:.1f} s in all")]
    for make in PYTHON_CLIENTS:
        srv.reset()
        with opened(make) as client:
            results = gets(client, urls)
        durations = [took for took, _ in results]
        lines.append(
            (
                client.name,
                f"{tally([r for _, r in results])}; median {statistics.median(durations):.2f} s, "
                f"max {max(durations):.2f} s, {sum(durations):.1f} s in all",
            )
        )
    return lines


def chaos(srv: Any) -> list[Line]:
    """chaos.yaml: in each phase of the first cycle, as soon as its `phase` event arrives.

    Healthy, refuse, stall and 503s: the four clients at once, one GET each. In the stall, a
    fifth GET (requests) begins 3 s in, to show a stall that ends during a connect. Reset/close:
    the clients one after another, three GETs each on one session (seeded draws).
    """
    url = srv.url + "/a"
    names = ["healthy", "refuse", "stall", "503s", "reset/close"]
    lines: list[Line] = []
    srv.reset()
    for phase, name in enumerate(names):
        srv.wait_for(type="phase", phase=phase, cycle=0, timeout=60)
        if name == "reset/close":
            lines.append((name, f"curl: {curl_line([url] * 3)}"))
            for make in PYTHON_CLIENTS:
                with opened(make) as client:
                    lines.append((name, f"{client.name}: {listing(gets(client, [url] * 3))}"))
            break
        lines.extend((name, text) for text in in_one_phase(url, late=name == "stall"))
    return lines


def in_one_phase(url: str, late: bool) -> list[str]:
    """The four clients at once, one GET each; with `late`, a requests GET 3 s later too."""

    def python_client(make: Callable[[], Client]) -> str:
        with opened(make) as client:
            [(took, result)] = gets(client, [url])
        return f"{client.name}: {result} after {took:.2f} s"

    def late_requests() -> str:
        time.sleep(3.0)
        with opened(RequestsClient) as client:
            [(took, result)] = gets(client, [url])
        return f"requests begun 3 s in: {result} after {took:.2f} s"

    jobs: list[Callable[[], str]] = [lambda: "curl: " + curl_line([url])]
    jobs += [lambda m=make: python_client(m) for make in PYTHON_CLIENTS]  # type: ignore[misc]
    if late:
        jobs.append(late_requests)
    with ThreadPoolExecutor(len(jobs)) as pool:
        return [future.result() for future in [pool.submit(job) for job in jobs]]


#: How each shipped profile is driven.
SCENARIOS: dict[str, Callable[[Any], list[Line]]] = {
    "chaos.yaml": chaos,
    "connect-timeout.yaml": one_request,
    "fin-rst.yaml": keepalive_race,
    "fin.yaml": keepalive_race,
    "flaky.yaml": forty,
    "pool-exhaustion.yaml": pool_exhaustion,
    "refused.yaml": one_request,
    "reset.yaml": two_requests,
    "slow.yaml": forty,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="*", help="names in profiles/ (fin or fin.yaml); default: all")
    args = parser.parse_args(argv)
    shipped = sorted(p.name for p in PROFILES.glob("*.yaml"))
    missing = sorted(set(shipped) - set(SCENARIOS))
    if missing:
        parser.error(f"no scenario for {', '.join(missing)}: add one to SCENARIOS")
    chosen = [name if name.endswith(".yaml") else f"{name}.yaml" for name in args.profiles] or shipped
    for name in chosen:
        if name not in SCENARIOS:
            parser.error(f"unknown profile {name!r} (shipped: {', '.join(shipped)})")
    for name in chosen:
        with running(PROFILES / name) as srv:
            for client, text in SCENARIOS[name](srv):
                print(f"{name:<21} {client:<11} {text}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

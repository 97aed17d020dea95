"""Keep-alive faults (`idle_close`, `max_requests`) and the keep-alive race as clients meet it.

Both faults are silent: a FIN with no `Connection: close` ever sent, which is what makes
a pooled client send its next request into a connection that is already closing. The
race itself is made deterministic with a rule that closes on the second request of a
connection (what profiles/fin.yaml does), and each client's reaction is pinned.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from typing import Any, Optional

import aiohttp
import httpx
import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

CURL = shutil.which("curl") or "/usr/bin/curl"


def profile(keepalive: Optional[dict] = None, rules: tuple = (), response: Optional[dict] = None) -> dict:
    return {
        "version": 1,
        "seed": 5,
        "listeners": [
            {
                "name": "backend",
                "bind": "127.0.0.1:0",
                "response": response or {"headers": {"content-type": "text/plain"}, "body": "ok\n"},
                "keepalive": keepalive or {},
                "rules": list(rules),
            }
        ],
    }


def connect(srv: Any, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv["backend"].port), timeout=timeout)


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: faultserver\r\n\r\n".encode()


def read_response(sock: socket.socket) -> bytes:
    """One response with a content-length, read exactly (nothing after it is consumed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, f"EOF inside a response's head: {data!r}"
        data += chunk
    head = data.decode("latin-1").lower()
    length = int(head.split("content-length: ")[1].split("\r\n")[0])
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "EOF inside a response's body"
        body += chunk
    return data + body


def wait_eof(sock: socket.socket) -> tuple[bytes, str, float]:
    """What arrives until the connection ends, how it ends, and after how long."""
    start = time.monotonic()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        how = "eof"
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        how = "timeout"
    return data, how, time.monotonic() - start


# --- idle_close -------------------------------------------------------------------------


def test_idle_close_sends_a_silent_fin_after_the_idle_time(faultserver):
    srv = faultserver(profile({"idle_close": "400ms"}))
    with connect(srv) as sock:
        sock.sendall(request("/a"))
        response = read_response(sock)
        data, how, took = wait_eof(sock)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection" not in response.lower()  # never announced
    assert (data, how) == (b"", "eof")
    assert 0.3 <= took < 5
    event = srv.wait_for(type="idle_close", timeout=2)
    assert event["listener"] == "backend"


def test_idle_close_counts_from_the_accept(faultserver):
    srv = faultserver(profile({"idle_close": "300ms"}))
    with connect(srv) as sock:
        data, how, took = wait_eof(sock)
    assert (data, how) == (b"", "eof")
    assert 0.2 <= took < 5
    assert srv.requests() == []


def test_idle_close_with_a_distribution(faultserver):
    srv = faultserver(profile({"idle_close": {"uniform": ["200ms", "400ms"]}}))
    with connect(srv) as sock:
        sock.sendall(request("/a"))
        read_response(sock)
        assert wait_eof(sock)[1] == "eof"
        # the second connection draws afresh; both end by a silent FIN
    with connect(srv) as sock:
        data, how, took = wait_eof(sock)
    assert (data, how) == (b"", "eof") and 0.15 <= took < 5
    assert len(srv.events(type="idle_close")) == 2


def test_idle_close_does_not_close_a_connection_busy_in_a_delay(faultserver):
    srv = faultserver(profile({"idle_close": "200ms"}, rules=({"match": {"path": "/slow"}, "delay": "700ms", "action": "respond"},)))
    with connect(srv) as sock:
        sock.sendall(request("/slow"))
        start = time.monotonic()
        response = read_response(sock)
        assert time.monotonic() - start >= 0.6
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        # idle again after the response: now the silent FIN comes
        assert wait_eof(sock)[1] == "eof"
    assert len(srv.events(type="idle_close")) == 1


def test_idle_close_does_not_close_a_connection_busy_in_a_dribble(faultserver):
    srv = faultserver(profile({"idle_close": "150ms"}, rules=({"action": "dribble", "chunk": 8, "interval": "60ms"},)))
    with connect(srv) as sock:
        sock.sendall(request("/d"))
        start = time.monotonic()
        response = read_response(sock)  # ~14 pieces, 60 ms apart: longer than idle_close
    assert time.monotonic() - start >= 0.3
    assert response.endswith(b"\r\n\r\nok\n")


def test_idle_close_does_not_close_a_connection_busy_in_a_hang(faultserver):
    srv = faultserver(profile({"idle_close": "150ms"}, rules=({"action": "hang", "for": "700ms"},)))
    with connect(srv) as sock:
        sock.sendall(request("/h"))
        data, how, took = wait_eof(sock)
    assert (data, how) == (b"", "eof")
    assert took >= 0.6  # the hang's own end, not idle_close's
    assert srv.events(type="idle_close") == []


def test_idle_close_does_not_close_while_a_request_is_being_read(faultserver):
    srv = faultserver(profile({"idle_close": "200ms"}))
    with connect(srv) as sock:
        sock.sendall(b"GET /slowly HTTP/1.1\r\n")
        time.sleep(0.6)
        sock.sendall(b"host: faultserver\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 OK\r\n")


def test_idle_close_as_pooled_clients_meet_it(faultserver):
    # The FIN arrives while the connection sits in the pool: requests (urllib3) and httpx
    # notice it before reuse and open a new connection, so the next request succeeds.
    srv = faultserver(profile({"idle_close": "200ms"}))
    with requests.Session() as session:
        assert session.get(srv.url + "/one", timeout=5).status_code == 200
        srv.wait_for(type="idle_close", timeout=2)
        time.sleep(0.05)
        assert session.get(srv.url + "/two", timeout=5).status_code == 200
    with httpx.Client(timeout=5) as client:
        assert client.get(srv.url + "/three").status_code == 200
        time.sleep(0.4)
        assert client.get(srv.url + "/four").status_code == 200
    numbers = [(e["path"], e["request_on_connection"]) for e in srv.requests()]
    assert numbers == [("/one", 1), ("/two", 1), ("/three", 1), ("/four", 1)]
    assert srv.retries() == []


# --- max_requests -----------------------------------------------------------------------


def test_max_requests_fins_right_after_the_nth_response(faultserver):
    srv = faultserver(profile({"max_requests": 2}))
    with connect(srv) as sock:
        sock.sendall(request("/1"))
        first = read_response(sock)
        sock.sendall(request("/2"))
        second = read_response(sock)
        data, how, took = wait_eof(sock)
    assert (data, how) == (b"", "eof")
    assert took < 1  # right after, not after a drain or a timeout
    for response in (first, second):
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"connection" not in response.lower()
    event = srv.wait_for(type="max_requests_close", timeout=2)
    assert event["requests"] == 2


def test_max_requests_with_pipelined_requests_answers_n_then_fin(faultserver):
    srv = faultserver(profile({"max_requests": 2}))
    with connect(srv) as sock:
        sock.sendall(request("/1") + request("/2") + request("/3") + request("/4"))
        first, second = read_response(sock), read_response(sock)
        data, how, _ = wait_eof(sock)
    assert (data, how) == (b"", "eof")  # a FIN, not a reset, though /3 and /4 were unread
    assert b"connection" not in (first + second).lower()
    assert [e["path"] for e in srv.requests()] == ["/1", "/2"]


def test_max_requests_one_and_httpx_reconnects(faultserver):
    srv = faultserver(profile({"max_requests": 1}))
    with httpx.Client(timeout=5) as client:
        for i in range(3):
            assert client.get(srv.url + f"/{i}").status_code == 200
            srv.wait_for(type="max_requests_close", conn=i + 1, timeout=2)
            time.sleep(0.05)  # let the FIN reach the pool before the next request
    assert srv["backend"].connections == 3
    assert [e["request_on_connection"] for e in srv.requests()] == [1, 1, 1]


# --- the keep-alive race: a FIN meets the next request on a reused connection ------------

FIN_ON_REUSE = ({"name": "fin-on-reuse", "match": {"request_on_connection": 2}, "action": "close"},)


def test_race_requests_default_raises_connection_error(faultserver):
    # requests mounts HTTPAdapter(max_retries=0): urllib3 does not retry the request
    srv = faultserver(profile(rules=FIN_ON_REUSE))
    with requests.Session() as session:
        assert session.get(srv.url + "/a", timeout=5).status_code == 200
        with pytest.raises(requests.ConnectionError, match=r"RemoteDisconnected\('Remote end closed connection without response'\)"):
            session.get(srv.url + "/b", timeout=5)
    assert srv.retries() == []


def test_race_requests_with_retries_resends_get_on_a_new_connection(faultserver):
    srv = faultserver(profile(rules=FIN_ON_REUSE))
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=2))
        assert session.get(srv.url + "/a", timeout=5).status_code == 200
        assert session.get(srv.url + "/b", timeout=5).status_code == 200
        # POST is not idempotent: urllib3 does not resend it
        with pytest.raises(requests.ConnectionError, match=r"RemoteDisconnected"):
            session.post(srv.url + "/c", data=b"order", timeout=5)
    (retry,) = srv.retries()
    assert (retry["path"], retry["request_on_connection"], retry["retry"]) == ("/b", 1, True)
    seen = [(e["path"], e["request_on_connection"]) for e in srv.requests()]
    assert seen == [("/a", 1), ("/b", 2), ("/b", 1), ("/c", 2)]


def test_race_urllib3_default_retries_get(faultserver):
    srv = faultserver(profile(rules=FIN_ON_REUSE))
    with urllib3.PoolManager(timeout=5) as pool:
        assert [pool.request("GET", srv.url + p).status for p in ("/a", "/b")] == [200, 200]
    assert [e["path"] for e in srv.retries()] == ["/b"]


def test_race_httpx_raises_remote_protocol_error(faultserver):
    srv = faultserver(profile(rules=FIN_ON_REUSE))
    with httpx.Client(timeout=5) as client:
        assert client.get(srv.url + "/a").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match=r"^Server disconnected without sending a response\.$"):
            client.get(srv.url + "/b")
    assert srv.retries() == []


def test_race_aiohttp_retries_get_once(faultserver):
    srv = faultserver(profile(rules=FIN_ON_REUSE))

    async def two_gets() -> list[int]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            statuses = []
            for path in ("/a", "/b"):
                async with session.get(srv.url + path) as r:
                    await r.read()
                    statuses.append(r.status)
            return statuses

    assert asyncio.run(two_gets()) == [200, 200]
    assert [e["path"] for e in srv.retries()] == ["/b"]


def test_race_curl_retries_on_a_fresh_connection(faultserver):
    srv = faultserver(profile(rules=FIN_ON_REUSE))
    result = subprocess.run(
        [CURL, "-sS", "-m", "5", srv.url + "/a", srv.url + "/b"], capture_output=True, timeout=30
    )
    assert (result.returncode, result.stdout) == (0, b"ok\nok\n")
    assert [e["path"] for e in srv.retries()] == ["/b"]

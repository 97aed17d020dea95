"""Keep-alive faults (`idle_close`, `max_requests`) and the keep-alive race as clients meet it.

Both faults are silent: a FIN with no `Connection: close` ever sent, which is what makes
a pooled client send its next request into a connection that is already closing. The
race itself is made deterministic with a rule that closes on the second request of a
connection (what profiles/fin.yaml does), and each client's reaction is pinned. The
faults' own timing (when idle_close counts, what keeps a connection busy) is tested
without the kernel in tests/shell/test_keepalive.py.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from tests.support import net
from tests.support.profiles import TEXT_OK, one_listener


def profile(keepalive: dict | None = None, rules: tuple = ()) -> dict:
    return one_listener(5, response=TEXT_OK, keepalive=keepalive or {}, rules=list(rules))


def connect(srv: Any) -> socket.socket:
    return net.connect("127.0.0.1", srv["backend"].port)


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: faultserver\r\n\r\n".encode()


# --- idle_close -------------------------------------------------------------------------


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


def test_max_requests_with_pipelined_requests_answers_n_then_fin(faultserver):
    srv = faultserver(profile({"max_requests": 2}))
    with connect(srv) as sock:
        sock.sendall(request("/1") + request("/2") + request("/3") + request("/4"))
        reader = net.RawReader(sock)
        first, second = reader.read_response(), reader.read_response()
        assert reader.at_eof()  # a FIN, not a reset (which raises), though /3 and /4 were unread
    assert b"connection" not in (first.head + second.head).lower()
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
        with pytest.raises(
            requests.ConnectionError,
            match=r"RemoteDisconnected\('Remote end closed connection without response'\)",
        ):
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
        with pytest.raises(
            httpx.RemoteProtocolError, match=r"^Server disconnected without sending a response\.$"
        ):
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
    result = net.curl(srv.url + "/a", srv.url + "/b")
    assert (result.returncode, result.stdout) == (0, "ok\nok\n")
    assert [e["path"] for e in srv.retries()] == ["/b"]

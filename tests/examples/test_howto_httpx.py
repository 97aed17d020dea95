"""What an httpx client meets for each D504CO cause, and how to assert that it retried."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

# One listener per D504CO cause; the fixture moves each to 127.0.0.1 on a free port.
PROFILE = """
version: 1
listeners:
  - name: connect-timeout     # "Timeout connecting to HOST:PORT"
    bind: 127.0.0.1:0
    accept: stall
  - name: fin                 # "Connection is closed"
    bind: 127.0.0.1:0
    rules:
      - {name: fin-on-reuse, match: {request_on_connection: 2}, action: close}
  - name: refused             # "Connection refused"
    bind: 127.0.0.1:0
    accept: refuse
  - name: slow                # "Connection lease request time out"
    bind: 127.0.0.1:0
    rules:
      - {action: respond, delay: 1s}
"""


@pytest.fixture
def srv(faultserver):
    return faultserver(PROFILE)


def test_stall_gives_connect_timeout(srv):
    with pytest.raises(httpx.ConnectTimeout):
        httpx.get(srv["connect-timeout"].url, timeout=httpx.Timeout(5.0, connect=0.5))


def test_fin_on_a_reused_connection_gives_remote_protocol_error(srv):
    url = srv["fin"].url
    with httpx.Client(timeout=5.0) as client:
        assert client.get(url + "/warmup").status_code == 200  # 1st request on the connection
        disconnected = r"^Server disconnected without sending a response\.$"
        with pytest.raises(httpx.RemoteProtocolError, match=disconnected):
            client.get(url + "/orders")  # 2nd request on the same connection: FIN, no answer
    [fault] = srv.events(type="fault", action="close")
    assert fault["path"] == "/orders"


def test_refuse_gives_connect_error(srv):
    with pytest.raises(httpx.ConnectError, match=r"^\[Errno 111\] Connection refused$"):
        httpx.get(srv["refused"].url, timeout=5.0)


def test_slow_backend_exhausts_the_pool(srv):
    limits = httpx.Limits(max_connections=2)
    timeout = httpx.Timeout(5.0, pool=0.2)  # wait at most 200 ms for a free connection
    with httpx.Client(limits=limits, timeout=timeout) as client, ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(client.get, srv["slow"].url) for _ in range(3)]
        errors = [call.exception() for call in calls]
    assert [type(e) for e in errors if e is not None] == [httpx.PoolTimeout]
    answered = [call.result().status_code for call, e in zip(calls, errors, strict=True) if e is None]
    assert answered == [200, 200]
    assert srv["slow"].peak_connections == 2


def get_with_retry(client: httpx.Client, url: str) -> httpx.Response:
    """The client code under test: retry once when a kept-alive connection was closed."""
    try:
        return client.get(url)
    except httpx.RemoteProtocolError:
        return client.get(url)  # httpx opens a new connection for it


def test_client_retries_after_fin(srv):
    url = srv["fin"].url
    with httpx.Client(timeout=5.0) as client:
        client.get(url + "/warmup")
        assert get_with_retry(client, url + "/orders").status_code == 200
    [retry] = srv.retries()  # requests sent again after a fault (here, the FIN)
    assert (retry["method"], retry["path"], retry["request_on_connection"]) == ("GET", "/orders", 1)

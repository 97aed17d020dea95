"""What a requests client meets for each D504CO cause, and how to assert that it retried."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

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
    with pytest.raises(requests.exceptions.ConnectTimeout):
        requests.get(srv["connect-timeout"].url, timeout=(0.5, 5.0))  # (connect, read)


def test_fin_on_a_reused_connection_gives_connection_error(srv):
    url = srv["fin"].url
    with requests.Session() as session:
        assert session.get(url + "/warmup", timeout=5.0).status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError) as info:
            session.get(url + "/orders", timeout=5.0)  # same connection: FIN, no answer
    assert type(info.value) is requests.exceptions.ConnectionError
    assert str(info.value) == (
        "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))"
    )


def test_refuse_gives_connection_error(srv):
    refused = r"\[Errno 111\] Connection refused"
    with pytest.raises(requests.exceptions.ConnectionError, match=refused) as info:
        requests.get(srv["refused"].url, timeout=5.0)
    assert type(info.value) is requests.exceptions.ConnectionError  # not ConnectTimeout, its subclass


def test_slow_backend_shows_as_read_timeout_not_as_a_pool_timeout(srv):
    # requests has no pool timeout: a full pool opens more connections (pool_block=False,
    # the default) or waits without a limit (pool_block=True).
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=1))
    with session, ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(session.get, srv["slow"].url, timeout=5.0) for _ in range(3)]
        assert [call.result().status_code for call in calls] == [200, 200, 200]
    assert srv["slow"].peak_connections == 3  # a pool of 1, and three connections at once

    # What a slow backend does to a requests client is a read timeout.
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(srv["slow"].url, timeout=(1.0, 0.2))


def test_session_retries_get_after_fin(srv):
    url = srv["fin"].url
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=1)))  # the policy under test
    with session:
        session.get(url + "/warmup", timeout=5.0)
        assert session.get(url + "/orders", timeout=5.0).status_code == 200  # retried
        with pytest.raises(requests.exceptions.ConnectionError):
            session.post(url + "/orders", json={"n": 1}, timeout=5.0)  # POST is not retried
    [retry] = srv.retries()  # requests sent again after a fault (here, the FIN)
    assert (retry["method"], retry["path"], retry["request_on_connection"]) == ("GET", "/orders", 1)

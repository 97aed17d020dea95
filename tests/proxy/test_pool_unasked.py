"""A pooled upstream connection that the upstream answered unasked (a 408, as servers send
before closing an idle connection) and closed is never reused: its bytes are not the next
request's answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from faultserver.testing import FaultServer
from tests.proxy.conftest import proxy_profile
from tests.proxy.raw_upstream import RawUpstream, read_head

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
_UNASKED = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _UnaskedUpstream(RawUpstream):
    """Answers one request per connection with 200 keep-alive, then at once sends an unasked
    408 and a FIN on that connection (before the next request could come)."""

    def serve(self, conn: socket.socket) -> None:
        if read_head(conn, b"") is None:
            return
        conn.sendall(_OK)
        time.sleep(0.05)
        conn.sendall(_UNASKED)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


@pytest.fixture
def unasked() -> Iterator[_UnaskedUpstream]:
    upstream = _UnaskedUpstream()
    yield upstream
    upstream.close()


def test_unasked_answer_on_an_idle_pooled_connection_is_not_relayed(
    faultserver: Callable[..., FaultServer], unasked: _UnaskedUpstream
) -> None:
    srv = faultserver(proxy_profile(unasked.url))
    with httpx.Client() as client:
        first = client.get(srv.url + "/one")
        time.sleep(0.3)  # the upstream's 408 and FIN are in by now, well within a second
        second = client.get(srv.url + "/two")
    assert (first.status_code, first.text) == (200, "ok\n")
    assert (second.status_code, second.text) == (200, "ok\n")
    assert unasked.connections == 2
    forwards = srv.wait_for(type="forward", path="/two")
    assert forwards["reused"] is False

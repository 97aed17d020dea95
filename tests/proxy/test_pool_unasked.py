"""A pooled upstream connection that the upstream answered unasked (a 408, as servers send
before closing an idle connection) and closed is never reused: its bytes are not the next
request's answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from faultserver.testing import FaultServer
from tests.proxy.conftest import proxy_profile

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
_UNASKED = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _UnaskedUpstream:
    """Answers one request per connection with 200 keep-alive, then at once sends an unasked
    408 and a FIN on that connection (before the next request could come)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
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

    def close(self) -> None:
        self.sock.close()


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

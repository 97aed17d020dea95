"""Faults in front of a real service: faultserver as a proxy between the client under test
and a small app served in a thread. The first call is reset; the client must retry."""

import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest


def inventory_app(environ, start_response):  # the real service (here, a tiny WSGI app)
    start_response("200 OK", [("content-type", "application/json")])
    return [b'{"stock": 7}']


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    server = make_server("127.0.0.1", 0, inventory_app, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def get_stock(base_url: str, attempts: int = 2) -> int:
    """The client under test: it retries a call whose connection broke."""
    with httpx.Client(timeout=5) as client:
        for attempt in range(attempts):
            try:
                return client.get(base_url + "/stock").json()["stock"]
            except httpx.TransportError:
                if attempt == attempts - 1:
                    raise
    raise AssertionError("unreachable")


# No `upstream:` here: the fixture's `upstream=` points the listener at the service.
PROFILE = """
version: 1
listeners:
  - name: inventory
    bind: 127.0.0.1:0
    rules:
      - {name: drop-first, match: {path: /stock}, times: 1, action: reset}
"""


def test_client_retries_through_a_reset(faultserver, service):
    srv = faultserver(PROFILE, upstream=service)
    assert get_stock(srv.url) == 7  # the real service's answer, on the second try
    assert srv.wait_for(type="forward", path="/stock")["upstream_status"] == 200
    assert len(srv.events(type="fault", rule="drop-first")) == 1


def test_client_without_retry_sees_the_reset(faultserver, service):
    srv = faultserver(PROFILE, upstream=service)
    with pytest.raises(httpx.ReadError):
        get_stock(srv.url, attempts=1)

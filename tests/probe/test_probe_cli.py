"""`faultserver probe` given bad input: one line on standard error, exit 2, at once.

Each runs the command as a user would (a subprocess). The "gateway" that does not reach
the backend is a plain HTTP server answering 404 to everything, as a gateway whose route
points elsewhere would.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
from collections.abc import Iterator

import pytest

from faultserver._processes import free_port
from tests.support.cli import run_cli

#: Bad input is found before any scenario runs: well within this.
AT_ONCE_S = 10.0


def probe(*args: object) -> tuple[int, str, str, float]:
    done, took = run_cli("probe", *args, timeout=60)
    return done.returncode, done.stdout, done.stderr, took


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"no such route\n"
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def wrong_route() -> Iterator[str]:
    """A "gateway" whose route reaches no backend: 404 for every request."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_gateway_url_that_does_not_reach_the_backend_exits_2_at_once(wrong_route):
    port = free_port()
    status, out, err, took = probe("--gateway", wrong_route, "--backend", f"127.0.0.1:{port}")
    assert status == 2
    assert out == ""
    assert re.fullmatch(
        rf"faultserver: probe: no request reached the backend at 127\.0\.0\.1:{port}: "
        rf"GET /api/probe-preflight-1 got 404 from the gateway; point the gateway's route for "
        rf"{re.escape(wrong_route)} at 127\.0\.0\.1:{port}\n",
        err,
    )
    assert took < AT_ONCE_S


def test_probe_gateway_that_is_down_exits_2():
    gateway, backend = free_port(), free_port()
    url = f"http://127.0.0.1:{gateway}"
    status, _out, err, took = probe("--gateway", url, "--backend", f"127.0.0.1:{backend}")
    assert status == 2
    assert err == f"faultserver: probe: the gateway {url} is down: it refused the connection\n"
    assert took < AT_ONCE_S


def test_probe_backend_port_taken_exits_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _out, err, _took = probe("--gateway", "http://127.0.0.1:9", "--backend", f"127.0.0.1:{port}")
    assert status == 2
    assert err == (
        f"faultserver: probe: --backend 127.0.0.1:{port}: cannot bind 127.0.0.1:{port}: "
        "Address already in use\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gateway", "ftp://gw/x", "--backend", "127.0.0.1:8080"],
         "probe: --gateway: expected an http:// or https:// URL such as http://127.0.0.1:8080/api, "
         "got 'ftp://gw/x'"),
        (["--gateway", "http://gw/x?a=1", "--backend", "127.0.0.1:8080"],
         "probe: --gateway: expected a URL without a query or fragment, got 'http://gw/x?a=1'"),
        (["--gateway", "http://gw/x", "--backend", "8080"],
         "probe: --backend: expected host:port such as '127.0.0.1:8080' or '[::1]:8080', got '8080'"),
        (["--gateway", "http://gw/x", "--backend", "127.0.0.1:0"],
         "probe: --backend: expected the port your gateway's route points at, got port 0"),
        (["--gateway", "http://gw/x"], "probe: --backend required (or --self-test)"),
        (["--self-test", "--gateway", "http://gw/x"],
         "probe: --self-test starts its own nginx: give neither --gateway nor --backend"),
        (["--gateway", "http://gw/x", "--backend", "127.0.0.1:8080", "--scenarios", "fin"],
         "probe: --scenarios: unknown scenario 'fin'; expected some of healthy, refused, connect-timeout, "
         "fin-get, fin-post, rst-get, rst-post, idle-close, reset, partial-response, slow-first-byte, "
         "pool-exhaustion"),
        (["--gateway", "http://gw/x", "--backend", "127.0.0.1:8080", "--max-wait", "0"],
         "probe: --max-wait: expected a duration greater than 0, got '0'"),
    ],
)
def test_probe_bad_arguments_exit_2_with_one_line(args, message):
    status, out, err, _took = probe(*args)
    assert (status, out, err) == (2, "", f"faultserver: {message}\n")

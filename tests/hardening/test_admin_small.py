"""Small admin API hardening (issue 19 item 13, the admin side): deeply nested JSON, the
open-file limit, requests in flight across a reset, and a token that is not ASCII."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import threading
import time

import httpx
import pytest

from faultserver.testing import FaultServer, load_source
from tests.support.cli import serve_cli, start_cli
from tests.support.profiles import one_listener
from tests.support.wait import wait_until

PROFILE = "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n"
DEEP_400 = "body is not valid JSON: nested deeper than 32 levels"


# --- deeply nested JSON -------------------------------------------------------------------


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """One server for the nested bodies: each is refused and changes nothing."""
    yield from serve_cli(tmp_path_factory.mktemp("nested"), PROFILE)


@pytest.mark.parametrize("depth", [40, 100_000])
@pytest.mark.parametrize(
    ("method", "path", "wrap"),
    [
        ("PATCH", "/listeners/backend", lambda nested: '{"rules": ' + nested + "}"),
        ("POST", "/listeners/backend/drop", lambda nested: '{"how": ' + nested + "}"),
    ],
    ids=["patch", "drop"],
)
def test_admin_deeply_nested_json_is_400(nested, method, path, wrap, depth):
    body = wrap("[" * depth + "]" * depth)
    with nested.client() as api:
        r = api.request(method, path, content=body.encode(), headers={"content-type": "application/json"})
        assert (r.status_code, r.json()) == (400, {"error": DEEP_400})
        assert api.get("/listeners/backend").json()["accept"] == "open"
    assert "Traceback" not in nested.log()


# --- the open-file limit ---------------------------------------------------------------------

FD_LIMIT = 64


def test_admin_answers_at_the_open_file_limit_without_a_traceback_storm(tmp_path):
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    srv = start_cli(tmp_path, PROFILE, preexec_fn=low_limit)
    held: list[socket.socket] = []
    try:
        port = srv.port("backend")
        for _ in range(FD_LIMIT + 20):  # more than the server has descriptors for
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        srv.wait_log("accept failed", timeout=10)  # the data plane is at the limit
        time.sleep(1.0)  # ten of Trio's retries, were it still the one accepting
        started = time.monotonic()
        with srv.client(timeout=5) as api:
            listeners = api.get("/listeners").json()["listeners"]
            assert listeners[0]["open_connections"] > FD_LIMIT // 2
            # the way out: drop them, through the admin API
            assert api.post("/listeners/backend/drop", json={"how": "rst"}).status_code == 200
        took = time.monotonic() - started
        assert took < 3, f"the admin API took {took:.1f} s at the open-file limit"
        for sock in held:
            sock.close()
        held.clear()
        with srv.client(timeout=5) as api:
            wait_until(lambda: api.get("/healthz").status_code == 200, what="the admin API after the drop")
        code, _ = srv.terminate()
        assert code == 0
    finally:
        for sock in held:
            sock.close()
        srv.kill()
    log = srv.log()
    assert "Traceback" not in log, log[-3000:]
    assert len(log.splitlines()) < 30, log


# --- a reset while requests are in flight -----------------------------------------------------


def test_admin_reset_keeps_requests_in_flight_counted():
    profile = one_listener(rules=[{"action": "respond", "delay": "1s"}])
    srv = FaultServer(load_source(profile), admin=True)
    srv.start()
    try:
        answered: list[int] = []
        def slow_request() -> None:
            answered.append(httpx.get(srv.url + "/slow", timeout=10).status_code)

        client = threading.Thread(target=slow_request)
        client.start()
        with httpx.Client(base_url=srv.control_url, timeout=5) as api:
            def in_flight() -> int:
                return api.get("/listeners/backend").json()["in_flight"]

            wait_until(lambda: in_flight() == 1, what="a request in flight")
            assert api.post("/reset").status_code == 200
            info = api.get("/listeners/backend").json()
            assert (info["in_flight"], info["requests"], info["open_connections"]) == (1, 0, 1)
            assert 'faultserver_requests_in_flight{listener="backend"} 1\n' in api.get("/metrics").text
            client.join(10)
            assert answered == [200]
            wait_until(lambda: in_flight() == 0, what="the request answered")
            assert in_flight() == 0  # not -1
    finally:
        srv.stop()


# --- a token that is not ASCII ----------------------------------------------------------------

TOKEN = "s3crét-ключ"


def test_admin_non_ascii_token_matches_httpx(tmp_path):
    srv = start_cli(tmp_path, PROFILE, env={"FAULTSERVER_TOKEN": TOKEN})
    try:
        good = {"authorization": f"Bearer {TOKEN}".encode()}  # the UTF-8 bytes, as clients send them
        r = httpx.get(srv.control_url + "/listeners", headers=good, timeout=5)
        assert r.status_code == 200, r.text
        wrong = {"authorization": "Bearer s3cret-ключ".encode()}
        assert httpx.get(srv.control_url + "/listeners", headers=wrong, timeout=5).status_code == 401
    finally:
        srv.kill()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_admin_non_ascii_token_matches_curl(tmp_path):
    srv = start_cli(tmp_path, PROFILE, env={"FAULTSERVER_TOKEN": TOKEN})
    try:
        done = subprocess.run(
            ["curl", "-sS", "--max-time", "5", "-H", f"Authorization: Bearer {TOKEN}",
             srv.control_url + "/listeners"],
            capture_output=True, timeout=10, env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["listeners"][0]["name"] == "backend"
    finally:
        srv.kill()

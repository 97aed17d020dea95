"""A web page cannot drive the admin API (issue 19 item 1): no DNS rebinding (`Host`), no
cross-site request (`Origin`), no form or text body passed off as JSON (415). Each case with
httpx and with curl, against `faultserver run`; scripts keep working as documented."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import httpx
import pytest

from tests.support.cli import serve_cli

PROFILE = "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n"
NEW_PROFILE = "version: 1\nlisteners:\n  - name: other\n    bind: 127.0.0.1:0\n"
HOST_403 = (
    "Host 'attacker.example' does not name this admin API (expected its address, localhost or a "
    "name in control.allowed_hosts, with its port)"
)
ORIGIN_403 = "Origin 'http://evil.example' is not this admin API's (cross-origin requests are refused)"
JSON_415 = "expected Content-Type application/json for a body, got 'text/plain'"

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """One server for the tests whose writes are all refused: they change nothing."""
    yield from serve_cli(tmp_path_factory.mktemp("csrf"), PROFILE)


@pytest.fixture
def own_srv(tmp_path):
    """A server of the test's own, for a write that is let through (a reset, a drop, a profile)."""
    yield from serve_cli(tmp_path, PROFILE)


def curl(*args: str, data: str | None = None) -> tuple[int, dict]:
    """curl's status and JSON body (`-w` puts the status on the last line)."""
    cmd = ["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, input=data)
    assert done.returncode == 0, done.stderr
    body, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(body) if body else {}


def held_connection(srv) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port("backend")), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    return sock


def assert_still_open(sock: socket.socket) -> None:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200"), "the connection was dropped"
    sock.close()


# --- a cross-site write (CSRF) ----------------------------------------------------------------


def test_admin_cross_origin_drop_is_403_and_drops_nothing_httpx(srv):
    held = held_connection(srv)
    with srv.client() as api:
        r = api.post(
            "/listeners/backend/drop",
            content=b'{"how":"rst"}',
            headers={"origin": "http://evil.example", "content-type": "text/plain"},
        )
        assert (r.status_code, r.json()) == (403, {"error": ORIGIN_403})
        assert r.headers["connection"] == "close"
        # the same page, with a JSON type it cannot send without a preflight: still its Origin
        r = api.post("/listeners/backend/drop", json={"how": "rst"}, headers={"origin": "http://evil.example"})
        assert r.status_code == 403
        r = api.post("/reset", headers={"origin": "null"})  # a sandboxed page or a file
        assert r.status_code == 403
    assert_still_open(held)


@needs_curl
def test_admin_cross_origin_drop_is_403_and_drops_nothing_curl(srv):
    held = held_connection(srv)
    code, body = curl(
        "-X", "POST", "-H", "Origin: http://evil.example", "-H", "Content-Type: text/plain",
        "--data", '{"how":"rst"}', srv.control_url + "/listeners/backend/drop",
    )
    assert (code, body) == (403, {"error": ORIGIN_403})
    assert_still_open(held)


def test_admin_same_origin_is_allowed(own_srv):
    with own_srv.client() as api:
        r = api.post("/reset", headers={"origin": own_srv.control_url})
        assert r.status_code == 200
        local = own_srv.control_url.replace("127.0.0.1", "localhost")
        r = api.post("/listeners/backend/drop", json={"how": "fin"}, headers={"origin": local})
        assert r.status_code == 200


# --- DNS rebinding: a foreign Host ------------------------------------------------------------


def test_admin_foreign_host_is_403_for_reads_and_writes_httpx(srv):
    with srv.client() as api:
        host = {"host": "attacker.example"}
        r = api.get("/events", headers=host)
        assert (r.status_code, r.json()) == (403, {"error": HOST_403})
        r = api.patch("/listeners/backend", json={"accept": "refuse"}, headers=host)
        assert r.status_code == 403
        assert api.get("/listeners/backend").json()["accept"] == "open"


@needs_curl
def test_admin_foreign_host_is_403_curl(srv):
    code, body = curl("-H", "Host: attacker.example", srv.control_url + "/events")
    assert (code, body) == (403, {"error": HOST_403})
    code, _ = curl(
        "-X", "PATCH", "-H", "Host: attacker.example", "-H", "Content-Type: application/json",
        "--data", '{"accept": "refuse"}', srv.control_url + "/listeners/backend",
    )
    assert code == 403
    code, body = curl(srv.control_url + "/listeners/backend")
    assert (code, body["accept"]) == (200, "open")


def test_admin_loopback_names_are_allowed_hosts(srv):
    port = srv.control_port
    with srv.client() as api:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert api.get("/listeners", headers={"host": host}).status_code == 200, host
        assert api.get("/listeners", headers={"host": f"localhost:{port + 1}"}).status_code == 403


def test_admin_probes_answer_any_host(srv):
    # a Kubernetes probe sends the pod's IP as Host
    for path, body in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        r = httpx.get(srv.control_url + path, headers={"host": "10.0.0.7:8474"}, timeout=5)
        assert (r.status_code, r.json()) == (200, body)
        if shutil.which("curl"):
            assert curl("-H", "Host: 10.0.0.7:8474", srv.control_url + path) == (200, body)


@pytest.mark.parametrize("where", ["argument", "profile"])
def test_admin_allowed_hosts_names_more_hosts(adm_server, where):
    if where == "argument":
        srv = adm_server(allowed_hosts=["faultserver.test"])
    else:
        srv = adm_server(profile=PROFILE + "control: {allowed_hosts: [FaultServer.Test.]}\n")
    port = int(srv.control_url.rsplit(":", 1)[1])
    with httpx.Client(base_url=srv.control_url, timeout=5) as api:
        assert api.get("/listeners", headers={"host": f"faultserver.test:{port}"}).status_code == 200
        assert api.get("/listeners", headers={"host": f"FaultServer.Test:{port}"}).status_code == 200
        assert api.get("/listeners", headers={"host": f"other.test:{port}"}).status_code == 403


# --- a body must say its type -------------------------------------------------------------------


def test_admin_text_and_form_bodies_are_415_httpx(srv):
    held = held_connection(srv)
    with srv.client() as api:
        text = {"content-type": "text/plain"}
        r = api.post("/listeners/backend/drop", content=b'{"how":"rst"}', headers=text)
        assert (r.status_code, r.json()) == (415, {"error": JSON_415})
        r = api.post("/listeners/backend/drop", data={"how": "rst"})  # a form
        assert r.status_code == 415
        r = api.post("/listeners/backend/drop", content=b'{"how":"rst"}')  # no type at all
        assert (r.status_code, r.json()["error"]) == (
            415, "expected Content-Type application/json for a body, got none"
        )
        r = api.put("/profile", content=NEW_PROFILE.encode(), headers={"content-type": "text/plain"})
        assert r.status_code == 415
    assert_still_open(held)


@needs_curl
def test_admin_text_and_form_bodies_are_415_curl(own_srv, tmp_path):
    profile = tmp_path / "new.yaml"
    profile.write_text(NEW_PROFILE)
    url = own_srv.control_url
    code, body = curl("-X", "POST", "-H", "Content-Type: text/plain", "--data", '{"how":"rst"}',
                      url + "/listeners/backend/drop")
    assert (code, body) == (415, {"error": JSON_415})
    code, _ = curl("-X", "PUT", "--data-binary", f"@{profile}", url + "/profile")  # a form type
    assert code == 415
    code, body = curl("-X", "PUT", "-H", "Content-Type: application/yaml", "--data-binary", f"@{profile}",
                      url + "/profile")
    assert (code, [entry["name"] for entry in body["listeners"]]) == (200, ["other"])
    code, body = curl("-X", "PATCH", "-H", "Content-Type: application/json", "--data", '{"accept": "refuse"}',
                      url + "/listeners/other")
    assert (code, body["accept"]) == (200, "refuse")


@needs_curl
def test_admin_bodyless_post_needs_no_type_curl(own_srv):
    code, body = curl("-X", "POST", own_srv.control_url + "/reset")
    assert (code, body) == (200, {"reset": True})
    code, body = curl("-X", "POST", own_srv.control_url + "/listeners/backend/drop")
    assert (code, body) == (200, {"dropped": 0, "how": "fin", "idle_only": False})


def test_admin_bodyless_post_needs_no_type_httpx(own_srv):
    with own_srv.client() as api:
        assert api.post("/reset").json() == {"reset": True}
        yaml = {"content-type": "application/yaml"}
        assert api.put("/profile", content=NEW_PROFILE.encode(), headers=yaml).status_code == 200
        as_json = {"version": 1, "listeners": [{"name": "b", "bind": "127.0.0.1:0"}]}
        assert api.put("/profile", json=as_json).status_code == 200


@pytest.fixture
def adm_server():
    from faultserver.testing import FaultServer, load_source

    started = []

    def start(profile=PROFILE, **kwargs):
        server = FaultServer(load_source(profile), admin=True, **kwargs)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()

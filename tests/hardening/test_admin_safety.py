"""The admin API's safety (issue 8): a token off loopback, body size limits, no file access by
the caller's say-so, and no new ports below 1024 or off loopback without `--allow-any-bind`.

Each test runs `faultserver run` in a subprocess with its working directory in `tmp_path`,
so "no file was written" can be checked by listing it.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import httpx
import pytest
from _hardening import connect, healthy

from tests.support.cli import CliProcesses, run_cli, serve_cli
from tests.support.net import recv_to_fin

PROFILE = "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n"
REFUSED = (
    "faultserver: control: refusing to bind {bind} without a token: set control.token or "
    "FAULTSERVER_TOKEN (anyone who can reach it could change the faults)\n"
)
TOO_LARGE = {"error": "request body too large (at most 1048576 bytes)"}
YAML = {"content-type": "application/yaml"}
JSON = {"content-type": "application/json"}


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Start `faultserver run` (cwd: tmp_path); every one started is stopped at the end."""
    monkeypatch.chdir(tmp_path)
    processes = CliProcesses(tmp_path)

    def start(*args: str, profile: str = PROFILE, env: dict | None = None):
        return processes.start(profile, *args, env=env)

    yield start
    processes.cleanup()
    for srv in processes.started:
        assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture(scope="module")
def unchanged(tmp_path_factory):
    """One server for the tests whose every write is refused: they leave it as it started."""
    yield from serve_cli(tmp_path_factory.mktemp("admin"), PROFILE)


def _admin(srv, token: str | None = None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=srv.control_url, timeout=10, headers=headers)


# --- a token off loopback ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, profile_control, shown",
    [
        (["--control", "0.0.0.0:0"], None, "0.0.0.0:0"),
        (["--control", "[::]:0"], None, "[::]:0"),
        ([], "control:\n  bind: 0.0.0.0:0\n", "0.0.0.0:0"),
    ],
    ids=["cli-any-ipv4", "cli-any-ipv6", "profile-control-bind"],
)
def test_admin_off_loopback_without_token_refuses_to_start(tmp_path, args, profile_control, shown):
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE + (profile_control or ""))
    env = {k: v for k, v in os.environ.items() if k != "FAULTSERVER_TOKEN"}
    done, took = run_cli("run", str(profile), *args, env=env)
    assert done.returncode == 2
    assert done.stdout == ""  # nothing started: no listener line
    assert done.stderr == REFUSED.format(bind=shown)
    assert took < 10


def test_admin_empty_token_counts_as_none(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE)
    done, _ = run_cli(
        "run", str(profile), "--control", "0.0.0.0:0", env={**os.environ, "FAULTSERVER_TOKEN": ""}
    )
    assert done.returncode == 2
    assert done.stderr == REFUSED.format(bind="0.0.0.0:0")


def test_admin_with_token_every_request_needs_it(cli):
    srv = cli(env={"FAULTSERVER_TOKEN": "s3cret-token"})
    with _admin(srv) as anon, _admin(srv, "wrong") as wrong, _admin(srv, "s3cret-token") as good:
        for client in (anon, wrong):
            for method, path in (
                ("GET", "/profile"),
                ("PUT", "/profile"),
                ("POST", "/reset"),
                ("GET", "/listeners"),
            ):
                r = client.request(method, path, content=b"version: 1\nlisteners: []\n", headers=YAML)
                assert r.status_code == 401
                assert r.json() == {"error": "missing or wrong token: send 'Authorization: Bearer TOKEN'"}
                assert r.headers["connection"] == "close"  # the body may be unread: no reuse
        assert good.get("/listeners").status_code == 200
        assert anon.get("/healthz").status_code == 200  # probes need no token


def test_admin_401_before_the_body_arrives_tells_the_client_to_close(cli):
    """The 401 goes out on the headers alone; the connection then closes, and says so first."""
    srv = cli(env={"FAULTSERVER_TOKEN": "s3cret-token"})
    port = int(srv.control_url.rsplit(":", 1)[1])
    body = PROFILE.encode()
    with connect(port) as sock:
        sock.sendall(
            b"PUT /profile HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/yaml\r\n"
            b"Content-Length: %d\r\n\r\n" % (port, len(body))
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 401")
    assert b"\r\nconnection: close\r\n" in head.lower()


# --- request size limits ----------------------------------------------------------------------


def test_admin_oversized_bodies_get_413_json(unchanged):
    srv = unchanged

    def chunks():
        for _ in range(40):  # 2.5 MiB, no Content-Length
            yield b"#" * 65536

    with _admin(srv) as admin:
        for method, path in (
            ("PUT", "/profile"),
            ("PATCH", "/listeners/backend"),
            ("POST", "/listeners/backend/drop"),
        ):
            r = admin.request(method, path, content=b"#" * (2 * 1024 * 1024), headers=JSON)
            assert (r.status_code, r.headers["content-type"], r.json()) == (
                413,
                "application/json",
                TOO_LARGE,
            )
            r = admin.request(method, path, content=chunks(), headers=JSON)
            assert (r.status_code, r.headers["content-type"], r.json()) == (
                413,
                "application/json",
                TOO_LARGE,
            )
            assert admin.get("/healthz").status_code == 200  # the same client goes on
        assert admin.get("/profile").json()["listeners"][0]["name"] == "backend"
    healthy(srv.port("backend"))


def test_admin_oversized_header_is_refused_and_server_goes_on(unchanged):
    srv = unchanged
    _host, port = srv.control_url.removeprefix("http://").rsplit(":", 1)
    with connect(int(port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        try:
            reply = recv_to_fin(sock)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:200]
    with _admin(srv) as admin:
        assert admin.get("/healthz").status_code == 200


# --- no file is read or written at the caller's say-so -------------------------------------


def test_admin_endpoints_are_exactly_the_documented_ones():
    """No static-file route (Quart adds /static/<path> unless told not to), nothing unlisted."""
    from faultserver._admin.app import create_app

    app = create_app(object())
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods
        if method not in ("HEAD", "OPTIONS")
    }
    assert routes == {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/listeners"),
        ("GET", "/listeners/<name>"),
        ("PATCH", "/listeners/<name>"),
        ("POST", "/listeners/<name>/drop"),
        ("GET", "/profile"),
        ("PUT", "/profile"),
        ("POST", "/reload"),  # its own file, or a shipped profile by name: never a file the caller names
        ("GET", "/events"),
        ("GET", "/events/stream"),
        ("POST", "/reset"),
        ("GET", "/metrics"),
        ("GET", "/state"),
        ("POST", "/schedule/pause"),
        ("POST", "/schedule/resume"),
        ("POST", "/panic"),
        # the dashboard's fixed files (faultserver/_admin/pages.py): no path names a file
        ("GET", "/"),
        ("GET", "/dashboard/dashboard.js"),
        ("GET", "/dashboard/dashboard.css"),
        ("GET", "/dashboard/favicon.svg"),
    }


def test_admin_put_profile_with_a_path_as_body_does_not_read_it(cli, tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text(PROFILE.replace("backend", "from-the-file") + "x-secret: hunter2\n")
    srv = cli()
    with _admin(srv) as admin:
        for body in (str(secret), f"file://{secret}", "/etc/passwd", json.dumps(str(secret))):
            r = admin.put("/profile", content=body.encode(), headers=YAML)
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "invalid profile"
            assert "hunter2" not in r.text and "root:" not in r.text
            assert r.json()["problems"][0].startswith("<request>:")
        # the query string names no file either: the body is the profile
        r = admin.put(
            "/profile",
            params={"path": str(secret), "file": str(secret)},
            content=PROFILE.encode(),
            headers=YAML,
        )
        assert r.status_code == 200
        assert [listener["name"] for listener in r.json()["listeners"]] == ["backend"]
        assert "from-the-file" not in admin.get("/listeners").text


def test_admin_get_profile_ignores_path_parameters(unchanged):
    srv = unchanged
    with _admin(srv) as admin:
        plain = admin.get("/profile")
        assert plain.status_code == 200
        for params in ({"path": "/etc/passwd"}, {"file": "/etc/passwd"}, {"source": "/etc/hostname"}):
            r = admin.get("/profile", params=params)
            assert (r.status_code, r.json()) == (200, plain.json())
            assert "root:" not in r.text
        for path in (
            "/static/../../../../etc/passwd",
            "/static/__init__.py",
            "/..%2f..%2fetc/passwd",
            "/etc/passwd",
        ):
            r = admin.get(path)
            assert r.status_code == 404, (path, r.text)
            assert r.headers["content-type"] == "application/json"
            assert "root:" not in r.text and "import" not in r.text


def test_admin_profile_body_naming_a_file_is_sent_literally(cli):
    """A response body that looks like a path is the path's text, not the file's content."""
    srv = cli()
    profile = PROFILE + "    response:\n      body: /etc/passwd\n"
    with _admin(srv) as admin:
        assert admin.put("/profile", content=profile.encode(), headers=YAML).status_code == 200
    reply = httpx.get(f"http://127.0.0.1:{srv.port('backend')}/", timeout=5)
    assert reply.content == b"/etc/passwd"


def test_admin_yaml_tags_build_nothing_and_write_nothing(cli, tmp_path):
    srv = cli()
    before = sorted(p.name for p in tmp_path.iterdir())
    bodies = [
        PROFILE + "    response: !!python/object/apply:os.system ['touch pwned']\n",
        PROFILE + "x-a: !!python/object/new:subprocess.Popen [['touch', 'pwned']]\n",
        PROFILE + "x-b: !!python/name:os.system\n",
    ]
    with _admin(srv) as admin:
        for body in bodies:
            r = admin.put("/profile", content=body.encode(), headers=YAML)
            assert r.status_code == 400, r.text
            assert "unsupported tag" in r.json()["problems"][0]
        # and the documented endpoints, called with path-like values, write nothing
        admin.get("/events", params={"since": "0", "file": "out.json"})
        admin.post("/reset", params={"path": "reset.txt"})
        admin.patch("/listeners/backend", json={"accept": "open"}, params={"path": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not Path("pwned").exists()


# --- binds: no privileged ports, no non-loopback addresses without --allow-any-bind ------------


def _with_listener(bind: str, name: str = "extra") -> str:
    return PROFILE + f"  - name: {name}\n    bind: '{bind}'\n"


@pytest.mark.parametrize(
    "bind, message",
    [
        (
            "127.0.0.1:80",
            "listener extra: port 80 is below 1024; start the server with --allow-any-bind to allow it",
        ),
        (
            "127.0.0.1:1",
            "listener extra: port 1 is below 1024; start the server with --allow-any-bind to allow it",
        ),
        (
            "0.0.0.0:0",
            "listener extra: 0.0.0.0 is not a loopback address; "
            "start the server with --allow-any-bind to allow it",
        ),
        (
            "[::]:0",
            "listener extra: :: is not a loopback address; "
            "start the server with --allow-any-bind to allow it",
        ),
    ],
    ids=["port-80", "port-1", "any-ipv4", "any-ipv6"],
)
def test_admin_put_profile_privileged_or_open_bind_is_403(unchanged, bind, message):
    srv = unchanged
    with _admin(srv) as admin:
        before = admin.get("/listeners").json()
        r = admin.put("/profile", content=_with_listener(bind).encode(), headers=YAML)
        assert (r.status_code, r.headers["content-type"], r.json()) == (
            403,
            "application/json",
            {"error": message},
        )
        assert admin.get("/listeners").json() == before  # nothing changed


def test_admin_put_profile_loopback_high_port_is_allowed(cli):
    srv = cli()
    with _admin(srv) as admin:
        r = admin.put("/profile", content=_with_listener("127.0.0.1:0").encode(), headers=YAML)
        assert r.status_code == 200, r.text
        extra = {entry["name"]: entry for entry in r.json()["listeners"]}["extra"]
    healthy(int(extra["url"].rsplit(":", 1)[1]))


def test_admin_put_profile_any_address_allowed_with_allow_any_bind(cli):
    srv = cli("--allow-any-bind")
    with _admin(srv) as admin:
        r = admin.put("/profile", content=_with_listener("0.0.0.0:0", "wide").encode(), headers=YAML)
        assert r.status_code == 200, r.text
        wide = {entry["name"]: entry for entry in r.json()["listeners"]}["wide"]
        assert wide["url"].startswith("http://0.0.0.0:")
        port = int(wide["url"].rsplit(":", 1)[1])
        try:
            healthy(port)  # reached through 127.0.0.1, which 0.0.0.0 includes
        finally:
            # close it again
            assert admin.put("/profile", content=PROFILE.encode(), headers=YAML).status_code == 200
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_admin_put_profile_low_port_not_refused_with_allow_any_bind(cli):
    """With the flag the check is off: the kernel decides (root binds, others get EACCES, 409)."""
    srv = cli("--allow-any-bind")
    with _admin(srv) as admin:
        r = admin.put("/profile", content=_with_listener("127.0.0.1:1").encode(), headers=YAML)
        assert r.status_code in (200, 409), r.text
        if r.status_code == 409:
            assert r.json()["error"].startswith("listener extra: cannot bind 127.0.0.1:1: ")
        else:
            try:
                healthy(1)
            finally:
                assert admin.put("/profile", content=PROFILE.encode(), headers=YAML).status_code == 200

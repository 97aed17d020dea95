"""The admin API's token (the README's "Admin API"): `Authorization: Bearer TOKEN` on
every endpoint but the probes (401 otherwise), compared in constant time as bytes; no token,
no public bind."""

from __future__ import annotations

import pytest

from faultserver._errors import StartError
from faultserver.testing import FaultServer, load_source

TOKEN = "s3cret-token"
MESSAGE_401 = "missing or wrong token: send 'Authorization: Bearer TOKEN'"

ENDPOINTS = [
    ("GET", "/listeners", None),
    ("GET", "/listeners/backend", None),
    ("PATCH", "/listeners/backend", {"accept": "refuse"}),
    ("POST", "/listeners/backend/drop", {"how": "rst"}),
    ("GET", "/profile", None),
    ("PUT", "/profile", {"version": 1, "listeners": [{"name": "x", "bind": "127.0.0.1:0"}]}),
    ("GET", "/events", None),
    ("GET", "/events/stream", None),
    ("POST", "/reset", None),
    ("GET", "/metrics", None),
    ("GET", "/no-such-endpoint", None),
    ("DELETE", "/healthz", None),
]
PROBES = [("GET", "/healthz", {"status": "ok"}), ("GET", "/readyz", {"status": "ready"})]


def secured(adm, **control):
    return adm.profile(control={"token": TOKEN, **control})


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}", "Bearer",
     f"Bearer  {TOKEN}"],
    ids=["none", "wrong", "longer", "shorter", "no-scheme", "basic", "empty", "two-spaces"],
)
def test_token_every_endpoint_refuses_without_the_token(admin, adm, authorization):
    srv, api = admin(secured(adm))
    headers = {"authorization": authorization} if authorization is not None else {}
    for method, path, body in ENDPOINTS:
        r = api.request(method, path, json=body, headers=headers)
        adm.assert_json_error(r, 401, MESSAGE_401)
        assert r.headers["www-authenticate"] == 'Bearer realm="faultserver"'
    for method, path, body in PROBES:  # probes send no token, and learn nothing but "up"
        r = api.request(method, path, headers=headers)
        assert (r.status_code, r.json()) == (200, body)
    # and nothing happened
    assert srv["backend"].accept == "open"
    assert list(srv.listeners) == ["backend"]
    assert not srv.events(type="reset")


def test_token_every_endpoint_works_with_the_token(admin, adm):
    srv, api = admin(secured(adm), token=TOKEN)
    assert api.get("/healthz").status_code == 200
    assert api.get("/listeners").status_code == 200
    assert api.get("/listeners/backend").status_code == 200
    assert api.patch("/listeners/backend", json={"accept": "refuse"}).json()["accept"] == "refuse"
    assert api.post("/listeners/backend/drop", json={"how": "rst"}).json()["dropped"] == 0
    assert api.get("/profile").json()["control"] == {"token": TOKEN}
    assert api.get("/events").status_code == 200
    assert api.post("/reset").json() == {"reset": True}
    assert srv["backend"].accept == "open"
    assert api.get("/metrics").status_code == 200
    with api.stream("GET", "/events/stream") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
    adm.assert_json_error(api.get("/no-such-endpoint"), 404)
    r = api.put("/profile", json={"version": 1, "listeners": [{"name": "x", "bind": "127.0.0.1:0"}]})
    assert r.status_code == 200
    assert list(srv.listeners) == ["x"]
    # the token of the profile in force at start stays: a reload does not change it
    assert api.get("/healthz").status_code == 200


def test_token_is_compared_in_constant_time(admin, adm, monkeypatch):
    import faultserver._admin.guard as guard_module

    calls = []
    real = guard_module.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(guard_module.hmac, "compare_digest", spy)
    _srv, api = admin(secured(adm))
    assert api.get("/listeners", headers={"authorization": "Bearer nope"}).status_code == 401
    assert api.get("/listeners", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert api.get("/listeners", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200
    assert calls == [
        (b"nope", TOKEN.encode()),
        (TOKEN.encode(), TOKEN.encode()),
        (TOKEN.encode(), TOKEN.encode()),
    ]


def test_token_401_response_closes_with_fin_when_asked(admin, adm):
    srv, _api = admin(secured(adm))
    port = int(srv.control_url.rsplit(":", 1)[1])
    sock = adm.connect(port, timeout=1.0)
    sock.sendall(f"GET /listeners HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):  # a timeout here: no FIN within a second
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 401 ")


def test_token_given_to_the_server_takes_precedence_over_the_profile(adm):
    srv = FaultServer(load_source(secured(adm)), admin=True, token="from-env")
    srv.start()
    try:
        import httpx

        with httpx.Client(base_url=srv.control_url, timeout=5) as api:
            assert api.get("/listeners", headers={"authorization": "Bearer from-env"}).status_code == 200
            assert api.get("/listeners", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 401
    finally:
        srv.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_non_loopback_control_without_token_refuses_to_start(adm, host):
    srv = FaultServer(load_source(adm.profile()), admin=True, control=(host, 0))
    shown = f"[{host}]" if ":" in host else host
    with pytest.raises(StartError, match=(
        rf"^control: refusing to bind {shown.replace('[', '.').replace(']', '.')}:0 without a token: set "
        r"control.token or FAULTSERVER_TOKEN \(anyone who can reach it could change the faults\)$"
    )):
        srv.start()
    assert not srv.events(type="mode")  # refused before any listener opened

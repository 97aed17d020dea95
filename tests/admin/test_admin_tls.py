"""The admin API and TLS listeners: `GET /listeners` shows the TLS in force, and `PATCH
/listeners/NAME` with `{"tls": {"certificate": MODE}}` switches certificates for new
handshakes; connections already made keep theirs."""

from __future__ import annotations

import socket
import ssl
import subprocess

from tests.support.profiles import TEXT_OK


def tls_listener(adm, **tls):
    return adm.profile(adm.listener(response=TEXT_OK, tls={"generate": True, **tls}))


def curl(url: str, ca: str) -> tuple[int, str]:
    done = subprocess.run(["curl", "-sS", "--cacert", ca, "-m", "5", "-o", "/dev/null", url],
                          capture_output=True, text=True, timeout=15)
    return done.returncode, (done.stderr.splitlines() or [""])[0]


def test_get_listeners_shows_tls(admin, adm):
    srv, api = admin(tls_listener(adm, min_version="1.2", names=["api.internal"]))
    view = api.get("/listeners/backend").json()
    assert view["url"].startswith("https://")
    tls = view["tls"]
    assert tls["ca"] == srv["backend"].ca_path
    assert (tls["generated"], tls["min_version"], tls["max_version"]) == (True, "1.2", None)
    assert (tls["alpn"], tls["client_auth"]) == (["http/1.1"], "none")
    certificate = tls["certificate"]
    assert certificate["mode"] == "valid"
    assert certificate["names"] == ["127.0.0.1", "localhost", "::1", "api.internal"]
    assert len(certificate["sha256"].split(":")) == 32
    assert certificate["not_before"] < certificate["not_after"]


def test_plain_listener_shows_no_tls(admin, adm):
    _srv, api = admin(adm.profile())
    assert api.get("/listeners/backend").json()["tls"] is None


def test_patch_certificate_switches_new_handshakes_only(admin, adm):
    srv, api = admin(tls_listener(adm))
    backend = srv["backend"]
    context = ssl.create_default_context(cafile=backend.ca_path)
    # a connection made before the switch keeps its certificate and its session
    with socket.create_connection(("127.0.0.1", backend.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as before:
            r = api.patch("/listeners/backend", json={"tls": {"certificate": "expired"}})
            assert r.status_code == 200
            assert r.json()["tls"]["certificate"]["mode"] == "expired"
            assert curl(backend.url, backend.ca_path) == (
                60, "curl: (60) SSL certificate problem: certificate has expired"
            )
            before.sendall(b"GET /still HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            assert before.recv(100).startswith(b"HTTP/1.1 200 OK")
    event = srv.wait_for(type="certificate")
    assert event["mode"] == "expired"
    assert api.patch("/listeners/backend", json={"tls": {"certificate": "VALID"}}).status_code == 200
    assert curl(backend.url, backend.ca_path) == (0, "")


def test_patch_certificate_mistakes_are_400s(admin, adm):
    _srv, api = admin(adm.profile(adm.listener(), adm.listener("tls", tls={"generate": True})))
    r = api.patch("/listeners/backend", json={"tls": {"certificate": "expired"}})
    assert r.status_code == 400
    assert "cannot switch certificates: only a TLS listener with generate: true can" in r.json()["error"]
    r = api.patch("/listeners/tls", json={"tls": {"certificate": "rotten"}})
    assert r.status_code == 400
    assert r.json()["error"].startswith("tls.certificate: expected one of valid, expired, not_yet_valid")
    r = api.patch("/listeners/tls", json={"tls": {"cert": "x.pem"}})
    assert r.status_code == 400
    assert r.json()["error"] == 'tls: expected {"certificate": MODE}'

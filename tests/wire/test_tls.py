"""TLS listeners as real clients see them: the handshake faults, each certificate fault, the
faults after the handshake, and what is not TLS.

Every case runs curl, httpx and requests against the same listener, side by side (one
thread each), and asserts what each reports: curl's exit code and message, the exception
type and its message. The messages are OpenSSL's and the clients' own, word for word.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import trustme

from tests.support.profiles import TEXT_OK, one_listener

#: How long a client waits on a hanging handshake (short: the outcome is the timeout itself).
WAIT_S = 1.0


def tls_profile(rules: list[dict[str, Any]] | None = None, **tls: Any) -> dict[str, Any]:
    return one_listener(response=TEXT_OK, tls={"generate": True, **tls}, rules=rules or [])


def curl(url: str, ca: str, *extra: str) -> tuple[int, str]:
    """curl's exit code and the first line it wrote to stderr."""
    done = subprocess.run(
        ["curl", "-sS", "--cacert", ca, "--connect-timeout", str(WAIT_S), "-m", str(WAIT_S + 1),
         "-o", "/dev/null", *extra, url],
        capture_output=True, text=True, timeout=15,
    )
    return done.returncode, (done.stderr.splitlines() or [""])[0]


def with_httpx(url: str, ca: str) -> object:
    try:
        return httpx.get(url, verify=ssl.create_default_context(cafile=ca), timeout=WAIT_S).status_code
    except httpx.HTTPError as exc:
        return exc


def with_requests(url: str, ca: str) -> object:
    try:
        return requests.get(url, verify=ca, timeout=WAIT_S).status_code
    except requests.RequestException as exc:
        return exc


def with_aiohttp(url: str, ca: str) -> object:
    async def get() -> object:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=WAIT_S, sock_read=WAIT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(url, ssl=ssl.create_default_context(cafile=ca)) as answer:
                    return answer.status
        except aiohttp.ClientError as exc:
            return exc

    return asyncio.run(get())


def side_by_side(url: str, ca: str) -> dict[str, Any]:
    """curl, httpx, requests and aiohttp at once (a hanging handshake costs its wait once)."""
    seen: dict[str, Any] = {}
    clients: dict[str, Callable[[], object]] = {
        "curl": lambda: curl(url, ca),
        "httpx": lambda: with_httpx(url, ca),
        "requests": lambda: with_requests(url, ca),
        "aiohttp": lambda: with_aiohttp(url, ca),
    }

    def run(name: str) -> None:
        seen[name] = clients[name]()

    threads = [threading.Thread(target=run, args=(name,)) for name in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert set(seen) == set(clients), f"a client did not finish: {seen}"
    return seen


def root_cause(exc: BaseException) -> BaseException:
    """requests wraps urllib3's error, which wraps the socket's: the innermost one."""
    while True:
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        reason = getattr(exc, "reason", None)
        nxt = inner or (reason if isinstance(reason, BaseException) else None) or exc.__context__
        if nxt is None or nxt is exc:
            return exc
        exc = nxt


# --- healthy -------------------------------------------------------------------------------


def test_tls_listener_serves_https_with_a_generated_ca(faultserver):
    srv = faultserver(tls_profile())
    backend = srv["backend"]
    assert backend.url.startswith("https://127.0.0.1:")
    seen = side_by_side(backend.url + "/ok", backend.ca_path)
    assert seen == {"curl": (0, ""), "httpx": 200, "requests": 200, "aiohttp": 200}
    handshakes = srv.events(type="tls_handshake")
    assert len(handshakes) == 4
    assert {e["version"] for e in handshakes} == {"TLSv1.3"}
    # ALPN: curl, httpx and requests offer it; aiohttp (asyncio's TLS) does not
    assert sorted(str(e["alpn"]) for e in handshakes) == ["None", "http/1.1", "http/1.1", "http/1.1"]
    assert all(e["sni"] is None for e in handshakes)  # an IP address is never sent as SNI
    assert all(e["duration_ms"] >= 0 for e in handshakes)
    # the fixture's context trusts the CA too
    with httpx.Client(verify=srv.ssl_context()) as client:
        assert client.get(backend.url + "/ctx").text == "ok\n"


def test_tls_limits_versions_and_names_the_sni(faultserver):
    srv = faultserver(tls_profile(max_version="1.2", names=["api.internal"]))
    backend = srv["backend"]
    url = f"https://api.internal:{backend.port}/sni"
    code, _ = curl(url, backend.ca_path, "--resolve", f"api.internal:{backend.port}:127.0.0.1")
    assert code == 0
    event = srv.wait_for(type="tls_handshake")
    assert (event["version"], event["sni"]) == ("TLSv1.2", "api.internal")
    code, message = curl(backend.url, backend.ca_path, "--tlsv1.3")
    assert code == 35
    assert "tlsv1 alert protocol version" in message
    assert srv.wait_for(type="tls_error")["error"] == "unsupported_protocol"


# --- handshake faults ----------------------------------------------------------------------

HANDSHAKE_FAULTS = {
    # no ServerHello: each client's handshake (connect) timeout
    "hang": (
        {"action": "hang"},
        (28, "curl: (28) SSL connection timeout"),
        (httpx.ConnectTimeout, "The handshake operation timed out"),
        (requests.exceptions.ReadTimeout, "Read timed out."),
        (aiohttp.ConnectionTimeoutError, "Connection timeout to host"),
    ),
    "close": (
        {"action": "close"},
        (35, "curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to 127.0.0.1:"),
        (httpx.ConnectError, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol"),
        (requests.exceptions.SSLError, "EOF occurred in violation of protocol"),
        # asyncio's TLS reports the EOF in the handshake as a reset
        (aiohttp.ClientConnectorError, "ssl:<ssl.SSLContext object at"),
    ),
    "reset": (
        {"action": "reset"},
        (35, "curl: (35) Recv failure: Connection reset by peer"),
        (httpx.ConnectError, "[Errno 104] Connection reset by peer"),
        (requests.exceptions.ConnectionError, "Connection reset by peer"),
        (aiohttp.ClientConnectorError, "[Connection reset by peer]"),
    ),
    "garbage": (
        {"action": "garbage"},
        (35, "SSL routines::wrong version number"),
        (httpx.ConnectError, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
        (requests.exceptions.SSLError, "wrong version number"),
        (aiohttp.ClientConnectorSSLError, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
    ),
}


@pytest.mark.parametrize("fault", list(HANDSHAKE_FAULTS))
def test_tls_handshake_fault_as_each_client_reports_it(faultserver, fault):
    rule, (code, curl_says), (httpx_type, httpx_says), (requests_type, requests_says), aio = (
        HANDSHAKE_FAULTS[fault]
    )
    srv = faultserver(tls_profile([{"name": "hs", "at": "handshake", **rule}]))
    backend = srv["backend"]
    seen = side_by_side(backend.url + "/x", backend.ca_path)
    assert seen["curl"][0] == code
    assert curl_says in seen["curl"][1]
    assert type(seen["httpx"]) is httpx_type and httpx_says in str(seen["httpx"])
    assert type(seen["requests"]) is requests_type and requests_says in str(seen["requests"])
    assert type(seen["aiohttp"]) is aio[0] and aio[1] in str(seen["aiohttp"])
    fault_event = srv.wait_for(type="fault", rule="hs")
    assert fault_event["action"] == fault
    assert "alpn_offered" in fault_event  # the hello was read before the fault
    assert any(e["alpn_offered"] == ["h2", "http/1.1"] for e in srv.events(type="fault"))  # curl's
    assert not srv.events(type="request")  # no request ever arrived
    assert srv.events(type="tls_handshake") == []


def test_tls_handshake_delay_completes_late(faultserver):
    srv = faultserver(tls_profile([{"at": "handshake", "action": "delay", "for": "300ms"}]))
    backend = srv["backend"]
    assert side_by_side(backend.url + "/slow", backend.ca_path) == {
        "curl": (0, ""), "httpx": 200, "requests": 200, "aiohttp": 200,
    }
    assert all(e["duration_ms"] >= 300 for e in srv.events(type="tls_handshake"))


def test_tls_handshake_rule_matches_sni_and_alpn(faultserver):
    srv = faultserver(tls_profile(
        [
            {"name": "h2-offer", "at": "handshake", "match": {"alpn": "h2"}, "action": "reset"},
            {"name": "internal", "at": "handshake", "match": {"sni": "*.internal"}, "action": "close"},
        ],
        names=["api.internal", "www.example"],
    ))
    backend = srv["backend"]
    resolve = ["--resolve", f"api.internal:{backend.port}:127.0.0.1",
               "--resolve", f"www.example:{backend.port}:127.0.0.1"]
    assert curl(f"https://www.example:{backend.port}/", backend.ca_path, *resolve, "--http1.1")[0] == 0
    assert curl(f"https://api.internal:{backend.port}/", backend.ca_path, *resolve, "--http1.1")[0] == 35
    # curl offers h2 unless told --http1.1
    assert curl(f"https://www.example:{backend.port}/", backend.ca_path, *resolve)[0] == 35
    assert [e["rule"] for e in srv.events(type="fault")] == ["internal", "h2-offer"]


# --- certificate faults --------------------------------------------------------------------

CERTIFICATE_FAULTS = {
    "expired": ("certificate has expired", "SSL certificate problem: certificate has expired",
                "alert certificate_expired"),
    "not_yet_valid": ("certificate is not yet valid",
                      "SSL certificate problem: certificate is not yet valid", "alert bad_certificate"),
    "wrong_host": ("IP address mismatch, certificate is not valid for '127.0.0.1'.",
                   "SSL: no alternative certificate subject name matches target host name '127.0.0.1'",
                   None),
    "self_signed": ("self-signed certificate", "SSL certificate problem: self-signed certificate",
                    "alert unknown_ca"),
    "untrusted_ca": ("unable to get local issuer certificate",
                     "SSL certificate problem: unable to get local issuer certificate", "alert unknown_ca"),
}


@pytest.mark.parametrize("mode", list(CERTIFICATE_FAULTS))
def test_tls_certificate_fault_fails_verification_for_its_reason(faultserver, mode):
    python_says, curl_says, alert = CERTIFICATE_FAULTS[mode]
    srv = faultserver(tls_profile(certificate=mode))
    backend = srv["backend"]
    seen = side_by_side(backend.url + "/cert", backend.ca_path)
    assert seen["curl"] == (60, f"curl: (60) {curl_says}")
    for client in ("httpx", "requests"):
        cause = root_cause(seen[client])
        assert isinstance(cause, ssl.SSLCertVerificationError), (client, seen[client])
        assert cause.verify_message == python_says
    assert type(seen["aiohttp"]) is aiohttp.ClientConnectorCertificateError
    assert seen["aiohttp"].certificate_error.verify_message == python_says
    if alert is not None:  # a client that checks the name does so after the handshake
        srv.wait_for(type="tls_error")
        # curl and Python's ssl send the alert; asyncio's TLS (aiohttp) may just close
        assert alert in [e["error"] for e in srv.events(type="tls_error")]
    assert backend.info()["tls"]["certificate"]["mode"] == mode


def test_tls_certificate_switch_applies_to_new_handshakes(faultserver):
    srv = faultserver(tls_profile())
    backend = srv["backend"]
    assert curl(backend.url, backend.ca_path)[0] == 0
    srv.set_certificate("backend", "expired")
    expired = (60, "curl: (60) SSL certificate problem: certificate has expired")
    assert curl(backend.url, backend.ca_path) == expired
    srv.set_certificate("backend", "valid")
    assert curl(backend.url, backend.ca_path)[0] == 0


# --- after the handshake -------------------------------------------------------------------


@pytest.mark.parametrize("close_notify", [True, False])
def test_tls_close_after_a_request_with_and_without_close_notify(faultserver, close_notify):
    srv = faultserver(tls_profile([{"action": "close", "close_notify": close_notify}]))
    backend = srv["backend"]
    context = ssl.create_default_context(cafile=backend.ca_path)
    with socket.create_connection(("127.0.0.1", backend.port), timeout=3) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            if close_notify:
                assert tls.recv(100) == b""  # the alert: a clean end of the TLS stream
            else:
                with pytest.raises(ssl.SSLEOFError, match="EOF occurred in violation of protocol"):
                    tls.recv(100)
    seen = side_by_side(backend.url, backend.ca_path)
    assert seen["curl"] == (52, "curl: (52) Empty reply from server")
    assert type(seen["httpx"]) is httpx.RemoteProtocolError


def test_tls_reset_after_a_request_is_a_tcp_rst(faultserver):
    srv = faultserver(tls_profile([{"action": "reset"}]))
    backend = srv["backend"]
    assert curl(backend.url, backend.ca_path) == (56, "curl: (56) Recv failure: Connection reset by peer")


def test_tls_fault_header_works_over_tls(faultserver):
    srv = faultserver(tls_profile())
    backend = srv["backend"]
    code, message = curl(backend.url, backend.ca_path, "-H", "X-Fault: reset")
    assert (code, message) == (56, "curl: (56) Recv failure: Connection reset by peer")


# --- not TLS -------------------------------------------------------------------------------


def test_plain_http_to_a_tls_listener_gets_a_plain_400(faultserver):
    srv = faultserver(tls_profile())
    plain = "http://" + srv["backend"].url.removeprefix("https://")
    answer = httpx.get(plain + "/plain", timeout=3)
    assert answer.status_code == 400
    assert "plain HTTP request sent to a TLS listener" in answer.text
    assert srv.wait_for(type="tls_error")["error"] == "not a TLS handshake record"


def test_tls_hello_to_a_plain_listener_is_refused(faultserver):
    srv = faultserver(one_listener(response=TEXT_OK))
    url = "https://" + srv["backend"].url.removeprefix("http://")
    code, message = curl(url, "/dev/null", "-k")
    assert code == 35
    assert "wrong version number" in message
    assert srv.wait_for(type="response")["status"] == 400


def test_tls_hello_sent_one_byte_at_a_time_is_bounded_by_the_header_timeout(faultserver):
    srv = faultserver(one_listener(tls={"generate": True}, limits={"header_timeout": "300ms"}))
    with socket.create_connection(("127.0.0.1", srv["backend"].port), timeout=3) as sock:
        sock.sendall(b"\x16\x03\x01")  # the start of a hello, then nothing
        assert sock.recv(100) == b""  # FIN after the deadline
    assert srv.wait_for(type="tls_error")["error"] == "no TLS client hello within limits.header_timeout"


def test_tls_schedule_phase_shows_an_expired_certificate_then_the_configured_one(faultserver):
    srv = faultserver(one_listener(
        response=TEXT_OK,
        tls={"generate": True},
        schedule={"repeat": False, "phases": [
            {"duration": "200ms"},
            {"duration": "1s", "tls": {"certificate": "expired"}},
        ]},
    ))
    backend = srv["backend"]
    srv.wait_for(type="phase", phase=1)
    expired = (60, "curl: (60) SSL certificate problem: certificate has expired")
    assert curl(backend.url, backend.ca_path) == expired
    srv.wait_for(type="phase", phase=None, timeout=5)
    assert curl(backend.url, backend.ca_path)[0] == 0
    switches = [(e["mode"], e["cause"]) for e in srv.events(type="certificate")]
    assert switches == [("expired", "schedule"), ("valid", "schedule")]


def test_tls_client_auth_required_asks_for_a_client_certificate(faultserver, tmp_path):
    clients = trustme.CA()  # a client certificate (extended key usage clientAuth), its own CA
    client = clients.issue_cert("client.test")
    clients.cert_pem.write_to_path(str(tmp_path / "clients-ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    srv = faultserver(tls_profile(client_auth="required", client_ca=str(tmp_path / "clients-ca.pem")))
    backend = srv["backend"]
    code, message = curl(backend.url, backend.ca_path)
    assert code == 56  # TLS 1.3: the server's alert comes after curl's side of the handshake
    assert "alert certificate required" in message
    assert srv.wait_for(type="tls_error")["error"] == "peer_did_not_return_a_certificate"
    with_cert = curl(backend.url, backend.ca_path, "--cert", str(tmp_path / "client.pem"),
                     "--key", str(tmp_path / "client.key"))
    assert with_cert == (0, "")
    assert srv.wait_for(type="tls_handshake")["client_certificate"] is True

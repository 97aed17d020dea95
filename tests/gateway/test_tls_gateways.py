"""The conformance matrix's TLS rows, gateway half: nginx and HAProxy in front of an HTTPS backend.

One row per TLS fault: the handshake faults (`at: handshake` with `hang`, `close`, `reset`,
`garbage`) and the certificate faults (`tls.certificate`: `expired`, `wrong_host`,
`self_signed`, `untrusted_ca`), with `valid` as the control. Each test starts faultserver
with a `tls: {generate: true}` listener, puts a gateway in front that verifies it against
the generated CA, sends one GET, and asserts the gateway's status, its log line, and what
the backend saw (its `tls_handshake`, `tls_error` and `fault` events). Each prints a
`MATRIX |` line; the README's TLS rows are copied from them (`pytest -s -m gateway`).

Gateway settings (conftest.py's options, the plain matrix's timeouts):

- nginx: `proxy_pass https://`, `proxy_ssl_verify on`, `proxy_ssl_trusted_certificate CA`,
  `proxy_ssl_name localhost` with `proxy_ssl_server_name on` (nginx checks a certificate
  for DNS names only, never for an IP address), `proxy_connect_timeout 1s`, which bounds
  the handshake too. nginx 1.22 offers TLS 1.2 at most to an upstream by default.
- HAProxy: `server s1 ... ssl verify required ca-file CA sni str(localhost)` (the name a
  certificate is checked for is the SNI: without `sni` or `verifyhost`, HAProxy checks no
  name at all, see the last test), `timeout connect 1s`, which bounds the handshake too,
  and `retries 1`: every failed handshake is tried twice, a second apart. Its log line is
  `option httplog`'s with `%[bc_err_str]` and `%[ssl_bc_err_str]` after it, since the
  termination state alone (`SC--`) is the same for every fault but the hang.
"""

from __future__ import annotations

import dataclasses
import http.client
import re
import time
from typing import Any

import pytest

from tests.support.profiles import TEXT_OK, one_listener
from tests.support.wait import wait_until

pytestmark = pytest.mark.gateway

#: The name both gateways check the certificate for and send as SNI (every generated leaf
#: carries it, with 127.0.0.1 and ::1).
NAME = "localhost"
#: HAProxy's backend connection error and OpenSSL's error, quoted, after the httplog fields.
HAPROXY_LOG_EXTRA = "%{+Q}[bc_err_str] %{+Q}[ssl_bc_err_str]"

#: Each row's listener: `tls` keys besides `generate: true`, and its rules.
TLS_FAULTS: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "valid": ({}, []),
    "handshake hang": ({}, [{"name": "hs", "at": "handshake", "action": "hang"}]),
    "handshake close": ({}, [{"name": "hs", "at": "handshake", "action": "close"}]),
    "handshake reset": ({}, [{"name": "hs", "at": "handshake", "action": "reset"}]),
    "handshake garbage": ({}, [{"name": "hs", "at": "handshake", "action": "garbage"}]),
    "certificate expired": ({"certificate": "expired"}, []),
    "certificate wrong_host": ({"certificate": "wrong_host"}, []),
    "certificate self_signed": ({"certificate": "self_signed"}, []),
    "certificate untrusted_ca": ({"certificate": "untrusted_ca"}, []),
}


def start_backend(faultserver: Any, cause: str) -> Any:
    tls, rules = TLS_FAULTS[cause]
    return faultserver(one_listener(response=TEXT_OK, tls={"generate": True, **tls}, rules=rules))


@dataclasses.dataclass(frozen=True)
class TLSCell:
    """What one gateway says of one TLS fault, and what the backend saw of it."""

    status: int
    #: nginx: its error.log message (None: no line); HAProxy: (status, termination state,
    #: retries, bc_err_str, ssl_bc_err_str) of its log line
    said: Any
    #: the backend's TLS and fault events, in order: `handshake TLSv1.2 sni=localhost`, `fault hang`,
    #: `alert unknown_ca` (a `tls_error`)
    backend_saw: tuple[str, ...]
    #: the answer waits for the gateway's 1 s timeouts: (at least, under) seconds
    took_s: tuple[float, float] | None = None


def backend_events(srv: Any) -> list[str]:
    seen = []
    for event in srv.events():
        if event["type"] == "tls_handshake":
            seen.append(f"handshake {event['version']} sni={event['sni']}")
        elif event["type"] == "tls_error":
            seen.append(event["error"])
        elif event["type"] == "fault":
            seen.append(f"fault {event['action']}")
    return seen


VERIFY = "while SSL handshaking to upstream"
#: `proxy_connect_timeout 1s`. nginx verifies the certificate after the handshake and sends
#: no alert: the backend sees a completed handshake, then a close with no request.
NGINX_TLS = {
    "valid": TLSCell(200, None, ("handshake TLSv1.2 sni=localhost",)),
    "handshake hang": TLSCell(
        504, f"[error] upstream timed out (110: Connection timed out) {VERIFY}", ("fault hang",), (0.9, 5),
    ),
    "handshake close": TLSCell(
        502, f"[error] peer closed connection in SSL handshake {VERIFY}", ("fault close",),
    ),
    "handshake reset": TLSCell(
        502, f"[error] peer closed connection in SSL handshake (104: Connection reset by peer) {VERIFY}",
        ("fault reset",),
    ),
    "handshake garbage": TLSCell(
        502,
        f"[error] SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number)"
        f" {VERIFY}",
        ("fault garbage",),
    ),
    "certificate expired": TLSCell(
        502, f"[error] upstream SSL certificate verify error: (10:certificate has expired) {VERIFY}",
        ("handshake TLSv1.2 sni=localhost",),
    ),
    "certificate wrong_host": TLSCell(
        502, f'[error] upstream SSL certificate does not match "{NAME}" {VERIFY}',
        ("handshake TLSv1.2 sni=localhost",),
    ),
    "certificate self_signed": TLSCell(
        502, f"[error] upstream SSL certificate verify error: (18:self-signed certificate) {VERIFY}",
        ("handshake TLSv1.2 sni=localhost",),
    ),
    # error 21, not curl's and Python's 20: nginx's chain is the leaf alone, whose issuer
    # is nowhere, and OpenSSL names that case "unable to verify the first certificate"
    "certificate untrusted_ca": TLSCell(
        502,
        f"[error] upstream SSL certificate verify error: (21:unable to verify the first certificate)"
        f" {VERIFY}",
        ("handshake TLSv1.2 sni=localhost",),
    ),
}

HANDSHAKE_FAILURE = "SSL handshake failure"
VERIFY_FAILED = "error:0A000086:SSL routines::certificate verify failed"
#: `timeout connect 1s` covers the handshake; `retries 1`: each failure is tried twice, the
#: second a second after the first (HAProxy's turn-around), so the backend sees it twice.
#: `SC--`: the server (S) failed the connection (C); `sC--`: a timeout (s) while connecting.
#: HAProxy verifies during the handshake and sends the alert: the backend's `tls_error`.
HAPROXY_TLS = {
    "valid": TLSCell(200, ("200", "----", "0", "Success", ""), ("handshake TLSv1.3 sni=localhost",)),
    "handshake hang": TLSCell(
        503, ("503", "sC--", "1", "", ""), ("fault hang", "fault hang"), (1.8, 6),
    ),
    "handshake close": TLSCell(
        503, ("503", "SC--", "1", HANDSHAKE_FAILURE, ""), ("fault close", "fault close"), (0.9, 5),
    ),
    "handshake reset": TLSCell(
        503, ("503", "SC--", "1", HANDSHAKE_FAILURE, ""), ("fault reset", "fault reset"), (0.9, 5),
    ),
    "handshake garbage": TLSCell(
        503,
        ("503", "SC--", "1", HANDSHAKE_FAILURE, "error:0A00010B:SSL routines::wrong version number"),
        ("fault garbage", "fault garbage"),
        (0.9, 5),
    ),
    "certificate expired": TLSCell(
        503, ("503", "SC--", "1", HANDSHAKE_FAILURE, VERIFY_FAILED),
        ("alert certificate_expired", "alert certificate_expired"), (0.9, 5),
    ),
    # a name mismatch is not retried: HAProxy marks the retries spent at once (the log says
    # 1, the backend saw one connection), and the alert it sends is `internal_error`
    "certificate wrong_host": TLSCell(
        503,
        ("503", "SC--", "1", "Server presented an SSL certificate different from the expected one",
         VERIFY_FAILED),
        ("alert internal_error",),
    ),
    "certificate self_signed": TLSCell(
        503, ("503", "SC--", "1", HANDSHAKE_FAILURE, VERIFY_FAILED),
        ("alert unknown_ca", "alert unknown_ca"), (0.9, 5),
    ),
    "certificate untrusted_ca": TLSCell(
        503, ("503", "SC--", "1", HANDSHAKE_FAILURE, VERIFY_FAILED),
        ("alert unknown_ca", "alert unknown_ca"), (0.9, 5),
    ),
}

TLS_CELLS = {"nginx": NGINX_TLS, "haproxy": HAPROXY_TLS}


@dataclasses.dataclass
class Answer:
    status: int | None = None
    error: BaseException | None = None
    took_s: float = 0.0


def send(gateway_url: str, path: str) -> Answer:
    """One GET through the gateway; a broken answer is kept, not raised."""
    host, port = gateway_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    answer = Answer()
    start = time.monotonic()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        answer.status = response.status
        response.read()
    except (http.client.HTTPException, OSError) as exc:
        answer.error = exc
    finally:
        answer.took_s = time.monotonic() - start
        conn.close()
    return answer


def report(gateway: str, cause: str, **observed: Any) -> None:
    """Print the observed cell; the README's table is copied from these lines."""
    cells = " | ".join(f"{k}={v}" for k, v in observed.items())
    print(f"\nMATRIX | {gateway} | tls {cause} | {cells}")


def haproxy_said(gw: Any, line: str) -> tuple[str, ...]:
    """(status, termination state, retries, bc_err_str, ssl_bc_err_str) of one log line."""
    status, term, retries = gw.summary(line)
    m = re.search(r' "(?P<bc>[^"]*)" "(?P<ssl>[^"]*)"$', line)
    assert m, f"no bc_err_str and ssl_bc_err_str at the end of {line!r}"
    return status, term, retries, m.group("bc"), m.group("ssl")


def start_gateway(request: Any, gateway: str, backend: Any) -> Any:
    if gateway == "nginx":
        return request.getfixturevalue("nginx")(backend.port, upstream_ca=backend.ca_path,
                                                upstream_name=NAME, upstream_sni=True)
    return request.getfixturevalue("haproxy")(backend.port, upstream_ca=backend.ca_path,
                                              upstream_sni=NAME, log_extra=HAPROXY_LOG_EXTRA)


def what_it_said(gateway: str, gw: Any, path: str, status: int | None) -> Any:
    if gateway == "nginx":
        if status == 200:
            gw.access_line("GET", path)  # logged when done: an error line would be there by now
            lines = gw.error_lines("GET", path)
            assert len(lines) <= 1, lines
            return gw.message(lines[0]) if lines else None
        return gw.message(gw.error_line("GET", path))
    return haproxy_said(gw, gw.log_line("GET", path))


@pytest.mark.parametrize(
    ("gateway", "cause"), [(g, c) for g, cells in TLS_CELLS.items() for c in cells],
)
def test_gateway_tls_fault_gives_the_status_and_log_line_of_its_cause(faultserver, request, gateway, cause):
    cell = TLS_CELLS[gateway][cause]
    srv = start_backend(faultserver, cause)
    backend = srv["backend"]
    gw = start_gateway(request, gateway, backend)
    path = "/" + cause.replace(" ", "-")
    answer = send(gw.url, path)
    said = what_it_said(gateway, gw, path, answer.status)
    if cell.backend_saw:
        # the last of them may come after the gateway's answer (its close, its retry)
        wait_until(lambda: len(backend_events(srv)) >= len(cell.backend_saw), 3,
                   lambda: f"{len(cell.backend_saw)} events: {backend_events(srv)}")
    saw = backend_events(srv)
    report(gateway, cause, status=answer.status, took=f"{answer.took_s:.2f}s",
           **({"error_log": said} if gateway == "nginx" else {"log": said}), backend_saw=saw)
    assert answer.status == cell.status
    assert said == cell.said
    assert saw == list(cell.backend_saw)
    requests = [e["path"] for e in srv.requests()]
    assert requests == ([path] if cell.status == 200 else [])  # a failed handshake: no request
    if cell.took_s is not None:
        low, high = cell.took_s
        assert low <= answer.took_s < high
    else:
        assert answer.took_s < 0.9


def test_haproxy_without_sni_checks_no_name_and_passes_a_wrong_host_certificate(faultserver, haproxy):
    """`verify required` checks the chain only: the name is checked for `sni` or `verifyhost`."""
    srv = start_backend(faultserver, "certificate wrong_host")
    backend = srv["backend"]
    gw = haproxy(backend.port, upstream_ca=backend.ca_path, log_extra=HAPROXY_LOG_EXTRA)
    answer = send(gw.url, "/wrong-host-no-sni")
    said = haproxy_said(gw, gw.log_line("GET", "/wrong-host-no-sni"))
    report("haproxy", "certificate wrong_host (no sni, no verifyhost)", status=answer.status, log=said,
           backend_saw=backend_events(srv))
    assert answer.status == 200
    assert said == ("200", "----", "0", "Success", "")
    assert backend_events(srv) == ["handshake TLSv1.3 sni=None"]

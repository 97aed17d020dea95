"""Rules in front of a real upstream, as clients see them: faults instead of forwarding,
faults applied to the upstream's real answer (`forward` with `then` and `status`), and the
upstream's own failures as a gateway reports them (502/504) or mirrors them."""

from __future__ import annotations

import errno
import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from faultserver.testing import FaultServer
from tests.proxy.conftest import proxy_profile
from tests.proxy.upstream import Upstream, pattern_bytes
from tests.support import net
from tests.support.net import RawReader, curl


def connect(srv: FaultServer, timeout: float = 5) -> socket.socket:
    return net.connect("127.0.0.1", srv["proxy"].port, timeout)


def on(path: str, action: str, **keys: object) -> dict[str, object]:
    return {"match": {"path": path}, "action": action, **keys}


# --- faults instead of forwarding -------------------------------------------------------


def test_fail_resets_while_ok_is_forwarded(proxy: Callable[..., FaultServer], upstream: Upstream) -> None:
    srv = proxy(on("/fail", "reset"))
    with httpx.Client(timeout=5) as client:
        assert client.get(srv.url + "/ok").headers["x-upstream"] == "yes"
        with pytest.raises(httpx.ReadError) as caught:
            client.get(srv.url + "/fail")
        assert str(caught.value) == "[Errno 104] Connection reset by peer"
        assert client.get(srv.url + "/ok").text == "ok\n"
    result = curl(srv.url + "/fail")
    assert result.returncode == 56, result.stderr  # "Recv failure: Connection reset by peer"
    assert "reset" in result.stderr.lower()
    assert not [e for e in srv.events(type="forward") if e["path"] == "/fail"]


def test_fin_on_second_request_of_connection(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy({"match": {"request_on_connection": 2}, "action": "close"})
    with connect(srv) as sock:
        sock.sendall(net.get_request("/file/10"))
        reader = RawReader(sock)
        assert reader.read_response().body == pattern_bytes(10)
        sock.sendall(net.get_request("/file/10"))
        assert reader.at_eof()  # a FIN, no answer
    with connect(srv) as sock:  # a new connection: its first request is forwarded again
        sock.sendall(net.get_request("/ok"))
        assert RawReader(sock).read_response().body == b"ok\n"
    srv.wait_for(type="forward", path="/ok")
    assert len(srv.events(type="forward")) == 2
    assert srv.events(type="fault", action="close")[0]["request_on_connection"] == 2


def test_respond_instead_of_forwarding(proxy: Callable[..., FaultServer], upstream: Upstream) -> None:
    srv = proxy(on("/canned", "respond", status=418, body="teapot\n"))
    r = httpx.get(srv.url + "/canned", timeout=5)
    assert (r.status_code, r.text) == (418, "teapot\n")
    assert upstream.connections == 0


def test_delay_delays_the_forward(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(on("/slow", "delay", **{"for": "300ms"}))
    started = time.monotonic()
    r = httpx.get(srv.url + "/slow", timeout=5)
    assert time.monotonic() - started >= 0.3
    assert r.headers["x-upstream"] == "yes"
    assert srv.wait_for(type="forward")["path"] == "/slow"


# --- faults applied to the upstream's answer -------------------------------------------------


def test_forward_status_replaced_headers_and_body_kept(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(on("/ok", "forward", status=503, headers={"retry-after": "1"}))
    r = httpx.get(srv.url + "/ok", timeout=5)
    assert (r.status_code, r.reason_phrase, r.text) == (503, "Service Unavailable", "ok\n")
    assert r.headers["retry-after"] == "1"
    assert r.headers["x-upstream"] == "yes"
    event = srv.wait_for(type="forward")
    assert (event["status"], event["upstream_status"]) == (503, 200)


def test_forward_body_replaced(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(on("/file/*", "forward", status=500, body="broken\n"))
    with connect(srv) as sock:
        sock.sendall(net.get_request("/file/100000") + net.get_request("/ok"))
        reader = RawReader(sock)
        replaced = reader.read_response()
        after = reader.read_response()  # the upstream's body was read and dropped, in order
    assert (replaced.status, replaced.body, replaced.header(b"content-length")) == (500, b"broken\n", b"7")
    assert after.body == b"ok\n"


def test_forward_partial_cuts_after_bytes(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(on("/file/*", "forward", then={"partial": {"bytes": 200}}))
    with connect(srv) as sock:
        sock.sendall(net.get_request("/file/100000"))
        data, how = net.read_to_end(sock)
    assert (len(data), how) == (200, "eof")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == pattern_bytes(len(body))
    r = curl(srv.url + "/file/100000")
    assert r.returncode == 18, r.stderr  # "transfer closed with N bytes remaining"


def test_forward_partial_rst_after_bytes(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(on("/file/*", "forward", then={"partial": {"bytes": 1000, "how": "rst"}}))
    with connect(srv) as sock:
        sock.sendall(net.get_request("/file/100000"))
        data, how = net.read_to_end(sock)
    assert (len(data), how) == (1000, "reset")


def test_forward_then_close_relays_whole_answer_then_fin(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(on("/ok", "forward", then="close"))
    with connect(srv) as sock:
        sock.sendall(net.get_request("/ok"))
        reader = RawReader(sock)
        response = reader.read_response()
        assert response.header(b"connection") is None  # unannounced, as the fault means
        assert response.body == b"ok\n"
        assert reader.at_eof()


def test_forward_then_reset_relays_whole_answer_then_rst(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(on("/ok", "forward", then="reset"))
    with connect(srv) as sock:
        sock.sendall(net.get_request("/ok"))
        data, how = net.read_to_end(sock)
    assert data.endswith(b"\r\n\r\nok\n")
    assert how == "reset"


def test_forward_dribble_paces_the_answer(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(on("/file/*", "forward", then={"dribble": {"rate": "20KiB/s"}}))
    started = time.monotonic()
    r = httpx.get(srv.url + "/file/10000", timeout=5)
    elapsed = time.monotonic() - started
    assert r.content == pattern_bytes(10000)
    assert elapsed >= 0.4  # about 10.2 KB at 20 KiB/s: half a second


# --- the upstream's own failures -----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_upstream_gives_502_and_event(faultserver: Callable[..., FaultServer]) -> None:
    srv = faultserver(proxy_profile(f"http://127.0.0.1:{_closed_port()}"))
    r = httpx.get(srv.url + "/ok", timeout=5)
    assert r.status_code == 502
    assert "refused" in r.json()["error"]
    event = srv.wait_for(type="upstream_error")
    assert (event["reason"], event["phase"], event["answer"]) == ("refused", "connect", 502)


def test_stalled_upstream_gives_504_after_read_timeout(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(upstream_timeouts={"read": "300ms"})
    started = time.monotonic()
    r = httpx.get(srv.url + "/stall", timeout=5)
    assert r.status_code == 504
    assert time.monotonic() - started >= 0.3
    event = srv.wait_for(type="upstream_error")
    assert (event["reason"], event["phase"], event["answer"]) == ("timeout", "read", 504)


@pytest.mark.parametrize(
    ("path", "reason"), [("/reset", "reset"), ("/fin", "closed"), ("/garbage", "invalid")]
)
def test_broken_upstream_gives_502(proxy: Callable[..., FaultServer], path: str, reason: str) -> None:
    srv = proxy()
    r = httpx.get(srv.url + path, timeout=5)
    assert r.status_code == 502
    assert srv.wait_for(type="upstream_error")["reason"] == reason
    assert httpx.get(srv.url + "/ok", timeout=5).status_code == 200  # and the next is forwarded


def test_mirror_gives_rst_for_upstream_rst(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(upstream_failure="mirror")
    with connect(srv) as sock:
        sock.sendall(net.get_request("/reset"))
        assert net.read_to_end(sock) == (b"", "reset")
    with connect(srv) as sock:
        sock.sendall(net.get_request("/fin"))
        assert net.read_to_end(sock) == (b"", "eof")
    with pytest.raises(httpx.ReadError):
        httpx.get(srv.url + "/reset", timeout=5)
    event = srv.wait_for(type="upstream_error", reason="reset")
    assert event["answer"] == "rst"


def test_mirror_of_refused_upstream_is_rst(faultserver: Callable[..., FaultServer]) -> None:
    srv = faultserver(proxy_profile(f"http://127.0.0.1:{_closed_port()}", upstream_failure="mirror"))
    with net.connect("127.0.0.1", srv["proxy"].port, 5) as sock:
        sock.sendall(net.get_request("/ok"))
        with pytest.raises(ConnectionResetError) as caught:
            while sock.recv(100):
                pass
    assert caught.value.errno == errno.ECONNRESET


@pytest.mark.parametrize(("failure", "how"), [("gateway", "eof"), ("mirror", "eof")])
def test_upstream_closing_mid_body_ends_the_client_connection(
    proxy: Callable[..., FaultServer], failure: str, how: str
) -> None:
    srv = proxy(upstream_failure=failure)
    with connect(srv) as sock:
        sock.sendall(net.get_request("/cut/1000"))
        data, ended = net.read_to_end(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 2000" in head
    assert (body, ended) == (pattern_bytes(1000), how)  # the promised length never comes
    event = srv.wait_for(type="upstream_error")
    assert (event["reason"], event["phase"], event["answer"]) == ("closed", "read", "fin")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(srv.url + "/cut/1000", timeout=5)


def test_client_that_never_reads_is_closed_after_the_read_timeout(
    proxy: Callable[..., FaultServer], upstream: Upstream
) -> None:
    srv = proxy(upstream_timeouts={"read": "300ms"})
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", srv["proxy"].port))
        sock.sendall(net.get_request(f"/file/{50 * 1024 * 1024}"))
        time.sleep(1.5)  # reads nothing meanwhile
        sock.settimeout(5)
        data, how = net.read_to_end(sock)
    assert how == "eof"
    assert 0 < len(data) < 50 * 1024 * 1024
    # the proxy let go of the upstream connection: the next request opens a new one
    before = upstream.connections
    assert httpx.get(srv.url + "/ok", timeout=5).status_code == 200
    assert upstream.connections == before + 1


@pytest.mark.parametrize("http2", [False, True])
def test_fault_header_forward_without_upstream_is_the_listeners_answer(
    faultserver: Callable[..., FaultServer], http2: bool
) -> None:
    listener = {"response": {"body": "mock\n"}, **({"protocols": ["http/1.1", "h2"]} if http2 else {})}
    srv = faultserver({"version": 1, "listeners": [{"name": "mock", "bind": "127.0.0.1:0", **listener}]})
    extra = ["--http2-prior-knowledge"] if http2 else []
    result = curl(srv.url + "/x", "-H", "X-Fault: forward; then=reset", *extra)
    assert (result.returncode, result.stdout) == (0, "mock\n"), result.stderr


def test_fault_header_forward_on_a_proxy(proxy: Callable[..., FaultServer], upstream: Upstream) -> None:
    srv = proxy()
    with connect(srv) as sock:
        sock.sendall(net.get_request("/echo", extra=b"x-fault: forward; status=503; then=close\r\n"))
        reader = RawReader(sock)
        response = reader.read_response()
        assert reader.at_eof()
    assert response.status == 503
    sent = dict(json.loads(response.body)["headers"])
    assert "x-fault" not in sent  # faultserver's own header stays with faultserver

"""HTTP/2 listeners as real clients see them: curl (prior knowledge and ALPN) and httpx with
`http2=True`, each action per stream, the listener's SETTINGS, and a raw h2 client (python-
hyper's `h2`, client side) for what only frames show: PING answers, window updates, floods."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from tests.support.profiles import TEXT_OK, one_listener


def h2_profile(rules: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    fields.setdefault("protocols", ["http/1.1", "h2"])
    fields.setdefault("response", TEXT_OK)
    return one_listener(rules=rules or [], **fields)


def curl(url: str, *extra: str) -> tuple[int, str, str]:
    """curl's exit code, the HTTP version it used and the first line of its stderr."""
    done = subprocess.run(
        ["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_version}", *extra, url],
        capture_output=True, text=True, timeout=15,
    )
    return done.returncode, done.stdout, (done.stderr.splitlines() or [""])[0]


class RawClient:
    """An HTTP/2 client that shows frames: python-hyper's h2 on a blocking socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def events(self, timeout: float = 1.0) -> list[h2.events.Event]:
        """What arrives within `timeout` (until the server closes)."""
        self.sock.settimeout(timeout)
        seen: list[h2.events.Event] = []
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                seen += self.h2.receive_data(data)
                self.flush()
        except TimeoutError:
            pass
        return seen

    def get(self, path: str) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                         (":authority", "x")], end_stream=True)
        self.flush()
        return stream_id

    def close(self) -> None:
        self.sock.close()


# --- serving -------------------------------------------------------------------------------


def test_h2_prior_knowledge_and_http1_on_one_listener(faultserver):
    srv = faultserver(h2_profile())
    url = srv["backend"].url + "/x"
    assert curl(url, "--http2-prior-knowledge") == (0, "2", "")
    assert curl(url) == (0, "1.1", "")
    with httpx.Client(http2=True, http1=False) as client:
        answers = [client.get(f"{srv.url}/s{i}") for i in range(3)]
    assert [(a.status_code, a.http_version, a.text) for a in answers] == [(200, "HTTP/2", "ok\n")] * 3
    streams = [(e["stream"], e["request_on_connection"]) for e in srv.events(type="request") if "stream" in e]
    assert streams[-3:] == [(1, 1), (3, 2), (5, 3)]


def test_h2_over_tls_by_alpn(faultserver):
    srv = faultserver(h2_profile(tls={"generate": True}))
    backend = srv["backend"]
    assert curl(backend.url, "--cacert", backend.ca_path) == (0, "2", "")
    assert curl(backend.url, "--cacert", backend.ca_path, "--http1.1") == (0, "1.1", "")
    alpns = [e["alpn"] for e in srv.events(type="tls_handshake")]
    assert alpns == ["h2", "http/1.1"]


def test_h2_only_listener_refuses_http1_with_a_goaway(faultserver):
    srv = faultserver(h2_profile(protocols=["h2"]))
    code, _, message = curl(srv.url)
    assert code in (1, 52, 56), message  # curl reads a GOAWAY (binary) as its HTTP/1.1 answer
    assert srv.wait_for(type="h2_error")["error"].startswith("ProtocolError")


# --- actions per stream --------------------------------------------------------------------

STREAM_FAULTS = {
    "rst_stream": ({"action": "rst_stream", "error": "PROTOCOL_ERROR"}, 92,
                   "curl: (92) HTTP/2 stream 1 was not closed cleanly: PROTOCOL_ERROR (err 1)"),
    "partial": ({"action": "partial", "bytes": 1}, 92,
                "curl: (92) HTTP/2 stream 1 was not closed cleanly: INTERNAL_ERROR (err 2)"),
    "hang-for": ({"action": "hang", "for": "300ms"}, 92,
                 "curl: (92) HTTP/2 stream 1 was not closed cleanly: CANCEL (err 8)"),
    # the RST meets curl's read as a rule, seldom its write (a SETTINGS ack or WINDOW_UPDATE
    # going out): seen once in a CI run
    "reset": ({"action": "reset"}, (56, 55),
              ("curl: (56) Recv failure: Connection reset by peer",
               "curl: (55) Send failure: Connection reset by peer")),
    "goaway-0": ({"action": "goaway", "last_stream_id": 0}, 16,
                 "curl: (16) Error in the HTTP2 framing layer"),
}


@pytest.mark.parametrize("fault", list(STREAM_FAULTS))
def test_h2_stream_fault_as_curl_reports_it(faultserver, fault):
    rule, code, message = STREAM_FAULTS[fault]
    srv = faultserver(h2_profile([{"name": "f", **rule}]))
    faces = set(zip(code, message, strict=True)) if isinstance(code, tuple) else {(code, message)}
    assert curl(srv.url + "/f", "--http2-prior-knowledge")[::2] in faces
    assert srv.wait_for(type="fault", rule="f")["stream"] == 1


def test_h2_refused_stream_is_retried_by_curl(faultserver):
    # REFUSED_STREAM says the request was not processed: curl sends it again, on a new
    # connection, five times, then gives up
    srv = faultserver(h2_profile([{"name": "f", "action": "rst_stream", "error": "REFUSED_STREAM"}]))
    code, _, message = curl(srv.url + "/f", "--http2-prior-knowledge")
    assert (code, message) == (56, "curl: (56) Connection died, tried 5 times before giving up")
    assert len(srv.events(type="fault", rule="f")) == 6
    assert len({e["conn"] for e in srv.events(type="request")}) == 6


def test_h2_rst_stream_leaves_the_connection_serving_other_streams(faultserver):
    srv = faultserver(h2_profile([{"match": {"path": "/bad"}, "action": "rst_stream", "error": "CANCEL"}]))
    with httpx.Client(http2=True, http1=False) as client:
        assert client.get(srv.url + "/good").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match="error_code:8"):
            client.get(srv.url + "/bad")
        assert client.get(srv.url + "/good-again").status_code == 200
    assert len({e["conn"] for e in srv.events(type="request")}) == 1  # one connection for all


def test_h2_goaway_current_answers_the_stream_and_the_client_moves_on(faultserver):
    srv = faultserver(h2_profile([{"name": "g", "match": {"path": "/last"}, "action": "goaway",
                                   "last_stream_id": "current", "then": "keep"}]))
    done = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-m", "5", "-w", "%{http_code} ",
         srv.url + "/last", srv.url + "/after"],
        capture_output=True, text=True, timeout=15,
    )
    assert (done.returncode, done.stdout) == (0, "ok\n200 ok\n200 "), done.stderr
    requests = srv.events(type="request")
    assert [(e["path"], e["conn"]) for e in requests] == [("/last", 1), ("/after", 2)]


def test_h2_max_requests_sends_goaway_with_the_last_stream(faultserver):
    # as nginx's http2_max_requests: the GOAWAY goes out when the N-th request arrives,
    # before its answer; curl reads the answer, then opens a new connection. Over TLS: curl
    # 7.88 cannot reuse an h2c (prior knowledge) connection at all, against nginx either
    srv = faultserver(h2_profile(keepalive={"max_requests": 2}, tls={"generate": True}))
    urls = [f"{srv.url}/m{i}" for i in range(4)]
    done = subprocess.run(
        ["curl", "-sS", "--cacert", srv["backend"].ca_path, "-m", "5", "-w", "%{http_code} ", *urls],
        capture_output=True, text=True, timeout=15,
    )
    assert (done.returncode, done.stdout) == (0, "ok\n200 " * 4), done.stderr
    assert len(srv.events(type="max_requests_close")) == 2
    assert [e["conn"] for e in srv.events(type="request")] == [1, 1, 2, 2]


def test_h2_goaway_before_the_answer_breaks_httpx(faultserver):
    # httpx (httpcore with python-hyper's h2) takes a GOAWAY as the end of the connection and
    # fails the request that the GOAWAY names as answered, as against nginx (encode/httpcore#46)
    srv = faultserver(h2_profile(keepalive={"max_requests": 2}))
    with httpx.Client(http2=True, http1=False) as client:
        assert client.get(srv.url + "/first").status_code == 200
        # one of two ways, as the GOAWAY and the answer arrive in one read or two
        with pytest.raises(httpx.ProtocolError) as failed:
            client.get(srv.url + "/second")
    assert str(failed.value) in (
        "Invalid input ConnectionInputs.RECV_HEADERS in state ConnectionState.CLOSED",
        "<ConnectionTerminated error_code:0, last_stream_id:3, additional_data:None>",
    )
    # the server read it, and named it in the GOAWAY as one it answers (httpx may have
    # closed the connection before the answer could be written)
    assert srv.wait_for(type="request", path="/second")["stream"] == 3
    assert srv.wait_for(type="max_requests_close")["requests"] == 2


# --- settings and connection faults --------------------------------------------------------


def test_h2_settings_are_sent(faultserver):
    srv = faultserver(h2_profile(h2={"max_concurrent_streams": 1, "initial_window_size": 1000}))
    client = RawClient(srv["backend"].port)
    seen = client.events(0.3)
    changed = next(e for e in seen if isinstance(e, h2.events.RemoteSettingsChanged))
    values = {code.name: s.new_value for code, s in changed.changed_settings.items()}
    assert values["MAX_CONCURRENT_STREAMS"] == 1
    assert values["INITIAL_WINDOW_SIZE"] == 1000
    client.close()


def test_h2_ping_ack_false_leaves_pings_unanswered(faultserver):
    for ack, expected in ((True, 1), (False, 0)):
        srv = faultserver(h2_profile(h2={"ping_ack": ack}))
        client = RawClient(srv["backend"].port)
        client.h2.ping(b"12345678")
        client.flush()
        acks = [e for e in client.events(0.5) if isinstance(e, h2.events.PingAckReceived)]
        assert len(acks) == expected
        client.close()


def test_h2_flow_stall_never_gives_window_back(faultserver):
    srv = faultserver(h2_profile(h2={"flow_stall": True}))
    client = RawClient(srv["backend"].port)
    stream = client.h2.get_next_available_stream_id()
    client.h2.send_headers(stream, [(":method", "POST"), (":path", "/up"), (":scheme", "http"),
                                    (":authority", "x")])
    window = client.h2.local_flow_control_window(stream)
    frame = client.h2.max_outbound_frame_size
    for offset in range(0, window, frame):  # all the window there is
        client.h2.send_data(stream, b"x" * min(frame, window - offset))
    client.flush()
    updates = [e for e in client.events(0.5) if isinstance(e, h2.events.WindowUpdated)]
    assert updates == []
    assert client.h2.local_flow_control_window(stream) == 0  # the upload cannot go on
    client.close()


def test_h2_ping_flood_ends_with_enhance_your_calm(faultserver):
    srv = faultserver(h2_profile())
    client = RawClient(srv["backend"].port)
    for i in range(3000):
        client.h2.ping(i.to_bytes(8, "big"))
    try:
        client.flush()
    except OSError:
        pass
    seen = client.events(1.0)
    goaway = [e for e in seen if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code == 11  # ENHANCE_YOUR_CALM
    assert "flood" in srv.wait_for(type="h2_error")["error"]
    client.close()
    assert curl(srv.url, "--http2-prior-knowledge")[0] == 0  # others are still served


def test_grpc_answers_trailers_only_for_an_error_and_a_message_then_trailers_for_ok(faultserver):
    srv = faultserver(h2_profile(
        [{"match": {"path": "/pkg.Svc/Down"}, "action": "respond",
          "grpc": {"status": "unavailable", "message": "going away ü"}}],
        protocols=["h2"], response={"grpc": {"status": "OK"}, "body": "raw"},
    ))
    client = RawClient(srv["backend"].port)
    down = client.get("/pkg.Svc/Down")
    ok = client.get("/pkg.Svc/Ok")
    seen = client.events(0.5)
    heads = {e.stream_id: e.headers for e in seen if isinstance(e, h2.events.ResponseReceived)}
    assert heads[down] == [(b":status", b"200"), (b"content-type", b"application/grpc"),
                           (b"grpc-status", b"14"), (b"grpc-message", b"going away %C3%BC")]
    assert heads[ok] == [(b":status", b"200"), (b"content-type", b"application/grpc")]
    data = b"".join(e.data for e in seen if isinstance(e, h2.events.DataReceived) and e.stream_id == ok)
    assert data == b"\x00\x00\x00\x00\x03raw"  # one message, not compressed, 3 bytes
    trailers = [e.headers for e in seen if isinstance(e, h2.events.TrailersReceived)]
    assert trailers == [[(b"grpc-status", b"0")]]
    client.close()


# --- h2c by Upgrade ---------------------------------------------------------------------------


def test_h2c_upgrade_from_http1_is_answered_on_stream_1(faultserver):
    # curl --http2 on http:// sends `Upgrade: h2c` with HTTP2-Settings: 101, then the answer
    # on stream 1, decided as any stream (here a rule on the path)
    srv = faultserver(h2_profile([{"match": {"path": "/teapot"}, "action": "respond", "status": 418}]))
    done = subprocess.run(
        ["curl", "-sS", "-m", "5", "--http2", "-w", " %{http_code} %{http_version}",
         srv.url + "/up", srv.url + "/teapot"],
        capture_output=True, text=True, timeout=15,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n 200 2ok\n 418 2", "")
    requests = srv.events(type="request")
    # one upgrade, then curl goes on in HTTP/2 on the same connection
    assert [(e["path"], e["conn"], e["stream"]) for e in requests] == [("/up", 1, 1), ("/teapot", 1, 3)]


def test_h2c_upgrade_is_ignored_where_h2_is_not_spoken(faultserver):
    srv = faultserver(h2_profile(protocols=["http/1.1"]))
    assert curl(srv.url + "/", "--http2") == (0, "1.1", "")


#: not base64; a settings payload cut short (5 bytes); INITIAL_WINDOW_SIZE 2^31 (over the maximum)
@pytest.mark.parametrize("settings", ["not base64!", "AAQAAAA", "AASAAAAA"])
def test_h2c_upgrade_with_bad_settings_is_answered_in_http1(faultserver, settings):
    srv = faultserver(h2_profile())
    with socket.create_connection(("127.0.0.1", srv["backend"].port), timeout=3) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: " + settings.encode() + b"\r\n\r\n")
        head = sock.recv(65536).split(b"\r\n", 1)[0]
    assert head == b"HTTP/1.1 200 OK"
    assert [e["path"] for e in srv.events(type="request")] == ["/"]
    assert srv.events(type="error") == []

"""Hostile HTTP/2 frame sequences: each must end with a GOAWAY or a close and an `h2_error`
event, with the server's memory bounded, and other connections still served.

h2spec is not used: it is not packaged in Debian 12 and cannot come from the Go module proxy
(a `go install` needs the network, and the proxy serves Go modules only). The sequences are
written here with python-hyper's `hyperframe` (frames) and `hpack` (header blocks), byte
by byte where a client library would refuse to send them:

- a bad preface on an h2-only listener;
- an HPACK bomb: one 4 KB header put in the dynamic table, then indexed 10,000 times (12 KB
  on the wire that decode to 40 MB), and a plain header list over 64 KiB;
- floods of SETTINGS, PING, and RST_STREAM after HEADERS (rapid reset, CVE-2023-44487);
- a CONTINUATION flood (CVE-2024-27316: a header block that never ends);
- zero-window abuse: clients that set their window to 0 and ask for a 1 MiB body on many
  streams, and never read.

The tests share one `faultserver run` in a subprocess (its RSS is the server's alone) and
each reads `VmRSS` at its own start and end; a healthy h2 request (curl
`--http2-prior-knowledge`) must succeed after each sequence, and during the long ones.
Each prints a `HOSTILE |` line with what the server sent, how it ended, the event, and the
RSS growth.
"""

from __future__ import annotations

import collections
import socket
import subprocess
import threading
import time
from typing import Any

import hpack
import hyperframe.frame as hf
import pytest

from tests.support.cli import start_cli

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MIB = 1024 * 1024
#: What one sequence may add to the server's RSS. The sequences send at most a few MB, and a
#: server that buffers, decodes or answers without a bound grows by tens of MB (the HPACK bomb
#: alone decodes to 40 MB); the bound leaves room for the allocator's noise on a shared machine.
GROWTH_BOUND_MIB = 15.0

PROFILE = """
version: 1
listeners:
  - name: h2
    bind: 127.0.0.1:0
    protocols: [http/1.1, h2]
    response: {headers: {content-type: text/plain}, body: "ok\\n"}
  - name: h2only
    bind: 127.0.0.1:0
    protocols: [h2]
  - name: big
    bind: 127.0.0.1:0
    protocols: [h2]
    response: {body: {size: 1MiB}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_cli(tmp_path_factory.mktemp("h2-hostile"), PROFILE, "--log-level", "warning")
    try:
        assert curl_ok(srv.port("h2"))  # warm up: the h2 code is imported and run once
        yield srv
    finally:
        srv.kill()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def cpu_s(pid: int) -> float:
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def curl_ok(port: int) -> bool:
    done = subprocess.run(
        ["curl", "-sS", "-m", "5", "--http2-prior-knowledge", "-o", "/dev/null",
         "-w", "%{http_code} %{http_version}", f"http://127.0.0.1:{port}/healthy"],
        capture_output=True, text=True, timeout=15,
    )
    return (done.returncode, done.stdout) == (0, "200 2")


def h2_errors(srv: Any, since: int) -> list[str]:
    with srv.client() as api:
        events = api.get("/events", params={"type": "h2_error", "since": since}).json()["events"]
    return [e["error"] for e in events]


def last_event_id(srv: Any) -> int:
    with srv.client() as api:
        events = api.get("/events", params={"newest": 1}).json()["events"]
    return events[-1]["id"] if events else 0


def settings(**values: int) -> bytes:
    import h2.settings

    frame = hf.SettingsFrame(0)
    for name, value in values.items():
        frame.settings[h2.settings.SettingCodes[name]] = value
    return frame.serialize()


def request_block(encoder: hpack.Encoder, path: str = "/", extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    return encoder.encode([(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x"),
                           *extra])


def headers(stream_id: int, block: bytes, *flags: str) -> bytes:
    frame = hf.HeadersFrame(stream_id)
    frame.data = block
    for flag in flags:
        frame.flags.add(flag)
    return frame.serialize()


def read_frames(sock: socket.socket, timeout: float = 3.0) -> tuple[list[hf.Frame], str]:
    """The frames the server sends until it closes (`fin`, `rst`) or `timeout` passes."""
    sock.settimeout(0.5)
    data, how = b"", "timeout"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            how = "rst"
            break
        except TimeoutError:
            continue
        if not chunk:
            how = "fin"
            break
        data += chunk
    frames = []
    while len(data) >= 9:
        frame, length = hf.Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + length:
            break
        frame.parse_body(memoryview(data[9 : 9 + length]))
        data = data[9 + length :]
        frames.append(frame)
    return frames, how


def shape(frames: list[hf.Frame]) -> str:
    """`Settings x2, GOAWAY(11, last 0)`: each kind of frame and how often."""
    names = [f"GOAWAY({f.error_code}, last {f.last_stream_id})" if isinstance(f, hf.GoAwayFrame)
             else type(f).__name__.removesuffix("Frame") for f in frames]
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in collections.Counter(names).items())


def send_all(sock: socket.socket, data: bytes) -> str:
    """Send what the server reads; a server that closes first stops it (`closed early`)."""
    try:
        sock.sendall(data)
    except OSError as exc:
        return f"closed early ({type(exc).__name__})"
    return "sent"


class Measure:
    """The server's RSS and CPU time around one sequence, and its `h2_error` events."""

    def __init__(self, srv: Any) -> None:
        self.srv = srv
        self.since = last_event_id(srv)
        time.sleep(0.2)
        self.rss = rss_mib(srv.pid)
        self.cpu = cpu_s(srv.pid)
        self.peak = self.rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mib(self.srv.pid))

    def done(self, label: str, seen: str) -> tuple[float, list[str]]:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()
        growth = rss_mib(self.srv.pid) - self.rss
        peak = self.peak - self.rss
        errors = h2_errors(self.srv, self.since)
        print(f"\nHOSTILE | {label} | {seen} | h2_error={errors} | rss +{growth:.1f} MiB (peak +{peak:.1f}) "
              f"| cpu {cpu_s(self.srv.pid) - self.cpu:.2f} s")
        return max(growth, peak), errors


def test_h2_bad_preface_is_closed_with_an_event(server):
    measure = Measure(server)
    with socket.create_connection(("127.0.0.1", server.port("h2only")), timeout=3) as sock:
        send_all(sock, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + bytes(64))
        frames, how = read_frames(sock)
    _growth, errors = measure.done("bad preface (h2-only listener)", f"{shape(frames)} then {how}")
    # h2 sends no GOAWAY for a preface that is not one: the server's SETTINGS went out first
    assert (shape(frames), how) == ("Settings", "fin")
    assert errors == ["ProtocolError: Invalid HTTP/2 preamble."]
    assert curl_ok(server.port("h2"))


@pytest.mark.parametrize("kind", ["hpack bomb", "header list over 64 KiB"])
def test_h2_huge_header_list_gets_enhance_your_calm(server, kind):
    measure = Measure(server)
    encoder = hpack.Encoder()
    if kind == "hpack bomb":
        # a literal with incremental indexing puts x-bomb into the dynamic table at index 62;
        # each 0xbe byte then adds its 4 KB again to the decoded list
        bomb = encoder.encode([("x-bomb", "a" * 4000)])
        block = request_block(encoder) + bomb + bytes([0x80 | 62]) * 10_000
        data = headers(1, block, "END_STREAM", "END_HEADERS")
    else:
        block = request_block(encoder, extra=(("x-big", "a" * 70_000),))
        first, rest = block[:16_000], block[16_000:]
        data = headers(1, first, "END_STREAM")
        for offset in range(0, len(rest), 16_000):
            frame = hf.ContinuationFrame(1)
            frame.data = rest[offset : offset + 16_000]
            if offset + 16_000 >= len(rest):
                frame.flags.add("END_HEADERS")
            data += frame.serialize()
    with socket.create_connection(("127.0.0.1", server.port("h2")), timeout=3) as sock:
        send_all(sock, PREFACE + settings() + data)
        frames, how = read_frames(sock)
    growth, errors = measure.done(kind, f"{len(data):,} bytes sent; {shape(frames)} then {how}")
    assert (shape(frames), how) == ("Settings x2, GOAWAY(11, last 0)", "fin")
    assert [e.split(":")[0] for e in errors] == ["DenialOfServiceError"]
    assert growth < GROWTH_BOUND_MIB
    assert curl_ok(server.port("h2"))


def _ping() -> bytes:
    frame = hf.PingFrame(0)
    frame.opaque_data = b"12345678"
    return frame.serialize()


@pytest.mark.parametrize(("kind", "frame", "count"),
                         [("SETTINGS", settings(), 5000), ("PING", _ping(), 5000)])
def test_h2_control_frame_flood_gets_enhance_your_calm(server, kind, frame, count):
    measure = Measure(server)
    with socket.create_connection(("127.0.0.1", server.port("h2")), timeout=3) as sock:
        sent = send_all(sock, PREFACE + settings() + frame * count)
        frames, how = read_frames(sock)
    growth, errors = measure.done(f"{kind} flood ({count:,} frames)", f"{sent}; {shape(frames)} then {how}")
    goaways = [f for f in frames if isinstance(f, hf.GoAwayFrame)]
    assert [(g.error_code, g.last_stream_id) for g in goaways] == [(11, 0)]  # ENHANCE_YOUR_CALM
    assert how in ("fin", "rst")  # an RST when our unread frames were still in its buffer
    assert len(errors) == 1 and errors[0].startswith("flood: "), errors
    assert growth < GROWTH_BOUND_MIB
    assert curl_ok(server.port("h2"))


def test_h2_continuation_flood_gets_protocol_error(server):
    measure = Measure(server)
    encoder = hpack.Encoder()
    continuation = hf.ContinuationFrame(1)
    continuation.data = b""
    data = PREFACE + settings() + headers(1, request_block(encoder)) + continuation.serialize() * 100_000
    with socket.create_connection(("127.0.0.1", server.port("h2")), timeout=3) as sock:
        sent = send_all(sock, data)
        frames, how = read_frames(sock)
    growth, errors = measure.done("CONTINUATION flood (100,000 empty frames)",
                                  f"{sent}; {shape(frames)} then {how}")
    assert shape(frames) == "Settings x2, GOAWAY(1, last 0)"  # PROTOCOL_ERROR
    assert errors == ["ProtocolError: Too many continuation frames received."]
    assert growth < GROWTH_BOUND_MIB
    assert curl_ok(server.port("h2"))


def rapid_reset(pairs: int) -> bytes:
    """HEADERS (a whole request) then RST_STREAM CANCEL, `pairs` times (CVE-2023-44487)."""
    encoder = hpack.Encoder()
    out = [PREFACE, settings()]
    for i in range(pairs):
        stream_id = 2 * i + 1
        reset = hf.RstStreamFrame(stream_id)
        reset.error_code = 8
        out += [headers(stream_id, request_block(encoder, f"/r{i}"), "END_STREAM", "END_HEADERS"),
                reset.serialize()]
    return b"".join(out)


def run_rapid_reset(server: Any, pairs: int) -> tuple[list[hf.Frame], str, bool, float, list[str]]:
    """The flood on one connection, a healthy request sent during it: (frames, how it
    ended, whether the healthy request was served, RSS growth, h2_error events)."""
    measure = Measure(server)
    with socket.create_connection(("127.0.0.1", server.port("h2")), timeout=3) as sock:
        sender = threading.Thread(target=send_all, args=(sock, rapid_reset(pairs)))
        sender.start()
        healthy = curl_ok(server.port("h2"))
        frames, how = read_frames(sock, timeout=3)
        sender.join()
    growth, errors = measure.done(f"RST_STREAM flood (rapid reset, {pairs:,} pairs)",
                                  f"{shape(frames)} then {how}; healthy request during it: {healthy}")
    return frames, how, healthy, growth, errors


def test_h2_rapid_reset_leaves_others_served_and_memory_bounded(server):
    _frames, _how, healthy, growth, _errors = run_rapid_reset(server, 5000)
    assert healthy
    assert growth < GROWTH_BOUND_MIB
    assert curl_ok(server.port("h2"))


def test_h2_rapid_reset_gets_enhance_your_calm(server):
    frames, how, _healthy, _growth, errors = run_rapid_reset(server, 5000)
    goaways = [f.error_code for f in frames if isinstance(f, hf.GoAwayFrame)]
    assert (goaways, how) == ([11], "fin")
    assert len(errors) == 1 and errors[0].startswith("flood: "), errors


#: Zero-window abuse: connections, and streams on each, asking for the 1 MiB body.
ZERO_WINDOW_CONNECTIONS = 50
ZERO_WINDOW_STREAMS = 20


def test_h2_zero_window_streams_hold_bounded_memory(server):
    # Each client sets INITIAL_WINDOW_SIZE 0 and never sends WINDOW_UPDATE: the server can send
    # no byte of the 1,000 bodies it owes, and holds them. What it holds must not be a copy
    # per stream (1,000 x 1 MiB would be 1 GB), and other clients must be served meanwhile.
    measure = Measure(server)
    socks = []
    try:
        for _ in range(ZERO_WINDOW_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", server.port("big")), timeout=3)
            encoder = hpack.Encoder()
            data = PREFACE + settings(INITIAL_WINDOW_SIZE=0)
            for i in range(ZERO_WINDOW_STREAMS):
                data += headers(2 * i + 1, request_block(encoder, f"/z{i}"), "END_STREAM", "END_HEADERS")
            sock.sendall(data)
            socks.append(sock)
        time.sleep(1.0)
        healthy = curl_ok(server.port("h2"))
        frames, how = read_frames(socks[0], timeout=1)
        growth, _errors = measure.done(
            f"zero window ({ZERO_WINDOW_CONNECTIONS} conns x {ZERO_WINDOW_STREAMS} streams, 1 MiB body)",
            f"first conn: {shape(frames)} then {how}",
        )
    finally:
        for sock in socks:
            sock.close()
    assert healthy
    # the heads went out, no DATA could
    assert shape(frames) == f"Settings x2, Headers x{ZERO_WINDOW_STREAMS}"
    assert how == "timeout"
    assert growth < GROWTH_BOUND_MIB
    assert curl_ok(server.port("h2"))


def test_h2_header_list_over_max_header_bytes_is_refused(faultserver):
    # over HTTP/1.1 the same headers get 431; over h2 they are served
    srv = faultserver({"version": 1, "listeners": [{
        "name": "small", "bind": "127.0.0.1:0", "protocols": ["h2"],
        "limits": {"max_header_bytes": "8KiB"}}]})
    block = request_block(hpack.Encoder(), extra=(("x-big", "a" * 20_000),))
    with socket.create_connection(("127.0.0.1", srv["small"].port), timeout=3) as sock:
        send_all(sock, PREFACE + settings() + headers(1, block, "END_STREAM", "END_HEADERS"))
        frames, _how = read_frames(sock, timeout=1)
    decoder = hpack.Decoder()
    answered = [(f.stream_id, dict(decoder.decode(f.data))[":status"]) for f in frames
                if isinstance(f, hf.HeadersFrame)]
    # as HTTP/1.1 answers the same head: 431 (on its stream; the connection goes on), and no
    # request event
    assert answered == [(1, "431")]
    assert not any(isinstance(f, hf.GoAwayFrame) for f in frames)
    assert [(e["status"], e["error"], e["stream"]) for e in srv.events(type="response")] == [
        (431, "request headers too large", 1)]
    assert srv.events(type="request") == []


def test_h2_header_list_under_a_max_header_bytes_above_64_kib_is_served(faultserver):
    # the limit governs above h2's own 64 KiB too: HPACK decoding stops at the larger of both
    srv = faultserver({"version": 1, "listeners": [{
        "name": "large", "bind": "127.0.0.1:0", "protocols": ["h2"], "response": {"body": "ok\n"},
        "limits": {"max_header_bytes": "128KiB"}}]})
    block = request_block(hpack.Encoder(), extra=(("x-big", "a" * 100_000),))
    data = headers(1, block[:16_000], "END_STREAM")
    rest = block[16_000:]
    for offset in range(0, len(rest), 16_000):
        frame = hf.ContinuationFrame(1)
        frame.data = rest[offset : offset + 16_000]
        if offset + 16_000 >= len(rest):
            frame.flags.add("END_HEADERS")
        data += frame.serialize()
    with socket.create_connection(("127.0.0.1", srv["large"].port), timeout=3) as sock:
        send_all(sock, PREFACE + settings() + data)
        frames, _how = read_frames(sock, timeout=1)
    decoder = hpack.Decoder()
    answered = [(f.stream_id, dict(decoder.decode(f.data))[":status"]) for f in frames
                if isinstance(f, hf.HeadersFrame)]
    assert answered == [(1, "200")]
    assert [len(e["path"]) for e in srv.events(type="request")] == [1]

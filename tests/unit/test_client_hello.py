"""The ClientHello reader: hellos captured from real clients, hellos built by hand, and noise.

The reader itself has no socket. The captures open one: a raw listener on 127.0.0.1 that
reads the first bytes a real client (Python `ssl`, curl, `openssl s_client`) sends and
answers nothing, so that what is asserted is what those clients put on the wire.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultserver._protocol.client_hello import (
    HEAD_BYTES,
    MAX_CLIENT_HELLO_BYTES,
    MAX_HELLO_RECORDS,
    NEED_MORE,
    ClientHello,
    MalformedHello,
    NotTLS,
    read_client_hello,
)

CAPTURE_TIMEOUT_S = 10.0

# --- hellos from real clients -----------------------------------------------------------


def capture(start_client: Callable[[int], object]) -> bytes:
    """The first flight a client sends to a listener that never answers: its ClientHello."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(CAPTURE_TIMEOUT_S)
        client = start_client(listener.getsockname()[1])
        conn, _ = listener.accept()
        held = b""
        with conn:
            conn.settimeout(CAPTURE_TIMEOUT_S)
            while read_client_hello(held) is NEED_MORE:
                chunk = conn.recv(65536)
                assert chunk, f"the client closed after {len(held)} bytes"
                held += chunk
    if isinstance(client, subprocess.Popen):
        client.wait(CAPTURE_TIMEOUT_S)
    elif isinstance(client, threading.Thread):
        client.join(CAPTURE_TIMEOUT_S)
    return held


def python_client(server_hostname: str, alpn: list[str]) -> Callable[[int], threading.Thread]:
    def start(port: int) -> threading.Thread:
        context = ssl.create_default_context()
        if alpn:
            context.set_alpn_protocols(alpn)

        def run() -> None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=CAPTURE_TIMEOUT_S) as raw:
                    context.wrap_socket(raw, server_hostname=server_hostname)
            except (OSError, ssl.SSLError):
                pass  # the listener closes without a ServerHello

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    return start


def program_client(*argv: str) -> Callable[[int], subprocess.Popen[bytes]]:
    """A client program; `{port}` in an argument becomes the listener's port."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")

    def start(port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [arg.format(port=port) for arg in argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    return start


@pytest.fixture(scope="module")
def python_hello() -> bytes:
    return capture(python_client("example.test", ["h2", "http/1.1"]))


def test_read_client_hello_python_ssl_sni_and_alpn(python_hello: bytes) -> None:
    hello = read_client_hello(python_hello)
    assert isinstance(hello, ClientHello)
    assert (hello.sni, hello.alpn) == ("example.test", ("h2", "http/1.1"))
    assert (hello.legacy_version, hello.supported_versions[0]) == ("1.2", "1.3")
    assert hello.size == len(python_hello)


def test_read_client_hello_python_ssl_sends_no_sni_for_an_ip_address() -> None:
    hello = read_client_hello(capture(python_client("127.0.0.1", [])))
    assert isinstance(hello, ClientHello)
    assert (hello.sni, hello.alpn) == (None, ())


@pytest.mark.parametrize(
    ("argv", "sni", "alpn"),
    [
        (("curl", "-sS", "--resolve", "curl.test:{port}:127.0.0.1", "https://curl.test:{port}/"),
         "curl.test", ("h2", "http/1.1")),
        (("curl", "-sS", "--http1.1", "https://127.0.0.1:{port}/"), None, ("http/1.1",)),
    ],
    ids=["sni-h2", "ip-http1.1"],
)
def test_read_client_hello_curl(argv: tuple[str, ...], sni: str | None, alpn: tuple[str, ...]) -> None:
    hello = read_client_hello(capture(program_client(*argv, "--max-time", "10")))
    assert isinstance(hello, ClientHello)
    assert (hello.sni, hello.alpn) == (sni, alpn)


def test_read_client_hello_openssl_s_client() -> None:
    start = program_client(
        "openssl", "s_client", "-connect", "127.0.0.1:{port}", "-servername", "x", "-alpn", "h2,http/1.1"
    )
    hello = read_client_hello(capture(start))
    assert isinstance(hello, ClientHello)
    assert (hello.sni, hello.alpn) == ("x", ("h2", "http/1.1"))
    assert "1.3" in hello.supported_versions


def test_read_client_hello_needs_more_until_the_last_byte(python_hello: bytes) -> None:
    for end in range(len(python_hello)):
        assert read_client_hello(python_hello[:end]) is NEED_MORE, end
    assert read_client_hello(python_hello) == read_client_hello(bytearray(python_hello))


def test_read_client_hello_takes_a_hello_split_across_records(python_hello: bytes) -> None:
    message = python_hello[5:]  # one record: its fragment is the whole handshake message
    whole = read_client_hello(python_hello)
    assert isinstance(whole, ClientHello)
    for cut in (1, 2, 3, 4, 5, len(message) // 2, len(message) - 1):
        split = records(message, [cut])
        hello = read_client_hello(split)
        assert isinstance(hello, ClientHello), cut
        assert hello == ClientHello(
            whole.sni, whole.alpn, whole.legacy_version, whole.supported_versions, len(python_hello) + 5
        )
        assert all(read_client_hello(split[:end]) is NEED_MORE for end in range(len(split)))


def test_read_client_hello_takes_a_hello_larger_than_a_record() -> None:
    message = handshake(body(sni_ext(b"big.test") + alpn_ext(b"h2") + ext(21, bytes(20000))))
    data = records(message, [16384])
    hello = read_client_hello(data)
    assert hello == ClientHello("big.test", ("h2",), "1.2", (), len(data))
    assert read_client_hello(data[:-1]) is NEED_MORE


def test_read_client_hello_leaves_what_follows_the_hello(python_hello: bytes) -> None:
    change_cipher_spec = b"\x14\x03\x03\x00\x01\x01"
    hello = read_client_hello(python_hello + change_cipher_spec)
    assert isinstance(hello, ClientHello)
    assert hello.size == len(python_hello)


# --- hellos built by hand ---------------------------------------------------------------


def vector(length_size: int, content: bytes) -> bytes:
    return len(content).to_bytes(length_size, "big") + content


def ext(kind: int, content: bytes) -> bytes:
    return kind.to_bytes(2, "big") + vector(2, content)


def sni_ext(*names: bytes) -> bytes:
    return ext(0, vector(2, b"".join(b"\x00" + vector(2, name) for name in names)))


def alpn_ext(*names: bytes) -> bytes:
    return ext(16, vector(2, b"".join(vector(1, name) for name in names)))


def versions_ext(*versions: int) -> bytes:
    return ext(43, vector(1, b"".join(version.to_bytes(2, "big") for version in versions)))


def body(extensions: bytes | None, *, suites: bytes = b"\x13\x01\x00\x2f") -> bytes:
    """A ClientHello's body: version 1.2, a zero random, no session id, null compression."""
    head = b"\x03\x03" + bytes(32) + vector(1, b"") + vector(2, suites) + vector(1, b"\x00")
    return head if extensions is None else head + vector(2, extensions)


def handshake(hello_body: bytes, msg_type: int = 1) -> bytes:
    return bytes([msg_type]) + vector(3, hello_body)


def records(message: bytes, cuts: list[int] | None = None, content_type: int = 22) -> bytes:
    """`message` in handshake records, cut at the offsets in `cuts`."""
    edges = [0, *(cuts or []), len(message)]
    return b"".join(
        bytes([content_type]) + b"\x03\x01" + vector(2, message[a:b]) for a, b in itertools.pairwise(edges)
    )


def hello_with(extensions: bytes | None) -> bytes:
    return records(handshake(body(extensions)))


def test_read_client_hello_without_extensions() -> None:
    data = hello_with(None)
    assert read_client_hello(data) == ClientHello(None, (), "1.2", (), len(data))


def test_read_client_hello_leaves_out_grease_and_names_unknown_versions() -> None:
    hello = read_client_hello(hello_with(versions_ext(0x0A0A, 0x0304, 0x7F1C, 0x0303, 0xFAFA)))
    assert isinstance(hello, ClientHello)
    assert hello.supported_versions == ("1.3", "0x7f1c", "1.2")


def test_read_client_hello_escapes_a_server_name_that_is_not_ascii() -> None:
    hello = read_client_hello(hello_with(sni_ext("café.test".encode())))
    assert isinstance(hello, ClientHello)
    assert hello.sni == "caf\\xc3\\xa9.test"


def test_read_client_hello_takes_the_first_host_name() -> None:
    other_type = b"\x01" + vector(2, b"other")
    hello = read_client_hello(hello_with(ext(0, vector(2, other_type + b"\x00" + vector(2, b"a.test")))))
    assert isinstance(hello, ClientHello)
    assert hello.sni == "a.test"


# --- not TLS ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a TLS handshake record"),
        (b"G", "not a TLS handshake record"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "not a TLS handshake record"),
        (b"\x80\x2e\x01\x00\x02\x00\x15", "an SSLv2-format ClientHello"),
        (b"\x17\x03\x03\x00\x10", "not a TLS handshake record"),  # application data first
        (b"\x16\x02", "not a TLS handshake record"),
        (b"\x16\x03\x05", "not a TLS handshake record"),
        (b"\x16\x03\x01\x00\x00", "a TLS record of 0 bytes, expected 1 to 16384"),
        (b"\x16\x03\x01\x40\x01", "a TLS record of 16385 bytes, expected 1 to 16384"),
    ],
    ids=["http1", "first-byte", "h2-preface", "sslv2", "app-data", "version-major", "version-minor",
         "empty-record", "record-too-long"],
)
def test_read_client_hello_not_tls(data: bytes, reason: str) -> None:
    assert read_client_hello(data) == NotTLS(reason, data[:HEAD_BYTES])


def test_read_client_hello_needs_more_for_the_start_of_a_record_header() -> None:
    assert [read_client_hello(b"\x16\x03\x01\x02"[:end]) for end in range(5)] == [NEED_MORE] * 5


# --- malformed --------------------------------------------------------------------------

MESSAGE = handshake(body(sni_ext(b"a.test")))
NOT_A_RECORD = "inside the ClientHello, expected another handshake record"
TOO_LARGE = f"a ClientHello larger than {MAX_CLIENT_HELLO_BYTES} bytes"
CASES = {
    "server-hello": (
        records(handshake(body(None), msg_type=2)),
        "a handshake message of type 2, expected a ClientHello (1)",
    ),
    "alert-inside": (
        records(MESSAGE, [10])[:15] + records(MESSAGE[10:], content_type=21),
        f"a record header 15 03 01 00 {len(MESSAGE) - 10:02x} {NOT_A_RECORD}",
    ),
    "empty-record-inside": (
        records(MESSAGE, [10])[:15] + b"\x16\x03\x01\x00\x00",
        f"a record header 16 03 01 00 00 {NOT_A_RECORD}",
    ),
    "too-many-records": (
        records(MESSAGE, list(range(1, MAX_HELLO_RECORDS + 1))),
        f"a ClientHello cut into more than {MAX_HELLO_RECORDS} records",
    ),
    "too-large": (b"\x16\x03\x01\x00\x04\x01\x01\x00\x00", TOO_LARGE),
    "empty-body": (records(handshake(b"")), "ClientHello version cut short: 2 bytes expected, 0 left"),
    "short-random": (
        records(handshake(b"\x03\x03" + bytes(10))),
        "ClientHello random cut short: 32 bytes expected, 10 left",
    ),
    "odd-suites": (
        records(handshake(body(None, suites=b"\x13\x01\x00"))),
        "cipher suites of 3 bytes, expected an even number above 0",
    ),
    "short-sni": (
        hello_with(ext(0, b"\x00\x28" + bytes(12))),
        "server name list cut short: 40 bytes expected, 12 left",
    ),
    "short-extensions": (
        records(handshake(body(None) + b"\x00\x40" + sni_ext(b"a.test"))),
        "extensions cut short: 64 bytes expected, 15 left",
    ),
    "trailing-bytes": (
        records(handshake(body(sni_ext(b"a.test")) + b"xyz")),
        "3 bytes after the extensions, expected none",
    ),
    "duplicate-extension": (hello_with(sni_ext(b"a.test") + sni_ext(b"b.test")), "extension 0 sent twice"),
    "sni-trailing": (
        hello_with(ext(0, vector(2, b"\x00" + vector(2, b"a.test")) + b"zz")),
        "2 bytes after the server name list, expected none",
    ),
    "empty-sni-list": (hello_with(ext(0, vector(2, b""))), "an empty server name list"),
    "empty-alpn-name": (hello_with(alpn_ext(b"h2", b"")), "an empty ALPN protocol name"),
    "odd-versions": (
        hello_with(ext(43, b"\x03\x03\x04\x03")),
        "supported versions of 3 bytes, expected an even number",
    ),
}


@pytest.mark.parametrize(("data", "reason"), list(CASES.values()), ids=list(CASES))
def test_read_client_hello_malformed(data: bytes, reason: str) -> None:
    assert read_client_hello(data) == MalformedHello(reason)


def test_read_client_hello_refuses_a_declared_length_beyond_the_bound_at_once() -> None:
    declared = (MAX_CLIENT_HELLO_BYTES).to_bytes(3, "big")
    assert read_client_hello(b"\x16\x03\x01\x40\x00\x01" + declared) == MalformedHello(TOO_LARGE)


def test_read_client_hello_needs_more_only_below_the_bound() -> None:
    # a hello that takes exactly the bound on the wire, in five records: complete at its end
    cuts = [16000, 32000, 48000, 64000]
    padding = MAX_CLIENT_HELLO_BYTES - 5 * 5 - 4 - len(body(b"")) - 4
    data = records(handshake(body(ext(21, bytes(padding)))), cuts)
    assert len(data) == MAX_CLIENT_HELLO_BYTES
    assert read_client_hello(data[:-1]) is NEED_MORE
    assert isinstance(read_client_hello(data), ClientHello)
    # one byte more: refused as soon as the last record's header says where it would end
    over = records(handshake(body(ext(21, bytes(padding + 1)))), cuts)
    last_header_end = 64000 + 5 * 5
    assert read_client_hello(over[:last_header_end - 1]) is NEED_MORE
    assert read_client_hello(over[:last_header_end]) == MalformedHello(TOO_LARGE)


# --- noise ------------------------------------------------------------------------------

RESULTS = (ClientHello, NotTLS, MalformedHello)
FUZZ = settings(max_examples=400, deadline=None)


def held_back(result: object, data: bytes) -> None:
    """What any input gives: one of the four answers, and NEED_MORE only below the bound."""
    if result is NEED_MORE:
        assert len(data) < MAX_CLIENT_HELLO_BYTES
    else:
        assert isinstance(result, RESULTS)


@FUZZ
@given(st.binary(max_size=600))
def test_read_client_hello_never_raises_on_noise(data: bytes) -> None:
    held_back(read_client_hello(data), data)


@FUZZ
@given(st.binary(max_size=600), st.integers(1, 700))
def test_read_client_hello_never_raises_inside_a_record(data: bytes, length: int) -> None:
    framed = b"\x16\x03\x01" + length.to_bytes(2, "big") + b"\x01" + (len(data)).to_bytes(3, "big") + data
    held_back(read_client_hello(framed), framed)


@FUZZ
@given(st.data())
def test_read_client_hello_never_raises_on_a_damaged_hello(python_hello: bytes, data: st.DataObject) -> None:
    damaged = bytearray(python_hello)
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    held_back(read_client_hello(damaged[:cut]), bytes(damaged[:cut]))

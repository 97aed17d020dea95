"""Raw sockets with timeouts, a tiny HTTP/1.1 response reader, and curl, for tests on real sockets.

Every socket made here has a timeout, so a test that goes wrong fails instead of hanging.
How a connection ended is what these tests are about: `recv_to_fin` raises on an RST (so a
test that reads with it asserts a clean FIN), `read_to_end` says "eof", "reset" or "timeout".
"""

from __future__ import annotations

import errno
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

from .wait import LONG_S

__all__ = [
    "CURL",
    "LONG_S",
    "SHORT_S",
    "RawReader",
    "RawResponse",
    "connect",
    "connect_errno",
    "connect_error",
    "curl",
    "get_request",
    "ipv6_available",
    "pipeline_gets",
    "read_to_end",
    "recv_to_fin",
    "same_date",
]

#: The timeout a client uses when the test expects it to run out (a connect or read timeout
#: where nothing will ever come: a dropped SYN, a queued connection, a hang). Below the 1 s
#: of the first SYN retransmission, so a dropped SYN is a failure, not latency.
SHORT_S = 0.2

CURL = shutil.which("curl")

#: An RFC 7231 date is always 29 characters, so replacing it keeps offsets intact.
_DATE = re.compile(rb"(date: )[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


def same_date(data: bytes) -> bytes:
    """`data` with its `date:` header's value made constant (it is the wall clock's)."""
    return _DATE.sub(rb"\1DDD, DD MMM YYYY HH:MM:SS GMT", data)


def connect(host: str, port: int, timeout: float = LONG_S) -> socket.socket:
    """A connected client socket (IPv4 or IPv6 by the host's form), with `timeout` on every call."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def connect_error(host: str, port: int, timeout: float = SHORT_S) -> tuple[BaseException | None, float]:
    """Try to connect; return (the exception or None, seconds taken). Closes the socket."""
    start = time.monotonic()
    try:
        sock = connect(host, port, timeout)
    except OSError as exc:
        return exc, time.monotonic() - start
    sock.close()
    return None, time.monotonic() - start


def connect_errno(port: int, timeout: float = SHORT_S) -> int:
    """0 when a connect to 127.0.0.1:`port` succeeds, else its errno (ETIMEDOUT for a timeout)."""
    exc, _ = connect_error("127.0.0.1", port, timeout)
    if exc is None:
        return 0
    if isinstance(exc, TimeoutError):
        return errno.ETIMEDOUT
    assert isinstance(exc, OSError) and exc.errno is not None, repr(exc)
    return exc.errno


def recv_to_fin(sock: socket.socket) -> bytes:
    """Everything until the peer's FIN. An RST raises ConnectionResetError, a silence TimeoutError."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def read_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """Everything the server sends, and how it ended: "eof", "reset" or "timeout"."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, "reset"
        except TimeoutError:
            return data, "timeout"
        if not chunk:
            return data, "eof"
        data += chunk


@dataclass
class RawResponse:
    status_line: bytes
    headers: list[tuple[bytes, bytes]]
    head: bytes  # status line and headers, up to and including the blank line
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"header {name!r} sent {len(values)} times: {self.head!r}"
        return values[0] if values else None

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])


class RawReader:
    """Reads HTTP/1.1 responses one by one off a raw socket (for pipelining and exact bytes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            if not self._fill():
                raise AssertionError(f"EOF after {len(self.buf)} of {n} bytes: {self.buf!r}")

    def read_head(self) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise AssertionError(f"EOF before the end of the headers: {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        return head + b"\r\n\r\n", lines[0], headers

    def read_response(self, head_request: bool = False) -> RawResponse:
        head, status_line, headers = self.read_head()
        resp = RawResponse(status_line, headers, head, b"")
        status = resp.status
        if head_request or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header(b"transfer-encoding")
        length = resp.header(b"content-length")
        if te is not None:
            assert te.lower() == b"chunked", te
            resp.body = self._read_chunked()
        elif length is not None:
            n = int(length)
            self._need(n)
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            resp.body = self.buf + recv_to_fin(self.sock)
            self.buf = b""
        return resp

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                if not self._fill():
                    raise AssertionError(f"EOF inside chunked body: {self.buf!r}")
            size_line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(size_line, 16)
            self._need(size + 2)
            chunk, crlf, self.buf = self.buf[:size], self.buf[size : size + 2], self.buf[size + 2 :]
            assert crlf == b"\r\n", crlf
            if size == 0:
                return body
            body += chunk

    def at_eof(self) -> bool:
        """True when nothing more is buffered and the peer has sent FIN (raises on RST)."""
        return not self.buf and self.sock.recv(65536) == b""


def pipeline_gets(sock: socket.socket, count: int, batches: int = 1) -> None:
    """`batches` times: `count` GETs in one write, then read until `count` 200s have come."""
    for _ in range(batches):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        received = b""
        while received.count(b"HTTP/1.1 200") < count:
            data = sock.recv(1 << 20)
            assert data, f"EOF after {received.count(b'HTTP/1.1 200')} of {count} answers"
            received += data


def get_request(path: str = "/", host: str = "x", extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"GET " + path.encode() + b" " + version + b"\r\nHost: " + host.encode() + b"\r\n" + extra + b"\r\n"
    )


def curl(*args: str, max_time: float = 5, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run `curl ARGS...` quietly (errors on stderr, bodies to stdout, `-m max_time`); its exit
    code says what it met."""
    if CURL is None:
        pytest.skip("curl is not installed")
    return subprocess.run(
        [CURL, "-sS", "-m", str(max_time), *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True

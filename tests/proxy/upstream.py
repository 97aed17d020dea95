"""A real upstream for the proxy tests: a threaded HTTP/1.1 server (the standard library's),
with a route per behaviour a proxy must relay or survive.

- `/file/N`: N bytes of a fixed pattern with a Content-Length, written in 64 KiB pieces
- `/chunked/N`: the same bytes, chunked
- `/echo`: JSON of what arrived: method, path, headers and the body's SHA-256 and size
- `/status/N`: an empty answer with status N (no Content-Length for 204 and 304)
- `/stall`: never answers (until the server stops)
- `/ws`: a WebSocket echo (wsproto): each text or binary message comes back
- `/cut/N`: a head that promises 2N bytes, N of them, then FIN
- `/reset`: RST without an answer; `/fin`: FIN without an answer; `/garbage`: not HTTP
- anything else: `200 ok` with a small text body
Every connection is counted (`connections`, and `open` now), so tests can see the pool's reuse.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Request,
    TextMessage,
)

__all__ = ["PATTERN", "Upstream", "pattern_bytes"]

PATTERN = bytes(range(256)) * 256  # 64 KiB


def pattern_bytes(size: int) -> bytes:
    """The first `size` bytes the file routes send."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # the head and the body go out in two writes: without this, Nagle holds the second
        # until the proxy's delayed ACK (40 ms) of the first
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections += 1
            self.server.open += 1

    def finish(self) -> None:
        super().finish()
        with self.server.lock:
            self.server.open -= 1

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        self.do_GET()

    def do_PUT(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        parts = path.strip("/").split("/")
        route = parts[0]
        if route == "file" or route == "chunked":
            self._file(int(parts[1]), chunked=route == "chunked")
        elif route == "echo":
            self._echo()
        elif route == "cut":
            size = int(parts[1])
            self.send_response(200)
            self.send_header("content-length", str(2 * size))
            self.end_headers()
            self.wfile.write(pattern_bytes(size))
            self.close_connection = True
        elif route == "cutreset":  # as `cut`, then an RST instead of a FIN
            size = int(parts[1])
            self.send_response(200)
            self.send_header("content-length", str(2 * size))
            self.end_headers()
            self.wfile.write(pattern_bytes(size))
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif route == "ws":
            self._websocket()
        elif route == "status":
            status = int(parts[1])
            self.send_response(status)
            if status not in (204, 304):
                self.send_header("content-length", "0")
            self.end_headers()
        elif route == "stall":
            self.server.stop.wait()
            self.close_connection = True
        elif route == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # an RST now (the server's own close would FIN first)
            self.close_connection = True
        elif route == "fin":
            self.close_connection = True
        elif route == "garbage":
            self.wfile.write(b"\x00\x01this is not http\r\n\r\n")
            self.close_connection = True
        else:
            self._send(200, b"ok\n", [("content-type", "text/plain"), ("x-upstream", "yes")])

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _file(self, size: int, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        if chunked:
            self.send_header("transfer-encoding", "chunked")
        else:
            self.send_header("content-length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        left = size
        while left > 0:
            piece = PATTERN[: min(left, len(PATTERN))]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            left -= len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _websocket(self) -> None:
        """Hand the head back to wsproto (which answers 101), then echo messages."""
        ws = WSConnection(ConnectionType.SERVER)
        head = f"{self.requestline}\r\n{self.headers}".encode("latin-1")
        ws.receive_data(head.rstrip(b"\r\n") + b"\r\n\r\n")
        self.close_connection = True
        sock = self.connection
        while True:
            for event in ws.events():
                if isinstance(event, Request):
                    sock.sendall(ws.send(AcceptConnection()))
                elif isinstance(event, (TextMessage, BytesMessage)):
                    sock.sendall(ws.send(Message(data=event.data)))
                elif isinstance(event, CloseConnection):
                    sock.sendall(ws.send(event.response()))
                    return
            data = sock.recv(65536)
            if not data:
                return
            ws.receive_data(data)

    def _echo(self) -> None:
        digest = hashlib.sha256()
        size = 0
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    self.rfile.readline()
                    break
                data = self.rfile.read(n)
                digest.update(data)
                size += n
                self.rfile.readline()
        else:
            left = int(self.headers.get("content-length") or 0)
            while left:
                data = self.rfile.read(min(left, 65536))
                digest.update(data)
                size += len(data)
                left -= len(data)
        echo = {
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "sha256": digest.hexdigest(),
            "size": size,
        }
        self._send(200, json.dumps(echo).encode(), [("content-type", "application/json")])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0
    open = 0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.stop = threading.Event()


class Upstream:
    """The server in a thread, for a `with` block; `url` is `http://127.0.0.1:PORT`."""

    def __init__(self) -> None:
        self._server = _Server()
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def connections(self) -> int:
        return self._server.connections

    @property
    def open(self) -> int:
        """Connections open now (the proxy has not closed them)."""
        return self._server.open

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

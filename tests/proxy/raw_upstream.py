"""An upstream on a bare socket, for the pool's edge cases that a real server does not
produce on demand (an unasked answer, an answer in exactly one write): each test says
what it writes, this serves it, one thread per connection."""

from __future__ import annotations

import socket
import threading


class RawUpstream:
    """Listens on 127.0.0.1; `serve(conn)` (a subclass's) answers each connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def _serve_one(self, conn: socket.socket) -> None:
        with conn:
            self.serve(conn)

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


def read_head(conn: socket.socket, data: bytes) -> tuple[bytes, bytes] | None:
    """The next request head on `conn` (after what `data` holds already) and the bytes after
    it; None when the client closed first."""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest

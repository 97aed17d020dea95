"""The proxy throughput reference: a bare Trio + httptools forwarder, the few lines any
proxy needs, and nothing faultserver adds (no rules, events, metrics or limits).

`baseline_proxy.py` (the reference before this one, kept as the stack's floor) relays
bytes: it never looks inside a head, so it forwards hop-by-hop headers (which RFC 9110
section 7.6.1 says a proxy must remove), ties one upstream connection to each client
connection, and has no timeout. This one does what the proxy issue's data path asks of any
proxy, in as few lines:

- parses each request head, drops the hop-by-hop headers (`Connection` and the names it
  lists, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-*`), adds
  `X-Forwarded-For`, `-Proto` and `-Host`, and frames the body with `Content-Length`;
- takes an upstream connection from one keep-alive pool shared by all clients;
- answers 502 when the upstream cannot be reached and 504 when it does not answer in time
  (a deadline only on a read that has to wait, as any proxy on Trio would: a cancel scope
  per answer cost about 10 us a request here);
- parses each answer head, drops its hop-by-hop headers and relays it with
  `Content-Length` (answers are read whole: the bench's are 3-byte answers to GETs).

    python bench/baseline_proxy_rfc.py PORT UPSTREAM_PORT   # prints "listening http://127.0.0.1:PORT"
"""

import socket
import sys

import httptools
import trio
from accept_loop import serve

HOP_BY_HOP = {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
#: ... and the framing, which this proxy writes itself
DROPPED = HOP_BY_HOP | {b"content-length"}
READ_TIMEOUT_S = 30.0


class Message:
    """One parsed message at a time: its URL, headers and body, and those complete."""

    def __init__(self) -> None:
        self.url = b""
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done: list[tuple[bytes, list[tuple[bytes, bytes]], bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done.append((self.url, self.headers, b"".join(self.body)))
        self.url, self.headers, self.body = b"", [], []


def end_to_end(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The header lines a proxy passes on: all but the hop-by-hop ones (and the framing)."""
    lowered = [(name.lower(), name, value) for name, value in headers]
    drop = DROPPED
    for low, _, value in lowered:
        if low == b"connection":
            drop = drop | {v.strip().lower() for v in value.split(b",")}
    return [name + b": " + value for low, name, value in lowered if low not in drop and low[:6] != b"proxy-"]


class Pool:
    """Idle keep-alive connections to the upstream, shared by every client connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[trio.socket.SocketType] = []

    async def acquire(self) -> trio.socket.SocketType:
        if self.idle:
            return self.idle.pop()
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


async def recv_within(sock: trio.socket.SocketType, seconds: float) -> bytes | None:
    """The next bytes, or None when none came within `seconds`. The deadline (a cancel
    scope, about 10 us a request here) is set only when the read has to wait."""
    raw: socket.socket = sock._sock  # type: ignore[attr-defined]  # non-blocking under Trio
    try:
        return raw.recv(65536)
    except BlockingIOError:
        pass
    with trio.move_on_after(seconds):
        return await sock.recv(65536)
    return None


async def exchange(pool: Pool, request: bytes) -> bytes:
    """Send one request upstream and read its answer; the answer to relay."""
    try:
        upstream = await pool.acquire()
    except OSError:
        return b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"
    answer = Message()
    parser = httptools.HttpResponseParser(answer)
    try:
        await upstream.send(request)
        while not answer.done:
            data = await recv_within(upstream, READ_TIMEOUT_S)
            if data is None:
                upstream.close()
                return b"HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\n\r\n"
            if not data:
                raise OSError("the upstream closed")
            parser.feed_data(data)
    except (OSError, httptools.HttpParserError):
        upstream.close()
        return b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"
    _, headers, body = answer.done[0]
    closing = any(n.lower() == b"connection" and b"close" in v.lower() for n, v in headers)
    if parser.get_http_version() == "1.1" and not closing:
        pool.idle.append(upstream)
    else:
        upstream.close()
    status = parser.get_status_code()
    head = [b"HTTP/1.1 %d %s" % (status, answer.reason), *end_to_end(headers)]
    lines = [*head, b"content-length: %d" % len(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def handle(client: trio.socket.SocketType, pool: Pool) -> None:
    requests = Message()
    parser = httptools.HttpRequestParser(requests)
    with client:
        try:
            peer = client.getpeername()[0]
            while data := await client.recv(65536):
                parser.feed_data(data)
                for url, headers, body in requests.done:
                    host = next((v for n, v in headers if n.lower() == b"host"), b"")
                    lines = [
                        parser.get_method() + b" " + url + b" HTTP/1.1",
                        *end_to_end(headers),
                        b"x-forwarded-for: " + peer.encode(),
                        b"x-forwarded-proto: http",
                        b"x-forwarded-host: " + host,
                    ]
                    if body:
                        lines.append(b"content-length: %d" % len(body))
                    await client.send(await exchange(pool, b"\r\n".join(lines) + b"\r\n\r\n" + body))
                requests.done.clear()
                if not parser.should_keep_alive():
                    return
        except (OSError, httptools.HttpParserError):
            pass


async def main(port: int, upstream_port: int) -> None:
    await serve(port, handle, Pool(upstream_port))


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]), int(sys.argv[2]))
    except KeyboardInterrupt:
        pass

"""The TLS reference: a bare Trio `SSLStream` server, parsing with httptools, that answers the
same bytes as faultserver's healthy response in bench/run.py's profiles.

    python bench/baseline_tls_server.py PORT CERT KEY   # prints "listening https://127.0.0.1:PORT"

Its context is built as faultserver's is for a `tls:` listener (`ssl.PROTOCOL_TLS_SERVER`,
ALPN `http/1.1`, the chain and key from PEM files), so that a handshake costs both servers
the same cryptography. It answers until the client's `Connection: close` (then a
`close_notify` and a FIN, as faultserver does) or the client's end, and holds a handshake
the client never finishes for as long as the client waits (figure 9's reference).
"""

import ssl
import sys
import time
from email.utils import formatdate

import httptools
import trio
from accept_loop import serve

_date = [0, b""]


def response(close: bool = False) -> bytes:
    """"ok\n" as text/plain, the date rebuilt once a second; `close`: with `connection: close`
    (faultserver's bytes, both ways)."""
    now = int(time.time())
    if now != _date[0]:
        date = formatdate(now, usegmt=True).encode()
        _date[:] = [now, b"HTTP/1.1 200 OK\r\ndate: " + date
                    + b"\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n"]
    if close:
        return _date[1].replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
    return _date[1]


class Requests:
    done = 0
    close = False

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)

    def on_message_complete(self) -> None:
        self.done += 1
        if not self.parser.should_keep_alive():
            self.close = True


async def handle(sock: trio.socket.SocketType, context: ssl.SSLContext) -> None:
    stream = trio.SSLStream(trio.SocketStream(sock), context, server_side=True)
    seen = Requests()
    try:
        while data := await stream.receive_some(65536):
            seen.parser.feed_data(data)
            if seen.done:
                if seen.close:  # the client asked to close: it gets its answer and no more
                    await stream.send_all(response() * (seen.done - 1) + response(close=True))
                    break
                await stream.send_all(response() * seen.done)
                seen.done = 0
    except (trio.BrokenResourceError, trio.ClosedResourceError, httptools.HttpParserError):
        pass  # a failed handshake, a reset, nonsense: this connection ends, not the server
    finally:
        with trio.move_on_after(1) as cleanup:
            cleanup.shield = True
            try:
                await stream.aclose()  # close_notify, then the socket's close
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


async def main(port: int, cert: str, key: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(cert, key)
    await serve(port, handle, context, backlog=4096, scheme="https", all_files=True)


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]), sys.argv[2], sys.argv[3])
    except KeyboardInterrupt:
        pass

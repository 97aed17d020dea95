"""The throughput reference: a minimal Trio server that parses with httptools and answers
the same bytes as faultserver's healthy response in bench/run.py's profile.

    python bench/baseline_server.py [PORT]      # prints "listening http://127.0.0.1:PORT"
"""

import sys
import time
from email.utils import formatdate

import httptools
import trio
from accept_loop import serve

_date = [0, b""]


def response() -> bytes:  # "ok\n" as text/plain, the date rebuilt once a second (as faultserver)
    now = int(time.time())
    if now != _date[0]:
        date = formatdate(now, usegmt=True).encode()
        _date[:] = [now, b"HTTP/1.1 200 OK\r\ndate: " + date
                    + b"\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n"]
    return _date[1]


class Requests:
    done = 0

    def on_message_complete(self) -> None:
        self.done += 1


async def handle(sock) -> None:
    seen = Requests()
    parser = httptools.HttpRequestParser(seen)
    with sock:
        try:
            while data := await sock.recv(65536):
                parser.feed_data(data)
                if seen.done:
                    await sock.send(response() * seen.done)
                    seen.done = 0
        except (OSError, httptools.HttpParserError):
            pass  # the client reset or spoke nonsense: this connection ends, not the server


async def main(port: int) -> None:
    await serve(port, handle)


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    except KeyboardInterrupt:
        pass

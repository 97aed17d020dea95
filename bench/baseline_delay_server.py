"""The delay-precision reference: a bare Trio server that sleeps 100 ms, then answers.

    python bench/baseline_delay_server.py [PORT]   # prints "listening http://127.0.0.1:PORT"

Same parser and the same response bytes as bench/baseline_server.py; each request waits
`trio.sleep(0.1)` in its connection's task, as faultserver's `delay: 100ms` does.
"""

import socket
import sys

import httptools
import trio
from baseline_server import Requests, response

DELAY_S = 0.1


async def handle(sock) -> None:
    seen = Requests()
    parser = httptools.HttpRequestParser(seen)
    with sock:
        try:
            while data := await sock.recv(65536):
                parser.feed_data(data)
                for _ in range(seen.done):
                    await trio.sleep(DELAY_S)
                    await sock.send(response())
                seen.done = 0
        except (OSError, httptools.HttpParserError):
            pass


async def main(port: int) -> None:
    listener = trio.socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    print(f"listening http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    async with trio.open_nursery() as nursery:
        while True:
            sock, _ = await listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(handle, sock)


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    except KeyboardInterrupt:
        pass

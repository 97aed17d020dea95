"""The delay-precision reference: a bare Trio server that sleeps 100 ms, then answers.

    python bench/baseline_delay_server.py [PORT]   # prints "listening http://127.0.0.1:PORT"

Same parser and the same response bytes as bench/baseline_server.py; each request waits
`trio.sleep(0.1)` in its connection's task, as faultserver's `delay: 100ms` does.
"""

import sys

import httptools
import trio
from accept_loop import serve
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
    await serve(port, handle, backlog=4096)


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    except KeyboardInterrupt:
        pass

"""The stack's floor, for context: a byte relay on Trio + httptools. One upstream
connection per client connection, requests forwarded one at a time (head and
Content-Length body as read), answers relayed with their Content-Length. No header
rewriting (so not a correct proxy: hop-by-hop headers pass), no pool, no timeouts, no
faults: the least any forwarder on this stack can cost. The throughput target's reference
is `baseline_proxy_rfc.py`, which does what every proxy must.

    python bench/baseline_proxy.py PORT UPSTREAM_PORT   # prints "listening http://127.0.0.1:PORT"
"""

import socket
import sys

import httptools
import trio
from accept_loop import serve


class Message:
    """Collects one parsed message: whether it is complete, and its raw bytes so far."""

    def __init__(self) -> None:
        self.complete = 0

    def on_message_complete(self) -> None:
        self.complete += 1


async def relay_answer(upstream, client, parser_state: Message, parser) -> bool:
    """Read one answer from the upstream and send it on as it comes; False on EOF."""
    while not parser_state.complete:
        data = await upstream.recv(65536)
        if not data:
            return False
        parser.feed_data(data)
        await client.send(data)
    parser_state.complete -= 1
    return True


async def handle(client, upstream_port: int) -> None:
    requests = Message()
    request_parser = httptools.HttpRequestParser(requests)
    answers = Message()
    upstream = trio.socket.socket()
    await upstream.connect(("127.0.0.1", upstream_port))
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with client, upstream:
        try:
            while data := await client.recv(65536):
                request_parser.feed_data(data)
                await upstream.send(data)
                while requests.complete:
                    requests.complete -= 1
                    answer_parser = httptools.HttpResponseParser(answers)
                    if not await relay_answer(upstream, client, answers, answer_parser):
                        return
        except (OSError, httptools.HttpParserError):
            pass


async def main(port: int, upstream_port: int) -> None:
    await serve(port, handle, upstream_port)


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]), int(sys.argv[2]))
    except KeyboardInterrupt:
        pass

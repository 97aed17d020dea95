"""The memory reference: a bare Trio server that accepts connections and holds them,
reading and discarding what clients send (as faultserver's `hang` does).

    python bench/baseline_hold_server.py [PORT]   # prints "listening http://127.0.0.1:PORT"
"""

import resource
import socket
import sys

import trio


async def hold(sock) -> None:
    with sock:
        try:
            while await sock.recv(65536):
                pass
        except OSError:
            pass


async def main(port: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = trio.socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    print(f"listening http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    async with trio.open_nursery() as nursery:
        while True:
            sock, _ = await listener.accept()
            nursery.start_soon(hold, sock)


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    except KeyboardInterrupt:
        pass

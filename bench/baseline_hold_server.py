"""The memory reference: a bare Trio server that accepts connections and holds them,
reading and discarding what clients send (as faultserver's `hang` does).

    python bench/baseline_hold_server.py [PORT]   # prints "listening http://127.0.0.1:PORT"
"""

import sys

import trio
from accept_loop import serve


async def hold(sock) -> None:
    with sock:
        try:
            while await sock.recv(65536):
                pass
        except OSError:
            pass


async def main(port: int) -> None:
    await serve(port, hold, backlog=4096, nodelay=False, all_files=True)


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    except KeyboardInterrupt:
        pass

"""The accept loop every bench reference server shares.

The references differ in what they do with a connection, never in how they get one: one
loop keeps that true, so a figure's ratio compares the servers' work and not their loops.
"""

import resource
import socket

import trio


async def serve(port, handle, *args, backlog=1024, nodelay=True, scheme="http", all_files=False) -> None:
    """Listen on 127.0.0.1:`port`, print the URL, and run `handle(sock, *args)` per connection.

    `all_files` raises the open-file limit to its hard maximum first (the references that
    hold thousands of connections); `nodelay` sets TCP_NODELAY on each accepted socket.
    """
    if all_files:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = trio.socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await listener.bind(("127.0.0.1", port))
    listener.listen(backlog)
    print(f"listening {scheme}://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    async with trio.open_nursery() as nursery:
        while True:
            sock, _ = await listener.accept()
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(handle, sock, *args)

"""The HTTP/2 reference: a bare Trio server on python-hyper's `h2` (h2c by prior knowledge)
that answers the same headers and body as faultserver's healthy h2 response in
bench/run.py's profiles, or never answers (`hold`: figure 11's reference).

    python bench/baseline_h2_server.py PORT [hold]   # prints "listening http://127.0.0.1:PORT"

One task per connection, answering each request inline as its stream ends (no task per
stream, no flow-control wait: the body is 3 bytes), with h2's own settings plus those
faultserver sends (MAX_HEADER_LIST_SIZE 64 KiB, ENABLE_CONNECT_PROTOCOL 0).
"""

import sys
import time
from email.utils import formatdate

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio
from accept_loop import serve

_date = [0, b""]


def date() -> bytes:  # rebuilt once a second, as faultserver does
    now = int(time.time())
    if now != _date[0]:
        _date[:] = [now, formatdate(now, usegmt=True).encode()]
    return _date[1]


async def handle(sock, hold: bool) -> None:
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.local_settings = h2.settings.Settings(client=False, initial_values={
        h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
        h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 0,
    })
    conn.initiate_connection()
    stream = trio.SocketStream(sock)
    async with stream:
        try:
            await stream.send_all(conn.data_to_send())
            while data := await stream.receive_some(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.StreamEnded) and not hold:
                        conn.send_headers(event.stream_id, [
                            (b":status", b"200"), (b"date", date()), (b"content-type", b"text/plain"),
                            (b"content-length", b"3"),
                        ])
                        conn.send_data(event.stream_id, b"ok\n", end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                out = conn.data_to_send()
                if out:
                    await stream.send_all(out)
        except (trio.BrokenResourceError, h2.exceptions.ProtocolError):
            pass  # the client reset or spoke nonsense: this connection ends, not the server


async def main(port: int, hold: bool) -> None:
    await serve(port, handle, hold, backlog=4096, nodelay=False, all_files=True)


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0, sys.argv[2:3] == ["hold"])
    except KeyboardInterrupt:
        pass

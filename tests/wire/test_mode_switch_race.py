"""Accept-mode switches that overlap: the last one asked for is the one in force.

A switch to `stall` takes a while (it fills the accept queue with placeholder connections);
a switch asked for meanwhile (a schedule phase and an API call at once) waits for it and
then applies, instead of being overwritten when the fill ends.
"""

from __future__ import annotations

import pytest
import trio

from faultserver._events import EventLog
from faultserver._profile.load import load_profile_data
from faultserver._profile.model import AcceptMode
from faultserver._server import Server
from tests.support.profiles import one_listener

pytestmark = pytest.mark.trio


async def served(port: int) -> bytes:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


@pytest.mark.parametrize(("first", "last"), [("stall", "open"), ("stall", "refuse"), ("refuse", "stall")])
async def test_mode_switches_overlapping_a_stall_fill_apply_in_order_last_wins(first, last):
    events = EventLog()
    server = Server(load_profile_data(one_listener()), with_admin=False, events=events)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        rt = server.listener("backend")
        async with trio.open_nursery() as switches:
            switches.start_soon(server.set_accept, "backend", AcceptMode(first))
            await trio.sleep(0.01)  # the first switch is under way (a stall is filling its queue)
            switches.start_soon(server.set_accept, "backend", AcceptMode(last))
        assert rt.mode is AcceptMode(last)
        modes = [(e["accept"], e["cause"]) for e in events.select(type="mode")]
        assert modes[-2:] == [(first, "api"), (last, "api")]
        if last == "open":
            assert (await served(rt.port)).startswith(b"HTTP/1.1 200 OK")
        elif last == "refuse":
            with pytest.raises(OSError):
                await served(rt.port)
        else:
            with trio.move_on_after(0.5) as waiting:
                await trio.open_tcp_stream("127.0.0.1", rt.port)  # the SYN is dropped
            assert waiting.cancelled_caught
        server.stop()

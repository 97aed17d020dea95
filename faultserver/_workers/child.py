"""A worker process of `run --workers N` (`python -m faultserver._workers.child FD INDEX`).

It reads its profile (pickled, with the ports the parent bound and the modes in force)
from the control channel on descriptor FD, serves it with a `Server` without admin API
whose sockets join each port's SO_REUSEPORT group, says `ready`, then applies each
`mode` message and answers `ack`, and sends its events in batches. SIGTERM, a `stop`
message or the parent going away stop it the usual way (a FIN on every connection).
"""

from __future__ import annotations

import base64
import dataclasses
import pickle
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .._events import EventLog, as_event
from .._profile.model import AcceptMode, Profile
from .._run import setup_logging
from .._server import Server
from .._wire import sockets
from .budget import SharedBudget, budget_slots
from .channel import Channel
from .stats import STATS_INTERVAL_S, snapshot

#: Events the parent emits itself (the fleet's start and each mode switch, once).
PARENT_EVENTS = frozenset({"start", "mode"})
#: At most this many events per message to the parent.
BATCH = 512


async def serve_worker(fd: int) -> None:
    sock = trio.socket.from_stdlib_socket(socket.socket(fileno=fd))
    channel = Channel(trio.SocketStream(sock))
    first = await channel.receive()
    if not first or first[0].get("op") != "start":
        return
    profile: Profile = pickle.loads(base64.b64decode(first[0]["profile"]))  # our parent sent it
    budget = SharedBudget(first[0]["budget"])
    sockets.REUSE_PORT = True
    # each listener starts refused (not in its port's group) until its `times` rules share
    # the fleet's budget; then it takes the mode the parent has in force
    modes = {listener.name: listener.accept for listener in profile.listeners}
    refused = tuple(dataclasses.replace(c, accept=AcceptMode.REFUSE) for c in profile.listeners)
    profile = dataclasses.replace(profile, listeners=refused)

    server = Server(profile, with_admin=False, followers=[_forwarder(channel)])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        slots = budget_slots(profile)
        for name, rt in server.listeners.items():
            budget.attach(name, rt.rules, slots)
            await server.set_accept(name, modes[name])
        await channel.send({"op": "ready"})

        async def commands() -> None:
            while True:
                messages = await channel.receive()
                if not messages:
                    server.stop()  # the parent is gone
                    return
                for message in messages:
                    await _apply(server, channel, message)

        async def signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM) as received:
                async for _ in received:
                    server.stop()
                    return

        async def counters() -> None:
            last: dict[str, Any] = {}
            while True:
                await trio.sleep(STATS_INTERVAL_S)
                now = {name: snapshot(rt.stats) for name, rt in server.listeners.items()}
                if now != last:
                    if not await _send(channel, {"op": "stats", "listeners": now}):
                        return
                    last = now

        nursery.start_soon(commands)
        nursery.start_soon(signals)
        nursery.start_soon(counters)
        await server.wait_stopped()
        nursery.cancel_scope.cancel()


async def _apply(server: Server, channel: Channel, message: dict[str, Any]) -> None:
    op = message.get("op")
    if op == "mode":
        await server.set_accept(message["listener"], AcceptMode(message["accept"]))
        await _send(channel, {"op": "ack", "id": message["id"]})
    elif op == "stop":
        server.stop()


def _forwarder(channel: Channel) -> Callable[[EventLog], Awaitable[None]]:
    """A follower of the worker's event log: its events to the parent, in batches."""

    async def forward(log: EventLog) -> None:
        cursor = log.last_id
        while True:
            await log.wait_beyond(cursor)
            page = log.catch_up(cursor, BATCH)
            cursor = page.next_since
            out = [e for e in map(as_event, page.entries) if e["type"] not in PARENT_EVENTS]
            if out and not await _send(channel, {"op": "events", "events": out}):
                return

    return forward


async def _send(channel: Channel, message: dict[str, Any]) -> bool:
    """Send to the parent; False once it has gone (it stops reading first when stopping)."""
    try:
        await channel.send(message)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    fd, level = int(argv[0]), argv[1]
    setup_logging(level)
    trio.run(serve_worker, fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

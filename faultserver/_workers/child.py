"""A worker process of `run --workers N` (`python -m faultserver._workers.child FD LEVEL`).

It reads its profile (pickled, with the ports the parent bound, the modes in force and no
schedule: the parent runs the clock) and the rule sets in force from the control channel
on descriptor FD, serves them with a `Server` without admin API whose sockets join each
port's SO_REUSEPORT group, says `ready`, then applies each message and answers `ack`:

- `mode`: an accept mode; `drop`: connections ended (the ack says how many);
- `rules`: rule sets defined, put in force, forgotten. Rule sets are the parent's: each
  has an id, and its `times` rules take from the fleet's shared budget (`budget.py`);
- `load`: a new profile (reload, reset), put in force with `Server.load`, whose listeners
  take the fleet's rule sets the moment they are built (`Server.listeners_in_force.on_built`),
  so no request meets rules the parent never had in force.

Each message is applied between two requests (the Trio loop runs one task at a time and a
decision never awaits), so a connection sees one profile's rules, then the next one's.
It sends its events in batches, and its counters. SIGTERM, a `stop` message or the parent
going away stop it the usual way (a FIN on every connection), then it sends the events of
that last close and its last counters before it exits. A message it cannot apply ends it
(exit code 3): the parent starts it again with the state in force.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
from typing import Any

import trio

from .._decide.rules import RuleSet
from .._events import EventLog, event_type
from .._profile.model import AcceptMode, CertificateMode, CloseHow, Profile, Rule
from .._reload import ReloadCause
from .._run import setup_logging
from .._server import Server
from .._tls.certificates import Authority
from .._wire.listener import ListenerRuntime
from .budget import SharedBudget
from .channel import Channel
from .counts import ConnectionCounts, FleetAdmission
from .stats import STATS_INTERVAL_S, snapshot

log = logging.getLogger("faultserver")

#: Events the parent emits itself (once for the fleet), not forwarded.
PARENT_EVENTS = frozenset({"start", "mode", "reload", "reset", "drop"})
#: At most this many events per message to the parent.
BATCH = 1024
#: A worker's own log only holds events until the parent has them: room for a second or
#: two of a burst at full load while a parent that shares the cores catches up (10,000, the
#: default, lost 4,484 of 53,000 events once in a CI run under `wrk`). About 17 MB when full.
WORKER_LOG_EVENTS = 50_000
#: `stall`: placeholder connects tried at once per worker in the fleet (`_fill_queue`): a
#: round whose connects all met full queues leaves a free one unfilled with odds
#: ((N-1)/N)**(8N): under 1 in 2,900 for any N (1 in 65,000 for 2)
PLACEHOLDERS_PER_WORKER = 8
#: The exit code of a worker that could not apply what the parent sent.
FAILED_TO_APPLY = 3


class Worker:
    """A worker's server and the fleet's state it holds: rule sets by id, shared counts."""

    def __init__(self, channel: Channel, start: dict[str, Any]) -> None:
        self.channel = channel
        self.index: int = start["index"]
        self.workers: int = start["workers"]
        self.budget = SharedBudget(start["budget"])
        self.counts = ConnectionCounts(start["counts"], self.workers)
        #: rule set id -> the rule set, compiled here (its own random streams)
        self.rulesets: dict[int, RuleSet] = {}
        #: while a `load` is applied: listener -> (id, budget slots) of its own rules
        self._base: dict[str, tuple[int, list[int | None]]] = {}
        self._use: dict[str, int] = {}
        self._regions: dict[str, int] = start["regions"]
        profile: Profile = start["profile"]
        # each listener starts refused (not in its port's group) until it has the fleet's
        # rule sets and counts; then it takes the mode the parent has in force
        self.modes = {listener.name: listener.accept for listener in profile.listeners}
        refused = tuple(dataclasses.replace(c, accept=AcceptMode.REFUSE) for c in profile.listeners)
        self.server = Server(
            dataclasses.replace(profile, listeners=refused),
            with_admin=False,
            events=EventLog(WORKER_LOG_EVENTS),
        )
        self.take_authorities(start)
        #: listener -> the certificate mode the parent has in force (generated TLS)
        self.certificates: dict[str, str] = start["certificates"]
        in_force = self.server.listeners_in_force
        in_force.reuse_port = True
        in_force.conn_id_step = self.workers
        in_force.first_conn_id(start["conn_first"])
        in_force.on_built = self._built
        self._cursor = 0

    # --- the fleet's state in this worker --------------------------------------------

    def _built(self, rt: ListenerRuntime) -> None:
        """A listener just bound or reconfigured: the fleet's shared state, at once."""
        rt.placeholder_width = PLACEHOLDERS_PER_WORKER * self.workers
        offset = self._regions.get(rt.name)
        if offset is not None:
            rt.admission = FleetAdmission(self.counts, offset, self.index)
        base = self._base.get(rt.name)
        if base is not None:  # a `load`: its own rules are the parent's rule set `id`
            ruleset_id, slots = base
            self.budget.attach(rt.base_rules, slots)
            self.rulesets[ruleset_id] = rt.base_rules
        use = self._use.get(rt.name)
        if use is not None and use in self.rulesets:
            rt.rules = self.rulesets[use]
        self._put_certificate(rt)

    def _put_certificate(self, rt: ListenerRuntime) -> None:
        mode = self.certificates.get(rt.name)
        tls = rt.tls
        if (
            mode is not None
            and tls is not None
            and tls.authority is not None
            and (tls.mode is None or tls.mode.value != mode)
        ):
            tls.use_certificate(CertificateMode(mode))

    def define(self, message: dict[str, Any], seed: int) -> None:
        for spec in message.get("define", ()):
            rules: tuple[Rule, ...] = spec["rules"]
            ruleset = RuleSet(rules, seed, spec["listener"], spec["scope"])
            self.budget.attach(ruleset, spec["slots"])
            self.rulesets[spec["id"]] = ruleset

    def use(self, message: dict[str, Any]) -> None:
        for name, ruleset_id in message.get("use", {}).items():
            rt = self.server.listeners.get(name)
            if rt is not None:
                rt.rules = self.rulesets[ruleset_id]
        for ruleset_id in message.get("forget", ()):
            self.rulesets.pop(ruleset_id, None)

    # --- messages ----------------------------------------------------------------------

    async def apply(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        reply: dict[str, Any] = {}
        server = self.server
        if op == "mode":
            if message["listener"] in server.listeners:  # a listener being added: its
                await server.set_accept(message["listener"], AcceptMode(message["accept"]))
        elif op == "certificates":
            self.certificates.update(message["modes"])
            for each in server.listeners.values():
                self._put_certificate(each)
        elif op == "rules":
            self.define(message, server.seed)
            self.use(message)
        elif op == "drop":
            rt = server.listeners.get(message["listener"])
            if rt is not None:
                reply["count"] = rt.drop(CloseHow(message["how"]), message["idle_only"])
        elif op == "load":
            await self.load(message)
            if message.get("reset"):
                for name, rt in server.listeners.items():
                    rt.reset_stats()
                    if name in self._regions:
                        self.counts.reset_peak(self._regions[name])
            reply["stats"] = self.stats()
        elif op == "stop":
            server.stop()
            return
        if "id" in message:
            await send(self.channel, {"op": "ack", "id": message["id"], **reply})

    def take_authorities(self, message: dict[str, Any]) -> None:
        """The parent's generated CAs: this worker's TLS listeners issue from them."""
        known = self.server.ca_files.authorities
        for name, pems in message["authorities"].items():
            if name not in known:
                known[name] = Authority.from_pems(pems)

    async def load(self, message: dict[str, Any]) -> None:
        self.take_authorities(message)
        self.certificates = message["certificates"]
        profile: Profile = message["profile"]
        self._regions = message["regions"]
        self._base = {name: (i, slots) for name, (i, slots) in message["base"].items()}
        self._use = message.get("use", {})
        self.define(message, profile.seed if profile.seed is not None else self.server.seed)
        try:
            await self.server.load(profile, ReloadCause.RELOAD)
        finally:
            self._base, self._use = {}, {}
        self.use(message)  # the listeners not rebuilt (none today), and what is forgotten

    def stats(self) -> dict[str, Any]:
        out = {}
        for name, rt in self.server.listeners.items():
            snap = snapshot(rt.stats)
            if name in self._regions:  # the fleet's peak, not this worker's
                snap["peak_connections"] = self.counts.peak(self._regions[name])
            out[name] = snap
        return out

    # --- to the parent -----------------------------------------------------------------

    async def forward_events(self) -> None:
        """The worker's events to the parent, in batches, until cancelled."""
        log_ = self.server.events
        while True:
            await log_.wait_beyond(self._cursor)
            if not await self.flush_events():
                return

    async def flush_events(self) -> bool:
        """Send every event not sent yet, oldest first; False once the parent has gone.

        The log's entries go as they are kept (compact records, `_events.py`), pickled: the
        parent adopts them with one append each. Only events pushed out of this worker's
        log before they could be sent (10,000 behind) are lost, and a warning says how many."""
        log_ = self.server.events
        while log_.last_id > self._cursor:
            page = log_.catch_up(self._cursor, log_.maxlen)
            self._cursor = page.next_since
            if page.missed:
                log.warning(
                    "worker %d: %d events left its log before they reached the parent",
                    self.index, page.missed,
                )
            entries = [e for e in page.entries if event_type(e) not in PARENT_EVENTS]
            conn = self.server.listeners_in_force.last_conn_id
            for first in range(0, len(entries), BATCH):
                batch = entries[first : first + BATCH]
                if not await send(self.channel, {"op": "events", "events": batch, "conn": conn}):
                    return False
        return True

    async def send_counters(self) -> None:
        last: dict[str, Any] = {}
        while True:
            await trio.sleep(STATS_INTERVAL_S)
            now = self.stats()
            if now != last:
                if not await send(self.channel, {"op": "stats", "listeners": now}):
                    return
                last = now


async def serve_worker(fd: int) -> None:
    sock = trio.socket.from_stdlib_socket(socket.socket(fileno=fd))
    channel = Channel(trio.SocketStream(sock))
    first = await channel.receive()
    if not first or first[0].get("op") != "start":
        return
    start = first[0]
    worker = Worker(channel, start)
    server = worker.server
    async with trio.open_nursery() as outer:
        await outer.start(server.run)
        async with trio.open_nursery() as nursery:
            worker.define(start, server.seed)
            worker.use(start)
            for name in server.listeners:
                await server.set_accept(name, worker.modes[name])
            await channel.send({"op": "ready"})

            async def commands() -> None:
                while True:
                    messages = await channel.receive()
                    if not messages:
                        server.stop()  # the parent is gone
                        return
                    for message in messages:
                        try:
                            await worker.apply(message)
                        except Exception:
                            log.exception("worker %d: cannot apply %s", worker.index, message.get("op"))
                            os._exit(FAILED_TO_APPLY)  # started again with the state in force

            async def signals() -> None:
                with trio.open_signal_receiver(signal.SIGTERM) as received:
                    async for _ in received:
                        server.stop()
                        return

            nursery.start_soon(commands)
            nursery.start_soon(signals)
            nursery.start_soon(worker.send_counters)
            nursery.start_soon(worker.forward_events)
            await server.wait_stopped()
            nursery.cancel_scope.cancel()
    # the server has closed every connection: the events of that close, the last counters
    with trio.move_on_after(2):
        if await worker.flush_events():
            await send(channel, {"op": "stats", "listeners": worker.stats()})


async def send(channel: Channel, message: dict[str, Any]) -> bool:
    """Send to the parent; False once it has gone."""
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

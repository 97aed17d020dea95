"""The parent of `run --workers N`: one control plane over N data-plane processes.

The parent is a `Server` like any other (admin API, schedules, reloads, event log), but
its listener sockets only hold the ports: bound with SO_REUSEPORT, never listening. Linux
sends a SYN only to the listening members of a reuseport group (tested on 6.18: a bound,
non-listening member receives none, and when no member listens the SYN meets RST), so the
parent's socket takes no connection and keeps the port while every worker stops listening.

Everything the parent's `Server` puts in force reaches every worker, and a change is
answered only once each worker has applied it (`ack`):

- accept modes (the API, `panic`, a schedule's phase, a reload) go through
  `ListenerRuntime.remote`;
- rules: the parent's rule sets (its listeners' own, those set through the API, each
  schedule phase's) each get an id and fresh `times` slots (`budget.py`); `_push_rules`
  sends the workers the ones they lack and which one is in force on each listener, before
  any mode switch and after every change;
- a reload or a reset (`_apply`) is the parent's own, then a `load` of the same profile
  in every worker, whose listeners take the fleet's rule sets as they are built;
- `drop` ends connections in every worker (the count is their sum); schedules run only
  in the parent (one clock), which pushes each phase's rules and mode; pausing them is
  the parent's alone.

Switches, pushes and worker (re)starts hold one lock: a worker started again gets the
profile, modes and rule sets in force, and a change waits until it is ready. Open
connections are counted across workers (`counts.py`: `max_connections` for the whole
listener, the fleet's `peak_connections`); connection ids are unique in the fleet
(worker i numbers i+1, i+1+N, ... from above every id seen).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import trio

from .._decide.rules import RuleSet
from .._errors import StartError, UsageError
from .._profile.model import AcceptMode, CertificateMode, CloseHow, Profile, Rule
from .._reload import Change
from .._server import Server
from .budget import SharedBudget
from .channel import Channel
from .counts import ConnectionCounts
from .retries import CrossWorkerRetries
from .stats import FleetStats

__all__ = ["FleetServer", "fleet_factory"]

log = logging.getLogger("faultserver")

#: How long a worker has to start (bind, say `ready`).
START_TIMEOUT_S = 30.0
#: How long stopping workers have to close their connections before SIGKILL.
STOP_TIMEOUT_S = 10.0
#: Wait this long before starting again a worker that failed to start.
RESTART_DELAY_S = 0.5
#: A worker that has not applied a change after this long is killed (and started again
#: with the state in force), so that no answer waits for it forever.
ACK_TIMEOUT_S = 10.0


@dataclasses.dataclass(slots=True)
class _RuleSetInFleet:
    """A rule set of the parent's, as the workers know it: its id and `times` slots."""

    id: int
    ruleset: RuleSet  # held, so that its `id()` is not reused while it is known
    listener: str
    slots: list[int | None]

    def spec(self) -> dict[str, Any]:
        return {
            "id": self.id, "listener": self.listener, "scope": self.ruleset.scope,
            "rules": self.ruleset.rules, "slots": self.slots,
        }


class _Worker:
    """One worker slot: its process (started again when it dies) and its channel."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: trio.Process | None = None
        self.channel: Channel | None = None
        self.starts = 0
        self._next_id = 0
        self._pending: dict[int, trio.Event] = {}
        self._replies: dict[int, dict[str, Any]] = {}

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send `message` and wait for its `ack` (or for the worker's end: {}). A worker
        that does not answer within ACK_TIMEOUT_S is killed (`_keep` starts it again)."""
        channel = self.channel
        if channel is None:
            return {}  # being started again: it gets the state in force at its start
        self._next_id += 1
        message_id = self._next_id
        done = self._pending[message_id] = trio.Event()
        with trio.move_on_after(ACK_TIMEOUT_S) as waiting:
            try:
                await channel.send({**message, "id": message_id})
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return {}
            await done.wait()
        if waiting.cancelled_caught and self.proc is not None and self.proc.returncode is None:
            log.error("worker did not apply %s in %.0fs worker=%d: killed", message.get("op"),
                      ACK_TIMEOUT_S, self.index)
            self.proc.kill()
        return self._replies.pop(message_id, {})

    def acked(self, message: dict[str, Any]) -> None:
        done = self._pending.pop(message["id"], None)
        if done is not None:
            self._replies[message["id"]] = message
            done.set()

    def gone(self) -> None:
        self.channel = None
        for done in self._pending.values():
            done.set()
        self._pending.clear()


class FleetServer(Server):
    """A `Server` whose listeners are served by `workers` child processes."""

    def __init__(self, profile: Profile, *, workers: int, log_level: str = "info", **kwargs: Any) -> None:
        super().__init__(profile, **kwargs)
        self._in_force.remote = self._set_mode_everywhere
        self._in_force.reuse_port = True  # the parent holds each port in its workers' group
        self._in_force.before_phase = self._push_rules
        self.workers = [_Worker(i) for i in range(workers)]
        self.log_level = log_level
        self._modes: dict[str, AcceptMode] = {}
        self._fleet_lock = trio.Lock()
        self._start_failed: str | None = None
        self.budget = SharedBudget.create()
        self.counts = ConnectionCounts.create(workers)
        #: listener name -> its region of the counts file (kept for the run)
        self._regions: dict[str, int] = {}
        self.fleet_stats = FleetStats()
        #: id() of a parent's rule set -> how the workers know it
        self._known: dict[int, _RuleSetInFleet] = {}
        self._next_ruleset = 0
        #: the ids of the rule sets every worker has, and of those in force by listener
        self._sent: set[int] = set()
        self._used: dict[str, int] = {}
        #: while the parent puts a profile in force: pushes wait for the workers' `load`
        self._loading = False
        self._resetting = False
        self._stop_asked = trio.Event()
        self._max_conn_seen = 0
        #: retries that landed in another worker than their fault (`retries.py`)
        self.retries = CrossWorkerRetries()
        #: the certificate modes every worker has been sent (generated TLS listeners)
        self._sent_certificates: dict[str, str] = {}

    # --- the rule sets in force, in every worker ---------------------------------------

    def _known_as(self, ruleset: RuleSet, listener: str) -> tuple[_RuleSetInFleet, bool]:
        """The fleet's record of `ruleset`, made (fresh `times` slots) when new."""
        known = self._known.get(id(ruleset))
        if known is not None:
            return known, False
        self._next_ruleset += 1
        known = _RuleSetInFleet(self._next_ruleset, ruleset, listener, self.budget.allocate(ruleset))
        self._known[id(ruleset)] = known
        return known, True

    def _rules_message(self, *, start: bool = False, load: bool = False) -> dict[str, Any]:
        """The parent's rule sets for the workers: those they lack, and which is in force.

        `start`: everything, for a worker starting (the others' state is left as it is).
        `load`: a `load` is coming, in which each worker builds each listener's own rules
        itself; the message says their ids and slots (`base`) instead of defining them."""
        define: list[dict[str, Any]] = []
        base: dict[str, tuple[int, list[int | None]]] = {}
        use: dict[str, int] = {}
        live: set[int] = set()
        for name, rt in self.listeners.items():
            if load:
                own, _ = self._known_as(rt.base_rules, name)
                base[name] = (own.id, own.slots)
                live.add(own.id)
                self._sent.add(own.id)
            for ruleset in self._in_force.rulesets(name):
                known, _ = self._known_as(ruleset, name)
                if known.id in live:
                    continue
                live.add(known.id)
                if start or known.id not in self._sent:
                    define.append(known.spec())
            in_force = self._known[id(rt.rules)].id
            if start or load or self._used.get(name) != in_force:
                use[name] = in_force
        message: dict[str, Any] = {"define": define, "use": use, "forget": []}
        if load:
            message["base"] = base
        if not start:
            message["forget"] = [i for i in self._sent if i not in live]
            self._known = {key: k for key, k in self._known.items() if k.id in live}
            self._sent = {i for i in self._sent if i in live} | {d["id"] for d in define}
            self._used.update(use)
        return message

    async def _push_rules(self) -> None:
        async with self._fleet_lock:
            await self._push_rules_locked()

    async def _push_rules_locked(self) -> None:
        if self._loading:
            return  # the `load` to come carries them
        message = self._rules_message()
        if message["define"] or message["use"] or message["forget"]:
            await self._everyone({"op": "rules", **message})
        modes = self._certificates()
        changed = {name: mode for name, mode in modes.items() if self._sent_certificates.get(name) != mode}
        if changed:  # an API switch or a schedule phase's `tls.certificate`
            await self._everyone({"op": "certificates", "modes": changed})
            self._sent_certificates.update(changed)

    def _certificates(self) -> dict[str, str]:
        """The certificate mode in force on each listener with a generated certificate."""
        out = {}
        for name, rt in self.listeners.items():
            tls = rt.tls
            if tls is not None and tls.authority is not None and tls.mode is not None:
                out[name] = tls.mode.value
        return out

    async def _everyone(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Send `message` to every worker; their acks, once all have answered."""
        replies: list[dict[str, Any]] = [{} for _ in self.workers]

        async def one(worker: _Worker) -> None:
            replies[worker.index] = await worker.request(message)

        async with trio.open_nursery() as nursery:
            for worker in self.workers:
                nursery.start_soon(one, worker)
        return replies

    # --- the control methods, across workers ----------------------------------------

    async def _set_mode_everywhere(self, name: str, mode: AcceptMode) -> None:
        async with self._fleet_lock:
            await self._push_rules_locked()  # rules changed before this switch go first
            self._modes[name] = mode  # before the workers start: their profile says it
            await self._everyone({"op": "mode", "listener": name, "accept": mode.value})

    async def update_listener(
        self,
        name: str,
        *,
        accept: AcceptMode | None = None,
        rules: tuple[Rule, ...] | None = None,
        certificate: CertificateMode | None = None,
    ) -> None:
        # the parent's certificate, rules and mode; a mode switch pushes the rest first
        await super().update_listener(name, accept=accept, rules=rules, certificate=certificate)
        await self._push_rules()

    def set_rules(self, name: str, rules: tuple[Rule, ...]) -> None:
        """The parent's rules now; the workers' soon after (awaited: `update_listener`)."""
        super().set_rules(name, rules)
        if self._nursery is not None:
            self._nursery.start_soon(self._push_rules)

    async def panic(self) -> dict[str, list[str]]:
        done = await super().panic()
        await self._push_rules()
        return done

    def drop(self, name: str, how: CloseHow = CloseHow.FIN, idle_only: bool = False) -> int:
        raise UsageError("drop: with more than one worker, await drop_connections()")

    async def drop_connections(self, name: str, how: CloseHow = CloseHow.FIN, idle_only: bool = False) -> int:
        rt = self.listener(name)
        message = {"op": "drop", "listener": name, "how": how.value, "idle_only": idle_only}
        async with self._fleet_lock:
            replies = await self._everyone(message)
        count: int = sum(reply.get("count", 0) for reply in replies)
        self.events.emit("drop", rt.name, how=how.value, idle_only=idle_only, connections=count)
        return count

    async def reset(self) -> None:
        self._resetting = True
        try:
            await super().reset()
        finally:
            self._resetting = False
        self._sum_stats()

    async def _apply(self, profile: Profile) -> dict[str, Change]:
        """The parent's own, then the same profile in every worker (`load`)."""
        self._loading = True  # until the workers have it: no rules pushed before
        try:
            changes = await super()._apply(profile)
        except BaseException:
            self._loading = False
            raise
        with trio.CancelScope(shield=True):  # the parent changed: so must every worker
            async with self._fleet_lock:
                self._loading = False
                for name in changes:
                    self._region(name)
                message = {
                    "op": "load", **self._rules_message(load=True), "reset": self._resetting,
                    "regions": self._regions, "authorities": self._authorities(),
                    "certificates": self._certificates(),
                }
                self._sent_certificates = dict(message["certificates"])
                replies: list[dict[str, Any]] = [{} for _ in self.workers]

                async def one(worker: _Worker) -> None:
                    own = self._worker_profile(worker.index)  # its seed, the parent's ports
                    replies[worker.index] = await worker.request({**message, "profile": own})

                async with trio.open_nursery() as nursery:
                    for worker in self.workers:
                        nursery.start_soon(one, worker)
                if self._resetting:
                    self.fleet_stats.retired.clear()
                    self.retries.clear()
                for worker, reply in zip(self.workers, replies, strict=True):
                    if "stats" in reply:
                        self.fleet_stats.update(worker.index, reply["stats"])
                self._sum_stats()
            await self._push_rules()  # a phase that began meanwhile
        return changes

    def _region(self, name: str) -> int:
        if name not in self._regions:
            self._regions[name] = self.counts.region(len(self._regions))
        return self._regions[name]

    # --- the workers' lives ---------------------------------------------------------

    def stop(self) -> None:
        """Stop the workers (a FIN on each connection, their last events sent), then the
        parent."""
        self._stop_asked.set()

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """The parent's server (ports held, admin API), then the workers; started once they
        all serve. A stop stops the workers first (SIGTERM), following them to their end."""
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(super().run)
                for name in self.listeners:
                    self._region(name)
                async with trio.open_nursery() as fleet:
                    started = [trio.Event() for _ in self.workers]
                    for worker, event in zip(self.workers, started, strict=True):
                        fleet.start_soon(self._keep, worker, event)
                    for event in started:
                        await event.wait()
                    if self._start_failed is not None:
                        raise StartError(self._start_failed)
                    task_status.started(self)
                    await self._stop_asked.wait()
                    async with self._fleet_lock:  # no worker starts again from now on
                        await self._stop_all()
                    # each worker's channel is read to its end (its last events), briefly
                    fleet.cancel_scope.deadline = trio.current_time() + STOP_TIMEOUT_S
            finally:
                with trio.CancelScope(shield=True):
                    await self._stop_all()
                self.budget.close(remove=True)
                self.counts.close(remove=True)
                super().stop()

    async def _keep(self, worker: _Worker, started: trio.Event) -> None:
        while not self._stop_asked.is_set():
            async with self._fleet_lock:
                if self._stop_asked.is_set():
                    return
                error = await self._start(worker)
            if error is not None:
                if not started.is_set():  # at start: the run fails, as for a port taken
                    self._start_failed = f"worker {worker.index}: {error}"
                    started.set()
                    return
                log.error("worker failed to start again worker=%d: %s", worker.index, error)
                self.events.emit("error", None, worker=worker.index, error=f"worker start: {error}")
                await trio.sleep(RESTART_DELAY_S)
                continue
            assert worker.proc is not None
            if worker.starts > 1:
                log.warning("worker restarted worker=%d pid=%d", worker.index, worker.proc.pid)
                self.events.emit("worker_start", None, worker=worker.index, pid=worker.proc.pid,
                                 restart=True)
            started.set()
            await self._follow(worker)
            code = await worker.proc.wait()
            worker.gone()
            if self._stop_asked.is_set():
                return  # stopped: its counts stay as its last snapshot said
            self.counts.forget_worker(worker.index, len(self._regions))
            self.fleet_stats.retire(worker.index)
            self._sum_stats()
            log.warning("worker exited worker=%d returncode=%d", worker.index, code)
            self.events.emit("worker_exit", None, worker=worker.index, returncode=code)

    async def _start(self, worker: _Worker) -> str | None:
        """Start `worker`'s process with the state in force; None, or why it failed."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = [sys.executable, "-m", "faultserver._workers.child", str(theirs.fileno()),
                    self.log_level]
            worker.proc = await trio.lowlevel.open_process(argv, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        worker.starts += 1
        channel = Channel(trio.SocketStream(trio.socket.from_stdlib_socket(ours)))
        n = len(self.workers)
        # above every id seen, in this worker's residue: ids stay unique in the fleet
        seen = self._max_conn_seen
        conn_first = seen - seen % n + worker.index + 1
        if conn_first <= seen:
            conn_first += n
        start = {
            "op": "start", "profile": self._worker_profile(worker.index),
            "index": worker.index, "workers": n, "conn_first": conn_first,
            "budget": self.budget.path, "counts": self.counts.path, "regions": self._regions,
            "authorities": self._authorities(), "certificates": self._certificates(),
            **self._rules_message(start=True),
        }
        self._sent_certificates = dict(start["certificates"])
        try:
            await channel.send(start)
            with trio.move_on_after(START_TIMEOUT_S):
                while True:
                    messages = await channel.receive()
                    if not messages:
                        break
                    if any(m.get("op") == "ready" for m in messages):
                        worker.channel = channel
                        return None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("worker channel: %s", exc)
        worker.proc.kill()
        code = await worker.proc.wait()
        await channel.stream.aclose()
        return f"exited with code {code} before it was ready (its log is above)"

    def _authorities(self) -> dict[str, tuple[bytes, bytes, bytes]]:
        """Each `generate: true` listener's CA, for the workers to issue from: the one the
        parent wrote out and printed is the one clients trust."""
        out = {}
        for name, rt in self.listeners.items():
            tls = rt.ctx.tls
            if tls is not None and tls.authority is not None:
                out[name] = tls.authority.to_pems()
        return out

    def _worker_profile(self, index: int) -> Profile:
        """The profile a worker serves: the parent's ports, the modes in force, its seed,
        and no schedule (the parent runs the clock and sends each phase)."""
        listeners = []
        for config in self.profile.listeners:
            rt = self.listeners[config.name]
            accept = self._modes.get(config.name, rt.mode)
            listeners.append(dataclasses.replace(config, port=rt.port, accept=accept, schedule=None))
        # each worker its own random streams, the same ones for the same seed and N
        seed = (self.seed + index) % 2**31
        return dataclasses.replace(self.profile, listeners=tuple(listeners), seed=seed)

    async def _follow(self, worker: _Worker) -> None:
        """Events and acks from `worker` until its channel closes."""
        channel = worker.channel
        assert channel is not None
        try:
            while True:
                messages = await channel.receive()
                if not messages:
                    return
                for message in messages:
                    op = message.get("op")
                    if op == "events":
                        self.retries.see(message["events"], worker.index)
                        self.events.adopt(message["events"], "worker", worker.index)
                        if message["conn"] > self._max_conn_seen:
                            self._max_conn_seen = message["conn"]
                    elif op == "stats":
                        self.fleet_stats.update(worker.index, message["listeners"])
                        self._sum_stats()
                    elif op == "ack":
                        worker.acked(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        finally:
            worker.gone()
            await channel.stream.aclose()

    def _sum_stats(self) -> None:
        for name, rt in self.listeners.items():
            self.fleet_stats.apply(name, rt.stats)
            rt.stats.retries += self.retries.found[name]

    async def _stop_all(self) -> None:
        """SIGTERM every worker (each closes its connections with a FIN and sends the events
        of it), SIGKILL the late; their channels are read to the end meanwhile."""
        procs = [w.proc for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT_S):
            for proc in procs:
                await proc.wait()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def fleet_factory(workers: int, log_level: str) -> Callable[..., Server]:
    """`Server(profile, **kwargs)` for `run --workers N`."""

    def make(profile: Profile, **kwargs: Any) -> Server:
        return FleetServer(profile, workers=workers, log_level=log_level, **kwargs)

    return make

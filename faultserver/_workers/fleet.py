"""The parent of `run --workers N`: one control plane over N data-plane processes.

The parent is a `Server` like any other (admin API, schedule of requests, event log), but
its listener sockets only hold the ports: bound with SO_REUSEPORT, never listening. Linux
sends a SYN only to the listening members of a reuseport group (tested on 6.18: a bound,
non-listening member receives none, and when no member listens the SYN meets RST), so the
parent's socket takes no connection and keeps the port while every worker stops listening.

Each accept-mode switch (the API, `panic`, the profile at start) goes through
`ListenerRuntime.remote`: the parent sends it to every worker and returns once each has
applied it (`ack`), so `PATCH accept=refuse` answers only when no worker listens any more.
Switches and worker (re)starts hold one lock: a worker started again gets the modes in
force in its profile, and a switch waits until it is ready.

What the workers cannot share yet is refused at start or by the method (a UsageError):
schedules, `max_connections`, rule changes, reloads, reset and drop.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import pickle
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import trio

from .._errors import StartError, UsageError
from .._profile.model import AcceptMode, CloseHow, Profile, Rule
from .._reload import ReloadCause
from .._server import Server
from .budget import SharedBudget
from .channel import Channel
from .stats import FleetStats

__all__ = ["FleetServer", "check_fleet_profile"]

log = logging.getLogger("faultserver")

#: How long a worker has to start (bind, say `ready`).
START_TIMEOUT_S = 30.0
#: How long stopping workers have to close their connections before SIGKILL.
STOP_TIMEOUT_S = 10.0
#: Wait this long before starting again a worker that failed to start.
RESTART_DELAY_S = 0.5


def check_fleet_profile(profile: Profile) -> None:
    """UsageError naming what `--workers N` (N > 1) does not support yet in `profile`."""
    for listener in profile.listeners:
        where = f"--workers: listener {listener.name}"
        if listener.schedule is not None:
            raise UsageError(f"{where}: a schedule is not supported with more than one worker yet")
        if listener.max_connections is not None:
            raise UsageError(f"{where}: max_connections is not supported with more than one worker yet")


class _Worker:
    """One worker slot: its process (started again when it dies) and its channel."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: trio.Process | None = None
        self.channel: Channel | None = None
        self.starts = 0
        self._next_id = 0
        self._pending: dict[int, trio.Event] = {}

    async def request(self, message: dict[str, Any]) -> None:
        """Send `message` and wait for its `ack` (or for the worker's end)."""
        channel = self.channel
        if channel is None:
            return  # being started again: it gets the state in force in its profile
        self._next_id += 1
        done = self._pending[self._next_id] = trio.Event()
        try:
            await channel.send({**message, "id": self._next_id})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        await done.wait()

    def acked(self, message_id: int) -> None:
        done = self._pending.pop(message_id, None)
        if done is not None:
            done.set()

    def gone(self) -> None:
        self.channel = None
        for done in self._pending.values():
            done.set()
        self._pending.clear()


class FleetServer(Server):
    """A `Server` whose listeners are served by `workers` child processes."""

    def __init__(self, profile: Profile, *, workers: int, log_level: str = "info", **kwargs: Any) -> None:
        check_fleet_profile(profile)
        super().__init__(profile, **kwargs)
        self._in_force.remote = self._set_mode_everywhere
        self.workers = [_Worker(i) for i in range(workers)]
        self.log_level = log_level
        self._modes: dict[str, AcceptMode] = {}
        self._fleet_lock = trio.Lock()
        self._start_failed: str | None = None
        self.budget = SharedBudget.create(profile)
        self.fleet_stats = FleetStats()

    # --- the control methods, across workers ----------------------------------------

    async def _set_mode_everywhere(self, name: str, mode: AcceptMode) -> None:
        async with self._fleet_lock:
            self._modes[name] = mode  # before the workers start: their profile says it
            async with trio.open_nursery() as nursery:
                for worker in self.workers:
                    message = {"op": "mode", "listener": name, "accept": mode.value}
                    nursery.start_soon(worker.request, message)

    def set_rules(self, name: str, rules: tuple[Rule, ...]) -> None:
        raise UsageError(_NOT_YET.format("changing rules"))

    def drop(self, name: str, how: CloseHow = CloseHow.FIN, idle_only: bool = False) -> int:
        raise UsageError(_NOT_YET.format("drop"))

    async def reset(self) -> None:
        raise UsageError(_NOT_YET.format("reset"))

    async def load(
        self, profile: Profile, cause: ReloadCause = ReloadCause.RELOAD, *, check_binds: bool = False
    ) -> None:
        raise UsageError(_NOT_YET.format("reload"))

    # --- the workers' lives ---------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """The parent's server (ports held, admin API), then the workers; started once they
        all serve. When the server stops, the workers stop (SIGTERM: a FIN each)."""
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(super().run)
                async with trio.open_nursery() as fleet:
                    started = [trio.Event() for _ in self.workers]
                    for worker, event in zip(self.workers, started, strict=True):
                        fleet.start_soon(self._keep, worker, event)
                    for event in started:
                        await event.wait()
                    if self._start_failed is not None:
                        raise StartError(self._start_failed)
                    task_status.started(self)
                    await self.wait_stopped()
                    fleet.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True):
                    await self._stop_all()
                self.budget.close(remove=True)
                self.stop()

    async def _keep(self, worker: _Worker, started: trio.Event) -> None:
        while True:
            async with self._fleet_lock:
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
        profile = self._worker_profile(worker.index)
        blob = base64.b64encode(pickle.dumps(profile)).decode()
        try:
            await channel.send({"op": "start", "profile": blob, "budget": self.budget.path})
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

    def _worker_profile(self, index: int) -> Profile:
        """The profile a worker serves: the parent's ports, the modes in force, its seed."""
        listeners = []
        for config in self.profile.listeners:
            rt = self.listeners[config.name]
            accept = self._modes.get(config.name, config.accept)
            listeners.append(dataclasses.replace(config, port=rt.port, accept=accept))
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
                        for event in message["events"]:
                            self._merge(worker.index, event)
                    elif op == "stats":
                        self.fleet_stats.update(worker.index, message["listeners"])
                        self._sum_stats()
                    elif op == "ack":
                        worker.acked(message["id"])
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        finally:
            worker.gone()
            await channel.stream.aclose()

    def _sum_stats(self) -> None:
        for name, rt in self.listeners.items():
            self.fleet_stats.apply(name, rt.stats)

    def _merge(self, index: int, event: dict[str, Any]) -> None:
        event.pop("id", None)
        kind = event.pop("type")
        listener = event.pop("listener", None)
        self.events.emit(kind, listener, **event, worker=index)

    async def _stop_all(self) -> None:
        """SIGTERM every worker (each closes its connections with a FIN), SIGKILL the late."""
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


_NOT_YET = "{} is not supported with more than one worker yet (run --workers N)"


def fleet_factory(workers: int, log_level: str) -> Callable[..., Server]:
    """`Server(profile, **kwargs)` for `run --workers N`: the ports join reuseport groups."""
    from .._wire import sockets

    sockets.REUSE_PORT = True

    def make(profile: Profile, **kwargs: Any) -> Server:
        return FleetServer(profile, workers=workers, log_level=log_level, **kwargs)

    return make

"""`run --workers 2`: every change through the one control plane reaches every worker before
it is answered (real sockets, real keep-alive clients).

Reloads (`POST /reload`, SIGHUP), rule changes, `panic`, `drop` and `reset`; the answer of
each is judged by what clients see afterwards, on connections spread over both workers.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliServer, cli_running
from tests.support.fleet import addr, events, get_once
from tests.support.wait import wait_until


def profile(body: str, **listener: Any) -> dict[str, Any]:
    """One listener whose every request is answered with `body`."""
    rules = [{"name": "which", "action": "respond", "body": body}]
    return {
        "version": 1,
        "listeners": [{"name": "api", "bind": "127.0.0.1:0", "rules": rules, **listener}],
    }


class KeepAliveClients:
    """`n` threads, each on one keep-alive connection, asking `GET /` in a loop and keeping
    (when the request was sent, the body answered) in order."""

    def __init__(self, server: CliServer, n: int = 8) -> None:
        self.server = server
        self.stop = threading.Event()
        self.seen: list[list[tuple[float, str]]] = [[] for _ in range(n)]
        #: when each answer had arrived (a request sent is not yet a request received)
        self.received: list[list[float]] = [[] for _ in range(n)]
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def _run(self, i: int) -> None:
        conn = http.client.HTTPConnection(*addr(self.server), timeout=5)
        try:
            while not self.stop.is_set():
                sent = time.monotonic()
                conn.request("GET", "/")
                body = conn.getresponse().read().decode()
                self.seen[i].append((sent, body))
                self.received[i].append(time.monotonic())
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            conn.close()

    def __enter__(self) -> KeepAliveClients:
        for t in self.threads:
            t.start()
        wait_until(lambda: all(len(s) >= 5 for s in self.seen), what="every client answered")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        assert self.errors == []

    def answers_after(self, moment: float) -> set[str]:
        return {body for seen in self.seen for sent, body in seen if sent >= moment}


def assert_switched_once(seen: list[list[tuple[float, str]]], old: str, new: str) -> None:
    """On each connection: `old`... then `new`..., never `new` then `old`."""
    for answers in seen:
        bodies = "".join(body for _, body in answers)
        assert bodies == old * bodies.count(old) + new * bodies.count(new), bodies


def test_reload_under_load_is_atomic_from_outside(tmp_path: Path) -> None:
    """Keep-alive clients on both workers; `POST /reload` with profile B: no request sent
    after the answer gets A's answer, and each connection goes A... B..., never back."""
    path = tmp_path / "profile.yaml"
    path.write_text(json.dumps(profile("A")))
    with cli_running(tmp_path, path, "--workers", "2") as server:
        with KeepAliveClients(server) as clients:
            path.write_text(json.dumps(profile("B")))
            with server.client() as client:
                answer = client.post("/reload")
            answered = time.monotonic()
            assert answer.status_code == 200, answer.text
            wait_until(lambda: all(s[-1][0] > answered for s in clients.seen), what="more answers")
        assert clients.answers_after(answered) == {"B"}
        assert_switched_once(clients.seen, "A", "B")
        # both workers served, and the reload is told once, by the parent
        accepts = events(server, type="accept")
        assert {e["worker"] for e in accepts} == {0, 1}
        reloads = events(server, type="reload")
        assert [(e["change"], e["cause"], "worker" in e) for e in reloads] == [("kept", "api", False)]


def test_sighup_reloads_every_worker(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(json.dumps(profile("A")))
    with cli_running(tmp_path, path, "--workers", "2") as server:
        with KeepAliveClients(server) as clients:
            path.write_text(json.dumps(profile("B")))
            server.signal(signal.SIGHUP)
            # the parent's reload event comes once every worker has applied it
            wait_until(lambda: events(server, type="reload"), what="a reload event")
            told = time.monotonic()
            wait_until(lambda: all(s[-1][0] > told for s in clients.seen), what="more answers")
        assert clients.answers_after(told) == {"B"}
        assert_switched_once(clients.seen, "A", "B")
        # new connections, whichever worker takes them, answer B too
        assert {get_once(server).split(b"\r\n\r\n", 1)[1] for _ in range(20)} == {b"B"}


def test_reload_adds_and_removes_listeners_in_every_worker(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(json.dumps(profile("A")))
    with cli_running(tmp_path, path, "--workers", "2") as server:
        two = profile("A")
        two["listeners"].append({"name": "extra", "bind": "127.0.0.1:0", "response": {"body": "X"}})
        path.write_text(json.dumps(two))
        with server.client() as client:
            listeners = client.post("/reload").json()["listeners"]
        extra = next(item for item in listeners if item["name"] == "extra")
        port = int(extra["url"].rsplit(":", 1)[1].rstrip("/"))
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            assert data.endswith(b"\r\n\r\nX")
        answered = {e["worker"] for e in events(server, type="accept", listener="extra")}
        wait_until(lambda: {e["worker"] for e in events(server, type="accept", listener="extra")} == {0, 1})
        del answered
        path.write_text(json.dumps(profile("A")))
        with server.client() as client:
            assert [item["name"] for item in client.post("/reload").json()["listeners"]] == ["api"]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)


def test_rules_and_panic_reach_every_worker_before_the_answer(tmp_path: Path) -> None:
    with cli_running(tmp_path, profile("A"), "--workers", "2") as server:
        with KeepAliveClients(server) as clients:
            rules = [{"name": "api-rule", "action": "respond", "body": "C"}]
            with server.client() as client:
                answer = client.patch("/listeners/api", json={"rules": rules})
                patched = time.monotonic()
                assert answer.status_code == 200, answer.text
                wait_until(lambda: all(s[-1][0] > patched for s in clients.seen), what="more answers")
                state = client.get("/state").json()
                assert state["listeners"][0]["rules_cause"] == "api"
                before_panic = time.monotonic()
                done = client.post("/panic").json()
                panicked = time.monotonic()
                wait_until(lambda: all(s[-1][0] > panicked for s in clients.seen), what="more answers")
        assert done == {"panic": True, "paused": True, "opened": [], "rules_cleared": ["api"]}
        # sent after the PATCH's answer, answered before the panic was asked for
        between = {
            body
            for seen, received in zip(clients.seen, clients.received, strict=False)
            for (sent, body), done in zip(seen, received, strict=False)
            if patched <= sent and done < before_panic
        }
        assert between == {"C"}
        assert clients.answers_after(panicked) == {"A"}  # the profile's own rules, again
        for answers in clients.seen:
            bodies = "".join(body for _, body in answers)
            assert bodies.rstrip("A").rstrip("C").strip("A") == "", bodies  # A... C... A...


def test_a_schedule_runs_in_the_parent_and_each_phase_reaches_every_worker(tmp_path: Path) -> None:
    """One clock (the parent's): one `phase` event per phase, and once paused in a phase,
    every new connection, whichever worker takes it, gets that phase's rules."""
    phases = [
        {"duration": "300ms", "rules": [{"name": "p0", "action": "respond", "body": "P0"}]},
        {"duration": "300ms", "rules": [{"name": "p1", "action": "respond", "body": "P1"}]},
    ]
    with cli_running(tmp_path, profile("A", schedule={"phases": phases}), "--workers", "2") as server:
        seen_phases = set()
        with server.client() as client:
            for _ in range(2):
                after = len(events(server, type="phase"))
                wait_until(lambda n=after: len(events(server, type="phase")) > n, what="a new phase")
                assert client.post("/schedule/pause").json()["paused"] is True
                phase = client.get("/state").json()["listeners"][0]["schedule"]["phase"]
                seen_phases.add(phase)
                answers = {get_once(server).split(b"\r\n\r\n", 1)[1] for _ in range(20)}
                assert answers == {f"P{phase}".encode()}
                client.post("/schedule/resume")
        assert seen_phases == {0, 1}
        told = events(server, type="phase")
        assert all("worker" not in e for e in told)
        assert [e["phase"] for e in told] == [i % 2 for i in range(len(told))]  # each once
        assert {e["worker"] for e in events(server, type="accept")} == {0, 1}


def test_drop_ends_connections_in_every_worker_and_counts_them_all(tmp_path: Path) -> None:
    with cli_running(tmp_path, profile("A"), "--workers", "2") as server:
        held = []
        for _ in range(12):
            s = socket.create_connection(addr(server), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert s.recv(65536).endswith(b"A")
            held.append(s)
        wait_until(lambda: {e["worker"] for e in events(server, type="accept")} == {0, 1})
        with server.client() as client:
            answer = client.post("/listeners/api/drop", json={"how": "rst"})
        assert answer.json() == {"dropped": 12, "how": "rst", "idle_only": False}
        for s in held:
            with pytest.raises(ConnectionResetError):
                s.recv(1)
            s.close()
        drops = events(server, type="drop")
        assert [(d["connections"], "worker" in d) for d in drops] == [(12, False)]


def test_reset_gives_back_times_and_counters_in_every_worker(tmp_path: Path) -> None:
    """`times: 2` spent over both workers; a reset gives the fleet 2 again, and zero counts."""
    rules = [{"name": "twice", "match": {"path": "/boom"}, "action": "close", "times": 2}]
    body = {"version": 1, "listeners": [{"name": "api", "bind": "127.0.0.1:0", "rules": rules}]}
    with cli_running(tmp_path, body, "--workers", "2") as server:
        for _ in range(2):
            answers = [get_once(server, "/boom") for _ in range(10)]
            assert answers.count(b"") == 2
            with server.client() as client:
                assert client.post("/reset").json() == {"reset": True}
                listener = client.get("/listeners/api").json()
            assert (listener["requests"], listener["connections"], listener["faults"]) == (0, 0, {})


def test_max_connections_holds_for_the_fleet(tmp_path: Path) -> None:
    """`max_connections: 2` with two workers: the third client connects (the kernel's queue)
    and is not answered, as with one process, until one of the two closes."""
    with cli_running(tmp_path, profile("A", max_connections=2), "--workers", "2") as server:
        first = []
        for _ in range(2):
            s = socket.create_connection(addr(server), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert s.recv(65536).endswith(b"A")
            first.append(s)
        third = []
        for _ in range(4):  # whichever worker the kernel picks: none is answered
            s = socket.create_connection(addr(server), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            third.append(s)
        for s in third:
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):
                s.recv(1)
        first.pop().close()
        # one slot is free: one waiting connection is answered, whichever worker holds it
        wait_until(lambda: any(_readable(s) for s in third), what="a waiting connection answered")
        answered = [s for s in third if _readable(s)]
        assert len(answered) == 1
        assert answered[0].recv(65536).endswith(b"A")
        with server.client() as client:
            listener = client.get("/listeners/api").json()
        assert listener["peak_connections"] == 2
        for s in first + third:
            s.close()


def _readable(s: socket.socket) -> bool:
    import select

    return bool(select.select([s], [], [], 0)[0])


def test_conn_ids_are_unique_across_workers(tmp_path: Path) -> None:
    with cli_running(tmp_path, profile("A"), "--workers", "2") as server:
        for _ in range(30):
            get_once(server)
        accepts = wait_until(lambda: a if len(a := events(server, type="accept")) == 30 else None)
        ids = [a["conn"] for a in accepts]
        assert all(isinstance(i, int) for i in ids)
        assert len(set(ids)) == 30
        assert {a["worker"] for a in accepts} == {0, 1}


def test_the_last_close_reaches_the_events_file(tmp_path: Path) -> None:
    """SIGTERM with keep-alive connections open on both workers: each one's close (the
    client answers the FIN with its own) is in `--events FILE` once the parent has exited."""
    out = tmp_path / "events.jsonl"
    with cli_running(tmp_path, profile("A"), "--workers", "2", "--events", str(out)) as server:
        held = []
        for _ in range(10):
            s = socket.create_connection(addr(server), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert s.recv(65536).endswith(b"A")
            held.append(s)
        accepts = wait_until(lambda: a if len(a := events(server, type="accept")) == 10 else None)

        def close_on_fin(s: socket.socket) -> None:
            assert s.recv(1) == b""
            s.close()

        closers = [threading.Thread(target=close_on_fin, args=(s,)) for s in held]
        for t in closers:
            t.start()
        assert server.stop() == 0
        for t in closers:
            t.join()
    written = [json.loads(line) for line in out.read_text().splitlines()]
    closed = {e["conn"] for e in written if e["type"] == "peer_close"}
    assert closed == {a["conn"] for a in accepts}


def test_peak_connections_is_the_fleets_not_a_sum_of_peaks(tmp_path: Path) -> None:
    """One connection at a time, over both workers: the fleet never had two open at once
    (a sum of the workers' peaks would say 2)."""
    with cli_running(tmp_path, profile("A"), "--workers", "2") as server, server.client() as client:
        for n in range(1, 11):
            with socket.create_connection(addr(server), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                assert s.recv(65536).endswith(b"A")
            # the counters trail by up to 0.1 s: closed, and counted as closed
            wait_until(
                lambda n=n: (lambda v: (v["connections"], v["open_connections"]) == (n, 0))(
                    client.get("/listeners/api").json()
                )
            )
        assert {e["worker"] for e in events(server, type="accept")} == {0, 1}
        listener = client.get("/listeners/api").json()
        assert (listener["connections"], listener["peak_connections"]) == (10, 1)
        # then 12 at once, over both workers: 12 (not the most one worker had)
        held = [socket.create_connection(addr(server), timeout=5) for _ in range(12)]
        for s in held:
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert s.recv(65536).endswith(b"A")
        assert len({e["worker"] for e in events(server, type="accept")[10:]}) == 2
        wait_until(lambda: client.get("/listeners/api").json()["peak_connections"] == 12)
        for s in held:
            s.close()


def test_drop_idle_only_with_a_fin_spares_busy_connections_in_every_worker(tmp_path: Path) -> None:
    rules = [{"name": "hang", "match": {"path": "/hang"}, "action": "hang"}]
    body = {"version": 1, "listeners": [{"name": "api", "bind": "127.0.0.1:0", "rules": rules}]}
    with cli_running(tmp_path, body, "--workers", "2") as server:
        idle, busy = [], []
        for _ in range(8):
            s = socket.create_connection(addr(server), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            idle.append(s)
            s = socket.create_connection(addr(server), timeout=5)
            s.sendall(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n")
            busy.append(s)
        wait_until(lambda: len(events(server, type="fault", action="hang")) == 8, what="8 hangs")
        assert {e["worker"] for e in events(server, type="accept")} == {0, 1}
        with server.client() as client:
            answer = client.post("/listeners/api/drop", json={"how": "fin", "idle_only": True})
        assert answer.json() == {"dropped": 8, "how": "fin", "idle_only": True}
        for s in idle:
            assert s.recv(1) == b""  # a FIN
        for s in busy:
            s.settimeout(0.05)
            with pytest.raises(TimeoutError):
                s.recv(1)
        for s in idle + busy:
            s.close()


def test_a_restarted_worker_gets_the_rules_in_force_not_the_profiles(tmp_path: Path) -> None:
    import os

    with cli_running(tmp_path, profile("A"), "--workers", "2") as server:
        rules = [{"name": "api-rule", "action": "respond", "body": "C"}]
        with server.client() as client:
            assert client.patch("/listeners/api", json={"rules": rules}).status_code == 200
        victim = _children(server.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: events(server, type="worker_start"), what="the worker started again")
        for _ in range(20):
            assert get_once(server).split(b"\r\n\r\n", 1)[1] == b"C"
        restarted = events(server, type="worker_start")[0]["worker"]
        assert restarted in {e["worker"] for e in events(server, type="response")}


def _children(pid: int) -> list[int]:
    """The processes `pid` started (from any of its threads)."""
    import os

    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(p) for p in f.read().split()]
    return found

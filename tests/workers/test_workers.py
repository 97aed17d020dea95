"""`faultserver run --workers N`: N processes on one port, one admin API (real sockets).

Each test starts the CLI with `--workers 2` and judges what a client sees: which worker
answered (the `worker` field of the merged events), refused connects, a kill survived.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliServer, cli_running, run_cli
from tests.support.fleet import addr, events, get_once
from tests.support.wait import wait_until

PROFILE: dict[str, Any] = {
    "version": 1,
    "listeners": [
        {
            "name": "api",
            "bind": "127.0.0.1:0",
            "rules": [{"match": {"path": "/boom"}, "action": "close"}],
        }
    ],
}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[CliServer]:
    with cli_running(tmp_path, PROFILE, "--workers", "2") as server:
        yield server


def children(pid: int) -> list[int]:
    """The live processes `pid` started (from any of its threads)."""
    import os

    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(p) for p in f.read().split()]
    return [p for p in found if not gone(p)]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.split() == ["State:", "Z", "(zombie)"] for line in f)
    except FileNotFoundError:
        return True


def test_two_workers_both_serve_and_their_events_say_which(fleet: CliServer) -> None:
    assert len(children(fleet.pid)) == 2
    for _ in range(40):
        assert get_once(fleet).startswith(b"HTTP/1.1 200 ")
    wait_until(
        lambda: len(events(fleet, type="response")) == 40,
        what=lambda: f"40 response events, got {events(fleet, type='response')}",
    )
    responses = events(fleet, type="response")
    assert {e["worker"] for e in responses} == {0, 1}
    # the counters are the sum of both workers' (sent by each within 0.1 s)
    with fleet.client() as client:
        wait_until(lambda: client.get("/listeners/api").json()["requests"] == 40)
        listener = client.get("/listeners/api").json()
        metrics = client.get("/metrics").text
    assert (listener["connections"], listener["open_connections"], listener["in_flight"]) == (40, 0, 0)
    assert 'faultserver_requests_total{listener="api"} 40' in metrics
    assert 'faultserver_responses_total{listener="api",status="200"} 40' in metrics
    # the rules are the profile's in each worker: a `close` answers nothing
    assert get_once(fleet, "/boom") == b""
    fault = wait_until(lambda: events(fleet, type="fault") or None)
    assert fault[0]["action"] == "close" and fault[0]["worker"] in (0, 1)


def test_refuse_under_load_accepts_nothing_after_the_answer(fleet: CliServer) -> None:
    """Clients connect in a loop; once PATCH accept=refuse has answered, no connect that
    starts afterwards succeeds, whichever worker the kernel would have picked."""
    stop = threading.Event()
    connected_at: list[float] = []  # when each successful connect started
    refused = 0

    def load() -> None:
        nonlocal refused
        while not stop.is_set():
            started = time.monotonic()
            try:
                with socket.create_connection(addr(fleet), timeout=5):
                    connected_at.append(started)
            except ConnectionRefusedError:
                refused += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(connected_at) > 50)
        with fleet.client() as client:
            answer = client.patch("/listeners/api", json={"accept": "refuse"})
        acknowledged = time.monotonic()
        assert answer.status_code == 200, answer.text
        assert answer.json()["accept"] == "refuse"
        wait_until(lambda: refused > 200)
    finally:
        stop.set()
        for t in threads:
            t.join()
    late = [t for t in connected_at if t > acknowledged]
    assert late == [], f"{len(late)} connects started after the acknowledgement succeeded"
    for _ in range(50):  # and a fresh client, any 4-tuple, meets RST
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(addr(fleet), timeout=5).close()
    with fleet.client() as client:
        assert client.patch("/listeners/api", json={"accept": "open"}).status_code == 200
    assert get_once(fleet).startswith(b"HTTP/1.1 200 ")


def test_a_killed_worker_is_restarted_and_the_port_keeps_answering(fleet: CliServer) -> None:
    import os
    import signal

    victim, survivor = children(fleet.pid)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: gone(victim))
    answered = 0
    while not events(fleet, type="worker_start"):  # the survivor serves meanwhile
        assert get_once(fleet).startswith(b"HTTP/1.1 200 ")
        answered += 1
    assert answered > 0
    (exited,) = events(fleet, type="worker_exit")
    (restarted,) = events(fleet, type="worker_start")
    assert exited["returncode"] == -signal.SIGKILL
    assert restarted["worker"] == exited["worker"] and restarted["restart"] is True
    assert sorted(children(fleet.pid)) == sorted([survivor, restarted["pid"]])
    since = events(fleet)[-1]["id"]
    for _ in range(40):
        assert get_once(fleet).startswith(b"HTTP/1.1 200 ")
    wait_until(lambda: len(events(fleet, type="response", since=since)) == 40)
    assert {e["worker"] for e in events(fleet, type="response", since=since)} == {0, 1}


def test_sigterm_stops_every_worker_with_a_fin(tmp_path: Path) -> None:
    with cli_running(tmp_path, PROFILE, "--workers", "2") as server:
        workers = children(server.pid)
        held = []
        for _ in range(8):  # keep-alive connections, spread over both workers
            s = socket.create_connection(addr(server), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            held.append(s)
        code, _ = server.terminate()
        assert code == 0, server.log()
        for s in held:
            assert s.recv(65536) == b""  # a FIN, not an RST (which would raise here)
            s.close()
        assert all(gone(pid) for pid in workers)


def test_workers_must_be_a_whole_number_from_one(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    import yaml

    path.write_text(yaml.safe_dump(PROFILE))
    done, _ = run_cli("run", str(path), "--workers", "0")
    assert done.returncode == 2
    assert "--workers: expected a whole number from 1, or auto, got '0'" in done.stderr


def test_times_is_for_the_whole_fleet(tmp_path: Path) -> None:
    """`times: 3` and 50 clients at once, spread over both workers: 3 faults in all."""
    import concurrent.futures

    rules = [{"match": {"path": "/boom"}, "action": "close", "times": 3}]
    profile = {**PROFILE, "listeners": [{**PROFILE["listeners"][0], "rules": rules}]}
    with cli_running(tmp_path, profile, "--workers", "2") as server:
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda _: get_once(server, "/boom"), range(50)))
        assert answers.count(b"") == 3
        assert sum(a.startswith(b"HTTP/1.1 200 ") for a in answers) == 47
        wait_until(lambda: len(events(server, type="response")) == 47)
        assert len(events(server, type="fault")) == 3
        with server.client() as client:
            wait_until(lambda: client.get("/listeners/api").json()["requests"] == 50)
            assert client.get("/listeners/api").json()["faults"] == {"close": 3}
        assert {e["worker"] for e in events(server, type="request")} == {0, 1}

"""Figures 13 to 15 of bench/run.py: `faultserver run --workers N` (issue 20).

13. healthy throughput, `--workers 2` against `--workers 1` in the same run, alternating
    A/B, `wrk -t1 -c50` keep-alive GETs as in figure 1, under each process placement of
    `PLACEMENTS`; nginx with 2 workers (`worker_processes 2`, `reuseport`) as the machine's
    limit, placed the same way. Also the CPU each process spent per request, and the share
    of the workers' events that reached the parent's log (the target needs all of them).
14. the same while 5,000 idle keep-alive connections (each sent one GET, got its answer,
    then says nothing) are held open on the same listener, spread by the kernel over the
    workers: opened first, held during every wrk run.
15. the latency of a control change: `PATCH /listeners/api {"accept": ...}` alternating
    refuse and open on the admin API, timed from the send to the answer (which comes once
    every worker has applied it), p50 and p99, against `--workers 1` in the same run; right
    after each `refuse` answer a connect must meet ECONNREFUSED, and after each `open`
    answer it must succeed (violations counted, target 0).

Run through `python bench/run.py --only 13,14,15` (not in the default set). This module
imports bench/run.py's helpers (as the module `run`) and registers nothing itself.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import run
from run import HEALTHY, HOST, FaultserverProc, Row, cpu_s, started, stop_process, wrk_version


@dataclass
class WorkersSettings:
    wrk_s: int  # seconds per wrk run (figures 13 and 14)
    pairs: int  # A/B pairs per placement (figure 13) and for figure 14
    held: int  # idle connections held in figure 14
    changes: int  # PATCH accept samples per server in figure 15 (half refuse, half open)


WORKERS_FULL = WorkersSettings(10, 3, 5000, 1000)
WORKERS_QUICK = WorkersSettings(2, 1, 500, 100)

#: How the processes of figure 13 are placed on the cores (`os.sched_setaffinity`), in
#: order; the first is the headline (its target is judged). The last core is wrk's when
#: wrk is pinned. `workers`: each server process (faultserver's single process or workers,
#: nginx's workers) pinned to core i mod cores; the fleet's parent is never pinned.
PLACEMENTS = (
    ("wrk pinned", {"wrk": True, "workers": False}),
    ("nothing pinned", {"wrk": False, "workers": False}),
    ("wrk and workers pinned", {"wrk": True, "workers": True}),
)

#: Events of one keep-alive request (`request`, `response`): figure 13 counts how many of the
#: workers' events the parent logged (its event ids are consecutive) against this many per
#: request, after waiting for the workers' counters (sent every 0.1 s) to settle.
EVENTS_PER_REQUEST = 2
STATS_SETTLE_S = 0.5
#: A fleet faster because it dropped events is not faster: figure 13 is met only if every run
#: logged this share of the events (a few connections' `accept`/`peer_close` are extra).
EVENTS_KEPT_TARGET = 0.99

#: nginx answering figure 1's bytes with 2 workers, each with its own reuseport socket (as
#: faultserver's workers). {port}, {dir}, {user}: filled in.
_NGINX_CONF = """
daemon off;
master_process on;
worker_processes 2;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""


# --- processes ----------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The processes `pid` started (from any of its threads), oldest first."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        except FileNotFoundError:
            continue
    return sorted(found)


class FleetProc(FaultserverProc):
    """`faultserver run PROFILE --workers N` as a child process (N = 1: one process)."""

    def __init__(self, profile: dict, workdir: Path, name: str, workers: int) -> None:
        path = workdir / f"{name}.json"
        path.write_text(json.dumps(profile))
        self.stderr_path = workdir / f"{name}.stderr"
        command = [run.PY, "-m", "faultserver", "run", str(path), "--log-level", "warning",
                   "--workers", str(workers)]
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        self.workers = workers
        self.urls: dict[str, str] = {}
        try:
            for _ in profile["listeners"]:
                _, lname, url, _ = run.read_line(self.proc, "listener ").split(" ", 3)
                self.urls[lname] = url
            self.control = run.read_line(self.proc, "control ").split(" ", 1)[1]
        except BaseException:
            stop_process(self.proc)
            raise

    def servers(self) -> list[int]:
        """The processes that serve: the workers, or the one process."""
        if self.workers == 1:
            return [self.pid]
        found = children(self.pid)
        if len(found) != self.workers:
            raise RuntimeError(f"expected {self.workers} workers, found {found}")
        return found

    def all_pids(self) -> list[int]:
        return [self.pid] + (children(self.pid) if self.workers > 1 else [])


class Nginx2Proc:
    """nginx with 2 workers answering `ok\\n` (figure 13's machine limit)."""

    def __init__(self, workdir: Path) -> None:
        folder = workdir / "nginx-2"
        folder.mkdir(exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / sub).mkdir(exist_ok=True)
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        conf = folder / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(_NGINX_CONF.format(port=self.port, dir=folder, user=user))
        binary = run.shutil.which("nginx") or "/usr/sbin/nginx"
        self.stderr_path = folder / "output.log"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)],
                stdout=err, stderr=err, text=True,
            )
        deadline = time.monotonic() + 10
        while len(children(self.proc.pid)) < 2 or not _accepts(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.stderr_path.read_text()[-300:]}")
            if time.monotonic() > deadline:
                stop_process(self.proc)
                raise RuntimeError("nginx did not start within 10 s")
            time.sleep(0.05)
        self.url = f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def servers(self) -> list[int]:
        return children(self.proc.pid)

    def all_pids(self) -> list[int]:
        return [self.pid, *self.servers()]

    check = FaultserverProc.check

    def stop(self) -> None:
        stop_process(self.proc)  # SIGTERM to the master: it stops its workers


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def nginx_available() -> bool:
    return bool(run.shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK))


# --- placement ----------------------------------------------------------------------


CORES = sorted(os.sched_getaffinity(0))


def place(servers: list[int], pin: bool) -> None:
    """Server process i on core i mod cores (`pin`), or on every core."""
    for i, pid in enumerate(servers):
        os.sched_setaffinity(pid, {CORES[i % len(CORES)]} if pin else set(CORES))


@contextmanager
def wrk_placed(pin: bool) -> Iterator[None]:
    """wrk (our child: it inherits our affinity) on the last core, or on every core."""
    saved = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {CORES[-1]})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def measured_wrk(server, url: str, seconds: int, pin_wrk: bool) -> tuple[float, dict[str, float]]:
    """wrk's rate, and each of the server's processes' CPU seconds per request (by role)."""
    pids = server.all_pids()
    before = {pid: cpu_s(pid) for pid in pids}
    try:
        with wrk_placed(pin_wrk):
            rate = run.wrk(url, seconds)
    except Exception:
        server.check()  # say so when the server died
        raise
    requests = rate * seconds
    used = {pid: cpu_s(pid) - before[pid] for pid in pids}
    servers = set(server.servers())
    roles = {
        "parent": sum(v for p, v in used.items() if p not in servers) / requests,
        "servers": sum(v for p, v in used.items() if p in servers) / requests,
    }
    return rate, roles


# --- the figures --------------------------------------------------------------------


def _profile() -> dict:
    return {"version": 1,
            "listeners": [{"name": "api", "bind": f"{HOST}:0", "backlog": 4096, "response": HEALTHY}]}


def figures_13_14(w: WorkersSettings, workdir: Path, rows: list[Row], only: set[int]) -> None:
    names = {13: "13 throughput, --workers 2 vs 1 (wrk -t1 -c50)",
             14: f"14 throughput, --workers 2 vs 1, {w.held:,} idle conns held"}
    if wrk_version() is None:
        for fig in sorted(only & {13, 14}):
            rows.append(Row(names[fig], "n/a: wrk is not installed (apt-get install -y wrk)", "-", "-", None))
        return
    with started(FleetProc, _profile(), workdir, "workers-2", 2) as two, \
            started(FleetProc, _profile(), workdir, "workers-1", 1) as one:
        run.fetch(two.port("api"))
        run.fetch(one.port("api"))

        kept: list[float] = []  # the share of the workers' events that reached the parent

        def fleet_run(pin_wrk: bool) -> tuple[float, dict[str, float]]:
            events, requests = run._newest_event_id(two.control), _listener(two)["requests"]
            result = measured_wrk(two, two.urls["api"], w.wrk_s, pin_wrk)
            time.sleep(STATS_SETTLE_S)
            events = run._newest_event_id(two.control) - events
            requests = _listener(two)["requests"] - requests
            kept.append(events / (EVENTS_PER_REQUEST * requests))
            return result

        def pairs(count: int, pin_wrk: bool) -> tuple[list[float], list[float], list[float], list[dict]]:
            a_rates, b_rates, ratios, cpus = [], [], [], []
            for i in range(count):
                # alternate which goes first, so drift in the machine's load hits both
                if i % 2 == 0:
                    a, a_cpu = fleet_run(pin_wrk)
                    b, b_cpu = measured_wrk(one, one.urls["api"], w.wrk_s, pin_wrk)
                else:
                    b, b_cpu = measured_wrk(one, one.urls["api"], w.wrk_s, pin_wrk)
                    a, a_cpu = fleet_run(pin_wrk)
                a_rates.append(a)
                b_rates.append(b)
                ratios.append(a / b)
                cpus.append({"two": a_cpu, "one": b_cpu})
            return a_rates, b_rates, ratios, cpus

        if 13 in only:
            measured_wrk(two, two.urls["api"], 1, False)  # warm both up
            measured_wrk(one, one.urls["api"], 1, False)
            results = []
            for label, how in PLACEMENTS:
                for server in (two, one):
                    place(server.servers(), how["workers"])
                count = w.pairs if not results else max(1, w.pairs // 3)
                a_rates, b_rates, ratios, cpus = pairs(count, how["wrk"])
                nginx = _nginx_rate(workdir, w, how) if nginx_available() else None
                results.append((label, a_rates, b_rates, ratios, cpus, nginx))
            label, a_rates, b_rates, ratios, cpus, nginx = results[0]
            ratio = statistics.median(ratios)
            parent_us = statistics.median(c["two"]["parent"] for c in cpus) * 1e6
            workers_us = statistics.median(c["two"]["servers"] for c in cpus) * 1e6
            one_us = statistics.median(c["one"]["servers"] for c in cpus) * 1e6
            others = "; ".join(
                f"{lab}: {statistics.median(rs):.2f}x ({statistics.median(ar):,.0f} vs "
                f"{statistics.median(br):,.0f}; nginx {_fmt(ng)})"
                for lab, ar, br, rs, _, ng in results[1:]
            )
            rows.append(Row(
                names[13],
                f"{ratio:.2f}x ({statistics.median(a_rates):,.0f} req/s, {label}; pairs "
                + "/".join(f"{r:.2f}" for r in ratios)
                + f"; CPU per request: workers {workers_us:.1f} us, parent {parent_us:.1f} us; "
                + f"events reaching the parent: {statistics.median(kept):.0%})",
                ">= 1.50x --workers 1; every event logged",
                f"--workers 1 {statistics.median(b_rates):,.0f} req/s, CPU {one_us:.1f} us per request; "
                f"nginx 2 workers {_fmt(nginx)}; {others}",
                ratio >= 1.5 and min(kept) >= EVENTS_KEPT_TARGET,
            ))
        if 14 in only:
            place(two.servers(), False)
            place(one.servers(), False)
            own_fds = [run.open_fds(pid) for pid in two.servers()]
            with run.holding(two.port("api"), w.held), run.holding(one.port("api"), w.held):
                for server in (two, one):
                    _wait_open(server, w.held)
                now = [run.open_fds(pid) for pid in two.servers()]
                spread = "/".join(str(n - fds) for n, fds in zip(now, own_fds, strict=True))
                a_rates, b_rates, ratios, _ = pairs(w.pairs, True)
            ratio = statistics.median(ratios)
            rows.append(Row(
                names[14],
                f"{ratio:.2f}x ({statistics.median(a_rates):,.0f} req/s, wrk pinned; pairs "
                + "/".join(f"{r:.2f}" for r in ratios) + f"; held per worker {spread})",
                ">= 1.50x --workers 1",
                f"--workers 1 with as many held: {statistics.median(b_rates):,.0f} req/s",
                ratio >= 1.5,
            ))


def _fmt(rate: float | None) -> str:
    return "not installed" if rate is None else f"{rate:,.0f} req/s"


def _nginx_rate(workdir: Path, w: WorkersSettings, how: dict[str, bool]) -> float:
    with started(Nginx2Proc, workdir) as ngx:
        place(ngx.servers(), how["workers"])
        rate, _ = measured_wrk(ngx, ngx.url, w.wrk_s, how["wrk"])
        return rate


def _listener(server: FleetProc) -> dict:
    return server.listeners()["api"]


def _wait_open(server: FleetProc, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while _listener(server)["open_connections"] < at_least:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {at_least} held connections never all arrived")
        time.sleep(0.1)


def figure_15(w: WorkersSettings, workdir: Path, rows: list[Row]) -> None:
    with started(FleetProc, _profile(), workdir, "control-2", 2) as two, \
            started(FleetProc, _profile(), workdir, "control-1", 1) as one:
        ours = _control_latency(two, w.changes)
        theirs = _control_latency(one, w.changes)
    p50, p99, bad = ours
    rows.append(Row(
        "15 control change, PATCH accept, --workers 2",
        f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms ({w.changes} changes); "
        f"connects contradicting the answer: {bad}",
        "p99 <= 20 ms; 0 contradicting",
        f"--workers 1: p50 {theirs[0] * 1e3:.2f} ms, p99 {theirs[1] * 1e3:.2f} ms; "
        f"contradicting: {theirs[2]}",
        p99 <= 0.020 and bad == 0,
    ))


def _control_latency(server: FleetProc, changes: int) -> tuple[float, float, int]:
    """p50 and p99 of `changes` PATCH accept answers (refuse, open, ...), in seconds, and
    how many connects made right after an answer contradicted it."""
    host, port = server.control.split("://", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    target = (HOST, server.port("api"))
    took: list[float] = []
    bad = 0
    try:
        for i in range(changes):
            mode = "refuse" if i % 2 == 0 else "open"
            body = json.dumps({"accept": mode})
            t = time.perf_counter()
            conn.request("PATCH", "/listeners/api", body, {"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            took.append(time.perf_counter() - t)
            if resp.status != 200:
                raise RuntimeError(f"PATCH accept={mode}: status {resp.status}")
            bad += not _connect_agrees(target, refused=mode == "refuse")
    finally:
        conn.close()
        server.check()
    took.sort()
    return statistics.median(took), run._pct(took, 99), bad


def _connect_agrees(target: tuple[str, int], refused: bool) -> bool:
    try:
        socket.create_connection(target, timeout=2).close()
    except ConnectionRefusedError:
        return refused
    except OSError:
        return False
    return not refused


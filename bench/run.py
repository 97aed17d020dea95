"""faultserver's benchmarks: throughput, held connections, memory, timing precision, start-up.

    python bench/run.py            # the full suite (2 to 3 minutes)
    python bench/run.py --quick    # a short smoke of every figure (under a minute)
    python bench/run.py --only 1,4 # some figures only
    python bench/run.py --only 7,8,9  # the TLS figures (not in the default set yet)
    python bench/run.py --only 10,11  # the HTTP/2 figures (not in the default set yet; h2load)
    python bench/run.py --only 12     # figure 1 with the dashboard open in headless Chromium
    python bench/run.py --only 13,14,15  # run --workers 2 against 1 (bench/workers.py)

Prints one table row per figure: the value, the target, and the reference measured in
the same run. Everything runs on 127.0.0.1; servers are separate processes (faultserver
through its real command line), clients too where one process would need too many
sockets. Figures are medians; the machine's other load shows in them, so read them with
the core count printed in the header. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
HOST = "127.0.0.1"

HEALTHY = {"headers": {"content-type": "text/plain"}, "body": "ok\n"}


@dataclass
class Settings:
    quick: bool
    wrk_s: int  # seconds per wrk run
    pairs: int  # A/B pairs for figure 1
    held_runs: int  # wrk runs for figure 2
    held: int  # connections held in figure 2
    mem_held: int  # connections held in figure 3
    burst: int  # connections in figure 4
    burst_rounds: int
    dribble_s: float
    starts: int  # CLI start-ups for figure 6
    fixture_starts: int


FULL = Settings(False, 10, 3, 3, 5000, 10_000, 1000, 3, 3.0, 7, 30)
QUICK = Settings(True, 2, 1, 1, 500, 1000, 200, 1, 1.0, 2, 5)
PER_CLIENT_PROCESS = 5000  # sockets per client process (the open-file limit is per process)


@dataclass
class TLSSettings:
    """Figures 7 to 9, beside `Settings` (whose positional constructors stay as they are)."""

    handshake_s: int  # seconds per wrk run of figure 7
    wrk_s: int  # seconds per wrk run of figure 8
    pairs: int  # A/B pairs for figures 7 and 8
    held: int  # connections held in the handshake in figure 9


TLS_FULL = TLSSettings(10, 10, 3, 5000)
TLS_QUICK = TLSSettings(2, 2, 1, 500)


@dataclass
class Row:
    figure: str
    value: str
    target: str
    reference: str
    ok: bool | None


# --- processes ----------------------------------------------------------------------


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM this process (by its id), give it 5 s, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def read_line(proc: subprocess.Popen, prefix: str, timeout_s: float = 20.0) -> str:
    """The next stdout line that starts with `prefix` (others are skipped)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process {proc.args!r} exited (status {proc.wait()}) before {prefix!r}")
        if line.startswith(prefix):
            return line.strip()
    raise RuntimeError(f"no {prefix!r} line within {timeout_s} s")


class FaultserverProc:
    """`faultserver run PROFILE` as a child process; its listener URLs and control URL."""

    def __init__(self, profile: dict, workdir: Path, name: str) -> None:
        path = workdir / f"{name}.json"  # JSON is YAML
        path.write_text(json.dumps(profile))
        self.stderr_path = workdir / f"{name}.stderr"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [PY, "-m", "faultserver", "run", str(path), "--log-level", "warning"],
                stdout=subprocess.PIPE, stderr=err, text=True,
            )
        self.urls: dict[str, str] = {}
        try:
            for _ in profile["listeners"]:
                _, lname, url, _ = read_line(self.proc, "listener ").split(" ", 3)
                self.urls[lname] = url
            self.control = read_line(self.proc, "control ").split(" ", 1)[1]
        except BaseException:
            stop_process(self.proc)
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def port(self, listener: str) -> int:
        return int(self.urls[listener].rsplit(":", 1)[1])

    def listeners(self) -> dict[str, dict]:
        import urllib.request

        with urllib.request.urlopen(self.control + "/listeners", timeout=10) as resp:
            return {item["name"]: item for item in json.load(resp)["listeners"]}

    def check(self) -> None:
        """Raise if the server has exited (with the end of its standard error)."""
        if self.proc.poll() is not None:
            tail = self.stderr_path.read_text()[-500:]
            raise RuntimeError(f"{self.proc.args[1:3]} exited with status {self.proc.returncode}: {tail}")

    def stop(self) -> None:
        stop_process(self.proc)


class ScriptProc:
    """One of bench/baseline_*.py as a child process (`args` after its port, 0)."""

    def __init__(self, script: str, workdir: Path, *args: str) -> None:
        self.stderr_path = workdir / f"{script}.stderr"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [PY, str(HERE / script), "0", *args], stdout=subprocess.PIPE, stderr=err, text=True,
            )
        try:
            self.url = read_line(self.proc, "listening ").split(" ", 1)[1]
        except BaseException:
            stop_process(self.proc)
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    check = FaultserverProc.check

    def stop(self) -> None:
        stop_process(self.proc)


@contextmanager
def started(factory, *args) -> Iterator:
    server = factory(*args)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def holding(port: int, n: int, path: str = "/held", *, script: Path | None = None) -> Iterator[None]:
    """`n` connections held open by client processes (each sends one GET, then waits);
    `script`: clients run as `script HOST PORT COUNT` instead, with the same protocol."""
    procs: list[tuple[subprocess.Popen, int]] = []
    try:
        left = n
        while left > 0:
            count = min(left, PER_CLIENT_PROCESS)
            command = (
                [PY, str(HERE / "clients.py"), "hold", HOST, str(port), str(count), path]
                if script is None else [PY, str(script), HOST, str(port), str(count)]
            )
            procs.append((subprocess.Popen(
                command,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ), count))
            left -= count
        for proc, count in procs:
            try:
                line = read_line(proc, "held ", timeout_s=120)
            except RuntimeError as exc:
                assert proc.stderr is not None
                raise RuntimeError(f"hold client: {exc}: {proc.stderr.read()[-300:]}") from None
            if line != f"held {count}":
                raise RuntimeError(f"hold client: {line!r}, expected 'held {count}'")
        yield
    finally:
        for proc, _ in procs:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()  # the client closes its sockets and exits
                except OSError:
                    pass
        for proc, _ in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_fds(pid: int, at_least: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while open_fds(pid) < at_least:
        if time.monotonic() > deadline:
            raise RuntimeError(f"server holds {open_fds(pid)} fds, expected {at_least}")
        time.sleep(0.05)


def settled_rss(pid: int) -> float:
    """RSS once it stops moving (three readings 0.2 s apart within 0.2 MB)."""
    readings = [rss_mb(pid)]
    for _ in range(50):
        time.sleep(0.2)
        readings.append(rss_mb(pid))
        last = readings[-3:]
        if len(last) == 3 and max(last) - min(last) < 0.2:
            break
    return readings[-1]


def fetch(port: int, path: str = "/") -> str:
    out = subprocess.run(
        [PY, str(HERE / "clients.py"), "fetch", HOST, str(port), path],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return json.loads(out.stdout)["response"]


# --- wrk ----------------------------------------------------------------------------


def wrk(url: str, seconds: int, *extra: str) -> float:
    """Requests per second of `wrk -t1 -c50 -dNs` (keep-alive GETs; `extra`: more wrk
    arguments, such as a header); errors abort."""
    done = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{seconds}s", *extra, url + "/"],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    out = done.stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(
            f"wrk {url} exited {done.returncode} with no rate: {(out + done.stderr).strip()[-300:]}"
        )
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if bad:
        raise RuntimeError(f"wrk saw errors: {bad.group(0)}")
    return float(match.group(1))


def wrk_version() -> str | None:
    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    match = re.search(r"wrk (?:\w+/)?([\w.\-+]+)", out)
    return match.group(1) if match else "?"


# --- the figures --------------------------------------------------------------------


def _same_bytes(a: str, b: str) -> bool:
    mask = re.compile(r"(?im)^date: .*$")
    return mask.sub("date: -", a) == mask.sub("date: -", b)


def figures_1_2(s: Settings, workdir: Path, rows: list[Row], only: set[int]) -> None:
    if wrk_version() is None:
        for fig in sorted(only & {1, 2}):
            name = "1 healthy throughput" if fig == 1 else f"2 throughput, {s.held:,} held"
            rows.append(Row(name, "n/a: wrk is not installed (apt-get install -y wrk)", "-", "-", None))
        return
    profile = {
        "version": 1,
        "listeners": [
            {"name": "api", "bind": f"{HOST}:0", "backlog": 4096, "response": HEALTHY},
            {"name": "held", "bind": f"{HOST}:0", "backlog": 4096,
             "rules": [{"name": "hold", "action": "hang"}]},
        ],
    }
    with started(FaultserverProc, profile, workdir, "throughput") as fs, \
            started(ScriptProc, "baseline_server.py", workdir) as base:
        def checked_wrk(server, url: str, seconds: int) -> float:
            try:
                return wrk(url, seconds)
            except Exception:
                server.check()  # say so when the server died
                raise

        def wrk_fs(seconds: int) -> float:
            return checked_wrk(fs, fs.urls["api"], seconds)

        def wrk_base(seconds: int) -> float:
            return checked_wrk(base, base.url, seconds)

        ours, theirs = fetch(fs.port("api")), fetch(base.port)
        note = "" if _same_bytes(ours, theirs) else " (WARNING: responses differ)"
        wrk_fs(1)  # warm both up
        wrk_base(1)
        fs_rates, base_rates, ratios = [], [], []
        for i in range(s.pairs):
            # alternate which goes first, so drift in the machine's load hits both
            if i % 2 == 0:
                a = wrk_fs(s.wrk_s)
                b = wrk_base(s.wrk_s)
            else:
                b = wrk_base(s.wrk_s)
                a = wrk_fs(s.wrk_s)
            fs_rates.append(a)
            base_rates.append(b)
            ratios.append(a / b)
        ratio = statistics.median(ratios)
        fs_rate = statistics.median(fs_rates)
        if 1 in only:
            rows.append(Row(
                "1 healthy throughput (wrk -t1 -c50)",
                f"{ratio:.2f}x ({fs_rate:,.0f} req/s; pairs "
                + "/".join(f"{r:.2f}" for r in ratios) + ")",
                ">= 0.80x reference",
                f"baseline_server.py {statistics.median(base_rates):,.0f} req/s{note}",
                ratio >= 0.8,
            ))
        if 2 in only:
            with holding(fs.port("held"), s.held):
                deadline = time.monotonic() + 60
                while fs.listeners()["held"]["open_connections"] < s.held:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the held connections never all arrived")
                    time.sleep(0.1)
                held_rates = [wrk_fs(s.wrk_s) for _ in range(s.held_runs)]
            held = statistics.median(held_rates)
            rows.append(Row(
                f"2 throughput, {s.held:,} conns held by hang",
                f"{held / fs_rate:.2f}x ({held:,.0f} req/s)",
                ">= 0.70x figure 1",
                f"figure 1: {fs_rate:,.0f} req/s",
                held / fs_rate >= 0.7,
            ))


def figure_3(s: Settings, workdir: Path, rows: list[Row]) -> None:
    profile = {
        "version": 1,
        "listeners": [{"name": "held", "bind": f"{HOST}:0", "backlog": 4096,
                       "rules": [{"name": "hold", "action": "hang"}]}],
    }

    def growth(server, port: int) -> float:
        idle_fds = open_fds(server.pid)
        with holding(port, 1):  # one connection first: lazily built things exist now
            wait_fds(server.pid, idle_fds + 1)
        time.sleep(0.3)
        before_fds = open_fds(server.pid)
        before = settled_rss(server.pid)
        with holding(port, s.mem_held):
            wait_fds(server.pid, before_fds + s.mem_held)
            after = settled_rss(server.pid)
        return after - before

    with started(FaultserverProc, profile, workdir, "memory") as fs:
        ours = growth(fs, fs.port("held"))
    with started(ScriptProc, "baseline_hold_server.py", workdir) as bare:
        theirs = growth(bare, bare.port)
    target = 60.0 * s.mem_held / 10_000
    rows.append(Row(
        f"3 RSS growth, {s.mem_held:,} conns held",
        f"{ours:.1f} MB",
        f"<= {target:.0f} MB",
        f"bare Trio server {theirs:.1f} MB",
        ours <= target,
    ))


def _burst(port: int, n: int, settle_s: float) -> list[float]:
    out = subprocess.run(
        [PY, str(HERE / "clients.py"), "burst", HOST, str(port), str(n), "/", str(settle_s)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    result = json.loads(out.stdout)
    if result["answered"] != n or any(st != "HTTP/1.1 200" for st in result["statuses"]):
        raise RuntimeError(f"burst: {result['answered']}/{n} answered, statuses {result['statuses']}")
    return sorted(result["latencies"])


def _pct(sorted_values: list[float], p: float) -> float:
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def figure_4(s: Settings, workdir: Path, rows: list[Row]) -> None:
    delay_s = 0.1
    profile = {
        "version": 1,
        "listeners": [{"name": "slow", "bind": f"{HOST}:0", "backlog": 4096, "response": HEALTHY,
                       "rules": [{"name": "slow", "delay": "100ms", "action": "respond"}]}],
    }
    settle = 0.5 if s.quick else 1.0
    ours: list[tuple[float, float, float]] = []
    theirs: list[tuple[float, float, float]] = []
    with started(FaultserverProc, profile, workdir, "delay") as fs, \
            started(ScriptProc, "baseline_delay_server.py", workdir) as base:
        for i in range(s.burst_rounds):
            order = [(fs.port("slow"), ours), (base.port, theirs)]
            if i % 2:
                order.reverse()
            for port, into in order:
                lat = _burst(port, s.burst, settle)
                into.append((_pct(lat, 50) - delay_s, _pct(lat, 99) - delay_s, lat[0] - delay_s))
    ms = 1000.0
    for label, idx in (("p50", 0), ("p99", 1)):
        value = statistics.median(r[idx] for r in ours) * ms
        ref = statistics.median(r[idx] for r in theirs) * ms
        limit = 1.2 * ref + 1.0
        rows.append(Row(
            f"4 delay 100ms, {s.burst:,} at once: overshoot {label}",
            f"+{value:.1f} ms",
            f"<= 1.2x reference + 1 ms = {limit:.1f} ms",
            f"baseline_delay_server.py +{ref:.1f} ms",
            value <= limit,
        ))
    early = min(r[2] for r in ours) * ms
    early_ref = min(r[2] for r in theirs) * ms
    rows.append(Row(
        "4 delay 100ms: earliest answer",
        f"{early:+.1f} ms",
        ">= +0 ms (never early)",
        f"baseline_delay_server.py {early_ref:+.1f} ms",
        early >= 0,
    ))


def figure_5(s: Settings, workdir: Path, rows: list[Row]) -> None:
    import socket

    rate = 10 * 1024
    total_target = int(rate * s.dribble_s)
    profile = {
        "version": 1,
        "listeners": [{"name": "drip", "bind": f"{HOST}:0",
                       "response": {"headers": {"content-type": "text/plain"},
                                    "body": {"size": total_target - 110}},
                       "rules": [{"name": "drip", "action": "dribble", "rate": "10KiB/s"}]}],
    }
    with started(FaultserverProc, profile, workdir, "dribble") as fs:
        port = fs.port("drip")
        with socket.create_connection((HOST, port), timeout=30) as sock:
            got = b""
            start = time.monotonic()
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
            while True:
                head, sep, body = got.partition(b"\r\n\r\n")
                if sep:
                    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
                    if len(body) >= length:
                        break
                data = sock.recv(65536)
                if not data:
                    break
                got += data
            took = time.monotonic() - start
    configured = len(got) / rate
    off = (took - configured) / configured * 100
    rows.append(Row(
        "5 dribble rate 10KiB/s",
        f"{took:.3f} s ({off:+.1f} %)",
        "within 5 % of configured",
        f"configured {configured:.3f} s ({len(got):,} bytes)",
        abs(off) <= 5.0,
    ))


_FIXTURE_SCRIPT = r"""
import json, socket, statistics, sys, threading, time
import trio
n = int(sys.argv[1])
profile = {"version": 1, "listeners": [{"name": "api", "bind": "127.0.0.1:0",
           "response": {"headers": {"content-type": "text/plain"}, "body": "ok\n"}}]}
t = time.perf_counter()
from faultserver.testing import running
with running(profile):
    pass
first = time.perf_counter() - t
times = []
for _ in range(n):
    t = time.perf_counter()
    with running(profile) as srv:
        assert srv["api"].port
    times.append(time.perf_counter() - t)

# as in most tests: one request, and the client's kept-alive connection still open at stop
with_client = []
for _ in range(n):
    t = time.perf_counter()
    with running(profile) as srv:
        client = socket.create_connection(("127.0.0.1", srv["api"].port), timeout=5)
        client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while not got.endswith(b"ok\n"):
            got += client.recv(4096)
    with_client.append(time.perf_counter() - t)
    client.close()

ref = []
for _ in range(n):
    t = time.perf_counter()
    started, token = threading.Event(), []
    async def main():
        sock = trio.socket.socket()
        await sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        with trio.CancelScope() as scope:
            token.append((trio.lowlevel.current_trio_token(), scope))
            started.set()
            await trio.sleep_forever()
        sock.close()
    th = threading.Thread(target=trio.run, args=(main,), daemon=True)
    th.start()
    started.wait()
    trio.from_thread.run_sync(token[0][1].cancel, trio_token=token[0][0])
    th.join()
    ref.append(time.perf_counter() - t)
print(json.dumps({"first": first, "median": statistics.median(times), "max": max(times),
                  "client": statistics.median(with_client), "ref": statistics.median(ref)}))
"""


def figure_6(s: Settings, workdir: Path, rows: list[Row]) -> None:
    profile = {"version": 1,
               "listeners": [{"name": "api", "bind": f"{HOST}:0", "response": HEALTHY}]}
    path = workdir / "startup.json"
    path.write_text(json.dumps(profile))

    def time_to(cmd: list[str], prefix: str) -> float:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            read_line(proc, prefix)
            return time.perf_counter() - start
        finally:
            stop_process(proc)

    ours, theirs = [], []
    for _ in range(s.starts):
        ours.append(time_to([PY, "-m", "faultserver", "run", str(path), "--log-level", "warning"],
                            "listener "))
        theirs.append(time_to([PY, str(HERE / "baseline_server.py"), "0"], "listening "))
    value = statistics.median(ours)
    rows.append(Row(
        "6 start-up: `faultserver run` to listener line",
        f"{value:.3f} s",
        "<= 0.5 s",
        f"baseline_server.py {statistics.median(theirs):.3f} s",
        value <= 0.5,
    ))
    script = workdir / "fixture_bench.py"
    script.write_text(_FIXTURE_SCRIPT)
    out = subprocess.run([PY, str(script), str(s.fixture_starts)], capture_output=True, text=True,
                         timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    ms = 1000.0
    rows.append(Row(
        "6 fixture start+stop (testing.running)",
        f"{result['median'] * ms:.1f} ms; {result['client'] * ms:.1f} ms with a request and its"
        f" client still connected (first {result['first'] * ms:.0f} ms, with the imports)",
        "<= 50 ms per test",
        f"bare Trio thread {result['ref'] * ms:.1f} ms",
        max(result["median"], result["client"]) * ms <= 50,
    ))


# --- TLS: figures 7 to 9 --------------------------------------------------------------


def tls_pair(workdir: Path) -> tuple[str, str]:
    """A certificate and key as faultserver's `generate: true` makes them (its own code: an
    EC P-256 leaf for 127.0.0.1, localhost and ::1, signed by a throwaway CA), as files."""
    from faultserver._tls.certificates import Authority
    from faultserver._tls.listener import certificate_names

    certified = Authority.generate("bench CA").issue(certificate_names(HOST, ()))
    cert, key = workdir / "tls-cert.pem", workdir / "tls-key.pem"
    cert.write_bytes(certified.chain_pem)
    key.write_bytes(certified.key_pem)
    key.chmod(0o600)
    return str(cert), str(key)


def cpu_s(pid: int) -> float:
    """The process's CPU time so far (user and system), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tls_fetch(port: int) -> tuple[str, str]:
    """(the handshake: version, cipher, ALPN; the response) of one GET over TLS."""
    import socket
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # both servers' certificates come from throwaway CAs
    context.set_alpn_protocols(["http/1.1"])
    with socket.create_connection((HOST, port), timeout=5) as raw, context.wrap_socket(raw) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
        got = b""
        while not got.endswith(b"ok\n"):
            data = sock.recv(65536)
            if not data:
                break
            got += data
        cipher = sock.cipher()
        shape = f"{sock.version()} {cipher[0] if cipher else '?'} {sock.selected_alpn_protocol()}"
    return shape, got.decode("latin-1")


def figures_7_8(t: TLSSettings, workdir: Path, rows: list[Row], only: set[int]) -> None:
    names = {7: "7 new TLS handshakes/s", 8: "8 TLS keep-alive throughput"}
    if wrk_version() is None:
        for fig in sorted(only & {7, 8}):
            rows.append(Row(names[fig], "n/a: wrk is not installed (apt-get install -y wrk)", "-", "-", None))
        return
    profile = {
        "version": 1,
        "listeners": [{"name": "api", "bind": f"{HOST}:0", "backlog": 4096, "response": HEALTHY,
                       "tls": {"generate": True}}],
    }
    cert, key = tls_pair(workdir)
    with started(FaultserverProc, profile, workdir, "tls") as fs, \
            started(ScriptProc, "baseline_tls_server.py", workdir, cert, key) as base:
        ours, theirs = tls_fetch(fs.port("api")), tls_fetch(base.port)
        note = ""
        if ours[0] != theirs[0]:
            note = f" (WARNING: handshakes differ: {ours[0]} and {theirs[0]})"
        elif not _same_bytes(ours[1], theirs[1]):
            note = " (WARNING: responses differ)"

        Rates = tuple[list[float], list[float], list[float]]
        #: each server's CPU seconds per request, over the measured runs: less sensitive to
        #: the machine's other load than the rates (whose ratio is the target's)
        cpu: dict[int, list[float]] = {fs.pid: [], base.pid: []}

        def rates(seconds: int, *extra: str) -> Rates:
            """A/B pairs of wrk runs, alternating which goes first; (ours, theirs, ratios)."""
            for runs in cpu.values():
                runs.clear()

            def run(server, url: str, secs: int) -> float:
                before = cpu_s(server.pid)
                try:
                    rate = wrk(url, secs, *extra)
                except Exception:
                    server.check()  # say so when the server died
                    raise
                cpu[server.pid].append((cpu_s(server.pid) - before) / (rate * secs))
                return rate

            run(fs, fs.urls["api"], 1)  # warm both up
            run(base, base.url, 1)
            a_rates, b_rates, ratios = [], [], []
            for i in range(t.pairs):
                if i % 2 == 0:
                    a = run(fs, fs.urls["api"], seconds)
                    b = run(base, base.url, seconds)
                else:
                    b = run(base, base.url, seconds)
                    a = run(fs, fs.urls["api"], seconds)
                a_rates.append(a)
                b_rates.append(b)
                ratios.append(a / b)
            return a_rates, b_rates, ratios

        def row(fig: int, how: str, unit: str, measured: Rates) -> None:
            a_rates, b_rates, ratios = measured
            ratio = statistics.median(ratios)
            # the warm-up runs are left out of the CPU figures
            ours_us, theirs_us = (statistics.median(cpu[pid][1:]) * 1e6 for pid in (fs.pid, base.pid))
            rows.append(Row(
                f"{names[fig]} ({how})",
                f"{ratio:.2f}x ({statistics.median(a_rates):,.0f} {unit}; pairs "
                + "/".join(f"{r:.2f}" for r in ratios) + f"; CPU {ours_us:,.0f} us per request)",
                ">= 0.80x reference",
                f"baseline_tls_server.py {statistics.median(b_rates):,.0f} {unit}, CPU {theirs_us:,.0f} us"
                f" per request (CPU ratio {theirs_us / ours_us:.2f}x){note}",
                ratio >= 0.8,
            ))

        if 7 in only:
            # one request per connection: wrk opens a new connection, and so makes a full
            # handshake (it resumes no session), for every request
            row(7, "wrk -t1 -c50, Connection: close", "handshakes/s",
                rates(t.handshake_s, "-H", "Connection: close"))
        if 8 in only:
            row(8, "wrk -t1 -c50 on https://", "req/s", rates(t.wrk_s))


#: Figure 9's clients: `python SCRIPT HOST PORT N` opens N connections, sends a TLS
#: ClientHello on each (one hello, made once by Python's ssl, sent to all), prints
#: "held N" and waits for its standard input to close.
_HELLO_HOLD_SCRIPT = r"""
import resource, socket, ssl, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
context.set_alpn_protocols(["http/1.1"])
outgoing = ssl.MemoryBIO()
tls = context.wrap_bio(ssl.MemoryBIO(), outgoing)
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outgoing.read()
socks = []
for _ in range(n):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(hello)
    socks.append(s)
print(f"held {len(socks)}", flush=True)
sys.stdin.read()
for s in socks:
    s.close()
"""


def figure_9(t: TLSSettings, workdir: Path, rows: list[Row]) -> None:
    profile = {
        "version": 1,
        "listeners": [{"name": "held", "bind": f"{HOST}:0", "backlog": 4096, "tls": {"generate": True},
                       "rules": [{"name": "hold", "at": "handshake", "action": "hang"}]}],
    }
    script = workdir / "hello_hold.py"
    script.write_text(_HELLO_HOLD_SCRIPT)

    def growth(server, port: int) -> float:  # as figure 3's, with hello clients
        idle_fds = open_fds(server.pid)
        with holding(port, 1, script=script):  # one first: lazily built things exist now
            wait_fds(server.pid, idle_fds + 1)
        time.sleep(0.3)
        before_fds = open_fds(server.pid)
        before = settled_rss(server.pid)
        with holding(port, t.held, script=script):
            wait_fds(server.pid, before_fds + t.held)
            after = settled_rss(server.pid)
        return after - before

    with started(FaultserverProc, profile, workdir, "tls-memory") as fs:
        ours = growth(fs, fs.port("held"))
    cert, key = tls_pair(workdir)
    with started(ScriptProc, "baseline_tls_server.py", workdir, cert, key) as bare:
        theirs = growth(bare, bare.port)
    rows.append(Row(
        f"9 RSS growth, {t.held:,} conns held in the handshake (at: handshake, hang)",
        f"{ours:.1f} MB",
        f"<= {60.0 * t.held / 5000:.0f} MB",
        f"bare Trio SSLStream server mid-handshake {theirs:.1f} MB",
        ours <= 60.0 * t.held / 5000,
    ))


# --- HTTP/2: figures 10 and 11 ----------------------------------------------------------


@dataclass
class H2Settings:
    """Figures 10 and 11, beside `Settings` and `TLSSettings`."""

    h2load_s: int  # seconds per h2load run of figure 10
    pairs: int  # A/B pairs for figure 10
    held: int  # h2 connections held in figure 11
    streams: int  # open streams on each held connection


#: Figure 3's target per held HTTP/1.1 request (60 MB for 10,000), in KB: figure 11's
#: allowance per held h2 stream beyond the bare h2 server's.
PER_HELD_REQUEST_KB = 6.0

H2_FULL = H2Settings(10, 3, 1000, 10)
H2_QUICK = H2Settings(2, 1, 200, 10)

#: nginx's h2c (`listen ... http2` on plain TCP, nginx 1.22) answering the same body, as the
#: machine's reference for figure 10. {port}, {dir}: filled in.
_NGINX_H2C_CONF = """
daemon off;
master_process off;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} http2;
        http2_max_concurrent_streams 128;
        keepalive_requests 100000000;  # nginx's default GOAWAY after 1,000 requests would end the run
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""


def h2load_version() -> str | None:
    if shutil.which("h2load") is None:
        return None
    out = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"nghttp2/([\w.\-]+)", out)
    return match.group(1) if match else "?"


def h2load(url: str, seconds: int) -> float:
    """Requests per second of `h2load -c1 -m100 -D N` (h2c by prior knowledge: 1 connection,
    100 streams at once); errors abort."""
    done = subprocess.run(
        ["h2load", "-c1", "-m100", "-D", str(seconds), "--warm-up-time=1", url + "/"],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    out = done.stdout
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored", out)
    if not match or not counts or not int(counts.group(2)):
        raise RuntimeError(f"h2load {url} exited {done.returncode}: {(out + done.stderr).strip()[-300:]}")
    all_2xx = re.search(r"status codes: \d+ 2xx, 0 3xx, 0 4xx, 0 5xx", out)
    if int(counts.group(4)) or int(counts.group(5)) or not all_2xx:
        raise RuntimeError(f"h2load saw errors: {counts.group(0)}")
    return float(match.group(1))


def h2_fetch(port: int) -> str:
    """The head and body of one GET over h2c, as curl prints them."""
    done = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-D", "-", f"http://{HOST}:{port}/"],
        capture_output=True, text=True, timeout=30,
    )
    return done.stdout


class NginxH2cProc:
    """nginx with one h2c server block (figure 10's machine reference)."""

    def __init__(self, workdir: Path) -> None:
        import socket

        folder = workdir / "nginx-h2c"
        folder.mkdir(exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / sub).mkdir(exist_ok=True)
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        conf = folder / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(_NGINX_H2C_CONF.format(port=self.port, dir=folder, user=user))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.stderr_path = folder / "output.log"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)],
                stdout=err, stderr=err, text=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {self.stderr_path.read_text()[-300:]}") from None
                time.sleep(0.05)
        self.url = f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    check = FaultserverProc.check

    def stop(self) -> None:
        stop_process(self.proc)


def figure_10(h: H2Settings, workdir: Path, rows: list[Row]) -> None:
    name = "10 h2 throughput (h2load -c1 -m100)"
    if h2load_version() is None:
        missing = "n/a: h2load is not installed (apt-get install -y nghttp2-client)"
        rows.append(Row(name, missing, "-", "-", None))
        return
    profile = {
        "version": 1,
        "listeners": [{"name": "api", "bind": f"{HOST}:0", "backlog": 4096, "response": HEALTHY,
                       "protocols": ["http/1.1", "h2"]}],
    }
    with started(FaultserverProc, profile, workdir, "h2") as fs, \
            started(ScriptProc, "baseline_h2_server.py", workdir) as base:
        same = _same_bytes(h2_fetch(fs.port("api")), h2_fetch(base.port))
        note = "" if same else " (WARNING: responses differ)"
        cpu: dict[int, list[float]] = {fs.pid: [], base.pid: []}

        def run(server, url: str, seconds: int) -> float:
            before = cpu_s(server.pid)
            try:
                rate = h2load(url, seconds)
            except Exception:
                server.check()  # say so when the server died
                raise
            # h2load's warm-up second is served too: count it in the CPU per request
            cpu[server.pid].append((cpu_s(server.pid) - before) / (rate * (seconds + 1)))
            return rate

        run(fs, fs.urls["api"], 1)  # warm both up
        run(base, base.url, 1)
        a_rates, b_rates, ratios = [], [], []
        for i in range(h.pairs):
            # alternate which goes first, so drift in the machine's load hits both
            if i % 2 == 0:
                a = run(fs, fs.urls["api"], h.h2load_s)
                b = run(base, base.url, h.h2load_s)
            else:
                b = run(base, base.url, h.h2load_s)
                a = run(fs, fs.urls["api"], h.h2load_s)
            a_rates.append(a)
            b_rates.append(b)
            ratios.append(a / b)
    ours_us, theirs_us = (statistics.median(cpu[pid][1:]) * 1e6 for pid in (fs.pid, base.pid))
    nginx = "nginx not installed"
    if shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK):
        try:
            with started(NginxH2cProc, workdir) as ngx:
                nginx = f"nginx h2c (1 worker) {h2load(ngx.url, h.h2load_s):,.0f} req/s"
        except Exception as exc:  # the reference is printed, never a reason to lose the figure
            nginx = f"nginx h2c: error {exc}"
    ratio = statistics.median(ratios)
    rows.append(Row(
        name,
        f"{ratio:.2f}x ({statistics.median(a_rates):,.0f} req/s; pairs "
        + "/".join(f"{r:.2f}" for r in ratios) + f"; CPU {ours_us:,.0f} us per request)",
        ">= 0.80x reference",
        f"baseline_h2_server.py {statistics.median(b_rates):,.0f} req/s, CPU {theirs_us:,.0f} us per request"
        f" (CPU ratio {theirs_us / ours_us:.2f}x); {nginx}{note}",
        ratio >= 0.8,
    ))


#: Figure 11's clients: `python SCRIPT HOST PORT N STREAMS` opens N connections, sends the
#: HTTP/2 preface, SETTINGS and STREAMS requests (HEADERS with END_STREAM) on each, prints
#: "held N" and waits for its standard input to close.
_H2_HOLD_SCRIPT = r"""
import resource, socket, sys
import hpack
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
host, port, n, streams = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def frame(kind, flags, stream_id, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload
socks = []
for _ in range(n):
    encoder = hpack.Encoder()
    data = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
    for i in range(streams):
        block = encoder.encode([(":method", "GET"), (":path", f"/held-{i}"), (":scheme", "http"),
                                (":authority", host)])
        data += frame(1, 0x5, 2 * i + 1, block)  # HEADERS, END_STREAM | END_HEADERS
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(data)
    socks.append(s)
print(f"held {len(socks)}", flush=True)
sys.stdin.read()
for s in socks:
    s.close()
"""


def figure_11(h: H2Settings, workdir: Path, rows: list[Row]) -> None:
    profile = {
        "version": 1,
        "listeners": [{"name": "held", "bind": f"{HOST}:0", "backlog": 4096, "protocols": ["h2"],
                       "rules": [{"name": "hold", "action": "hang"}]}],
    }
    script = workdir / "h2_hold.py"
    script.write_text(_H2_HOLD_SCRIPT)
    # `holding` runs `script HOST PORT COUNT`: the stream count goes in through a wrapper
    wrapper = workdir / "h2_hold_streams.py"
    wrapper.write_text(
        "import runpy, sys\n"
        f"sys.argv = [sys.argv[0], *sys.argv[1:4], '{h.streams}']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )

    def growth(server, port: int) -> float:  # as figure 3's, with h2 clients
        idle_fds = open_fds(server.pid)
        with holding(port, 1, script=wrapper):  # one first: lazily built things exist now
            wait_fds(server.pid, idle_fds + 1)
            time.sleep(0.3)
        time.sleep(0.3)
        before_fds = open_fds(server.pid)
        before = settled_rss(server.pid)
        with holding(port, h.held, script=wrapper):
            wait_fds(server.pid, before_fds + h.held)
            after = settled_rss(server.pid)
        return after - before

    with started(FaultserverProc, profile, workdir, "h2-memory") as fs:
        ours = growth(fs, fs.port("held"))
    with started(ScriptProc, "baseline_h2_server.py", workdir, "hold") as bare:
        theirs = growth(bare, bare.port)
    # the target: what the bare h2 server holds (h2's state machines, the same per connection
    # and per stream), plus figure 3's budget for a held HTTP/1.1 request, 6 KB (60 MB per
    # 10,000), for each held stream: faultserver keeps the same things for it (its task and
    # cancel scope, the request, the decision, its events in the bounded log)
    target = theirs + PER_HELD_REQUEST_KB * h.held * h.streams / 1024
    rows.append(Row(
        f"11 RSS growth, {h.held:,} h2 conns x {h.streams} open streams (hang)",
        f"{ours:.1f} MB ({ours * 1024 / (h.held * h.streams):.1f} KB per stream)",
        f"<= bare + {PER_HELD_REQUEST_KB:g} KB per stream = {target:.0f} MB",
        f"bare Trio + h2 server holding the same streams {theirs:.1f} MB "
        f"({theirs * 1024 / (h.held * h.streams):.1f} KB per stream)",
        ours <= target,
    ))


# --- the dashboard: figure 12 ------------------------------------------------------------


@dataclass
class DashboardSettings:
    """Figure 12, beside the others' settings."""

    wrk_s: int  # seconds per wrk run
    pairs: int  # A/B pairs: with the page open, without


DASH_FULL = DashboardSettings(8, 5)  # five pairs: one pair hit by other load does not move the median
DASH_QUICK = DashboardSettings(2, 1)
#: How long the page may take to load and follow the event stream.
PAGE_LIVE_S = 20.0


def dashboard_browser(profile_dir: Path):
    """(headless Chromium through chromedriver, None), or (None, why it cannot start). Debian's
    binaries are named to Selenium, so Selenium Manager never runs (it would download)."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        return None, "n/a: chromium is not installed (apt-get install -y chromium chromium-driver)"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "n/a: selenium is not installed (pip install -e '.[test]')"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", f"--user-data-dir={profile_dir}", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver)), None


def figure_12(d: DashboardSettings, workdir: Path, rows: list[Row]) -> None:
    name = "12 healthy throughput, dashboard open (wrk -t1 -c50)"
    if wrk_version() is None:
        rows.append(Row(name, "n/a: wrk is not installed (apt-get install -y wrk)", "-", "-", None))
        return
    profile = {
        "version": 1,
        "listeners": [{"name": "api", "bind": f"{HOST}:0", "backlog": 4096, "response": HEALTHY}],
    }
    load_before = os.getloadavg()[0]  # the machine's other load shows in this figure most
    with started(FaultserverProc, profile, workdir, "dashboard") as fs:
        browser, missing = dashboard_browser(workdir / "chromium")
        if browser is None:
            rows.append(Row(name, missing, "-", "-", None))
            return
        try:
            page = fs.control + "/"
            behind: list[int] = []  # events the page had not shown at the end of each run

            def show_page(shown: bool) -> None:
                if not shown:
                    browser.get("about:blank")  # the stream and the polling stop with the page
                    return
                browser.get(page)
                deadline = time.monotonic() + PAGE_LIVE_S
                state = "return document.getElementById('status').dataset.state"
                while browser.execute_script(state) != "live":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the dashboard did not go live")
                    time.sleep(0.1)

            browser_cpu: list[float] = []  # the browser's CPU seconds per second, page open
            #: the server's CPU seconds per request, page open (True) and closed (False): what
            #: the page costs the server itself, apart from the browser's share of the machine
            server_cpu: dict[bool, list[float]] = {True: [], False: []}

            def run(shown: bool, seconds: int) -> float:
                show_page(shown)
                root = browser.service.process.pid  # chromedriver, whose children are Chromium's
                before, started_at = _tree_cpu_s(root), time.monotonic()
                server_before = cpu_s(fs.pid)
                try:
                    rate = wrk(fs.urls["api"], seconds)
                except Exception:
                    fs.check()  # say so when the server died
                    raise
                server_cpu[shown].append((cpu_s(fs.pid) - server_before) / (rate * seconds))
                if shown:
                    browser_cpu.append((_tree_cpu_s(root) - before) / (time.monotonic() - started_at))
                if shown:
                    # how far the page is behind once the load stops (under load it draws every 2 s)
                    time.sleep(3.0)
                    top = browser.execute_script(
                        "const li = document.querySelector('#event-list > li');"
                        "return li ? +li.dataset.id : 0")
                    behind.append(_newest_event_id(fs.control) - int(top))
                return rate

            run(False, 1)  # warm both up
            run(True, 1)
            with_rates, without_rates, ratios = [], [], []
            for i in range(d.pairs):
                # alternate which goes first, so drift in the machine's load hits both
                if i % 2 == 0:
                    a = run(True, d.wrk_s)
                    b = run(False, d.wrk_s)
                else:
                    b = run(False, d.wrk_s)
                    a = run(True, d.wrk_s)
                with_rates.append(a)
                without_rates.append(b)
                ratios.append(a / b)
        finally:
            browser.quit()
    ratio = statistics.median(ratios)
    open_us, closed_us = (statistics.median(server_cpu[shown][1:]) * 1e6 for shown in (True, False))
    pairs_cpu = zip(server_cpu[True][1:], server_cpu[False][1:], strict=True)
    cpu_pairs = "/".join(f"{closed / shown:.2f}" for shown, closed in pairs_cpu)
    rows.append(Row(
        name,
        f"{ratio:.2f}x ({statistics.median(with_rates):,.0f} req/s; pairs "
        + "/".join(f"{r:.2f}" for r in ratios)
        + f"; server CPU {open_us:.1f} us per request, CPU ratio {closed_us / open_us:.2f}x"
        + f" (pairs {cpu_pairs})"
        + f"; Chromium used {statistics.median(browser_cpu[1:]) * 100:.0f} % of a core; 3 s after"
        f" the load the page's newest row was {max(behind[1:])} events behind)",
        ">= 0.95x without the page",
        f"the same server, page closed: {statistics.median(without_rates):,.0f} req/s, "
        f"server CPU {closed_us:.1f} us per request; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after",
        ratio >= 0.95,
    ))


def _tree_cpu_s(root: int) -> float:
    """The CPU time so far of `root` and every process under it (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [child for child, parent in parents.items() if parent == pid and child not in tree]
    total = 0.0
    for pid in tree:
        try:
            total += cpu_s(pid)
        except (OSError, ValueError, IndexError):
            pass  # gone meanwhile
    return total


def _newest_event_id(control: str) -> int:
    import urllib.request

    with urllib.request.urlopen(control + "/events?newest=1", timeout=10) as resp:
        events = json.load(resp)["events"]
    return int(events[-1]["id"]) if events else 0


# --- the table ----------------------------------------------------------------------


def workers_bench():
    """bench/workers.py: figures 13 to 15 (`run --workers N`), imported when asked for."""
    import workers

    return workers


def print_table(rows: list[Row], header: str) -> None:
    cols = ["figure", "value", "target", "reference", "result"]
    table = [[r.figure, r.value, r.target, r.reference,
              "-" if r.ok is None else ("ok" if r.ok else "MISSED")] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) if table else len(c) for i, c in enumerate(cols)]
    print(header)
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for t in table:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)) + " |")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke of every figure")
    parser.add_argument("--only", default="1,2,3,4,5,6",
                        help="figures to run, e.g. 1,4; the TLS figures 7,8,9, the HTTP/2 figures "
                        "10,11, the dashboard figure 12 and the --workers figures 13,14,15 run when named")
    args = parser.parse_args(argv)
    only = {int(x) for x in args.only.split(",") if x.strip()}
    s = QUICK if args.quick else FULL
    tls = TLS_QUICK if args.quick else TLS_FULL
    h2s = H2_QUICK if args.quick else H2_FULL
    dash = DASH_QUICK if args.quick else DASH_FULL
    ws = workers_bench().WORKERS_QUICK if args.quick else workers_bench().WORKERS_FULL  # figures 13-15
    raise_nofile()
    version = wrk_version()
    header = (
        f"faultserver benchmarks{' (--quick)' if s.quick else ''}: {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, "
        + (f"wrk {version}" if version else "wrk NOT INSTALLED (figures 1 and 2 skipped)")
        + f", open-file limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"
        + (f", h2load {h2load_version() or 'NOT INSTALLED (figure 10 skipped)'}" if 10 in only else "")
    )
    print(header, file=sys.stderr, flush=True)
    rows: list[Row] = []
    started_at = time.monotonic()
    steps = [
        ({1, 2}, lambda wd: figures_1_2(s, wd, rows, only), "1 healthy throughput / 2 held"),
        ({3}, lambda wd: figure_3(s, wd, rows), "3 RSS growth"),
        ({4}, lambda wd: figure_4(s, wd, rows), "4 delay precision"),
        ({5}, lambda wd: figure_5(s, wd, rows), "5 dribble"),
        ({6}, lambda wd: figure_6(s, wd, rows), "6 start-up"),
        ({7, 8}, lambda wd: figures_7_8(tls, wd, rows, only), "7 TLS handshakes / 8 TLS keep-alive"),
        ({9}, lambda wd: figure_9(tls, wd, rows), "9 RSS growth, held in the handshake"),
        ({10}, lambda wd: figure_10(h2s, wd, rows), "10 h2 throughput"),
        ({11}, lambda wd: figure_11(h2s, wd, rows), "11 RSS growth, h2 streams held"),
        ({12}, lambda wd: figure_12(dash, wd, rows), "12 throughput with the dashboard open"),
        ({13, 14}, lambda wd: workers_bench().figures_13_14(ws, wd, rows, only), "13/14 --workers"),
        ({15}, lambda wd: workers_bench().figure_15(ws, wd, rows), "15 --workers control latency"),
    ]
    with tempfile.TemporaryDirectory(prefix="faultserver-bench-") as tmp:
        for figs, step, name in steps:
            if not figs & only:
                continue
            t = time.monotonic()
            try:
                step(Path(tmp))
            except Exception as exc:  # one broken figure must not hide the others
                rows.append(Row(name, f"error: {exc}", "-", "-", False))
            print(f"  {name}: {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
    print_table(rows, header + f"; took {time.monotonic() - started_at:.0f} s")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Figure 1 (keep-alive throughput, `wrk -t1 -c50`) with and without event stream readers.

    python bench/sse_fanout.py                 # 100 readers, 3 pairs of 5 s runs
    python bench/sse_fanout.py --readers 1000 --seconds 3 --pairs 1

Each reader is a `GET /events/stream` connection that reads everything it is sent, in a
separate client process (one selector thread for all of them), so the server pays what
real readers cost it. The server is faultserver's own code in its own process, started
with `max_subscribers` above the number of readers. Prints the rate without readers, with
them, their ratio (issue 19 item 7: at least 0.8), and what the readers received.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PY = sys.executable
PROFILE = """\
version: 1
listeners:
  - name: api
    bind: 127.0.0.1:0
    response:
      headers: {content-type: text/plain}
      body: "ok\\n"
"""

#: The server: faultserver's `Server` with the admin API, readers allowed up to argv[2].
SERVER = textwrap.dedent(
    """
    import signal, sys, threading
    from faultserver.testing import FaultServer, load_source
    srv = FaultServer(load_source(sys.argv[1], keep_binds=True), admin=True, max_subscribers=int(sys.argv[2]))
    srv.start()
    print("listener", srv.url, flush=True)
    print("control", srv.control_url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    srv.stop()
    """
)

#: The readers: argv[1] = control URL, argv[2] = how many; prints JSON totals on SIGTERM.
READERS = textwrap.dedent(
    """
    import json, selectors, signal, socket, sys
    host, port = sys.argv[1].removeprefix("http://").rsplit(":", 1)
    sel = selectors.DefaultSelector()
    for _ in range(int(sys.argv[2])):
        s = socket.create_connection((host, int(port)))
        s.sendall(f"GET /events/stream HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n".encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    totals = {"bytes": 0, "events": 0, "missed_notices": 0, "refused": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("connected", flush=True)
    while not stop:
        for key, _ in sel.select(0.1):
            try:
                data = key.fileobj.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            totals["bytes"] += len(data)
            totals["events"] += data.count(b"\\nid: ") + data.startswith(b"id: ")
            totals["missed_notices"] += data.count(b"event: missed")
            totals["refused"] += data.count(b" 503 ")
    print(json.dumps(totals), flush=True)
    """
)


def wrk(url: str, seconds: int) -> float:
    done = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{seconds}s", url + "/"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if not match:
        raise RuntimeError(f"wrk gave no rate: {done.stdout[-300:]} {done.stderr[-300:]}")
    return float(match.group(1))


def start_server(profile: Path, max_readers: int) -> tuple[subprocess.Popen[str], str, str]:
    command = [PY, "-c", SERVER, str(profile), str(max_readers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    listener = proc.stdout.readline().split()[1]
    control = proc.stdout.readline().split()[1]
    return proc, listener, control


def with_readers(control: str, n: int, run: callable) -> tuple[float, dict]:  # type: ignore[valid-type]
    readers = subprocess.Popen([PY, "-c", READERS, control, str(n)], stdout=subprocess.PIPE, text=True)
    assert readers.stdout is not None
    readers.stdout.readline()  # connected
    time.sleep(0.5)
    try:
        rate = run()
    finally:
        readers.terminate()
        totals = json.loads(readers.stdout.readline() or "{}")
        readers.wait(10)
    return rate, totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "api.yaml"
        profile.write_text(PROFILE)
        server, url, control = start_server(profile, args.readers + 10)
        try:
            wrk(url, 1)  # warm up
            alone, crowded, received = [], [], []
            for _ in range(args.pairs):
                alone.append(wrk(url, args.seconds))
                rate, totals = with_readers(control, args.readers, lambda: wrk(url, args.seconds))
                crowded.append(rate)
                received.append(totals)
        finally:
            server.terminate()
            server.wait(10)
    a, c = statistics.median(alone), statistics.median(crowded)
    print(f"cores: {len(__import__('os').sched_getaffinity(0))}")
    print(f"figure 1 without readers: {a:,.0f} req/s (runs: {', '.join(f'{r:,.0f}' for r in alone)})")
    runs = ", ".join(f"{r:,.0f}" for r in crowded)
    print(f"figure 1 with {args.readers} readers: {c:,.0f} req/s (runs: {runs})")
    print(f"ratio: {c / a:.2f} (target >= 0.80)")
    last = received[-1]
    print(
        f"readers received (last run, all readers): {last.get('events', 0):,} events, "
        f"{last.get('bytes', 0) / 1e6:,.1f} MB, {last.get('missed_notices', 0):,} 'missed' notices, "
        f"{last.get('refused', 0)} refused"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

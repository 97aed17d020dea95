"""Where a healthy HTTP/1.1 request's time goes: the figures behind bench/PROFILE.md.

    python bench/per_request.py            # both parts below
    python bench/per_request.py --parts    # only the in-process parts (no wrk, a few seconds)
    python bench/per_request.py --cpu 5    # only the CPU per request under wrk, 5 pairs

Part one, in process, with no socket: each step a keep-alive GET takes through faultserver
(parse, decide, record, render), timed alone with `timeit` (best of 5), beside the same
steps of `bench/baseline_server.py` (httptools with one callback, a cached answer).

Part two, under load: the server process's CPU time (user + system, from /proc) per
request while `wrk -t1 -c50` drives it, for faultserver (figure 1's profile) and for
`bench/baseline_server.py`, alternating. CPU per request moves less with the machine's
other load than requests per second do; on a 2-core machine, where wrk takes the other
core, the ratio of the two is close to figure 1's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n"
PROFILE = {
    "version": 1,
    "listeners": [{"name": "api", "bind": "127.0.0.1:0", "backlog": 4096,
                   "response": {"headers": {"content-type": "text/plain"}, "body": "ok\n"}}],
}
LOOPS = 100_000


def best_us(step: Callable[[], object]) -> float:
    """The best of 5 timings of `step`, in microseconds per call."""
    return min(timeit.repeat(step, number=LOOPS, repeat=5)) / LOOPS * 1e6


def parts() -> list[tuple[str, float]]:
    """(step, microseconds) for faultserver's steps, then the reference's."""
    import httptools

    from faultserver._events import EventLog
    from faultserver._profile.load import load_profile_data
    from faultserver._protocol.http1 import RequestReader
    from faultserver._wire.context import ListenerContext

    config = load_profile_data(PROFILE).listeners[0]
    ctx = ListenerContext(config, EventLog(), 1, "x-fault", lambda: None)
    reader = RequestReader(ctx.limits, 0.0)

    def clock() -> float:
        return 0.0

    def parse() -> list[object]:
        reader.feed(REQUEST, clock)
        return reader.take_events()

    request = parse()[0]
    fields = ctx.record_request(request, 1, "127.0.0.1:1")

    class Complete:
        def on_message_complete(self) -> None:
            pass

    bare = httptools.HttpRequestParser(Complete())
    sys.path.insert(0, str(HERE))
    import baseline_server

    return [
        ("parse: RequestReader.feed + take_events", best_us(parse)),
        ("decide: ListenerContext.decide", best_us(lambda: ctx.decide(request))),  # type: ignore[arg-type]
        ("record: record_request (stats, retry check, request event)",
         best_us(lambda: ctx.record_request(request, 1, "127.0.0.1:1"))),  # type: ignore[arg-type]
        ("render: PreparedResponse.render", best_us(lambda: ctx.prepared.render(request, 1, False, False))),  # type: ignore[arg-type]
        ("response event: EventLog.emit_response",
         best_us(lambda: ctx.events.emit_response("api", fields, 200))),
        ("reference parse: httptools, one callback", best_us(lambda: bare.feed_data(REQUEST))),
        ("reference answer: baseline_server.response()", best_us(baseline_server.response)),
    ]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(pairs: int, seconds: int) -> dict[str, list[tuple[float, float]]]:
    """name -> [(CPU microseconds per request, requests per second)] over `pairs` runs each."""
    workdir = Path(tempfile.mkdtemp(prefix="per-request-"))
    profile = workdir / "healthy.json"
    profile.write_text(json.dumps(PROFILE))
    command = [sys.executable, "-m", "faultserver", "run", str(profile), "--log-level", "warning"]
    ours = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=workdir)
    theirs = subprocess.Popen([sys.executable, str(HERE / "baseline_server.py")],
                              stdout=subprocess.PIPE, text=True, cwd=workdir)
    try:
        assert ours.stdout is not None and theirs.stdout is not None
        servers = {"faultserver": (ours, ours.stdout.readline().split()[2]),
                   "baseline_server.py": (theirs, theirs.stdout.readline().split()[1])}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for run in range(pairs + 1):  # the first round warms both up and is not kept
            for name, (proc, url) in servers.items():
                before = cpu_seconds(proc.pid)
                out = subprocess.run(["wrk", "-t1", "-c50", f"-d{1 if run == 0 else seconds}s", url + "/"],
                                     capture_output=True, text=True, check=True).stdout
                done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
                if run:
                    results[name].append(((cpu_seconds(proc.pid) - before) * 1e6 / done, done / seconds))
        return results
    finally:
        for proc in (ours, theirs):
            proc.terminate()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", action="store_true", help="only the in-process parts")
    parser.add_argument("--cpu", type=int, metavar="PAIRS", help="only the CPU per request, PAIRS runs each")
    parser.add_argument("--seconds", type=int, default=5, help="each wrk run's length (default 5)")
    args = parser.parse_args()
    if args.cpu is None:
        print("in process, microseconds per call (best of 5):")
        for step, us in parts():
            print(f"  {us:6.3f}  {step}")
    if args.parts:
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    results = cpu_per_request(args.cpu or 5, args.seconds)
    print(f"under wrk -t1 -c50, {args.seconds} s runs, CPU microseconds per request (user + system):")
    medians = {}
    for name, runs in results.items():
        medians[name] = statistics.median(us for us, _ in runs)
        cells = ", ".join(f"{us:.1f} us at {rate:,.0f}/s" for us, rate in runs)
        print(f"  {name:20s} median {medians[name]:5.1f} us  ({cells})")
    ratio = medians["baseline_server.py"] / medians["faultserver"]
    print(f"  CPU ratio (reference / faultserver): {ratio:.2f}x")


if __name__ == "__main__":
    main()

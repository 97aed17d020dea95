"""Proxy mode's figures (issue 13), with same-run references. Quick runs: a few seconds each.

    python bench/proxy.py [--seconds 3] [--pairs 4] [--download-mb 1024]

Prints, against an nginx upstream serving a 3-byte file and a large file:
  1. keep-alive GET throughput (wrk -t1 -c50) through faultserver's proxy, through the
     issue's reference, a bare Trio + httptools forwarder doing the few things any proxy
     must (bench/baseline_proxy_rfc.py: heads parsed, hop-by-hop headers dropped,
     X-Forwarded-*, a shared keep-alive pool, 502/504), through a byte relay that never
     parses (bench/baseline_proxy.py: the stack's floor, for context) and through nginx's
     proxy_pass
     (the machine's limit, for reference); A/B runs alternate which goes first; also the
     CPU time each Python process spent per request (/proc/PID/stat), steadier than rates
     on a shared machine;
  2. added latency at one connection: p50 and p99 of sequential GETs through faultserver
     minus those of the same GETs sent to nginx directly;
  3. a streamed download of --download-mb through faultserver with curl: its throughput
     against curl straight to nginx (after one download that puts the file in the page
     cache), and faultserver's RSS growth (peak RSS during the download less RSS before it);
  4. why the upstream side parses with httptools: the CPU time to parse one nginx answer
     with h11 (the parser under httpcore) and with proxy mode's httptools `ResponseReader`.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from faultserver._processes import find_binary, free_port, stop_group, wait_listening  # noqa: E402

PY = sys.executable


def nginx(folder: Path, upstream_port: int, proxy_port: int, root: Path) -> subprocess.Popen[bytes]:
    user = "user root;" if os.geteuid() == 0 else ""
    conf = folder / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process on;
worker_processes 1;
{user}
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 1000000;
    upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{ listen 127.0.0.1:{upstream_port}; root {root}; sendfile on; }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
    binary = find_binary("nginx")
    assert binary is not None, "nginx is not installed"
    proc = subprocess.Popen(
        [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)],
        start_new_session=True,
    )
    assert wait_listening(proc, upstream_port) and wait_listening(proc, proxy_port), "nginx did not start"
    return proc


def spawn(args: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
    assert wait_listening(proc, port), f"{args} did not start"
    return proc


def cpu_s(pid: int) -> float:
    """The CPU time (user and system) `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, seconds: int, pid: int | None = None) -> tuple[float, float]:
    """Requests per second, and the CPU time `pid` spent per request meanwhile (us)."""
    before = cpu_s(pid) if pid is not None else 0.0
    out = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{seconds}s", f"http://127.0.0.1:{port}/ok.txt"],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    used = cpu_s(pid) - before if pid is not None else 0.0
    if re.search(r"Non-2xx or 3xx responses|Socket errors", out):
        raise RuntimeError(f"wrk saw errors on port {port}: {out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    assert match and count, out
    return float(match.group(1)), used / int(count.group(1)) * 1e6


def runs(results: list[tuple[float, float]]) -> str:
    return ", ".join(f"{x:.0f}" for x, _ in results)


def cpus(results: list[tuple[float, float]]) -> str:
    return ", ".join(f"{x:.0f}" for _, x in results)


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def latencies_ms(port: int, count: int) -> list[float]:
    request = b"GET /ok.txt HTTP/1.1\r\nhost: bench\r\n\r\n"
    times = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(request)
            data = b""
            while not data.endswith(b"\r\n\r\nok\n"):
                data += sock.recv(65536)
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def curl_download(port: int, name: str, pid: int | None) -> tuple[float, int]:
    """Seconds for curl to fetch `name`, and the peak RSS (kB) of `pid` meanwhile."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", f"http://127.0.0.1:{port}/{name}"],
        stdout=subprocess.PIPE, text=True,
    )
    peak = 0
    while proc.poll() is None:
        if pid is not None:
            peak = max(peak, rss_kb(pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0 and proc.stdout is not None
    size = int(proc.stdout.read())
    return elapsed, peak if size else -1


NGINX_ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 04 Dec 2026 15:20:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 3\r\nLast-Modified: Fri, 04 Dec 2026 15:00:00 GMT\r\n"
    b'Connection: keep-alive\r\nETag: "1-3"\r\nAccept-Ranges: bytes\r\n\r\nok\n'
)


def parse_costs(count: int = 20000) -> None:
    import h11

    from faultserver._protocol.forwarding import ResponseReader

    def with_h11() -> None:
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/ok.txt", headers=[("Host", "bench")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(NGINX_ANSWER)
        while type(conn.next_event()) is not h11.EndOfMessage:
            pass

    def with_httptools() -> None:
        ResponseReader(False).feed(NGINX_ANSWER)

    print("4 CPU to parse one nginx answer (9 headers, 3-byte body)")
    parsers = (("h11 (request out, answer in)", with_h11), ("httptools ResponseReader", with_httptools))
    for name, parse in parsers:
        parse()
        started = time.process_time()
        for _ in range(count):
            parse()
        print(f"  {name}: {(time.process_time() - started) / count * 1e6:.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--download-mb", type=int, default=1024)
    parser.add_argument("--latency-count", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=4, help="A/B pairs of throughput runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = folder / "root"
        root.mkdir()
        (root / "ok.txt").write_bytes(b"ok\n")
        with open(root / "big.bin", "wb") as big:
            big.truncate(args.download_mb * 1024 * 1024)  # sparse: nginx sends zeros
        upstream_port, nginx_proxy, fs_port, base_port = (free_port() for _ in range(4))
        procs = [nginx(folder, upstream_port, nginx_proxy, root)]
        try:
            profile = folder / "proxy.yaml"
            profile.write_text(
                "version: 1\nlisteners:\n  - name: proxy\n"
                f"    bind: 127.0.0.1:{fs_port}\n    upstream: http://127.0.0.1:{upstream_port}\n"
            )
            fs = spawn([PY, "-m", "faultserver", "run", str(profile), "--log-level", "warning"], fs_port)
            procs.append(fs)
            baseline = [PY, str(HERE / "baseline_proxy.py"), str(base_port), str(upstream_port)]
            bare = spawn(baseline, base_port)
            procs.append(bare)
            rfc_port = free_port()
            minimal = [PY, str(HERE / "baseline_proxy_rfc.py"), str(rfc_port), str(upstream_port)]
            rfc = spawn(minimal, rfc_port)
            procs.append(rfc)
            print(f"load average {load_average()} at the start")
            pids = (fs.pid, bare.pid)
            report(args, pids, upstream_port, nginx_proxy, fs_port, base_port, (rfc.pid, rfc_port))
            print(f"load average {load_average()} at the end")
            parse_costs()
        finally:
            for proc in reversed(procs):
                stop_group(proc)


def report(
    args: argparse.Namespace,
    pids: tuple[int, int],
    upstream: int,
    nginx_proxy: int,
    fs: int,
    base: int,
    rfc: tuple[int, int],
) -> None:
    s = args.seconds
    fs_pid, bare_pid = pids
    rfc_pid, rfc_port = rfc
    for port in (fs, base, rfc_port, nginx_proxy):
        wrk(port, 1)  # warm up
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    minimal: list[tuple[float, float]] = []
    for i in range(args.pairs):  # A/B/C rounds, alternating which goes first
        if i % 2 == 0:
            ours.append(wrk(fs, s, fs_pid))
            theirs.append(wrk(base, s, bare_pid))
            minimal.append(wrk(rfc_port, s, rfc_pid))
        else:
            minimal.append(wrk(rfc_port, s, rfc_pid))
            theirs.append(wrk(base, s, bare_pid))
            ours.append(wrk(fs, s, fs_pid))
    reference, _ = wrk(nginx_proxy, s)
    direct, _ = wrk(upstream, s)
    a, b = statistics.median(x for x, _ in ours), statistics.median(x for x, _ in theirs)
    cpu_a, cpu_b = statistics.median(x for _, x in ours), statistics.median(x for _, x in theirs)
    print(f"1 keep-alive GET throughput (wrk -t1 -c50, {s} s runs, 3-byte body from nginx; medians)")
    c, cpu_c = statistics.median(x for x, _ in minimal), statistics.median(x for _, x in minimal)
    print(f"  faultserver proxy:          {a:9.0f} req/s  (runs: {runs(ours)}; CPU {cpu_a:.1f} us, "
          f"{cpus(ours)})")
    print(f"  minimal correct forwarder:  {c:9.0f} req/s  (runs: {runs(minimal)}; CPU {cpu_c:.1f} us, "
          f"{cpus(minimal)})")
    print(f"  ratio faultserver/minimal:  {a / c:9.2f}      (target >= 0.8; CPU ratio {cpu_c / cpu_a:.2f})")
    print(f"  byte relay (no parsing):    {b:9.0f} req/s  (runs: {runs(theirs)}; CPU {cpu_b:.1f} us, "
          f"{cpus(theirs)})")
    print(f"  ratio faultserver/relay:    {a / b:9.2f}      (the stack's floor, for context; "
          f"CPU ratio {cpu_b / cpu_a:.2f})")
    print(f"  ratio minimal/relay:        {c / b:9.2f}      (what parsing heads, dropping hop-by-hop "
          f"headers and a pool cost any correct forwarder here)")
    print(f"  nginx proxy_pass reference: {reference:9.0f} req/s; nginx direct: {direct:.0f} req/s")
    n = args.latency_count
    latencies_ms(fs, 200)
    direct_ms = latencies_ms(upstream, n)
    proxied_ms = latencies_ms(fs, n)
    p50 = pct(proxied_ms, 0.5) - pct(direct_ms, 0.5)
    p99 = pct(proxied_ms, 0.99) - pct(direct_ms, 0.99)
    print(f"2 added latency at one connection ({n} sequential GETs each)")
    print(f"  direct p50 {pct(direct_ms, 0.5):.3f} ms p99 {pct(direct_ms, 0.99):.3f} ms; "
          f"through faultserver p50 {pct(proxied_ms, 0.5):.3f} ms p99 {pct(proxied_ms, 0.99):.3f} ms")
    print(f"  added: p50 {p50:.3f} ms, p99 {p99:.3f} ms  (target <= 0.3 ms)")
    mb = args.download_mb
    curl_download(upstream, "big.bin", None)  # nginx reads the file once: neither path pays for it
    before = rss_kb(fs_pid)
    throughs, directs, peaks = [], [], []
    for _ in range(2):  # alternating, twice: this machine is shared
        through_s, peak = curl_download(fs, "big.bin", fs_pid)
        direct_s, _ = curl_download(upstream, "big.bin", None)
        throughs.append(mb / through_s)
        directs.append(mb / direct_s)
        peaks.append(peak)
    direct_rate, through_rate = statistics.mean(directs), statistics.mean(throughs)
    print(f"3 streamed download of {mb} MiB with curl (2 runs each)")
    print(f"  direct {direct_rate:.0f} MiB/s ({', '.join(f'{x:.0f}' for x in directs)}), "
          f"through faultserver {through_rate:.0f} MiB/s ({', '.join(f'{x:.0f}' for x in throughs)}): "
          f"ratio {through_rate / direct_rate:.2f} (target >= 0.5)")
    print(f"  faultserver RSS {before / 1024:.1f} MiB before, peak {max(peaks) / 1024:.1f} MiB during: "
          f"growth {(max(peaks) - before) / 1024:.1f} MiB (target <= 20)")

if __name__ == "__main__":
    main()

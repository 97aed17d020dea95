"""`bench/proxy.py` runs end to end with both references and prints every figure.

As the other bench smoke tests: no time and no target is asserted, only that a short run
(1 s of wrk per server, a 16 MiB download) prints a number for faultserver, the minimal
correct forwarder (`bench/baseline_proxy_rfc.py`, the target's reference) and the byte
relay, each with its CPU per request, so a reference that stops answering (wrk sees errors)
fails here and not in the next person's measurement. Needs nginx, wrk and curl; `slow`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROXY_BENCH = Path(__file__).resolve().parents[2] / "bench" / "proxy.py"
ROW = r"{label}:\s+(\d+) req/s\s+\(runs: [\d, ]+; CPU ([\d.]+) us"


@pytest.mark.slow
def test_proxy_bench_prints_each_server_and_ratio() -> None:
    missing = [tool for tool in ("nginx", "wrk", "curl") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    done = subprocess.run(
        [sys.executable, str(PROXY_BENCH), "--seconds", "1", "--pairs", "1", "--download-mb", "16",
         "--latency-count", "50"],
        capture_output=True, text=True, timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr}"
    for label in ("faultserver proxy", "minimal correct forwarder", r"byte relay \(no parsing\)"):
        found = re.search(ROW.format(label=label), out)
        assert found and int(found.group(1)) > 0 and float(found.group(2)) > 0, f"{label}:\n{out}"
    assert re.search(r"ratio faultserver/minimal:\s+[\d.]+\s+\(target >= 0\.8", out), out
    assert re.search(r"ratio minimal/relay:\s+[\d.]+\s+\(what parsing heads", out), out
    assert re.search(r"added: p50 -?[\d.]+ ms, p99 -?[\d.]+ ms", out), out
    assert re.search(r"through faultserver \d+ MiB/s .*ratio [\d.]+", out), out

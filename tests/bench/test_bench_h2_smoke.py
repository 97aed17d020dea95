"""The HTTP/2 figures of the benchmark suite (10, 11) run end to end and print a number each.

As test_bench_tls_smoke.py: no time and no target is asserted, only that `bench/run.py
--quick --only 10,11` prints a measured number in both rows. About 20 s (h2load runs and
2,000 held streams), hence `slow`. Without h2load (Debian's nghttp2-client), figure 10's row
says so and figure 11 still runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.bench_table import BENCH, NUMBER, table_rows


@pytest.mark.slow
def test_bench_quick_prints_a_number_for_every_h2_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "10,11"],
        capture_output=True, text=True, timeout=300,
    )
    rows = table_rows(done.stdout)
    assert rows, f"no table printed:\n{done.stdout}\n{done.stderr}"
    h2load_missing = shutil.which("h2load") is None
    for figure, value, _target, reference, result in rows:
        if h2load_missing and "h2load is not installed" in value:
            continue
        assert not value.startswith("error"), f"{figure}: {value}"
        assert NUMBER.search(value), f"{figure}: no number in {value!r}"
        assert "WARNING" not in reference, f"{figure}: {reference}"  # both servers answer alike
        assert result in ("ok", "MISSED", "-"), f"{figure}: {result!r}"
    assert sorted(row[0].split()[0] for row in rows) == ["10", "11"]

"""The `--workers` figures of the benchmark suite (13, 14, 15) run end to end and print numbers.

As test_bench_smoke.py: no time and no target is asserted, only that `bench/run.py --quick
--only 13,14,15` prints a measured number in each row, that figure 13 printed its
reference (`--workers 1`) and nginx's rate when nginx is installed, and that figure 15
counted no connect contradicting an acknowledged accept mode (that is a correctness
check, not a speed). About 40 s (wrk runs under three placements, 1,000 held connections,
200 control changes), hence `slow`. Without wrk, figures 13 and 14 say so and 15 still runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.support.bench_table import BENCH, NUMBER, table_rows


@pytest.mark.slow
def test_bench_quick_prints_a_number_for_every_workers_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "13,14,15"],
        capture_output=True, text=True, timeout=300,
    )
    rows = table_rows(done.stdout)
    assert rows, f"no table printed:\n{done.stdout}\n{done.stderr}"
    wrk_missing = shutil.which("wrk") is None
    for figure, value, _target, reference, result in rows:
        if wrk_missing and "wrk is not installed" in value:
            continue
        assert not value.startswith(("error", "n/a")), f"{figure}: {value}"
        assert NUMBER.search(value), f"{figure}: no number in {value!r}"
        assert result in ("ok", "MISSED"), f"{figure}: {result!r}"
        if figure.startswith("13 "):
            assert re.search(r"--workers 1 [\d,]+ req/s", reference), reference
            assert re.search(r"events reaching the parent: \d+%", value), value
            if shutil.which("nginx") or shutil.which("/usr/sbin/nginx"):
                assert re.search(r"nginx 2 workers [\d,]+ req/s", reference), reference
        if figure.startswith("15 "):
            assert value.endswith("connects contradicting the answer: 0"), value
    assert sorted(row[0].split()[0] for row in rows) == ["13", "14", "15"]

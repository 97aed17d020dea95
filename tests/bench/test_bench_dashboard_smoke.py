"""The dashboard figure of the benchmark suite (12) runs end to end and prints a number.

As test_bench_smoke.py for figures 1 to 6: no time and no target is asserted, only that
`bench/run.py --quick --only 12` prints a measured number in its row. Figure 12 is not in
`--only`'s default set (it needs Chromium), so it is asked for by name here. About 10 s of
wrk and a headless Chromium, hence `slow`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.bench_table import BENCH, NUMBER, table_rows


@pytest.mark.slow
def test_bench_quick_prints_a_number_for_the_dashboard_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "12"],
        capture_output=True, text=True, timeout=300,
    )
    rows = table_rows(done.stdout)
    assert len(rows) == 1, f"expected one row:\n{done.stdout}\n{done.stderr}"
    [(figure, value, _target, reference, result)] = rows
    assert figure.startswith("12 ")
    if shutil.which("wrk") is None and "wrk is not installed" in value:
        return
    if shutil.which("chromium") is None and "chromium is not installed" in value:
        return
    assert not value.startswith(("error", "n/a")), f"{figure}: {value}"
    assert NUMBER.search(value), f"{figure}: no number in {value!r}"
    assert "page closed" in reference and NUMBER.search(reference), reference
    assert result in ("ok", "MISSED"), f"{figure}: {result!r}"

"""The benchmark suite's quick mode runs end to end and every figure prints a number.

Benchmarks are not tests: nothing here asserts a time or a target (the machine is shared
and the figures are noisy). This only keeps `bench/run.py --quick` from rotting: every
row of its table must carry a measured number, not an error. It loads the machine for
about half a minute (wrk at full speed, a thousand held connections), hence `slow`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.bench_table import BENCH, NUMBER, table_rows

#: Every figure the suite reports, by the start of its row's first cell.
FIGURES = ("1 ", "2 ", "3 ", "4 ", "5 ", "6 ")


@pytest.mark.slow
def test_bench_quick_prints_a_number_for_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True, text=True, timeout=300,
    )
    rows = table_rows(done.stdout)
    assert rows, f"no table printed:\n{done.stdout}\n{done.stderr}"
    wrk_missing = shutil.which("wrk") is None
    for figure, value, _target, _reference, result in rows:
        if wrk_missing and "wrk is not installed" in value:
            continue  # figures 1 and 2 say so, and the rest still run
        assert not value.startswith("error"), f"{figure}: {value}"
        assert NUMBER.search(value), f"{figure}: no number in {value!r}"
        assert result in ("ok", "MISSED", "-"), f"{figure}: {result!r}"
    printed = {row[0][:2] for row in rows}
    assert printed == set(FIGURES), f"figures printed: {sorted(printed)}"

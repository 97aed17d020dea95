"""The TLS figures of the benchmark suite (7, 8, 9) run end to end and print a number each.

As test_bench_smoke.py for figures 1 to 6: no time and no target is asserted, only that
`bench/run.py --quick --only 7,8,9` prints a measured number in every row of its table. The
TLS figures are not in `--only`'s default set (test_bench_smoke.py lists exactly 1 to 6),
so they are asked for by name here. About 15 s of wrk and 500 held handshakes, hence `slow`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.bench_table import BENCH, NUMBER, table_rows

#: The TLS figures, by the start of their rows' first cell.
TLS_FIGURES = ("7 ", "8 ", "9 ")


@pytest.mark.slow
def test_bench_quick_prints_a_number_for_every_tls_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "7,8,9"],
        capture_output=True, text=True, timeout=300,
    )
    rows = table_rows(done.stdout)
    assert rows, f"no table printed:\n{done.stdout}\n{done.stderr}"
    wrk_missing = shutil.which("wrk") is None
    for figure, value, _target, reference, result in rows:
        if wrk_missing and "wrk is not installed" in value:
            continue  # figures 7 and 8 say so, and figure 9 still runs
        assert not value.startswith("error"), f"{figure}: {value}"
        assert NUMBER.search(value), f"{figure}: no number in {value!r}"
        assert "WARNING" not in reference, f"{figure}: {reference}"  # both servers answer alike
        assert result in ("ok", "MISSED", "-"), f"{figure}: {result!r}"
    assert {row[0][:2] for row in rows} == set(TLS_FIGURES)

"""Reading `bench/run.py`'s printed table, for the smoke tests in tests/bench."""

from __future__ import annotations

import re
from pathlib import Path

#: The benchmark suite's entry point.
BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"
#: A measured number in a cell (`0.91x`, `1,339`, `-3.5`).
NUMBER = re.compile(r"[-+]?\d[\d,]*(\.\d+)?")


def table_rows(stdout: str) -> list[list[str]]:
    """The table's data rows, as lists of cells (header and rule lines left out)."""
    rows = []
    for line in stdout.splitlines():
        if not line.startswith("| ") or line.startswith("| figure "):
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows

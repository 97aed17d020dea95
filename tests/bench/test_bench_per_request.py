"""`bench/per_request.py --parts` (bench/PROFILE.md's in-process table) runs and times every step.

No time is asserted (speed lives in the figures, not in tests): only that each of the seven
steps prints a positive number of microseconds, so the tool behind PROFILE.md keeps working
as the code it times changes (a renamed method fails here, not in the next profiling).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "per_request.py"
STEP = re.compile(r"^\s+(\d+\.\d{3})  (\S.*)$")


def test_per_request_parts_times_every_step() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--parts"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    steps = {m.group(2): float(m.group(1)) for line in done.stdout.splitlines() if (m := STEP.match(line))}
    assert [name.split(":")[0] for name in steps] == [
        "parse", "decide", "record", "render", "response event", "reference parse", "reference answer",
    ]
    assert all(us > 0 for us in steps.values()), steps

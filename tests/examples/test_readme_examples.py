"""The README's "Testing your client" section shows the example files verbatim.

The examples are the test_howto_*.py files next to this one, which run with the suite;
this test keeps the README from drifting away from them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = sorted(Path(__file__).resolve().parent.glob("test_howto_*.py"))
SECTION = "## Testing your client"


def test_readme_examples_are_the_files_that_run() -> None:
    assert [p.name for p in EXAMPLES] == [
        "test_howto_aiohttp.py",
        "test_howto_httpx.py",
        "test_howto_requests.py",
        "test_howto_running.py",
    ]
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    if SECTION not in text:
        pytest.skip(f"README.md has no {SECTION!r} section yet")
    section = text.split(SECTION, 1)[1]
    missing = [p.name for p in EXAMPLES if f"```python\n{p.read_text(encoding='utf-8')}```" not in section]
    assert missing == [], "README shows an example that is not the file that runs"

"""The README and docs/*.md show the example files verbatim, and show no Python that does not run.

The examples are the test_howto_*.py files next to this one, which run with the suite. Each
of them appears whole in the README or in a docs/ page (the client-by-client ones in
docs/clients.md), and every ```python block there is one of them, so no documented example
drifts away from code that runs.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted(Path(__file__).resolve().parent.glob("test_howto_*.py"))
CLIENTS = ROOT / "docs" / "clients.md"
#: Shown in docs/clients.md, as well as anywhere else.
CLIENT_EXAMPLES = (
    "test_howto_aiohttp.py",
    "test_howto_asyncio.py",
    "test_howto_httpx.py",
    "test_howto_requests.py",
    "test_howto_running.py",
)
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[tuple[str, str]]:
    """(page, text) of every ```python block in the README and docs/*.md."""
    return [
        (page.relative_to(ROOT).as_posix(), m.group(1))
        for page in PAGES
        for m in _PYTHON_BLOCK.finditer(page.read_text(encoding="utf-8"))
    ]


def test_readme_examples_are_the_files_that_run() -> None:
    assert [p.name for p in EXAMPLES] == [
        "test_howto_aiohttp.py",
        "test_howto_asyncio.py",
        "test_howto_httpx.py",
        "test_howto_proxy.py",
        "test_howto_quickstart.py",
        "test_howto_requests.py",
        "test_howto_running.py",
    ]
    shown = [text for _, text in python_blocks()]
    missing = [p.name for p in EXAMPLES if p.read_text(encoding="utf-8") not in shown]
    assert missing == [], "an example that runs is shown nowhere in the README or docs/"


def test_client_examples_are_in_docs_clients() -> None:
    text = CLIENTS.read_text(encoding="utf-8")
    for name in CLIENT_EXAMPLES:
        example = (Path(__file__).resolve().parent / name).read_text(encoding="utf-8")
        assert f"```python\n{example}```" in text, f"docs/clients.md does not show {name} as it is"


def test_every_python_block_is_an_example_that_runs() -> None:
    files = {p.read_text(encoding="utf-8") for p in EXAMPLES}
    strays = [f"{page}: {text.splitlines()[0]!r}" for page, text in python_blocks() if text not in files]
    assert strays == [], f"Python blocks that are not a tests/examples/test_howto_*.py file: {strays}"

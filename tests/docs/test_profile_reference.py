"""docs/profiles.md documents every key of the format, and every YAML example in the docs loads.

- Every property name in the JSON Schema (`faultserver schema`: the top level, nested
  objects and `$defs`) appears in docs/profiles.md as a code span, `` `key` ``.
- Every ```yaml block in docs/*.md and README.md is a whole profile that the loader accepts.
  A block whose first line is `# fragment` is part of a profile: it is not loaded, but each of
  its mapping keys must still be a key of the format (or an `x-` key, or a header name under
  `headers`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from faultserver import ProfileError, load_profile_text
from faultserver._profile.schema import profile_schema

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "profiles.md"
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FRAGMENT = "# fragment"
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.DOTALL | re.MULTILINE)
#: Mappings whose keys are data (header names), not keys of the format.
_DATA_MAPPINGS = {"headers"}


def schema_keys(node: Any) -> set[str]:
    """Every property name anywhere in the schema."""
    keys: set[str] = set()
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            keys.update(properties)
        for value in node.values():
            keys |= schema_keys(value)
    elif isinstance(node, list):
        for item in node:
            keys |= schema_keys(item)
    return keys


def yaml_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each ```yaml block in a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _YAML_BLOCK.finditer(text)]


def all_blocks() -> list[tuple[str, int, str]]:
    return [
        (path.relative_to(ROOT).as_posix(), line, text) for path in DOCS for line, text in yaml_blocks(path)
    ]


def mapping_keys(node: Any, parent: str = "") -> Iterator[str]:
    """The keys of every mapping in parsed YAML, except those under `headers`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if parent not in _DATA_MAPPINGS:
                yield str(key)
            yield from mapping_keys(value, str(key))
    elif isinstance(node, list):
        for item in node:
            yield from mapping_keys(item, parent)


KEYS = schema_keys(profile_schema())
BLOCKS = all_blocks()


def test_schema_has_keys_to_look_for() -> None:
    assert {"version", "listeners", "action", "idle_close", "lognormal", "max_subscribers"} <= KEYS


def test_every_schema_key_is_in_the_profile_reference() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    missing = sorted(key for key in KEYS if f"`{key}`" not in text)
    assert missing == [], f"docs/profiles.md does not document these keys of `faultserver schema`: {missing}"


def test_the_docs_have_yaml_examples() -> None:
    reference = [block for block in BLOCKS if block[0] == "docs/profiles.md"]
    assert len(reference) >= 20
    fragments = [block for block in BLOCKS if block[2].startswith(FRAGMENT)]
    assert len(fragments) <= 3, "keep fragments few: most examples should be whole profiles"


@pytest.mark.parametrize(("doc", "line", "text"), BLOCKS, ids=[f"{d}:{n}" for d, n, _ in BLOCKS])
def test_yaml_example_loads(doc: str, line: int, text: str) -> None:
    if text.startswith(FRAGMENT):
        keys = set(mapping_keys(yaml.safe_load(text)))
        unknown = sorted(key for key in keys if key not in KEYS and not key.startswith("x-"))
        assert unknown == [], f"{doc}:{line}: keys that are not the format's: {unknown}"
        return
    try:
        load_profile_text(text, source=f"{doc}:{line}")
    except ProfileError as exc:
        pytest.fail(f"the example at {doc}:{line} is not a valid profile:\n{exc}")

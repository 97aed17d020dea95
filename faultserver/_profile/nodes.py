"""Located values: the document as the checker walks it, each value with where it starts.

`compose.py` builds them from YAML text, `build.py` from YAML nodes or plain data. A value that
came from data has no position (line and column 0), and its path alone says where it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .describe import MAX_SHOWN, describe_value, short_text

__all__ = [
    "BadNode",
    "MapNode",
    "Node",
    "Scalar",
    "ScalarNode",
    "SeqNode",
    "describe",
    "is_null",
    "key_path",
    "non_null",
    "plain",
]

#: What a scalar holds once YAML has resolved it.
Scalar = bool | int | float | str | None

_PLAIN_PATH_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(slots=True)
class Node:
    """A value and the 1-based line and column where it starts (0:0 for data)."""

    line: int
    column: int


@dataclass(slots=True)
class MapNode(Node):
    """A mapping: key -> (key node, value node), in document order."""

    entries: dict[str, tuple[Node, Node]]


@dataclass(slots=True)
class SeqNode(Node):
    items: list[Node]


@dataclass(slots=True)
class ScalarNode(Node):
    """A scalar; `text` keeps it as written, so a header value `1.10` stays "1.10"."""

    value: Scalar
    text: str | None = None


@dataclass(slots=True)
class BadNode(Node):
    """A value already reported (an unsupported tag, a number too large): the checker says
    nothing more about it, but knows that what contains it is not valid."""


def is_null(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.value is None


def non_null(fields: Mapping[str, Node], key: str) -> Node | None:
    """The value of `key` when it is given and not null."""
    node = fields.get(key)
    return None if node is None or is_null(node) else node


def describe(node: Node) -> str:
    """The value as a message shows it: `an empty list`, `a mapping`, `'text'`, `3`."""
    if isinstance(node, MapNode):
        return "a mapping" if node.entries else "an empty mapping"
    if isinstance(node, SeqNode):
        return "a list" if node.items else "an empty list"
    if isinstance(node, ScalarNode):
        return describe_value(node.value)
    return "an invalid value"


def key_path(path: str, key: str) -> str:
    """`listeners[0].name`, or `headers['a b']` for a key that is not a plain word."""
    plain_key = _PLAIN_PATH_KEY.fullmatch(key) is not None and len(key) <= MAX_SHOWN
    shown = key if plain_key else repr(short_text(key))
    if not path:
        return shown
    return f"{path}.{shown}" if plain_key else f"{path}[{shown}]"


def plain(node: Node) -> object:
    """The value as plain JSON-like data (for `Profile.raw`)."""
    if isinstance(node, MapNode):
        return {key: plain(value) for key, (_, value) in node.entries.items()}
    if isinstance(node, SeqNode):
        return [plain(item) for item in node.items]
    if isinstance(node, ScalarNode):
        return node.value
    return None

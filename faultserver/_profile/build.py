"""YAML nodes, or plain data, to located values (`nodes.py`), with the checks YAML skips.

This is where aliases are expanded, so the number of values built is capped (`MAX_VALUES`):
a "billion laughs" document stops after that many, at once. Duplicate keys, non-string keys,
unsupported tags and numbers too long to convert cheaply are found here; each is a problem,
and the value becomes a `BadNode` that the checker does not report again.
"""

from __future__ import annotations

import re
from typing import Protocol

import yaml
from yaml.nodes import MappingNode, SequenceNode
from yaml.nodes import Node as YamlNode
from yaml.nodes import ScalarNode as YamlScalarNode

from .._errors import Problem
from .describe import describe_value, short_text
from .nodes import BadNode, MapNode, Node, Scalar, ScalarNode, SeqNode, describe, key_path
from .units import MAX_NUMBER_CHARS

__all__ = ["MAX_DEPTH", "MAX_VALUES", "Builder", "Mark", "TooDeep", "TooMany", "too_many_message"]

#: Values built from the document, each use of an alias counted again (billion laughs).
MAX_VALUES = 100_000
#: Nesting of mappings and lists; the format itself needs about ten.
MAX_DEPTH = 100
#: Python converts at most 4300 decimal digits (`sys.get_int_max_str_digits()`), in time that
#: grows with their square: a longer number is refused before conversion, as "too large".
MAX_DECIMAL_DIGITS = 4300
#: A number in base 60 (`1:0:0`, one multiplication of a big int per digit), 16, 8 or 2 is
#: refused beyond this length: no value of the format needs more.
MAX_OTHER_NUMBER_CHARS = MAX_NUMBER_CHARS
#: An int from data that str() could not print (about 4,200 digits) is refused the same way.
_MAX_INT_BITS = 14_000
_NOT_DECIMAL = re.compile(r"[-+]?(0[xXoObB]|[0-9_]*:)")

_TAG = "tag:yaml.org,2002:"
_STR_TAGS = {_TAG + "str", _TAG + "timestamp", _TAG + "value", _TAG + "merge"}
_NUMBER_TAGS = ("int", "float")
_CONSTRUCTED_TAGS = ("null", "bool", *_NUMBER_TAGS)
_NO_POSITION = (0, 0)

MapEntries = dict[str, tuple[Node, Node]]


class Mark(Protocol):
    """Where YAML found something, 0-based (PyYAML's and libyaml's marks both have these)."""

    line: int
    column: int


class TooDeep(Exception):
    """Nesting deeper than `MAX_DEPTH`; `mark` is where (None for data)."""

    def __init__(self, mark: Mark | None) -> None:
        self.mark = mark


class TooMany(Exception):
    """More than `MAX_VALUES` values; raised at the one that went over."""

    def __init__(self, line: int, column: int) -> None:
        self.line = line
        self.column = column


def too_many_message() -> str:
    return f"profile has more than {MAX_VALUES} values (each use of an alias counts again)"


class Builder:
    """Turns YAML nodes, or plain data, into located values; collects `problems`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.count = 0
        self._active: set[int] = set()
        self._constructor = yaml.SafeLoader("")  # only its scalar constructors are used

    def problem(self, line: int, column: int, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, line, column, path, message))

    def _tick(self, line: int, column: int) -> None:
        self.count += 1
        if self.count > MAX_VALUES:
            raise TooMany(line, column)

    # -- from YAML nodes

    def from_yaml(self, node: YamlNode, path: str, depth: int) -> Node:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self._tick(line, column)
        if depth > MAX_DEPTH:
            raise TooDeep(node.start_mark)
        if id(node) in self._active:
            self.problem(line, column, path, "an alias refers to a value that contains it")
            return BadNode(line, column)
        if isinstance(node, YamlScalarNode):
            return self._scalar(node, path, line, column)
        kind = "seq" if isinstance(node, SequenceNode) else "map"
        if node.tag != _TAG + kind:
            shown = f"!!{node.tag[len(_TAG) :]}" if node.tag.startswith(_TAG) else node.tag
            self.problem(line, column, path, f"unsupported tag {short_text(shown)!r}")
            return BadNode(line, column)
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = [
                    self.from_yaml(child, f"{path}[{i}]", depth + 1)
                    for i, child in enumerate(node.value)
                ]
                return SeqNode(line, column, items)
            assert isinstance(node, MappingNode)
            return MapNode(line, column, self._mapping(node, path, depth))
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: YamlScalarNode, path: str, line: int, column: int) -> Node:
        tag: str = node.tag
        text: str = node.value
        if tag in _STR_TAGS:
            return ScalarNode(line, column, text, text)
        short = tag[len(_TAG) :] if tag.startswith(_TAG) else None
        if short not in _CONSTRUCTED_TAGS:
            shown = f"!!{short}" if short else tag
            self.problem(line, column, path, f"unsupported tag {short_text(shown)!r}")
            return BadNode(line, column)
        if short in _NUMBER_TAGS and _too_long_to_convert(text):
            self.problem(line, column, path, f"number too large, got {short_text(text)}")
            return BadNode(line, column)
        construct = getattr(self._constructor, f"construct_yaml_{short}")
        try:
            value: Scalar = construct(node)
        except (ArithmeticError, LookupError, ValueError):
            message = f"expected a value of !!{short}, got {describe_value(text)}"
            self.problem(line, column, path, message)
            return BadNode(line, column)
        return ScalarNode(line, column, value, text)

    def _mapping(self, node: MappingNode, path: str, depth: int) -> MapEntries:
        explicit: MapEntries = {}
        merged: MapEntries = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, YamlScalarNode) and key_node.tag == _TAG + "merge":
                self._merge(value_node, path, depth, merged)
                continue
            key = self.from_yaml(key_node, path, depth + 1)
            if not isinstance(key, ScalarNode) or not isinstance(key.value, str):
                if not isinstance(key, BadNode):
                    message = f"expected a string key, got {describe(key)}"
                    self.problem(key.line, key.column, path, message)
                continue
            child_path = key_path(path, key.value)
            if key.value in explicit:
                message = f"duplicate key {describe_value(key.value)}"
                self.problem(key.line, key.column, child_path, message)
            explicit[key.value] = (key, self.from_yaml(value_node, child_path, depth + 1))
        # as YAML says: explicit keys win over merged ones
        return {**merged, **explicit}

    def _merge(self, value_node: YamlNode, path: str, depth: int, into: MapEntries) -> None:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        # as YAML says: with a list of mappings, the earlier ones win
        for source in reversed(sources):
            built = self.from_yaml(source, path, depth + 1)
            if isinstance(built, MapNode):
                into.update(built.entries)
            elif not isinstance(built, BadNode):
                self.problem(
                    built.line,
                    built.column,
                    path,
                    "expected a mapping or a list of mappings to merge (<<), "
                    f"got {describe(built)}",
                )

    # -- from plain data

    def from_data(self, data: object) -> Node | None:
        """The located value of `data`, or None when it is too large or too deep at all."""
        try:
            return self._data(data, "", 0)
        except TooMany:
            message = too_many_message()
        except TooDeep:
            message = f"nesting deeper than {MAX_DEPTH} levels"
        self.problem(*_NO_POSITION, "", message)
        return None

    def _data(self, data: object, path: str, depth: int) -> Node:
        line, column = _NO_POSITION
        self._tick(line, column)
        if depth > MAX_DEPTH:
            raise TooDeep(None)
        if isinstance(data, dict):
            entries: MapEntries = {}
            for key, value in data.items():
                if not isinstance(key, str):
                    message = f"expected a string key, got {describe_value(key)}"
                    self.problem(line, column, path, message)
                    continue
                key_node = ScalarNode(line, column, key, key)
                entries[key] = (key_node, self._data(value, key_path(path, key), depth + 1))
            return MapNode(line, column, entries)
        if isinstance(data, (list, tuple)):
            items = [self._data(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(data)]
            return SeqNode(line, column, items)
        if isinstance(data, int) and not isinstance(data, bool):
            if data.bit_length() > _MAX_INT_BITS:
                self.problem(line, column, path, f"number too large, got {describe_value(data)}")
                return BadNode(line, column)
            return ScalarNode(line, column, data)
        if data is None or isinstance(data, (str, float, bool)):
            return ScalarNode(line, column, data)
        self.problem(line, column, path, f"unsupported value of type {type(data).__name__}")
        return BadNode(line, column)


def _too_long_to_convert(text: str) -> bool:
    if len(text) <= MAX_OTHER_NUMBER_CHARS:
        return False
    return len(text) > MAX_DECIMAL_DIGITS or _NOT_DECIMAL.match(text) is not None

"""YAML (or already parsed data) in, a frozen `Profile` out, or one `ProfileError`.

Theory of operation
-------------------

Loading runs in three steps, none of which touches a socket:

1. **Read.** At most `MAX_INPUT_BYTES` of UTF-8 text; anything larger, unreadable or not
   UTF-8 is a problem, never an `OSError` or `UnicodeDecodeError`.
2. **Compose.** PyYAML's safe loader turns the text into a node graph that remembers where
   each value starts. Only the composer runs (no object construction by PyYAML), so no tag
   can build a Python object. Our subclass caps the nesting depth while composing (the
   composer recurses, so a deep document would otherwise end in `RecursionError`).
3. **Build and check.** The node graph becomes a tree of `_Node` (a plain value plus its
   line and column). This is where aliases are expanded, so the number of values built is
   capped (`MAX_VALUES`): a "billion laughs" document stops after that many, at once.
   Duplicate keys, non-string keys and unsupported tags are found here. Then the checker
   walks the tree along the format of profile-v1.md, building model objects and collecting
   every problem instead of stopping at the first.

A problem is located at the offending value (or at the key, for an unknown or duplicate
key), with 1-based line and column. Data that did not come from text (`load_profile_data`,
`load_rules`: JSON from the admin API, a dict from a test) has no positions: its problems
are at line 0, column 0, and the path alone says where.

Rules of the format that are easy to miss:

- Keys beginning with `x-` are ignored in the format's own mappings (anchors, notes), but
  not in header mappings, where `x-tenant` is a header name like any other.
- `True` is an `int` in Python; wherever a number is expected, a boolean is refused.
- A merge key (`<<: *defaults`) merges as YAML says: explicit keys win, without a
  duplicate-key problem.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# `_actions` imports the model from this package: look its tables up at call time
from .. import _actions
from .._errors import Problem, ProfileError
from .model import (
    AcceptMode,
    ActionName,
    At,
    Body,
    Close,
    Control,
    Dribble,
    Framing,
    Garbage,
    Hang,
    Keepalive,
    Limits,
    Listener,
    Match,
    Partial,
    Phase,
    Profile,
    Reset,
    Respond,
    Response,
    Rule,
    Schedule,
)
from .units import (
    Fixed,
    LogNormal,
    Normal,
    Uniform,
    UnitError,
    parse_comparison,
    parse_duration,
    parse_rate,
    parse_size,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_INPUT_BYTES",
    "MAX_VALUES",
    "SUPPORTED_VERSIONS",
    "load_profile_data",
    "load_profile_file",
    "load_profile_text",
    "load_rules",
]

#: Profile versions this faultserver reads.
SUPPORTED_VERSIONS = (1,)
#: A profile is a hand-written file: anything larger is refused before parsing.
MAX_INPUT_BYTES = 1024 * 1024
#: Values built from the document, each use of an alias counted again (billion laughs).
MAX_VALUES = 100_000
#: Nesting of mappings and lists; the format itself needs about ten.
MAX_DEPTH = 100

#: The rule keys every action shares; each action adds its own (`_actions.ACTIONS`).
RULE_KEYS = ("name", "at", "match", "probability", "times", "delay", "action")
MATCH_KEYS = ("method", "path", "headers", "request_on_connection")
DISTRIBUTIONS = ("uniform", "normal", "lognormal")
THEN_ACTIONS = ("close", "reset", "hang")

_NAME = re.compile(r"^[a-z0-9_-]+$")
#: RFC 9110 token: header names and methods.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PLAIN_PATH_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_BAD_HEADER_VALUE = re.compile(r"[\r\n\x00]")

_ACTION_CLASSES: dict[str, type] = {
    "respond": Respond,
    "close": Close,
    "reset": Reset,
    "hang": Hang,
    "partial": Partial,
    "dribble": Dribble,
    "garbage": Garbage,
}
#: YAML key -> model field, where they differ (parsed numbers carry their unit).
_ACTION_FIELDS = {
    "drain": "drain_s",
    "for": "for_s",
    "chunk": "chunk_bytes",
    "rate": "rate_bytes_per_s",
}
_NO_POSITION = (0, 0)


# --- public API -------------------------------------------------------------------------


def load_profile_file(path: str) -> Profile:
    """Read and check the profile at `path`; problems are reported against `path` as given."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ProfileError([Problem(path, 1, 1, "", f"cannot read file: {reason}")]) from None
    if len(data) > MAX_INPUT_BYTES:
        raise ProfileError([Problem(path, 1, 1, "", _too_large_message())])
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start : exc.start + 1].hex()
        message = f"expected UTF-8 text, got byte 0x{byte} ({exc.reason})"
        raise ProfileError([Problem(path, line, column, "", message)]) from None
    return load_profile_text(text, source=path)


def load_profile_text(text: str, source: str = "<string>") -> Profile:
    """Check a profile given as YAML (or JSON) text; `source` names it in problems."""
    root, problems = _compose(text, source)
    return _finish(root, problems, source)


def load_profile_data(data: object, source: str = "<data>") -> Profile:
    """Check a profile already parsed into dicts and lists (from JSON, or written in Python).

    There are no line numbers to give: problems are at 0:0 and their path says where.
    """
    builder = _Builder(source)
    root = builder.from_data(data)
    return _finish(root, builder.problems, source)


def load_rules(data: object, listener_name: str, source: str = "<api>") -> tuple[Rule, ...]:
    """Check a bare list of rules for the listener `listener_name` (admin API, fixture).

    Problems read `SOURCE:0:0: rules[1].action: ...`, the path as in a request body
    `{"rules": [...]}`.
    """
    del listener_name  # rules do not depend on their listener; kept for the callers' sake
    builder = _Builder(source)
    root = builder.from_data(data)
    checker = _Checker(source, builder.problems)
    rules = checker.rules(root, "rules") if root is not None else None
    checker.raise_if_any()
    assert isinstance(rules, tuple)
    return rules


def _finish(root: _Node | None, problems: list[Problem], source: str) -> Profile:
    checker = _Checker(source, problems)
    profile = checker.profile(root) if root is not None else None
    checker.raise_if_any()
    assert profile is not None
    return profile


# --- step 2 and 3: text to located values ------------------------------------------------


class _Node:
    """A value with the position where it starts (1-based; 0:0 when it has none).

    `kind` is "map" (value: dict key -> (key node, value node)), "seq" (value: list of
    nodes), "scalar" (value: str, int, float, bool or None; `text` keeps the scalar as
    written, so a header value `1.10` stays "1.10") or "invalid" (a value already reported,
    such as an unsupported tag: the checker says nothing more about it).
    """

    __slots__ = ("kind", "value", "line", "column", "text")

    def __init__(
        self, kind: str, value: Any, line: int, column: int, text: str | None = None
    ) -> None:
        self.kind = kind
        self.value = value
        self.line = line
        self.column = column
        self.text = text

    def plain(self) -> Any:
        """The value as plain JSON-like data (for `Profile.raw`)."""
        if self.kind == "map":
            return {k: v.plain() for k, (_, v) in self.value.items()}
        if self.kind == "seq":
            return [item.plain() for item in self.value]
        return self.value


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


#: libyaml's event parser is about twenty times faster than PyYAML's own, and gives the
#: same events and marks; both are iterative, so neither recurses on deep nesting.
_EventLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose_events(loader: Any) -> Node | None:
    """Compose the single document of `loader`'s events into YAML nodes, without recursion.

    This is PyYAML's `Composer` (same tags, anchors and errors) turned into a loop with a
    stack, so that nesting deeper than `MAX_DEPTH` is a problem and not a `RecursionError`.
    """
    loader.get_event()  # StreamStartEvent
    if loader.check_event(StreamEndEvent):
        return None
    loader.get_event()  # DocumentStartEvent
    anchors: dict[str, Node] = {}
    #: open collections, each with the key waiting for its value (mappings only)
    stack: list[list[Any]] = []
    root: Node | None = None
    while root is None:
        event: Any = loader.get_event()
        # libyaml's marks are not `yaml.error.Mark`, but have the same fields
        start: Any = event.start_mark
        end: Any = event.end_mark
        node: Node
        if isinstance(event, AliasEvent):
            if event.anchor not in anchors:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", start)
            node = anchors[event.anchor]
        elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            node = stack.pop()[0]
            node.end_mark = end
        else:
            anchor = event.anchor
            if anchor is not None and anchor in anchors:
                raise ComposerError(
                    f"found duplicate anchor {anchor!r}; first occurrence",
                    anchors[anchor].start_mark,
                    "second occurrence",
                    start,
                )
            tag = event.tag
            if isinstance(event, ScalarEvent):
                if tag is None or tag == "!":
                    tag = loader.resolve(ScalarNode, event.value, event.implicit)
                node = ScalarNode(tag, event.value, start, end, style=event.style)
            else:
                kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
                if tag is None or tag == "!":
                    tag = loader.resolve(kind, None, event.implicit)
                node = kind(tag, [], start, None, flow_style=event.flow_style)
            if anchor is not None:
                anchors[anchor] = node
            if not isinstance(event, ScalarEvent):
                if len(stack) >= MAX_DEPTH:
                    raise _TooDeep(event.start_mark)
                stack.append([node, None])
                continue
        if not stack:
            root = node
        elif isinstance(stack[-1][0], SequenceNode):
            stack[-1][0].value.append(node)
        elif stack[-1][1] is None:
            stack[-1][1] = node
        else:
            stack[-1][0].value.append((stack[-1][1], node))
            stack[-1][1] = None
    loader.get_event()  # DocumentEndEvent
    if not loader.check_event(StreamEndEvent):
        event = loader.get_event()
        raise ComposerError(
            "expected a single document in the stream",
            root.start_mark,
            "but found another document",
            event.start_mark,
        )
    return root


def _compose(text: str, source: str) -> tuple[_Node | None, list[Problem]]:
    if len(text) > MAX_INPUT_BYTES:
        return None, [Problem(source, 1, 1, "", _too_large_message())]
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate, from a str built in Python
        line, column = _position(text, exc.start)
        message = f"invalid YAML: character U+{ord(text[exc.start]):04X} is not allowed"
        return None, [Problem(source, line, column, "", message)]
    if size > MAX_INPUT_BYTES:
        return None, [Problem(source, 1, 1, "", _too_large_message())]
    loader = None
    try:
        loader = _EventLoader(text)
        node = _compose_events(loader)
    except _TooDeep as exc:
        return None, [_problem_at_mark(source, exc.mark, f"nesting deeper than {MAX_DEPTH} levels")]
    except yaml.MarkedYAMLError as exc:
        parts = [p for p in (exc.context, exc.problem) if p]
        message = "invalid YAML: " + ", ".join(parts)
        mark = exc.problem_mark or exc.context_mark
        return None, [_problem_at_mark(source, mark, message)]
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        if isinstance(exc.character, int):
            what = f"character U+{exc.character:04X}"
        else:
            what = f"byte {exc.character!r}"
        return None, [Problem(source, line, column, "", f"invalid YAML: {what} is not allowed")]
    except yaml.YAMLError as exc:
        return None, [Problem(source, 1, 1, "", f"invalid YAML: {_one_line(str(exc))}")]
    finally:
        if loader is not None:
            loader.dispose()
    builder = _Builder(source)
    if node is None:
        return _Node("scalar", None, 1, 1, ""), builder.problems
    try:
        root = builder.from_yaml(node, "", 0)
    except _TooMany as exc:
        return None, [Problem(source, exc.line, exc.column, "", _too_many_message())]
    except _TooDeep as exc:
        return None, [
            _problem_at_mark(
                source, exc.mark, f"nesting deeper than {MAX_DEPTH} levels (with aliases expanded)"
            )
        ]
    return root, builder.problems


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _problem_at_mark(source: str, mark: Any, message: str) -> Problem:
    if mark is None:
        return Problem(source, 1, 1, "", message)
    return Problem(source, mark.line + 1, mark.column + 1, "", message)


def _too_large_message() -> str:
    return f"profile is larger than the limit of {MAX_INPUT_BYTES // 1024 // 1024}MiB"


def _too_many_message() -> str:
    return f"profile has more than {MAX_VALUES} values (each use of an alias counts again)"


class _TooMany(Exception):
    def __init__(self, line: int, column: int) -> None:
        self.line = line
        self.column = column


_TAG = "tag:yaml.org,2002:"
#: what an int or float too long for Python's int() looks like (its digit limit is 4300)
_LONG_NUMBER = re.compile(r"^[-+]?[0-9_]{100,}(\.[0-9_]*)?([eE][-+]?[0-9]+)?$")
_STR_TAGS = {_TAG + "str", _TAG + "timestamp", _TAG + "value", _TAG + "merge"}


class _Builder:
    """Turns YAML nodes, or plain data, into `_Node` trees, with the checks YAML skips."""

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
            raise _TooMany(line, column)

    # -- from YAML nodes

    def from_yaml(self, node: Node, path: str, depth: int) -> _Node:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self._tick(line, column)
        if depth > MAX_DEPTH:
            raise _TooDeep(node.start_mark)
        if id(node) in self._active:
            self.problem(line, column, path, "an alias refers to a value that contains it")
            return _Node("invalid", None, line, column)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path, line, column)
        if not node.tag.startswith(_TAG):
            self.problem(line, column, path, f"unsupported tag {node.tag!r}")
            return _Node("invalid", None, line, column)
        self._active.add(id(node))
        try:
            expected_tag = _TAG + ("seq" if isinstance(node, SequenceNode) else "map")
            if node.tag != expected_tag:
                self.problem(line, column, path, f"unsupported tag '!!{node.tag[len(_TAG) :]}'")
                return _Node("invalid", None, line, column)
            if isinstance(node, SequenceNode):
                items = [
                    self.from_yaml(child, f"{path}[{i}]", depth + 1)
                    for i, child in enumerate(node.value)
                ]
                return _Node("seq", items, line, column)
            assert isinstance(node, MappingNode)
            return self._mapping(node, path, depth, line, column)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: str, line: int, column: int) -> _Node:
        tag = node.tag
        text = node.value
        if tag in _STR_TAGS:
            return _Node("scalar", text, line, column, text)
        short = tag[len(_TAG) :] if tag.startswith(_TAG) else None
        if short in ("null", "bool", "int", "float"):
            construct = getattr(self._constructor, f"construct_yaml_{short}")
            try:
                value = construct(node)
            except (ArithmeticError, LookupError, ValueError):
                if _LONG_NUMBER.match(text):
                    message = f"number too large, got {_short_text(text)}"
                else:
                    message = f"expected a value of !!{short}, got {_describe_value(text)}"
                self.problem(line, column, path, message)
                return _Node("invalid", None, line, column, text)
            return _Node("scalar", value, line, column, text)
        shown = f"!!{short}" if short else tag
        self.problem(line, column, path, f"unsupported tag {shown!r}")
        return _Node("invalid", None, line, column, text)

    def _mapping(self, node: MappingNode, path: str, depth: int, line: int, column: int) -> _Node:
        explicit: dict[str, tuple[_Node, _Node]] = {}
        merged: dict[str, tuple[_Node, _Node]] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _TAG + "merge":
                self._merge(value_node, path, depth, merged)
                continue
            key = self.from_yaml(key_node, path, depth + 1)
            if key.kind != "scalar" or not isinstance(key.value, str):
                self.problem(
                    key.line, key.column, path, f"expected a string key, got {_describe(key)}"
                )
                continue
            child_path = _key_path(path, key.value)
            if key.value in explicit:
                self.problem(key.line, key.column, child_path, f"duplicate key {key.value!r}")
            value = self.from_yaml(value_node, child_path, depth + 1)
            explicit[key.value] = (key, value)
        # as YAML says: explicit keys win over merged ones
        return _Node("map", {**merged, **explicit}, line, column)

    def _merge(
        self, value_node: Node, path: str, depth: int, into: dict[str, tuple[_Node, _Node]]
    ) -> None:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        # as YAML says: with a list of mappings, the earlier ones win
        for source in reversed(sources):
            built = self.from_yaml(source, path, depth + 1)
            if built.kind != "map":
                self.problem(
                    built.line,
                    built.column,
                    path,
                    "expected a mapping or a list of mappings to merge (<<), "
                    f"got {_describe(built)}",
                )
                continue
            into.update(built.value)

    # -- from plain data

    def from_data(self, data: object) -> _Node | None:
        try:
            return self._data(data, "", 0)
        except _TooMany:
            message = _too_many_message()
        except _DepthInData:
            message = f"nesting deeper than {MAX_DEPTH} levels"
        self.problems.append(Problem(self.source, *_NO_POSITION, "", message))
        return None

    def _data(self, data: object, path: str, depth: int) -> _Node:
        line, column = _NO_POSITION
        self._tick(line, column)
        if depth > MAX_DEPTH:
            raise _DepthInData()
        if isinstance(data, dict):
            entries: dict[str, tuple[_Node, _Node]] = {}
            for key, value in data.items():
                if not isinstance(key, str):
                    key_node = _Node("scalar", key, line, column)
                    self.problem(
                        line, column, path, f"expected a string key, got {_describe(key_node)}"
                    )
                    continue
                key_node = _Node("scalar", key, line, column, key)
                entries[key] = (key_node, self._data(value, _key_path(path, key), depth + 1))
            return _Node("map", entries, line, column)
        if isinstance(data, (list, tuple)):
            items = [self._data(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(data)]
            return _Node("seq", items, line, column)
        if data is None or isinstance(data, (str, int, float, bool)):
            return _Node("scalar", data, line, column)
        self.problem(line, column, path, f"unsupported value of type {type(data).__name__}")
        return _Node("invalid", None, line, column)


class _DepthInData(Exception):
    pass


# --- describing values in messages ---------------------------------------------------------

_MAX_SHOWN = 40


def _short_text(text: str) -> str:
    if len(text) <= _MAX_SHOWN:
        return text
    return text[: _MAX_SHOWN - 12] + "..." + text[-6:]


def _describe_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return _short_text(str(value)) if value.bit_length() < 10000 else "a huge number"
    if isinstance(value, str):
        if len(value) > _MAX_SHOWN:
            return repr(value[: _MAX_SHOWN - 12]) + f"... ({len(value)} characters)"
        return repr(value)
    return type(value).__name__


def _describe(node: _Node) -> str:
    if node.kind == "map":
        return "an empty mapping" if not node.value else "a mapping"
    if node.kind == "seq":
        return "an empty list" if not node.value else "a list"
    return _describe_value(node.value)


def _key_path(path: str, key: str) -> str:
    shown = key if _PLAIN_PATH_KEY.match(key) else repr(key)
    if not path:
        return shown
    return f"{path}.{shown}" if _PLAIN_PATH_KEY.match(key) else f"{path}[{shown}]"


def _did_you_mean(word: str, options: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- step 3: the format ------------------------------------------------------------------

_Bad = object()  # a value that had a problem (already reported)


class _Checker:
    """Walks a `_Node` tree along profile-v1.md, building model objects and problems."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        #: (host, port, owner's path, bind node) of each valid bind, for `check_binds`
        self.binds: list[tuple[str, int, str, _Node]] = []

    # -- bookkeeping

    def problem(self, node: _Node, path: str, message: str) -> None:
        if node.kind == "invalid":
            return  # the builder has reported it already
        self.problems.append(Problem(self.source, node.line, node.column, path, message))

    def raise_if_any(self) -> None:
        if self.problems:
            # stable: problems at one position stay in the order they were found
            ordered = sorted(self.problems, key=lambda p: (p.line, p.column))
            raise ProfileError(ordered)

    def fields(
        self,
        node: _Node,
        path: str,
        allowed: Sequence[str],
        *,
        required: Sequence[str] = (),
        what: str = "a mapping",
    ) -> dict[str, _Node] | None:
        """The known keys of a mapping; unknown keys (not `x-`) are problems."""
        if node.kind != "map":
            self.problem(node, path, f"expected {what}, got {_describe(node)}")
            return None
        out: dict[str, _Node] = {}
        for key, (key_node, value_node) in node.value.items():
            if key.startswith("x-"):
                continue
            if key in allowed:
                out[key] = value_node
            else:
                self.problem(key_node, _key_path(path, key), _unknown_key(key, allowed))
        for key in required:
            if key not in out:
                self.problem(node, path, f"missing required key {key!r}")
        return out

    def keys_of(self, node: _Node) -> dict[str, _Node]:
        """Key nodes of a mapping node (for locating problems at keys)."""
        return {k: key_node for k, (key_node, _) in node.value.items()}

    # -- scalars

    def integer(
        self, node: _Node, path: str, low: int | None = None, high: int | None = None
    ) -> Any:
        value = node.value
        ok = node.kind == "scalar" and _is_int(value)
        if ok and ((low is not None and value < low) or (high is not None and value > high)):
            ok = False
        if not ok:
            if low is not None and high is not None:
                expected = f"an integer from {low} to {high}"
            elif low is not None:
                expected = f"an integer of {low} or more"
            else:
                expected = "an integer"
            self.problem(node, path, f"expected {expected}, got {_describe(node)}")
            return _Bad
        return value

    def optional_integer(self, node: _Node | None, path: str, low: int, default: Any) -> Any:
        if node is None or (node.kind == "scalar" and node.value is None):
            return default
        return self.integer(node, path, low)

    def string(self, node: _Node, path: str, what: str = "a string") -> Any:
        if node.kind != "scalar" or not isinstance(node.value, str):
            self.problem(node, path, f"expected {what}, got {_describe(node)}")
            return _Bad
        return node.value

    def boolean(self, node: _Node, path: str) -> Any:
        if node.kind != "scalar" or not isinstance(node.value, bool):
            self.problem(node, path, f"expected true or false, got {_describe(node)}")
            return _Bad
        return node.value

    def choice(
        self, node: _Node, path: str, options: Sequence[str], what: str, article: str = ""
    ) -> Any:
        """One of a closed set of strings; `what` names it in messages ("accept mode")."""
        value = node.value
        if node.kind == "scalar" and isinstance(value, str) and value in options:
            return value
        listed = ", ".join(options)
        if node.kind == "scalar" and isinstance(value, str):
            guess = _did_you_mean(value, options)
            hint = f"did you mean {guess!r}? " if guess else ""
            self.problem(
                node, path, f"unknown {what} {_describe(node)} ({hint}expected one of: {listed})"
            )
        else:
            article = article or ("an" if what[0] in "aeiou" else "a")
            self.problem(
                node, path, f"expected {article} {what} (one of: {listed}), got {_describe(node)}"
            )
        return _Bad

    def unit(self, node: _Node, path: str, parse: Callable[[object], Any]) -> Any:
        """Run a units.py parser; its `UnitError` message becomes the problem."""
        value: Any = node.value if node.kind == "scalar" else _placeholder(node)
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(node, path, f"expected a finite number, got {_describe(node)}")
            return _Bad
        if _is_int(value) and abs(value) > 10**18:
            self.problem(node, path, f"number too large, got {_describe(node)}")
            return _Bad
        try:
            return parse(value)
        except UnitError as exc:
            message = str(exc)
            if isinstance(value, str) and len(value) > _MAX_SHOWN:
                message = message.replace(repr(value), _describe_value(value))
            self.problem(node, path, message)
        except (ValueError, OverflowError):
            self.problem(node, path, f"number too large, got {_describe(node)}")
        return _Bad

    def duration(self, node: _Node, path: str, *, positive: bool = False) -> Any:
        """A plain duration in seconds (no distribution)."""
        if node.kind == "map":
            self.problem(
                node, path, f"expected a plain duration such as '2s' here, not {_describe(node)}"
            )
            return _Bad
        seconds = self.unit(node, path, parse_duration)
        if seconds is not _Bad and positive and seconds <= 0:
            self.problem(node, path, f"expected a duration above 0, got {_describe(node)}")
            return _Bad
        return seconds

    def size(self, node: _Node, path: str, *, positive: bool = False) -> Any:
        size = self.unit(node, path, parse_size)
        if size is not _Bad and positive and size <= 0:
            self.problem(node, path, f"expected a size above 0, got {_describe(node)}")
            return _Bad
        return size

    def timing(self, node: _Node, path: str) -> Any:
        """A duration or a distribution mapping, each part checked where it stands."""
        if node.kind != "map":
            seconds = self.duration(node, path)
            return _Bad if seconds is _Bad else Fixed(seconds)
        entries = {k: v for k, v in node.value.items() if not k.startswith("x-")}
        if len(entries) != 1:
            if not entries:
                self.problem(
                    node,
                    path,
                    "expected a duration or a distribution ({uniform: [LOW, HIGH]}, "
                    "{normal: {mean, stddev}} or {lognormal: {median, sigma}}), "
                    "got an empty mapping",
                )
            else:
                self.problem(
                    node,
                    path,
                    f"expected one distribution, got {len(entries)}: {', '.join(entries)}",
                )
            return _Bad
        ((kind, (key_node, args)),) = entries.items()
        sub = _key_path(path, kind)
        if kind == "uniform":
            if args.kind != "seq" or len(args.value) != 2:
                self.problem(
                    args,
                    sub,
                    f"expected a list of two durations [LOW, HIGH], got {_describe(args)}",
                )
                return _Bad
            low = self.duration(args.value[0], f"{sub}[0]")
            high = self.duration(args.value[1], f"{sub}[1]")
            if low is _Bad or high is _Bad:
                return _Bad
            if low > high:
                self.problem(
                    args,
                    sub,
                    f"expected LOW <= HIGH, got LOW {_describe(args.value[0])} "
                    f"> HIGH {_describe(args.value[1])}",
                )
                return _Bad
            return Uniform(low, high)
        if kind == "normal":
            parts = self.fields(
                args,
                sub,
                ("mean", "stddev"),
                required=("mean", "stddev"),
                what="{mean: DURATION, stddev: DURATION}",
            )
            if parts is None or len(parts) != 2:
                return _Bad
            mean = self.duration(parts["mean"], f"{sub}.mean")
            stddev = self.duration(parts["stddev"], f"{sub}.stddev")
            if mean is _Bad or stddev is _Bad:
                return _Bad
            return Normal(mean, stddev)
        if kind == "lognormal":
            parts = self.fields(
                args,
                sub,
                ("median", "sigma"),
                required=("median", "sigma"),
                what="{median: DURATION, sigma: NUMBER}",
            )
            if parts is None or len(parts) != 2:
                return _Bad
            median = self.duration(parts["median"], f"{sub}.median", positive=True)
            sigma_node = parts["sigma"]
            sigma = sigma_node.value
            if not (
                sigma_node.kind == "scalar"
                and _is_number(sigma)
                and math.isfinite(sigma)
                and 0 <= sigma <= 10
            ):
                self.problem(
                    sigma_node,
                    f"{sub}.sigma",
                    f"expected a number from 0 to 10, got {_describe(sigma_node)}",
                )
                return _Bad
            if median is _Bad:
                return _Bad
            return LogNormal(median, float(sigma))
        guess = _did_you_mean(kind, DISTRIBUTIONS)
        hint = f"did you mean {guess!r}? " if guess else ""
        self.problem(
            key_node,
            sub,
            f"unknown distribution {kind!r} ({hint}expected one of: {', '.join(DISTRIBUTIONS)})",
        )
        return _Bad

    def optional_timing(self, node: _Node | None, path: str) -> Any:
        if node is None or (node.kind == "scalar" and node.value is None):
            return None
        return self.timing(node, path)

    # -- the document

    def profile(self, root: _Node) -> Profile | None:
        if root.kind != "map":
            what = (
                "an empty document"
                if root.kind == "scalar" and root.value is None and root.text == ""
                else _describe(root)
            )
            self.problem(root, "", f"expected a mapping at the top of the profile, got {what}")
            return None
        f = self.fields(
            root,
            "",
            ("version", "seed", "fault_header", "listeners", "control"),
            required=("version", "listeners"),
        )
        assert f is not None
        kwargs: dict[str, Any] = {}
        if "version" in f:
            node = f["version"]
            if node.kind == "scalar" and _is_int(node.value) and node.value in SUPPORTED_VERSIONS:
                kwargs["version"] = node.value
            else:
                supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
                self.problem(
                    node,
                    "version",
                    f"unsupported version {_describe(node)} (supported versions: {supported})",
                )
        if "seed" in f and not (f["seed"].kind == "scalar" and f["seed"].value is None):
            kwargs["seed"] = self.integer(f["seed"], "seed")
        if "fault_header" in f:
            node = f["fault_header"]
            if node.kind == "scalar" and node.value is None:
                kwargs["fault_header"] = None
            else:
                name = self.header_name(node, "fault_header")
                kwargs["fault_header"] = name
        if "control" in f:
            kwargs["control"] = self.control(f["control"], "control")
        listeners: Any = _Bad
        if "listeners" in f:
            listeners = self.listeners(f["listeners"], "listeners")
        self.check_binds()
        if self.problems or any(v is _Bad for v in kwargs.values()) or listeners is _Bad:
            return None
        return Profile(listeners=tuple(listeners), source=self.source, raw=root.plain(), **kwargs)

    def check_binds(self) -> None:
        """No two binds (listeners' and control's) on one port, unless the port is 0."""
        binds = self.binds
        for i, (host, port, where, node) in enumerate(binds):
            if port == 0:
                continue
            for other_host, other_port, other_where, _ in binds[:i]:
                if other_port != port:
                    continue
                shown = _bind_text(host, port)
                if host == other_host:
                    self.problem(
                        node, f"{where}.bind", f"duplicate bind {shown!r} (also {other_where})"
                    )
                    break
                if _overlaps(host, other_host):
                    other = _bind_text(other_host, other_port)
                    self.problem(
                        node,
                        f"{where}.bind",
                        f"bind {shown!r} overlaps {other!r} of {other_where}",
                    )
                    break

    def control(self, node: _Node, path: str) -> Any:
        if node.kind == "scalar" and node.value is None:
            return Control()
        f = self.fields(node, path, ("bind", "token"))
        if f is None:
            return _Bad
        bind: Any = None
        token: Any = None
        if "bind" in f and not (f["bind"].kind == "scalar" and f["bind"].value is None):
            bind = self.bind(f["bind"], f"{path}.bind")
            if bind is not _Bad:
                self.binds.append((*bind, path, f["bind"]))
        if "token" in f and not (f["token"].kind == "scalar" and f["token"].value is None):
            token = self.string(f["token"], f"{path}.token", "a non-empty string or null")
            if token == "":
                self.problem(
                    f["token"], f"{path}.token", "expected a non-empty string or null, got ''"
                )
                token = _Bad
        if bind is _Bad or token is _Bad:
            return _Bad
        return Control(bind=bind, token=token)

    def bind(self, node: _Node, path: str) -> Any:
        expected = "expected host:port such as '127.0.0.1:8080' or '[::1]:8080'"
        value = node.value
        if node.kind != "scalar" or not isinstance(value, str):
            self.problem(node, path, f"{expected}, got {_describe(node)}")
            return _Bad
        if value.startswith("["):
            host, sep, port_text = value[1:].partition("]:")
            if not sep:
                self.problem(node, path, f"{expected}, got {_describe(node)}")
                return _Bad
        else:
            host, sep, port_text = value.rpartition(":")
            if not sep or not host:
                self.problem(node, path, f"{expected}, got {_describe(node)}")
                return _Bad
            if ":" in host:
                self.problem(
                    node, path, f"{expected} (an IPv6 host goes in brackets), got {_describe(node)}"
                )
                return _Bad
        if not port_text.isdigit() or not port_text.isascii() or int(port_text[:6]) > 65535:
            self.problem(
                node, path, f"expected a port from 0 to 65535, got {_describe_value(port_text)}"
            )
            return _Bad
        port = int(port_text)
        if host == "localhost":
            return ("127.0.0.1", port)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            self.problem(
                node,
                path,
                f"expected an IP address or 'localhost' as host, got {_describe_value(host)}",
            )
            return _Bad
        if value.startswith("[") != (address.version == 6):
            self.problem(
                node,
                path,
                f"{expected} (brackets go around an IPv6 host only), got {_describe(node)}",
            )
            return _Bad
        return (str(address), port)

    def listeners(self, node: _Node, path: str) -> Any:
        if node.kind != "seq" or not node.value:
            self.problem(
                node, path, f"expected a list of one or more listeners, got {_describe(node)}"
            )
            return _Bad
        out = []
        names: dict[str, str] = {}
        for i, item in enumerate(node.value):
            item_path = f"{path}[{i}]"
            listener = self.listener(item, item_path)
            out.append(listener)
            if item.kind == "map" and "name" in item.value:
                name_node = item.value["name"][1]
                name = name_node.value
                if isinstance(name, str) and _NAME.match(name):
                    if name in names:
                        self.problem(
                            name_node,
                            f"{item_path}.name",
                            f"duplicate listener name {name!r} (also {names[name]})",
                        )
                    else:
                        names[name] = item_path
        if any(x is _Bad for x in out):
            return _Bad
        return out

    def listener(self, node: _Node, path: str) -> Any:
        f = self.fields(
            node,
            path,
            (
                "name",
                "bind",
                "accept",
                "backlog",
                "max_connections",
                "response",
                "keepalive",
                "rules",
                "schedule",
                "limits",
            ),
            required=("name", "bind"),
        )
        if f is None:
            return _Bad
        kwargs: dict[str, Any] = {}
        if "name" in f:
            name = self.string(f["name"], f"{path}.name", "a name of [a-z0-9_-]")
            if name is not _Bad and not _NAME.match(name):
                self.problem(
                    f["name"],
                    f"{path}.name",
                    "expected a name of lower-case letters, digits, '_' and '-', "
                    f"got {_describe(f['name'])}",
                )
                name = _Bad
            kwargs["name"] = name
        else:
            kwargs["name"] = _Bad
        if "bind" in f:
            bind = self.bind(f["bind"], f"{path}.bind")
            if bind is _Bad:
                kwargs["host"] = _Bad
            else:
                kwargs["host"], kwargs["port"] = bind
                self.binds.append((*bind, path, f["bind"]))
        else:
            kwargs["host"] = _Bad
        if "accept" in f:
            accept = self.choice(
                f["accept"], f"{path}.accept", [m.value for m in AcceptMode], "accept mode"
            )
            kwargs["accept"] = _Bad if accept is _Bad else AcceptMode(accept)
        if "backlog" in f:
            kwargs["backlog"] = self.integer(f["backlog"], f"{path}.backlog", 0, 65535)
        if "max_connections" in f:
            kwargs["max_connections"] = self.optional_integer(
                f["max_connections"], f"{path}.max_connections", 1, None
            )
        if "response" in f:
            kwargs["response"] = self.response(f["response"], f"{path}.response")
        if "keepalive" in f:
            kwargs["keepalive"] = self.keepalive(f["keepalive"], f"{path}.keepalive")
        if "rules" in f:
            kwargs["rules"] = self.rules(f["rules"], f"{path}.rules")
        if "schedule" in f:
            kwargs["schedule"] = self.schedule(f["schedule"], f"{path}.schedule")
        if "limits" in f:
            kwargs["limits"] = self.limits(f["limits"], f"{path}.limits")
        if any(v is _Bad for v in kwargs.values()):
            return _Bad
        return Listener(**kwargs)

    # -- response and its parts (shared with `respond`)

    def response(self, node: _Node, path: str) -> Any:
        if node.kind == "scalar" and node.value is None:
            return Response()
        f = self.fields(node, path, ("status", "headers", "body", "framing"))
        if f is None:
            return _Bad
        kwargs: dict[str, Any] = {}
        if "status" in f:
            kwargs["status"] = self.integer(f["status"], f"{path}.status", 100, 599)
        if "headers" in f:
            kwargs["headers"] = self.headers(f["headers"], f"{path}.headers")
        if "body" in f:
            kwargs["body"] = self.body(f["body"], f"{path}.body")
        if "framing" in f:
            kwargs["framing"] = self.framing(f["framing"], f"{path}.framing")
        if any(v is _Bad for v in kwargs.values()):
            return _Bad
        return Response(**kwargs)

    def framing(self, node: _Node, path: str) -> Any:
        value = self.choice(node, path, [m.value for m in Framing], "framing")
        return _Bad if value is _Bad else Framing(value)

    def header_name(self, node: _Node, path: str) -> Any:
        value = node.value
        if node.kind != "scalar" or not isinstance(value, str) or not _TOKEN.match(value):
            self.problem(
                node, path, f"expected a header name (an HTTP token), got {_describe(node)}"
            )
            return _Bad
        return value.lower()

    def headers(self, node: _Node, path: str) -> Any:
        """Response headers: name -> string (numbers as written). Names keep their case."""
        if node.kind == "scalar" and node.value is None:
            return ()
        if node.kind != "map":
            self.problem(
                node, path, f"expected a mapping of header names to values, got {_describe(node)}"
            )
            return _Bad
        out = []
        bad = False
        for name, (key_node, value_node) in node.value.items():
            sub = _key_path(path, name)
            if self.header_name(key_node, sub) is _Bad:
                bad = True
                continue
            value = self.header_value(value_node, sub)
            if value is _Bad:
                bad = True
                continue
            out.append((name, value))
        return _Bad if bad else tuple(out)

    def header_value(self, node: _Node, path: str) -> Any:
        value = node.value
        if node.kind == "scalar" and isinstance(value, str):
            text = value
        elif node.kind == "scalar" and _is_number(value) and math.isfinite(value):
            text = node.text if node.text is not None else str(value)
        else:
            self.problem(node, path, f"expected a string or a number, got {_describe(node)}")
            return _Bad
        if _BAD_HEADER_VALUE.search(text):
            self.problem(node, path, "expected a header value without CR, LF or NUL characters")
            return _Bad
        return text

    def body(self, node: _Node, path: str) -> Any:
        if node.kind == "scalar" and node.value is None:
            return None
        if node.kind == "scalar" and isinstance(node.value, str):
            return Body(data=node.value.encode("utf-8", "surrogatepass"))
        if node.kind == "map":
            f = self.fields(node, path, ("size",), required=("size",))
            if f is None or "size" not in f:
                return _Bad
            size = self.size(f["size"], f"{path}.size")
            return _Bad if size is _Bad else Body(size=size)
        self.problem(node, path, f"expected a string or {{size: SIZE}}, got {_describe(node)}")
        return _Bad

    def keepalive(self, node: _Node, path: str) -> Any:
        if node.kind == "scalar" and node.value is None:
            return Keepalive()
        f = self.fields(node, path, ("idle_close", "max_requests"))
        if f is None:
            return _Bad
        idle_close = self.optional_timing(f.get("idle_close"), f"{path}.idle_close")
        max_requests = self.optional_integer(f.get("max_requests"), f"{path}.max_requests", 1, None)
        if idle_close is _Bad or max_requests is _Bad:
            return _Bad
        return Keepalive(idle_close=idle_close, max_requests=max_requests)

    def limits(self, node: _Node, path: str) -> Any:
        if node.kind == "scalar" and node.value is None:
            return Limits()
        f = self.fields(node, path, ("header_timeout", "max_header_bytes", "max_body_bytes"))
        if f is None:
            return _Bad
        kwargs: dict[str, Any] = {}
        if "header_timeout" in f:
            kwargs["header_timeout_s"] = self.duration(
                f["header_timeout"], f"{path}.header_timeout", positive=True
            )
        if "max_header_bytes" in f:
            kwargs["max_header_bytes"] = self.size(
                f["max_header_bytes"], f"{path}.max_header_bytes", positive=True
            )
        if "max_body_bytes" in f:
            kwargs["max_body_bytes"] = self.size(f["max_body_bytes"], f"{path}.max_body_bytes")
        if any(v is _Bad for v in kwargs.values()):
            return _Bad
        return Limits(**kwargs)

    # -- rules

    def rules(self, node: _Node, path: str) -> Any:
        if node.kind == "scalar" and node.value is None:
            return ()
        if node.kind != "seq":
            self.problem(node, path, f"expected a list of rules, got {_describe(node)}")
            return _Bad
        out = []
        names: dict[str, str] = {}
        for i, item in enumerate(node.value):
            item_path = f"{path}[{i}]"
            rule = self.rule(item, item_path, i)
            out.append(rule)
            if item.kind != "map":
                continue
            name_entry = item.value.get("name")
            if name_entry is None or (
                name_entry[1].kind == "scalar" and name_entry[1].value is None
            ):
                name, where_node = f"rule-{i}", item
            else:
                name, where_node = name_entry[1].value, name_entry[1]
            if not isinstance(name, str):
                continue
            if name in names:
                self.problem(
                    where_node,
                    f"{item_path}.name" if where_node is not item else item_path,
                    f"duplicate rule name {name!r} (also {names[name]})",
                )
            else:
                names[name] = item_path
        if any(r is _Bad for r in out):
            return _Bad
        return tuple(out)

    def rule(self, node: _Node, path: str, index: int) -> Any:
        if node.kind != "map":
            self.problem(
                node, path, f"expected a rule (a mapping with an action), got {_describe(node)}"
            )
            return _Bad
        entries = {k: v for k, (_, v) in node.value.items() if not k.startswith("x-")}
        key_nodes = self.keys_of(node)
        action_name: str | None = None
        if "action" in entries:
            action_name = self.action_name(entries["action"], f"{path}.action")
            if action_name is _Bad:
                action_name = None
        else:
            self.problem(node, path, "missing required key 'action'")
        # keys: the rule's own, and those of its action
        all_action_keys = {k for spec in _actions.ACTIONS.values() for k in spec.keys}
        action_keys = _actions.ACTIONS[action_name].keys if action_name else {}
        allowed = RULE_KEYS + tuple(action_keys if action_name else sorted(all_action_keys))
        for key in entries:
            if key in allowed:
                continue
            key_path = _key_path(path, key)
            if action_name is None:
                self.problem(key_nodes[key], key_path, _unknown_key(key, allowed))
            else:
                self.problem(key_nodes[key], key_path, _unknown_action_key(key, action_name))
        kwargs: dict[str, Any] = {}
        name_node = entries.get("name")
        if name_node is None or (name_node.kind == "scalar" and name_node.value is None):
            kwargs["name"] = f"rule-{index}"
        else:
            name = self.string(name_node, f"{path}.name", "a rule name (a string)")
            if name is not _Bad and (not name or not name.isprintable()):
                self.problem(
                    name_node,
                    f"{path}.name",
                    "expected a non-empty rule name without control characters, "
                    f"got {_describe(name_node)}",
                )
                name = _Bad
            kwargs["name"] = name
        at = At.REQUEST
        if "at" in entries:
            at_value = self.choice(
                entries["at"], f"{path}.at", [a.value for a in At], "'at' value", "an"
            )
            at = _Bad if at_value is _Bad else At(at_value)
            kwargs["at"] = at
        if "match" in entries:
            kwargs["match"] = self.match(entries["match"], f"{path}.match", at)
        if "probability" in entries:
            p_node = entries["probability"]
            p = p_node.value
            if p_node.kind == "scalar" and _is_number(p) and 0 <= p <= 1:
                kwargs["probability"] = float(p)
            else:
                self.problem(
                    p_node,
                    f"{path}.probability",
                    f"expected a number from 0 to 1, got {_describe(p_node)}",
                )
                kwargs["probability"] = _Bad
        if "times" in entries:
            kwargs["times"] = self.optional_integer(entries["times"], f"{path}.times", 1, None)
        if "delay" in entries:
            kwargs["delay"] = self.optional_timing(entries["delay"], f"{path}.delay")
        action: Any = _Bad
        if action_name is not None:
            if at is At.CONNECT and action_name not in _actions.CONNECT_ACTIONS:
                self.problem(
                    entries["action"],
                    f"{path}.action",
                    f"action {action_name!r} cannot run at: connect, where no request has been "
                    f"read (expected one of: {', '.join(_actions.CONNECT_ACTIONS)})",
                )
            else:
                action = self.action(action_name, entries, path)
        if action is _Bad or any(v is _Bad for v in kwargs.values()):
            return _Bad
        return Rule(action=action, **kwargs)

    def action_name(self, node: _Node, path: str) -> Any:
        return self.choice(node, path, list(_actions.ACTIONS), "action")

    def action(self, name: str, entries: dict[str, _Node], path: str) -> Any:
        spec = _actions.ACTIONS[name]
        cls = _ACTION_CLASSES[name]
        defaults = {f.name: f.default for f in cls.__dataclass_fields__.values()}  # type: ignore[attr-defined]
        kwargs: dict[str, Any] = {}
        for key, kind in spec.keys.items():
            if key not in entries:
                continue
            node = entries[key]
            field_name = _ACTION_FIELDS.get(key, key)
            if node.kind == "scalar" and node.value is None and defaults.get(field_name) is None:
                continue
            if (name, key) == ("dribble", "chunk"):
                kwargs[field_name] = self.size(node, _key_path(path, key), positive=True)
            else:
                kwargs[field_name] = self.of_kind(kind, node, _key_path(path, key))
        if name == "partial" and "bytes" not in entries:
            self.problem(_first(entries), path, "missing required key 'bytes' for action 'partial'")
            return _Bad
        if name == "dribble":
            given = [k for k in ("interval", "rate") if _given(entries.get(k))]
            if len(given) == 2:
                self.problem(
                    entries["rate"],
                    f"{path}.rate",
                    "action 'dribble' takes 'interval' or 'rate', not both",
                )
                return _Bad
            if not given:
                self.problem(
                    _first(entries),
                    path,
                    "action 'dribble' needs 'interval' (with an optional 'chunk') or 'rate'",
                )
                return _Bad
        if any(v is _Bad for v in kwargs.values()):
            return _Bad
        return cls(**kwargs)

    def of_kind(self, kind: str, node: _Node, path: str) -> Any:
        if kind == "duration":
            return self.duration(node, path)
        if kind == "timing":
            return self.timing(node, path)
        if kind == "size":
            return self.size(node, path)
        if kind == "rate":
            return self.unit(node, path, parse_rate)
        if kind == "status":
            return self.integer(node, path, 100, 599)
        if kind == "headers":
            return self.headers(node, path)
        if kind == "body":
            return self.body(node, path)
        if kind == "framing":
            return self.framing(node, path)
        if kind == "then":
            value = self.choice(node, path, THEN_ACTIONS, "'then' action")
            return _Bad if value is _Bad else ActionName(value)
        raise AssertionError(f"unknown kind of value {kind!r} in _actions.ACTIONS")

    def match(self, node: _Node, path: str, at: Any) -> Any:
        if node.kind == "scalar" and node.value is None:
            return Match()
        f = self.fields(node, path, MATCH_KEYS)
        if f is None:
            return _Bad
        if at is At.CONNECT:
            key_nodes = self.keys_of(node)
            for key in f:
                self.problem(
                    key_nodes[key],
                    f"{path}.{key}",
                    f"cannot match on {key} at: connect, where no request has been read",
                )
            return _Bad if f else Match()
        kwargs: dict[str, Any] = {}
        if "method" in f:
            kwargs["methods"] = self.methods(f["method"], f"{path}.method")
        if "path" in f:
            p = f["path"]
            if p.kind == "map":
                sub = self.fields(p, f"{path}.path", ("regex",), required=("regex",))
                if sub is None or "regex" not in sub:
                    kwargs["path_regex"] = _Bad
                else:
                    pattern = self.string(
                        sub["regex"], f"{path}.path.regex", "a regular expression (a string)"
                    )
                    if pattern is not _Bad:
                        try:
                            kwargs["path_regex"] = re.compile(pattern)
                        except (re.error, RecursionError, OverflowError) as exc:
                            self.problem(
                                sub["regex"], f"{path}.path.regex", f"invalid regex: {exc}"
                            )
                            kwargs["path_regex"] = _Bad
                    else:
                        kwargs["path_regex"] = _Bad
            else:
                kwargs["path_glob"] = self.string(
                    p, f"{path}.path", "a glob such as '/api/*' or {regex: ...}"
                )
        if "headers" in f:
            kwargs["headers"] = self.match_headers(f["headers"], f"{path}.headers")
        if "request_on_connection" in f:
            kwargs["request_on_connection"] = self.unit(
                f["request_on_connection"], f"{path}.request_on_connection", parse_comparison
            )
        if any(v is _Bad for v in kwargs.values()):
            return _Bad
        return Match(**kwargs)

    def methods(self, node: _Node, path: str) -> Any:
        items = node.value if node.kind == "seq" else [node]
        if node.kind == "seq" and not items:
            self.problem(
                node, path, "expected a method or a non-empty list of methods, got an empty list"
            )
            return _Bad
        out = set()
        bad = False
        for i, item in enumerate(items):
            sub = f"{path}[{i}]" if node.kind == "seq" else path
            value = item.value
            if item.kind != "scalar" or not isinstance(value, str) or not _TOKEN.match(value):
                self.problem(
                    item, sub, f"expected an HTTP method such as 'GET', got {_describe(item)}"
                )
                bad = True
                continue
            out.add(value.upper())
        return _Bad if bad else frozenset(out)

    def match_headers(self, node: _Node, path: str) -> Any:
        if node.kind != "map":
            self.problem(
                node, path, f"expected a mapping of header names to globs, got {_describe(node)}"
            )
            return _Bad
        out: dict[str, str] = {}
        bad = False
        for name, (key_node, value_node) in node.value.items():
            sub = _key_path(path, name)
            lower = self.header_name(key_node, sub)
            value = self.header_value(value_node, sub)
            if lower is _Bad or value is _Bad:
                bad = True
                continue
            if lower in out:
                self.problem(
                    key_node, sub, f"duplicate header {lower!r} (header names ignore case)"
                )
                bad = True
            out[lower] = value
        return _Bad if bad else tuple(out.items())

    # -- schedule

    def schedule(self, node: _Node, path: str) -> Any:
        if node.kind == "scalar" and node.value is None:
            return None
        f = self.fields(node, path, ("repeat", "phases"), required=("phases",))
        if f is None:
            return _Bad
        repeat: Any = True
        if "repeat" in f:
            repeat = self.boolean(f["repeat"], f"{path}.repeat")
        if "phases" not in f:
            return _Bad
        phases_node = f["phases"]
        if phases_node.kind != "seq" or not phases_node.value:
            self.problem(
                phases_node,
                f"{path}.phases",
                f"expected a list of one or more phases, got {_describe(phases_node)}",
            )
            return _Bad
        phases = [
            self.phase(item, f"{path}.phases[{i}]") for i, item in enumerate(phases_node.value)
        ]
        if repeat is _Bad or any(p is _Bad for p in phases):
            return _Bad
        return Schedule(phases=tuple(phases), repeat=repeat)

    def phase(self, node: _Node, path: str) -> Any:
        f = self.fields(node, path, ("duration", "accept", "rules"), required=("duration",))
        if f is None or "duration" not in f:
            return _Bad
        kwargs: dict[str, Any] = {}
        kwargs["duration_s"] = self.duration(f["duration"], f"{path}.duration", positive=True)
        if "accept" in f:
            accept = self.choice(
                f["accept"], f"{path}.accept", [m.value for m in AcceptMode], "accept mode"
            )
            kwargs["accept"] = _Bad if accept is _Bad else AcceptMode(accept)
        if _given(f.get("rules")):  # `rules: null` leaves the listener's rules, as absent does
            kwargs["rules"] = self.rules(f["rules"], f"{path}.rules")
        if any(v is _Bad for v in kwargs.values()):
            return _Bad
        return Phase(**kwargs)


def _placeholder(node: _Node) -> object:
    return {} if node.kind == "map" else []


def _given(node: _Node | None) -> bool:
    return node is not None and not (node.kind == "scalar" and node.value is None)


def _first(entries: dict[str, _Node]) -> _Node:
    return entries.get("action") or next(iter(entries.values()))


def _bind_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _overlaps(host: str, other: str) -> bool:
    """Whether two different hosts on one port clash: one of them is the wildcard."""
    a, b = ipaddress.ip_address(host), ipaddress.ip_address(other)
    return a.version == b.version and (a.is_unspecified or b.is_unspecified)


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    guess = _did_you_mean(key, allowed)
    if guess:
        return f"unknown key {key!r} (did you mean {guess!r}?)"
    return f"unknown key {key!r} (expected one of: {', '.join(allowed)})"


def _unknown_action_key(key: str, action: str) -> str:
    own = tuple(_actions.ACTIONS[action].keys)
    owners = [name for name, spec in _actions.ACTIONS.items() if key in spec.keys]
    if owners:
        takes = f"{action} takes: {', '.join(own)}" if own else f"{action} takes no keys of its own"
        return (
            f"key {key!r} does not apply to action {action!r} "
            f"(it belongs to {', '.join(owners)}; {takes})"
        )
    guess = _did_you_mean(key, RULE_KEYS + own)
    if guess:
        return f"unknown key {key!r} for action {action!r} (did you mean {guess!r}?)"
    return (
        f"unknown key {key!r} for action {action!r} (expected one of: {', '.join(RULE_KEYS + own)})"
    )

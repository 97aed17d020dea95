"""YAML (or JSON) text to located values, or the problems that stop it there.

At most `MAX_INPUT_BYTES` of text. PyYAML's safe loader turns it into events, and `_Composer`
(PyYAML's `Composer` turned into a loop with a stack, same tags, anchors and errors) into YAML
nodes that remember where each value starts. Only the composer runs, never PyYAML's object
construction, so no tag can build a Python object; and the loop caps the nesting depth as it
goes (PyYAML's composer recurses, so a deep document would end in `RecursionError`). Then
`build.py` turns the nodes into located values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import yaml
from yaml.composer import ComposerError
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    Event,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import CollectionNode, MappingNode, SequenceNode
from yaml.nodes import Node as YamlNode
from yaml.nodes import ScalarNode as YamlScalarNode

from .._errors import Problem
from .build import MAX_DEPTH, Builder, Mark, TooDeep, TooMany, too_many_message
from .describe import short_text
from .nodes import Node, ScalarNode

__all__ = ["MAX_INPUT_BYTES", "compose_text", "too_large_message"]

#: A profile is a hand-written file: anything larger is refused before parsing.
MAX_INPUT_BYTES = 1024 * 1024

#: libyaml's event parser is about twenty times faster than PyYAML's own, and gives the
#: same events and marks; both are iterative, so neither recurses on deep nesting.
#: (Typed as PyYAML's own: libyaml's has the same methods, and marks with the same fields.)
_EventLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def too_large_message() -> str:
    return f"profile is larger than the limit of {MAX_INPUT_BYTES // 1024 // 1024}MiB"


def compose_text(text: str, source: str) -> tuple[Node | None, list[Problem]]:
    """The document's located values and the problems found building them; None when the
    text cannot be read as one YAML document at all."""
    too_large = [Problem(source, 1, 1, "", too_large_message())]
    if len(text) > MAX_INPUT_BYTES:
        return None, too_large
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate, from a str built in Python
        line, column = _position(text, exc.start)
        message = f"invalid YAML: character U+{ord(text[exc.start]):04X} is not allowed"
        return None, [Problem(source, line, column, "", message)]
    if size > MAX_INPUT_BYTES:
        return None, too_large
    try:
        node = _compose(text)
    except yaml.YAMLError as exc:
        return None, [_yaml_problem(source, text, exc)]
    except TooDeep as exc:
        return None, [_at_mark(source, exc.mark, f"nesting deeper than {MAX_DEPTH} levels")]
    builder = Builder(source)
    if node is None:
        return ScalarNode(1, 1, None, ""), []  # an empty document
    try:
        root = builder.from_yaml(node, "", 0)
    except TooMany as exc:
        return None, [Problem(source, exc.line, exc.column, "", too_many_message())]
    except TooDeep as exc:
        message = f"nesting deeper than {MAX_DEPTH} levels (with aliases expanded)"
        return None, [_at_mark(source, exc.mark, message)]
    return root, builder.problems


def _compose(text: str) -> YamlNode | None:
    loader = _EventLoader(text)
    try:
        return _Composer(loader).document()
    finally:
        loader.dispose()


def _yaml_problem(source: str, text: str, exc: yaml.YAMLError) -> Problem:
    """What YAML's parser said, without the excerpt of the text it quotes."""
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        mark = exc.problem_mark or exc.context_mark
        return _at_mark(source, mark, "invalid YAML: " + ", ".join(parts))
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _position(text, exc.position)
        if isinstance(exc.character, int):
            what = f"character U+{exc.character:04X}"
        else:
            what = f"byte {exc.character!r}"
        return Problem(source, line, column, "", f"invalid YAML: {what} is not allowed")
    return Problem(source, 1, 1, "", f"invalid YAML: {short_text(' '.join(str(exc).split()))}")


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _at_mark(source: str, mark: Mark | None, message: str) -> Problem:
    if mark is None:
        return Problem(source, 1, 1, "", message)
    return Problem(source, mark.line + 1, mark.column + 1, "", message)


def _mark(mark: object) -> yaml.error.Mark | None:
    """libyaml's marks are not PyYAML's class, but have the same fields: typed as PyYAML's."""
    return cast("yaml.error.Mark | None", mark)


@dataclass(slots=True)
class _Open:
    """A collection being composed, and (for a mapping) the key waiting for its value."""

    node: CollectionNode
    key: YamlNode | None = None


class _Composer:
    """The single document of a loader's events, as YAML nodes, without recursion."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.anchors: dict[str, YamlNode] = {}
        self.open: list[_Open] = []

    def document(self) -> YamlNode | None:
        loader = self.loader
        self._next()  # StreamStartEvent
        if loader.check_event(StreamEndEvent):
            return None
        self._next()  # DocumentStartEvent
        root = None
        while root is None:
            root = self._feed(self._next())
        self._next()  # DocumentEndEvent
        if not loader.check_event(StreamEndEvent):
            event = self._next()
            raise ComposerError(
                "expected a single document in the stream",
                root.start_mark,
                "but found another document",
                _mark(event.start_mark),
            )
        return root

    def _next(self) -> Event:
        event: Event | None = self.loader.get_event()  # type: ignore[no-untyped-call]
        if event is None:  # the parser ends every stream with StreamEndEvent first
            raise ComposerError(None, None, "unexpected end of the stream", None)
        return event

    def _feed(self, event: Event) -> YamlNode | None:
        """Take one event; the root node once the document is complete."""
        if isinstance(event, AliasEvent):
            node = self._alias(event)
        elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            node = self.open.pop().node
            node.end_mark = event.end_mark
        elif isinstance(event, (ScalarEvent, CollectionStartEvent)):
            node = self._new(event)
            if isinstance(node, CollectionNode):
                if len(self.open) >= MAX_DEPTH:
                    raise TooDeep(event.start_mark)
                self.open.append(_Open(node))
                return None
        else:
            raise ComposerError(None, None, f"unexpected event {type(event).__name__}", None)
        if not self.open:
            return node
        self._attach(node)
        return None

    def _alias(self, event: AliasEvent) -> YamlNode:
        anchor = event.anchor or ""
        if anchor not in self.anchors:
            message = f"found undefined alias {short_text(anchor)!r}"
            raise ComposerError(None, None, message, _mark(event.start_mark))
        return self.anchors[anchor]

    def _new(self, event: ScalarEvent | CollectionStartEvent) -> YamlNode:
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            raise ComposerError(
                f"found duplicate anchor {short_text(anchor)!r}; first occurrence",
                self.anchors[anchor].start_mark,
                "second occurrence",
                _mark(event.start_mark),
            )
        tag = event.tag
        start, end = _mark(event.start_mark), _mark(event.end_mark)
        node: YamlNode
        if isinstance(event, ScalarEvent):
            if tag is None or tag == "!":
                tag = self._resolve(YamlScalarNode, event.value, event.implicit)
            node = YamlScalarNode(tag, event.value, start, end, event.style)
        else:
            kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
            if tag is None or tag == "!":
                tag = self._resolve(kind, None, event.implicit)
            node = kind(tag, [], start, None, flow_style=event.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        return node

    def _resolve(self, kind: type[YamlNode], value: str | None, implicit: object) -> str:
        """The tag YAML's resolver gives an untagged value (`!!int` for `42`)."""
        tag: str = self.loader.resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag

    def _attach(self, node: YamlNode) -> None:
        top = self.open[-1]
        if isinstance(top.node, SequenceNode):
            top.node.value.append(node)
        elif top.key is None:
            top.key = node
        else:
            top.node.value.append((top.key, node))
            top.key = None

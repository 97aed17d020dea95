"""Reading a key by the kind of value it takes (`keys.ValueKind`), for tables of keys.

`KIND_CHECKS` has one check per kind; `read_keys` reads a mapping's keys as a table says
(an action's keys from `actions.ACTIONS`, or a listener's `response`, `keepalive`, `limits`)
and `build` makes the model object from what was read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from .actions import THEN_ACTIONS
from .check import Checker
from .forward import check_forward_then
from .keys import Key, ValueKind
from .model import ActionName, Body, Framing, GoawayThen, Grpc, GrpcStatus, H2Error, LastStream
from .nodes import MapNode, Node, ScalarNode, describe, is_null, key_path
from .timing import check_duration, check_size, check_timing
from .units import MAX_COUNT, parse_rate

__all__ = [
    "KIND_CHECKS",
    "build",
    "check_count",
    "check_header_name",
    "check_header_value",
    "check_keyed",
    "read_keys",
]

T = TypeVar("T")
KindCheck = Callable[[Checker, Node, str], object]

#: RFC 9110 token: header names and methods.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_HEADER_VALUE = re.compile(r"[\r\n\x00]")


def check_header_name(c: Checker, node: Node, path: str) -> str | None:
    """A header name (an HTTP token), in lower case."""
    value = node.value if isinstance(node, ScalarNode) else None
    if not isinstance(value, str) or TOKEN.fullmatch(value) is None:
        c.problem(node, path, f"expected a header name (an HTTP token), got {describe(node)}")
        return None
    return value.lower()


def check_header_value(c: Checker, node: Node, path: str) -> str | None:
    """A header value: a string, or a number as written (`1.10` stays "1.10")."""
    value = node.value if isinstance(node, ScalarNode) else None
    if isinstance(value, str):
        text = value
    elif isinstance(node, ScalarNode) and _is_finite_number(value):
        text = node.text if node.text is not None else str(value)
    else:
        c.problem(node, path, f"expected a string or a number, got {describe(node)}")
        return None
    if _BAD_HEADER_VALUE.search(text):
        c.problem(node, path, "expected a header value without CR, LF or NUL characters")
        return None
    return text


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_headers(c: Checker, node: Node, path: str) -> tuple[tuple[str, str], ...] | None:
    """Response headers: name -> string. Names keep their case."""
    if is_null(node):
        return ()
    if not isinstance(node, MapNode):
        message = f"expected a mapping of header names to values, got {describe(node)}"
        c.problem(node, path, message)
        return None
    headers = []
    for name, (key_node, value_node) in node.entries.items():
        sub = key_path(path, name)
        if check_header_name(c, key_node, sub) is None:
            continue
        value = check_header_value(c, value_node, sub)
        if value is not None:
            headers.append((name, value))
    return tuple(headers) if len(headers) == len(node.entries) else None


def check_body(c: Checker, node: Node, path: str) -> Body | None:
    """A string (sent as UTF-8), or `{size: SIZE}` of generated filler."""
    if isinstance(node, ScalarNode) and isinstance(node.value, str):
        return Body(data=node.value.encode("utf-8", "surrogatepass"))
    if isinstance(node, MapNode):
        fields = c.fields(node, path, ("size",), required=("size",))
        if fields is None or "size" not in fields:
            return None
        size = check_size(c, fields["size"], f"{path}.size")
        return None if size is None else Body(size=size)
    c.problem(node, path, f"expected a string or {{size: SIZE}}, got {describe(node)}")
    return None


def check_framing(c: Checker, node: Node, path: str) -> Framing | None:
    return c.member(node, path, list(Framing), "framing")


def check_then(c: Checker, node: Node, path: str) -> ActionName | None:
    return c.member(node, path, THEN_ACTIONS, "'then' action")


def check_status(c: Checker, node: Node, path: str) -> int | None:
    return c.integer(node, path, 100, 599)


def check_count(c: Checker, node: Node, path: str) -> int | None:
    """A count such as `times` or `max_requests`: 1 or more, and at most `MAX_COUNT`."""
    return c.integer(node, path, 1, sane=(1, MAX_COUNT))


KIND_CHECKS: Mapping[ValueKind, KindCheck] = {
    ValueKind.DURATION: check_duration,
    ValueKind.POSITIVE_DURATION: lambda c, node, path: check_duration(c, node, path, positive=True),
    ValueKind.TIMING: check_timing,
    ValueKind.SIZE: check_size,
    ValueKind.POSITIVE_SIZE: lambda c, node, path: check_size(c, node, path, positive=True),
    ValueKind.RATE: lambda c, node, path: c.unit(node, path, parse_rate),
    ValueKind.STATUS: check_status,
    ValueKind.COUNT: check_count,
    ValueKind.HEADERS: check_headers,
    ValueKind.BODY: check_body,
    ValueKind.FRAMING: check_framing,
    ValueKind.THEN: check_then,
    ValueKind.BOOLEAN: lambda c, node, path: c.boolean(node, path),
    ValueKind.H2_ERROR: lambda c, node, path: _h2_error(c, node, path),
    ValueKind.LAST_STREAM: lambda c, node, path: _last_stream(c, node, path),
    ValueKind.GOAWAY_THEN: lambda c, node, path: c.member(node, path, list(GoawayThen), "'then' of goaway"),
    ValueKind.GRPC: lambda c, node, path: check_grpc(c, node, path),
    ValueKind.FORWARD_THEN: check_forward_then,
}


def check_grpc(c: Checker, node: Node, path: str) -> Grpc | None:
    """`{status: UNAVAILABLE (or 14), message: TEXT}`; status defaults to OK."""
    fields = c.fields(node, path, ("status", "message"))
    if fields is None:
        return None
    mark = c.mark()
    status = GrpcStatus.OK
    if "status" in fields:
        value = fields["status"].value if isinstance(fields["status"], ScalarNode) else None
        if isinstance(value, str) and value.upper() in GrpcStatus.__members__:
            status = GrpcStatus[value.upper()]
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 16:
            status = GrpcStatus(value)
        else:
            c.problem(fields["status"], f"{path}.status", "expected a gRPC status such as UNAVAILABLE "
                      f"(or its code, 0 to 16), got {describe(fields['status'])}")
    message = ""
    if "message" in fields:
        message = c.string(fields["message"], f"{path}.message", "a message (a string)") or ""
        if _BAD_HEADER_VALUE.search(message):
            c.problem(fields["message"], f"{path}.message", "expected a message without CR, LF or NUL")
    return Grpc(status, message) if c.clean_since(mark) else None


def _h2_error(c: Checker, node: Node, path: str) -> H2Error | None:
    """An HTTP/2 error code's name, in any case (`refused_stream` is REFUSED_STREAM)."""
    value = node.value if isinstance(node, ScalarNode) else None
    if isinstance(value, str) and value.upper() in H2Error.__members__:
        return H2Error[value.upper()]
    c.problem(node, path, f"expected an HTTP/2 error code such as REFUSED_STREAM (one of: "
              f"{', '.join(H2Error.__members__)}), got {describe(node)}")
    return None


def _last_stream(c: Checker, node: Node, path: str) -> LastStream | None:
    """`current`, `previous` or 0 (a YAML number)."""
    value = node.value if isinstance(node, ScalarNode) else None
    if value == 0 and not isinstance(value, bool):
        return LastStream.ZERO
    return c.member(node, path, list(LastStream), "last_stream_id")


def read_keys(
    c: Checker, fields: Mapping[str, Node], keys: Mapping[str, Key], path: str
) -> dict[str, object]:
    """The values of the `keys` given in `fields`, by model field. A nullable key given null
    is left out (the model's default applies); a value with a problem is left out too, and
    the caller sees the problem through `Checker.clean_since`."""
    values: dict[str, object] = {}
    for key, spec in keys.items():
        node = fields.get(key)
        if node is None or (spec.nullable and is_null(node)):
            continue
        value = KIND_CHECKS[spec.kind](c, node, key_path(path, key))
        if value is not None:
            values[spec.field] = value
    return values


def build(model: Callable[..., T], values: Mapping[str, object]) -> T:
    """The model object from the fields read (a table's fields are the model's: see
    tests/unit/test_action_table.py)."""
    return model(**values)


def check_keyed(
    c: Checker, node: Node, path: str, keys: Mapping[str, Key], model: Callable[..., T]
) -> T | None:
    """A mapping read entirely by a table of keys (`response`, `keepalive`, `limits`), as
    `model`; null means every default."""
    if is_null(node):
        return model()
    mark = c.mark()
    fields = c.fields(node, path, tuple(keys))
    if fields is None:
        return None
    values = read_keys(c, fields, keys, path)
    return build(model, values) if c.clean_since(mark) else None

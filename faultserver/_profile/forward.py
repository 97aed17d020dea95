"""`forward`'s `then`: what happens to the upstream's answer on its way to the client."""

from __future__ import annotations

from .check import Checker
from .model import CloseHow, ForwardThen
from .nodes import MapNode, Node, ScalarNode, describe
from .timing import check_size
from .units import parse_rate

__all__ = ["THEN_KEYS", "THEN_WORDS", "check_forward_then"]

#: What `forward`'s `then` may be: a word, or a mapping with one of these keys.
THEN_WORDS = {"close": CloseHow.FIN, "reset": CloseHow.RST}
THEN_KEYS = ("partial", "dribble")


def check_forward_then(c: Checker, node: Node, path: str) -> ForwardThen | None:
    """`close`, `reset`, `{partial: {bytes: N, how: fin|rst}}` or `{dribble: {rate: R}}`."""
    if isinstance(node, ScalarNode) and isinstance(node.value, str) and node.value.lower() in THEN_WORDS:
        return ForwardThen(end=THEN_WORDS[node.value.lower()])
    if not isinstance(node, MapNode) or len(node.entries) != 1 or next(iter(node.entries)) not in THEN_KEYS:
        c.problem(
            node,
            path,
            "expected close, reset, {partial: {bytes: SIZE, how: fin|rst}} or "
            f"{{dribble: {{rate: RATE}}}}, got {describe(node)}",
        )
        return None
    (kind, (_, inner)) = next(iter(node.entries.items()))
    sub = f"{path}.{kind}"
    if kind == "partial":
        found = c.fields(inner, sub, ("bytes", "how"), required=("bytes",))
        if found is None or "bytes" not in found:
            return None
        size = check_size(c, found["bytes"], f"{sub}.bytes")
        how = CloseHow.FIN
        if "how" in found:
            how = c.member(found["how"], f"{sub}.how", list(CloseHow), "'how' (fin or rst)") or how
        return None if size is None else ForwardThen(end=how, cut_bytes=size)
    found = c.fields(inner, sub, ("rate",), required=("rate",))
    if found is None or "rate" not in found:
        return None
    rate = c.unit(found["rate"], f"{sub}.rate", parse_rate)
    return None if rate is None else ForwardThen(rate_bytes_per_s=rate)

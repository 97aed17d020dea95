"""Durations, sizes and the distribution grammar, checked where each part stands.

A timing is a duration or a one-key mapping naming a distribution (profile-v1.md "Units"):
`{uniform: [LOW, HIGH]}`, `{normal: {mean, stddev}}`, `{lognormal: {median, sigma}}`. This is
the only place that grammar is read; `DISTRIBUTIONS` is the closed set of its names.
"""

from __future__ import annotations

from collections.abc import Callable

from .check import Checker
from .describe import choice_problem, describe_value
from .nodes import MapNode, Node, SeqNode, describe, key_path
from .units import Duration, Fixed, LogNormal, Normal, Uniform, parse_duration, parse_size

__all__ = ["DISTRIBUTIONS", "check_duration", "check_size", "check_timing"]

#: Largest `sigma` of a log-normal: beyond it, draws are all 0 or all the one-year cap.
MAX_SIGMA = 10


def check_duration(c: Checker, node: Node, path: str, *, positive: bool = False) -> float | None:
    """A plain duration in seconds (no distribution)."""
    if isinstance(node, MapNode):
        message = f"expected a plain duration such as '2s' here, not {describe(node)}"
        c.problem(node, path, message)
        return None
    seconds = c.unit(node, path, parse_duration)
    if seconds is not None and positive and seconds <= 0:
        c.problem(node, path, f"expected a duration above 0, got {describe(node)}")
        return None
    return seconds


def check_size(c: Checker, node: Node, path: str, *, positive: bool = False) -> int | None:
    size = c.unit(node, path, parse_size)
    if size is not None and positive and size <= 0:
        c.problem(node, path, f"expected a size above 0, got {describe(node)}")
        return None
    return size


def check_timing(c: Checker, node: Node, path: str) -> Duration | None:
    """A duration or a distribution mapping."""
    if not isinstance(node, MapNode):
        seconds = check_duration(c, node, path)
        return None if seconds is None else Fixed(seconds)
    entries = {k: v for k, v in node.entries.items() if not k.startswith("x-")}
    if not entries:
        c.problem(
            node,
            path,
            "expected a duration or a distribution ({uniform: [LOW, HIGH]}, "
            "{normal: {mean, stddev}} or {lognormal: {median, sigma}}), got an empty mapping",
        )
        return None
    if len(entries) > 1:
        c.problem(node, path, f"expected one distribution, got {len(entries)}: {', '.join(entries)}")
        return None
    ((name, (key_node, args)),) = entries.items()
    sub = key_path(path, name)
    check = _DISTRIBUTIONS.get(name)
    if check is None:
        c.problem(
            key_node, sub, choice_problem(name, describe_value(name), DISTRIBUTIONS, "distribution")
        )
        return None
    return check(c, args, sub)


def _uniform(c: Checker, args: Node, path: str) -> Uniform | None:
    if not isinstance(args, SeqNode) or len(args.items) != 2:
        message = f"expected a list of two durations [LOW, HIGH], got {describe(args)}"
        c.problem(args, path, message)
        return None
    low_node, high_node = args.items
    low = check_duration(c, low_node, f"{path}[0]")
    high = check_duration(c, high_node, f"{path}[1]")
    if low is None or high is None:
        return None
    if low > high:
        message = f"expected LOW <= HIGH, got LOW {describe(low_node)} > HIGH {describe(high_node)}"
        c.problem(args, path, message)
        return None
    return Uniform(low, high)


def _parameters(c: Checker, args: Node, path: str, keys: tuple[str, str], what: str) -> list[Node]:
    """The two parameters of a distribution, or [] when one is missing or another is there."""
    parts = c.fields(args, path, keys, required=keys, what=what)
    return [parts[key] for key in keys] if parts is not None and len(parts) == len(keys) else []


def _normal(c: Checker, args: Node, path: str) -> Normal | None:
    what = "{mean: DURATION, stddev: DURATION}"
    parameters = _parameters(c, args, path, ("mean", "stddev"), what)
    if not parameters:
        return None
    mean = check_duration(c, parameters[0], f"{path}.mean")
    stddev = check_duration(c, parameters[1], f"{path}.stddev")
    return None if mean is None or stddev is None else Normal(mean, stddev)


def _lognormal(c: Checker, args: Node, path: str) -> LogNormal | None:
    what = "{median: DURATION, sigma: NUMBER}"
    parameters = _parameters(c, args, path, ("median", "sigma"), what)
    if not parameters:
        return None
    median = check_duration(c, parameters[0], f"{path}.median", positive=True)
    sigma = c.number(parameters[1], f"{path}.sigma", 0, MAX_SIGMA)
    return None if median is None or sigma is None else LogNormal(median, sigma)


_DISTRIBUTIONS: dict[str, Callable[[Checker, Node, str], Duration | None]] = {
    "uniform": _uniform,
    "normal": _normal,
    "lognormal": _lognormal,
}
#: The distributions' names, in the order messages list them.
DISTRIBUTIONS = tuple(_DISTRIBUTIONS)

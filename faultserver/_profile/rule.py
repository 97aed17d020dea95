"""`rules`: each rule's own keys, its `match`, and its action's keys as the action table says.

A rule's keys are `actions.RULE_KEYS` plus those of its action (`actions.ACTIONS`); nothing
here names an action. Problems come in the order a reader meets them: the action, keys that
do not belong, then the rule's keys, then the action's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .actions import (
    ACTIONS,
    CONNECT_ACTIONS,
    RULE_KEYS,
    ActionSpec,
    missing_key_problem,
    one_of_problem,
    unknown_action_key,
)
from .check import Checker, check_each
from .describe import unknown_key
from .model import Action, At, Match, Rule
from .nodes import MapNode, Node, ScalarNode, SeqNode, describe, is_null, key_path, non_null
from .regex import PathRegex, RegexError
from .timing import check_timing
from .units import parse_comparison
from .values import TOKEN, build, check_count, check_header_name, check_header_value, read_keys

__all__ = ["MATCH_KEYS", "check_rules"]

MATCH_KEYS = ("method", "path", "headers", "request_on_connection", "sni", "alpn")
#: What a rule may match on, by when it is checked (`at: connect` has nothing to match).
_MATCHABLE = {
    At.REQUEST: ("method", "path", "headers", "request_on_connection"),
    At.CONNECT: (),
    At.HANDSHAKE: ("sni", "alpn"),
}
#: Why a key cannot be matched on, by when the rule is checked.
_UNMATCHABLE = {
    At.REQUEST: "which matches requests (sni and alpn are for at: handshake)",
    At.CONNECT: "where no request has been read",
    At.HANDSHAKE: "where only the TLS client hello has been read (match on sni, alpn)",
}
#: Any action's keys, for a rule whose action is missing or unknown.
_ALL_ACTION_KEYS = tuple(sorted({key for spec in ACTIONS.values() for key in spec.keys}))


def check_rules(c: Checker, node: Node, path: str) -> tuple[Rule, ...] | None:
    """A list of rules (null: none); rule names are unique, `rule-<index>` by default."""
    if is_null(node):
        return ()
    if not isinstance(node, SeqNode):
        c.problem(node, path, f"expected a list of rules, got {describe(node)}")
        return None
    names: dict[str, str] = {}

    def check(item: Node, item_path: str, index: int) -> Rule | None:
        rule = check_rule(c, item, item_path, index)
        if isinstance(item, MapNode):
            _check_unique_name(c, item, item_path, index, names)
        return rule

    return check_each(c, node, path, check)


def _check_unique_name(
    c: Checker, item: MapNode, path: str, index: int, names: dict[str, str]
) -> None:
    entry = item.entries.get("name")
    where: Node = item
    name: object = f"rule-{index}"
    if entry is not None and not is_null(entry[1]):
        where = entry[1]
        name = where.value if isinstance(where, ScalarNode) else None
    if not isinstance(name, str):
        return
    if name in names:
        where_path = path if where is item else f"{path}.name"
        c.problem(where, where_path, f"duplicate rule name {name!r} (also {names[name]})")
    else:
        names[name] = path


def check_rule(c: Checker, node: Node, path: str, index: int) -> Rule | None:
    if not isinstance(node, MapNode):
        message = f"expected a rule (a mapping with an action), got {describe(node)}"
        c.problem(node, path, message)
        return None
    entries = {k: v for k, (_, v) in node.entries.items() if not k.startswith("x-")}
    mark = c.mark()
    spec = _check_action_name(c, node, entries, path)
    _check_keys(c, node, entries, path, spec)
    name = _check_name(c, entries.get("name"), path, index)
    given: dict[str, object] = {}
    at = At.REQUEST
    if "at" in entries:
        # a wrong `at` is reported, and the rest of the rule checked as for a request
        at = c.member(entries["at"], f"{path}.at", list(At), "'at' value", "an") or At.REQUEST
        given["at"] = at
    if "match" in entries:
        given["match"] = check_match(c, entries["match"], f"{path}.match", at)
    if "probability" in entries:
        given["probability"] = c.number(entries["probability"], f"{path}.probability", 0, 1)
    if (times := non_null(entries, "times")) is not None:
        given["times"] = check_count(c, times, f"{path}.times")
    if (delay := non_null(entries, "delay")) is not None:
        given["delay"] = check_timing(c, delay, f"{path}.delay")
    action = None
    if spec is not None:
        action = _check_action_at(c, spec, entries, path, at)
    if not c.clean_since(mark) or name is None or action is None:
        return None
    return build(Rule, {"name": name, "action": action, **given})


def _check_action_name(
    c: Checker, node: MapNode, entries: Mapping[str, Node], path: str
) -> ActionSpec | None:
    if "action" not in entries:
        c.problem(node, path, "missing required key 'action'")
        return None
    name = c.choice(entries["action"], f"{path}.action", list(ACTIONS), "action")
    return None if name is None else ACTIONS[name]


def _check_keys(
    c: Checker, node: MapNode, entries: Mapping[str, Node], path: str, spec: ActionSpec | None
) -> None:
    """Keys that are neither the rule's nor its action's (any action's, without one)."""
    allowed = RULE_KEYS + (tuple(spec.keys) if spec is not None else _ALL_ACTION_KEYS)
    for key in entries:
        if key in allowed:
            continue
        if spec is None:
            message = unknown_key(key, allowed)
        else:
            message = unknown_action_key(key, spec.name.value, RULE_KEYS)
        c.problem(node.entries[key][0], key_path(path, key), message)


def _check_name(c: Checker, node: Node | None, path: str, index: int) -> str | None:
    if node is None or is_null(node):
        return f"rule-{index}"
    name = c.string(node, f"{path}.name", "a rule name (a string)")
    if name is not None and (not name or not name.isprintable()):
        c.problem(
            node,
            f"{path}.name",
            "expected a non-empty rule name without control characters, "
            f"got {describe(node)}",
        )
        return None
    return name


def _check_action_at(
    c: Checker, spec: ActionSpec, entries: Mapping[str, Node], path: str, at: At
) -> Action | None:
    if at is not At.REQUEST and not spec.at_connect:
        c.problem(
            entries["action"],
            f"{path}.action",
            f"action {spec.name.value!r} cannot run at: {at.value}, where no request has been "
            f"read (expected one of: {', '.join(CONNECT_ACTIONS)})",
        )
        return None
    return check_action(c, spec, entries, path)


def check_action(
    c: Checker, spec: ActionSpec, entries: Mapping[str, Node], path: str
) -> Action | None:
    """The action `spec` with the keys given in `entries` (a rule's keys, the action's among
    them), read as the table says."""
    mark = c.mark()
    values = read_keys(c, entries, spec.keys, path)
    action_node = entries["action"]
    missing = missing_key_problem(spec, list(entries))
    if missing is not None:
        c.problem(action_node, path, missing)
        return None
    given = [key for key in spec.keys if key in entries and not is_null(entries[key])]
    broken = one_of_problem(spec, given)
    if broken is not None:
        key, message = broken
        if key:
            c.problem(entries[key], key_path(path, key), message)
        else:
            c.problem(action_node, path, message)
        return None
    model: Callable[..., Action] = spec.model
    return build(model, values) if c.clean_since(mark) else None


# --- match ------------------------------------------------------------------------------


def check_match(c: Checker, node: Node, path: str, at: At) -> Match | None:
    if is_null(node):
        return Match()
    mark = c.mark()
    fields = c.fields(node, path, MATCH_KEYS)
    if fields is None:
        return None
    assert isinstance(node, MapNode)
    for key in fields:
        if key not in _MATCHABLE[at]:
            c.problem(
                node.entries[key][0],
                f"{path}.{key}",
                f"cannot match on {key} at: {at.value}, {_UNMATCHABLE[at]}",
            )
    if not c.clean_since(mark):
        return None
    given: dict[str, object] = {}
    if "method" in fields:
        given["methods"] = _check_methods(c, fields["method"], f"{path}.method")
    if "path" in fields:
        given.update(_check_path(c, fields["path"], f"{path}.path"))
    if "headers" in fields:
        given["headers"] = _check_match_headers(c, fields["headers"], f"{path}.headers")
    if "request_on_connection" in fields:
        number_path = f"{path}.request_on_connection"
        given["request_on_connection"] = c.unit(
            fields["request_on_connection"], number_path, parse_comparison
        )
    if "sni" in fields:
        given["sni_glob"] = c.string(fields["sni"], f"{path}.sni", "a glob of a server name")
    if "alpn" in fields:
        given["alpn"] = c.string(fields["alpn"], f"{path}.alpn", "a protocol name such as h2")
    return build(Match, given) if c.clean_since(mark) else None


def _check_methods(c: Checker, node: Node, path: str) -> frozenset[str] | None:
    items = node.items if isinstance(node, SeqNode) else [node]
    if isinstance(node, SeqNode) and not items:
        message = "expected a method or a non-empty list of methods, got an empty list"
        c.problem(node, path, message)
        return None
    mark = c.mark()
    methods = set()
    for i, item in enumerate(items):
        sub = f"{path}[{i}]" if isinstance(node, SeqNode) else path
        value = item.value if isinstance(item, ScalarNode) else None
        if not isinstance(value, str) or TOKEN.fullmatch(value) is None:
            c.problem(item, sub, f"expected an HTTP method such as 'GET', got {describe(item)}")
            continue
        methods.add(value.upper())
    return frozenset(methods) if c.clean_since(mark) else None


def _check_path(c: Checker, node: Node, path: str) -> dict[str, object]:
    """`{"path_glob": ...}` or `{"path_regex": ...}`; empty on a problem."""
    if not isinstance(node, MapNode):
        glob = c.string(node, path, "a glob such as '/api/*' or {regex: ...}")
        return {} if glob is None else {"path_glob": glob}
    fields = c.fields(node, path, ("regex",), required=("regex",))
    if fields is None or "regex" not in fields:
        return {}
    regex_node = fields["regex"]
    pattern = c.string(regex_node, f"{path}.regex", "a regular expression (a string)")
    if pattern is None:
        return {}
    try:
        return {"path_regex": PathRegex.compile(pattern)}
    except RegexError as exc:
        c.problem(regex_node, f"{path}.regex", str(exc))
        return {}


def _check_match_headers(c: Checker, node: Node, path: str) -> tuple[tuple[str, str], ...] | None:
    """Header name (any case) -> glob of its value; names lower-cased, and unique so."""
    if not isinstance(node, MapNode):
        message = f"expected a mapping of header names to globs, got {describe(node)}"
        c.problem(node, path, message)
        return None
    mark = c.mark()
    globs: dict[str, str] = {}
    for name, (key_node, value_node) in node.entries.items():
        sub = key_path(path, name)
        lower = check_header_name(c, key_node, sub)
        glob = check_header_value(c, value_node, sub)
        if lower is None or glob is None:
            continue
        if lower in globs:
            c.problem(key_node, sub, f"duplicate header {lower!r} (header names ignore case)")
        globs[lower] = glob
    return tuple(globs.items()) if c.clean_since(mark) else None

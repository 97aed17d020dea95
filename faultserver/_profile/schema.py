"""The JSON Schema (draft 2020-12) of the profile format, for editors and outside tools.

It agrees with the loader (`load.py`) on every key and every closed set of values; the
loader remains the judge of what a schema cannot say (a regex that does not compile, a
uniform whose LOW is above HIGH, unique names and binds, the value of a size given as a
string). Actions and their keys come from `_actions.ACTIONS`, as in the loader.
"""

from __future__ import annotations

from typing import Any

from .. import _actions
from .load import DISTRIBUTIONS, MATCH_KEYS, RULE_KEYS, SUPPORTED_VERSIONS, THEN_ACTIONS
from .model import AcceptMode, At, Framing
from .units import MAX_DURATION_S, MAX_SIZE_BYTES

__all__ = ["profile_schema"]

Schema = dict[str, Any]

_X_KEYS: Schema = {"^x-": {}}
_NUMBER = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)"
DURATION_PATTERN = rf"^\s*{_NUMBER}\s*([mM][sS]|[sSmMhH])\s*$"
SIZE_PATTERN = rf"^\s*{_NUMBER}\s*([bB]|[kKmMgG][iI]?[bB])?\s*$"
RATE_PATTERN = rf"^\s*{_NUMBER}\s*([bB]|[kKmMgG][iI]?[bB])?\s*/s\s*$"
COMPARISON_PATTERN = r"^\s*(>=|<=|==|!=|>|<|=)?\s*[0-9]+\s*$"
TOKEN_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
NAME_PATTERN = r"^[a-z0-9_-]+$"
BIND_PATTERN = r"^(\[[0-9A-Fa-f:.]+(%[^\]]+)?\]|localhost|[0-9]+(\.[0-9]+){3}):[0-9]{1,5}$"


def _object(properties: Schema, *, required: tuple[str, ...] = (), description: str = "") -> Schema:
    """A mapping of the format: only these keys, and `x-` keys, which are ignored."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "patternProperties": _X_KEYS,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [{"type": "null"}, schema]}


def _enum(values: list[str], description: str = "") -> Schema:
    schema: Schema = {"type": "string", "enum": values}
    if description:
        schema["description"] = description
    return schema


def _defs() -> dict[str, Schema]:
    duration = {
        "description": "seconds (1.5) or a string with a unit: 250ms, 2s, 1m, 1h",
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
    }
    positive_duration = {
        "description": "a duration above 0",
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
    }
    size = {
        "description": "bytes (512) or a string: 512B, 4KiB, 1MiB, 1KB (=1000)",
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": MAX_SIZE_BYTES},
            {"type": "string", "pattern": SIZE_PATTERN},
        ],
    }
    positive_size = {
        "description": "a size above 0",
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": MAX_SIZE_BYTES},
            {"type": "string", "pattern": SIZE_PATTERN},
        ],
    }
    rate = {
        "description": "a size per second: 1KiB/s, 100B/s",
        "type": "string",
        "pattern": RATE_PATTERN,
    }
    distribution_one_of = [
        _object(
            {
                "uniform": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/duration"},
                    "minItems": 2,
                    "maxItems": 2,
                    "description": "[LOW, HIGH], LOW not above HIGH",
                }
            },
            required=("uniform",),
        ),
        _object(
            {
                "normal": _object(
                    {"mean": {"$ref": "#/$defs/duration"}, "stddev": {"$ref": "#/$defs/duration"}},
                    required=("mean", "stddev"),
                    description="clipped at 0",
                )
            },
            required=("normal",),
        ),
        _object(
            {
                "lognormal": _object(
                    {
                        "median": {"$ref": "#/$defs/positive_duration"},
                        "sigma": {"type": "number", "minimum": 0, "maximum": 10},
                    },
                    required=("median", "sigma"),
                )
            },
            required=("lognormal",),
        ),
    ]
    assert [next(iter(d["properties"])) for d in distribution_one_of] == list(DISTRIBUTIONS)
    timing = {
        "description": "a duration, or a distribution drawn afresh at each use",
        "anyOf": [{"$ref": "#/$defs/duration"}, *distribution_one_of],
    }
    header_value = {
        "anyOf": [{"type": "string", "pattern": "^[^\r\n\u0000]*$"}, {"type": "number"}]
    }
    headers = {
        "type": "object",
        "description": "header name -> value (numbers are sent as written)",
        "propertyNames": {"pattern": TOKEN_PATTERN},
        "additionalProperties": {"$ref": "#/$defs/header_value"},
    }
    body = {
        "description": "a string, or {size: SIZE} of generated filler; null: the JSON echo",
        "anyOf": [
            {"type": "null"},
            {"type": "string"},
            _object({"size": {"$ref": "#/$defs/size"}}, required=("size",)),
        ],
    }
    framing = _enum([f.value for f in Framing])
    status = {"type": "integer", "minimum": 100, "maximum": 599}
    return {
        "duration": duration,
        "positive_duration": positive_duration,
        "size": size,
        "positive_size": positive_size,
        "rate": rate,
        "timing": timing,
        "header_value": header_value,
        "headers": headers,
        "body": body,
        "framing": framing,
        "status": status,
        "accept": _enum([m.value for m in AcceptMode]),
        "bind": {
            "type": "string",
            "description": "host:port; [::1]:8080 for IPv6; the host is an IP or localhost",
            "pattern": BIND_PATTERN,
        },
        "match": _match_schema(),
        "rule": _rule_schema(),
        "rules": _nullable({"type": "array", "items": {"$ref": "#/$defs/rule"}}),
        "listener": _listener_schema(),
    }


#: Schemas of the kinds of values in `_actions.ACTIONS[...].keys`, as action keys.
_KIND_SCHEMAS: dict[str, Schema] = {
    "duration": {"$ref": "#/$defs/duration"},
    "timing": {"$ref": "#/$defs/timing"},
    "size": {"$ref": "#/$defs/size"},
    "rate": {"$ref": "#/$defs/rate"},
    "status": {"$ref": "#/$defs/status"},
    "headers": _nullable({"$ref": "#/$defs/headers"}),
    "body": {"$ref": "#/$defs/body"},
    "framing": {"$ref": "#/$defs/framing"},
    "then": _enum(list(THEN_ACTIONS)),
}
#: Action keys that may be null (meaning "not given"), as the loader allows: those whose
#: model field defaults to None.
_NULLABLE_ACTION_KEYS = {
    ("respond", "status"),
    ("respond", "framing"),
    ("hang", "for"),
    ("dribble", "interval"),
    ("dribble", "rate"),
}


def _match_schema() -> Schema:
    method = {"type": "string", "pattern": TOKEN_PATTERN}
    properties = {
        "method": {
            "description": "a method or a list of them (any case)",
            "anyOf": [method, {"type": "array", "items": method, "minItems": 1}],
        },
        "path": {
            "description": "a glob (fnmatch; * also matches /) or {regex: ...}",
            "anyOf": [
                {"type": "string"},
                _object({"regex": {"type": "string", "format": "regex"}}, required=("regex",)),
            ],
        },
        "headers": {
            "type": "object",
            "description": "header name (any case) -> glob of its value",
            "propertyNames": {"pattern": TOKEN_PATTERN},
            "additionalProperties": {"$ref": "#/$defs/header_value"},
        },
        "request_on_connection": {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": COMPARISON_PATTERN},
            ]
        },
    }
    assert tuple(properties) == MATCH_KEYS
    return _nullable(_object(properties, description="all given conditions must hold"))


def _rule_schema() -> Schema:
    actions = _actions.ACTIONS
    properties: Schema = {
        "name": _nullable({"type": "string", "minLength": 1}),
        "at": _enum([a.value for a in At]),
        "match": {"$ref": "#/$defs/match"},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "times": _nullable({"type": "integer", "minimum": 1}),
        "delay": _nullable({"$ref": "#/$defs/timing"}),
        "action": {
            "type": "string",
            "enum": list(actions),
            "description": "; ".join(f"{name}: {spec.help}" for name, spec in actions.items()),
        },
    }
    assert tuple(properties) == RULE_KEYS
    per_action = []
    for name, spec in actions.items():
        own: Schema = {}
        for key, kind in spec.keys.items():
            schema = _KIND_SCHEMAS[kind]
            own[key] = _nullable(schema) if (name, key) in _NULLABLE_ACTION_KEYS else schema
        then: Schema = {
            "properties": own,
            "propertyNames": {"anyOf": [{"enum": [*RULE_KEYS, *own]}, {"pattern": "^x-"}]},
        }
        if name == "partial":
            then["required"] = ["bytes"]
        if name == "dribble":
            then["properties"]["chunk"] = {"$ref": "#/$defs/positive_size"}
            given = {"not": {"type": "null"}}
            then["oneOf"] = [
                {"required": ["interval"], "properties": {"interval": given}},
                {"required": ["rate"], "properties": {"rate": given}},
            ]
        per_action.append(
            {
                "if": {"properties": {"action": {"const": name}}, "required": ["action"]},
                "then": then,
            }
        )
    at_connect = {
        "if": {"properties": {"at": {"const": At.CONNECT.value}}, "required": ["at"]},
        "then": {
            "properties": {
                "action": {"enum": list(_actions.CONNECT_ACTIONS)},
                "match": {
                    "description": "no request has been read at: connect",
                    "anyOf": [
                        {"type": "null"},
                        {"type": "object", "propertyNames": {"pattern": "^x-"}},
                    ],
                },
            }
        },
    }
    return {
        "type": "object",
        "description": "checked in order; the first that matches, passes its probability "
        "draw and is not spent acts",
        "properties": properties,
        "patternProperties": _X_KEYS,
        "required": ["action"],
        "allOf": [*per_action, at_connect],
        "unevaluatedProperties": False,
    }


def _listener_schema() -> Schema:
    response = _nullable(
        _object(
            {
                "status": {"$ref": "#/$defs/status"},
                "headers": _nullable({"$ref": "#/$defs/headers"}),
                "body": {"$ref": "#/$defs/body"},
                "framing": {"$ref": "#/$defs/framing"},
            },
            description="the healthy answer, used when no rule acts",
        )
    )
    keepalive = _nullable(
        _object(
            {
                "idle_close": _nullable({"$ref": "#/$defs/timing"}),
                "max_requests": _nullable({"type": "integer", "minimum": 1}),
            }
        )
    )
    phase = _object(
        {
            "duration": {"$ref": "#/$defs/positive_duration"},
            "accept": {"$ref": "#/$defs/accept"},
            "rules": {"$ref": "#/$defs/rules"},
        },
        required=("duration",),
    )
    schedule = _nullable(
        _object(
            {
                "repeat": {"type": "boolean"},
                "phases": {"type": "array", "items": phase, "minItems": 1},
            },
            required=("phases",),
        )
    )
    limits = _nullable(
        _object(
            {
                "header_timeout": {"$ref": "#/$defs/positive_duration"},
                "max_header_bytes": {"$ref": "#/$defs/positive_size"},
                "max_body_bytes": {"$ref": "#/$defs/size"},
            },
            description="defences against hostile clients (an extension of the format)",
        )
    )
    return _object(
        {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "bind": {"$ref": "#/$defs/bind"},
            "accept": {"$ref": "#/$defs/accept"},
            "backlog": {"type": "integer", "minimum": 0, "maximum": 65535},
            "max_connections": _nullable({"type": "integer", "minimum": 1}),
            "response": response,
            "keepalive": keepalive,
            "rules": {"$ref": "#/$defs/rules"},
            "schedule": schedule,
            "limits": limits,
        },
        required=("name", "bind"),
    )


def profile_schema() -> dict[str, Any]:
    """The JSON Schema of profile-v1.md, as plain data (a new dict at each call)."""
    top = _object(
        {
            "version": {
                "enum": list(SUPPORTED_VERSIONS),
                "description": "the format's version",
            },
            "seed": _nullable(
                {"type": "integer", "description": "makes every random draw reproducible"}
            ),
            "fault_header": _nullable(
                {
                    "type": "string",
                    "pattern": TOKEN_PATTERN,
                    "description": "a request header that asks for a fault (default x-fault); "
                    "null turns it off",
                }
            ),
            "listeners": {
                "description": "the listeners that faultserver opens",
                "type": "array",
                "items": {"$ref": "#/$defs/listener"},
                "minItems": 1,
            },
            "control": _nullable(
                _object(
                    {
                        "bind": _nullable({"$ref": "#/$defs/bind"}),
                        "token": _nullable({"type": "string", "minLength": 1}),
                    },
                    description="the admin API",
                )
            ),
        },
        required=("version", "listeners"),
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "faultserver profile, version 1",
        **top,
        "$defs": _defs(),
    }

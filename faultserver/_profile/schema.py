"""The JSON Schema (draft 2020-12) of the profile format, for editors and outside tools.

It is drawn from the loader's own tables: the action table (`actions.ACTIONS`), the tables of
keys of `response`, `keepalive` and `limits`, the kinds of values (`keys.ValueKind`, one
`$defs` entry each) and the key lists of each section. The loader remains the judge of what a
schema cannot say (a regex RE2 does not take, a uniform whose LOW is above HIGH, unique names
and binds, the value of a size given as a string), and it is never more lenient than this
schema (tests/unit/test_profile_fuzz.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .actions import ACTIONS, CONNECT_ACTIONS, RULE_KEYS, THEN_ACTIONS, ActionSpec
from .document import MAX_SEED, MAX_SUBSCRIBERS, MIN_SEED, SUPPORTED_VERSIONS, TOP_KEYS
from .keys import Key, ValueKind
from .listener import (
    H2_KEYS,
    KEEPALIVE_KEYS,
    LIMITS_KEYS,
    LISTENER_KEYS,
    MAX_BACKLOG,
    NAME,
    RESPONSE_KEYS,
)
from .model import (
    AcceptMode,
    At,
    CertificateMode,
    ClientAuth,
    CloseHow,
    Framing,
    GoawayThen,
    GrpcStatus,
    H2Error,
    LastStream,
    Protocol,
    ProxyProtocol,
    UpstreamFailure,
    UpstreamHost,
)
from .rule import MATCH_KEYS
from .schedule import PHASE_KEYS, SCHEDULE_KEYS
from .timing import DISTRIBUTIONS, MAX_SIGMA
from .tls import SERVED_ALPN, TLS_KEYS, TLS_VERSIONS
from .units import MAX_COUNT, MAX_DURATION_S, MAX_SIZE_BYTES
from .upstream import POOL_KEYS, UPSTREAM_TIMEOUT_KEYS
from .values import TOKEN

__all__ = ["profile_schema"]

Schema = dict[str, Any]

_X_KEYS: Schema = {"^x-": {}}
_NUMBER = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)"
DURATION_PATTERN = rf"^\s*{_NUMBER}\s*([mM][sS]|[sSmMhH])\s*$"
SIZE_PATTERN = rf"^\s*{_NUMBER}\s*([bB]|[kKmMgG][iI]?[bB])?\s*$"
RATE_PATTERN = rf"^\s*{_NUMBER}\s*([bB]|[kKmMgG][iI]?[bB])?\s*/s\s*$"
COMPARISON_PATTERN = r"^\s*(>=|<=|==|!=|>|<|=)?\s*[0-9]+\s*$"
TOKEN_PATTERN = f"^{TOKEN.pattern}$"
NAME_PATTERN = f"^{NAME.pattern}$"
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


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def _integer(low: int, high: int, description: str = "") -> Schema:
    schema: Schema = {"type": "integer", "minimum": low, "maximum": high}
    if description:
        schema["description"] = description
    return schema


def _unit(description: str, number: Schema, pattern: str) -> Schema:
    return {"description": description, "anyOf": [number, {"type": "string", "pattern": pattern}]}


def _keys(keys: Mapping[str, Key]) -> Schema:
    """The properties of a table of keys: each kind's `$defs` entry, or null where allowed."""
    return {
        name: _nullable(_ref(key.kind.value)) if key.nullable else _ref(key.kind.value)
        for name, key in keys.items()
    }


def _kind_defs() -> dict[str, Schema]:
    """One `$defs` entry per `ValueKind`, under the kind's value."""
    seconds: Schema = {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S}
    defs = {
        ValueKind.DURATION: _unit(
            "seconds (1.5) or a string with a unit: 250ms, 2s, 1m, 1h", seconds, DURATION_PATTERN
        ),
        ValueKind.POSITIVE_DURATION: _unit(
            "a duration above 0",
            {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
            DURATION_PATTERN,
        ),
        ValueKind.TIMING: {
            "description": "a duration, or a distribution drawn afresh at each use",
            "anyOf": [_ref("duration"), *_distributions()],
        },
        ValueKind.SIZE: _unit(
            "bytes (512) or a string: 512B, 4KiB, 1MiB, 1KB (=1000)",
            _integer(0, MAX_SIZE_BYTES),
            SIZE_PATTERN,
        ),
        ValueKind.POSITIVE_SIZE: _unit(
            "a size above 0", _integer(1, MAX_SIZE_BYTES), SIZE_PATTERN
        ),
        ValueKind.RATE: {
            "description": "a size per second: 1KiB/s, 100B/s",
            "type": "string",
            "pattern": RATE_PATTERN,
        },
        ValueKind.STATUS: _integer(100, 599),
        ValueKind.COUNT: _integer(1, MAX_COUNT),
        ValueKind.HEADERS: {
            "type": "object",
            "description": "header name -> value (numbers are sent as written)",
            "propertyNames": {"pattern": TOKEN_PATTERN},
            "additionalProperties": _ref("header_value"),
        },
        ValueKind.BODY: {
            "description": "a string, or {size: SIZE} of generated filler; null: the JSON echo",
            "anyOf": [
                {"type": "null"},
                {"type": "string"},
                _object({"size": _ref("size")}, required=("size",)),
            ],
        },
        ValueKind.FRAMING: _enum([f.value for f in Framing]),
        ValueKind.THEN: _enum([a.value for a in THEN_ACTIONS]),
        **_protocol_kind_defs(),
    }
    assert set(defs) == set(ValueKind), "every kind of value needs its schema"
    return {kind.value: schema for kind, schema in defs.items()}


def _protocol_kind_defs() -> dict[ValueKind, Schema]:
    """The kinds of TLS's and HTTP/2's keys: booleans, error codes, GOAWAY, gRPC."""
    return {
        ValueKind.BOOLEAN: {"type": "boolean"},
        ValueKind.H2_ERROR: _enum(list(H2Error.__members__), "an HTTP/2 error code (any case)"),
        ValueKind.LAST_STREAM: {
            "description": "the last stream a GOAWAY answers: current, previous, or 0 (none)",
            "enum": [m.value for m in LastStream if m is not LastStream.ZERO] + [0, "0"],
        },
        ValueKind.GOAWAY_THEN: _enum([m.value for m in GoawayThen]),
        ValueKind.FORWARD_THEN: {
            "description": "what forward does to the upstream's answer",
            "anyOf": [
                _enum(["close", "reset"]),
                _object(
                    {
                        "partial": _object(
                            {"bytes": _ref("size"), "how": _enum([h.value for h in CloseHow])},
                            required=("bytes",),
                        )
                    },
                    required=("partial",),
                ),
                _object(
                    {"dribble": _object({"rate": _ref("rate")}, required=("rate",))},
                    required=("dribble",),
                ),
            ],
        },
        ValueKind.GRPC: _object(
            {
                "status": {
                    "anyOf": [_enum(list(GrpcStatus.__members__)), _integer(0, 16)],
                    "description": "a gRPC status, by name (any case) or code",
                },
                "message": {"type": "string", "pattern": "^[^\r\n\u0000]*$"},
            },
            description="a gRPC answer: grpc-status and grpc-message (trailers-only unless OK)",
        ),
    }


def _distributions() -> list[Schema]:
    branches = {
        "uniform": {
            "type": "array",
            "items": _ref("duration"),
            "minItems": 2,
            "maxItems": 2,
            "description": "[LOW, HIGH], LOW not above HIGH",
        },
        "normal": _object(
            {"mean": _ref("duration"), "stddev": _ref("duration")},
            required=("mean", "stddev"),
            description="clipped at 0",
        ),
        "lognormal": _object(
            {
                "median": _ref("positive_duration"),
                "sigma": {"type": "number", "minimum": 0, "maximum": MAX_SIGMA},
            },
            required=("median", "sigma"),
        ),
    }
    assert tuple(branches) == DISTRIBUTIONS
    return [_object({name: schema}, required=(name,)) for name, schema in branches.items()]


def _defs() -> dict[str, Schema]:
    return {
        **_kind_defs(),
        "header_value": {
            "anyOf": [{"type": "string", "pattern": "^[^\r\n\u0000]*$"}, {"type": "number"}]
        },
        "accept": _enum([m.value for m in AcceptMode]),
        "bind": {
            "type": "string",
            "description": "host:port; [::1]:8080 for IPv6; the host is an IP or localhost",
            "pattern": BIND_PATTERN,
        },
        "match": _match_schema(),
        "rule": _rule_schema(),
        "rules": _nullable({"type": "array", "items": _ref("rule")}),
        "listener": _listener_schema(),
    }


def _match_schema() -> Schema:
    method = {"type": "string", "pattern": TOKEN_PATTERN}
    properties = {
        "method": {
            "description": "a method or a list of them (any case)",
            "anyOf": [method, {"type": "array", "items": method, "minItems": 1}],
        },
        "path": {
            "description": "a glob (fnmatch; * also matches /) or {regex: ...} (RE2: no "
            "backreferences or lookaround)",
            "anyOf": [
                {"type": "string"},
                _object({"regex": {"type": "string", "format": "regex"}}, required=("regex",)),
            ],
        },
        "headers": {
            "type": "object",
            "description": "header name (any case) -> glob of its value",
            "propertyNames": {"pattern": TOKEN_PATTERN},
            "additionalProperties": _ref("header_value"),
        },
        "request_on_connection": {
            "anyOf": [_integer(1, MAX_COUNT), {"type": "string", "pattern": COMPARISON_PATTERN}]
        },
        "sni": {
            "type": "string",
            "description": "at: handshake: a glob of the server name the client asked for (SNI)",
        },
        "alpn": {
            "type": "string",
            "description": "at: handshake: a protocol the client offered by ALPN (h2, http/1.1)",
        },
    }
    assert tuple(properties) == MATCH_KEYS
    return _nullable(_object(properties, description="all given conditions must hold"))


def _rule_schema() -> Schema:
    properties: Schema = {
        "name": _nullable({"type": "string", "minLength": 1}),
        "at": _enum([a.value for a in At]),
        "match": _ref("match"),
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "times": _nullable(_ref(ValueKind.COUNT.value)),
        "delay": _nullable(_ref(ValueKind.TIMING.value)),
        "action": {
            "type": "string",
            "enum": list(ACTIONS),
            "description": "; ".join(f"{name}: {spec.help}" for name, spec in ACTIONS.items()),
        },
    }
    assert tuple(properties) == RULE_KEYS
    before_request = [
        {
            "if": {"properties": {"at": {"const": at.value}}, "required": ["at"]},
            "then": {
                "properties": {
                    "action": {"enum": list(CONNECT_ACTIONS)},
                    "match": {
                        "description": description,
                        "anyOf": [
                            {"type": "null"},
                            {"type": "object", "propertyNames": {"pattern": pattern}},
                        ],
                    },
                }
            },
        }
        for at, description, pattern in (
            (At.CONNECT, "no request has been read at: connect", "^x-"),
            (At.HANDSHAKE, "only the TLS client hello has been read", "^(x-.*|sni|alpn)$"),
        )
    ]
    return {
        "type": "object",
        "description": "checked in order; the first that matches, passes its probability "
        "draw and is not spent acts",
        "properties": properties,
        "patternProperties": _X_KEYS,
        "required": ["action"],
        "allOf": [*(_action_schema(spec) for spec in ACTIONS.values()), *before_request],
        "unevaluatedProperties": False,
    }


def _action_schema(spec: ActionSpec) -> Schema:
    """The keys a rule may have when its action is `spec`'s, and how many of them it needs."""
    then: Schema = {
        "properties": _keys(spec.keys),
        "propertyNames": {"anyOf": [{"enum": [*RULE_KEYS, *spec.keys]}, {"pattern": "^x-"}]},
    }
    if spec.required:
        then["required"] = list(spec.required)
    if spec.exactly_one_of:
        given = {"not": {"type": "null"}}
        then["oneOf"] = [
            {"required": [key], "properties": {key: given}} for key in spec.exactly_one_of
        ]
    return {
        "if": {"properties": {"action": {"const": spec.name.value}}, "required": ["action"]},
        "then": then,
    }


def _listener_schema() -> Schema:
    phase = _object(
        {
            "duration": _ref("positive_duration"),
            "accept": _ref("accept"),
            "rules": _ref("rules"),
            "tls": _object(
                {"certificate": _enum([m.value for m in CertificateMode])},
                required=("certificate",),
                description="a generated TLS listener's certificate during the phase",
            ),
        },
        required=("duration",),
    )
    assert tuple(phase["properties"]) == PHASE_KEYS
    schedule = _object(
        {"repeat": {"type": "boolean"}, "phases": {"type": "array", "items": phase, "minItems": 1}},
        required=("phases",),
    )
    assert tuple(schedule["properties"]) == SCHEDULE_KEYS
    properties = {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "bind": _ref("bind"),
        "accept": _ref("accept"),
        "backlog": _integer(0, MAX_BACKLOG),
        "max_connections": _nullable(_ref(ValueKind.COUNT.value)),
        "response": _nullable(
            _object(_keys(RESPONSE_KEYS), description="the healthy answer, used when no rule acts")
        ),
        "keepalive": _nullable(_object(_keys(KEEPALIVE_KEYS))),
        "rules": _ref("rules"),
        "schedule": _nullable(schedule),
        "limits": _nullable(
            _object(
                _keys(LIMITS_KEYS),
                description="defences against hostile clients (an extension of the format)",
            )
        ),
        "tls": _nullable(_tls_schema()),
        "proxy_protocol": _enum(
            [p.value for p in ProxyProtocol],
            "a PROXY protocol header before each connection's first byte: none, v1 or v2 (that "
            "version, required), or optional (either, or none)",
        ),
        "protocols": {
            "type": "array",
            "items": {"enum": [p.value for p in Protocol]},
            "minItems": 1,
            "description": "what the listener speaks (default [http/1.1]); h2: h2c by prior "
            "knowledge on plain TCP, ALPN h2 over TLS",
        },
        "h2": _nullable(_object(_keys(H2_KEYS), description="HTTP/2 settings and connection faults")),
        "upstream": _nullable(
            {
                "type": "string",
                "pattern": "^[hH][tT][tT][pP][sS]?://[^/?#@]+/?$",
                "description": "proxy mode: forward the requests no rule stops to http(s)://HOST:PORT",
            }
        ),
        "upstream_tls": _nullable(
            _object(
                {
                    "ca": {"type": "string", "description": "a PEM file of the CAs to trust"},
                    "verify": {"type": "boolean"},
                    "sni": {"type": "string", "minLength": 1},
                },
                description="how an https:// upstream is checked",
            )
        ),
        "upstream_timeouts": _nullable(_object(_keys(UPSTREAM_TIMEOUT_KEYS))),
        "upstream_failure": _enum(
            [f.value for f in UpstreamFailure],
            "a failed upstream gives 502/504 (gateway) or the same failure (mirror)",
        ),
        "pool": _nullable(_object(_keys(POOL_KEYS), description="the keep-alive pool to the upstream")),
        "host": _enum([h.value for h in UpstreamHost], "the Host a forwarded request carries"),
        "via": _nullable({"type": "string", "pattern": "^[!-~]+$"}),
    }
    assert tuple(properties) == LISTENER_KEYS
    return _object(properties, required=("name", "bind"))


def _tls_schema() -> Schema:
    version = {"enum": list(TLS_VERSIONS), "description": "a TLS version (1.2 or 1.3)"}
    properties = {
        "generate": {
            "type": "boolean",
            "description": "true: a throwaway CA and a certificate for the listener's host, "
            "localhost, 127.0.0.1, ::1 and `names`; the CA is written to a file",
        },
        "cert": {"type": "string", "description": "a PEM certificate (chain) file, relative to the profile"},
        "key": {"type": "string", "description": "its PEM private key file"},
        "names": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 253},
            "description": "more host names or IPs for a generated certificate",
        },
        "certificate": _enum(
            [m.value for m in CertificateMode],
            "with generate: the certificate shown, a good one or one that fails verification "
            "for one reason",
        ),
        "min_version": version,
        "max_version": version,
        "alpn": {
            "type": "array",
            "items": {"enum": list(SERVED_ALPN)},
            "minItems": 1,
            "description": "the ALPN protocols offered (default [http/1.1])",
        },
        "client_auth": _enum([a.value for a in ClientAuth], "ask for a client certificate (mTLS)"),
        "client_ca": {"type": "string", "description": "the PEM CA file that signs client certificates"},
    }
    assert tuple(properties) == TLS_KEYS
    return _object(
        properties,
        description="serve HTTPS: a PEM pair (cert, key) or generate: true",
    )


def profile_schema() -> dict[str, Any]:
    """The JSON Schema of the profile format, as plain data (a new dict at each call)."""
    properties = {
        "version": {"enum": list(SUPPORTED_VERSIONS), "description": "the format's version"},
        "seed": _nullable(
            _integer(MIN_SEED, MAX_SEED, "makes every random draw reproducible (a 64-bit integer)")
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
            "items": _ref("listener"),
            "minItems": 1,
        },
        "control": _nullable(
            _object(
                {
                    "bind": _nullable(_ref("bind")),
                    "token": _nullable({"type": "string", "minLength": 1}),
                    "allowed_hosts": _nullable(
                        {
                            "type": "array",
                            "items": {"type": "string", "minLength": 1, "maxLength": 253},
                            "description": "names a Host or Origin may give for the admin API "
                            "besides its address and localhost (no scheme, no port)",
                        }
                    ),
                    "max_subscribers": _nullable(
                        _integer(1, MAX_SUBSCRIBERS, "the most GET /events/stream readers at once")
                    ),
                    "tls": _nullable(_tls_schema()),
                },
                description="the admin API",
            )
        ),
    }
    assert tuple(properties) == TOP_KEYS
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "faultserver profile, version 1",
        **_object(properties, required=("version", "listeners")),
        "$defs": _defs(),
    }

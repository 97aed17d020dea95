"""How a key of the format is read: the kind of value it takes and the model field it fills.

The action table (`actions.py`) and the simple sections of a listener (`response`,
`keepalive`, `limits`) are written as tables of these, so that the loader (`values.py`), the
JSON Schema (`schema.py`) and the `X-Fault` parser all read a key the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Key", "ValueKind"]


class ValueKind(enum.Enum):
    """The kinds of values a key takes. The value names the schema's `$defs` entry."""

    #: seconds, or a string with a unit (`250ms`)
    DURATION = "duration"
    #: a duration above 0
    POSITIVE_DURATION = "positive_duration"
    #: a duration or a distribution (`{uniform: [1s, 2s]}`), drawn at each use
    TIMING = "timing"
    #: bytes, or a string with a unit (`4KiB`)
    SIZE = "size"
    #: a size above 0
    POSITIVE_SIZE = "positive_size"
    #: a size per second (`1KiB/s`)
    RATE = "rate"
    #: an HTTP status code, 100 to 599
    STATUS = "status"
    #: a whole number of 1 or more (`max_requests`)
    COUNT = "count"
    #: response headers: name -> value
    HEADERS = "headers"
    #: a response body: a string, or `{size: SIZE}` of filler
    BODY = "body"
    #: how a body's end is marked (`length`, `chunked`, `close`)
    FRAMING = "framing"
    #: what `partial` does after its bytes (`close`, `reset`, `hang`)
    THEN = "then"
    #: true or false
    BOOLEAN = "boolean"
    #: an HTTP/2 error code's name (`REFUSED_STREAM`)
    H2_ERROR = "h2_error"
    #: the last stream a GOAWAY answers (`current`, `previous`, `0`)
    LAST_STREAM = "last_stream"
    #: what follows a GOAWAY (`close`, `keep`)
    GOAWAY_THEN = "goaway_then"
    #: a gRPC answer: `{status: UNAVAILABLE, message: ...}`
    GRPC = "grpc"
    #: what `forward` does to the upstream's answer (`close`, `reset`, `{partial: ...}`)
    FORWARD_THEN = "forward_then"


@dataclass(frozen=True, slots=True)
class Key:
    """One YAML key: its `kind` of value, the model `field` it fills (units in the name:
    `drain` fills `drain_s`), and whether null means "not given" (the model's default)."""

    kind: ValueKind
    field: str
    nullable: bool = False
    #: another key this one belongs with, for messages (dribble's `chunk` goes with `interval`)
    goes_with: str = ""

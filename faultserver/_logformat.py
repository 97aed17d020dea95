"""The log's two formats: `text` (`2026-11-25T15:41:15 level=INFO mode listener=backend ...`)
and `json` (`--log-format json`): one JSON object per line, which is what log collectors
(Fluent Bit, Vector, the Kubernetes logging stacks) read without a parser of their own.

A JSON line has `time` (RFC 3339, UTC, milliseconds), `level`, `logger` and `message` (the
text line's message, as is), then the message's `key=value` fields as keys of their own, so
`mode listener=backend accept=refuse was=open cause=api` gives `"listener": "backend",
"accept": "refuse", ...`: the same names as the events' fields. A value that is an integer
becomes a number. A field never replaces the four keys above; an exception's traceback goes
in `exception`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

__all__ = ["JsonFormatter", "TextFormatter", "formatter", "message_fields"]

#: `key=value` in a message: a word, `=`, then everything up to the next space.
_FIELD = re.compile(r"(?<![^\s(])([a-z_][a-z0-9_]*)=([^\s]+)")
_RESERVED = frozenset({"time", "level", "logger", "message", "exception"})
_INT = re.compile(r"-?[0-9]{1,18}")


def message_fields(message: str) -> dict[str, Any]:
    """The `key=value` fields of a log message (the first of each key), integers as numbers."""
    fields: dict[str, Any] = {}
    for key, value in _FIELD.findall(message):
        if key in _RESERVED or key in fields:
            continue
        value = value.rstrip(":,;)")
        fields[key] = int(value) if _INT.fullmatch(value) else value
    return fields


class TextFormatter(logging.Formatter):
    """`2026-11-25T15:41:15 level=INFO message`: the format the docs show."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s level=%(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")


class JsonFormatter(logging.Formatter):
    """One JSON object per record (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        line.update(message_fields(message))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(name: str) -> logging.Formatter:
    """The formatter for `--log-format NAME` (`text` or `json`)."""
    return JsonFormatter() if name == "json" else TextFormatter()

"""YAML (or already parsed data) in, a frozen `Profile` out, or one `ProfileError`.

Theory of operation
-------------------

Loading runs in three steps, none of which touches a socket:

1. **Read** (`load_profile_file`). A regular file only (a FIFO or a device would block or never
   end), at most `MAX_INPUT_BYTES` of UTF-8 text; anything larger, unreadable or not UTF-8 is
   a problem, never an `OSError` or `UnicodeDecodeError`.
2. **Compose** (`compose.py`, `build.py`). YAML text to located values (`nodes.py`): safe
   YAML only, nesting, values and the length of numbers capped.
3. **Check** (`document.py` and the sections it calls: `listener.py`, `rule.py`,
   `schedule.py`, with `check.py`, `timing.py` and `values.py` for plain values). The walk
   follows the profile format, builds model objects and collects every problem instead of stopping
   at the first. Actions and their keys come from the action table (`actions.py`).

A problem is located at the offending value (or at the key, for an unknown or duplicate key),
with 1-based line and column. Data that did not come from text (`load_profile_data`,
`load_rules`: JSON from the admin API, a dict from a test) has no positions: its problems are
at line 0, column 0, and the path alone says where. A document whose top level is not a
mapping is reported as that alone, without quoting anything of it.

Rules of the format that are easy to miss:

- Keys beginning with `x-` are ignored in the format's own mappings (anchors, notes), but not
  in header mappings, where `x-tenant` is a header name like any other.
- `True` is an `int` in Python; wherever a number is expected, a boolean is refused.
- A merge key (`<<: *defaults`) merges as YAML says: explicit keys win, without a
  duplicate-key problem.
"""

from __future__ import annotations

import errno
import os
import stat

from .._errors import Problem, ProfileError
from .build import MAX_DEPTH, MAX_VALUES, Builder
from .check import Checker
from .compose import MAX_INPUT_BYTES, compose_text, too_large_message
from .document import SUPPORTED_VERSIONS, check_profile, foreign_document
from .model import Profile, Rule
from .nodes import Node
from .rule import check_rules

__all__ = [
    "MAX_DEPTH",
    "MAX_INPUT_BYTES",
    "MAX_VALUES",
    "SUPPORTED_VERSIONS",
    "load_profile_bytes",
    "load_profile_data",
    "load_profile_file",
    "load_profile_text",
    "load_rules",
]


def load_profile_file(path: str) -> Profile:
    """Read and check the profile at `path`; problems are reported against `path` as given."""
    return load_profile_bytes(_read_regular_file(path), source=path)


def load_profile_bytes(data: bytes, source: str) -> Profile:
    """Check a profile given as bytes (UTF-8, a byte-order mark allowed): a file's, or
    standard input's; bytes that are not UTF-8 are a problem located at the first one."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start : exc.start + 1].hex()
        message = f"expected UTF-8 text, got byte 0x{byte} ({exc.reason})"
        raise ProfileError([Problem(source, line, column, "", message)]) from None
    return load_profile_text(text, source=source)


def load_profile_text(text: str, source: str = "<string>") -> Profile:
    """Check a profile given as YAML (or JSON) text; `source` names it in problems."""
    root, problems = compose_text(text, source)
    return _finish(root, problems, source)


def load_profile_data(data: object, source: str = "<data>") -> Profile:
    """Check a profile already parsed into dicts and lists (from JSON, or written in Python).

    There are no line numbers to give: problems are at 0:0 and their path says where.
    """
    builder = Builder(source)
    root = builder.from_data(data)
    return _finish(root, builder.problems, source)


def load_rules(data: object, listener_name: str, source: str = "<api>") -> tuple[Rule, ...]:
    """Check a bare list of rules for the listener `listener_name` (admin API, fixture).

    Problems read `SOURCE:0:0: rules[1].action: ...`, the path as in a request body
    `{"rules": [...]}`.
    """
    del listener_name  # rules do not depend on their listener; kept for the callers' sake
    builder = Builder(source)
    root = builder.from_data(data)
    checker = Checker(source, builder.problems)
    rules = check_rules(checker, root, "rules") if root is not None else None
    checker.raise_if_any()
    assert rules is not None
    return rules


def _finish(root: Node | None, problems: list[Problem], source: str) -> Profile:
    if root is not None and foreign_document(root) is not None:
        problems = []  # that alone: nothing of a file that is not a profile at all
    checker = Checker(source, problems)
    profile = check_profile(checker, root) if root is not None else None
    checker.raise_if_any()
    assert profile is not None
    return profile


def _read_regular_file(path: str) -> bytes:
    """The first `MAX_INPUT_BYTES` + 1 bytes of the regular file at `path`.

    Opened without blocking and checked before reading: a FIFO would wait for a writer for
    ever (and SIGTERM with it), a device may never end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _unreadable(path, _open_failure(path, exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _unreadable(path, _not_regular(mode))
        chunks = []
        size = 0
        while size <= MAX_INPUT_BYTES:
            chunk = os.read(fd, MAX_INPUT_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _unreadable(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > MAX_INPUT_BYTES:
        raise ProfileError([Problem(path, 1, 1, "", too_large_message())])
    return b"".join(chunks)


def _unreadable(path: str, reason: str) -> ProfileError:
    return ProfileError([Problem(path, 1, 1, "", f"cannot read file: {reason}")])


def _open_failure(path: str, exc: OSError) -> str:
    """Why `path` could not be opened; a socket file fails to open with ENXIO."""
    if exc.errno == errno.ENXIO:
        try:
            return _not_regular(os.stat(path).st_mode)
        except OSError:
            pass
    return exc.strerror or str(exc)


_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return os.strerror(errno.EISDIR)  # "Is a directory", as open() says elsewhere
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
    return f"not a regular file ({kind})"

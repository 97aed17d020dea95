"""`match: {path: {regex: ...}}`, matched in time linear in the path, whatever the pattern.

Python's `re` backtracks: `^/(a+)+$` against fifty `a`s and a `!` takes longer than the age of
the universe, and a data plane that runs it freezes (the admin API and SIGTERM with it). So a
path regex is matched by RE2 (`google-re2`), which never backtracks. The pattern is written in
Python's `re` syntax and must also be one that RE2 reads; what RE2 does not support is a
located problem at load time, not a surprise at match time:

- backreferences (`\\1`, `(?P=name)`), lookahead and lookbehind (`(?=`, `(?!`, `(?<=`,
  `(?<!`), conditional groups, possessive quantifiers and atomic groups, verbose mode `(?x)`;
- `\\Z` (use `$`: a path never contains a newline, so `$` means its end);
- repetition counts above 1000 (`a{1001}`).

Where both accept a pattern they agree on paths, with one difference: `\\d`, `\\w`, `\\s`
and `\\b` are ASCII-only in RE2 (Python's are Unicode-aware). Paths reach the rules decoded as
Latin-1, so this matters only for bytes above 0x7F, which clients send percent-encoded.

A path longer than `MAX_MATCHED_CHARS` is matched on its first `MAX_MATCHED_CHARS` characters:
a prefix such as `^/api/` still matches, a pattern anchored at the end (`\\.json$`) does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["MAX_MATCHED_CHARS", "PathRegex", "RegexError"]

#: A path regex sees at most this many characters of the path (8 KiB).
MAX_MATCHED_CHARS = 8192

_RE2_LIMITS = (
    "RE2 has no backreferences, lookaround, possessive quantifiers, atomic groups, verbose "
    "mode or \\Z (use $)"
)


class RegexError(ValueError):
    """A pattern that Python's `re` or RE2 cannot compile; the message says which and why."""


class _Searcher(Protocol):
    def search(self, text: str) -> object: ...


@dataclass(frozen=True, slots=True)
class PathRegex:
    """A compiled path regex. Two are equal when their patterns are."""

    pattern: str
    _compiled: _Searcher = field(compare=False, repr=False)

    @classmethod
    def compile(cls, pattern: str) -> PathRegex:
        """Compile `pattern` for RE2, after checking it as Python's `re` does; `RegexError`."""
        try:
            re.compile(pattern)
        except (re.error, RecursionError, OverflowError) as exc:
            raise RegexError(f"invalid regex: {exc}") from None
        return cls(pattern, _compile_re2(pattern))

    def search(self, path: str) -> bool:
        """Whether the pattern occurs in the path (anchor it with `^...$` to match all of it)."""
        return self._compiled.search(path[:MAX_MATCHED_CHARS]) is not None


def _compile_re2(pattern: str) -> _Searcher:
    import re2  # type: ignore[import-untyped]  # imported when a profile has a path regex

    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    options.never_capture = True  # only "does it occur" is asked: the fastest engine
    try:
        compiled: _Searcher = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(
            f"regex not supported by the linear-time engine (RE2): {reason}; {_RE2_LIMITS}"
        ) from None
    except UnicodeEncodeError:
        raise RegexError("invalid regex: a lone surrogate is not a character") from None
    return compiled

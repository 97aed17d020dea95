"""The profiles shipped with faultserver, by name: `fin` is `profiles/fin.yaml`.

The files live in the repository's `profiles/` directory, and stay there: the wheel carries
them as the data package `faultserver.profiles`, which `setup.py` maps onto that directory.
An editable install cannot import that package (setuptools' editable finder does not find a
namespace package inside a regular one), nor can a source checkout on `sys.path`: both
find the files next to the package's directory instead, where they are.

Everything that takes a profile by path asks `resolve_profile` first: `faultserver run`
and `validate`, the fixture, `running()`, `serve()`, the handle's `load()`, `POST /reload`.
A path that exists wins over a name, so a file called `fin` in the working directory is
that file. A name is written without a directory or a suffix (`fin`, not `fin.yaml`), so a
missing `fin.yaml` is still reported as the missing file it is.
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
import re
import sys
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ._errors import UsageError

if TYPE_CHECKING:
    from ._profile.model import Profile

__all__ = [
    "STDIN",
    "STDIN_SOURCE",
    "SUFFIX",
    "find_shipped",
    "is_name",
    "load_cli_profile",
    "not_found_message",
    "resolve_profile",
    "shipped_names",
    "shipped_summary",
]

#: A shipped profile's file is its name and this suffix.
SUFFIX = ".yaml"
#: The command line's profile argument for standard input, and how its problems name it.
STDIN = "-"
STDIN_SOURCE = "<stdin>"
#: How a name is written: no directory, no suffix (`fin`, `connect-timeout`).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _directory() -> Traversable | None:
    try:
        return importlib.resources.files("faultserver.profiles")
    except ModuleNotFoundError:  # an editable install, or a source checkout on sys.path
        here = Path(__file__).resolve().parent.parent / "profiles"
        return here if here.is_dir() else None


def shipped_names() -> list[str]:
    """The names of the shipped profiles, sorted."""
    directory = _directory()
    if directory is None:
        return []
    return sorted(
        entry.name[: -len(SUFFIX)]
        for entry in directory.iterdir()
        if entry.name.endswith(SUFFIX) and entry.is_file()
    )


def is_name(text: str) -> bool:
    """Whether `text` is written as a profile's name (`fin`), not as a path (`fin.yaml`)."""
    return _NAME.fullmatch(text) is not None


def find_shipped(name: str) -> str | None:
    """The file of the shipped profile `name` (`fin`), or None."""
    if not is_name(name) or name not in shipped_names():
        return None
    directory = _directory()
    assert directory is not None
    # the wheel installs plain files, so a shipped profile always has a path
    return os.fspath(Path(str(directory / f"{name}{SUFFIX}")))


def resolve_profile(source: str | os.PathLike[str]) -> str:
    """The file to load for `source`: the path itself when it exists, else the shipped profile
    that `source` names. A name that is neither is a UsageError (one line, naming the shipped
    profiles); a path that does not exist is returned as it is, for the loader to report."""
    path = os.fspath(source)
    if Path(path).exists() or not is_name(path):
        return path
    found = find_shipped(path)
    if found is not None:
        return found
    raise UsageError(not_found_message(path))


def not_found_message(path: str) -> str:
    """`profile not found: PATH (relative to CWD)`; for a name, with the shipped names."""
    where = "" if Path(path).is_absolute() else f" (relative to {os.getcwd()})"
    if not is_name(path):
        return f"profile not found: {path}{where}"
    names = shipped_names()
    guess = difflib.get_close_matches(path, names, n=1)
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    shipped = f"{hint}shipped profiles: {', '.join(names)}" if names else "no shipped profiles found"
    return f"profile not found: {path}{where}: not a file, nor a shipped profile ({shipped})"


def shipped_summary(name: str) -> str:
    """What the profile's opening comment says first: its first sentence, up to a colon
    that opens a list (the comment's first line when that is all of it), less the
    `NAME.yaml: ` it starts with."""
    path = find_shipped(name)
    if path is None:
        raise UsageError(f"no shipped profile named {name!r}")
    words: list[str] = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            text = line.strip()
            if not text.startswith("#"):
                break
            text = text.lstrip("#").strip()
            if not text:
                if words:
                    break  # the end of the first paragraph
                continue
            words.append(text)
    summary = " ".join(words)
    prefix = f"{name}{SUFFIX}:"
    if summary.startswith(prefix):
        summary = summary[len(prefix) :].strip()
    end = summary.find(". ")
    if end >= 0:
        summary = summary[: end + 1]
    colon = summary.find(": ")  # a list follows (chaos.yaml's phases): the sentence that opens it
    if colon >= 0:
        summary = summary[:colon]
    return summary.rstrip(":")


def load_cli_profile(arg: str, stdin: BinaryIO | None = None) -> Profile:
    """The command line's profile: `-` (standard input, read once), a file, or a shipped name."""
    from ._profile.compose import MAX_INPUT_BYTES
    from ._profile.load import load_profile_bytes, load_profile_file

    if arg != STDIN:
        return load_profile_file(resolve_profile(arg))
    stream = stdin if stdin is not None else sys.stdin.buffer
    # the loader refuses more than MAX_INPUT_BYTES, as for a file
    return load_profile_bytes(stream.read(MAX_INPUT_BYTES + 1), source=STDIN_SOURCE)

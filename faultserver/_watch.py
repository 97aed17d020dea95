"""`run --watch`: notice that the profile's file changed, the way Kubernetes changes it.

A ConfigMap mounted as a volume is not written in place. The kubelet writes the new
files into a fresh directory (`..2026_11_25_15_41_15.123`), points a temporary symlink
at it and renames that over `..data`; `profile.yaml` itself is a symlink to
`..data/profile.yaml` and never changes. So the watcher follows links: it stats the file
the path resolves to now (`os.stat` follows every link) and keeps the resolved path,
device, inode, size and mtime as the file's signature. The swap changes the resolved path
and the inode; an editor's save or `cp` changes the size or mtime.

Theory of operation (polling; no inotify, which misses a rename of a parent's symlink):

1. Every `interval`, take the signature. Unchanged since the last content read: nothing.
2. Changed: wait one more poll for it to stay the same (a file written in place by a
   slow writer is seen once it has stopped changing), then read the bytes.
3. The same bytes as the last ones handled (the kubelet swaps `..data` when any key of
   the ConfigMap changes, or re-syncs): nothing. Other bytes: a change, handed back once,
   whether the reload then accepts it or not (a broken file is reported once, not every
   poll; fixing the file is the next change).

A file that is gone (between a delete and a re-create) is no change: the profile in force
stays, and the file's return is seen as a change if its bytes differ.

`FileWatch` does no waiting and keeps no task: `poll()` is called by the loop in `_run.py`
and tested directly on files and symlinks in a temporary directory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

__all__ = ["DEFAULT_INTERVAL_S", "FileSignature", "FileWatch", "signature"]

#: How often `--watch` looks at the file (a change is seen within two of these).
DEFAULT_INTERVAL_S = 0.5
#: The largest profile read (the loader refuses larger ones anyway).
MAX_READ_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileSignature:
    """What says a file changed without reading it: where the path leads, and its stat."""

    realpath: str
    device: int
    inode: int
    size: int
    mtime_ns: int


def signature(path: str) -> FileSignature | None:
    """The signature of the file `path` resolves to now (None: there is none, or no access)."""
    try:
        st = os.stat(path)  # follows ..data and every other link
        real = os.path.realpath(path)
    except OSError:
        return None
    return FileSignature(real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return hashlib.sha256(file.read(MAX_READ_BYTES + 1)).hexdigest()
    except OSError:
        return None


class FileWatch:
    """Change detection for one path (module docstring). Starts from the file as it is now:
    create it just before the profile is first read."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen = signature(path)
        self._digest = _digest(path) if self._seen is not None else None
        #: a new signature waiting one poll to show it has settled
        self._pending: FileSignature | None = None

    @property
    def digest(self) -> str | None:
        """The sha256 of the bytes last handled (None: never read)."""
        return self._digest

    def poll(self) -> bool:
        """True once for each change of the file's bytes (module docstring, steps 1 to 3)."""
        now = signature(self.path)
        if now is None or now == self._seen:
            self._pending = None
            return False
        if now != self._pending:
            self._pending = now  # changed: look again at the next poll
            return False
        self._pending = None
        digest = _digest(self.path)
        if digest is None:
            return False
        self._seen = now
        if digest == self._digest:
            return False
        self._digest = digest
        return True

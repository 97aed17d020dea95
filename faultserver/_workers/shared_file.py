"""A small file the parent and its workers share, changed under `flock`: the `times`
budgets (`budget.py`) and the open-connection counts (`counts.py`) are each one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator

__all__ = ["SharedFile"]


class SharedFile:
    """The file, open in this process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    @staticmethod
    def make(prefix: str) -> str:
        """A new empty private file for the parent; its path, for the workers."""
        fd, path = tempfile.mkstemp(prefix=prefix)
        os.close(fd)
        return path

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Every worker's change to the file is made inside this."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self, remove: bool = False) -> None:
        os.close(self.fd)
        if remove:
            try:
                os.unlink(self.path)
            except OSError:
                pass

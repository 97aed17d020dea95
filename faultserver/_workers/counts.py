"""Open connections across workers: one count per worker and listener, in a shared file.

`max_connections` is for the whole listener, and `peak_connections` is the most open at
once in the whole fleet, so the workers count in one place: each listener has a region
of the file (its fleet-wide peak, then one open count per worker), and a worker changes
it under `flock`, as `budget.py` does. A worker's own count is in its own slot, so a
worker that dies leaves no count behind: the parent zeroes its slots before starting it
again. This costs a few system calls per connection opened and closed (not per request).

How the limit is kept (`ListenerRuntime.admission`): a worker accepts only while the
fleet has room, and a connection it accepted as another worker took the last slot is held
(not read, exactly as a connection the kernel queued) until a slot frees. So the fleet
serves at most `max_connections` at once; the connections that wait are those in each
worker's accept queue plus at most one held per worker (N x (backlog + 1) + N rather
than backlog + 1 in one process). While full, a worker looks for room every
`ADMISSION_POLL_S` (10 ms).
"""

from __future__ import annotations

import os
import struct

from .shared_file import SharedFile

__all__ = ["ConnectionCounts", "FleetAdmission"]

_SLOT = struct.Struct("<q")


class ConnectionCounts(SharedFile):
    """The counts file, open in this process; `workers` counts per listener region."""

    def __init__(self, path: str, workers: int) -> None:
        super().__init__(path)
        self.workers = workers
        #: a listener's region: its peak, then one count per worker
        self.region_size = (1 + workers) * _SLOT.size

    @classmethod
    def create(cls, workers: int) -> ConnectionCounts:
        return cls(cls.make("faultserver-connections-"), workers)

    def region(self, index: int) -> int:
        """The offset of listener region `index` (the parent numbers them), made if new."""
        size = self.region_size
        offset = index * size
        if os.fstat(self.fd).st_size < offset + size:
            os.ftruncate(self.fd, offset + size)
        return offset

    def _read(self, offset: int) -> list[int]:
        data = os.pread(self.fd, self.region_size, offset)
        return [v for (v,) in _SLOT.iter_unpack(data)]

    def take(self, offset: int, worker: int, limit: int | None) -> bool:
        """One more open connection for `worker`, unless the fleet has `limit` open."""
        with self.locked():
            peak, *counts = self._read(offset)
            total = sum(counts)
            if limit is not None and total >= limit:
                return False
            os.pwrite(self.fd, _SLOT.pack(counts[worker] + 1), offset + (1 + worker) * _SLOT.size)
            if total + 1 > peak:
                os.pwrite(self.fd, _SLOT.pack(total + 1), offset)
            return True

    def release(self, offset: int, worker: int) -> None:
        with self.locked():
            where = offset + (1 + worker) * _SLOT.size
            (count,) = _SLOT.unpack(os.pread(self.fd, _SLOT.size, where))
            os.pwrite(self.fd, _SLOT.pack(max(0, count - 1)), where)

    def open_now(self, offset: int) -> int:
        return sum(self._read(offset)[1:])

    def peak(self, offset: int) -> int:
        return self._read(offset)[0]

    def reset_peak(self, offset: int) -> None:
        """The peak back to what is open now (a reset)."""
        with self.locked():
            os.pwrite(self.fd, _SLOT.pack(sum(self._read(offset)[1:])), offset)

    def forget_worker(self, worker: int, regions: int) -> None:
        """`worker` exited: its connections are gone from every region."""
        with self.locked():
            for index in range(regions):
                os.pwrite(self.fd, _SLOT.pack(0), index * self.region_size + (1 + worker) * _SLOT.size)


class FleetAdmission:
    """One listener's share of the counts, in one worker (`ListenerRuntime.admission`)."""

    def __init__(self, counts: ConnectionCounts, offset: int, worker: int) -> None:
        self.counts = counts
        self.offset = offset
        self.worker = worker

    def take(self, limit: int | None) -> bool:
        return self.counts.take(self.offset, self.worker, limit)

    def release(self) -> None:
        self.counts.release(self.offset, self.worker)

    def has_room(self, limit: int) -> bool:
        return self.counts.open_now(self.offset) < limit

"""Retries across workers: a request that met a fault in one worker and was sent again on a
new connection that the kernel gave to another worker.

Each worker finds the retries it sees itself (`ListenerStats.saw_request`); a retry that
lands in another worker only the parent can see, in the merged events. So the parent keeps
the fingerprints of the requests that met a fault (from `fault` events: rare) and looks up
each `request` event's fingerprint while any are kept, a dict lookup per request. What a
worker alone also knows, that a connection ended before its answer was sent, has no event
with a fingerprint, so only faults count across workers.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from .._events import Entry

__all__ = ["CrossWorkerRetries"]

#: Fingerprints of faulted requests kept (the oldest forgotten first), as a worker keeps.
MEMORY = 10_000


class CrossWorkerRetries:
    """Marks `retry` on merged request events whose request met a fault in another worker."""

    def __init__(self) -> None:
        #: (listener, fingerprint) -> (worker, conn) of the fault
        self._troubled: dict[tuple[str, str], tuple[int, int]] = {}
        #: listener -> retries found here (none of them counted by a worker)
        self.found: collections.Counter[str] = collections.Counter()

    def see(self, entries: Sequence[Entry], worker: int) -> None:
        """Look at one worker's batch of events, before the parent adopts them."""
        troubled = self._troubled
        for entry in entries:
            if type(entry) is dict:
                continue  # request and fault events are compact records (`_events.py`)
            kind = entry[2]
            if kind == "request":
                if troubled:
                    self._request(entry, worker)
            elif kind == "fault":
                fields = entry[5]
                key = (entry[3], fields["fingerprint"])
                troubled.pop(key, None)
                troubled[key] = (worker, fields["conn"])
                if len(troubled) > MEMORY:
                    del troubled[next(iter(troubled))]

    def _request(self, entry: Entry, worker: int) -> None:
        fields = entry[5]
        fault = self._troubled.get((entry[3], fields["fingerprint"]))
        if fault is None or fault[1] == fields["conn"]:
            return
        del self._troubled[(entry[3], fields["fingerprint"])]
        if fault[0] != worker and not fields.get("retry"):
            fields["retry"] = True  # the worker could not know: the fault was another's
            self.found[entry[3]] += 1

    def clear(self) -> None:
        self._troubled.clear()
        self.found.clear()

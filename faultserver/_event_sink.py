"""`--events FILE`: every event appended to a file as one JSON line, whole lines only.

The sink follows the event log like any reader (`EventLog.wait_beyond`), so the data plane
never waits for the disk and never calls it. Each batch goes out in one `write`. A write
that fails part-way (a full disk) is cut back to the last whole line, so the file never
holds half a line; the events not written stay in the log's buffer, and the sink tries
again every `RETRY_S` seconds, from the first event not written. Only events that leave
the buffer before the disk has room again are lost: they are counted, and the log says
so once when the trouble starts and once when it ends, never per event. A sink in
trouble never stops the server, nor changes its exit status.
"""

from __future__ import annotations

import errno
import json
import logging
import os

import trio

from ._events import EventLog, as_event, event_id

__all__ = ["RETRY_S", "JsonLinesSink"]

log = logging.getLogger("faultserver")

#: After a failed write, the sink tries again this often.
RETRY_S = 1.0


class JsonLinesSink:
    """Appends each event to `path` as one JSON line (`follow` is the task that does it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        #: the id of the last event written (or given up on)
        self.cursor = 0
        #: events that left the buffer before they could be written
        self.lost = 0
        #: the error of the write that failed last, while the trouble lasts
        self.failing: OSError | None = None

    async def follow(self, events: EventLog) -> None:
        """Write events as they come, until cancelled; then write what is left."""
        try:
            while True:
                await events.wait_beyond(self.cursor)
                self.write_pending(events)
                if self.failing is not None:
                    await trio.sleep(RETRY_S)
        finally:
            self.write_pending(events)

    def write_pending(self, events: EventLog) -> None:
        """Write every event after the cursor that is still kept; never raises."""
        if self._fd < 0:
            return
        page = events.page(self.cursor)
        if page.missed:
            self.lost += page.missed
        if not page.entries:
            self.cursor = page.next_since
            return
        lines = [
            json.dumps(as_event(e), separators=(",", ":"), default=str).encode() + b"\n"
            for e in page.entries
        ]
        written = self._write_whole_lines(lines, events.maxlen)
        if written:
            self.cursor = event_id(page.entries[written - 1])
        if written == len(lines) and self.failing is not None:
            log.warning("events file writable again path=%s lost=%d", self.path, self.lost)
            self.failing = None

    def _write_whole_lines(self, lines: list[bytes], kept_in_memory: int) -> int:
        """Write `lines` in one go; on an error cut the file back to a whole line.

        Returns how many lines are in the file.
        """
        data = b"".join(lines)
        try:
            start = os.fstat(self._fd).st_size
        except OSError as exc:
            self._failed(exc, kept_in_memory)
            return 0
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            whole, kept = 0, 0
            for line in lines:
                if kept + len(line) > done:
                    break
                kept += len(line)
                whole += 1
            try:
                os.ftruncate(self._fd, start + kept)
            except OSError:
                pass
            self._failed(exc, kept_in_memory)
            return whole
        return len(lines)

    def _failed(self, exc: OSError, kept_in_memory: int) -> None:
        if self.failing is None:
            log.error(
                "events file write failed path=%s error=%s (%s); the newest %d events stay in "
                "memory and the write is tried again every %gs",
                self.path, errno.errorcode.get(exc.errno or 0, exc.errno), exc.strerror,
                kept_in_memory, RETRY_S,
            )
        self.failing = exc

    def close(self) -> None:
        """Close the file, saying how many events it lost, if any."""
        if self._fd < 0:
            return
        if self.lost or self.failing is not None:
            log.error("events file closed path=%s lost=%d unwritten_since_id=%d",
                      self.path, self.lost, self.cursor)
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._fd = -1

"""`--events FILE` on a full disk (issue 19 item 12): whole lines only, the trouble said once,
the events written again once there is room, and SIGTERM still ends the run with status 0.

The full disk is a 64 KiB tmpfs (mounting needs root: skipped otherwise); `/dev/full`, where
every write fails, covers the error path anywhere.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import cli_running
from tests.support.wait import wait_until

PROFILE = "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n"
WRITE_FAILED = "events file write failed"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def requests(port: int, path: str, n: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(n):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while not data.endswith(b"}\n"):
                data += sock.recv(65536)


def whole_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), f"a line cut short: {text[-200:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def fill(disk: Path) -> Path:
    """Fill the disk, leaving no room at all."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 1024)
        except OSError:
            pass
    return filler


def test_events_file_full_disk_whole_lines_retry_and_exit_0(tmp_path, small_disk):
    events = small_disk / "events.jsonl"
    with cli_running(tmp_path, PROFILE, "--events", str(events)) as srv:
        port = srv.port("backend")
        wait_until(lambda: events.exists() and events.stat().st_size > 0, what="the first events written")
        filler = fill(small_disk)
        requests(port, "/while-full", 20)
        srv.wait_log(WRITE_FAILED)
        requests(port, "/still-full", 10)
        lines_while_full = whole_lines(events)
        assert lines_while_full and lines_while_full[0]["type"] == "start"
        ids = [e["id"] for e in lines_while_full]
        assert ids == list(range(1, len(ids) + 1))

        filler.unlink()  # room again: what is still in memory is written
        wait_until(
            lambda: any(e.get("path") == "/still-full" for e in whole_lines(events)),
            timeout=10, what="the events kept in memory written once there is room",
        )
        srv.wait_log("events file writable again")
        requests(port, "/after", 3)
        wait_until(lambda: any(e.get("path") == "/after" for e in whole_lines(events)), what="new events")
    assert srv.log().count(WRITE_FAILED) == 1, srv.log()
    written = whole_lines(events)
    ids = [e["id"] for e in written]
    assert ids == sorted(set(ids))  # no event twice, in order
    assert ids == list(range(1, len(ids) + 1))  # and none lost: the buffer held them all


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_events_file_that_always_fails_is_said_once_and_the_server_goes_on(tmp_path):
    with cli_running(tmp_path, PROFILE, "--events", "/dev/full") as srv:
        requests(srv.port("backend"), "/a", 20)
        srv.wait_log(WRITE_FAILED)
        requests(srv.port("backend"), "/b", 20)
        with srv.client() as api:
            assert api.get("/listeners").json()["listeners"][0]["requests"] == 40
    log = srv.log()
    assert log.count(WRITE_FAILED) == 1, log
    assert "events file closed path=/dev/full" in log  # the count of what it could not write

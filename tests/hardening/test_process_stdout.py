"""`faultserver run` serves whatever a shell did to its standard output (issue 19 item 11).

Started with standard output closed (`faultserver run P >&-`) or piped into a reader that is
gone (`faultserver run P | true`), it serves all the same: the lines it could not print are
in its log, it says once that standard output is gone, and SIGTERM ends it with status 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import spawn_cli
from tests.support.wait import wait_until

PROFILE = "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n"
STDOUT_GONE = "cannot write to standard output"


@contextmanager
def started(tmp_path: Path, **popen: Any) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`faultserver run` with `popen`'s standard output: (the process, its log); killed at the
    end of the block if it is still running."""
    proc, log = spawn_cli(tmp_path, PROFILE, **popen)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()


def urls_from_log(log: Path) -> tuple[str, str]:
    """(the listener's URL, the admin API's URL), from the log lines that carry them."""

    def find() -> tuple[str, str] | None:
        text = log.read_text()
        listener = re.search(r"listener start listener=backend url=(\S+)", text)
        control = re.search(r"control start url=(\S+)", text)
        started = "started seed=" in text
        return (listener[1], control[1]) if listener and control and started else None

    return wait_until(find, 15, f"the start lines in the log: {log.read_text()}")


def assert_serves_and_stops(proc: subprocess.Popen[str], log: Path) -> str:
    url, control = urls_from_log(log)
    assert httpx.get(url + "/x", timeout=5).json()["path"] == "/x"
    assert httpx.get(control + "/listeners", timeout=5).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    text = log.read_text()
    for bad in ("Traceback", "BrokenPipeError", "Exception ignored", "AttributeError"):
        assert bad not in text, text
    return text


def test_process_serves_with_stdout_closed(tmp_path):
    with started(tmp_path, preexec_fn=lambda: os.close(1)) as (proc, log):
        assert assert_serves_and_stops(proc, log).count(STDOUT_GONE) == 1


def test_process_serves_when_the_stdout_reader_is_gone(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| true`: the reader has exited before the first line
    with started(tmp_path, stdout=write_end) as (proc, log):
        os.close(write_end)  # the process has its own copy
        assert assert_serves_and_stops(proc, log).count(STDOUT_GONE) == 1


def test_process_serves_when_the_stdout_reader_leaves_after_the_first_lines(tmp_path):
    with started(tmp_path, stdout=subprocess.PIPE) as (proc, log):
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("listener backend http://127.0.0.1:")
        proc.stdout.close()  # like `| head -1`
        time.sleep(0.2)
        assert_serves_and_stops(proc, log)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_process_serves_when_stdout_is_a_full_disk(tmp_path):
    with open("/dev/full", "wb") as full, started(tmp_path, stdout=full) as (proc, log):
        assert assert_serves_and_stops(proc, log).count(STDOUT_GONE) == 1

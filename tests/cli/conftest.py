"""Running `python -m faultserver` as a subprocess, as a user's script would.

`cli.call(*args)` runs a command to its end; `cli.start(profile, *args)` starts `run` and reads
its `listener ...` and `control ...` lines. Every process started here is killed (by its pid)
at the end of the test if it is still running.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

START_TIMEOUT_S = 15.0

LISTENER_LINE = re.compile(r"^listener (?P<name>[a-z0-9_-]+) (?P<url>http://\S+) accept=(?P<accept>open|refuse|stall)$")
CONTROL_LINE = re.compile(r"^control (?P<url>http://\S+)$")


@dataclass
class Running:
    """A `faultserver run` process and what it printed first."""

    proc: subprocess.Popen
    lines: list[str]  # the first lines of stdout, up to and including `control ...`
    listeners: dict[str, tuple[str, str]]  # name -> (url, accept)
    control: str
    stderr_path: Path
    _stdout: "queue.Queue[Optional[str]]" = field(repr=False, default_factory=queue.Queue)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def port(self, name: str) -> int:
        return int(self.listeners[name][0].rsplit(":", 1)[1])

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def more_stdout(self) -> str:
        """What stdout carried after the first lines (call after the process ended)."""
        out = []
        while True:
            line = self._stdout.get(timeout=5)
            if line is None:
                return "".join(out)
            out.append(line)


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []
        self.pumped: set[int] = set()  # stdout read (and closed) by a thread
        self._n = 0

    def write(self, text: str, name: Optional[str] = None) -> Path:
        self._n += 1
        path = self.tmp_path / (name or f"profile{self._n}.yaml")
        path.write_text(text)
        return path

    def call(self, *args: Any, timeout: float = 30.0, **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "faultserver", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.tmp_path,
            **kwargs,
        )

    def popen(self, *args: Any, **kwargs: Any) -> tuple[subprocess.Popen, Path]:
        self._n += 1
        stderr_path = self.tmp_path / f"stderr{self._n}.txt"
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "faultserver", *map(str, args)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=self.tmp_path,
                **kwargs,
            )
        self.procs.append(proc)
        return proc, stderr_path

    def start(self, profile: Any, *args: Any, **kwargs: Any) -> Running:
        """Start `run` and read its first lines: one per listener, then `control URL`."""
        path = profile if isinstance(profile, Path) else self.write(profile)
        proc, stderr_path = self.popen("run", path, *args, **kwargs)
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            proc.stdout.close()
            lines.put(None)

        self.pumped.add(proc.pid)
        threading.Thread(target=pump, daemon=True).start()
        first: list[str] = []
        listeners: dict[str, tuple[str, str]] = {}
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"no control line within {START_TIMEOUT_S} s; got {first}") from None
            if line is None:
                proc.wait(5)
                raise AssertionError(
                    f"faultserver exited {proc.returncode} before its control line; stdout "
                    f"{first}, stderr:\n{stderr_path.read_text()}"
                )
            line = line.rstrip("\n")
            first.append(line)
            m = LISTENER_LINE.match(line)
            if m:
                listeners[m["name"]] = (m["url"], m["accept"])
                continue
            m = CONTROL_LINE.match(line)
            assert m, f"unexpected line before the control line: {line!r} (so far {first})"
            return Running(proc, first, listeners, m["url"], stderr_path, lines)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
            if proc.stdout is not None and proc.pid not in self.pumped:
                proc.stdout.close()


@pytest.fixture
def cli(tmp_path):
    helper = Cli(tmp_path)
    try:
        yield helper
    finally:
        helper.cleanup()

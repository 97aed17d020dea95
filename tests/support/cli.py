"""`faultserver` run as a user's script runs it: a subprocess, its first lines read, stopped
with a signal.

`start_cli(tmp_path, profile, *args)` starts `faultserver run` and reads its `listener ...`
and `control ...` lines (`spawn_cli` only starts it, for a test that does something else
with its standard output); the `CliServer` it returns knows the listeners' URLs and the admin
API's, reads the log (standard error, kept in a file), and stops the process with a signal,
returning its exit status. `run_cli(*args)` runs a short command (`validate`, `schema`) to
its end. `CliProcesses` keeps every process a test started and kills those still running
at its end, by pid (each test directory makes its `cli` fixture from it).

The caller's FAULTSERVER_TOKEN never leaks into a process that was not given one.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGTERM
from typing import Any

from .wait import LONG_S, wait_until

__all__ = [
    "CA_LINE",
    "CONTROL_CA_LINE",
    "CONTROL_LINE",
    "LISTENER_LINE",
    "CliProcesses",
    "CliServer",
    "cli_env",
    "cli_running",
    "run_cli",
    "serve_cli",
    "spawn_cli",
    "start_cli",
]

#: How long `run` may take to print its control line.
START_TIMEOUT_S = 15.0

LISTENER_LINE = re.compile(
    r"^listener (?P<name>[A-Za-z0-9_.-]+) (?P<url>https?://\S+) accept=(?P<accept>open|refuse|stall)$"
)
CONTROL_LINE = re.compile(r"^control (?P<url>https?://\S+)$")
#: Before the control line when the admin API serves a generated certificate: its CA file.
CONTROL_CA_LINE = re.compile(r"^control-ca (?P<path>/\S+)$")
#: After a TLS listener's line with a generated CA: the PEM file its clients must trust.
CA_LINE = re.compile(r"^ca (?P<name>[A-Za-z0-9_.-]+) (?P<path>/\S+)$")


def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without FAULTSERVER_TOKEN, plus `env`."""
    full = {k: v for k, v in os.environ.items() if k != "FAULTSERVER_TOKEN"}
    full.update(env or {})
    return full


@dataclass
class CliServer:
    """A `faultserver run` process and what it printed first."""

    proc: subprocess.Popen[str]
    #: stdout up to and including the `control ...` line
    lines: list[str]
    #: name -> (url, accept mode), from the `listener ...` lines
    listeners: dict[str, tuple[str, str]]
    control_url: str
    stderr_path: Path
    _stdout: queue.Queue[str | None] = field(repr=False, default_factory=queue.Queue)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def urls(self) -> dict[str, str]:
        return {name: url for name, (url, _) in self.listeners.items()}

    @property
    def control_ca_path(self) -> str | None:
        """The admin API's CA file, from the `control-ca ...` line (None: plain HTTP)."""
        found = [m["path"] for m in map(CONTROL_CA_LINE.match, self.lines) if m]
        return found[0] if found else None

    @property
    def ca_paths(self) -> dict[str, str]:
        """name -> the CA file of a TLS listener, from the `ca ...` lines."""
        return {m["name"]: m["path"] for m in map(CA_LINE.match, self.lines) if m}

    def port(self, name: str) -> int:
        return int(self.listeners[name][0].rsplit(":", 1)[1])

    @property
    def control_port(self) -> int:
        return int(self.control_url.rsplit(":", 1)[1])

    def log(self) -> str:
        """Standard error so far."""
        return self.stderr_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log().splitlines()

    def wait_log(self, needle: str, timeout: float = LONG_S) -> str:
        """The first log line containing `needle`, waiting for it."""
        return wait_until(
            lambda: next((line for line in self.log_lines() if needle in line), None),
            timeout,
            lambda: f"a log line with {needle!r}; the log: {self.log_lines()}",
        )

    def client(self, token: str | None = None, **kwargs: Any) -> Any:
        """An httpx client on the admin API (with the token, if given)."""
        import httpx

        headers = {"authorization": f"Bearer {token}"} if token else {}
        kwargs.setdefault("timeout", LONG_S)
        return httpx.Client(base_url=self.control_url, headers=headers, **kwargs)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = SIGTERM, timeout: float = 10.0) -> int:
        """Send `signum` (unless it has ended) and return the exit status; killed after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            message = f"faultserver did not stop within {timeout:g} s of signal {signum}"
            raise AssertionError(message) from None

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds from the signal to the exit)."""
        start = time.monotonic()
        code = self.stop(SIGTERM, timeout)
        return code, time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def more_stdout(self, timeout: float = 5.0) -> str:
        """What stdout carried after the first lines (call once the process has ended)."""
        out = []
        while True:
            line = self._stdout.get(timeout=timeout)
            if line is None:
                return "".join(out)
            out.append(line)


def write_profile(
    directory: Path, profile: str | Path | Mapping[str, Any], name: str = "profile.yaml"
) -> Path:
    """`profile` as a file: a Path is used as is, text or a dict (as JSON) is written to `name`."""
    if isinstance(profile, Path):
        return profile
    path = directory / name
    path.write_text(profile if isinstance(profile, str) else json.dumps(profile))
    return path


def spawn_cli(
    tmp_path: Path,
    profile: str | Path | Mapping[str, Any],
    *args: str,
    env: Mapping[str, str] | None = None,
    stdout: Any = subprocess.PIPE,
    **popen: Any,
) -> tuple[subprocess.Popen[str], Path]:
    """Start `faultserver run PROFILE ARGS...` and read nothing: (the process, its log's path).

    Its standard error goes to a file of its own in `tmp_path`; `stdout` is a pipe unless the
    test gives it another end (a closed descriptor, a full disk), and `popen` goes to Popen.
    """
    path = write_profile(tmp_path, profile, f"profile-{time.monotonic_ns()}.yaml")
    stderr_path = tmp_path / f"stderr-{time.monotonic_ns()}.log"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faultserver", "run", str(path), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            text=True,
            env=cli_env(env),
            **popen,
        )
    return proc, stderr_path


def start_cli(
    tmp_path: Path,
    profile: str | Path | Mapping[str, Any],
    *args: str,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    cwd: Path | None = None,
    timeout: float = START_TIMEOUT_S,
) -> CliServer:
    """Start `faultserver run PROFILE ARGS...` and read its `listener ...` and `control ...` lines."""
    proc, stderr_path = spawn_cli(tmp_path, profile, *args, env=env, cwd=cwd, preexec_fn=preexec_fn)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        proc.stdout.close()
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return _read_first_lines(proc, lines, stderr_path, timeout)


def _read_first_lines(
    proc: subprocess.Popen[str], lines: queue.Queue[str | None], stderr_path: Path, timeout: float
) -> CliServer:
    first: list[str] = []
    listeners: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            raise AssertionError(
                f"no control line within {timeout:g} s; stdout {first}, stderr:\n{stderr_path.read_text()}"
            ) from None
        if line is None:
            proc.wait(5)
            raise AssertionError(
                f"faultserver exited {proc.returncode} before its control line; stdout {first}, "
                f"stderr:\n{stderr_path.read_text()}"
            )
        line = line.rstrip("\n")
        first.append(line)
        listener = LISTENER_LINE.match(line)
        if listener:
            listeners[listener["name"]] = (listener["url"], listener["accept"])
            continue
        ca = CA_LINE.match(line)
        if (ca and ca["name"] in listeners) or CONTROL_CA_LINE.match(line):
            continue
        control = CONTROL_LINE.match(line)
        assert control, f"unexpected line before the control line: {line!r} (so far {first})"
        return CliServer(proc, first, listeners, control["url"], stderr_path, lines)


def serve_cli(
    directory: Path, profile: str | Path | Mapping[str, Any], *args: str, **kwargs: Any
) -> Iterator[CliServer]:
    """A fixture's body (`yield from serve_cli(...)`): `start_cli`, then, after the tests,
    SIGTERM; the run must end with status 0 and a log without a traceback."""
    server = start_cli(directory, profile, *args, **kwargs)
    try:
        yield server
        code, _ = server.terminate()
    finally:
        server.kill()
    assert code == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


@contextmanager
def cli_running(
    directory: Path, profile: str | Path | Mapping[str, Any], *args: str, **kwargs: Any
) -> Iterator[CliServer]:
    """`serve_cli` for a `with` block: SIGTERM at its end, then exit 0 and no traceback."""
    yield from serve_cli(directory, profile, *args, **kwargs)


def run_cli(*args: Any, timeout: float = 30.0, env: Mapping[str, str] | None = None, **kwargs: Any) -> tuple[
    subprocess.CompletedProcess[str], float
]:
    """Run a short faultserver command to its end; returns (the completed process, seconds taken)."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "faultserver", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        **kwargs,
    )
    return done, time.monotonic() - start


class CliProcesses:
    """Every `faultserver run` a test started, killed (by pid) at the end if still running."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[CliServer] = []

    def start(self, profile: str | Path | Mapping[str, Any], *args: str, **kwargs: Any) -> CliServer:
        server = start_cli(self.tmp_path, profile, *args, **kwargs)
        self.started.append(server)
        return server

    def cleanup(self) -> None:
        for server in self.started:
            server.kill()

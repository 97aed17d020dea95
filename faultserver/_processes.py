"""Gateways started as child processes: find one, give it a free port, wait until it listens,
and stop it with everything it started.

`probe --self-test` starts an nginx this way, and so do the tests (nginx, HAProxy, Caddy):
one way to start and stop them, so that none is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time

__all__ = ["START_TIMEOUT_S", "STOP_TIMEOUT_S", "find_binary", "free_port", "stop_group", "wait_listening"]

#: How long a gateway may take to listen after its start.
START_TIMEOUT_S = 10.0
#: How long a gateway may take to exit after SIGTERM (then SIGKILL), and after SIGKILL.
STOP_TIMEOUT_S = 5.0


def find_binary(name: str) -> str | None:
    """A gateway's path; Debian puts them in /usr/sbin, not always on a user's PATH."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    """A port free on 127.0.0.1 now (another process may take it before it is bound)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = START_TIMEOUT_S) -> bool:
    """True once something accepts on 127.0.0.1:`port`; False when `proc` exits first or
    `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a wait, then SIGKILL to its process group, for workers left behind (start the
    process with `start_new_session=True`, so that the group is only what it started)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # the kernel did not reap it
        proc.wait(STOP_TIMEOUT_S)

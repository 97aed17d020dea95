"""Running `python -m faultserver` as a subprocess, as a user's script would (`tests.support.cli`).

`cli.call(*args)` runs a command to its end in `tmp_path`; `cli.start(profile, *args)` starts
`run` and reads its `listener ...` and `control ...` lines. Every process started here is
killed (by its pid) at the end of the test if it is still running.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliProcesses, CliServer, run_cli


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes = CliProcesses(tmp_path)
        self._n = 0

    def write(self, text: str, name: str | None = None) -> Path:
        self._n += 1
        path = self.tmp_path / (name or f"profile{self._n}.yaml")
        path.write_text(text)
        return path

    def call(self, *args: Any, timeout: float = 30.0, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        done, _ = run_cli(*args, timeout=timeout, cwd=self.tmp_path, **kwargs)
        return done

    def start(self, profile: Any, *args: Any, **kwargs: Any) -> CliServer:
        path = profile if isinstance(profile, Path) else self.write(profile)
        return self.processes.start(path, *map(str, args), cwd=self.tmp_path, **kwargs)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    helper = Cli(tmp_path)
    try:
        yield helper
    finally:
        helper.processes.cleanup()

"""`run --watch` (issue 14): the file watcher alone (`FileWatch`, no event loop), then the
CLI reloading a ConfigMap-style mount when the kubelet's symlink swap happens, rejecting a
broken file with a log line and an event, and taking the fixed file after."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from faultserver._watch import FileWatch
from tests.support.cli import CliProcesses
from tests.support.wait import wait_until

GOOD = "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n"
TEAPOT = GOOD + "    rules:\n      - {name: teapot, action: respond, status: 418}\n"
BROKEN = "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n    acept: open\n"


class ConfigMapVolume:
    """A directory laid out as the kubelet lays out a ConfigMap volume:
    `profile.yaml -> ..data/profile.yaml`, `..data -> ..<timestamp>/`."""

    def __init__(self, root: Path, text: str) -> None:
        self.root = root
        self.n = 0
        root.mkdir(parents=True, exist_ok=True)
        self._write_generation(text)
        os.symlink(f"..gen{self.n}", root / "..data")
        os.symlink("..data/profile.yaml", root / "profile.yaml")

    @property
    def path(self) -> Path:
        return self.root / "profile.yaml"

    def _write_generation(self, text: str) -> str:
        self.n += 1
        directory = self.root / f"..gen{self.n}"
        directory.mkdir()
        (directory / "profile.yaml").write_text(text)
        return directory.name

    def swap(self, text: str) -> None:
        """The kubelet's update: a new directory, a temporary link, renamed over ..data."""
        old = os.readlink(self.root / "..data")
        name = self._write_generation(text)
        os.symlink(name, self.root / "..data_tmp")
        os.replace(self.root / "..data_tmp", self.root / "..data")
        for item in (self.root / old).iterdir():
            item.unlink()
        (self.root / old).rmdir()


# --- FileWatch alone ----------------------------------------------------------------------------


def test_filewatch_sees_a_configmap_swap_once_it_has_settled(tmp_path):
    volume = ConfigMapVolume(tmp_path / "cm", GOOD)
    watch = FileWatch(str(volume.path))
    assert watch.poll() is False
    volume.swap(TEAPOT)
    assert watch.poll() is False  # changed: it waits one poll for the change to settle
    assert watch.poll() is True
    assert watch.poll() is False  # once per change


def test_filewatch_ignores_a_swap_with_the_same_bytes(tmp_path):
    volume = ConfigMapVolume(tmp_path / "cm", GOOD)
    watch = FileWatch(str(volume.path))
    volume.swap(GOOD)  # another key of the ConfigMap changed, or a re-sync
    assert [watch.poll() for _ in range(3)] == [False, False, False]


def test_filewatch_sees_a_file_written_in_place_and_a_missing_file_is_no_change(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    watch = FileWatch(str(path))
    path.write_text(TEAPOT + "# longer\n")
    assert [watch.poll(), watch.poll()] == [False, True]
    path.unlink()
    assert [watch.poll(), watch.poll()] == [False, False]
    path.write_text(BROKEN)
    assert [watch.poll(), watch.poll()] == [False, True]  # a broken file is still a change


def test_filewatch_does_not_report_a_file_still_being_written(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    watch = FileWatch(str(path))
    for part in range(3):  # a slow writer: each poll sees it bigger
        with path.open("a") as file:
            file.write(f"# part {part}\n")
        assert watch.poll() is False
    assert watch.poll() is True


# --- the CLI --------------------------------------------------------------------------------------


def _teapot_rules(api: httpx.Client) -> list[str]:
    state = api.get("/state").json()
    return [rule["name"] for rule in state["listeners"][0]["rules"]]


def test_run_watch_follows_a_configmap_swap_and_rejects_a_broken_file(tmp_path):
    volume = ConfigMapVolume(tmp_path / "etc", GOOD)
    processes = CliProcesses(tmp_path)
    events_path = tmp_path / "events.jsonl"
    try:
        run = processes.start(volume.path, "--watch", "--events", str(events_path))
        port = run.port("backend")
        with run.client() as api:
            run.wait_log("watch path=")
            volume.swap(TEAPOT)
            run.wait_log("cause=watch kept=backend")
            assert _teapot_rules(api) == ["teapot"]
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 418  # same port

            volume.swap(BROKEN)
            failed = run.wait_log("reload failed")
            assert failed.endswith(
                f"level=ERROR reload failed source={volume.path} cause=watch problems=1 (the old profile "
                f"stays): {volume.path}:5:5: listeners[0].acept: unknown key 'acept' (did you mean 'accept'?)"
            )
            assert _teapot_rules(api) == ["teapot"]  # the old profile stays in force
            events = api.get("/events", params={"type": "reload_failed"}).json()["events"]
            assert [(e["cause"], e["problems"], e["source"]) for e in events] == [
                ("watch", 1, str(volume.path))
            ]
            assert "unknown key 'acept'" in events[0]["error"]

            volume.swap(GOOD)  # fixed: taken
            wait_until(lambda: _teapot_rules(api) == [], what="the fixed profile in force")
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        assert run.stop() == 0
        log = run.log()
        assert log.count("reload failed") == 1  # a broken file is reported once, not each poll
        assert "Traceback" not in log
        kinds = [json.loads(line)["type"] for line in events_path.read_text().splitlines()]
        assert kinds.count("reload_failed") == 1
    finally:
        processes.cleanup()


def test_run_watch_applies_the_bind_overrides_again(tmp_path):
    volume = ConfigMapVolume(tmp_path / "etc", GOOD.replace("127.0.0.1:0", "127.0.0.1:1"))
    processes = CliProcesses(tmp_path)
    try:
        run = processes.start(volume.path, "--watch", "--port", "backend=0")
        port = run.port("backend")
        assert port != 1
        volume.swap(TEAPOT.replace("127.0.0.1:0", "127.0.0.1:1"))
        run.wait_log("cause=watch kept=backend")  # kept: --port applied to the new file too
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 418
        assert run.stop() == 0
    finally:
        processes.cleanup()


def test_run_watch_refuses_standard_input(tmp_path):
    import subprocess
    import sys

    from tests.support.cli import cli_env

    done = subprocess.run(
        [sys.executable, "-m", "faultserver", "run", "-", "--watch"],
        input=GOOD,
        capture_output=True,
        text=True,
        timeout=30,
        env=cli_env(),
    )
    assert done.returncode == 2
    assert done.stderr == "faultserver: --watch: a profile read from standard input has no file to watch\n"

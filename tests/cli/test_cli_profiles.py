"""The command line and the shipped profiles: `--version`, `profiles`, a profile by name
(`run fin`, `validate fin`), `run -` (standard input), where `validate` reports a file it
cannot read, and the log line of a schedule phase that only changes rules."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

import faultserver
from faultserver._shipped import shipped_names, shipped_summary
from tests.support.cli import CONTROL_LINE, LISTENER_LINE, cli_env, run_cli
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
NAMES = sorted(p.stem for p in (REPO / "profiles").glob("*.yaml"))

ONE_LISTENER = "version: 1\nlisteners:\n  - name: piped\n    bind: 127.0.0.1:0\n"


def test_cli_version():
    done = run_cli("--version")[0]
    assert (done.returncode, done.stdout, done.stderr) == (0, f"faultserver {faultserver.__version__}\n", "")


def test_cli_profiles_lists_each_shipped_profile_with_its_summary():
    done = run_cli("profiles")[0]
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == NAMES == shipped_names()
    width = max(map(len, NAMES))
    assert lines == [f"{name:<{width}}  {shipped_summary(name)}" for name in NAMES]
    assert f"{'fin':<{width}}  D504CO \"Connection is closed\"." in lines


def test_cli_validate_takes_names(tmp_path):
    done = run_cli("validate", "fin", "fin-rst", cwd=tmp_path)[0]
    assert (done.returncode, done.stdout, done.stderr) == (0, "fin: ok\nfin-rst: ok\n", "")


def test_cli_validate_unknown_name_is_one_line_on_stderr(tmp_path):
    done = run_cli("validate", "fni", cwd=tmp_path)[0]
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"faultserver: profile not found: fni (relative to {tmp_path}): not a file, nor a shipped "
        f"profile (did you mean 'fin'? shipped profiles: {', '.join(NAMES)})\n"
    )


def test_cli_run_unknown_name_is_one_line_on_stderr(tmp_path):
    done = run_cli("run", "nope", cwd=tmp_path)[0]
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("faultserver: profile not found: nope (relative to ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_cli_validate_unreadable_file_goes_to_stderr(tmp_path):
    (tmp_path / "good.yaml").write_text(ONE_LISTENER)
    (tmp_path / "adir.yaml").mkdir()
    done = run_cli("validate", "good.yaml", "adir.yaml", "gone.yaml", cwd=tmp_path)[0]
    assert done.returncode == 2
    assert done.stdout == "good.yaml: ok\n"
    assert done.stderr.splitlines() == [
        "adir.yaml:1:1: cannot read file: Is a directory",
        "gone.yaml:1:1: cannot read file: No such file or directory",
    ]


def test_cli_validate_standard_input(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "faultserver", "validate", "-"],
        input="version: 1\nlisteners:\n  - name: b\n    bind: nowhere\n",
        capture_output=True, text=True, timeout=30, env=cli_env(), cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stdout.startswith("<stdin>:4:11: listeners[0].bind: ")
    good = subprocess.run(
        [sys.executable, "-m", "faultserver", "validate", "-"],
        input=ONE_LISTENER, capture_output=True, text=True, timeout=30, env=cli_env(), cwd=tmp_path,
    )
    assert (good.returncode, good.stdout, good.stderr) == (0, "<stdin>: ok\n", "")


def test_cli_run_reads_the_profile_from_standard_input(tmp_path):
    stderr_path = tmp_path / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faultserver", "run", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env=cli_env(), cwd=tmp_path,
        )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(ONE_LISTENER)
        proc.stdin.close()
        listener = LISTENER_LINE.match(proc.stdout.readline().rstrip("\n"))
        control = CONTROL_LINE.match(proc.stdout.readline().rstrip("\n"))
        assert listener is not None and control is not None
        assert listener["name"] == "piped"
        assert httpx.get(listener["url"] + "/x", timeout=5).status_code == 200
        proc.send_signal(signal.SIGHUP)  # standard input cannot be read again: said, and served on
        said = "a profile read from standard input cannot be read again"
        wait_until(lambda: said in stderr_path.read_text(), what="the SIGHUP line")
        assert httpx.get(listener["url"] + "/y", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_cli_run_standard_input_problems_say_stdin(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "faultserver", "run", "-"],
        input="version: 1\nlisteners:\n  - name: b\n    bind: 127.0.0.1:0\n    accept: clsed\n",
        capture_output=True, text=True, timeout=30, env=cli_env(), cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (2, "")
    expected = r"<stdin>:5:13: listeners\[0\]\.accept: unknown accept mode 'clsed' .*\n"
    assert re.fullmatch(expected, done.stderr)


def test_cli_run_a_file_in_the_working_directory_wins_over_a_name(tmp_path):
    (tmp_path / "fin").write_text(ONE_LISTENER)  # a file named like the shipped profile
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultserver", "run", "fin"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=cli_env(), cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        listener = LISTENER_LINE.match(proc.stdout.readline().rstrip("\n"))
        assert listener is not None and listener["name"] == "piped"  # fin.yaml's is `backend`
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_cli_run_takes_a_shipped_name(tmp_path):
    if not _port_free(8080):
        pytest.skip("fin.yaml binds 127.0.0.1:8080, which is taken here")
    done = run_cli("run", "fin", "--max-duration", "0.3", cwd=tmp_path)[0]
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "listener backend http://127.0.0.1:8080 accept=open"


def test_cli_schedule_phase_that_only_changes_rules_logs_a_line(cli):
    profile = """\
version: 1
listeners:
  - name: backend
    bind: 127.0.0.1:0
    schedule:
      phases:
        - {duration: 200ms}
        - duration: 200ms
          rules:
            - {name: unavailable, action: respond, status: 503}
            - {name: resets, action: reset}
"""
    server = cli.start(profile)
    line = server.wait_log("rules listener=backend rules=unavailable,resets phase=1 ")
    assert line.endswith("rules listener=backend rules=unavailable,resets phase=1 cycle=0 cause=schedule")
    back = server.wait_log("rules listener=backend rules=(none) phase=0 cycle=1")
    assert back.endswith("cause=schedule")
    assert "mode listener=" not in server.log()  # the mode never changed
    assert server.stop() == 0


@pytest.mark.slow
def test_wheel_carries_the_shipped_profiles(tmp_path):
    # built from a copy: pip builds in the source tree, and leaves build/ there
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("faultserver", "profiles"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("faultserver-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n for n in names if n.startswith("faultserver/profiles/")) == sorted(
        f"faultserver/profiles/{name}.yaml" for name in NAMES
    )
    assert "faultserver/_shipped.py" in names

"""`run`'s settings for containers (issue 14): environment variables (flags win),
`--bind NAME=HOST:PORT` / `--port NAME=PORT`, and `--log-format json`. The parsing is pure
and tested without a process; then `faultserver run` shows each at work."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from faultserver._errors import UsageError
from faultserver._logformat import message_fields
from faultserver._profile.load import load_profile_text
from faultserver._run_config import ENVIRONMENT, BindOverride, apply_binds, choice, env_flag, resolve_binds
from faultserver._shipped import find_shipped
from tests.support.cli import CliProcesses, run_cli

#: The shipped profile `fin` (127.0.0.1:8080, as every shipped profile), as a path.
FIN = Path(find_shipped("fin") or "profiles/fin.yaml")
PROFILE = (
    "version: 1\nlisteners:\n"
    "  - name: backend\n    bind: 127.0.0.1:8080\n"
    "  - name: other\n    bind: 127.0.0.1:8081\n"
)


# --- pure -----------------------------------------------------------------------------------------


def test_resolve_binds_flags_win_per_listener_over_the_environment():
    env = {"FAULTSERVER_BIND": "backend=0.0.0.0:9000, other=0.0.0.0:9001", "FAULTSERVER_PORT": ""}
    binds = resolve_binds(["backend=127.0.0.1:0"], [], env)
    assert binds == (BindOverride("other", "0.0.0.0", 9001), BindOverride("backend", "127.0.0.1", 0))
    # --port after --bind changes only the port of that listener
    assert resolve_binds(["backend=[::1]:1"], ["backend=2"], {}) == (BindOverride("backend", "::1", 2),)
    assert resolve_binds([], ["other=7"], {"FAULTSERVER_PORT": "other=8"}) == (
        BindOverride("other", None, 7),
    )


@pytest.mark.parametrize(
    ("binds", "ports", "env", "message"),
    [
        (["backend"], [], {}, "--bind: expected NAME=HOST:PORT such as backend=0.0.0.0:8080, got 'backend'"),
        (
            ["backend=host:1"],
            [],
            {},
            "--bind: backend: expected an IP address or 'localhost' as host, got 'host'",
        ),
        ([], ["backend=99999"], {}, "--port: backend: expected a port from 0 to 65535, got '99999'"),
        (
            [],
            [],
            {"FAULTSERVER_PORT": "x=y"},
            "FAULTSERVER_PORT: x: expected a port from 0 to 65535, got 'y'",
        ),
    ],
)
def test_resolve_binds_mistakes_name_the_flag_or_variable(binds, ports, env, message):
    with pytest.raises(UsageError, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}$"):
        resolve_binds(binds, ports, env)


def test_apply_binds_changes_the_listeners_and_the_document():
    profile = load_profile_text(PROFILE, source="p.yaml")
    out = apply_binds(profile, (BindOverride("other", None, 0), BindOverride("backend", "0.0.0.0", 9)))
    assert [listener.bind for listener in out.listeners] == ["0.0.0.0:9", "127.0.0.1:0"]
    assert [item["bind"] for item in out.raw["listeners"]] == ["0.0.0.0:9", "127.0.0.1:0"]
    with pytest.raises(
        UsageError, match=r"^--bind/--port: no listener named 'nope' in p.yaml \(listeners: backend, other\)$"
    ):
        apply_binds(profile, (BindOverride("nope", None, 1),))


def test_settings_read_the_environment_when_no_flag_is_given():
    assert (
        choice("--log-format", None, {"FAULTSERVER_LOG_FORMAT": "JSON"}, ("text", "json"), "text") == "json"
    )
    assert (
        choice("--log-format", "text", {"FAULTSERVER_LOG_FORMAT": "json"}, ("text", "json"), "text") == "text"
    )
    assert choice("--log-level", None, {"FAULTSERVER_LOG_LEVEL": ""}, ("info",), "info") == "info"
    with pytest.raises(UsageError, match=r"^FAULTSERVER_LOG_FORMAT: expected one of text, json, got 'xml'$"):
        choice("--log-format", None, {"FAULTSERVER_LOG_FORMAT": "xml"}, ("text", "json"), "text")
    assert env_flag("--watch", False, {"FAULTSERVER_WATCH": "on"}) is True
    assert env_flag("--watch", False, {"FAULTSERVER_WATCH": "0"}) is False
    assert env_flag("--watch", True, {"FAULTSERVER_WATCH": "0"}) is True
    with pytest.raises(
        UsageError,
        match=r"^FAULTSERVER_WATCH: expected 1, true, yes or on \(0, false, no, off\), got 'maybe'$",
    ):
        env_flag("--watch", False, {"FAULTSERVER_WATCH": "maybe"})
    assert all(variable.startswith("FAULTSERVER_") for variable, _ in ENVIRONMENT.values())


def test_message_fields_are_the_key_value_pairs_of_a_log_line():
    assert message_fields("mode listener=backend accept=refuse was=open cause=api") == {
        "listener": "backend",
        "accept": "refuse",
        "was": "open",
        "cause": "api",
    }
    assert message_fields(
        "reload failed source=a.yaml cause=watch problems=2 (the old profile stays): x=1"
    ) == {
        "source": "a.yaml",
        "cause": "watch",
        "problems": 2,
        "x": 1,
    }
    assert message_fields("control start url=http://127.0.0.1:8474 level=x") == {
        "url": "http://127.0.0.1:8474"
    }


# --- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def procs(tmp_path):
    processes = CliProcesses(tmp_path)
    yield processes
    processes.cleanup()


def test_two_shipped_profiles_run_side_by_side_with_port_overrides(procs):
    first = procs.start(FIN, "--port", "backend=0")
    second = procs.start(FIN, "--bind", "backend=127.0.0.1:0")
    assert first.port("backend") != second.port("backend")
    for run in (first, second):
        r = httpx.get(run.urls["backend"] + "/", timeout=5)
        assert r.status_code == 200
        with run.client() as api:
            assert api.get("/profile").json()["listeners"][0]["bind"] == "127.0.0.1:0"
    assert first.stop() == 0 and second.stop() == 0


def test_environment_configures_run_and_flags_win(procs, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        env_port = probe.getsockname()[1]
    env = {
        "FAULTSERVER_CONTROL": f"127.0.0.1:{env_port}",
        "FAULTSERVER_PORT": "backend=0",
        "FAULTSERVER_LOG_LEVEL": "debug",
        "FAULTSERVER_EVENTS": str(tmp_path / "events.jsonl"),
    }
    run = procs.start(FIN, env=env)
    assert run.control_url == f"http://127.0.0.1:{env_port}"
    httpx.get(run.urls["backend"] + "/", timeout=5)
    run.wait_log("level=DEBUG request ")
    assert run.stop() == 0
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events].count("start") == 1
    # the flag wins over the variable
    flagged = procs.start(FIN, "--control", "127.0.0.1:0", "--log-level", "info", env=env)
    assert flagged.control_url != f"http://127.0.0.1:{env_port}"
    assert flagged.stop() == 0


def test_bad_environment_values_exit_2_naming_the_variable():
    done, _ = run_cli("run", "fin", env={"FAULTSERVER_CONTROL": "nowhere"})
    assert done.returncode == 2
    assert done.stderr == (
        "faultserver: FAULTSERVER_CONTROL: expected host:port such as '127.0.0.1:8080' or '[::1]:8080', "
        "got 'nowhere'\n"
    )
    done, _ = run_cli("run", "fin", "--port", "nope=1")
    assert done.returncode == 2
    assert done.stderr.startswith("faultserver: --bind/--port: no listener named 'nope' in ")


def test_log_format_json_writes_one_object_per_line(procs):
    run = procs.start(
        FIN, "--port", "backend=0", "--log-format", "json", env={"FAULTSERVER_LOG_FORMAT": "text"}
    )
    with run.client() as api:
        api.patch("/listeners/backend", json={"accept": "refuse"})
    run.wait_log('"cause": "api"')
    assert run.stop() == 0
    lines = [json.loads(line) for line in run.log_lines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert all(line["time"].endswith("Z") for line in lines)
    [mode] = [line for line in lines if line["message"].startswith("mode ")]
    assert mode["level"] == "INFO" and mode["logger"] == "faultserver"
    assert (mode["listener"], mode["accept"], mode["was"], mode["cause"]) == (
        "backend",
        "refuse",
        "open",
        "api",
    )
    [start] = [line for line in lines if line["message"].startswith("listener start")]
    assert start["url"] == run.urls["backend"]


def test_log_format_from_the_environment(procs):
    run = procs.start(FIN, "--port", "backend=0", env={"FAULTSERVER_LOG_FORMAT": "json"})
    assert run.stop() == 0
    assert all(json.loads(line)["logger"].startswith("faultserver") for line in run.log_lines())

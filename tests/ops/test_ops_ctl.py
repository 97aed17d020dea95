"""`faultserver ctl` (issue 14): every command against real servers, one target and a fleet.

The fleet is three servers whose admin APIs listen on 127.0.0.1, 127.0.0.2 and 127.0.0.3
with one port, the way a headless Service's pods do; a stub resolver makes the name
`fleet.test` resolve to the three (`faultserver._ctl.resolve_name` is replaced, as the
module says). The real resolver is tested with `localhost`. Commands run in-process
through `faultserver._cli.main` (output read with capsys), and a few as a subprocess, for
the exit statuses a script sees.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from faultserver import _ctl
from faultserver._cli import main
from faultserver.testing import FaultServer, load_source
from tests.support.cli import run_cli
from tests.support.wait import wait_until

TOKEN = "fleet-token-1"
FLEET_HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
PROFILE = {
    "version": 1,
    "seed": 3,
    "listeners": [
        {
            "name": "backend",
            "bind": "127.0.0.1:0",
            "schedule": {"phases": [{"duration": "1h"}, {"duration": "1h", "accept": "refuse"}]},
        }
    ],
}


def _server(host: str = "127.0.0.1", port: int = 0, token: str | None = TOKEN) -> FaultServer:
    return FaultServer(load_source(PROFILE), admin=True, control=(host, port), token=token).start()


def _free_port_on_all(hosts: tuple[str, ...]) -> int:
    """A port free on every host (checked by binding each), for a fleet on one port."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        try:
            with contextlib.ExitStack() as stack:
                for host in hosts:
                    sock = stack.enter_context(socket.socket())
                    sock.bind((host, port))
            return port
        except OSError:
            continue
    raise AssertionError("no port free on every fleet address")


@pytest.fixture
def fleet(monkeypatch) -> Iterator[list[FaultServer]]:
    """Three servers, admin APIs on 127.0.0.{1,2,3}:PORT; `fleet.test` resolves to the three."""
    port = _free_port_on_all(FLEET_HOSTS)
    servers: list[FaultServer] = []
    try:
        for host in FLEET_HOSTS:
            servers.append(_server(host, port))
        asked: list[tuple[str, int]] = []

        def stub(name: str, wanted_port: int) -> list[str]:
            asked.append((name, wanted_port))
            if name != "fleet.test":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return list(FLEET_HOSTS)

        monkeypatch.setattr(_ctl, "resolve_name", stub)
        monkeypatch.setenv("FAULTSERVER_TOKEN", TOKEN)
        monkeypatch.delenv("FAULTSERVER_TARGET", raising=False)
        yield servers
    finally:
        for server in servers:
            server.stop()


def _fleet_target(servers: list[FaultServer]) -> str:
    port = int(str(servers[0].control_url).rsplit(":", 1)[1])
    return f"dns:fleet.test:{port}"


def ctl(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["ctl", *args])
    out, err = capsys.readouterr()
    return code, out, err


# --- the fleet ----------------------------------------------------------------------------------


def test_ctl_fleet_status_merges_every_replica_into_one_table(fleet, capsys):
    code, out, err = ctl(capsys, "--target", _fleet_target(fleet), "status")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TARGET", "LISTENER", "ACCEPT", "RULES", "PHASE", "NEXT", "PAUSED", "PROFILE"]
    assert [line.split()[0] for line in lines[1:]] == [srv.control_url for srv in fleet]
    for line in lines[1:]:
        cells = line.split()
        assert cells[1] == "backend" and cells[2] == "open" and cells[6] == "0/2"
    assert len({line.split()[-1] for line in lines[1:]}) == 1  # one profile hash for the fleet


def test_ctl_fleet_accept_applies_to_every_replica(fleet, capsys):
    code, out, err = ctl(capsys, "accept", "backend", "refuse", "--target", _fleet_target(fleet))
    assert code == 0, err
    assert out.splitlines() == [f"{srv.control_url}  ok      backend accept=refuse" for srv in fleet]
    assert [srv["backend"].accept for srv in fleet] == ["refuse"] * 3
    code, out, _ = ctl(capsys, "--target", _fleet_target(fleet), "status", "--json")
    document = json.loads(out)
    assert document["ok"] is True
    assert [t["result"]["listeners"][0]["accept_cause"] for t in document["targets"]] == ["api"] * 3


def test_ctl_fleet_with_a_target_down_reports_it_and_exits_1(fleet, capsys):
    fleet[1].stop()  # the middle replica goes away
    code, out, err = ctl(capsys, "--target", _fleet_target(fleet), "accept", "backend", "stall")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{fleet[0].control_url}  ok      backend accept=stall"
    assert lines[1] == f"{fleet[1].control_url}  FAILED  cannot reach: Connection refused"
    assert lines[2] == f"{fleet[2].control_url}  ok      backend accept=stall"
    assert err == "faultserver ctl: 1 of 3 targets failed\n"
    assert fleet[0]["backend"].accept == "stall" and fleet[2]["backend"].accept == "stall"
    # status: the same, one row says why
    code, out, _ = ctl(capsys, "--target", _fleet_target(fleet), "status")
    assert code == 1
    [row] = [line for line in out.splitlines() if line.startswith(fleet[1].control_url)]
    assert "FAILED" in row and "Connection refused" in row
    code, out, _ = ctl(capsys, "--target", _fleet_target(fleet), "--json", "panic")
    assert code == 1
    document = json.loads(out)
    assert document["ok"] is False
    assert [t["ok"] for t in document["targets"]] == [True, False, True]


def test_ctl_fleet_pause_resume_panic(fleet, capsys):
    target = _fleet_target(fleet)
    code, out, _ = ctl(capsys, "--target", target, "pause")
    assert code == 0
    assert all(line.endswith("ok      schedule paused=true changed=true") for line in out.splitlines())
    assert all(srv.state()["schedule"]["paused"] for srv in fleet)
    code, out, _ = ctl(capsys, "--target", target, "resume")
    assert code == 0 and "paused=false changed=true" in out
    ctl(capsys, "--target", target, "accept", "backend", "refuse")
    code, out, _ = ctl(capsys, "--target", target, "panic")
    assert code == 0
    assert out.count("panic: every listener open, API rules cleared, schedule paused (opened: backend)") == 3
    for srv in fleet:
        state = srv.state()
        assert state["schedule"]["paused"] is True and state["listeners"][0]["accept"] == "open"


def test_ctl_fleet_rules_from_a_file_and_from_stdin(fleet, capsys, tmp_path, monkeypatch):
    target = _fleet_target(fleet)
    rules = tmp_path / "rules.yaml"
    rules.write_text("- name: teapot\n  action: respond\n  status: 418\n")
    code, out, err = ctl(capsys, "--target", target, "rules", "backend", str(rules))
    assert code == 0, err
    assert out.count("ok      backend rules=1") == 3
    assert [srv.state()["listeners"][0]["rules"][0]["name"] for srv in fleet] == ["teapot"] * 3

    import io

    monkeypatch.setattr("sys.stdin", io.StringIO('{"rules": [{"action": "reset"}]}'))
    code, out, _ = ctl(capsys, "--target", target, "rules", "backend", "-")
    assert code == 0
    assert [srv.state()["listeners"][0]["rules"][0]["action"]["name"] for srv in fleet] == ["reset"] * 3

    rules.write_text("- action: clse\n")
    code, out, _ = ctl(capsys, "--target", target, "rules", "backend", str(rules))
    assert code == 1
    assert "FAILED  400 invalid rules: <request>:0:0: rules[0].action: unknown action 'clse'" in out


def test_ctl_fleet_drop(fleet, capsys):
    held = [socket.create_connection((srv["backend"].host, srv["backend"].port), timeout=5) for srv in fleet]
    for srv in fleet:
        wait_until(lambda srv=srv: srv["backend"].open_connections == 1, what="a connection open")
    code, out, _ = ctl(capsys, "--target", _fleet_target(fleet), "drop", "backend", "--rst", "--idle-only")
    assert code == 0
    assert out.count("ok      backend dropped=1 how=rst") == 3
    for sock in held:
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
        sock.close()


def test_ctl_fleet_events_and_metrics(fleet, capsys):
    target = _fleet_target(fleet)
    ctl(capsys, "--target", target, "accept", "backend", "refuse")
    code, out, _ = ctl(capsys, "--target", target, "events", "--type", "mode", "--limit", "1")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    for srv, line in zip(fleet, lines, strict=True):
        assert f" {srv.control_url} #" in line and line.endswith("mode backend accept=refuse cause=api")
    code, out, _ = ctl(capsys, "--target", target, "--json", "events", "--type", "mode", "--limit", "1")
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["target"], e["accept"]) for e in events] == [(srv.control_url, "refuse") for srv in fleet]

    code, out, _ = ctl(capsys, "--target", target, "metrics")
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("# target")] == [
        f"# target {srv.control_url}" for srv in fleet
    ]
    assert out.count('faultserver_accept_mode{listener="backend",mode="refuse"} 1') == 3


def test_ctl_events_follow_streams_every_target(fleet, capsys):
    target = _fleet_target(fleet)
    result: dict[str, int] = {}

    def follow() -> None:
        result["code"] = main(
            ["ctl", "--target", target, "events", "--follow", "--type", "drop", "--limit", "1"]
        )

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    # each server's stream is open once its subscriber shows; then make one drop event each
    for srv in fleet:
        srv.drop("backend")
    # the streams start "from now": drop again until every follower has seen one
    for _ in range(100):
        thread.join(0.1)
        if not thread.is_alive():
            break
        for srv in fleet:
            srv.drop("backend")
    assert not thread.is_alive(), "events --follow did not end after one event per target"
    assert result["code"] == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert sorted(line.split()[1] for line in lines) == sorted(srv.control_url for srv in fleet)
    assert all(" drop backend how=fin" in line for line in lines)


# --- one target, the token, usage -------------------------------------------------------------


def test_ctl_wrong_token_fails_each_target_with_401(fleet, capsys, monkeypatch):
    monkeypatch.setenv("FAULTSERVER_TOKEN", "wrong")
    code, out, _ = ctl(capsys, "--target", _fleet_target(fleet), "pause")
    assert code == 1
    assert out.count("FAILED  401 missing or wrong token: send 'Authorization: Bearer TOKEN'") == 3
    assert not any(srv.state()["schedule"]["paused"] for srv in fleet)


def test_ctl_token_file_wins_over_the_environment(fleet, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FAULTSERVER_TOKEN", "wrong")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code, _, err = ctl(capsys, "--target", _fleet_target(fleet), "--token-file", str(token_file), "pause")
    assert code == 0, err


def test_ctl_unresolvable_name_is_a_failed_target(fleet, capsys):
    code, out, _ = ctl(
        capsys, "--target", "dns:nowhere.test:8474", "--target", fleet[0].control_url, "pause"
    )
    assert code == 1
    first, second = out.splitlines()
    assert first.split(None, 2)[:2] == ["dns:nowhere.test:8474", "FAILED"]
    assert first.split(None, 2)[2] == "cannot resolve nowhere.test: Name or service not known"
    assert second.split() == [fleet[0].control_url, "ok", "schedule", "paused=true", "changed=true"]


def test_ctl_reload_puts_a_file_in_force_or_rereads_each_server_s_own(fleet, capsys, tmp_path):
    profile = tmp_path / "new.yaml"
    profile.write_text(
        "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n    accept: refuse\n"
    )
    code, out, err = ctl(capsys, "--target", _fleet_target(fleet), "reload", str(profile))
    assert code == 0, err
    assert out.count("ok      reloaded: listeners backend") == 3
    assert [srv["backend"].accept for srv in fleet] == ["refuse"] * 3
    # no FILE: each server reads its own file again; these came from code, so they say so
    code, out, _ = ctl(capsys, "--target", _fleet_target(fleet), "reload")
    assert code == 1
    assert out.count("FAILED  400 this server's profile has no file to read again") == 3


def test_ctl_real_resolver_reaches_localhost(capsys, monkeypatch):
    monkeypatch.setenv("FAULTSERVER_TOKEN", TOKEN)
    server = _server("127.0.0.1", 0)
    try:
        port = int(str(server.control_url).rsplit(":", 1)[1])
        addresses = _ctl.resolve_name("localhost", port)
        assert "127.0.0.1" in addresses
        code, out, _ = ctl(capsys, "--target", f"dns:localhost:{port}", "pause")
        lines = out.splitlines()
        assert len(lines) == len(addresses)
        assert lines[0] == f"http://127.0.0.1:{port}  ok      schedule paused=true changed=true"
        # ::1, when localhost has it, has no server on that port here: a failed target
        assert code == (0 if addresses == ["127.0.0.1"] else 1)
    finally:
        server.stop()


def test_ctl_targets_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("FAULTSERVER_TOKEN", TOKEN)
    server = _server()
    try:
        monkeypatch.setenv("FAULTSERVER_TARGET", f"{server.control_url}/")
        code, out, _ = ctl(capsys, "pause")
        assert code == 0 and out.startswith(f"{server.control_url}  ok")
    finally:
        server.stop()


def test_expand_targets_parses_and_resolves():
    targets = _ctl.expand_targets(
        ["http://10.0.0.9:8474/", "dns:fleet:8474", "https://h.example:9"],
        resolver=lambda name, port: ["10.0.0.9", "fd00::1", "10.0.0.10"],
    )
    assert [t.url for t in targets] == [
        "http://10.0.0.9:8474",
        "http://[fd00::1]:8474",
        "http://10.0.0.10:8474",
        "https://h.example:9",
    ]
    assert _ctl.expand_targets(["dns:x:1"], resolver=lambda n, p: [])[0].error == "x has no address"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ctl", "status"],
            "faultserver: ctl: no target: give --target URL (or dns:NAME:PORT), or set FAULTSERVER_TARGET",
        ),
        (
            ["ctl", "--target", "ftp://x", "status"],
            "faultserver: --target: expected http://HOST:PORT, https://HOST:PORT or dns:NAME:PORT, got 'ftp://x'",
        ),
        (
            ["ctl", "--target", "dns:x", "status"],
            "faultserver: --target: expected dns:NAME:PORT such as dns:faultserver.chaos.svc:8474, "
            "got 'dns:x'",
        ),
        (["ctl", "--target", "http://x:1", "accept", "backend", "shut"], None),
        (
            ["ctl", "--target", "http://x:1", "rules", "backend", "/nonexistent/rules.yaml"],
            "faultserver: rules: cannot read /nonexistent/rules.yaml: No such file or directory",
        ),
        (
            ["ctl", "--target", "http://x:1", "--token-file", "/nonexistent/t", "status"],
            "faultserver: --token-file: cannot read /nonexistent/t: No such file or directory",
        ),
    ],
)
def test_ctl_usage_mistakes_exit_2_with_one_line(args, message, monkeypatch):
    monkeypatch.delenv("FAULTSERVER_TARGET", raising=False)
    done, _ = run_cli(*args)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    if message is not None:
        assert lines[0] == message
    else:
        assert lines[0].startswith("faultserver: ctl accept: argument mode: invalid choice: 'shut'")


def test_ctl_as_a_subprocess_exit_statuses(tmp_path):
    server = _server(token=None)
    try:
        done, _ = run_cli("ctl", "--target", server.control_url, "status", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["targets"][0]["result"]["listeners"][0]["name"] == "backend"
        done, _ = run_cli("ctl", "--target", server.control_url, "--target", "http://127.0.0.1:1", "pause")
        assert done.returncode == 1
        assert done.stderr == "faultserver ctl: 1 of 2 targets failed\n"
    finally:
        server.stop()


def test_ctl_help_lists_every_command():
    done, _ = run_cli("ctl", "--help")
    assert done.returncode == 0
    for command in (
        "status",
        "accept",
        "rules",
        "drop",
        "reload",
        "pause",
        "resume",
        "panic",
        "events",
        "metrics",
    ):
        assert command in done.stdout

"""The command line (the README's "Command line"), run as a subprocess.

`run`: the `listener ...`/`control ...` lines come first and are true; SIGINT, SIGTERM and
`--max-duration` end the run with exit 0 and a clean FIN on every client connection; the soft
open-file limit is raised. `validate`, `actions`, `schema`. Every user mistake: one line on
stderr, exit 2, no traceback; an invalid profile or a taken port starts nothing.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import socket
import time
from pathlib import Path

import httpx
import jsonschema
import pytest

from faultserver._profile.actions import ACCEPT_MODES, ACTIONS
from tests.support import net

LONG_S = net.LONG_S
ACTIONS_LIST = "respond, close, reset, hang, partial, dribble, garbage, delay, goaway, rst_stream, forward"

SIMPLE = """\
version: 1
listeners:
  - name: backend
    bind: 127.0.0.1:0
    rules:
      - match: {path: /hang}
        action: hang
"""

# line 7, column 17 is where 'clse' starts
BROKEN = """\
version: 1
listeners:
  - name: backend
    bind: 127.0.0.1:0
    rules:
      - action: close
      - action: clse
"""
BROKEN_PROBLEM = (
    "broken.yaml:7:17: listeners[0].rules[1].action: unknown action 'clse' "
    f"(did you mean 'close'? expected one of: {ACTIONS_LIST})"
)


def connect(port: int) -> socket.socket:
    return net.connect("127.0.0.1", port)


def read_response(sock: socket.socket) -> bytes:
    """One response whose body is the JSON echo (ends with a newline)."""
    data = b""
    while not (b"\r\n\r\n" in data and data.endswith(b"}\n")):
        chunk = sock.recv(65536)
        assert chunk, f"EOF before a whole response: {data!r}"
        data += chunk
    return data


def assert_one_line_error(result, line: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr == line + "\n"
    assert result.stdout == ""


def taken_port():
    """A socket listening on a free port, without SO_REUSEADDR: the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


# --- run: the first lines ------------------------------------------------------------------------


def test_run_prints_listener_lines_then_control_first(cli):
    v6 = net.ipv6_available()
    profile = """\
version: 1
listeners:
  - name: web
    bind: 127.0.0.1:0
  - name: down
    bind: 127.0.0.1:0
    accept: refuse
  - name: slow
    bind: 127.0.0.1:0
    accept: stall
"""
    if v6:
        profile += "  - name: six\n    bind: \"[::1]:0\"\n"
    run = cli.start(profile, "--max-duration", "30s")
    names = ["web", "down", "slow"] + (["six"] if v6 else [])
    assert [line.split()[1] for line in run.lines[:-1]] == names  # in profile order, control last
    for name in names:
        url, accept = run.listeners[name]
        port = run.port(name)
        assert port != 0
        host = "[::1]" if name == "six" else "127.0.0.1"
        assert url == f"http://{host}:{port}"
        assert f"listener {name} {url} accept={accept}" in run.lines
    assert [run.listeners[n][1] for n in ("web", "down", "slow")] == ["open", "refuse", "stall"]
    assert run.lines[-1] == f"control {run.control_url}"
    assert run.control_url.startswith("http://127.0.0.1:") and not run.control_url.endswith(":0")

    # the lines are true
    r = httpx.get(run.listeners["web"][0] + "/x", timeout=LONG_S)
    assert (r.status_code, r.json()["listener"]) == (200, "web")
    if v6:
        assert httpx.get(run.listeners["six"][0], timeout=LONG_S).json()["listener"] == "six"
    with pytest.raises(ConnectionRefusedError):
        connect(run.port("down")).close()
    assert net.connect_errno(run.port("slow")) == errno.ETIMEDOUT
    assert httpx.get(run.control_url + "/healthz", timeout=LONG_S).status_code == 200

    # the admin API switches a mode on the same port
    r = httpx.patch(run.control_url + "/listeners/web", json={"accept": "refuse"}, timeout=LONG_S)
    assert r.status_code == 200
    with pytest.raises(ConnectionRefusedError):
        connect(run.port("web")).close()
    run.signal(signal.SIGTERM)
    assert run.proc.wait(10) == 0
    assert "Traceback" not in run.log()


def test_run_control_option_sets_the_admin_address(cli):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    run = cli.start(SIMPLE, "--control", f"127.0.0.1:{port}", "--max-duration", "30s")
    assert run.control_url == f"http://127.0.0.1:{port}"
    assert httpx.get(run.control_url + "/healthz", timeout=LONG_S).status_code == 200
    run.signal(signal.SIGINT)
    assert run.proc.wait(10) == 0


# --- run: stopping cleanly -------------------------------------------------------------------


def hold_connections(port: int) -> dict[str, socket.socket]:
    """An idle keep-alive connection, one with half a request, one whose request hangs."""
    idle = connect(port)
    idle.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(idle).startswith(b"HTTP/1.1 200 OK\r\n")
    partial = connect(port)
    partial.sendall(b"GET /partial HTTP/1.1\r\nHo")
    hanging = connect(port)
    hanging.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    return {"idle": idle, "partial": partial, "hang": hanging}


def assert_clean_eof(socks: dict[str, socket.socket]) -> None:
    for name, sock in socks.items():
        try:
            data = sock.recv(65536)
        except ConnectionResetError:  # pragma: no cover - the failure being tested for
            pytest.fail(f"{name}: connection reset (RST) instead of FIN at shutdown")
        finally:
            sock.close()
        assert data == b"", f"{name}: {data!r}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_stops_on_signal_with_fin(cli, signum):
    events = cli.tmp_path / "events.jsonl"
    run = cli.start(SIMPLE, "--events", events, "--max-duration", "60s")
    port = run.port("backend")
    socks = hold_connections(port)
    time.sleep(0.2)  # let the hanging request be read
    start = time.monotonic()
    run.signal(signum)
    assert_clean_eof(socks)
    assert run.proc.wait(10) == 0
    assert time.monotonic() - start < 5
    assert "Traceback" not in run.log()
    assert run.more_stdout() == ""
    with pytest.raises(ConnectionRefusedError):
        connect(port).close()
    types = [json.loads(line)["type"] for line in events.read_text().splitlines()]
    assert types.count("accept") == 3 and "request" in types and "fault" in types


def test_run_sigterm_right_after_the_control_line_stops_cleanly(cli):
    # a script may signal as soon as it has read the lines: the signal must be caught by then
    run = cli.start(SIMPLE, "--max-duration", "30s")
    run.signal(signal.SIGTERM)
    assert run.proc.wait(10) == 0
    assert "Traceback" not in run.log()


def test_run_stops_after_max_duration_with_fin(cli):
    start = time.monotonic()
    run = cli.start(SIMPLE, "--max-duration", "1.5s", "--log-level", "warning")
    socks = hold_connections(run.port("backend"))
    assert_clean_eof(socks)  # blocks until the server stops by itself
    assert run.proc.wait(10) == 0
    took = time.monotonic() - start
    assert 1.4 <= took < 10, took
    assert run.log() == ""  # --log-level warning: a clean run says nothing


def test_run_max_duration_plain_number_is_seconds(cli):
    run = cli.start(SIMPLE, "--max-duration", "0.5")
    assert run.proc.wait(10) == 0


def test_run_raises_soft_open_file_limit(cli):
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard open-file limit is {hard}: nothing to raise to")

    def lower() -> None:  # start the server with the common default soft limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    run = cli.start(SIMPLE, "--max-duration", "30s", preexec_fn=lower)
    limits = Path(f"/proc/{run.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    run_soft, run_hard = line.split()[3:5]
    expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert run_hard == expected
    if hard == resource.RLIM_INFINITY:
        assert int(run_soft) > 1024
    else:
        assert run_soft == run_hard, line
    run.signal(signal.SIGTERM)
    assert run.proc.wait(10) == 0


# --- run: mistakes start nothing -------------------------------------------------------------


def test_run_invalid_profile_starts_nothing(cli):
    cli.write(BROKEN, "broken.yaml")
    result = cli.call("run", "broken.yaml")
    assert_one_line_error(result, BROKEN_PROBLEM)


def test_run_listener_port_taken_starts_nothing(cli):
    blocker = taken_port()
    try:
        port = blocker.getsockname()[1]
        path = cli.write(
            "version: 1\nlisteners:\n"
            "  - {name: first, bind: '127.0.0.1:0'}\n"
            f"  - {{name: backend, bind: '127.0.0.1:{port}'}}\n"
        )
        result = cli.call("run", path, "--max-duration", "30s")
        assert_one_line_error(
            result, f"faultserver: listener backend: cannot bind 127.0.0.1:{port}: Address already in use"
        )
    finally:
        blocker.close()


def test_run_control_port_taken_starts_nothing(cli):
    blocker = taken_port()
    try:
        port = blocker.getsockname()[1]
        result = cli.call("run", cli.write(SIMPLE), "--control", f"127.0.0.1:{port}", "--max-duration", "30s")
        assert_one_line_error(
            result, f"faultserver: control: cannot bind 127.0.0.1:{port}: Address already in use"
        )
    finally:
        blocker.close()


def test_run_missing_profile(cli):
    result = cli.call("run", "nowhere.yaml")
    assert_one_line_error(result, "nowhere.yaml:1:1: cannot read file: No such file or directory")


def test_run_unreadable_profile(cli):
    (cli.tmp_path / "adir.yaml").mkdir()
    result = cli.call("run", "adir.yaml")
    assert_one_line_error(result, "adir.yaml:1:1: cannot read file: Is a directory")
    (cli.tmp_path / "binary.yaml").write_bytes(b"version: 1\n\xff\xfe\n")
    result = cli.call("run", "binary.yaml")
    assert_one_line_error(result, "binary.yaml:2:1: expected UTF-8 text, got byte 0xff (invalid start byte)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_run_profile_without_read_permission(cli):
    path = cli.write(SIMPLE, "secret.yaml")
    path.chmod(0)
    result = cli.call("run", "secret.yaml")
    assert_one_line_error(result, "secret.yaml:1:1: cannot read file: Permission denied")


USAGE = "see 'faultserver --help'"
RUN_USAGE = "see 'faultserver run --help'"


@pytest.mark.parametrize(
    "args, message",
    [
        ([], f"faultserver: the following arguments are required: command ({USAGE})"),
        (
            ["start"],
            "faultserver: argument command: invalid choice: 'start' "
            f"(choose from 'run', 'validate', 'profiles', 'actions', 'schema', 'ctl', 'probe') ({USAGE})",
        ),
        (["run"], f"faultserver: run: the following arguments are required: profile ({RUN_USAGE})"),
        (["run", "{p}", "--bogus"], f"faultserver: unrecognized arguments: --bogus ({USAGE})"),
        (
            ["validate"],
            "faultserver: validate: the following arguments are required: PROFILE "
            "(see 'faultserver validate --help')",
        ),
        (
            ["run", "{p}", "--max-duration", "soon"],
            "faultserver: --max-duration: expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', "
            "got 'soon'",
        ),
        (
            ["run", "{p}", "--max-duration", "0"],
            "faultserver: --max-duration: expected a duration greater than 0, got '0'",
        ),
        (
            ["run", "{p}", "--max-duration=-5s"],
            "faultserver: --max-duration: expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', "
            "got '-5s'",
        ),
        (
            ["run", "{p}", "--max-duration"],
            f"faultserver: run: argument --max-duration: expected one argument ({RUN_USAGE})",
        ),
        (
            ["run", "{p}", "--control", "nowhere"],
            "faultserver: --control: expected host:port such as '127.0.0.1:8080' or '[::1]:8080', "
            "got 'nowhere'",
        ),
        (
            ["run", "{p}", "--control", "127.0.0.1:70000"],
            "faultserver: --control: expected a port from 0 to 65535, got '70000'",
        ),
        (
            ["run", "{p}", "--control", "example.com:8474"],
            "faultserver: --control: expected an IP address or 'localhost' as host, got 'example.com'",
        ),
        (
            ["run", "{p}", "--control", "192.0.2.1:8474"],
            "faultserver: control: refusing to bind 192.0.2.1:8474 without a token: set control.token "
            "or FAULTSERVER_TOKEN (anyone who can reach it could change the faults)",
        ),
        (
            ["run", "{p}", "--log-level", "loud"],
            "faultserver: run: argument --log-level: invalid choice: 'loud' "
            f"(choose from 'debug', 'info', 'warning', 'error') ({RUN_USAGE})",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_cli_bad_arguments_one_line_exit_2(cli, args, message):
    path = cli.write(SIMPLE)
    env = {k: v for k, v in os.environ.items() if k != "FAULTSERVER_TOKEN"}
    result = cli.call(*[str(path) if a == "{p}" else a for a in args], env=env)
    assert_one_line_error(result, message)


# --- validate, actions, schema ---------------------------------------------------------------------


def test_validate_valid_profiles_exit_0(cli):
    cli.write(SIMPLE, "good.yaml")
    cli.write("version: 1\nlisteners: [{name: b, bind: '[::1]:0', accept: stall}]\n", "six.yaml")
    result = cli.call("validate", "good.yaml", "six.yaml")
    assert (result.returncode, result.stdout, result.stderr) == (0, "good.yaml: ok\nsix.yaml: ok\n", "")


def test_validate_prints_every_problem_exit_2(cli):
    cli.write(SIMPLE, "good.yaml")
    cli.write(BROKEN, "broken.yaml")
    cli.write("version: 2\nlisteners:\n  - name: b\n    bind: 127.0.0.1:0\n    acept: open\n", "two.yaml")
    result = cli.call("validate", "good.yaml", "broken.yaml", "two.yaml", "missing.yaml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [
        "good.yaml: ok",
        BROKEN_PROBLEM,
        "two.yaml:1:10: version: unsupported version 2 (supported versions: 1)",
        "two.yaml:5:5: listeners[0].acept: unknown key 'acept' (did you mean 'accept'?)",
    ]
    # a file that cannot be read is a one-line error, on standard error as for every command
    assert result.stderr.splitlines() == ["missing.yaml:1:1: cannot read file: No such file or directory"]


def test_actions_lists_every_action_and_accept_mode(cli):
    result = cli.call("actions")
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    listed = {line.split()[0] for line in lines if line.startswith("  ")}
    assert listed == set(ACTIONS) | set(ACCEPT_MODES)
    assert set(ACTIONS) == {
        "respond", "close", "reset", "hang", "partial", "dribble", "garbage", "delay", "goaway", "rst_stream",
        "forward",
    }
    assert set(ACCEPT_MODES) == {"open", "refuse", "stall"}
    for line in lines:
        if line.startswith("  "):
            assert len(line.split()) > 3, f"no explanation: {line!r}"
    stall = next(line for line in lines if line.startswith("  stall "))
    assert "`hang`" in stall and "`at: connect`" in stall  # how stall, hang and at: connect differ
    assert any(line.startswith("at: connect ") for line in lines)


def test_schema_prints_json_schema(cli):
    result = cli.call("schema")
    assert (result.returncode, result.stderr) == (0, "")
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {"version": 1, "listeners": [{"name": "b", "bind": "127.0.0.1:0", "accept": "stall"}]}
    assert list(validator.iter_errors(good)) == []
    bad = {"version": 1, "listeners": [{"name": "b", "bind": "127.0.0.1:0", "accept": "sometimes"}]}
    assert list(validator.iter_errors(bad)) != []

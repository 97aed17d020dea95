"""The plugin as a user meets it: a fresh pytest process (pytester.runpytest_subprocess)
with no conftest providing the fixture, so it can only come from the `pytest11` entry point.

The ports are checked inside that process, after pytest has torn the test down
(`pytest_unconfigure`): once the process exits every port is closed anyway, so a check
from outside could not fail.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import faultserver

#: The inner run's conftest: no fixtures, only the after-the-fact check of the ports
#: that the inner tests wrote to ports.txt, and of the server threads.
CHECK_PORTS_CONFTEST = """
import errno, json, pathlib, socket, threading

def pytest_unconfigure(config):
    path = pathlib.Path("ports.txt")
    ports = [int(p) for p in path.read_text().split()] if path.exists() else []
    after = {}
    for port in ports:
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", port))
            after[port] = "open"
        except OSError as exc:
            after[port] = errno.errorcode.get(exc.errno, str(exc))
        finally:
            sock.close()
    threads = [t.name for t in threading.enumerate() if t.name.startswith("faultserver")]
    pathlib.Path("after.json").write_text(json.dumps({"ports": after, "threads": threads}))
"""

#: Written by the inner tests: remember a server's ports for the check above.
REMEMBER_PORTS = """
import pathlib

def remember(srv):
    with open("ports.txt", "a") as f:
        for handle in srv.listeners.values():
            f.write(f"{handle.port}\\n")
"""


def after_run(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "after.json").read_text())


def test_plugin_is_found_through_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_uses_fixture(faultserver):
            srv = faultserver({"version": 1, "listeners": [{"name": "backend", "bind": "0.0.0.0:80"}]})
            assert srv["backend"].host == "127.0.0.1"
            assert httpx.get(srv.url + "/hello", timeout=5).status_code == 200
            assert [e["path"] for e in srv.requests()] == ["/hello"]
        """
    )
    assert not list(pytester.path.glob("conftest.py"))
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1)
    # the header lists plugins loaded from entry points, by distribution
    result.stdout.fnmatch_lines([f"plugins: *faultserver-{faultserver.__version__}*"])

    # without the entry point's plugin (named "faultserver") there is no fixture
    result = pytester.runpytest_subprocess("-p", "no:faultserver")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'faultserver' not found*"])


def test_plugin_failing_test_reports_events_and_stops_every_server(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CHECK_PORTS_CONFTEST)
    pytester.makepyfile(remember_ports=REMEMBER_PORTS)
    pytester.makepyfile(
        """
        import httpx
        import pytest
        from remember_ports import remember

        FIN = '''
        version: 1
        listeners:
          - name: backend
            bind: 127.0.0.1:0
            rules: [{name: fin-on-reuse, match: {request_on_connection: 2}, action: close}]
        '''

        def test_two_servers_fail(faultserver):
            first = faultserver(FIN)
            second = faultserver({"version": 1, "listeners": [
                {"name": "api", "bind": "127.0.0.1:0"},
                {"name": "down", "bind": "127.0.0.1:0", "accept": "refuse"},
            ]})
            remember(first)
            remember(second)
            client = httpx.Client(timeout=5)  # left open on purpose: teardown must cope
            client.get(first.url + "/warmup")
            with pytest.raises(httpx.RemoteProtocolError):
                client.get(first.url + "/orders")
            assert client.get(second.url + "/ok").status_code == 200
            assert first.requests()[0]["path"] == "/warmup"
            assert False, "the client did not retry"

        def test_one_server_fails(faultserver):
            srv = faultserver(FIN)
            remember(srv)
            httpx.get(srv.url + "/single", timeout=5)
            raise RuntimeError("boom")

        def test_passes(faultserver):
            srv = faultserver(FIN)
            remember(srv)
            httpx.get(srv.url + "/quiet", timeout=5)
        """
    )
    result = pytester.runpytest_subprocess("-rA")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_two_servers_fail _*",
            "E       AssertionError: the client did not retry",
            "*- faultserver events (server 1) -*",
            "listener backend http://127.0.0.1:* accept=open",
            "#* fault listener=backend rule=fin-on-reuse action=close conn=1 peer=127.0.0.1:* "
            "method=GET path=/orders request_on_connection=2 *",
            "*- faultserver events (server 2) -*",
            "listener api http://127.0.0.1:* accept=open",
            "listener down http://127.0.0.1:* accept=refuse",
            "#* response listener=api status=200 * path=/ok *",
            "*_ test_one_server_fails _*",
            "*- faultserver events -*",
            "#* request listener=backend * path=/single request_on_connection=1 *",
        ]
    )
    # a passing test gets no events section
    assert "path=/quiet" not in result.stdout.str()
    after = after_run(pytester)
    assert len(after["ports"]) == 5
    assert set(after["ports"].values()) == {"ECONNREFUSED"}
    assert after["threads"] == []


def test_plugin_interrupted_test_stops_its_servers(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CHECK_PORTS_CONFTEST)
    pytester.makepyfile(remember_ports=REMEMBER_PORTS)
    pytester.makepyfile(
        """
        import socket
        from remember_ports import remember

        def test_interrupted(faultserver):
            srv = faultserver({"version": 1, "listeners": [{"name": "backend", "bind": "127.0.0.1:0"}]})
            remember(srv)
            held = socket.create_connection(("127.0.0.1", srv["backend"].port), timeout=5)
            srv.wait_for(type="accept", timeout=5)
            raise KeyboardInterrupt

        def test_never_runs():
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    after = after_run(pytester)
    assert list(after["ports"].values()) == ["ECONNREFUSED"]
    assert after["threads"] == []


def test_plugin_import_is_cheap() -> None:
    heavy = ("trio", "quart", "quart_trio", "hypercorn", "yaml", "httptools")
    code = (
        "import sys\n"
        "import faultserver.pytest_plugin\n"
        f"heavy = {heavy!r}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
        # and a server without admin=True does not load the admin API's stack either
        "from faultserver.testing import running\n"
        "with running({'version': 1, 'listeners': [{'name': 'b', 'bind': '127.0.0.1:0'}]}):\n"
        "    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'quart', 'quart_trio', 'hypercorn'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.splitlines() == ["[]", "[]"]

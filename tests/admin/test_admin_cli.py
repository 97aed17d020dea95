"""The admin side of `faultserver run` as a subprocess: SIGHUP reload, the token from the
environment, refusing a public admin API without a token, `--events FILE`, logging."""

from __future__ import annotations

import json
import re
import signal
import socket

import pytest

from tests.support.cli import run_cli

REFUSED = (
    "faultserver: control: refusing to bind {}:0 without a token: set control.token or "
    "FAULTSERVER_TOKEN (anyone who can reach it could change the faults)"
)
#: one structured log line: time, level, message
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d level=(DEBUG|INFO|WARNING|ERROR) \S.*$")


def test_cli_sighup_reloads_keeps_connections_opens_and_closes_listeners(cli, adm, tmp_path):
    path = adm.write_profile(tmp_path / "p.yaml", adm.profile(adm.listener("web"), adm.listener("old")))
    events_path = tmp_path / "events.jsonl"
    run = cli.start(path, "--events", str(events_path))
    assert run.lines[0] == f"listener web {run.listeners['web'][0]} accept=open"
    web, old = run.port("web"), run.port("old")
    kept = adm.connect(web)
    assert adm.roundtrip(kept, "/")[0] == 200

    # a valid new profile: web keeps its socket with new rules, old goes, new comes
    adm.write_profile(path, adm.profile(
        adm.listener("web", rules=[{"name": "teapot", "action": "respond", "status": 418}]),
        adm.listener("new"),
    ))
    run.signal(signal.SIGHUP)
    line = run.wait_log("reload source=")
    assert line.endswith(f"level=INFO reload source={path} cause=sighup kept=web added=new removed=old")
    assert adm.roundtrip(kept, "/")[0] == 418  # the kept-alive connection survived the reload
    with run.client() as api:
        listeners = {e["name"]: e for e in api.get("/listeners").json()["listeners"]}
        assert set(listeners) == {"web", "new"}
        assert listeners["web"]["url"] == run.listeners["web"][0]
        new_port = int(listeners["new"]["url"].rsplit(":", 1)[1])
        sock = adm.connect(new_port)
        assert adm.roundtrip(sock, "/")[0] == 200
        sock.close()
        assert isinstance(adm.connect_error(old), ConnectionRefusedError)

        # an invalid one changes nothing and says why in one line
        path.write_text("version: 1\nlisteners:\n  - name: web\n    bind: 127.0.0.1:0\n    acept: open\n")
        run.signal(signal.SIGHUP)
        failed = run.wait_log("reload failed")
        assert failed.endswith(
            f"level=ERROR reload failed source={path} cause=sighup problems=1 (the old profile stays): "
            f"{path}:5:5: listeners[0].acept: unknown key 'acept' (did you mean 'accept'?)"
        )
        assert adm.roundtrip(kept, "/")[0] == 418
        assert {e["name"] for e in api.get("/listeners").json()["listeners"]} == {"web", "new"}
        # a mode change through the API is logged with its cause
        api.patch("/listeners/new", json={"accept": "refuse"})
        run.wait_log("mode listener=new")
    kept.close()
    assert run.stop() == 0

    lines = run.log_lines()
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert sum("reload failed" in line for line in lines) == 1
    messages = [line.split(" ", 2)[2] for line in lines]
    web_url, old_url = run.listeners["web"][0], run.listeners["old"][0]
    new_url = f"http://127.0.0.1:{new_port}"
    for expected in [
        f"listener start listener=web url={web_url} accept=open",
        f"listener start listener=old url={old_url} accept=open",
        f"listener stop listener=old url={old_url} accept=open",
        f"listener start listener=new url={new_url} accept=open",
        "mode listener=new accept=refuse was=open cause=api",
        f"listener stop listener=web url={web_url} accept=open",
        f"listener stop listener=new url={new_url} accept=refuse",
    ]:
        assert messages.count(expected) == 1, (expected, messages)
    assert not [line for line in lines if "level=DEBUG" in line]  # no per-request lines at info

    # --events FILE: every event, one JSON object a line
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    reloads = {e["listener"]: (e["change"], e["cause"]) for e in events if e["type"] == "reload"}
    assert reloads == {"web": ("kept", "sighup"), "new": ("added", "sighup"), "old": ("removed", "sighup")}
    statuses = [e["status"] for e in events if e["type"] == "response"]
    assert statuses == [200, 418, 200, 418]
    assert ("new", "refuse", "api") in [(e["listener"], e.get("accept"), e.get("cause")) for e in events]


def test_cli_log_level_debug_logs_each_request(cli, adm, tmp_path):
    path = adm.write_profile(tmp_path / "p.yaml", adm.profile())
    run = cli.start(path, "--log-level", "debug")
    sock = adm.connect(run.port("backend"))
    assert adm.roundtrip(sock, "/hello")[0] == 200
    peer = f"127.0.0.1:{sock.getsockname()[1]}"
    line = run.wait_log("level=DEBUG request ")
    assert line.endswith(
        f"level=DEBUG request listener=backend conn=1 peer={peer} method=GET path=/hello n=1 retry=False"
    )
    sock.close()
    assert run.stop() == 0


def test_cli_token_from_the_environment_takes_precedence(cli, adm, tmp_path):
    path = adm.write_profile(tmp_path / "p.yaml", adm.profile(control={"token": "from-profile"}))
    run = cli.start(path, env={"FAULTSERVER_TOKEN": "from-env"})
    with run.client("from-env") as api:
        assert api.get("/listeners").status_code == 200
    with run.client("from-profile") as api:
        adm.assert_json_error(api.get("/listeners"), 401)
    with run.client() as api:
        adm.assert_json_error(api.get("/listeners"), 401)
    assert run.stop() == 0
    # without the variable, the profile's token
    run = cli.start(path)
    with run.client("from-profile") as api:
        assert api.get("/listeners").status_code == 200
    with run.client("from-env") as api:
        adm.assert_json_error(api.get("/listeners"), 401)
    assert run.stop() == 0


@pytest.mark.parametrize(
    ("args", "bind", "shown"),
    [
        (["--control", "0.0.0.0:0"], None, "0.0.0.0"),
        (["--control", "[::]:0"], None, "[::]"),
        ([], "0.0.0.0:0", "0.0.0.0"),
    ],
    ids=["--control", "--control-ipv6", "profile"],
)
def test_cli_public_control_without_token_exits_2_with_one_line(cli, adm, tmp_path, args, bind, shown):
    control = {"bind": bind} if bind else {}
    path = adm.write_profile(tmp_path / "p.yaml", adm.profile(control=control) if control else adm.profile())
    done, _ = run_cli("run", path, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [REFUSED.format(shown)]


def test_cli_allow_any_bind_lets_put_profile_bind_a_port_below_1024(cli, adm, tmp_path):
    low = None
    for port in range(1023, 900, -1):
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))
        except PermissionError:
            pytest.skip("binding a port below 1024 needs root here")
        except OSError:
            continue
        finally:
            probe.close()
        low = port
        break
    assert low is not None, "no free port between 901 and 1023"
    path = adm.write_profile(tmp_path / "p.yaml", adm.profile())
    body = adm.profile(adm.listener("low", bind=f"127.0.0.1:{low}"))
    run = cli.start(path)
    with run.client() as api:
        adm.assert_json_error(api.put("/profile", json=body), 403)
    assert run.stop() == 0
    run = cli.start(path, "--allow-any-bind")
    with run.client() as api:
        r = api.put("/profile", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["listeners"][0]["url"] == f"http://127.0.0.1:{low}"
    sock = adm.connect(low)
    assert adm.roundtrip(sock, "/")[0] == 200
    sock.close()
    assert run.stop() == 0

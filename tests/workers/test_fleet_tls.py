"""`tls: {generate: true}` with workers: every worker issues from the parent's CA, the one
the parent wrote out and clients were told to trust (real handshakes, new connections)."""

from __future__ import annotations

import ssl
import subprocess

import httpx

from faultserver.testing import running
from tests.support.wait import wait_until

PROFILE = {
    "version": 1,
    "listeners": [
        {"name": "secure", "bind": "127.0.0.1:0", "tls": {"generate": True}, "response": {"body": "ok\n"}}
    ],
}


def test_every_worker_serves_a_certificate_from_the_printed_ca() -> None:
    with running(PROFILE, workers=2) as srv:
        ca = srv["secure"].ca_path
        assert ca is not None
        context = ssl.create_default_context(cafile=ca)
        for _ in range(30):  # a new connection each: the kernel spreads them over the workers
            with httpx.Client(verify=context, timeout=5.0) as client:
                assert client.get(srv.url + "/x").text == "ok\n"
        wait_until(lambda: len(srv.events(type="response")) == 30, what=lambda: srv.events_tail())
        assert {e["worker"] for e in srv.events(type="response")} == {0, 1}
        done = subprocess.run(
            ["curl", "-sS", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", srv.url + "/c"],
            capture_output=True, text=True, timeout=15,
        )
        assert (done.returncode, done.stdout) == (0, "200"), done.stderr
        # after a reload, the workers still issue from the same CA
        srv.load(PROFILE)
        for _ in range(10):
            with httpx.Client(verify=context, timeout=5.0) as client:
                assert client.get(srv.url + "/after").text == "ok\n"


def test_a_certificate_switch_reaches_every_worker_before_the_answer() -> None:
    with running(PROFILE, workers=2) as srv:
        ca = srv["secure"].ca_path
        assert ca is not None
        srv.set_certificate("secure", "expired")
        codes = set()
        for _ in range(20):  # new connections, spread over both workers
            done = subprocess.run(
                ["curl", "-sS", "--cacert", ca, "-o", "/dev/null", srv.url + "/x"],
                capture_output=True, text=True, timeout=15,
            )
            codes.add((done.returncode, "expired" in done.stderr))
        assert codes == {(60, True)}
        srv.set_certificate("secure", "valid")
        for _ in range(20):
            with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=5.0) as client:
                assert client.get(srv.url + "/y").text == "ok\n"
        wait_until(lambda: len({e["worker"] for e in srv.events(type="response")}) == 2,
                   what=lambda: srv.events_tail())
        assert [e["mode"] for e in srv.events(type="certificate")] == ["expired", "valid"]

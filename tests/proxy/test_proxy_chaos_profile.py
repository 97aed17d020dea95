"""profiles/proxy-chaos.yaml: each of its rules shows on the wire in front of a real
upstream (its slow tail shortened, so the test does not wait seconds)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from faultserver.testing import FaultServer
from tests.proxy.upstream import Upstream
from tests.support import net
from tests.support.net import RawReader
from tests.support.profiles import PROFILES

PROFILE = PROFILES / "proxy-chaos.yaml"


def test_proxy_chaos_validates() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faultserver", "validate", str(PROFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, f"{PROFILE}: ok\n"), result.stderr


def test_proxy_chaos_on_the_wire(faultserver: Callable[..., FaultServer], upstream: Upstream) -> None:
    text = PROFILE.read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:8000", upstream.url).replace("[200ms, 2s]", "[1ms, 2ms]")
    srv = faultserver(text)
    endings: list[tuple[int, str]] = []  # (answers before the end, how the connection ended)
    statuses: list[int] = []
    for _ in range(6):
        with net.connect("127.0.0.1", srv["proxy"].port, 5) as sock:
            reader = RawReader(sock)
            answered = 0
            while True:
                sock.sendall(net.get_request("/ok"))
                try:
                    statuses.append(reader.read_response().status)
                except ConnectionResetError:
                    endings.append((answered, "reset"))
                    break
                except AssertionError:  # EOF before an answer: a FIN
                    endings.append((answered, "fin"))
                    break
                answered += 1
    # a connection ends with a FIN at its 100th request at the latest, or earlier with a reset
    assert all((how == "fin" and n == 99) or (how == "reset" and n < 99) for n, how in endings), endings
    assert ("fin", 99) in [(how, n) for n, how in endings]
    assert set(statuses) == {200, 503}
    faults = srv.events(type="fault")
    assert {e["rule"] for e in faults} == {"fin-100th", "reset", "unavailable", "slow-tail"}
    unavailable = [e for e in srv.events(type="forward") if e["status"] == 503]
    assert unavailable and all(e["upstream_status"] == 200 for e in unavailable)
    assert statuses.count(503) == len(unavailable)

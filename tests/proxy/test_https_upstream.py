"""An `https://` upstream: faultserver's own TLS listener (a generated certificate) stands in
for the service. Verified by default against `upstream_tls.ca`; a failed verification is a
502 with `reason: tls`; `verify: false` takes any certificate; `sni` names another host."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from faultserver import ProfileError
from faultserver.testing import FaultServer
from tests.proxy.conftest import proxy_profile

SERVICE = {
    "version": 1,
    "listeners": [
        {
            "name": "service",
            "bind": "127.0.0.1:0",
            "tls": {"generate": True, "names": ["service.test"]},
            "response": {"body": "from tls\n"},
        }
    ],
}


@pytest.fixture
def service(faultserver: Callable[..., FaultServer]) -> FaultServer:
    return faultserver(SERVICE)


def https_url(service: FaultServer) -> str:
    return f"https://127.0.0.1:{service['service'].port}"


def test_https_upstream_verified_with_its_ca(
    faultserver: Callable[..., FaultServer], service: FaultServer
) -> None:
    ca = service["service"].ca_path
    srv = faultserver(proxy_profile(https_url(service), upstream_tls={"ca": ca}))
    with httpx.Client(timeout=5) as client:
        for _ in range(3):
            r = client.get(srv.url + "/x")
            assert (r.status_code, r.text) == (200, "from tls\n")
    assert [e["reused"] for e in srv.events(type="forward")][:2] == [False, True]


def test_https_upstream_with_sni_of_another_name(
    faultserver: Callable[..., FaultServer], service: FaultServer
) -> None:
    ca = service["service"].ca_path
    srv = faultserver(proxy_profile(https_url(service), upstream_tls={"ca": ca, "sni": "service.test"}))
    assert httpx.get(srv.url + "/x", timeout=5).text == "from tls\n"


def test_https_upstream_unverified_is_502_with_tls_reason(
    faultserver: Callable[..., FaultServer], service: FaultServer
) -> None:
    srv = faultserver(proxy_profile(https_url(service)))  # the system's CAs do not know it
    r = httpx.get(srv.url + "/x", timeout=5)
    assert r.status_code == 502
    assert r.json()["error"] == (
        "upstream tls (connect): TLS handshake with 127.0.0.1 failed: unable to get local issuer certificate"
    )
    event = srv.wait_for(type="upstream_error")
    assert (event["reason"], event["phase"], event["answer"]) == ("tls", "connect", 502)


def test_https_upstream_verify_false_takes_any_certificate(
    faultserver: Callable[..., FaultServer], service: FaultServer
) -> None:
    srv = faultserver(proxy_profile(https_url(service), upstream_tls={"verify": False}))
    assert httpx.get(srv.url + "/x", timeout=5).text == "from tls\n"


def test_upstream_tls_needs_https() -> None:
    from faultserver import load_profile_text

    text = (
        "version: 1\nlisteners:\n  - name: p\n    bind: 127.0.0.1:0\n"
        "    upstream: http://127.0.0.1:1\n    upstream_tls: {verify: false}\n"
    )
    with pytest.raises(ProfileError) as caught:
        load_profile_text(text, "p.yaml")
    assert (
        str(caught.value)
        == "p.yaml:6:19: listeners[0].upstream_tls: 'upstream_tls' needs an https:// upstream"
    )

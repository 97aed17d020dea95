"""A real upstream (tests/proxy/upstream.py) for every proxy test, and a proxied listener."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from faultserver.testing import FaultServer
from tests.proxy.upstream import Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


def proxy_profile(url: str, *rules: dict[str, Any], **listener: Any) -> dict[str, Any]:
    """One listener named `proxy` forwarding to `url`, with `rules` and other listener keys."""
    return {
        "version": 1,
        "listeners": [
            {"name": "proxy", "bind": "127.0.0.1:0", "upstream": url, "rules": list(rules), **listener}
        ],
    }


@pytest.fixture
def proxy(faultserver: Callable[..., FaultServer], upstream: Upstream) -> Callable[..., FaultServer]:
    """`proxy(*rules, **listener_keys)`: a faultserver in front of `upstream`."""

    def start(*rules: dict[str, Any], **listener: Any) -> FaultServer:
        return faultserver(proxy_profile(upstream.url, *rules, **listener))

    return start


# nginx in front (tests/gateway/conftest.py starts and stops it): re-exported for
# tests/proxy/test_nginx_in_front.py
from tests.gateway.conftest import nginx  # noqa: E402, F401

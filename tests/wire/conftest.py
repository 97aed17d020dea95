"""Fixtures for the wire tests; their helpers are in `tests.support` (`net`, `profiles`, `wait`)."""

from __future__ import annotations

import pytest

from tests.support.net import ipv6_available


@pytest.fixture(scope="session")
def ipv6() -> None:
    if not ipv6_available():
        pytest.skip("::1 is not available on this machine")

"""pytest plugin, registered through the `pytest11` entry point: fixtures and one report hook.

Importing this module must stay cheap (it is imported by every pytest run in an
environment where faultserver is installed): the server is imported inside the fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import FaultServer

_SERVERS = pytest.StashKey[list["FaultServer"]]()

#: How many of a server's newest events a failing test's report shows.
REPORT_EVENTS = 30


@pytest.fixture
def faultserver(request: pytest.FixtureRequest) -> Iterator[Callable[..., FaultServer]]:
    """A factory: `faultserver(profile, keep_binds=False, admin=False, token=None, upstream=None)`
    starts a server.

    `profile` is a path, a shipped profile's name (`"fin"`), YAML text (it has a newline)
    or a dict. `token`: the admin API's token; `faultserver.testing.FROM_ENV` takes
    FAULTSERVER_TOKEN's value (never read otherwise). `upstream` (`http://HOST:PORT`) is set
    on every listener that has none: proxy mode. Every server started here stops at
    the end of the test, passed, failed or interrupted.
    """
    from .testing import FaultServer, load_source, resolve_token

    servers: list[FaultServer] = []
    request.node.stash[_SERVERS] = servers

    def start(
        profile: Any,
        *,
        keep_binds: bool = False,
        admin: bool = False,
        token: Any = None,
        upstream: str | None = None,
    ) -> FaultServer:
        server = FaultServer(
            load_source(profile, keep_binds=keep_binds, upstream=upstream),
            admin=admin,
            token=resolve_token(token),
        )
        server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        errors = []
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    servers = item.stash.get(_SERVERS, None)
    if servers and report.failed:
        for index, server in enumerate(servers):
            tail = server.events_tail(REPORT_EVENTS)
            title = "faultserver events" + (f" (server {index + 1})" if len(servers) > 1 else "")
            report.sections.append((title, tail))
    return report

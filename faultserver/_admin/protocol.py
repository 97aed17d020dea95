"""What the admin API needs from the server: `Server` is one, a test double can be another."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .._events import EventLog
from .._profile.model import AcceptMode, CertificateMode, CloseHow, Profile, Rule
from .._reload import ReloadCause
from .._tls.listener import ListenerTLS
from .._wire.listener import ListenerRuntime
from .views import StateSource

if TYPE_CHECKING:
    pass

__all__ = ["AdminServer"]


class AdminServer(StateSource, Protocol):
    """The server's side of the admin API. Reads are properties; every change is a method.
    What `GET /state` reads (`StateSource`) is part of it."""

    @property
    def token(self) -> str | None: ...

    @property
    def control_bind(self) -> tuple[str, int]: ...

    @property
    def allowed_hosts(self) -> tuple[str, ...]: ...

    @property
    def max_subscribers(self) -> int: ...

    @property
    def control_tls(self) -> ListenerTLS | None: ...

    @property
    def events(self) -> EventLog: ...

    @property
    def listeners(self) -> dict[str, ListenerRuntime]: ...

    @property
    def ready(self) -> bool: ...

    def listener(self, name: str) -> ListenerRuntime: ...

    async def update_listener(
        self,
        name: str,
        *,
        accept: AcceptMode | None = None,
        rules: tuple[Rule, ...] | None = None,
        certificate: CertificateMode | None = None,
    ) -> None: ...

    async def drop_connections(
        self, name: str, how: CloseHow = CloseHow.FIN, idle_only: bool = False
    ) -> int: ...

    async def load(
        self, profile: Profile, cause: ReloadCause = ..., *, check_binds: bool = False
    ) -> None: ...

    async def reset(self) -> None: ...

    # --- staging operations: pause, panic ------------------------------------------------

    def pause_schedule(self, cause: str = ...) -> bool: ...

    def resume_schedule(self, cause: str = ...) -> bool: ...

    async def panic(self) -> dict[str, list[str]]: ...

    async def reload_source(self, cause: ReloadCause = ...) -> Profile: ...

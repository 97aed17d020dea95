"""Which addresses faultserver agrees to bind, whatever the kernel would allow.

Two rules, both about who could reach what:

- The admin API binds a non-loopback address only with a token: anyone who can reach it
  could change the faults.
- A profile sent over the admin API (`PUT /profile`) opens no port below 1024 and no
  non-loopback address that is not in force already, unless the server was started with
  `allow_any_bind` (the CLI's `--allow-any-bind`): whoever holds the token should not get
  to open the machine. A profile given at start or by SIGHUP was chosen by whoever runs
  the server, and is not checked.
"""

from __future__ import annotations

from collections.abc import Collection

from ._address import format_hostport, is_loopback
from ._errors import BindPolicyError
from ._profile.model import Profile

__all__ = ["check_api_binds", "check_control_bind"]


def check_control_bind(host: str, port: int, token: str | None) -> None:
    """Refuse a non-loopback admin API without a token (BindPolicyError, one line)."""
    if token or is_loopback(host):
        return
    raise BindPolicyError(
        f"control: refusing to bind {format_hostport(host, port)} without a token: set "
        "control.token or FAULTSERVER_TOKEN (anyone who can reach it could change the faults)"
    )


def check_api_binds(profile: Profile, in_force: Collection[str], allow_any_bind: bool) -> None:
    """Refuse a profile from the admin API that opens a port below 1024 or a public address.

    `in_force`: the binds (`host:port`) of the listeners in force, which may stay.
    """
    if allow_any_bind:
        return
    for config in profile.listeners:
        if config.bind in in_force:
            continue
        if 0 < config.port < 1024:
            raise BindPolicyError(
                f"listener {config.name}: port {config.port} is below 1024; start the "
                "server with --allow-any-bind to allow it"
            )
        if not is_loopback(config.host):
            raise BindPolicyError(
                f"listener {config.name}: {config.host} is not a loopback address; start "
                "the server with --allow-any-bind to allow it"
            )

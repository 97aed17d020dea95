"""The JSON shapes of listeners (`GET /listeners`, the handle's `info()`); no Quart here."""

from __future__ import annotations

from typing import Any

from .._wire.listener import ListenerRuntime

__all__ = ["listener_view"]


def listener_view(rt: ListenerRuntime) -> dict[str, Any]:
    """One listener as `GET /listeners` shows it (the README, plus a few counters)."""
    stats = rt.stats
    return {
        "name": rt.name,
        "url": rt.url,
        "bind": rt.config.bind,
        "accept": rt.mode.value,
        "open_connections": stats.open_connections,
        "peak_connections": stats.peak_connections,
        "connections": stats.connections,
        "requests": stats.requests,
        "in_flight": stats.in_flight,
        "faults": stats.faults_by_action(),
        "retries": stats.retries,
    }

"""Proxy mode's connection: a `Connection` whose healthy answer is the upstream's.

A listener with an `upstream` accepts `ProxiedConnection`s; every other listener keeps
`Connection`, whose per-request path is untouched. Only the answer to a request that no
rule stops differs (`actions/forward.py`): faults, delays and refusals are the
connection's own, as on any listener.
"""

from __future__ import annotations

from .._decide.request import Request
from .._decide.rules import Decision
from .._protocol.events import Refusal
from .actions import FIN, KEEP, Outcome, Turn
from .actions.forward import forward
from .connection import Connection

__all__ = ["ProxiedConnection"]


class ProxiedConnection(Connection):
    """A connection of a proxied listener (see the module docstring)."""

    __slots__ = ()

    async def _answer(self, request: Request, decision: Decision | Refusal | None) -> Outcome:
        if decision is not None:
            return await super()._answer(request, decision)
        # Connection._answer's bookkeeping, around a forward instead of the listener's answer
        ctx = self.ctx
        stats = ctx.stats
        stats.in_flight += 1
        try:
            fields = ctx.record_request(request, self.id, self.peer, self.client)
            turn = Turn(self.transport, ctx, self.id, request, fields, ctx.header_rng)
            outcome = await forward(turn, None)
        except BaseException:
            stats.met_trouble(request, request.fingerprint, self.id)
            raise
        finally:
            stats.in_flight -= 1
        self.served += 1
        if outcome is not KEEP:
            return outcome
        if not request.keep_alive:
            return FIN
        max_requests = ctx.keepalive.max_requests
        if max_requests is not None and self.served >= max_requests:
            ctx.events.emit(
                "max_requests_close", ctx.name, conn=self.id, peer=self.peer, requests=self.served
            )
            return FIN
        return KEEP

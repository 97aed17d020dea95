"""`schedule`: a timeline of phases, each setting the accept mode, the rules and (on a
generated TLS listener) the certificate for a while."""

from __future__ import annotations

from .check import Checker, check_each
from .model import AcceptMode, CertificateMode, Phase, Schedule
from .nodes import Node, SeqNode, describe, non_null
from .rule import check_rules
from .timing import check_duration
from .values import build

__all__ = ["PHASE_KEYS", "SCHEDULE_KEYS", "check_schedule"]

SCHEDULE_KEYS = ("repeat", "phases")
PHASE_KEYS = ("duration", "accept", "rules", "tls")


def check_schedule(c: Checker, node: Node, path: str) -> Schedule | None:
    mark = c.mark()
    fields = c.fields(node, path, SCHEDULE_KEYS, required=("phases",))
    if fields is None:
        return None
    repeat = c.boolean(fields["repeat"], f"{path}.repeat") if "repeat" in fields else True
    if "phases" not in fields:
        return None
    phases_node = fields["phases"]
    if not isinstance(phases_node, SeqNode) or not phases_node.items:
        message = f"expected a list of one or more phases, got {describe(phases_node)}"
        c.problem(phases_node, f"{path}.phases", message)
        return None
    phases = check_each(c, phases_node, f"{path}.phases", lambda item, sub, _: check_phase(c, item, sub))
    if not c.clean_since(mark):
        return None
    return build(Schedule, {"phases": phases, "repeat": repeat})


def check_phase(c: Checker, node: Node, path: str) -> Phase | None:
    mark = c.mark()
    fields = c.fields(node, path, PHASE_KEYS, required=("duration",))
    if fields is None or "duration" not in fields:
        return None
    given: dict[str, object] = {
        "duration_s": check_duration(c, fields["duration"], f"{path}.duration", positive=True)
    }
    if "accept" in fields:
        accept_path = f"{path}.accept"
        given["accept"] = c.member(fields["accept"], accept_path, list(AcceptMode), "accept mode")
    # `rules: null` leaves the listener's rules, as an absent `rules` does
    if (rules := non_null(fields, "rules")) is not None:
        given["rules"] = check_rules(c, rules, f"{path}.rules")
    if (tls := non_null(fields, "tls")) is not None:
        given["certificate"] = _check_phase_tls(c, tls, f"{path}.tls")
    return build(Phase, given) if c.clean_since(mark) else None


def _check_phase_tls(c: Checker, node: Node, path: str) -> CertificateMode | None:
    """`tls: {certificate: MODE}`: the certificate a generated TLS listener shows meanwhile
    (the listener checks that it has one)."""
    fields = c.fields(node, path, ("certificate",), required=("certificate",))
    if fields is None or "certificate" not in fields:
        return None
    return c.member(fields["certificate"], f"{path}.certificate", list(CertificateMode), "certificate")

"""Closed sets are read in any case and kept in lower case, in profiles as in the admin API
and the X-Fault header (one rule everywhere)."""

from __future__ import annotations

import random

from faultserver._decide.fault_header import decide_fault_header
from faultserver._profile.load import load_profile_text
from faultserver._profile.model import AcceptMode, ActionName, Framing, Limits, Partial, Respond


def test_profile_closed_sets_ignore_case():
    profile = load_profile_text(
        "version: 1\n"
        "listeners:\n"
        "  - name: b\n"
        "    bind: 127.0.0.1:0\n"
        "    accept: REFUSE\n"
        "    response: {framing: Chunked}\n"
        "    rules: [{action: Partial, bytes: 3, then: RESET}, {at: Connect, action: Close}]\n"
    )
    listener = profile.listeners[0]
    assert listener.accept is AcceptMode.REFUSE
    assert listener.response.framing is Framing.CHUNKED
    partial = listener.rules[0].action
    assert isinstance(partial, Partial) and partial.then is ActionName.RESET
    assert listener.rules[1].at.value == "connect"


def test_fault_header_values_ignore_case():
    decision = decide_fault_header(b"PARTIAL; bytes=3; then=RESET", random.Random(1), Limits())
    assert isinstance(decision.action, Partial) and decision.action.then is ActionName.RESET
    decision = decide_fault_header(b"respond; framing=CHUNKED", random.Random(1), Limits())
    assert isinstance(decision.action, Respond) and decision.action.framing is Framing.CHUNKED

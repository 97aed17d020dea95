"""The HTTP/2 flood guard (`_protocol/h2_flood.py`): counts fed with explicit times, no sockets."""

from __future__ import annotations

from faultserver._protocol.h2_flood import (
    CONTROL_FRAMES,
    CONTROL_FRAMES_PER_REQUEST,
    EARLY_RESETS,
    WINDOW_S,
    FloodGuard,
)


def test_FloodGuard_rapid_reset_trips_after_the_allowance():
    guard = FloodGuard()
    for _ in range(EARLY_RESETS):
        guard.opened(0.0)
        guard.early_reset(0.0)
    assert guard.flood() is None
    guard.opened(0.0)
    guard.early_reset(0.0)
    assert guard.flood() == (
        f"flood: {EARLY_RESETS + 1} streams reset by the client before their answer began within 1 s "
        "(0 answered; rapid reset)"
    )


def test_FloodGuard_answered_streams_pay_for_resets():
    # a busy client that resets one stream in two before its answer began is no flood
    guard = FloodGuard()
    for _ in range(10 * EARLY_RESETS):
        guard.opened(0.5)
        guard.answered(0.5)
        guard.opened(0.5)
        guard.early_reset(0.5)
    assert guard.flood() is None


def test_FloodGuard_many_requests_and_no_resets_never_trip():
    guard = FloodGuard()
    for i in range(100_000):
        now = i * 1e-5  # 100,000 requests a second
        guard.opened(now)
        guard.control(now)  # a WINDOW_UPDATE's worth of bookkeeping each
        guard.answered(now)
    assert guard.flood() is None


def test_FloodGuard_counts_start_again_in_each_window():
    guard = FloodGuard()
    for window in range(50):  # a long-lived connection: under the allowance in every window
        now = window * WINDOW_S
        guard.control(now, CONTROL_FRAMES)
        for _ in range(EARLY_RESETS):
            guard.early_reset(now)
        assert guard.flood() is None


def test_FloodGuard_control_frames_trip_within_a_window():
    guard = FloodGuard()
    guard.opened(0.0)
    guard.control(0.0, CONTROL_FRAMES + CONTROL_FRAMES_PER_REQUEST)
    assert guard.flood() is None
    guard.control(0.9)
    assert guard.flood() == (
        f"flood: {CONTROL_FRAMES + CONTROL_FRAMES_PER_REQUEST + 1} control frames within 1 s for 1 requests"
    )

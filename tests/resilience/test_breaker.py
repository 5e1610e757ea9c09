"""The per-(provider, model) circuit breaker state machine; ``now`` is passed in, so no clock tricks."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from occ.resilience.breaker import BreakerRegistry, BreakerState

KEY = ("opencode-go", "kimi-k2.6")


def opened(threshold: int = 2, cooldown: float = 10.0, at: float = 0.0) -> BreakerRegistry:
    b = BreakerRegistry(failure_threshold=threshold, cooldown_s=cooldown)
    for _ in range(threshold):
        b.record_failure(KEY, at)
    return b


def test_closed_until_threshold_consecutive_failures():
    b = BreakerRegistry(failure_threshold=3, cooldown_s=30)
    b.record_failure(KEY, 0)
    b.record_failure(KEY, 1)
    assert b.state(KEY, 2) == "closed" and b.allow(KEY, 2)
    b.record_failure(KEY, 2)
    assert b.state(KEY, 3) == "open" and not b.allow(KEY, 3)


def test_a_success_resets_the_consecutive_count():
    b = BreakerRegistry(failure_threshold=2, cooldown_s=10)
    b.record_failure(KEY, 0)
    b.record_success(KEY, 1)
    b.record_failure(KEY, 2)
    assert b.state(KEY, 3) == "closed"


def test_open_circuit_skips_only_its_own_provider_and_model():
    b = opened()
    assert not b.allow(KEY, 5)
    assert b.allow(("opencode-zen", "kimi-k2.6"), 5) and b.allow(("opencode-go", "glm-5"), 5)


def test_half_open_after_cooldown_admits_exactly_one_probe():
    b = opened(cooldown=10)
    assert b.state(KEY, 9.9) == "open" and not b.allow(KEY, 9.9)
    assert b.state(KEY, 10) == "half_open"
    assert b.allow(KEY, 10)
    assert not b.allow(KEY, 10) and not b.allow(KEY, 15)


def test_probe_success_closes_and_clears_the_snapshot():
    b = opened()
    assert b.allow(KEY, 10)
    b.record_success(KEY, 11)
    assert b.state(KEY, 11) == "closed" and b.allow(KEY, 11) and b.snapshot(11) == {}


def test_probe_failure_reopens_for_another_cooldown():
    b = opened(cooldown=10)
    assert b.allow(KEY, 10)
    b.record_failure(KEY, 12)
    assert b.state(KEY, 21) == "open" and not b.allow(KEY, 21)
    assert b.state(KEY, 22) == "half_open" and b.allow(KEY, 22)


def test_edge_19_retry_after_longer_than_the_cooldown_is_honoured():
    b = BreakerRegistry(failure_threshold=1, cooldown_s=5)
    b.record_failure(KEY, 0, retry_after_s=60)
    assert not b.allow(KEY, 30) and b.snapshot(30)[f"{KEY[0]}/{KEY[1]}"]["reopens_in_s"] == 30.0
    assert b.allow(KEY, 60)


def test_retry_after_shorter_than_the_cooldown_does_not_shorten_it():
    b = BreakerRegistry(failure_threshold=1, cooldown_s=30)
    b.record_failure(KEY, 0, retry_after_s=1)
    assert not b.allow(KEY, 29)


def test_a_late_failure_never_shortens_an_open_period():
    b = BreakerRegistry(failure_threshold=1, cooldown_s=10)
    b.record_failure(KEY, 0, retry_after_s=100)
    b.record_failure(KEY, 5)  # an attempt admitted before the circuit opened reports late
    assert b.state(KEY, 99) == "open" and b.state(KEY, 100) == "half_open"


def test_release_frees_the_probe_slot_and_changes_nothing_else():
    """A cancelled probe (the client left) is no verdict: still half-open, the next request probes."""
    b = opened(threshold=2)
    assert b.allow(KEY, 10) and not b.allow(KEY, 10)
    b.release(KEY)
    assert b.state(KEY, 10) == "half_open"
    assert b.snapshot(10)["opencode-go/kimi-k2.6"]["consecutive_failures"] == 2
    assert b.allow(KEY, 10)


def test_release_on_a_closed_circuit_is_harmless():
    b = BreakerRegistry()
    b.release(KEY)
    b.record_failure(KEY, 0)
    b.release(KEY)
    assert b.state(KEY, 0) == "closed" and b.snapshot(0)["opencode-go/kimi-k2.6"]["consecutive_failures"] == 1


def test_snapshot_reports_state_failures_and_time_to_reopen():
    b = opened(threshold=2, cooldown=10, at=100)
    assert b.snapshot(103) == {"opencode-go/kimi-k2.6": {"state": "open", "consecutive_failures": 2,
                                                         "reopens_in_s": 7.0, "open_for_s": 3.0, "probing": False}}
    assert b.allow(KEY, 110)
    assert b.snapshot(110)["opencode-go/kimi-k2.6"] == {"state": "half_open", "consecutive_failures": 2,
                                                         "reopens_in_s": None, "open_for_s": 10.0, "probing": True}


def test_reconfigure_applies_to_later_failures_and_keeps_open_deadlines():
    b = opened(threshold=2, cooldown=10)
    b.reconfigure(failure_threshold=5, cooldown_s=1)
    assert b.state(KEY, 9) == "open"
    other = ("p", "m")
    for t in range(4):
        b.record_failure(other, t)
    assert b.state(other, 4) == "closed"
    b.record_failure(other, 4)
    assert b.state(other, 4.5) == "open" and b.state(other, 5) == "half_open"


def test_threshold_below_one_means_one():
    b = BreakerRegistry(failure_threshold=0, cooldown_s=10)
    assert b.allow(KEY, 0)
    b.record_failure(KEY, 0)
    assert b.state(KEY, 1) == "open"


def test_edge_retry_after_is_capped_so_one_header_cannot_close_a_model_for_a_day():
    b = BreakerRegistry(failure_threshold=1, cooldown_s=30, max_retry_after_s=300)
    b.record_failure(KEY, 0, retry_after_s=86400)
    assert b.state(KEY, 299) == "open" and b.state(KEY, 300) == "half_open"


def test_transitions_say_when_a_breaker_opens_and_when_it_closes():
    b = BreakerRegistry(failure_threshold=2, cooldown_s=10)
    assert b.record_failure(KEY, 0) is None
    opened_ = b.record_failure(KEY, 1)
    assert (opened_.kind, opened_.label, opened_.state.open_until) == ("opened", "opencode-go/kimi-k2.6", 11)
    assert b.record_failure(KEY, 2) is None  # already open: a late failure is no new transition
    assert b.allow(KEY, 12)
    reopened = b.record_failure(KEY, 13)  # the probe failed: open again, and said so
    assert reopened.kind == "opened" and reopened.state.opened_at == 1
    assert b.allow(KEY, 23)
    closed = b.record_success(KEY, 24)
    assert closed.kind == "closed" and b.record_success(KEY, 25) is None


def test_panic_admits_an_open_model_before_its_cooldown_one_probe_at_a_time():
    b = opened(cooldown=30)
    assert not b.allow(KEY, 1) and not b.usable(KEY, 1)
    assert b.allow(KEY, 1, panic=True)
    assert not b.allow(KEY, 1, panic=True)  # the probe is out
    b.record_failure(KEY, 2)
    assert b.allow(KEY, 2, panic=True)  # settled: the next panic probe may go
    b.record_success(KEY, 3)
    assert b.state(KEY, 3) == "closed" and b.allow(KEY, 3) and b.allow(KEY, 3)


def test_a_released_panic_probe_frees_the_slot_and_keeps_the_circuit_open():
    b = opened(cooldown=30)
    assert b.allow(KEY, 1, panic=True)
    b.release(KEY)
    assert b.state(KEY, 1) == "open" and b.allow(KEY, 1, panic=True)


def test_a_probe_lease_expires_so_a_lost_probe_cannot_lock_a_model_out():
    b = opened(cooldown=10)
    assert b.allow(KEY, 10)
    assert not b.allow(KEY, 10 + b.policy.probe_lease_s - 1)
    assert b.allow(KEY, 10 + b.policy.probe_lease_s)


def test_panic_order_is_least_recently_failed_first():
    b = BreakerRegistry(failure_threshold=1, cooldown_s=30)
    a, c, never = ("p", "a"), ("p", "c"), ("p", "never")
    b.record_failure(c, 5)
    b.record_failure(a, 7)
    assert b.panic_order([a, c, never]) == [never, c, a]
    b.record_failure(c, 9)
    assert b.panic_order([a, c]) == [a, c]


def test_reset_closes_the_named_breakers_only_and_reports_which_were_not_closed():
    b = opened()
    other = ("p", "m")
    b.record_failure(other, 0)
    assert b.reset([KEY, ("p", "never-failed")]) == [KEY]
    assert b.state(KEY, 1) == "closed" and b.snapshot(1).keys() == {"p/m"}
    assert b.reset() == [other] and b.snapshot(1) == {}


@given(st.lists(st.sampled_from(["fail", "fail_retry", "ok", "release", "allow", "panic"]), max_size=30),
       st.lists(st.floats(0, 50), min_size=30, max_size=30))
def test_the_state_is_a_json_value_that_round_trips_after_any_history(ops, gaps):
    """What a shared store would keep: every state survives JSON and behaves the same afterwards."""
    b = BreakerRegistry(failure_threshold=2, cooldown_s=10, max_retry_after_s=60)
    now = 0.0
    for op, gap in zip(ops, gaps, strict=False):
        now += gap
        if op == "fail":
            b.record_failure(KEY, now)
        elif op == "fail_retry":
            b.record_failure(KEY, now, retry_after_s=1e6)
        elif op == "ok":
            b.record_success(KEY, now)
        elif op == "release":
            b.release(KEY)
        else:
            b.allow(KEY, now, panic=op == "panic")
        state = b.get(KEY)
        copy = BreakerState.from_json(json.loads(json.dumps(state.to_json())))
        assert copy == state
        if state.open_until is not None:
            assert state.open_until <= now + 60  # the cap holds whatever happened
        other = BreakerRegistry(failure_threshold=2, cooldown_s=10, max_retry_after_s=60)
        other.put(KEY, copy)
        assert other.state(KEY, now + 1) == b.state(KEY, now + 1)
        assert other.usable(KEY, now + 1) == b.usable(KEY, now + 1)

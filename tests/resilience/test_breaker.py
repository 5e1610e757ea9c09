"""The per-(provider, model) circuit breaker state machine; ``now`` is passed in, so no clock tricks."""

from __future__ import annotations

from occ.resilience.breaker import BreakerRegistry

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
                                                         "reopens_in_s": 7.0}}
    assert b.snapshot(110)["opencode-go/kimi-k2.6"] == {"state": "half_open", "consecutive_failures": 2,
                                                         "reopens_in_s": None}


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

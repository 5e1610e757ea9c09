"""The fleet's breaker view over one process's registry (sans-IO: the sync task's side is called by hand)."""

from __future__ import annotations

from occ.resilience.fleet import FleetBreakers, key_of, label_of

KEY = ("fake", "org/model-a")
LABEL = "fake/org/model-a"


def fleet(**kw) -> tuple[FleetBreakers, list]:
    events: list = []
    b = FleetBreakers(failure_threshold=kw.get("threshold", 1), cooldown_s=10)
    b.publish = events.append
    b.apply_fleet({}, 0)
    return b, events


def test_labels_round_trip_with_a_slash_in_the_model_id():
    assert label_of(KEY) == LABEL and key_of(LABEL) == KEY


def test_a_local_open_is_published_with_its_deadline():
    b, events = fleet()
    b.record_failure(KEY, 100.0)
    assert events == [("fail", LABEL), ("open", LABEL, 110.0)]  # the failure is counted fleet-wide too
    assert not b.allow(KEY, 105.0)


def test_an_open_seen_in_the_fleet_is_honoured_here_though_this_process_never_failed():
    b, _events = fleet()
    assert b.allow(KEY, 0) and b.state(KEY, 0) == "closed"
    b.record_success(KEY, 0)
    b.apply_fleet({LABEL: 50.0}, 40.0)
    assert b.state(KEY, 41) == "open" and not b.allow(KEY, 41) and not b.usable(KEY, 41)
    assert b.snapshot(41)[LABEL]["state"] == "open" and b.snapshot(41)[LABEL]["reopens_in_s"] == 9.0


def test_half_open_admits_only_with_the_fleets_probe_lease():
    b, events = fleet()
    b.apply_fleet({LABEL: 50.0}, 49.0)
    assert not b.allow(KEY, 51)  # half-open, no lease: ask for it
    assert events == [("want", LABEL)]
    assert not b.allow(KEY, 51.5) and events == [("want", LABEL)]  # asked once, not per request
    b.grant_lease(LABEL, False, 0)  # another process holds it
    assert not b.allow(KEY, 52)
    b.grant_lease(LABEL, True, 60)
    assert b.allow(KEY, 53)  # the probe
    assert not b.allow(KEY, 53.1)  # one at a time
    assert b.renew_leases(70) == [LABEL]
    transition = b.record_success(KEY, 54)
    assert transition is not None and transition.kind == "closed"  # the prober reports the fleet's close
    assert events[-2:] == [("release", LABEL), ("close", LABEL)]
    assert b.allow(KEY, 54.1) and b.state(KEY, 54.1) == "closed"


def test_a_failed_fleet_probe_reopens_the_fleet_though_locally_below_threshold():
    b, events = fleet(threshold=3)
    b.apply_fleet({LABEL: 50.0}, 49.0)
    b.allow(KEY, 51)
    b.grant_lease(LABEL, True, 60)
    assert b.allow(KEY, 51)
    transition = b.record_failure(KEY, 52)
    assert transition is not None and transition.kind == "opened" and transition.state.open_until == 62.0
    assert ("open", LABEL, 62.0) in events and events[-1] == ("release", LABEL)
    assert b.state(KEY, 53) == "open"


def test_a_lapsed_lease_is_asked_for_again():
    b, events = fleet()
    b.apply_fleet({LABEL: 50.0}, 49.0)
    b.allow(KEY, 51)
    b.grant_lease(LABEL, True, 55)
    assert not b.allow(KEY, 56)  # lapsed before any request used it
    assert events.count(("want", LABEL)) == 2


def test_the_fleet_clearing_a_model_closes_it_here():
    b, _events = fleet()
    b.record_failure(KEY, 0)
    b.apply_fleet({LABEL: 10.0}, 1)
    b.apply_fleet({}, 2)  # another process's probe succeeded
    assert b.state(KEY, 2) == "closed" and b.allow(KEY, 2)


def test_a_panic_probe_of_a_model_the_fleet_holds_open_needs_its_lease():
    b, events = fleet()
    woken: list[int] = []
    b.on_change = lambda: woken.append(1)
    b.apply_fleet({LABEL: 50.0}, 40.0)
    assert not b.allow(KEY, 41, panic=True)  # before the cooldown ends, still one probe across the fleet
    assert events == [("want", LABEL)]
    b.grant_lease(LABEL, False, 0)  # another process probes it
    assert woken and not b.allow(KEY, 41.5, panic=True)
    b.grant_lease(LABEL, True, 60)
    assert b.allow(KEY, 42, panic=True)  # the panic probe
    assert not b.allow(KEY, 42.1, panic=True)  # one at a time
    b.record_success(KEY, 43)
    assert events[-2:] == [("release", LABEL), ("close", LABEL)]


def test_a_local_open_is_the_fleets_at_once_so_its_panic_probe_asks_for_the_lease():
    b, events = fleet()
    b.record_failure(KEY, 40.0)  # opened here, published; the store has not echoed it yet
    assert not b.allow(KEY, 41, panic=True) and events[-1] == ("want", LABEL)
    b.grant_lease(LABEL, True, 60)
    assert b.allow(KEY, 41.1, panic=True)


def test_panic_probes_per_process_while_disconnected():
    b, events = fleet()
    b.disconnect()
    b.record_failure(KEY, 40.0)
    assert b.allow(KEY, 41, panic=True) and ("want", LABEL) not in events


def test_the_fleets_failure_count_opens_a_model_this_process_failed_once():
    b, events = fleet(threshold=3)
    told: list = []
    b.on_transition = told.append
    b.record_failure(KEY, 10.0)
    assert b.state(KEY, 10.0) == "closed" and events == [("fail", LABEL)]
    b.fleet_failure(LABEL, 2, 10.0)  # one failure elsewhere before ours
    assert b.state(KEY, 10.0) == "closed" and not told
    b.record_failure(KEY, 11.0)
    b.fleet_failure(LABEL, 3, 11.0)  # ours brought the fleet to the threshold
    assert b.state(KEY, 11.5) == "open" and not b.allow(KEY, 11.5)
    assert ("open", LABEL, 21.0) in events
    assert [t.kind for t in told] == ["opened"] and told[0].state.failures == 3
    b.fleet_failure(LABEL, 4, 12.0)  # a later count opens nothing twice
    assert len(told) == 1


def test_a_success_clears_the_fleets_count_only_when_there_is_one():
    b, events = fleet(threshold=3)
    b.record_success(KEY, 1.0)
    assert events == []  # nothing to clear: no command per healthy request
    b.fleet_failures = {LABEL: 2}  # as the last tick read it
    b.record_success(KEY, 2.0)
    assert events == [("healthy", LABEL)] and LABEL not in b.fleet_failures
    b.record_failure(KEY, 3.0)
    b.record_success(KEY, 4.0)
    assert events[-1] == ("healthy", LABEL)


def test_a_reset_is_fleet_wide():
    b, events = fleet()
    b.apply_fleet({LABEL: 50.0}, 40.0)
    assert b.reset(None) == [KEY]
    assert events[-1] == ("close", LABEL) and b.allow(KEY, 41)


def test_disconnected_it_is_the_plain_registry():
    b, _events = fleet()
    b.apply_fleet({LABEL: 50.0}, 40.0)
    b.disconnect()
    assert b.allow(KEY, 41) and b.state(KEY, 41) == "closed" and LABEL not in b.snapshot(41)

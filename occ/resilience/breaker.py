"""Per-model circuit breakers, keyed by (provider, model). Sans-IO: ``now`` is always an argument.

closed --(``failure_threshold`` consecutive counted failures)--> open --(``cooldown_s``, or the upstream's
Retry-After when longer, capped at ``max_retry_after_s``)--> half-open: exactly one probe is admitted; its
success closes the circuit, its failure reopens it for another cooldown.

**Panic mode** (Envoy's name: a load balancer never ejects every host). An open breaker only lets the
fallback loop *skip* a model while another model of the chain is usable. When none is, the loop asks
:meth:`BreakerRegistry.allow` with ``panic=True``: an open circuit is then treated as half-open, so the
model gets a probe even before its cooldown ends, still one probe at a time per model. Which open model to
probe first is :meth:`BreakerRegistry.panic_order`: least recently failed first. So occ never answers a
request with "every circuit is open" without having asked an upstream.

One model's circuit is a :class:`BreakerState`: a small frozen value with a JSON form
(:meth:`BreakerState.to_json` / :meth:`BreakerState.from_json`), and the transitions are pure functions
of (state, now, policy). The registry only keeps a ``dict`` of them (:meth:`BreakerRegistry.get` /
:meth:`BreakerRegistry.put`), so a store shared by several processes can hold the same values. Times
are whatever clock the caller passes; the server passes wall-clock seconds (``time.time()``) so a value
means the same in another process.

An attempt that ends without a verdict (the client left, or a 401 that says nothing about health) calls
:meth:`BreakerRegistry.release`: a probe slot is freed and nothing else changes, so a cancellation never
opens, closes or extends a circuit. Attempts are not identified, so a ``release`` or a late verdict from an
attempt admitted *before* the circuit opened also settles the probe slot; at worst a second probe goes out.
A probe holds its slot for at most ``probe_lease_s`` (a process that died mid-probe cannot lock a model
out). Open periods only ever grow: a late failure cannot shorten a Retry-After already honoured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["BreakerPolicy", "BreakerRegistry", "BreakerState", "Key", "Transition"]

Key = tuple[str, str]


@attrs.frozen
class BreakerPolicy:
    failure_threshold: int = 3
    cooldown_s: float = 30.0
    #: an upstream's Retry-After longer than this is cut to it: one header must not close a model for a day
    max_retry_after_s: float = 300.0
    #: how long a probe holds its slot at most
    probe_lease_s: float = 600.0

    def open_for(self, retry_after_s: float | None) -> float:
        hint = min(retry_after_s or 0.0, self.max_retry_after_s)
        return max(self.cooldown_s, hint)


@attrs.frozen
class BreakerState:
    """One model's circuit as a value. ``open_until`` None means closed."""

    failures: int = 0
    open_until: float | None = None
    #: when the last counted failure happened (panic mode probes the least recent first)
    last_failure_at: float | None = None
    #: when the current open period began (kept across reopenings, for /status)
    opened_at: float | None = None
    #: a probe is out until this time (a lease, not a flag: it expires)
    probe_until: float | None = None

    def name(self, now: float) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def probing(self, now: float) -> bool:
        return self.probe_until is not None and now < self.probe_until

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BreakerState:
        fields = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


CLOSED = BreakerState()


@attrs.frozen
class Transition:
    """A change worth telling the operator about: ``kind`` is ``opened`` or ``closed``."""

    key: Key
    kind: str
    state: BreakerState

    @property
    def label(self) -> str:
        return f"{self.key[0]}/{self.key[1]}"


def admit(state: BreakerState, now: float, policy: BreakerPolicy, *, panic: bool = False) -> BreakerState | None:
    """The state after admitting an attempt, or None when the circuit refuses it now."""
    if state.open_until is None:
        return state
    if state.probing(now) or (now < state.open_until and not panic):
        return None
    return attrs.evolve(state, probe_until=now + policy.probe_lease_s)


def fail(state: BreakerState, now: float, policy: BreakerPolicy, retry_after_s: float | None) -> BreakerState:
    failures = state.failures + 1
    was_probe = state.probe_until is not None
    state = attrs.evolve(state, failures=failures, last_failure_at=now, probe_until=None)
    if not (was_probe or state.open_until is not None or failures >= policy.failure_threshold):
        return state
    until = now + policy.open_for(retry_after_s)
    if state.open_until is not None:
        until = max(state.open_until, until)
    return attrs.evolve(state, open_until=until, opened_at=state.opened_at if state.opened_at is not None else now)


class BreakerRegistry:
    """Every model's :class:`BreakerState`; a model without an entry is closed and healthy."""

    def __init__(self, failure_threshold: int = 3, cooldown_s: float = 30.0, max_retry_after_s: float = 300.0) -> None:
        self.policy = BreakerPolicy(max(1, failure_threshold), cooldown_s, max_retry_after_s)
        self._states: dict[Key, BreakerState] = {}

    @property
    def failure_threshold(self) -> int:
        return self.policy.failure_threshold

    @property
    def cooldown_s(self) -> float:
        return self.policy.cooldown_s

    def reconfigure(self, failure_threshold: int, cooldown_s: float, max_retry_after_s: float = 300.0) -> None:
        """New settings from a config; circuits already open keep their deadline."""
        self.policy = attrs.evolve(self.policy, failure_threshold=max(1, failure_threshold), cooldown_s=cooldown_s,
                                   max_retry_after_s=max_retry_after_s)

    # -- the store: one value per key --------------------------------------------------------------

    def get(self, key: Key) -> BreakerState:
        return self._states.get(key, CLOSED)

    def put(self, key: Key, state: BreakerState) -> None:
        if state == CLOSED:
            self._states.pop(key, None)
        else:
            self._states[key] = state

    def keys(self) -> list[Key]:
        return list(self._states)

    # -- transitions -------------------------------------------------------------------------------

    def state(self, key: Key, now: float) -> str:
        return self.get(key).name(now)

    def usable(self, key: Key, now: float) -> bool:
        """Would :meth:`allow` admit an attempt now (without taking the probe slot)?"""
        return admit(self.get(key), now, self.policy) is not None

    def allow(self, key: Key, now: float, *, panic: bool = False) -> bool:
        """May an attempt on ``key`` start now? In half-open state (or open, in ``panic``) this admits the
        one probe."""
        state = self.get(key)
        after = admit(state, now, self.policy, panic=panic)
        if after is None:
            return False
        if after is not state:
            self.put(key, after)
        return True

    def record_success(self, key: Key, now: float) -> Transition | None:
        state = self.get(key)
        self.put(key, CLOSED)
        return Transition(key, "closed", state) if state.open_until is not None else None

    def record_failure(self, key: Key, now: float, *, retry_after_s: float | None = None) -> Transition | None:
        state = self.get(key)
        after = fail(state, now, self.policy, retry_after_s)
        self.put(key, after)
        if after.open_until is not None and (state.open_until is None or state.name(now) != "open"):
            return Transition(key, "opened", after)
        return None

    def release(self, key: Key) -> None:
        state = self.get(key)
        if state.probe_until is not None:
            self.put(key, attrs.evolve(state, probe_until=None))

    def reset(self, keys: Iterable[Key] | None = None) -> list[Key]:
        """Forget the state of ``keys`` (every model when None); returns the keys that were not closed."""
        targets = list(self._states) if keys is None else [k for k in keys if k in self._states]
        for key in targets:
            self._states.pop(key, None)
        return targets

    def panic_order(self, keys: Iterable[Key]) -> list[Key]:
        """``keys`` ordered for panic mode: least recently failed first (never failed: first of all)."""
        return sorted(keys, key=lambda k: self.get(k).last_failure_at or float("-inf"))

    def snapshot(self, now: float) -> dict[str, dict[str, object]]:
        """Every model with a recent failure: ``label -> {state, consecutive_failures, reopens_in_s,
        open_for_s, probing}`` (``reopens_in_s`` is None unless open). A model absent from it is closed and
        healthy."""
        out: dict[str, dict[str, object]] = {}
        for (provider, model), b in self._states.items():
            name = b.name(now)
            reopen = round(b.open_until - now, 1) if b.open_until is not None and name == "open" else None
            opened = round(now - b.opened_at, 1) if b.opened_at is not None and b.open_until is not None else None
            out[f"{provider}/{model}"] = {"state": name, "consecutive_failures": b.failures, "reopens_in_s": reopen,
                                          "open_for_s": opened, "probing": b.probing(now)}
        return out

"""Per-model circuit breakers, keyed by (provider, model). Sans-IO: ``now`` is always an argument.

closed --(``failure_threshold`` consecutive counted failures)--> open --(``cooldown_s``, or the upstream's
Retry-After when longer)--> half-open: exactly one probe is admitted; its success closes the circuit, its
failure reopens it for another cooldown.

What differs from the seed (§6): streaming is covered too (the caller consults the same registry), the key
is (provider, model) rather than the bare model id, Retry-After is honoured, and one probe decides instead
of three. An attempt that ends without a verdict (the client left, or a 401 that says nothing about health)
calls :meth:`release`: a probe slot is freed and nothing else changes, so a cancellation never opens, closes
or extends a circuit.

Attempts are not identified, so a ``release`` or a late verdict from an attempt admitted *before* the
circuit opened also settles the probe slot; at worst a second probe goes out. Open periods only ever grow:
a late failure cannot shorten a Retry-After already honoured.
"""

from __future__ import annotations

import attrs

__all__ = ["BreakerRegistry"]

Key = tuple[str, str]


@attrs.define
class _Breaker:
    failures: int = 0
    open_until: float | None = None
    probing: bool = False


class BreakerRegistry:
    def __init__(self, failure_threshold: int = 3, cooldown_s: float = 30.0) -> None:
        self.failure_threshold = max(1, failure_threshold)
        self.cooldown_s = cooldown_s
        self._breakers: dict[Key, _Breaker] = {}

    def reconfigure(self, failure_threshold: int, cooldown_s: float) -> None:
        """New settings from a reload; circuits already open keep their deadline."""
        self.failure_threshold = max(1, failure_threshold)
        self.cooldown_s = cooldown_s

    def state(self, key: Key, now: float) -> str:
        b = self._breakers.get(key)
        if b is None or b.open_until is None:
            return "closed"
        return "open" if now < b.open_until else "half_open"

    def allow(self, key: Key, now: float) -> bool:
        """May an attempt on ``key`` start now? In half-open state this admits the one probe."""
        b = self._breakers.get(key)
        if b is None or b.open_until is None:
            return True
        if now < b.open_until or b.probing:
            return False
        b.probing = True
        return True

    def record_success(self, key: Key, now: float) -> None:
        self._breakers.pop(key, None)

    def record_failure(self, key: Key, now: float, *, retry_after_s: float | None = None) -> None:
        b = self._breakers.setdefault(key, _Breaker())
        b.failures += 1
        was_probe, b.probing = b.probing, False
        if was_probe or b.open_until is not None or b.failures >= self.failure_threshold:
            until = now + max(self.cooldown_s, retry_after_s or 0.0)
            b.open_until = until if b.open_until is None else max(b.open_until, until)

    def release(self, key: Key) -> None:
        b = self._breakers.get(key)
        if b is not None:
            b.probing = False

    def snapshot(self, now: float) -> dict[str, dict[str, object]]:
        """Every model with a recent failure: ``label -> {state, consecutive_failures, reopens_in_s}``
        (``reopens_in_s`` is None unless open). A model absent from it is closed and healthy."""
        out: dict[str, dict[str, object]] = {}
        for (provider, model), b in self._breakers.items():
            state = self.state((provider, model), now)
            reopen = round(b.open_until - now, 1) if b.open_until is not None and state == "open" else None
            out[f"{provider}/{model}"] = {"state": state, "consecutive_failures": b.failures, "reopens_in_s": reopen}
        return out

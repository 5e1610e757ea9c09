"""Per-model circuit breakers, sans-IO: ``now`` is always an argument.

closed --(threshold consecutive counted failures)--> open --(cooldown, or Retry-After if longer)-->
half-open: exactly one probe is admitted; its success closes the circuit, its failure reopens it.
An attempt that ends without a verdict (the client left) calls :meth:`release`: a probe slot is
freed and nothing else changes, so cancellations never poison a breaker.
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
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._breakers: dict[Key, _Breaker] = {}

    def reconfigure(self, failure_threshold: int, cooldown_s: float) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s

    def state(self, key: Key, now: float) -> str:
        b = self._breakers.get(key)
        if b is None or b.open_until is None:
            return "closed"
        return "open" if now < b.open_until else "half_open"

    def allow(self, key: Key, now: float) -> bool:
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
        was_probe = b.probing
        b.probing = False
        if was_probe or b.failures >= self.failure_threshold:
            b.open_until = now + max(self.cooldown_s, retry_after_s or 0.0)

    def release(self, key: Key) -> None:
        b = self._breakers.get(key)
        if b is not None:
            b.probing = False

    def snapshot(self, now: float) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for (provider, model), b in self._breakers.items():
            state = self.state((provider, model), now)
            reopen = None if b.open_until is None or state != "open" else round(b.open_until - now, 1)
            out[f"{provider}/{model}"] = {"state": state, "consecutive_failures": b.failures, "reopens_in_s": reopen}
        return out

"""The process's circuit breakers as the fallback loop uses them: wall-clock time, a line in the log and a
metric for every transition, and a way to wait for another request's probe.

The state machine is :mod:`occ.resilience.breaker` (sans-IO); this module is its I/O half. Breaker times
are wall-clock seconds (``time.time()``), so a :class:`~occ.resilience.breaker.BreakerState` means the
same thing in any process that reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import trio

from occ.observe.logs import get_logger
from occ.observe.observer import Observer
from occ.resilience.breaker import BreakerRegistry, Key, Transition
from occ.resilience.fleet import FleetBreakers

__all__ = ["BreakerBoard"]

log = get_logger("occ.breaker")


def _label(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


class BreakerBoard:
    """A :class:`BreakerRegistry` plus what only the server can do: read the clock, log, count, wait."""

    def __init__(self, registry: BreakerRegistry, observer: Observer, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.observer = observer
        self.now = clock
        #: set (and replaced) whenever a verdict or release settles a breaker: panic waiters wake on it
        self._settled = trio.Event()
        if isinstance(registry, FleetBreakers):  # what the fleet decides is told and wakes waiters too
            registry.on_transition = lambda transition: self._tell(transition, "the fleet's count")
            registry.on_change = self._settle

    def _settle(self) -> None:
        self._settled.set()
        self._settled = trio.Event()

    async def wait_settled(self) -> None:
        """Until any breaker next records a verdict or a release (the caller bounds the wait)."""
        await self._settled.wait()

    def allow(self, key: Key, *, panic: bool = False) -> bool:
        return self.registry.allow(key, self.now(), panic=panic)

    def usable(self, key: Key) -> bool:
        return self.registry.usable(key, self.now())

    def record_success(self, key: Key) -> None:
        transition = self.registry.record_success(key, self.now())
        if transition is not None:
            self._tell(transition, "")
        self._settle()

    def record_failure(self, key: Key, retry_after_s: float | None, outcome: str) -> None:
        transition = self.registry.record_failure(key, self.now(), retry_after_s=retry_after_s)
        if transition is not None:
            self._tell(transition, outcome, retry_after_s)
        self._settle()

    def release(self, key: Key) -> None:
        self.registry.release(key)
        self._settle()

    def panic_routed(self, key: Key, request_id: str) -> None:
        log.warning("%s panic mode: every model of the chain has an open breaker; trying %s anyway "
                    "(least recently failed first)", request_id, _label(key))
        self.observer.panic_routed(_label(key))

    def reset(self, keys: Iterable[Key] | None, why: str) -> list[str]:
        labels = [_label(k) for k in self.registry.reset(keys)]
        for label in labels:
            log.info("breaker for %s closed: %s", label, why)
            self.observer.breaker_transition(label, "closed")
        self._settle()
        return labels

    def _tell(self, transition: Transition, outcome: str, retry_after_s: float | None = None) -> None:
        label = transition.label
        self.observer.breaker_transition(label, transition.kind)
        state = transition.state
        if transition.kind == "closed":
            log.info("breaker for %s closed: an attempt succeeded after %d counted failure(s)", label, state.failures)
            return
        open_s = (state.open_until or 0) - self.now()
        hint = ""
        if retry_after_s is not None:
            hint = f", upstream Retry-After {retry_after_s:g}s"
            if retry_after_s > self.registry.policy.max_retry_after_s:
                hint += f" capped at {self.registry.policy.max_retry_after_s:g}s (max_retry_after_ms)"
        log.warning("breaker for %s opened for %.1fs after %d consecutive counted failure(s) (last: %s%s)",
                    label, open_s, state.failures, outcome, hint)

"""The breaker registry as the request path sees it when several occ processes share state. Sans-IO.

:class:`FleetBreakers` *is* a :class:`~occ.resilience.breaker.BreakerRegistry` (this process's own
breakers, unchanged) with the fleet's view laid over it:

* **opens are shared.** When a local breaker opens, :attr:`publish` is told (``("open", label, until)``,
  in the wall-clock seconds the server passes as ``now``); the server's sync task writes it to the
  shared store, keeping the latest deadline any process set. What the fleet holds comes back through
  :meth:`apply_fleet`, and a model the fleet holds open is refused here too, whatever this process's
  own breaker says.
* **one probe across the fleet.** When the fleet's deadline for a model has passed (half-open), only the
  process holding the model's probe *lease* may send the probe. A process that wants to probe says so
  (``("want", label)``), and admits nothing until the sync task reports the lease granted
  (:meth:`grant_lease`); the probe's verdict is published (``close``: the fleet's breaker is cleared;
  a failure: ``open`` again) and the lease given back (``release``). A lease has a deadline, renewed
  by the sync task while its probe runs, so a process that dies mid-probe frees it.
* **a fleet close closes here.** A model the fleet held open and no longer does (another process's probe
  succeeded) is closed in this process too.
* **panic probes are fleet-wide too.** When every model of a chain is open (:meth:`FleetBreakers.allow`
  with ``panic=True``), a model the fleet holds open is probed by the process holding its lease, as in
  half-open: one panic probe per model across the fleet. The fallback loop waits for a lease (or the
  probe's verdict) at most the model's ``connect_timeout_ms`` and then goes anyway, so panic still never
  refuses a request without an upstream asked; :attr:`on_change` wakes it when a lease is answered.
* **a reset is fleet-wide.** A reload or ``occ reset-breakers`` closes the fleet's breakers too.
* **unconnected, it is the plain registry.** While :attr:`connected` is false (no shared state, or the
  store is unreachable) nothing fleet-wide applies: every process decides alone, as without sharing.

* **consecutive failures are counted fleet-wide.** Every counted failure is published (``("fail", label)``),
  the store adds it to the model's count and the answer comes back through :meth:`fleet_failure`: the
  process whose failure brings the fleet's count to ``failure_threshold`` opens the model (and publishes
  the open). A success anywhere clears the count (``("healthy", label)``, sent only when a count is known
  to be there: this process's own, or the fleet's as of the last sync, so a success within one sync
  interval of another process's failure may leave that one failure counted). This process's own count
  still opens the model too, so a store that lags or is away never delays an open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs

from occ.resilience.breaker import BreakerRegistry, Key, Transition

__all__ = ["FleetBreakers", "key_of", "label_of"]

Event = tuple[str, ...] | tuple[str, str, float]

#: a lease asked for and not answered (the request was dropped, the store went away) is asked again
WANT_AGAIN_S = 2.0


def label_of(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


def key_of(label: str) -> Key:
    """``provider/model`` back to its key: provider names hold no ``/``, model ids may."""
    provider, _, model = label.partition("/")
    return (provider, model)


def _ignore(event: Event) -> None:
    return None


class FleetBreakers(BreakerRegistry):
    def __init__(self, failure_threshold: int = 3, cooldown_s: float = 30.0, max_retry_after_s: float = 300.0) -> None:
        super().__init__(failure_threshold, cooldown_s, max_retry_after_s)
        #: where fleet-wide changes go (the server's sync task); never blocks, may drop
        self.publish: Callable[[Event], None] = _ignore
        #: the fleet's view applies only while the shared store answers
        self.connected = False
        self._fleet_until: dict[Key, float] = {}  # models the fleet holds open, until (the caller's clock)
        self._leases: dict[Key, float] = {}  # probe leases held here, until
        self._probing: set[Key] = set()  # fleet probes in flight in this process
        self._wanted: dict[Key, float] = {}  # leases asked for and not yet answered: when asked
        #: the fleet's consecutive failure counts as last read (label -> n)
        self.fleet_failures: dict[str, int] = {}
        #: a breaker this registry opened on the fleet's count (told to the server, which logs and counts it)
        self.on_transition: Callable[[Transition], None] = lambda transition: None
        #: a lease was answered or the fleet closed a model: a request waiting for a probe may go now
        self.on_change: Callable[[], None] = lambda: None

    def _fleet(self, key: Key) -> float | None:
        return self._fleet_until.get(key) if self.connected else None

    # -- the request path (synchronous, local) ---------------------------------------------------

    def state(self, key: Key, now: float) -> str:
        local = super().state(key, now)
        until = self._fleet(key)
        if until is None or local == "open":
            return local
        return "open" if now < until else "half_open"

    def usable(self, key: Key, now: float) -> bool:
        until = self._fleet(key)
        if until is not None and (now < until or key in self._probing):
            return False
        return super().usable(key, now)

    def allow(self, key: Key, now: float, *, panic: bool = False) -> bool:
        """As the registry's, with the fleet's opens honoured. In panic mode (every model of the chain
        open) the fleet's open is treated as half-open like the local one, and probed, as in half-open,
        only by the process holding the model's lease (one panic probe per model across the fleet); the
        fallback loop bounds that wait and then goes anyway (the module's docstring)."""
        until = self._fleet(key)
        if until is None:
            return super().allow(key, now, panic=panic)
        if key in self._probing or (now < until and not panic):
            return False
        if self._leases.get(key, float("-inf")) <= now:  # no lease (or it lapsed): ask, admit nothing yet
            self._leases.pop(key, None)
            if self._wanted.get(key, float("-inf")) + WANT_AGAIN_S <= now:  # an answer may have been lost
                self._wanted[key] = now
                self.publish(("want", label_of(key)))
            return False
        if not super().allow(key, now, panic=panic):
            return False
        self._probing.add(key)
        return True

    def record_success(self, key: Key, now: float) -> Transition | None:
        """A fleet probe's success closes the model fleet-wide, and is this process's transition to report
        (here or elsewhere, only the prober reports it)."""
        before = self.get(key)
        if self.connected and (before.failures or self.fleet_failures.get(label_of(key))):
            self.fleet_failures.pop(label_of(key), None)
            self.publish(("healthy", label_of(key)))
        transition = super().record_success(key, now)
        if key in self._probing:
            self._end_probe(key)
            self._fleet_until.pop(key, None)
            self.publish(("close", label_of(key)))
            transition = transition or Transition(key, "closed", before)
        return transition

    def record_failure(self, key: Key, now: float, *, retry_after_s: float | None = None) -> Transition | None:
        transition = super().record_failure(key, now, retry_after_s=retry_after_s)
        if self.connected:
            self.publish(("fail", label_of(key)))
        was_probe = key in self._probing
        mine = self.get(key)
        if was_probe or mine.name(now) == "open":
            until = max(mine.open_until or now, now + self.policy.open_for(retry_after_s))
            if self.connected:
                self._fleet_until[key] = max(self._fleet_until.get(key, until), until)
            self.publish(("open", label_of(key), until))
            if was_probe and transition is None:  # the fleet's breaker reopened by this process's probe
                transition = Transition(key, "opened", attrs.evolve(mine, open_until=until))
        if was_probe:
            self._end_probe(key)
        return transition

    def release(self, key: Key) -> None:
        super().release(key)
        if key in self._probing:
            self._end_probe(key)

    def _end_probe(self, key: Key) -> None:
        self._probing.discard(key)
        self._leases.pop(key, None)
        self.publish(("release", label_of(key)))

    def reset(self, keys: Iterable[Key] | None = None) -> list[Key]:
        """Closes them across the fleet too (a reload, ``occ reset-breakers``)."""
        reset = super().reset(keys)
        fleet = list(self._fleet_until) if keys is None else [k for k in keys if k in self._fleet_until]
        for key in fleet:
            self._fleet_until.pop(key, None)
            self._probing.discard(key)
            self.publish(("close", label_of(key)))
        return reset + [k for k in fleet if k not in reset]

    def snapshot(self, now: float) -> dict[str, dict[str, object]]:
        out = super().snapshot(now)
        if not self.connected:
            return out
        for key, until in self._fleet_until.items():
            label = label_of(key)
            mine = out.get(label)
            if mine is not None and mine["state"] == "open":
                continue
            state = "open" if now < until else "half_open"
            out[label] = {**(mine or {"consecutive_failures": 0, "open_for_s": None}), "state": state,
                          "reopens_in_s": round(until - now, 1) if state == "open" else None,
                          "probing": key in self._probing}
        return out

    # -- the sync task's side -------------------------------------------------------------------

    def apply_fleet(self, until: Mapping[str, float], now: float) -> None:
        """The fleet's breakers as last read: ``label -> until`` (the caller's clock; past: half-open).
        A model the fleet held and has cleared is closed here too."""
        fleet = {key_of(label): t for label, t in until.items()}
        cleared = [k for k in self._fleet_until.keys() - fleet.keys() if k not in self._probing]
        super().reset([k for k in cleared if self.get(k).name(now) != "closed"])
        self._fleet_until = fleet
        self.connected = True
        if cleared:
            self.on_change()

    def grant_lease(self, label: str, granted: bool, until: float) -> None:
        """The answer to a ``want``: this process holds the probe lease until ``until`` (or another does)."""
        key = key_of(label)
        self._wanted.pop(key, None)
        if granted:
            self._leases[key] = until
        else:
            self._leases.pop(key, None)
        self.on_change()

    def fleet_failure(self, label: str, failures: int, now: float) -> None:
        """The fleet's consecutive failure count of ``label`` after one of this process's failures. At the
        threshold (exactly one process's failure brings it there) a model not yet open opens, here and,
        through the published open, for the fleet."""
        key = key_of(label)
        self.fleet_failures[label] = failures
        state = self.get(key)
        if failures < self.policy.failure_threshold or state.open_until is not None or key in self._fleet_until:
            return
        until = now + self.policy.open_for(None)
        opened = attrs.evolve(state, failures=max(state.failures, failures), last_failure_at=now, open_until=until,
                              opened_at=now)
        self.put(key, opened)
        self.publish(("open", label, until))
        self.on_transition(Transition(key, "opened", opened))
        self.on_change()

    def renew_leases(self, until: float) -> list[str]:
        """The leases whose probe is still running, extended to ``until``: the sync task renews them in
        the store too. An idle lease is left to lapse there (and here)."""
        for key in self._probing:
            self._leases[key] = until
        return [label_of(k) for k in self._probing]

    def open_until(self, now: float) -> dict[str, float]:
        """This process's own open breakers (label -> until): published again on (re)connecting, so a
        store that restarted empty learns them."""
        return {label_of(key): state.open_until for key in self.keys()
                if (state := self.get(key)).open_until is not None and state.name(now) == "open"}

    def disconnect(self) -> None:
        """The store stopped answering: every process decides alone until it answers again."""
        self.connected = False
        self._fleet_until.clear()
        self._leases.clear()
        self._wanted.clear()
        self._probing.clear()
        self.fleet_failures = {}
        self.on_change()

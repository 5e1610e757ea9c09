"""What occ has been doing: counters for ``/status`` and ``/metrics``, fed once per request.

Each finished request's :class:`~occ.observe.access_log.RequestLog` is observed once (never per chunk).
Metrics use prometheus_client with a registry per app (so two apps in one process, or tests, never
share counters); label values are bounded: scenario, provider/model and outcome, never request ids.

Under ``occ serve --workers N`` prometheus_client runs in its multiprocess mode: ``occ serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start, every worker writes its
values there, and a scrape of any worker reads them all (:func:`_fleet_registry`). Gauges say how workers
combine: requests in flight are summed over the live workers, a breaker shows the scraped worker's view.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from occ import __version__
from occ.observe.access_log import RequestLog

__all__ = ["Observer", "ServerSnapshot"]

_WINDOW = 200
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


class _ModelStats:
    def __init__(self) -> None:
        self.requests = 0
        self.outcomes: dict[str, int] = defaultdict(int)
        self.latency: deque[float] = deque(maxlen=_WINDOW)
        self.ttft: deque[float] = deque(maxlen=_WINDOW)


class _Children:
    """A labelled metric's children, each looked up once: ``labels()`` validates its arguments and
    takes a lock on every call, on the path of every request. Label values are bounded (see above),
    so the map is too."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


@attrs.frozen
class ServerSnapshot:
    """What ``/status`` and ``/metrics`` need from the server at one moment, as values: the server
    takes it (``ServerState.snapshot()``) and hands it down, so this layer never reads server state."""

    config_source: str | None
    config_loaded_at: float
    started_at: float
    in_flight: int
    #: breaker label -> ``{"state": ..., "reopens_in_s": ...}``
    breakers: Mapping[str, Mapping[str, Any]]
    #: the upstream pool's connection counts, or None before serving started
    upstream_connections: Mapping[str, int] | None
    #: the shared state's view (``{"state": "off"|"connecting"|"connected"|"unavailable", ...}``), if any
    shared: Mapping[str, Any] | None = None
    #: what start-up said is missing (no key, no config file, a public bind), one line each
    notices: tuple[str, ...] = ()


class Observer:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("occ_requests", "Requests by scenario, final model and outcome",
                                ["scenario", "model", "outcome"], registry=self.registry)
        self.attempts = Histogram("occ_attempt_duration_seconds", "Upstream attempt durations",
                                  ["model", "outcome"], buckets=_BUCKETS, registry=self.registry)
        self.ttft = Histogram("occ_time_to_first_token_seconds", "Time to first content event",
                              ["model"], buckets=_BUCKETS, registry=self.registry)
        self.fallbacks = Counter("occ_fallbacks", "Attempts that failed and moved on to another model",
                                 ["model"], registry=self.registry)
        self.tokens = Counter("occ_tokens", "Tokens reported by upstreams", ["model", "kind"],
                              registry=self.registry)
        self.estimated_tokens = Counter("occ_estimated_tokens",
                                        "Tokens occ estimated because the upstream reported none",
                                        ["model", "kind"], registry=self.registry)
        self.in_flight = Gauge("occ_in_flight_requests", "Requests in flight", registry=self.registry,
                               multiprocess_mode="livesum")
        self.breaker = Gauge("occ_breaker_open", "1 when a model's circuit is open or half-open", ["model"],
                             registry=self.registry, multiprocess_mode="livemostrecent")
        self._breaker_labels: set[str] = set()
        self.breaker_transitions = Counter("occ_breaker_transitions", "Circuit breakers opening and closing",
                                           ["model", "to"], registry=self.registry)
        self.panic = Counter("occ_panic_routed", "Attempts sent to a model with an open breaker because every model "
                             "of the chain had one (panic mode)", ["model"], registry=self.registry)
        self.attempts_started = Counter("occ_upstream_attempts", "Attempts started upstream (each is one request "
                                        "sent, whatever became of it: the client leaving included)", ["model"],
                                        registry=self.registry)
        self.per_model: dict[str, _ModelStats] = defaultdict(_ModelStats)
        #: label -> {"opened": n, "closed": n, "panic_routed": n, "last_opened_at": iso, "last_closed_at": iso}
        self.breaker_history: dict[str, dict[str, Any]] = defaultdict(dict)
        self._requests, self._attempts, self._ttft, self._fallbacks, self._tokens, self._estimated = (
            _Children(m) for m in (self.requests, self.attempts, self.ttft, self.fallbacks, self.tokens,
                                   self.estimated_tokens))
        self._attempts_started = _Children(self.attempts_started)

    def request_started(self) -> None:
        self.in_flight.inc()

    def observe(self, record: RequestLog) -> None:
        """One finished request (every request that :meth:`request_started` counted ends here once)."""
        self.in_flight.dec()
        fields = record.fields()
        outcome = fields["outcome"]
        model = fields.get("model") or "-"
        self._requests(fields.get("scenario") or "-", model, outcome).inc()
        attempts = fields.get("attempts") or []
        for attempt in attempts:
            self._attempts(attempt["model"], attempt["outcome"]).observe(attempt["ms"] / 1000)
            stats = self.per_model[attempt["model"]]
            stats.requests += 1
            if attempt["outcome"] == "cancelled":  # cut by the request's end, not the model's doing:
                stats.outcomes[outcome if outcome != "ok" else "cancelled"] += 1  # no latency, no fallback
                continue
            stats.outcomes[attempt["outcome"]] += 1
            stats.latency.append(attempt["ms"] / 1000)
            if attempt["outcome"] != "ok":
                self._fallbacks(attempt["model"]).inc()
        ttft = fields.get("ttft_ms")
        if ttft is not None and model != "-":
            self._ttft(model).observe(ttft / 1000)
            self.per_model[model].ttft.append(ttft / 1000)
        tokens = self._estimated if fields.get("tokens_estimated") else self._tokens
        for kind, key in (("input", "tokens_in"), ("output", "tokens_out"), ("cached", "tokens_cached")):
            value = fields.get(key)
            if value:
                tokens(model, kind).inc(value)

    def attempt_started(self, label: str) -> None:
        """An attempt on ``label`` starts (counted before it can fail or be cancelled, so the count matches
        what the upstream received)."""
        self._attempts_started(label).inc()

    def breaker_transition(self, label: str, kind: str) -> None:
        """A breaker opened or closed (the server logs it too)."""
        self.breaker_transitions.labels(label, kind).inc()
        history = self.breaker_history[label]
        history[kind] = history.get(kind, 0) + 1
        history[f"last_{kind}_at"] = _iso(time.time())

    def panic_routed(self, label: str) -> None:
        """Panic mode sent an attempt to ``label`` although its breaker was open."""
        self.panic.labels(label).inc()
        history = self.breaker_history[label]
        history["panic_routed"] = history.get("panic_routed", 0) + 1
        history["last_panic_at"] = _iso(time.time())

    def metrics_text(self, snap: ServerSnapshot) -> bytes:
        # A breaker that closed leaves the snapshot: every label shown once is set again, to 0 if absent.
        self._breaker_labels |= set(snap.breakers) | set(self.per_model)
        for label in self._breaker_labels:
            state = snap.breakers.get(label, {}).get("state", "closed")
            self.breaker.labels(label).set(0 if state == "closed" else 1)
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        return generate_latest(_fleet_registry(directory) if directory else self.registry)

    def status(self, snap: ServerSnapshot) -> dict[str, Any]:
        breakers = snap.breakers
        models: dict[str, Any] = {}
        for label in sorted(set(self.per_model) | set(breakers) | set(self.breaker_history)):
            stats = self.per_model.get(label) or _ModelStats()
            latency, ttft = list(stats.latency), list(stats.ttft)
            info = breakers.get(label, {})
            models[label] = {
                "breaker": info.get("state", "closed"),
                "reopens_in_s": info.get("reopens_in_s"),
                "breaker_probing": bool(info.get("probing")),
                "breaker_open_for_s": info.get("open_for_s"),
                "breaker_opened": self.breaker_history.get(label, {}).get("opened", 0),
                "breaker_closed": self.breaker_history.get(label, {}).get("closed", 0),
                "breaker_last_opened_at": self.breaker_history.get(label, {}).get("last_opened_at"),
                "breaker_last_closed_at": self.breaker_history.get(label, {}).get("last_closed_at"),
                "panic_routed": self.breaker_history.get(label, {}).get("panic_routed", 0),
                "last_panic_at": self.breaker_history.get(label, {}).get("last_panic_at"),
                "requests": stats.requests,
                "outcomes": dict(stats.outcomes),
                "latency_p50_s": _percentile(latency, 0.5),
                "latency_p95_s": _percentile(latency, 0.95),
                "ttft_p50_s": _percentile(ttft, 0.5),
                "ttft_p95_s": _percentile(ttft, 0.95),
            }
        return {
            "version": __version__,
            "config": snap.config_source,
            "config_loaded_at": _iso(snap.config_loaded_at),
            "uptime_s": round(time.time() - snap.started_at, 1),
            "in_flight": snap.in_flight,
            "upstream_connections": dict(snap.upstream_connections) if snap.upstream_connections is not None else None,
            "notices": list(snap.notices),
            "models": models,
            **_fleet(snap),
        }


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _fleet_registry(directory: str) -> CollectorRegistry:
    """Every worker's values, read from the multiprocess directory. A worker that died (and hypercorn
    replaced) leaves its files: its live gauges are dropped here, its counters rightly stay."""
    for path in glob.glob(os.path.join(directory, "gauge_live*.db")):
        match = _LIVE_GAUGE_FILE.search(os.path.basename(path))
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, directory)
    return registry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fleet(snap: ServerSnapshot) -> dict[str, Any]:
    """``shared_state`` (always) and, while connected, ``fleet``: the processes alive, and per model the
    breaker (the fleet's, laid over this process's) with the fleet's request and outcome totals."""
    shared = snap.shared or {"state": "off"}
    out: dict[str, Any] = {"shared_state": shared.get("state", "off")}
    if shared.get("url"):
        out["shared_state_url"] = shared["url"]
    if shared.get("state") != "connected":
        return out
    counts = shared.get("models") or {}
    models: dict[str, Any] = {}
    for label in sorted(set(counts) | set(snap.breakers)):
        info = snap.breakers.get(label, {})
        entry = counts.get(label) or {}
        models[label] = {"breaker": info.get("state", "closed"), "reopens_in_s": info.get("reopens_in_s"),
                         "requests": entry.get("requests", 0), "outcomes": dict(entry.get("outcomes") or {}),
                         "breaker_opened": entry.get("breaker_opened", 0),
                         "breaker_closed": entry.get("breaker_closed", 0),
                         "panic_routed": entry.get("panic_routed", 0)}
    processes = list(shared.get("processes") or [])
    out["fleet"] = {"process": shared.get("process"), "processes": processes,
                    "in_flight": sum(int(p.get("in_flight") or 0) for p in processes), "models": models}
    return out


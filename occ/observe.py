"""What occ has been doing: counters for ``/status`` and ``/metrics``, fed once per request.

Each finished request's :class:`~occ.access_log.RequestLog` is observed once (never per chunk).
Metrics use prometheus_client with a registry per app (so two apps in one process, or tests, never
share counters); label values are bounded: scenario, provider/model and outcome, never request ids.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from .access_log import RequestLog
    from .state import ServerState

__all__ = ["Observer"]

_WINDOW = 200
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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
        self.in_flight = Gauge("occ_in_flight_requests", "Requests in flight", registry=self.registry)
        self.breaker = Gauge("occ_breaker_open", "1 when a model's circuit is open or half-open", ["model"],
                             registry=self.registry)
        self.per_model: dict[str, _ModelStats] = defaultdict(_ModelStats)
        self._requests, self._attempts, self._ttft, self._fallbacks, self._tokens = (
            _Children(m) for m in (self.requests, self.attempts, self.ttft, self.fallbacks, self.tokens))

    def observe(self, record: RequestLog) -> None:
        fields = record.fields()
        outcome = fields["outcome"]
        model = fields.get("model") or "-"
        self._requests(fields.get("scenario") or "-", model, outcome).inc()
        attempts = fields.get("attempts") or []
        for attempt in attempts:
            self._attempts(attempt["model"], attempt["outcome"]).observe(attempt["ms"] / 1000)
            stats = self.per_model[attempt["model"]]
            stats.requests += 1
            stats.outcomes[attempt["outcome"]] += 1
            stats.latency.append(attempt["ms"] / 1000)
            if attempt["outcome"] != "ok":
                self._fallbacks(attempt["model"]).inc()
        if outcome == "client_cancelled" and attempts:
            self.per_model[attempts[-1]["model"]].outcomes["client_cancelled"] += 1
        ttft = fields.get("ttft_ms")
        if ttft is not None and model != "-":
            self._ttft(model).observe(ttft / 1000)
            self.per_model[model].ttft.append(ttft / 1000)
        for kind, key in (("input", "tokens_in"), ("output", "tokens_out"), ("cached", "tokens_cached")):
            value = fields.get(key)
            if value:
                self._tokens(model, kind).inc(value)

    def metrics_text(self, state: ServerState) -> bytes:
        self.in_flight.set(state.in_flight)
        now = _trio_now()
        for label, info in state.breakers.snapshot(now).items():
            self.breaker.labels(label).set(0 if info.get("state") == "closed" else 1)
        return generate_latest(self.registry)

    def status(self, state: ServerState) -> dict[str, Any]:
        from . import __version__

        now = _trio_now()
        breakers = state.breakers.snapshot(now)
        models: dict[str, Any] = {}
        for label in sorted(set(self.per_model) | set(breakers)):
            stats = self.per_model.get(label) or _ModelStats()
            latency, ttft = list(stats.latency), list(stats.ttft)
            info = breakers.get(label, {})
            models[label] = {
                "breaker": info.get("state", "closed"),
                "reopens_in_s": info.get("reopens_in_s"),
                "requests": stats.requests,
                "outcomes": dict(stats.outcomes),
                "latency_p50_s": _percentile(latency, 0.5),
                "latency_p95_s": _percentile(latency, 0.95),
                "ttft_p50_s": _percentile(ttft, 0.5),
                "ttft_p95_s": _percentile(ttft, 0.95),
            }
        return {
            "version": __version__,
            "config": state.config.source,
            "config_loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.config_loaded_at)),
            "uptime_s": round(time.time() - state.started_at, 1),
            "in_flight": state.in_flight,
            "upstream_connections": _connections(state),
            "models": models,
        }


def _connections(state: ServerState) -> dict[str, int] | None:
    """How well keep-alive works: ``opened`` growing with every request means none is reused."""
    if state.upstream is None:
        return None
    return state.upstream.connection_stats()


def _trio_now() -> float:
    import trio

    return trio.current_time()


"""What one occ process shares between requests, and nothing more.

* the current config snapshot: a request takes it when it starts and routes with it; each attempt
  reads its timeouts from the snapshot current when the attempt starts. A reload swaps the one
  reference (:meth:`ServerState.swap_config`), never mutates a snapshot;
* the circuit breakers, per (provider, model), touched only by trio tasks of one thread;
* the upstream HTTP client, opened when serving starts and closed when it stops;
* counters for ``/health``, ``/status`` and ``/metrics``.

Several workers (``--workers``) each have their own state; docs/running-several-instances.md says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import trio

from occ.config.model import Config
from occ.observe.logs import remember_secrets
from occ.observe.observer import Observer, ServerSnapshot
from occ.resilience.breaker import BreakerRegistry
from occ.server.client_limits import ClientLimiter
from occ.upstream.client import UpstreamClient

__all__ = ["ServerState"]


def _remember(config: Config) -> None:
    remember_secrets(key for p in config.providers.values() for key in p.api_keys)
    remember_secrets(getattr(config, "client_api_keys", ()))


@attrs.define
class ServerState:
    config: Config
    config_path: str | None = None
    upstream: UpstreamClient | None = None
    breakers: BreakerRegistry = attrs.field(factory=BreakerRegistry)
    config_loaded_at: float = attrs.field(factory=time.time)
    started_at: float = attrs.field(factory=time.time)
    in_flight: int = 0
    limiter: ClientLimiter = attrs.field(factory=ClientLimiter)
    observer: Observer = attrs.field(factory=Observer)
    reload_listeners: list[Callable[[Config], None]] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        _remember(self.config)
        self.breakers.reconfigure(self.config.breaker.failure_threshold, self.config.breaker.cooldown_s)

    def swap_config(self, config: Config) -> None:
        """Make ``config`` the snapshot new requests and new attempts see."""
        _remember(config)
        self.config = config
        self.config_loaded_at = time.time()
        self.breakers.reconfigure(config.breaker.failure_threshold, config.breaker.cooldown_s)
        for listener in self.reload_listeners:
            listener(config)

    def snapshot(self) -> ServerSnapshot:
        """This moment's values for ``/status`` and ``/metrics`` (the observe layer never reads this
        object itself)."""
        return ServerSnapshot(
            config_source=self.config.source,
            config_loaded_at=self.config_loaded_at,
            started_at=self.started_at,
            in_flight=self.in_flight,
            breakers=self.breakers.snapshot(trio.current_time()),
            upstream_connections=self.upstream.connection_stats() if self.upstream is not None else None,
        )

"""What one occ process shares between requests, and nothing more.

* the current config snapshot: a request takes it when it starts and routes with it; each attempt
  reads its timeouts from the snapshot current when the attempt starts. A reload swaps the one
  reference (:meth:`ServerState.swap_config`), never mutates a snapshot;
* the circuit breakers, per (provider, model), touched only by trio tasks of one thread;
* the upstream HTTP client, opened when serving starts and closed when it stops;
* counters for ``/health``, ``/status`` and ``/metrics``;
* the usage rows not yet written to the ledger;
* :class:`~occ.server.shared_state.SharedState`: with ``shared_state`` configured, the link that lays
  the fleet's breakers, client counts and counters over this process's own (docs/running-several-instances.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import trio

from occ.config.model import Config, client_key_problems
from occ.core.errors import ConfigError
from occ.core.scrub import remember_secrets
from occ.observe.ledger import Ledger
from occ.observe.observer import Observer, ServerSnapshot
from occ.observe.usage import UsageBatch
from occ.resilience.breaker import BreakerRegistry
from occ.resilience.fleet import FleetBreakers
from occ.server.breakers import BreakerBoard
from occ.server.checks import Guard, startup_notices
from occ.server.client_limits import ClientLimiter
from occ.server.shared_state import SharedState
from occ.upstream.client import UpstreamClient

__all__ = ["ServerState"]


def _accept(config: Config) -> None:
    """Every config a server runs with passes here, whoever built it (the parser, or an embedding
    program's own :class:`Config`): its secrets go to the scrubber, and client keys the parser would
    refuse (empty, too short) are refused here too.

    Raises:
        ConfigError: an empty or too short client key.
    """
    problems = client_key_problems(config.client_api_keys)
    if problems:
        raise ConfigError(problems, config.source or "config")
    remember_secrets(config.secrets())


@attrs.define
class ServerState:
    config: Config
    config_path: str | None = None
    upstream: UpstreamClient | None = None
    breakers: BreakerRegistry = attrs.field(factory=FleetBreakers)
    config_loaded_at: float = attrs.field(factory=time.time)
    started_at: float = attrs.field(factory=time.time)
    in_flight: int = 0
    limiter: ClientLimiter = attrs.field(factory=ClientLimiter)
    observer: Observer = attrs.field(factory=Observer)
    reload_listeners: list[Callable[[Config], None]] = attrs.field(factory=list)
    #: finished requests' ledger rows not yet written (occ/server/usage_writer.py writes them)
    usage: UsageBatch = attrs.field(factory=UsageBatch)
    #: the last ledger write failed (one warning per run of failures)
    usage_failing: bool = False
    #: the ledger being written (its connection kept between flushes), and one flush at a time
    usage_ledger: Ledger | None = None
    usage_lock: trio.Lock = attrs.field(factory=trio.Lock)
    guard: Guard = attrs.field(factory=Guard)
    board: BreakerBoard = attrs.field(init=False)
    shared: SharedState = attrs.field(init=False)
    #: what is wrong right now and not a request's fault (the ledger cannot be written, the last reload
    #: failed), by kind: shown in /health (degraded), /status's notices, ``occ status`` and /ui until fixed
    problems: dict[str, str] = attrs.field(factory=dict)
    #: one per request in its fallback loop: cancelled when the shutdown grace has run out
    shutdown_scopes: set[trio.CancelScope] = attrs.field(factory=set)

    def __attrs_post_init__(self) -> None:
        _accept(self.config)
        self._configure_breakers(self.config)
        self.board = BreakerBoard(self.breakers, self.observer)
        self.shared = SharedState(self.breakers, self.limiter, self.observer)

    def _configure_breakers(self, config: Config) -> None:
        b = config.breaker
        self.breakers.reconfigure(b.failure_threshold, b.cooldown_s, b.max_retry_after_s)

    def swap_config(self, config: Config) -> None:
        """Make ``config`` the snapshot new requests and new attempts see.

        Breakers start closed again: a reload is how an operator says "I fixed it" (a new key, a new URL),
        and a model must not stay locked out by what the old config did."""
        _accept(config)
        self.config = config
        self.config_loaded_at = time.time()
        self._configure_breakers(config)
        self.board.reset(None, "the config was reloaded")
        for listener in self.reload_listeners:
            listener(config)

    async def finish_requests(self, grace_s: float, *, flush_s: float = 1.0) -> int:
        """Graceful shutdown, once the server has stopped accepting: requests in flight get ``grace_s`` to
        finish; then each one left has its shutdown scope cancelled, so it ends with an ``overloaded_error``
        ("server shutting down") instead of being cut, and gets ``flush_s`` to write it. Returns how many
        were ended that way. Polls (every 50 ms, bounded by the two deadlines): ``in_flight`` is a count."""
        with trio.move_on_after(grace_s):
            while self.in_flight:
                await trio.sleep(0.05)
        left = len(self.shutdown_scopes)
        for scope in list(self.shutdown_scopes):
            scope.cancel(reason="server shutting down")
        with trio.move_on_after(flush_s):
            while self.in_flight:
                await trio.sleep(0.05)
        return left

    def snapshot(self) -> ServerSnapshot:
        """This moment's values for ``/status`` and ``/metrics`` (the observe layer never reads this
        object itself)."""
        return ServerSnapshot(
            config_source=self.config.source,
            config_loaded_at=self.config_loaded_at,
            started_at=self.started_at,
            in_flight=self.in_flight,
            breakers=self.breakers.snapshot(self.board.now()),
            upstream_connections=self.upstream.connection_stats() if self.upstream is not None else None,
            shared=self.shared.view(),
            notices=(*self.problems.values(),
                     *startup_notices(self.config, self.guard.bind_host or self.config.host)),
        )

"""Who may use occ, and how much at once.

* ``client_api_keys``: when configured, a request must carry one of them (``x-api-key`` or
  ``Authorization: Bearer``), compared in constant time. Without them occ trusts its loopback bind.
* ``max_concurrent_per_client``: one runaway agent cannot starve the others; excess requests get
  429 ``rate_limit_error`` with ``retry-after``, and requests already running are never touched.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from occ.config.model import Config
from occ.core.errors import RateLimited, Unauthorized

__all__ = ["ClientLimiter", "client_identity"]


def _presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def client_identity(headers: Mapping[str, str], peer: str | None, config: Config) -> str:
    """Check the client's key (when keys are configured) and name the client for the limiter.

    Raises:
        Unauthorized: keys are configured and none matches.
    """
    presented = _presented_key(headers)
    if config.client_api_keys:
        if not presented:  # an empty key never matches, whatever the config holds
            raise Unauthorized("occ requires a client key: send x-api-key or Authorization: Bearer "
                               "(ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN in Claude Code)")
        matched = None
        for index, key in enumerate(config.client_api_keys):
            if hmac.compare_digest(presented.encode(), key.encode()):
                matched = index
        if matched is None:
            raise Unauthorized("invalid client key")
        return f"key#{matched}"
    return f"addr:{peer or 'unknown'}"


class ClientLimiter:
    """Counts requests in flight per client; trio tasks of one thread only, so no locks.

    With shared state the fleet's count is authoritative: each request takes a slot in the store first
    (:meth:`~occ.server.shared_state.SharedState.client_slot`, one atomic script), and ``fleet_checked``
    then skips the local check. When the store does not answer, :attr:`elsewhere` (the fleet's other live
    processes' counts, from their last heartbeats) is laid over this process's count instead.
    """

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        self.elsewhere: dict[str, int] = {}

    def acquire(self, client: str, limit: int | None, *, fleet_checked: bool = False) -> None:
        current = self.in_flight.get(client, 0)
        if limit is not None and not fleet_checked:
            others = self.elsewhere.get(client, 0) if self.elsewhere else 0
            if current + others >= limit:
                where = f"{current} here and {others} on other occ processes" if others else f"{current}"
                raise RateLimited(f"too many concurrent requests from this client ({where} running, "
                                  f"max_concurrent_per_client is {limit})", retry_after_s=1.0)
        self.in_flight[client] = current + 1

    def release(self, client: str) -> None:
        remaining = self.in_flight.get(client, 1) - 1
        if remaining <= 0:
            self.in_flight.pop(client, None)
        else:
            self.in_flight[client] = remaining

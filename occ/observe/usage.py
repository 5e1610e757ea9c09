"""What one finished request spent, as a ledger row, and the batch of rows not yet written.

The server builds a :class:`UsageRow` from the request's :class:`~occ.observe.access_log.RequestLog`
when the request ends (values only; this layer never reads server state) and hands it to
:class:`UsageBatch`, which is memory only: adding a row costs a list append. The server's one writer
task takes the batch and writes it to the :class:`~occ.observe.ledger.Ledger` through a thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

from occ.config.model import Price
from occ.core.errors import AttemptRecord
from occ.core.jsonfast import dumps_str
from occ.observe.access_log import RequestLog

__all__ = ["MAX_PENDING", "UsageBatch", "UsageRow", "usage_row"]

#: Rows kept while the ledger cannot be written (locked, disk full); the oldest go first beyond it.
MAX_PENDING = 50_000
#: Finished requests kept in memory for ``/ui``'s "last requests".
RECENT = 50


class UsageRow(NamedTuple):
    """One ledger row, its fields in :data:`~occ.observe.ledger.COLUMNS` order: a tuple, so sqlite
    takes it as it is (building it is on the request path)."""

    ts: float
    request_id: str
    client: str | None
    scenario: str | None
    model: str | None
    wire: str | None
    stream: bool | None
    outcome: str
    status: int | None
    latency_ms: float
    ttft_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    #: None when there was no usage at all; True when occ estimated it (the upstream sent none)
    usage_estimated: bool | None
    #: None when the model has no price (not the same as 0)
    cost_usd: float | None
    #: every attempt, as JSON: ``[{"model", "protocol", "outcome", "ms"}]`` (the log line's, in order)
    attempts: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


def usage_row(record: RequestLog, prices: Mapping[str, Price], *, now: float | None = None) -> UsageRow:
    """The ledger row of a finished request; ``now`` (wall clock) is when it finished.

    On the request path, so built positionally, without keyword arguments or temporaries
    (``benchmarks/app_path.py --usage on|off`` measures it)."""
    usage = record.usage
    model = record.model
    if usage:
        input_tokens = usage.get("input_tokens")
        output_tokens = usage.get("output_tokens")
        cache_read = usage.get("cache_read_input_tokens")
        cache_write = usage.get("cache_creation_input_tokens")
        price = prices.get(model) if model and prices else None
        cost = None if price is None else price.cost(input_tokens or 0, output_tokens or 0, cache_read or 0,
                                                       cache_write or 0)
        estimated: bool | None = record.usage_estimated
    else:
        input_tokens = output_tokens = cache_read = cache_write = cost = estimated = None
    ttft = record.ttft_s
    attempts = record.attempts
    return UsageRow(
        time.time() if now is None else now,
        record.request_id,
        record.client,
        record.scenario,
        model,
        attempts[-1].protocol if attempts else None,
        record.stream,
        record.outcome,
        record.status,
        round((time.monotonic() - record.started) * 1000, 1),
        None if ttft is None else round(ttft * 1000, 1),
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        estimated,
        cost,
        _attempts_json(attempts) if attempts else None,
    )


def _attempts_json(attempts: list[AttemptRecord]) -> str:
    return dumps_str([{"model": f"{a.provider}/{a.model}", "protocol": a.protocol,
                       "outcome": a.outcome if a.status is None else f"http_{a.status}",
                       "ms": round(a.duration_s * 1000, 1)} for a in attempts])


class UsageBatch:
    """Rows waiting for the writer, and the last few for ``/ui``. Touched by trio tasks of one
    thread only (the writer takes the list before it enters its thread), so no locks."""

    def __init__(self) -> None:
        self.pending: list[UsageRow] = []
        self.recent: deque[UsageRow] = deque(maxlen=RECENT)
        self.dropped = 0

    def add(self, row: UsageRow, *, keep: bool = True) -> None:
        """Remember ``row`` for ``/ui``; queue it for the ledger when ``keep`` (the ledger is on)."""
        self.recent.append(row)
        if keep:
            self.pending.append(row)

    def take(self) -> list[UsageRow]:
        rows, self.pending = self.pending, []
        return rows

    def put_back(self, rows: list[UsageRow]) -> None:
        """Rows a write failed on go back in front of the newer ones; past :data:`MAX_PENDING` the
        oldest are dropped (and counted), so a ledger that stays broken cannot eat the memory."""
        merged = rows + self.pending
        excess = len(merged) - MAX_PENDING
        if excess > 0:
            self.dropped += excess
            merged = merged[excess:]
        self.pending = merged

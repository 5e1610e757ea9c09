"""The one task that writes the usage ledger, off the request path.

A request only appends its row to :class:`~occ.observe.usage.UsageBatch` (memory). This task, started
in the app's serving nursery, takes the batch every ``usage.flush_interval_ms`` and writes it through
``trio.to_thread.run_sync``; the app's shutdown hook writes what is left (after hypercorn let the
requests in flight finish, so a SIGTERM loses none). A write that fails (file locked past the busy
timeout, disk full, folder not writable) puts the rows back and costs one warning per run of
failures, never a request.
"""

from __future__ import annotations

import sqlite3

import trio

from occ.observe.ledger import Ledger, ledger_path
from occ.observe.logs import get_logger
from occ.server.state import ServerState

__all__ = ["current_ledger", "flush_usage", "write_usage"]

log = get_logger("occ.usage")


def current_ledger(state: ServerState) -> Ledger | None:
    """The ledger of the current config (a reload may move or disable it), or None when off."""
    usage = state.config.usage
    return Ledger(ledger_path(usage.path)) if usage.enabled else None


async def flush_usage(state: ServerState) -> None:
    """Write the batch now. Never raises for a ledger problem; cancellation waits for the thread
    (a batch is all or nothing), so the rows are either written or put back."""
    batch = state.usage
    ledger = current_ledger(state)
    if ledger is None:
        batch.take()  # turned off by a reload: what was pending is not kept
        return
    rows = batch.take()
    if not rows:
        return
    try:
        await trio.to_thread.run_sync(ledger.append, [row.as_tuple() for row in rows])
    except (sqlite3.Error, OSError) as exc:
        batch.put_back(rows)
        if not state.usage_failing:
            log.warning("usage ledger %s: cannot write %d rows (%s); occ keeps them and retries, requests "
                        "are not affected", ledger.path, len(rows), exc)
        state.usage_failing = True
        return
    if state.usage_failing:
        state.usage_failing = False
        log.warning("usage ledger %s: writable again", ledger.path)
    if batch.dropped:
        log.warning("usage ledger %s: %d rows were dropped while it could not be written", ledger.path,
                    batch.dropped)
        batch.dropped = 0


async def write_usage(state: ServerState) -> None:
    """Run in the serving nursery until it is cancelled."""
    while True:
        await trio.sleep(state.config.usage.flush_interval_s)
        await flush_usage(state)

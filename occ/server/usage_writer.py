"""The one task that writes the usage ledger, off the request path.

A request only appends its row to :class:`~occ.observe.usage.UsageBatch` (memory). This task, started
in the app's serving nursery, takes the batch every ``usage.flush_interval_ms`` and writes it through
``trio.to_thread.run_sync``; the app's shutdown hook writes what is left (after hypercorn let the
requests in flight finish, so a SIGTERM loses none). A write that fails (file locked past the busy
timeout, disk full, folder not writable) puts the rows back and costs one warning per run of
failures, never a request.
"""

from __future__ import annotations

import contextlib

import trio

from occ.observe.ledger import Ledger, ledger_path
from occ.observe.logs import get_logger
from occ.observe.usage import UsageRow
from occ.server.ledger_health import LEDGER_PROBLEM, check_ledger, is_busy, ledger_problem, save_unwritten
from occ.server.state import ServerState

__all__ = ["current_ledger", "flush_usage", "flush_usage_on_shutdown", "write_usage"]

log = get_logger("occ.usage")


def current_ledger(state: ServerState) -> Ledger | None:
    """The ledger of the current config (a reload may move or disable it), or None when off."""
    usage = state.config.usage
    return Ledger(ledger_path(usage.path)) if usage.enabled else None


def _writer(state: ServerState) -> tuple[Ledger | None, Ledger | None]:
    """The ledger to write to now, and the previous one when a reload moved or disabled it (to be
    closed off the trio thread)."""
    wanted = current_ledger(state)
    kept = state.usage_ledger
    if wanted is None or kept is None or kept.path != wanted.path:
        state.usage_ledger = wanted
        return wanted, kept
    return kept, None


async def flush_usage(state: ServerState, *, closing: bool = False) -> Exception | None:
    """Write the batch now (one flush at a time); returns the write's error, if any. Never raises for
    a ledger problem; cancellation
    waits for the thread (a batch is all or nothing), so the rows are either written or put back.
    ``closing``: the server stops; the ledger's connection is closed after the last write."""
    async with state.usage_lock:
        batch = state.usage
        ledger, retired = _writer(state)
        if retired is not None:
            with contextlib.suppress(Exception):  # a file we no longer write to cannot stop occ either
                await trio.to_thread.run_sync(retired.close)
        if ledger is None:
            batch.take()  # turned off by a reload: what was pending is not kept
            state.problems.pop(LEDGER_PROBLEM, None)
            return None
        rows = batch.take()
        try:
            await trio.to_thread.run_sync(_append, ledger, rows, closing)
        except Exception as exc:  # sqlite3.Error, OSError; and anything else: the ledger never stops occ
            batch.put_back(rows)
            if not state.usage_failing:
                log.warning("usage ledger %s: cannot write %d rows (%s); occ keeps them and retries, requests "
                            "are not affected", ledger.path, len(rows), exc)
            state.usage_failing = True
            state.problems[LEDGER_PROBLEM] = ledger_problem(ledger.path, str(exc), len(batch.pending))
            return exc
    if rows and state.usage_failing:
        state.usage_failing = False
        log.warning("usage ledger %s: writable again", ledger.path)
    if rows:
        state.problems.pop(LEDGER_PROBLEM, None)
    if batch.dropped:
        log.warning("usage ledger %s: %d rows were dropped while it could not be written", ledger.path,
                    batch.dropped)
        batch.dropped = 0
    return None


def _append(ledger: Ledger, rows: list[UsageRow], closing: bool) -> None:
    try:
        ledger.append(rows)
    finally:
        if closing:
            ledger.close()


#: How long the server's shutdown keeps trying to write the last batch when the ledger is busy (another
#: process creating or migrating the same new file, a long reader): a few tries within this, then the
#: rows are given up with a warning rather than holding the shutdown.
SHUTDOWN_FLUSH_S = 5.0


async def flush_usage_on_shutdown(state: ServerState) -> None:
    """The last write, retried while the ledger is briefly busy: on SIGTERM every worker of
    ``--workers`` writes at the same moment, and for a new file they race to create it."""
    with trio.move_on_after(SHUTDOWN_FLUSH_S):
        delay = 0.05
        while True:
            error = await flush_usage(state, closing=True)
            if not state.usage.pending or not state.config.usage.enabled:
                return
            if error is not None and not is_busy(error):
                break  # a read-only file or folder will not change in the next seconds
            await trio.sleep(delay)
            delay = min(delay * 2, 1.0)
    await save_unwritten(state)


async def write_usage(state: ServerState) -> None:
    """Run in the serving nursery until it is cancelled: first ask whether the ledger can be written
    at all (so a read-only one shows before the first request is lost), then write every interval."""
    await check_ledger(state)
    checked = state.config.usage
    while True:
        await trio.sleep(state.config.usage.flush_interval_s)
        await flush_usage(state)
        if state.config.usage != checked or (LEDGER_PROBLEM in state.problems and not state.usage.pending):
            checked = state.config.usage  # a reload moved it, or nothing to write: the probe says
            await check_ledger(state)

"""A usage ledger that cannot be written is said, not hidden.

The writer (``usage_writer.py``) keeps rows it could not write in memory (at most
:data:`~occ.observe.usage.MAX_PENDING`) and retries them every flush. This module is what makes that
visible: the problem text ``/health`` (degraded), ``/status``'s notices, ``occ status`` and ``/ui``
show while it lasts, the start-up probe that finds a read-only ledger before the first request, and
the shutdown's last resort, which writes rows the ledger would still not take to a fallback file
named in the log instead of dropping them.
"""

from __future__ import annotations

import sqlite3

import trio

from occ.observe.ledger import COLUMNS, ledger_path
from occ.observe.ledger_fallback import unwritable_reason, write_fallback
from occ.observe.logs import get_logger
from occ.observe.usage import MAX_PENDING
from occ.server.state import ServerState

__all__ = ["FALLBACK_SAVE_S", "LEDGER_PROBLEM", "check_ledger", "is_busy", "ledger_problem", "save_unwritten"]

log = get_logger("occ.usage")

#: The key of :attr:`ServerState.problems` for the ledger.
LEDGER_PROBLEM = "usage_ledger"

#: How long the shutdown waits for the fallback file (a few KB, then one fsync: milliseconds on a disk
#: that answers). It bounds a file system that does not (a dead network mount, a stalled disk): the save
#: comes after the ledger's last write (``usage_writer.SHUTDOWN_FLUSH_S``, inside a ``--workers`` worker's
#: stop budget) and before the upstream close (``app.UPSTREAM_CLOSE_TIMEOUT_S``, 2 s); both fit in the
#: parent's ``STOP_MARGIN_S`` (5 s) with a second to spare, so a worker still exits by itself rather than
#: being killed, and a single ``occ serve`` exits instead of hanging on the file.
FALLBACK_SAVE_S = 2.0


def ledger_problem(path: str, reason: str, pending: int) -> str:
    return (f"usage ledger {path} cannot be written ({reason}): requests are served but not recorded; "
            f"{pending} rows wait in memory (at most {MAX_PENDING:,}) and are retried every flush, and at "
            "shutdown go to a fallback file named in the log")


def is_busy(exc: BaseException) -> bool:
    """A lock another writer holds (worth retrying within seconds), not a file that refuses writes."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


async def check_ledger(state: ServerState) -> bool:
    """Probe the current ledger without writing to it; record or clear the problem. Returns whether
    it can be written."""
    usage = state.config.usage
    if not usage.enabled:
        state.problems.pop(LEDGER_PROBLEM, None)
        return True
    path = ledger_path(usage.path)
    reason = await trio.to_thread.run_sync(unwritable_reason, path)
    if reason is None:
        if state.problems.pop(LEDGER_PROBLEM, None) is not None:
            log.warning("usage ledger %s: writable again", path)
        return True
    if LEDGER_PROBLEM not in state.problems:
        log.warning("usage ledger %s cannot be written (%s): occ serves requests but cannot record them; it "
                    "keeps up to %d rows in memory, retries them, and writes them to a fallback file at "
                    "shutdown", path, reason, MAX_PENDING)
    state.problems[LEDGER_PROBLEM] = ledger_problem(path, reason, len(state.usage.pending))
    return False


async def save_unwritten(state: ServerState) -> None:
    """At shutdown, after the last write failed: the pending rows go to a fallback file (named in the
    log), or, if no folder takes one, the log says how many were lost. At most :data:`FALLBACK_SAVE_S`:
    a write still blocked then is left to its thread (the process exits without waiting for it), and
    the log says the rows are probably lost."""
    rows = state.usage.take()
    if not rows:
        return
    path = ledger_path(state.config.usage.path)
    with trio.move_on_after(FALLBACK_SAVE_S) as saving:  # FALLBACK SAVE DEADLINE
        try:
            saved = await trio.to_thread.run_sync(write_fallback, path, COLUMNS, rows, abandon_on_cancel=True)
        except OSError as exc:
            log.error("usage ledger %s: %d rows could not be written before shutdown, nor to a fallback file "
                      "(%s); they are lost", path, len(rows), exc)
            return
    if saving.cancelled_caught:
        log.error("usage ledger %s: %d rows could not be written before shutdown, and their fallback file was "
                  "not written within %gs (a file system that does not answer?); occ exits without it, so they "
                  "are probably lost", path, len(rows), FALLBACK_SAVE_S)
        return
    log.warning("usage ledger %s: %d rows could not be written before shutdown; they are in %s (JSON lines, "
                "one row each; `occ usage` counts them)", path, len(rows), saved)

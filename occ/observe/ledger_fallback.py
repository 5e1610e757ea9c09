"""When the usage ledger cannot be written: find out without writing, and keep the rows elsewhere.

:func:`unwritable_reason` asks whether the ledger file could take a write *without* writing (a read-only
mount, a folder that is a file, a file another program made read-only): ``occ serve`` asks at start-up
so the problem shows before the first request is lost, ``occ usage`` asks so a ledger nobody can add
to is not presented as a quiet period. :func:`write_fallback` is the shutdown's last resort: rows the
ledger would not take go to a JSON-lines file (first line names the ledger), in the first folder
that takes it, and :func:`find_fallbacks` finds those files again for ``occ usage``. Blocking file I/O:
the server calls these through a thread.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["fallback_dirs", "find_fallbacks", "read_fallback", "unwritable_reason", "write_fallback"]

_PATTERN = "occ-usage-unwritten-*.jsonl"


def unwritable_reason(path: str) -> str | None:
    """Why ``path`` cannot be written as a ledger, or None when it can. Creates nothing that stays:
    an existing file gets a write transaction opened and rolled back; a missing one a temporary file
    in its nearest existing folder."""
    if os.path.exists(path):
        try:
            conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None  # another writer holds it now: writable, just not this second
            return str(exc)
        except (sqlite3.Error, OSError) as exc:
            return str(exc)
        return None
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if not os.path.isdir(folder):
        return f"{folder} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".occ-probe-", dir=folder)
    except OSError as exc:
        return f"cannot create files in {folder}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(probe)
    return None


def fallback_dirs(ledger_path: str) -> list[str]:
    """Where a fallback file may go, in order: next to the ledger, the XDG state folder, the temp folder."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    out = []
    for folder in (os.path.dirname(os.path.abspath(ledger_path)), os.path.join(state, "occ"), tempfile.gettempdir()):
        if folder not in out:
            out.append(folder)
    return out


def write_fallback(ledger_path: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Write ``rows`` (in ``columns`` order) to a new fallback file; returns its path.

    The file appears whole or not at all: it is written under a hidden temporary name in the same
    folder (``.occ-usage-unwritten-*.jsonl.tmp``, which :func:`find_fallbacks` does not look for),
    fsynced, then renamed to its final name, so a writer killed mid-write, or abandoned by the
    shutdown's deadline, never leaves a file ``occ usage`` would read with a row cut in two or a
    header that counts rows it does not hold. The final name is the temporary one without the dot
    and ``.tmp``, and ``mkstemp`` makes that unique, so two writers (two apps in one process) never
    replace each other's file, nor an older one.

    Raises:
        OSError: no folder of :func:`fallback_dirs` would take it (the error of the last one).
    """
    stem = f"occ-usage-unwritten-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-"
    header = json.dumps({"ledger": os.path.abspath(ledger_path), "rows": len(rows), "written_at": time.time()})
    error: OSError | None = None
    for folder in fallback_dirs(ledger_path):
        try:
            os.makedirs(folder, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix="." + stem, suffix=".jsonl.tmp", dir=folder)
        except OSError as exc:
            error = exc
            continue
        target = os.path.join(folder, os.path.basename(temporary)[1:-len(".tmp")])
        try:
            with open(fd, "w", encoding="utf-8") as f:
                f.write(header + "\n")
                for row in rows:
                    f.write(json.dumps(dict(zip(columns, row, strict=True))) + "\n")
                f.flush()
                os.fsync(f.fileno())
            if os.path.exists(target):  # only an older file of a process with this pid, this second
                raise FileExistsError(errno.EEXIST, "a fallback file of that name exists", target)
            os.replace(temporary, target)
        except OSError as exc:  # the folder took the file but not its rows (disk full): the next folder
            error = exc
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            continue
        _sync_folder(folder)
        return target
    assert error is not None
    raise error


def _sync_folder(folder: str) -> None:
    """Make the rename itself durable (best effort: a folder cannot be opened on every platform)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def find_fallbacks(ledger_path: str) -> list[tuple[str, int]]:
    """The fallback files written for this ledger, with their row counts, oldest first."""
    wanted = os.path.abspath(ledger_path)
    found = []
    for folder in fallback_dirs(ledger_path):
        for path in sorted(glob.glob(os.path.join(folder, _PATTERN))):
            try:
                with open(path, encoding="utf-8") as f:
                    header = json.loads(f.readline())
            except (OSError, ValueError):
                continue
            if isinstance(header, dict) and header.get("ledger") == wanted:
                found.append((path, int(header.get("rows") or 0)))
    return found


def read_fallback(paths: Sequence[str], by: str, since: float) -> list[dict[str, Any]]:
    """The rows of fallback files summed like :meth:`~occ.observe.ledger.Ledger.summary` (through an
    in-memory copy of the ledger's schema, so the sums are computed the same way)."""
    from occ.observe.ledger import COLUMNS, Ledger

    with tempfile.TemporaryDirectory(prefix="occ-usage-") as folder:
        ledger = Ledger(os.path.join(folder, "fallback.sqlite"))
        rows = []
        for path in paths:
            with open(path, encoding="utf-8") as f:
                f.readline()
                for line in f:
                    if line.strip():
                        data = json.loads(line)
                        rows.append(tuple(data.get(c) for c in COLUMNS))
        ledger.append(rows)
        ledger.close()
        return ledger.summary(by, since)

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

import attrs

from occ.core.errors import OccError

__all__ = ["FallbackRead", "NotAFallbackFile", "fallback_dirs", "find_fallbacks", "load_fallback", "read_fallback",
           "unwritable_reason", "write_fallback"]

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


def find_fallbacks(ledger_path: str) -> list[str]:
    """The fallback files that may be this ledger's, oldest first: those whose header names it, and
    those with no header to tell (an empty file, a file that is not a fallback file), which
    :func:`read_fallback` reports instead of skipping in silence (if this user owns them). Another
    ledger's files are not its."""
    wanted = os.path.abspath(ledger_path)
    found = []
    for folder in fallback_dirs(ledger_path):
        for path in sorted(glob.glob(os.path.join(folder, _PATTERN))):
            try:
                with open(path, "rb") as f:
                    header = json.loads(f.readline())
            except OSError:
                continue  # gone since the listing (or unreadable: then it is not this user's)
            except ValueError:
                header = None
            owner = header.get("ledger") if isinstance(header, dict) else None
            if owner == wanted or (not isinstance(owner, str) and _mine(path)):
                found.append(path)
    return found


def _mine(path: str) -> bool:
    """Whether this user owns ``path``: a headerless file another user left in a shared temp folder is
    theirs to mend, not a problem of this user's ledger."""
    getuid = getattr(os, "getuid", None)
    try:
        return getuid is None or os.stat(path).st_uid == getuid()
    except OSError:
        return False


class NotAFallbackFile(OccError):
    """A file named like a fallback file that ``occ usage`` cannot count: not one at all, or one
    damaged in a way no stopped writer explains. The message names the file and the line."""


@attrs.frozen
class FallbackRead:
    """What :func:`read_fallback` found: ``summary`` like :meth:`~occ.observe.ledger.Ledger.summary`,
    the number of rows counted and the files they came from, one warning per damaged file it still
    counted, and one error per file it refused (whose rows are not in the summary). No message quotes
    a row: rows name clients."""

    summary: list[dict[str, Any]]
    counted: int
    files: list[str]
    warnings: list[str]
    refused: list[str]


def read_fallback(paths: Sequence[str], by: str, since: float) -> FallbackRead:
    """The rows of fallback files summed like :meth:`~occ.observe.ledger.Ledger.summary` (through an
    in-memory copy of the ledger's schema, so the sums are computed the same way), each file read by
    :func:`load_fallback`."""
    from occ.observe.ledger import Ledger

    rows: list[tuple[Any, ...]] = []
    warnings: list[str] = []
    refused: list[str] = []
    files: list[str] = []
    for path in paths:
        try:
            got, warning = load_fallback(path)
        except NotAFallbackFile as exc:
            refused.append(str(exc))
            continue
        except OSError as exc:
            refused.append(f"fallback file {path} cannot be read ({exc.strerror or exc}); its rows are not counted")
            continue
        rows.extend(got)
        if got:
            files.append(path)
        if warning is not None:
            warnings.append(warning)
    with tempfile.TemporaryDirectory(prefix="occ-usage-") as folder:
        ledger = Ledger(os.path.join(folder, "fallback.sqlite"))
        ledger.append(rows)
        ledger.close()
        return FallbackRead(ledger.summary(by, since), len(rows), files, warnings, refused)


def load_fallback(path: str) -> tuple[list[tuple[Any, ...]], str | None]:
    """The rows of one fallback file (in :data:`~occ.observe.ledger.COLUMNS` order), and a warning
    when it is damaged the way a stopped writer leaves a file.

    occ writes a fallback file in one pass, header first, one whole JSON line per row, so a writer
    killed mid-write (an occ before the temporary file and rename of :func:`write_fallback`) can only
    cut the file's *end*: an empty file, or a last line that is not JSON. That line is skipped, with a
    warning naming the file and the line, and every whole row before it is counted. Any other damage
    (a line in the middle that is not a row, with whole rows after it; a last line that is JSON but
    not a row) is not something a stop does: the file was changed by something else, and a report of
    money should not guess which of its rows are still true, so the file is refused with an error
    naming the line, and left as it is to be mended or removed. A header's row count that the whole
    rows do not reach (a cut at a line's end) is said in the warning.

    Raises:
        NotAFallbackFile: see above.
        OSError: the file cannot be read.
    """
    from occ.observe.ledger import COLUMNS

    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return [], f"fallback file {path} is empty (a server stopped before writing it?); nothing to count"
    last = len(lines)
    parsed: list[Any] = []
    cut: int | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            parsed.append(None)
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:  # not JSON, or not UTF-8
            if number == last:
                cut = number
                break
            what = "header" if number == 1 else "usage row"
            raise NotAFallbackFile(f"fallback file {path} is not one occ can count: line {number} is not a "
                                   f"{what} (JSON); its rows are not counted (mend or remove the file)") from None
    header = parsed[0] if parsed else None
    if cut == 1:
        return [], (f"fallback file {path}: line 1, its header, is cut short (a server stopped while writing "
                    "it?); skipped, nothing to count")
    if not isinstance(header, dict) or not isinstance(header.get("ledger"), str):
        raise NotAFallbackFile(f"fallback file {path} is not one occ can count: line 1 is not a fallback header "
                               "(a JSON object naming its ledger); its rows are not counted (mend or remove the file)")
    rows = []
    for number, data in enumerate(parsed[1:], 2):
        if data is None:
            continue
        problem = _row_problem(data)
        if problem is not None:
            raise NotAFallbackFile(f"fallback file {path} is not one occ can count: line {number} is not a usage "
                                   f"row ({problem}); its rows are not counted (mend or remove the file)")
        rows.append(tuple(data.get(c) for c in COLUMNS))
    named = header.get("rows")
    short = isinstance(named, int) and not isinstance(named, bool) and named > len(rows)
    of = f" of the {named} its header names" if short else ""
    if cut is not None:
        return rows, (f"fallback file {path}: line {cut}, the last, is cut short (a server stopped while writing "
                      f"it?); skipped it and counted the {len(rows)} whole rows before it{of}")
    if short:
        return rows, (f"fallback file {path} holds {len(rows)} whole rows{of} (a server stopped while writing "
                      "it?); counted those")
    return rows, None


#: The JSON types a row's values may have (null is always allowed: unknown); ``ts``, ``request_id``
#: and ``outcome`` must be there, as the ledger's NOT NULL columns.
_NUMBER = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "ts": _NUMBER, "request_id": (str,), "client": (str,), "scenario": (str,), "model": (str,), "wire": (str,),
    "stream": (bool, int), "outcome": (str,), "status": (int,), "latency_ms": _NUMBER, "ttft_ms": _NUMBER,
    "input_tokens": (int,), "output_tokens": (int,), "cache_read_tokens": (int,), "cache_write_tokens": (int,),
    "usage_estimated": (bool, int), "cost_usd": _NUMBER, "attempts": (str,),
}
_REQUIRED = ("ts", "request_id", "outcome")


def _row_problem(data: Any) -> str | None:
    """Why ``data`` is not a usage row, naming the column but never its value; None when it is one."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for column in _REQUIRED:
        if data.get(column) is None:
            return f"no {column}"
    for column, types in _TYPES.items():
        value = data.get(column)
        if value is None:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{column} has the wrong type"
    return None

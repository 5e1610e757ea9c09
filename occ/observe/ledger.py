"""The usage ledger file: one SQLite row per finished request, kept across restarts.

Plain blocking ``sqlite3``: the server calls :meth:`Ledger.append` through ``trio.to_thread``, off
the request path, and ``occ usage`` calls the readers directly, whether or not a server runs. Each
call opens its own connection and closes it again, so a call may run in any thread and no
connection outlives a thread.

Several processes may write one file (``occ serve --workers N``, or two occ instances): the file is
in WAL mode, so readers never block the writer; each batch is one short ``BEGIN IMMEDIATE``
transaction; and a writer that finds the file locked waits up to :data:`BUSY_TIMEOUT_S` before the
caller gets :class:`sqlite3.OperationalError` (the server keeps the batch and warns).

The schema carries its version in ``PRAGMA user_version``. :data:`MIGRATIONS` holds one step per
version; opening a file runs the steps it has not had yet, inside one write transaction, so two
processes opening an old file at once migrate it once. A file from a newer occ is left alone.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["BUSY_TIMEOUT_S", "COLUMNS", "GROUPS", "MIGRATIONS", "SCHEMA_VERSION", "Ledger", "LedgerTooNew",
           "default_ledger_path", "ledger_path", "migrate"]

#: How long a writer waits for another process's transaction before giving up on this batch.
BUSY_TIMEOUT_S = 5.0

#: Column order of a row (``UsageRow.as_tuple()`` gives values in this order).
COLUMNS = (
    "ts", "request_id", "client", "scenario", "model", "wire", "stream", "outcome", "status", "latency_ms",
    "ttft_ms", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "usage_estimated",
    "cost_usd", "attempts",
)

#: Step ``n`` takes a file from version ``n`` to ``n + 1``.
MIGRATIONS: tuple[str, ...] = (
    # 1: the table. ts is unix time (UTC) when the request finished; a NULL token count or cost
    # means unknown (no usage came back, no price is configured), never zero.
    """
    CREATE TABLE requests (
        ts REAL NOT NULL,
        request_id TEXT NOT NULL,
        client TEXT,
        scenario TEXT,
        model TEXT,
        wire TEXT,
        stream INTEGER,
        outcome TEXT NOT NULL,
        status INTEGER,
        latency_ms REAL,
        ttft_ms REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cache_read_tokens INTEGER,
        cache_write_tokens INTEGER,
        usage_estimated INTEGER,
        cost_usd REAL
    )
    """,
    # 2: every read is a time range (--since, today, the last 24 h): read an index, not the table.
    "CREATE INDEX requests_by_ts ON requests (ts)",
    # 3: every attempt of the request, as JSON ([{"model", "protocol", "outcome", "ms"}], in order): a
    # failed, timed-out or cancelled request says which models it reached and how each attempt ended.
    "ALTER TABLE requests ADD COLUMN attempts TEXT",
)
SCHEMA_VERSION = len(MIGRATIONS)

#: ``occ usage --by`` groupings and the SQL expression of each (``day`` in local time).
GROUPS: Mapping[str, str] = {
    "model": "model",
    "scenario": "scenario",
    "client": "client",
    "day": "date(ts, 'unixepoch', 'localtime')",
}


class LedgerTooNew(sqlite3.DatabaseError):
    """The file was written by a newer occ (a higher schema version): not touched."""


def default_ledger_path(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_DATA_HOME/occ/usage.sqlite``, else ``~/.local/share/occ/usage.sqlite`` (the XDG base
    directory spec ignores a relative ``XDG_DATA_HOME``)."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "occ", "usage.sqlite")


def ledger_path(configured: str | None, env: Mapping[str, str] | None = None) -> str:
    """The file for ``usage.path`` (None: the XDG default)."""
    return os.path.expanduser(configured) if configured else default_ledger_path(env)


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the file to version ``target`` (tests stop early to make an old file); returns the
    version found.

    Raises:
        LedgerTooNew: the file's version is above what this occ knows.
    """
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found == target:
        return found
    if found > SCHEMA_VERSION:
        raise LedgerTooNew(f"the usage ledger has schema version {found}; this occ knows up to "
                           f"{SCHEMA_VERSION} (upgrade occ, or set usage.path to another file)")
    conn.execute("PRAGMA journal_mode=WAL")  # kept by the file; outside a transaction by rule
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
        for step in range(current, target):
            conn.execute(MIGRATIONS[step])
        if current < target:
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


class Ledger:
    """One ledger file. Writes go through one kept connection (opening, migrating and closing a
    connection per batch cost more than the batch, and closing the last connection of a WAL file
    checkpoints it); reads open their own. The server calls :meth:`append` from one flush at a time
    (in whichever worker thread trio picks, hence ``check_same_thread=False``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._writer_identity: tuple[int, int] | None = None

    def _identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_dev, info.st_ino)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        return conn

    def open(self, target: int = SCHEMA_VERSION) -> None:
        """Create or migrate the file (its folder too)."""
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        conn = self._connect()
        try:
            migrate(conn, target)
        finally:
            conn.close()

    def append(self, rows: Sequence[Sequence[Any]]) -> None:
        """Write rows (in :data:`COLUMNS` order) in one short transaction: all or none.

        Raises:
            sqlite3.Error, OSError: the file is locked past the busy timeout, the disk is full, the
                folder cannot be created; the caller keeps the rows (and the connection is dropped,
                so the next call starts afresh, migrating a file that was replaced meanwhile).
        """
        if not rows:
            return
        if self._writer is not None and self._identity() != self._writer_identity:
            self.close()  # the file was deleted or replaced: write to the one at the path now
        try:
            conn = self._writer
            if conn is None:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                conn = self._connect()
                self._writer = conn
                migrate(conn)
                self._writer_identity = self._identity()
                # WAL with NORMAL: a crash loses at most the last batches, never corrupts the file
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                _insert(conn, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        conn, self._writer = self._writer, None
        if conn is not None:
            conn.close()

    # -- reading ------------------------------------------------------------------------------

    def _read(self, sql: str, params: Iterable[Any]) -> list[sqlite3.Row]:
        if not os.path.exists(self.path):
            return []  # reading never creates a ledger
        conn = self._connect()
        conn.row_factory = sqlite3.Row
        try:
            tables = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'")
            if tables.fetchone() is None:
                return []
            return list(conn.execute(sql, tuple(params)))
        finally:
            conn.close()

    def summary(self, by: str, since: float, until: float | None = None) -> list[dict[str, Any]]:
        """Sums per ``by`` group (see :data:`GROUPS`) of the rows finished in ``[since, until)``.

        ``cost_usd`` is None when no row of the group has a price; ``unpriced_requests`` says how
        many rows of the group cost is missing from.
        """
        key = GROUPS[by]
        rows = self._read(
            f"""SELECT {key} AS key, COUNT(*) AS requests,
                       COALESCE(SUM(input_tokens), 0) AS input_tokens,
                       COALESCE(SUM(output_tokens), 0) AS output_tokens,
                       COALESCE(SUM(cache_read_tokens), 0) AS cache_read_tokens,
                       COALESCE(SUM(cache_write_tokens), 0) AS cache_write_tokens,
                       COALESCE(SUM(usage_estimated), 0) AS estimated_requests,
                       SUM(cost_usd) AS cost_usd,
                       COUNT(*) - COUNT(cost_usd) AS unpriced_requests
                FROM requests WHERE ts >= ? AND ts < ? GROUP BY key ORDER BY key""",
            (since, time.time() + 86400 if until is None else until))
        out = []
        for row in rows:
            entry = {by: row["key"]}
            entry.update({name: row[name] for name in row.keys() if name != "key"})
            out.append(entry)
        return out

    def totals(self, since: float) -> dict[str, Any]:
        """One sum over every row finished since ``since``."""
        rows = self.summary("day", since)
        total: dict[str, Any] = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
                                 "cache_write_tokens": 0, "estimated_requests": 0, "cost_usd": None,
                                 "unpriced_requests": 0}
        for row in rows:
            for name in total:
                if name == "cost_usd":
                    if row[name] is not None:
                        total[name] = (total[name] or 0.0) + row[name]
                else:
                    total[name] += row[name]
        return total

    def count(self) -> int:
        rows = self._read("SELECT COUNT(*) AS n FROM requests", ())
        return rows[0]["n"] if rows else 0


#: The sizes of the INSERT statements a batch is cut into, largest first. With sqlite3's ``executemany`` each
#: row was a statement step of its own, and each step gives the GIL up and takes it back; under load the
#: server's thread holds it, so every row cost a hand-over between the two threads (measured: 11-16 us a
#: row in the server, 4.5 us alone). A few fixed sizes, not one statement of each batch's length: sqlite3
#: keeps each distinct statement compiled in its cache (128 of them), and a statement of n rows is a
#: program n rows long, so lengths that vary with every batch would keep ~128 large programs alive. With
#: these, a batch of 1,000 rows is ten statements, and the cache holds five, whatever the batches.
_INSERT_SIZES = (256, 64, 16, 4, 1)


def _insert(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows``, in order, in statements of :data:`_INSERT_SIZES` rows (within the connection's
    variable limit: 999 before SQLite 3.32)."""
    width = len(COLUMNS)
    try:
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except (AttributeError, sqlite3.Error):  # pragma: no cover - Python 3.11 and later have getlimit
        limit = 999
    for row in rows:  # flattened, a row of another length would shift every value after it into the wrong column
        if len(row) != width:
            raise sqlite3.ProgrammingError(f"a ledger row has {len(row)} values, the ledger {width} columns")
    one = f"({', '.join('?' * width)})"
    head = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES "
    start = 0
    for size in _INSERT_SIZES:
        if size * width > limit and size > 1:
            continue
        sql = head + ", ".join([one] * size)
        while len(rows) - start >= size:
            chunk = rows[start:start + size]
            conn.execute(sql, [value for row in chunk for value in row])
            start += size
    assert start == len(rows), "_INSERT_SIZES ends with 1: every row is in a statement"

"""The usage ledger file: sums, NULL-is-unknown, schema migrations, and several writers at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest
from support.stack import ROOT

from occ.config.model import Price
from occ.observe import ledger as ledger_module
from occ.observe.access_log import RequestLog
from occ.observe.ledger import COLUMNS, MIGRATIONS, SCHEMA_VERSION, Ledger, LedgerTooNew, default_ledger_path
from occ.observe.usage import MAX_PENDING, UsageBatch, UsageRow, usage_row


def row(**over) -> UsageRow:
    values = dict(ts=time.time(), request_id="req_1", client="key#0", scenario="default", model="p/m", wire="openai",
                  stream=True, outcome="ok", status=200, latency_ms=12.5, ttft_ms=3.0, input_tokens=100,
                  output_tokens=20, cache_read_tokens=5, cache_write_tokens=0, usage_estimated=False,
                  cost_usd=0.001, attempts='[{"model":"p/m","protocol":"openai","outcome":"ok","ms":12.0}]')
    values.update(over)
    return UsageRow(**values)


def test_default_path_follows_xdg():
    """$XDG_DATA_HOME when absolute, else ~/.local/share (the spec ignores a relative one)."""
    assert "/x/occ/usage.sqlite" == default_ledger_path({"XDG_DATA_HOME": "/x"})
    home = os.path.expanduser("~")
    assert os.path.join(home, ".local/share/occ/usage.sqlite") == default_ledger_path({"XDG_DATA_HOME": "rel"})
    assert os.path.join(home, ".local/share/occ/usage.sqlite") == default_ledger_path({})


def test_summary_sums_groups_and_keeps_unknown_cost_apart(tmp_path):
    """Sums per model; a group with no priced row costs None, not 0; a price of 0 costs 0."""
    ledger = Ledger(str(tmp_path / "sub" / "usage.sqlite"))
    ledger.append([
        row(request_id="a", model="p/m", input_tokens=100, output_tokens=10, cost_usd=0.5),
        row(request_id="b", model="p/m", input_tokens=50, output_tokens=5, usage_estimated=True,
            cost_usd=0.25),
        row(request_id="c", model="p/free", cost_usd=0.0),
        row(request_id="d", model="p/unpriced", cost_usd=None),
        row(request_id="e", model=None, outcome="error", input_tokens=None, output_tokens=None,
            cache_read_tokens=None, cache_write_tokens=None, usage_estimated=None, cost_usd=None),
    ])
    by_model = {r["model"]: r for r in ledger.summary("model", 0)}
    assert {None, "p/m", "p/free", "p/unpriced"} == set(by_model)
    m = by_model["p/m"]
    assert (2, 150, 15, 10, 1, 0.75) == (m["requests"], m["input_tokens"], m["output_tokens"],
                                        m["cache_read_tokens"], m["estimated_requests"], m["cost_usd"])
    assert 0.0 == by_model["p/free"]["cost_usd"]
    assert by_model["p/unpriced"]["cost_usd"] is None
    assert 1 == by_model["p/unpriced"]["unpriced_requests"]
    assert 0 == by_model[None]["input_tokens"]
    total = ledger.totals(0)
    assert (5, 150 + 100 + 100, 0.75) == (total["requests"], total["input_tokens"], total["cost_usd"])


def test_since_and_day_grouping(tmp_path):
    ledger = Ledger(str(tmp_path / "usage.sqlite"))
    now = time.time()
    ledger.append([row(request_id="old", ts=now - 3 * 86400), row(request_id="new", ts=now)])
    assert 1 == sum(r["requests"] for r in ledger.summary("model", now - 86400))
    days = ledger.summary("day", 0)
    expected = sorted({time.strftime("%Y-%m-%d", time.localtime(t)) for t in (now - 3 * 86400, now)})
    assert expected == [r["day"] for r in days]
    assert ["key#0"] == [r["client"] for r in ledger.summary("client", 0)]


def test_reading_a_missing_ledger_creates_nothing(tmp_path):
    path = tmp_path / "none.sqlite"
    assert [] == Ledger(str(path)).summary("model", 0)
    assert not path.exists()


def test_new_file_is_wal_with_the_current_version(tmp_path):
    path = str(tmp_path / "usage.sqlite")
    Ledger(path).append([row()])
    conn = sqlite3.connect(path)
    try:
        assert "wal" == conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert SCHEMA_VERSION == conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_a_version_1_file_is_migrated_and_keeps_its_rows(tmp_path):
    """A file made by the first schema (no index) opens with the current code: rows kept, index added."""
    assert SCHEMA_VERSION >= 2
    path = str(tmp_path / "usage.sqlite")
    Ledger(path).open(target=1)
    conn = sqlite3.connect(path)
    v1 = COLUMNS[:COLUMNS.index("cost_usd") + 1]  # the first schema's columns
    conn.execute(f"INSERT INTO requests ({', '.join(v1)}) VALUES ({', '.join('?' * len(v1))})",
                 row(request_id="from-v1")[:len(v1)])
    conn.commit()
    assert 1 == conn.execute("PRAGMA user_version").fetchone()[0]
    assert [] == conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    conn.close()

    Ledger(path).append([row(request_id="from-v2")])

    conn = sqlite3.connect(path)
    try:
        assert SCHEMA_VERSION == conn.execute("PRAGMA user_version").fetchone()[0]
        assert [("requests_by_ts",)] == conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        assert ["from-v1", "from-v2"] == [r[0] for r in conn.execute("SELECT request_id FROM requests ORDER BY rowid")]
        assert [None, row(request_id="x").attempts] == [r[0] for r in conn.execute(
            "SELECT attempts FROM requests ORDER BY rowid")]  # version 3 added the attempts, NULL in old rows
    finally:
        conn.close()
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_a_file_from_a_newer_occ_is_not_touched(tmp_path):
    path = str(tmp_path / "usage.sqlite")
    Ledger(path).append([row()])
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerTooNew, match="upgrade occ"):
        Ledger(path).append([row()])
    assert 1 == Ledger(path).count()  # still readable


#: A writer as the server is one: a batch whose write fails (locked past the busy timeout on a
#: loaded machine) is kept and written again, and the failure is reported on stderr.
_WRITER = """
import sqlite3, sys, time
from occ.observe.ledger import Ledger
path, name, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
ledger = Ledger(path)
for b in range(batches):
    rows = [(time.time(), f"{name}-{b}-{i}", name, "default", "p/m", "openai", 1, "ok", 200, 1.0, None,
             10, 2, 0, 0, 0, None, None) for i in range(5)]
    for attempt in range(20):
        try:
            ledger.append(rows)
            break
        except sqlite3.Error as exc:
            print(f"retrying batch {b}: {exc!r}", file=sys.stderr)
            time.sleep(0.05)
    else:
        sys.exit(f"batch {b} never written")
"""


def test_two_processes_write_one_ledger_without_losing_a_row(tmp_path):
    """Two processes appending batches at the same time, on a fresh file (both may try to create it)."""
    path = str(tmp_path / "usage.sqlite")
    env = {**os.environ, "PYTHONPATH": ROOT}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, path, name, "60"], env=env, stderr=subprocess.PIPE,
                              text=True) for name in ("a", "b")]
    for proc in procs:
        _, errors = proc.communicate(timeout=120)
        assert 0 == proc.returncode, errors
        if errors:
            print(errors)  # retried batches: shown with -s, not a failure (the server retries too)
    ledger = Ledger(path)
    assert 600 == ledger.count()
    assert {"a": 300, "b": 300} == {r["client"]: r["requests"] for r in ledger.summary("client", 0)}


# -- rows and the batch ---------------------------------------------------------------------------


def _record(**over) -> RequestLog:
    record = RequestLog(request_id="req_x", started=time.monotonic() - 0.25, client="key#1", scenario="think",
                        stream=False, model="p/m", status=200,
                        usage={"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 3000,
                               "cache_creation_input_tokens": 400})
    for key, value in over.items():
        setattr(record, key, value)
    return record


def test_usage_row_costs_by_the_models_price():
    price = Price(input=1.0, output=4.0, cache_read=0.1, cache_write=1.25)
    r = usage_row(_record(), {"p/m": price}, now=123.0)
    assert (123.0, "key#1", "think", "ok", 1000, 200, 3000, 400, False) == (
        r.ts, r.client, r.scenario, r.outcome, r.input_tokens, r.output_tokens, r.cache_read_tokens,
        r.cache_write_tokens, r.usage_estimated)
    assert (1000 * 1.0 + 200 * 4.0 + 3000 * 0.1 + 400 * 1.25) / 1e6 == pytest.approx(r.cost_usd)
    assert r.latency_ms >= 250


def test_no_price_is_no_cost_and_a_zero_price_is_zero():
    assert usage_row(_record(), {}).cost_usd is None
    assert 0.0 == usage_row(_record(), {"p/m": Price(0, 0, 0, 0)}).cost_usd


def test_a_request_without_usage_has_unknown_tokens():
    r = usage_row(_record(usage=None, error=None, client_cancelled=True), {"p/m": Price(1, 1, 1, 1)})
    assert ("client_cancelled", None, None, None) == (r.outcome, r.input_tokens, r.usage_estimated, r.cost_usd)
    assert usage_row(_record(usage_estimated=True), {}).usage_estimated is True


def test_batch_keeps_failed_rows_first_and_caps_them():
    batch = UsageBatch()
    batch.add(row(request_id="1"))
    batch.add(row(request_id="off"), keep=False)  # the ledger is off: /ui still sees it
    taken = batch.take()
    batch.add(row(request_id="2"))
    batch.put_back(taken)
    assert ["1", "2"] == [r.request_id for r in batch.pending]
    assert ["1", "off", "2"] == [r.request_id for r in batch.recent]
    batch.put_back([row(request_id=str(i)) for i in range(MAX_PENDING)])
    assert MAX_PENDING == len(batch.pending)
    assert 2 == batch.dropped


def test_a_row_is_the_ledgers_columns_in_order():
    assert COLUMNS == UsageRow._fields


def test_a_ledger_deleted_while_open_is_created_again(tmp_path):
    """The writer keeps its connection; a file removed under it must not swallow later rows."""
    path = tmp_path / "usage.sqlite"
    ledger = Ledger(str(path))
    ledger.append([row(request_id="before")])
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    ledger.append([row(request_id="after")])
    ledger.close()
    assert 1 == Ledger(str(path)).count()


def test_a_batch_larger_than_one_statement_is_written_whole_and_in_order(tmp_path, monkeypatch):
    """Rows go in several rows a statement (fewer GIL hand-overs than one statement step a row); a batch
    that needs several statements is all there, in order, each value as given."""
    monkeypatch.setattr(ledger_module, "_INSERT_SIZES", (3, 2, 1))
    ledger = Ledger(str(tmp_path / "usage.sqlite"))
    rows = [row(request_id=f"r{i}", latency_ms=float(i), ttft_ms=None if i % 2 else 1.5) for i in range(10)]
    ledger.append(rows)
    with sqlite3.connect(ledger.path) as conn:
        stored = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM requests ORDER BY rowid").fetchall()
    assert [tuple(r) for r in stored] == [(*r[:6], int(r.stream), *r[7:15], int(r.usage_estimated), *r[16:])
                                          for r in rows]


def test_a_batch_is_few_statements_and_all_or_none(tmp_path):
    """1,000 rows are a handful of INSERT statements, not 1,000, of a few lengths only (each distinct one is a
    compiled program in sqlite3's cache); a row that cannot be written (a NOT NULL column empty) in a later
    statement leaves none of its batch."""
    ledger = Ledger(str(tmp_path / "usage.sqlite"))
    ledger.append([row(request_id="first")])
    statements: list[str] = []
    assert ledger._writer is not None
    ledger._writer.set_trace_callback(statements.append)
    ledger.append([row(request_id=f"r{i}") for i in range(1000)])
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert 1 <= len(inserts) <= 12
    for count in (1, 7, 333, 1000, 1999):
        ledger.append([row(request_id=f"n{count}-{i}") for i in range(count)])
    # the traced SQL has the values filled in: row() has no "(" in any value, so "(" counts the rows
    assert not any("(" in str(value) for value in row())
    lengths = {s.count("(") for s in statements if s.startswith("INSERT")}
    assert len(lengths) <= 5
    bad = [row(request_id=f"b{i}") for i in range(1200)] + [row(request_id="bad", outcome=None)]
    with pytest.raises(sqlite3.IntegrityError):
        ledger.append(bad)
    with sqlite3.connect(ledger.path) as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 1001 + 1 + 7 + 333 + 1000 + 1999


def test_statements_stay_within_an_old_sqlite_s_variable_limit(tmp_path):
    """SQLite before 3.32 allows 999 variables a statement: a batch then goes in statements that fit."""
    ledger = Ledger(str(tmp_path / "usage.sqlite"))
    ledger.append([row(request_id="first")])
    assert ledger._writer is not None
    ledger._writer.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    statements: list[str] = []
    ledger._writer.set_trace_callback(statements.append)
    ledger.append([row(request_id=f"r{i}") for i in range(300)])
    rows_per = [s.count("(") - 1 for s in statements if s.startswith("INSERT")]  # no "(" in row()'s values
    assert sum(rows_per) == 300 and max(rows_per) * len(COLUMNS) <= 999


def test_a_row_of_another_length_is_refused_not_shifted_into_other_columns(tmp_path):
    """The rows go in as one flat list of values a statement: a short row is an error (as executemany's
    was), never its neighbours' values moved one column over."""
    ledger = Ledger(str(tmp_path / "usage.sqlite"))
    with pytest.raises(sqlite3.ProgrammingError, match="17 values"):
        ledger.append([row(request_id="a"), tuple(row(request_id="short"))[:-1], row(request_id="c")])
    assert ledger.totals(0)["requests"] == 0

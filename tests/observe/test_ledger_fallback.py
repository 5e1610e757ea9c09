"""A ledger that cannot be written: found out without writing, and its rows kept in a fallback file
that ``occ usage`` reads back with the same sums as the ledger would give."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
from support.stack import ROOT
from test_ledger import row

from occ.cli.usage import merge_summaries
from occ.observe.ledger import COLUMNS, Ledger
from occ.observe.ledger_fallback import find_fallbacks, read_fallback, unwritable_reason, write_fallback


def test_a_writable_place_is_said_so_and_nothing_is_left_behind(tmp_path):
    assert unwritable_reason(str(tmp_path / "new" / "deeper" / "usage.sqlite")) is None
    assert [] == os.listdir(tmp_path)  # the probe created nothing that stays
    ledger = Ledger(str(tmp_path / "usage.sqlite"))
    ledger.append([row()])
    ledger.close()
    assert unwritable_reason(ledger.path) is None
    assert 1 == ledger.count()


def test_a_folder_that_is_a_file_cannot_take_a_ledger(tmp_path):
    (tmp_path / "file").write_text("x")
    reason = unwritable_reason(str(tmp_path / "file" / "usage.sqlite"))
    assert reason is not None and "is not a folder" in reason


def test_a_file_that_is_not_a_database_cannot_be_written(tmp_path):
    path = tmp_path / "usage.sqlite"
    path.write_text("not sqlite at all, but long enough to be read as a header " * 4)
    assert unwritable_reason(str(path)) is not None


def test_fallback_rows_come_back_with_the_ledgers_sums(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    ledger_path = str(tmp_path / "ro" / "usage.sqlite")
    (tmp_path / "ro").write_text("a file where the folder should be: nothing can be written there")
    rows = [row(request_id=f"r{i}", input_tokens=10 * i, cost_usd=None if i == 0 else 0.5) for i in range(3)]
    saved = write_fallback(ledger_path, COLUMNS, rows)
    assert saved.startswith(str(tmp_path / "state" / "occ"))  # the ledger's folder would not take it
    header, *lines = open(saved, encoding="utf-8").read().splitlines()
    assert json.loads(header)["rows"] == 3 and len(lines) == 3
    assert [(saved, 3)] == find_fallbacks(ledger_path)
    assert [] == find_fallbacks(str(tmp_path / "other.sqlite"))  # another ledger's files are not its
    [summed] = read_fallback([saved], "model", time.time() - 3600)
    assert (summed["requests"], summed["input_tokens"], summed["cost_usd"], summed["unpriced_requests"]) == \
        (3, 30, 1.0, 1)
    real = Ledger(str(tmp_path / "real.sqlite"))
    real.append([row(request_id="x", input_tokens=5, cost_usd=0.25)])
    [merged] = merge_summaries(real.summary("model", 0), [summed], "model")
    assert (merged["requests"], merged["input_tokens"], merged["cost_usd"]) == (4, 35, 1.25)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """Every folder :func:`fallback_dirs` looks in is under ``tmp_path``: no file of the real user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return str(tmp_path / "usage.sqlite")


_KILLED_MID_WRITE = """
import json, os, sys
from occ.observe import ledger_fallback
from occ.observe.ledger import COLUMNS
sys.path.insert(0, sys.argv[2])
from test_ledger import row

real = json.dumps
def dumps(value, **kw):
    if isinstance(value, dict) and value.get("request_id") == "r5":
        os.write(1, b"half written\\n")
        sys.stdin.read()  # the parent kills this process here, rows 0-4 given to the file
    return real(value, **kw)
ledger_fallback.json.dumps = dumps
ledger_fallback.write_fallback(sys.argv[1], COLUMNS, [row(request_id=f"r{i}") for i in range(10)])
"""


def test_a_writer_killed_mid_write_leaves_no_file_to_read_and_keeps_the_older_ones(folders, tmp_path):
    """A server killed while writing its fallback file (or abandoned by ``FALLBACK_SAVE_S``) leaves no
    file ``occ usage`` reads, rather than one with a row cut in two; the files written before stay
    whole, and two written in the same second by one process are two files."""
    older = [write_fallback(folders, COLUMNS, [row(request_id=f"old{n}{i}") for i in range(2)]) for n in range(2)]
    assert older[0] != older[1] and {os.path.dirname(p) for p in older} == {str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_MID_WRITE, folders, os.path.dirname(__file__)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.path.join(ROOT, "tests")})
    try:
        assert b"half written\n" == child.stdout.readline()  # ends with "" if the child died first
    finally:
        child.kill()
        child.communicate(timeout=30)
    assert sorted(older) == [path for path, _ in find_fallbacks(folders)]
    assert sorted(glob.glob(str(tmp_path / "occ-usage-unwritten-*.jsonl"))) == sorted(older)
    assert 1 == len(glob.glob(str(tmp_path / ".occ-usage-unwritten-*.jsonl.tmp")))  # kept, not read
    [summed] = read_fallback(older, "model", 0)
    assert 4 == summed["requests"]

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
from occ.observe.ledger_fallback import (
    NotAFallbackFile,
    find_fallbacks,
    load_fallback,
    read_fallback,
    unwritable_reason,
    write_fallback,
)


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
    assert [saved] == find_fallbacks(ledger_path)
    assert [] == find_fallbacks(str(tmp_path / "other.sqlite"))  # another ledger's files are not its
    read = read_fallback([saved], "model", time.time() - 3600)
    assert (3, [saved], [], []) == (read.counted, read.files, read.warnings, read.refused)
    [summed] = read.summary
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
    assert sorted(older) == find_fallbacks(folders)
    assert sorted(glob.glob(str(tmp_path / "occ-usage-unwritten-*.jsonl"))) == sorted(older)
    assert 1 == len(glob.glob(str(tmp_path / ".occ-usage-unwritten-*.jsonl.tmp")))  # kept, not read
    read = read_fallback(find_fallbacks(folders), "model", 0)
    assert (4, [], []) == (read.counted, read.warnings, read.refused)


def _old_file(path, rows: int, keep) -> tuple[str, bytes]:
    """A fallback file as an occ before the rename left it when stopped mid-write: whole, then cut
    by ``keep(data)`` bytes from the start. Its rows name a client that no message may repeat."""
    saved = write_fallback(path, COLUMNS, [row(request_id=f"r{i}", client="Acme Secret Client", input_tokens=10)
                                           for i in range(rows)])
    data = open(saved, "rb").read()
    with open(saved, "wb") as f:
        f.write(data[:keep(data)])
    return saved, data


@pytest.mark.parametrize(("keep", "counted", "line", "said"), [
    (lambda data: len(data) - 7, 2, 4, "line 4, the last, is cut short"),  # inside the last row
    (lambda data: data.rindex(b"\n", 0, len(data) - 1) + 4, 2, 4, "line 4, the last, is cut short"),  # just begun
    (lambda data: data.rindex(b"\n", 0, len(data) - 1) + 1, 2, None, "holds 2 whole rows of the 3 its header"),
    (lambda data: len(data) - 1, 3, None, None),  # only the last newline missing: every row is whole
    (lambda data: data.index(b"\n") - 3, 0, 1, "line 1, its header, is cut short"),
    (lambda data: 0, 0, None, "is empty"),
])
def test_a_file_cut_at_its_end_counts_its_whole_rows_with_one_warning(folders, keep, counted, line, said):
    saved, _ = _old_file(folders, 3, keep)
    assert [saved] == find_fallbacks(folders)  # a header cut short may be this ledger's: said, not hidden
    rows, warning = load_fallback(saved)
    assert [f"r{i}" for i in range(counted)] == [r[COLUMNS.index("request_id")] for r in rows]
    read = read_fallback([saved], "model", 0)
    assert counted == read.counted and [] == read.refused
    if said is None:
        assert warning is None and [] == read.warnings
        return
    assert [warning] == read.warnings
    assert saved in warning and said in warning and "Acme" not in warning
    if counted:
        assert (counted * 10) == read.summary[0]["input_tokens"]
    if line is not None:
        assert f"line {line}," in warning


@pytest.mark.parametrize(("damage", "line", "said"), [
    (lambda lines: [*lines[:2], b'{"ts": 1, "request_id": "Acme Secret Client', *lines[3:]], 3, "is not a usage row"),
    (lambda lines: [*lines[:2], b"\xff\xfe Acme Secret Client", *lines[3:]], 3, "is not a usage row"),
    (lambda lines: [*lines[:3], b'["Acme Secret Client"]'], 4, "not a JSON object"),
    (lambda lines: [*lines[:3], b'{"ts": "Acme Secret Client", "request_id": "r", "outcome": "ok"}'], 4,
     "ts has the wrong type"),
    (lambda lines: [*lines[:1], b'{"request_id": "Acme Secret Client", "outcome": "ok"}'], 2, "no ts"),
    (lambda lines: [b'{"rows": 3}', *lines[1:]], 1, "is not a fallback header"),
    (lambda lines: [b"Acme Secret Client, not JSON", *lines[1:]], 1, "is not a header"),
])
def test_damage_no_stop_explains_refuses_the_file_naming_the_line(folders, damage, line, said):
    """A bad line with whole rows after it, or JSON that is not a row: not what a stopped writer
    leaves, so the file is refused (and left as it is), with the line named and no row quoted."""
    saved, data = _old_file(folders, 3, len)
    damaged = b"\n".join(damage(data.rstrip(b"\n").split(b"\n"))) + b"\n"
    with open(saved, "wb") as f:
        f.write(damaged)
    assert [saved] == find_fallbacks(folders)  # whose it is cannot be told: refused, not skipped in silence
    with pytest.raises(NotAFallbackFile) as info:
        load_fallback(saved)
    message = str(info.value)
    assert saved in message and f"line {line} " in message and said in message and "Acme" not in message
    assert "\n" not in message
    read = read_fallback([saved], "model", 0)
    assert (0, [], [message]) == (read.counted, read.summary, read.refused)
    assert damaged == open(saved, "rb").read()


def test_a_headerless_file_of_another_user_is_not_this_ledgers_problem(folders, tmp_path, monkeypatch):
    stranger = tmp_path / "tmp" / "occ-usage-unwritten-20260101T000000-1.jsonl"
    stranger.write_bytes(b"\x00\x01 not a fallback file")
    assert [str(stranger)] == find_fallbacks(folders)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(stranger).st_uid + 1)
    assert [] == find_fallbacks(folders)

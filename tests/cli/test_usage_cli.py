"""``occ usage``: the ledger summed, as JSON for scripts and as a table; no server needed."""

from __future__ import annotations

import json
import random
import time

import pytest

from occ.cli.main import main
from occ.cli.usage import parse_since
from occ.observe.ledger import Ledger
from occ.observe.usage import UsageRow

KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _rows(now: float) -> list[UsageRow]:
    rnd = random.Random(19)
    rows = []
    for i in range(120):
        model = rnd.choice(["go/kimi", "go/glm", "zen/unpriced", None])
        has_usage = model is not None
        rows.append(UsageRow(
            ts=now - rnd.uniform(0, 10 * 86400), request_id=f"req_{i}", client=rnd.choice(["key#0", "key#1"]),
            scenario=rnd.choice(["default", "think", "background"]), model=model, wire="openai", stream=bool(i % 2),
            outcome="ok" if has_usage else "error", status=200 if has_usage else 400, latency_ms=10.0, ttft_ms=None,
            input_tokens=rnd.randint(0, 5000) if has_usage else None,
            output_tokens=rnd.randint(0, 900) if has_usage else None,
            cache_read_tokens=rnd.randint(0, 3000) if has_usage else None,
            cache_write_tokens=rnd.randint(0, 100) if has_usage else None,
            usage_estimated=(rnd.random() < 0.2) if has_usage else None,
            cost_usd=rnd.uniform(0, 0.05) if model in ("go/kimi", "go/glm") else None))
    return rows


@pytest.fixture
def ledger_config(tmp_path):
    path = tmp_path / "usage.sqlite"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"models": {"default": {"model_id": "kimi-k2.6"}}, "usage": {"path": str(path)}}))
    now = time.time()
    rows = _rows(now)
    Ledger(str(path)).append(rows)
    return str(config), rows, now


def _expected(rows: list[UsageRow], key, since: float) -> dict:
    out: dict = {}
    for r in rows:
        if r.ts < since:
            continue
        k = key(r)
        e = out.setdefault(k, {"requests": 0, **dict.fromkeys(KINDS, 0), "estimated_requests": 0, "cost_usd": None})
        e["requests"] += 1
        for kind in KINDS:
            e[kind] += getattr(r, kind) or 0
        e["estimated_requests"] += bool(r.usage_estimated)
        if r.cost_usd is not None:
            e["cost_usd"] = (e["cost_usd"] or 0) + r.cost_usd
    return out


@pytest.mark.parametrize(("by", "key"), [
    ("model", lambda r: r.model),
    ("scenario", lambda r: r.scenario),
    ("client", lambda r: r.client),
    ("day", lambda r: time.strftime("%Y-%m-%d", time.localtime(r.ts))),
])
@pytest.mark.parametrize("since", ["24h", "7d", "30d"])
def test_json_sums_match_the_rows(ledger_config, capsys, by, key, since):
    config, rows, now = ledger_config
    assert 0 == main(["usage", "--json", "--by", by, "--since", since, "--config", config])
    printed = json.loads(capsys.readouterr().out)
    cutoff = parse_since(since, now)
    expected = _expected(rows, key, cutoff)
    # the ledger's clock ran a moment after ``now``: a row within that moment of the cut-off may differ
    assert not any(abs(r.ts - cutoff) < 60 for r in rows)
    got = {entry[by]: entry for entry in printed}
    assert set(expected) == set(got)
    for k, want in expected.items():
        entry = got[k]
        for name in ("requests", *KINDS, "estimated_requests"):
            assert want[name] == entry[name], (k, name)
        if want["cost_usd"] is None:
            assert entry["cost_usd"] is None
        else:
            assert want["cost_usd"] == pytest.approx(entry["cost_usd"])


def test_table_has_a_total_and_says_what_has_no_price(ledger_config, capsys):
    config, rows, _now = ledger_config
    assert 0 == main(["usage", "--since", "30d", "--config", config])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split()[:2] == ["model", "requests"]
    total = next(line for line in lines if line.startswith("total"))
    assert str(len(rows)) == total.split()[1]
    unpriced = sum(1 for r in rows if r.cost_usd is None)
    assert f"{unpriced} requests have no price" in out


def test_empty_or_missing_ledger(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"models": {"default": {"model_id": "kimi-k2.6"}},
                                  "usage": {"path": str(tmp_path / "none.sqlite")}}))
    assert 0 == main(["usage", "--json", "--config", str(config)])
    assert [] == json.loads(capsys.readouterr().out)
    assert 0 == main(["usage", "--config", str(config)])
    assert "no requests in this period" in capsys.readouterr().out
    assert not (tmp_path / "none.sqlite").exists()


def test_since_forms():
    now = 1_800_000_000.0
    assert now - 86400 == parse_since("24h", now)
    assert now - 7 * 86400 == parse_since("7d", now)
    assert now - 1800 == parse_since("30m", now)
    assert time.mktime((2026, 12, 1, 0, 0, 0, 0, 0, -1)) == parse_since("2026-12-01", now)


def test_bad_since_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["usage", "--since", "yesterday"])
    assert 2 == info.value.code
    assert "expected 30m, 24h, 7d or a date" in capsys.readouterr().err


def test_status_shows_todays_usage():
    from occ.cli.ops import format_status

    text = format_status({"version": "x", "models": {}, "usage_today": {
        "requests": 3, "input_tokens": 12000, "output_tokens": 340, "estimated_requests": 1, "cost_usd": 0.0123}})
    assert "today: 3 requests, 12,000 input / 340 output tokens, 1 estimated, cost $0.0123" in text
    text = format_status({"version": "x", "models": {}, "usage_today": {
        "requests": 1, "input_tokens": 1, "output_tokens": 1, "estimated_requests": 0, "cost_usd": None}})
    assert "cost -" in text


def _fallback_config(tmp_path, monkeypatch):
    """A ledger with one row, and a fallback file of three more (every folder under ``tmp_path``)."""
    import tempfile

    from occ.observe.ledger import COLUMNS
    from occ.observe.ledger_fallback import write_fallback

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = str(tmp_path / "usage.sqlite")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"models": {"default": {"model_id": "kimi-k2.6"}}, "usage": {"path": path}}))
    now = time.time()
    make = lambda i: UsageRow(ts=now - 60, request_id=f"req_{i}", client="Acme Secret Client", scenario="default",  # noqa: E731
                              model="go/kimi", wire="openai", stream=True, outcome="ok", status=200, latency_ms=1.0,
                              ttft_ms=None, input_tokens=100, output_tokens=10, cache_read_tokens=0,
                              cache_write_tokens=0, usage_estimated=False, cost_usd=0.5)
    Ledger(path).append([make(0)])
    saved = write_fallback(path, COLUMNS, [make(i) for i in range(1, 4)])
    return str(config), saved


def test_a_fallback_file_cut_short_is_counted_to_its_last_whole_row(tmp_path, monkeypatch, capsys):
    """A fallback file an older occ left cut mid-row (a worker killed while writing it): ``occ usage``
    counts the ledger's row and the file's whole ones, warns once naming the file and line, exit 0."""
    config, saved = _fallback_config(tmp_path, monkeypatch)
    data = open(saved, "rb").read()
    with open(saved, "wb") as f:
        f.write(data[:-20])
    assert 0 == main(["usage", "--json", "--config", config])
    captured = capsys.readouterr()
    [entry] = json.loads(captured.out)
    assert (3, 300, 1.5) == (entry["requests"], entry["input_tokens"], entry["cost_usd"])
    [warning] = [line for line in captured.err.splitlines() if "warning" in line]
    assert f"occ: warning: fallback file {saved}: line 4, the last, is cut short" in warning
    assert "Acme" not in captured.err and "Traceback" not in captured.err
    assert 0 == main(["usage", "--config", config])
    assert "go/kimi" in capsys.readouterr().out


def test_a_file_that_is_not_a_fallback_file_is_one_clear_error(tmp_path, monkeypatch, capsys):
    """Named like a fallback file but not one: the ledger's rows still print, one line says which
    file and line is refused, exit 1; never a traceback."""
    config, saved = _fallback_config(tmp_path, monkeypatch)
    with open(saved, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR not a fallback file\n")
    assert 1 == main(["usage", "--json", "--config", config])
    captured = capsys.readouterr()
    [entry] = json.loads(captured.out)
    assert 1 == entry["requests"]  # the ledger's own row
    [error] = captured.err.splitlines()
    assert error.startswith(f"occ: fallback file {saved} is not one occ can count: line 1 ")
    assert "Traceback" not in captured.err

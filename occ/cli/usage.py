"""``occ usage``: what the ledger says was spent, by model, scenario, day or client.

It reads the ledger file directly (the config's ``usage.path``, else the XDG default), so it works
whether or not a server runs; a running server writes its batch at most ``usage.flush_interval_ms``
after each request.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["add_usage_command", "format_usage", "merge_summaries", "parse_since", "run_usage"]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


def add_usage_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """``occ usage``, with the ``--config``/``--debug`` options every subcommand shares."""
    usage = sub.add_parser("usage", parents=[common], help="sum the usage ledger: requests, tokens and cost",
                           description="Sum the usage ledger (every finished request's tokens and cost) by "
                           "model, scenario, day or client. Reads the file directly: no server needed.")
    usage.add_argument("--since", default="24h", type=parse_since, metavar="24h|7d|YYYY-MM-DD",
                       help="rows from this long ago (30m, 24h, 7d) or since a local date (default: 24h)")
    usage.add_argument("--by", default="model", choices=("model", "scenario", "day", "client"),
                       help="one row per model (default), scenario, local day or client")
    usage.add_argument("--json", action="store_true", help="print a JSON list of rows, for scripts")


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``/``7d``/``30m`` ago, or local midnight of ``YYYY-MM-DD``, as unix time.

    Raises:
        argparse.ArgumentTypeError: neither form.
    """
    now = time.time() if now is None else now
    match = _RELATIVE.match(text.strip())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        day = datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 30m, 24h, 7d or a date like 2026-12-01, got {text!r}") from None
    return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def format_usage(rows: Sequence[dict[str, Any]], by: str) -> str:
    """A readable table with a total line; ``-`` is a cost no price exists for (not 0)."""
    header = (by, "requests", "input", "output", "cache read", "cache write", "estimated", "cost")
    total: dict[str, Any] = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
                             "cache_write_tokens": 0, "estimated_requests": 0, "cost_usd": None}
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        for key in total:
            if key == "cost_usd":
                if row[key] is not None:
                    total[key] = (total[key] or 0.0) + row[key]
            else:
                total[key] += row[key]
        lines.append(_cells(str(row[by]) if row[by] is not None else "-", row))
    if len(rows) > 1:
        lines.append(_cells("total", total))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(line)))
        if n == 0 or (n == len(lines) - 2 and len(rows) > 1):
            out.append("  ".join("-" * w for w in widths))
    unpriced = sum(row.get("unpriced_requests", 0) for row in rows)
    if unpriced:
        out.append(f"{unpriced} requests have no price (set `prices` in the config); their cost is not included")
    return "\n".join(out)


def _cells(key: str, row: dict[str, Any]) -> tuple[str, ...]:
    return (key, f"{row['requests']:,}", f"{row['input_tokens']:,}", f"{row['output_tokens']:,}",
            f"{row['cache_read_tokens']:,}", f"{row['cache_write_tokens']:,}", f"{row['estimated_requests']:,}",
            _money(row["cost_usd"]))


def run_usage(args: argparse.Namespace) -> int:
    from occ.config.parse import load_config
    from occ.observe.ledger import Ledger, ledger_path

    config = load_config(args.config)
    ledger = Ledger(ledger_path(config.usage.path))
    rows, problems = _rows_and_problems(ledger, args.by, args.since, enabled=config.usage.enabled)
    for problem in problems:
        print(f"occ: {problem}", file=sys.stderr)
    status = 1 if problems else 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return status
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(args.since))
    print(f"usage since {since} ({ledger.path})")
    if not config.usage.enabled:
        print("note: usage.enabled is false in the config; occ is not adding to this ledger")
    print(format_usage(rows, args.by) if rows else "no requests in this period")
    return status


def _rows_and_problems(ledger: Any, by: str, since: float, *, enabled: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """The ledger's sums with the rows of its fallback files added (rows a server could not write to
    it at shutdown), and what makes them incomplete: a ledger that cannot be written (a running occ
    records nothing in it) or cannot be read, a fallback file that is refused. Non-empty problems make
    ``occ usage`` exit 1; a damaged fallback file whose whole rows are still counted is a warning."""
    import sqlite3

    from occ.observe.ledger_fallback import find_fallbacks, read_fallback, unwritable_reason

    problems = []
    try:
        rows = ledger.summary(by, since)
    except (sqlite3.Error, OSError) as exc:
        rows = []
        problems.append(f"usage ledger {ledger.path} cannot be read ({exc})")
    reason = unwritable_reason(ledger.path) if enabled else None
    if reason is not None:
        problems.append(f"usage ledger {ledger.path} cannot be written ({reason}): a running occ records no "
                        "requests in it, so these figures are incomplete")
    fallbacks = find_fallbacks(ledger.path)
    if fallbacks:
        extra = read_fallback(fallbacks, by, since)
        rows = merge_summaries(rows, extra.summary, by)
        for warning in extra.warnings:
            print(f"occ: warning: {warning}", file=sys.stderr)
        problems.extend(extra.refused)
        if extra.counted:
            print(f"note: {extra.counted} rows a server could not write to the ledger are counted from "
                  f"{', '.join(extra.files)}", file=sys.stderr)
    return rows, problems


def merge_summaries(a: list[dict[str, Any]], b: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Two ``Ledger.summary`` results as one: counts add up, a cost stays None only if both are."""
    merged: dict[Any, dict[str, Any]] = {row[by]: dict(row) for row in a}
    for row in b:
        into = merged.get(row[by])
        if into is None:
            merged[row[by]] = dict(row)
            continue
        for key, value in row.items():
            if key == by:
                continue
            if key == "cost_usd":
                if value is not None:
                    into[key] = (into[key] or 0.0) + value
            else:
                into[key] = (into.get(key) or 0) + (value or 0)
    return [merged[key] for key in sorted(merged, key=lambda k: (k is None, str(k)))]

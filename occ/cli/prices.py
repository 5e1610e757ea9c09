"""``occ prices``: the price each configured model is charged at, and where every figure came from.

A cost in ``occ usage`` is only as good as its price, so this says for each figure whether it is the
models.dev catalog's (with the catalog's commit and the date occ's copy was read), the config's, or
a default (a cache price nobody gave, charged as ``input``), and names the models with no price at
all: those record no cost, which is not a cost of 0.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_prices_command", "price_rows", "run_prices"]

_FIELDS = ("input", "output", "cache_read", "cache_write")


def add_prices_command(sub: Any, common: argparse.ArgumentParser) -> None:
    prices = sub.add_parser("prices", parents=[common], help="list each configured model's prices and their source",
                            description="List the price (USD per million tokens: input, output, cache read, "
                            "cache write) each configured model is charged at, and where each figure came "
                            "from: the models.dev catalog shipped with occ (with its date), the config's "
                            "`prices`, or a default. Models without a price are named.")
    prices.add_argument("--all", action="store_true", help="also list every catalog model, configured or not")
    prices.add_argument("--json", action="store_true", help="print a JSON object, for scripts")


def _configured(config: Any) -> dict[str, list[str]]:
    """Model label -> the scenario slots using it, in config order."""
    out: dict[str, list[str]] = {}
    for name, model in config.models.items():
        out.setdefault(model.label, []).append(name)
    for name, chain in config.fallbacks.items():
        for i, model in enumerate(chain):
            out.setdefault(model.label, []).append(f"{name} fallback {i + 1}")
    for name, model in config.model_overrides.items():
        out.setdefault(model.label, []).append(f"override {name}")
    return out


def _source(origin: str, label: str, catalog: Any) -> str:
    if origin == "catalog":
        entry = catalog.get(label)
        return f"catalog {entry.path}" if entry is not None else "catalog"
    if origin == "config":
        return f"config prices.{label}"
    return "default (= input)"


def price_rows(config: Any, *, include_catalog: bool = False) -> list[dict[str, Any]]:
    """One row per model: its figures, each with its source; ``priced`` False for a model without one."""
    from occ.config.price_catalog import CATALOG

    used = _configured(config)
    labels = list(used) + ([label for label in CATALOG if label not in used] if include_catalog else [])
    rows = []
    for label in labels:
        price = config.prices.get(label)
        entry = CATALOG.get(label)
        row: dict[str, Any] = {"model": label, "used_by": used.get(label, []), "priced": price is not None,
                               "catalog_status": entry.status if entry is not None else None}
        if price is None:
            preset = label.split("/", 1)[0]
            row["why_unpriced"] = (f"not in the models.dev catalog shipped with occ; set prices.{label}"
                                   if preset in ("opencode-go", "opencode-zen")
                                   else f"set prices.{label} in the config")
            rows.append(row)
            continue
        origin = price.origin or ("config",) * 4
        row["figures"] = {k: {"usd_per_mtok": getattr(price, k), "source": _source(o, label, CATALOG)}
                          for k, o in zip(_FIELDS, origin, strict=True)}
        row["tiers"] = [{"above_prompt_tokens": above, **{k: getattr(tier, k) for k in _FIELDS}}
                        for above, tier in price.tiers]
        rows.append(row)
    return rows


def _num(value: float) -> str:
    return f"{value:g}"


def format_prices(rows: list[dict[str, Any]], source: dict[str, Any]) -> str:
    out = [f"prices in USD per million tokens; catalog: models.dev ({source['repo']} @ {source['commit'][:12]}, "
           f"committed {source['commit_date']}, read {source['read']})", ""]
    header = ("model", "input", "output", "cache read", "cache write", "source")
    table: list[tuple[str, ...]] = [header]
    notes: list[str] = []
    for row in rows:
        if not row["priced"]:
            table.append((row["model"], "-", "-", "-", "-", f"UNPRICED: {row['why_unpriced']}"))
            continue
        figures = row["figures"]
        cells = []
        sources: dict[str, list[str]] = {}
        for key in _FIELDS:
            figure = figures[key]
            mark = "*" if figure["source"].startswith("default") else ""
            cells.append(_num(figure["usd_per_mtok"]) + mark)
            if not mark:
                sources.setdefault(figure["source"], []).append(key)
        summary = "; ".join(src if len(keys) == len(_FIELDS) or len(sources) == 1 else f"{','.join(keys)}: {src}"
                            for src, keys in sources.items())
        if row["catalog_status"]:
            summary += f" [{row['catalog_status']}]"
        table.append((row["model"], *cells, summary))
        for tier in row["tiers"]:
            notes.append(f"{row['model']}: prompts above {tier['above_prompt_tokens']:,} tokens cost "
                         + ", ".join(f"{k.replace('_', ' ')} {_num(tier[k])}" for k in _FIELDS))
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for n, line in enumerate(table):
        out.append("  ".join(c.ljust(widths[i]) if i in (0, 5) else c.rjust(widths[i])
                             for i, c in enumerate(line)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    if any("*" in c for line in table[1:] for c in line[1:5]):
        out.append("* no figure given (neither catalog nor config): charged at the input price")
    out += notes
    unpriced = [row["model"] for row in rows if not row["priced"]]
    if unpriced:
        out.append(f"{len(unpriced)} model(s) have no price: their requests record no cost (not $0): "
                   + ", ".join(unpriced))
    return "\n".join(out)


def run_prices(args: argparse.Namespace) -> int:
    from occ.config.parse import load_config
    from occ.config.price_catalog import CATALOG_SOURCE
    from occ.core.scrub import remember_secrets

    config = load_config(args.config)
    remember_secrets(config.secrets())
    rows = price_rows(config, include_catalog=args.all)
    if args.json:
        print(json.dumps({"catalog": CATALOG_SOURCE, "models": rows}, indent=2))
    else:
        print(format_prices(rows, CATALOG_SOURCE))
    return 0

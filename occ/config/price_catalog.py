"""The preset models' published prices, from the OpenCode team's models.dev catalog.

The numbers live in ``preset_prices.json`` next to this module, with the catalog's repository,
commit, paths and the date they were read, so every figure occ charges by default can be traced to
its line in ``providers/opencode*/models/*.toml``. They are data, not code: a refresh is a new file
(and a CHANGELOG line), never an edit of numbers in Python. Read once, at import. Sans-IO apart from
that one package-data read.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from occ.config.model import Price

__all__ = ["CATALOG", "CATALOG_SOURCE", "CatalogEntry", "catalog_label"]

#: Which catalog provider directory each preset reads (models.dev calls Zen just ``opencode``).
CATALOG_PROVIDERS = {"opencode-zen": "providers/opencode", "opencode-go": "providers/opencode-go"}
_FIELDS = ("input", "output", "cache_read", "cache_write")


class CatalogEntry:
    """One model's catalog figures: what it gives (``None`` for a figure it does not list), its long
    context tiers, its TOML path and status (``deprecated``...)."""

    __slots__ = ("figures", "path", "status", "tiers")

    def __init__(self, data: dict[str, Any]) -> None:
        self.figures: dict[str, float | None] = {k: _number(data.get(k)) for k in _FIELDS}
        self.path: str = data["path"]
        self.status: str | None = data.get("status")
        self.tiers: tuple[tuple[int, dict[str, float | None]], ...] = tuple(
            (int(t["above_prompt_tokens"]), {k: _number(t.get(k)) for k in _FIELDS})
            for t in sorted(data.get("tiers", ()), key=lambda t: t["above_prompt_tokens"]))

    def price(self) -> Price:
        """The catalog's price; a cache figure it does not list costs as much as ``input`` (an over-
        rather than an under-estimate), and says so in ``origin``."""
        base = _price(self.figures, "catalog")
        tiers = tuple((above, _price({k: v if v is not None else self.figures[k] for k, v in t.items()}, "catalog"))
                      for above, t in self.tiers)
        return Price(base.input, base.output, base.cache_read, base.cache_write, tiers, base.origin)


def _price(figures: dict[str, float | None], origin: str) -> Price:
    given = figures["input"]
    assert given is not None and figures["output"] is not None
    values = [figures[k] if figures[k] is not None else given for k in _FIELDS]
    origins = tuple(origin if figures[k] is not None else "default" for k in _FIELDS)
    return Price(*values, origin=origins)  # type: ignore[arg-type]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def catalog_label(preset: str, model_id: str) -> str:
    return f"{preset}/{model_id}"


def _load() -> tuple[dict[str, Any], dict[str, CatalogEntry]]:
    raw = json.loads(resources.files("occ.config").joinpath("preset_prices.json").read_text(encoding="utf-8"))
    return raw["source"], {label: CatalogEntry(data) for label, data in raw["models"].items()}


#: ``repo``, ``commit``, ``commit_date``, ``paths``, ``read`` (the date occ's copy was taken), ``units``
CATALOG_SOURCE: dict[str, Any]
#: preset model label (``opencode-go/kimi-k2.6``) -> its catalog entry
CATALOG: dict[str, CatalogEntry]
CATALOG_SOURCE, CATALOG = _load()

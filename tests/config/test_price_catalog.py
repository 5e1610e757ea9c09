"""The preset prices occ ships: taken from the models.dev catalog, traceable to it, overridable
figure by figure, and charged the way the catalog means them (cache reads at the cache price,
long prompts at the tier price)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from occ.config.model import Price
from occ.config.parse import parse_config
from occ.config.presets import GO_ANTHROPIC_MODELS, PRESET_PRICES
from occ.config.price_catalog import CATALOG, CATALOG_SOURCE

ROOT = Path(__file__).resolve().parents[2]
SEED_TABLE_ZEN = ("gemini-3.5-flash", "gemini-3.1-pro", "gemini-3-flash", "gpt-5.5", "gpt-5.5-pro", "gpt-5.4",
                  "gpt-5.4-pro", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.3-codex", "gpt-5.3-codex-spark", "gpt-5.2",
                  "gpt-5.2-codex", "gpt-5.1", "gpt-5.1-codex", "gpt-5.1-codex-max", "gpt-5.1-codex-mini", "gpt-5",
                  "gpt-5-codex", "gpt-5-nano", "grok-build-0.1", "big-pickle")
SEED_TABLE_GO = ("glm-5", "glm-5.1", "kimi-k2.5", "kimi-k2.6", "mimo-v2.5", "mimo-v2.5-pro", "deepseek-v4-pro",
                 "deepseek-v4-flash")


def _shipped_models() -> set[str]:
    """Every preset model label a shipped config or example names."""
    labels = set()
    files = [*(ROOT / "occ" / "config").glob("*_config.json"), ROOT / "occ" / "config" / "init_template.json",
             *(ROOT / "examples").rglob("*.json")]
    for path in files:
        text = path.read_text()
        for provider, model_id in re.findall(r'"provider":\s*"(opencode-(?:go|zen))",\s*"model_id":\s*"([^"]+)"',
                                             text):
            labels.add(f"{provider}/{model_id}")
    return labels


def test_the_data_names_its_source_and_date():
    assert CATALOG_SOURCE["repo"] == "https://github.com/anomalyco/models.dev"
    assert re.fullmatch(r"[0-9a-f]{40}", CATALOG_SOURCE["commit"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", CATALOG_SOURCE["read"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", CATALOG_SOURCE["commit_date"])
    for label, entry in CATALOG.items():
        preset, model_id = label.split("/", 1)
        directory = {"opencode-go": "providers/opencode-go", "opencode-zen": "providers/opencode"}[preset]
        assert entry.path == f"{directory}/models/{model_id}.toml"


@pytest.mark.parametrize("label", sorted(_shipped_models() | {f"opencode-go/{m}" for m in GO_ANTHROPIC_MODELS}
                                         | {f"opencode-zen/{m}" for m in SEED_TABLE_ZEN}
                                         | {f"opencode-go/{m}" for m in SEED_TABLE_GO}))
def test_every_preset_model_has_input_output_and_cache_read_prices(label):
    assert label in CATALOG, f"{label} is not in the models.dev catalog shipped with occ"
    entry = CATALOG[label]
    assert entry.figures["input"] is not None and entry.figures["output"] is not None
    assert entry.figures["cache_read"] is not None, f"{label}: the catalog gives no cache-read price"
    assert PRESET_PRICES[label].cache_read == entry.figures["cache_read"]


def test_figures_are_the_catalogs():
    # providers/opencode-go/models/kimi-k2.6.toml: input 0.95, output 4.0, cache_read 0.16
    kimi = PRESET_PRICES["opencode-go/kimi-k2.6"]
    assert (0.95, 4.0, 0.16) == (kimi.input, kimi.output, kimi.cache_read)
    assert kimi.cache_write == kimi.input and kimi.origin == ("catalog", "catalog", "catalog", "default")
    sonnet = PRESET_PRICES["opencode-zen/claude-sonnet-4-5"]
    assert (3.0, 15.0, 0.3, 3.75) == (sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write)
    assert [(200_000, Price(6.0, 22.5, 0.6, 7.5))] == list(sonnet.tiers)


def test_the_data_file_is_plain_json_with_one_entry_per_model():
    raw = json.loads((ROOT / "occ" / "config" / "preset_prices.json").read_text())
    assert set(raw["models"]) == set(CATALOG)
    assert all(isinstance(v["input"], (int, float)) for v in raw["models"].values())


def test_cache_reads_cost_the_cache_price_and_long_prompts_the_tier_price():
    sonnet = PRESET_PRICES["opencode-zen/claude-sonnet-4-5"]
    assert sonnet.cost(1000, 100, 9000, 0) == pytest.approx((1000 * 3 + 100 * 15 + 9000 * 0.3) / 1e6)
    # 150k input + 60k cache read = 210k prompt tokens > 200k: every figure at the tier's price
    assert sonnet.cost(150_000, 100, 60_000, 0) == pytest.approx((150_000 * 6 + 100 * 22.5 + 60_000 * 0.6) / 1e6)
    assert sonnet.cost(200_000, 0, 0, 0) == pytest.approx(200_000 * 3 / 1e6)  # "above" 200k, not at it


def test_config_figures_override_the_catalog_one_by_one():
    config = parse_config({"models": {"default": {"provider": "opencode-zen", "model_id": "claude-sonnet-4-5"}},
                           "prices": {"opencode-zen/claude-sonnet-4-5": {"cache_read": 0.25},
                                      "opencode-go/kimi-k2.6": {"input": 1, "output": 5},
                                      "local/mine": {"input": 2, "output": 3}}}, env={}, source="t")
    sonnet = config.prices["opencode-zen/claude-sonnet-4-5"]
    assert (3.0, 15.0, 0.25, 3.75) == (sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write)
    assert ("catalog", "catalog", "config", "catalog") == sonnet.origin
    assert () == sonnet.tiers  # the user's figures apply at every size
    kimi = config.prices["opencode-go/kimi-k2.6"]
    assert (1.0, 5.0, 0.16, 1.0) == (kimi.input, kimi.output, kimi.cache_read, kimi.cache_write)
    assert ("config", "config", "catalog", "default") == kimi.origin
    assert ("config", "config", "default", "default") == config.prices["local/mine"].origin
    assert "opencode-go/glm-5.1" in config.prices  # the rest of the catalog stays


def test_a_preset_model_outside_the_catalog_has_no_price():
    config = parse_config({"models": {"default": {"provider": "opencode-go", "model_id": "not-in-catalog"}}},
                          env={}, source="t")
    assert "opencode-go/not-in-catalog" not in config.prices

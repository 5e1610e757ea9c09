"""``usage`` and ``prices`` in the config file."""

from __future__ import annotations

import pytest

from occ.config.model import Price, UsageConfig
from occ.config.parse import parse_config
from occ.config.presets import PRESET_PRICES
from occ.core.errors import ConfigError

BASE = {"models": {"default": {"provider": "opencode-go", "model_id": "kimi-k2.6"}}}


def test_defaults_keep_a_ledger_at_the_xdg_path_with_the_catalog_prices():
    config = parse_config(BASE, env={}, source="t")
    assert UsageConfig(enabled=True, path=None, flush_interval_s=1.0) == config.usage
    assert PRESET_PRICES == dict(config.prices)
    assert "opencode-go/kimi-k2.6" in config.prices


def test_usage_section():
    config = parse_config({**BASE, "usage": {"enabled": False, "path": "~/u.sqlite", "flush_interval_ms": 250}},
                          env={}, source="t")
    assert UsageConfig(enabled=False, path="~/u.sqlite", flush_interval_s=0.25) == config.usage


def test_prices_default_cache_prices_to_input_and_keep_zero():
    config = parse_config({**BASE, "prices": {
        "local/a": {"input": 1, "output": 4},
        "local/b": {"input": 1, "output": 4, "cache_read": 0, "cache_write": 2.5},
    }}, env={}, source="t")
    assert Price(1.0, 4.0, 1.0, 1.0) == config.prices["local/a"]
    assert Price(1.0, 4.0, 0.0, 2.5) == config.prices["local/b"]


@pytest.mark.parametrize(("prices", "needle"), [
    ({"local/a": {"output": 4}}, "prices.local/a: required: input and output"),
    ({"local/a": {"input": -1, "output": 4}}, "prices.local/a.input: expected a price >= 0"),
    ({"local/a": {"input": "1", "output": 4}}, "prices.local/a.input: expected a number"),
    ({"local/a": 3}, "prices.local/a: expected an object"),
])
def test_bad_prices_are_reported_with_their_path(prices, needle):
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, "prices": prices}, env={}, source="t")
    assert any(needle in problem for problem in info.value.problems), info.value.problems


def test_unknown_keys_warn():
    config = parse_config({**BASE, "usage": {"pth": "x"}, "prices": {"local/a": {"input": 1, "output": 1,
                                                                                  "reasoning": 2}}},
                          env={}, source="t")
    assert 'unknown key "usage.pth" (ignored)' in config.warnings
    assert 'unknown key "prices.local/a.reasoning" (ignored)' in config.warnings

"""``thinking_shape`` and ``effort_levels`` on a model: parsed, checked, and each error names its key."""

from __future__ import annotations

import pytest

from occ.config.parse import parse_config
from occ.core.errors import ConfigError


def parse(**model):
    data = {"models": {"default": {"provider": "opencode-go", "model_id": "minimax-m3", **model}}}
    return parse_config(data, env={}, source="test").models["default"]


def test_absent_keys_leave_the_tables_in_charge():
    model = parse()
    assert model.thinking_shape is None and model.effort_levels is None


def test_shape_and_levels_are_read_in_effort_order():
    model = parse(thinking_shape="adaptive", effort_levels=["high", "low", "max"])
    assert model.thinking_shape == "adaptive" and model.effort_levels == ("low", "high", "max")
    assert parse(effort_levels=[]).effort_levels == ()


@pytest.mark.parametrize(("model", "needle"), [
    ({"thinking_shape": "budget"}, "models.default.thinking_shape: unknown thinking shape 'budget'"),
    ({"thinking_shape": 1}, "models.default.thinking_shape: expected a string"),
    ({"effort_levels": "high"}, "models.default.effort_levels: expected an array of strings"),
    ({"effort_levels": ["high", "ultra"]}, "models.default.effort_levels: unknown effort 'ultra'"),
])
def test_bad_values_are_load_errors(model, needle):
    with pytest.raises(ConfigError) as info:
        parse(**model)
    assert needle in str(info.value)

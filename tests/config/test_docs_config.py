"""docs/configuration.md cannot drift from the parser: every accepted key must be documented."""

from __future__ import annotations

import os

import pytest
from support.stack import ROOT

from occ.config import parse as config

DOC = os.path.join(ROOT, "docs", "configuration.md")


@pytest.mark.parametrize("keys", ["TOP_LEVEL_KEYS", "MODEL_KEYS", "PROVIDER_KEYS", "LOGGING_KEYS", "BREAKER_KEYS",
                                  "USAGE_KEYS", "PRICE_KEYS",
                                  "SHARED_STATE_KEYS"])
def test_every_config_key_is_documented(keys):
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    missing = sorted(k for k in getattr(config, keys) if f"`{k}`" not in text)
    assert not missing, f"undocumented config keys in {keys}: {missing}"

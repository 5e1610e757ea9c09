"""Shared fixtures: the real occ on hypercorn, a fake upstream, and the official SDK as client.

Everything listens on 127.0.0.1 port 0 and is started with ``await nursery.start(...)`` inside the
test's nursery, so it stops with the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest
import trio
from fake_upstream import FakeUpstream, start_fake

import occ
from occ.config.model import Config
from occ.config.parse import parse_config

# Keys in tests are recognisable so the log tests can grep for them.
TEST_KEY = "sk-test-SECRET-KEY-0123456789"


def fake_provider(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": f"{fake.url}/v1/chat/completions",
        "anthropic_base_url": f"{fake.url}/v1/messages",
        "responses_base_url": f"{fake.url}/v1/responses",
        "gemini_base_url": f"{fake.url}/v1beta/models",
        "api_key": TEST_KEY,
        "protocol": "openai",
        **extra,
    }


def make_config(fake: FakeUpstream, *, models: dict[str, Any] | None = None,
                fallbacks: dict[str, Any] | None = None, provider: dict[str, Any] | None = None,
                **top: Any) -> Config:
    """A config whose every model lives on the fake upstream (provider ``fake``)."""
    data: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "enable_streaming_scenario_routing": True,
        "providers": {"fake": fake_provider(fake, **(provider or {}))},
        "models": models or {"default": {"provider": "fake", "model_id": "model-a"}},
        "fallbacks": fallbacks or {},
        "logging": {"level": "info"},
        **top,
    }
    return parse_config(data, env={}, source="test")


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeUpstream:
    return await start_fake(nursery)


@pytest.fixture
def start_occ(nursery: trio.Nursery) -> Callable[[Config], Any]:
    """``url = await start_occ(config)``: the real server, on hypercorn, on an ephemeral port."""

    async def start(config: Config, app: Any = None) -> str:
        binds = await nursery.start(lambda task_status: occ.serve(config, app=app, task_status=task_status))
        return binds[0]

    return start


def sdk(url: str, **kwargs: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key-not-forwarded", max_retries=0, **kwargs)

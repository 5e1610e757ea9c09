"""The pieces every end-to-end test builds on: a config whose models all live on a fake upstream,
and the official SDK pointed at occ."""

from __future__ import annotations

import os
from typing import Any

import anthropic
import trio

from occ.config.model import Config
from occ.config.parse import parse_config
from support.fake_upstream import FakeUpstream, Reply, sse
from support.shapes import chunk, completion, usage_chunk

# Keys in tests are recognisable so the log tests can grep for them.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Keys in tests are recognisable so the log tests can grep for them.
TEST_KEY = "sk-test-SECRET-KEY-0123456789"

#: What a client that wants thinking blocks sends (without it occ sends none, as Anthropic does).
THINKING = {"type": "enabled", "budget_tokens": 1024}


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


def sdk(url: str, **kwargs: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key-not-forwarded", max_retries=0, **kwargs)


def chain(*ids: str, **model_extra: Any) -> dict[str, Any]:
    return {
        "models": {"default": {"provider": "fake", "model_id": ids[0], **model_extra}},
        "fallbacks": {"default": [{"provider": "fake", "model_id": i, **model_extra} for i in ids[1:]]},
    }


def by_model(replies: dict[str, Any]):
    """A responder that answers by the upstream model id the request names."""

    def respond(seen):
        reply = replies[seen.json["model"]]
        return reply(seen) if callable(reply) and not isinstance(reply, Reply) else reply

    return respond


def ok_stream(text: str = "ok"):
    """A healthy answer, streamed or not as the request asks."""

    def respond(seen):
        if seen.json.get("stream"):
            return Reply(chunks=sse(chunk({"content": text}), chunk(finish="stop"), usage_chunk()))
        return Reply(body=completion({"content": text}))

    return respond


async def wait_for_log(caplog, needle: str, logger: str = "occ.request") -> list[str]:
    """The request log line is written when the request ends, just after the response: wait for it."""
    with trio.fail_after(5):
        while True:
            lines = [r.getMessage() for r in caplog.records if r.name == logger]
            if any(needle in line for line in lines):
                return lines
            await trio.sleep(0.01)

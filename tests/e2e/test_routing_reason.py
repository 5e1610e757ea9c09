"""The routing reason through real occ: a streaming request whose tools alone exceed the threshold
goes to long_context, and without a long_context model the logged reason states the count without
claiming it was under the threshold."""

from __future__ import annotations

import logging

import trio
from support.fake_upstream import Reply
from support.shapes import USER
from support.stack import make_config, sdk

CHAT = "/v1/chat/completions"
TOOLS = [{"name": f"tool_{i}", "description": "does one thing well " * 5,
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}} for i in range(10_000)]


STREAM = Reply(headers={"content-type": "text/event-stream"},
               chunks=[b'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n',
                       b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
                       b"data: [DONE]\n\n"])


async def _reasons(caplog) -> list[str]:
    """The request log lines (written as the request ends, which may be just after the client is done)."""
    with trio.fail_after(10):
        while True:
            lines = [r.getMessage() for r in caplog.records if r.name == "occ.request" and "reason=" in r.getMessage()]
            if lines:
                return lines
            await trio.sleep(0.02)


async def _stream(url: str) -> None:
    with trio.fail_after(60):
        async with sdk(url).messages.stream(model="claude-sonnet-4-5", max_tokens=20, messages=USER,
                                            tools=TOOLS) as stream:
            await stream.get_final_message()


async def test_tools_route_a_stream_to_long_context(fake, start_occ, caplog):
    caplog.set_level(logging.INFO)
    fake.default(CHAT, STREAM)
    url = await start_occ(make_config(fake, enable_streaming_scenario_routing=False, models={
        "default": {"provider": "fake", "model_id": "model-a"},
        "long_context": {"provider": "fake", "model_id": "model-long", "context_threshold": 100_000}}))
    await _stream(url)
    assert ["model-long"] == [s.json["model"] for s in fake.requests(CHAT)]
    [line] = [m for m in await _reasons(caplog) if "long_context" in m]
    assert "tokens > threshold 100000" in line


async def test_without_long_context_the_logged_reason_agrees_with_its_count(fake, start_occ, caplog):
    caplog.set_level(logging.INFO)
    fake.default(CHAT, STREAM)
    url = await start_occ(make_config(fake, enable_streaming_scenario_routing=False))
    await _stream(url)
    [line] = [m for m in await _reasons(caplog) if "fast" in m]
    assert "<= 100000" not in line and "no models.long_context, so size does not route" in line

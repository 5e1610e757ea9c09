"""Tool input streams to the client as the upstream writes it, end to end: hypercorn, a fake
chat-completions upstream that pauses between argument fragments, and the official SDK, whose
``input_json`` events must show the first fragment long before the call is complete. A model family
known for broken argument JSON (GLM) is held and written whole, as before."""

from __future__ import annotations

import time

from support.fake_upstream import Reply, sse
from support.shapes import chunk, tool_delta, usage_chunk
from support.stack import make_config, sdk

CHAT = "/v1/chat/completions"
PIECES = ['{"file_path": "/tmp/a.py", "content": "', "def main():\\n", '    return 1\\n"}']
PAUSE_S = 0.4


def _slow_call() -> Reply:
    chunks: list[bytes | float] = []
    for i, piece in enumerate(PIECES):
        delta = tool_delta(0, "call_w1", "Write", piece) if i == 0 else tool_delta(0, None, None, piece)
        chunks += [*sse(chunk(delta), done=False), PAUSE_S]
    chunks += sse(chunk(finish="tool_calls"), usage_chunk())
    return Reply(chunks=chunks)


async def _input_events(url: str) -> tuple[list[tuple[float, str]], float, dict]:
    """(seconds after the request, partial_json) per input_json event, when the message ended, the input."""
    async with sdk(url) as client:
        started = time.monotonic()
        seen: list[tuple[float, str]] = []
        async with client.messages.stream(model="claude-x", max_tokens=100,
                                          messages=[{"role": "user", "content": "write it"}]) as stream:
            async for event in stream:
                if event.type == "input_json":
                    seen.append((time.monotonic() - started, event.partial_json))
            message = await stream.get_final_message()
        ended = time.monotonic() - started
    (block,) = message.content
    assert block.type == "tool_use" and message.stop_reason == "tool_use"
    return seen, ended, block.input


async def test_tool_arguments_reach_the_sdk_as_the_upstream_sends_them(fake, start_occ):
    fake.default(CHAT, _slow_call())
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "deepseek-v4"}}))
    seen, ended, tool_input = await _input_events(url)
    assert [piece for _, piece in seen] == PIECES
    first_at = seen[0][0]
    assert ended - first_at >= 2 * PAUSE_S * 0.8  # the first piece came while the model was still writing
    assert tool_input == {"file_path": "/tmp/a.py", "content": "def main():\n    return 1\n"}


async def test_a_buffered_family_gets_the_call_whole(fake, start_occ):
    fake.default(CHAT, _slow_call())
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "glm-5.1"}}))
    seen, ended, tool_input = await _input_events(url)
    assert len(seen) == 1 and ended - seen[0][0] < PAUSE_S
    assert tool_input == {"file_path": "/tmp/a.py", "content": "def main():\n    return 1\n"}

"""End to end through the real stack: the anthropic SDK -> occ on hypercorn -> a fake
chat-completions upstream on 127.0.0.1, for streaming and non-streaming requests."""

from __future__ import annotations

from typing import Any

import httpx
import trio
from support.anthropic_checker import check_stream
from support.fake_upstream import Reply, Seen, sse
from support.shapes import USER, chunk, completion, tool_delta, usage_chunk
from support.stack import TEST_KEY, THINKING, make_config, sdk

CHAT = "/v1/chat/completions"


async def _stream_raw(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{url}/v1/messages?beta=true", json=body)
        return response.status_code, response.content


async def test_text_stream_and_create(fake, start_occ):
    fake.queue(CHAT, Reply(chunks=sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}),
                                      chunk({"content": "lo!"}), chunk(finish="stop"),
                                      usage_chunk(900, 40, 512))))
    fake.queue(CHAT, Reply(body=completion({"content": "Hi there"})))
    url = await start_occ(make_config(fake))
    client = sdk(url)
    async with client.messages.stream(model="claude-sonnet-5-5", max_tokens=1000, messages=USER) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens,
            message.usage.cache_read_input_tokens) == (900 - 512, 40, 512)
    assert message.model == "claude-sonnet-5-5"

    created = await client.messages.create(model="claude-sonnet-5-5", max_tokens=1000, messages=USER)
    assert created.content[0].text == "Hi there"
    assert created.stop_reason == "end_turn"
    assert created.id.startswith("msg_")
    upstream = fake.requests(CHAT)
    assert upstream[0].json["stream"] is True
    assert upstream[0].json["stream_options"] == {"include_usage": True}
    assert upstream[1].json.get("stream") in (None, False)
    assert upstream[0].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert "client-key-not-forwarded" not in str(upstream[0].headers)


async def test_reasoning_then_text(fake, start_occ):
    fake.queue(CHAT, Reply(chunks=sse(chunk({"reasoning_content": "User wants "}),
                                      chunk({"reasoning_content": "a greeting."}),
                                      chunk({"content": "Hello"}), chunk(finish="stop"), usage_chunk())))
    url = await start_occ(make_config(fake))
    async with sdk(url).messages.stream(model="m", max_tokens=100, messages=USER, thinking=THINKING) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "User wants a greeting."
    assert message.content[0].signature.startswith("occ1.")


async def test_tool_call_as_first_block_is_index_0(fake, start_occ):
    fake.queue(CHAT, Reply(chunks=sse(chunk({"role": "assistant", "content": ""}),
                                      chunk(tool_delta(0, "call_a", "Bash", "")),
                                      chunk(tool_delta(0, None, None, '{"command":')),
                                      chunk(tool_delta(0, None, None, '"ls"}')),
                                      chunk(finish="tool_calls"), usage_chunk())))
    url = await start_occ(make_config(fake))
    status, raw = await _stream_raw(url, {"model": "m", "max_tokens": 100, "stream": True, "messages": USER})
    assert status == 200
    message = check_stream(raw)
    assert message["content"][0]["type"] == "tool_use"
    assert message["content"][0]["input"] == {"command": "ls"}
    assert message["stop_reason"] == "tool_use"


async def test_three_parallel_tool_calls(fake, start_occ):
    fake.queue(CHAT, Reply(chunks=sse(
        chunk(tool_delta(0, "call_1", "Read", '{"file_path":"a.py"}')),
        chunk(tool_delta(1, "call_2", "Read", '{"file_path":"b.py"}')),
        chunk(tool_delta(2, "call_3", "Grep", '{"pattern":"x"}'), finish="tool_calls"),
        usage_chunk())))
    url = await start_occ(make_config(fake))
    async with sdk(url).messages.stream(model="m", max_tokens=100, messages=USER) as stream:
        message = await stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in message.content] == [
        ("tool_use", "Read", {"file_path": "a.py"}),
        ("tool_use", "Read", {"file_path": "b.py"}),
        ("tool_use", "Grep", {"pattern": "x"}),
    ]
    assert message.stop_reason == "tool_use"


async def test_reasoning_text_and_tools_with_finish_stop(fake, start_occ):
    """finish_reason "stop" with tool calls still gives tool_use (protocols §7 item 6)."""
    fake.queue(CHAT, Reply(chunks=sse(chunk({"reasoning_content": "Need to look."}),
                                      chunk({"content": "Let me check."}),
                                      chunk(tool_delta(0, "call_x", "Bash", '{"command":"pwd"}')),
                                      chunk(finish="stop"), usage_chunk())))
    url = await start_occ(make_config(fake))
    async with sdk(url).messages.stream(model="m", max_tokens=100, messages=USER, thinking=THINKING) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.stop_reason == "tool_use"


def _deepseek_checker(seen: Seen) -> Reply:
    """Reject, as DeepSeek does, an assistant tool-call turn without reasoning_content."""
    for i, m in enumerate(seen.json["messages"]):
        if m["role"] == "assistant" and m.get("tool_calls") and "reasoning_content" not in m:
            return Reply(status=400, body={"error": {"message": f"Missing `reasoning_content` field in the "
                                                     f"assistant message at message index {i}",
                                                     "type": "invalid_request_error"}})
    return Reply(chunks=sse(chunk({"content": "Done: a.py"}), chunk(finish="stop"), usage_chunk()))


async def test_multi_turn_replays_reasoning_to_deepseek(fake, start_occ):
    fake.queue(CHAT, _deepseek_checker)
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "deepseek-v4-pro"}}))
    messages = [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should run ls.", "signature": "occ1."},
            {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "a.py"},
            {"type": "text", "text": "what did you find?"}]},
    ]
    async with sdk(url).messages.stream(model="m", max_tokens=100, messages=messages,
                                        tools=[{"name": "Bash", "input_schema": {"type": "object"}}]) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == "Done: a.py"
    sent = fake.requests(CHAT)[0].json["messages"]
    roles = [m["role"] for m in sent]
    assert roles == ["user", "assistant", "tool", "user"]
    assert sent[1]["reasoning_content"] == "I should run ls."
    assert sent[2]["tool_call_id"] == "call_1"


async def test_upstream_http_error_before_content_is_an_http_status(fake, start_occ):
    fake.default(CHAT, Reply(status=400, body={"error": {"message": "bad things in your request",
                                                          "type": "invalid_request_error"}}))
    url = await start_occ(make_config(fake))
    for stream in (True, False):
        status, raw = await _stream_raw(url, {"model": "m", "max_tokens": 10, "stream": stream, "messages": USER})
        assert status == 400
        assert b"bad things in your request" in raw
        assert b'"invalid_request_error"' in raw


async def test_truncated_stream_is_an_error_not_end_turn(fake, start_occ):
    fake.queue(CHAT, Reply(chunks=sse(chunk({"content": "partial answer"}), done=False)))
    url = await start_occ(make_config(fake))
    status, raw = await _stream_raw(url, {"model": "m", "max_tokens": 10, "stream": True, "messages": USER})
    assert status == 200
    message = check_stream(raw, allow_error=True)
    assert "error" in message
    assert b"end_turn" not in raw


async def test_upstream_connection_is_kept_alive_across_streams(fake, start_occ):
    """A stream's reader stops at ``[DONE]``; the connection must still go back to the pool (the
    fake, on hypercorn, sends the body's last chunk in a write of its own), or every turn of an
    agent session would pay a new TCP and TLS handshake."""
    for text in ("one", "two", "three"):
        fake.queue(CHAT, Reply(chunks=sse(chunk({"content": text}), chunk(finish="stop"), usage_chunk(10, 1))))
    url = await start_occ(make_config(fake))
    client = sdk(url)
    for text in ("one", "two", "three"):
        async with client.messages.stream(model="claude-sonnet-5-5", max_tokens=100, messages=USER) as stream:
            message = await stream.get_final_message()
        assert message.content[0].text == text
        with trio.fail_after(5):
            while True:  # the drain that returns the connection runs after the client's answer
                async with httpx.AsyncClient() as http:
                    stats = (await http.get(f"{url}/status")).json()["upstream_connections"]
                if stats["idle"] == 1:
                    break
                await trio.sleep(0.01)
    assert stats == {"opened": 1, "reused": 2, "sent": 3, "idle": 1, "busy": 0}

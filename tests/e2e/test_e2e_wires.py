"""End to end on the other wires: a fake Anthropic Messages upstream (raw passthrough, events split at
odd byte boundaries with long silences) and a fake Responses upstream, with the anthropic SDK as client."""

from __future__ import annotations

import json

import httpx
import trio
from support.anthropic_checker import check_stream, split_frames
from support.fake_upstream import Reply
from support.sdk_answers import Answer, gemini_stream, responses_body, responses_stream
from support.shapes import UPSTREAM, USER
from support.stack import TEST_KEY, THINKING, make_config, sdk

#: A Responses stream built from the openai SDK's own event types (reasoning with a summary and
#: encrypted content, text, two function calls), serialised by the SDK.
RESPONSES_STREAM = responses_stream(Answer(text="Listing now.", thinking="Need files.", signature="gAAAA-opaque",
                                           tools=(("Bash", {"command": "ls"}), ("Read", {"path": "a"})),
                                           usage=(500, 60), cached=100, model="gpt-5.5"))


def odd_splits(raw: bytes, silence_s: float) -> list[bytes | float]:
    parts: list[bytes | float] = []
    for i in range(0, len(raw), 37):
        parts.append(raw[i:i + 37])
        if i % (37 * 8) == 0:
            parts.append(silence_s)
    return parts


async def test_anthropic_passthrough_stream_with_silences(fake, start_occ):
    fake.default("/v1/messages", Reply(chunks=odd_splits(UPSTREAM, 0.25)))
    config = make_config(fake, heartbeat_interval_ms=100,
                         models={"default": {"provider": "fake", "model_id": "minimax-m3", "wire_format": "anthropic"}})
    url = await start_occ(config)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{url}/v1/messages?beta=true", json={
            "model": "claude-opus-4-8", "max_tokens": 100, "stream": True, "messages": USER,
            "context_management": {"edits": []}},
            headers={"anthropic-beta": "interleaved-thinking-2025-05-14,claude-code-20250219",
                     "x-api-key": "client-key"})
    frames = split_frames(response.content)
    assert "ping" in [name for name, _ in frames]
    message = check_stream(response.content)
    assert message["content"][0]["signature"] == "EqSig+/="
    assert message["model"] == "claude-opus-4-8"
    seen = fake.requests("/v1/messages")[0]
    assert seen.json["model"] == "minimax-m3" and "context_management" not in seen.json
    assert seen.headers["x-api-key"] == TEST_KEY and seen.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"

    fake.default("/v1/messages", Reply(chunks=odd_splits(UPSTREAM, 0.05)))
    async with sdk(url).messages.stream(model="claude-opus-4-8", max_tokens=100, messages=USER) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.stop_reason == "tool_use"


async def test_passthrough_overloaded_before_commit_falls_back(fake, start_occ):
    overloaded = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    fake.queue("/v1/messages", Reply(chunks=[UPSTREAM.split(b"event: ping")[0], overloaded]))
    fake.queue("/v1/messages", Reply(chunks=[UPSTREAM]))
    model = {"provider": "fake", "model_id": "minimax-m3", "wire_format": "anthropic"}
    url = await start_occ(make_config(fake, models={"default": model},
                                      fallbacks={"default": [{**model, "model_id": "qwen3.7-max"}]}))
    async with sdk(url).messages.stream(model="m", max_tokens=100, messages=USER) as stream:
        final = await stream.get_final_message()
    assert final.content[1].text == "Running."
    assert [s.json["model"] for s in fake.requests("/v1/messages")] == ["minimax-m3", "qwen3.7-max"]


async def test_responses_upstream_stream_and_create(fake, start_occ):
    fake.queue("/v1/responses", Reply(chunks=odd_splits(RESPONSES_STREAM, 0.01)))
    # built and serialised by the openai SDK: every field a real server sends, "error": null included
    fake.queue("/v1/responses", Reply(body=responses_body(Answer(text="plain", usage=(7, 2))).encode()))
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "gpt-5.5",
                                                                "wire_format": "responses"}}))
    client = sdk(url)
    async with client.messages.stream(model="m", max_tokens=100, messages=USER, thinking=THINKING) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.stop_reason == "tool_use"
    created = await client.messages.create(model="m", max_tokens=100, messages=USER)
    assert created.content[0].text == "plain" and created.usage.input_tokens == 7
    sent = fake.requests("/v1/responses")[0].json
    assert sent["stream"] is True and sent["input"][0]["role"] == "user"
    assert json.loads(fake.requests("/v1/responses")[1].body)["stream"] is False


async def test_non_streaming_responses_through_zens_url_form(fake, start_occ):
    """A Zen ``gpt-*`` model resolves to the Responses wire by the preset's table; its non-streaming
    answer (an SDK-built Response, ``"error": null``) is the model's answer, not a 502."""
    from occ.config.parse import parse_config

    fake.default("/zen/v1/responses", Reply(body=responses_body(Answer(text="Zen says hi", usage=(11, 3))).encode()))
    config = parse_config({"host": "127.0.0.1", "port": 0, "logging": {"level": "info"},
                           "providers": {"opencode-zen": {"api_key": TEST_KEY,
                                                          "responses_base_url": f"{fake.url}/zen/v1/responses"}},
                           "models": {"default": {"provider": "opencode-zen", "model_id": "gpt-5.5"}}},
                          env={}, source="test")
    client = sdk(await start_occ(config))
    for _ in range(3):  # a breaker counting the answer as a failure would open on a repeat
        created = await client.messages.create(model="m", max_tokens=100, messages=USER)
        assert created.content[0].text == "Zen says hi" and created.usage.input_tokens == 11
    assert fake.requests("/zen/v1/responses")[0].json["model"] == "gpt-5.5"


async def test_gemini_upstream_stream_with_key_header(fake, start_occ):
    # google-genai's own GenerateContentResponse, serialised by the SDK: thoughts, text, then the step's
    # calls with the signature on the first
    answer = Answer(text="I'll look.", thinking="Thinking it over", signature="sig", model="gemini-3.1-pro",
                    tools=(("Bash", {"command": "ls"}), ("Read", {"path": "a"})), usage=(100, 9), cached=40)
    path = "/v1beta/models/gemini-3.1-pro:streamGenerateContent"
    fake.default(path, Reply(chunks=odd_splits(gemini_stream(answer), 0.01)))
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "gemini-3.1-pro",
                                                                "wire_format": "gemini"}}))
    async with sdk(url).messages.stream(model="m", max_tokens=100, messages=USER, thinking=THINKING) as stream:
        final = await stream.get_final_message()
    # the call's signature arrived after text closed the thoughts: an empty thinking block carries it,
    # which the SDK's accumulator takes as Anthropic's own omitted-display thinking
    assert [b.type for b in final.content] == ["thinking", "text", "thinking", "tool_use", "tool_use"]
    # google-genai writes the signature's bytes as base64, as the API does: b"sig" is "c2ln"
    assert final.content[2].thinking == "" and final.content[2].signature.endswith("|c2ln")
    assert final.stop_reason == "tool_use"
    seen = fake.requests(path)[0]
    assert seen.query == "alt=sse" and seen.headers["x-goog-api-key"] == TEST_KEY
    assert "authorization" not in seen.headers


async def test_gemini_multi_turn_tool_results_end_to_end(fake, start_occ):
    """A tool call answered by Gemini, its result sent back through occ: the second upstream request
    carries one functionResponse per call, named after the calls, with the thought signature back (from the
    empty thinking block in front of the calls). A client that did not ask for thinking sees no thinking
    block and short ids: its next turn carries Google's placeholder instead."""
    from support.shapes import frame

    path = "/v1beta/models/gemini-3.1-pro:streamGenerateContent"
    fake.queue(path, Reply(chunks=[
        frame({"candidates": [{"content": {"parts": [{"text": "Plan: look.", "thought": True}]}}]}),
        frame({"candidates": [{"content": {"parts": [{"text": "Looking around."}]}}]}),
        frame({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "sig-1"},
            {"functionCall": {"name": "Read", "args": {"path": "a"}}}]}, "finishReason": "STOP"}]})]))
    fake.queue(path, Reply(chunks=[frame({"candidates": [{"content": {"parts": [{"text": "Found a.py"}]},
                                                           "finishReason": "STOP"}]})]))
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "gemini-3.1-pro",
                                                                "wire_format": "gemini"}}))
    tools = [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
             {"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
    client = sdk(url)
    async with client.messages.stream(model="m", max_tokens=2000, messages=USER, tools=tools,
                                      thinking=THINKING) as stream:
        first = await stream.get_final_message()
    assert [b.type for b in first.content] == ["thinking", "text", "thinking", "tool_use", "tool_use"]
    calls = [b for b in first.content if b.type == "tool_use"]
    history = [*USER, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b.id, "content": "ok"}
                                            for b in calls]}]
    async with client.messages.stream(model="m", max_tokens=100, messages=history, tools=tools) as stream:
        second = await stream.get_final_message()
    assert second.content[0].text == "Found a.py"
    contents = fake.requests(path)[1].json["contents"]
    model_calls = [p for p in contents[1]["parts"] if "functionCall" in p]
    responses = [p["functionResponse"]["name"] for p in contents[2]["parts"] if "functionResponse" in p]
    assert [c["functionCall"]["name"] for c in model_calls] == responses == ["Bash", "Read"]
    assert model_calls[0]["thoughtSignature"] == "sig-1" and "thoughtSignature" not in model_calls[1]

    fake.queue(path, Reply(chunks=[frame({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "sig-2"}]},
        "finishReason": "STOP"}]})]))
    fake.queue(path, Reply(chunks=[frame({"candidates": [{"content": {"parts": [{"text": "ok"}]},
                                                           "finishReason": "STOP"}]})]))
    async with client.messages.stream(model="m", max_tokens=100, messages=USER, tools=tools) as stream:
        unthinking = await stream.get_final_message()
    assert [b.type for b in unthinking.content] == ["tool_use"] and len(unthinking.content[0].id) == 30
    history = [*USER, {"role": "assistant", "content": [b.model_dump() for b in unthinking.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": unthinking.content[0].id,
                                             "content": "ok"}]}]
    async with client.messages.stream(model="m", max_tokens=100, messages=history, tools=tools) as stream:
        await stream.get_final_message()
    replayed = fake.requests(path)[3].json["contents"][1]["parts"][0]
    assert replayed["thoughtSignature"] == "skip_thought_signature_validator"


async def test_responses_multi_turn_tool_results_end_to_end(fake, start_occ):
    """The Responses call's result goes back as a function_call_output with the same call_id, and the
    reasoning item returns whole (id + encrypted content), never as a bare rs_ id."""
    fake.queue("/v1/responses", Reply(chunks=[RESPONSES_STREAM]))
    fake.queue("/v1/responses", Reply(chunks=[responses_stream(Answer(text="done", usage=(9, 1)))]))
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "gpt-5.5",
                                                                "wire_format": "responses"}}))
    client = sdk(url)
    async with client.messages.stream(model="m", max_tokens=100, messages=USER, thinking=THINKING) as stream:
        first = await stream.get_final_message()
    calls = [b for b in first.content if b.type == "tool_use"]
    history = [*USER, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b.id, "content": "ok"}
                                            for b in calls]}]
    async with client.messages.stream(model="m", max_tokens=100, messages=history, thinking=THINKING) as stream:
        second = await stream.get_final_message()
    assert second.content[0].text == "done"
    items = fake.requests("/v1/responses")[1].json["input"]
    assert [i["type"] for i in items] == ["message", "reasoning", "message", "function_call", "function_call",
                                          "function_call_output", "function_call_output"]
    assert items[1]["id"] == "rs_1" and items[1]["encrypted_content"] == "gAAAA-opaque"
    assert [i["call_id"] for i in items[5:]] == ["call_0_Bash", "call_1_Read"]


PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo" * 8}}


async def test_history_images_never_reach_a_text_only_model_on_any_wire(fake, start_occ):
    """Routing keeps a turn that adds an image away from ``vision: false`` models, but earlier
    turns' images stay in the history: every wire must replace them, or each later turn fails."""
    history = [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, PNG]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read",
                                           "input": {"file_path": "/a.png"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [PNG]}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "thanks, now write a haiku"},
    ]
    tools = [{"name": "Read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}]
    fake.default("/v1/messages", Reply(chunks=[UPSTREAM]))
    fake.default("/v1/responses", Reply(chunks=[RESPONSES_STREAM]))
    for wire, path in (("anthropic", "/v1/messages"), ("responses", "/v1/responses")):
        model = {"provider": "fake", "model_id": f"text-only-{wire}", "wire_format": wire, "vision": False}
        url = await start_occ(make_config(fake, models={"default": model}))
        with trio.fail_after(10):
            async with sdk(url).messages.stream(model="m", max_tokens=100, messages=history, tools=tools) as s:
                await s.get_final_message()
        sent = fake.requests(path)[-1]
        assert b"iVBORw0KGgo" not in sent.body, wire
        assert sent.body.count(b"[Image]") == 2, wire


def test_without_images_leaves_everything_else_as_it_was():
    from occ.translate.anthropic_request import without_images

    request = {"model": "m", "messages": [
        {"role": "user", "content": "plain"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"},
                                     {"type": "tool_result", "tool_use_id": "t2", "content": "text"},
                                     {"type": "tool_result", "tool_use_id": "t3", "content": [PNG]}]}]}
    scrubbed, count = without_images(request)
    assert count == 1
    assert scrubbed["messages"][0] == request["messages"][0]
    first, second, third = scrubbed["messages"][1]["content"]
    assert first == {"type": "tool_result", "tool_use_id": "t1"}  # no content key invented
    assert second["content"] == "text" and third["content"] == [{"type": "text", "text": "[Image]"}]
    assert request["messages"][1]["content"][2]["content"] == [PNG]  # the client's request is untouched
    assert without_images({"messages": [{"role": "user", "content": "x"}]})[1] == 0

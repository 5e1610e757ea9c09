"""Anthropic <-> OpenAI chat completions, sans-IO: request rules, response and stream translation,
one test per protocols.md §7 edge case that concerns chat completions, and property tests over
arbitrary chunk splits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.anthropic_checker import check_stream

from occ.config.model import ModelConfig
from occ.core.errors import UpstreamProtocolError, UpstreamStatus
from occ.core.sse import SSEDecoder
from occ.translate.anthropic_events import AnthropicStreamBuilder
from occ.translate.openai_chat import ChatStreamTranslator, build_request, translate_response
from occ.translate.tool_ids import from_upstream_id, to_upstream_id
from occ.translate.tool_schema import harden_schema, openai_tools

MODEL = ModelConfig(provider="p", model_id="kimi-k2.6", max_tokens=8192)
DEEPSEEK = ModelConfig(provider="p", model_id="deepseek-v4-pro")


def c(delta: dict | None = None, finish: str | None = None, **extra: Any) -> dict:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}}
    if finish:
        choice["finish_reason"] = finish
    return {"id": "x", "choices": [choice], **extra}


def tc(index: int | None, call_id: str | None, name: str | None, args: str | None) -> dict:
    call: dict[str, Any] = {"function": {}}
    if index is not None:
        call["index"] = index
    if call_id:
        call["id"] = call_id
    if name:
        call["function"]["name"] = name
    if args is not None:
        call["function"]["arguments"] = args
    return {"tool_calls": [call]}


USAGE = {"id": "x", "choices": [], "usage": {"prompt_tokens": 900, "completion_tokens": 40,
                                             "prompt_tokens_details": {"cached_tokens": 512}}}


def encode(chunks: list[Any], done: bool = True) -> bytes:
    out = b"".join(f"data: {json.dumps(x) if not isinstance(x, str) else x}\n\n".encode() for x in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def run(raw: bytes, splits: list[int] | None = None, *, allow_error: bool = False) -> dict:
    builder = AnthropicStreamBuilder(message_id="msg_t", model="claude-x", input_tokens=50)
    translator = ChatStreamTranslator(builder)
    decoder = SSEDecoder()
    points = sorted(set(splits or []))
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    out = b""
    try:
        for chunk in chunks:
            for event in decoder.feed(chunk):
                translator.feed(event)
            out += builder.take()
        for event in decoder.close():
            translator.feed(event)
        translator.close()
    except (UpstreamProtocolError, UpstreamStatus) as exc:
        if not allow_error:
            raise
        builder.error(exc)
    return check_stream(out + builder.take(), allow_error=allow_error)


def kinds(message: dict) -> list[str]:
    return [b["type"] for b in message["content"]]


# -- request ------------------------------------------------------------------------------------------


def test_edge_25_28_system_folding_and_billing_header_stripped():
    body = build_request({
        "model": "x", "max_tokens": 100,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=abc123;"},
                   {"type": "text", "text": "You are Claude.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "system", "content": [{"type": "text", "text": "# Environment"}],
                      "output_config": {"effort": "medium"}},
                     {"role": "user", "content": [{"type": "text", "text": "go"}]}]}, MODEL, stream=False)
    assert body["messages"][0] == {"role": "system", "content": "You are Claude.\n\n# Environment"}
    assert "cch=" not in json.dumps(body)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "hi\ngo"
    assert body["reasoning_effort"] == "medium"


def test_tool_results_come_first_in_call_order_with_errors_marked():
    body = build_request({"model": "x", "max_tokens": 10, "messages": [
        {"role": "user", "content": "do"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "A", "input": {}},
            {"type": "tool_use", "id": "call_2", "name": "B", "input": {"x": 1}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "and now?"},
            {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "ok"}]},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "bad", "is_error": True}]}]},
        DEEPSEEK, stream=True)
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool", "user"]
    assert msgs[1]["content"] is None and msgs[1]["reasoning_content"] == ""
    assert msgs[1]["tool_calls"][1]["function"]["arguments"] == '{"x":1}'
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_1", "content": "ok"}
    assert msgs[3]["content"] == "Error: bad"
    assert body["stream_options"] == {"include_usage": True}


def test_edge_35_orphan_tool_call_gets_a_stub_result():
    body = build_request({"model": "x", "max_tokens": 10, "messages": [
        {"role": "user", "content": "do"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "A", "input": {}}]},
        {"role": "user", "content": "never mind"}]}, MODEL, stream=False)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "user"]
    assert body["messages"][2]["content"] == "(no result)"


def test_edge_32_33_reasoning_content_replayed_for_deepseek_and_kimi_only():
    request = {"model": "x", "max_tokens": 10, "messages": [
        {"role": "user", "content": "do"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "plan", "signature": "occ1."},
                                          {"type": "tool_use", "id": "c1", "name": "A", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "r"}]}]}
    assert build_request(request, DEEPSEEK, stream=False)["messages"][1]["reasoning_content"] == "plan"
    assert build_request(request, MODEL, stream=False)["messages"][1]["reasoning_content"] == "plan"
    other = ModelConfig(provider="p", model_id="llama-3")
    assert "reasoning_content" not in build_request(request, other, stream=False)["messages"][1]


def test_edge_13_kimi_ids_round_trip():
    anthropic_id = from_upstream_id("functions.Bash:0")
    assert anthropic_id.startswith("occ-") and all(ch.isalnum() or ch in "-_" for ch in anthropic_id)
    assert to_upstream_id(anthropic_id) == "functions.Bash:0"
    assert from_upstream_id("call_abc") == "call_abc" and to_upstream_id("toolu_01") == "toolu_01"
    assert from_upstream_id(None).startswith("toolu_")


def test_edge_48_49_images_on_text_only_and_max_tokens_clamped():
    logs: list[str] = []
    text_only = ModelConfig(provider="p", model_id="m", vision=False, max_tokens=8192)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    body = build_request({"model": "x", "max_tokens": 64000, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "see"}, image]}]}, text_only, stream=False,
        log=logs.append)
    assert body["messages"][0]["content"] == "see\n[Image]"
    assert body["max_tokens"] == 8192 and "clamped" in logs[0]
    vision = build_request({"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": [image]}]},
                           MODEL, stream=False)
    assert vision["messages"][0]["content"][0]["image_url"]["url"] == "data:image/png;base64,AAAA"


def test_tool_choice_stop_sequences_and_temperature():
    body = build_request({"model": "x", "max_tokens": 5, "temperature": 0, "stop_sequences": list("abcde"),
                          "tool_choice": {"type": "tool", "name": "A", "disable_parallel_tool_use": True},
                          "tools": [{"name": "A", "input_schema": {"type": "object"}}],
                          "messages": [{"role": "user", "content": "x"}]}, MODEL, stream=False)
    assert body["tool_choice"] == {"type": "function", "function": {"name": "A"}}
    assert body["parallel_tool_calls"] is False
    assert body["stop"] == ["a", "b", "c", "d"] and body["temperature"] == 0


@pytest.mark.parametrize(("schema", "expected"), [
    (None, {"type": "object", "properties": {}, "additionalProperties": False}),
    ({}, {"type": "object", "properties": {}, "additionalProperties": False}),
    (" null ", {"type": "object", "properties": {}, "additionalProperties": False}),
    ("{bad", {"type": "object", "properties": {}, "additionalProperties": False}),
    ({"type": "string"}, {"type": "object", "properties": {}}),
    ({"properties": []}, {"type": "object", "properties": {}}),
    ({"type": "object", "required": None, "additionalProperties": True, "$schema": "x"},
     {"type": "object", "properties": {}, "additionalProperties": True, "$schema": "x"}),
])
def test_edge_07_schema_hardening(schema, expected):
    assert harden_schema(schema) == expected


def test_tools_skip_blank_names_and_server_tools():
    tools = openai_tools([{"name": " ", "input_schema": {}}, {"type": "web_search_20250305", "name": "web_search"},
                          {"name": "Read", "input_schema": None, "defer_loading": True, "cache_control": {}},
                          {"name": "x" * 80, "input_schema": {"type": "object"}}])
    assert tools[0]["function"]["name"] == "Read"
    assert len(tools) == 2 and len(tools[1]["function"]["name"]) <= 64


# -- non-streaming response ----------------------------------------------------------------------------


def test_response_reasoning_text_tools_and_cached_usage():
    message = translate_response({"choices": [{"message": {
        "role": "assistant", "content": "Checking.", "reasoning_content": "think",
        "tool_calls": [{"id": "functions.Bash:0", "type": "function",
                        "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]},
        "finish_reason": "stop"}], "usage": {"prompt_tokens": 100, "completion_tokens": 9,
                                             "prompt_tokens_details": {"cached_tokens": 60}}},
        message_id="msg_1", model_name="claude-x", input_estimate=5)
    assert kinds(message) == ["thinking", "text", "tool_use"]
    assert message["stop_reason"] == "tool_use"
    assert message["content"][2]["id"].startswith("occ-")
    assert message["usage"] == {"input_tokens": 40, "output_tokens": 9, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 60}


def test_response_minimax_think_tags_and_length():
    message = translate_response({"choices": [{"message": {"content": "<think>hm</think>\n\nHello"},
                                               "finish_reason": "length"}]},
                                 message_id="m", model_name="c", input_estimate=5)
    assert kinds(message) == ["thinking", "text"] and message["stop_reason"] == "max_tokens"
    with pytest.raises(UpstreamStatus):
        translate_response({"error": {"message": "nope", "code": 429}}, message_id="m", model_name="c",
                           input_estimate=1)


# -- stream --------------------------------------------------------------------------------------------


def test_edge_01_first_tool_call_is_index_0_and_empty_content_opens_nothing():
    m = run(encode([c({"role": "assistant", "content": ""}), c(tc(0, "call_a", "Bash", "")),
                    c(tc(0, None, None, '{"command":"ls"}')), c(finish="tool_calls"), USAGE]))
    assert kinds(m) == ["tool_use"] and m["stop_reason"] == "tool_use"


def test_edge_02_04_parallel_calls_and_several_in_one_chunk():
    chunk = c({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "A", "arguments": "{}"}},
                              {"index": 1, "id": "b", "function": {"name": "B", "arguments": '{"x":1}'}}]})
    m = run(encode([chunk, c(tc(2, "c", "C", "{}"), finish="tool_calls")]))
    assert [b["name"] for b in m["content"]] == ["A", "B", "C"]


def test_edge_03_calls_without_index_and_all_at_index_0():
    m = run(encode([c(tc(None, "a", "A", '{"p":')), c(tc(None, None, None, "1}")), c(tc(None, "b", "B", "{}")),
                    c(finish="tool_calls")]))
    assert [(b["name"], b["input"]) for b in m["content"]] == [("A", {"p": 1}), ("B", {})]
    m = run(encode([c(tc(0, "a", "A", "{}")), c(tc(0, "b", "B", "{}")), c(finish="tool_calls")]))
    assert [b["name"] for b in m["content"]] == ["A", "B"]


def test_edge_05_done_without_finish_reason_after_content():
    m = run(encode([c({"content": "hi"})]))
    assert m["stop_reason"] == "end_turn"
    m = run(encode([c(tc(0, "a", "A", '{"x": 2}'))]))
    assert m["stop_reason"] == "tool_use"


def test_edge_06_finish_stop_with_tool_calls_is_tool_use():
    assert run(encode([c(tc(0, "a", "A", "{}")), c(finish="stop")]))["stop_reason"] == "tool_use"


def test_edge_08_empty_arguments_are_an_empty_object():
    m = run(encode([c(tc(0, "a", "A", "")), c(finish="tool_calls")]))
    assert m["content"][0]["input"] == {}


def test_edge_09_arguments_before_id_and_name():
    m = run(encode([c(tc(0, None, None, '{"q":')), c(tc(0, "a", "Grep", '"x"}')), c(finish="tool_calls")]))
    assert m["content"][0] == {"type": "tool_use", "id": "a", "name": "Grep", "input": {"q": "x"}}


def test_edge_10_arguments_only_with_the_finish():
    m = run(encode([c(tc(0, "a", "A", None)), c(tc(0, None, None, '{"k":true}'), finish="tool_calls")]))
    assert m["content"][0]["input"] == {"k": True}


def test_edge_16_usage_only_chunk_null_choices_and_exact_numbers():
    m = run(encode([c({"content": "hi"}), c(finish="stop"),
                    {"id": "x", "choices": None, "usage": {"prompt_tokens": 10, "completion_tokens": 2,
                                                           "prompt_cache_hit_tokens": 4}}]))
    assert m["usage"]["input_tokens"] == 6 and m["usage"]["cache_read_input_tokens"] == 4
    assert m["usage"]["output_tokens"] == 2


def test_edge_17_error_inside_a_200_stream():
    m = run(encode([c({"content": "partial"}), {"error": {"message": "overloaded", "code": 503}}]),
            allow_error=True)
    assert m["error"]["type"] in ("overloaded_error", "api_error")


def test_edge_18_comments_are_ignored():
    raw = b": OPENROUTER PROCESSING\n\n" + encode([c({"content": "a"}), c(finish="stop")])
    assert run(raw)["content"][0]["text"] == "a"


def test_edge_20_truncated_stream_is_an_error_never_end_turn():
    m = run(encode([c({"content": "half"})], done=False), allow_error=True)
    assert "error" in m and m.get("stop_reason") is None


def test_edge_29_30_no_empty_text_or_whitespace_thinking_blocks():
    m = run(encode([c({"content": ""}), c({"reasoning_content": "  \n"}), c({"content": "\n\n"}),
                    c(tc(0, "a", "A", "{}")), c(finish="tool_calls")]))
    assert kinds(m) == ["tool_use"]


def test_edge_37_minimax_think_tags_split_across_chunks():
    m = run(encode([c({"content": "<th"}), c({"content": "ink>reason"}), c({"content": "ing</thi"}),
                    c({"content": "nk>Answer"}), c(finish="stop")]))
    assert kinds(m) == ["thinking", "text"]
    assert m["content"][0]["thinking"] == "reasoning" and m["content"][1]["text"] == "Answer"


def test_reasoning_field_variants_pick_one_source():
    m = run(encode([c({"reasoning": "r1", "reasoning_content": "r1"}), c({"reasoning": "r2"}),
                    c({"content": "t"}), c(finish="stop")]))
    assert m["content"][0]["thinking"] == "r1r2"


def test_failed_finish_reason_is_a_retryable_error():
    with pytest.raises(UpstreamStatus):
        run(encode([c(finish="insufficient_system_resource")]))


# -- property tests ------------------------------------------------------------------------------------

pieces = st.one_of(
    st.builds(lambda t: ("text", t), st.text(min_size=1, max_size=12)),
    st.builds(lambda t: ("reasoning", t), st.text(min_size=1, max_size=12)),
    st.builds(lambda n, a: ("tool", n, a), st.sampled_from(["Bash", "Read", "Edit"]),
              st.dictionaries(st.sampled_from(["a", "b", "path"]), st.one_of(st.integers(), st.text(max_size=8)),
                              max_size=3)),
)


def make_stream(script: list[tuple]) -> bytes:
    chunks: list[Any] = []
    tool_index = 0
    for step in script:
        if step[0] == "text":
            chunks.append(c({"content": step[1]}))
        elif step[0] == "reasoning":
            chunks.append(c({"reasoning_content": step[1]}))
        else:
            args = json.dumps(step[2], ensure_ascii=False)
            half = len(args) // 2
            chunks.append(c(tc(tool_index, f"call_{tool_index}", step[1], args[:half])))
            chunks.append(c(tc(tool_index, None, None, args[half:])))
            tool_index += 1
    chunks.append(c(finish="tool_calls" if tool_index else "stop"))
    chunks.append(USAGE)
    return encode(chunks)


@settings(max_examples=120, deadline=None)
@given(st.lists(pieces, min_size=1, max_size=8), st.data())
def test_any_generated_stream_any_split_is_valid_and_identical(script, data):
    raw = make_stream(script)
    whole = run(raw)
    splits = data.draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=15))
    assert run(raw, splits) == {**whole, "id": whole["id"]}
    tools = [s for s in script if s[0] == "tool"]
    assert [b["input"] for b in whole["content"] if b["type"] == "tool_use"] == [t[2] for t in tools]
    assert whole["usage"]["output_tokens"] == 40


def test_a_failed_attempt_leaves_nothing_held_for_the_next():
    builder = AnthropicStreamBuilder(message_id="msg_t", model="claude-x", input_tokens=5)
    builder.text("   ")
    builder.thinking("\n")
    builder.forget_uncommitted()
    builder.text("Hi")
    builder.finish("end_turn")
    assert check_stream(builder.take())["content"] == [{"type": "text", "text": "Hi"}]


def test_edge_15_long_mcp_tool_names_shortened_and_restored():
    long_name = "mcp__some_server__" + "a_very_long_tool_name_" * 3
    body = build_request({"model": "x", "max_tokens": 5, "tools": [{"name": long_name, "input_schema": {}}],
                          "messages": [{"role": "user", "content": "x"},
                                       {"role": "assistant", "content": [{"type": "tool_use", "id": "c1",
                                                                          "name": long_name, "input": {}}]},
                                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1",
                                                                     "content": "ok"}]}]}, MODEL, stream=True)
    short = body["tools"][0]["function"]["name"]
    assert len(short) <= 64 and body["messages"][1]["tool_calls"][0]["function"]["name"] == short
    builder = AnthropicStreamBuilder(message_id="msg_t", model="claude-x", input_tokens=5)
    translator = ChatStreamTranslator(builder, tool_names=[long_name])
    for event in SSEDecoder().feed(encode([c(tc(0, "a", short, "{}")), c(finish="tool_calls")])):
        translator.feed(event)
    assert check_stream(builder.take())["content"][0]["name"] == long_name


def test_client_effort_only_reaches_families_that_take_it():
    request = {"model": "x", "max_tokens": 5, "thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"},
               "messages": [{"role": "user", "content": "x"}]}
    assert build_request(request, MODEL, stream=False)["reasoning_effort"] == "medium"
    plain = ModelConfig(provider="p", model_id="llama-3.3-70b")
    assert "reasoning_effort" not in build_request(request, plain, stream=False)
    configured = ModelConfig(provider="p", model_id="llama-3.3-70b", reasoning_effort="high")
    assert build_request(request, configured, stream=False)["reasoning_effort"] == "high"

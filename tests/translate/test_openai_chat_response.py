"""Non-streaming chat completion -> Anthropic message: recorded provider shapes and one test per rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from occ.core.errors import UpstreamProtocolError, UpstreamStatus
from occ.translate.openai_chat import translate_response
from occ.translate.tool_ids import to_upstream_id

FIXTURES = Path(__file__).parent.parent / "support" / "fixtures" / "chat"


def translate(body: Any) -> dict[str, Any]:
    return translate_response(body, message_id="msg_01", model_name="claude-occ-default", input_estimate=77)


def completion(message: dict[str, Any], finish: str | None = "stop", usage: dict[str, Any] | None = None) -> dict:
    out: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
                           "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                        "finish_reason": finish}]}
    if usage is not None:
        out["usage"] = usage
    return out


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def kinds(message: dict[str, Any]) -> list[str]:
    return [b["type"] for b in message["content"]]


def test_deepseek_reasoning_and_tool_call_with_cached_usage():
    m = translate(fixture("deepseek_tool.json"))
    assert m["id"] == "msg_01" and m["model"] == "claude-occ-default" and m["type"] == "message"
    assert m["content"] == [{"type": "thinking", "thinking": "Need the tree.", "signature": "occ1."},
                            {"type": "tool_use", "id": "call_00_abc", "name": "Bash",
                             "input": {"command": "tree -L 2"}}]
    assert m["stop_reason"] == "tool_use" and m["stop_sequence"] is None
    assert m["usage"] == {"input_tokens": 160, "output_tokens": 33, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 3840}


def test_kimi_ids_are_encoded_and_moonshot_cached_tokens_counted():
    m = translate(fixture("kimi_functions_ids.json"))
    assert [to_upstream_id(b["id"]) for b in m["content"] if b["type"] == "tool_use"] == [
        "functions.Read:0", "functions.Read:1"]
    assert m["usage"]["input_tokens"] == 132 and m["usage"]["cache_read_input_tokens"] == 768


def test_minimax_think_tags_in_content():
    m = translate(fixture("minimax_think.json"))
    assert kinds(m) == ["thinking", "text"]
    assert m["content"][0]["thinking"].strip() == "Short answer." and m["content"][1]["text"].strip() == "Hi there."


def test_an_error_body_is_an_upstream_status():
    with pytest.raises(UpstreamStatus) as info:
        translate(fixture("openai_error.json"))
    assert info.value.upstream_status == 429 and "Rate limit" in str(info.value)


def test_reasoning_text_and_calls_in_one_message_keep_that_order():
    m = translate(completion({"content": "Checking.", "reasoning_content": "think", "tool_calls": [
        {"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": '{"command":"ls"}'}}]},
        "stop"))
    assert kinds(m) == ["thinking", "text", "tool_use"] and m["stop_reason"] == "tool_use"
    assert m["content"][2]["id"].startswith("occ-") and to_upstream_id(m["content"][2]["id"]) == "functions.Bash:0"


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), ("sensitive", "refusal"),
    (None, "end_turn"), ("tool_calls", "end_turn"),
])
def test_finish_reason_mapping(finish, stop):
    assert translate(completion({"content": "x"}, finish))["stop_reason"] == stop


def test_edge_06_stop_with_a_tool_call_is_tool_use():
    m = translate(completion({"content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "A", "arguments": "{}"}}]}, "stop"))
    assert m["stop_reason"] == "tool_use" and kinds(m) == ["tool_use"]


@pytest.mark.parametrize("finish", ["insufficient_system_resource", "error", "network_error"])
def test_failure_finish_reasons_are_retryable(finish):
    with pytest.raises(UpstreamStatus) as info:
        translate(completion({"content": "x"}, finish))
    assert info.value.upstream_status == 503


@pytest.mark.parametrize("junk", [None, [], "text", {"choices": []}, {"choices": ["x"]}, {"id": "x"}])
def test_junk_is_a_protocol_error(junk):
    with pytest.raises(UpstreamProtocolError):
        translate(junk)


@pytest.mark.parametrize("calls", [
    [{"id": "c1", "function": {"arguments": "{}"}}],
    ["not a call"],
    [{"id": "c1", "function": {"name": "A", "arguments": "{broken"}}],
    [{"id": "c1", "function": {"name": "A", "arguments": "[1]"}}],
])
def test_unusable_tool_calls_are_protocol_errors(calls):
    with pytest.raises(UpstreamProtocolError):
        translate(completion({"content": None, "tool_calls": calls}))


@pytest.mark.parametrize(("arguments", "expected"), [
    ("", {}), (None, {}), ({"a": 1}, {"a": 1}), (json.dumps('{"a": 1}'), {"a": 1}), ('{"a": [1]}', {"a": [1]}),
])
def test_edge_08_tool_arguments_normalised(arguments, expected):
    m = translate(completion({"tool_calls": [{"id": "c1", "function": {"name": "A", "arguments": arguments}}]}))
    assert m["content"][0]["input"] == expected


def test_edge_12_missing_and_duplicate_ids_become_unique():
    m = translate(completion({"tool_calls": [
        {"id": "dup", "function": {"name": "A", "arguments": "{}"}},
        {"id": "dup", "function": {"name": "B", "arguments": "{}"}},
        {"function": {"name": "C", "arguments": "{}"}}]}, "tool_calls"))
    ids = [b["id"] for b in m["content"]]
    assert ids[0] == "dup" and len(set(ids)) == 3 and ids[2].startswith("toolu_")


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_fields(field):
    m = translate(completion({field: "why", "content": "because"}))
    assert m["content"][0] == {"type": "thinking", "thinking": "why", "signature": "occ1."}


def test_reasoning_details_when_no_other_field():
    m = translate(completion({"content": "ok", "reasoning_details": [{"type": "reasoning.text", "text": "hm"}]}))
    assert m["content"][0]["thinking"] == "hm"


def test_edge_29_30_empty_text_and_whitespace_reasoning_make_no_blocks():
    m = translate(completion({"content": "  ", "reasoning_content": "\n"}))
    assert m["content"] == [] and m["stop_reason"] == "end_turn"


def test_refusal_field_is_text_with_stop_reason_refusal():
    m = translate(completion({"content": None, "refusal": "I can't help with that."}))
    assert m["content"] == [{"type": "text", "text": "I can't help with that."}] and m["stop_reason"] == "refusal"


def test_content_parts_are_joined():
    m = translate(completion({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}))
    assert m["content"] == [{"type": "text", "text": "ab"}]


def test_missing_usage_falls_back_to_the_estimate():
    assert translate(completion({"content": "x"}))["usage"]["input_tokens"] == 77


@pytest.mark.parametrize("error", [
    {"error": {"message": "bad key", "type": "authentication_error", "code": "invalid_api_key"}},
    {"object": "error", "message": "no such model", "type": "NotFoundError", "code": 404},
])
def test_error_bodies_keep_their_status(error):
    with pytest.raises(UpstreamStatus) as info:
        translate(error)
    assert info.value.upstream_status in (401, 404)

"""The Anthropic-native passthrough: faithful bodies, named rules, event-aligned relay."""

from __future__ import annotations

import json

import pytest
from anthropic_checker import check_stream, translate_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.config import ModelConfig
from occ.errors import UpstreamProtocolError, UpstreamStatus
from occ.sse import SSEDecoder
from occ.translate.anthropic_events import AnthropicStreamBuilder
from occ.translate.anthropic_passthrough import (
    AnthropicPassthroughTranslator,
    build_body,
    forward_headers,
    translate_response,
)

MODEL = ModelConfig(provider="opencode-go", model_id="minimax-m3", max_tokens=8192)


def test_only_model_is_replaced_whatever_the_whitespace():
    raw = b'{ "model" :  "claude-opus-4-8",\n "zeta": 1, "messages": [{"role": "user", "content": "hi", ' \
          b'"model": "nested"}], "alpha": {"cache_control": {"type": "ephemeral"}}, "max_tokens": 100}'
    out = json.loads(build_body(raw, {}, MODEL))
    assert out["model"] == "minimax-m3"
    assert list(out) == ["model", "zeta", "messages", "alpha", "max_tokens"]
    assert out["messages"][0]["model"] == "nested"
    assert out["alpha"] == {"cache_control": {"type": "ephemeral"}}


@pytest.mark.parametrize("raw", [b'{"messages": []}', b'{"model": 5}', b"[1,2]", b"not json"])
def test_body_without_string_model_is_sent_unchanged(raw):
    assert build_body(raw, {}, MODEL) is raw


def test_rules_context_management_custom_tools_occ_thinking_and_cap():
    body = {
        "model": "claude", "max_tokens": 64000,
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "tools": [{"type": "custom", "name": "mcp__x", "input_schema": {"type": "object"}},
                  {"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "occ1.abc"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "EqRealSig"},
                                              {"type": "thinking", "thinking": "u", "signature": "occ1."},
                                              {"type": "text", "text": "x"}]},
        ],
    }
    out = json.loads(build_body(json.dumps(body).encode(), body, MODEL))
    assert "context_management" not in out
    assert out["tools"][0] == {"name": "mcp__x", "input_schema": {"type": "object"}}
    assert out["messages"][1]["content"] == [{"type": "text", "text": "(thinking omitted)"}]
    assert out["messages"][2]["content"][0]["signature"] == "EqRealSig"
    assert len(out["messages"][2]["content"]) == 2
    assert out["max_tokens"] == 8192


def test_headers_forward_version_and_allowed_betas_never_keys():
    headers = forward_headers({"anthropic-version": "2023-06-01", "x-api-key": "secret",
                               "authorization": "Bearer secret",
                               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
                                                 "context-management-2025-06-27"})
    assert headers == {"anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14"}
    assert forward_headers({}) == {"anthropic-version": "2023-06-01"}


def ev(data: dict) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


UPSTREAM = b"".join([
    ev({"type": "message_start", "message": {"id": "msg_up", "type": "message", "role": "assistant",
                                             "model": "minimax-m3", "content": [], "stop_reason": None,
                                             "stop_sequence": None, "usage": {"input_tokens": 321,
                                                                              "output_tokens": 1}}}),
    ev({"type": "ping"}),
    ev({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                      "signature": ""}}),
    ev({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm é"}}),
    ev({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqSig+/="}}),
    ev({"type": "content_block_stop", "index": 0}),
    ev({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
    ev({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Running."}}),
    ev({"type": "content_block_stop", "index": 1}),
    ev({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                      "name": "Bash", "input": {}}}),
    ev({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"comm'}}),
    ev({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta",
                                                              "partial_json": 'and": "ls"}'}}),
    ev({"type": "content_block_stop", "index": 2}),
    ev({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 42}}),
    ev({"type": "message_stop"}),
])


def relay(chunks: list[bytes]) -> tuple[bytes, AnthropicStreamBuilder]:
    return translate_chunks(AnthropicPassthroughTranslator, chunks, model="claude-occ-default", input_tokens=100)


def test_stream_relayed_whole_with_signatures_intact():
    out, builder = relay([UPSTREAM])
    message = check_stream(out)
    assert message["model"] == "claude-occ-default"
    assert message["usage"]["input_tokens"] == 321
    assert message["content"][0]["signature"] == "EqSig+/="
    assert message["content"][2]["input"] == {"command": "ls"}
    assert message["stop_reason"] == "tool_use"
    assert builder.stop_reason == "tool_use" and builder.usage.output_tokens == 42
    assert b'"thinking": "Hmm \\u00e9"' in out  # data lines relayed byte for byte


def test_nothing_is_emitted_before_the_first_content_event():
    builder = AnthropicStreamBuilder(message_id="m", model="x", input_tokens=1)
    translator = AnthropicPassthroughTranslator(builder)
    for event in SSEDecoder().feed(UPSTREAM.split(b"event: content_block_start")[0]):
        translator.feed(event)
    assert builder.take() == b"" and not builder.committed


def test_truncated_stream_and_error_event_raise():
    with pytest.raises(UpstreamProtocolError):
        relay([UPSTREAM.split(b"event: message_stop")[0]])
    err = ev({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(UpstreamStatus) as info:
        relay([err])
    assert info.value.http_status == 529


def test_out_of_order_upstream_is_refused():
    bad = UPSTREAM.replace(b'"index": 1', b'"index": 3')
    with pytest.raises(UpstreamProtocolError):
        relay([bad])


def test_non_streaming_keeps_body_but_echoes_model():
    out = translate_response({"id": "msg_1", "type": "message", "content": [], "model": "minimax-m3",
                              "x": 1}, message_id="m", model_name="claude-x", input_estimate=1)
    assert out["model"] == "claude-x" and out["x"] == 1
    with pytest.raises(UpstreamStatus):
        translate_response({"type": "error", "error": {"type": "api_error", "message": "x"}},
                           message_id="m", model_name="c", input_estimate=1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(UPSTREAM)), max_size=12))
def test_any_byte_split_gives_identical_output(cuts):
    points = sorted(set(cuts))
    chunks = [UPSTREAM[a:b] for a, b in zip([0, *points], [*points, len(UPSTREAM)], strict=True)]
    assert relay(chunks)[0] == relay([UPSTREAM])[0]

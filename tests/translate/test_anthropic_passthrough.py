"""The Anthropic-native passthrough: faithful bodies, named rules, event-aligned relay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.anthropic_checker import check_stream, split_frames, translate_chunks
from support.shapes import UPSTREAM, ev

from occ.config.model import ModelConfig
from occ.core.errors import UpstreamProtocolError, UpstreamStatus
from occ.core.sse import SSEDecoder, SSEEvent
from occ.translate.anthropic_events import AnthropicStreamBuilder
from occ.translate.anthropic_passthrough import (
    THINKING_OMITTED,
    AnthropicPassthroughTranslator,
    build_body,
    clamp_max_tokens,
    drop_context_management,
    drop_custom_tools,
    forward_headers,
    inline_kimi_tool_schemas,
    strip_foreign_thinking,
    translate_response,
)

FIXTURES = Path(__file__).parent.parent / "support" / "fixtures" / "anthropic"
CLAUDE = (FIXTURES / "claude_thinking_text_tool.sse").read_bytes()
MINIMAX = (FIXTURES / "minimax_go_whitespace_text.sse").read_bytes()
OVERLOADED = (FIXTURES / "overloaded_before_content.sse").read_bytes()
TRUNCATED = (FIXTURES / "truncated_mid_text.sse").read_bytes()

MODEL = ModelConfig(provider="opencode-go", model_id="minimax-m3", max_tokens=8192)
KIMI = ModelConfig(provider="opencode-go", model_id="kimi-k3")


def frames_of(raw: bytes) -> list[bytes]:
    return [f + b"\n\n" for f in raw.split(b"\n\n") if f]


def relay(chunks: list[bytes]) -> tuple[bytes, AnthropicStreamBuilder]:
    return translate_chunks(AnthropicPassthroughTranslator, chunks, model="claude-occ-default", input_tokens=100)


def feed_only(raw: bytes) -> tuple[AnthropicStreamBuilder, AnthropicPassthroughTranslator]:
    """Feed events without closing, so a test can look at what the builder holds mid-stream."""
    builder = AnthropicStreamBuilder(message_id="msg_occ", model="claude-occ-default", input_tokens=100)
    translator = AnthropicPassthroughTranslator(builder)
    for event in SSEDecoder().feed(raw):
        translator.feed(event)
    return builder, translator


# -- build_body: model replacement -----------------------------------------------------------------


def test_only_top_level_model_is_replaced_whatever_the_whitespace():
    raw = b'{ "model" :  "claude-opus-4-8",\n "zeta": 1, "messages": [{"role": "user", "content": [{"type": ' \
          b'"text", "text": "hi", "model": "nested"}]}], "alpha": {"cache_control": {"type": "ephemeral"}}, ' \
          b'"max_tokens": 100}'
    out = json.loads(build_body(raw, {}, MODEL))
    assert out["model"] == "minimax-m3"
    assert list(out) == ["model", "zeta", "messages", "alpha", "max_tokens"]
    assert out["messages"][0]["content"][0]["model"] == "nested"
    assert out["alpha"] == {"cache_control": {"type": "ephemeral"}}


def test_model_key_order_is_kept_when_model_is_not_first():
    raw = b'{"max_tokens":10,"messages":[],"metadata":{"model":"m"},"model":"claude-x","speed":"fast"}'
    out = build_body(raw, {}, MODEL)
    assert out == b'{"max_tokens":10,"messages":[],"metadata":{"model":"m"},"model":"minimax-m3","speed":"fast"}'


@pytest.mark.parametrize("raw", [b'{"messages": []}', b'{"model": 5}', b'{"model": null}', b"[1,2]",
                                 b'"model"', b"not json", b"", b'{"model": "x"', b"\xff\xfe{"])
def test_body_without_string_model_is_sent_unchanged(raw):
    assert build_body(raw, {}, MODEL) is raw


def test_body_that_needs_no_change_is_the_clients_bytes():
    raw = b'{ "model": "minimax-m3", "max_tokens": 100,\n  "messages": [] }'
    assert build_body(raw, {}, MODEL) is raw


def test_signatures_cache_control_unknown_fields_and_unicode_survive_byte_for_byte():
    body = {"model": "claude-x", "max_tokens": 10, "service_tier": "auto", "container": {"id": "c"},
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "assistant", "content": [
                {"type": "thinking", "thinking": "ünïcode \u2028 line", "signature": "EqSig+/=="},
                {"type": "redacted_thinking", "data": "EmwKAhgB"}]}],
            "big": 123456789012345678901234567890, "ratio": 0.1}
    out = build_body(json.dumps(body, ensure_ascii=False).encode(), body, MODEL)
    assert json.loads(out) == {**body, "model": "minimax-m3"}
    assert "ünïcode \u2028 line".encode() in out and b"123456789012345678901234567890" in out


def test_a_lone_surrogate_escape_is_repaired_not_forwarded():
    """Anthropic's own API answers a lone surrogate with 400 "no low surrogate in string", so it is
    replaced by U+FFFD (a valid pair survives), even when nothing else in the body changed."""
    raw = b'{"model":"minimax-m3","messages":[{"role":"user","content":"bad \\ud83d half \\ud83d\\ude00"}]}'
    out = build_body(raw, {}, MODEL)
    assert json.loads(out)["messages"][0]["content"] == "bad \ufffd half \U0001f600"
    assert b"\\ud83d" not in out


# -- build_body: the named rules -------------------------------------------------------------------


def test_edge_26_context_management_is_dropped():
    body = {"model": "m", "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}
    assert drop_context_management(body, MODEL) and "context_management" not in body
    assert not drop_context_management({"model": "m"}, MODEL)
    raw = json.dumps({"model": "c", "context_management": {"edits": []}, "max_tokens": 5}).encode()
    assert json.loads(build_body(raw, {}, MODEL)) == {"model": "minimax-m3", "max_tokens": 5}


def test_custom_mcp_tools_lose_their_type_server_tools_keep_it():
    body = {"tools": [{"type": "custom", "name": "mcp__gh__search", "input_schema": {"type": "object"}},
                      {"name": "Bash", "input_schema": {"type": "object"}},
                      {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}, "junk"]}
    assert drop_custom_tools(body, MODEL)
    assert body["tools"][0] == {"name": "mcp__gh__search", "input_schema": {"type": "object"}}
    assert body["tools"][2]["type"] == "web_search_20250305"
    assert not drop_custom_tools(body, MODEL)
    assert not drop_custom_tools({"tools": None}, MODEL)


def test_edge_31_occ_minted_thinking_never_reaches_anthropic_and_no_turn_is_left_empty():
    body = {"messages": [
        {"role": "user", "content": [{"type": "thinking", "thinking": "t", "signature": "occ1.user"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "occ1.abc"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "EqRealSig"},
                                          {"type": "thinking", "thinking": "u", "signature": "occ1."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
        {"role": "assistant", "content": "plain"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "occ1.looks-like-ours"}]},
    ]}
    assert strip_foreign_thinking(body, MODEL)
    msgs = body["messages"]
    assert msgs[0]["content"][0]["signature"] == "occ1.user"  # user turns are not the model's thinking
    assert msgs[1]["content"] == [{"type": "text", "text": THINKING_OMITTED}]
    assert [b.get("signature") for b in msgs[2]["content"]] == ["EqRealSig", None]
    assert msgs[3]["content"] == "plain" and msgs[4]["content"][0]["type"] == "redacted_thinking"
    assert not strip_foreign_thinking(body, MODEL)


def test_edge_50_kimi_on_go_anthropic_route_gets_schemas_in_descriptions():
    body = {"tools": [
        {"name": "Bash", "description": "Run a command.",
         "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
         "cache_control": {"type": "ephemeral"}},
        {"name": "Noop", "input_schema": {"type": "object", "properties": {}}},
        {"type": "web_search_20250305", "name": "web_search"},
    ]}
    assert inline_kimi_tool_schemas(body, KIMI)
    bash, noop, web = body["tools"]
    assert "input_schema" not in bash and bash["cache_control"] == {"type": "ephemeral"}
    head, schema = bash["description"].split("\n\nInput JSON schema: ")
    assert head == "Run a command." and json.loads(schema)["required"] == ["command"]
    assert noop == {"name": "Noop"}
    assert web == {"type": "web_search_20250305", "name": "web_search"}


@pytest.mark.parametrize("model", [ModelConfig(provider="opencode-go", model_id="minimax-m3"),
                                   ModelConfig(provider="opencode-zen", model_id="kimi-k3"),
                                   ModelConfig(provider="moonshot", model_id="kimi-k3")])
def test_edge_50_schema_rule_is_only_for_kimi_on_go(model):
    body = {"tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {"c": {}}}}]}
    assert not inline_kimi_tool_schemas(body, model)
    assert "input_schema" in body["tools"][0]


def test_edge_49_max_tokens_is_clamped_to_the_routed_cap():
    body = {"max_tokens": 64000}
    assert clamp_max_tokens(body, MODEL) and body["max_tokens"] == 8192
    assert not clamp_max_tokens({"max_tokens": 4000}, MODEL)
    assert not clamp_max_tokens({"max_tokens": 64000}, ModelConfig(provider="p", model_id="m"))


def test_clamp_keeps_the_thinking_budget_below_max_tokens_or_turns_thinking_off():
    body = {"max_tokens": 64000, "thinking": {"type": "enabled", "budget_tokens": 31999}}
    assert clamp_max_tokens(body, MODEL)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8191}
    body = {"max_tokens": 64000, "thinking": {"type": "enabled", "budget_tokens": 4096}}
    clamp_max_tokens(body, MODEL)
    assert body["thinking"]["budget_tokens"] == 4096
    tiny = ModelConfig(provider="p", model_id="m", max_tokens=1024)
    body = {"max_tokens": 64000, "thinking": {"type": "enabled", "budget_tokens": 2048}}
    clamp_max_tokens(body, tiny)
    assert body == {"max_tokens": 1024, "thinking": {"type": "disabled"}}
    body = {"max_tokens": 64000, "thinking": {"type": "adaptive"}}
    clamp_max_tokens(body, tiny)
    assert body["thinking"] == {"type": "adaptive"}


def test_all_rules_together_through_build_body():
    body = {
        "model": "claude", "max_tokens": 64000,
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "tools": [{"type": "custom", "name": "mcp__x", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "occ1.a"}]}],
    }
    out = json.loads(build_body(json.dumps(body).encode(), body, MODEL))
    assert list(out) == ["model", "max_tokens", "tools", "messages"]
    assert out["tools"] == [{"name": "mcp__x", "input_schema": {"type": "object"}}]
    assert out["messages"][1]["content"] == [{"type": "text", "text": THINKING_OMITTED}]
    assert out["max_tokens"] == 8192
    assert body["max_tokens"] == 64000, "the caller's parsed request is not touched"


# -- headers ---------------------------------------------------------------------------------------


def test_headers_forward_version_and_allowed_betas_never_keys():
    headers = forward_headers({"anthropic-version": "2023-06-01", "x-api-key": "secret",
                               "authorization": "Bearer secret",
                               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
                                                 "context-management-2025-06-27, oauth-2025-04-20"})
    assert headers == {"anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14"}


def test_headers_default_version_repeated_betas_and_any_case():
    assert forward_headers({}) == {"anthropic-version": "2023-06-01"}
    headers = forward_headers([("Anthropic-Beta", "fine-grained-tool-streaming-2025-05-14"),
                               ("X-Api-Key", "sk-client"), ("Authorization", "Bearer sk-client"),
                               ("anthropic-beta", "interleaved-thinking-2025-05-14,unknown-beta-2030-01-01"),
                               ("ANTHROPIC-BETA", "fine-grained-tool-streaming-2025-05-14"),
                               ("Anthropic-Version", "2023-06-01")])
    assert headers == {"anthropic-version": "2023-06-01",
                       "anthropic-beta": "fine-grained-tool-streaming-2025-05-14,interleaved-thinking-2025-05-14"}
    assert "sk-client" not in json.dumps(headers)


# -- the stream relay ------------------------------------------------------------------------------


def test_realistic_claude_stream_is_relayed_event_for_event():
    out, builder = relay([CLAUDE])
    message = check_stream(out)
    assert message["model"] == "claude-occ-default" and message["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert message["usage"]["cache_read_input_tokens"] == 30211 and message["usage"]["input_tokens"] == 12
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][1]["text"] == "Running the test suite\u2028now."
    assert message["content"][2]["input"] == {"command": "pytest -q", "description": "Run tests"}
    assert message["stop_reason"] == "tool_use"
    assert builder.finished and builder.stop_reason == "tool_use" and builder.tool_use_count == 1
    assert builder.usage.output_tokens == 87 and builder.usage.cache_creation_input_tokens == 1840
    upstream, relayed = frames_of(CLAUDE), frames_of(out)
    # everything after message_start is the upstream's frames byte for byte, minus the pre-commit ping
    assert relayed[1:] == upstream[2:]


def test_signature_is_byte_identical():
    out, _ = relay([CLAUDE])
    line = next(f for f in frames_of(CLAUDE) if b"signature_delta" in f)
    assert line in out
    signature = json.loads(line.split(b"data: ")[1])["delta"]["signature"]
    assert check_stream(out)["content"][0]["signature"] == signature


def test_message_start_echoes_the_requested_model_and_keeps_upstream_extras():
    out, _ = relay([CLAUDE])
    name, data = split_frames(out)[0]
    assert name == "message_start"
    usage = data["message"]["usage"]
    assert data["message"]["model"] == "claude-occ-default"
    assert usage["service_tier"] == "standard" and usage["cache_creation"]["ephemeral_5m_input_tokens"] == 1840


def test_edge_23_zero_usage_gets_the_estimate_and_whitespace_text_block_is_dropped():
    out, builder = relay([MINIMAX])
    message = check_stream(out)
    assert message["id"] == "msg_t"  # an id that is not msg_… is replaced by occ's
    assert [b["type"] for b in message["content"]] == ["thinking", "tool_use"]
    assert message["content"][1]["input"] == {"file_path": "/repo/src/app.py"}
    assert split_frames(out)[0][1]["message"]["usage"]["input_tokens"] == 100
    assert message["usage"]["input_tokens"] == 14802
    assert builder.usage.input_tokens == 14802 and builder.usage.output_tokens == 41
    # frames before the dropped block are the upstream's own bytes
    assert frames_of(MINIMAX)[3] in out


def test_empty_text_block_first_delays_the_commit_to_the_next_block():
    start = frames_of(MINIMAX)[0]
    stream = start + ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    builder, _ = feed_only(stream)
    assert not builder.committed and builder.take() == b""
    stream += ev({"type": "content_block_stop", "index": 0}) + ev(
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}) + ev(
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": " "}})
    builder, _ = feed_only(stream)
    assert not builder.committed
    stream += ev({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}}) + ev(
        {"type": "content_block_stop", "index": 1}) + ev(
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}) + ev(
        {"type": "message_stop"})
    out, _ = relay([stream])
    assert check_stream(out)["content"] == [{"type": "text", "text": " Hi"}]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([CLAUDE, MINIMAX]), st.lists(st.integers(min_value=0, max_value=4000), max_size=14))
def test_any_byte_split_gives_identical_output(raw, cuts):
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert relay(chunks)[0] == relay([raw])[0]


def test_crlf_framed_upstream_gives_the_same_output():
    assert relay([CLAUDE.replace(b"\n", b"\r\n")])[0] == relay([CLAUDE])[0]


def test_commit_point_nothing_is_emitted_before_the_first_content_event():
    head = CLAUDE.split(b"event: content_block_start")[0]
    builder, _ = feed_only(head)
    assert builder.take() == b"" and not builder.committed
    builder, _ = feed_only(head + frames_of(CLAUDE)[2])
    names = [name for name, _ in split_frames(builder.take())]
    assert names == ["message_start", "content_block_start"] and builder.committed


def test_a_message_without_blocks_commits_at_message_delta():
    stream = frames_of(CLAUDE)[0] + ev({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                        "usage": {"output_tokens": 1}}) + ev({"type": "message_stop"})
    out, builder = relay([stream])
    assert check_stream(out)["content"] == [] and builder.stop_reason == "end_turn"


def test_upstream_pings_after_commit_are_relayed():
    out, _ = relay([CLAUDE])
    assert [name for name, _ in split_frames(out)].count("ping") == 1


def test_truncated_stream_raises():
    with pytest.raises(UpstreamProtocolError, match="message_stop"):
        relay([TRUNCATED])
    builder, translator = feed_only(TRUNCATED)
    assert builder.committed and not translator.done
    with pytest.raises(UpstreamProtocolError):
        translator.close()


def test_error_event_before_commit_raises_and_writes_nothing():
    builder = AnthropicStreamBuilder(message_id="msg_occ", model="c", input_tokens=5)
    translator = AnthropicPassthroughTranslator(builder)
    with pytest.raises(UpstreamStatus) as info:
        for event in SSEDecoder().feed(OVERLOADED):
            translator.feed(event)
    assert info.value.http_status == 529 and info.value.anthropic_type == "overloaded_error"
    assert info.value.upstream_type == "overloaded_error"
    assert not builder.committed and builder.take() == b""


@pytest.mark.parametrize(("etype", "status"), [("overloaded_error", 529), ("api_error", 500),
                                               ("rate_limit_error", 429), ("invalid_request_error", 400),
                                               ("something_new", 502)])
def test_error_event_types_map_to_statuses(etype, status):
    err = {"type": "error", "error": {"type": etype, "message": "boom"}}
    builder, translator = feed_only(CLAUDE.split(b"event: content_block_start")[0])
    with pytest.raises(UpstreamStatus) as info:
        translator.feed(SSEEvent(data=json.dumps(err), event="error"))
    assert info.value.http_status == status and "boom" in info.value.message
    assert not builder.committed


def test_error_event_after_commit_raises_so_the_relay_ends_with_an_error_event():
    builder, translator = feed_only(TRUNCATED)
    assert builder.committed
    with pytest.raises(UpstreamStatus) as info:
        translator.feed(SSEEvent(data='{"type":"error","error":{"type":"api_error","message":"x"}}', event="error"))
    builder.error(info.value)  # what the fallback loop does after commit
    message = check_stream(builder.take(), allow_error=True)
    assert message["error"]["type"] == "api_error" and message["content"][0]["type"] == "thinking"


@pytest.mark.parametrize(("name", "tail"), [
    ("block starts at 1", [{"type": "content_block_start", "index": 1,
                            "content_block": {"type": "text", "text": ""}}]),
    ("delta without block", [{"type": "content_block_delta", "index": 0,
                              "delta": {"type": "text_delta", "text": "x"}}]),
    ("second message_start", [{"type": "message_start", "message": {"id": "msg_2"}}]),
    ("two open blocks", [{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "a"}},
                         {"type": "content_block_start", "index": 1,
                          "content_block": {"type": "text", "text": ""}}]),
    ("thinking_delta into text", [{"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": "a"}},
                                  {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "thinking_delta", "thinking": "t"}}]),
    ("message_stop with a block open", [{"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": "a"}},
                                         {"type": "message_stop"}]),
    ("message_delta with a block open", [{"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "tool_use", "id": "t", "name": "n",
                                                            "input": {}}},
                                         {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                          "usage": {"output_tokens": 1}}]),
    ("block after message_delta", [{"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                    "usage": {"output_tokens": 1}},
                                   {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}}]),
    ("block without type", [{"type": "content_block_start", "index": 0, "content_block": {}}]),
])
def test_broken_upstream_grammar_is_refused(name, tail):
    stream = frames_of(CLAUDE)[0] + b"".join(ev(d) for d in tail)
    with pytest.raises(UpstreamProtocolError):
        relay([stream])


def _start_with(content: list[dict], stop_reason: str | None, **usage: int) -> bytes:
    message = {"id": "msg_up", "type": "message", "role": "assistant", "model": "claude-x", "content": content,
               "stop_reason": stop_reason, "stop_sequence": None,
               "usage": {"input_tokens": 12, "output_tokens": 7, **usage}}
    return ev({"type": "message_start", "message": message})


DEFERRED = [{"type": "thinking", "thinking": "plan", "signature": "sig-up"},
            {"type": "text", "text": "Loading the tool."},
            {"type": "text", "text": "  "},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}}]


def test_content_in_message_start_then_message_stop_is_relayed_as_blocks_with_a_message_delta():
    out, builder = relay([_start_with(DEFERRED, "tool_use") + ev({"type": "ping"}) + ev({"type": "message_stop"})])
    message = check_stream(out)
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][0] == {"type": "thinking", "thinking": "plan", "signature": "sig-up"}
    assert message["content"][2]["input"] == {"path": "a.py"}
    assert message["stop_reason"] == "tool_use" and builder.stop_reason == "tool_use"
    assert message["usage"]["output_tokens"] == 7 and builder.usage.input_tokens == 12
    assert not builder.usage.estimated


@pytest.mark.parametrize("first_index", [0, 1])
def test_block_events_after_content_in_message_start_follow_it(first_index):
    later = [{"type": "content_block_start", "index": first_index, "content_block": {"type": "text", "text": ""}},
             {"type": "content_block_delta", "index": first_index, "delta": {"type": "text_delta", "text": "more"}},
             {"type": "content_block_stop", "index": first_index},
             {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
             {"type": "message_stop"}]
    start = _start_with([{"type": "text", "text": "first"}], None)
    out, _ = relay([start + b"".join(ev(d) for d in later)])
    message = check_stream(out)
    assert [b.get("text") for b in message["content"]] == ["first", "more"]
    assert message["stop_reason"] == "end_turn"


def test_empty_message_then_message_stop_ends_the_turn():
    out, _ = relay([_start_with([], None) + ev({"type": "message_stop"})])
    message = check_stream(out)
    assert message["content"] == [] and message["stop_reason"] == "end_turn"


def test_events_before_message_start_and_non_objects_are_refused():
    with pytest.raises(UpstreamProtocolError, match="before message_start"):
        relay([frames_of(CLAUDE)[2]])
    with pytest.raises(UpstreamProtocolError):
        relay([b"event: content_block_delta\ndata: [1]\n\n"])
    with pytest.raises(UpstreamProtocolError):
        relay([b"event: message_start\ndata: {not json\n\n"])


def tool_stream(fragments: list[str], stop_reason: str) -> bytes:
    return b"".join([
        frames_of(CLAUDE)[0],
        ev({"type": "content_block_start", "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "Write", "input": {}}}),
        *(ev({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": f}})
          for f in fragments),
        ev({"type": "content_block_stop", "index": 0}),
        ev({"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 9}}),
        ev({"type": "message_stop"}),
    ])


def test_edge_11_tool_input_that_is_not_a_json_object_fails_the_stream():
    with pytest.raises(UpstreamProtocolError, match="Write"):
        relay([tool_stream(['{"path": "a"', ', oops}'], "tool_use")])
    with pytest.raises(UpstreamProtocolError):
        relay([tool_stream(['["a"]'], "tool_use")])


def test_tool_input_cut_by_max_tokens_is_the_upstreams_honest_answer():
    out, builder = relay([tool_stream(['{"path": "a", "content": "lo'], "max_tokens")])
    assert builder.finished and builder.stop_reason == "max_tokens"
    assert [name for name, _ in split_frames(out)][-2:] == ["message_delta", "message_stop"]


def test_tool_without_fragments_keeps_its_empty_input():
    message = check_stream(relay([tool_stream([], "tool_use")])[0])
    assert message["content"][0]["input"] == {}


def test_unknown_event_types_are_dropped():
    stream = CLAUDE.replace(b"event: ping\n", b'event: future_thing\ndata: {"type":"future_thing"}\n\nevent: ping\n')
    assert relay([stream])[0] == relay([CLAUDE])[0]


def test_multi_line_data_is_relayed_as_one_line():
    stream = frames_of(CLAUDE)[0] + b'event: content_block_start\ndata: {"type":"content_block_start",\n' \
        b'data: "index":0,"content_block":{"type":"text","text":""}}\n\n' + b"".join(ev(d) for d in [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
            {"type": "message_stop"}])
    assert check_stream(relay([stream])[0])["content"] == [{"type": "text", "text": "ok"}]


def test_events_after_message_stop_are_ignored():
    out, builder = relay([CLAUDE + ev({"type": "ping"}) + frames_of(CLAUDE)[2]])
    assert out == relay([CLAUDE])[0] and builder.finished


def test_builder_refuses_synthesized_content_once_relaying():
    builder, _ = feed_only(TRUNCATED)
    for call in (lambda: builder.text("x"), lambda: builder.finish("end_turn"),
                 lambda: builder.tool_use("toolu_1", "Bash", {})):
        with pytest.raises(RuntimeError):
            call()
    fresh = AnthropicStreamBuilder(message_id="msg_x", model="m", input_tokens=1)
    with pytest.raises(RuntimeError):
        fresh.relay_frame(b"event: ping\ndata: {}\n\n")


# -- non-streaming ---------------------------------------------------------------------------------


def test_non_streaming_keeps_body_but_echoes_model():
    upstream = {"id": "msg_1", "type": "message", "role": "assistant", "model": "minimax-m3",
                "content": [{"type": "thinking", "thinking": "t", "signature": "EqSig"},
                            {"type": "text", "text": ""}, {"type": "text", "text": "hi"}],
                "stop_reason": "end_turn", "stop_sequence": None, "x": 1,
                "usage": {"input_tokens": 5, "output_tokens": 2}}
    out = translate_response(upstream, message_id="msg_occ", model_name="claude-x", input_estimate=1)
    assert out["model"] == "claude-x" and out["x"] == 1 and out["id"] == "msg_1"
    assert out["content"] == [upstream["content"][0], upstream["content"][2]]
    assert out["usage"] == upstream["usage"] and upstream["model"] == "minimax-m3"


def test_non_streaming_fills_missing_id_usage_and_stop_reason():
    out = translate_response({"content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]},
                             message_id="msg_occ", model_name="c", input_estimate=42)
    assert out["id"] == "msg_occ" and out["usage"]["input_tokens"] == 42 and out["stop_reason"] == "tool_use"


def test_non_streaming_error_body_raises_with_its_status():
    with pytest.raises(UpstreamStatus) as info:
        translate_response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                           message_id="m", model_name="c", input_estimate=1)
    assert info.value.http_status == 529


@pytest.mark.parametrize("junk", [None, [1], "text", {"id": "x"}, {"type": "completion", "content": []},
                                  {"content": "str"}])
def test_non_streaming_junk_is_a_protocol_error(junk):
    with pytest.raises(UpstreamProtocolError):
        translate_response(junk, message_id="m", model_name="c", input_estimate=1)


def test_e2e_stream_relays_with_ascii_escapes_untouched():
    out, builder = relay([UPSTREAM])
    message = check_stream(out)
    assert message["content"][0]["signature"] == "EqSig+/=" and message["usage"]["input_tokens"] == 321
    assert b'"thinking": "Hmm \\u00e9"' in out  # data lines relayed byte for byte, not re-encoded
    assert builder.usage.output_tokens == 42


def test_the_anthropic_sdk_accumulates_the_relayed_stream():
    """The SDK's own SSE decoder and accumulator (private API, pinned by the lock file) read the
    relayed bytes, split at every byte, into the same message as occ's checker."""
    from anthropic._models import construct_type
    from anthropic._streaming import SSEDecoder as SdkDecoder
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent

    out, _ = relay([CLAUDE])
    snapshot, bufs = None, {}
    for sse in SdkDecoder().iter_bytes(iter([out[i:i + 1] for i in range(len(out))])):
        if sse.event == "ping":
            continue
        event = construct_type(type_=RawMessageStreamEvent, value=sse.json())
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot is not None
    assert snapshot.model_dump(exclude_none=True)["content"] == check_stream(out)["content"]
    assert snapshot.stop_reason == "tool_use" and snapshot.usage.output_tokens == 87


def test_dropping_blank_text_of_a_user_turn_leaves_the_validated_request_as_it_was():
    """A blank text block in a *user* turn (the copy shares user messages with the request) is removed
    from what is sent, not from the request the chain's next attempt reads."""
    import copy

    from occ.core.validate import parse_messages_request

    raw = json.dumps({"model": "claude-x", "max_tokens": 100, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": " "}]}]}).encode()
    request = parse_messages_request(raw)
    before = copy.deepcopy(request)
    out = json.loads(build_body(raw, request, MODEL))
    assert out["messages"][0]["content"] == [{"type": "text", "text": "hi"}]
    assert request == before


def test_build_body_reads_the_parsed_request_and_never_changes_it(monkeypatch):
    """The client's bytes are parsed once, by validation: build_body works from that parse (a 30 MB history
    is not parsed again per attempt) and leaves it as it was, since the chain's next attempt reads it too,
    whichever rules rewrote the copy it sends."""
    import copy

    request = {
        "model": "claude-x", "max_tokens": 64000, "context_management": {"edits": []},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "output_config": {"effort": "max"},
        "tools": [{"type": "custom", "name": "mcp__a", "input_schema": {"type": "object",
                                                                        "properties": {"x": {}}}}],
        "messages": [
            {"role": "user", "content": "hi", "output_config": {"effort": "max"}},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "occ1.x"},
                                              {"type": "text", "text": "a"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "occ1.y"}]},
        ],
    }
    before = copy.deepcopy(request)
    raw = json.dumps(request).encode()

    def no_second_parse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the body was parsed again")

    monkeypatch.setattr("occ.translate.anthropic_passthrough.json.loads", no_second_parse)
    for model in (MODEL, KIMI, ModelConfig(provider="opencode-go", model_id="qwen3.7-plus", max_tokens=4096)):
        out = json.JSONDecoder().decode(build_body(raw, request, model).decode())
        assert out["model"] == model.model_id and "context_management" not in out
        assert "type" not in out["tools"][0]
        assert request == before

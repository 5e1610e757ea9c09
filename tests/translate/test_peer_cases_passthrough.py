"""Peer projects' own cases for the Anthropic -> Anthropic-compatible passthrough, run against occ.

Ported as data written here (no peer code) from LiteLLM ``tests/test_litellm/llms/anthropic/
experimental_pass_through/messages/test_v1_messages_empty_text_sanitization.py`` (``[L-empty-text]``, issue
22930: Claude answers with an empty text block beside a tool_use and rejects it when it is sent back, 400
"text content blocks must be non-empty").
"""

from __future__ import annotations

import copy
import json
from typing import Any

from occ.config.model import ModelConfig
from occ.translate.anthropic_passthrough import BLANK_TURN, build_body, drop_blank_text

GO = ModelConfig(provider="opencode-go", model_id="minimax-m2.5")


def sent(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    request = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages}
    return json.loads(build_body(json.dumps(request).encode(), request, GO))["messages"]


def call(call_id: str = "toolu_123") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"location": "NYC"}}


def test_an_empty_text_beside_a_call_is_removed():
    # [L-empty-text] test_empty_text_block_stripped_alongside_tool_use
    assert sent([{"role": "user", "content": "hi"},
                 {"role": "assistant", "content": [{"type": "text", "text": ""}, call()]}])[1]["content"] == [call()]


def test_visible_text_stays():
    # [L-empty-text] test_non_empty_text_blocks_preserved
    content = [{"type": "text", "text": "Here is the result:"}, call("toolu_456")]
    assert sent([{"role": "user", "content": "hi"}, {"role": "assistant", "content": content}])[1]["content"] == content


def test_whitespace_and_null_text_are_blank():
    # [L-empty-text] test_whitespace_only_text_blocks_stripped / test_none_text_value_treated_as_empty
    for blank in ("   \n\t  ", None):
        out = sent([{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "text", "text": blank}, call("toolu_789")]}])
        assert out[1]["content"] == [call("toolu_789")]


def test_a_turn_of_blank_text_only_keeps_a_marker():
    # [L-empty-text] test_all_empty_content_replaced_with_placeholder (LiteLLM writes "..."; occ's marker
    # says what happened, as its "(thinking omitted)" does)
    out = sent([{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "  "}]},
                {"role": "user", "content": "go on"}])
    assert out[1]["content"] == [{"type": "text", "text": BLANK_TURN}]


RESULT = {"type": "tool_result", "tool_use_id": "toolu_123", "content": "result data"}


def test_string_content_and_other_blocks_are_untouched():
    # [L-empty-text] test_string_content_untouched / test_tool_result_blocks_untouched /
    # test_user_message_content_also_sanitized
    out = sent([{"role": "user", "content": "Hello"}, {"role": "assistant", "content": [call()]},
                {"role": "user", "content": [RESULT, {"type": "text", "text": ""},
                                             {"type": "text", "text": "actual question"}]}])
    assert out[0]["content"] == "Hello"
    assert out[2]["content"] == [RESULT, {"type": "text", "text": "actual question"}]


def test_a_body_without_blank_text_is_sent_as_the_client_wrote_it():
    # [L-empty-text] test_input_immutability, in occ's terms: nothing to remove, the client's bytes go as they
    # are (build_body re-serialises only what a rule changed)
    request = {"model": "minimax-m2.5", "max_tokens": 1024,
               "messages": [{"role": "user", "content": "What's the weather?"},
                            {"role": "assistant",
                             "content": [{"type": "text", "text": "Checking."}, call("toolu_w1")]}]}
    raw = json.dumps(request, indent=1).encode()
    assert build_body(raw, request, GO) == raw
    snapshot = copy.deepcopy(request)
    assert drop_blank_text(request, GO) is False and request == snapshot


def test_a_multi_turn_history():
    # [L-empty-text] test_multi_message_end_to_end
    out = sent([{"role": "user", "content": "What's the weather?"},
                {"role": "assistant", "content": [{"type": "text", "text": ""}, call("toolu_w1")]},
                {"role": "user",
                 "content": [{"type": "tool_result", "tool_use_id": "toolu_w1", "content": "72F and sunny"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "The weather in NYC is 72F and sunny."}]}])
    assert out[0]["content"] == "What's the weather?"
    assert [b["type"] for b in out[1]["content"]] == ["tool_use"]
    assert out[2]["content"][0]["type"] == "tool_result"
    assert "72F" in out[3]["content"][0]["text"]

"""Gemini 3 thought signatures on the chat-completions wire (Google's ``/v1beta/openai/``, gateways):
``tool_calls[].extra_content.google.thought_signature`` is read from SDK-shaped answers, streamed and not,
reaches the client as an ``occ1.g.`` thinking signature in front of its call, and goes back on the same
call next turn, only to the model that made it; a Gemini 3 turn without one gets the placeholder."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.anthropic_checker import check_stream, translate_chunks
from support.sdk_answers import Answer, chat_body, chat_stream, sse_data

from occ.config.model import ModelConfig
from occ.translate.openai_chat import ChatStreamTranslator, build_request, translate_response
from occ.translate.thought_signatures import SKIP_SIGNATURE, thought_signature

GEMINI = ModelConfig(provider="google", model_id="gemini-3-pro-preview")
OTHER_GEMINI = ModelConfig(provider="google", model_id="gemini-3-flash-preview")
DEEPSEEK = ModelConfig(provider="opencode-go", model_id="deepseek-v4-pro")
GEMINI_25 = ModelConfig(provider="google", model_id="gemini-2.5-pro")
SIGNATURE = "CiQBjz1rX8Zg+/sig=="
READ = ("Read", {"file_path": "/src/a.py"})
GREP = ("Grep", {"pattern": "def main"})
ANSWER = Answer(text="Reading both.", signature=SIGNATURE, tools=(READ, GREP), model="gemini-3-pro-preview")


def _stream(raw: bytes, *, thinking: bool = True, stream_tool_input: bool = True,
            chunks: list[bytes] | None = None) -> dict[str, Any]:
    make = partial(ChatStreamTranslator, route=GEMINI.label, stream_tool_input=stream_tool_input)
    return check_stream(translate_chunks(make, chunks or [raw], thinking=thinking)[0])


def _created(body: str) -> dict[str, Any]:
    return translate_response(json.loads(body), message_id="msg_1", model_name="c", input_estimate=1,
                              route=GEMINI.label)


def _replayed(content: list[dict[str, Any]], model: ModelConfig = GEMINI) -> list[dict[str, Any]]:
    """The assistant message's tool calls as the next turn sends them to ``model``."""
    calls = [b for b in content if b["type"] == "tool_use"]
    body = build_request({"model": "x", "max_tokens": 100, "messages": [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b["id"], "content": "ok"}
                                     for b in calls]}]}, model, stream=True)
    return next(m for m in body["messages"] if m["role"] == "assistant")["tool_calls"]


def _signature_of(call: dict[str, Any]) -> str | None:
    return ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")


@pytest.mark.parametrize("stream_tool_input", [True, False])
def test_streamed_signature_rides_in_front_of_its_call_and_goes_back_on_it(stream_tool_input):
    message = _stream(chat_stream(ANSWER), stream_tool_input=stream_tool_input)
    assert [b["type"] for b in message["content"]] == ["text", "thinking", "tool_use", "tool_use"]
    assert message["content"][1] == {"type": "thinking", "thinking": "",
                                     "signature": thought_signature(GEMINI.label, SIGNATURE)}
    assert [b["id"] for b in message["content"][2:]] == ["call_0_Read", "call_1_Grep"]  # ids stay short
    calls = _replayed(message["content"])
    assert [_signature_of(c) for c in calls] == [SIGNATURE, None]
    assert calls[0]["id"] == "call_0_Read"


def test_non_streaming_signature_goes_back_on_the_same_call():
    message = _created(chat_body(ANSWER))
    assert [b["type"] for b in message["content"]] == ["text", "thinking", "tool_use", "tool_use"]
    assert [_signature_of(c) for c in _replayed(message["content"])] == [SIGNATURE, None]


def test_the_signature_of_a_later_call_goes_back_on_that_call():
    """Sequential steps replayed in one turn (or a gateway that signs every call): each signature is
    in front of its own call and returns there, not on the turn's first call."""
    from openai.types.chat import ChatCompletion

    body = json.loads(chat_body(ANSWER.evolve(signature="")))
    body["choices"][0]["message"]["tool_calls"][1]["extra_content"] = {"google": {"thought_signature": "second"}}
    message = _created(ChatCompletion.model_validate(body).model_dump_json())
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "thinking", "tool_use"]
    assert [_signature_of(c) for c in _replayed(message["content"])] == [SKIP_SIGNATURE, "second"]


def _gemini_compat_stream(*, signature_on: str = "call") -> bytes:
    """Chunks as Google's OpenAI-compatible endpoint streams a step: text, then each call whole in one
    chunk (id, name, arguments), the signature on the first; built with the openai SDK's chunk type,
    whose extra fields it keeps."""
    from openai.types.chat import ChatCompletionChunk

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return ChatCompletionChunk.model_validate({
            "id": "chatcmpl-g", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gemini-3-pro-preview", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }).model_dump_json()

    calls = [{"index": i, "id": f"function-call-{i}", "type": "function",
              "function": {"name": name, "arguments": json.dumps(args)}} for i, (name, args) in enumerate((READ, GREP))]
    delta: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
    if signature_on == "call":
        calls[0]["extra_content"] = {"google": {"thought_signature": SIGNATURE}}
    else:
        delta["extra_content"] = {"google": {"thought_signature": SIGNATURE}}
    return sse_data([chunk({"role": "assistant", "content": "Reading both."}), chunk(delta),
                     chunk({}, finish="tool_calls")], done=True)


@pytest.mark.parametrize("signature_on", ["call", "delta"])
def test_whole_calls_in_one_chunk_as_google_streams_them(signature_on):
    message = _stream(_gemini_compat_stream(signature_on=signature_on))
    assert [b["type"] for b in message["content"]] == ["text", "thinking", "tool_use", "tool_use"]
    assert [b["id"] for b in message["content"] if b["type"] == "tool_use"] == ["function-call-0",
                                                                                  "function-call-1"]
    calls = _replayed(message["content"])
    assert [_signature_of(c) for c in calls] == [SIGNATURE, None]
    assert [c["id"] for c in calls] == ["function-call-0", "function-call-1"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4000), max_size=10), st.booleans())
def test_any_split_gives_the_same_message(cuts, stream_tool_input):
    raw = chat_stream(ANSWER)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert _stream(raw, chunks=chunks, stream_tool_input=stream_tool_input) == _stream(raw)


def test_a_signature_after_the_call_opened_follows_the_call_and_still_goes_back_on_it():
    from openai.types.chat import ChatCompletionChunk

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return ChatCompletionChunk.model_validate({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gemini-3-pro-preview",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).model_dump_json()

    raw = sse_data([
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "Read", "arguments": '{"file_path": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"a.py"}'},
                               "extra_content": {"google": {"thought_signature": "late"}}}]}),
        chunk({}, finish="tool_calls")], done=True)
    message = _stream(raw)
    assert [b["type"] for b in message["content"]] == ["tool_use", "thinking"]
    assert [_signature_of(c) for c in _replayed(message["content"])] == ["late"]


def test_thinking_off_no_thinking_block_and_the_placeholder_next_turn():
    """A client without thinking receives no thinking block, so nothing carries the signature: the next
    turn's first call takes Google's placeholder, and the tool ids are the upstream's own, short."""
    message = _stream(chat_stream(ANSWER), thinking=False)
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "tool_use"]
    assert SIGNATURE not in json.dumps(message)
    assert [_signature_of(c) for c in _replayed(message["content"])] == [SKIP_SIGNATURE, None]


def test_another_models_history_gets_the_placeholder_on_gemini_3_only():
    """A history from another model (no signature, or another Gemini's) gets the placeholder on each step's
    first call for Gemini 3; other models never see ``extra_content`` (strict servers reject unknown
    fields), and Gemini 2.5 does not require it."""
    signed = _stream(chat_stream(ANSWER))["content"]
    assert [_signature_of(c) for c in _replayed(signed, OTHER_GEMINI)] == [SKIP_SIGNATURE, None]
    unsigned = _stream(chat_stream(ANSWER.evolve(signature="")))["content"]
    assert [_signature_of(c) for c in _replayed(unsigned)] == [SKIP_SIGNATURE, None]
    for model in (DEEPSEEK, GEMINI_25):
        assert not [c for c in _replayed(signed, model) if "extra_content" in c]
    native = [{"type": "thinking", "thinking": "", "signature": thought_signature("zen/gemini-3-pro", "x")},
              {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]
    assert [_signature_of(c) for c in _replayed(native)] == [SKIP_SIGNATURE]


def test_each_assistant_turn_of_a_long_history_keeps_its_own_signature():
    first = _stream(chat_stream(ANSWER.evolve(signature="sig-1", tools=(READ,))))["content"]
    second = _stream(chat_stream(ANSWER.evolve(signature="sig-2", tools=(GREP,), text="")))["content"]
    body = build_request({"model": "x", "max_tokens": 100, "messages": [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_0_Read", "content": "a"}]},
        {"role": "assistant", "content": second},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_0_Grep", "content": "b"}]}]},
        GEMINI, stream=False)
    turns = [m for m in body["messages"] if m["role"] == "assistant"]
    assert [[_signature_of(c) for c in m["tool_calls"]] for m in turns] == [["sig-1"], ["sig-2"]]
    assert all(m["content"] is None or "occ1" not in str(m["content"]) for m in turns)

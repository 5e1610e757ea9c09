"""Null means absent on upstream JSON: SDK-serialised answers carry every optional field as ``null``
(``"error": null`` on every Responses object, ``"usage": {"prompt_tokens": null}``, ``"functionCall":
null`` on Gemini text parts), and none of them may read as an error, a zero or a call. Usage occ has to
make up is marked as estimated."""

from __future__ import annotations

import json

import pytest
from support.anthropic_checker import check_stream, translate_chunks
from support.shapes import frame

from occ.translate import gemini, openai_chat, responses
from occ.translate.anthropic_events import AnthropicStreamBuilder, Usage, make_message

ARGS = {"message_id": "msg_1", "model_name": "claude-x", "input_estimate": 42}


def sse_bytes(*chunks: dict) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def test_responses_object_with_error_null_is_an_answer():
    body = {"id": "resp_1", "object": "response", "status": "completed", "error": None, "incomplete_details": None,
            "output": [{"type": "message", "id": "m", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "hi", "annotations": [], "logprobs": None}]}],
            "usage": {"input_tokens": 5, "output_tokens": 1, "input_tokens_details": None,
                      "output_tokens_details": None}}
    message = responses.translate_response(body, route="p/gpt", **ARGS)
    assert message["content"] == [{"type": "text", "text": "hi"}]
    assert message["usage"]["input_tokens"] == 5 and not message.usage_estimated


def test_responses_summary_with_null_text_is_not_the_word_none():
    body = {"status": "completed", "error": None, "output": [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": None}],
         "encrypted_content": None},
        {"type": "message", "content": [{"type": "output_text", "text": "ok"}]}], "usage": None}
    message = responses.translate_response(body, route="p/gpt", **ARGS)
    assert message["content"] == [{"type": "text", "text": "ok"}]  # an empty summary is no thinking
    assert message.usage_estimated and message["usage"]["input_tokens"] == 42


@pytest.mark.parametrize("usage", [None, {"prompt_tokens": None, "completion_tokens": None},
                                   {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}])
def test_chat_usage_of_nulls_is_no_usage_and_the_estimate_says_so(usage):
    body = {"id": "c", "object": "chat.completion", "error": None, "usage": usage,
            "choices": [{"index": None, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": "hello there", "refusal": None,
                                     "tool_calls": None, "reasoning_content": None}}]}
    message = openai_chat.translate_response(body, **ARGS)
    assert message["content"] == [{"type": "text", "text": "hello there"}]
    assert message.usage_estimated
    assert message["usage"]["input_tokens"] == 42 and message["usage"]["output_tokens"] >= 1


def test_chat_stream_with_null_usage_and_null_index_ends_with_an_estimate():
    chunks = sse_bytes({"id": "c", "choices": [{"index": None, "delta": {"content": "hey", "reasoning_content": None,
                                                                          "tool_calls": None},
                                                 "finish_reason": None}], "usage": None},
                       {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": None, "completion_tokens": None}})
    out, builder = translate_chunks(openai_chat.ChatStreamTranslator, [chunks])
    assert check_stream(out)["content"] == [{"type": "text", "text": "hey"}]
    assert builder.usage is not None and builder.usage.estimated


def test_reported_usage_is_not_estimated():
    chunks = sse_bytes({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 0, "completion_tokens": 3}})
    _, builder = translate_chunks(openai_chat.ChatStreamTranslator, [chunks])
    assert builder.usage == Usage(0, 3) and not builder.usage.estimated


def test_gemini_parts_with_null_fields_are_what_they_hold():
    """google-genai's own serialisation writes every Part field: text parts have ``functionCall: null``."""
    part = {"text": "hi", "thought": None, "functionCall": None, "thoughtSignature": None, "inlineData": None}
    body = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP",
                            "safetyRatings": None}],
            "usageMetadata": {"promptTokenCount": None, "candidatesTokenCount": None}, "promptFeedback": None}
    message = gemini.translate_response(body, route="p/gemini", **ARGS)
    assert message["content"] == [{"type": "text", "text": "hi"}]
    assert message.usage_estimated
    out, builder = translate_chunks(lambda b: gemini.GeminiStreamTranslator(b, route="p/gemini"), [frame(body)])
    assert check_stream(out)["content"] == [{"type": "text", "text": "hi"}]
    assert builder.usage.estimated


def test_make_message_estimates_output_from_what_it_holds():
    message = make_message(message_id="m", model="c", content=[{"type": "text", "text": "x" * 400}],
                           stop_reason="end_turn", usage=Usage.estimate(10))
    assert message["usage"]["output_tokens"] == 100 and message.usage_estimated


def test_builder_without_thinking_sends_no_thinking_block():
    builder = AnthropicStreamBuilder(message_id="msg_1", model="c", input_tokens=1, thinking=False)
    builder.thinking("pondering")
    builder.thinking_signature("occ1.g.x|sig")
    builder.text("answer")
    builder.finish("end_turn")
    assert check_stream(builder.take())["content"] == [{"type": "text", "text": "answer"}]

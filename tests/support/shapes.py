"""Hand-written upstream answers in each wire's shape, shared by the end-to-end tests.

Prefer the recorded corpus (``tests/recordings/``) and the provider SDKs' own types for new cases: these
builders only know the fields we wrote.
"""

from __future__ import annotations

import json
from typing import Any

CHAT = "/v1/chat/completions"


def ev(data: dict) -> bytes:
    """One SSE event named by its ``type``, as Anthropic and the Responses API frame them."""
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}}
    if finish:
        choice["finish_reason"] = finish
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [choice], **extra}


def usage_chunk(prompt: int = 900, completion: int = 40, cached: int = 0) -> dict[str, Any]:
    return {"id": "c1", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                                 "prompt_tokens_details": {"cached_tokens": cached}}}


def tool_delta(index: int, call_id: str | None, name: str | None, args: str) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if call_id:
        call["id"] = call_id
        call["type"] = "function"
    if name:
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def completion(message: dict[str, Any], finish: str = "stop", **usage: int) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "model-a",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": {"prompt_tokens": usage.get("prompt", 100), "completion_tokens": usage.get("completion", 20)}}


USER = [{"role": "user", "content": "hello"}]


# -- the Anthropic stream the end-to-end wire tests replay --

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


# -- a Responses stream --

RESPONSES_STREAM = b"".join([
    ev({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}),
    ev({"type": "response.output_item.added", "item": {"id": "rs_1", "type": "reasoning"}}),
    ev({"type": "response.reasoning_summary_part.added", "item_id": "rs_1"}),
    ev({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "delta": "Need files."}),
    ev({"type": "response.output_item.done", "item": {"id": "rs_1", "type": "reasoning",
                                                      "encrypted_content": "gAAAA-opaque"}}),
    ev({"type": "response.output_item.added", "item": {"id": "msg_1", "type": "message"}}),
    ev({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Listing "}),
    ev({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "now."}),
    ev({"type": "response.output_item.done", "item": {"id": "msg_1", "type": "message"}}),
    ev({"type": "response.output_item.added", "item": {"id": "fc_1", "type": "function_call", "call_id": "call_A",
                                                       "name": "Bash", "arguments": ""}}),
    ev({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": '{"comm'}),
    ev({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": 'and":"ls"}'}),
    ev({"type": "response.function_call_arguments.done", "item_id": "fc_1", "arguments": '{"command":"ls"}'}),
    ev({"type": "response.output_item.added", "item": {"id": "fc_2", "type": "function_call", "call_id": "call_B",
                                                       "name": "Read"}}),
    ev({"type": "response.output_item.done", "item": {"id": "fc_2", "type": "function_call", "call_id": "call_B",
                                                      "name": "Read", "arguments": '{"path":"a"}'}}),
    ev({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "usage": {
        "input_tokens": 500, "output_tokens": 60, "input_tokens_details": {"cached_tokens": 100}}}}),
])


# -- a Gemini stream --

def frame(data: dict) -> bytes:
    """One Gemini SSE event (data only, CRLF-framed as Google sends it)."""
    return f"data: {json.dumps(data)}\r\n\r\n".encode()


GEMINI_STREAM = b"".join([
    frame({"candidates": [{"content": {"role": "model", "parts": [{"text": "Thinking it over", "thought": True}]}}]}),
    frame({"candidates": [{"content": {"role": "model", "parts": [{"text": "I'll look."}]}}]}),
    frame({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "sig"},
        {"functionCall": {"name": "Read", "args": {"path": "a"}}}]}}],
        "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 40, "candidatesTokenCount": 5}}),
    frame({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
           "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 40, "candidatesTokenCount": 9,
                             "thoughtsTokenCount": 3}}),
])

"""Anthropic <-> Gemini: request shape, schema cleaning (edge cases 39-42), stream and response
translation in the API's real shapes, CRLF SSE (44), and identical output for any chunk split."""

from __future__ import annotations

import json
import re
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.anthropic_checker import check_stream, translate_chunks
from support.shapes import GEMINI_STREAM as STREAM
from support.shapes import frame

from occ.config.model import ModelConfig
from occ.core.errors import UpstreamProtocolError, UpstreamStatus
from occ.translate.gemini import (
    SKIP_SIGNATURE,
    GeminiStreamTranslator,
    build_request,
    thought_signature,
    translate_response,
)
from occ.translate.gemini_schema import clean_schema

MODEL = ModelConfig(provider="opencode-zen", model_id="gemini-3.1-pro", max_tokens=32000)


def test_edge_39_40_schema_cleaning():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "additionalProperties": False,
              "properties": {"mode": {"const": "fast"}, "n": {"type": "integer", "exclusiveMinimum": 0},
                             "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                             "url": {"type": "string", "format": "uri", "description": "where"},
                             "level": {"enum": [1, 2]}, "maybe": {"type": ["string", "null"]},
                             "x-extra": {"type": "string"}, "ref": {"$ref": "#/$defs/Item"}},
              "required": ["mode", "ghost"], "$defs": {"Item": {"type": "object", "properties": {
                  "id": {"type": "string", "x-vendor": 1}}}}}
    out = clean_schema(schema)
    text = json.dumps(out)
    for banned in ("$schema", "additionalProperties", "uniqueItems", "const", "exclusiveMinimum", "x-vendor", "$ref"):
        assert banned not in text
    props = out["properties"]
    assert props["mode"] == {"enum": ["fast"], "type": "string"}
    assert props["n"]["minimum"] == 1
    assert "format" not in props["url"] and "uri" in props["url"]["description"]
    assert props["level"] == {"enum": ["1", "2"], "type": "string"}
    assert props["maybe"] == {"type": "string", "nullable": True}
    assert props["ref"]["properties"]["id"] == {"type": "string"}
    assert out["required"] == ["mode"]


def test_request_contents_and_edge_41_42_function_responses_match_calls():
    body = build_request({"model": "x", "max_tokens": 64000, "system": "Sys", "metadata": {"user_id": "u"},
                          "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {
                              "command": {"type": "string"}}}}, {"name": "Noop", "input_schema": {}}],
                          "tool_choice": {"type": "tool", "name": "Bash"},
                          "messages": [
                              {"role": "user", "content": "list"},
                              {"role": "assistant", "content": [
                                  {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                                  {"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {"command": "pwd"}}]},
                              {"role": "user", "content": [
                                  {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"},
                                  {"type": "tool_result", "tool_use_id": "toolu_2", "content": "/w",
                                   "is_error": True}]}]},
                         MODEL, stream=True)
    assert body["systemInstruction"] == {"parts": [{"text": "Sys"}]} and "metadata" not in json.dumps(body)
    roles = [c["role"] for c in body["contents"]]
    assert roles == ["user", "model", "user"]
    calls = [p for p in body["contents"][1]["parts"] if "functionCall" in p]
    responses = [p["functionResponse"] for p in body["contents"][2]["parts"] if "functionResponse" in p]
    assert len(calls) == len(responses) == 2
    assert calls[0]["thoughtSignature"] == SKIP_SIGNATURE and "thoughtSignature" not in calls[1]
    assert responses[0] == {"name": "Bash", "response": {"output": "a.py"}}
    assert responses[1] == {"name": "Bash", "response": {"error": "/w"}}
    assert body["toolConfig"]["functionCallingConfig"] == {"mode": "ANY", "allowedFunctionNames": ["Bash"]}
    decls = body["tools"][0]["functionDeclarations"]
    assert "parameters" in decls[0] and "parameters" not in decls[1]
    assert body["generationConfig"]["maxOutputTokens"] == 32000


def run(raw: bytes, chunks: list[bytes] | None = None) -> dict:
    return check_stream(translate_chunks(partial(GeminiStreamTranslator, route=MODEL.label), chunks or [raw])[0])


def _normalise_ids(message: dict) -> dict:
    for block in message["content"]:
        if block["type"] == "tool_use":
            block["id"] = "toolu_x"
    return message


def test_edge_44_crlf_stream_thinking_text_parallel_calls_usage():
    m = run(STREAM)
    # the signature arrived after text closed the thoughts: a thinking block with no text carries it
    assert [b["type"] for b in m["content"]] == ["thinking", "text", "thinking", "tool_use", "tool_use"]
    assert m["content"][0]["signature"] == "occ1." and m["content"][2] == {
        "type": "thinking", "thinking": "", "signature": thought_signature(MODEL.label, "sig")}
    ids = [b["id"] for b in m["content"] if b["type"] == "tool_use"]
    assert len(set(ids)) == 2 and all(i.startswith("toolu_") for i in ids)
    assert m["stop_reason"] == "tool_use"
    assert (m["usage"]["input_tokens"], m["usage"]["cache_read_input_tokens"], m["usage"]["output_tokens"]) == \
        (60, 40, 12)


def test_finish_reasons_and_errors():
    max_tokens = frame({"candidates": [{"content": {"parts": [{"text": "cut"}]}, "finishReason": "MAX_TOKENS"}]})
    assert run(max_tokens)["stop_reason"] == "max_tokens"
    safety = frame({"candidates": [{"content": {"parts": [{"text": "no"}]}, "finishReason": "SAFETY"}]})
    assert run(safety)["stop_reason"] == "refusal"
    with pytest.raises(UpstreamStatus):
        run(frame({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]}))
    with pytest.raises(UpstreamStatus) as info:
        run(frame({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                             "details": [{"@type": "RetryInfo", "retryDelay": "30s"}]}}))
    assert info.value.retry_after_s == 30
    with pytest.raises(UpstreamProtocolError):
        run(frame({"candidates": [{"content": {"parts": [{"text": "no finish"}]}}]}))


def test_non_streaming_response():
    m = translate_response({"candidates": [{"content": {"parts": [
        {"text": "why", "thought": True}, {"text": "Here"},
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2}},
        message_id="msg_1", model_name="c", input_estimate=1, route=MODEL.label)
    assert [b["type"] for b in m["content"]] == ["thinking", "text", "tool_use"]
    assert m["stop_reason"] == "tool_use"
    blocked = translate_response({"promptFeedback": {"blockReason": "SAFETY"}}, message_id="m", model_name="c",
                                 input_estimate=1, route=MODEL.label)
    assert blocked["stop_reason"] == "refusal"


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=15))
def test_any_split_gives_identical_output(cuts):
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert _normalise_ids(run(STREAM, chunks)) == _normalise_ids(run(STREAM))


def test_edge_42_thought_signature_survives_the_round_trip():
    """Thought, then the step's calls (the signature on the first): the signature rides in the thinking
    block through Claude Code's history and returns on the first call."""
    m = run(b"".join([
        frame({"candidates": [{"content": {"parts": [{"text": "Plan: look around.", "thought": True}]}}]}),
        frame({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "sig"},
            {"functionCall": {"name": "Read", "args": {"path": "a"}}}]}, "finishReason": "STOP"}]})]))
    signature = m["content"][0]["signature"]
    assert signature == "occ1.g.opencode-zen/gemini-3.1-pro|sig"
    history = {"model": "x", "max_tokens": 10, "messages": [
        {"role": "user", "content": "list"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": signature},
                                          *[b for b in m["content"] if b["type"] == "tool_use"]]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b["id"], "content": "ok"}
                                     for b in m["content"] if b["type"] == "tool_use"]}]}
    body = build_request(history, MODEL, stream=True)
    calls = [p for p in body["contents"][1]["parts"] if "functionCall" in p]
    assert calls[0]["thoughtSignature"] == "sig" and "thoughtSignature" not in calls[1]
    assert [p["functionResponse"]["name"] for p in body["contents"][2]["parts"]] == ["Bash", "Read"]


def _history_with(content: list[dict]) -> dict:
    calls = [b for b in content if b["type"] == "tool_use"]
    return {"model": "x", "max_tokens": 10, "messages": [
        {"role": "user", "content": "list"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b["id"], "content": "ok"} for b in calls]}]}


def _first_call_signature(request: dict, model: ModelConfig = MODEL) -> str:
    body = build_request(request, model, stream=True)
    return next(p for p in body["contents"][1]["parts"] if "functionCall" in p)["thoughtSignature"]


CALL_WITH_SIGNATURE = frame({"candidates": [{"content": {"parts": [
    {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "sig-2"}]},
    "finishReason": "STOP"}]})


def test_a_signature_after_text_or_without_thoughts_still_goes_back_on_the_call():
    """Thoughts closed by text, or no thoughts shown at all (includeThoughts off): the signature still
    rides through the history, in a thinking block with no text, and returns on the first call."""
    separated = run(b"".join([
        frame({"candidates": [{"content": {"parts": [{"text": "Plan.", "thought": True}]}}]}),
        frame({"candidates": [{"content": {"parts": [{"text": "Looking."}]}}]}),
        CALL_WITH_SIGNATURE]))
    hidden = run(CALL_WITH_SIGNATURE)
    assert [b["type"] for b in hidden["content"]] == ["thinking", "tool_use"]
    for message in (separated, hidden):
        assert _first_call_signature(_history_with(message["content"])) == "sig-2"


def test_non_streaming_carries_the_signature_too():
    def answer(parts: list[dict]) -> dict:
        return translate_response({"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}]},
                                  message_id="m", model_name="c", input_estimate=1, route=MODEL.label)

    call = {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "sig-3"}
    joined = answer([{"text": "why", "thought": True}, call])
    assert [b["type"] for b in joined["content"]] == ["thinking", "tool_use"]
    separated = answer([{"text": "why", "thought": True}, {"text": "Here"}, call])
    assert [b["type"] for b in separated["content"]] == ["thinking", "text", "thinking", "tool_use"]
    hidden = answer([call])
    assert hidden["content"][0] == {"type": "thinking", "thinking": "", "signature": thought_signature(MODEL.label,
                                                                                                       "sig-3")}
    for message in (joined, separated, hidden):
        assert _first_call_signature(_history_with(message["content"])) == "sig-3"


def test_another_models_signature_is_never_replayed():
    """Signatures are bound to model and route: another Gemini model (or the same model on another
    provider) answers "Corrupted thought signature", so it gets the documented skip value instead."""
    content = run(CALL_WITH_SIGNATURE)["content"]
    other_model = ModelConfig(provider="opencode-zen", model_id="gemini-3-flash")
    other_route = ModelConfig(provider="google", model_id=MODEL.model_id)
    assert _first_call_signature(_history_with(content)) == "sig-2"
    assert _first_call_signature(_history_with(content), other_model) == SKIP_SIGNATURE
    assert _first_call_signature(_history_with(content), other_route) == SKIP_SIGNATURE
    legacy = [{"type": "thinking", "thinking": "t", "signature": "occ1.g.sig"}, content[1]]
    assert _first_call_signature(_history_with(legacy)) == SKIP_SIGNATURE


def test_thinking_off_no_thinking_block_short_ids_and_the_placeholder_next_turn():
    """A client that did not turn thinking on gets no thinking block (thoughts dropped), and tool ids stay
    short: nothing carries the signature, so the next turn's first call takes Google's placeholder."""
    parts = [{"text": "why", "thought": True}, {"text": "Here"},
             {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "s+g/3=="},
             {"functionCall": {"name": "Read", "args": {"path": "a"}}}]
    body = {"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}]}
    created = translate_response(body, message_id="m", model_name="c", input_estimate=1, route=MODEL.label,
                                 thinking=False)
    builder_out, _ = translate_chunks(lambda b: GeminiStreamTranslator(b, route=MODEL.label), [frame(body)],
                                     thinking=False)
    streamed = check_stream(builder_out)
    for message in (created, streamed):
        assert [b["type"] for b in message["content"]] == ["text", "tool_use", "tool_use"]
        first, second = message["content"][1:]
        assert re.fullmatch(r"toolu_[0-9a-f]{24}", first["id"]) and first["id"] != second["id"]
        assert "s+g/3==" not in json.dumps(message)
        assert _first_call_signature(_history_with(message["content"])) == SKIP_SIGNATURE


def _legacy_id(route: str, signature: str) -> str:
    """A tool_use id of the form occ minted before for clients without thinking (the signature inside)."""
    import base64
    import hashlib

    payload = f"{hashlib.sha256(route.encode()).hexdigest()[:8]}|{signature}".encode()
    return "toolu_" + "ab" * 12 + "g" + base64.urlsafe_b64encode(payload).decode().rstrip("=")


def test_old_histories_with_the_signature_in_the_tool_id_are_still_read():
    """Sessions recorded before ids became short still carry the signature in their ids: it goes back on its
    call, to its own model only."""
    call = {"type": "tool_use", "id": _legacy_id(MODEL.label, "old+sig/="), "name": "Bash", "input": {"a": 1}}
    assert _first_call_signature(_history_with([call])) == "old+sig/="
    other = ModelConfig(provider="opencode-zen", model_id="gemini-3-flash")
    assert _first_call_signature(_history_with([call]), other) == SKIP_SIGNATURE
    second = {**call, "id": _legacy_id(MODEL.label, "second")}
    body = build_request(_history_with([{**call, "id": "toolu_plain"}, second]), MODEL, stream=True)
    signed = [p.get("thoughtSignature") for p in body["contents"][1]["parts"] if "functionCall" in p]
    assert signed == [SKIP_SIGNATURE, "second"]


def test_a_signature_goes_back_on_the_call_it_came_with():
    """A thinking block with a signature belongs to the call right after it, not to the turn's first."""
    content = [{"type": "tool_use", "id": "toolu_a", "name": "Read", "input": {}},
               {"type": "thinking", "thinking": "", "signature": thought_signature(MODEL.label, "for-b")},
               {"type": "tool_use", "id": "toolu_b", "name": "Bash", "input": {}}]
    body = build_request(_history_with(content), MODEL, stream=True)
    signed = [p.get("thoughtSignature") for p in body["contents"][1]["parts"] if "functionCall" in p]
    assert signed == [SKIP_SIGNATURE, "for-b"]


@pytest.mark.parametrize("thinking", [True, False], ids=["thinking", "thinking-off"])
def test_sdk_built_answers_keep_ids_short_and_the_signature_in_a_thinking_block(thinking):
    """google-genai's own GenerateContentResponse (the signature's bytes written as base64, as the API
    does), streamed and not: ids are always ``toolu_`` + 24 hex; the signature goes back on its call with
    thinking on, and the placeholder takes its place with thinking off."""
    import base64

    from support.sdk_answers import Answer, gemini_body, gemini_stream

    answer = Answer(text="Listing.", thinking="I should list.", signature="sig+/bytes", model="gemini-3.1-pro",
                    tools=(("Bash", {"command": "ls"}), ("Read", {"path": "a"})))
    wire = base64.b64encode(b"sig+/bytes").decode()
    created = translate_response(json.loads(gemini_body(answer)), message_id="m", model_name="c", input_estimate=1,
                                 route=MODEL.label, thinking=thinking)
    out, _ = translate_chunks(lambda b: GeminiStreamTranslator(b, route=MODEL.label), [gemini_stream(answer)],
                              thinking=thinking)
    for message in (created, check_stream(out)):
        ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
        assert len(ids) == 2 and all(re.fullmatch(r"toolu_[0-9a-f]{24}", i) for i in ids)
        assert (wire in json.dumps(message)) is thinking
        body = build_request(_history_with(message["content"]), MODEL, stream=True)
        signed = [p.get("thoughtSignature") for p in body["contents"][1]["parts"] if "functionCall" in p]
        assert signed == ([wire, None] if thinking else [SKIP_SIGNATURE, None])

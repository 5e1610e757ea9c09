"""Gemini 3 tool loops end to end: occ on hypercorn, the anthropic SDK as client, and a fake upstream that
answers like Gemini 3 does: the second turn is refused with a 400 unless the first call of the replayed
step carries the thought signature the first turn gave it (or Google's placeholder, which Gemini accepts
in place of a missing one). On the chat wire (Google's OpenAI-compatible endpoint) and the native wire."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.fake_upstream import Reply, Seen
from support.sdk_answers import Answer, chat_body, chat_stream, gemini_stream
from support.shapes import USER
from support.stack import THINKING, make_config, sdk

from occ.translate.thought_signatures import SKIP_SIGNATURE

SIGNATURE = "CiQBjz1rX8Zg+/sig=="
TOOLS = [{"name": "Read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}},
         {"name": "Grep", "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}}}]
STEP = Answer(text="Reading both.", signature=SIGNATURE, model="gemini-3-pro-preview",
              tools=(("Read", {"file_path": "/src/a.py"}), ("Grep", {"pattern": "def main"})))
DONE = Answer(text="Both files read.", model="gemini-3-pro-preview")
CHAT = "/v1/chat/completions"
MISSING = ("Function call is missing a thought_signature in functionCall parts. This is required for tools to "
           "work correctly, and missing thought_signature may lead to degraded model performance.")


def _gemini_400(*, wrapped: bool = False) -> Reply:
    """Gemini's refusal; its OpenAI-compatible endpoint wraps the error object in an array."""
    error = {"error": {"code": 400, "message": MISSING, "status": "INVALID_ARGUMENT"}}
    return Reply(status=400, body=[error] if wrapped else error)


def _chat_upstream(accept: set[str]):
    """Gemini 3 behind chat completions: the first turn answers STEP; a later turn is refused unless its
    replayed step's first call carries a signature in ``accept``."""

    def respond(seen: Seen) -> Reply:
        body = seen.json
        replayed = [m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
        answer = STEP
        if replayed:
            first = replayed[-1]["tool_calls"][0]
            signature = ((first.get("extra_content") or {}).get("google") or {}).get("thought_signature")
            if signature not in accept:
                return _gemini_400(wrapped=True)
            answer = DONE
        if body.get("stream"):
            return Reply(chunks=[chat_stream(answer)])
        return Reply(body=chat_body(answer).encode(), headers={"content-type": "application/json"})

    return respond


def _history(first: Any) -> list[dict[str, Any]]:
    calls = [b for b in first.content if b.type == "tool_use"]
    return [*USER, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b.id, "content": "ok"} for b in calls]}]


async def _turn(client: Any, messages: list[dict[str, Any]], *, stream: bool, thinking: bool) -> Any:
    extra: dict[str, Any] = {"thinking": THINKING} if thinking else {}
    if stream:
        async with client.messages.stream(model="m", max_tokens=2000, messages=messages, tools=TOOLS,
                                          **extra) as answer:
            return await answer.get_final_message()
    return await client.messages.create(model="m", max_tokens=2000, messages=messages, tools=TOOLS, **extra)


def _chat_config(fake: Any) -> Any:
    return make_config(fake, models={"default": {"provider": "fake", "model_id": "gemini-3-pro-preview",
                                                 "wire_format": "openai"}})


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "create"])
async def test_chat_wire_two_turn_tool_loop_sends_the_signature_back_on_its_call(fake, start_occ, stream):
    fake.default(CHAT, _chat_upstream({SIGNATURE}))
    client = sdk(await start_occ(_chat_config(fake)))
    first = await _turn(client, USER, stream=stream, thinking=True)
    assert [b.type for b in first.content] == ["text", "thinking", "tool_use", "tool_use"]
    assert first.stop_reason == "tool_use" and first.content[1].thinking == ""
    assert all(len(b.id) <= 40 for b in first.content if b.type == "tool_use")
    second = await _turn(client, _history(first), stream=stream, thinking=True)
    assert second.content[0].text == DONE.text
    sent = fake.requests(CHAT)[1].json
    calls = next(m for m in sent["messages"] if m["role"] == "assistant")["tool_calls"]
    assert calls[0]["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert "extra_content" not in calls[1] and [c["id"] for c in calls] == ["call_0_Read", "call_1_Grep"]
    assert "occ1." not in json.dumps(sent)


async def test_chat_wire_without_signature_carriers_gets_the_placeholder_and_no_400(fake, start_occ):
    """A client that did not ask for thinking receives no thinking block, so nothing carries the signature:
    the next turn takes Google's placeholder, which Gemini 3 accepts; the real signature would 400 nowhere."""
    fake.default(CHAT, _chat_upstream({SKIP_SIGNATURE}))
    client = sdk(await start_occ(_chat_config(fake)))
    first = await _turn(client, USER, stream=True, thinking=False)
    assert [b.type for b in first.content] == ["text", "tool_use", "tool_use"]
    second = await _turn(client, _history(first), stream=True, thinking=False)
    assert second.content[0].text == DONE.text


async def test_switching_to_gemini_3_mid_session_works(fake, start_occ):
    """A tool loop begun by another model (no signature in the history) continues on Gemini 3: the replayed
    step takes the placeholder instead of drawing the 400."""
    fake.default(CHAT, _chat_upstream({SKIP_SIGNATURE}))
    client = sdk(await start_occ(_chat_config(fake)))
    history = [*USER, {"role": "assistant", "content": [
                   {"type": "thinking", "thinking": "I should read it.", "signature": "EqQBCkYIBxgCKkD-claude=="},
                   {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "Read",
                    "input": {"file_path": "/src/a.py"}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                                             "content": "print('hi')"}]}]
    second = await _turn(client, history, stream=True, thinking=True)
    assert second.content[0].text == DONE.text


async def test_a_refused_turn_reaches_the_client_with_geminis_own_message(fake, start_occ):
    """Were a signature ever lost, the client would see Gemini's 400 and its message, not the array's text."""
    import anthropic

    fake.default(CHAT, _chat_upstream(set()))
    client = sdk(await start_occ(_chat_config(fake)))
    first = await _turn(client, USER, stream=False, thinking=True)
    with pytest.raises(anthropic.BadRequestError) as info:
        await _turn(client, _history(first), stream=False, thinking=True)
    assert MISSING in str(info.value) and "[{" not in str(info.value)


def _native_upstream(path: str):
    """Gemini 3's own API: the replayed step's first functionCall must carry the step's signature."""
    import base64

    expected = base64.b64encode(SIGNATURE.encode()).decode()  # google-genai writes the bytes as base64

    def respond(seen: Seen) -> Reply:
        contents = seen.json["contents"]
        model_turns = [c for c in contents if c["role"] == "model"]
        if not model_turns:
            return Reply(chunks=[gemini_stream(STEP)])
        first = next(p for p in model_turns[-1]["parts"] if "functionCall" in p)
        if first.get("thoughtSignature") != expected:
            return _gemini_400()
        return Reply(chunks=[gemini_stream(DONE)])

    return respond


async def test_native_gemini_two_turn_tool_loop_with_short_ids(fake, start_occ):
    path = "/v1beta/models/gemini-3-pro-preview:streamGenerateContent"
    fake.default(path, _native_upstream(path))
    client = sdk(await start_occ(make_config(fake, models={"default": {
        "provider": "fake", "model_id": "gemini-3-pro-preview", "wire_format": "gemini"}})))
    first = await _turn(client, USER, stream=True, thinking=True)
    assert [b.type for b in first.content] == ["text", "thinking", "tool_use", "tool_use"]
    assert all(len(b.id) == len("toolu_") + 24 for b in first.content if b.type == "tool_use")
    second = await _turn(client, _history(first), stream=True, thinking=True)
    assert second.content[0].text == DONE.text
    assert len(fake.requests(path)) == 2

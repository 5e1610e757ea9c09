"""Every recorded upstream answer in ``tests/recordings/`` through the whole stack.

Each recording is served by a fake upstream on 127.0.0.1 exactly as recorded (status, headers, bytes),
occ runs on hypercorn, and the official ``anthropic`` SDK is the client. Per recording: the raw answer
obeys the Anthropic SSE grammar (or is an Anthropic error with an error status), the SDK accumulates it,
and what it holds matches what the recording says, as read by the independent reference reader of its
wire (:mod:`support.wire_readers`): text, thinking, tool names and inputs, stop reason, usage, or the
upstream's error. Adding a file to the corpus adds a case; nothing here names a recording.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import trio
from support.anthropic_checker import check_stream
from support.fake_upstream import Reply
from support.stack import THINKING, make_config, sdk, wait_for_log
from support.wire_readers import Expected, read

CORPUS = Path(__file__).resolve().parent.parent / "recordings"
RECORDINGS = sorted(p for p in CORPUS.glob("*/*") if p.suffix in (".json", ".sse") and
                    not p.name.endswith(".meta.json"))
MODEL_ID = "recorded-model"
USER = [{"role": "user", "content": "What is the status of the build?"}]


def _path(wire: str, stream: bool) -> str:
    if wire == "gemini":
        return f"/v1beta/models/{MODEL_ID}:{'streamGenerateContent' if stream else 'generateContent'}"
    return {"openai": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages"}[wire]


def _manifest(recording: Path) -> dict[str, Any]:
    meta = recording.with_name(recording.stem + ".meta.json")
    return json.loads(meta.read_text()) if meta.exists() else {}


def test_the_corpus_covers_every_wire_both_ways():
    """Done-when of issue 14: per wire, streaming and non-streaming text, thinking, one tool, parallel
    tools, an error and a usage-less answer (read from the recordings, not from their names)."""
    for wire in ("openai", "responses", "gemini", "anthropic"):
        seen: set[tuple[str, bool]] = set()
        for recording in (r for r in RECORDINGS if r.parent.name == wire):
            manifest = _manifest(recording)
            stream = manifest.get("stream", recording.suffix == ".sse")
            expected = read(wire, recording.read_bytes(), stream=recording.suffix == ".sse",
                            status=manifest.get("status", 200))
            kinds = {"error"} if expected.error else set()
            if expected.text:
                kinds.add("text")
            if expected.thinking:
                kinds.add("thinking")
            if len(expected.tools) == 1:
                kinds.add("tool")
            if len(expected.tools) > 1:
                kinds.add("parallel")
            if not expected.error and expected.usage is None:
                kinds.add("no_usage")
            seen |= {(k, stream) for k in kinds}
        missing = {(k, s) for k in ("text", "thinking", "tool", "parallel", "error", "no_usage")
                   for s in (True, False)} - seen
        assert not missing, f"{wire}: no recording for {sorted(missing)}"


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_recording_through_occ(recording: Path, fake, start_occ, caplog):
    wire = recording.parent.name
    manifest = _manifest(recording)
    stream = manifest.get("stream", recording.suffix == ".sse")
    status = manifest.get("status", 200)
    raw = recording.read_bytes()
    # what the bytes are (a stream, or a whole answer), not what the client asked for, decides the reading
    expected = read(wire, raw, stream=recording.suffix == ".sse", status=status)
    content_type = "text/event-stream" if recording.suffix == ".sse" else "application/json"
    fake.default(_path(wire, stream), Reply(status=status, headers={"content-type": content_type,
                                                                    **manifest.get("headers", {})},
                                            chunks=[raw]))
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": MODEL_ID,
                                                                "wire_format": wire}}))
    request: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 1024, "messages": USER}
    if manifest.get("thinking", True):
        request["thinking"] = THINKING
    with trio.fail_after(20):
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{url}/v1/messages", json={**request, "stream": stream})
        if expected.error:
            await _check_error(response, expected, stream, sdk(url), request)
            return
        assert response.status_code == 200, response.text
        if stream:
            check_stream(response.content)
            async with sdk(url).messages.stream(**request) as events:
                message = await events.get_final_message()
        else:
            message = await sdk(url).messages.create(**request)
    _check_fidelity(message, expected, thinking=manifest.get("thinking", True))
    if expected.usage is None:
        await wait_for_log(caplog, "tokens_estimated=True")


async def _check_error(response: httpx.Response, expected: Expected, stream: bool,
                       client: anthropic.AsyncAnthropic, request: dict[str, Any]) -> None:
    """Before any content an upstream error is an HTTP error in Anthropic's shape; after content it
    ends the stream with an ``error`` event. Either way the upstream's message reaches the client."""
    if response.status_code >= 400:
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] and body["error"]["message"]
    else:
        message = check_stream(response.content, allow_error=True)
        assert message.get("error"), "a stream that ends in an upstream error must end with an error event"
    with pytest.raises(anthropic.APIError) as info:
        if stream:
            async with client.messages.stream(**request) as events:
                await events.get_final_message()
        else:
            await client.messages.create(**request)
    assert expected.error is not None and expected.error in str(info.value), (expected.error, str(info.value))


def _check_fidelity(message: anthropic.types.Message, expected: Expected, *, thinking: bool) -> None:
    text = "".join(b.text for b in message.content if b.type == "text")
    assert text.strip() == expected.text
    thoughts = [b for b in message.content if b.type == "thinking"]
    if thinking:
        assert "".join(b.thinking for b in thoughts).strip() == expected.thinking
    else:
        assert not thoughts, "the client did not ask for thinking"
    assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == expected.tools
    assert message.stop_reason == expected.stop_reason
    reported = message.usage
    if expected.usage is not None:
        total_input = (reported.input_tokens + (reported.cache_read_input_tokens or 0)
                       + (reported.cache_creation_input_tokens or 0))
        assert (total_input, reported.output_tokens) == expected.usage
    else:
        assert reported.input_tokens > 0, "an estimate stands in for missing usage"

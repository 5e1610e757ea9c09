"""The real client: Claude Code CLI -> occ -> a fake chat-completions upstream of ours.

The CLI hides a broken stream behind a silent non-streaming retry, so "the CLI worked" proves little;
this test also checks that every upstream call occ made was a streaming one (a retry would arrive
with ``stream: false``) and that the Bash tool really ran.
"""

from __future__ import annotations

import json

from support.claude_cli import MARKER, MESSAGES, SIGNATURE, needs_cli
from support.claude_cli import anthropic_script as _anthropic_script
from support.claude_cli import run_cli as _run_cli
from support.fake_upstream import Reply, Seen, sse
from support.shapes import chunk, tool_delta, usage_chunk
from support.stack import TEST_KEY, make_config

CHAT = "/v1/chat/completions"


def _script(seen: Seen) -> Reply:
    messages = seen.json.get("messages", [])
    if any(m.get("role") == "tool" for m in messages):
        return Reply(chunks=sse(chunk({"reasoning_content": "The command ran."}),
                                chunk({"content": f"The command printed {MARKER}."}),
                                chunk(finish="stop"), usage_chunk(1200, 12)))
    return Reply(chunks=sse(chunk({"role": "assistant", "content": ""}),
                            chunk(tool_delta(0, "call_cli_1", "Bash", "")),
                            chunk(tool_delta(0, None, None, json.dumps({"command": f"echo {MARKER}",
                                                                        "description": "Print the marker"}))),
                            chunk(finish="tool_calls"), usage_chunk(1000, 20)))


@needs_cli
async def test_claude_code_runs_a_tool_through_occ(fake, start_occ, tmp_path):
    fake.default(CHAT, _script)
    await _run_cli(await start_occ(make_config(fake)), tmp_path)
    upstream = fake.requests(CHAT)
    assert len(upstream) >= 2
    assert all(s.json.get("stream") is True for s in upstream), "the CLI fell back to a non-streaming retry"


GEMINI = "/v1beta/models/gemini-3.1-pro:streamGenerateContent"


def _gemini_script(seen: Seen) -> Reply:
    from support.shapes import frame

    contents = seen.json.get("contents", [])
    if any("functionResponse" in part for c in contents for part in c.get("parts", [])):
        return Reply(chunks=[frame({"candidates": [{"content": {"parts": [
            {"text": f"The command printed {MARKER}."}]}, "finishReason": "STOP"}]})])
    return Reply(chunks=[
        frame({"candidates": [{"content": {"parts": [{"text": "I should run it.", "thought": True}]}}]}),
        frame({"candidates": [{"content": {"parts": [{"text": "Running the command."}]}}]}),
        frame({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "Bash", "args": {"command": f"echo {MARKER}",
                                                       "description": "Print the marker"}},
             "thoughtSignature": "sig-from-gemini"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 20}})])


@needs_cli
async def test_claude_code_carries_a_gemini_thought_signature_back(fake, start_occ, tmp_path):
    """Text between the thoughts and the call: the signature travels in a thinking block with no text.
    The real CLI must accept that block, keep it in its history and send it back, so that the next
    Gemini request carries the signature on the call (Gemini 3 rejects a call without one)."""
    fake.default(GEMINI, _gemini_script)
    config = make_config(fake, models={"default": {"provider": "fake", "model_id": "gemini-3.1-pro",
                                                   "wire_format": "gemini"}})
    await _run_cli(await start_occ(config), tmp_path)
    followups = [s.json for s in fake.requests(GEMINI)
                 if any("functionResponse" in p for c in s.json.get("contents", []) for p in c.get("parts", []))]
    assert followups, "the CLI never sent the tool result back"
    calls = [p for c in followups[0]["contents"] if c["role"] == "model" for p in c["parts"] if "functionCall" in p]
    assert calls and calls[0]["thoughtSignature"] == "sig-from-gemini"
    assert not fake.requests(GEMINI.replace("streamGenerateContent", "generateContent")), \
        "the CLI fell back to a non-streaming retry"


def _gemini_chat_script(seen: Seen) -> Reply:
    """Gemini 3 behind chat completions (Google's /v1beta/openai/): the signature on the call's
    extra_content; a follow-up whose replayed call lacks it is refused with Gemini's 400."""
    messages = seen.json.get("messages", [])
    if any(m.get("role") == "tool" for m in messages):
        call = next(m for m in messages if m.get("tool_calls"))["tool_calls"][0]
        if ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature") != "sig-gemini-chat":
            return Reply(status=400, body={"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                                                     "Function call is missing a thought_signature in functionCall "
                                                     "parts."}})
        return Reply(chunks=sse(chunk({"content": f"The command printed {MARKER}."}), chunk(finish="stop"),
                                usage_chunk(1200, 12)))
    fragment = tool_delta(0, "function-call-cli", "Bash", json.dumps({"command": f"echo {MARKER}",
                                                                     "description": "Print the marker"}))
    fragment["tool_calls"][0]["extra_content"] = {"google": {"thought_signature": "sig-gemini-chat"}}
    return Reply(chunks=sse(chunk({"role": "assistant", "content": "Running the command."}), chunk(fragment),
                            chunk(finish="tool_calls"), usage_chunk(1000, 20)))


@needs_cli
async def test_claude_code_carries_a_gemini_chat_signature_back(fake, start_occ, tmp_path):
    """On the chat wire the signature rides in an empty thinking block in front of the call; the real CLI
    keeps it and sends it back, and occ puts it on the same call's extra_content."""
    fake.default(CHAT, _gemini_chat_script)
    config = make_config(fake, models={"default": {"provider": "fake", "model_id": "gemini-3-pro-preview",
                                                   "wire_format": "openai"}})
    await _run_cli(await start_occ(config), tmp_path)
    followups = [s.json for s in fake.requests(CHAT) if any(m.get("role") == "tool" for m in s.json["messages"])]
    assert followups, "the CLI never sent the tool result back"
    assert all(s.json.get("stream") is True for s in fake.requests(CHAT)), "a non-streaming retry happened"


RESPONSES = "/v1/responses"


def _responses_script(seen: Seen) -> Reply:
    from support.shapes import ev

    items = seen.json.get("input", [])
    if any(item.get("type") == "function_call_output" for item in items):
        return Reply(chunks=[
            ev({"type": "response.output_item.added", "item": {"id": "msg_2", "type": "message", "role": "assistant"}}),
            ev({"type": "response.output_text.delta", "item_id": "msg_2", "delta": f"The command printed {MARKER}."}),
            ev({"type": "response.completed", "response": {"usage": {"input_tokens": 900, "output_tokens": 9}}})])
    command = json.dumps({"command": f"echo {MARKER}", "description": "Print the marker"})
    return Reply(chunks=[
        ev({"type": "response.output_item.added", "item": {"id": "rs_cli", "type": "reasoning", "summary": []}}),
        ev({"type": "response.output_item.done", "item": {"id": "rs_cli", "type": "reasoning", "summary": [],
                                                          "encrypted_content": "gAAAA-cli-reasoning"}}),
        ev({"type": "response.output_item.added", "item": {"id": "fc_cli", "type": "function_call",
                                                           "call_id": "call_cli", "name": "Bash"}}),
        ev({"type": "response.function_call_arguments.done", "item_id": "fc_cli", "arguments": command}),
        ev({"type": "response.completed", "response": {"usage": {"input_tokens": 800, "output_tokens": 20}}})])


@needs_cli
async def test_claude_code_carries_responses_reasoning_without_a_summary_back(fake, start_occ, tmp_path):
    """A reasoning item with no summary (the common case) rides in a thinking block with no text; the
    CLI sends it back and the follow-up request replays the item whole, encrypted content included."""
    fake.default(RESPONSES, _responses_script)
    config = make_config(fake, models={"default": {"provider": "fake", "model_id": "gpt-5.5",
                                                   "wire_format": "responses"}})
    await _run_cli(await start_occ(config), tmp_path)
    followups = [s.json for s in fake.requests(RESPONSES)
                 if any(i.get("type") == "function_call_output" for i in s.json.get("input", []))]
    assert followups, "the CLI never sent the tool result back"
    reasoning = [i for i in followups[0]["input"] if i.get("type") == "reasoning"]
    assert reasoning == [{"type": "reasoning", "id": "rs_cli", "summary": [],
                          "encrypted_content": "gAAAA-cli-reasoning"}]
    assert all(s.json.get("stream") is True for s in fake.requests(RESPONSES)), "a non-streaming retry happened"


@needs_cli
async def test_claude_code_over_the_anthropic_wire(fake, start_occ, tmp_path):
    """Passthrough (MiniMax and Qwen on Go): the CLI's body goes upstream with only what third-party
    endpoints reject removed, under occ's key, and the upstream's own thinking signature comes back to
    it byte for byte on the next turn."""
    fake.default(MESSAGES, _anthropic_script)
    config = make_config(fake, models={"default": {"provider": "fake", "model_id": "minimax-m3",
                                                   "wire_format": "anthropic"}})
    await _run_cli(await start_occ(config), tmp_path)
    seen = fake.requests(MESSAGES)
    assert all(s.json.get("stream") is True for s in seen), "the CLI fell back to a non-streaming retry"
    for request in seen:
        assert request.json["model"] == "minimax-m3" and "context_management" not in request.json
        assert "claude-code-20250219" not in request.headers.get("anthropic-beta", "")
        assert request.headers["x-api-key"] == TEST_KEY
    followup = next(s.json for s in seen if any(
        isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
        for m in s.json["messages"]))
    thinking = [b for m in followup["messages"] if m["role"] == "assistant" and isinstance(m["content"], list)
                for b in m["content"] if b.get("type") == "thinking"]
    assert thinking and thinking[0]["signature"] == SIGNATURE

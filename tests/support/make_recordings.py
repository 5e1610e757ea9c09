"""Write the recordings corpus, ``tests/recordings/<wire>/<name>.(json|sse)``, from the providers' SDK types.

Run from the repository root: ``PYTHONPATH=tests python -m support.make_recordings``. Each file is an
upstream answer exactly as it goes over the wire; a ``<name>.meta.json`` beside it, when present, holds
what the body cannot: the HTTP ``status``, response ``headers``, whether the client asks with ``stream``
(default: ``.sse`` streams, ``.json`` does not) and ``thinking`` (default on, as Claude Code sends it).
The corpus is committed; regenerate it when a builder in :mod:`support.sdk_answers` changes. A recording
can also be a real capture dropped in by hand: the end-to-end test reads only the files.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.sdk_answers import (
    Answer,
    anthropic_body,
    anthropic_error,
    anthropic_events,
    anthropic_object,
    anthropic_stream,
    chat_body,
    chat_error,
    chat_stream,
    gemini_body,
    gemini_error,
    gemini_json,
    gemini_object,
    gemini_stream,
    responses_body,
    responses_stream,
    sse_named,
)

ROOT = Path(__file__).resolve().parent.parent / "recordings"

TEXT = Answer(text="Hello! The build passed and all 42 tests are green.")
THINK = "The user wants a status.\n\nI should look at the build first."
READ = ("Read", {"file_path": "/src/app.py"})
PARALLEL = (("Read", {"file_path": "/src/a.py"}), ("Grep", {"pattern": "def main", "path": "/src"}),
            ("Bash", {"command": "ls -la", "description": "List files"}))
TOOL = Answer(text="Let me read the file.", tools=(READ,))
TOOLS = Answer(text="Looking at three things at once.", tools=PARALLEL)
NO_USAGE = Answer(text="An answer without any usage.", usage=None)

Recording = tuple[str, str, bytes | str, dict[str, Any]]  # (wire, file name, body, manifest)


def _chat() -> list[Recording]:
    deepseek = Answer(text="The answer is 4.", thinking="2 + 2 is 4.", model="deepseek-v4-pro",
                      tools=(READ,), usage=(900, 64), cached=512)
    kimi = Answer(text="Done.", thinking="Kimi thinks step by step.", model="kimi-k2.6", tools=PARALLEL[:2])
    glm = Answer(text="GLM says hi.", thinking="GLM reasoning.", model="glm-5")
    qwen = Answer(text="Qwen answers.", thinking="Qwen reasons.", model="qwen3.6-plus")
    minimax = Answer(text="<think>\nMiniMax reasons inline.\n</think>\n\nThe answer, after thinking.",
                     model="minimax-m2.7")
    minimax_tool = Answer(text="<think>I need the file.</think>Reading it.", tools=(READ,), model="minimax-m2.7")
    mistral = Answer(text="Magistral's answer.", thinking="Magistral thinks in parts.", model="magistral-medium",
                     tools=(READ,))
    gemini3 = Answer(text="Reading both.", signature="CiQBjz1rX8Zg+/gemini3-chat-signature==",
                     tools=PARALLEL[:2], model="gemini-3-pro-preview")
    unknown = Answer(text="Fields nobody documented.", extra={"annotations": [], "audio": None,
                                                              "provider_specific_fields": {"x": 1}})
    out: list[Recording] = [
        ("openai", "text.json", chat_body(TEXT), {}),
        ("openai", "text.sse", chat_stream(TEXT), {}),
        ("openai", "deepseek_reasoning_tool.json", chat_body(deepseek), {}),
        ("openai", "deepseek_reasoning_tool.sse", chat_stream(deepseek), {}),
        ("openai", "kimi_reasoning_parallel.sse", chat_stream(kimi), {}),
        ("openai", "glm_reasoning.sse", chat_stream(glm), {}),
        ("openai", "glm_reasoning.json", chat_body(glm), {}),
        ("openai", "qwen_reasoning.sse", chat_stream(qwen), {}),
        ("openai", "openrouter_reasoning_field.sse", chat_stream(qwen, reasoning_key="reasoning"), {}),
        ("openai", "minimax_think_tags.json", chat_body(minimax), {}),
        ("openai", "minimax_think_tags.sse", chat_stream(minimax), {}),
        ("openai", "minimax_think_tool.sse", chat_stream(minimax_tool), {}),
        ("openai", "tool_one.json", chat_body(TOOL), {}),
        ("openai", "tool_one.sse", chat_stream(TOOL), {}),
        ("openai", "tools_parallel.json", chat_body(TOOLS), {}),
        ("openai", "tools_parallel.sse", chat_stream(TOOLS), {}),
        ("openai", "max_tokens.sse", chat_stream(TEXT.evolve(stop="max_tokens")), {}),
        ("openai", "refusal.json", chat_body(Answer(text="I can't help with that.", stop="refusal")), {}),
        ("openai", "no_usage.json", chat_body(NO_USAGE), {}),
        ("openai", "no_usage.sse", chat_stream(NO_USAGE), {}),
        ("openai", "unknown_fields.json", chat_body(unknown), {}),
        ("openai", "mistral_thinking_parts.json", _mistral_body(chat_body(mistral)), {}),
        # Gemini 3 behind chat completions: the thought signature on the first call's extra_content
        ("openai", "gemini3_signature_tools.json", chat_body(gemini3), {}),
        ("openai", "gemini3_signature_tools.sse", chat_stream(gemini3), {}),
        ("openai", "gemini3_signature_thinking_off.sse", chat_stream(gemini3), {"thinking": False}),
        ("openai", "mistral_thinking_parts.sse", _mistral_stream(chat_stream(mistral)), {}),
        # servers that ignore "stream": true and answer with the whole completion
        ("openai", "whole_answer_to_stream.json", chat_body(deepseek), {"stream": True}),
        ("openai", "unknown_fields.sse", chat_stream(unknown), {}),
        ("openai", "error_rate_limit.json",
         chat_error("Rate limit reached for requests", "rate_limit_error", "rate_limit_exceeded"),
         {"status": 429, "headers": {"retry-after": "1"}}),
        ("openai", "error_rate_limit_stream.json",
         chat_error("Rate limit reached for requests", "rate_limit_error", "rate_limit_exceeded"),
         {"status": 429, "headers": {"retry-after": "1"}, "stream": True}),
        ("openai", "error_bad_request.json",
         chat_error("Invalid schema for function 'Read'", "invalid_request_error", "invalid_function_parameters"),
         {"status": 400}),
    ]
    return out


def _responses() -> list[Recording]:
    reasoning = Answer(text="Here is the plan.", thinking=THINK, signature="gAAAAB-encrypted-reasoning==",
                       model="gpt-5.5")
    reasoning_tools = reasoning.evolve(text="", tools=PARALLEL[:2])
    encrypted_only = Answer(text="Thought without a summary.", signature="gAAAAB-only-encrypted", model="gpt-5.5")
    refusal = Answer(text="I'm sorry, I can't help with that.", stop="refusal")
    gpt_oss = Answer(text="The file has 3 functions.", thinking="Count the defs: a, b, c.", model="gpt-oss-120b",
                     tools=(READ,))
    unknown = Answer(text="Extra fields.", extra={"brand_new_field": {"nested": True}})
    return [
        ("responses", "text.json", responses_body(TEXT), {}),
        ("responses", "text.sse", responses_stream(TEXT), {}),
        ("responses", "reasoning_encrypted.json", responses_body(reasoning), {}),
        ("responses", "reasoning_encrypted.sse", responses_stream(reasoning), {}),
        ("responses", "reasoning_tools.sse", responses_stream(reasoning_tools), {}),
        ("responses", "encrypted_without_summary.json", responses_body(encrypted_only), {}),
        ("responses", "gpt_oss_reasoning_text.json", responses_body(gpt_oss, raw_reasoning=True), {}),
        ("responses", "gpt_oss_reasoning_text.sse", responses_stream(gpt_oss, raw_reasoning=True), {}),
        ("responses", "tool_one.json", responses_body(TOOL), {}),
        ("responses", "tool_one.sse", responses_stream(TOOL), {}),
        ("responses", "tools_parallel.json", responses_body(TOOLS), {}),
        ("responses", "tools_parallel.sse", responses_stream(TOOLS), {}),
        ("responses", "refusal.json", responses_body(refusal), {}),
        ("responses", "refusal.sse", responses_stream(refusal), {}),
        ("responses", "incomplete_max_tokens.json", responses_body(TEXT.evolve(stop="max_tokens")), {}),
        ("responses", "incomplete_max_tokens.sse", responses_stream(TEXT.evolve(stop="max_tokens")), {}),
        ("responses", "failed.json", responses_body(Answer(stop="failed")), {}),
        ("responses", "failed.sse", responses_stream(Answer(stop="failed")), {}),
        ("responses", "no_usage.json", responses_body(NO_USAGE), {}),
        ("responses", "no_usage.sse", responses_stream(NO_USAGE), {}),
        ("responses", "unknown_fields.json", responses_body(unknown), {}),
        ("responses", "whole_answer_to_stream.json", responses_body(reasoning), {"stream": True}),
        ("responses", "done_events_only.sse", _without_deltas(responses_stream(reasoning.evolve(tools=(READ,)))), {}),
        # GitHub Copilot's Responses endpoint: every event names its item by a new id
        ("responses", "rotating_ids.sse", responses_stream(reasoning.evolve(tools=PARALLEL[:2]), rotate_ids=True), {}),
        ("responses", "rotating_ids_gpt_oss.sse", responses_stream(gpt_oss, raw_reasoning=True, rotate_ids=True), {}),
        ("responses", "deltas_only.sse", responses_stream(reasoning.evolve(tools=(READ,)), carriers="deltas"), {}),
        ("responses", "error_rate_limit.json",
         chat_error("Rate limit reached for gpt-5.5", "requests", "rate_limit_exceeded"),
         {"status": 429, "headers": {"retry-after": "2"}}),
        ("responses", "error_server_stream.json",
         chat_error("The server had an error while processing your request.", "server_error", None),
         {"status": 500, "stream": True}),
    ]


def _gemini() -> list[Recording]:
    from google.genai import types as T

    thoughts_25 = Answer(text="Gemini 2.5 answer.", thinking="**Planning** I will answer briefly.",
                         model="gemini-2.5-pro", usage=(300, 40))
    signed_call = Answer(text="", thinking="I should list the files.", signature="Gemini3-signature+/=",
                         tools=(PARALLEL[2],), model="gemini-3.1-pro")
    parallel = Answer(text="Checking both.", thinking="Two reads.", signature="sig-parallel", tools=PARALLEL[:2],
                      model="gemini-3-flash")
    max_tokens = TEXT.evolve(stop="max_tokens")
    safety_text = gemini_json(gemini_object(Answer(), parts_only=[], finish="SAFETY"))
    blocked = gemini_json(gemini_object(Answer(usage=(12, 0)), block_reason="SAFETY"))
    unknown = json.loads(gemini_body(TEXT))
    unknown["candidates"][0]["brandNewCandidateField"] = {"x": 1}
    unknown["serverTiming"] = "12ms"
    signed_text = gemini_json(gemini_object(TEXT, parts_only=[T.Part(text=TEXT.text, thought_signature=b"textsig")]))
    return [
        ("gemini", "text.json", gemini_body(TEXT), {}),
        ("gemini", "text.sse", gemini_stream(TEXT), {}),
        ("gemini", "thoughts_25.json", gemini_body(thoughts_25), {}),
        ("gemini", "thoughts_25.sse", gemini_stream(thoughts_25), {}),
        ("gemini", "thoughts_signature_call_3.json", gemini_body(signed_call), {}),
        ("gemini", "thoughts_signature_call_3.sse", gemini_stream(signed_call), {}),
        ("gemini", "signature_call_thinking_off.sse", gemini_stream(signed_call), {"thinking": False}),
        ("gemini", "signature_on_text_part.json", signed_text, {}),
        ("gemini", "tool_one.json", gemini_body(TOOL), {}),
        ("gemini", "tool_one.sse", gemini_stream(TOOL), {}),
        ("gemini", "tools_parallel.json", gemini_body(parallel), {}),
        ("gemini", "tools_parallel.sse", gemini_stream(parallel), {}),
        ("gemini", "max_tokens.json", gemini_body(max_tokens), {}),
        ("gemini", "max_tokens.sse", gemini_stream(max_tokens), {}),
        ("gemini", "finish_safety.json", safety_text, {}),
        ("gemini", "prompt_blocked.json", blocked, {}),
        ("gemini", "prompt_blocked.sse", f"data: {blocked}\r\n\r\n", {}),
        ("gemini", "no_usage.json", gemini_body(NO_USAGE), {}),
        ("gemini", "no_usage.sse", gemini_stream(NO_USAGE), {}),
        ("gemini", "unknown_fields.json", json.dumps(unknown), {}),
        ("gemini", "whole_answer_to_stream.json", gemini_body(parallel), {"stream": True}),
        ("gemini", "error_resource_exhausted.json",
         gemini_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
                      [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]),
         {"status": 429}),
        ("gemini", "error_unavailable_stream.json",
         gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
         {"status": 503, "stream": True}),
    ]


def _anthropic() -> list[Recording]:
    from anthropic.types import RawMessageStartEvent, RawMessageStopEvent

    thinking = Answer(text="All green.", thinking=THINK, signature="EqQBCkYIBxgCKkD-real-looking-signature==",
                      model="claude-sonnet-4-5")
    thinking_tool = thinking.evolve(text="", tools=(READ,))
    deferred = anthropic_object(Answer(text="Loading the tool first.", tools=(READ,)))
    in_start = sse_named([RawMessageStartEvent(type="message_start", message=deferred).model_dump_json(),
                          json.dumps({"type": "ping"}),
                          RawMessageStopEvent(type="message_stop").model_dump_json()])
    overloaded = f"event: error\ndata: {anthropic_error('overloaded_error', 'Overloaded')}\n\n"
    events = anthropic_events(TEXT)
    after_content = sse_named(events[:4]) + overloaded.encode()
    unknown_events = anthropic_events(TEXT.evolve(extra={"container": None}))
    unknown_events.insert(2, json.dumps({"type": "brand_new_event", "payload": {"x": 1}}))
    zero_usage = NO_USAGE.evolve(usage=(0, 0))
    # third-party Anthropic endpoints that leave usage out, or report input only in message_delta
    omitted = [_without_usage(e) for e in anthropic_events(NO_USAGE)]
    omitted_body = json.loads(anthropic_body(NO_USAGE))
    del omitted_body["usage"]
    late_usage = [_without_usage(e, keep_delta_input=True) for e in anthropic_events(TEXT.evolve(usage=(77, 9)))]
    return [
        ("anthropic", "text.json", anthropic_body(TEXT), {}),
        ("anthropic", "text.sse", anthropic_stream(TEXT), {}),
        ("anthropic", "thinking_signature.json", anthropic_body(thinking), {}),
        ("anthropic", "thinking_signature.sse", anthropic_stream(thinking), {}),
        ("anthropic", "thinking_tool.sse", anthropic_stream(thinking_tool), {}),
        ("anthropic", "tool_one.json", anthropic_body(TOOL), {}),
        ("anthropic", "tool_one.sse", anthropic_stream(TOOL), {}),
        ("anthropic", "tools_parallel.json", anthropic_body(TOOLS), {}),
        ("anthropic", "tools_parallel.sse", anthropic_stream(TOOLS, pings=False), {}),
        ("anthropic", "content_in_message_start.sse", in_start, {}),
        ("anthropic", "max_tokens.sse", anthropic_stream(TEXT.evolve(stop="max_tokens")), {}),
        ("anthropic", "error_event_before_content.sse", sse_named(events[:2]) + overloaded.encode(), {}),
        ("anthropic", "error_event_after_content.sse", after_content, {}),
        ("anthropic", "zero_usage.json", anthropic_body(zero_usage), {}),
        ("anthropic", "zero_usage.sse", anthropic_stream(zero_usage), {}),
        ("anthropic", "unknown_fields.sse", sse_named(unknown_events), {}),
        ("anthropic", "usage_omitted.sse", sse_named(omitted), {}),
        ("anthropic", "whole_answer_to_stream.json", anthropic_body(thinking_tool), {"stream": True}),
        ("anthropic", "usage_omitted.json", json.dumps(omitted_body), {}),
        ("anthropic", "usage_in_message_delta.sse", sse_named(late_usage), {}),
        ("anthropic", "error_rate_limit.json", anthropic_error("rate_limit_error", "Number of requests exceeded"),
         {"status": 429, "headers": {"retry-after": "3"}}),
        ("anthropic", "error_overloaded_stream.json", anthropic_error("overloaded_error", "Overloaded"),
         {"status": 529, "stream": True}),
    ]


def _mistral_parts(data: dict[str, Any], key: str) -> None:
    """Mistral's reasoning models give content as parts: thinking parts (holding text parts), text parts."""
    holder = data.get(key) or {}
    parts = []
    if holder.get("reasoning_content"):
        parts.append({"type": "thinking", "thinking": [{"type": "text", "text": holder.pop("reasoning_content")}]})
    holder.pop("reasoning_content", None)
    if isinstance(holder.get("content"), str) and holder["content"]:
        parts.append({"type": "text", "text": holder["content"]})
    if parts:
        holder["content"] = parts


def _mistral_body(body: str) -> str:
    data = json.loads(body)
    _mistral_parts(data["choices"][0], "message")
    return json.dumps(data)


def _mistral_stream(stream: bytes) -> bytes:
    out = []
    for line in stream.decode().split("\n\n"):
        if line.startswith("data: {"):
            data = json.loads(line[6:])
            for choice in data["choices"]:
                _mistral_parts(choice, "delta")
            line = "data: " + json.dumps(data)
        out.append(line)
    return "\n\n".join(out).encode()


def _without_deltas(stream: bytes) -> bytes:
    """A Responses stream as servers that send each item whole (its ``output_item.done``) send it."""
    frames = [f for f in stream.split(b"\n\n") if f]
    return b"".join(f + b"\n\n" for f in frames if not f.split(b"\n", 1)[0].endswith(b".delta"))


def _without_usage(event: str, *, keep_delta_input: bool = False) -> str:
    """An SDK-serialised Anthropic event as endpoints that omit usage send it: no usage in
    ``message_start``; ``message_delta`` with the output count only (or the input too, late)."""
    data = json.loads(event)
    if data["type"] == "message_start":
        del data["message"]["usage"]
    elif data["type"] == "message_delta":
        usage = data["usage"]
        data["usage"] = {"output_tokens": usage["output_tokens"],
                         **({"input_tokens": usage["input_tokens"]} if keep_delta_input else {})}
    return json.dumps(data)


BUILDERS: list[Callable[[], list[Recording]]] = [_chat, _responses, _gemini, _anthropic]


def main(root: Path = ROOT) -> int:
    count = 0
    for build in BUILDERS:
        for wire, name, body, manifest in build():
            folder = root / wire
            folder.mkdir(parents=True, exist_ok=True)
            data = body.encode() if isinstance(body, str) else body
            (folder / name).write_bytes(data)
            meta = folder / (name.rsplit(".", 1)[0] + ".meta.json")
            if manifest:
                meta.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            elif meta.exists():
                meta.unlink()
            count += 1
    print(f"wrote {count} recordings under {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

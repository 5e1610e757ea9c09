"""Hypothesis strategies for upstream chat-completions streams, with the message they must become.

A generated stream is a script of steps (reasoning, text, tool calls) rendered the way real
upstreams render it, with the variations each family ships: the reasoning field
(``reasoning_content`` / ``reasoning`` / ``reasoning_details`` / ``<think>`` tags in content), tool
calls in parallel groups with interleaved argument fragments, id and name arriving late, every call
at index 0 (buggy adapters), usage in a final ``choices: []`` or ``choices: null`` chunk, in the
finish chunk, inside the choice (Moonshot) or on every chunk (vLLM), ``[DONE]`` present or not, LF or
CRLF line ends and ``:`` comments. ``expected`` is the Anthropic message the stream must produce,
computed from the script, not from occ.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import strategies as st

from occ.translate.tool_ids import from_upstream_id

# Letters, digits, punctuation and non-ASCII (multi-byte UTF-8 must survive any byte split); no "<" so
# that generated text never forms a think tag, and every piece has a visible character.
_ALPHABET = st.sampled_from(list("abcxyz019 .,:;{}[]\"\\/é漢😀\n\t"))
_VISIBLE = st.sampled_from(list("abxyz19é漢😀"))
TOOL_NAMES = ("Bash", "Read", "Edit", "Grep", "mcp__github__create_issue")
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(_ALPHABET, max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abc"), inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def visible_text(draw: st.DrawFn) -> str:
    """Text with at least one visible character (whitespace-only pieces never open a block)."""
    return draw(st.text(_ALPHABET, max_size=10)) + draw(_VISIBLE) + draw(st.text(_ALPHABET, max_size=6))


@attrs.frozen
class GeneratedStream:
    raw: bytes
    expected: dict[str, Any]  # {"content": [...], "stop_reason": str, "usage": dict | None}
    chunks: int


def _split(draw: st.DrawFn, text: str, max_parts: int = 4) -> list[str]:
    if len(text) < 2:
        return [text]
    cuts = sorted(set(draw(st.lists(st.integers(1, len(text) - 1), max_size=max_parts - 1))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _interleave(draw: st.DrawFn, queues: list[list[Any]]) -> list[Any]:
    """Merge per-call fragment lists in a random order that keeps each call's own order."""
    queues = [list(q) for q in queues if q]
    out = []
    while queues:
        pick = draw(st.integers(0, len(queues) - 1))
        out.append(queues[pick].pop(0))
        if not queues[pick]:
            queues.pop(pick)
    return out


@st.composite
def chat_streams(draw: st.DrawFn) -> GeneratedStream:
    steps = draw(st.lists(
        st.one_of(
            st.tuples(st.just("reasoning"), visible_text()),
            st.tuples(st.just("text"), visible_text()),
            st.tuples(st.just("tools"), st.lists(
                st.tuples(st.sampled_from(TOOL_NAMES), st.dictionaries(st.sampled_from(["a", "path", "é"]),
                                                                        JSON_VALUES, max_size=3)),
                min_size=1, max_size=3)),
        ),
        min_size=1, max_size=6,
    ))
    reasoning_field = draw(st.sampled_from(["reasoning_content", "reasoning", "reasoning_details", "think_tags"]))
    id_style = draw(st.sampled_from(["call", "kimi"]))
    all_at_zero = draw(st.booleans())  # buggy adapters: every call at index 0, distinct ids
    usage_mode = draw(st.sampled_from(["final_empty", "final_null", "finish_chunk", "every_chunk", "in_choice",
                                       "none"]))
    end_mode = draw(st.sampled_from(["finish_done", "finish_eof", "done_only"]))
    crlf = draw(st.booleans())
    comments = draw(st.booleans())

    chunks: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    expected: list[dict[str, Any]] = []
    call_number = 0

    def add_block(kind: str, text: str) -> None:
        key = "thinking" if kind == "thinking" else "text"
        if expected and expected[-1]["type"] == kind:
            expected[-1][key] += text
        else:
            block = {"type": kind, key: text}
            if kind == "thinking":
                block["signature"] = "occ1."
            expected.append(block)

    for position, step in enumerate(steps):
        if step[0] == "reasoning":
            add_block("thinking", step[1])
            if reasoning_field == "think_tags" and position == 0:
                for piece in _split(draw, f"<think>{step[1]}</think>", 5):
                    chunks.append({"content": piece})
            elif reasoning_field == "reasoning_details":
                for piece in _split(draw, step[1]):
                    chunks.append({"reasoning": piece,
                                   "reasoning_details": [{"type": "reasoning.text", "text": piece, "index": 0}]})
            else:
                field = "reasoning_content" if reasoning_field == "think_tags" else reasoning_field
                for piece in _split(draw, step[1]):
                    chunks.append({field: piece})
        elif step[0] == "text":
            add_block("text", step[1])
            for piece in _split(draw, step[1]):
                chunks.append({"content": piece})
        else:
            queues = []
            for name, args in step[1]:
                slot = call_number  # indices run on across the message, as upstreams number them
                upstream_id = f"call_{call_number}" if id_style == "call" else f"functions.{name}:{call_number}"
                call_number += 1
                expected.append({"type": "tool_use", "id": from_upstream_id(upstream_id), "name": name,
                                 "input": args})
                index = 0 if all_at_zero else slot
                text = json.dumps(args, ensure_ascii=draw(st.booleans()))
                parts = _split(draw, text)
                late_header = not all_at_zero and draw(st.booleans())
                fragments = []
                for n, part in enumerate(parts):
                    fragment: dict[str, Any] = {"index": index, "function": {"arguments": part}}
                    if n == 0 and not late_header:
                        fragment.update(id=upstream_id, type="function")
                        fragment["function"]["name"] = name
                    fragments.append(fragment)
                if late_header:
                    fragments.append({"index": index, "id": upstream_id, "type": "function",
                                      "function": {"name": name, "arguments": ""}})
                queues.append(fragments)
            order = [f for q in queues for f in q] if all_at_zero else _interleave(draw, queues)
            per_chunk = draw(st.integers(1, 3))
            for at in range(0, len(order), per_chunk):
                chunks.append({"tool_calls": order[at:at + per_chunk]})

    has_tools = any(b["type"] == "tool_use" for b in expected)
    prompt = draw(st.integers(1, 200_000))
    cached = draw(st.integers(0, prompt))
    completion = draw(st.integers(0, 50_000))
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
             "prompt_tokens_details": {"cached_tokens": cached}}
    finish = None if end_mode == "done_only" else ("tool_calls" if has_tools and draw(st.booleans()) else "stop")

    objects: list[dict[str, Any]] = []
    for n, delta in enumerate(chunks):
        obj: dict[str, Any] = {"id": "chatcmpl-gen", "object": "chat.completion.chunk",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        if usage_mode == "every_chunk":
            obj["usage"] = {**usage, "completion_tokens": min(n, completion)}
        objects.append(obj)
    last = {"id": "chatcmpl-gen", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    if usage_mode in ("finish_chunk", "every_chunk"):
        last["usage"] = usage
    elif usage_mode == "in_choice":
        last["choices"][0]["usage"] = usage
    objects.append(last)
    if usage_mode in ("final_empty", "final_null"):
        objects.append({"id": "chatcmpl-gen", "choices": [] if usage_mode == "final_empty" else None,
                        "usage": usage})

    nl = "\r\n" if crlf else "\n"
    frames = []
    for obj in objects:
        if comments and draw(st.booleans()):
            frames.append(f": OPENROUTER PROCESSING{nl}{nl}")
        frames.append(f"data: {json.dumps(obj, ensure_ascii=False)}{nl}{nl}")
    if end_mode != "finish_eof":
        frames.append(f"data: [DONE]{nl}{nl}")
    raw = "".join(frames).encode()
    result = {
        "content": expected,
        "stop_reason": "tool_use" if has_tools else "end_turn",
        "usage": None if usage_mode == "none" else {
            "input_tokens": prompt - cached, "output_tokens": completion, "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0},
    }
    return GeneratedStream(raw=raw, expected=result, chunks=len(objects))


@st.composite
def split_points(draw: st.DrawFn, size: int, max_cuts: int = 25) -> list[int]:
    """Byte offsets at which to cut a stream of ``size`` bytes."""
    return sorted(set(draw(st.lists(st.integers(0, size), max_size=max_cuts))))


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]

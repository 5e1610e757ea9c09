"""Independent reference readers: what a recorded upstream answer *says*, per wire, in Anthropic terms.

The recordings test compares what the client receives through occ with what these readers take from
the recording itself. They are deliberately small and written from the providers' documentation, not
from occ's translators (which they must never import): text, thinking, tool calls (name and input),
stop reason, usage, or that the answer is an error. Null means absent here too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs


@attrs.define
class Expected:
    text: str = ""
    thinking: str = ""
    tools: list[tuple[str, dict[str, Any]]] = attrs.field(factory=list)
    stop_reason: str | None = None
    #: (all input tokens, output tokens) as reported; None when the upstream reported none
    usage: tuple[int, int] | None = None
    #: the upstream's error message when the answer is an error (HTTP status, failed, error event)
    error: str | None = None


def _events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON data of each SSE event (``[DONE]`` and empty data skipped), per the SSE spec's lines."""
    out = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", raw.decode("utf-8")):
        data = "\n".join(line[5:].lstrip(" ") if line.startswith("data:") else "" for line in
                         re.split(r"\r\n|\n|\r", block) if line.startswith("data:"))
        if data.strip() and data.strip() != "[DONE]":
            out.append(json.loads(data))
    return out


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(body.get("message"), str):
            return body["message"]
    return json.dumps(body)[:200]


# -- chat completions ------------------------------------------------------------------------------

_THINK = re.compile(r"^\s*<think>(.*?)</think>(.*)$", re.S)


def _split_think(content: str) -> tuple[str, str]:
    match = _THINK.match(content)
    return (match.group(1), match.group(2)) if match else ("", content)


def _parts(content: Any) -> tuple[str, str]:
    """(thinking, text) of content that is a string or a list of parts (Mistral)."""
    if isinstance(content, str):
        return "", content
    thinking, text = "", ""
    for part in content or []:
        if part.get("type") == "text":
            text += part["text"]
        elif part.get("type") == "thinking":
            inner = part["thinking"]
            thinking += inner if isinstance(inner, str) else "".join(i.get("text", "") for i in inner)
    return thinking, text


def read_chat(raw: bytes, stream: bool) -> Expected:
    out = Expected()
    if stream:
        content, reasoning, refusal, finish = "", "", "", None
        calls: dict[int, dict[str, Any]] = {}
        for chunk in _events(raw):
            usage = chunk.get("usage")
            if isinstance(usage, dict) and (_count(usage.get("prompt_tokens")) is not None
                                            or _count(usage.get("completion_tokens")) is not None):
                out.usage = (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                part_thinking, part_text = _parts(delta.get("content"))
                content += part_text
                reasoning += delta.get("reasoning_content") or delta.get("reasoning") or part_thinking
                refusal += delta.get("refusal") or ""
                for call in delta.get("tool_calls") or []:
                    entry = calls.setdefault(call["index"], {"name": "", "args": ""})
                    function = call.get("function") or {}
                    entry["name"] += function.get("name") or ""
                    entry["args"] += function.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
        tools = [(c["name"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())]
    else:
        body = json.loads(raw)
        choice = body["choices"][0]
        message = choice["message"]
        part_thinking, content = _parts(message.get("content"))
        refusal = message.get("refusal") or ""
        reasoning = message.get("reasoning_content") or message.get("reasoning") or part_thinking
        finish = choice.get("finish_reason")
        tools = [(c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
                 for c in message.get("tool_calls") or []]
        usage = body.get("usage")
        if isinstance(usage, dict) and (_count(usage.get("prompt_tokens")) is not None
                                        or _count(usage.get("completion_tokens")) is not None):
            out.usage = (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
    if not reasoning:
        reasoning, content = _split_think(content)
    out.text, out.thinking, out.tools = (content or refusal).strip(), reasoning.strip(), tools
    if finish == "length":
        out.stop_reason = "max_tokens"
    elif tools:
        out.stop_reason = "tool_use"
    elif finish == "content_filter" or (refusal and not content):
        out.stop_reason = "refusal"
    else:
        out.stop_reason = "end_turn"
    return out


# -- Responses -------------------------------------------------------------------------------------


def _read_response_object(response: dict[str, Any], out: Expected) -> None:
    texts, thoughts, refused = [], [], False
    for item in response.get("output") or []:
        if item["type"] == "reasoning":
            summary = "\n\n".join(s["text"] for s in item.get("summary") or [] if s.get("text"))
            raw = "".join(c["text"] for c in item.get("content") or [] if c.get("type") == "reasoning_text")
            thoughts.append(summary or raw)
        elif item["type"] == "message":
            for part in item.get("content") or []:
                if part["type"] == "output_text":
                    texts.append(part["text"])
                elif part["type"] == "refusal":
                    texts.append(part["refusal"])
                    refused = True
        elif item["type"] == "function_call":
            out.tools.append((item["name"], json.loads(item["arguments"] or "{}")))
    out.text, out.thinking = "".join(texts).strip(), "".join(thoughts).strip()
    usage = response.get("usage")
    if isinstance(usage, dict) and (_count(usage.get("input_tokens")) is not None
                                    or _count(usage.get("output_tokens")) is not None):
        out.usage = (usage.get("input_tokens") or 0, usage.get("output_tokens") or 0)
    status = response.get("status")
    if status == "failed":
        out.error = _error_message(response)
    elif status == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        out.stop_reason = "refusal" if reason == "content_filter" else "max_tokens"
    else:
        out.stop_reason = "tool_use" if out.tools else "refusal" if refused and not out.tools else "end_turn"


def read_responses(raw: bytes, stream: bool) -> Expected:
    out = Expected()
    if not stream:
        _read_response_object(json.loads(raw), out)
        return out
    for event in _events(raw):
        if event.get("type") in ("response.completed", "response.incomplete", "response.failed"):
            _read_response_object(event["response"], out)
        elif event.get("type") == "error":
            out.error = str(event.get("message"))
    return out


# -- Gemini ----------------------------------------------------------------------------------------


def read_gemini(raw: bytes, stream: bool) -> Expected:
    out = Expected()
    objects = _events(raw) if stream else [json.loads(raw)]
    texts, thoughts, finish, blocked = [], [], None, False
    for obj in objects:
        meta = obj.get("usageMetadata")
        if isinstance(meta, dict):
            counts = [_count(meta.get(k)) for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")]
            if any(c is not None for c in counts):
                out.usage = (counts[0] or 0, (counts[1] or 0) + (counts[2] or 0))
        if (obj.get("promptFeedback") or {}).get("blockReason"):
            blocked = True
        for candidate in (obj.get("candidates") or [])[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if part.get("functionCall"):
                    out.tools.append((part["functionCall"]["name"], part["functionCall"].get("args") or {}))
                elif part.get("text"):
                    (thoughts if part.get("thought") else texts).append(part["text"])
            finish = candidate.get("finishReason") or finish
    out.text, out.thinking = "".join(texts).strip(), "".join(thoughts).strip()
    if finish == "MAX_TOKENS":
        out.stop_reason = "max_tokens"
    elif blocked or finish in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"):
        out.stop_reason = "refusal"
    else:
        out.stop_reason = "tool_use" if out.tools else "end_turn"
    return out


# -- Anthropic -------------------------------------------------------------------------------------


def _read_message(message: dict[str, Any], out: Expected) -> None:
    for block in message.get("content") or []:
        if block["type"] == "text":
            out.text += block["text"]
        elif block["type"] == "thinking":
            out.thinking += block["thinking"]
        elif block["type"] == "tool_use":
            out.tools.append((block["name"], block["input"]))


def _anthropic_usage(usage: dict[str, Any]) -> tuple[int, int] | None:
    total = sum(usage.get(k) or 0 for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
    return (total, usage.get("output_tokens") or 0) if total else None


def read_anthropic(raw: bytes, stream: bool) -> Expected:
    out = Expected()
    if not stream:
        message = json.loads(raw)
        _read_message(message, out)
        out.stop_reason = message.get("stop_reason")
        out.usage = _anthropic_usage(message.get("usage") or {})
        out.text, out.thinking = out.text.strip(), out.thinking.strip()
        return out
    usage: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    for event in _events(raw):
        kind = event.get("type")
        if kind == "error":
            out.error = _error_message(event)
        elif kind == "message_start":
            _read_message(event["message"], out)
            out.stop_reason = event["message"].get("stop_reason")
            usage.update({k: v for k, v in (event["message"].get("usage") or {}).items() if v is not None})
        elif kind == "content_block_start":
            blocks[event["index"]] = {**event["content_block"], "json": ""}
        elif kind == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "input_json_delta":
                block["json"] += delta["partial_json"]
        elif kind == "message_delta":
            out.stop_reason = event["delta"].get("stop_reason") or out.stop_reason
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
    for _, block in sorted(blocks.items()):
        if block["type"] == "tool_use":
            block["input"] = json.loads(block["json"] or "{}")
    _read_message({"content": [b for _, b in sorted(blocks.items())]}, out)
    out.usage = _anthropic_usage(usage)
    out.text, out.thinking = out.text.strip(), out.thinking.strip()
    if out.stop_reason is None:
        out.stop_reason = "tool_use" if out.tools else "end_turn"
    return out


READERS = {"openai": read_chat, "responses": read_responses, "gemini": read_gemini, "anthropic": read_anthropic}


def read(wire: str, raw: bytes, *, stream: bool, status: int = 200) -> Expected:
    """What the recording says; any HTTP status of 400 or more is an error with the body's message."""
    if status >= 400:
        return Expected(error=_error_message(json.loads(raw)))
    if stream and raw.lstrip().startswith(b"{"):
        stream = False  # a whole answer to a stream request (servers that ignore "stream"): read it whole
    return READERS[wire](raw, stream)

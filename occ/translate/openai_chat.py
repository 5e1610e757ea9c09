"""Anthropic Messages <-> OpenAI chat completions, sans-IO.

Most of occ's traffic goes here (DeepSeek, Kimi, GLM, Qwen, MiMo, MiniMax through OpenCode, or any
compatible URL). The stream translator only decides *what* the upstream said; the
:class:`~occ.translate.anthropic_events.AnthropicStreamBuilder` decides how it is written, so block
order, indices and stop reasons are right by construction.

Tool calls are buffered per call and emitted whole once complete (the next non-tool content, the
finish, ``[DONE]`` or EOF): arguments may arrive before the id and name, interleaved between
parallel calls, or all at once, and the Python SDK raises mid-stream on invalid partial JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import UpstreamProtocolError, UpstreamStatus
from ..jsonfast import JSONDecodeError, dumps_str, loads
from ..sse import SSEEvent
from .anthropic_events import SIGNATURE_PREFIX, AnthropicStreamBuilder, Usage, make_message
from .anthropic_request import blocks_of, clamped_max_tokens, effort_of, system_text, turns
from .tool_ids import from_upstream_id, from_upstream_name, to_upstream_id, to_upstream_name
from .tool_schema import openai_tools

if TYPE_CHECKING:
    from ..config import ModelConfig

__all__ = ["ChatStreamTranslator", "build_request", "translate_response"]

#: Families that need ``reasoning_content`` replayed on assistant turns with tool calls.
REASONING_REPLAY_FAMILIES = ("deepseek", "kimi", "glm", "mimo", "qwen", "moonshot")

_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    "sensitive": "refusal",
}
_FAILED_FINISH = {"insufficient_system_resource", "error", "network_error"}


# -- request ---------------------------------------------------------------------------------------


def text_of(content: Any) -> str:
    parts = []
    for block in blocks_of(content):
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "tool_reference":
            parts.append(f"Tool loaded: {block.get('tool_name', '')}")
        elif kind in ("image", "document"):
            parts.append("[image]" if kind == "image" else "[document]")
        elif kind == "search_result":
            parts.append(str(block.get("title", "")) + "\n" + text_of(block.get("content")))
    return "\n".join(p for p in parts if p)


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    source = block.get("source") or {}
    if source.get("type") == "base64" and source.get("data"):
        url = f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
    elif source.get("type") == "url" and source.get("url"):
        url = source["url"]
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _user_content(blocks: list[dict[str, Any]], vision: bool | None) -> str | list[dict[str, Any]] | None:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and str(block.get("text", "")):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            image = _image_part(block) if vision is not False else None
            parts.append(image or {"type": "text", "text": "[Image]"})
        elif kind == "document":
            parts.append({"type": "text", "text": "[document]"})
    if not parts:
        return None
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _replays_reasoning(model_id: str) -> bool:
    lowered = model_id.lower()
    return any(family in lowered for family in REASONING_REPLAY_FAMILIES)


def _messages(request: dict[str, Any], model: ModelConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = system_text(request)
    if system:
        out.append({"role": "system", "content": system})
    pending: list[str] = []  # tool call ids still waiting for their result
    replay = _replays_reasoning(model.model_id)
    for turn in turns(request):
        blocks = list(turn.blocks)
        if turn.role == "assistant":
            _close_orphans(out, pending)
            text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
            thinking = "".join(str(b.get("thinking", "")) for b in blocks if b.get("type") == "thinking")
            calls = [
                {"id": to_upstream_id(str(b.get("id", ""))), "type": "function",
                 "function": {"name": to_upstream_name(str(b.get("name", ""))),
                              "arguments": dumps_str(b.get("input") if isinstance(b.get("input"), dict) else {})}}
                for b in blocks if b.get("type") == "tool_use"
            ]
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
                pending = [c["id"] for c in calls]
                if replay:
                    message["reasoning_content"] = thinking
            if text or calls:
                out.append(message)
            continue
        results = [b for b in blocks if b.get("type") == "tool_result"]
        for result in results:
            call_id = to_upstream_id(str(result.get("tool_use_id", "")))
            content = text_of(result.get("content")) or "(empty result)"
            if result.get("is_error"):
                content = "Error: " + content
            if call_id in pending:
                pending.remove(call_id)
                out.append({"role": "tool", "tool_call_id": call_id, "content": content})
            else:
                out.append({"role": "user", "content": f"[result of an earlier tool call]\n{content}"})
        _close_orphans(out, pending)
        rest = _user_content([b for b in blocks if b.get("type") != "tool_result"], model.vision)
        if rest is not None:
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], str) and isinstance(rest, str):
                out[-1]["content"] += "\n\n" + rest
            else:
                out.append({"role": "user", "content": rest})
    _close_orphans(out, pending)
    return out


def _close_orphans(out: list[dict[str, Any]], pending: list[str]) -> None:
    """Every tool call needs its tool message, or upstreams answer 400 (protocols.md §7 item 35)."""
    for call_id in pending:
        out.append({"role": "tool", "tool_call_id": call_id, "content": "(no result)"})
    pending.clear()


#: Families known to accept ``reasoning_effort``; others may reject an unknown parameter, so the
#: client's effort is only forwarded to these (a configured ``reasoning_effort`` is always sent).
EFFORT_FAMILIES = ("deepseek", "kimi", "glm", "qwen", "mimo", "gpt-5", "o1", "o3", "o4", "grok")


def _takes_reasoning_effort(model_id: str) -> bool:
    lowered = model_id.lower()
    return lowered.startswith(EFFORT_FAMILIES) or "deepseek" in lowered


_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high", "minimal": "low"}


def build_request(request: dict[str, Any], model: ModelConfig, *, stream: bool,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model.model_id, "messages": _messages(request, model)}
    tools = openai_tools(request.get("tools"))
    if tools:
        body["tools"] = tools
        choice = request.get("tool_choice")
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind == "any":
                body["tool_choice"] = "required"
            elif kind == "tool" and choice.get("name"):
                body["tool_choice"] = {"type": "function", "function": {"name": to_upstream_name(choice["name"])}}
            elif kind == "none":
                body["tool_choice"] = "none"
            elif kind == "auto":
                body["tool_choice"] = "auto"
            if choice.get("disable_parallel_tool_use"):
                body["parallel_tool_calls"] = False
    stops = request.get("stop_sequences")
    if isinstance(stops, list) and stops:
        body["stop"] = [s for s in stops if isinstance(s, str)][:4]
    temperature = model.temperature if model.temperature is not None else request.get("temperature")
    top_p = model.top_p if model.top_p is not None else request.get("top_p")
    max_tokens = clamped_max_tokens(request, model.max_tokens, model.model_id, log)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    effort = model.reasoning_effort
    if effort is None and _takes_reasoning_effort(model.model_id):
        effort = effort_of(request)
    thinking_on = effort is not None or (model.thinking or {}).get("type") == "enabled"
    if effort is not None:
        deepseek = "deepseek" in model.model_id.lower()
        body["reasoning_effort"] = effort if deepseek and effort in ("high", "max") else _EFFORTS.get(effort, effort)
    if model.thinking is not None:
        body["thinking"] = dict(model.thinking)
    if not (thinking_on and "deepseek" in model.model_id.lower()):
        if temperature is not None:
            body["temperature"] = temperature
        if top_p is not None:
            body["top_p"] = top_p
    output = request.get("output_config")
    if isinstance(output, dict) and isinstance(output.get("format"), dict):
        fmt = output["format"]
        if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": fmt["schema"]}}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# -- responses -------------------------------------------------------------------------------------


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens") or 0
    details = raw.get("prompt_tokens_details") if isinstance(raw.get("prompt_tokens_details"), dict) else {}
    cached = details.get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0
    return Usage(input_tokens=max(0, int(prompt) - int(cached)), output_tokens=int(raw.get("completion_tokens") or 0),
                 cache_read_input_tokens=int(cached))


def _error_from(data: dict[str, Any]) -> UpstreamStatus:
    err = data.get("error") if isinstance(data.get("error"), dict) else data
    message = str(err.get("message") or err.get("error") or "upstream error")
    code = err.get("code") or err.get("status")
    status = code if isinstance(code, int) and 400 <= code <= 599 else 502
    kind = str(err.get("type") or "")
    return UpstreamStatus(status, f"upstream error: {message}",
                          upstream_type="overloaded_error" if "overload" in (kind + message).lower() else None)


def _split_think(text: str) -> tuple[str, str]:
    match = re.match(r"\s*<think>(.*?)</think>\s*(.*)", text, re.DOTALL)
    if match:
        return match.group(1), match.group(2)
    return "", text


def translate_response(body: Any, *, message_id: str, model_name: str, input_estimate: int) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UpstreamProtocolError("upstream answer is not a JSON object")
    if "error" in body or body.get("object") == "error":
        raise _error_from(body)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("upstream answer has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    text = message.get("content") if isinstance(message.get("content"), str) else ""
    if not reasoning:
        reasoning, text = _split_think(text)
    if isinstance(reasoning, str) and reasoning.strip():
        content.append({"type": "thinking", "thinking": reasoning, "signature": SIGNATURE_PREFIX})
    if text.strip():
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        raw = function.get("arguments")
        try:
            args = loads(raw) if isinstance(raw, str) and raw.strip() else (raw if isinstance(raw, dict) else {})
        except JSONDecodeError:
            raise UpstreamProtocolError(f"tool call {function.get('name')!r}: arguments are not valid JSON") from None
        if isinstance(args, str):
            args = loads(args)
        if not isinstance(args, dict):
            raise UpstreamProtocolError(f"tool call {function.get('name')!r}: arguments are not an object")
        content.append({"type": "tool_use", "id": from_upstream_id(call.get("id")),
                        "name": function.get("name") or "", "input": args})
    finish = choice.get("finish_reason")
    if finish in _FAILED_FINISH:
        raise UpstreamStatus(503, f"upstream stopped with finish_reason {finish!r}")
    usage = _usage(body.get("usage")) or Usage(input_tokens=input_estimate)
    return make_message(message_id=message_id, model=model_name, content=content,
                        stop_reason=_FINISH.get(finish or "", None), usage=usage)


# -- stream ----------------------------------------------------------------------------------------


class _Call:
    __slots__ = ("args", "id", "name")

    def __init__(self, call_id: str | None) -> None:
        self.id = call_id
        self.name: str | None = None
        self.args: list[str] = []


class ChatStreamTranslator:
    """OpenAI chat-completion chunks in, builder calls out."""

    def __init__(self, builder: AnthropicStreamBuilder, *, think_tags: bool = True,
                 tool_names: list[str] | None = None) -> None:
        self._builder = builder
        self._tool_names = tool_names or []
        self._think_tags = think_tags
        self._in_think = False
        self._tag_buffer = ""
        self._calls: list[_Call] = []
        self._by_index: dict[int, _Call] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None

    @property
    def done(self) -> bool:
        return self._builder.finished

    def feed(self, event: SSEEvent) -> None:
        if self.done:
            return
        data = event.data.strip()
        if not data:
            return
        if data == "[DONE]":
            self._end(at_done=True)
            return
        try:
            chunk = loads(data)
        except JSONDecodeError:
            raise UpstreamProtocolError(f"upstream sent a chunk that is not JSON: {data[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError("upstream sent a chunk that is not a JSON object")
        if "error" in chunk or chunk.get("object") == "error":
            raise _error_from(chunk)
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            self._delta(delta)
            finish = choice.get("finish_reason")
            if finish:
                if finish in _FAILED_FINISH:
                    raise UpstreamStatus(503, f"upstream stopped with finish_reason {finish!r}")
                self._finish = finish

    def close(self) -> None:
        if self.done:
            return
        self._end(at_done=False)

    # -- internals ---------------------------------------------------------------------------------

    def _end(self, *, at_done: bool) -> None:
        self._flush_think()
        if self._finish is None:
            complete = all(self._args_complete(c) for c in self._calls)
            emitted = self._builder.committed or self._calls
            if not (at_done and emitted and complete):
                raise UpstreamProtocolError("upstream stream ended without finish_reason")
        self._flush_calls()
        stop = _FINISH.get(self._finish or "", "end_turn")
        self._builder.finish(stop, self._usage)

    @staticmethod
    def _args_complete(call: _Call) -> bool:
        text = "".join(call.args).strip()
        if not text:
            return True
        try:
            loads(text)
        except JSONDecodeError:
            return False
        return True

    def _delta(self, delta: dict[str, Any]) -> None:
        reasoning = delta.get("reasoning_content")
        if not (isinstance(reasoning, str) and reasoning):
            reasoning = delta.get("reasoning")  # OpenRouter/OpenCode name; never both from one delta
        if not isinstance(reasoning, str):
            reasoning = None
        if reasoning:
            self._flush_calls()
            self._builder.thinking(reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._content(content)
        for fragment in delta.get("tool_calls") or []:
            if isinstance(fragment, dict):
                self._tool_fragment(fragment)

    def _content(self, text: str) -> None:
        if not self._think_tags:
            self._emit_text(text, thinking=False)
            return
        text = self._tag_buffer + text
        self._tag_buffer = ""
        while text:
            tag = "</think>" if self._in_think else "<think>"
            at = text.find(tag)
            if at >= 0:
                self._emit_text(text[:at], thinking=self._in_think)
                text = text[at + len(tag):]
                self._in_think = not self._in_think
                continue
            if not self._in_think and "</think>" in text:  # an orphan closing tag: drop it
                before, _, text = text.partition("</think>")
                self._emit_text(before, thinking=False)
                continue
            keep = _partial_tag_suffix(text, tag)
            if keep:
                self._tag_buffer = text[-keep:]
                text = text[:-keep]
            self._emit_text(text, thinking=self._in_think)
            break

    def _flush_think(self) -> None:
        if self._tag_buffer:
            buffered, self._tag_buffer = self._tag_buffer, ""
            self._emit_text(buffered, thinking=self._in_think)

    def _emit_text(self, text: str, *, thinking: bool) -> None:
        if not text:
            return
        self._flush_calls()
        if thinking:
            self._builder.thinking(text)
        else:
            self._builder.text(text)

    def _tool_fragment(self, fragment: dict[str, Any]) -> None:
        call_id = fragment.get("id") if isinstance(fragment.get("id"), str) and fragment.get("id") else None
        index = fragment.get("index")
        call: _Call | None = None
        if isinstance(index, int):
            call = self._by_index.get(index)
            if call is not None and call_id and call.id and call_id != call.id:
                call = None  # a different id at a used index: a new call (buggy adapters put all at 0)
            if call is None:
                call = _Call(call_id)
                self._calls.append(call)
                self._by_index[index] = call
        else:
            if call_id:
                call = next((c for c in self._calls if c.id == call_id), None)
            elif self._calls:
                call = self._calls[-1]
            if call is None:
                call = _Call(call_id)
                self._calls.append(call)
        if call_id and not call.id:
            call.id = call_id
        function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
        name = function.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        args = function.get("arguments")
        if isinstance(args, str):
            call.args.append(args)
        elif isinstance(args, dict):
            call.args = [dumps_str(args)]

    def _flush_calls(self) -> None:
        if not self._calls:
            return
        calls, self._calls = self._calls, []
        self._by_index = {}
        for call in calls:
            if not call.name:
                raise UpstreamProtocolError("upstream sent a tool call without a name")
            name = from_upstream_name(call.name, self._tool_names)
            self._builder.tool_use(from_upstream_id(call.id), name, "".join(call.args))


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0

"""Anthropic Messages <-> the OpenAI Responses API (gpt-* models on OpenCode Zen), sans-IO.

Function calls are items with a ``call_id`` (that is the Anthropic ``tool_use.id``) and their
arguments arrive as deltas keyed by the item's ``id``; they are buffered and written whole through
the stream builder once ``...arguments.done`` or the item's ``output_item.done`` arrives. Reasoning
items are never replayed by bare ``rs_`` id (under ``store: false`` that is a 404, protocols.md §7
item 43): their id and ``encrypted_content`` travel in a thinking block's signature (``occ1.r.<base64url>``;
a thinking block with no text when the item had no summary) through Claude Code's history and come back
as a whole reasoning item, only to the model that made it (encrypted reasoning is bound to its model:
another model's is left out, never sent to draw a 400).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from occ.core.errors import UpstreamProtocolError
from occ.core.jsonfast import JSONDecodeError, dumps_str, loads
from occ.core.sse import SSEEvent, event_json
from occ.core.upstream_errors import from_responses, upstream_failure
from occ.translate.anthropic_events import (
    SIGNATURE_PREFIX,
    AnthropicStreamBuilder,
    Usage,
    make_message,
    normalize_tool_arguments,
    token_count,
)
from occ.translate.anthropic_request import clamped_max_tokens, effort_of, system_text, text_of, turns
from occ.translate.tool_ids import from_upstream_name, to_upstream_name
from occ.translate.tool_schema import openai_tools

if TYPE_CHECKING:
    from occ.config.model import ModelConfig

__all__ = ["ResponsesStreamTranslator", "build_request", "reasoning_signature", "translate_response"]

#: A thinking block whose signature starts with this carries a Responses reasoning item.
REASONING_PREFIX = SIGNATURE_PREFIX + "r."

_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def _user_parts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            parts.append({"type": "input_text", "text": block["text"]})
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
            else:
                url = source.get("url", "")
            if url:
                parts.append({"type": "input_image", "image_url": url})
    return parts


def _input(request: dict[str, Any], route: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for turn in turns(request):
        blocks = list(turn.blocks)
        if turn.role == "assistant":
            for block in blocks:
                signature = str(block.get("signature", "")) if block.get("type") == "thinking" else ""
                if signature.startswith(REASONING_PREFIX):
                    item = _decode_reasoning(signature[len(REASONING_PREFIX):], route)
                    if item is not None:
                        items.append(item)
            text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
            if text:
                items.append({"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": text}]})
            for block in blocks:
                if block.get("type") == "tool_use":
                    args = block.get("input") if isinstance(block.get("input"), dict) else {}
                    items.append({"type": "function_call", "call_id": str(block.get("id", "")),
                                  "name": to_upstream_name(str(block.get("name", ""))),
                                  "arguments": dumps_str(args)})
            continue
        for block in blocks:
            if block.get("type") == "tool_result":
                output = text_of(block.get("content")) or "(empty result)"
                if block.get("is_error"):
                    output = "Error: " + output
                items.append({"type": "function_call_output", "call_id": str(block.get("tool_use_id", "")),
                              "output": output})
        parts = _user_parts([b for b in blocks if b.get("type") != "tool_result"])
        if parts:
            items.append({"type": "message", "role": "user", "content": parts})
    return items


def reasoning_signature(route: str, item_id: str, encrypted: str) -> str:
    """The Anthropic thinking signature that carries a reasoning item of the model ``route``."""
    raw = dumps_str({"id": item_id, "encrypted_content": encrypted, "route": route}).encode()
    return REASONING_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_reasoning(encoded: str, route: str) -> dict[str, Any] | None:
    """A reasoning item to replay, only ever with its encrypted content (a bare ``rs_`` id is a 404
    under ``store: false``) and only to the model that made it."""
    try:
        data = loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, *JSONDecodeError):
        return None
    if not isinstance(data, dict) or not data.get("encrypted_content") or not data.get("id") \
            or data.get("route") != route:
        return None
    return {"type": "reasoning", "id": data["id"], "summary": [], "encrypted_content": data["encrypted_content"]}


def build_request(request: dict[str, Any], model: ModelConfig, *, stream: bool,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model.model_id, "input": _input(request, model.label), "store": False,
                            "stream": stream, "include": ["reasoning.encrypted_content"]}
    instructions = system_text(request)
    if instructions:
        body["instructions"] = instructions
    # strict: false, said out loud: Responses function tools are strict by default, and strict mode
    # rejects any schema with an optional property or without additionalProperties: false
    tools = [{"type": "function", **t["function"], "strict": False} for t in openai_tools(request.get("tools"))]
    if tools:
        body["tools"] = tools
        choice = request.get("tool_choice")
        if isinstance(choice, dict):
            kind = choice.get("type")
            mapped = {"auto": "auto", "any": "required", "none": "none"}.get(kind)
            if kind == "tool" and choice.get("name"):
                body["tool_choice"] = {"type": "function", "name": to_upstream_name(choice["name"])}
            elif mapped:
                body["tool_choice"] = mapped
            if choice.get("disable_parallel_tool_use"):
                body["parallel_tool_calls"] = False
    max_tokens = clamped_max_tokens(request, model.max_tokens, model.model_id, log)
    if max_tokens is not None:
        body["max_output_tokens"] = max(16, max_tokens)
    effort = model.reasoning_effort or effort_of(request)
    if effort:
        body["reasoning"] = {"effort": _EFFORTS.get(effort, "medium"), "summary": "auto"}
    else:
        temperature = model.temperature if model.temperature is not None else request.get("temperature")
        if temperature is not None:
            body["temperature"] = temperature
    return body


def _usage(raw: Any) -> Usage | None:
    """Anthropic usage from Responses usage; None when it reports no count (null means absent)."""
    if not isinstance(raw, dict):
        return None
    inputs, outputs = token_count(raw.get("input_tokens")), token_count(raw.get("output_tokens"))
    if inputs is None and outputs is None:
        return None
    details = raw.get("input_tokens_details") if isinstance(raw.get("input_tokens_details"), dict) else {}
    cached = token_count(details.get("cached_tokens")) or 0
    return Usage(input_tokens=max(0, (inputs or 0) - cached), output_tokens=outputs or 0,
                 cache_read_input_tokens=cached)


def _incomplete_reason(response: dict[str, Any]) -> str:
    details = response.get("incomplete_details") if isinstance(response.get("incomplete_details"), dict) else {}
    return "refusal" if details.get("reason") == "content_filter" else "max_tokens"


def translate_response(body: Any, *, message_id: str, model_name: str, input_estimate: int,
                       route: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UpstreamProtocolError("upstream answer is not a JSON object")
    if body.get("status") == "failed" or isinstance(body.get("error"), dict):
        raise upstream_failure(from_responses(body.get("error")))
    content: list[dict[str, Any]] = []
    refused = False
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "reasoning":
            text = "\n\n".join(str(s.get("text") or "") for s in item.get("summary") or [] if isinstance(s, dict))
            if not text.strip():  # open-weight models (gpt-oss) give the reasoning itself, not a summary
                text = "".join(str(c.get("text") or "") for c in item.get("content") or []
                               if isinstance(c, dict) and c.get("type") == "reasoning_text")
            signature = SIGNATURE_PREFIX
            if item.get("encrypted_content") and item.get("id"):
                signature = reasoning_signature(route, str(item["id"]), str(item["encrypted_content"]))
            if text.strip() or signature != SIGNATURE_PREFIX:
                content.append({"type": "thinking", "thinking": text if text.strip() else "", "signature": signature})
        elif kind == "message":
            parts = [p for p in item.get("content") or [] if isinstance(p, dict)]
            text = "".join(str(p.get("text") or p.get("refusal") or "") for p in parts
                           if p.get("type") in ("output_text", "refusal"))
            refused = refused or any(p.get("type") == "refusal" for p in parts)
            if text:
                content.append({"type": "text", "text": text})
        elif kind == "function_call":
            name = str(item.get("name") or "")
            raw = item.get("arguments")
            arguments = normalize_tool_arguments(raw if isinstance(raw, (str, dict)) else None, tool_name=name)
            content.append({"type": "tool_use", "id": str(item.get("call_id") or item.get("id")), "name": name,
                            "input": loads(arguments)})
    stop = _incomplete_reason(body) if body.get("status") == "incomplete" else "refusal" if refused else "end_turn"
    return make_message(message_id=message_id, model=model_name, content=content, stop_reason=stop,
                        usage=_usage(body.get("usage")) or Usage.estimate(input_estimate))


class ResponsesStreamTranslator:
    """Responses API stream events in, builder calls out.

    ``stream_tool_input``: a function call's ``tool_use`` block opens at ``output_item.added`` and
    its ``function_call_arguments.delta`` pieces are written as they arrive (one call at a time; a
    call that begins while another streams is written whole at its end); False writes each call
    whole at its ``.done``.
    """

    def __init__(self, builder: AnthropicStreamBuilder, *, route: str, tool_names: list[str] | None = None,
                 stream_tool_input: bool = True) -> None:
        self._builder = builder
        self._stream_tool_input = stream_tool_input
        self._live: str | None = None  # the item id of the call whose arguments are streaming
        self._route = route
        self._tool_names = tool_names or []
        self._calls: dict[str, dict[str, Any]] = {}
        self._summary_parts = 0
        self._refused = False  # a refusal part: the model declined (stop_reason "refusal")
        self._streamed: set[str] = set()  # items whose text or reasoning came as deltas

    @property
    def done(self) -> bool:
        return self._builder.finished

    def feed(self, event: SSEEvent) -> None:
        if self.done or not event.data.strip():
            return
        data = event_json(event)
        if not isinstance(data, dict):
            raise UpstreamProtocolError("upstream sent an event that is not a JSON object")
        kind = data.get("type") or event.event
        item = data.get("item") if isinstance(data.get("item"), dict) else {}
        if self._live is not None and kind.endswith(".delta") and "function_call" not in kind:
            self._emit_call(self._live, None)  # other content: the streaming call is over
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            self._refused = self._refused or kind == "response.refusal.delta"
            self._streamed.add(str(data.get("item_id")))
            self._builder.text(str(data.get("delta") or ""))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            self._streamed.add(str(data.get("item_id")))
            self._builder.thinking(str(data.get("delta") or ""))
        elif kind == "response.reasoning_summary_part.added":
            if self._summary_parts:
                self._builder.thinking("\n\n")
            self._summary_parts += 1
        elif kind == "response.output_item.added" and item.get("type") == "function_call":
            item_id = str(item.get("id"))
            call = self._calls[item_id] = {"call_id": item.get("call_id") or item.get("id"),
                                           "name": item.get("name"), "args": [], "done": False}
            if self._stream_tool_input and self._live is None and call["name"] and call["call_id"]:
                self._builder.tool_start(str(call["call_id"]), from_upstream_name(str(call["name"]), self._tool_names))
                self._live = item_id
        elif kind == "response.function_call_arguments.delta":
            item_id = str(data.get("item_id"))
            call = self._calls.get(item_id)
            if call is not None and not call["done"]:
                piece = str(data.get("delta") or "")
                call["args"].append(piece)
                if item_id == self._live:
                    self._builder.tool_input(piece)
        elif kind == "response.function_call_arguments.done":
            self._emit_call(str(data.get("item_id")), data.get("arguments"))
        elif kind == "response.output_item.done":
            if item.get("type") == "function_call":
                if str(item.get("id")) not in self._calls:
                    self._calls[str(item.get("id"))] = {"call_id": item.get("call_id"), "name": item.get("name"),
                                                        "args": [], "done": False}
                self._emit_call(str(item.get("id")), item.get("arguments"))
            elif item.get("type") in ("reasoning", "message"):
                if str(item.get("id")) not in self._streamed and "None" not in self._streamed:  # deltas w/o ids
                    self._whole_item(item)  # a server that sent the item whole, without deltas
                if item.get("type") == "reasoning" and item.get("encrypted_content") and item.get("id"):
                    self._builder.thinking_signature(reasoning_signature(self._route, str(item["id"]),
                                                                         str(item["encrypted_content"])))
                self._builder.end_block()
                self._summary_parts = 0
        elif kind == "response.completed":
            self._finish("refusal" if self._refused else "end_turn", data.get("response"))
        elif kind == "response.incomplete":
            response = data.get("response") if isinstance(data.get("response"), dict) else {}
            self._finish(_incomplete_reason(response), response)
        elif kind == "response.failed":
            response = data.get("response") if isinstance(data.get("response"), dict) else {}
            raise upstream_failure(from_responses(response.get("error")))
        elif kind == "error":
            raise upstream_failure(from_responses(data.get("error") if isinstance(data.get("error"), dict) else data))

    def _whole_item(self, item: dict[str, Any]) -> None:
        """The text or reasoning of an item that arrived only in its ``output_item.done``."""
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") in ("output_text", "refusal"):
                    self._refused = self._refused or part.get("type") == "refusal"
                    self._builder.text(str(part.get("text") or part.get("refusal") or ""))
            return
        summary = "\n\n".join(str(s.get("text") or "") for s in item.get("summary") or [] if isinstance(s, dict))
        if not summary.strip():
            summary = "".join(str(c.get("text") or "") for c in item.get("content") or []
                              if isinstance(c, dict) and c.get("type") == "reasoning_text")
        self._builder.thinking(summary)

    def close(self) -> None:
        if not self.done:
            raise UpstreamProtocolError("upstream stream ended without response.completed")

    def _emit_call(self, item_id: str, arguments: Any) -> None:
        call = self._calls.get(item_id)
        if call is None or call["done"]:
            return
        call["done"] = True
        if item_id == self._live:
            self._live = None
            if not call["args"] and isinstance(arguments, str):
                self._builder.tool_input(arguments)  # arguments only in the final event
            self._builder.tool_stop()
            return
        raw = arguments if isinstance(arguments, str) and arguments else "".join(call["args"])
        name = str(call.get("name") or "")
        if not name:
            raise UpstreamProtocolError("upstream sent a function call without a name")
        self._builder.tool_use(str(call["call_id"]), from_upstream_name(name, self._tool_names), raw)

    def _finish(self, stop: str, response: Any) -> None:
        for item_id in list(self._calls):
            self._emit_call(item_id, None)
        usage = _usage(response.get("usage")) if isinstance(response, dict) else None
        self._builder.finish(stop, usage)


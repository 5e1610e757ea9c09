"""Anthropic-native upstreams: forward the client's body faithfully, relay the stream event-aligned.

Only ``model`` is replaced (by parsing the JSON once and setting the key, never by editing text:
the seed's string search missed ``"model": "x"`` with a space and sent the ``claude-*`` alias
upstream). Fields a third-party endpoint is known to reject are removed by the named rules below;
everything else, thinking signatures, ``cache_control``, unknown fields and key order, is kept.

The stream is relayed *event by event*: each upstream event is re-framed by occ as one whole frame,
with its data line unchanged, so occ's heartbeat can only ever land between events. The upstream
``message_start`` is held until the first content event (commit late), so an attempt that fails
before producing anything falls back invisibly. Sans-IO.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UpstreamProtocolError, UpstreamStatus
from ..jsonfast import dumps
from ..sse import SSEEvent, event_json
from .anthropic_events import SIGNATURE_PREFIX, AnthropicStreamBuilder, Usage

if TYPE_CHECKING:
    from ..config import ModelConfig

__all__ = [
    "RULES",
    "AnthropicPassthroughTranslator",
    "build_body",
    "forward_headers",
    "translate_response",
]

#: Betas known to be accepted by third-party Anthropic endpoints; unknown betas draw 400s there.
ALLOWED_BETAS = frozenset({
    "interleaved-thinking-2025-05-14",
    "fine-grained-tool-streaming-2025-05-14",
    "prompt-caching-2024-07-31",
    "context-1m-2025-08-07",
    "token-efficient-tools-2025-02-19",
    "output-128k-2025-02-19",
    "effort-2025-11-24",
})


# -- request rules -------------------------------------------------------------------------------


def drop_context_management(body: dict[str, Any], model: ModelConfig) -> bool:
    """Third-party Anthropic endpoints (OpenCode Zen included) reject ``context_management``, and
    ``clear_thinking`` edits 400 without thinking (protocols.md §7 items 26-27)."""
    return body.pop("context_management", None) is not None


def drop_custom_tool_type(body: dict[str, Any], model: ModelConfig) -> bool:
    """MCP tools arrive as ``"type": "custom"``; OpenCode's Anthropic route reads a typed tool as a
    server-tool shorthand and answers 400 "Unknown server-tool shorthand" (the seed's sanitizer)."""
    changed = False
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "custom":
            del tool["type"]
            changed = True
    return changed


def strip_occ_thinking(body: dict[str, Any], model: ModelConfig) -> bool:
    """Thinking blocks with an ``occ1.`` signature were minted by occ for another upstream; a real
    Anthropic endpoint answers "Invalid signature". Drop them, never leaving an assistant turn empty."""
    changed = False
    for message in body.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        kept = [b for b in content if not (isinstance(b, dict) and b.get("type") == "thinking"
                                           and str(b.get("signature", "")).startswith(SIGNATURE_PREFIX))]
        if len(kept) != len(content):
            changed = True
            message["content"] = kept or [{"type": "text", "text": "(thinking omitted)"}]
    return changed


def clamp_max_tokens(body: dict[str, Any], model: ModelConfig) -> bool:
    """The routed model's output cap applies on passthrough too (a larger ask is a 400 upstream)."""
    cap = model.max_tokens
    value = body.get("max_tokens")
    if cap and isinstance(value, int) and value > cap:
        body["max_tokens"] = cap
        return True
    return False


RULES: tuple[Callable[[dict[str, Any], ModelConfig], bool], ...] = (
    drop_context_management,
    drop_custom_tool_type,
    strip_occ_thinking,
    clamp_max_tokens,
)


def build_body(raw_body: bytes, request: dict[str, Any], model: ModelConfig) -> bytes:
    """The client's body with ``model`` replaced and the rules applied; unchanged when it has no
    string ``model`` or is not a JSON object."""
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        return raw_body
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return raw_body
    body["model"] = model.model_id
    for rule in RULES:
        rule(body, model)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def forward_headers(client_headers: Mapping[str, str]) -> dict[str, str]:
    """``anthropic-version`` and the allowed ``anthropic-beta`` values; never the client's key."""
    headers = {"anthropic-version": client_headers.get("anthropic-version") or "2023-06-01"}
    betas = [b.strip() for b in (client_headers.get("anthropic-beta") or "").split(",") if b.strip()]
    allowed = [b for b in dict.fromkeys(betas) if b in ALLOWED_BETAS]
    if allowed:
        headers["anthropic-beta"] = ",".join(allowed)
    return headers


# -- responses -----------------------------------------------------------------------------------

_STATUS_BY_TYPE = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "timeout_error": 504,
}


def _error(data: Mapping[str, Any]) -> UpstreamStatus:
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    etype = str(err.get("type") or "api_error")
    message = str(err.get("message") or etype)
    status = _STATUS_BY_TYPE.get(etype, 502)
    return UpstreamStatus(status, f"upstream error: {message}",
                          upstream_type=etype if etype in ("overloaded_error", "rate_limit_error") else None)


def translate_response(body: Any, *, message_id: str, model_name: str, input_estimate: int) -> dict[str, Any]:
    if isinstance(body, dict) and body.get("type") == "error":
        raise _error(body)
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise UpstreamProtocolError("upstream answered with something that is not an Anthropic message")
    return {**body, "model": model_name}


class AnthropicPassthroughTranslator:
    """Relay an upstream Anthropic stream through the builder, whole events only."""

    def __init__(self, builder: AnthropicStreamBuilder) -> None:
        self._builder = builder
        self._held_start: dict[str, Any] | None = None
        self._open: int | None = None
        self._next = 0
        self._usage: dict[str, Any] = {}

    @property
    def done(self) -> bool:
        return self._builder.finished

    def feed(self, event: SSEEvent) -> None:
        if self.done:
            return
        data = event_json(event)
        if not isinstance(data, dict):
            raise UpstreamProtocolError("upstream sent an event that is not a JSON object")
        kind = data.get("type") or event.event
        if kind == "error":
            raise _error(data)
        if kind == "ping":
            if self._builder.committed:
                self._builder.relay_frame(b'event: ping\ndata: {"type":"ping"}\n\n')
            return
        if kind == "message_start":
            message = data.get("message")
            if self._held_start is not None or self._builder.committed or not isinstance(message, dict):
                raise UpstreamProtocolError("upstream sent a second or malformed message_start")
            self._held_start = message
            usage = message.get("usage")
            if isinstance(usage, dict):
                self._usage.update(usage)
            return
        if self._held_start is None and not self._builder.committed:
            raise UpstreamProtocolError(f"upstream sent {kind} before message_start")
        self._check_grammar(kind, data)
        if not self._builder.committed:
            self._builder.relay_message_start(self._start_frame())
        frame = b"event: " + kind.encode() + b"\ndata: " + event.data.encode() + b"\n\n"
        if kind == "message_delta":
            usage = data.get("usage")
            if isinstance(usage, dict):
                self._usage.update({k: v for k, v in usage.items() if v is not None})
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            self._builder.relay_frame(frame, stop_reason=delta.get("stop_reason"), usage=self._final_usage())
        elif kind == "message_stop":
            self._builder.relay_frame(frame, finishes=True)
        else:
            self._builder.relay_frame(frame, tool_use=kind == "content_block_start"
                                      and (data.get("content_block") or {}).get("type") == "tool_use")

    def close(self) -> None:
        if not self.done:
            raise UpstreamProtocolError("upstream stream ended without message_stop")

    def _start_frame(self) -> bytes:
        message = dict(self._held_start or {})
        message["model"] = self._builder.model
        message.setdefault("id", self._builder.message_id)
        usage = dict(message.get("usage") or {})
        if not usage.get("input_tokens") and not usage.get("cache_read_input_tokens"):
            usage["input_tokens"] = self._builder.input_estimate
        for key in ("output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            usage.setdefault(key, 0)
        message["usage"] = usage
        return b'event: message_start\ndata: {"type":"message_start","message":' + dumps(message) + b"}\n\n"

    def _final_usage(self) -> Usage:
        def n(key: str) -> int:
            value = self._usage.get(key)
            return value if isinstance(value, int) else 0

        return Usage(n("input_tokens"), n("output_tokens"), n("cache_read_input_tokens"),
                     n("cache_creation_input_tokens"))

    def _check_grammar(self, kind: str, data: dict[str, Any]) -> None:
        """Refuse to pass on a broken stream: indices from 0, one block open at a time."""
        index = data.get("index")
        if kind == "content_block_start":
            if self._open is not None or index != self._next:
                raise UpstreamProtocolError(f"upstream opened block {index} out of order")
            self._open = index
            self._next += 1
        elif kind == "content_block_delta":
            if index != self._open:
                raise UpstreamProtocolError(f"upstream sent a delta for block {index}, open is {self._open}")
        elif kind == "content_block_stop":
            if index != self._open:
                raise UpstreamProtocolError(f"upstream closed block {index}, open is {self._open}")
            self._open = None
        elif kind in ("message_delta", "message_stop") and self._open is not None:
            raise UpstreamProtocolError(f"upstream sent {kind} while block {self._open} is open")

"""Offline token estimates: ``count_tokens`` answers and the routing estimate, without a tokenizer.

Claude Code calls ``count_tokens`` for ``/context``; a 404 there drives it into fallbacks, and a
tokenizer download at run time is not possible offline. The estimate counts characters of
everything the model will read (system, text, tool inputs and results, thinking, tool schemas) at
~3.5 characters per token, images at a flat 1600. docs/token-counting.md records its accuracy.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["count_tokens", "estimate_routing_tokens"]

CHARS_PER_TOKEN = 3.5
IMAGE_TOKENS = 1600
PER_MESSAGE = 4


def _content_chars(content: Any) -> tuple[int, int]:
    """(characters, images) of a message's content."""
    if isinstance(content, str):
        return len(content), 0
    chars = images = 0
    if not isinstance(content, list):
        return 0, 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            chars += len(str(block.get("text", "")))
        elif kind == "thinking":
            chars += len(str(block.get("thinking", "")))
        elif kind == "tool_use":
            chars += len(str(block.get("name", ""))) + len(json.dumps(block.get("input", {}), ensure_ascii=False))
        elif kind == "tool_result":
            c, i = _content_chars(block.get("content"))
            chars += c
            images += i
        elif kind in ("image", "document"):
            images += 1
        elif kind == "tool_reference":
            chars += len(str(block.get("tool_name", "")))
    return chars, images


def count_tokens(request: dict[str, Any]) -> int:
    chars, images = _content_chars(request.get("system"))
    messages = request.get("messages") or []
    for message in messages:
        if isinstance(message, dict):
            c, i = _content_chars(message.get("content"))
            chars += c
            images += i
    tools = request.get("tools") or []
    if tools:
        chars += len(json.dumps(tools, ensure_ascii=False))
    total = int(chars / CHARS_PER_TOKEN) + images * IMAGE_TOKENS + PER_MESSAGE * len(messages)
    return max(1, total)


def estimate_routing_tokens(request: dict[str, Any]) -> int:
    """The estimate routing compares with ``context_threshold``: the same count as count_tokens, so
    what ``/context`` shows and where a request goes agree."""
    return count_tokens(request)

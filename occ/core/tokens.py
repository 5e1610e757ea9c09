"""Offline token estimates: the ``count_tokens`` answer and the routing estimate, without a tokenizer.

Claude Code calls ``count_tokens`` for ``/context``, and a 404 there drives it into fallbacks; a tokenizer
download at run time is impossible offline (the seed's tiktoken needed a cache or network on first use), and
the upstream models each have their own vocabulary anyway. So occ estimates, fast and the same everywhere:

* text: ASCII at ~3.8 characters per token; other characters by their UTF-8 length (half a token per
  extra byte, so Cyrillic ~0.5 and CJK ~1 token per character, where a flat chars/4 undercounts Chinese
  four-fold);
* everything the model reads: system, message text, thinking, tool-use inputs and tool-result content,
  server-tool blocks, tool schemas (as JSON) plus the tool-use preamble Anthropic adds, a JSON output schema;
* images from their pixel size when the PNG/GIF/JPEG header says it (Anthropic's w*h/750 after its resize),
  else a flat 1600; base64 PDFs per page.

``docs/token-counting.md`` records how close this comes to real tokenizers and how it was measured.
Sans-IO and pure.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

from occ.core.jsonfast import dumps_str

__all__ = ["count_tokens", "estimate_routing_tokens", "image_tokens", "text_tokens"]

ASCII_CHARS_PER_TOKEN = 3.8
TOKENS_PER_EXTRA_UTF8_BYTE = 0.5
PER_MESSAGE = 4
#: Anthropic prepends a tool-use system prompt of ~350 tokens whenever tools are present.
TOOLS_PREAMBLE = 350
PER_TOOL = 8
IMAGE_FLAT = 1600
PDF_PAGE = 2000
DOCUMENT_FLAT = 1600

_MAX_LONG_EDGE = 1568
_MAX_PIXELS = 1_150_000
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def text_tokens(text: str) -> float:
    """Tokens of one string; fractional so many small strings do not each round up."""
    if not text:
        return 0.0
    n = len(text)
    if text.isascii():
        return n / ASCII_CHARS_PER_TOKEN
    extra = len(text.encode("utf-8", "surrogatepass")) - n
    return max(0.0, n - extra / 2) / ASCII_CHARS_PER_TOKEN + extra * TOKENS_PER_EXTRA_UTF8_BYTE


def _json_tokens(value: Any) -> float:
    try:
        return text_tokens(dumps_str(value))
    except (TypeError, ValueError, OverflowError):
        return text_tokens(str(value))


def _image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG, GIF or baseline/progressive JPEG."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                return None
            marker = head[i + 1]
            length = int.from_bytes(head[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(head[i + 7:i + 9], "big"), int.from_bytes(head[i + 5:i + 7], "big")
            i += 2 + length
    return None


def image_tokens(source: Any) -> int:
    """Anthropic's image cost (w*h/750 after scaling to <= 1568 px long edge and ~1.15 MP), or a flat
    1600 when the size cannot be read cheaply (URLs, files, WebP, a JPEG with a large EXIF block)."""
    if not isinstance(source, dict) or source.get("type") != "base64" or not isinstance(source.get("data"), str):
        return IMAGE_FLAT
    try:
        data = source["data"][:87_384]
        head = base64.b64decode(data[:len(data) - len(data) % 4], validate=False)
    except (binascii.Error, ValueError):
        return IMAGE_FLAT
    size = _image_size(head)
    if size is None or min(size) <= 0:
        return IMAGE_FLAT
    width, height = size
    scale = min(1.0, _MAX_LONG_EDGE / max(width, height), math.sqrt(_MAX_PIXELS / (width * height)))
    return max(1, math.ceil(width * scale * height * scale / 750))


def _document_tokens(block: dict[str, Any]) -> float:
    source = block.get("source")
    if not isinstance(source, dict):
        return DOCUMENT_FLAT
    kind = source.get("type")
    if kind == "text":
        return text_tokens(str(source.get("data", "")))
    if kind == "content":
        return _content_tokens(source.get("content"))[0]
    if kind == "base64" and isinstance(source.get("data"), str):
        try:
            pages = len(_PDF_PAGE.findall(base64.b64decode(source["data"], validate=False)))
        except (binascii.Error, ValueError):
            pages = 0
        return PDF_PAGE * pages if pages else DOCUMENT_FLAT
    return DOCUMENT_FLAT


def _block_tokens(block: dict[str, Any]) -> float:
    kind = block.get("type")
    if kind == "text":
        return text_tokens(str(block.get("text", "")))
    if kind == "thinking":
        return text_tokens(str(block.get("thinking", "")))
    if kind in ("tool_use", "server_tool_use"):
        return text_tokens(str(block.get("name", ""))) + _json_tokens(block.get("input", {}))
    if kind == "tool_result":
        return _content_tokens(block.get("content"))[0]
    if kind == "image":
        return image_tokens(block.get("source"))
    if kind == "document":
        return _document_tokens(block)
    if kind == "tool_reference":
        return text_tokens(str(block.get("tool_name", "")))
    if kind in ("mid_conv_system", "search_result"):
        return _content_tokens(block.get("content"))[0] + text_tokens(str(block.get("title", "")))
    if kind == "redacted_thinking":
        return 0.0  # opaque ciphertext: what it stands for is unknowable here
    return _json_tokens({k: v for k, v in block.items() if k not in ("type", "cache_control")})


def _content_tokens(content: Any) -> tuple[float, int]:
    """(tokens, blocks) of a message's or a tool result's content."""
    if isinstance(content, str):
        return text_tokens(content), 1
    if not isinstance(content, list):
        return 0.0, 0
    total = 0.0
    for block in content:
        if isinstance(block, dict):
            total += _block_tokens(block)
        elif isinstance(block, str):
            total += text_tokens(block)
    return total, len(content)


def count_tokens(request: dict[str, Any]) -> int:
    """Input tokens of a Messages or count_tokens body: everything the model will read."""
    total = _content_tokens(request.get("system"))[0]
    messages = request.get("messages")
    messages = messages if isinstance(messages, list) else []
    for message in messages:
        if isinstance(message, dict):
            total += _content_tokens(message.get("content"))[0] + PER_MESSAGE
    tools = request.get("tools")
    if isinstance(tools, list) and tools:
        total += TOOLS_PREAMBLE + PER_TOOL * len(tools)
        total += sum(_json_tokens({k: v for k, v in t.items() if k != "cache_control"})
                     for t in tools if isinstance(t, dict))
    output_config = request.get("output_config")
    if isinstance(output_config, dict) and isinstance(output_config.get("format"), dict):
        total += _json_tokens(output_config["format"])
    return max(1, round(total))


def estimate_routing_tokens(request: dict[str, Any]) -> int:
    """The estimate routing compares with ``context_threshold``: exactly ``count_tokens``, so what
    ``/context`` shows, what ``message_start`` reports before the upstream's usage and where a request
    goes all agree (the seed counted only message text for routing, so tool-heavy requests overflowed)."""
    return count_tokens(request)

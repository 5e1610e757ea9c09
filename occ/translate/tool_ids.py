"""Tool ids and names that both sides accept, mapped statelessly and reversibly.

Anthropic requires tool ids matching ``^[a-zA-Z0-9_-]+$``; Kimi returns ``functions.Bash:0``. Such
ids reach the client as ``occ-`` + base64url of the original and are decoded on the way back, so
the upstream sees its own ids again (Kimi degrades on foreign ids). OpenAI rejects ids longer than
40 characters (``messages[i].tool_calls[j].id: string too long``); a long id of foreign origin
(another proxy, another provider's history) is replaced by a deterministic hash on the way up, the
same for its ``tool_use`` and its ``tool_result``, so the pair still matches. Tool names longer than
64 characters (long MCP names) or with characters outside ``[a-zA-Z0-9_-]`` are shortened with a
hash for the upstream and restored from the request's own tool list. Sans-IO.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from occ.core.ids import random_hex

__all__ = [
    "MAX_UPSTREAM_ID",
    "from_upstream_id",
    "from_upstream_name",
    "new_tool_id",
    "restore_tool_names",
    "to_upstream_id",
    "to_upstream_name",
]

#: The longest tool-call id OpenAI's chat completions accept.
MAX_UPSTREAM_ID = 40

_VALID_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PREFIX = "occ-"


def new_tool_id() -> str:
    """A fresh Anthropic-style id, for upstreams that send none (or a duplicate)."""
    return "toolu_" + random_hex()


def _needs_encoding(upstream_id: str) -> bool:
    return not _VALID_ID.match(upstream_id) or upstream_id.startswith(_PREFIX)


def from_upstream_id(upstream_id: str | None) -> str:
    """The id the client sees for an upstream tool-call id (a generated one when there is none)."""
    if not upstream_id:
        return new_tool_id()
    if not _needs_encoding(upstream_id):
        return upstream_id
    return _PREFIX + base64.urlsafe_b64encode(upstream_id.encode()).decode().rstrip("=")


def _decode(anthropic_id: str) -> str | None:
    """The original of an ``occ-`` id, or None when it is not one of ours (an id that would not
    have been encoded cannot have come from :func:`from_upstream_id`)."""
    encoded = anthropic_id[len(_PREFIX):]
    try:
        original = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None
    if not original or not _needs_encoding(original):
        return None
    if from_upstream_id(original) != anthropic_id:
        return None
    return original


def to_upstream_id(anthropic_id: str) -> str:
    """The id to send upstream for a client tool id: ours decode to the upstream's original; other
    valid ids up to :data:`MAX_UPSTREAM_ID` characters pass unchanged; longer ones are hashed."""
    if anthropic_id.startswith(_PREFIX):
        original = _decode(anthropic_id)
        if original is not None:
            return original
    if len(anthropic_id) <= MAX_UPSTREAM_ID and anthropic_id:
        return anthropic_id
    return "call_" + hashlib.sha256(anthropic_id.encode()).hexdigest()[:32]


def to_upstream_name(name: str) -> str:
    """A name OpenAI-style upstreams accept (``^[a-zA-Z0-9_-]{1,64}$``); valid names are unchanged."""
    if _VALID_NAME.match(name):
        return name
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:55]
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned}_{digest}"


def from_upstream_name(name: str, known: list[str]) -> str:
    """The client's name for an upstream name: the tool of the request that maps to it."""
    if name in known:
        return name
    for original in known:
        if to_upstream_name(original) == name:
            return original
    return name


def restore_tool_names(message: dict[str, object], known: list[str]) -> None:
    """Put the client's tool names back on a translated message's tool_use blocks."""
    for block in message.get("content") or []:  # type: ignore[attr-defined]
        if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
            block["name"] = from_upstream_name(block["name"], known)

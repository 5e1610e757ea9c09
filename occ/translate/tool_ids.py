"""Tool ids and names that both sides accept, mapped statelessly and reversibly.

Anthropic requires tool ids matching ``^[a-zA-Z0-9_-]+$``; Kimi returns ``functions.Bash:0``. Such
ids reach the client as ``occ-`` + base64url of the original and are decoded on the way back, so
the upstream sees its own ids again (Kimi degrades on foreign ids). Tool names longer than 64
characters (long MCP names) are shortened with a hash for the upstream and restored from the
request's own tool list. Sans-IO.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

__all__ = ["from_upstream_id", "from_upstream_name", "restore_tool_names", "to_upstream_id", "to_upstream_name"]

_VALID_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PREFIX = "occ-"


def from_upstream_id(upstream_id: str | None) -> str:
    if not upstream_id:
        return "toolu_" + secrets.token_hex(12)
    if _VALID_ID.match(upstream_id) and not upstream_id.startswith(_PREFIX):
        return upstream_id
    return _PREFIX + base64.urlsafe_b64encode(upstream_id.encode()).decode().rstrip("=")


def to_upstream_id(anthropic_id: str) -> str:
    if anthropic_id.startswith(_PREFIX):
        encoded = anthropic_id[len(_PREFIX):]
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return anthropic_id
    return anthropic_id


def to_upstream_name(name: str) -> str:
    if _VALID_NAME.match(name):
        return name
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)
    if len(cleaned) <= 64 and cleaned != name:
        cleaned = cleaned[:55]
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned[:55]}_{digest}"


def from_upstream_name(name: str, known: list[str]) -> str:
    """The client's name for an upstream name: the tool of the request that maps to it."""
    for original in known:
        if to_upstream_name(original) == name:
            return original
    return name


def restore_tool_names(message: dict[str, object], known: list[str]) -> None:
    """Put the client's tool names back on a translated message's tool_use blocks."""
    for block in message.get("content") or []:  # type: ignore[attr-defined]
        if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
            block["name"] = from_upstream_name(block["name"], known)

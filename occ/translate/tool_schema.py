"""Tool definitions that OpenAI-style upstreams accept, whatever the client sent.

A total normalizer (it never raises): the seed's PR #80 rules plus its reviewers' findings. An
absent, null, empty, invalid or non-object schema becomes an empty object schema; a wrong ``type``
is coerced; missing or malformed ``properties`` are filled; ``required: null`` (or any non-list) is
removed and non-string entries dropped; an explicit ``additionalProperties`` is the caller's and
stays, and so does Claude Code's ``$schema`` (chat upstreams accept it; the Gemini cleaner drops it).

Tool search: Claude Code marks tools ``defer_loading: true``; a chat upstream has no such notion,
so the tool is sent like any other and the flag dropped (with ``cache_control`` and ``strict``,
which would switch OpenAI into strict-schema validation the schema was never written for). Sans-IO.
"""

from __future__ import annotations

import json
from typing import Any

from occ.translate.tool_ids import to_upstream_name

__all__ = ["EMPTY_SCHEMA", "harden_schema", "openai_tools"]

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def harden_schema(schema: Any) -> dict[str, Any]:
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except ValueError:
            return dict(EMPTY_SCHEMA)
    if not isinstance(schema, dict) or not schema:
        return dict(EMPTY_SCHEMA)
    out = dict(schema)
    out["type"] = "object"
    if not isinstance(out.get("properties"), dict):
        out["properties"] = {}
    if "required" in out:
        required = out["required"]
        if isinstance(required, list):
            out["required"] = [r for r in required if isinstance(r, str)]
        else:
            del out["required"]
    return out


def _is_server_tool(tool: dict[str, Any]) -> bool:
    """Anthropic server tools (``web_search_20250305``, ``web_fetch_*``, ``code_execution_*``...) carry a
    versioned ``type``: only Anthropic can run them."""
    kind = tool.get("type")
    return isinstance(kind, str) and kind not in ("custom", "function")


def openai_tools(tools: Any) -> list[dict[str, Any]]:
    """Anthropic tools as chat-completions ``tools``; blank names, duplicates and server tools are
    skipped (an upstream answers 400 to either)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or _is_server_tool(tool):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        upstream_name = to_upstream_name(name)
        if upstream_name in seen:
            continue
        seen.add(upstream_name)
        function: dict[str, Any] = {"name": upstream_name, "parameters": harden_schema(tool.get("input_schema"))}
        if isinstance(tool.get("description"), str) and tool["description"]:
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out

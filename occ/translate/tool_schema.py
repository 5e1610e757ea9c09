"""Tool definitions that OpenAI-style upstreams accept, whatever the client sent.

A total normalizer (it never raises): the seed's PR #80 rules plus its reviewers' findings. An
absent, null, empty, invalid or non-object schema becomes an empty object schema; a wrong ``type``
is coerced; missing or malformed ``properties`` are filled; ``required: null`` is removed; an
explicit ``additionalProperties`` is the caller's and stays. Sans-IO.
"""

from __future__ import annotations

import json
from typing import Any

from .tool_ids import to_upstream_name

__all__ = ["EMPTY_SCHEMA", "harden_schema", "openai_tools"]

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def harden_schema(schema: Any) -> dict[str, Any]:
    if isinstance(schema, str):
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
    if "required" in out and not isinstance(out["required"], list):
        del out["required"]
    return out


def _is_server_tool(tool: dict[str, Any]) -> bool:
    kind = tool.get("type")
    return isinstance(kind, str) and kind not in ("custom", "function")


def openai_tools(tools: Any) -> list[dict[str, Any]]:
    """Anthropic tools as chat-completions ``tools``; blank names and server tools (``web_search_*``,
    which a non-Anthropic upstream cannot run) are skipped."""
    out: list[dict[str, Any]] = []
    for tool in tools or []:
        if not isinstance(tool, dict) or _is_server_tool(tool):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        function: dict[str, Any] = {"name": to_upstream_name(name.strip()),
                                    "parameters": harden_schema(tool.get("input_schema"))}
        if isinstance(tool.get("description"), str) and tool["description"]:
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out

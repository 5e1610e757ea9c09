"""Claude Code main-loop bodies in the shapes the real CLI sends (/work/shared/claude-code-client.md §3).

``cc_2_1_197`` is the body the installed Claude Code 2.1.197 sent through occ (recorded 2026-12-06 with
``ENABLE_TOOL_SEARCH=true``, the model answering with ``ToolSearch {"query": "select:NotebookEdit"}``):
keys in the CLI's order, the billing/agent/prompt system blocks, a first user turn of
``<system-reminder>`` context plus the prompt (the cache breakpoint), then a **string** ``role: "system"``
message (deferred-tool list, agent types, skills), and on the second turn the ToolSearch call, its
``tool_result`` holding ``[{"type": "tool_reference", "tool_name": "NotebookEdit"}]``, the text
"Tool loaded." and ``NotebookEdit`` among the tools with ``defer_loading: true``. ``cc_2_1_331`` is the
2.1.331 shape: a **list-content** system message that carries ``output_config: {"effort": "medium"}``,
``DeferredToolPlaceholder`` (``defer_loading: true``), ``thinking.display`` and ``context_management``.
Long texts are filler of the recorded sizes; every key and block the CLI sent is here.
"""

from __future__ import annotations

import copy
import json
from typing import Any

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
REMINDER = ("<system-reminder>\nAs you answer the user's questions, you can use the following context:\n"
            "# currentDate\nToday's date is 2026-12-06.\n\n      IMPORTANT: this context may or may not be "
            "relevant to your tasks. You should not respond to this context unless it is highly relevant to "
            "your task.\n</system-reminder>\n\n")
PROMPT = "Run the shell command that prints the marker."
#: The 2.1.197 system message: the deferred-tool list, then the agent types and skills (about 6 KB).
DEFERRED_LIST = ("The following deferred tools are now available via ToolSearch. Their schemas are NOT loaded "
                 "— calling them directly will fail with InputValidationError. Use ToolSearch with query "
                 "\"select:<name>[,<name>...]\" to load tool schemas before calling them:\nCronCreate\n"
                 "CronDelete\nCronList\nEnterWorktree\nExitWorktree\nNotebookEdit\nScheduleWakeup\nSendMessage\n"
                 "TaskCreate\nTaskGet\nTaskList\nTaskOutput\nTaskStop\nTaskUpdate\nWebFetch\nWebSearch")
AGENT_TYPES = "\n\nAvailable agent types for the Agent tool:\n" + "- Explore: read-only search agent. " * 150


def _tool(name: str, description_size: int = 400, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"{name}: " + "d" * description_size,
            "input_schema": {"$schema": SCHEMA_URL, "type": "object",
                             "properties": {"command": {"description": "what to run", "type": "string"}},
                             "required": ["command"], "additionalProperties": False}, **extra}


TOOLS_197 = ["Agent", "Bash", "Edit", "Read", "ReportFindings", "Skill", "ToolSearch", "Workflow", "Write"]


def cc_2_1_197(*, tool_search_turn: bool = True, tool_size: int = 400) -> dict[str, Any]:
    """The second main-loop request of the recorded run (the first without ``tool_search_turn``)."""
    tools = [_tool(name, tool_size) for name in TOOLS_197]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": REMINDER},
                                     {"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}]},
        {"role": "system", "content": DEFERRED_LIST + AGENT_TYPES},
    ]
    if tool_search_turn:
        messages[0]["content"][1].pop("cache_control")
        messages += [
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "load it",
                 "signature": "EqQBCkgIARABGAIiQL+real/upstream/signature=="},
                {"type": "tool_use", "id": "toolu_up_1", "name": "ToolSearch",
                 "input": {"query": "select:NotebookEdit", "max_results": 5}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_up_1",
                 "content": [{"type": "tool_reference", "tool_name": "NotebookEdit"}]},
                {"type": "text", "text": "Tool loaded.", "cache_control": {"type": "ephemeral"}}]},
        ]
        tools.insert(3, _tool("NotebookEdit", tool_size, defer_loading=True))
    return {
        "model": "claude-opus-4-8",
        "messages": messages,
        "system": [{"type": "text",
                    "text": "x-anthropic-billing-header: cc_version=2.1.197.fbe; cc_entrypoint=sdk-cli;"},
                   {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
                    "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "\nYou are an interactive agent. " + "p" * 5700,
                    "cache_control": {"type": "ephemeral"}}],
        "tools": tools,
        "metadata": {"user_id": json.dumps({"device_id": "ab" * 32, "account_uuid": "", "session_id": "s-1"})},
        "max_tokens": 64000,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "stream": True,
    }


#: The betas 2.1.197 sent with that request (recorded straight from the CLI, tool search on).
BETAS_197 = ("claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,"
             "thinking-token-count-2026-05-13,context-management-2025-06-27,prompt-caching-scope-2026-01-05,"
             "mid-conversation-system-2026-04-07,advanced-tool-use-2025-11-20,effort-2025-11-24")
BETAS_331 = ("claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
             "per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,"
             "advanced-tool-use-2025-11-20,effort-2025-11-24,thinking-display-updates-2026-08-18")


def cc_2_1_331(*, loaded: bool = True) -> dict[str, Any]:
    """The 2.1.331 default main-loop request; ``loaded``: after ToolSearch loaded NotebookEdit."""
    body = cc_2_1_197(tool_search_turn=loaded)
    body["model"] = "claude-opus-5-5"
    body["max_tokens"] = 128000
    body["thinking"] = {"type": "adaptive", "display": "updates"}
    body["context_management"] = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    body["output_config"] = {"effort": "medium"}
    body["messages"][1] = {"role": "system", "content": [
        {"type": "text", "text": "# Environment\nYou have been invoked in the following environment:\n"
                                 " - Primary working directory: /tmp/work\n - Platform: linux\n"
                                 " - You are powered by the model claude-opus-5-5."},
        {"type": "text", "text": DEFERRED_LIST},
        {"type": "text", "text": AGENT_TYPES.strip()}], "output_config": {"effort": "medium"}}
    names = ["Agent", "Bash", "Edit", "ListAgents", "Read", "ReportFindings", "ScheduleWakeup", "Skill",
             "ToolSearch", "Workflow"]
    body["tools"] = [_tool(n) for n in names] + [_tool("DeferredToolPlaceholder", 40, defer_loading=True),
                                                 _tool("Write")]
    if loaded:
        body["tools"].insert(3, _tool("NotebookEdit", defer_loading=True))
    # key order as the CLI sends it
    order = ["model", "messages", "system", "tools", "metadata", "max_tokens", "thinking", "context_management",
             "output_config", "stream"]
    return {k: body[k] for k in order}


def copied(body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(body)

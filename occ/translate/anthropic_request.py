"""What every translated route needs from an Anthropic request, read once and the same way.

Claude Code sends a billing-header first system block with a per-request ``cch=`` nonce, and
``role: "system"`` messages (plus ``mid_conv_system`` blocks) inside ``messages``. Translated routes
fold all system text into one leading instruction and drop the billing line, so upstream prefix
caching can hit. Message-level keys other than ``role``/``content`` are ignored here, but for the
``output_config.effort`` Claude Code 2.1.331 puts on a system message (:func:`effort_of`). Deferred tools
(tool search) stay hidden until loaded (:func:`visible_tools`); docs/passthrough-body.md.

Sans-IO: plain dicts in, plain values out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from occ.translate.web_search import history_as_text

__all__ = [
    "EFFORT_BUDGETS",
    "MIN_THINKING_BUDGET",
    "Turn",
    "blocks_of",
    "budget_for_effort",
    "clamped_max_tokens",
    "effort_of",
    "is_billing_header",
    "loaded_tool_names",
    "step_effort",
    "system_text",
    "text_of",
    "tool_reference_text",
    "turns",
    "visible_tools",
    "without_images",
]

_BILLING = re.compile(r"^\s*x-anthropic-billing-header:", re.IGNORECASE)


def is_billing_header(text: str) -> bool:
    return bool(_BILLING.match(text))


IMAGE_PLACEHOLDER = {"type": "text", "text": "[Image]"}


def without_images(request: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``request`` with every image block (in messages and in tool results) replaced by an
    ``[Image]`` text block, and how many were replaced; ``request`` itself when there were none.

    For models marked ``vision: false``: routing keeps them away from a turn that *adds* an image,
    but the images of earlier turns stay in the history, and a text-only upstream would reject every
    later turn of the session for them (protocols.md §7 edge 48).
    """
    count = 0

    def scrub(content: Any) -> Any:
        nonlocal count
        if not isinstance(content, list):
            return content
        out = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "image":
                count += 1
                out.append(dict(IMAGE_PLACEHOLDER))
            elif kind == "tool_result" and isinstance(block.get("content"), list):
                out.append({**block, "content": scrub(block["content"])})
            else:
                out.append(block)
        return out

    messages = request.get("messages")
    if not isinstance(messages, list):
        return request, 0
    scrubbed = [{**m, "content": scrub(m["content"])} if isinstance(m, dict) and "content" in m else m
                for m in messages]
    if not count:
        return request, 0
    return {**request, "messages": scrubbed}, count


def blocks_of(content: Any) -> list[dict[str, Any]]:
    """Content as a list of blocks: a string becomes one text block; junk entries are dropped."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        out = []
        for item in content:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                out.append(item)
            elif isinstance(item, str) and item:
                out.append({"type": "text", "text": item})
        return out
    return []


def tool_reference_text(block: dict[str, Any]) -> str:
    """A ``tool_reference`` block (Claude Code's ToolSearch result: the named tool's schema is now loaded)
    as the text every wire that has no such block sends instead; the tool itself is in the request's
    tools by then, callable like any other."""
    return f"Tool loaded: {block.get('tool_name', '')}"


def loaded_tool_names(request: dict[str, Any]) -> set[str]:
    """The tools the conversation has loaded or used: named by a ``tool_reference`` block (Claude Code's
    ToolSearch result), a ``tool_use`` block or ``tool_choice``. A deferred tool is visible from then on."""
    named: set[str] = set()
    for message in request.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                named.add(block["name"])
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                named.update(item["tool_name"] for item in block["content"] if isinstance(item, dict)
                             and item.get("type") == "tool_reference" and isinstance(item.get("tool_name"), str))
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        named.add(choice["name"])
    return named


def visible_tools(request: dict[str, Any]) -> list[Any]:
    """``tools`` as the model may see them: a ``defer_loading: true`` tool is left out until
    :func:`loaded_tool_names` names it, as Anthropic keeps a deferred tool from the model until a tool
    search returns it (Claude Code's ``DeferredToolPlaceholder`` never shows). The other tools, and the
    list itself when nothing is deferred, are returned as they are."""
    tools = request.get("tools")
    if not isinstance(tools, list):
        return []
    if not any(isinstance(t, dict) and t.get("defer_loading") is True for t in tools):
        return tools
    named = loaded_tool_names(request)
    return [t for t in tools if not (isinstance(t, dict) and t.get("defer_loading") is True
                                     and t.get("name") not in named)]


def text_of(content: Any) -> str:
    """Tool-result (or any block) content as plain text; images and binary documents become placeholders."""
    if isinstance(content, str):  # the usual tool result: the text itself, without building a block for it
        return content
    parts = []
    for block in blocks_of(content):
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "tool_reference":
            parts.append(tool_reference_text(block))
        elif kind == "image":
            parts.append("[image]")
        elif kind == "document":
            source = block.get("source") if isinstance(block.get("source"), dict) else {}
            if source.get("type") == "text" and isinstance(source.get("data"), str):
                parts.append(source["data"])
            elif source.get("type") == "content":
                parts.append(text_of(source.get("content")))
            else:
                parts.append("[document]")
        elif kind == "search_result":
            parts.append(str(block.get("title", "")) + "\n" + text_of(block.get("content")))
    return "\n".join(p for p in parts if p)


def _texts(content: Any) -> list[str]:
    parts = []
    for block in blocks_of(content):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            if not is_billing_header(block["text"]) and block["text"].strip():
                parts.append(block["text"])
        elif block.get("type") == "mid_conv_system":
            parts.extend(_texts(block.get("content")))
    return parts


def system_text(request: dict[str, Any]) -> str:
    """The top-level ``system`` plus every ``role: "system"`` message and ``mid_conv_system`` block,
    joined with blank lines, billing header removed. ``cache_control`` is dropped with the blocks."""
    parts = _texts(request.get("system"))
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "system":
            parts.extend(_texts(message.get("content")))
            continue
        content = message.get("content")
        if isinstance(content, list):  # a string holds no mid_conv_system block: nothing to build for it
            for block in content:
                if isinstance(block, dict) and block.get("type") == "mid_conv_system":
                    parts.extend(_texts(block.get("content")))
    return "\n\n".join(parts)


@attrs.frozen
class Turn:
    """One user or assistant turn, consecutive same-role messages merged, system content removed."""

    role: str
    blocks: tuple[dict[str, Any], ...]


def turns(request: dict[str, Any]) -> list[Turn]:
    """The conversation without system messages, same-role runs merged into one turn. Server-tool
    blocks of earlier answers (a web search's ``server_tool_use`` and results) become text blocks
    saying the same: no translated wire has such blocks, and the model keeps what was found.

    Linear in the history: a run of same-role messages is collected in one list and becomes its turn
    once, not re-copied at every message (tens of thousands of them in a long session)."""
    out: list[Turn] = []
    role_of_run: str | None = None
    run: list[dict[str, Any]] = []
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        blocks = [b for b in blocks_of(message.get("content")) if b.get("type") != "mid_conv_system"]
        if role == "assistant":
            blocks = history_as_text(blocks)
        if not blocks:
            continue
        if role == role_of_run:
            run.extend(blocks)
            continue
        if role_of_run is not None:
            out.append(Turn(role_of_run, tuple(run)))
        role_of_run, run = role, blocks
    if role_of_run is not None:
        out.append(Turn(role_of_run, tuple(run)))
    return out


_BUDGET_EFFORT = ((2048, "low"), (8192, "medium"), (32768, "high"))


def thinking_requested(request: dict[str, Any]) -> bool:
    """Whether the client turned thinking on (``enabled`` or ``adaptive``). Without it the Anthropic
    contract has no thinking blocks in the answer, so occ sends none, whatever the upstream thought."""
    thinking = request.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def effort_of(request: dict[str, Any]) -> str | None:
    """The reasoning effort the client asked for: ``output_config.effort`` at the top level, else on
    the latest message that carries one (Claude Code 2.1.331 puts it on a system message: a per-turn
    setting, so the latest wins), else derived from ``thinking.budget_tokens``; ``None`` when thinking
    is off or unspecified."""
    thinking = request.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "disabled":
        return None
    messages = request.get("messages")
    later = [m for m in reversed(messages) if isinstance(m, dict)] if isinstance(messages, list) else []
    for source in [request, *later]:
        config = source.get("output_config")
        if isinstance(config, dict) and isinstance(config.get("effort"), str):
            return config["effort"]
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int):
            for limit, effort in _BUDGET_EFFORT:
                if budget <= limit:
                    return effort
            return "max"
        return "high"
    if isinstance(thinking, dict) and thinking.get("type") == "adaptive":
        return "high"
    return None


#: Anthropic's floor for ``thinking.budget_tokens`` (and the budget must stay below ``max_tokens``).
MIN_THINKING_BUDGET = 1024
#: Anthropic's effort values, lowest first.
EFFORT_ORDER = ("low", "medium", "high", "xhigh", "max")
#: The thinking budget that stands for each effort where an endpoint takes only ``enabled`` with a
#: budget. Chosen so that :func:`effort_of` reads each budget back as its effort (``xhigh`` reads as
#: ``high``: there is no budget rule for it), and ``high`` is Gemini 2.5's documented ceiling.
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 65536}


def budget_for_effort(effort: str | None, max_tokens: Any) -> int | None:
    """The ``enabled`` budget for ``effort`` (``high`` when absent or unknown), held to Anthropic's
    rule 1024 <= budget < max_tokens; None when ``max_tokens`` leaves no room for 1024 (no thinking
    then, rather than a request that cannot succeed)."""
    budget = EFFORT_BUDGETS.get(effort or "high", EFFORT_BUDGETS["high"])
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        if max_tokens - 1 < MIN_THINKING_BUDGET:
            return None
        budget = min(budget, max_tokens - 1)
    return budget


def step_effort(effort: str, accepted: tuple[str, ...]) -> str | None:
    """``effort`` where ``accepted`` takes it, else the highest accepted level below it (``max`` ->
    ``xhigh`` -> ``high``...), else the lowest accepted one; None when nothing is accepted or
    ``effort`` is not an Anthropic value (the endpoint's default is then the honest choice)."""
    if effort in accepted:
        return effort
    if not accepted or effort not in EFFORT_ORDER:
        return None
    rank = EFFORT_ORDER.index(effort)
    below = [level for level in accepted if level in EFFORT_ORDER and EFFORT_ORDER.index(level) < rank]
    if below:
        return max(below, key=EFFORT_ORDER.index)
    return min(accepted, key=lambda level: EFFORT_ORDER.index(level) if level in EFFORT_ORDER else 99)


def clamped_max_tokens(request: dict[str, Any], cap: int | None, label: str,
                       log: Callable[[str], None] | None) -> int | None:
    """The client's ``max_tokens`` held to the model's output cap; a clamp is logged (a silent clamp
    looks like a truncated answer)."""
    value = request.get("max_tokens")
    if not isinstance(value, int):
        return None
    if cap and value > cap:
        if log is not None:
            log(f"max_tokens {value} clamped to {cap} for {label}")
        return cap
    return value

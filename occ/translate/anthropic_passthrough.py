"""Anthropic-native upstreams: forward the client's body faithfully, relay the stream event-aligned.

Request. Only ``model`` is replaced, by parsing the JSON once and setting the key, never by editing
text (the seed's string search missed ``"model": "x"`` with a space and sent the ``claude-*`` alias
upstream). Then the named rules in :data:`RULES` remove what a third-party endpoint is known to
reject; each is a small function that says why; then :func:`fit_body` folds what an endpoint that is
not Anthropic's does not take (mid-conversation system messages, message keys, tool search, cache scope:
docs/passthrough-body.md) and :func:`fit_thinking` puts ``thinking`` and ``output_config.effort`` in the
shape the endpoint takes (docs/thinking.md). The body is re-serialised
only when something changed; thinking signatures, ``cache_control``, unknown fields and key order are kept either way.
Headers: ``anthropic-version`` and an allow-listed ``anthropic-beta`` pass; the client's key never does.

Stream. Each upstream event is re-framed by occ as one whole frame (``event: <type>`` plus the
upstream data line unchanged), so occ's heartbeat can only ever land between events. The upstream
``message_start`` is held until the first content event (commit late): an attempt that fails before
that has written nothing and falls back invisibly. The grammar is checked as it passes (indices
contiguous from 0, one block open, deltas matching their block, tool inputs that are JSON objects);
an upstream that breaks it fails the attempt rather than reaching the client. Sans-IO.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from occ.config.presets import BodyCaps, ThinkingCaps, body_caps, thinking_caps
from occ.core.errors import UpstreamProtocolError
from occ.core.jsonfast import SURROGATE_ESCAPE, JSONDecodeError, dumps, dumps_str, loads, repair_surrogates
from occ.core.scrub import clip
from occ.core.sse import SSEEvent, event_json
from occ.core.upstream_errors import from_anthropic, upstream_failure
from occ.translate.anthropic_events import (
    SIGNATURE_PREFIX,
    AnthropicStreamBuilder,
    Message,
    Usage,
    final_stop_reason,
)
from occ.translate.anthropic_request import (
    MIN_THINKING_BUDGET,
    budget_for_effort,
    effort_of,
    step_effort,
    tool_reference_text,
)
from occ.translate.web_search import history_as_text, is_occ_search_block

if TYPE_CHECKING:
    from occ.config.model import ModelConfig

__all__ = [
    "ALLOWED_BETAS",
    "RULES",
    "AnthropicPassthroughTranslator",
    "build_body",
    "clamp_max_tokens",
    "drop_blank_text",
    "drop_context_management",
    "drop_custom_tools",
    "fit_body",
    "fit_thinking",
    "forward_headers",
    "inline_kimi_tool_schemas",
    "strip_foreign_thinking",
    "translate_response",
]

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"

#: Betas passed on to Anthropic-compatible upstreams. Third-party endpoints answer an unknown beta
#: with a 400, so this is an allow-list of betas that only change *how* a request is served, whose
#: body fields occ forwards unchanged. Left out on purpose: ``claude-code-20250219`` (identifies the
#: first-party client), ``oauth-2025-04-20`` (occ authenticates with an API key, never OAuth) and
#: ``context-management-2025-06-27`` (:func:`drop_context_management` removes its field).
ALLOWED_BETAS = frozenset({
    "interleaved-thinking-2025-05-14",  # thinking between tool calls
    "fine-grained-tool-streaming-2025-05-14",  # tool input streamed without buffering
    "prompt-caching-2024-07-31",  # cache_control breakpoints (generally available; harmless)
    "context-1m-2025-08-07",  # 1M-token window on Zen's claude-* models
    "token-efficient-tools-2025-02-19",
    "output-128k-2025-02-19",
    "effort-2025-11-24",  # output_config.effort
})

#: Replacement for an assistant turn whose only content was occ-minted thinking: Anthropic rejects
#: empty turns and whitespace-only text, so the turn keeps a short, honest marker.
THINKING_OMITTED = "(thinking omitted)"
#: Replacement for a turn whose only content was blank text blocks (see :func:`drop_blank_text`).
BLANK_TURN = "(empty)"


Rule = Callable[[dict[str, Any], "ModelConfig"], bool]


# -- request rules: each returns True when it changed the body ----------------------------------------


def drop_context_management(body: dict[str, Any], model: ModelConfig) -> bool:
    """Remove ``context_management``: third-party Anthropic endpoints (OpenCode Zen included) reject
    the field, and its ``clear_thinking_20251015`` edit is a 400 without thinking on (protocols.md §7
    items 26-27). Claude Code then manages its context itself, as it does on any other upstream."""
    if "context_management" not in body:
        return False
    del body["context_management"]
    return True


def drop_custom_tools(body: dict[str, Any], model: ModelConfig) -> bool:
    """Remove ``"type": "custom"`` from tools. Claude Code sends MCP tools with that type; OpenCode's
    Anthropic route reads any typed tool as a server-tool shorthand and answers 400 "Unknown
    server-tool shorthand" (the seed's sanitizer). An untyped tool with ``input_schema`` *is* a custom
    tool, so nothing is lost. Server tools (versioned types such as ``web_search_20250305``) stay."""
    changed = False
    for tool in _tools(body):
        if tool.get("type") == "custom":
            del tool["type"]
            changed = True
    return changed


def strip_foreign_thinking(body: dict[str, Any], model: ModelConfig) -> bool:
    """Drop assistant thinking blocks whose signature starts with ``occ1.``: occ minted them while
    translating another upstream's reasoning, and a real Anthropic endpoint answers "Invalid
    signature" (protocols.md §7 item 31). A turn that held nothing else keeps a text block
    :data:`THINKING_OMITTED` instead, because an empty turn is a 400 too. Genuine signatures (and
    ``redacted_thinking``) pass untouched."""
    changed = False
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        kept = [block for block in content if not _is_foreign_thinking(block)]
        if len(kept) != len(content):
            message["content"] = kept or [{"type": "text", "text": THINKING_OMITTED}]
            changed = True
    return changed


def _is_foreign_thinking(block: Any) -> bool:
    return (isinstance(block, dict) and block.get("type") == "thinking"
            and isinstance(block.get("signature"), str) and block["signature"].startswith(SIGNATURE_PREFIX))


def drop_blank_text(body: dict[str, Any], model: ModelConfig) -> bool:
    """Remove text blocks with no visible text (``""``, whitespace, null) from the history: the
    Anthropic API answers 400 "text content blocks must be non-empty" / "must contain non-whitespace
    text", and Claude's own answers can hold one beside a tool_use, which the client sends back
    (LiteLLM issue 22930). A turn left with nothing keeps a short marker, since an empty turn is a 400
    too. String content and every other block type pass untouched."""
    changed = False
    messages = body.get("messages")
    for position, message in enumerate(messages if isinstance(messages, list) else ()):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if type(block) is dict and block.get("type") == "text":
                text = block.get("text")
                # fast path: text that starts and ends visible is not blank (no copy, no strip)
                if not (type(text) is str and text and not text[0].isspace() and not text[-1].isspace()) \
                        and _is_blank_text(block):
                    break
        else:
            continue
        # a new message: user messages are shared with the validated request (:func:`_writable`)
        messages[position] = {**message, "content": [block for block in content if not _is_blank_text(block)]
                              or [{"type": "text", "text": BLANK_TURN}]}
        changed = True
    return changed


def search_history_as_text(body: dict[str, Any], model: ModelConfig) -> bool:
    """Earlier turns' web search blocks as text where the upstream could not take them: every one on a
    model that is not Claude (an Anthropic-compatible endpoint has no server tools), and on Claude the
    ones occ minted (their ``encrypted_content`` is not Anthropic's, which answers 400 to it). Text
    blocks lose the citations occ minted (``encrypted_index``) for the same reason."""
    claude = model.model_id.lower().rsplit("/", 1)[-1].startswith("claude")
    changed = False
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or message.get("role") != "assistant":
            continue
        minted = {b.get("tool_use_id") for b in content if is_occ_search_block(b)} - {None}
        out = []
        for block in content:
            if not isinstance(block, dict):
                out.append(block)
                continue
            foreign = not claude or is_occ_search_block(block) or block.get("id") in minted
            if block.get("type") in ("server_tool_use", "web_search_tool_result") and foreign:
                out.extend(history_as_text([block]))
            elif block.get("type") == "text" and "citations" in block and foreign:
                out.append({k: v for k, v in block.items() if k != "citations"})
            else:
                out.append(block)
                continue
            changed = True
        if changed:
            message["content"] = out
    return changed


def inline_kimi_tool_schemas(body: dict[str, Any], model: ModelConfig) -> bool:
    """Kimi models on OpenCode Go's Anthropic route (``kimi*`` on the ``opencode-go`` preset) answer
    any tool carrying an ``input_schema`` key with 400 "function name is invalid", whatever the
    schema or name; a tool with only ``name`` and ``description`` is accepted (protocols.md §7 item
    50, anomalyco/opencode#41120). So the schema moves into the description, as compact JSON after
    an ``Input JSON schema:`` line, and the key is removed: the model still learns the parameters and
    Claude Code still validates the calls it gets back. (The Go preset sends Kimi over chat
    completions, where none of this is needed; this rule covers a ``wire_format: anthropic`` override.)
    """
    if model.provider != "opencode-go" or not model.model_id.lower().startswith("kimi"):
        return False
    changed = False
    for tool in _tools(body):
        if "input_schema" not in tool:
            continue
        schema = tool.pop("input_schema")
        changed = True
        if not _is_empty_schema(schema):
            description = tool.get("description")
            prefix = f"{description}\n\n" if isinstance(description, str) and description else ""
            tool["description"] = f"{prefix}Input JSON schema: {dumps_str(schema)}"
    return changed


def _is_empty_schema(schema: Any) -> bool:
    return not isinstance(schema, dict) or not schema or (
        set(schema) <= {"type", "properties"} and not schema.get("properties"))


def clamp_max_tokens(body: dict[str, Any], model: ModelConfig) -> bool:
    """Clamp ``max_tokens`` to the routed model's cap (``max_tokens`` in its config): routed caps
    apply on passthrough too, since an ask above the model's limit is a 400 upstream (protocols.md §7
    item 49). A thinking ``budget_tokens`` must stay below ``max_tokens``, so it is lowered with it;
    when the cap leaves no room for Anthropic's 1024-token minimum budget, thinking is disabled
    rather than sending a request that cannot succeed. Other routed settings (temperature, top_p,
    ``reasoning_effort``, ``thinking``) are not applied: the client's body is forwarded as it is, its
    thinking and effort only fitted to what the endpoint takes (:func:`fit_thinking`)."""
    cap = model.max_tokens
    value = body.get("max_tokens")
    if not cap or not isinstance(value, int) or isinstance(value, bool) or value <= cap:
        return False
    body["max_tokens"] = cap
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and budget >= cap:
            if cap - 1 >= MIN_THINKING_BUDGET:
                thinking["budget_tokens"] = cap - 1
            else:
                body["thinking"] = {"type": "disabled"}
    return True


def _tools(body: dict[str, Any]) -> Iterable[dict[str, Any]]:
    tools = body.get("tools")
    if isinstance(tools, list):
        yield from (tool for tool in tools if isinstance(tool, dict))


#: Applied in order, each only when it applies; see each function for why.
RULES: tuple[Rule, ...] = (
    drop_context_management,
    drop_custom_tools,
    strip_foreign_thinking,
    drop_blank_text,
    search_history_as_text,
    inline_kimi_tool_schemas,
    clamp_max_tokens,
)


# -- the rest of the body in the shape the endpoint takes (docs/passthrough-body.md) -------------------

#: The marker Claude Code itself wraps system content in when it goes in a user turn (its own fallback
#: when a server rejects ``role: "system"``); the models it drives are told such tags carry system text.
REMINDER_OPEN, REMINDER_CLOSE = "<system-reminder>\n", "\n</system-reminder>"


def fit_body(body: dict[str, Any], caps: BodyCaps) -> list[str]:
    """Put what the endpoint does not take (``caps``, from :func:`occ.config.presets.body_caps`) in a
    form it does; returns what changed, for the request's log line (empty: nothing). One read of the
    conversation finds what there is to do; a body with none of it costs that read only.

    * System messages: a ``role: "system"`` message before the first turn joins the top-level
      ``system`` (the same place, the same authority); a later one becomes ``<system-reminder>`` text at
      its place in the conversation: appended to the user turn before it (after its tool results when it
      follows an assistant turn), so the cached prefix before it stays byte for byte what it was. Block
      keys (``cache_control``) stay on the text. ``mid_conv_system`` blocks are treated the same way.
    * Message-level keys other than ``role``/``content`` are removed; an ``output_config.effort`` among
      them moves to the top level when that has none (the latest wins, as :func:`effort_of` reads it).
    * Tool search: a ``tool_reference`` block becomes the text "Tool loaded: <name>"; a deferred tool
      stays (without ``defer_loading``) once a reference, a call or ``tool_choice`` names it, and is
      left out until then, as Anthropic hides it (Claude Code's placeholder tool never shows).
    * ``cache_control.scope`` is removed.
    """
    notes: list[str] = []
    messages = body.get("messages")
    if not isinstance(messages, list) or (caps.system_messages and caps.tool_search and caps.cache_scope):
        return notes
    fold, mid_conv, references, names, scoped = _scan(body, messages)
    if not caps.tool_search:
        notes.extend(_fit_tool_search(body, messages, references, names))
    if not caps.system_messages and (fold or mid_conv):
        folded, dropped = _fold_system_messages(body, messages, mid_conv)
        if folded:
            notes.append(f"{folded} system message{'s' if folded > 1 else ''} folded into system/user text")
        if dropped:
            notes.append(f"message keys {', '.join(sorted(dropped))} removed")
    if not caps.cache_scope and scoped and _drop_cache_scope(body):
        notes.append("cache_control scope removed")
    return notes


def _scan(body: dict[str, Any], messages: list[Any]) -> tuple[bool, bool, list[tuple[int, int]], set[str], bool]:
    """One read of the body: whether any message needs folding (a system role, a key beyond
    ``role``/``content``) and whether there are ``mid_conv_system`` blocks; where the tool results
    holding ``tool_reference`` blocks are; the tool names calls and references give (as
    :func:`loaded_tool_names`); whether any ``cache_control`` has a ``scope``."""
    fold = mid_conv = scoped = False
    references: list[tuple[int, int]] = []
    names: set[str] = set()
    for m, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        if len(message) > 2 or message.get("role") == "system":
            fold = True
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for b, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if "cache_control" in block and _scoped(block):
                scoped = True
            if kind == "tool_use":
                name = block.get("name")
                if isinstance(name, str):
                    names.add(name)
            elif kind == "tool_result":
                inner = block.get("content")
                if not isinstance(inner, list):
                    continue
                for item in inner:
                    if not isinstance(item, dict):
                        continue
                    if item.get("type") == "tool_reference":
                        if not references or references[-1] != (m, b):
                            references.append((m, b))
                        if isinstance(item.get("tool_name"), str):
                            names.add(item["tool_name"])
                    elif "cache_control" in item and _scoped(item):
                        scoped = True
            elif kind == "mid_conv_system":
                mid_conv = True
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        names.add(choice["name"])
    for key in ("system", "tools"):
        holders = body.get(key)
        if not scoped and isinstance(holders, list):
            scoped = any(isinstance(h, dict) and _scoped(h) for h in holders)
    return fold, mid_conv, references, names, scoped or _scoped(body)


def _scoped(holder: dict[str, Any]) -> bool:
    control = holder.get("cache_control")
    return isinstance(control, dict) and "scope" in control


def _fold_system_messages(body: dict[str, Any], messages: list[Any], mid_conv: bool) -> tuple[int, set[str]]:
    folded = 0
    dropped: set[str] = set()
    lifted: str | None = None
    leading: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # system text waiting for the user turn after an assistant turn
    out: list[Any] = []
    started = False  # a user or assistant turn has been seen
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        if len(message) > 2 or "content" not in message:
            extra = set(message) - {"role", "content"}
            dropped |= extra
            config = message.get("output_config")
            if isinstance(config, dict) and isinstance(config.get("effort"), str):
                lifted = config["effort"]
            message = {k: message[k] for k in ("role", "content") if k in message}
        role = message.get("role")
        if role == "system":
            folded += 1
            if not started:
                leading.extend(_system_blocks(message.get("content"), wrap=False))
            else:
                _place(out, pending, _system_blocks(message.get("content"), wrap=True))
            continue
        started = started or role in ("user", "assistant")
        content = message.get("content")
        if mid_conv and isinstance(content, list) and any(_is_mid_conv(b) for b in content):
            folded += 1
            kept: list[Any] = []
            later: list[dict[str, Any]] = []
            for block in content:
                if _is_mid_conv(block):
                    (kept if role == "user" else later).extend(_system_blocks(block.get("content"), wrap=True))
                else:
                    kept.append(block)
            if kept:  # an assistant turn that held only system text is no turn
                out.append({**message, "content": kept})
            if later:
                _place(out, pending, later)
            continue
        if pending and role == "user":
            message = {**message, "content": _after_results(_content_list(message.get("content")), pending)}
            pending = []
        elif pending:
            out.append({"role": "user", "content": pending})
            pending = []
        out.append(message)
    if pending:
        out.append({"role": "user", "content": pending})
    body["messages"] = out
    if leading:
        body["system"] = [*_content_list(body.get("system")), *leading]
    if lifted is not None:
        config = body.get("output_config")
        if not isinstance(config, dict):
            body["output_config"] = {"effort": lifted}
        elif "effort" not in config:
            body["output_config"] = {**config, "effort": lifted}
    return folded, dropped


def _place(out: list[Any], pending: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
    """System text after the last turn: into that user turn, or held for the next one."""
    last = out[-1] if out else None
    if not pending and isinstance(last, dict) and last.get("role") == "user":
        out[-1] = {**last, "content": [*_content_list(last.get("content")), *blocks]}
    else:
        pending.extend(blocks)


def _after_results(content: list[Any], blocks: list[dict[str, Any]]) -> list[Any]:
    """``blocks`` at the head of a user turn, but after its tool results (which must come first)."""
    head = 0
    while head < len(content) and isinstance(content[head], dict) and content[head].get("type") == "tool_result":
        head += 1
    return [*content[:head], *blocks, *content[head:]]


def _content_list(content: Any) -> list[Any]:
    if isinstance(content, list):
        return list(content)
    if isinstance(content, str) and content:
        return [{"type": "text", "text": content}]
    return []


def _system_blocks(content: Any, *, wrap: bool) -> list[dict[str, Any]]:
    """System content as text blocks (``cache_control`` and other keys kept), in the reminder marker
    when it goes into a user turn; empty text is dropped (an empty block is a 400)."""
    out = []
    for block in _content_list(content):
        if isinstance(block, str):
            block = {"type": "text", "text": block}
        if not isinstance(block, dict):
            continue
        if block.get("type") != "text":
            out.append(block)
            continue
        text = block.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        if wrap and not text.lstrip().startswith("<system-reminder>"):
            block = {**block, "text": REMINDER_OPEN + text + REMINDER_CLOSE}
        out.append(block)
    return out


def _is_mid_conv(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "mid_conv_system"


def _fit_tool_search(body: dict[str, Any], messages: list[Any], references: list[tuple[int, int]],
                     names: set[str]) -> list[str]:
    notes: list[str] = []
    count = 0
    for m, b in references:  # copied on write: the contents are shared with the validated request
        content = list(messages[m]["content"])
        block = content[b]
        count += sum(1 for item in block["content"] if _is_reference(item))
        content[b] = {**block, "content": [{"type": "text", "text": tool_reference_text(item)}
                                           if _is_reference(item) else item for item in block["content"]]}
        messages[m] = {**messages[m], "content": content}
    if count:
        notes.append(f"{count} tool_reference block{'s' if count > 1 else ''} as text")
    tools = body.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "defer_loading" in t for t in tools):
        kept, hidden = [], []
        for tool in tools:  # the rule of visible_tools, with the names already read
            if not isinstance(tool, dict) or "defer_loading" not in tool:
                kept.append(tool)
            elif tool["defer_loading"] is True and tool.get("name") not in names:
                hidden.append(str(tool.get("name")))
            else:
                kept.append({k: v for k, v in tool.items() if k != "defer_loading"})
        if kept:
            body["tools"] = kept
        else:
            del body["tools"]
        notes.append("defer_loading removed" + (f", deferred tools not loaded yet left out: {', '.join(hidden)}"
                                               if hidden else ""))
    return notes


def _is_reference(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "tool_reference"


def _drop_cache_scope(body: dict[str, Any]) -> bool:
    """``scope`` out of every ``cache_control``, copying on write (blocks are shared with the validated
    request): the top level, system blocks, tools, message blocks and tool-result content."""

    def scrub(holder: Any) -> Any:
        if not isinstance(holder, dict):
            return holder
        out = holder
        control = holder.get("cache_control")
        if isinstance(control, dict) and "scope" in control:
            out = {**holder, "cache_control": {k: v for k, v in control.items() if k != "scope"}}
        inner = holder.get("content")
        if isinstance(inner, list):
            scrubbed = [scrub(item) for item in inner]
            if any(a is not b for a, b in zip(scrubbed, inner, strict=True)):
                out = {**out, "content": scrubbed}
        return out

    changed = False
    control = body.get("cache_control")
    if isinstance(control, dict) and "scope" in control:
        body["cache_control"] = {k: v for k, v in control.items() if k != "scope"}
        changed = True
    for key in ("system", "tools", "messages"):
        items = body.get(key)
        if isinstance(items, list):
            scrubbed = [scrub(item) for item in items]
            if any(a is not b for a, b in zip(scrubbed, items, strict=True)):
                body[key] = scrubbed
                changed = True
    return changed


# -- thinking in the shape the endpoint takes (docs/thinking.md) ---------------------------------------


def fit_thinking(body: dict[str, Any], caps: ThinkingCaps) -> tuple[bool, list[str]]:
    """Put ``thinking`` and ``output_config.effort`` in the shape the endpoint takes (``caps``, from
    :func:`occ.config.presets.thinking_caps`); run after :func:`clamp_max_tokens`, since a budget must
    stay below the final ``max_tokens``. Returns whether the body changed and what a user would want
    to know of it (the request log's note; removing an adaptive ``budget_tokens`` is not news).

    * ``adaptive`` endpoints get ``{"type": "adaptive"}`` without ``budget_tokens`` (Claude Code
      2.1.252+ sends ``"budget_tokens": 0`` beside it; Anthropic documents none); a client's
      ``enabled`` budget becomes adaptive with the effort the budget stands for.
    * ``enabled`` endpoints get ``{"type": "enabled", "budget_tokens": N}`` with N from the effort
      asked for (``output_config.effort``, else ``high``), 1024 <= N < max_tokens; when max_tokens
      leaves no room for 1024, no thinking. ``disabled`` becomes no ``thinking`` key (the shape such
      endpoints are known to take; it means the same).
    * ``none`` endpoints get no ``thinking``.
    * Unknown endpoints get the client's shape, minus an adaptive ``budget_tokens``.

    Effort: an endpoint that takes fewer levels gets the nearest one below (``max`` -> ``xhigh`` ->
    ``high``); one that takes none gets no ``effort`` (and no ``output_config`` if nothing else was
    in it). Message-level ``output_config`` (Claude Code 2.1.331) is treated the same way.
    """
    notes: list[str] = []
    changed = False
    requested = effort_of(body)
    shape = caps.shape
    had = "thinking" in body
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if had and kind not in ("enabled", "adaptive", "disabled") and shape is not None:
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
            kind, thinking = "enabled", {"type": "enabled", "budget_tokens": budget}
            body["thinking"] = thinking
        else:
            del body["thinking"]
            return True, _fit_efforts(body, caps, [f"thinking {_show(thinking)} removed: not a thinking setting"])
        changed = True
    max_tokens = body.get("max_tokens")
    if kind == "adaptive" and "budget_tokens" in thinking and shape in (None, "adaptive"):
        body["thinking"] = {k: v for k, v in thinking.items() if k != "budget_tokens"}
        changed = True
    elif shape == "adaptive" and kind == "enabled":
        body["thinking"] = {k: v for k, v in thinking.items() if k != "budget_tokens"} | {"type": "adaptive"}
        notes.append("enabled -> adaptive (the endpoint takes adaptive thinking)")
        if caps.efforts and not _has_effort(body) and requested:
            chosen = step_effort(requested, caps.efforts)
            if chosen:
                config = body.get("output_config")
                body["output_config"] = {**config, "effort": chosen} if isinstance(config, dict) else {"effort": chosen}
                notes[-1] = f"enabled -> adaptive, effort {chosen} (from the budget)"
    elif shape == "enabled" and kind in ("adaptive", "enabled"):
        budget = thinking.get("budget_tokens") if kind == "enabled" else None
        if isinstance(budget, int) and not isinstance(budget, bool):
            fitted = _fit_budget(budget, max_tokens)
        else:
            fitted = budget_for_effort(requested, max_tokens)
        if fitted is None:
            del body["thinking"]
            notes.append(f"thinking removed: max_tokens {max_tokens} leaves no room for the "
                         f"{MIN_THINKING_BUDGET}-token minimum budget")
        elif kind == "adaptive":
            body["thinking"] = {"type": "enabled", "budget_tokens": fitted}
            notes.append(f"adaptive -> enabled, budget_tokens {fitted} (effort {requested or 'high'}; "
                         "the endpoint takes no adaptive thinking)")
        elif fitted != budget:
            body["thinking"] = {**thinking, "budget_tokens": fitted}
            notes.append(f"budget_tokens {budget} -> {fitted} (1024 <= budget < max_tokens)")
    elif shape in ("enabled", "none") and had and (kind == "disabled" or thinking is None):
        del body["thinking"]
        changed = True
    elif shape == "none" and kind in ("adaptive", "enabled"):
        del body["thinking"]
        notes.append(f"thinking {kind} removed (the model has no extended thinking)")
    notes = _fit_efforts(body, caps, notes)
    return changed or bool(notes), notes


def _fit_budget(budget: int, max_tokens: Any) -> int | None:
    fitted = max(budget, MIN_THINKING_BUDGET)
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        if max_tokens - 1 < MIN_THINKING_BUDGET:
            return None
        fitted = min(fitted, max_tokens - 1)
    return fitted


def _has_effort(body: dict[str, Any]) -> bool:
    config = body.get("output_config")
    return isinstance(config, dict) and "effort" in config


def _fit_efforts(body: dict[str, Any], caps: ThinkingCaps, notes: list[str]) -> list[str]:
    """``output_config.effort`` (top level and on messages) as the endpoint takes it."""
    if caps.efforts is None:
        return notes
    holders = [body, *(m for m in body.get("messages") or () if isinstance(m, dict) and "output_config" in m)]
    for holder in holders:
        config = holder.get("output_config")
        if not isinstance(config, dict) or "effort" not in config:
            continue
        asked = config["effort"]
        chosen = step_effort(asked, caps.efforts) if isinstance(asked, str) else None
        if chosen == asked:
            continue
        if chosen is None:
            rest = {k: v for k, v in config.items() if k != "effort"}
            if rest:
                holder["output_config"] = rest
            else:
                del holder["output_config"]
            notes.append(f"effort {_show(asked)} removed (the endpoint takes "
                         f"{'no effort' if not caps.efforts else '/'.join(caps.efforts)})")
        else:
            holder["output_config"] = {**config, "effort": chosen}
            notes.append(f"effort {asked} -> {chosen} (the endpoint takes {'/'.join(caps.efforts)})")
    return notes


def _show(value: Any) -> str:
    return clip(dumps_str(value), 60) if not isinstance(value, str) else value


def build_body(raw_body: bytes, request: dict[str, Any], model: ModelConfig,
               log: Callable[[str], None] | None = None) -> bytes:
    """The client's body for ``model``: top-level ``model`` replaced, :data:`RULES` applied, then
    :func:`fit_thinking` (whose notes go to ``log``: the request's log line).

    ``raw_body`` is what is sent when nothing changed: the bytes the client sent are the most faithful
    request there is. ``request`` is those bytes as validation parsed them (nothing on the way mutates
    it), so they are not parsed a second time (a 30 MB history costs that parse once); the rules work on
    :func:`_writable`, a copy whose containers that a rule may write to are its own, because ``request``
    is still read by the other attempts of the chain. A ``request`` that is not an object with a string
    ``model`` sends ``raw_body`` as is; an empty one means the caller has only the bytes, which are then
    parsed here.
    """
    if not request:
        try:
            request = json.loads(raw_body)  # not orjson: integers beyond 64 bits stay exact
        except (ValueError, RecursionError):
            return raw_body
    if not isinstance(request, dict) or not isinstance(request.get("model"), str):
        return raw_body
    body = _writable(request)
    surrogates = SURROGATE_ESCAPE.search(raw_body) is not None
    if surrogates:  # perhaps a lone one, which no upstream takes: send the repaired text
        try:
            body = repair_surrogates(body)
        except RecursionError:
            return raw_body
    changed = body["model"] != model.model_id or surrogates
    body["model"] = model.model_id
    for rule in RULES:
        changed = rule(body, model) or changed
    shape = body_caps(model)
    reshaped = fit_body(body, shape)
    if reshaped and log is not None:
        log(f"body for {model.label} ({shape.source}): {'; '.join(reshaped)}")
    caps = thinking_caps(model)
    fitted, notes = fit_thinking(body, caps)
    if notes and log is not None:
        log(f"thinking for {model.label} ({caps.source}): {'; '.join(notes)}")
    return _serialise(body) if changed or fitted or reshaped else raw_body


def _writable(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``request`` that :data:`RULES` and :func:`fit_thinking` may change in place: the top level,
    the tool list and each tool, the message list and each assistant message (and any message with an
    ``output_config``), and ``thinking`` are new containers; everything below them (contents, blocks,
    schemas), which the rules only read or replace whole, is shared. A rule that writes anywhere else
    must widen this copy (``tests/translate/test_anthropic_passthrough.py`` checks that building never
    changes the request)."""
    body = dict(request)
    tools = body.get("tools")
    if isinstance(tools, list):
        body["tools"] = [dict(tool) if isinstance(tool, dict) else tool for tool in tools]
    messages = body.get("messages")
    if isinstance(messages, list):
        body["messages"] = [
            dict(message) if isinstance(message, dict) and (message.get("role") == "assistant"
                                                            or "output_config" in message) else message
            for message in messages]
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        body["thinking"] = dict(thinking)
    return body


def _serialise(body: dict[str, Any]) -> bytes:
    """Compact JSON in the client's key order: orjson, or the standard library for what orjson
    cannot write (integers beyond 64 bits, kept exact by :func:`loads_request`)."""
    try:
        return dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def forward_headers(client_headers: Mapping[str, str] | Iterable[tuple[str, str]],
                    also: frozenset[str] = frozenset()) -> dict[str, str]:
    """The Anthropic headers the upstream needs, from the client's.

    ``anthropic-version`` passes (``2023-06-01`` when absent); ``anthropic-beta`` values, from one
    comma list or repeated headers, are de-duplicated and filtered through :data:`ALLOWED_BETAS` plus
    ``also`` (the betas of fields this endpoint is sent as they are: :attr:`BodyCaps.betas`).
    Nothing else is copied: above all never ``x-api-key`` or ``authorization``, since occ sends its
    own provider key. Header names match case-insensitively.
    """
    pairs = client_headers.items() if isinstance(client_headers, Mapping) else client_headers
    version = ""
    betas: list[str] = []
    for name, value in pairs:
        lname = name.lower()
        if lname == "anthropic-version" and not version:
            version = value.strip()
        elif lname == "anthropic-beta":
            betas.extend(b.strip() for b in value.split(","))
    headers = {"anthropic-version": version or DEFAULT_ANTHROPIC_VERSION}
    allowed = [b for b in dict.fromkeys(betas) if b in ALLOWED_BETAS or b in also]
    if allowed:
        headers["anthropic-beta"] = ",".join(allowed)
    return headers


# -- responses ---------------------------------------------------------------------------------------

def translate_response(body: Any, *, message_id: str, model_name: str, input_estimate: int) -> dict[str, Any]:
    """A non-streaming upstream message, returned nearly verbatim.

    Changed: ``model`` is the name the client asked for (as Anthropic echoes it); empty and
    whitespace-only text blocks are dropped (the client would send them back and draw a 400,
    protocols.md §7 item 29); a missing ``id``/``usage``/``stop_reason`` is filled in (``usage``
    with the input estimate, as is an all-zero input count). Everything else, signatures included, is
    the upstream's.

    Raises:
        UpstreamStatus: the upstream answered with an Anthropic error body.
        UpstreamProtocolError: the body is not an Anthropic message.
    """
    if isinstance(body, dict) and body.get("type") == "error":
        raise upstream_failure(from_anthropic(body))
    if (not isinstance(body, dict) or (body.get("type") or "message") != "message"
            or not isinstance(body.get("content"), list)):
        raise UpstreamProtocolError("upstream answered with something that is not an Anthropic message")
    out = Message(body)
    out["model"] = model_name
    out["content"] = [block for block in body["content"] if not _is_blank_text(block)]
    if not isinstance(out.get("id"), str) or not out["id"]:
        out["id"] = message_id
    usage = out.get("usage")
    if not isinstance(usage, dict):
        out["usage"] = Usage.estimate(max(1, input_estimate)).as_dict()
        out.usage_estimated = True
    elif not any(isinstance(usage.get(k), int) and usage[k] > 0 for k in
                 ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")):
        # all-zero input (some third-party endpoints): the estimate, as the stream's message_start has
        out["usage"] = {**usage, "input_tokens": max(1, input_estimate)}
        out.usage_estimated = True
    if out.get("stop_reason") is None:
        has_tool = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in out["content"])
        out["stop_reason"] = final_stop_reason(None, has_tool_use=has_tool)
    return out


def _is_blank_text(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and not str(block.get("text") or "").strip()


# -- the stream relay --------------------------------------------------------------------------------

#: Which block types each known delta type may land in (the SDKs silently drop a mismatch).
_DELTA_BLOCKS = {
    "text_delta": frozenset({"text"}),
    "citations_delta": frozenset({"text"}),
    "thinking_delta": frozenset({"thinking"}),
    "signature_delta": frozenset({"thinking"}),
    "input_json_delta": frozenset({"tool_use", "server_tool_use", "mcp_tool_use"}),
}
_KNOWN_BLOCKS = frozenset({"text", "thinking", "redacted_thinking", "tool_use", "server_tool_use",
                           "mcp_tool_use"})
_STREAM_EVENTS = frozenset({"message_start", "content_block_start", "content_block_delta",
                            "content_block_stop", "message_delta", "message_stop", "ping"})


class _Block:
    """The upstream block that is open: its kind, and what the relay must hold for it."""

    __slots__ = ("args", "held", "index", "kind", "name")

    def __init__(self, index: int, kind: str, name: str) -> None:
        self.index = index
        self.kind = kind
        self.name = name
        self.args: list[str] | None = [] if kind == "tool_use" else None
        #: frames of a text block with no visible text yet; None once it has been released
        self.held: list[tuple[str, str, dict[str, Any]]] | None = [] if kind == "text" else None


class AnthropicPassthroughTranslator:
    """Relay an upstream Anthropic stream through the builder, one whole event at a time.

    What reaches the client is the upstream's events with their data lines unchanged, except:
    ``message_start`` is held until the first content event, then sent with ``model`` set to the
    name the client asked for (and an input estimate when the upstream's usage is all zero); upstream
    pings before that point are dropped (occ sends its own); a text block with no visible text
    (empty, or whitespace only, which Claude Code would send back and Anthropic rejects) is dropped,
    and later block indices are shifted down to stay contiguous (those events are re-serialised);
    event types the grammar does not know are dropped (the SDKs skip them anyway); content the upstream
    delivered inside ``message_start`` (deferred tool calls) goes out as proper block events first, and a
    ``message_stop`` without a ``message_delta`` gets one, with the stop reason and usage of the
    ``message_start``, so a client sees what the API meant.

    Raises (from :meth:`feed`): :class:`UpstreamStatus` for an upstream ``error`` event,
    :class:`UpstreamProtocolError` when the upstream breaks the grammar; (from :meth:`close`)
    :class:`UpstreamProtocolError` when the stream ends before ``message_stop``.
    """

    def __init__(self, builder: AnthropicStreamBuilder) -> None:
        self._builder = builder
        self._start: dict[str, Any] | None = None
        self._block: _Block | None = None
        self._next = 0  # the next upstream block index
        self._dropped = 0  # blocks dropped so far: upstream index - client index
        self._delta_seen = False
        self._bad_tool: str | None = None
        self._usage: dict[str, int] = {}
        #: blocks the upstream delivered whole inside ``message_start`` (deferred tool calls), to be
        #: relayed as proper block events before anything else
        self._start_blocks: list[dict[str, Any]] = []
        self._start_emitted = 0  # how many blocks those became for the client

    @property
    def done(self) -> bool:
        return self._builder.finished

    def feed(self, event: SSEEvent) -> None:
        if self.done:
            return
        data = event_json(event)
        if not isinstance(data, dict):
            raise UpstreamProtocolError(f"upstream sent an event that is not a JSON object: {clip(event.data, 80)!r}")
        kind = data.get("type")
        if not isinstance(kind, str):
            kind = event.event
        if kind == "error" or event.event == "error":
            raise upstream_failure(from_anthropic(data))
        if kind not in _STREAM_EVENTS:
            return
        if kind == "ping":
            if self._builder.committed:
                self._emit(kind, event.data, data)
            return
        if kind == "message_start":
            self._on_message_start(data)
            return
        if self._start is None:
            raise UpstreamProtocolError(f"upstream sent {kind} before message_start")
        if self._start_blocks:
            self._relay_start_blocks()
        if kind == "content_block_start":
            self._on_block_start(event.data, data)
        elif kind == "content_block_delta":
            self._on_block_delta(event.data, data)
        elif kind == "content_block_stop":
            self._on_block_stop(event.data, data)
        elif kind == "message_delta":
            self._on_message_delta(event.data, data)
        else:
            if self._block is not None:
                raise UpstreamProtocolError(f"upstream sent message_stop while block {self._block.index} is open")
            if not self._delta_seen:
                self._synthesize_message_delta()
            self._emit(kind, event.data, data, finishes=True)

    def close(self) -> None:
        """EOF: a stream without ``message_stop`` is truncated, never a success (seed §8 item 2)."""
        if not self.done:
            raise UpstreamProtocolError("upstream stream ended without message_stop")

    # -- events ---------------------------------------------------------------------------------------

    def _on_message_start(self, data: dict[str, Any]) -> None:
        message = data.get("message")
        if self._start is not None or self._builder.committed:
            raise UpstreamProtocolError("upstream sent a second message_start")
        if not isinstance(message, dict):
            raise UpstreamProtocolError("upstream sent a message_start without a message")
        self._start = message
        self._merge_usage(message.get("usage"))
        content = message.get("content")
        if isinstance(content, list):
            self._start_blocks = [b for b in content if isinstance(b, dict) and isinstance(b.get("type"), str)]

    def _on_block_start(self, text: str, data: dict[str, Any]) -> None:
        index = data.get("index")
        block = data.get("content_block")
        if self._delta_seen:
            raise UpstreamProtocolError("upstream opened a content block after message_delta")
        if self._block is not None:
            raise UpstreamProtocolError(f"upstream opened block {index} while {self._block.index} is open")
        if self._start_emitted and self._next == 0 and index == self._start_emitted:
            # the upstream numbers its block events after the blocks of its message_start
            self._next, self._dropped = index, self._dropped + self._start_emitted
        if index != self._next or isinstance(index, bool):
            raise UpstreamProtocolError(f"upstream opened block {index}, expected {self._next}")
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise UpstreamProtocolError(f"upstream opened block {index} without a content_block type")
        self._next += 1
        name = block.get("name") if isinstance(block.get("name"), str) else "?"
        self._block = _Block(index, block["type"], name)
        if self._block.held is not None and not _visible(block.get("text")):
            self._block.held.append(("content_block_start", text, data))
            return
        self._block.held = None
        self._emit("content_block_start", text, data, tool_use=block["type"] == "tool_use")

    def _on_block_delta(self, text: str, data: dict[str, Any]) -> None:
        block = self._open_block(data, "delta")
        delta = data.get("delta")
        if not isinstance(delta, dict) or not isinstance(delta.get("type"), str):
            raise UpstreamProtocolError(f"upstream sent a delta for block {block.index} without a type")
        dtype = delta["type"]
        allowed = _DELTA_BLOCKS.get(dtype)
        if allowed is not None and block.kind in _KNOWN_BLOCKS and block.kind not in allowed:
            raise UpstreamProtocolError(f"upstream sent {dtype} into a {block.kind} block")
        written = delta.get(_DELTA_TEXT.get(dtype, ""))  # what the estimate of a cut stream counts
        if isinstance(written, str):
            self._builder.output_chars += len(written)
        if block.args is not None and dtype == "input_json_delta":
            fragment = delta.get("partial_json")
            if not isinstance(fragment, str):
                raise UpstreamProtocolError("upstream sent input_json_delta without partial_json")
            block.args.append(fragment)
        if block.held is not None:
            block.held.append(("content_block_delta", text, data))
            if dtype != "text_delta" or not _visible(delta.get("text")):
                return
            self._release(block)
            return
        self._emit("content_block_delta", text, data)

    def _on_block_stop(self, text: str, data: dict[str, Any]) -> None:
        block = self._open_block(data, "stop")
        self._block = None
        if block.held is not None:
            self._dropped += 1  # no visible text: the block never reaches the client
            return
        if block.args is not None and self._bad_tool is None and not _is_object_json("".join(block.args)):
            self._bad_tool = block.name
        self._emit("content_block_stop", text, data)

    def _on_message_delta(self, text: str, data: dict[str, Any]) -> None:
        if self._block is not None:
            raise UpstreamProtocolError(f"upstream sent message_delta while block {self._block.index} is open")
        self._delta_seen = True
        delta = data.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if self._bad_tool is not None and stop_reason != "max_tokens":
            raise UpstreamProtocolError(f"upstream tool call {self._bad_tool!r}: input is not a JSON object")
        self._merge_usage(data.get("usage"))
        usage = self._final_usage()
        delta_usage = data.get("usage")
        if usage.estimated and isinstance(delta_usage, dict) and delta_usage.get("input_tokens") == 0:
            # an all-zero input count would overwrite message_start's estimate in the client's accumulator
            data = {**data, "usage": {**delta_usage, "input_tokens": usage.input_tokens}}
            text = dumps_str(data)
        self._emit("message_delta", text, data,
                   stop_reason=stop_reason if isinstance(stop_reason, str) else None, usage=usage)

    def _relay_start_blocks(self) -> None:
        """Content the upstream carried in ``message_start`` goes out as the block events the API
        meant: start (empty), one delta with the whole content, stop. Blank text is dropped, as in
        the stream. Later upstream blocks are shifted after these."""
        blocks, self._start_blocks = self._start_blocks, []
        for block in blocks:
            if _is_blank_text(block):
                continue
            index = self._start_emitted - self._dropped
            for name, data in _block_events(index, block):
                self._emit(name, dumps_str(data), data, tool_use=name == "content_block_start"
                           and block["type"] == "tool_use")
            if block["type"] == "tool_use" and block.get("input") is not None and not isinstance(block["input"], dict):
                self._bad_tool = self._bad_tool or str(block.get("name") or "?")
            self._start_emitted += 1
        self._dropped -= self._start_emitted

    def _synthesize_message_delta(self) -> None:
        """``message_stop`` with no ``message_delta`` (content delivered in ``message_start``): the
        client still gets the one ``message_delta`` that carries stop reason and usage, taken from the
        ``message_start``."""
        start = self._start or {}
        stop = start.get("stop_reason") if isinstance(start.get("stop_reason"), str) else None
        stop = final_stop_reason(stop, has_tool_use=bool(self._builder.tool_use_count))
        if self._bad_tool is not None and stop != "max_tokens":
            raise UpstreamProtocolError(f"upstream tool call {self._bad_tool!r}: input is not a JSON object")
        sequence = start.get("stop_sequence") if stop == "stop_sequence" else None
        usage = self._final_usage()
        data = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": sequence},
                "usage": usage.as_dict()}
        self._delta_seen = True
        self._emit("message_delta", dumps_str(data), data, stop_reason=stop, usage=usage)

    # -- helpers --------------------------------------------------------------------------------------

    def _open_block(self, data: dict[str, Any], what: str) -> _Block:
        index = data.get("index")
        if self._block is None or index != self._block.index or isinstance(index, bool):
            open_index = None if self._block is None else self._block.index
            raise UpstreamProtocolError(f"upstream sent a {what} for block {index}, open is {open_index}")
        return self._block

    def _release(self, block: _Block) -> None:
        """The held text block has visible text: send everything it held."""
        held, block.held = block.held or [], None
        for name, text, data in held:
            self._emit(name, text, data)

    def _emit(self, name: str, text: str, data: dict[str, Any], *, tool_use: bool = False,
              stop_reason: str | None = None, usage: Usage | None = None, finishes: bool = False) -> None:
        if not self._builder.committed:
            self._builder.relay_message_start(self._start_frame())
        if self._dropped and isinstance(data.get("index"), int):
            text = dumps_str({**data, "index": data["index"] - self._dropped})
        elif "\n" in text:
            text = dumps_str(data)  # multi-line data: one line, or the framing would break
        self._builder.relay_frame(b"event: " + name.encode() + b"\ndata: " + text.encode() + b"\n\n",
                                  tool_use=tool_use, stop_reason=stop_reason, usage=usage, finishes=finishes)

    def _start_frame(self) -> bytes:
        message = dict(self._start or {})
        message["model"] = self._builder.model
        if not isinstance(message.get("id"), str) or not message["id"].startswith("msg_"):
            message["id"] = self._builder.message_id
        message["content"] = []
        usage = dict(message["usage"]) if isinstance(message.get("usage"), dict) else {}
        for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            if not isinstance(usage.get(key), int):
                usage[key] = 0
        if not (usage["input_tokens"] or usage["cache_read_input_tokens"] or usage["cache_creation_input_tokens"]):
            usage["input_tokens"] = self._builder.input_estimate
        message["usage"] = usage
        return b'event: message_start\ndata: {"type":"message_start","message":' + dumps(message) + b"}\n\n"

    def _merge_usage(self, usage: Any) -> None:
        """``message_delta`` usage is cumulative and overwrites (as the SDKs do), field by field."""
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)})
            self._builder.reported = self._final_usage()

    def _final_usage(self) -> Usage:
        u = self._usage
        input_tokens = u.get("input_tokens", 0)
        estimated = not (input_tokens or u.get("cache_read_input_tokens") or u.get("cache_creation_input_tokens"))
        if estimated:
            input_tokens = self._builder.input_estimate
        return Usage(input_tokens, u.get("output_tokens", 0), u.get("cache_read_input_tokens", 0),
                     u.get("cache_creation_input_tokens", 0), estimated=estimated)


#: the field of each delta type that carries content the model wrote
_DELTA_TEXT = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}

#: What an empty block of each streamed kind looks like in its ``content_block_start``.
_EMPTY_START = {"text": {"type": "text", "text": ""},
                "thinking": {"type": "thinking", "thinking": "", "signature": ""}}
_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The start/delta/stop events that deliver the whole ``block`` at ``index``."""
    kind = block["type"]
    events: list[tuple[str, dict[str, Any]]] = []

    def delta(payload: dict[str, Any]) -> None:
        events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": payload}))

    if kind == "text":
        start = {**block, "text": ""}
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        delta({"type": "text_delta", "text": str(block.get("text") or "")})
    elif kind == "thinking":
        start = {**block, "thinking": "", "signature": ""}
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        if block.get("thinking"):
            delta({"type": "thinking_delta", "thinking": str(block["thinking"])})
        delta({"type": "signature_delta", "signature": str(block.get("signature") or "")})
    elif kind in _INPUT_BLOCKS:
        start = {**block, "input": {}}
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        value = block.get("input")
        if isinstance(value, dict) and value:
            delta({"type": "input_json_delta", "partial_json": dumps_str(value)})
    else:  # redacted_thinking, server tool results...: whole in their start, as the API sends them
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _visible(text: Any) -> bool:
    return isinstance(text, str) and bool(text.strip())


def _is_object_json(text: str) -> bool:
    """Tool input fragments must add up to a JSON object (no fragments: the start's ``{}`` stands)."""
    if not text.strip():
        return True
    try:
        return isinstance(loads(text), dict)
    except JSONDecodeError:
        return False

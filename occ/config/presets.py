"""Which wire protocol a model speaks, where its endpoint is, and how to authenticate.

The OpenCode presets know which model ids use which endpoint (the seed's table, seed-system.md §4);
an explicit ``wire_format`` on the model always wins. Sans-IO.
"""

from __future__ import annotations

import functools
import re

import attrs

from occ.config.model import ModelConfig, Price, ProviderConfig
from occ.config.price_catalog import CATALOG

__all__ = ["GO_ANTHROPIC_MODELS", "PRESETS", "PRESET_PRICES", "BodyCaps", "ThinkingCaps", "auth_headers", "body_caps",
           "claude_body_caps", "claude_thinking_caps", "endpoint_url", "resolve_protocol", "thinking_caps",
           "url_field"]

PRESETS: dict[str, dict[str, str]] = {
    "opencode-go": {
        "base_url": "https://opencode.ai/zen/go/v1/chat/completions",
        "anthropic_base_url": "https://opencode.ai/zen/go/v1/messages",
    },
    "opencode-zen": {
        "base_url": "https://opencode.ai/zen/v1/chat/completions",
        "anthropic_base_url": "https://opencode.ai/zen/v1/messages",
        "responses_base_url": "https://opencode.ai/zen/v1/responses",
        "gemini_base_url": "https://opencode.ai/zen/v1/models",
    },
}
_PRESET_KEYS = {"opencode_go": "opencode-go", "opencode_zen": "opencode-zen"}

#: Published prices of preset models, USD per million tokens, by model label: the models.dev
#: catalog's (``price_catalog.py``; source and date in ``preset_prices.json``). A preset model the
#: catalog does not list has no price (no cost recorded, never a cost of 0); ``prices`` in the config
#: overrides any figure.
PRESET_PRICES: dict[str, Price] = {label: entry.price() for label, entry in CATALOG.items()}


#: OpenCode Go models served on the Anthropic Messages endpoint; every other Go model is chat.
GO_ANTHROPIC_MODELS = frozenset({
    "minimax-m2.5", "minimax-m2.7", "minimax-m3", "qwen3.5-plus", "qwen3.6-plus", "qwen3.7-plus", "qwen3.7-max",
})



# -- thinking: which request shape each Anthropic-wire endpoint takes (docs/thinking.md) ---------------


@attrs.frozen
class ThinkingCaps:
    """What an Anthropic-wire endpoint takes of ``thinking`` and ``output_config.effort``.

    ``shape``: ``adaptive``, ``enabled`` (a budget only) or ``none``; None: unknown, the client's
    shape is forwarded (only an adaptive ``budget_tokens`` is removed, which no endpoint takes).
    ``efforts``: the effort values it takes, lowest first; ``()``: none; None: unknown, as sent.
    ``source``: where this came from, for ``occ route`` and the docs.
    """

    shape: str | None
    efforts: tuple[str, ...] | None
    source: str


#: OpenCode's gateway (Go and Zen alike) answers 400 to ``{"type": "adaptive"}`` on its Messages
#: route for the open models it serves there (MiniMax, Qwen); ``{"type": "enabled", "budget_tokens":
#: N}`` or no thinking succeed (routatic/proxy#171). Effort goes into the budget instead, so
#: ``output_config.effort`` is not sent.
OPENCODE_OPEN_MODEL_CAPS = ThinkingCaps("enabled", (), "OpenCode gateway: no adaptive thinking")
_UNKNOWN_CAPS = ThinkingCaps(None, None, "unknown endpoint: the client's shape")

_CLAUDE = re.compile(r"claude-(?:(?P<family>[a-z]+)-)?(?P<major>\d)(?:[-.](?P<minor>\d{1,2})(?!\d))?"
                     r"(?:-(?P<family_after>[a-z]+))?")
_LOW_TO_HIGH = ("low", "medium", "high")


@functools.lru_cache(maxsize=512)
def claude_thinking_caps(model_id: str) -> ThinkingCaps | None:
    """The thinking a Claude model takes, from its id (``claude-opus-4-8``, ``claude-sonnet-4-5-20250929``,
    ``claude-3-7-sonnet-…``, ``anthropic/claude-…``); None for a model id that is not Claude's.

    Anthropic's published rules: adaptive on Claude 4.6 and later (the only shape on Opus 4.7 and
    later); ``enabled`` with a budget before that, from Claude 3.7 Sonnet; no thinking before 3.7.
    ``effort`` on Opus 4.5 and Claude 4.6+; ``max`` on Opus 4.6+, ``xhigh`` on Opus 4.7+. Sonnet,
    Haiku and newer families are held to what is documented for all of them: a ``max`` or ``xhigh``
    there steps down to ``high`` rather than risk a 400 (``effort_levels`` on the model overrides it).
    """
    found = _CLAUDE.search(model_id.lower())
    if found is None:
        return None
    family = found["family"] or found["family_after"] or ""
    version = (int(found["major"]), int(found["minor"] or 0))
    if version >= (4, 6):
        efforts = _LOW_TO_HIGH
        if family == "opus":
            efforts = (*efforts, "xhigh", "max") if version >= (4, 7) else (*efforts, "max")
        return ThinkingCaps("adaptive", efforts, f"Claude {version[0]}.{version[1]}: adaptive thinking")
    if version >= (3, 7):
        efforts = _LOW_TO_HIGH if family == "opus" and version >= (4, 5) else ()
        return ThinkingCaps("enabled", efforts, f"Claude {version[0]}.{version[1]}: thinking with a budget")
    return ThinkingCaps("none", (), f"Claude {version[0]}.{version[1]}: no extended thinking")


def thinking_caps(model: ModelConfig) -> ThinkingCaps:
    """The model's own ``thinking_shape``/``effort_levels`` first, then the preset's table (by
    provider name, as :func:`resolve_protocol` by preset: presets are named for themselves), then the
    Claude rules for a ``claude-*`` id anywhere, else unknown."""
    if model.provider in PRESETS:
        table = claude_thinking_caps(model.model_id) if model.model_id.lower().startswith("claude-") else None
        base = table or OPENCODE_OPEN_MODEL_CAPS
    else:
        base = claude_thinking_caps(model.model_id) or _UNKNOWN_CAPS
    if model.thinking_shape is None and model.effort_levels is None:
        return base
    return ThinkingCaps(model.thinking_shape if model.thinking_shape is not None else base.shape,
                        model.effort_levels if model.effort_levels is not None else base.efforts,
                        "the model's config")


# -- the rest of Claude Code's body: which newer fields each Anthropic-wire endpoint takes -----------------
# (docs/passthrough-body.md)


@attrs.frozen
class BodyCaps:
    """Which of the Messages API's newer request fields an Anthropic-wire endpoint takes.

    ``system_messages``: ``role: "system"`` entries in ``messages`` (and ``mid_conv_system`` blocks),
    with the message-level keys that ride on them (``output_config`` on a message: Claude Code 2.1.331's
    per-turn control). ``tool_search``: tools with ``defer_loading`` and ``tool_reference`` blocks in
    tool results. ``cache_scope``: ``scope`` in ``cache_control``. What an endpoint does not take, occ
    folds or converts (:func:`occ.translate.anthropic_passthrough.fit_body`). ``source``: why, for the
    log line and the docs.
    """

    system_messages: bool
    tool_search: bool
    cache_scope: bool
    source: str

    @property
    def betas(self) -> frozenset[str]:
        """The client's ``anthropic-beta`` values that gate fields this endpoint is sent as they are:
        forwarded on top of the passthrough's allow-list, never added when the client did not send them."""
        out = set()
        if self.system_messages:
            out |= {"mid-conversation-system-2026-04-07", "per-turn-control-2026-07-01"}
        if self.tool_search:
            out.add("advanced-tool-use-2025-11-20")
        if self.cache_scope:
            out.add("prompt-caching-scope-2026-01-05")
        return frozenset(out)


#: What every Anthropic-compatible endpoint that is not Anthropic's takes: none of it. MiniMax's own
#: Anthropic endpoint answers ``role: "system"`` with "invalid message role: system (2013)"
#: (MiniMax-AI/MiniMax-M2.7#43), Qwen's with "unknown variant `system`, expected `user` or `assistant`"
#: (QwenLM/Qwen#2244); tool search is Anthropic's (Claude Code turns it off for other base URLs unless
#: told the proxy "forwards tool_reference blocks").
PORTABLE_BODY = BodyCaps(False, False, False, "not Anthropic: the portable body")
_NATIVE_BODY = BodyCaps(True, True, True, "the model's config: native")


@functools.lru_cache(maxsize=512)
def claude_body_caps(model_id: str) -> BodyCaps | None:
    """What a Claude model takes, from its id; None for an id that is not Claude's. The rules are Claude
    Code's own (2.1.197): mid-conversation system messages on Claude 4.8 and later (it turns them off for
    every Claude 3, Opus 4-4.7, Sonnet 4-4.6 and Haiku 4.5); ``tool_reference`` blocks on "Claude Sonnet 4+,
    Opus 4+, Haiku 4.5+"; cache scope everywhere (it sends the scope beta even to Claude 3.5 Haiku)."""
    found = _CLAUDE.search(model_id.lower())
    if found is None:
        return None
    family = found["family"] or found["family_after"] or ""
    version = (int(found["major"]), int(found["minor"] or 0))
    system = version >= (4, 8)
    search = version >= (4, 0) and not (family == "haiku" and version < (4, 5))
    label = f"Claude {version[0]}.{version[1]}"
    return BodyCaps(system, search, True, f"{label}: " + (
        "Anthropic's body" if system and search else
        f"no {'mid-conversation system messages' if not system else 'tool search'}" if system or search else
        "no mid-conversation system messages, no tool search"))


def body_caps(model: ModelConfig) -> BodyCaps:
    """The model's ``anthropic_body`` first (``native``: as sent; ``portable``: folded), then the Claude
    rules for a ``claude-*`` id (on a preset only for ids that begin so, as :func:`thinking_caps`), else
    the portable body: an endpoint that is not Anthropic's is not assumed to take Anthropic's newest fields."""
    if model.anthropic_body == "native":
        return _NATIVE_BODY
    if model.anthropic_body == "portable":
        return BodyCaps(False, False, False, "the model's config: portable")
    if model.provider in PRESETS and not model.model_id.lower().startswith("claude-"):
        return PORTABLE_BODY
    return claude_body_caps(model.model_id) or PORTABLE_BODY


_URL_FIELDS = {
    "openai": "base_url",
    "anthropic": "anthropic_base_url",
    "responses": "responses_base_url",
    "gemini": "gemini_base_url",
}


def url_field(protocol: str) -> str:
    return _URL_FIELDS[protocol]


def resolve_protocol(model: ModelConfig, provider: ProviderConfig) -> str:
    """Explicit ``wire_format``, else the preset's table, else the provider's ``protocol``, else chat."""
    if model.wire_format:
        return model.wire_format
    model_id = model.model_id.lower()
    if provider.preset == "opencode-go":
        return "anthropic" if model_id in GO_ANTHROPIC_MODELS else "openai"
    if provider.preset == "opencode-zen":
        if model_id.startswith(("claude-", "qwen")):
            return "openai" if model.anthropic_tools_disabled else "anthropic"
        if model_id.startswith("gemini-"):
            return "gemini"
        if model_id.startswith("gpt-"):
            return "responses"
        return "openai"
    return provider.protocol or "openai"


def endpoint_url(provider: ProviderConfig, protocol: str, model_id: str, *, stream: bool) -> str:
    base = getattr(provider, url_field(protocol))
    if not base:
        raise ValueError(f"provider {provider.name} has no {url_field(protocol)}")
    if protocol == "gemini":
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{base.rstrip('/')}/{model_id}:{method}"
    return base


def auth_headers(provider: ProviderConfig, protocol: str, key: str) -> dict[str, str]:
    """The key in the header(s) each protocol expects, then the provider's own headers."""
    if protocol == "anthropic":
        headers = {"authorization": f"Bearer {key}", "x-api-key": key}
    elif protocol == "gemini":
        headers = {"x-goog-api-key": key}
        if provider.preset is not None:
            headers["authorization"] = f"Bearer {key}"
    else:
        headers = {"authorization": f"Bearer {key}"}
    headers.update({k.lower(): v for k, v in provider.headers.items()})
    return headers

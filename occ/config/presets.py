"""Which wire protocol a model speaks, where its endpoint is, and how to authenticate.

The OpenCode presets know which model ids use which endpoint (the seed's table, seed-system.md §4);
an explicit ``wire_format`` on the model always wins. Sans-IO.
"""

from __future__ import annotations

from occ.config.model import ModelConfig, Price, ProviderConfig

__all__ = ["GO_ANTHROPIC_MODELS", "PRESETS", "PRESET_PRICES", "auth_headers", "endpoint_url", "resolve_protocol",
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

#: Published prices of preset models, USD per million tokens, by model label. Each entry must name
#: its source and the date it was read, e.g.
#: ``"opencode-zen/some-model": Price(...),  # https://opencode.ai/docs/zen (read 2026-12-05)``.
#: Empty for now: no published price list was at hand when the ledger was written, and a made-up
#: price is worse than none (a model without a price records no cost, never a cost of 0). Users set
#: theirs with ``prices`` in the config.
PRESET_PRICES: dict[str, Price] = {}



#: OpenCode Go models served on the Anthropic Messages endpoint; every other Go model is chat.
GO_ANTHROPIC_MODELS = frozenset({
    "minimax-m2.5", "minimax-m2.7", "minimax-m3", "qwen3.5-plus", "qwen3.6-plus", "qwen3.7-plus", "qwen3.7-max",
})

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

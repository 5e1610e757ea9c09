"""The configuration model: frozen attrs values, the accepted keys and the scenario names.

Durations are seconds (``*_s``) here; the parser (``occ.config.parse``) converts the file's ``*_ms``
once. Sans-IO, and the bottom of the config layer: presets and the parser import it, never the reverse.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

SCENARIOS = ("default", "background", "fast", "think", "complex", "long_context", "web_search")
PROTOCOLS = ("openai", "anthropic", "responses", "gemini")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
#: The thinking request shapes an Anthropic-wire endpoint takes (``thinking_shape``; docs/thinking.md):
#: ``adaptive`` (``{"type": "adaptive"}``, no ``budget_tokens``), ``enabled`` (``{"type": "enabled",
#: "budget_tokens": N}`` only) and ``none`` (no thinking at all).
THINKING_SHAPES = ("adaptive", "enabled", "none")
#: Anthropic's ``output_config.effort`` values, lowest first (``effort_levels`` picks a subset).
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
#: ``anthropic_body``: ``native`` (the endpoint takes Anthropic's newest body fields as sent) or
#: ``portable`` (folded into what any Anthropic-compatible endpoint takes; docs/passthrough-body.md).
ANTHROPIC_BODIES = ("native", "portable")
EMBEDDED_SOURCE = "<embedded default>"
DEFAULT_PATH = os.path.join("~", ".config", "occ", "config.json")
#: The shortest ``client_api_keys`` entry occ accepts: a short key is guessed, and an empty one
#: would let ``Authorization: Bearer`` (nothing after it) in. docs/configuration.md says so.
MIN_CLIENT_KEY_LENGTH = 16

#: Keys accepted at each level; docs/configuration.md must document every one (a test checks).
TOP_LEVEL_KEYS = frozenset({
    "api_key", "api_keys", "host", "port", "hot_reload", "enable_streaming_scenario_routing",
    "respect_requested_model", "models", "fallbacks", "model_overrides", "opencode_go", "opencode_zen",
    "providers", "logging", "heartbeat_interval_ms", "request_timeout_ms", "max_body_bytes",
    "client_api_keys", "max_concurrent_per_client", "circuit_breaker", "shutdown_grace_ms",
    "usage", "prices", "shared_state", "allowed_origins", "allowed_hosts", "metrics_public",
    "client_write_timeout_ms", "web_search",
})
MODEL_KEYS = frozenset({
    "provider", "model_id", "temperature", "top_p", "max_tokens", "max_output_tokens", "context_window",
    "reasoning_effort", "thinking", "context_threshold", "vision", "anthropic_tools_disabled", "wire_format",
    "timeout_ms", "streaming_timeout_ms", "stream_timeout_ms", "payload_timeout_ms",
    "thinking_shape", "effort_levels", "web_search", "anthropic_body",
})
PROVIDER_KEYS = frozenset({
    "base_url", "anthropic_base_url", "responses_base_url", "gemini_base_url", "protocol", "api_key",
    "api_keys", "headers", "timeout_ms", "streaming_timeout_ms", "stream_timeout_ms", "connect_timeout_ms",
    "payload_timeout_ms",
})
LOGGING_KEYS = frozenset({"level", "requests", "format", "body_limit_bytes"})
BREAKER_KEYS = frozenset({"failure_threshold", "cooldown_ms", "max_retry_after_ms"})
USAGE_KEYS = frozenset({"enabled", "path", "flush_interval_ms"})
#: USD per million tokens, per kind; an entry of ``prices`` is keyed by model label (``provider/model_id``).
PRICE_KEYS = frozenset({"input", "output", "cache_read", "cache_write"})
SHARED_STATE_KEYS = frozenset({"url", "key_prefix", "sync_interval_ms", "timeout_ms"})
WEB_SEARCH_KEYS = frozenset({"backend", "url", "api_key", "max_results", "timeout_ms"})
#: The search APIs occ can run a search through for a model that cannot search (docs/web-search.md).
SEARCH_BACKENDS = ("searxng", "tavily")
#: A model's ``web_search``: the upstream's own search, or occ's backend (unset: by wire, see routing).
WEB_SEARCH_MODES = ("native", "backend", "openrouter", "openai")


def client_key_problems(keys: tuple[str, ...] | list[str]) -> list[str]:
    """What is wrong with a ``client_api_keys`` list (empty, blank or too short entries), for the
    parser and for an app built from a :class:`Config` made in code: both refuse the same keys."""
    problems = []
    for index, key in enumerate(keys):
        if not key.strip():
            problems.append(f"client_api_keys.{index}: empty; a blank key would let in a request that sends "
                            "no key at all (remove it, or set a real key)")
        elif len(key) < MIN_CLIENT_KEY_LENGTH:
            problems.append(f"client_api_keys.{index}: too short ({len(key)} characters); use at least "
                            f"{MIN_CLIENT_KEY_LENGTH}, e.g. the output of: openssl rand -hex 24")
    return problems


_SECRET_HEADER_WORDS = ("authorization", "key", "token", "secret", "cookie", "password")


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential (``authorization``, ``x-api-key``, ``cookie``...)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


@attrs.frozen
class Timeouts:
    timeout_s: float
    streaming_timeout_s: float | None
    stall_timeout_s: float
    connect_timeout_s: float
    #: how long a stream may go without a payload event (SSE comments and pings are not payload)
    payload_timeout_s: float | None = 300.0


@attrs.frozen
class ModelConfig:
    provider: str
    model_id: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    context_window: int | None = None
    reasoning_effort: str | None = None
    thinking: Mapping[str, Any] | None = None
    context_threshold: int | None = None
    vision: bool | None = None
    anthropic_tools_disabled: bool = False
    wire_format: str | None = None
    timeout_s: float | None = None
    streaming_timeout_s: float | None = None
    stall_timeout_s: float | None = None
    payload_timeout_s: float | None = None
    #: which thinking shape the endpoint takes (one of :data:`THINKING_SHAPES`); None: the preset's
    #: table, else the Claude family rules, else the client's shape (``occ.config.presets.thinking_caps``)
    thinking_shape: str | None = None
    #: the ``output_config.effort`` values the endpoint takes; ``()``: none (the key is removed); None: as above
    effort_levels: tuple[str, ...] | None = None
    #: "native" / "backend" / a chat search option ("openrouter", "openai"); None: decided by the wire
    #: and the provider's host (occ.resilience.routing.search_mode)
    web_search: str | None = None
    #: one of :data:`ANTHROPIC_BODIES`; None: the Claude rules, else portable (``occ.config.presets.body_caps``)
    anthropic_body: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.model_id)

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model_id}"


@attrs.frozen
class ProviderConfig:
    name: str
    base_url: str | None = None
    anthropic_base_url: str | None = None
    responses_base_url: str | None = None
    gemini_base_url: str | None = None
    protocol: str | None = None
    preset: str | None = None
    api_keys: tuple[str, ...] = ()
    api_key_env: str = "OCC_API_KEY"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout_s: float = 300.0
    streaming_timeout_s: float | None = None
    stall_timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    payload_timeout_s: float | None = 300.0


@attrs.frozen
class LoggingConfig:
    level: str = "info"
    requests: bool = False
    format: str = "text"
    body_limit_bytes: int = 4096


@attrs.frozen
class BreakerConfig:
    failure_threshold: int = 3
    cooldown_s: float = 30.0
    #: the longest upstream Retry-After a breaker honours
    max_retry_after_s: float = 300.0


@attrs.frozen
class UsageConfig:
    """The usage ledger: on by default, in the XDG data directory unless ``path`` says otherwise."""

    enabled: bool = True
    #: None: ``$XDG_DATA_HOME/occ/usage.sqlite`` (else ``~/.local/share/occ/usage.sqlite``)
    path: str | None = None
    flush_interval_s: float = 1.0


@attrs.frozen
class Price:
    """USD per million tokens of each kind. Anthropic's sense: ``input`` excludes cache reads and
    writes, which have their own prices."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    #: long-context prices: ``(prompt tokens above which it applies, price)``, ascending; the prompt is
    #: input + cache reads + cache writes (models.dev's ``[[cost.tiers]]``)
    tiers: tuple[tuple[int, Price], ...] = ()
    #: where each of input, output, cache_read, cache_write came from (``occ prices``); not compared
    origin: tuple[str, ...] = attrs.field(default=(), eq=False)

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> float:
        price = self
        if self.tiers:
            prompt = input_tokens + cache_read + cache_write
            for above, tier in self.tiers:
                if prompt > above:
                    price = tier
        return (input_tokens * price.input + output_tokens * price.output + cache_read * price.cache_read
                + cache_write * price.cache_write) / 1_000_000


@attrs.frozen
class SharedStateConfig:
    """Where a fleet of occ processes keeps what they share (``shared_state``): a Redis or Valkey.

    ``url`` may hold a password, so it is never shown: :attr:`display` is the URL without it.
    """

    url: str = attrs.field(repr=False)
    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False
    key_prefix: str = "occ"
    #: how often each process reads the fleet's state and writes its own (the staleness bound)
    sync_interval_s: float = 0.25
    #: the deadline of every exchange with the server (connect, authenticate, one round trip)
    timeout_s: float = 1.0

    @property
    def display(self) -> str:
        """The URL as logs and ``/status`` may show it: no password, ever."""
        user = f"{self.username}@" if self.username else ""
        scheme = "rediss" if self.tls else "redis"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.db}"


@attrs.frozen
class WebSearchConfig:
    """The search backend occ runs a web search through for a model that cannot search itself."""

    backend: str
    url: str
    api_key: str | None = attrs.field(default=None, repr=False)
    max_results: int = 5
    #: the deadline of one search (connect, send, read the results)
    timeout_s: float = 10.0


@attrs.frozen
class Config:
    models: Mapping[str, ModelConfig]
    providers: Mapping[str, ProviderConfig]
    fallbacks: Mapping[str, tuple[ModelConfig, ...]] = attrs.field(factory=dict)
    model_overrides: Mapping[str, ModelConfig] = attrs.field(factory=dict)
    host: str = "127.0.0.1"
    port: int = 3456
    hot_reload: bool = False
    enable_streaming_scenario_routing: bool = False
    respect_requested_model: bool = False
    logging: LoggingConfig = LoggingConfig()
    heartbeat_interval_s: float = 5.0
    request_timeout_s: float | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    client_api_keys: tuple[str, ...] = ()
    #: web origins (``https://app.example``) allowed to call occ from a browser; none by default
    allowed_origins: tuple[str, ...] = ()
    #: extra ``Host`` names (``name`` or ``name:port``) occ answers to besides this machine's
    allowed_hosts: tuple[str, ...] = ()
    #: ``/metrics`` without a client key, for a Prometheus scraper
    metrics_public: bool = False
    max_concurrent_per_client: int | None = None
    breaker: BreakerConfig = BreakerConfig()
    shutdown_grace_s: float = 10.0
    usage: UsageConfig = UsageConfig()
    #: model label (``provider/model_id``) -> price; a model without one records no cost
    prices: Mapping[str, Price] = attrs.field(factory=dict)
    #: None: every process keeps its own state (the default)
    shared_state: SharedStateConfig | None = None
    #: how long occ waits for a client that stopped reading before it gives the stream up
    client_write_timeout_s: float = 60.0
    #: None: no search backend; a web search then needs a model that searches itself
    web_search: WebSearchConfig | None = None
    source: str | None = None
    warnings: tuple[str, ...] = ()

    def secrets(self) -> tuple[str, ...]:
        """Every credential this config holds, for the scrubber (:mod:`occ.core.scrub`): provider
        keys, client keys and the values of credential-bearing provider headers. A new kind of
        secret (a password in a shared-state URL...) is added here, and every path that shows text
        masks it from then on."""
        found: list[str] = list(self.client_api_keys)
        for provider in self.providers.values():
            found += provider.api_keys
            found += [value for name, value in provider.headers.items() if is_secret_header(name)]
        if self.shared_state is not None and self.shared_state.password:
            found += [self.shared_state.password, self.shared_state.url]
        if self.web_search is not None and self.web_search.api_key:
            found.append(self.web_search.api_key)
        return tuple(found)

    def provider_for(self, model: ModelConfig) -> ProviderConfig:
        return self.providers[model.provider]

    def timeouts_for(self, model: ModelConfig) -> Timeouts:
        """The provider's timeouts with the model's own values laid over them."""
        p = self.providers[model.provider]
        return Timeouts(
            timeout_s=model.timeout_s if model.timeout_s is not None else p.timeout_s,
            streaming_timeout_s=(model.streaming_timeout_s if model.streaming_timeout_s is not None
                                 else p.streaming_timeout_s),
            stall_timeout_s=model.stall_timeout_s if model.stall_timeout_s is not None else p.stall_timeout_s,
            connect_timeout_s=p.connect_timeout_s,
            payload_timeout_s=(model.payload_timeout_s if model.payload_timeout_s is not None
                               else p.payload_timeout_s),
        )

    def all_models(self) -> list[ModelConfig]:
        seen: dict[tuple[str, str], ModelConfig] = {}
        ordered = [self.models[s] for s in SCENARIOS if s in self.models]
        ordered += [m for name, m in self.models.items() if name not in SCENARIOS]
        for chain in self.fallbacks.values():
            ordered += list(chain)
        ordered += list(self.model_overrides.values())
        for model in ordered:
            seen.setdefault(model.key, model)
        return list(seen.values())

"""Scenario routing: a pure function of (request, config) that says which models, in which order,
and why. ``occ route REQUEST.json`` prints the same answer the request log carries.

Rules, first match wins (the seed's, improved per its known gaps): cues are read from the *latest*
user message only (the seed scanned the whole history, so nearly every Claude Code session was
``complex``); unknown ``claude-*`` names are never forwarded upstream; chains are deduplicated by
(provider, model); images never go to a model marked text-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from .config import SCENARIOS, Config, ModelConfig
from .tokens import estimate_routing_tokens
from .translate.anthropic_request import blocks_of
from .validate import normalize_model_name

__all__ = ["Route", "format_route", "route", "scenario_models"]

DEFAULT_THRESHOLD = 100_000
OWN_PREFIX = "claude-occ-"
_THINK_CUES = ("think", "plan", "reason", "analyze", "analyse", "step by step")
_COMPLEX_CUES = ("architect", "refactor", "redesign", "complex", "optimize", "optimise", "implement",
                 "design pattern")


@attrs.frozen
class Route:
    scenario: str
    chain: tuple[ModelConfig, ...]
    reason: str
    requested_model: str


def scenario_models(config: Config) -> list[tuple[str, str]]:
    """occ's own model ids, one per configured scenario (Claude Code's picker keeps ``claude*`` ids)."""
    return [(f"{OWN_PREFIX}{s}", s) for s in SCENARIOS if s in config.models]


def _latest_user(request: dict[str, Any]) -> list[dict[str, Any]]:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return blocks_of(message.get("content"))
    return []


def _latest_user_text(blocks: list[dict[str, Any]]) -> str:
    return " ".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text").lower()


def _has_image(blocks: list[dict[str, Any]]) -> bool:
    for block in blocks:
        if block.get("type") == "image":
            return True
        if block.get("type") == "tool_result" and any(
                b.get("type") == "image" for b in blocks_of(block.get("content"))):
            return True
    return False


def _dedup(models: list[ModelConfig]) -> list[ModelConfig]:
    seen: set[tuple[str, str]] = set()
    out = []
    for model in models:
        if model.key not in seen:
            seen.add(model.key)
            out.append(model)
    return out


def _scenario_chain(config: Config, scenario: str) -> tuple[list[ModelConfig], str]:
    if scenario in config.models:
        primary, note = config.models[scenario], ""
    else:
        primary, note = config.models["default"], f" (no models.{scenario}: using models.default)"
    fallbacks = config.fallbacks.get(scenario)
    if fallbacks is None:
        fallbacks = config.fallbacks.get("default", ())
    return [primary, *fallbacks], note


def route(request: dict[str, Any], config: Config, *, token_estimate: int | None = None) -> Route:
    name = normalize_model_name(str(request.get("model", "")))
    latest = _latest_user(request)
    chain: list[ModelConfig]

    if name in config.model_overrides:
        fallbacks = config.fallbacks.get(name) or config.fallbacks.get("default", ())
        chain, scenario, reason = [config.model_overrides[name], *fallbacks], "override", \
            f"model_overrides[{name!r}]"
    elif name.startswith(OWN_PREFIX) and name[len(OWN_PREFIX):] in config.models:
        scenario = name[len(OWN_PREFIX):]
        chain, note = _scenario_chain(config, scenario)
        reason = f"{scenario}: requested occ model {name}{note}"
    elif config.respect_requested_model and name in config.models:
        fallbacks = config.fallbacks.get(name) or config.fallbacks.get("default", ())
        chain, scenario, reason = [config.models[name], *fallbacks], name, \
            f"{name}: requested model (respect_requested_model)"
    else:
        tokens = estimate_routing_tokens(request) if token_estimate is None else token_estimate
        long_model = config.models.get("long_context")
        threshold = (long_model.context_threshold if long_model and long_model.context_threshold
                     else DEFAULT_THRESHOLD)
        text = _latest_user_text(latest)
        thinking = request.get("thinking")
        if long_model is not None and tokens > threshold:
            scenario, why = "long_context", f"~{tokens} tokens > threshold {threshold}"
        elif request.get("stream") and not config.enable_streaming_scenario_routing:
            scenario, why = "fast", "streaming request and enable_streaming_scenario_routing is false"
        elif "haiku" in name.lower():
            scenario, why = "background", f"haiku-class model {name!r} requested"
        elif isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            scenario, why = "think", f"thinking {thinking.get('type')} in the request"
        elif cue := next((c for c in _THINK_CUES if c in text), None):
            scenario, why = "think", f"reasoning cue {cue!r} in the latest user message"
        elif cue := next((c for c in _COMPLEX_CUES if c in text), None):
            scenario, why = "complex", f"architectural cue {cue!r} in the latest user message"
        else:
            scenario, why = "default", f"no rule matched (~{tokens} tokens)"
        chain, note = _scenario_chain(config, scenario)
        reason = f"{scenario}: {why}{note}"

    chain = _dedup(chain)
    if _has_image(latest):
        capable = [m for m in chain if m.vision is not False]
        if len(capable) < len(chain):
            if not capable:
                capable = [m for m in config.all_models() if m.vision is not False][:1]
            reason += "; image in the latest user turn: text-only models removed"
            chain = capable or chain
    return Route(scenario=scenario, chain=tuple(chain), reason=reason, requested_model=name)


def format_route(result: Route, protocol_of: Callable[[ModelConfig], str]) -> str:
    lines = [f"scenario: {result.scenario}", f"reason:   {result.reason}", "chain:"]
    for i, model in enumerate(result.chain):
        role = "primary " if i == 0 else "fallback"
        lines.append(f"  {role} {model.label} ({protocol_of(model)})")
    return "\n".join(lines)

"""Scenario routing: a pure function of (request, config) that says which models, in which order, and why.

``occ route REQUEST.json`` prints the same answer the request log carries. Rules, first match wins:

0. the request carries Anthropic's web search server tool (``web_search_20250305``...) and
   ``models.web_search`` is configured -> ``web_search`` (before the rest: Claude Code sends its
   WebSearch requests under the session's own model name, which would otherwise decide);
1. ``model_overrides[requested]`` (the ``[1m]`` suffix stripped);
2. one of occ's own ``/v1/models`` ids, ``claude-occ-<scenario>``;
3. ``respect_requested_model`` and the name is a configured alias, a configured upstream model id, or
   ``provider/model_id`` of a configured provider (an unknown ``claude-*`` name is never sent upstream);
4. token estimate over ``models.long_context.context_threshold`` (default 100000) -> ``long_context``;
5. streaming while ``enable_streaming_scenario_routing`` is false -> ``fast`` (the seed's behaviour);
6. a haiku-class requested model -> ``background``;
7. an architectural / large-change cue in the latest user prompt -> ``complex``;
8. a reasoning cue in the latest user prompt -> ``think``;
9. ``default``.

The request's ``thinking`` setting is not a rule: Claude Code enables thinking on every main-loop
request, so routing on it would send the whole session to ``think`` and leave ``default`` and
``complex`` unreachable. Cue order follows the seed (``complex`` before ``think``).

A web search request is then held to models that can search (:func:`search_mode`): the upstream's own
search (Responses, Gemini, Claude on the Anthropic wire, or ``web_search: "native"``), else occ's search
backend (``web_search.backend``). When none of the chain can, a capable model is taken from the config;
when none is configured at all, :attr:`Route.refusal` says which keys would enable web search and the
server answers 400 without calling any upstream.

Images in the latest user turn are a filter over whichever chain won: text-only models (``vision: false``)
leave the chain, and when none is left a vision-capable model is taken from the config.

What the seed got wrong and this fixes: it scanned every message of the history, tool results included,
so nearly every Claude Code session was ``complex``. Here cues come from the latest *prompt*: the newest
user message a human wrote, skipping the tool-result messages of the agent loop (so every request of one
agentic turn lands on the same model and keeps its prefix cache) and Claude Code's ``<system-reminder>``
blocks. Cues match whole words. Chains are deduplicated by (provider, model).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from occ.config.model import SCENARIOS, Config, ModelConfig
from occ.config.presets import resolve_protocol
from occ.core.tokens import estimate_routing_tokens
from occ.core.validate import normalize_model_name
from occ.translate.anthropic_request import blocks_of
from occ.translate.web_search import CHAT_SEARCH_OPTIONS, SearchOptions, chat_search_option, search_options

__all__ = ["DEFAULT_THRESHOLD", "OWN_PREFIX", "Route", "format_route", "latest_prompt", "route", "scenario_models",
           "search_mode"]

DEFAULT_THRESHOLD = 100_000
OWN_PREFIX = "claude-occ-"

_SYSTEM_REMINDER = re.compile(r"<system-reminder>.*?(?:</system-reminder>|\Z)", re.DOTALL | re.IGNORECASE)
_THINK_CUES = re.compile(
    r"\b(ultrathink|think(?:ing)? (?:hard|harder|deeply|carefully|through)|think|plan|reasoning|"
    r"reason (?:about|through)|analy[sz]e|analysis|step[- ]by[- ]step|trade-?offs?)\b")
_COMPLEX_CUES = re.compile(
    r"\b(architect(?:ure|ural)?|re-?architect|refactor(?:ing)?|redesign|rewrite|migrat(?:e|ion)|"
    r"design patterns?|complex|difficult|challenging|optimi[sz](?:e|ation)|performance|implement(?:ation)?|"
    r"add (?:a )?feature|across the (?:code ?base|repo(?:sitory)?))\b")


@attrs.frozen
class Route:
    scenario: str
    chain: tuple[ModelConfig, ...]
    reason: str
    requested_model: str
    #: why occ refuses the request without calling an upstream (a web search no model can run)
    refusal: str | None = None
    #: the request carries the web search server tool
    web_search: bool = False


def scenario_models(config: Config) -> list[tuple[str, str]]:
    """occ's own model ids, one per configured scenario: ``("claude-occ-think", "think")``. Claude Code's
    gateway discovery keeps only ``claude*`` ids, hence the prefix."""
    return [(f"{OWN_PREFIX}{s}", s) for s in SCENARIOS if s in config.models]


def _user_messages(request: dict[str, Any]) -> Iterable[tuple[int, list[dict[str, Any]]]]:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            yield index, blocks_of(message.get("content"))


def latest_prompt(request: dict[str, Any]) -> tuple[int, str] | None:
    """(message index, lower-cased text) of the newest user message a human wrote: tool-result messages
    are the agent loop continuing that prompt, and ``<system-reminder>`` blocks are Claude Code's context."""
    for index, blocks in _user_messages(request):
        if any(b.get("type") == "tool_result" for b in blocks):
            continue
        text = " ".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        text = _SYSTEM_REMINDER.sub(" ", text).strip()
        if text:
            return index, text.lower()
    return None


def _images_in_latest_turn(request: dict[str, Any]) -> int:
    for _, blocks in _user_messages(request):
        count = 0
        for block in blocks:
            if block.get("type") == "image":
                count += 1
            elif block.get("type") == "tool_result":
                count += sum(1 for b in blocks_of(block.get("content")) if b.get("type") == "image")
        return count
    return 0


def _dedup(models: Iterable[ModelConfig]) -> list[ModelConfig]:
    seen: set[tuple[str, str]] = set()
    out = []
    for model in models:
        if model.key not in seen:
            seen.add(model.key)
            out.append(model)
    return out


def _fallbacks(config: Config, name: str) -> tuple[ModelConfig, ...]:
    chain = config.fallbacks.get(name)
    return tuple(chain) if chain is not None else tuple(config.fallbacks.get("default", ()))


def _scenario_chain(config: Config, scenario: str) -> tuple[list[ModelConfig], str]:
    """Primary + fallbacks of a scenario; a scenario the config lacks uses ``models.default``."""
    if scenario in config.models:
        return [config.models[scenario], *_fallbacks(config, scenario)], ""
    return ([config.models["default"], *_fallbacks(config, scenario)],
            f" (no models.{scenario} configured: using models.default)")


def _requested_upstream(config: Config, name: str) -> tuple[ModelConfig, str] | None:
    """``respect_requested_model``: a name occ can send upstream without guessing a provider."""
    if name in config.models:
        return config.models[name], f"models[{name!r}]"
    for model in config.all_models():
        if name in (model.model_id, model.label):
            return model, f"configured upstream model {model.label}"
    provider, sep, model_id = name.partition("/")
    if sep and model_id and provider in config.providers:
        return ModelConfig(provider=provider, model_id=model_id), f"provider {provider!r} of the config"
    return None


#: The keys that let occ answer a web search; the refusal names them.
SEARCH_KEYS_HINT = ('configure a model that searches itself as models.web_search (a Responses or Gemini model, '
                    'or "web_search": "native" on the model), or a search backend: '
                    'web_search.backend ("searxng" with web_search.url, or "tavily" with web_search.api_key)')


def search_mode(model: ModelConfig, config: Config) -> str | None:
    """How ``model`` answers a web search: ``"native"`` (the upstream's own search: a Responses
    ``web_search`` tool, Gemini's Google Search grounding, Anthropic's own server tool on a Claude
    model, OpenRouter's web plugin or OpenAI's ``web_search_options`` on chat), ``"backend"`` (occ
    searches through ``web_search.backend`` and hands the model the results), or None (it cannot). The
    model's ``web_search`` key overrides the wire's default."""
    if model.web_search in ("native", *CHAT_SEARCH_OPTIONS):
        return "native"
    provider = config.providers.get(model.provider)
    if model.web_search != "backend" and provider is not None:
        protocol = resolve_protocol(model, provider)
        if protocol in ("responses", "gemini") or (
                protocol == "anthropic" and model.model_id.lower().rsplit("/", 1)[-1].startswith("claude")) or (
                protocol == "openai" and chat_search_option(provider.base_url)):
            return "native"
    return "backend" if config.web_search is not None else None


def _search_filter(config: Config, chain: list[ModelConfig]) -> tuple[list[ModelConfig], str, str | None]:
    """The chain held to models that can answer a web search: (chain, note, refusal)."""
    able = [m for m in chain if search_mode(m, config) is not None]
    modes = ", ".join(f"{m.label}: {search_mode(m, config)}" for m in able)
    if len(able) == len(chain):
        return chain, f"; web search ({modes})", None
    dropped = ", ".join(m.label for m in chain if m not in able)
    if able:
        return able, f"; web search ({modes}); dropped {dropped}: cannot search and no web_search.backend", None
    elsewhere = [m for m in config.all_models() if search_mode(m, config) is not None]
    if elsewhere:
        model = elsewhere[0]
        return [model], (f"; web search: no model of the chain can search ({dropped}); using {model.label} "
                         f"({search_mode(model, config)}) instead"), None
    return [], f"; web search: no configured model can search ({dropped})", (
        f"this request uses the web_search tool, but no model occ may use can search and no search backend is "
        f"configured: {SEARCH_KEYS_HINT}")


def _choose(request: dict[str, Any], config: Config, name: str, token_estimate: int | None,
            search: SearchOptions | None) -> tuple[str, list[ModelConfig], str]:
    if search is not None and "web_search" in config.models:
        chain, _ = _scenario_chain(config, "web_search")
        return "web_search", chain, f"web_search: the request carries the {search.tool_type} server tool"
    if name in config.model_overrides:
        model = config.model_overrides[name]
        return "override", [model, *_fallbacks(config, name)], f"override: model_overrides[{name!r}] -> {model.label}"

    if name.startswith(OWN_PREFIX) and name[len(OWN_PREFIX):] in SCENARIOS:
        scenario = name[len(OWN_PREFIX):]
        chain, note = _scenario_chain(config, scenario)
        return scenario, chain, f"{scenario}: occ model {name} requested{note}"

    if config.respect_requested_model and name:
        found = _requested_upstream(config, name)
        if found is not None:
            model, what = found
            return name, [model, *_fallbacks(config, name)], \
                f"{name}: requested model is {what} (respect_requested_model)"

    tokens = estimate_routing_tokens(request) if token_estimate is None else token_estimate
    long_model = config.models.get("long_context")
    threshold = long_model.context_threshold if long_model and long_model.context_threshold else DEFAULT_THRESHOLD
    prompt = latest_prompt(request)
    where = f"the latest user prompt (message {prompt[0]})" if prompt else ""
    thinking = request.get("thinking")

    # the size clause of a reason states the comparison the decision made, never one it did not
    if long_model is None:
        size = f"~{tokens} tokens; no models.long_context, so size does not route"
    else:
        size = f"~{tokens} tokens <= threshold {threshold}"
    if long_model is not None and tokens > threshold:
        scenario, why = "long_context", f"~{tokens} tokens > threshold {threshold}"
    elif request.get("stream") is True and not config.enable_streaming_scenario_routing:
        scenario, why = "fast", f"streaming request and enable_streaming_scenario_routing is false ({size})"
    elif "haiku" in name.lower():
        scenario, why = "background", f"haiku-class model {name!r} requested"
    elif prompt and (cue := _COMPLEX_CUES.search(prompt[1])):
        scenario, why = "complex", f"architectural cue {cue.group(0)!r} in {where}"
    elif prompt and (cue := _THINK_CUES.search(prompt[1])):
        scenario, why = "think", f"reasoning cue {cue.group(0)!r} in {where}"
    else:
        scenario, why = "default", f"no rule matched ({size}; no cue in the latest user prompt)"
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            why += f"; thinking {thinking['type']} is not a cue: Claude Code sends it with every main-loop request"
    chain, note = _scenario_chain(config, scenario)
    return scenario, chain, f"{scenario}: {why}{note}"


def _vision_filter(request: dict[str, Any], config: Config,
                   chain: list[ModelConfig]) -> tuple[list[ModelConfig], str]:
    """Never send images to a model marked text-only: an image stays in the history, so one wrong
    routing fails every later turn of the session (protocols.md §7 edge 48)."""
    images = _images_in_latest_turn(request)
    text_only = [m for m in chain if m.vision is False]
    if not images or not text_only:
        return chain, ""
    dropped = ", ".join(m.label for m in text_only)
    capable = [m for m in chain if m.vision is not False]
    if capable:
        return capable, f"; {images} image(s) in the latest user turn: dropped text-only {dropped}"
    candidates = [m for m in config.all_models() if m.vision is True] or \
                 [m for m in config.all_models() if m.vision is None]
    if candidates:
        return [candidates[0]], (f"; {images} image(s) in the latest user turn and only text-only models in "
                                 f"the chain: using {candidates[0].label} instead")
    return chain, (f"; {images} image(s) in the latest user turn but no model is vision-capable: "
                   "text-only models get an [Image] placeholder")


def route(request: dict[str, Any], config: Config, *, token_estimate: int | None = None) -> Route:
    """Where ``request`` goes under ``config``. ``token_estimate`` spares a second count when the caller
    has one (it must be :func:`~occ.core.tokens.estimate_routing_tokens` of the same request)."""
    model = request.get("model")
    name = normalize_model_name(model) if isinstance(model, str) else ""
    search = search_options(request)
    scenario, chain, reason = _choose(request, config, name, token_estimate, search)
    chain, note = _vision_filter(request, config, _dedup(chain))
    refusal = None
    searching = search is not None
    if searching:
        chain, search_note, refusal = _search_filter(config, chain)
        note += search_note
    return Route(scenario=scenario, chain=tuple(chain), reason=reason + note, requested_model=name,
                 refusal=refusal, web_search=searching)


def format_route(result: Route, protocol_of: Callable[[ModelConfig], str],
                 detail_of: Callable[[ModelConfig], str | None] | None = None) -> str:
    """The ``occ route`` report: what was asked, where it goes, why, and over which wire;
    ``detail_of`` adds a line under a model (the thinking it would be sent)."""
    lines = [f"requested: {result.requested_model or '(none)'}", f"scenario:  {result.scenario}",
             f"reason:    {result.reason}", "chain:"]
    for i, model in enumerate(result.chain, 1):
        role = "primary " if i == 1 else "fallback"
        lines.append(f"  {i}. {role} {model.label} ({protocol_of(model)})")
        detail = detail_of(model) if detail_of is not None else None
        if detail:
            lines.append(f"       {detail}")
    if result.refusal:
        lines.append(f"refused:   400 invalid_request_error: {result.refusal}")
    return "\n".join(lines)

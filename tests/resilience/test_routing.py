"""Routing is a pure function of (request, config): every rule, its order, and the reason it gives."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from support.stack import ROOT

from occ.config.parse import load_config, parse_config
from occ.resilience.routing import Route, format_route, latest_prompt, route, scenario_models

SEED = os.path.join(ROOT, "examples", "seed-config.json")
PNG_64 = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + (64).to_bytes(4, "big") * 2 + bytes(5)
PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                   "data": base64.b64encode(PNG_64).decode()}}


def m(mid: str, **kw: Any) -> dict[str, Any]:
    return {"provider": "opencode-go", "model_id": mid, **kw}


def make_config(**top: Any):
    data = {
        "api_key": "k",
        "enable_streaming_scenario_routing": True,
        "models": {s: m(f"{s}-model") for s in ("default", "background", "think", "complex")}
        | {"long_context": m("long-model", context_threshold=1000), "fast": m("fast-model", vision=False),
           "alias": m("alias-model")},
        "fallbacks": {"default": [m("fb-1"), m("default-model"), m("fb-2", vision=False)],
                      "think": [m("think-fb")], "fast": [m("fast-fb", vision=False)],
                      "claude-opus-4-8": [m("opus-fb")]},
        "model_overrides": {"claude-opus-4-8": m("override-model")},
    }
    data.update(top)
    return parse_config(data, env={}, source="test")


CONFIG = make_config()


def req(text: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": text}], **extra}


def ids(r: Route) -> list[str]:
    return [x.model_id for x in r.chain]


# -- rule 1: model_overrides ----------------------------------------------------------------------------

def test_override_wins_with_its_own_fallbacks_and_the_1m_suffix_stripped():
    r = route(req(model="claude-opus-4-8[1m]", stream=True, thinking={"type": "adaptive"}), CONFIG)
    assert (r.scenario, ids(r), r.requested_model) == ("override", ["override-model", "opus-fb"], "claude-opus-4-8")
    assert r.reason == "override: model_overrides['claude-opus-4-8'] -> opencode-go/override-model"


def test_override_without_its_own_fallbacks_uses_fallbacks_default():
    config = make_config(model_overrides={"my-model": m("override-model")})
    assert ids(route(req(model="my-model"), config)) == ["override-model", "fb-1", "default-model", "fb-2"]


# -- rule 2: occ's own /v1/models ids -------------------------------------------------------------------

def test_own_model_id_selects_its_scenario():
    r = route(req(model="claude-occ-think", stream=True), CONFIG)
    assert (r.scenario, ids(r)) == ("think", ["think-model", "think-fb"])
    assert r.reason == "think: occ model claude-occ-think requested"


def test_own_model_id_of_an_unconfigured_scenario_uses_models_default():
    config = make_config(models={"default": m("default-model")})
    r = route(req(model="claude-occ-complex"), config)
    assert (r.scenario, ids(r)[0]) == ("complex", "default-model")
    assert "no models.complex configured: using models.default" in r.reason


def test_edge_47_scenario_models_are_claude_prefixed_ids_of_configured_scenarios():
    assert scenario_models(CONFIG) == [("claude-occ-default", "default"), ("claude-occ-background", "background"),
                                       ("claude-occ-fast", "fast"), ("claude-occ-think", "think"),
                                       ("claude-occ-complex", "complex"), ("claude-occ-long_context", "long_context")]
    assert all(model_id.startswith("claude") for model_id, _ in scenario_models(CONFIG))


# -- rule 3: respect_requested_model ---------------------------------------------------------------------

def test_requested_alias_is_ignored_unless_respect_requested_model():
    assert route(req(model="alias"), CONFIG).scenario == "default"
    r = route(req(model="alias", stream=True), make_config(respect_requested_model=True))
    assert (r.scenario, ids(r)) == ("alias", ["alias-model", "fb-1", "default-model", "fb-2"])
    assert r.reason == "alias: requested model is models['alias'] (respect_requested_model)"


def test_respect_requested_model_passes_configured_upstream_models_through():
    config = make_config(respect_requested_model=True)
    assert ids(route(req(model="think-fb"), config))[0] == "think-fb"
    r = route(req(model="opencode-go/kimi-k2.6"), config)
    assert ids(r)[0] == "kimi-k2.6" and "provider 'opencode-go'" in r.reason


def test_unknown_claude_model_is_never_forwarded_upstream():
    r = route(req(model="claude-sonnet-9-9"), make_config(respect_requested_model=True))
    assert r.scenario == "default" and "claude-sonnet-9-9" not in ids(r)


# -- rule 4: long context -------------------------------------------------------------------------------

def test_long_context_over_the_threshold_beats_streaming_and_cues():
    r = route(req("word " * 3000 + " refactor", stream=True, model="claude-haiku-4-5"), CONFIG)
    assert r.scenario == "long_context" and ids(r) == ["long-model", "fb-1", "default-model", "fb-2"]
    assert r.reason.startswith("long_context: ~") and r.reason.endswith(" tokens > threshold 1000")


def test_long_context_threshold_is_strict_and_token_estimate_is_used_when_given():
    assert route(req(), CONFIG, token_estimate=1000).scenario == "default"
    r = route(req(), CONFIG, token_estimate=1001)
    assert r.reason == "long_context: ~1001 tokens > threshold 1000"


def test_long_context_default_threshold_is_100000():
    config = make_config(models={"default": m("d"), "long_context": m("l")})
    assert route(req(), config, token_estimate=100_000).scenario == "default"
    assert "threshold 100000" in route(req(), config, token_estimate=100_001).reason


def test_tool_schemas_count_towards_the_routing_estimate():
    tools = [{"name": f"t{i}", "description": "x " * 500, "input_schema": {"type": "object"}} for i in range(5)]
    assert route(req(tools=tools), CONFIG).scenario == "long_context"


# -- rule 5: streaming while streaming scenario routing is off -------------------------------------------

def test_streaming_goes_to_fast_when_streaming_scenario_routing_is_off():
    config = make_config(enable_streaming_scenario_routing=False)
    r = route(req("refactor the architecture", stream=True, thinking={"type": "enabled", "budget_tokens": 2048}),
              config)
    assert (r.scenario, ids(r)) == ("fast", ["fast-model", "fast-fb"])
    assert r.reason.startswith("fast: streaming request and enable_streaming_scenario_routing is false (~")
    assert route(req("refactor it", stream=False), config).scenario == "complex"


# -- rules 6-9: haiku, thinking, cues, default -----------------------------------------------------------

def test_haiku_class_model_goes_to_background_before_thinking():
    r = route(req(model="claude-haiku-4-5-20251001", thinking={"type": "enabled", "budget_tokens": 31999}), CONFIG)
    assert r.scenario == "background"
    assert r.reason == "background: haiku-class model 'claude-haiku-4-5-20251001' requested"


@pytest.mark.parametrize("kind", ["enabled", "adaptive"])
def test_thinking_in_the_request_is_not_a_routing_cue(kind):
    """Claude Code enables thinking on every main-loop request: routing on it would send a whole
    session to ``think``, leaving ``default`` and ``complex`` unreachable."""
    r = route(req("fix the typo", thinking={"type": kind}), CONFIG)
    assert r.scenario == "default" and f"thinking {kind} is not a cue" in r.reason
    assert route(req("refactor", thinking={"type": kind}), CONFIG).scenario == "complex"
    assert route(req("think it over", thinking={"type": kind}), CONFIG).scenario == "think"


def test_architectural_cue_wins_over_reasoning_cue_as_in_the_seed():
    r = route(req("think about how to refactor the loader"), CONFIG)
    assert r.scenario == "complex" and r.reason.startswith("complex: architectural cue 'refactor'")


def test_reasoning_cue_goes_to_think_and_names_the_cue_and_message():
    r = route(req("please think step by step about this"), CONFIG)
    assert r.scenario == "think" and r.reason == "think: reasoning cue 'think' in the latest user prompt (message 0)"
    assert route(req("Ultrathink: why does it hang?"), CONFIG).reason.startswith("think: reasoning cue 'ultrathink'")


def test_architectural_cue_goes_to_complex():
    r = route(req("Refactor the config loader"), CONFIG)
    assert (r.scenario, ids(r)) == ("complex", ["complex-model", "fb-1", "default-model", "fb-2"])
    assert r.reason == "complex: architectural cue 'refactor' in the latest user prompt (message 0)"


def test_cues_match_whole_words_only():
    for text in ("add an explanation", "the planet", "a prefactored list", "simplementation"):
        assert route(req(text), CONFIG).scenario == "default", text


def test_default_when_nothing_matches_says_so():
    r = route(req(), CONFIG)
    assert r.scenario == "default" and ids(r) == ["default-model", "fb-1", "fb-2"]  # deduplicated
    assert r.reason.startswith("default: no rule matched (~") and "no cue in the latest user prompt" in r.reason


def test_missing_scenario_falls_back_to_models_default_with_a_note():
    config = make_config(models={"default": m("default-model")})
    r = route(req("refactor the module"), config)
    assert (r.scenario, ids(r)[0]) == ("complex", "default-model")
    assert r.reason.endswith("(no models.complex configured: using models.default)")


# -- what "the latest user prompt" is --------------------------------------------------------------------

def claude_code_turn(prompt: str) -> dict[str, Any]:
    """A Claude Code agentic turn: reminder + prompt, then a tool call and its result (with a reminder)."""
    return {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>Plan mode. Refactor freely. "
                                      "Think.</system-reminder>"}, {"type": "text", "text": prompt}]},
        {"role": "system", "content": "Agent types: architect, planner"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                           "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "README.md\n<system-reminder>refactor</system-reminder>"},
                                     {"type": "text", "text": "Tool loaded. think"}]},
    ]}


def test_cues_come_from_the_latest_prompt_not_tool_results_nor_system_reminders():
    assert latest_prompt(claude_code_turn("what files are here?")) == (0, "what files are here?")
    assert route(claude_code_turn("what files are here?"), CONFIG).scenario == "default"
    r = route(claude_code_turn("now redesign the cache"), CONFIG)
    assert r.scenario == "complex" and "'redesign' in the latest user prompt (message 0)" in r.reason


def test_older_prompts_do_not_leak_into_routing():
    history = {**req(), "messages": [{"role": "user", "content": "refactor everything"},
                                     {"role": "assistant", "content": "done"},
                                     {"role": "user", "content": "thanks"}]}
    assert route(history, CONFIG).scenario == "default"


# -- images (edge 48) ------------------------------------------------------------------------------------

def test_edge_48_image_drops_text_only_models_from_the_chain():
    r = route(req([PNG, {"type": "text", "text": "what is this?"}]), CONFIG)
    assert ids(r) == ["default-model", "fb-1"]
    assert r.reason.endswith("; 1 image(s) in the latest user turn: dropped text-only opencode-go/fb-2")


def test_edge_48_text_only_chain_is_replaced_by_a_vision_capable_model():
    config = make_config(enable_streaming_scenario_routing=False,
                         models={"default": m("default-model"), "fast": m("fast-model", vision=False),
                                 "seeing": m("vision-model", vision=True)})
    r = route(req([PNG], stream=True), config)
    assert r.scenario == "fast" and ids(r) == ["vision-model"]
    assert "only text-only models in the chain: using opencode-go/vision-model instead" in r.reason


def test_edge_48_image_inside_a_tool_result_counts_and_older_images_do_not():
    tool_image = {"type": "tool_result", "tool_use_id": "t", "content": [PNG]}
    assert "fb-2" not in ids(route(req([tool_image]), CONFIG))
    older = {**req(), "messages": [{"role": "user", "content": [PNG]}, {"role": "assistant", "content": "ok"},
                                   {"role": "user", "content": "thanks"}]}
    assert "fb-2" in ids(route(older, CONFIG))


def test_edge_48_no_vision_model_anywhere_keeps_the_chain_and_says_why():
    config = make_config(models={"default": m("d", vision=False)}, fallbacks={}, model_overrides={})
    r = route(req([PNG]), config)
    assert ids(r) == ["d"] and "no model is vision-capable" in r.reason


# -- the seed's config and the CLI report ----------------------------------------------------------------

def test_seed_config_two_live_routes():
    """Claude Code always streams, so with the seed's config only fast and long_context are live."""
    seed = load_config(SEED, env={})
    fast = route(req("refactor the whole architecture", stream=True, thinking={"type": "adaptive"}), seed)
    assert fast.scenario == "fast" and ids(fast) == ["deepseek-v4-flash", "mimo-v2.5"]
    assert "enable_streaming_scenario_routing is false" in fast.reason
    long = route(req("token " * 100_000, stream=True), seed)
    assert long.scenario == "long_context" and ids(long) == ["minimax-m3", "deepseek-v4-pro", "mimo-v2.5-pro"]
    assert long.reason.endswith("> threshold 80000")


def test_format_route_lists_the_chain_with_protocols():
    text = format_route(route(req(model="claude-occ-think"), CONFIG), lambda model: "openai")
    assert text.splitlines() == [
        "requested: claude-occ-think",
        "scenario:  think",
        "reason:    think: occ model claude-occ-think requested",
        "chain:",
        "  1. primary  opencode-go/think-model (openai)",
        "  2. fallback opencode-go/think-fb (openai)",
    ]


def test_route_tolerates_odd_bodies():
    r = route({"model": 5, "messages": "nope"}, CONFIG)
    assert r.scenario == "default" and r.requested_model == ""


def _tools(n: int) -> list[dict[str, Any]]:
    return [{"name": f"tool_{i}", "description": "does one thing well " * 5,
             "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}} for i in range(n)]


def test_tools_count_toward_the_size_that_routes_to_long_context():
    request = {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 10,
               "messages": [{"role": "user", "content": "hi"}], "tools": _tools(100)}
    result = route(request, make_config(enable_streaming_scenario_routing=False))
    assert "long_context" == result.scenario
    tokens = int(result.reason.split("~")[1].split()[0])
    assert tokens > 1000 and result.reason == f"long_context: ~{tokens} tokens > threshold 1000"


@pytest.mark.parametrize("stream", [True, False])
def test_without_a_long_context_model_the_reason_never_claims_a_comparison_it_did_not_make(stream):
    config = parse_config({"api_key": "k", "models": {"default": m("default-model")}}, env={}, source="t")
    request = {"model": "claude-sonnet-4-5", "stream": stream, "max_tokens": 10,
               "messages": [{"role": "user", "content": "hi"}], "tools": _tools(10_000)}
    result = route(request, config)
    tokens = int(result.reason.split("~")[1].split()[0])
    assert tokens > 100_000
    assert "<=" not in result.reason and "no models.long_context, so size does not route" in result.reason


def test_under_the_threshold_the_reason_says_the_comparison():
    request = {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 10,
               "messages": [{"role": "user", "content": "hi"}]}
    result = route(request, make_config(enable_streaming_scenario_routing=False))
    assert "fast" == result.scenario and "tokens <= threshold 1000" in result.reason

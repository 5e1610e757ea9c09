"""Thinking in the shape each endpoint takes (docs/thinking.md): the capability tables, the
passthrough's :func:`fit_thinking` for every shape x every client setting, the effort steps, and how
the translated wires read Claude Code's ``{"type": "adaptive", "budget_tokens": 0}``."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.config.model import EFFORT_LEVELS, ModelConfig
from occ.config.presets import ThinkingCaps, claude_thinking_caps, thinking_caps
from occ.translate import gemini, openai_chat, responses
from occ.translate.anthropic_passthrough import build_body, fit_thinking
from occ.translate.anthropic_request import EFFORT_BUDGETS, budget_for_effort, effort_of, step_effort

#: What Claude Code 2.1.252+ sends on every main-loop turn.
CC_THINKING = {"budget_tokens": 0, "type": "adaptive"}
USER = [{"role": "user", "content": "hi"}]

ADAPTIVE = ThinkingCaps("adaptive", ("low", "medium", "high"), "test")
ADAPTIVE_ALL = ThinkingCaps("adaptive", EFFORT_LEVELS, "test")
ENABLED = ThinkingCaps("enabled", (), "test")
NONE = ThinkingCaps("none", (), "test")
UNKNOWN = ThinkingCaps(None, None, "test")


def body(thinking=None, effort=None, max_tokens=32000, **extra):
    out = {"model": "m", "max_tokens": max_tokens, "messages": list(USER), **extra}
    if thinking is not None:
        out["thinking"] = thinking
    if effort is not None:
        out["output_config"] = {"effort": effort}
    return out


# -- which endpoint takes which shape ---------------------------------------------------------------


@pytest.mark.parametrize("model_id", ["minimax-m2.5", "minimax-m2.7", "minimax-m3", "qwen3.5-plus", "qwen3.6-plus",
                                      "qwen3.7-plus", "qwen3.7-max", "kimi-k2.6"])
def test_every_go_model_takes_a_budget_and_no_effort(model_id):
    caps = thinking_caps(ModelConfig("opencode-go", model_id))
    assert (caps.shape, caps.efforts) == ("enabled", ())


@pytest.mark.parametrize(("model_id", "shape", "efforts"), [
    ("claude-opus-4-8", "adaptive", ("low", "medium", "high", "xhigh", "max")),
    ("claude-opus-4-7", "adaptive", ("low", "medium", "high", "xhigh", "max")),
    ("claude-opus-4-6", "adaptive", ("low", "medium", "high", "max")),
    ("claude-sonnet-4-6", "adaptive", ("low", "medium", "high")),
    ("claude-sonnet-5", "adaptive", ("low", "medium", "high")),
    ("claude-opus-5-5", "adaptive", ("low", "medium", "high", "xhigh", "max")),
    ("claude-opus-4-5", "enabled", ("low", "medium", "high")),
    ("claude-sonnet-4-5-20250929", "enabled", ()),
    ("claude-haiku-4-5-20251001", "enabled", ()),
    ("claude-opus-4-1-20250805", "enabled", ()),
    ("claude-opus-4-20250514", "enabled", ()),
    ("claude-3-7-sonnet-20250219", "enabled", ()),
    ("claude-3-5-haiku-20241022", "none", ()),
])
def test_zen_claude_models_by_anthropics_rules(model_id, shape, efforts):
    caps = thinking_caps(ModelConfig("opencode-zen", model_id))
    assert (caps.shape, caps.efforts) == (shape, efforts)


def test_zen_open_models_are_the_opencode_gateway_too():
    assert thinking_caps(ModelConfig("opencode-zen", "qwen3.7-plus")).shape == "enabled"


def test_claude_rules_hold_on_any_provider_and_in_routed_ids():
    assert thinking_caps(ModelConfig("openrouter", "anthropic/claude-sonnet-4.5")).shape == "enabled"
    assert thinking_caps(ModelConfig("mine", "claude-opus-4-8")).shape == "adaptive"
    assert claude_thinking_caps("qwen3.7-plus") is None


def test_unknown_endpoints_get_the_clients_shape():
    caps = thinking_caps(ModelConfig("mine", "glm-5.2"))
    assert (caps.shape, caps.efforts) == (None, None)


def test_the_models_config_wins_key_by_key():
    caps = thinking_caps(ModelConfig("mine", "minimax-m3", thinking_shape="adaptive"))
    assert (caps.shape, caps.efforts, caps.source) == ("adaptive", None, "the model's config")
    caps = thinking_caps(ModelConfig("opencode-zen", "claude-opus-4-8", effort_levels=("low", "high")))
    assert (caps.shape, caps.efforts) == ("adaptive", ("low", "high"))
    caps = thinking_caps(ModelConfig("opencode-go", "minimax-m3", thinking_shape="none"))
    assert (caps.shape, caps.efforts) == ("none", ())


# -- effort steps and budgets ----------------------------------------------------------------------


@pytest.mark.parametrize(("effort", "accepted", "expected"), [
    ("max", ("low", "medium", "high", "xhigh", "max"), "max"),
    ("max", ("low", "medium", "high", "xhigh"), "xhigh"),
    ("max", ("low", "medium", "high"), "high"),
    ("xhigh", ("low", "medium", "high", "max"), "high"),
    ("low", ("medium", "high"), "medium"),
    ("high", (), None),
    ("bogus", ("low", "high"), None),
])
def test_step_effort_goes_down_to_the_nearest_level(effort, accepted, expected):
    assert step_effort(effort, accepted) == expected


def test_budgets_read_back_as_their_effort():
    for effort in ("low", "medium", "high", "max"):
        request = {"thinking": {"type": "enabled", "budget_tokens": EFFORT_BUDGETS[effort]}}
        assert effort_of(request) == effort


@pytest.mark.parametrize(("effort", "max_tokens", "expected"), [
    ("high", 64000, 24576), ("high", 32000, 24576), ("max", 32000, 31999), ("low", 32000, 2048),
    (None, 64000, 24576), ("bogus", 64000, 24576), ("high", 1025, 1024), ("high", 1024, None), ("low", 100, None),
])
def test_budget_for_effort_keeps_1024_le_budget_lt_max_tokens(effort, max_tokens, expected):
    assert budget_for_effort(effort, max_tokens) == expected


# -- the passthrough: every shape x every client setting ---------------------------------------------


def fit(request, caps):
    changed, notes = fit_thinking(request, caps)
    return request, changed, notes


@pytest.mark.parametrize(("effort", "budget"), [(None, 24576), ("low", 2048), ("medium", 8192), ("high", 24576),
                                                 ("xhigh", 31999), ("max", 31999)])
def test_adaptive_becomes_enabled_with_a_budget_from_the_effort(effort, budget):
    out, changed, notes = fit(body(CC_THINKING, effort), ENABLED)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert "output_config" not in out
    assert changed and "adaptive -> enabled" in notes[0]


def test_adaptive_budget_zero_is_never_a_budget_of_zero():
    for caps in (ENABLED, ADAPTIVE, UNKNOWN):
        out, _, _ = fit(body(CC_THINKING, "high"), caps)
        assert out["thinking"].get("budget_tokens", 1024) >= 1024


def test_effort_on_a_system_message_sets_the_budget():
    request = body(CC_THINKING, messages=[{"role": "system", "content": "x", "output_config": {"effort": "low"}},
                                          *USER])
    out, _, _ = fit(request, ENABLED)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "output_config" not in out["messages"][0]


def test_no_room_for_the_minimum_budget_means_no_thinking():
    out, changed, notes = fit(body(CC_THINKING, "high", max_tokens=1024), ENABLED)
    assert "thinking" not in out and changed
    assert "no room" in notes[0]


@pytest.mark.parametrize(("budget", "max_tokens", "expected"), [
    (31999, 32000, 31999), (500, 32000, 1024), (40000, 32000, 31999), (2048, 1024, None),
])
def test_enabled_budgets_are_held_to_the_rule(budget, max_tokens, expected):
    out, _, _ = fit(body({"type": "enabled", "budget_tokens": budget}, max_tokens=max_tokens), ENABLED)
    if expected is None:
        assert "thinking" not in out
    else:
        assert out["thinking"] == {"type": "enabled", "budget_tokens": expected}


def test_enabled_without_a_budget_gets_one_from_the_effort():
    out, _, _ = fit(body({"type": "enabled"}, "medium"), ENABLED)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}


def test_a_valid_enabled_request_is_not_touched():
    request = body({"type": "enabled", "budget_tokens": 4000})
    out, changed, notes = fit(request, ENABLED)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 4000} and not changed and not notes


def test_disabled_and_null_become_absent_where_only_a_budget_is_taken():
    for thinking in ({"type": "disabled"},):
        out, changed, notes = fit(body(thinking), ENABLED)
        assert "thinking" not in out and changed and not notes
    request = body()
    request["thinking"] = None
    out, changed, _ = fit(request, ENABLED)
    assert "thinking" not in out and changed


def test_a_bare_budget_without_type_becomes_enabled():
    out, _, _ = fit(body({"budget_tokens": 8000}), ENABLED)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8000}
    out, _, notes = fit(body({"type": "sometimes"}), ENABLED)
    assert "thinking" not in out and "not a thinking setting" in notes[0]


def test_adaptive_endpoints_get_adaptive_without_budget_tokens():
    out, changed, notes = fit(body({**CC_THINKING, "display": "summarized"}, "high"), ADAPTIVE)
    assert out["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert out["output_config"] == {"effort": "high"}
    assert changed and not notes, "removing Claude Code's budget_tokens: 0 is not news"


def test_enabled_becomes_adaptive_with_the_effort_of_its_budget():
    out, _, notes = fit(body({"type": "enabled", "budget_tokens": 31999}), ADAPTIVE_ALL)
    assert out["thinking"] == {"type": "adaptive"}
    assert out["output_config"] == {"effort": "high"}
    assert "enabled -> adaptive" in notes[0]
    out, _, _ = fit(body({"type": "enabled", "budget_tokens": 2048}, "max"), ADAPTIVE)
    assert out["output_config"] == {"effort": "high"}, "the client's own effort wins, stepped down"


def test_adaptive_endpoints_leave_disabled_and_absent_alone():
    for thinking in ({"type": "disabled"}, None):
        request = body(thinking)
        out, changed, _ = fit(json.loads(json.dumps(request)), ADAPTIVE)
        assert out == request and not changed


def test_models_without_thinking_get_none():
    for thinking in (CC_THINKING, {"type": "enabled", "budget_tokens": 2048}, {"type": "disabled"}):
        out, changed, _ = fit(body(thinking, "high"), NONE)
        assert "thinking" not in out and "output_config" not in out and changed


def test_unknown_endpoints_keep_the_clients_shape_minus_an_adaptive_budget():
    out, changed, notes = fit(body(CC_THINKING, "max"), UNKNOWN)
    assert out["thinking"] == {"type": "adaptive"} and out["output_config"] == {"effort": "max"}
    assert changed and not notes
    request = body({"type": "enabled", "budget_tokens": 100})
    out, changed, _ = fit(json.loads(json.dumps(request)), UNKNOWN)
    assert out == request and not changed


@pytest.mark.parametrize(("effort", "caps", "expected"), [
    ("max", ADAPTIVE, "high"), ("xhigh", ADAPTIVE, "high"), ("high", ADAPTIVE, "high"),
    ("max", ADAPTIVE_ALL, "max"), ("bogus", ADAPTIVE, None), ("high", ENABLED, None),
])
def test_efforts_the_endpoint_rejects(effort, caps, expected):
    request = body(CC_THINKING, output_config={"effort": effort, "format": {"type": "json_schema", "schema": {}}})
    out, _, _ = fit(request, caps)
    assert out["output_config"].get("effort") == expected
    assert out["output_config"]["format"] == {"type": "json_schema", "schema": {}}, "format stays"


# -- build_body: the whole passthrough, and its log note ----------------------------------------------


def test_build_body_for_go_says_what_it_changed():
    request = body(CC_THINKING, "high", model="claude-opus-4-8")
    notes: list[str] = []
    out = json.loads(build_body(json.dumps(request).encode(), request, ModelConfig("opencode-go", "qwen3.7-plus"),
                                notes.append))
    assert out["model"] == "qwen3.7-plus"
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 24576} and "output_config" not in out
    assert notes == ["thinking for opencode-go/qwen3.7-plus (OpenCode gateway: no adaptive thinking): "
                     "adaptive -> enabled, budget_tokens 24576 (effort high; the endpoint takes no adaptive "
                     "thinking); effort high removed (the endpoint takes no effort)"]


def test_build_body_budget_follows_the_clamped_max_tokens():
    request = body(CC_THINKING, "max", max_tokens=64000)
    model = ModelConfig("opencode-go", "minimax-m3", max_tokens=8192)
    out = json.loads(build_body(json.dumps(request).encode(), request, model))
    assert out["max_tokens"] == 8192 and out["thinking"] == {"type": "enabled", "budget_tokens": 8191}


def test_build_body_for_zen_claude_keeps_adaptive():
    request = body(CC_THINKING, "high", model="claude-opus-4-8")
    notes: list[str] = []
    out = json.loads(build_body(json.dumps(request).encode(), request,
                                ModelConfig("opencode-zen", "claude-opus-4-8"), notes.append))
    assert out["thinking"] == {"type": "adaptive"} and out["output_config"] == {"effort": "high"}
    assert not notes


def test_build_body_unchanged_request_keeps_the_clients_bytes():
    raw = b'{"model": "glm-5.2", "max_tokens": 100, "thinking": {"type": "adaptive"}, "messages": []}'
    assert build_body(raw, json.loads(raw), ModelConfig("mine", "glm-5.2")) == raw


_THINKINGS = st.one_of(
    st.none(), st.just("absent"), st.sampled_from([{"type": "disabled"}, {"type": "adaptive"}, CC_THINKING]),
    st.fixed_dictionaries({"type": st.just("enabled")}, optional={"budget_tokens": st.integers(-5, 200_000)}),
    st.fixed_dictionaries({}, optional={"budget_tokens": st.integers(-5, 200_000), "type": st.text(max_size=8)}),
)


@settings(max_examples=300, deadline=None)
@given(thinking=_THINKINGS, effort=st.one_of(st.none(), st.sampled_from([*EFFORT_LEVELS, "minimal", "bogus"])),
       max_tokens=st.integers(1, 200_000),
       caps=st.sampled_from([ADAPTIVE, ADAPTIVE_ALL, ENABLED, NONE, ThinkingCaps("enabled", ("low",), "t"),
                             ThinkingCaps("adaptive", (), "t")]))
def test_whatever_the_client_sends_the_endpoint_gets_its_shape(thinking, effort, max_tokens, caps):
    request = body(None, effort, max_tokens=max_tokens)
    if thinking != "absent":
        request["thinking"] = thinking
    out, _, _ = fit(request, caps)
    sent = out.get("thinking")
    if caps.shape == "enabled":
        assert sent is None or (sent["type"] == "enabled" and 1024 <= sent["budget_tokens"] < max_tokens)
    elif caps.shape == "none":
        assert "thinking" not in out
    elif isinstance(sent, dict) and sent.get("type") == "adaptive":
        assert "budget_tokens" not in sent
    config = out.get("output_config")
    if config is not None:
        assert config.get("effort", "low") in (caps.efforts or ("low",))


# -- the translated wires read adaptive + effort, never budget 0 ---------------------------------------


def test_chat_reads_adaptive_thinking_as_the_effort():
    request = body(CC_THINKING, "low")
    out = openai_chat.build_request(request, ModelConfig("opencode-go", "deepseek-v4-pro"), stream=True)
    assert out["reasoning_effort"] == "low"
    out = openai_chat.build_request(body(CC_THINKING), ModelConfig("opencode-go", "kimi-k2.6"), stream=True)
    assert out["reasoning_effort"] == "high"
    out = openai_chat.build_request(body(CC_THINKING, "max"), ModelConfig("opencode-go", "glm-5.2"), stream=True)
    assert out["reasoning_effort"] == "high", "chat efforts stop at high"


def test_responses_reads_adaptive_thinking_as_the_effort():
    out = responses.build_request(body(CC_THINKING, "medium"), ModelConfig("opencode-zen", "gpt-5.5"), stream=True)
    assert out["reasoning"]["effort"] == "medium"
    out = responses.build_request(body(CC_THINKING, "max"), ModelConfig("opencode-zen", "gpt-5.5"), stream=True)
    assert out["reasoning"]["effort"] == "high"


def test_gemini_reads_adaptive_thinking_as_a_budget_never_zero():
    out = gemini.build_request(body(CC_THINKING), ModelConfig("opencode-zen", "gemini-2.5-pro"), stream=True)
    assert out["generationConfig"]["thinkingConfig"]["thinkingBudget"] > 0
    out = gemini.build_request(body(CC_THINKING, "low"), ModelConfig("opencode-zen", "gemini-2.5-pro"), stream=True)
    assert out["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 1024

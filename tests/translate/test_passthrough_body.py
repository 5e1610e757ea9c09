"""The rest of Claude Code's body on the Anthropic passthrough (docs/passthrough-body.md): which endpoint
takes what (:func:`body_caps`), and :func:`fit_body` on the bodies Claude Code 2.1.197 and 2.1.331 send,
plus the same bodies through the translated wires."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.claude_code_bodies import BETAS_197, BETAS_331, DEFERRED_LIST, PROMPT, REMINDER, cc_2_1_197, cc_2_1_331

from occ.config.model import ModelConfig
from occ.config.parse import ConfigError, parse_config
from occ.config.presets import PORTABLE_BODY, BodyCaps, body_caps, claude_body_caps
from occ.translate import gemini, openai_chat, responses
from occ.translate.anthropic_passthrough import build_body, fit_body, forward_headers
from occ.translate.anthropic_request import effort_of

GO = ModelConfig("opencode-go", "minimax-m3")
ZEN_OPUS = ModelConfig("opencode-zen", "claude-opus-4-8")
ZEN_SONNET_45 = ModelConfig("opencode-zen", "claude-sonnet-4-5")
CUSTOM = ModelConfig("mine", "glm-5.2")  # a custom Anthropic-compatible provider occ has no table for
NATIVE = BodyCaps(True, True, True, "test")


def build(body: dict, model: ModelConfig, log=None) -> dict:
    return json.loads(build_body(json.dumps(body).encode(), body, model, log))


def wrapped(text: str) -> str:
    return f"<system-reminder>\n{text}\n</system-reminder>"


# -- which endpoint takes what ------------------------------------------------------------------------


@pytest.mark.parametrize(("model_id", "system", "search"), [
    ("claude-opus-4-8", True, True),
    ("claude-opus-5-5", True, True),
    ("claude-sonnet-5", True, True),
    ("claude-mythos-5", True, True),
    ("claude-opus-4-7", False, True),
    ("claude-sonnet-4-6", False, True),
    ("claude-sonnet-4-5-20250929", False, True),
    ("claude-haiku-4-5-20251001", False, True),
    ("claude-opus-4-20250514", False, True),
    ("claude-3-7-sonnet-20250219", False, False),
    ("claude-3-5-haiku-20241022", False, False),
])
def test_claude_models_by_claude_codes_own_rules(model_id, system, search):
    caps = claude_body_caps(model_id)
    assert (caps.system_messages, caps.tool_search, caps.cache_scope) == (system, search, True)
    assert body_caps(ModelConfig("opencode-zen", model_id)) == caps


@pytest.mark.parametrize("model", [GO, ModelConfig("opencode-go", "qwen3.7-plus"),
                                   ModelConfig("opencode-zen", "qwen3.7-plus"), CUSTOM,
                                   ModelConfig("opencode-zen", "anthropic/claude-opus-4-8")])
def test_every_endpoint_that_is_not_claude_gets_the_portable_body(model):
    assert body_caps(model) == PORTABLE_BODY


def test_the_config_key_says_it_for_any_model():
    assert body_caps(ModelConfig("mine", "glm-5.2", anthropic_body="native")).system_messages
    assert not body_caps(ModelConfig("opencode-zen", "claude-opus-4-8", anthropic_body="portable")).tool_search


def test_anthropic_body_is_parsed_and_checked():
    base = {"providers": {"p": {"anthropic_base_url": "http://127.0.0.1:1/v1/messages", "api_key": "k",
                                "protocol": "anthropic"}}}
    config = parse_config({**base, "models": {"default": {"provider": "p", "model_id": "m",
                                                         "anthropic_body": "native"}}}, env={}, source="t")
    assert config.models["default"].anthropic_body == "native"
    with pytest.raises(ConfigError, match="anthropic_body"):
        parse_config({**base, "models": {"default": {"provider": "p", "model_id": "m", "anthropic_body": "yes"}}},
                     env={}, source="t")


def test_betas_of_what_an_endpoint_is_sent_as_it_is():
    assert forward_headers({"anthropic-beta": BETAS_331}, body_caps(ZEN_OPUS).betas)["anthropic-beta"] == \
        "interleaved-thinking-2025-05-14,per-turn-control-2026-07-01,advanced-tool-use-2025-11-20,effort-2025-11-24"
    assert "mid-conversation-system-2026-04-07" in \
        forward_headers({"anthropic-beta": BETAS_197}, body_caps(ZEN_OPUS).betas)["anthropic-beta"]
    go = forward_headers({"anthropic-beta": BETAS_331}, body_caps(GO).betas)["anthropic-beta"]
    assert go == "interleaved-thinking-2025-05-14,effort-2025-11-24"


# -- Claude Code 2.1.197 ------------------------------------------------------------------------------


def test_2_1_197_system_message_becomes_a_reminder_after_the_prompt():
    sent = cc_2_1_197()
    lines = []
    out = build(sent, GO, lines.append)
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    first = out["messages"][0]["content"]
    assert first[:2] == sent["messages"][0]["content"], "the turn's own blocks come first, unchanged"
    assert first[2] == {"type": "text", "text": wrapped(sent["messages"][1]["content"])}
    assert out["messages"][1:] != sent["messages"][2:]  # the tool_reference became text (below)
    assert out["system"] == sent["system"], "the top-level system (the cached prefix) is untouched"
    assert "folded" in lines[0] and lines[0].startswith("body for opencode-go/minimax-m3")


def test_the_cache_breakpoint_stays_where_the_client_put_it():
    sent = cc_2_1_197(tool_search_turn=False)
    first = build(sent, GO)["messages"][0]["content"]
    assert [b.get("cache_control") for b in first] == [None, {"type": "ephemeral"}, None]
    assert first[1]["text"] == PROMPT and first[0]["text"] == REMINDER


def test_2_1_197_tool_search_turn_keeps_the_loaded_tool_callable():
    out = build(cc_2_1_197(), GO)
    result = out["messages"][2]["content"][0]
    assert result == {"type": "tool_result", "tool_use_id": "toolu_up_1",
                      "content": [{"type": "text", "text": "Tool loaded: NotebookEdit"}]}
    assert out["messages"][2]["content"][1] == {"type": "text", "text": "Tool loaded.",
                                                "cache_control": {"type": "ephemeral"}}
    names = [t["name"] for t in out["tools"]]
    assert "NotebookEdit" in names and "ToolSearch" in names
    assert not any("defer_loading" in t for t in out["tools"])
    dumped = json.dumps(out)
    for absent in ('"role": "system"', "tool_reference", "defer_loading"):
        assert absent not in dumped


def test_what_is_not_in_the_way_is_sent_byte_for_byte():
    """Thinking signatures, tool schemas ($schema included: no Anthropic-wire endpoint is known to
    reject it), metadata and key order pass unchanged."""
    sent = cc_2_1_197()
    out = build(sent, GO)
    assert list(out) == [k for k in sent if k != "output_config"]  # Go takes no effort (docs/thinking.md)
    assert out["messages"][1] == sent["messages"][2]
    assert out["tools"][0] == sent["tools"][0] and "$schema" in out["tools"][0]["input_schema"]
    assert out["metadata"] == sent["metadata"]


# -- Claude Code 2.1.331 ------------------------------------------------------------------------------


def test_2_1_331_list_system_message_and_its_effort():
    sent = cc_2_1_331()
    out = build(sent, CUSTOM)
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in out["messages"])
    folded = out["messages"][0]["content"][2:]
    assert [b["text"] for b in folded] == [wrapped(b["text"]) for b in sent["messages"][1]["content"]]
    assert out["output_config"] == {"effort": "medium"}
    assert "context_management" not in out
    assert [t["name"] for t in out["tools"]] == ["Agent", "Bash", "Edit", "NotebookEdit", "ListAgents", "Read",
                                                 "ReportFindings", "ScheduleWakeup", "Skill", "ToolSearch",
                                                 "Workflow", "Write"], "the placeholder is never shown"


def test_2_1_331_effort_on_the_message_only_is_lifted():
    sent = cc_2_1_331()
    del sent["output_config"]
    out = build(sent, CUSTOM)
    assert out["output_config"] == {"effort": "medium"}
    go = build(sent, GO)  # Go takes no effort: it becomes the budget
    assert go["thinking"] == {"type": "enabled", "budget_tokens": 8192} and "output_config" not in go


def test_2_1_331_before_the_first_tool_search():
    out = build(cc_2_1_331(loaded=False), GO)
    assert "NotebookEdit" not in json.dumps(out["tools"]) and "DeferredToolPlaceholder" not in json.dumps(out)
    assert out["messages"][0]["content"][-1]["text"] == wrapped(cc_2_1_331()["messages"][1]["content"][2]["text"])


def test_zen_claude_gets_it_all_as_sent():
    for sent in (cc_2_1_197(), cc_2_1_331()):
        out = build(sent, ZEN_OPUS)
        assert out["messages"] == sent["messages"]
        assert out["tools"] == sent["tools"]


def test_an_older_claude_gets_system_text_folded_and_keeps_tool_search():
    out = build(cc_2_1_331(), ZEN_SONNET_45)
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert "tool_reference" in json.dumps(out) and any(t.get("defer_loading") for t in out["tools"])


# -- placement ----------------------------------------------------------------------------------------


def body(*messages, **extra) -> dict:
    return {"model": "m", "max_tokens": 100, "messages": list(messages), **extra}


def user(*content):
    return {"role": "user", "content": list(content)}


def text(t, **extra):
    return {"type": "text", "text": t, **extra}


def test_a_leading_system_message_joins_the_top_level_system():
    request = body({"role": "system", "content": "Be brief."}, user(text("hi")), system="You are occ.")
    fit_body(request, PORTABLE_BODY)
    assert request["system"] == [text("You are occ."), text("Be brief.")]
    assert request["messages"] == [user(text("hi"))]


def test_after_an_assistant_turn_it_goes_after_the_next_turns_tool_results():
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
    request = body(user(text("go")), {"role": "assistant", "content": [{"type": "tool_use", "id": "t1",
                                                                        "name": "Bash", "input": {}}]},
                   {"role": "system", "content": [text("new rule", cache_control={"type": "ephemeral"})]},
                   user(result, text("next")))
    fit_body(request, PORTABLE_BODY)
    assert request["messages"][2]["content"] == [result, text(wrapped("new rule"),
                                                              cache_control={"type": "ephemeral"}), text("next")]


def test_a_system_message_last_after_an_assistant_turn_is_a_user_turn():
    request = body(user(text("go")), {"role": "assistant", "content": "done"}, {"role": "system", "content": "x"})
    fit_body(request, PORTABLE_BODY)
    assert request["messages"][-1] == user(text(wrapped("x")))


def test_mid_conv_system_blocks_are_system_text_in_place():
    request = body(user(text("a"), {"type": "mid_conv_system", "content": [text("rule")]}, text("b")))
    fit_body(request, PORTABLE_BODY)
    assert request["messages"] == [user(text("a"), text(wrapped("rule")), text("b"))]


def test_text_already_in_a_reminder_is_not_wrapped_twice_and_empty_text_is_dropped():
    request = body(user(text("a")), {"role": "system", "content": [text(wrapped("r")), text("  ")]})
    fit_body(request, PORTABLE_BODY)
    assert request["messages"] == [user(text("a"), text(wrapped("r")))]


def test_cache_scope_is_removed_for_the_portable_body_only():
    def scoped():
        return body(user(text("a", cache_control={"type": "ephemeral", "scope": "global"})),
                    system=[text("s", cache_control={"type": "ephemeral", "ttl": "1h", "scope": "global"})])
    request = scoped()
    assert fit_body(request, PORTABLE_BODY) == ["cache_control scope removed"]
    assert request["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert request["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    kept = scoped()
    assert fit_body(kept, NATIVE) == [] and kept == scoped()


def test_a_deferred_tool_a_call_names_stays():
    request = body(user(text("a")), {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "X",
                                                                       "input": {}}]},
                   user({"type": "tool_result", "tool_use_id": "t", "content": "ok"}),
                   tools=[{"name": "X", "input_schema": {"type": "object"}, "defer_loading": True},
                          {"name": "Y", "input_schema": {"type": "object"}, "defer_loading": False}])
    fit_body(request, PORTABLE_BODY)
    assert request["tools"] == [{"name": "X", "input_schema": {"type": "object"}},
                                {"name": "Y", "input_schema": {"type": "object"}}]


@pytest.mark.parametrize("make", [cc_2_1_197, cc_2_1_331])
def test_building_never_changes_the_validated_request(make):
    """build_body works on a shallow copy of the request other attempts still read: every fit copies
    what it changes."""
    import copy

    request = make()
    request["system"][1]["cache_control"]["scope"] = "global"
    request["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral", "scope": "global"}
    before = copy.deepcopy(request)
    for model in (GO, CUSTOM, ZEN_SONNET_45, ZEN_OPUS):
        build_body(json.dumps(request).encode(), request, model)
        assert request == before
    go = json.loads(build_body(json.dumps(request).encode(), request, GO))
    assert "scope" not in json.dumps(go) and "tool_reference" not in json.dumps(go)


def test_a_plain_body_is_sent_as_the_client_sent_it():
    raw = b'{"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}'
    out = build_body(raw, {}, ModelConfig("mine", "claude-x"))
    assert out == raw


def test_effort_of_reads_the_latest_per_turn_setting():
    messages = [{"role": "system", "content": "a", "output_config": {"effort": "low"}}, *body(user(text("b")))[
        "messages"], {"role": "system", "content": "c", "output_config": {"effort": "max"}}]
    assert effort_of({"messages": messages}) == "max"
    assert effort_of({"messages": messages, "output_config": {"effort": "medium"}}) == "medium"


# -- property: whatever the arrangement, the portable body is well formed and nothing is lost ----------

_TURN = st.sampled_from(["user", "assistant", "system", "system-list", "user-results"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_TURN, min_size=1, max_size=12))
def test_portable_body_keeps_order_and_every_system_text(kinds):
    messages = []
    for i, kind in enumerate(kinds):
        if kind == "user":
            messages.append(user(text(f"u{i}")))
        elif kind == "user-results":
            messages.append(user({"type": "tool_result", "tool_use_id": f"t{i}", "content": "r"}, text(f"u{i}")))
        elif kind == "assistant":
            messages.append({"role": "assistant", "content": [text(f"a{i}")]})
        elif kind == "system":
            messages.append({"role": "system", "content": f"s{i}", "output_config": {"effort": "low"}})
        else:
            messages.append({"role": "system", "content": [text(f"s{i}"), text(f"z{i}")]})
    request = body(*messages)
    fit_body(request, PORTABLE_BODY)
    out = request["messages"]
    assert all(m["role"] in ("user", "assistant") and set(m) == {"role", "content"} for m in out)
    own = [t for m in out for b in m["content"] if isinstance(b, dict) and b.get("type") == "text"
           for t in [b["text"]] if not t.startswith("<system-reminder>")]
    expected = [f"{'a' if k == 'assistant' else 'u'}{i}" for i, k in enumerate(kinds) if not k.startswith("system")]
    assert own == expected
    texts = [b.get("text", "") for m in out for b in m["content"]] + [
        b["text"] for b in request.get("system") or []]
    for i, kind in enumerate(kinds):  # every system text exactly once, in the system or as a reminder
        if kind.startswith("system"):
            assert sum(t in (f"s{i}", wrapped(f"s{i}")) for t in texts) == 1
    for m in out:
        kinds_in = [b.get("type") for b in m["content"]]
        if "tool_result" in kinds_in:
            assert kinds_in.index("text") > max(i for i, k in enumerate(kinds_in) if k == "tool_result")


# -- the translated wires read the same bodies --------------------------------------------------------


@pytest.mark.parametrize("wire", ["chat", "responses", "gemini"])
def test_the_other_wires_take_the_2_1_331_body(wire):
    request = cc_2_1_331()
    if wire == "chat":
        out = openai_chat.build_request(request, ModelConfig("opencode-go", "kimi-k3"), stream=True)
        assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant", "tool", "user"]
        assert DEFERRED_LIST in out["messages"][0]["content"]
        names = [t["function"]["name"] for t in out["tools"]]
        assert out["reasoning_effort"] == "medium"
    elif wire == "responses":
        out = responses.build_request(request, ModelConfig("opencode-zen", "gpt-5.5"), stream=True)
        assert DEFERRED_LIST in out["instructions"]
        assert not any(i.get("role") == "system" for i in out["input"])
        assert out["reasoning"]["effort"] == "medium"
        names = [t["name"] for t in out["tools"]]
    else:
        out = gemini.build_request(request, ModelConfig("opencode-zen", "gemini-3.1-pro"), stream=True)
        assert DEFERRED_LIST in out["systemInstruction"]["parts"][0]["text"]
        assert {c["role"] for c in out["contents"]} <= {"user", "model"}
        names = [d["name"] for d in out["tools"][0]["functionDeclarations"]]
    assert "NotebookEdit" in names and "DeferredToolPlaceholder" not in names
    dumped = json.dumps(out)
    assert "Tool loaded: NotebookEdit" in dumped
    for absent in ("tool_reference", "defer_loading", '"output_config"', "$schema"):
        assert absent not in dumped

"""Anthropic request -> chat-completions body: one test per rule, Claude Code's real request shape,
and the protocols.md §7 edge cases that concern the request side."""

from __future__ import annotations

import json
from typing import Any

import pytest

from occ.config.model import ModelConfig
from occ.translate.openai_chat import build_request
from occ.translate.tool_ids import from_upstream_id, to_upstream_id

KIMI = ModelConfig(provider="opencode-go", model_id="kimi-k2.6", max_tokens=8192)
DEEPSEEK = ModelConfig(provider="opencode-go", model_id="deepseek-v4-pro")
PLAIN = ModelConfig(provider="p", model_id="llama-3.3-70b")
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def body(messages: list[dict[str, Any]], model: ModelConfig = PLAIN, *, stream: bool = False,
         log: Any = None, **fields: Any) -> dict[str, Any]:
    return build_request({"model": "claude-opus-4-8", "max_tokens": 1000, "messages": messages, **fields}, model,
                         stream=stream, log=log)


def roles(out: dict[str, Any]) -> list[str]:
    return [m["role"] for m in out["messages"]]


def user(*content: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(content) if len(content) != 1 or not isinstance(content[0], str)
            else content[0]}


def assistant(*content: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(content)}


def tool_use(call_id: str, name: str = "Bash", **args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": args}


def result(call_id: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, **extra}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


# -- system and content ------------------------------------------------------------------------------


def test_system_string_is_one_leading_system_message():
    out = body([user("hi")], system="Be brief.")
    assert out["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


def test_no_system_no_system_message():
    assert roles(body([user("hi")])) == ["user"]


def test_edge_25_28_system_blocks_and_role_system_messages_fold_and_billing_header_goes():
    out = body([user("hi"), {"role": "system", "content": [text("# Environment\ncwd: /repo")],
                             "output_config": {"effort": "medium"}}, user("go")],
               system=[text("x-anthropic-billing-header: cc_version=2.1.331.c8e; cch=9f3a1;"),
                       {"type": "text", "text": "You are Claude.", "cache_control": {"type": "ephemeral"}}])
    assert out["messages"][0] == {"role": "system", "content": "You are Claude.\n\n# Environment\ncwd: /repo"}
    assert roles(out) == ["system", "user"] and out["messages"][1]["content"] == "hi\ngo"
    assert "cch=" not in json.dumps(out) and "cache_control" not in json.dumps(out)


def test_text_only_content_is_a_plain_string():
    assert body([user(text("a"), text("b"))])["messages"][0]["content"] == "a\nb"


def test_images_become_image_url_parts_base64_and_url():
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    content = body([user(text("see"), IMAGE, url_image)])["messages"][0]["content"]
    assert content == [{"type": "text", "text": "see"},
                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                       {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]


def test_edge_48_images_on_a_text_only_model_become_placeholders():
    text_only = ModelConfig(provider="p", model_id="m", vision=False)
    out = body([user(text("see"), IMAGE), assistant(text("ok")), user("again")], text_only)
    assert out["messages"][0]["content"] == "see\n[Image]"
    assert "base64" not in json.dumps(out)


def test_documents_with_text_become_text():
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "file body"}}
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    assert body([user(doc, pdf, text("summarise"))])["messages"][0]["content"] == "file body\n[document]\nsummarise"


def test_edge_34_consecutive_same_role_messages_merge_and_reasoner_gets_strings():
    reasoner = ModelConfig(provider="p", model_id="deepseek-reasoner")
    out = body([user("a"), user(text("b"), IMAGE), assistant(text("x")), assistant(text("y")), user("c")], reasoner)
    assert roles(out) == ["user", "assistant", "user"]
    assert out["messages"][0]["content"] == "a\nb\n[Image]"
    assert out["messages"][1]["content"] == "x\n\ny"


# -- assistant turns, tool calls and results --------------------------------------------------------------


def test_tool_use_becomes_tool_calls_with_compact_arguments_and_null_content():
    out = body([user("do"), assistant(tool_use("call_1", "Bash", command="ls -la", timeout=5)),
                user(result("call_1"))])
    message = out["messages"][1]
    assert message == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "Bash",
                                                          "arguments": '{"command":"ls -la","timeout":5}'}}]}


def test_assistant_text_with_tool_calls_keeps_the_text():
    out = body([user("do"), assistant(text("Let me check."), tool_use("c1")), user(result("c1"))])
    assert out["messages"][1]["content"] == "Let me check."


def test_tool_results_in_call_order_before_user_text_with_errors_marked():
    out = body([user("do"), assistant(tool_use("c1", "A"), tool_use("c2", "B")),
                user(text("and now?"), result("c2", "bad", is_error=True), result("c1", [text("fine")]))])
    assert roles(out) == ["user", "assistant", "tool", "tool", "user"]
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "fine"}
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "c2", "content": "Error: bad"}
    assert out["messages"][4] == {"role": "user", "content": "and now?"}


def test_tool_result_images_follow_as_a_user_message_on_vision_models():
    out = body([user("look"), assistant(tool_use("c1", "Read", file_path="a.png")),
                user(result("c1", [text("image file"), IMAGE]))])
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "image file\n[image]"}
    assert out["messages"][3]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    text_only = ModelConfig(provider="p", model_id="m", vision=False)
    out = body([user("look"), assistant(tool_use("c1", "Read")), user(result("c1", [IMAGE]))], text_only)
    assert roles(out) == ["user", "assistant", "tool"] and out["messages"][2]["content"] == "[image]"


def test_tool_reference_blocks_and_empty_results():
    out = body([user("find"), assistant(tool_use("c1", "ToolSearch", query="select:NotebookEdit"),
                                        tool_use("c2", "Bash")),
                user(result("c1", [{"type": "tool_reference", "tool_name": "NotebookEdit"}]), result("c2", ""),
                     text("Tool loaded."))])
    assert out["messages"][2]["content"] == "Tool loaded: NotebookEdit"
    assert out["messages"][3]["content"] == "(empty result)"


def test_edge_35_a_call_without_result_gets_a_stub_tool_message():
    out = body([user("do"), assistant(tool_use("c1"), tool_use("c2")), user(result("c2"), text("stop"))])
    assert roles(out) == ["user", "assistant", "tool", "tool", "user"]
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "(no result)"}
    out = body([user("do"), assistant(tool_use("c1"))])  # cancelled: the history ends on the call
    assert out["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "(no result)"}


def test_edge_36_a_result_without_its_call_becomes_user_text():
    out = body([user("do"), assistant(text("ok")), user(result("gone", "late output"), text("next"))])
    assert roles(out) == ["user", "assistant", "user"] and "tool_call_id" not in json.dumps(out)
    assert out["messages"][2]["content"] == "[result of an earlier tool call]\nlate output\nnext"


THINKING_TURN = [user("do"), assistant({"type": "thinking", "thinking": "plan", "signature": "EqQBCkgIARAB"},
                                       {"type": "redacted_thinking", "data": "opaque"}, tool_use("c1")),
                 user(result("c1"))]


@pytest.mark.parametrize("model_id", ["deepseek-v4-pro", "kimi-k2.6", "glm-5.1", "mimo-v2-pro", "qwen3.6-plus"])
def test_edge_32_33_reasoning_content_replayed_on_tool_call_turns(model_id):
    out = body(THINKING_TURN, ModelConfig(provider="p", model_id=model_id))
    assert out["messages"][1]["reasoning_content"] == "plan"
    assert "EqQBCkgIARAB" not in json.dumps(out) and "opaque" not in json.dumps(out)


def test_edge_32_reasoning_content_is_sent_even_empty():
    out = body([user("do"), assistant(tool_use("c1")), user(result("c1"))], DEEPSEEK)
    assert out["messages"][1]["reasoning_content"] == ""


def test_reasoning_dropped_for_other_families_and_turns_without_calls():
    assert "reasoning_content" not in body(THINKING_TURN)["messages"][1]
    out = body([user("hi"), assistant({"type": "thinking", "thinking": "hm", "signature": "s"}, text("Hello")),
                user("bye")], DEEPSEEK)
    assert "reasoning_content" not in out["messages"][1]


def test_minimax_gets_its_think_text_back_in_content_on_tool_turns():
    out = body(THINKING_TURN, ModelConfig(provider="p", model_id="minimax-m3"))
    assert out["messages"][1]["content"] == "<think>plan</think>"


def test_edge_31_a_thinking_only_turn_is_dropped_without_leaving_an_empty_message():
    out = body([user("a"), assistant({"type": "thinking", "thinking": "hm", "signature": "foreign"}), user("b")],
               DEEPSEEK)
    assert out["messages"] == [{"role": "user", "content": "a\nb"}]


def test_edge_13_14_tool_ids_mapped_consistently_both_ways():
    kimi_id = from_upstream_id("functions.Bash:0")
    long_id = "toolu_" + "x" * 50
    out = body([user("do"), assistant(tool_use(kimi_id), tool_use(long_id)), user(result(kimi_id), result(long_id))])
    call_ids = [c["id"] for c in out["messages"][1]["tool_calls"]]
    assert call_ids[0] == "functions.Bash:0" and len(call_ids[1]) <= 40
    assert [m["tool_call_id"] for m in out["messages"][2:]] == call_ids
    assert to_upstream_id("toolu_01ABC") == "toolu_01ABC"


def test_edge_15_long_tool_names_shortened_the_same_everywhere():
    name = "mcp__some_server__" + "a_very_long_tool_name_" * 3
    out = body([user("x"), assistant(tool_use("c1", name)), user(result("c1"))],
               tools=[{"name": name, "input_schema": {"type": "object"}}],
               tool_choice={"type": "tool", "name": name})
    short = out["tools"][0]["function"]["name"]
    assert len(short) <= 64 and out["messages"][1]["tool_calls"][0]["function"]["name"] == short
    assert out["tool_choice"] == {"type": "function", "function": {"name": short}}


# -- parameters --------------------------------------------------------------------------------------------

TOOLS = [{"name": "A", "input_schema": {"type": "object"}}]


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "A"}, {"type": "function", "function": {"name": "A"}}),
])
def test_tool_choice_mapping(choice, expected):
    assert body([user("x")], tools=TOOLS, tool_choice=choice)["tool_choice"] == expected


def test_disable_parallel_tool_use_only_with_tools():
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    assert body([user("x")], tools=TOOLS, tool_choice=choice)["parallel_tool_calls"] is False
    out = body([user("x")], tool_choice=choice)
    assert "parallel_tool_calls" not in out and "tool_choice" not in out and "tools" not in out


def test_stop_sequences_at_most_four_and_never_empty():
    assert body([user("x")], stop_sequences=["a", "", "b", "c", "d", "e"])["stop"] == ["a", "b", "c", "d"]
    assert "stop" not in body([user("x")], stop_sequences=[])


def test_temperature_and_top_p_from_the_client_unless_configured():
    out = body([user("x")], temperature=0.3, top_p=0.9)
    assert (out["temperature"], out["top_p"]) == (0.3, 0.9)
    assert body([user("x")], temperature=0)["temperature"] == 0  # falsy, still the client's
    configured = ModelConfig(provider="p", model_id="m", temperature=0.0, top_p=0.5)
    out = body([user("x")], configured, temperature=1.0, top_p=0.9)
    assert out["temperature"] == 0.0 and out["top_p"] == 0.5


def test_deepseek_thinking_drops_temperature_and_top_p():
    out = body([user("x")], DEEPSEEK, temperature=0.2, top_p=0.5, thinking={"type": "adaptive"})
    assert "temperature" not in out and "top_p" not in out and out["reasoning_effort"] == "high"


def test_edge_49_max_tokens_clamped_to_the_model_cap_and_logged():
    logs: list[str] = []
    out = build_request({"model": "m", "max_tokens": 64000, "messages": [user("x")]}, KIMI, stream=False,
                        log=logs.append)
    assert out["max_tokens"] == 8192 and logs == ["max_tokens 64000 clamped to 8192 for opencode-go/kimi-k2.6"]
    logs.clear()
    assert build_request({"model": "m", "max_tokens": 100, "messages": [user("x")]}, KIMI, stream=False,
                         log=logs.append)["max_tokens"] == 100
    assert logs == []


@pytest.mark.parametrize(("request_fields", "model", "effort"), [
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}}, KIMI, "medium"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, KIMI, "low"),
    ({"thinking": {"type": "enabled", "budget_tokens": 31999}}, KIMI, "high"),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}, DEEPSEEK, "max"),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}}, KIMI, "high"),
    ({"thinking": {"type": "disabled"}}, KIMI, None),
    ({"thinking": {"type": "adaptive"}}, PLAIN, None),
    ({}, ModelConfig(provider="p", model_id="llama", reasoning_effort="low"), "low"),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}},
     ModelConfig(provider="p", model_id="llama", reasoning_effort="high"), "high"),  # configured beats client
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}}, PLAIN, None),
])
def test_reasoning_effort(request_fields, model, effort):
    assert body([user("x")], model, **request_fields).get("reasoning_effort") == effort


def test_configured_thinking_is_forwarded():
    model = ModelConfig(provider="p", model_id="glm-5.1", thinking={"type": "enabled", "clear_thinking": False})
    assert body([user("x")], model)["thinking"] == {"type": "enabled", "clear_thinking": False}


def test_edge_38_qwen_thinking_is_switched_off_without_streaming():
    qwen = ModelConfig(provider="p", model_id="qwen3.6-plus")
    fields = {"thinking": {"type": "adaptive"}}
    out = body([user("x")], qwen, **fields)
    assert out["enable_thinking"] is False and "reasoning_effort" not in out
    streaming = body([user("x")], qwen, stream=True, **fields)
    assert "enable_thinking" not in streaming and streaming["reasoning_effort"] == "high"


def test_output_format_json_schema_becomes_response_format():
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    out = body([user("x")], output_config={"format": {"type": "json_schema", "schema": schema}})
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def test_streaming_asks_for_usage():
    out = body([user("x")], stream=True)
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "stream" not in body([user("x")])


def test_anthropic_only_fields_are_dropped():
    out = body([user("x")], top_k=5, metadata={"user_id": "u"}, service_tier="auto", speed="fast",
               context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
               cache_control={"type": "ephemeral"})
    assert set(out) == {"model", "messages", "max_tokens"}


def test_claude_code_main_loop_request():
    """The shape Claude Code 2.1.331 sends (claude-code-client.md §3), against Kimi on OpenCode Go."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"command": {"type": "string"}}, "required": ["command"], "additionalProperties": False}
    request = {
        "model": "claude-opus-5-5", "max_tokens": 128000, "stream": True,
        "system": [text("x-anthropic-billing-header: cc_version=2.1.331.c8e; cc_entrypoint=sdk-cli; cch=1f2e;"),
                   {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            user(text("<system-reminder>ctx</system-reminder>"), {"type": "text", "text": "list files",
                                                                   "cache_control": {"type": "ephemeral"}}),
            {"role": "system", "content": [text("# Environment")], "output_config": {"effort": "medium"}},
            assistant({"type": "thinking", "thinking": "Use Bash.", "signature": "sig"},
                      tool_use("toolu_01Bash", "Bash", command="ls")),
            user(result("toolu_01Bash", "a.py\nb.py")),
        ],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": schema},
                  {"name": "DeferredToolPlaceholder", "input_schema": {"type": "object"}, "defer_loading": True},
                  {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        "metadata": {"user_id": json.dumps({"session_id": "s"})},
        "thinking": {"type": "adaptive", "display": "updates"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }
    out = build_request(request, KIMI, stream=True)
    assert roles(out) == ["system", "user", "assistant", "tool"]
    assert out["messages"][0]["content"] == "You are a Claude agent.\n\n# Environment"
    assert out["messages"][1]["content"] == "<system-reminder>ctx</system-reminder>\nlist files"
    assert out["messages"][2]["reasoning_content"] == "Use Bash."
    # a deferred tool no tool_reference has loaded stays hidden, as on Anthropic (docs/passthrough-body.md)
    assert [t["function"]["name"] for t in out["tools"]] == ["Bash"]
    # Claude Code's schema, less its $schema annotation (the drop_meta_keywords rule)
    assert out["tools"][0]["function"]["parameters"] == {k: v for k, v in schema.items() if k != "$schema"}
    assert out["max_tokens"] == 8192 and out["reasoning_effort"] == "medium"
    dumped = json.dumps(out)
    for absent in ("cch=", "cache_control", "defer_loading", "context_management", "metadata", "signature"):
        assert absent not in dumped

"""Peer projects' own translation cases, Anthropic Messages <-> OpenAI Responses, run against occ.

Ported as data written here (no peer code), each test naming the file its case comes from:

- LiteLLM ``tests/test_litellm/llms/anthropic/experimental_pass_through/responses_adapters/
  test_responses_adapters_transformation.py`` (``[L-resp]``),
- LiteLLM ``.../responses_adapters/test_responses_adapters_streaming_iterator.py`` (``[L-resp-stream]``).

Where occ answers differently, the test asserts occ's answer and says why it follows OpenAI's documented
shape. Answers are built from the ``openai`` SDK's Responses types and dumped by it (``"error": null``
and the other nulls included).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from support.anthropic_checker import check_stream, translate_chunks

from occ.config.model import ModelConfig
from occ.core.errors import UpstreamProtocolError
from occ.translate.responses import ResponsesStreamTranslator, build_request, translate_response

GPT = ModelConfig(provider="p", model_id="gpt-4o")


def request(messages: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    return build_request({"model": "claude-sonnet-4-5", "max_tokens": 1024,
                          "messages": messages or [{"role": "user", "content": "hello"}], **fields},
                         GPT, stream=False)


def user_items(content: Any) -> list[dict[str, Any]]:
    return request([{"role": "user", "content": content}])["input"]


def response(output: list[dict[str, Any]], *, status: str = "completed", input_tokens: int = 100,
             output_tokens: int = 50, details: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A ``response`` object as the openai SDK types hold and serialise it."""
    from openai.types.responses import Response

    body = {"id": "resp_001", "object": "response", "created_at": 1700000000, "model": "gpt-4o", "status": status,
            "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "total_tokens": input_tokens + output_tokens,
                      "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, **(details or {})},
                      "output_tokens_details": {"reasoning_tokens": 0}}, **extra}
    return json.loads(Response.model_validate(body).model_dump_json())


def message(*texts: str) -> dict[str, Any]:
    return {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": t, "annotations": []} for t in texts]}


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name, "arguments": arguments,
            "status": "completed"}


def reasoning(*summaries: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": s} for s in summaries]}


def answer(body: dict[str, Any]) -> dict[str, Any]:
    return translate_response(body, message_id="msg_x", model_name="claude-sonnet-4-5", input_estimate=9,
                              route=GPT.label)


def events(*objects: dict[str, Any]) -> bytes:
    """SSE frames of Responses stream events, each validated and dumped by the openai SDK."""
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ResponseStreamEvent)
    out = []
    for seq, obj in enumerate(objects):
        dumped = adapter.dump_json(adapter.validate_python({"sequence_number": seq, **obj})).decode()
        out.append(f"event: {obj['type']}\ndata: {dumped}\n\n")
    return "".join(out).encode()


def stream(raw: bytes) -> dict[str, Any]:
    return check_stream(translate_chunks(partial(ResponsesStreamTranslator, route=GPT.label), [raw])[0])


# -- request: input items --------------------------------------------------------------------------------


def test_user_string_is_a_message_with_input_text():
    # [L-resp] test_user_string_content
    assert user_items("Hello world") == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello world"}]}]


def test_user_text_blocks_are_input_text_parts():
    # [L-resp] test_user_list_text_block / test_user_multiple_text_blocks
    items = user_items([{"type": "text", "text": "First part."}, {"type": "text", "text": "Second part."}])
    assert items == [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "First part."}, {"type": "input_text", "text": "Second part."}]}]


def test_images_are_input_image_parts():
    # [L-resp] test_user_base64_image / test_user_url_image / test_user_text_and_image_mixed
    items = user_items([
        {"type": "text", "text": "Describe this image:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "abc123"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}])
    assert items[0]["content"] == [
        {"type": "input_text", "text": "Describe this image:"},
        {"type": "input_image", "image_url": "data:image/png;base64,abc123"},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg"}]


@pytest.mark.parametrize("source", [
    {"type": "base64", "media_type": "image/jpeg", "data": ""},  # [L-resp] test_user_base64_image_empty_data_skipped
    {"type": "file_path", "path": "/tmp/img.png"},  # [L-resp] test_unknown_image_source_type_skipped
])
def test_an_image_that_cannot_be_sent_is_left_out(source: dict[str, Any]):
    items = user_items([{"type": "text", "text": "look"}, {"type": "image", "source": source}])
    assert items == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "look"}]}]


def test_tool_results_are_function_call_outputs():
    # [L-resp] test_user_tool_result_string_content / test_user_tool_result_list_content
    items = user_items([{"type": "tool_result", "tool_use_id": "call_abc", "content": "42 degrees"},
                        {"type": "tool_result", "tool_use_id": "call_xyz",
                         "content": [{"type": "text", "text": "Line 1"}, {"type": "text", "text": "Line 2"}]}])
    assert items[0] == {"type": "function_call_output", "call_id": "call_abc", "output": "42 degrees"}
    assert items[1]["call_id"] == "call_xyz"
    assert "Line 1" in items[1]["output"] and "Line 2" in items[1]["output"]


def test_a_null_tool_result_is_still_an_output():
    # [L-resp] test_user_tool_result_null_content: LiteLLM sends ""; occ says so in words, because an
    # empty output reads to the model like a tool that did not run.
    items = user_items([{"type": "tool_result", "tool_use_id": "call_null", "content": None}])
    assert items[0]["type"] == "function_call_output" and items[0]["call_id"] == "call_null"
    assert isinstance(items[0]["output"], str) and items[0]["output"]


def test_assistant_text_and_calls():
    # [L-resp] test_assistant_string_content / test_assistant_text_block /
    # test_assistant_tool_use_becomes_function_call / test_mixed_messages_ordering
    items = request([
        {"role": "user", "content": "What's the weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_02", "name": "get_weather",
                                           "input": {"city": "NYC"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_02", "content": "Sunny, 72F"}]},
        {"role": "assistant", "content": "It's sunny and 72°F in NYC."},
    ])["input"]
    assert [i["type"] for i in items] == ["message", "function_call", "function_call_output", "message"]
    assert items[1]["call_id"] == "toolu_02" and items[1]["name"] == "get_weather"
    assert json.loads(items[1]["arguments"]) == {"city": "NYC"}
    assert items[3] == {"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": "It's sunny and 72°F in NYC."}]}


def test_plain_thinking_is_not_replayed_as_text():
    # [L-resp] test_assistant_thinking_block_becomes_output_text. Disagreement: LiteLLM replays a thinking
    # block as the assistant's output_text, so the model reads its old reasoning as something it told the
    # user. Responses carries reasoning only as reasoning items (with their encrypted_content, which an
    # Anthropic thinking block from another model does not have), so occ leaves it out.
    items = request([{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": [{"type": "thinking", "thinking": "Let me reason step by step.",
                                                        "signature": "sig"}, {"type": "text", "text": "Hello."}]},
                     {"role": "user", "content": "and?"}])["input"]
    assert "Let me reason step by step." not in json.dumps(items)
    assert items[1]["content"] == [{"type": "output_text", "text": "Hello."}]


# -- request: fields ---------------------------------------------------------------------------------------


def test_tools_are_function_tools():
    # [L-resp] test_regular_tool_with_description_and_schema / test_tool_without_description. occ also says
    # strict: false (issue 24: Responses function tools are strict by default).
    body = request(tools=[{"name": "get_weather", "description": "Get current weather for a city.",
                           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                            "required": ["city"]}},
                          {"name": "ping", "input_schema": {"type": "object", "properties": {}}}])
    assert body["tools"][0] == {"type": "function", "name": "get_weather",
                                "description": "Get current weather for a city.",
                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                               "required": ["city"]}, "strict": False}
    assert body["tools"][1]["name"] == "ping" and "description" not in body["tools"][1]


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"),  # [L-resp] test_auto_maps_to_auto
    ({"type": "any"}, "required"),  # [L-resp] test_any_maps_to_required
    ({"type": "tool", "name": "get_weather"}, {"type": "function", "name": "get_weather"}),  # test_specific_tool...
    # [L-resp] test_unknown_type_defaults_to_auto maps "none" to auto. Disagreement: the Responses API
    # documents tool_choice "none" ("the model will not call any tool"), which is what the client asked.
    ({"type": "none"}, "none"),
])
def test_tool_choice(choice: dict[str, Any], expected: Any):
    body = request(tools=[{"name": "get_weather", "input_schema": {"type": "object"}}], tool_choice=choice)
    assert body["tool_choice"] == expected


def test_system_blocks_become_instructions():
    # [L-resp] test_system_string_becomes_instructions / test_system_list_of_text_blocks_joined /
    # test_system_list_skips_non_text_blocks
    assert request(system="You are a helpful assistant.")["instructions"] == "You are a helpful assistant."
    joined = request(system=[{"type": "text", "text": "Be concise."}, {"type": "text", "text": "Be helpful."}])
    assert "Be concise." in joined["instructions"] and "Be helpful." in joined["instructions"]
    assert request(system=[{"type": "image", "source": {}},
                           {"type": "text", "text": "Only text matters."}])["instructions"] == "Only text matters."


def test_sampling_and_length():
    # [L-resp] test_max_tokens_mapped_to_max_output_tokens / test_temperature_passed_through /
    # test_top_p_passed_through (the Responses API documents top_p beside temperature)
    body = request(max_tokens=512, temperature=0.7, top_p=0.9)
    assert (body["max_output_tokens"], body["temperature"], body["top_p"]) == (512, 0.7, 0.9)


def test_no_optional_fields_no_spurious_keys():
    # [L-resp] test_no_optional_fields_does_not_add_spurious_keys
    body = request()
    for key in ("instructions", "temperature", "top_p", "tools", "tool_choice", "reasoning", "text",
                "context_management", "user"):
        assert key not in body, key


@pytest.mark.parametrize(("budget", "effort"), [(12000, "high"), (50000, "high"), (7500, "medium"), (1500, "low")])
def test_thinking_budget_becomes_reasoning_effort(budget: int, effort: str):
    # [L-resp] TestTranslateThinkingToReasoning / test_thinking_translated_to_reasoning. The buckets are
    # occ's own (occ.translate.anthropic_request.effort_of: up to 2048 low, 8192 medium, above high, the
    # inverse of the budgets occ itself derives from an effort), so LiteLLM's 3000 -> low is medium here
    # and its "minimal" under 2000 is low: minimal effort is not offered by every Responses model.
    body = request(thinking={"type": "enabled", "budget_tokens": budget}, max_tokens=32000)
    assert body["reasoning"]["effort"] == effort
    assert "temperature" not in body  # reasoning models reject sampling parameters


def test_disabled_thinking_asks_for_no_reasoning():
    # [L-resp] test_disabled_thinking_not_included_in_kwargs
    assert "reasoning" not in request(thinking={"type": "disabled"})


def test_output_config_format_becomes_text_format():
    # [L-resp] TestOutputConfigStructuredOutput: output_config.format json_schema is the Responses API's
    # text.format (type json_schema, name, schema). strict: only when the schema is known to satisfy strict
    # mode (LiteLLM always says true: a schema strict mode refuses is a 400 for the whole request).
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
              "required": ["name", "email"], "additionalProperties": False}
    fmt = request(output_config={"format": {"type": "json_schema", "schema": schema}})["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["schema"] == schema and fmt["name"] and fmt["strict"] is True
    loose = {"type": "object", "properties": {"id": {"type": "integer"}}}
    assert request(output_config={"format": {"type": "json_schema", "schema": loose}})["text"]["format"]["strict"] \
        is False
    assert "text" not in request(output_config={"effort": "high"})


def test_metadata_user_id_is_not_sent():
    # [L-resp] test_metadata_user_id_mapped_to_user. Disagreement: Claude Code's metadata.user_id names the
    # account and the session; OpenAI has deprecated ``user`` (for safety_identifier / prompt_cache_key),
    # and occ does not hand a client's account id to a third-party upstream.
    assert "user" not in request(metadata={"user_id": "user-42"})


# -- answers ---------------------------------------------------------------------------------------------


def test_text_message():
    # [L-resp] test_output_text_message_becomes_text_block / test_text_only_stop_reason_end_turn /
    # test_role_is_always_assistant / test_type_is_always_message
    out = answer(response([message("Hello!")]))
    assert out["content"] == [{"type": "text", "text": "Hello!"}]
    assert (out["type"], out["role"], out["stop_reason"]) == ("message", "assistant", "end_turn")


def test_several_text_parts_keep_all_their_text():
    # [L-resp] test_multiple_text_parts: LiteLLM writes one block per part; occ joins the parts of one
    # message into one block. The text is the same; Anthropic answers one text block per stretch of text.
    out = answer(response([message("Part 1", "Part 2")]))
    assert "".join(b["text"] for b in out["content"]) == "Part 1Part 2"


def test_function_call_is_tool_use():
    # [L-resp] test_function_call_becomes_tool_use / test_function_call_sets_stop_reason_tool_use /
    # test_dict_function_call_item
    out = answer(response([function_call("call_99", "get_weather", '{"city": "NYC"}')]))
    assert out["content"] == [{"type": "tool_use", "id": "call_99", "name": "get_weather", "input": {"city": "NYC"}}]
    assert out["stop_reason"] == "tool_use"


def test_incomplete_is_max_tokens():
    # [L-resp] test_incomplete_status_sets_max_tokens
    out = answer(response([message("Truncated...")], status="incomplete",
                          incomplete_details={"reason": "max_output_tokens"}))
    assert out["stop_reason"] == "max_tokens"


def test_reasoning_summary_is_thinking_and_an_empty_one_is_nothing():
    # [L-resp] test_reasoning_item_becomes_thinking_block / test_empty_reasoning_summary_skipped
    out = answer(response([reasoning("Step 1: analyze. Step 2: conclude.")]))
    assert out["content"][0]["type"] == "thinking" and "Step 1" in out["content"][0]["thinking"]
    assert answer(response([reasoning("")]))["content"] == []


def test_usage():
    # [L-resp] test_usage_mapped_correctly
    out = answer(response([message("OK")], input_tokens=200, output_tokens=75))
    assert (out["usage"]["input_tokens"], out["usage"]["output_tokens"]) == (200, 75)


def test_usage_cache_reads_and_writes_leave_input_tokens():
    # [L-resp-stream] TestResponseCompletedUsage: cached_tokens and cache_write_tokens (OpenRouter's
    # Responses usage) are inside input_tokens; Anthropic's input_tokens counts neither.
    out = answer(response([message("OK")], input_tokens=4017, output_tokens=5,
                          details={"cached_tokens": 4004, "cache_write_tokens": 10}))
    assert out["usage"] == {"input_tokens": 3, "output_tokens": 5, "cache_creation_input_tokens": 10,
                            "cache_read_input_tokens": 4004}


def test_empty_output():
    # [L-resp] test_empty_output_list
    out = answer(response([]))
    assert out["content"] == [] and out["stop_reason"] == "end_turn"


def test_arguments_that_are_not_json_fail_the_attempt():
    # [L-resp] test_function_call_with_invalid_json_arguments. Disagreement: LiteLLM runs the tool with {}
    # input, which Claude Code executes as a call the model never made (an empty Bash, an empty Write).
    # occ refuses the answer as malformed, so the fallback loop retries or tries the next model.
    with pytest.raises(UpstreamProtocolError):
        answer(response([function_call("call_bad", "broken_tool", "not-valid-json")]))


def test_reasoning_text_and_call_in_order():
    # [L-resp] test_mixed_reasoning_text_and_tool_use
    out = answer(response([reasoning("Thinking..."), message("Here is my answer."),
                           function_call("call_mix", "lookup", '{"id": 1}')]))
    assert [b["type"] for b in out["content"]] == ["thinking", "text", "tool_use"]
    assert out["stop_reason"] == "tool_use"


# -- streams ---------------------------------------------------------------------------------------------


def _completed(**usage: Any) -> dict[str, Any]:
    return {"type": "response.completed", "response": response([], **usage)}


def test_a_reasoning_item_without_summary_writes_no_thinking_block():
    # [L-resp-stream] TestReasoningItemWithoutSummaryText: no summary and no encrypted_content, nothing to
    # show and nothing to carry: an empty thinking block would be refused on replay to Anthropic.
    raw = events(
        {"type": "response.created", "response": response([], status="in_progress")},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "reasoning", "id": "rs_1", "summary": []}},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"type": "reasoning", "id": "rs_1", "summary": []}},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}},
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "item_id": "msg_1",
         "delta": "Hello", "logprobs": []},
        {"type": "response.output_item.done", "output_index": 1, "item": message("Hello")},
        _completed())
    m = stream(raw)
    assert m["content"] == [{"type": "text", "text": "Hello"}]


def test_a_call_closes_once_whatever_done_events_follow():
    # [L-resp-stream] TestToolUseBlockClosedExactlyOnce: a second output_item.done for an item that never
    # opened a block writes nothing (a second content_block_stop would run the tool twice in Claude Code).
    raw = events(
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "function_call", "id": "call_1", "call_id": "call_1", "name": "get_weather",
                  "arguments": "", "status": "in_progress"}},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": "call_1",
         "delta": '{"city": "'},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": "call_1", "delta": 'Tokyo"}'},
        {"type": "response.function_call_arguments.done", "output_index": 0, "item_id": "call_1",
         "arguments": '{"city": "Tokyo"}'},
        {"type": "response.output_item.done", "output_index": 0,
         "item": function_call("call_1", "get_weather", '{"city": "Tokyo"}') | {"id": "call_1"}},
        {"type": "response.output_item.done", "output_index": 1,
         "item": {"type": "message", "id": "chatcmpl-123", "role": "assistant", "status": "completed",
                  "content": []}},
        _completed())
    m = stream(raw)
    assert m["content"] == [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Tokyo"}}]
    assert m["stop_reason"] == "tool_use"


def test_text_deltas_without_output_item_added():
    # [L-resp-stream] TestProcessEventTextDeltaWithoutOutputItemAdded (LM Studio skips output_item.added)
    raw = events(
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "i1",
         "delta": "Hel", "logprobs": []},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "i1",
         "delta": "lo", "logprobs": []},
        _completed())
    assert stream(raw)["content"] == [{"type": "text", "text": "Hello"}]


def test_streamed_usage_cache_reads_and_writes():
    # [L-resp-stream] test_response_completed_usage_carries_cache_tokens
    raw = events(
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "m",
         "delta": "ok", "logprobs": []},
        _completed(input_tokens=4017, output_tokens=5, details={"cached_tokens": 4004, "cache_write_tokens": 10}))
    u = stream(raw)["usage"]
    assert (u["input_tokens"], u["output_tokens"], u["cache_creation_input_tokens"], u["cache_read_input_tokens"]) \
        == (3, 5, 10, 4004)


def test_a_refusal_stream_stops_with_refusal():
    # [L-resp-stream] TestRefusalStreamEvents
    raw = events(
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}},
        {"type": "response.refusal.delta", "output_index": 0, "content_index": 0, "item_id": "msg_1",
         "delta": "I cannot fulfill this."},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                  "content": [{"type": "refusal", "refusal": "I cannot fulfill this."}]}},
        _completed())
    assert stream(raw)["stop_reason"] == "refusal"


# -- documents and results with images (beyond the peers' cases: the API's documented input parts) -------


def test_documents_are_input_files():
    # LiteLLM's adapter drops document blocks on this wire (it translates text and image only). The Responses
    # API takes files as input_file parts: file_data as a data URL with a filename, or file_url.
    items = user_items([
        {"type": "document", "title": "report", "source": {"type": "base64", "media_type": "application/pdf",
                                                           "data": "JVBERi0xLjQK"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
        {"type": "text", "text": "Summarise these."}])
    assert items[0]["content"] == [
        {"type": "input_file", "filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"},
        {"type": "input_file", "file_url": "https://example.com/paper.pdf"},
        {"type": "input_text", "text": "plain words"},
        {"type": "input_text", "text": "Summarise these."}]


def test_a_tool_result_with_an_image_is_an_output_list():
    # LiteLLM joins a tool result into text ([L-resp] test_user_tool_result_list_content), so a screenshot
    # becomes nothing. function_call_output.output documents a list of input_text / input_image / input_file.
    items = user_items([{"type": "tool_result", "tool_use_id": "call_shot", "is_error": False, "content": [
        {"type": "text", "text": "Here is the screenshot:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}])
    assert items == [{"type": "function_call_output", "call_id": "call_shot", "output": [
        {"type": "input_text", "text": "Here is the screenshot:"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}]
    failed = user_items([{"type": "tool_result", "tool_use_id": "c", "is_error": True, "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}]}])
    assert failed[0]["output"][0] == {"type": "input_text", "text": "Error:"}
    text_only = user_items([{"type": "tool_result", "tool_use_id": "c", "is_error": True, "content": "boom"}])
    assert text_only[0]["output"] == "Error: boom"

"""Peer projects' own translation cases, Anthropic Messages <-> OpenAI chat completions, run against occ.

Ported as data written here (no peer code), each test naming the file its case comes from:

- LiteLLM ``tests/test_litellm/llms/anthropic/experimental_pass_through/adapters/
  test_anthropic_experimental_pass_through_adapters_transformation.py`` (``[L-adapter]`` below),
- LiteLLM ``.../adapters/test_streaming_iterator_stop_reason.py`` (``[L-stop]``),
- LiteLLM ``.../adapters/test_streaming_iterator_empty_choices.py`` (``[L-empty]``).

Where occ answers differently from the peer, the test asserts occ's answer and says why it follows the
provider's documented shape. Upstream answers are built from the ``openai`` SDK's own types and dumped by
it, so the nulls a real server sends are there.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from support.anthropic_checker import check_stream, translate_chunks

from occ.config.model import ModelConfig
from occ.core.errors import UpstreamProtocolError
from occ.translate.openai_chat import ChatStreamTranslator, build_request, translate_response
from occ.translate.tool_ids import to_upstream_name

GPT = ModelConfig(provider="p", model_id="gpt-4o")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def request(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return build_request({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages, **fields}, GPT,
                         stream=False)


def completion(message: dict[str, Any], finish: str | None = "stop", usage: dict[str, Any] | None = None,
               **extra: Any) -> dict[str, Any]:
    """A ``chat.completion`` as the openai SDK types hold and serialise it."""
    from openai.types.chat import ChatCompletion

    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish,
                         "logprobs": None}], "usage": usage, **extra}
    return json.loads(ChatCompletion.model_validate(body).model_dump_json())


def answer(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return translate_response(body, message_id="msg_1", model_name="claude-sonnet-4-5", input_estimate=7, **kwargs)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, *, choices: bool = True,
          usage: dict[str, Any] | None = None) -> bytes:
    """One ``chat.completion.chunk`` frame, serialised by the openai SDK."""
    from openai.types.chat import ChatCompletionChunk

    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else [],
            "usage": usage}
    return f"data: {ChatCompletionChunk.model_validate(body).model_dump_json()}\n\n".encode()


def stream(*frames: bytes, tool_names: list[str] | None = None) -> dict[str, Any]:
    raw = b"".join(frames) + b"data: [DONE]\n\n"
    make = lambda builder: ChatStreamTranslator(builder, tool_names=tool_names)  # noqa: E731
    return check_stream(translate_chunks(make, [raw])[0])


def tool_call(call_id: str | None, name: str | None, args: str | None, index: int = 0) -> dict[str, Any]:
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    out: dict[str, Any] = {"index": index, "function": function}
    if call_id is not None:
        out |= {"id": call_id, "type": "function"}
    return out


# -- request: messages ---------------------------------------------------------------------------------


def test_tool_message_comes_before_the_user_text_of_the_same_turn():
    # [L-adapter] test_translate_anthropic_messages_to_openai_tool_message_placement
    body = request([
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in Boston?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01234", "name": "get_weather",
                                           "input": {"location": "Boston"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01234", "content": "Sunny, 75°F"},
                                     {"type": "text", "text": "What about tomorrow?"}]},
    ])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "user"]
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "toolu_01234", "content": "Sunny, 75°F"}
    assert body["messages"][3]["content"] == "What about tomorrow?"


def test_thinking_and_redacted_thinking_before_a_call_keep_the_call():
    # [L-adapter] test_translate_anthropic_messages_to_openai_thinking_blocks. LiteLLM forwards
    # ``thinking_blocks`` (its own field); a chat upstream has no such field and Anthropic signatures mean
    # nothing to it, so occ sends the call alone (reasoning_content only to the families that want it back).
    body = request([
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in Boston?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I will call the get_weather tool.", "signature": "sigsig"},
            {"type": "redacted_thinking", "data": "REDACTED"},
            {"type": "tool_use", "id": "toolu_01234", "name": "get_weather", "input": {"location": "Boston"}}]},
    ])
    assistant = body["messages"][1]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["id"] == "toolu_01234"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"location": "Boston"}
    assert "REDACTED" not in json.dumps(body) and "sigsig" not in json.dumps(body)


def test_base64_image_becomes_a_data_url_after_the_text():
    # [L-adapter] test_translate_anthropic_messages_to_openai_user_message_with_base64_image
    body = request([{"role": "user", "content": [
        {"type": "text", "text": "What's in this image?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}])
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What's in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]


def test_url_image_keeps_its_url():
    # [L-adapter] test_translate_anthropic_messages_to_openai_user_message_with_url_image
    body = request([{"role": "user", "content": [
        {"type": "text", "text": "Describe this forest path"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/forest.jpg"}}]}])
    assert body["messages"][0]["content"][1] == {"type": "image_url",
                                                 "image_url": {"url": "https://example.com/forest.jpg"}}


def test_text_and_images_interleaved_keep_their_order():
    # [L-adapter] test_translate_anthropic_messages_to_openai_mixed_content_with_image
    body = request([{"role": "user", "content": [
        {"type": "text", "text": "Here are two images:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "and this one:"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/image2.jpg"}},
        {"type": "text", "text": "What's the difference?"}]}])
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[3]["image_url"]["url"] == "https://example.com/image2.jpg"
    assert parts[4]["text"] == "What's the difference?"


def _screenshot_turns(result_content: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"type": "text", "text": "Take a screenshot"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
                                           "name": "get_screenshot", "input": {"area": "desktop"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                                      "content": result_content}]},
    ]


@pytest.mark.parametrize("source", [
    {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRgABAQAAAQABAAD"},
    {"type": "url", "url": "https://example.com/amazing-stone-path-in-forest.jpg"},
])
def test_image_in_a_tool_result_goes_to_the_model_as_an_image(source: dict[str, Any]):
    # [L-adapter] test_translate_anthropic_messages_to_openai_tool_result_with_base64_image / _with_url_image.
    # Disagreement: LiteLLM writes the image's data URL (or URL) as the tool message's *text*, so the model
    # reads base64 as words. OpenAI's tool message takes text only (ChatCompletionToolMessageParam.content:
    # string or text parts), so occ answers the call with text and shows the image in the user message
    # right after, where image_url parts are documented.
    body = request(_screenshot_turns([{"type": "image", "source": source}]))
    tool = next(m for m in body["messages"] if m["role"] == "tool")
    assert tool["tool_call_id"] == "toolu_01A09q90qw90lq917835lq9"
    assert isinstance(tool["content"], str) and "base64" not in tool["content"]
    after = body["messages"][body["messages"].index(tool) + 1]
    assert after["role"] == "user"
    expected = source["url"] if source["type"] == "url" else f"data:image/jpeg;base64,{source['data']}"
    assert {"type": "image_url", "image_url": {"url": expected}} in after["content"]


def test_a_tool_result_of_several_items_is_one_tool_message():
    # [L-adapter] test_translate_anthropic_messages_to_openai_tool_result_with_multiple_content_items:
    # "each tool_use must have a single result" - one tool message per call, whatever the result holds.
    body = request(_screenshot_turns([
        {"type": "text", "text": "Here is the screenshot:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "Screenshot captured successfully."}]))
    tools = [m for m in body["messages"] if m["role"] == "tool"]
    assert len(tools) == 1
    assert "Here is the screenshot:" in tools[0]["content"]
    assert "Screenshot captured successfully." in tools[0]["content"]


def test_a_tool_result_of_one_text_item_is_a_plain_string():
    # [L-adapter] test_translate_anthropic_messages_to_openai_tool_result_single_item_backward_compat
    body = request(_screenshot_turns([{"type": "text", "text": "72°F and sunny"}]))
    tool = next(m for m in body["messages"] if m["role"] == "tool")
    assert tool["content"] == "72°F and sunny"


@pytest.mark.parametrize("name", ["", "   ", None])
def test_a_history_call_without_a_name_still_has_a_function_name(name: Any):
    # [L-adapter] test_translate_anthropic_messages_to_openai_tool_use_without_name (vLLM/Mistral reject "")
    body = request([{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": name,
                                                       "input": {"q": "x"}}]}])
    function_name = body["messages"][1]["tool_calls"][0]["function"]["name"]
    assert function_name.strip() and re.match(r"^[a-zA-Z0-9_-]{1,64}$", function_name)


def test_a_history_call_keeps_a_valid_name():
    # [L-adapter] test_translate_anthropic_messages_to_openai_tool_use_preserves_name
    body = request([{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                                       "input": {"location": "London"}}]}])
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_cache_control_never_reaches_a_chat_upstream():
    # [L-adapter] test_cache_control_not_preserved_for_non_claude_model / ..._in_tool_result_for_non_claude /
    # ..._in_tools_for_non_claude. occ's chat upstreams are not Claude: cache_control is an Anthropic field.
    body = request(
        [{"role": "user", "content": [{"type": "text", "text": "This is cached content",
                                       "cache_control": {"type": "ephemeral"}}]},
         {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01234", "name": "get_weather",
                                            "input": {}, "cache_control": {"type": "ephemeral"}}]},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01234", "content": "ok",
                                       "cache_control": {"type": "ephemeral"}}]}],
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        tools=[{"name": "get_weather", "description": "Get weather for a location",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"}}])
    assert "cache_control" not in json.dumps(body)
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


# -- request: tools and tool_choice -----------------------------------------------------------------------


def test_a_custom_tool_keeps_its_object_schema():
    # [L-adapter] test_translate_anthropic_tools_to_openai_preserves_parameters_type
    body = request([{"role": "user", "content": "hi"}], tools=[
        {"type": "custom", "name": "get_weather", "description": "Get weather",
         "input_schema": {"type": "object", "properties": {}}}])
    assert body["tools"][0]["type"] == "function"
    assert body["tools"][0]["function"]["parameters"]["type"] == "object"


def test_long_tool_names_are_cut_to_64_and_restored_in_the_answer():
    # [L-adapter] test_translate_anthropic_tools_with_long_names / _mixed_names /
    # test_translate_openai_response_restores_tool_names
    long_name = "process_complex_data_transformation_with_validation_and_error_handling_pipeline"
    body = request([{"role": "user", "content": "hi"}], tools=[
        {"name": "get_weather", "input_schema": {"type": "object"}},
        {"name": long_name, "input_schema": {"type": "object"}}])
    sent = [t["function"]["name"] for t in body["tools"]]
    assert sent[0] == "get_weather" and len(sent[1]) <= 64 and sent[1] != long_name
    raw = completion({"content": None, "tool_calls": [{"id": "call_123", "type": "function", "function": {
        "name": sent[1], "arguments": '{"arg": "value"}'}}]}, finish="tool_calls")
    out = b"".join([chunk({"role": "assistant", "tool_calls": [tool_call("call_123", sent[1], '{"arg": "value"}')]}),
                    chunk(finish="tool_calls")])
    assert stream(out, tool_names=["get_weather", long_name])["content"][0]["name"] == long_name
    assert answer(raw)["content"][0]["name"] in (sent[1], long_name)  # restored by the wire from the request


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "none"}, "none"),  # [L-adapter] test_translate_anthropic_tool_choice_none
    ({"type": "auto"}, "auto"),
    ({"type": "any"}, "required"),
    ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice(choice: dict[str, Any], expected: Any):
    body = request([{"role": "user", "content": "hi"}], tool_choice=choice,
                   tools=[{"name": "get_weather", "input_schema": {"type": "object"}}])
    assert body["tool_choice"] == expected


def test_output_format_becomes_response_format():
    # [L-adapter] TestTranslateAnthropicOutputFormatToOpenAI. Disagreement: LiteLLM rewrites the schema for
    # OpenAI's strict mode (additionalProperties false, every property required). occ does not ask for strict
    # mode, so the client's schema goes as given: making optional properties required changes what the model
    # must answer.
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name"]}
    body = request([{"role": "user", "content": "hi"}],
                   output_config={"format": {"type": "json_schema", "schema": schema}})
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == schema


# -- non-streaming answers ---------------------------------------------------------------------------------


def test_empty_arguments_are_an_empty_input():
    # [L-adapter] test_translate_openai_content_to_anthropic_empty_function_arguments
    out = answer(completion({"content": None, "tool_calls": [
        {"id": "call_empty_args", "type": "function", "function": {"name": "test_function", "arguments": ""}}]},
        finish="tool_calls"))
    assert out["content"] == [{"type": "tool_use", "id": "call_empty_args", "name": "test_function", "input": {}}]


def test_text_and_calls_are_both_kept():
    # [L-adapter] test_translate_openai_content_to_anthropic_text_and_tool_calls /
    # test_translate_openai_response_to_anthropic_text_and_tool_calls
    out = answer(completion({"content": "Let me grab the current weather.", "tool_calls": [
        {"id": "call_tool_combo", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]},
        finish="tool_calls", usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}))
    assert out["content"] == [{"type": "text", "text": "Let me grab the current weather."},
                              {"type": "tool_use", "id": "call_tool_combo", "name": "get_weather",
                               "input": {"location": "Paris"}}]
    assert out["stop_reason"] == "tool_use"


def test_a_foreign_call_id_becomes_a_valid_anthropic_id():
    # [L-adapter] test_translate_openai_content_to_anthropic_sanitizes_colon_dot_tool_call_ids. LiteLLM
    # replaces the bad characters (functions_Bash_0); occ encodes the id reversibly, so Kimi gets its own
    # ``functions.Bash:0`` back next turn. Both satisfy Anthropic's ^[a-zA-Z0-9_-]+$.
    out = answer(completion({"content": None, "tool_calls": [
        {"id": "functions.Bash:0", "type": "function",
         "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}]},
        finish="tool_calls"))
    tool_id = out["content"][0]["id"]
    assert ANTHROPIC_ID.match(tool_id)
    back = request([{"role": "user", "content": "ls"}, {"role": "assistant", "content": out["content"]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "a"}]}])
    assert back["messages"][1]["tool_calls"][0]["id"] == "functions.Bash:0"
    assert back["messages"][2]["tool_call_id"] == "functions.Bash:0"


def test_reasoning_content_is_a_thinking_block_before_the_text():
    # [L-adapter] test_translate_openai_content_to_anthropic_reasoning_content_without_thinking_blocks /
    # test_translate_openai_response_to_anthropic_with_reasoning_content_only
    out = answer(completion({"content": 'There are **3** "r"s in the word strawberry.',
                             "reasoning_content": "**Considering Letter Frequency**\n\nCounting the r's."},
                            usage={"prompt_tokens": 13, "completion_tokens": 138, "total_tokens": 151}))
    assert [b["type"] for b in out["content"]] == ["thinking", "text"]
    assert "Considering Letter Frequency" in out["content"][0]["thinking"]
    assert out["content"][1]["text"] == 'There are **3** "r"s in the word strawberry.'
    assert out["stop_reason"] == "end_turn"


def test_no_choices_is_no_answer():
    # [L-empty] test_translate_openai_response_handles_empty_choices_on_non_streaming. Disagreement: LiteLLM
    # returns an empty message; occ treats a completion without choices as a failed attempt, so the fallback
    # loop tries the next model instead of handing Claude Code an empty turn that ends its work.
    with pytest.raises(UpstreamProtocolError):
        answer(completion({"content": "x"}) | {"choices": []})


# -- usage -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("usage", "expected"), [
    # [L-adapter] ..._input_tokens_excludes_cached_tokens / ..._cache_tokens_from_prompt_tokens_details
    ({"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
      "prompt_tokens_details": {"cached_tokens": 30}}, (70, 50, 30, 0)),
    # [L-adapter] ..._input_tokens_no_cache
    ({"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}, (100, 50, 0, 0)),
    # [L-adapter] ..._cache_creation_from_prompt_tokens_details; OpenRouter documents the same count as
    # ``prompt_tokens_details.cache_write_tokens`` (usage accounting page), both inside prompt_tokens.
    ({"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
      "prompt_tokens_details": {"cached_tokens": 30, "cache_creation_tokens": 20}}, (70, 50, 30, 20)),
    ({"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
      "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 20}}, (70, 50, 30, 20)),
    # [L-adapter] ..._cache_tokens_from_usage_fields (Anthropic's names beside prompt_tokens, as LiteLLM's
    # and other proxies' chat endpoints report Claude's caching)
    ({"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
      "cache_read_input_tokens": 30, "cache_creation_input_tokens": 20}, (70, 50, 30, 20)),
    # [L-adapter] ..._cache_tokens_from_dict_details_with_integral_floats
    ({"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
      "prompt_tokens_details": {"cached_tokens": 30.0, "cache_write_tokens": 20.0}}, (70, 50, 30, 20)),
    # [L-adapter] ..._ignores_bool_cache_tokens
    ({"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
      "cache_read_input_tokens": True, "cache_creation_input_tokens": True}, (120, 50, 0, 0)),
])
def test_usage(usage: dict[str, Any], expected: tuple[int, int, int, int]):
    got = answer(completion({"content": "Test response"}, usage=usage))["usage"]
    assert (got["input_tokens"], got["output_tokens"], got["cache_read_input_tokens"],
            got["cache_creation_input_tokens"]) == expected


def test_streamed_usage_counts_cache_reads_and_writes():
    # [L-adapter] test_translate_streaming_openai_response_to_anthropic_cache_tokens_from_prompt_tokens_details
    m = stream(chunk({"role": "assistant", "content": "ok"}),
               chunk(finish="stop", usage={"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
                                           "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 20}}))
    u = m["usage"]
    assert (u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"],
            u["cache_creation_input_tokens"]) == (70, 50, 30, 20)


# -- streams -----------------------------------------------------------------------------------------------


def test_a_whole_call_in_one_chunk():
    # [L-adapter] test_translate_streaming_openai_chunk_to_anthropic_content_block
    m = stream(chunk({"role": "assistant", "tool_calls": [
        tool_call("call_d581d130-e234-4315-94e8-27e7ff7c4e55", "get_weather", '{"location": "Boston"}')]}),
        chunk(finish="tool_calls"))
    assert m["content"] == [{"type": "tool_use", "id": "call_d581d130-e234-4315-94e8-27e7ff7c4e55",
                             "name": "get_weather", "input": {"location": "Boston"}}]
    assert m["stop_reason"] == "tool_use"


def test_partial_arguments_stream_as_input_json():
    # [L-adapter] test_translate_streaming_openai_chunk_to_anthropic_with_partial_json
    m = stream(chunk({"role": "assistant", "tool_calls": [tool_call("call_1", "get_weather", '{"location"')]}),
               chunk({"tool_calls": [tool_call(None, None, ': "San ')]}),
               chunk({"tool_calls": [tool_call(None, None, 'Francisco"}')]}),
               chunk(finish="tool_calls"))
    assert m["content"][0]["input"] == {"location": "San Francisco"}


def test_reasoning_content_alone_opens_a_thinking_block():
    # [L-adapter] test_translate_streaming_openai_chunk_to_anthropic_reasoning_content_only_content_block /
    # ..._reasoning_content_without_thinking_blocks (vLLM, SGLang, OpenRouter)
    m = stream(chunk({"role": "assistant", "content": None, "reasoning_content": "I need to analyze this "}),
               chunk({"reasoning_content": "carefully..."}), chunk({"content": "Done."}), chunk(finish="stop"))
    assert [b["type"] for b in m["content"]] == ["thinking", "text"]
    assert m["content"][0]["thinking"] == "I need to analyze this carefully..."


def test_text_and_calls_in_one_delta_are_both_written():
    # [L-adapter] test_streaming_chunk_with_both_text_and_tool_calls_issue_18238
    m = stream(chunk({"content": "Here is some text for litellm", "tool_calls": [
        tool_call("toolu_bdrk_013xRVejhv3ybmLEGCoZib2b", "Bash", '{"cmd": "init"}')]}), chunk(finish="tool_calls"))
    assert m["content"] == [{"type": "text", "text": "Here is some text for litellm"},
                            {"type": "tool_use", "id": "toolu_bdrk_013xRVejhv3ybmLEGCoZib2b", "name": "Bash",
                             "input": {"cmd": "init"}}]


def test_an_empty_tool_calls_list_beside_text_is_no_call():
    # [L-adapter] test_streaming_chunk_with_text_and_empty_tool_calls_returns_text_delta (vLLM)
    m = stream(chunk({"role": "assistant", "content": "Hello from vLLM", "tool_calls": []}), chunk(finish="stop"))
    assert m["content"] == [{"type": "text", "text": "Hello from vLLM"}]
    assert m["stop_reason"] == "end_turn"


def test_call_after_text_keeps_its_arguments():
    # [L-adapter] TestAnthropicStreamWrapperToolArgs (issue 24134: Gemini sends the call's arguments in the
    # chunk that opens its block); the finish is "stop" and still the turn ends in tool_use.
    m = stream(chunk({"role": "assistant", "content": "Let me check"}),
               chunk({"tool_calls": [tool_call("call_123", "get_weather", '{"city": "Tokyo"}')]}),
               chunk(finish="stop", usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}))
    assert m["content"][1] == {"type": "tool_use", "id": "call_123", "name": "get_weather", "input": {"city": "Tokyo"}}
    assert m["stop_reason"] == "tool_use"  # [L-stop]: a call with finish "stop" is still a tool_use turn


@pytest.mark.parametrize(("finish", "stop"), [("content_filter", "refusal"), ("stop", "end_turn")])
def test_finish_without_text(finish: str, stop: str):
    # [L-stop] test_content_filter_without_refusal_text
    m = stream(chunk({"role": "assistant", "content": ""}),
               chunk(finish=finish, usage={"prompt_tokens": 12, "completion_tokens": 0, "total_tokens": 12}))
    assert m["stop_reason"] == stop
    assert m["usage"]["input_tokens"] == 12


def test_usage_only_chunk_without_choices():
    # [L-empty] test_translate_streaming_response_handles_chunks_without_choices: OpenAI's
    # stream_options.include_usage ends with a chunk whose choices are [] and whose usage is the total.
    m = stream(chunk({"role": "assistant", "content": "Hi"}), chunk(finish="stop"),
               chunk(choices=False, usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                                           "prompt_tokens_details": {"cached_tokens": 4}}))
    assert m["content"] == [{"type": "text", "text": "Hi"}]
    assert (m["usage"]["input_tokens"], m["usage"]["output_tokens"], m["usage"]["cache_read_input_tokens"]) == (5, 2, 4)


def test_names_of_calls_are_never_empty():
    # the name fallback used for the history case above is a valid chat function name
    assert re.match(r"^[a-zA-Z0-9_-]{1,64}$", to_upstream_name(""))


# -- claude-code-router's transformer cases ---------------------------------------------------------------
# musistudio/claude-code-router packages/core/src/transformer/__tests__/anthropic.transformer.test.ts
# (``[CCR]``): its Anthropic -> unified (chat) request mapping and chat -> Anthropic answers.


def test_each_tool_result_is_its_own_tool_message_with_text_content():
    # [CCR] "emits a separate tool role message for each tool_result block". Disagreement: CCR writes a
    # list result as its JSON text (``[{"type":"text",...}]``); occ gives the model the text itself.
    body = request([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tool-1", "name": "a", "input": {}},
                                          {"type": "tool_use", "id": "tool-2", "name": "b", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tool-1", "content": "result-text"},
                                     {"type": "tool_result", "tool_use_id": "tool-2",
                                      "content": [{"type": "text", "text": "structured"}]}]}])
    assert body["messages"][2:] == [{"role": "tool", "tool_call_id": "tool-1", "content": "result-text"},
                                    {"role": "tool", "tool_call_id": "tool-2", "content": "structured"}]


def test_assistant_texts_are_joined_and_calls_become_tool_calls():
    # [CCR] "joins assistant text parts and converts tool_use to tool_calls" (CCR joins with one newline,
    # occ with a blank line: two blocks are two paragraphs)
    body = request([{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "text", "text": "first"}, {"type": "text", "text": "second"},
        {"type": "tool_use", "id": "tu-1", "name": "search", "input": {"q": "ts"}}]}])
    message = body["messages"][1]
    assert message["content"].split() == ["first", "second"]
    assert message["tool_calls"] == [{"id": "tu-1", "type": "function",
                                      "function": {"name": "search", "arguments": '{"q":"ts"}'}}]


def test_system_blocks_join_and_non_text_blocks_are_left_out():
    # [CCR] "converts array system prompt ..." (CCR keeps cache_control on the system parts for Claude
    # behind chat; occ's chat upstreams are not Claude, so the system prompt is plain text)
    body = request([{"role": "user", "content": "hi"}], system=[
        {"type": "text", "text": "rule one", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "rule two"}, {"type": "image", "source": {}}])
    assert body["messages"][0]["role"] == "system"
    assert "rule one" in body["messages"][0]["content"] and "rule two" in body["messages"][0]["content"]


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("unknown_value", "end_turn"),
    # [CCR] maps content_filter to "stop_sequence". Disagreement: Anthropic's stop reason for a policy
    # stop is "refusal"; "stop_sequence" names a stop sequence that was never sent.
    ("content_filter", "refusal"),
    # [CCR] maps "tool_calls" to tool_use even when the message has no call. occ says end_turn: a tool_use
    # stop without a tool_use block leaves the SDK's tool runner waiting on a call that does not exist.
    ("tool_calls", "end_turn"),
])
def test_finish_reasons(finish: str, stop: str):
    body = completion({"content": "x"}, usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
    body["choices"][0]["finish_reason"] = finish  # after the SDK: it knows no "unknown_value"
    assert answer(body)["stop_reason"] == stop


def test_plain_text_answer():
    # [CCR] "converts a plain text completion into a single text content block"
    out = answer(completion({"content": "hello there"}, usage={"prompt_tokens": 10, "completion_tokens": 5,
                                                                "total_tokens": 15}))
    assert out["content"] == [{"type": "text", "text": "hello there"}] and out["stop_reason"] == "end_turn"
    assert (out["usage"]["input_tokens"], out["usage"]["output_tokens"], out["usage"]["cache_read_input_tokens"]) \
        == (10, 5, 0)


def test_unparseable_arguments_fail_the_attempt():
    # [CCR] "falls back to {text: <raw>} when tool_call arguments are unparseable" (LiteLLM: {}).
    # Disagreement: either runs a tool call the model never made well-formed (Claude Code would execute
    # it with an input its schema rejects); occ refuses the answer so the fallback loop tries again.
    with pytest.raises(UpstreamProtocolError):
        answer(completion({"content": None, "tool_calls": [
            {"id": "call-x", "type": "function", "function": {"name": "noop", "arguments": "{not-json"}}]},
            finish="tool_calls"))


def test_url_citations_are_search_blocks():
    # [CCR] "translates annotations into server_tool_use + web_search_tool_result blocks"
    out = answer(completion({"content": "see refs", "annotations": [
        {"type": "url_citation", "url_citation": {"url": "https://a", "title": "A", "start_index": 0, "end_index": 3}},
        {"type": "url_citation", "url_citation": {"url": "https://b", "title": "B", "start_index": 4, "end_index": 8}},
    ]}))
    use = next(b for b in out["content"] if b["type"] == "server_tool_use")
    result = next(b for b in out["content"] if b["type"] == "web_search_tool_result")
    assert use["name"] == "web_search" and result["tool_use_id"] == use["id"]
    assert [(r["url"], r["title"]) for r in result["content"]] == [("https://a", "A"), ("https://b", "B")]


# -- LiteLLM's stream wrapper regressions ----------------------------------------------------------------
# LiteLLM .../adapters/test_streaming_iterator_combined_chunk.py (``[L-combined]``)


def test_a_whole_answer_in_one_chunk_with_its_finish():
    # [L-combined] test_fake_stream_content_reaches_anthropic_sse / test_fake_stream_usage_preserved
    m = stream(chunk({"role": "assistant", "content": "Hello, the answer is 2."}, finish="stop",
                     usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}))
    assert m["content"] == [{"type": "text", "text": "Hello, the answer is 2."}]
    assert (m["usage"]["input_tokens"], m["usage"]["output_tokens"]) == (10, 5)


def test_usage_after_the_finish_chunk_is_the_turns_usage():
    # [L-combined] test_delayed_usage_chunk_preserves_cache_tokens: the usage comes on a chunk after the
    # finish, with an empty delta (not choices: [])
    m = stream(chunk({"content": "Two."}), chunk(finish="stop"),
               chunk({}, usage={"prompt_tokens": 120, "completion_tokens": 5, "total_tokens": 125,
                                "prompt_tokens_details": {"cached_tokens": 30, "cache_creation_tokens": 20}}))
    u = m["usage"]
    assert (u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"]) \
        == (70, 5, 30, 20)


def test_a_boundary_chunk_with_reasoning_and_text():
    # [L-combined] test_boundary_reasoning_content_chunk_sync (vLLM/Qwen: the last reasoning token and the
    # first answer token in one delta): thinking first, then text, never a delta in the wrong block
    m = stream(chunk({"reasoning_content": "Let me think."}),
               chunk({"reasoning_content": "\n", "content": "Hi there!"}), chunk(finish="stop"))
    assert [(b["type"], b.get("thinking", b.get("text"))) for b in m["content"]] == \
        [("thinking", "Let me think.\n"), ("text", "Hi there!")]


def test_reasoning_text_and_finish_in_one_chunk():
    # [L-combined] test_split_separates_reasoning_content_and_finish
    m = stream(chunk({"reasoning_content": "some reasoning", "content": "hi"}, finish="stop"))
    assert [b["type"] for b in m["content"]] == ["thinking", "text"] and m["stop_reason"] == "end_turn"


def test_only_the_first_choice_is_the_message():
    # n > 1 is never asked for; a server that sends a second choice anyway does not mix it in
    second = chunk({"content": "two"}).replace(b'"index":0', b'"index":1', 1)
    assert b'"index":1' in second
    m = stream(chunk({"content": "one"}), second, chunk(finish="stop"))
    assert m["content"] == [{"type": "text", "text": "one"}]
    body = completion({"content": "first"})
    body["choices"].append({**body["choices"][0], "index": 1, "message": {"role": "assistant", "content": "second"}})
    assert answer(body)["content"] == [{"type": "text", "text": "first"}]


def test_sampling_fields_on_the_chat_wire():
    # temperature and top_p are chat fields; top_k is not (OpenAI answers 400 "Unrecognized request
    # argument"), and metadata is Anthropic's
    body = request([{"role": "user", "content": "hi"}], temperature=0.3, top_p=0.8, top_k=20,
                   metadata={"user_id": "user_abc"}, stop_sequences=["A", "B", "C", "D", "E"])
    assert (body["temperature"], body["top_p"]) == (0.3, 0.8)
    assert "top_k" not in body and "user" not in body and "metadata" not in body
    assert body["stop"] == ["A", "B", "C", "D"]  # OpenAI takes up to 4


@pytest.mark.parametrize(("model_id", "key"), [
    ("gpt-5.2", "max_completion_tokens"), ("o4-mini", "max_completion_tokens"), ("o3", "max_completion_tokens"),
    ("gpt-4o", "max_tokens"), ("openai/gpt-5", "max_tokens"), ("deepseek-v4-pro", "max_tokens"),
])
def test_openai_reasoning_models_get_max_completion_tokens(model_id: str, key: str):
    # claude-code-router's ``maxcompletiontokens`` transformer (musistudio/llms
    # src/transformer/maxcompletiontokens.transformer.ts) and LiteLLM both send OpenAI's reasoning models
    # max_completion_tokens: they answer max_tokens with 400 "Unsupported parameter: 'max_tokens' ... Use
    # 'max_completion_tokens' instead". A router's id (openai/...) keeps max_tokens, which routers take.
    body = build_request({"model": "c", "max_tokens": 900, "messages": [{"role": "user", "content": "hi"}]},
                         ModelConfig(provider="p", model_id=model_id), stream=False)
    other = {"max_tokens", "max_completion_tokens"} - {key}
    assert body[key] == 900 and not other & set(body)

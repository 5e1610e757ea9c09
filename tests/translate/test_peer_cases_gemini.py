"""Peer projects' own translation cases, Anthropic Messages <-> Gemini (generateContent), run against occ.

Ported as data written here (no peer code), each test naming where its case comes from:

- LiteLLM ``tests/test_litellm/llms/vertex_ai/gemini/test_image_in_tool_result.py`` (``[L-img]``: Claude Code's
  Read tool returning an image, issue 23712),
- LiteLLM ``.../vertex_ai/gemini/test_gemini_streaming_tool_call_finish_reason.py`` (``[L-finish]``),
- LiteLLM ``.../vertex_ai/gemini/test_gemini_contentless_candidate.py`` (``[L-contentless]``),
- LiteLLM ``.../vertex_ai/gemini/test_gemini_token_usage.py`` (``[L-usage]``),
- claude-code-router's transformer library, musistudio/llms ``src/utils/gemini.util.ts`` (``[CCR]``: its
  request mapping; that repository has no tests, its mapping is the established behaviour).

Answers are built from google-genai's own types, dumped by that SDK (camelCase, nulls as it writes them).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from support.anthropic_checker import check_stream, translate_chunks

from occ.config.model import ModelConfig
from occ.core.errors import UpstreamStatus
from occ.translate.gemini import GeminiStreamTranslator, build_request, translate_response

FLASH = ModelConfig(provider="p", model_id="gemini-2.5-flash")


def request(messages: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    return build_request({"model": "claude-sonnet-4-5", "max_tokens": 1024,
                          "messages": messages or [{"role": "user", "content": "hello"}], **fields},
                         FLASH, stream=False)


def read_image_turns(result: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Look at test.png"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read",
                                               "input": {"file_path": "test.png"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": result}]}]


def gemini(obj: dict[str, Any]) -> str:
    """A GenerateContentResponse validated and dumped by google-genai."""
    from google.genai import types as T

    return T.GenerateContentResponse.model_validate(obj).model_dump_json(by_alias=True, exclude_none=False)


def stream(*objects: dict[str, Any]) -> dict[str, Any]:
    raw = "".join(f"data: {gemini(o)}\r\n\r\n" for o in objects).encode()
    return check_stream(translate_chunks(partial(GeminiStreamTranslator, route=FLASH.label), [raw])[0])


def answer(obj: dict[str, Any]) -> dict[str, Any]:
    return translate_response(json.loads(gemini(obj)), message_id="msg_g", model_name="claude-sonnet-4-5",
                              input_estimate=5, route=FLASH.label)


# -- request -------------------------------------------------------------------------------------------


def test_an_image_in_a_tool_result_is_inline_data_after_the_response():
    # [L-img] test_data_url_image_creates_inline_data / test_multi_item_text_and_image: the function
    # response keeps the text, the image follows as inlineData in the same user turn.
    contents = request(read_image_turns([
        {"type": "text", "text": "Image file: test.png"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "ZmFrZS1wbmc="}}]),
    )["contents"]
    parts = contents[-1]["parts"]
    assert contents[-1]["role"] == "user"
    assert parts[0]["functionResponse"]["name"] == "Read"
    assert "Image file: test.png" in json.dumps(parts[0]["functionResponse"]["response"])
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "ZmFrZS1wbmc="}}


def test_a_jpeg_in_a_tool_result_keeps_its_type():
    # [L-img] test_data_url_with_jpeg
    parts = request(read_image_turns([{"type": "image", "source": {
        "type": "base64", "media_type": "image/jpeg", "data": "ZmFrZS1qcGVn"}}]))["contents"][-1]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/jpeg"


def test_a_text_tool_result_is_one_function_response():
    # [L-img] test_plain_text_not_affected
    parts = request(read_image_turns("def hello(): pass"))["contents"][-1]["parts"]
    assert parts == [{"functionResponse": {"name": "Read", "response": {"output": "def hello(): pass"}}}]


def test_several_results_answer_in_call_order_before_their_images():
    # A turn answering two calls: Gemini counts the functionResponse parts against the calls, so they come
    # first and together; the images of both follow.
    contents = request([
        {"role": "user", "content": "two shots"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "Shot", "input": {}},
                                          {"type": "tool_use", "id": "toolu_b", "name": "Shot", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QQ=="}}]},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "Qg=="}}]},
            {"type": "text", "text": "compare"}]}])["contents"]
    kinds = [next(iter(p)) for p in contents[-1]["parts"]]
    assert kinds == ["functionResponse", "functionResponse", "inlineData", "inlineData", "text"]


def test_a_url_image_is_file_data():
    # [CCR] an http(s) image URL goes as file_data with its file_uri (occ writes the REST API's camelCase:
    # fileData / fileUri / mimeType); before this occ sent the word "[Image]".
    parts = request([{"role": "user", "content": [
        {"type": "text", "text": "Describe"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/forest.jpg"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/render?id=7"}}]}])["contents"][0]["parts"]
    assert parts[1] == {"fileData": {"fileUri": "https://example.com/forest.jpg", "mimeType": "image/jpeg"}}
    assert parts[2] == {"fileData": {"fileUri": "https://example.com/render?id=7"}}


def test_documents_are_inline_data_file_data_or_text():
    # Gemini reads PDFs natively (document understanding: inlineData application/pdf). LiteLLM's adapter
    # turns a document into a chat "file" part first; occ writes Gemini's part directly.
    parts = request([{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
        {"type": "text", "text": "Summarise."}]}])["contents"][0]["parts"]
    assert parts == [{"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjQK"}},
                     {"fileData": {"fileUri": "https://example.com/paper.pdf", "mimeType": "application/pdf"}},
                     {"text": "plain words"}, {"text": "Summarise."}]


@pytest.mark.parametrize(("choice", "config"), [
    ({"type": "auto"}, {"mode": "AUTO"}),  # [CCR] "auto" -> mode auto
    ({"type": "none"}, {"mode": "NONE"}),  # [CCR] "none" -> mode none
    ({"type": "any"}, {"mode": "ANY"}),  # [CCR] "required" -> mode any
    ({"type": "tool", "name": "get_weather"}, {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),  # [CCR]
])
def test_tool_choice(choice: dict[str, Any], config: dict[str, Any]):
    body = request(tools=[{"name": "get_weather", "input_schema": {"type": "object",
                                                                  "properties": {"city": {"type": "string"}}}}],
                   tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_sampling_stops_and_top_k():
    # Gemini's generationConfig documents temperature, topP, topK and stopSequences (occ sent no topK).
    generation = request(temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["END"])["generationConfig"]
    assert (generation["temperature"], generation["topP"], generation["topK"], generation["stopSequences"]) == \
        (0.2, 0.9, 40, ["END"])


def test_output_format_is_a_json_response_schema():
    # Gemini's structured output: responseMimeType application/json with responseJsonSchema (JSON Schema).
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    generation = request(output_config={"format": {"type": "json_schema", "schema": schema}})["generationConfig"]
    assert generation["responseMimeType"] == "application/json" and generation["responseJsonSchema"] == schema
    assert "responseMimeType" not in request(output_config={"effort": "low"}).get("generationConfig", {})
    # before Gemini 3, structured output beside function declarations is a 400: the tools win
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    noted: list[str] = []
    body = build_request({"model": "c", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
                          "tools": tools, "output_config": {"format": {"type": "json_schema", "schema": schema}}},
                         FLASH, stream=False, log=noted.append)
    assert "responseMimeType" not in body["generationConfig"] and body["tools"] and noted
    three = ModelConfig(provider="p", model_id="gemini-3-pro-preview")
    body = build_request({"model": "c", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
                          "tools": tools, "output_config": {"format": {"type": "json_schema", "schema": schema}}},
                         three, stream=False)
    assert body["generationConfig"]["responseJsonSchema"] == schema and body["tools"]


# -- answers -----------------------------------------------------------------------------------------------


def _call_chunk(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": name, "args": args}} for name, args in calls]}, "index": 0}]}


def _finish(reason: str = "STOP", prompt: int = 50, out: int = 20) -> dict[str, Any]:
    return {"candidates": [{"finishReason": reason, "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out}}


def test_streamed_call_then_stop_is_a_tool_use_turn():
    # [L-finish] test_streaming_tool_call_finish_reason_is_tool_calls: Gemini says STOP after a call.
    m = stream(_call_chunk(("get_current_weather", {"location": "Boston, MA"})), _finish())
    assert [(b["type"], b["name"], b["input"]) for b in m["content"]] == \
        [("tool_use", "get_current_weather", {"location": "Boston, MA"})]
    assert m["stop_reason"] == "tool_use"
    assert (m["usage"]["input_tokens"], m["usage"]["output_tokens"]) == (50, 20)


def test_streamed_text_then_stop_is_end_turn():
    # [L-finish] test_streaming_no_tool_calls_finish_reason_is_stop
    m = stream({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello! How can I help?"}]},
                                "index": 0}]}, _finish(prompt=10, out=8))
    assert m["content"] == [{"type": "text", "text": "Hello! How can I help?"}] and m["stop_reason"] == "end_turn"


def test_two_streamed_calls_then_stop():
    # [L-finish] test_streaming_multiple_tool_calls_finish_reason
    m = stream(_call_chunk(("get_weather", {"location": "NYC"}), ("get_time", {"timezone": "EST"})), _finish())
    assert [b["name"] for b in m["content"]] == ["get_weather", "get_time"]
    assert len({b["id"] for b in m["content"]}) == 2 and m["stop_reason"] == "tool_use"


def test_safety_without_content_is_a_refusal():
    # [L-finish] test_streaming_content_filter_finish_reason_preserved / [L-contentless] content_filter ->
    # refusal in the Anthropic adapter
    assert stream({"candidates": [{"finishReason": "SAFETY", "index": 0}]})["stop_reason"] == "refusal"
    assert answer({"candidates": [{"finishReason": "SAFETY", "index": 0}]})["stop_reason"] == "refusal"


def test_a_malformed_call_without_content_fails_the_attempt():
    # [L-contentless] test_process_candidates_with_other_contentless_finish_reasons maps
    # MALFORMED_FUNCTION_CALL to "stop" (an empty end_turn). Disagreement: Gemini documents it as the model
    # producing an invalid call, so occ answers 502 and the attempt is retried or the next model tried;
    # an empty end_turn would end Claude Code's turn with nothing done.
    with pytest.raises(UpstreamStatus):
        answer({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}]})


def test_usage_without_details():
    # [L-usage] test_gemini_3_flash_preview_token_usage_fallback / test_gemini_no_reasoning_fallback
    out = answer({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                  "usageMetadata": {"promptTokenCount": 2145, "candidatesTokenCount": 509, "totalTokenCount": 2654}})
    assert (out["usage"]["input_tokens"], out["usage"]["output_tokens"]) == (2145, 509)


def test_usage_with_cache_and_thoughts():
    # Gemini's usageMetadata: promptTokenCount includes cachedContentTokenCount; thoughtsTokenCount is
    # output not in candidatesTokenCount. Anthropic's input_tokens excludes cache reads.
    out = answer({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                  "usageMetadata": {"promptTokenCount": 1000, "cachedContentTokenCount": 600,
                                    "candidatesTokenCount": 40, "thoughtsTokenCount": 60, "totalTokenCount": 1100}})
    assert (out["usage"]["input_tokens"], out["usage"]["cache_read_input_tokens"], out["usage"]["output_tokens"]) \
        == (400, 600, 100)

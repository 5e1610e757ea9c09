"""Claude Code's WebSearch end to end: the anthropic SDK against occ on hypercorn, fake Responses, Gemini
and chat upstreams and a fake SearXNG, all on 127.0.0.1 with real sockets; streamed and not."""

from __future__ import annotations

import json
import urllib.parse

import anthropic
import httpx
import pytest
from support import search_answers as S
from support.anthropic_checker import check_stream
from support.fake_upstream import Reply, start_fake
from support.stack import make_config, ok_stream, sdk

TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
PROMPT = [{"role": "user", "content": f"Perform a web search for the query: {S.QUERY}"}]
RESPONSES_MODEL = {"provider": "fake", "model_id": "gpt-5.4", "wire_format": "responses"}
GEMINI_MODEL = {"provider": "fake", "model_id": "gemini-3-pro", "wire_format": "gemini"}
CHAT_MODEL = {"provider": "fake", "model_id": "glm-5"}


async def _ask(url: str, stream: bool, **extra) -> anthropic.types.Message:
    """The request Claude Code's WebSearch tool sends (its cli.js 2.1.x): one user turn, its own system prompt,
    thinking off, the server tool alone and forced by ``tool_choice``."""
    client = sdk(url)
    kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": PROMPT, "tools": [TOOL],
              "tool_choice": {"type": "tool", "name": "web_search"},
              "system": "You are an assistant for performing a web search tool use",
              "thinking": {"type": "disabled"}, **extra}
    if stream:
        async with client.messages.stream(**kwargs) as events:
            return await events.get_final_message()
    return await client.messages.create(**kwargs)


def _kinds(message) -> list[str]:
    return [b.type for b in message.content]


@pytest.mark.parametrize("stream", [True, False])
async def test_web_search_through_responses(fake, start_occ, stream):
    reply = Reply(chunks=[S.responses_search_stream()]) if stream else Reply(body=S.responses_search_body().encode())
    fake.default("/v1/responses", reply)
    url = await start_occ(make_config(fake, models={"default": CHAT_MODEL, "web_search": RESPONSES_MODEL}))
    message = await _ask(url, stream)
    assert _kinds(message) == ["server_tool_use", "web_search_tool_result", "text"]
    use, results, text = message.content
    assert use.id.startswith("srvtoolu_") and use.name == "web_search" and use.input == {"query": S.QUERY}
    assert results.tool_use_id == use.id
    assert [(r.type, r.url, r.title) for r in results.content] == [("web_search_result", S.URL_1, S.TITLE_1),
                                                                  ("web_search_result", S.URL_2, S.TITLE_2)]
    assert text.text == S.TEXT
    assert [(c.type, c.url, c.title) for c in text.citations] == [
        ("web_search_result_location", S.URL_1, S.TITLE_1), ("web_search_result_location", S.URL_2, S.TITLE_2)]
    assert message.usage.server_tool_use.web_search_requests == 1
    assert message.stop_reason == "end_turn"
    sent = fake.requests("/v1/responses")[0].json
    assert {"type": "web_search"} in sent["tools"] and "web_search_call.action.sources" in sent["include"]
    assert sent["model"] == "gpt-5.4"


@pytest.mark.parametrize("stream", [True, False])
async def test_web_search_through_gemini(fake, start_occ, stream):
    path = "/v1beta/models/gemini-3-pro:" + ("streamGenerateContent" if stream else "generateContent")
    reply = Reply(chunks=[S.gemini_search_stream()], headers={"content-type": "text/event-stream"}) if stream \
        else Reply(body=S.gemini_search_body().encode())
    fake.default(path, reply)
    url = await start_occ(make_config(fake, models={"default": GEMINI_MODEL}))
    message = await _ask(url, stream)
    assert _kinds(message) == ["server_tool_use", "web_search_tool_result", "server_tool_use",
                               "web_search_tool_result", "text"]
    assert message.content[0].input == {"query": S.QUERY}
    assert [r.url for r in message.content[1].content] == [S.G_URL_1, S.G_URL_2]
    text = message.content[-1]
    assert text.text == S.G_TEXT and {c.cited_text for c in text.citations} == {S.SENTENCE_1, S.SENTENCE_2}
    assert message.usage.server_tool_use.web_search_requests == 2
    assert fake.requests(path)[0].json["tools"] == [{"google_search": {}}]


async def test_the_raw_stream_carries_whole_search_blocks_and_citation_deltas(fake, start_occ):
    fake.default("/v1/responses", Reply(chunks=[S.responses_search_stream()]))
    url = await start_occ(make_config(fake, models={"default": RESPONSES_MODEL}))
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{url}/v1/messages", json={
            "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True, "messages": PROMPT, "tools": [TOOL]})
    message = check_stream(response.content)
    assert [b["type"] for b in message["content"]] == ["server_tool_use", "web_search_tool_result", "text"]
    assert len(message["content"][2]["citations"]) == 2
    assert message["usage"]["server_tool_use"]["web_search_requests"] == 1


@pytest.fixture
async def searxng(nursery):
    """A fake SearXNG on 127.0.0.1 answering ``/search`` with its JSON."""
    server = await start_fake(nursery)
    server.default("/search", Reply(body=S.searxng_answer()))
    return server


@pytest.mark.parametrize("stream", [True, False])
async def test_web_search_through_searxng_for_a_chat_model(fake, searxng, start_occ, stream):
    fake.default("/v1/chat/completions", ok_stream("Rust 1.80 came out on 25 July 2024 [1]."))
    config = make_config(fake, models={"default": CHAT_MODEL},
                         web_search={"backend": "searxng", "url": searxng.url, "max_results": 5})
    url = await start_occ(config)
    message = await _ask(url, stream, tools=[{**TOOL, "blocked_domains": ["spam.example"]}])
    assert _kinds(message) == ["server_tool_use", "web_search_tool_result", "text"]
    use, results, text = message.content
    assert use.input == {"query": S.QUERY} and results.tool_use_id == use.id
    assert [(r.url, r.title) for r in results.content] == [(S.URL_1, S.TITLE_1), (S.URL_2, S.TITLE_2)]
    assert results.content[0].page_age == "2024-07-25T00:00:00" and results.content[1].page_age is None
    assert text.text == "Rust 1.80 came out on 25 July 2024 [1]."
    assert message.usage.server_tool_use.web_search_requests == 1
    asked = searxng.requests("/search")
    assert len(asked) == 1
    form = urllib.parse.parse_qs(asked[0].body.decode())
    assert form["format"] == ["json"] and form["q"] == [f"{S.QUERY} -site:spam.example"]
    sent = fake.requests("/v1/chat/completions")[0].json
    assert "tools" not in sent
    said = sent["messages"][-1]["content"]
    said = said if isinstance(said, str) else " ".join(p.get("text", "") for p in said)
    assert S.URL_1 in said and "Rust 1.80.0" in said and "spam.example" not in said


async def test_a_searxng_that_fails_gives_an_error_result_and_an_answer(fake, start_occ, nursery):
    broken = await start_fake(nursery)
    broken.default("/search", Reply(status=403, body=b"Forbidden"))
    fake.default("/v1/chat/completions", ok_stream("I could not search."))
    url = await start_occ(make_config(fake, models={"default": CHAT_MODEL},
                                      web_search={"backend": "searxng", "url": broken.url}))
    message = await _ask(url, True)
    assert _kinds(message) == ["server_tool_use", "web_search_tool_result", "text"]
    assert message.content[1].content.type == "web_search_tool_result_error"
    assert message.content[1].content.error_code == "unavailable"
    said = json.dumps(fake.requests("/v1/chat/completions")[0].json["messages"])
    assert "failed" in said


async def test_tavily_is_asked_with_its_key_and_the_key_never_shows(fake, start_occ, nursery):
    tavily = await start_fake(nursery)
    tavily.default("/search", Reply(body=S.tavily_answer()))
    fake.default("/v1/chat/completions", ok_stream("found"))
    key = "tvly-SECRET-0123456789abcdef"
    url = await start_occ(make_config(fake, models={"default": CHAT_MODEL},
                                      web_search={"backend": "tavily", "url": tavily.url, "api_key": key}))
    message = await _ask(url, False, tools=[{**TOOL, "allowed_domains": ["rust-lang.org"]}])
    assert [r.url for r in message.content[1].content] == [S.URL_1, S.URL_2]
    seen = tavily.requests("/search")[0]
    assert seen.headers["authorization"] == f"Bearer {key}"
    assert seen.json["query"] == S.QUERY and seen.json["include_domains"] == ["rust-lang.org"]
    assert key not in json.dumps(message.model_dump())


async def test_no_way_to_search_is_a_400_naming_the_keys_and_no_upstream_call(fake, start_occ):
    url = await start_occ(make_config(fake, models={"default": CHAT_MODEL}))
    for stream in (False, True):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await _ask(url, stream)
        assert caught.value.status_code == 400
        body = caught.value.body
        assert body["error"]["type"] == "invalid_request_error"
        assert "models.web_search" in body["error"]["message"] and "web_search.backend" in body["error"]["message"]
    assert fake.requests() == []


async def test_search_history_goes_back_as_text(fake, start_occ):
    fake.default("/v1/responses", Reply(body=S.responses_search_body().encode()))
    fake.default("/v1/chat/completions", ok_stream("It was 1.79."))
    url = await start_occ(make_config(fake, models={"default": CHAT_MODEL, "web_search": RESPONSES_MODEL}))
    first = await _ask(url, False)
    history = [*PROMPT, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": "And the release before it?"}]
    async with sdk(url).messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=history) as events:
        second = await events.get_final_message()
    assert second.content[0].text == "It was 1.79."
    sent = fake.requests("/v1/chat/completions")[0].json
    said = json.dumps(sent["messages"])
    assert S.QUERY in said and S.URL_1 in said and "web_search_tool_result" not in said


async def test_backend_search_beside_other_tools_sends_no_choice_of_the_search(fake, searxng, start_occ):
    fake.default("/v1/chat/completions", ok_stream("done"))
    url = await start_occ(make_config(fake, models={"default": CHAT_MODEL},
                                      web_search={"backend": "searxng", "url": searxng.url}))
    read = {"name": "Read", "description": "read a file", "input_schema": {"type": "object", "properties": {}}}
    message = await _ask(url, True, tools=[read, TOOL])
    assert _kinds(message) == ["server_tool_use", "web_search_tool_result", "text"]
    sent = fake.requests("/v1/chat/completions")[0].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["Read"]
    assert sent.get("tool_choice") in (None, "auto")


def _anthropic_search_stream() -> bytes:
    """A web search streamed by the Anthropic API itself (its documented event order: the query as an
    ``input_json_delta``, the results whole in their start, citations as ``citations_delta``)."""
    use = {"type": "server_tool_use", "id": "srvtoolu_01WYG3ziw53XMcoyKL4XcZmE", "name": "web_search", "input": {}}
    result = {"type": "web_search_tool_result", "tool_use_id": use["id"], "content": [
        {"type": "web_search_result", "url": S.URL_1, "title": S.TITLE_1, "encrypted_content": "EqgfCioIARgBIiQ3",
         "page_age": "July 25, 2024"}]}
    cite = {"type": "web_search_result_location", "url": S.URL_1, "title": S.TITLE_1,
            "cited_text": "The Rust team is happy to announce", "encrypted_index": "Eo8BCioIAhgBIiQy"}
    events = [
        {"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant",
                                              "model": "claude-sonnet-4-5", "content": [], "stop_reason": None,
                                              "stop_sequence": None,
                                              "usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": use},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": json.dumps({"query": S.QUERY})}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": result},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "citations_delta", "citation": cite}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Rust 1.80 is out."}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 20, "server_tool_use": {"web_search_requests": 1}}},
        {"type": "message_stop"}]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


async def test_claude_on_the_anthropic_wire_searches_itself(fake, start_occ):
    fake.default("/v1/messages", Reply(chunks=[_anthropic_search_stream()],
                                       headers={"content-type": "text/event-stream"}))
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "claude-sonnet-4-5",
                                                                "wire_format": "anthropic"}}))
    message = await _ask(url, True)
    assert _kinds(message) == ["server_tool_use", "web_search_tool_result", "text"]
    assert message.content[0].input == {"query": S.QUERY}
    assert message.content[2].citations[0].url == S.URL_1
    assert message.usage.server_tool_use.web_search_requests == 1
    sent = fake.requests("/v1/messages")[0].json
    assert sent["tools"] == [TOOL] and sent["tool_choice"] == {"type": "tool", "name": "web_search"}


@pytest.mark.parametrize("stream", [True, False])
async def test_web_search_through_openrouters_plugin(fake, start_occ, stream):
    fake.default("/v1/chat/completions", Reply(body=S.chat_search_body().encode()))
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "openai/gpt-5.4",
                                                                "web_search": "openrouter"}}))
    message = await _ask(url, stream)
    assert _kinds(message) == ["server_tool_use", "web_search_tool_result", "text"]
    assert message.content[0].input == {"query": S.QUERY}  # OpenRouter does not say: the request's
    assert [r.url for r in message.content[1].content] == [S.URL_1, S.URL_2]
    assert len(message.content[2].citations) == 2 and message.usage.server_tool_use.web_search_requests == 1
    sent = fake.requests("/v1/chat/completions")[0].json
    assert sent["plugins"] == [{"id": "web", "max_results": 5}] and "stream" not in sent and "tools" not in sent


async def test_a_searxng_that_does_not_answer_costs_its_deadline_only(fake, start_occ, nursery):
    slow = await start_fake(nursery)
    slow.default("/search", Reply(body=S.searxng_answer(), delay_s=60))
    fake.default("/v1/chat/completions", ok_stream("No search today."))
    url = await start_occ(make_config(fake, models={"default": CHAT_MODEL},
                                      web_search={"backend": "searxng", "url": slow.url, "timeout_ms": 300}))
    message = await _ask(url, False)
    assert message.content[1].content.type == "web_search_tool_result_error"
    assert message.content[2].text == "No search today."
    assert len(slow.requests("/search")) == 1

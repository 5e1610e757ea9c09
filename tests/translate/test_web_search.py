"""Web search through the Responses and Gemini wires, and its blocks in later turns, as the SDKs read them.

Upstream answers are built from the openai / google-genai SDK types (tests/support/search_answers.py);
occ's output is checked by the stream grammar checker and read by the anthropic SDK: its ``Message``
model (strict validation) for whole answers and its stream accumulator for streams.
"""

from __future__ import annotations

import json

import anthropic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from support import search_answers as S
from support.anthropic_checker import check_stream, split_frames, translate_chunks
from support.strategies import cut, split_points

from occ.config.model import ModelConfig
from occ.core.errors import UpstreamProtocolError
from occ.translate import anthropic_passthrough, gemini, openai_chat, responses
from occ.translate.anthropic_events import AnthropicStreamBuilder
from occ.translate.web_search import ENCRYPTED_PREFIX, Source, decode_encrypted, search_blocks
from occ.translate.wires import wire_for

TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
REQUEST = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": [TOOL],
           "messages": [{"role": "user", "content": f"Perform a web search for the query: {S.QUERY}"}]}
RESP = ModelConfig(provider="zen", model_id="gpt-5.4", wire_format="responses")
GEM = ModelConfig(provider="zen", model_id="gemini-3-pro", wire_format="gemini")
_EVENTS = TypeAdapter(RawMessageStreamEvent)


def sdk_message(raw: bytes) -> anthropic.types.Message:
    """What ``client.messages.stream(...).get_final_message()`` gives for ``raw``: the SDK's accumulator
    over the SDK's own event types."""
    snapshot = None
    for _, data in split_frames(raw):
        if data["type"] == "ping":
            continue
        snapshot = accumulate_event(event=_EVENTS.validate_python(data), current_snapshot=snapshot, json_bufs={})
    assert snapshot is not None
    return anthropic.types.Message.model_validate(snapshot.model_dump())


def translate(wire: str, body: str, model: ModelConfig) -> anthropic.types.Message:
    message = wire_for(wire).translate_response(json.loads(body), model=model, message_id="msg_1",
                                                 model_name="claude-sonnet-4-5", input_estimate=50)
    return anthropic.types.Message.model_validate(message)


def stream(wire: str, raw: bytes, model: ModelConfig, *, chunk: int = 97) -> tuple[bytes, anthropic.types.Message]:
    make = wire_for(wire).collected_translator
    assert make is not None
    chunks = [raw[i:i + chunk] for i in range(0, len(raw), chunk)]
    out, _ = translate_chunks(lambda b: make(b, model, ["web_search"]), chunks, model="claude-sonnet-4-5")
    check_stream(out)
    return out, sdk_message(out)


def _shape(message: anthropic.types.Message) -> list[str]:
    return [b.type for b in message.content]


# -- the request -------------------------------------------------------------------------------------


def test_responses_asks_with_its_own_web_search_tool_and_sources():
    body = responses.build_request({**REQUEST, "tools": [{**TOOL, "allowed_domains": ["rust-lang.org"],
                                                          "user_location": {"type": "approximate", "city": "Oslo",
                                                                            "country": "NO"}}]}, RESP, stream=True)
    assert body["tools"] == [{"type": "web_search", "filters": {"allowed_domains": ["rust-lang.org"]},
                              "user_location": {"type": "approximate", "city": "Oslo", "country": "NO"}}]
    assert "web_search_call.action.sources" in body["include"]
    assert body["max_tool_calls"] == 8


def test_responses_keeps_function_tools_beside_the_search():
    tool = {"name": "Read", "description": "read", "input_schema": {"type": "object", "properties": {}}}
    body = responses.build_request({**REQUEST, "tools": [tool, TOOL]}, RESP, stream=False)
    assert [t["type"] for t in body["tools"]] == ["function", "web_search"]


def test_gemini_asks_with_google_search_grounding():
    body = gemini.build_request(REQUEST, GEM, stream=True)
    assert body["tools"] == [{"google_search": {}}]


def test_gemini_before_3_gets_search_alone():
    tool = {"name": "Read", "description": "read", "input_schema": {"type": "object", "properties": {"p": {}}}}
    notes: list[str] = []
    old = ModelConfig(provider="g", model_id="gemini-2.5-pro")
    body = gemini.build_request({**REQUEST, "tools": [tool, TOOL]}, old, stream=True, log=notes.append)
    assert body["tools"] == [{"google_search": {}}] and notes
    both = gemini.build_request({**REQUEST, "tools": [tool, TOOL]}, GEM, stream=True)
    assert both["tools"] == [{"functionDeclarations": [{"name": "Read", "description": "read",
                                                       "parameters": both["tools"][0]["functionDeclarations"][0][
                                                           "parameters"]}]}, {"google_search": {}}]


def test_no_search_tool_no_search():
    plain = {**REQUEST, "tools": []}
    assert "tools" not in responses.build_request(plain, RESP, stream=True)
    assert "web_search_call.action.sources" not in responses.build_request(plain, RESP, stream=True)["include"]
    assert "tools" not in gemini.build_request(plain, GEM, stream=True)


# -- Responses answers -------------------------------------------------------------------------------


def _check_responses_message(message: anthropic.types.Message) -> None:
    assert _shape(message) == ["server_tool_use", "web_search_tool_result", "text"]
    use, result, text = message.content
    assert use.id.startswith("srvtoolu_") and use.name == "web_search" and use.input == {"query": S.QUERY}
    assert result.tool_use_id == use.id
    assert [(r.url, r.title) for r in result.content] == [(S.URL_1, S.TITLE_1), (S.URL_2, S.TITLE_2)]
    assert all(r.type == "web_search_result" and r.encrypted_content.startswith(ENCRYPTED_PREFIX)
               for r in result.content)
    assert text.text == S.TEXT
    assert [(c.type, c.url, c.title, c.cited_text) for c in text.citations] == [
        ("web_search_result_location", S.URL_1, S.TITLE_1, S.SENTENCE_1),
        ("web_search_result_location", S.URL_2, S.TITLE_2, S.SENTENCE_2)]
    assert all(c.encrypted_index for c in text.citations)
    assert message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 1
    assert message.stop_reason == "end_turn"


def test_responses_answer_whole():
    message = translate("responses", S.responses_search_body(), RESP)
    _check_responses_message(message)
    assert message.usage.input_tokens == 300 and message.usage.output_tokens == 60


@pytest.mark.parametrize("empty_completed", [False, True])
def test_responses_answer_streamed(empty_completed):
    out, message = stream("responses", S.responses_search_stream(empty_completed=empty_completed), RESP)
    _check_responses_message(message)
    frames = split_frames(out)
    starts = [d["content_block"] for n, d in frames if n == "content_block_start"]
    assert starts[0]["type"] == "server_tool_use" and starts[0]["input"] == {"query": S.QUERY}
    assert starts[1]["type"] == "web_search_tool_result" and len(starts[1]["content"]) == 2
    deltas = [d["delta"]["type"] for n, d in frames if n == "content_block_delta"]
    assert deltas.count("citations_delta") == 2
    assert frames[-2][1]["usage"]["server_tool_use"]["web_search_requests"] == 1


def test_responses_without_sources_lists_the_cited_pages():
    message = translate("responses", S.responses_search_body(with_sources=False), RESP)
    assert [r.url for r in message.content[1].content] == [S.URL_1, S.URL_2]


def test_responses_stream_and_whole_answer_agree():
    _, streamed = stream("responses", S.responses_search_stream(), RESP, chunk=13)
    whole = translate("responses", S.responses_search_body(), RESP)
    strip = lambda m: [{k: v for k, v in b.model_dump().items() if k not in ("id", "tool_use_id")}  # noqa: E731
                       for b in m.content]
    assert strip(streamed) == strip(whole)


def test_responses_failed_search_stream_is_an_upstream_failure():
    from occ.core.errors import OccError

    raw = (b'event: response.failed\ndata: {"type":"response.failed","response":{"status":"failed",'
           b'"error":{"code":"server_error","message":"boom"}}}\n\n')
    with pytest.raises(OccError):
        stream("responses", raw, RESP)


def test_a_stream_cut_before_completed_is_a_protocol_error():
    raw = S.responses_search_stream()
    cut = raw[:raw.index(b"event: response.completed")]
    with pytest.raises(UpstreamProtocolError):
        stream("responses", cut, RESP)


# -- Gemini answers ----------------------------------------------------------------------------------


def _check_gemini_message(message: anthropic.types.Message) -> None:
    kinds = _shape(message)
    assert kinds[-5:] == ["server_tool_use", "web_search_tool_result", "server_tool_use", "web_search_tool_result",
                          "text"]
    first, result, second, empty, text = message.content[-5:]
    assert first.input == {"query": S.QUERY} and second.input == {"query": "rust LazyLock stabilised"}
    assert [(r.url, r.title) for r in result.content] == [(S.G_URL_1, "rust-lang.org"),
                                                          (S.G_URL_2, "doc.rust-lang.org")]
    assert empty.content == [] and empty.tool_use_id == second.id
    assert text.text == S.G_TEXT
    cites = [(c.url, c.cited_text) for c in text.citations]
    assert cites == [(S.G_URL_1, S.SENTENCE_1), (S.G_URL_2, S.SENTENCE_2), (S.G_URL_1, S.SENTENCE_2)]
    assert message.usage.server_tool_use.web_search_requests == 2


def test_gemini_answer_whole():
    message = translate("gemini", S.gemini_search_body(), GEM)
    _check_gemini_message(message)
    assert message.usage.input_tokens == 200


@pytest.mark.parametrize("chunk", [7, 64, 100_000])
def test_gemini_answer_streamed(chunk):
    _, message = stream("gemini", S.gemini_search_stream(), GEM, chunk=chunk)
    _check_gemini_message(message)
    assert message.content[0].type == "thinking" and message.content[0].thinking == "Let me look."


def test_gemini_without_grounding_is_plain_text():
    from google.genai import types as T

    body = S.gemini_json(S.gemini_search_object(parts=[T.Part(text="I know this.")], grounding=False))
    message = translate("gemini", body, GEM)
    assert _shape(message) == ["text"] and message.usage.server_tool_use is None


# -- the builder -------------------------------------------------------------------------------------


def test_builder_refuses_a_result_without_its_use():
    builder = AnthropicStreamBuilder(message_id="msg_1", model="m", input_tokens=5)
    use, result = search_blocks("q", [Source(url="https://a.example/")])
    with pytest.raises(UpstreamProtocolError):
        builder.raw_block(result)
    builder.raw_block(use)
    builder.raw_block(result)
    builder.citation({"type": "web_search_result_location", "url": "https://a.example/", "title": "a",
                      "cited_text": "x", "encrypted_index": "e"})
    builder.text("A says x.")
    builder.finish("end_turn")
    message = sdk_message(builder.take())
    assert _shape(message) == ["server_tool_use", "web_search_tool_result", "text"]
    assert message.content[2].citations[0].url == "https://a.example/"
    assert message.usage.server_tool_use.web_search_requests == 1


def test_builder_prelude_waits_for_content():
    builder = AnthropicStreamBuilder(message_id="msg_1", model="m", input_tokens=5)
    builder.prelude(search_blocks("q", [Source(url="https://a.example/", title="A", snippet="s")]))
    assert not builder.committed and builder.take() == b""
    builder.text("answer")
    builder.finish("end_turn")
    out = builder.take()
    check_stream(out)
    assert _shape(sdk_message(out)) == ["server_tool_use", "web_search_tool_result", "text"]


# -- later turns -------------------------------------------------------------------------------------


def _history(message: anthropic.types.Message) -> dict:
    answer = [b.model_dump(exclude_none=True) for b in message.content]
    return {**REQUEST, "messages": [*REQUEST["messages"], {"role": "assistant", "content": answer},
                                    {"role": "user", "content": "And the one before?"}]}


@pytest.mark.parametrize("source", ["responses", "gemini"])
def test_search_blocks_in_history_become_text_on_every_wire(source):
    message = translate(source, S.responses_search_body() if source == "responses" else S.gemini_search_body(),
                        RESP if source == "responses" else GEM)
    request = _history(message)
    chat = openai_chat.build_request(request, ModelConfig(provider="go", model_id="glm-5"), stream=True)
    said = next(m for m in chat["messages"] if m["role"] == "assistant")["content"]
    assert S.QUERY in said and "[web search results]" in said
    assert ("blog.rust-lang.org" if source == "responses" else "vertexaisearch") in said
    resp = responses.build_request(request, RESP, stream=True)
    texts = [p["text"] for i in resp["input"] if i.get("role") == "assistant" for p in i["content"]]
    assert any(S.QUERY in t for t in texts)
    gem = gemini.build_request(request, GEM, stream=True)
    assert any(S.QUERY in p.get("text", "") for c in gem["contents"] if c["role"] == "model" for p in c["parts"])
    for model_id in ("minimax-m3", "claude-sonnet-4-5"):
        raw = json.dumps(request).encode()
        body = json.loads(anthropic_passthrough.build_body(raw, request, ModelConfig(provider="go", model_id=model_id)))
        kinds = [b["type"] for b in body["messages"][1]["content"]]
        assert "web_search_tool_result" not in kinds and "server_tool_use" not in kinds, (model_id, kinds)
        assert all("citations" not in b for b in body["messages"][1]["content"])


def test_real_anthropic_search_blocks_pass_to_claude():
    real = [{"type": "server_tool_use", "id": "srvtoolu_01A", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01A",
             "content": [{"type": "web_search_result", "url": "https://a.example/", "title": "A",
                          "encrypted_content": "EqgfCioIARgBIiQ3YTA", "page_age": None}]},
            {"type": "text", "text": "A.", "citations": [{"type": "web_search_result_location",
                                                          "url": "https://a.example/", "title": "A",
                                                          "cited_text": "A", "encrypted_index": "Eo8BCioIAhgB"}]}]
    request = {**REQUEST, "messages": [*REQUEST["messages"], {"role": "assistant", "content": real},
                                       {"role": "user", "content": "more"}]}
    raw = json.dumps(request).encode()
    body = json.loads(anthropic_passthrough.build_body(raw, request, ModelConfig(provider="z", model_id="claude-x")))
    assert body["messages"][1]["content"] == real
    body = json.loads(anthropic_passthrough.build_body(raw, request, ModelConfig(provider="g", model_id="qwen3.7")))
    assert [b["type"] for b in body["messages"][1]["content"]] == ["text", "text", "text"]


def test_occ_encrypted_content_carries_the_snippet():
    use, result = search_blocks("q", [Source(url="https://a.example/x", title="A", snippet="the words")])
    assert decode_encrypted(result["content"][0]["encrypted_content"]) == {"u": "https://a.example/x", "t": "A",
                                                                          "s": "the words"}
    request = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [use, result]}]}
    body = openai_chat.build_request(request, ModelConfig(provider="go", model_id="glm-5"), stream=False)
    assert "the words" in body["messages"][-1]["content"]


# -- edges -------------------------------------------------------------------------------------------


def test_a_tool_choice_naming_the_search_forces_no_function():
    tool = {"name": "Read", "description": "read", "input_schema": {"type": "object", "properties": {"p": {}}}}
    request = {**REQUEST, "tools": [tool, TOOL], "tool_choice": {"type": "tool", "name": "web_search"}}
    assert "tool_choice" not in responses.build_request(request, RESP, stream=True)
    assert "toolConfig" not in gemini.build_request(request, GEM, stream=True)


def test_gemini_segments_by_byte_offsets_only():
    from google.genai import types as T

    text = "Ünïcode first. Then the second claim."
    second = text.encode().index(b"Then")
    meta = T.GroundingMetadata(
        web_search_queries=["q"],
        grounding_chunks=[T.GroundingChunk(web=T.GroundingChunkWeb(uri="https://a.example/", title="a.example"))],
        grounding_supports=[T.GroundingSupport(segment=T.Segment(start_index=second, end_index=len(text.encode())),
                                               grounding_chunk_indices=[0])])
    candidate = T.Candidate(content=T.Content(role="model", parts=[T.Part(text=text)]), index=0,
                            finish_reason=T.FinishReason("STOP"), grounding_metadata=meta)
    body = S.gemini_json(T.GenerateContentResponse(candidates=[candidate]))
    message = translate("gemini", body, GEM)
    assert message.content[-1].citations[0].cited_text == "Then the second claim."


def test_gemini_grounding_split_over_chunks_is_merged():
    from google.genai import types as T

    whole = S.gemini_grounding()
    first = T.GroundingMetadata(web_search_queries=whole.web_search_queries)
    rest = T.GroundingMetadata(grounding_chunks=whole.grounding_chunks, grounding_supports=whole.grounding_supports)
    objects = [S.gemini_search_object(parts=[T.Part(text=S.G_TEXT)], grounding=False, finish=None, usage=False)]
    objects[0].candidates[0].grounding_metadata = first
    last = S.gemini_search_object(parts=[T.Part(text="")])
    last.candidates[0].grounding_metadata = rest
    raw = S.sse_data([S.gemini_json(o) for o in [*objects, last]])
    _, message = stream("gemini", raw, GEM)
    _check_gemini_message(message)


def test_responses_with_reasoning_two_searches_and_a_call():
    from openai.types.responses import ResponseFunctionToolCall, ResponseFunctionWebSearch, ResponseReasoningItem
    from openai.types.responses.response_function_web_search import ActionOpenPage, ActionSearch

    base = S.responses_search_object()
    extra = [ResponseReasoningItem(id="rs_1", type="reasoning", summary=[], encrypted_content="enc"),
             ResponseFunctionWebSearch(id="ws_0", type="web_search_call", status="completed",
                                       action=ActionSearch(type="search", queries=["first query"])),
             ResponseFunctionWebSearch(id="ws_p", type="web_search_call", status="completed",
                                       action=ActionOpenPage(type="open_page", url=S.URL_1))]
    call = ResponseFunctionToolCall(id="fc_1", type="function_call", call_id="call_1", name="Read",
                                    arguments='{"p": "x"}', status="completed")
    body = base.model_copy(update={"output": [*extra, *base.output, call]}).model_dump_json()
    message = wire_for("responses").translate_response(json.loads(body), model=RESP, message_id="msg_1",
                                                       model_name="m", input_estimate=5, thinking=True)
    kinds = [b["type"] for b in message["content"]]
    assert kinds == ["thinking", "server_tool_use", "web_search_tool_result", "server_tool_use",
                     "web_search_tool_result", "text", "tool_use"]
    assert message["content"][1]["input"] == {"query": "first query"}
    # the first search listed no sources: the cited pages are its results; the second has its own
    assert [r["url"] for r in message["content"][2]["content"]] == [S.URL_1, S.URL_2]
    assert message["usage"]["server_tool_use"]["web_search_requests"] == 2
    assert message["stop_reason"] == "tool_use"
    anthropic.types.Message.model_validate(message)


def claude_code_blocks(raw: bytes) -> list[dict]:
    """The blocks as Claude Code's stream handler builds them (its cli.js, 2.1.x): a ``server_tool_use``
    or ``tool_use`` starts with ``input: ""``, gathers its ``input_json_delta`` pieces and is parsed at its
    stop (``?? {}``); every other block is taken from its start, text and citations appended."""
    blocks: list[dict] = []
    for name, data in split_frames(raw):
        if name == "content_block_start":
            block = dict(data["content_block"])
            if block["type"] in ("tool_use", "server_tool_use"):
                block["input"] = ""
            blocks.append(block)
        elif name == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            if delta["type"] == "input_json_delta":
                block["input"] += delta["partial_json"]
            elif delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "citations_delta":
                block.setdefault("citations", []).append(delta["citation"])
        elif name == "content_block_stop":
            block = blocks[data["index"]]
            if isinstance(block.get("input"), str):
                block["input"] = json.loads(block["input"]) if block["input"] else {}
    return blocks


@pytest.mark.parametrize("wire", ["responses", "gemini"])
def test_claude_code_reads_the_query_from_the_stream(wire):
    raw = S.responses_search_stream() if wire == "responses" else S.gemini_search_stream()
    out, _ = stream(wire, raw, RESP if wire == "responses" else GEM)
    uses = [b for b in claude_code_blocks(out) if b["type"] == "server_tool_use"]
    assert uses and uses[0]["input"] == {"query": S.QUERY}


# -- any chunk split ---------------------------------------------------------------------------------

_RAW = {"responses": S.responses_search_stream(), "gemini": S.gemini_search_stream()}
_WHOLE = {wire: None for wire in _RAW}


def _blocks(message: anthropic.types.Message) -> list[dict]:
    return [{k: v for k, v in b.model_dump().items() if k not in ("id", "tool_use_id")} for b in message.content]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), wire=st.sampled_from(["responses", "gemini"]))
def test_any_byte_split_gives_the_same_message(data, wire):
    raw = _RAW[wire]
    chunks = cut(raw, data.draw(split_points(len(raw))))
    model = RESP if wire == "responses" else GEM
    out, _ = translate_chunks(lambda b: wire_for(wire).collected_translator(b, model, ["web_search"]), chunks,
                              model="claude-sonnet-4-5")
    check_stream(out)
    if _WHOLE[wire] is None:
        _WHOLE[wire] = _blocks(stream(wire, raw, model, chunk=len(raw))[1])
    assert _blocks(sdk_message(out)) == _WHOLE[wire]


def test_titles_are_found_across_openai_tracking_parameters():
    body = json.loads(S.responses_search_body())
    for note in body["output"][1]["content"][0]["annotations"]:
        note["url"] += "?utm_source=openai"
    message = wire_for("responses").translate_response(body, model=RESP, message_id="msg_1", model_name="m",
                                                       input_estimate=5)
    results = message["content"][1]["content"]
    assert [(r["url"], r["title"]) for r in results] == [(S.URL_1, S.TITLE_1), (S.URL_2, S.TITLE_2)]
    assert message["content"][2]["citations"][0]["url"] == S.URL_1 + "?utm_source=openai"


# -- chat completions: OpenRouter's plugin, OpenAI's search models -----------------------------------


def test_chat_search_options_in_the_request():
    located = {**REQUEST, "tools": [{**TOOL, "user_location": {"type": "approximate", "city": "Oslo"}}]}
    router = openai_chat.build_request(located, ModelConfig(provider="or", model_id="x", web_search="openrouter"),
                                       stream=True)
    assert router["plugins"] == [{"id": "web", "max_results": 5}] and "stream" not in router
    openai = openai_chat.build_request(located, ModelConfig(provider="oa", model_id="gpt-5-search-api",
                                                            web_search="openai"), stream=True)
    assert openai["web_search_options"] == {"user_location": {"type": "approximate", "approximate": {"city": "Oslo"}}}
    plain = openai_chat.build_request(located, ModelConfig(provider="go", model_id="glm-5"), stream=True)
    assert "plugins" not in plain and "web_search_options" not in plain and plain["stream"] is True


def test_chat_annotations_become_the_search():
    message = anthropic.types.Message.model_validate(
        openai_chat.translate_response(json.loads(S.chat_search_body()), message_id="msg_1", model_name="m",
                                       input_estimate=5))
    assert _shape(message) == ["server_tool_use", "web_search_tool_result", "text"]
    assert [(r.url, r.title) for r in message.content[1].content] == [(S.URL_1, S.TITLE_1), (S.URL_2, S.TITLE_2)]
    assert [c.cited_text for c in message.content[2].citations] == [S.SENTENCE_1, S.SENTENCE_2]
    assert message.usage.server_tool_use.web_search_requests == 1


def test_chat_search_option_by_host():
    from occ.translate.web_search import chat_search_option

    assert chat_search_option("https://openrouter.ai/api/v1/chat/completions") == "openrouter"
    assert chat_search_option("https://api.openai.com/v1/chat/completions") == "openai"
    assert chat_search_option("https://opencode.ai/zen/go/v1/chat/completions") is None
    assert chat_search_option("https://openrouter.ai.evil.example/v1") is None


_CITE = {"type": "web_search_result_location", "url": "https://a.example/", "title": "A", "cited_text": "x",
         "encrypted_index": "occ1.w.e"}
_STEPS = st.one_of(
    st.tuples(st.just("text"), st.sampled_from(["", " ", "a", "Hello ", "\n"])),
    st.tuples(st.just("thinking"), st.sampled_from(["", "hm", " "])),
    st.tuples(st.just("search"), st.sampled_from(["q", ""])),
    st.tuples(st.just("cite"), st.none()),
    st.tuples(st.just("tool"), st.sampled_from(['{"a":1}', "{}"])),
    st.tuples(st.just("end_block"), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEPS, max_size=14), st.booleans())
def test_any_sequence_with_searches_and_citations_is_a_valid_stream(script, prelude):
    builder = AnthropicStreamBuilder(message_id="msg_b", model="claude-x", input_tokens=5)
    searches = 0
    if prelude:
        builder.prelude(search_blocks("first", [Source(url="https://a.example/", title="A")]))
        searches += 1
    tools = 0
    for kind, value in script:
        if kind == "text":
            builder.text(value)
        elif kind == "thinking":
            builder.thinking(value)
        elif kind == "search":
            for block in search_blocks(value, [Source(url="https://b.example/")]):
                builder.raw_block(block)
            searches += 1
        elif kind == "cite":
            builder.citation(dict(_CITE))
        elif kind == "tool":
            tools += 1
            builder.tool_use(f"toolu_{tools}", "Bash", value)
        else:
            builder.end_block()
    builder.finish("end_turn")
    out = builder.take()
    message = check_stream(out)
    final = sdk_message(out)
    counted = final.usage.server_tool_use.web_search_requests if final.usage.server_tool_use else 0
    assert counted == searches == sum(1 for b in final.content if b.type == "server_tool_use")
    assert all(b.type == "text" for b in final.content if getattr(b, "citations", None))
    assert [b["type"] for b in message["content"]] == [b.type for b in final.content]


def test_chat_stream_annotations_become_a_search():
    from support.fake_upstream import sse
    from support.shapes import chunk, usage_chunk

    from occ.translate.openai_chat import ChatStreamTranslator

    note = {"type": "url_citation", "url_citation": {"url": S.URL_1, "title": S.TITLE_1, "start_index": 0,
                                                     "end_index": 10, "content": "Rust 1.80.0 is out"}}
    raw = b"".join(sse(chunk({"role": "assistant", "content": "Rust 1.80 is out "}),
                       chunk({"content": f"([rust]({S.URL_1}))", "annotations": [note]}),
                       chunk(finish="stop"), usage_chunk(100, 10)))
    out, _ = translate_chunks(lambda b: ChatStreamTranslator(b), [raw[i:i + 50] for i in range(0, len(raw), 50)])
    check_stream(out)
    message = sdk_message(out)
    assert _shape(message) == ["text", "server_tool_use", "web_search_tool_result"]
    assert message.content[0].citations[0].url == S.URL_1
    assert message.content[0].citations[0].cited_text == "Rust 1.80.0 is out"
    assert [r.url for r in message.content[2].content] == [S.URL_1]
    assert message.usage.server_tool_use.web_search_requests == 1


def test_annotations_only_in_their_events_are_kept():
    """A server whose final items carry no annotations (they came only as annotation.added events)."""
    frames = split_frames(S.responses_search_stream())
    out = []
    for name, data in frames:
        if name in ("response.output_item.done", "response.completed"):
            for item in ([data["item"]] if name == "response.output_item.done" else data["response"]["output"]):
                for part in item.get("content") or []:
                    part["annotations"] = []
        out.append(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
    _, message = stream("responses", b"".join(out), RESP)
    _check_responses_message(message)


def test_a_source_url_python_cannot_split_keeps_the_answer():
    """A source URL ``urlsplit`` refuses (``https://[docs]/x``: "does not appear to be an IPv4 or IPv6
    address") and no title: the title falls back to the URL itself, the answer is not lost to a ValueError."""
    from openai.types.responses import Response, ResponseFunctionWebSearch, ResponseOutputMessage, ResponseOutputText
    from openai.types.responses.response_function_web_search import ActionSearch, ActionSearchSource
    from openai.types.responses.response_output_text import AnnotationURLCitation

    odd = "https://[docs]/x"
    text = f"It is so ([docs]({odd}))."
    call = ResponseFunctionWebSearch(id="ws_1", type="web_search_call", status="completed",
                                     action=ActionSearch(type="search", query=S.QUERY,
                                                         sources=[ActionSearchSource(type="url", url=odd)]))
    note = AnnotationURLCitation(type="url_citation", url=odd, title="", start_index=9, end_index=len(text) - 1)
    message = ResponseOutputMessage(id="msg_1", type="message", role="assistant", status="completed",
                                    content=[ResponseOutputText(type="output_text", text=text, annotations=[note])])
    body = Response(id="resp_ws", object="response", created_at=1700000000.0, model="gpt-5.4", output=[call, message],
                    parallel_tool_calls=True, tool_choice="auto", tools=[], status="completed", error=None)
    out = translate("responses", body.model_dump_json(), RESP)
    assert out.content[1].content[0].url == odd and out.content[1].content[0].title == odd
    assert out.content[2].citations[0].title == odd


def test_gemini_collector_joins_runs_of_one_kind_around_calls():
    """Thought pieces join into one thought part and text pieces into one text part (pieces kept, joined once
    at the end: the price per chunk does not grow with the answer); a call splits the runs."""
    from google.genai import types as T

    from occ.core.sse import SSEEvent

    def chunk(*parts: T.Part, finish: T.FinishReason | None = None) -> SSEEvent:
        candidate = T.Candidate(content=T.Content(role="model", parts=list(parts)), finish_reason=finish)
        return SSEEvent(data=T.GenerateContentResponse(candidates=[candidate]).model_dump_json(by_alias=True))

    collector = gemini.GeminiCollector()
    events = [chunk(T.Part(text=f"t{i} ", thought=True)) for i in range(300)]
    events += [chunk(T.Part(text=f"a{i} ")) for i in range(300)]
    events += [chunk(T.Part(function_call=T.FunctionCall(name="Read", args={"file_path": "/x"})))]
    events += [chunk(T.Part(text="b")), chunk(T.Part(text="c"), finish=T.FinishReason.STOP)]
    answers = [collector.feed(e) for e in events]
    assert answers[:-1] == [None] * (len(events) - 1)
    parts = answers[-1]["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "".join(f"t{i} " for i in range(300)), "thought": True}
    assert parts[1] == {"text": "".join(f"a{i} " for i in range(300)), "thought": False}
    assert parts[2]["functionCall"]["name"] == "Read" and parts[3] == {"text": "bc", "thought": False}


def test_text_deltas_without_output_index_belong_to_the_item_added_last():
    """A server that leaves ``output_index`` off its deltas and annotations (the stream translator takes
    it too) and ``response.completed`` empty: the text is the message's, once, not a second message."""
    out = []
    for name, data in split_frames(S.responses_search_stream(empty_completed=True)):
        if name.endswith(".delta") or "annotation" in name:
            data.pop("output_index", None)
        out.append(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
    _, message = stream("responses", b"".join(out), RESP)
    assert _shape(message) == ["server_tool_use", "web_search_tool_result", "text"]
    _check_responses_message(message)

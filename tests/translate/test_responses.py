"""Anthropic <-> OpenAI Responses API: request shape, response and stream translation (fixtures in the
API's real event shapes), and identical output for any chunk split."""

from __future__ import annotations

import json
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.anthropic_checker import check_stream, translate_chunks
from support.shapes import RESPONSES_STREAM as STREAM
from support.shapes import ev

from occ.config.model import ModelConfig
from occ.core.errors import UpstreamProtocolError, UpstreamStatus
from occ.translate.responses import ResponsesStreamTranslator, build_request, translate_response

MODEL = ModelConfig(provider="opencode-zen", model_id="gpt-5.5", max_tokens=32000, reasoning_effort="high")


def test_request_items_instructions_tools_and_effort():
    body = build_request({
        "model": "x", "max_tokens": 64000, "system": "Be brief.",
        "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
        "tool_choice": {"type": "any"},
        "messages": [
            {"role": "user", "content": "list"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "occ1."},
                                              {"type": "text", "text": "Running."},
                                              {"type": "tool_use", "id": "call_1", "name": "Bash",
                                               "input": {"command": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "a.py"},
                                         {"type": "text", "text": "next?"}]}]}, MODEL, stream=True)
    assert body["instructions"] == "Be brief." and body["store"] is False
    assert body["max_output_tokens"] == 32000 and body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["tools"][0]["type"] == "function" and body["tools"][0]["name"] == "Bash"
    assert body["tool_choice"] == "required"
    assert [i["type"] for i in body["input"]] == ["message", "message", "function_call", "function_call_output",
                                                  "message"]
    assert body["input"][2] == {"type": "function_call", "call_id": "call_1", "name": "Bash",
                                "arguments": '{"command":"ls"}'}
    assert "rs_" not in json.dumps(body)  # an occ1. signature without a reasoning item replays nothing


def run(raw: bytes, chunks: list[bytes] | None = None) -> dict:
    return check_stream(translate_chunks(partial(ResponsesStreamTranslator, route=MODEL.label), chunks or [raw])[0])


def test_stream_reasoning_text_and_two_calls():
    m = run(STREAM)
    assert [b["type"] for b in m["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    assert m["content"][2] == {"type": "tool_use", "id": "call_A", "name": "Bash", "input": {"command": "ls"}}
    assert m["content"][3]["input"] == {"path": "a"}
    assert m["stop_reason"] == "tool_use"
    assert (m["usage"]["input_tokens"], m["usage"]["cache_read_input_tokens"], m["usage"]["output_tokens"]) == \
        (400, 100, 60)


def test_function_call_first_is_block_0():
    raw = b"".join([
        ev({"type": "response.output_item.added", "item": {"id": "fc", "type": "function_call", "call_id": "c",
                                                           "name": "Bash"}}),
        ev({"type": "response.function_call_arguments.done", "item_id": "fc", "arguments": "{}"}),
        ev({"type": "response.completed", "response": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
    ])
    m = run(raw)
    assert m["content"][0]["type"] == "tool_use" and m["stop_reason"] == "tool_use"


def test_incomplete_failed_and_truncated():
    raw = ev({"type": "response.output_text.delta", "delta": "cut"}) + ev(
        {"type": "response.incomplete", "response": {"incomplete_details": {"reason": "max_output_tokens"}}})
    assert run(raw)["stop_reason"] == "max_tokens"
    with pytest.raises(UpstreamStatus) as info:
        run(ev({"type": "response.failed", "response": {"error": {"code": "rate_limit_exceeded",
                                                                   "message": "slow"}}}))
    assert info.value.upstream_status == 429
    with pytest.raises(UpstreamProtocolError):
        run(ev({"type": "response.output_text.delta", "delta": "no end"}))


def test_non_streaming_response():
    m = translate_response({"id": "resp", "status": "completed", "output": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "why"}]},
        {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
        {"type": "function_call", "id": "fc", "call_id": "call_9", "name": "Bash", "arguments": '{"a":1}'}],
        "usage": {"input_tokens": 10, "output_tokens": 3}}, message_id="msg_1", model_name="c", input_estimate=1,
        route=MODEL.label)
    assert [b["type"] for b in m["content"]] == ["thinking", "text", "tool_use"]
    assert m["content"][2]["id"] == "call_9" and m["stop_reason"] == "tool_use"


def _answer_with_arguments(arguments):
    return translate_response({"id": "resp", "status": "completed", "output": [
        {"type": "function_call", "id": "fc", "call_id": "call_9", "name": "Bash", "arguments": arguments}]},
        message_id="msg_1", model_name="c", input_estimate=1, route=MODEL.label)["content"][0]["input"]


def test_non_streaming_tool_arguments_read_as_the_stream_reads_them():
    """One normaliser for both paths: empty and null are ``{}``, double-encoded JSON is unwrapped,
    an object passes, and anything else is the upstream breaking the protocol."""
    assert _answer_with_arguments("") == {} and _answer_with_arguments(None) == {}
    assert _answer_with_arguments("null") == {}
    assert _answer_with_arguments(json.dumps('{"a": 1}')) == {"a": 1}
    assert _answer_with_arguments({"a": [1]}) == {"a": [1]}
    for bad in ("{oops", "[1]", "3"):
        with pytest.raises(UpstreamProtocolError, match="'Bash'"):
            _answer_with_arguments(bad)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=15))
def test_any_split_gives_identical_output(cuts):
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert run(STREAM, chunks) == run(STREAM)


def test_edge_43_reasoning_replayed_only_with_its_encrypted_content():
    m = run(STREAM)
    signature = m["content"][0]["signature"]
    assert signature.startswith("occ1.r.")
    body = build_request({"model": "x", "max_tokens": 100, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [m["content"][0], m["content"][2]]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_A", "content": "ok"}]}]},
        MODEL, stream=True)
    reasoning = [i for i in body["input"] if i["type"] == "reasoning"]
    assert reasoning == [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-opaque"}]
    assert body["include"] == ["reasoning.encrypted_content"]
    bare = build_request({"model": "x", "max_tokens": 100, "messages": [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "occ1."}]}]},
        MODEL, stream=True)
    assert not [i for i in bare["input"] if i["type"] == "reasoning"]


def _replayed(content: list[dict], model: ModelConfig = MODEL) -> list[dict]:
    calls = [b for b in content if b["type"] == "tool_use"]
    body = build_request({"model": "x", "max_tokens": 100, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b["id"], "content": "ok"}
                                     for b in calls]}]}, model, stream=True)
    return [i for i in body["input"] if i["type"] == "reasoning"]


REASONING_ONLY = b"".join([
    ev({"type": "response.output_item.added", "item": {"id": "rs_7", "type": "reasoning", "summary": []}}),
    ev({"type": "response.output_item.done", "item": {"id": "rs_7", "type": "reasoning", "summary": [],
                                                      "encrypted_content": "gAAAA-hidden"}}),
    ev({"type": "response.output_item.added", "item": {"id": "fc", "type": "function_call", "call_id": "call_7",
                                                       "name": "Bash"}}),
    ev({"type": "response.function_call_arguments.done", "item_id": "fc", "arguments": "{}"}),
    ev({"type": "response.completed", "response": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
])


def test_reasoning_without_a_summary_still_travels_in_the_history():
    """Reasoning items often come with no summary text; their encrypted content must not be dropped, or
    the model loses its reasoning between tool calls. A thinking block with no text carries it."""
    m = run(REASONING_ONLY)
    assert [b["type"] for b in m["content"]] == ["thinking", "tool_use"] and m["content"][0]["thinking"] == ""
    assert _replayed(m["content"]) == [{"type": "reasoning", "id": "rs_7", "summary": [],
                                        "encrypted_content": "gAAAA-hidden"}]


def test_non_streaming_carries_encrypted_reasoning():
    m = translate_response({"id": "resp", "status": "completed", "output": [
        {"type": "reasoning", "id": "rs_8", "summary": [], "encrypted_content": "gAAAA-8"},
        {"type": "function_call", "id": "fc", "call_id": "call_8", "name": "Bash", "arguments": "{}"}],
        "usage": {"input_tokens": 10, "output_tokens": 3}}, message_id="m", model_name="c", input_estimate=1,
        route=MODEL.label)
    assert [b["type"] for b in m["content"]] == ["thinking", "tool_use"]
    assert _replayed(m["content"]) == [{"type": "reasoning", "id": "rs_8", "summary": [],
                                        "encrypted_content": "gAAAA-8"}]


def test_another_models_reasoning_is_left_out():
    """Encrypted reasoning is bound to the model that made it; another model would answer 400."""
    content = run(REASONING_ONLY)["content"]
    other = ModelConfig(provider="opencode-zen", model_id="gpt-5.5-mini")
    assert _replayed(content, other) == []
    assert _replayed(content, MODEL) != []


def _call_stream(pieces: list[str]) -> list[bytes]:
    """A function call whose arguments arrive in ``pieces``, one upstream read per event."""
    return [
        ev({"type": "response.output_item.added", "item": {"id": "fc", "type": "function_call", "call_id": "c1",
                                                           "name": "Write"}}),
        *(ev({"type": "response.function_call_arguments.delta", "item_id": "fc", "delta": p}) for p in pieces),
        ev({"type": "response.function_call_arguments.done", "item_id": "fc", "arguments": "".join(pieces)}),
        ev({"type": "response.output_item.done", "item": {"id": "fc", "type": "function_call", "call_id": "c1",
                                                          "name": "Write", "arguments": "".join(pieces)}}),
        ev({"type": "response.completed", "response": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
    ]


@pytest.mark.parametrize("streamed", [True, False])
def test_function_call_arguments_stream_as_they_arrive(streamed):
    """Each argument delta is written with the read that brought it (streamed), or once at .done."""
    from support.anthropic_checker import split_frames

    pieces = ['{"file_path": "a.py", ', '"content": "line 1\\n', 'line 2\\n"}']
    chunks = _call_stream(pieces)
    make = partial(ResponsesStreamTranslator, route=MODEL.label, stream_tool_input=streamed)
    from occ.core.sse import SSEDecoder
    from occ.translate.anthropic_events import AnthropicStreamBuilder

    builder = AnthropicStreamBuilder(message_id="msg_t", model="m", input_tokens=10)
    translator, decoder = make(builder), SSEDecoder()
    for event in decoder.feed(b"".join(chunks[:2])):  # the call opened and its first piece arrived
        translator.feed(event)
    first = [d["delta"] for name, d in split_frames(builder.take()) if name == "content_block_delta"]
    assert first == ([{"type": "input_json_delta", "partial_json": pieces[0]}] if streamed else [])
    out, _ = translate_chunks(make, chunks)
    deltas = [d["delta"]["partial_json"] for name, d in split_frames(out) if name == "content_block_delta"]
    assert deltas == (pieces if streamed else ["".join(pieces)])
    assert check_stream(out)["content"][0]["input"] == {"file_path": "a.py", "content": "line 1\nline 2\n"}


# -- correlated by position: rotating ids, deltas or .done events carrying the content --------------

from support.sdk_answers import RESPONSES_DONE_TEXT, Answer, responses_stream  # noqa: E402

SUMMARY = "The user wants a status.\n\nI should look at the build first."
FULL = Answer(text="Here is the plan: read both files.", thinking=SUMMARY, signature="gAAAAB-encrypted==",
              tools=(("Read", {"file_path": "/src/a.py"}), ("Grep", {"pattern": "def main", "path": "/src"})),
              model="gpt-5.5")
GPT_OSS = Answer(text="Three functions.", thinking="Count the defs: a, b, c.", tools=(("Read", {"file_path": "x"}),))


def _normalized(message: dict) -> dict:
    """The message with each reasoning signature read back to what replay needs of it but the item id
    (a server that rotates ids names the item differently in each event; the content is the same)."""
    import base64

    blocks = []
    for block in message["content"]:
        if block["type"] == "thinking" and block["signature"].startswith("occ1.r."):
            encoded = block["signature"][len("occ1.r."):]
            data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            block = {**block, "signature": (data["encrypted_content"], data["route"])}
        blocks.append(block)
    return {**message, "content": blocks}


def _expected(answer: Answer) -> list[dict]:
    content: list[dict] = [{"type": "thinking", "thinking": answer.thinking,
                            "signature": (answer.signature, MODEL.label) if answer.signature else "occ1."}]
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    content += [{"type": "tool_use", "id": f"call_{i}_{name}", "name": name, "input": args}
                for i, (name, args) in enumerate(answer.tools)]
    return content


@pytest.mark.parametrize("rotate", [False, True], ids=["stable-ids", "rotating-ids"])
@pytest.mark.parametrize("carriers", ["both", "deltas", "done"])
@pytest.mark.parametrize("raw_reasoning", [False, True], ids=["summary", "reasoning-text"])
def test_every_part_written_once_whichever_events_carry_it(carriers, rotate, raw_reasoning):
    """Copilot's Responses endpoint names an item anew in every event; some servers send only deltas, others
    only the .done events; OpenAI sends both. Text, reasoning and each call appear exactly once in all."""
    answer = GPT_OSS if raw_reasoning else FULL
    raw = responses_stream(answer, raw_reasoning=raw_reasoning, carriers=carriers, rotate_ids=rotate)
    if rotate:
        ids = {e["item_id"] for e in _frames(raw) if e.get("item_id")}
        assert len(ids) > 2 + len(answer.tools)  # more names than items: each event names its item anew
    message = _normalized(run(raw))
    assert message["content"] == _expected(answer)
    assert message["stop_reason"] == "tool_use"


def test_rotating_ids_and_a_text_only_in_done_events_still_stream_the_deltas_as_they_come():
    """The deltas are written as they arrive even when every one names the item differently; the .done
    events that follow add nothing."""
    from support.anthropic_checker import split_frames

    raw = responses_stream(FULL.evolve(tools=()), rotate_ids=True)
    out, _ = translate_chunks(partial(ResponsesStreamTranslator, route=MODEL.label), [raw])
    texts = [d["delta"]["text"] for name, d in split_frames(out)
             if name == "content_block_delta" and d["delta"]["type"] == "text_delta"]
    assert len(texts) > 1 and "".join(texts) == FULL.text


def _frames(raw: bytes) -> list[dict]:
    return [json.loads(f.split(b"data: ", 1)[1]) for f in raw.split(b"\n\n") if f.strip()]


def _encode(events: list[dict]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


@st.composite
def _variants(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """The SDK's stream of FULL with each event's item id freely renamed, each item's deltas cut short
    after any number (the .done events carrying the rest), and the bytes split anywhere."""
    events = _frames(responses_stream(FULL))
    kept: dict[int, int] = {}
    out = []
    for event in events:
        if "item_id" in event and draw(st.booleans()):
            event["item_id"] = draw(st.text("abcdef0123456789_", min_size=1, max_size=12))
        if isinstance(event.get("item"), dict) and draw(st.booleans()):
            event["item"]["id"] = "rs_" + draw(st.text("abcdef0123456789", min_size=1, max_size=12))
        if event["type"].endswith(".delta"):
            index = event["output_index"]
            if index not in kept:
                kept[index] = draw(st.integers(min_value=0, max_value=40))
            if kept[index] == 0:
                continue
            kept[index] -= 1
        out.append(event)
    raw = _encode(out)
    cuts = sorted(set(draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=12))))
    return raw, [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


@settings(max_examples=120, deadline=None)
@given(_variants())
def test_any_split_any_id_rotation_any_delta_cut_gives_the_same_message(variant):
    raw, chunks = variant
    assert _normalized(run(raw, chunks))["content"] == _expected(FULL)


def test_only_the_done_text_events_are_what_the_deltas_variant_leaves_out():
    """The 'deltas' variant above really removes every text-carrying .done event and empties the items."""
    events = _frames(responses_stream(FULL, carriers="deltas"))
    assert not [e for e in events if e["type"] in RESPONSES_DONE_TEXT]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert len(done) == 4 and not [i for i in done if i.get("content") or i.get("summary") or i.get("arguments")]


def test_events_without_indices_still_correlate_by_id_or_by_the_item_in_progress():
    """Hand-written or older servers leave out output_index: an id seen before finds its item, and a
    delta naming no item belongs to the one in progress; a .done repeating the deltas adds nothing."""
    raw = b"".join([
        ev({"type": "response.output_item.added", "item": {"id": "msg_a", "type": "message"}}),
        ev({"type": "response.output_text.delta", "delta": "Hel"}),
        ev({"type": "response.output_text.delta", "item_id": "msg_a", "delta": "lo"}),
        ev({"type": "response.output_text.done", "item_id": "msg_other", "text": "Hello"}),
        ev({"type": "response.output_item.done", "item": {"id": "msg_b", "type": "message",
                                                          "content": [{"type": "output_text", "text": "Hello"}]}}),
        ev({"type": "response.completed", "response": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
    ])
    assert run(raw)["content"] == [{"type": "text", "text": "Hello"}]


def test_a_null_text_beside_a_summary_part_is_absent_and_the_part_text_is_written():
    """On upstream data null means absent: a ``reasoning_summary_part.done`` (built by the openai SDK) that
    a server sends with an extra ``"text": null`` still gives its part's text, once."""
    from openai.types.responses import ResponseReasoningSummaryPartDoneEvent

    part_done = ResponseReasoningSummaryPartDoneEvent.model_validate({
        "type": "response.reasoning_summary_part.done", "item_id": "rs_1", "output_index": 0,
        "summary_index": 0, "sequence_number": 2, "part": {"type": "summary_text", "text": "Thought about it."}})
    raw = b"".join([
        ev({"type": "response.output_item.added", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning",
                                                                             "summary": []}}),
        ev({**part_done.model_dump(mode="json"), "text": None}),
        ev({"type": "response.output_item.done", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning",
                                                                            "summary": []}}),
        ev({"type": "response.output_item.added", "output_index": 1, "item": {"id": "msg_1", "type": "message"}}),
        ev({"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "Done."}),
        ev({"type": "response.completed", "response": {"usage": {"input_tokens": 5, "output_tokens": 3}}}),
    ])
    content = run(raw)["content"]
    assert [(b["type"], b.get("thinking", b.get("text"))) for b in content] == [
        ("thinking", "Thought about it."), ("text", "Done.")]

"""Chat-completions stream -> Anthropic stream: recorded provider shapes, one test per rule and per
protocols.md §7 edge case, and property tests over generated streams split at arbitrary bytes.

Every output goes through ``anthropic_checker.check_stream``, which asserts the Anthropic grammar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.anthropic_checker import check_stream, split_frames
from support.strategies import chat_streams, cut, split_points

from occ.core.errors import UpstreamProtocolError, UpstreamStatus
from occ.core.sse import SSEDecoder
from occ.translate.anthropic_events import AnthropicStreamBuilder
from occ.translate.openai_chat import ChatStreamTranslator
from occ.translate.tool_ids import to_upstream_id, to_upstream_name

FIXTURES = Path(__file__).parent.parent / "support" / "fixtures" / "chat"
ESTIMATE = 50


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}


def call(index: int | None = 0, call_id: str | None = None, name: str | None = None,
         args: Any = None) -> dict[str, Any]:
    fragment: dict[str, Any] = {"function": {}}
    if index is not None:
        fragment["index"] = index
    if call_id is not None:
        fragment["id"] = call_id
        fragment["type"] = "function"
    if name is not None:
        fragment["function"]["name"] = name
    if args is not None:
        fragment["function"]["arguments"] = args
    return fragment


def calls(*fragments: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return chunk({"tool_calls": list(fragments)}, finish)


def sse(*objects: Any, done: bool = True) -> bytes:
    lines = (o if isinstance(o, str) else json.dumps(o, ensure_ascii=False) for o in objects)
    out = b"".join(f"data: {line}\n\n".encode() for line in lines)
    return out + (b"data: [DONE]\n\n" if done else b"")


def translate(raw: bytes, cuts: list[int] | None = None, *, tool_names: list[str] | None = None,
              think_tags: bool = True, stream_tool_input: bool = True) -> tuple[bytes, AnthropicStreamBuilder]:
    """The fallback loop's way: decoder -> translator -> builder; returns (output, builder). Raises."""
    builder = AnthropicStreamBuilder(message_id="msg_test", model="claude-occ-default", input_tokens=ESTIMATE)
    translator = ChatStreamTranslator(builder, think_tags=think_tags, tool_names=tool_names,
                                      stream_tool_input=stream_tool_input)
    decoder = SSEDecoder()
    out = b""
    for piece in cut(raw, cuts or []):
        for event in decoder.feed(piece):
            translator.feed(event)
        out += builder.take()
    for event in decoder.close():
        translator.feed(event)
    translator.close()
    assert translator.done
    return out + builder.take(), builder


def run(raw: bytes, cuts: list[int] | None = None, **kwargs: Any) -> dict[str, Any]:
    return check_stream(translate(raw, cuts, **kwargs)[0])


def run_failing(raw: bytes, *, stream_tool_input: bool = True) -> tuple[dict[str, Any], Exception]:
    """A stream that must fail: the error event the relay would write after commit, and the exception."""
    builder = AnthropicStreamBuilder(message_id="msg_test", model="claude-occ-default", input_tokens=ESTIMATE)
    translator = ChatStreamTranslator(builder, stream_tool_input=stream_tool_input)
    decoder = SSEDecoder()
    try:
        for event in [*decoder.feed(raw), *decoder.close()]:
            translator.feed(event)
        translator.close()
    except (UpstreamStatus, UpstreamProtocolError) as exc:
        builder.error(exc)
        return check_stream(builder.take(), allow_error=True), exc
    raise AssertionError("the stream did not fail")


def kinds(message: dict[str, Any]) -> list[str]:
    return [b["type"] for b in message["content"]]


def usage(input_tokens: int, output_tokens: int, cached: int = 0) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0}


# -- recorded provider shapes --------------------------------------------------------------------------


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_deepseek_reasoning_then_tool_call_with_cache_hit_usage():
    m = run(fixture("deepseek_reasoning_tool.sse"))
    assert kinds(m) == ["thinking", "tool_use"]
    assert m["content"][0] == {"type": "thinking", "thinking": "The user wants the file list.", "signature": "occ1."}
    assert m["content"][1] == {"type": "tool_use", "id": "call_00_Xk3ftGm5qNHrE7tL", "name": "Bash",
                               "input": {"command": "ls -la"}}
    assert m["stop_reason"] == "tool_use"
    assert m["usage"] == usage(130, 57, 11904)


def test_kimi_functions_ids_parallel_calls_and_usage_inside_the_choice():
    m = run(fixture("kimi_functions_ids.sse"))
    assert kinds(m) == ["thinking", "tool_use", "tool_use"]
    ids = [b["id"] for b in m["content"][1:]]
    assert [to_upstream_id(i) for i in ids] == ["functions.Bash:0", "functions.Read:1"]
    assert all(i.startswith("occ-") for i in ids)
    assert [b["input"] for b in m["content"][1:]] == [{"command": "git status"}, {"file_path": "/repo/README.md"}]
    assert m["usage"] == usage(1024, 64, 4096)


def test_glm_reasoning_and_text_with_usage_in_the_finish_chunk():
    m = run(fixture("glm_reasoning_text.sse"))
    assert kinds(m) == ["thinking", "text"]
    assert m["content"][0]["thinking"] == "\nGreeting; answer briefly."
    assert m["content"][1]["text"] == "\n\nHello! How can I help?"
    assert m["stop_reason"] == "end_turn" and m["usage"] == usage(318, 19, 512)


def test_qwen_null_fields_and_final_usage_chunk():
    m = run(fixture("qwen_reasoning_text.sse"))
    assert [b.get("thinking") or b.get("text") for b in m["content"]] == ["Sum is 4.", "2 + 2 = 4."]
    assert m["usage"] == usage(41, 12)


def test_minimax_think_tags_split_then_tool_call():
    m = run(fixture("minimax_think_tags.sse"))
    assert kinds(m) == ["thinking", "text", "tool_use"]
    assert m["content"][0]["thinking"] == "\nI should look at the tests first.\n"
    assert m["content"][1]["text"] == "\n\nLet me look."
    assert m["content"][2]["input"] == {"pattern": "tests/**/*.py"}
    assert m["usage"] == usage(2210, 41)


def test_openrouter_comments_and_duplicated_reasoning_fields():
    m = run(fixture("openrouter_reasoning_comments.sse"))
    assert m["content"][0]["thinking"] == "Check the date."  # not "CheckCheck the date. the date."
    assert m["content"][1]["text"] == "It is Tuesday."
    assert m["usage"] == usage(100, 30, 200)


def test_vllm_usage_on_every_chunk_and_choices_null():
    m = run(fixture("vllm_usage_every_chunk.sse"))
    assert m["content"] == [{"type": "text", "text": "Done."}] and m["usage"] == usage(77, 3)


def test_openai_parallel_calls_with_interleaved_fragments():
    m = run(fixture("openai_parallel_interleaved.sse"))
    assert [(b["name"], b["input"]) for b in m["content"]] == [
        ("Read", {"file_path": "a.py"}), ("Read", {"file_path": "b.py"}),
        ("Grep", {"pattern": "TODO", "path": "src"})]
    assert m["usage"] == usage(476, 90, 1024)


def test_finish_and_whole_tool_call_in_one_chunk_then_eof():
    m = run(fixture("finish_and_tool_in_one_chunk.sse"))
    assert kinds(m) == ["text", "tool_use"] and m["stop_reason"] == "tool_use"
    assert m["usage"]["input_tokens"] == ESTIMATE  # no upstream usage: the estimate stands


def test_openrouter_error_chunk_after_content_becomes_an_error_event():
    m, exc = run_failing(fixture("openrouter_error_chunk.sse"))
    assert isinstance(exc, UpstreamStatus) and exc.upstream_status == 500
    assert "Provider disconnected" in str(exc)
    assert m["content"][0]["text"] == "Partial" and m["error"]["type"] == "api_error"


def test_vllm_error_object_before_anything_was_sent():
    with pytest.raises(UpstreamStatus) as info:
        translate(fixture("vllm_error_object.sse"))
    assert info.value.upstream_status == 404


def test_an_error_before_content_leaves_the_builder_uncommitted():
    builder = AnthropicStreamBuilder(message_id="msg_t", model="c", input_tokens=5)
    translator = ChatStreamTranslator(builder)
    with pytest.raises(UpstreamStatus):
        for event in SSEDecoder().feed(fixture("vllm_error_object.sse")):
            translator.feed(event)
    assert not builder.committed and builder.take() == b""


# -- reasoning and text --------------------------------------------------------------------------------


def test_reasoning_content_opens_a_signed_thinking_block_before_text():
    m = run(sse(chunk({"reasoning_content": "plan"}), chunk({"content": "answer"}), chunk(finish="stop")))
    assert m["content"] == [{"type": "thinking", "thinking": "plan", "signature": "occ1."},
                            {"type": "text", "text": "answer"}]


@pytest.mark.parametrize("field", ["reasoning", "reasoning_details"])
def test_reasoning_from_openrouter_fields(field):
    value = "why" if field == "reasoning" else [{"type": "reasoning.text", "text": "why"}]
    m = run(sse(chunk({field: value}), chunk({"content": "ok"}), chunk(finish="stop")))
    assert m["content"][0]["thinking"] == "why"


def test_reasoning_and_reasoning_content_in_one_chunk_count_once():
    m = run(sse(chunk({"reasoning": "r1", "reasoning_content": "r1"}), chunk({"reasoning": "r2"}),
                chunk({"content": "t"}), chunk(finish="stop")))
    assert m["content"][0]["thinking"] == "r1r2"


def test_reasoning_details_summary_and_encrypted_entries():
    details = [{"type": "reasoning.summary", "summary": "short"}, {"type": "reasoning.encrypted", "data": "xx"}]
    m = run(sse(chunk({"reasoning_details": details}), chunk({"content": "ok"}), chunk(finish="stop")))
    assert m["content"][0]["thinking"] == "short"


def test_interleaved_reasoning_and_text_make_separate_blocks_in_order():
    m = run(sse(chunk({"reasoning_content": "a"}), chunk({"content": "b"}), chunk({"reasoning_content": "c"}),
                chunk({"content": "d"}), chunk(finish="stop")))
    assert kinds(m) == ["thinking", "text", "thinking", "text"]


def test_literal_think_tags_after_answer_text_stay_text():
    m = run(sse(chunk({"content": "Use "}), chunk({"content": "<think> tags like <think>x</think>."}),
                chunk(finish="stop")))
    assert m["content"] == [{"type": "text", "text": "Use <think> tags like <think>x</think>."}]


def test_think_tags_off_keeps_them_as_text():
    m = run(sse(chunk({"content": "<think>a</think>b"}), chunk(finish="stop")), think_tags=False)
    assert m["content"] == [{"type": "text", "text": "<think>a</think>b"}]


def test_a_held_partial_tag_that_never_completes_is_text():
    m = run(sse(chunk({"content": "<thi"}), chunk(finish="stop")))
    assert m["content"] == [{"type": "text", "text": "<thi"}]


def test_unclosed_think_at_the_end_is_thinking():
    m = run(sse(chunk({"content": "<think>still going"}), chunk(finish="length")))
    assert kinds(m) == ["thinking"] and m["stop_reason"] == "max_tokens"


def test_refusal_delta_is_text_with_stop_reason_refusal():
    m = run(sse(chunk({"refusal": "I can't help with that."}), chunk(finish="stop")))
    assert m["content"][0]["text"] == "I can't help with that." and m["stop_reason"] == "refusal"


def test_a_second_choice_is_ignored():
    other = {"id": "x", "choices": [{"index": 1, "delta": {"content": "other"}, "finish_reason": None}]}
    m = run(sse(chunk({"content": "mine"}), other, chunk(finish="stop")))
    assert m["content"] == [{"type": "text", "text": "mine"}]


# -- tool calls ----------------------------------------------------------------------------------------


def test_same_id_and_name_repeated_on_every_fragment_is_one_call():
    m = run(sse(calls(call(0, "c1", "Bash", '{"command":')), calls(call(0, "c1", "Bash", '"ls"}')),
                chunk(finish="tool_calls")))
    assert m["content"] == [{"type": "tool_use", "id": "c1", "name": "Bash", "input": {"command": "ls"}}]


def test_object_arguments_are_serialised():
    m = run(sse(calls(call(0, "c1", "Read", {"file_path": "x"})), chunk(finish="tool_calls")))
    assert m["content"][0]["input"] == {"file_path": "x"}


def test_double_encoded_arguments_are_unwrapped():
    m = run(sse(calls(call(0, "c1", "Read", json.dumps('{"file_path": "x"}'))), chunk(finish="tool_calls")))
    assert m["content"][0]["input"] == {"file_path": "x"}


def test_a_call_without_id_gets_a_toolu_id():
    m = run(sse(calls(call(0, None, "Bash", "{}")), chunk(finish="tool_calls")))
    assert m["content"][0]["id"].startswith("toolu_")


def test_calls_are_emitted_before_the_text_that_follows_them():
    m = run(sse(calls(call(0, "c1", "A", "{}")), chunk({"content": "after"}), calls(call(1, "c2", "B", "{}")),
                chunk(finish="tool_calls")))
    assert kinds(m) == ["tool_use", "text", "tool_use"]


def test_a_call_without_a_name_is_a_protocol_error():
    with pytest.raises(UpstreamProtocolError, match="without a name"):
        translate(sse(calls(call(0, "c1", None, "{}")), chunk(finish="tool_calls")))


@pytest.mark.parametrize("args", ['{"a": 1', "[1, 2]", "not json", '{"a": 1}}', '{"a": <arg_key>'])
def test_unusable_arguments_are_a_protocol_error_and_write_no_block_when_buffered(args):
    m, exc = run_failing(sse(chunk({"content": "x"}), calls(call(0, "c1", "A", args)), chunk(finish="tool_calls")),
                         stream_tool_input=False)
    assert isinstance(exc, UpstreamProtocolError) and kinds(m) == ["text"]


@pytest.mark.parametrize("args", ['{"a": 1', "[1, 2]", "not json", '{"a": 1}}', '{"a": <arg_key>'])
def test_unusable_streamed_arguments_end_in_an_error_the_client_can_parse_up_to(args):
    """Streamed, the call's block is open before its arguments are known to be bad: the stream ends
    with an error event, and no fragment the client saw was invalid (the checker parses every prefix
    as the SDK does)."""
    m, exc = run_failing(sse(chunk({"content": "x"}), calls(call(0, "c1", "A", args)), chunk(finish="tool_calls")))
    assert isinstance(exc, UpstreamProtocolError) and kinds(m) == ["text", "tool_use"]
    assert m["error"]["type"] == "api_error"


# -- finish and usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), ("sensitive", "refusal"),
    ("eos", "end_turn"), ("tool_calls", "end_turn"),
])
def test_finish_reason_mapping(finish, stop):
    assert run(sse(chunk({"content": "x"}), chunk(finish=finish)))["stop_reason"] == stop


@pytest.mark.parametrize("finish", ["insufficient_system_resource", "error", "network_error"])
def test_failure_finish_reasons_are_retryable_errors(finish):
    with pytest.raises(UpstreamStatus) as info:
        translate(sse(chunk({"content": "x"}, finish)))
    assert info.value.upstream_status == 503


def test_usage_keeps_the_last_report_and_maps_deepseek_cache_hits():
    m = run(sse(chunk({"content": "x"}, usage={"prompt_tokens": 5, "completion_tokens": 1}),
                chunk(finish="stop", usage={"prompt_tokens": 100, "completion_tokens": 7,
                                            "prompt_cache_hit_tokens": 60, "prompt_cache_miss_tokens": 40})))
    assert m["usage"] == usage(40, 7, 60)


def test_junk_usage_values_do_not_crash():
    m = run(sse(chunk({"content": "x"}), chunk(finish="stop", usage={"prompt_tokens": "12", "completion_tokens": None,
                                                                     "prompt_tokens_details": None})))
    assert m["usage"] == usage(12, 0)


def test_error_null_in_a_normal_chunk_is_not_an_error():
    assert run(sse(chunk({"content": "x"}, error=None), chunk(finish="stop")))["content"][0]["text"] == "x"


@pytest.mark.parametrize(("error", "status", "http"), [
    ({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}, 429, 429),
    ({"error": {"message": "Overloaded", "type": "overloaded_error"}}, 529, 529),
    ({"error": {"message": "bad", "code": "400"}}, 400, 400),
    ({"error": {"message": "?"}}, 502, 502),
    ({"error": "plain string"}, 502, 502),
    ({"object": "error", "message": "m", "type": "BadRequestError", "code": 400}, 400, 400),
])
def test_error_chunk_status(error, status, http):
    with pytest.raises(UpstreamStatus) as info:
        translate(sse(error))
    assert info.value.upstream_status == status and info.value.http_status == http


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '"text"'])
def test_a_chunk_that_is_not_a_json_object_is_a_protocol_error(data):
    with pytest.raises(UpstreamProtocolError):
        translate(sse(data))


def test_done_without_anything_said_is_a_truncation():
    with pytest.raises(UpstreamProtocolError, match="without finish_reason"):
        translate(sse(chunk({"role": "assistant", "content": ""})))


def test_done_without_finish_and_incomplete_arguments_is_a_truncation():
    with pytest.raises(UpstreamProtocolError):
        translate(sse(calls(call(0, "c1", "A", '{"a": '))))


def test_eof_after_finish_without_done_is_a_clean_end():
    assert run(sse(chunk({"content": "x"}), chunk(finish="stop"), done=False))["stop_reason"] == "end_turn"


def test_events_after_done_are_ignored():
    out, _ = translate(sse(chunk({"content": "x"}), chunk(finish="stop")) + sse(chunk({"content": "late"})))
    assert check_stream(out)["content"] == [{"type": "text", "text": "x"}]


# -- protocols.md §7 edge cases --------------------------------------------------------------------------


def test_edge_01_first_tool_call_is_index_0_and_empty_content_opens_nothing():
    m = run(sse(chunk({"role": "assistant", "content": ""}), calls(call(0, "call_a", "Bash", "")),
                calls(call(0, None, None, '{"command":"ls"}')), chunk(finish="tool_calls")))
    frames = split_frames(translate(sse(chunk({"content": ""}), calls(call(0, "a", "Bash", "{}")),
                                        chunk(finish="tool_calls")))[0])
    starts = [d for name, d in frames if name == "content_block_start"]
    assert starts[0]["index"] == 0 and starts[0]["content_block"]["type"] == "tool_use"
    assert kinds(m) == ["tool_use"] and m["stop_reason"] == "tool_use"


def test_edge_02_n_parallel_calls_give_n_blocks():
    m = run(sse(*[calls(call(i, f"c{i}", "Read", json.dumps({"n": i}))) for i in range(5)],
                chunk(finish="tool_calls")))
    assert [b["input"]["n"] for b in m["content"]] == [0, 1, 2, 3, 4]


def test_edge_03_no_index_and_everything_at_index_0():
    m = run(sse(calls(call(None, "a", "A", '{"p":')), calls(call(None, None, None, "1}")),
                calls(call(None, "b", "B", "{}")), calls(call(None, "a", None, "")), chunk(finish="tool_calls")))
    assert [(b["id"], b["input"]) for b in m["content"]] == [("a", {"p": 1}), ("b", {})]
    m = run(sse(calls(call(0, "a", "A", "{}")), calls(call(0, "b", "B", '{"x":')), calls(call(0, None, None, "2}")),
                chunk(finish="tool_calls")))
    assert [(b["name"], b["input"]) for b in m["content"]] == [("A", {}), ("B", {"x": 2})]


def test_edge_04_several_complete_calls_in_one_chunk():
    m = run(sse(calls(call(0, "a", "A", "{}"), call(1, "b", "B", '{"x":1}'), call(2, "c", "C", "{}"),
                      finish="tool_calls")))
    assert [b["name"] for b in m["content"]] == ["A", "B", "C"]


def test_edge_05_done_without_finish_reason():
    assert run(sse(chunk({"content": "hi"})))["stop_reason"] == "end_turn"
    assert run(sse(calls(call(0, "a", "A", '{"x": 2}'))))["stop_reason"] == "tool_use"


def test_edge_06_finish_stop_with_tool_calls_is_tool_use():
    assert run(sse(calls(call(0, "a", "A", "{}")), chunk(finish="stop")))["stop_reason"] == "tool_use"


def test_edge_07_tool_use_stop_without_a_call_is_end_turn():
    assert run(sse(chunk({"content": "done"}), chunk(finish="tool_calls")))["stop_reason"] == "end_turn"


@pytest.mark.parametrize("args", ["", None, "   ", "null"])
def test_edge_08_empty_or_missing_arguments_are_an_empty_object(args):
    m = run(sse(calls(call(0, "a", "A", args)), chunk(finish="tool_calls")))
    assert m["content"][0]["input"] == {}


def test_edge_09_arguments_before_id_and_name():
    m = run(sse(calls(call(0, None, None, '{"q":')), calls(call(0, "a", "Grep", '"x"}')), chunk(finish="tool_calls")))
    assert m["content"][0] == {"type": "tool_use", "id": "a", "name": "Grep", "input": {"q": "x"}}


def test_edge_10_arguments_only_in_the_finish_chunk():
    m = run(sse(calls(call(0, "a", "A", None)), calls(call(0, None, None, '{"k":true}'), finish="tool_calls")))
    assert m["content"][0]["input"] == {"k": True}


def test_edge_11_the_client_sees_fragments_it_can_parse_as_they_arrive():
    """Streamed: one input_json_delta per upstream fragment, written as soon as it arrives (before the
    next is fed), every prefix valid partial JSON; buffered (``stream_tool_input=False``): one delta."""
    pieces = ['{"path": "a', '.py", "n": [1,', " 2]}"]
    raw = sse(calls(call(0, "a", "A", pieces[0])), *(calls(call(0, None, None, p)) for p in pieces[1:]),
              chunk(finish="tool_calls"))
    out, _ = translate(raw)
    deltas = [d["delta"]["partial_json"] for name, d in split_frames(out) if name == "content_block_delta"]
    assert deltas == pieces
    assert check_stream(out)["content"][0]["input"] == {"path": "a.py", "n": [1, 2]}
    builder = AnthropicStreamBuilder(message_id="msg_test", model="m", input_tokens=ESTIMATE)
    translator = ChatStreamTranslator(builder)
    events = SSEDecoder().feed(sse(calls(call(0, "a", "A", pieces[0]))))
    translator.feed(events[0])
    first = [d["delta"] for name, d in split_frames(builder.take()) if name == "content_block_delta"]
    assert first == [{"type": "input_json_delta", "partial_json": pieces[0]}]  # before the rest arrived
    buffered, _ = translate(raw, stream_tool_input=False)
    deltas = [d["delta"]["partial_json"] for name, d in split_frames(buffered) if name == "content_block_delta"]
    assert len(deltas) == 1 and json.loads(deltas[0]) == {"path": "a.py", "n": [1, 2]}


def test_double_encoded_streamed_arguments_are_held_and_unwrapped():
    raw = sse(calls(call(0, "a", "A", '"{\\"k\\"')), calls(call(0, None, None, ': 1}"')), chunk(finish="tool_calls"))
    out, _ = translate(raw)
    deltas = [d["delta"]["partial_json"] for name, d in split_frames(out) if name == "content_block_delta"]
    assert deltas == ['{"k": 1}'] and check_stream(out)["content"][0]["input"] == {"k": 1}


def test_leading_whitespace_is_held_until_the_object_begins():
    raw = sse(calls(call(0, "a", "A", "  ")), calls(call(0, None, None, ' {"k": 2}')), chunk(finish="tool_calls"))
    out, _ = translate(raw)
    deltas = [d["delta"]["partial_json"] for name, d in split_frames(out) if name == "content_block_delta"]
    assert deltas == ['{"k": 2}']


def test_edge_12_duplicate_upstream_ids_become_unique():
    m = run(sse(calls(call(0, "dup", "A", "{}")), calls(call(1, "dup", "B", "{}")), chunk(finish="tool_calls")))
    ids = [b["id"] for b in m["content"]]
    assert ids[0] == "dup" and ids[1] != "dup" and ids[1].startswith("toolu_")


def test_edge_13_kimi_ids_are_valid_for_anthropic_and_reversible():
    m = run(sse(calls(call(0, "functions.Bash:0", "Bash", "{}")), chunk(finish="tool_calls")))
    tool_id = m["content"][0]["id"]
    assert tool_id.replace("-", "").replace("_", "").isalnum() and to_upstream_id(tool_id) == "functions.Bash:0"


def test_edge_15_shortened_tool_names_are_restored():
    long_name = "mcp__a_server_with_a_long_name__and_an_even_longer_tool_name_here_x"
    short = to_upstream_name(long_name)
    assert short != long_name
    m = run(sse(calls(call(0, "a", short, "{}")), chunk(finish="tool_calls")), tool_names=["Bash", long_name])
    assert m["content"][0]["name"] == long_name


def test_edge_16_usage_only_in_a_final_chunk_with_empty_or_null_choices():
    for choices in ([], None):
        m = run(sse(chunk({"content": "hi"}), chunk(finish="stop"),
                    {"id": "x", "choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 2,
                                                              "prompt_tokens_details": {"cached_tokens": 4}}}))
        assert m["usage"] == usage(6, 2, 4)


def test_edge_17_error_inside_a_200_stream_after_content():
    m, exc = run_failing(sse(chunk({"content": "partial"}), {"error": {"message": "overloaded", "code": 503}}))
    assert isinstance(exc, UpstreamStatus) and m["error"]["type"] == "overloaded_error"
    assert "stop_reason" not in m or m.get("stop_reason") is None


def test_edge_18_comment_lines_are_ignored():
    raw = b": OPENROUTER PROCESSING\n\n" + sse(chunk({"content": "a"}), ": not json either", chunk(finish="stop"))
    raw = raw.replace(b"data: : not json either\n\n", b": OPENROUTER PROCESSING\n\n")
    assert run(raw)["content"][0]["text"] == "a"


def test_edge_20_truncated_stream_is_an_error_event_never_end_turn():
    m, exc = run_failing(sse(chunk({"content": "half"}), done=False))
    assert isinstance(exc, UpstreamProtocolError) and "error" in m and m.get("stop_reason") is None


def test_edge_21_every_event_has_an_event_line_equal_to_its_type():
    out, _ = translate(fixture("minimax_think_tags.sse"))
    text = out.decode()
    assert "[DONE]" not in text and "\n:" not in text and not text.startswith(":")
    for frame in text.strip().split("\n\n"):
        name, data = frame.split("\n")
        assert name.startswith("event: ") and json.loads(data[len("data: "):])["type"] == name[len("event: "):]


def test_edge_22_one_message_start_and_no_thinking_delta_in_a_text_block():
    frames = split_frames(translate(fixture("glm_reasoning_text.sse"))[0])
    assert [n for n, _ in frames].count("message_start") == 1
    check_stream(translate(fixture("glm_reasoning_text.sse"))[0])  # asserts delta types match blocks


def test_edge_23_message_start_carries_the_input_estimate():
    frames = split_frames(translate(sse(chunk({"content": "x"}), chunk(finish="stop")))[0])
    assert frames[0][1]["message"]["usage"]["input_tokens"] == ESTIMATE


def test_edge_24_block_indices_are_contiguous_from_zero():
    frames = split_frames(translate(fixture("minimax_think_tags.sse"))[0])
    assert [d["index"] for n, d in frames if n == "content_block_start"] == [0, 1, 2]


def test_edge_29_30_no_empty_text_or_whitespace_only_thinking_blocks():
    m = run(sse(chunk({"content": ""}), chunk({"reasoning_content": "  \n"}), chunk({"content": "\n\n"}),
                calls(call(0, "a", "A", "{}")), chunk({"content": " "}), chunk(finish="tool_calls")))
    assert kinds(m) == ["tool_use"]


def test_edge_37_think_tags_split_everywhere_and_an_orphan_closing_tag():
    m = run(sse(chunk({"content": "<"}), chunk({"content": "think"}), chunk({"content": ">reason"}),
                chunk({"content": "ing</"}), chunk({"content": "think>Answer"}), chunk(finish="stop")))
    assert m["content"] == [{"type": "thinking", "thinking": "reasoning", "signature": "occ1."},
                            {"type": "text", "text": "Answer"}]
    m = run(sse(chunk({"reasoning_content": "r"}), chunk({"content": "</think>"}), chunk({"content": "\n\nA"}),
                chunk(finish="stop")))
    assert m["content"][1] == {"type": "text", "text": "\n\nA"}


def test_edge_44_45_crlf_frames_and_utf8_split_inside_a_character():
    raw = sse(chunk({"content": "héllo 😀 漢字"}), chunk(finish="stop")).replace(b"\n", b"\r\n")
    cut_at = raw.index("😀".encode()) + 2
    assert run(raw, [cut_at])["content"][0]["text"] == "héllo 😀 漢字"


# -- properties ----------------------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _same(message: dict[str, Any], expected: dict[str, Any]) -> None:
    assert message["content"] == expected["content"]
    assert message["stop_reason"] == expected["stop_reason"]
    if expected["usage"] is not None:
        assert {k: message["usage"][k] for k in expected["usage"]} == expected["usage"]


@PROPERTY
@given(chat_streams(), st.data())
def test_any_generated_stream_split_anywhere_gives_the_expected_message(stream, data):
    whole = run(stream.raw)
    _same(whole, stream.expected)
    cuts = data.draw(split_points(len(stream.raw)))
    assert run(stream.raw, cuts) == whole


@settings(max_examples=25, deadline=None)
@given(chat_streams())
def test_any_generated_stream_fed_byte_by_byte(stream):
    assert run(stream.raw, list(range(1, len(stream.raw)))) == run(stream.raw)

"""The measurement behind docs/tool-input-streaming.md: on every recorded stream with tool calls,
streaming the arguments gives the client exactly the message buffering gave, every prefix it saw
parses as the SDK parses it (the checker runs jiter's partial mode after each fragment), and a call
the upstream sent in several pieces reaches the client in several pieces."""

from __future__ import annotations

import glob
import os
from functools import partial

import pytest
from support.anthropic_checker import check_stream, split_frames, translate_chunks

from occ.translate.openai_chat import ChatStreamTranslator
from occ.translate.responses import ResponsesStreamTranslator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORDED = sorted(
    [(p, "chat") for p in glob.glob(os.path.join(ROOT, "tests/support/fixtures/chat/*.sse"))]
    + [(p, "chat") for p in glob.glob(os.path.join(ROOT, "tests/recordings/openai/*.sse"))]
    + [(p, "responses") for p in glob.glob(os.path.join(ROOT, "tests/recordings/responses/*.sse"))]
)
WITH_CALLS = [(p, wire) for p, wire in RECORDED if b"\"arguments\"" in open(p, "rb").read()
              or b"function_call_arguments" in open(p, "rb").read()]


def _make(wire: str, streamed: bool):
    if wire == "chat":
        return partial(ChatStreamTranslator, stream_tool_input=streamed)
    return partial(ResponsesStreamTranslator, route="fake/m", stream_tool_input=streamed)


def _pieces(raw: bytes, step: int) -> list[bytes]:
    return [raw[i:i + step] for i in range(0, len(raw), step)] if step else [raw]


def test_the_recordings_hold_tool_calls():
    assert len(WITH_CALLS) >= 10, WITH_CALLS


@pytest.mark.parametrize(("path", "wire"), WITH_CALLS, ids=[os.path.relpath(p, ROOT) for p, _ in WITH_CALLS])
@pytest.mark.parametrize("step", [0, 1, 7, 64])
def test_streamed_and_buffered_give_the_same_message(path, wire, step):
    raw = open(path, "rb").read()
    try:
        buffered, _ = translate_chunks(_make(wire, False), _pieces(raw, step))
    except Exception as exc:  # a recording of a failure: streaming must fail the same way
        with pytest.raises(type(exc)):
            translate_chunks(_make(wire, True), _pieces(raw, step))
        return
    streamed, _ = translate_chunks(_make(wire, True), _pieces(raw, step))
    expected, got = check_stream(buffered), check_stream(streamed)
    assert got["content"] == expected["content"] and got["stop_reason"] == expected["stop_reason"]
    fragments = [d for name, d in split_frames(streamed)
                 if name == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    calls = sum(1 for block in got["content"] if block["type"] == "tool_use")
    assert len(fragments) >= calls

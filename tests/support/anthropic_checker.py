"""One checker of the Anthropic stream grammar, shared by every translator's tests.

``check_stream(raw_bytes)`` parses occ's output frame by frame, asserts every emitter invariant of
``shared/protocols.md`` §2, and returns the reassembled message (or raises AssertionError naming
the broken rule). It is deliberately stricter than the SDKs.
"""

from __future__ import annotations

import json
from typing import Any

from jiter import from_json

SIG_PREFIX = "occ1."


def split_frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Split occ output into (event name, data) pairs; every frame must be ``event:`` + ``data:``."""
    text = raw.decode("utf-8")
    assert "\r" not in text, "occ output must use LF line ends"
    frames = []
    if not text:
        return frames
    assert text.endswith("\n\n"), f"output does not end with a blank line: {text[-40:]!r}"
    for chunk in text[:-2].split("\n\n"):
        lines = chunk.split("\n")
        assert len(lines) == 2, f"frame is not exactly event+data lines: {chunk!r}"
        assert lines[0].startswith("event: "), f"frame without event line: {chunk!r}"
        assert lines[1].startswith("data: "), f"frame without data line: {chunk!r}"
        name = lines[0][len("event: "):]
        data = json.loads(lines[1][len("data: "):])
        assert data.get("type") == name, f"event line {name!r} != data.type {data.get('type')!r}"
        frames.append((name, data))
    return frames


def check_events(events: list[tuple[str, dict[str, Any]]], *, allow_error: bool = False) -> dict[str, Any]:
    """Assert the grammar over parsed events and return the reassembled message.

    With ``allow_error`` a stream may end with an ``error`` event instead of ``message_stop``; the
    partial message is returned with ``"error"`` set.
    """
    message: dict[str, Any] | None = None
    open_index: int | None = None
    next_index = 0
    json_buf: dict[int, str] = {}
    saw_delta = False
    ended = False
    for pos, (name, data) in enumerate(events):
        assert not ended, f"event {name} after the end of the stream"
        if name == "ping":
            continue
        if name == "error":
            assert allow_error, f"unexpected error event: {data}"
            assert open_index is None or True
            assert isinstance(data.get("error"), dict) and data["error"].get("type"), data
            ended = True
            if message is None:
                message = {"content": []}
            message["error"] = data["error"]
            continue
        if message is None:
            assert name == "message_start", f"first non-ping event is {name}, not message_start"
            m = data["message"]
            assert m["content"] == [], "message_start content must be []"
            assert m["role"] == "assistant" and m["type"] == "message"
            assert m["id"].startswith("msg_"), m["id"]
            usage = m["usage"]
            for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                        "cache_read_input_tokens"):
                assert isinstance(usage.get(key), int), f"message_start usage lacks {key}"
            assert usage["input_tokens"] > 0, "message_start input_tokens must be an estimate, not 0"
            message = {**m, "content": []}
            continue
        assert name != "message_start", "second message_start"
        if name == "content_block_start":
            assert not saw_delta, "content block after message_delta"
            assert open_index is None, f"block {data['index']} opened while {open_index} is open"
            assert data["index"] == next_index, f"block index {data['index']}, expected {next_index}"
            block = dict(data["content_block"])
            kind = block["type"]
            if kind == "text":
                assert block["text"] == ""
            elif kind == "thinking":
                assert block["thinking"] == "" and block.get("signature", "") == ""
            elif kind == "tool_use":
                assert block["input"] == {}, "tool_use must start with input {}"
                assert block["id"] and block["name"], "tool_use without id or name"
                json_buf[data["index"]] = ""
            elif kind == "server_tool_use":
                assert block["id"].startswith("srvtoolu_") and block["name"], block
                assert isinstance(block["input"], dict), "server_tool_use carries its whole input"
            elif kind == "web_search_tool_result":
                uses = [b["id"] for b in message["content"] if b["type"] == "server_tool_use"]
                assert block["tool_use_id"] in uses, "web_search_tool_result before its server_tool_use"
                content = block["content"]
                assert isinstance(content, list) or content.get("type") == "web_search_tool_result_error", content
                for result in content if isinstance(content, list) else []:
                    assert result["type"] == "web_search_result" and result["url"] and result["title"], result
                    assert isinstance(result["encrypted_content"], str), result
            message["content"].append(block)
            open_index = next_index
            next_index += 1
        elif name == "content_block_delta":
            assert open_index == data["index"], f"delta for {data['index']} while {open_index} is open"
            block = message["content"][data["index"]]
            delta = data["delta"]
            dt = delta["type"]
            if dt == "text_delta":
                assert block["type"] == "text", f"text_delta into {block['type']}"
                block["text"] += delta["text"]
            elif dt == "citations_delta":
                assert block["type"] == "text", f"citations_delta into {block['type']}"
                block.setdefault("citations", []).append(delta["citation"])
            elif dt == "thinking_delta":
                assert block["type"] == "thinking", f"thinking_delta into {block['type']}"
                block["thinking"] += delta["thinking"]
            elif dt == "signature_delta":
                assert block["type"] == "thinking"
                block["signature"] = delta["signature"]
            elif dt == "input_json_delta" and block["type"] == "server_tool_use":
                # Claude Code resets a server_tool_use's input at its start and parses these at its stop
                json_buf[data["index"]] = json_buf.get(data["index"], "") + delta["partial_json"]
                block["streamed_input"] = json_buf[data["index"]]
            elif dt == "input_json_delta":
                assert block["type"] == "tool_use", f"input_json_delta into {block['type']}"
                json_buf[data["index"]] += delta["partial_json"]
                # what the Python SDK does after every fragment (lib/streaming/_messages.py): a prefix
                # that is not the beginning of JSON raises inside the client, mid-stream
                if json_buf[data["index"]]:
                    from_json(json_buf[data["index"]].encode(), partial_mode=True)
            else:
                raise AssertionError(f"unknown delta type {dt}")
        elif name == "content_block_stop":
            assert open_index == data["index"], f"stop for {data['index']} while {open_index} is open"
            block = message["content"][data["index"]]
            if block["type"] == "text":
                assert block["text"].strip(), "empty or whitespace-only text block"
            elif block["type"] == "thinking":
                assert block.get("signature"), "thinking block closed without a signature"
                if block["thinking"] == "":
                    # Anthropic's omitted display: no text, only the signature, which must carry something
                    assert block["signature"] != "occ1.", "empty thinking block that carries nothing"
                else:
                    assert block["thinking"].strip(), "whitespace-only thinking block"
            elif block["type"] == "server_tool_use":
                streamed = json.loads(block.pop("streamed_input", "") or "{}")
                assert streamed == block["input"], f"server_tool_use input {block['input']} streamed as {streamed}"
            elif block["type"] == "tool_use":
                raw = json_buf[data["index"]] or "{}"
                value = json.loads(raw)
                assert isinstance(value, dict), f"tool input is not an object: {raw!r}"
                block["input"] = value
            open_index = None
        elif name == "message_delta":
            assert open_index is None, "message_delta while a block is open"
            assert not saw_delta, "more than one message_delta"
            saw_delta = True
            stop = data["delta"]["stop_reason"]
            assert stop in {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn",
                            "refusal", "model_context_window_exceeded"}, stop
            has_tool = any(b["type"] == "tool_use" for b in message["content"])
            if stop == "tool_use":
                assert has_tool, "stop_reason tool_use without a tool_use block"
            if has_tool and stop not in ("tool_use", "max_tokens"):
                raise AssertionError(f"tool_use blocks but stop_reason {stop}")
            assert isinstance(data["usage"].get("output_tokens"), int), "message_delta usage lacks output_tokens"
            message["stop_reason"] = stop
            message["stop_sequence"] = data["delta"].get("stop_sequence")
            message["usage"] = {**message["usage"], **data["usage"]}
        elif name == "message_stop":
            assert saw_delta, "message_stop without message_delta"
            ended = True
        else:
            raise AssertionError(f"unknown event {name}")
        _ = pos
    assert message is not None, "stream without message_start"
    if "error" not in message:
        assert ended, "stream ended without message_stop"
    ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
    assert len(ids) == len(set(ids)), f"duplicate tool ids {ids}"
    return message


def check_stream(raw: bytes, *, allow_error: bool = False) -> dict[str, Any]:
    return check_events(split_frames(raw), allow_error=allow_error)


def translate_chunks(make_translator: Any, chunks: list[bytes], *, model: str = "claude-x",
                     input_tokens: int = 10, thinking: bool = True) -> tuple[bytes, Any]:
    """Feed upstream byte chunks through occ's SSE decoder and a stream translator, the way the
    fallback loop does, and return (everything the builder emitted, the builder)."""
    from occ.core.sse import SSEDecoder
    from occ.translate.anthropic_events import AnthropicStreamBuilder

    builder = AnthropicStreamBuilder(message_id="msg_t", model=model, input_tokens=input_tokens, thinking=thinking)
    translator = make_translator(builder)
    decoder = SSEDecoder()
    out = b""
    for chunk in chunks:
        for event in decoder.feed(chunk):
            translator.feed(event)
        out += builder.take()
    for event in decoder.close():
        translator.feed(event)
    translator.close()
    return out + builder.take(), builder

"""An upstream that echoes the credential it received never gets it to the client: through hypercorn,
real sockets, every wire, in a 401 body, a 400 body and a mid-stream error chunk.

Many providers quote the key back ("Incorrect API key provided: sk-..."); Claude Code would print it
and save it in its transcripts. The fake below echoes the exact header occ sent it, so the test
cannot pass by luck, and it checks that the rest of the upstream's text still arrives.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from support.fake_upstream import Reply, Seen
from support.shapes import ev, frame
from support.stack import TEST_KEY, make_config

MASK = "[redacted]"
USER = [{"role": "user", "content": "hi"}]

#: wire -> (upstream path for stream / non-stream, the header carrying the key)
WIRES: dict[str, tuple[str, str, str]] = {
    "openai": ("/v1/chat/completions", "/v1/chat/completions", "authorization"),
    "anthropic": ("/v1/messages", "/v1/messages", "x-api-key"),
    "responses": ("/v1/responses", "/v1/responses", "authorization"),
    "gemini": ("/v1beta/models/model-a:streamGenerateContent", "/v1beta/models/model-a:generateContent",
               "x-goog-api-key"),
}


def _echo(seen: Seen, header: str) -> str:
    """What a careless upstream writes: the header line it received, the key in it."""
    return f"Incorrect API key provided. You sent {header}: {seen.headers[header]}. Check your key."


def _error_body(wire: str, status: int, message: str) -> dict[str, Any]:
    if wire == "anthropic":
        kind = "authentication_error" if status == 401 else "invalid_request_error"
        return {"type": "error", "error": {"type": kind, "message": message}}
    if wire == "gemini":
        return {"error": {"code": status, "message": message,
                          "status": "UNAUTHENTICATED" if status == 401 else "INVALID_ARGUMENT"}}
    return {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}


def _stream_then_error(wire: str, message: str) -> list[bytes]:
    """Some visible text (the stream commits), then the upstream's in-stream error carrying the key."""
    if wire == "openai":
        return [b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"partial "}}]}\n\n',
                f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n".encode()]
    if wire == "anthropic":
        return [ev({"type": "message_start", "message": {"id": "msg_up", "type": "message", "role": "assistant",
                                                         "model": "m", "content": [], "stop_reason": None,
                                                         "usage": {"input_tokens": 5, "output_tokens": 1}}}),
                ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial "}}),
                b"event: error\ndata: " + json.dumps({"type": "error", "error": {
                    "type": "api_error", "message": message}}).encode() + b"\n\n"]
    if wire == "responses":
        return [ev({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}),
                ev({"type": "response.output_item.added", "item": {"id": "msg_1", "type": "message"}}),
                ev({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "partial "}),
                ev({"type": "response.failed", "response": {"id": "resp_1", "status": "failed", "error": {
                    "code": "server_error", "message": message}}})]
    return [frame({"candidates": [{"content": {"role": "model", "parts": [{"text": "partial "}]}}]}),
            frame({"error": {"code": 500, "message": message, "status": "INTERNAL"}})]


def _config(fake, wire: str):
    return make_config(fake, models={"default": {"provider": "fake", "model_id": "model-a", "wire_format": wire}})


def _assert_no_key(text: str, caplog) -> None:
    assert TEST_KEY not in text
    assert TEST_KEY[:16] not in text  # not even half of it
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert TEST_KEY not in logged


@pytest.mark.parametrize("wire", sorted(WIRES))
@pytest.mark.parametrize("status", [401, 400])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_error_body_that_echoes_the_key_reaches_the_client_without_it(fake, start_occ, caplog, wire,
                                                                                 status, stream):
    caplog.set_level(logging.INFO)
    stream_path, plain_path, header = WIRES[wire]
    fake.default(stream_path if stream else plain_path,
                 lambda seen: Reply(status=status, body=_error_body(wire, status, _echo(seen, header))))
    url = await start_occ(_config(fake, wire))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages", json={
            "model": "claude-sonnet-4-5", "max_tokens": 16, "stream": stream, "messages": USER})
    assert fake.requests(), "the upstream was never asked"
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    message = body["error"]["message"]
    # the upstream's words survive, only the key is gone
    assert "Incorrect API key provided" in message and "Check your key" in message
    assert MASK in message
    _assert_no_key(response.text, caplog)


@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_a_mid_stream_error_that_echoes_the_key_reaches_the_client_without_it(fake, start_occ, caplog, wire):
    caplog.set_level(logging.INFO)
    stream_path, _, header = WIRES[wire]
    fake.default(stream_path, lambda seen: Reply(chunks=_stream_then_error(wire, _echo(seen, header))))
    url = await start_occ(_config(fake, wire))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages", json={
            "model": "claude-sonnet-4-5", "max_tokens": 16, "stream": True, "messages": USER})
    assert response.status_code == 200  # committed: the failure arrives as an error event
    assert "partial" in response.text
    errors = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: ") and '"type":"error"' in line.replace(" ", "")]
    assert len(errors) == 1, response.text
    message = errors[0]["error"]["message"]
    assert "Incorrect API key provided" in message and MASK in message
    _assert_no_key(response.text, caplog)


async def test_a_key_occ_was_never_told_about_is_masked_by_its_shape(fake, start_occ):
    """A client's own key, another provider's key: masked because it looks like one."""
    stray = "sk-ant-api03-Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"
    fake.default("/v1/chat/completions", Reply(status=400, body={"error": {
        "message": f"key {stray} belongs to another project; request id abc", "type": "invalid_request_error"}}))
    url = await start_occ(make_config(fake))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages", json={
            "model": "claude-sonnet-4-5", "max_tokens": 16, "messages": USER})
    assert response.status_code == 400
    assert stray not in response.text
    assert "belongs to another project; request id abc" in response.json()["error"]["message"]


async def test_status_and_metrics_never_show_a_key(fake, start_occ):
    """A key pasted into a model id (it happens) reaches /status and /metrics labels masked."""
    pasted = "sk-pasted-into-model-id-0123456789"
    fake.default("/v1/chat/completions", Reply(status=500, body={"error": {"message": "boom"}}))
    config = make_config(fake, models={"default": {"provider": "fake", "model_id": pasted}})
    url = await start_occ(config)
    async with httpx.AsyncClient(timeout=10) as client:
        await client.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 16, "messages": USER})
        status = await client.get(f"{url}/status")
        metrics = await client.get(f"{url}/metrics")
        models = await client.get(f"{url}/v1/models")
    for response in (status, metrics, models):
        assert response.status_code == 200
        assert pasted not in response.text
    assert f"fake/{MASK}" in status.text

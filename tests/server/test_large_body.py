"""A body of 8 MiB and more (``LOW_MEMORY_PARSE_BYTES``) is read into one buffer and parsed from
its text: the same request reaches every wire as from the small-body path, the client's exact bytes
reach the Anthropic passthrough, and a bad large body gets the small body's 400 and message."""

from __future__ import annotations

import json

import httpx
import pytest
from support.fake_upstream import Reply
from support.sdk_answers import Answer, anthropic_body
from support.stack import make_config, ok_stream, sdk

from occ.core.errors import InvalidRequest
from occ.core.validate import LOW_MEMORY_PARSE_BYTES, parse_messages_request

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
RESULT = "    def handler(self, request):  # caf\u00e9 \U0001f600 \\ \"quoted\"\n" * 4000


def _history(turns: int = 36) -> dict:
    messages: list[dict] = [{"role": "user", "content": "read the files"}]
    for i in range(turns):
        messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": f"toolu_{i:03d}", "name": "Read", "input": {"file_path": f"/f{i}.py"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{i:03d}", "content": RESULT + str(i)}]})
    messages.append({"role": "user", "content": "now summarise"})
    return {"model": "claude-x", "max_tokens": 50, "messages": messages}


async def _post(url: str, content: bytes, **kw) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url + MESSAGES, content=content, headers={"content-type": "application/json"}, **kw)


async def test_a_large_history_reaches_chat_intact(fake, start_occ):
    fake.default(CHAT, ok_stream("summary"))
    url = await start_occ(make_config(fake))
    history = _history()
    assert len(json.dumps(history).encode()) > LOW_MEMORY_PARSE_BYTES
    async with sdk(url) as client:
        message = await client.messages.create(**history)
    assert message.content[0].text == "summary"
    sent = fake.requests(CHAT)[-1].json
    results = [m["content"] for m in sent["messages"] if m["role"] == "tool"]
    assert results == [RESULT + str(i) for i in range(36)]


async def test_a_large_chunked_body_is_read_too(fake, start_occ):
    fake.default(CHAT, ok_stream("chunked"))
    url = await start_occ(make_config(fake))
    body = json.dumps(_history()).encode()

    async def pieces():
        for at in range(0, len(body), 100_000):
            yield body[at:at + 100_000]

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(url + MESSAGES, content=pieces(), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "chunked"
    assert len(fake.requests(CHAT)[-1].body) > LOW_MEMORY_PARSE_BYTES


async def test_the_passthrough_gets_the_clients_bytes(fake, start_occ):
    fake.default(MESSAGES, Reply(body=json.loads(anthropic_body(Answer(text="passed")))))
    url = await start_occ(make_config(fake, provider={"protocol": "anthropic"}))
    body = json.dumps(_history(), ensure_ascii=False).encode()
    response = await _post(url, body)
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "passed"
    sent = fake.requests(MESSAGES)[-1].json
    assert sent["messages"] == _history()["messages"]


@pytest.mark.parametrize(("tail", "needle"), [
    (b"NaN", "request body is not valid JSON"),
    (b"1e400", "request body is not valid JSON"),
    (b'"\xff"', "request body is not valid UTF-8: byte 0xff at offset"),
    (b'"fine"}], "stream": "yes", "more": [{"a": 1', "stream: expected a boolean"),
])
async def test_a_bad_large_body_gets_the_small_bodys_answer(fake, start_occ, tail, needle):
    url = await start_occ(make_config(fake))
    pad = b"x" * LOW_MEMORY_PARSE_BYTES
    large = (b'{"model": "m", "max_tokens": 5, "pad": "' + pad + b'", "messages": [{"role": "user", "content": '
             + tail + b"}]}")
    response = await _post(url, large)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]
    with pytest.raises(InvalidRequest) as small_path:  # the bytes' own parse, as for any small body
        parse_messages_request(large)
    assert response.json()["error"]["message"] == str(small_path.value)
    assert not fake.requests()

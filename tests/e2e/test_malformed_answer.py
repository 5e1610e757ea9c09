"""An upstream that says 200 and then sends something broken is named for what happened ("malformed
upstream answer: ... cut off ..."), never reported as an HTTP 502 it did not send; the next model of
the chain is tried; and an error envelope in a 200 keeps the status its words give."""

from __future__ import annotations

import anthropic
import pytest
from support.fake_upstream import Reply
from support.stack import by_model, chain, make_config, ok_stream, sdk

CHAT = "/v1/chat/completions"
CUT = (b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",'
       b'"content":"hel')
ASK = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


async def _fail(url: str, stream: bool) -> anthropic.APIStatusError:
    async with sdk(url) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            if stream:
                async with client.messages.stream(**ASK) as events:
                    await events.get_final_message()
            else:
                await client.messages.create(**ASK)
    return info.value


@pytest.mark.parametrize("stream", [False, True])
async def test_a_truncated_200_is_a_malformed_answer(fake, start_occ, stream):
    fake.default(CHAT, Reply(body=CUT))
    error = await _fail(await start_occ(make_config(fake)), stream)
    message = error.body["error"]["message"]
    expected = "an event stream" if stream else "a JSON answer"
    assert (f"malformed upstream answer: HTTP 200 with JSON cut off after {len(CUT)} bytes "
            f"(ends 'sage\":{{\"role\":\"assistant\",\"content\":\"hel'), where {expected} was expected") in message
    assert "HTTP 502" not in message
    assert error.status_code == 502 and error.body["error"]["type"] == "api_error"


async def test_an_html_page_with_200_is_named_as_such(fake, start_occ):
    fake.default(CHAT, Reply(body=b"<html>bad gateway</html>", headers={"content-type": "text/html"}))
    error = await _fail(await start_occ(make_config(fake)), stream=False)
    assert ("malformed upstream answer: HTTP 200 with a body that is not valid JSON ('<html>bad gateway</html>')"
            in error.body["error"]["message"])


@pytest.mark.parametrize("stream", [False, True])
async def test_the_next_model_answers_after_a_malformed_one(fake, start_occ, stream):
    fake.default(CHAT, by_model({"model-a": Reply(body=CUT), "model-b": ok_stream("from b")}))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b")))
    async with sdk(url) as client:
        if stream:
            async with client.messages.stream(**ASK) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(**ASK)
    assert message.content[0].text == "from b"


async def test_an_error_envelope_in_a_200_keeps_its_words(fake, start_occ):
    """Asked for a stream, the upstream answers 200 with an error body: its type decides the status."""
    fake.default(CHAT, Reply(body={"error": {"type": "rate_limit_error", "message": "slow down"}}))
    error = await _fail(await start_occ(make_config(fake)), stream=True)
    assert error.status_code == 429
    assert "upstream error in an HTTP 200 answer: slow down" in error.body["error"]["message"]


PAGE = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "text/event-stream"])
@pytest.mark.parametrize("wire", ["openai", "anthropic", "responses"])
async def test_an_html_page_answering_a_stream_is_named_as_such(fake, start_occ, content_type, wire):
    """Some gateways send their error page with 200 (and even with the stream's content type): the
    client is told what came, as the non-stream path does, not "stream ended without finish_reason"."""
    path = {"openai": CHAT, "anthropic": "/v1/messages", "responses": "/v1/responses"}[wire]
    fake.default(path, Reply(chunks=[PAGE], headers={"content-type": content_type}))
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "model-a",
                                                                "wire_format": wire}}))
    error = await _fail(url, stream=True)
    message = error.body["error"]["message"]
    assert "malformed upstream answer: HTTP 200 with a body that is not valid JSON ('<!DOCTYPE html><html>" in message
    assert "where an event stream was expected" in message
    assert "finish_reason" not in message


async def test_the_next_model_answers_after_an_html_stream(fake, start_occ):
    fake.default(CHAT, by_model({"model-a": Reply(chunks=[PAGE], headers={"content-type": "text/event-stream"}),
                                 "model-b": ok_stream("from b")}))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b")))
    async with sdk(url) as client, client.messages.stream(**ASK) as events:
        message = await events.get_final_message()
    assert message.content[0].text == "from b"

"""count_tokens refuses what Anthropic's API refuses, through real occ and the official SDK: a 400
``invalid_request_error`` naming the field, never a 200 with a number for a request the model would
reject; and what the API takes still gets its count."""

from __future__ import annotations

import base64

import anthropic
import httpx
import pytest
from support.stack import make_config, sdk

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + (64).to_bytes(4, "big") * 2
                       + bytes(5)).decode()
GOOD_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


def _user(*blocks):
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": "what is this?"}]}]


@pytest.fixture
async def url(fake, start_occ):
    return await start_occ(make_config(fake))


@pytest.mark.parametrize(("messages", "needle"), [
    (_user({"type": "image"}), "messages.0.content.0.image.source: field required"),
    (_user({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!!"}}),
     "messages.0.content.0.image.source.base64.data: invalid base64"),
    (_user({"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": PNG}}),
     "media_type"),
    (_user({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "%%%"}}),
     "document.source.base64.data: invalid base64"),
    ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                    "content": [{"type": "image", "source": {"type": "nowhere"}}]}]}],
     "tool_result.content.0.image.source.type"),
    ([], "messages: at least one message is required"),
])
async def test_content_the_api_rejects_is_a_400(url, messages, needle):
    with pytest.raises(anthropic.BadRequestError) as info:
        await sdk(url).messages.count_tokens(model="claude-sonnet-4-5", messages=messages)
    assert info.value.status_code == 400
    body = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert needle in body["error"]["message"], body


async def test_a_body_without_a_model_is_a_400(url):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages/count_tokens",
                                     json={"messages": [{"role": "user", "content": "hi"}]})
        empty = await client.post(f"{url}/v1/messages/count_tokens", json={"messages": []})
    for r in (response, empty):
        assert r.status_code == 400
        assert r.json()["error"] == {"type": "invalid_request_error", "message": "model: field required"}


async def test_what_the_api_accepts_is_counted(url):
    counted = await sdk(url).messages.count_tokens(model="claude-sonnet-4-5", messages=_user(GOOD_IMAGE))
    assert counted.input_tokens > 5


@pytest.mark.parametrize(("messages", "needle"), [
    (_user({"type": "image"}), "messages.0.content.0.image.source: field required"),
    (_user({"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": PNG}}),
     "media_type"),
    (_user({"type": "document", "source": {"type": "somewhere"}}), "messages.0.content.0.document.source.type"),
    ([], "messages: at least one message is required"),
])
async def test_the_messages_endpoint_refuses_the_same_without_asking_an_upstream(url, fake, messages, needle):
    for stream in (False, True):
        with pytest.raises(anthropic.BadRequestError) as info:
            if stream:
                async with sdk(url).messages.stream(model="claude-x", max_tokens=5, messages=messages) as events:
                    await events.get_final_message()
            else:
                await sdk(url).messages.create(model="claude-x", max_tokens=5, messages=messages)
        assert info.value.body["error"]["type"] == "invalid_request_error"
        assert needle in info.value.body["error"]["message"]
    assert [] == fake.requests()

"""``max_body_bytes`` refuses early: an announced ``Content-Length`` over the limit gets its 413 before
a byte of the body is sent, a chunked body is cut off once its running count passes the limit (its
end never needs to arrive), and the official SDK sees Anthropic's ``request_too_large``."""

from __future__ import annotations

import anthropic
import pytest
import trio
from support.stack import make_config, ok_stream, sdk

CHAT = "/v1/chat/completions"
LIMIT = 64 * 1024


@pytest.fixture
async def url(fake, start_occ):
    fake.default(CHAT, ok_stream("fine"))
    return await start_occ(make_config(fake, max_body_bytes=LIMIT))


async def _open(url: str) -> trio.SocketStream:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def _read_head(stream: trio.SocketStream) -> tuple[int, bytes]:
    """The status and everything read, waiting at most 5 s: occ must answer without more input."""
    data = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


async def test_announced_length_over_the_limit_is_refused_before_the_body(url):
    stream = await _open(url)
    async with stream:
        await stream.send_all(b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                              b"content-length: 50000000\r\n\r\n")
        status, data = await _read_head(stream)  # not one byte of the 50 MB sent
        with trio.fail_after(5):
            while b"request_too_large" not in data and (more := await stream.receive_some(65536)):
                data += more
    assert status == 413
    assert b"request body of 50000000 bytes is larger than the limit of 65536 bytes (max_body_bytes)" in data


async def test_chunked_body_is_cut_off_at_the_limit(url):
    stream = await _open(url)
    piece = b"x" * 8192
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    async with stream:
        await stream.send_all(b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                              b"transfer-encoding: chunked\r\n\r\n")
        await stream.send_all(b'9\r\n{"model":\r\n')
        for _ in range(LIMIT // len(piece) + 1):  # one piece past the limit, and no final chunk
            await stream.send_all(chunk)
        status, _ = await _read_head(stream)
    assert status == 413


async def test_a_body_just_under_the_limit_still_passes(url):
    text = "y" * (LIMIT - 500)
    async with sdk(url) as client:
        message = await client.messages.create(model="claude-x", max_tokens=10,
                                               messages=[{"role": "user", "content": text}])
    assert message.content[0].text == "fine"


async def test_the_sdk_sees_request_too_large(url):
    async with sdk(url) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(model="claude-x", max_tokens=10,
                                         messages=[{"role": "user", "content": "z" * (LIMIT + 1)}])
    assert info.value.status_code == 413
    assert info.value.body["error"]["type"] == "request_too_large"
    assert "larger than the limit of 65536 bytes (max_body_bytes)" in info.value.body["error"]["message"]

"""A POST the upstream read in full is never sent twice, end to end: Claude Code's SDK → occ on hypercorn →
a raw HTTP/1.1 upstream on 127.0.0.1 that answers one request on a kept-alive connection, then reads the next
one whole and closes without a byte of answer (it may have run and billed the generation)."""

from __future__ import annotations

from functools import partial

import httpx
import trio
from support.shapes import USER, completion
from support.stack import TEST_KEY

from occ.config.parse import parse_config
from occ.core.jsonfast import dumps, loads


class ReadThenDie:
    """Answers the first request of every connection; reads the second whole, then closes silently."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        buf = b""
        for index in range(2):
            while b"\r\n\r\n" not in buf:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += await stream.receive_some(65536)
            self.bodies.append(loads(rest[:length]))
            buf = rest[length:]
            if index == 1:
                await stream.aclose()
                return
            answer = dumps(completion({"content": f"answer {len(self.bodies)}"}))
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                                  % len(answer) + answer)


async def test_a_post_the_upstream_read_in_full_is_not_sent_again(nursery, start_occ):
    upstream = ReadThenDie()
    listeners = await nursery.start(partial(trio.serve_tcp, upstream.handle, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    config = parse_config({
        "host": "127.0.0.1", "port": 0,
        "providers": {"raw": {"base_url": f"http://127.0.0.1:{port}/v1/chat/completions", "api_key": TEST_KEY,
                              "protocol": "openai"}},
        "models": {"default": {"provider": "raw", "model_id": "model-a"}},
    }, env={}, source="test")
    url = await start_occ(config)
    payload = {"model": "m", "max_tokens": 50, "messages": USER}
    async with httpx.AsyncClient(timeout=10) as client:
        first = await client.post(f"{url}/v1/messages", json=payload)
        assert first.status_code == 200 and first.json()["content"][0]["text"] == "answer 1"
        second = await client.post(f"{url}/v1/messages", json=payload)
    assert second.status_code == 502, second.text
    assert "not sent again" in second.json()["error"]["message"]
    assert len(upstream.bodies) == 2, "occ sent the POST the upstream had read a second time"

"""The relay, the one writer to a streaming client, alone: what reaches ``send`` and in what order.

The pump and the heartbeat both write through it, each in its own task, so these check what the end-to-end
tests cannot force: a ping that falls due while a write is blocked, a write stuck past its hand-off
deadline, and the headers held until there is something to send. No sockets: ``send`` is a fake."""

from __future__ import annotations

from typing import Any

import trio

from occ.core.errors import UpstreamStatus
from occ.core.sse import PING_FRAME
from occ.server.relay import Relay, heartbeat


class FakeSend:
    """Records ASGI messages; ``block`` makes the next body send wait until ``release`` is set."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.block = False
        self.release = trio.Event()
        self.blocked = trio.Event()

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.block and message["type"] == "http.response.body":
            self.block = False
            self.blocked.set()
            await self.release.wait()
        self.messages.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]


async def test_headers_wait_for_the_first_write_and_each_write_is_one_send() -> None:
    send = FakeSend()
    relay = Relay(send, request_id="req_1")
    assert send.messages == []
    await relay.write(b"event: a\ndata: {}\n\nevent: b\ndata: {}\n\n")
    await relay.end()
    assert [m["type"] for m in send.messages] == ["http.response.start", "http.response.body", "http.response.body"]
    assert send.messages[0]["status"] == 200
    assert send.bodies() == [b"event: a\ndata: {}\n\nevent: b\ndata: {}\n\n", b""]
    assert relay.first_content_at is not None


async def test_a_failure_before_anything_was_written_is_a_real_status() -> None:
    send = FakeSend()
    relay = Relay(send, request_id="req_1")
    await relay.fail(UpstreamStatus(429, "rate limited", retry_after_s=3))
    await relay.end()
    assert send.messages[0]["type"] == "http.response.start"
    assert send.messages[0]["status"] == 429
    assert relay.status == 429
    assert len(send.bodies()) == 1 and b'"rate_limit_error"' in send.bodies()[0]


async def test_a_ping_never_lands_inside_a_blocked_write(autojump_clock: trio.abc.Clock) -> None:
    """The heartbeat falls due while the pump's write is stuck: the ping is skipped (the client is being
    written to), and the bytes that reach ``send`` are whole writes, in order."""
    send = FakeSend()
    relay = Relay(send, request_id="req_1", write_timeout_s=60)
    await relay.write(b"first\n\n")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat, relay, 1.0)
        send.block = True
        nursery.start_soon(relay.write, b"second\n\n")
        await send.blocked.wait()
        await trio.sleep(5)  # five heartbeat intervals of a blocked write
        send.release.set()
        await trio.sleep(0.5)
        assert send.bodies() == [b"first\n\n", b"second\n\n"]
        await trio.sleep(1.0)  # silence again: now the ping goes out
        assert send.bodies()[-1] == PING_FRAME
        nursery.cancel_scope.cancel()


async def test_a_write_stuck_past_its_deadline_gives_the_client_up(autojump_clock: trio.abc.Clock) -> None:
    reasons: list[str] = []
    send = FakeSend()
    relay = Relay(send, request_id="req_1", write_timeout_s=2.0, on_stuck=reasons.append)
    send.block = True
    with trio.CancelScope(deadline=trio.current_time() + 0.5):  # an attempt deadline: it cannot cut the write
        await relay.write(b"frames\n\n")
    assert relay.abandoned
    assert reasons and "client_write_timeout_ms" in reasons[0]
    assert trio.current_time() >= 2.0


class ServerShieldedSend(FakeSend):
    """A send as occ's own HTTP/1.1 connection makes it: shielded whole, ended only by the client leaving or
    the kernel's deadline (TCP_USER_TIMEOUT, here 2.5 s after a blocked write began)."""

    async def __call__(self, message: dict[str, Any]) -> None:
        with trio.CancelScope(shield=True):
            if self.block and message["type"] == "http.response.body":
                self.block = False
                self.blocked.set()
                await trio.sleep(2.5)
            self.messages.append(message)


async def test_on_a_server_that_writes_whole_a_long_write_is_still_the_client_s(
        autojump_clock: trio.abc.Clock) -> None:
    """With ``whole_writes`` the relay adds no scope of its own: an attempt deadline meanwhile cannot cut the
    write (the server's shield), and a write that the kernel ended after ``client_write_timeout_ms`` gives the
    client up exactly as the scoped path does."""
    reasons: list[str] = []
    send = ServerShieldedSend()
    relay = Relay(send, request_id="req_1", write_timeout_s=2.0, on_stuck=reasons.append, whole_writes=True)
    await relay.write(b"first\n\n")
    send.block = True
    with trio.CancelScope(deadline=trio.current_time() + 0.5):
        await relay.write(b"frames\n\n")
    assert send.bodies() == [b"first\n\n", b"frames\n\n"]
    assert relay.abandoned
    assert reasons and "client_write_timeout_ms" in reasons[0]


async def test_on_a_server_that_writes_whole_a_ping_never_lands_inside_a_blocked_write(
        autojump_clock: trio.abc.Clock) -> None:
    send = ServerShieldedSend()
    relay = Relay(send, request_id="req_1", write_timeout_s=60, whole_writes=True)
    await relay.write(b"first\n\n")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat, relay, 1.0)
        send.block = True
        nursery.start_soon(relay.write, b"second\n\n")
        await send.blocked.wait()
        await trio.sleep(2.0)  # heartbeat intervals while the write is blocked: no ping inside it
        assert send.bodies() == [b"first\n\n"]
        await trio.sleep(1.0)
        assert send.bodies()[:2] == [b"first\n\n", b"second\n\n"]
        assert PING_FRAME not in send.bodies()[:2]
        nursery.cancel_scope.cancel()
    assert not relay.abandoned

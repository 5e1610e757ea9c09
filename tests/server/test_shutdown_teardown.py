"""The server's last step after serving (closing its upstream clients) has its own deadline: a close that
never returns cannot hold the shutdown, which its shield would otherwise keep from every backstop."""

from __future__ import annotations

import logging

import trio
from support.stack import make_config, ok_stream, sdk

import occ
from occ.server import app as app_module
from occ.server.app import create_app
from occ.upstream.client import UpstreamClient


async def test_an_upstream_close_that_never_returns_does_not_hold_the_shutdown(fake, nursery, monkeypatch, caplog):
    """Closing the pool's sockets takes no wait, so the peer that never lets go is a stand-in: the client's
    close runs for real, then hangs (30 s, so a run without the deadline ends, and fails)."""
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(app_module, "UPSTREAM_CLOSE_TIMEOUT_S", 0.2)
    real_exit = UpstreamClient.__aexit__
    seen: list[str] = []

    async def never_lets_go(self: UpstreamClient, *exc_info: object) -> None:
        await real_exit(self, *exc_info)
        try:
            await trio.sleep(30)
            seen.append("returned")
        except trio.Cancelled:
            seen.append("cancelled")
            raise

    monkeypatch.setattr(UpstreamClient, "__aexit__", never_lets_go)
    fake.default("/v1/chat/completions", ok_stream("hi"))
    config = make_config(fake)
    stop, stopped = trio.Event(), trio.Event()

    async def serve(task_status: trio.TaskStatus[list[str]]) -> None:
        await occ.serve(config, app=create_app(config), shutdown_trigger=stop.wait, task_status=task_status)
        stopped.set()

    [url] = await nursery.start(serve)
    async with sdk(url) as client:  # a real request, so the pool has a kept-alive connection to close
        message = await client.messages.create(model="claude-x", max_tokens=10,
                                               messages=[{"role": "user", "content": "hello"}])
    assert message.content[0].text == "hi"
    stop.set()
    with trio.fail_after(20):
        await stopped.wait()
    assert seen == ["cancelled"]
    assert "the upstream connections did not close within 0.2s" in caplog.text

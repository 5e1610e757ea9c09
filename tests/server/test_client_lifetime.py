"""The client lifetime scope (occ.server.app._ClientLifetime): on occ's connection a cancel scope the server
cancels through ``on_disconnect``, entered and left with KeyboardInterrupt held off as trio's own scopes are;
under another server a watcher task does it. No sockets: the server's side is a stand-in."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from occ.observe.access_log import RequestLog
from occ.server.app import _ClientLifetime
from occ.server.hypercorn_worker import ON_DISCONNECT


def _record() -> RequestLog:
    return RequestLog(request_id="req_test", started=0.0)


async def test_on_occ_s_connection_the_server_cancels_it_and_nothing_waits_in_receive():
    callbacks: list[Any] = []
    protected: list[bool] = []

    def register(callback: Any) -> Any:
        protected.append(trio.lowlevel.currently_ki_protected())
        callbacks.append(callback)

        def forget() -> None:
            protected.append(trio.lowlevel.currently_ki_protected())
            callbacks.remove(callback)

        return forget

    async def receive() -> dict[str, Any]:
        raise AssertionError("nothing waits in receive() on occ's connection")

    record = _record()
    with trio.fail_after(5):
        async with _ClientLifetime({"extensions": {ON_DISCONNECT: register}}, receive, record) as scope:
            assert not trio.lowlevel.currently_ki_protected()  # the request's own code is not
            callbacks[0]()  # the client goes
            await trio.sleep_forever()
    assert scope.cancelled_caught and record.client_cancelled
    assert protected == [True, True] and callbacks == []  # entered and left protected; forgotten on the way out


async def test_under_another_server_a_watcher_task_cancels_it():
    messages = [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]
    gone = trio.Event()

    async def receive() -> dict[str, Any]:
        if len(messages) == 1:
            await gone.wait()
        return messages.pop(0)

    record = _record()
    with trio.fail_after(5):
        async with _ClientLifetime({"extensions": {}}, receive, record) as scope:
            await trio.testing.wait_all_tasks_blocked()
            assert not scope.cancel_called
            gone.set()
            await trio.sleep_forever()
    assert scope.cancelled_caught and record.client_cancelled

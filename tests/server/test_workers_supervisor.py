"""The ``--workers`` supervisor's own ordering, with small real child processes in place of occ workers
(``trio.lowlevel.open_process`` replaced by one that starts them): a stop that lands while a worker is
being started, a worker that does not stop within the stop budget, and a worker that is still running
when the supervisor's own code fails."""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

import pytest
import trio
import trio.testing

from occ.server.workers import _Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(20)"]  # ends on SIGTERM, like a worker still starting
STUBBORN = [sys.executable, "-c",  # a worker that will not stop: SIGTERM ignored, its lifeline unread
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); "
            "time.sleep(20)"]


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


async def test_a_stop_while_a_worker_is_being_started_closes_the_sockets_only_after_the_start(monkeypatch):
    """SIGTERM lands while ``Popen`` is passing the listening socket on: the socket stays open until that
    start is done (then it is closed), and the worker whose start was still to come is never started."""
    listening = _listening()
    supervisor = _Supervisor([listening], 2, 30.0, dict(os.environ), False)
    real_open = trio.lowlevel.open_process
    starts: list[dict[str, Any]] = []

    async def open_process(argv: list[str], *, pass_fds: tuple[int, ...], **kwargs: Any) -> trio.Process:
        if not starts:
            supervisor._on_stop_signal(signal.SIGTERM)  # the signal arrives during this Popen
            await trio.testing.wait_all_tasks_blocked()  # whatever the stop set going has gone as far as it can
        starts.append({"socket": listening.fileno(), "fds_open": [_is_open(fd) for fd in pass_fds]})
        return await real_open(SLEEPER, pass_fds=pass_fds, **kwargs)

    monkeypatch.setattr(trio.lowlevel, "open_process", open_process)
    try:
        with trio.fail_after(30):
            code = await supervisor.run()
    finally:
        listening.close()
    assert len(starts) == 1, "the second worker's start came after the stop: it must not start"
    assert starts[0]["socket"] != -1 and all(starts[0]["fds_open"]), starts
    assert supervisor.sockets[0].fileno() == -1  # closed once the start was done
    assert code == 0  # a worker stopped before it served had nothing to finish


async def _start_stubborn(real_open: Any, kwargs: dict[str, Any]) -> trio.Process:
    import subprocess

    process = await real_open(STUBBORN, stdout=subprocess.PIPE, **{k: v for k, v in kwargs.items() if k != "stdout"})
    with trio.fail_after(10):  # it ignores SIGTERM once it printed its line
        assert await process.stdout.receive_some() == b"\n"
    return process


async def _reap(children: list[trio.Process]) -> None:
    for child in children:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await child.stdout.aclose()


async def test_a_worker_that_does_not_stop_within_the_stop_budget_is_killed_and_reported(monkeypatch):
    """The backstop: SIGTERM, then the stop budget, then SIGKILL, and the exit status says the stop was not
    clean. (The cancel reached the watch as an exception group, which ``except trio.Cancelled`` never
    matched: the worker was waited for, shielded, for as long as it liked.)"""
    listening = _listening()
    supervisor = _Supervisor([listening], 1, 0.5, dict(os.environ), False)
    real_open = trio.lowlevel.open_process
    children: list[trio.Process] = []

    async def open_process(argv: list[str], **kwargs: Any) -> trio.Process:
        process = await _start_stubborn(real_open, kwargs)
        children.append(process)
        supervisor._on_stop_signal(signal.SIGTERM)  # it gets SIGTERM as soon as it is started
        return process

    monkeypatch.setattr(trio.lowlevel, "open_process", open_process)
    try:
        with trio.fail_after(30):
            code = await supervisor.run()
    finally:
        listening.close()
        await _reap(children)
    [child] = children
    assert child.returncode == -signal.SIGKILL  # not 0, 20 s later
    assert supervisor.unclean == ["worker 0 killed after 0.5s"]
    assert code == 1


class _FirstWaitFails:
    """A real process whose first ``wait()`` raises, as a bug in the supervisor's own code would."""

    def __init__(self, process: trio.Process) -> None:
        self._process, self._failed = process, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._process, name)

    async def wait(self) -> int:
        if not self._failed:
            self._failed = True
            raise RuntimeError("a bug in the supervisor")
        return await self._process.wait()


async def test_a_worker_left_running_by_an_error_in_the_supervisor_is_killed_after_the_stop_budget(monkeypatch):
    """The teardown of a worker's watch waits for it at most the stop budget (its own deadline), then kills
    it: before, it waited shielded with no end for a worker that did not stop."""
    listening = _listening()
    supervisor = _Supervisor([listening], 1, 0.5, dict(os.environ), False)
    real_open = trio.lowlevel.open_process
    children: list[trio.Process] = []

    async def open_process(argv: list[str], **kwargs: Any) -> _FirstWaitFails:
        process = await _start_stubborn(real_open, kwargs)
        children.append(process)
        return _FirstWaitFails(process)

    monkeypatch.setattr(trio.lowlevel, "open_process", open_process)
    try:
        with pytest.raises(BaseExceptionGroup) as caught:
            await supervisor.run()
    finally:
        listening.close()
        await _reap(children)
    assert caught.group_contains(RuntimeError, match="a bug in the supervisor")
    [child] = children
    assert child.returncode == -signal.SIGKILL  # not 0, 20 s later

"""``occ serve --workers N``: one parent process that holds the listening socket, and N worker processes
that serve it, each with the same graceful shutdown as ``occ serve`` in one process.

hypercorn's own multi-worker supervisor cannot give that shutdown: on SIGTERM it sets an event its
workers poll, their hypercorn shuts down without occ's shutdown scopes (streams still running after the
grace are cut mid-delta, no ``error`` event), and then it terminates them. So occ supervises its workers
itself:

* The parent binds and listens (a busy port is one line before anything starts), then starts each worker
  as ``python -m occ.server.workers`` with the listening socket inherited (``pass_fds``); the kernel shares
  the accepts between the workers. Connections that arrive before a worker is up wait in the backlog.
  Each worker tells the parent when it serves, over a pipe only the two of them hold (one byte, after its
  hypercorn started); when every worker serves, the parent logs ``all N workers serving (pids ...)``, at
  start and again each time a replacement (a crash's, a SIGHUP's) has made the set whole.
* Each worker builds its own app from the config (``$OCC_CONFIG``) and runs
  :func:`~occ.server.serve.serve_until_stopped`, as one process does. It stops on SIGTERM, or when its
  *lifeline* (a pipe whose other end only the parent holds) reaches end of file: a parent that died,
  even of SIGKILL, leaves no worker serving on its own. SIGINT is ignored in workers: a Ctrl-C in the
  terminal reaches the whole process group, and the parent alone decides what it means.
* SIGTERM or SIGINT to the parent: it closes its copy of the listening socket (once no worker is being
  started: ``Popen`` is still passing the socket on then), sends SIGTERM to every
  worker and waits for them all (at most the grace, the flush and hypercorn's backstop, plus a margin,
  then SIGKILL for a worker that is still there). It exits 0 when every worker stopped cleanly.
* SIGHUP to the parent replaces the workers one at a time, each stopping as on SIGTERM (new code, a changed
  environment; the config itself reloads on its own).
* A worker that dies while serving (a crash, the OOM killer, a SIGKILL) is reported with its exit status
  and replaced; a worker that dies before it was ready to serve (a config it cannot load, an import error)
  stops the whole server with exit status 1, instead of a restart loop.

The parent runs no app: it holds no breakers, limits or ledger of its own. The workers' metrics meet in
``PROMETHEUS_MULTIPROC_DIR`` and their breakers, limits and counters in ``shared_state``, as before.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from functools import partial

import trio

from occ.observe.logs import get_logger

__all__ = ["STOP_MARGIN_S", "run_workers", "worker_main"]

log = get_logger("occ.workers")

#: after a worker's own shutdown budget (grace, flush, hypercorn's backstop), how long the parent still
#: waits before it kills the worker
STOP_MARGIN_S = 5.0
#: a worker that served this long and then died is replaced at once; one that dies sooner waits this long
#: first, so a worker that keeps crashing does not spin
RESPAWN_PAUSE_S = 1.0
#: after SIGKILL, how long the parent still waits for the kernel to reap a worker: milliseconds, unless the
#: process is stuck in the kernel (a dead NFS mount), where no wait would help; the parent then goes on
KILLED_REAP_S = 2.0

_ENV_FDS = "OCC_WORKER_FDS"
_ENV_READY = "OCC_WORKER_READY_FD"
_ENV_LIFELINE = "OCC_WORKER_LIFELINE_FD"
_ENV_INDEX = "OCC_WORKER_INDEX"
_ENV_DEBUG = "OCC_WORKER_DEBUG"


class _Failed(Exception):
    """A worker could not start: the server stops (exit status 1)."""


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class _Supervisor:
    def __init__(self, sockets: Sequence[socket.socket], count: int, stop_budget_s: float,
                 env: dict[str, str], debug: bool) -> None:
        self.sockets = list(sockets)
        self.count = count
        self.stop_budget_s = stop_budget_s
        self.env = env
        self.debug = debug
        self.stopping = False
        self.processes: dict[int, trio.Process] = {}
        self.failed: str | None = None
        self.unclean: list[str] = []
        self._keepers: trio.CancelScope | None = None
        self._restarting: set[int] = set()  # workers told to stop by a SIGHUP, to be replaced (once)
        self._restart_running = False  # a SIGHUP's restart is under way
        self._ready: dict[int, bool] = {}  # index -> its current process said it serves
        self._readiness = trio.Event()  # set (and replaced) whenever a worker becomes ready
        # held while a worker is started: Popen passes the listening sockets on from a thread, so they are
        # closed (_close_sockets) only between two starts
        self._spawning = trio.Lock()
        self._tasks: trio.Nursery | None = None

    async def run(self) -> int:
        async with trio.open_nursery() as outer:
            self._tasks = outer
            signals: trio.CancelScope = await outer.start(self._signals)
            async with trio.open_nursery() as keepers:
                self._keepers = keepers.cancel_scope
                for index in range(self.count):
                    keepers.start_soon(self._keep, index)
            signals.cancel()  # a _close_sockets still waiting for the lock gets it now: nothing is starting
        if self.failed is not None:
            log.error("%s", self.failed)
            return 1
        if self.unclean:
            log.warning("stopped, but not cleanly: %s", "; ".join(self.unclean))
            return 1
        return 0

    async def _signals(self, task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED) -> None:
        hup = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()
        with trio.CancelScope() as scope, trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, *hup) as signals:
            task_status.started(scope)
            async with trio.open_nursery() as nursery:
                async for signum in signals:
                    if hup and signum == signal.SIGHUP:
                        if not self.stopping and not self._restart_running:
                            nursery.start_soon(self._restart_all)
                        continue
                    self._on_stop_signal(signum)

    def _on_stop_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.stopping:
            log.info("%s: still stopping, %d worker(s) finishing their requests", name, len(self.processes))
            return
        log.info("%s: stopping %d workers (each lets its streams finish within shutdown_grace_ms)", name,
                 len(self.processes))
        self._stop_all()

    async def _restart_all(self) -> None:
        """SIGHUP: replace the workers one at a time (new code, a changed environment), each stopping as on
        SIGTERM; the next is stopped once its predecessor's replacement serves, so the port always has
        workers. Bounded: a replacement that is not ready within the stop budget and a minute ends the wait."""
        log.info("SIGHUP: restarting the %d workers one at a time", len(self.processes))
        self._restart_running = True
        try:
            for index in sorted(self.processes):
                process = self.processes.get(index)
                if self.stopping or process is None:
                    break
                self._restarting.add(index)
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(self.stop_budget_s + 60):
                    while not self.stopping and (self.processes.get(index) is process or not self._ready.get(index)):
                        await self._readiness.wait()
        finally:
            self._restarting.clear()
            self._restart_running = False

    def _stop_all(self) -> None:
        """Stop accepting here, tell every worker to stop, and set the backstop for them all."""
        if self.stopping:
            return
        self.stopping = True
        if self._tasks is not None:
            self._tasks.start_soon(self._close_sockets)
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        if self._keepers is not None:  # BACKSTOP: a worker still there after its whole budget is killed
            self._keepers.deadline = trio.current_time() + self.stop_budget_s

    async def _close_sockets(self) -> None:
        """The parent's copy of the listening sockets; each worker closes its own as it stops accepting.
        Closed once no worker is being started: ``Popen`` passes them on from a thread, and a socket closed
        under it would leave the new worker without it (or with another file on its number). The wait is
        one ``Popen`` at most: a start that begins after the stop sees ``stopping`` and starts nothing."""
        async with self._spawning:
            for sock in self.sockets:
                sock.close()

    async def _keep(self, index: int) -> None:
        """Worker ``index`` for the life of the server: started, watched, replaced if it dies serving."""
        while not self.stopping:
            started_at = trio.current_time()
            try:
                outcome = await self._one(index)
            except _Failed as exc:
                self.failed = str(exc)
                self._stop_all()
                return
            if outcome is None:  # the stop came before it could start: nothing was started
                return
            returncode, ready = outcome
            if self.stopping:
                # our SIGTERM, to a worker still starting (before its handler): it had served nothing
                if returncode != 0 and not (returncode == -signal.SIGTERM and not ready):
                    self.unclean.append(f"worker {index} ended with {_describe(returncode)}")
                return
            if index in self._restarting:  # only the process told to stop: a replacement that dies is no restart
                self._restarting.discard(index)
                log.info("worker %d stopped (%s) for the restart; starting its replacement", index,
                         _describe(returncode))
                continue
            if not ready:
                self.failed = (f"worker {index} exited with {_describe(returncode)} before it could serve "
                               "(its error is above); stopping")
                self._stop_all()
                return
            log.error("worker %d exited with %s while serving; starting another in its place", index,
                      _describe(returncode))
            if trio.current_time() - started_at < 10:
                await trio.sleep(RESPAWN_PAUSE_S)

    async def _one(self, index: int) -> tuple[int, bool] | None:
        """Start worker ``index`` and wait for it to end: its exit status, and whether it became ready
        (``None``: the server was stopping before it could start, and nothing was started)."""
        async with self._spawning:  # the sockets stay open until Popen has passed them on
            if self.stopping:
                return None
            ready_read, ready_write = os.pipe()
            life_read, life_write = os.pipe()
            fds = [sock.fileno() for sock in self.sockets]
            env = {**self.env, _ENV_FDS: ",".join(map(str, fds)), _ENV_READY: str(ready_write),
                   _ENV_LIFELINE: str(life_read), _ENV_INDEX: str(index)}
            if self.debug:
                env[_ENV_DEBUG] = "1"
            try:
                process = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "occ.server.workers"], env=env, pass_fds=(*fds, ready_write, life_read),
                    stdin=subprocess.DEVNULL)
            except OSError as exc:
                for fd in (ready_read, ready_write, life_read, life_write):
                    os.close(fd)
                raise _Failed(f"cannot start worker {index}: {exc}") from exc
            os.close(ready_write)
            os.close(life_read)
        self.processes[index] = process
        self._ready[index] = False
        self._wake()
        if self.stopping:  # the signal came while it started
            process.send_signal(signal.SIGTERM)
        ready = False
        stream = trio.lowlevel.FdStream(ready_read)
        try:
            async with trio.open_nursery() as nursery:

                async def readiness() -> None:
                    nonlocal ready
                    ready = bool(await stream.receive_some(1))
                    if self.processes.get(index) is process:
                        self._ready[index] = ready
                        self._wake()
                        self._say_if_all_serving()

                nursery.start_soon(readiness)
                await process.wait()
                nursery.cancel_scope.cancel()
        except* trio.Cancelled:  # BACKSTOP (it reaches us through the nursery, as an exception group)
            log.warning("worker %d (pid %d) did not stop within %gs; killed", index, process.pid,
                        self.stop_budget_s)
            self.unclean.append(f"worker {index} killed after {self.stop_budget_s:g}s")
            process.kill()
            raise
        finally:
            # Ended the ordinary ways, the worker has exited or been killed: the wait below is immediate.
            # Any other way out (an error in the supervisor itself) leaves it running: the closed lifeline
            # tells it to stop as on SIGTERM, and REAP DEADLINE gives it the stop budget, then SIGKILL.
            os.close(life_write)
            with trio.move_on_after(self.stop_budget_s, shield=True) as reaping:  # REAP DEADLINE
                await process.wait()
            if reaping.cancelled_caught:
                log.warning("worker %d (pid %d) did not exit within %gs of its teardown; killed", index,
                            process.pid, self.stop_budget_s)
                process.kill()
                with trio.move_on_after(KILLED_REAP_S, shield=True):
                    await process.wait()
            with trio.CancelScope(shield=True):
                await stream.aclose()  # closes at once; the shield keeps its checkpoint from skipping the rest
            self.processes.pop(index, None)
            self._ready.pop(index, None)
            self._wake()
        return process.returncode, ready

    def _say_if_all_serving(self) -> None:
        """The line that says the server is whole: every worker serves (at start; after a replacement).
        Tests and service scripts wait on it instead of watching processes."""
        if self.stopping or len(self._ready) < self.count or not all(self._ready.values()):
            return
        pids = ", ".join(str(self.processes[i].pid) for i in sorted(self.processes))
        log.info("all %d workers serving (pids %s)", self.count, pids)

    def _wake(self) -> None:
        self._readiness.set()
        self._readiness = trio.Event()


def run_workers(sockets: Sequence[socket.socket], count: int, stop_budget_s: float, *,
                env: dict[str, str] | None = None, debug: bool = False) -> int:
    """Serve ``sockets`` (bound and listening) with ``count`` worker processes until SIGTERM/SIGINT; the
    exit status (0: every worker stopped cleanly). ``stop_budget_s``: how long a stopping worker may take
    before it is killed."""
    supervisor = _Supervisor(sockets, count, stop_budget_s + STOP_MARGIN_S, dict(os.environ if env is None else env),
                             debug)
    return trio.run(supervisor.run)



# -- the worker process ---------------------------------------------------------------------------------


def _metrics_know_their_pid() -> None:
    """prometheus_client's multiprocess values ask ``os.getpid()`` on every update, in case the process
    forked since (a forked child must not write its parent's file): half of each update's cost (1.0 ->
    0.54 us an ``inc``, ~15 updates a request; benchmarks/RESULTS.md). A worker is its own program
    (``python -m occ.server.workers``, started by exec, never by fork) and forks no Python that updates
    metrics, so its pid is known once, before any metric exists."""
    from prometheus_client import values

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        pid = os.getpid()
        values.ValueClass = values.MultiProcessValue(process_identifier=lambda: pid)


def worker_main() -> int:
    """One worker: the app on the inherited sockets until SIGTERM or the parent's end of the lifeline."""
    _metrics_know_their_pid()  # first: a metric made before it would share this pid's file with another writer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's to handle
    early: list[int] = []  # a SIGTERM before trio listens for it: stop as soon as serving started
    signal.signal(signal.SIGTERM, lambda signum, frame: early.append(signum))
    from hypercorn.config import Sockets

    from occ.config.parse import load_config
    from occ.observe.logs import configure_logging
    from occ.server.serve import create_app, hypercorn_config, serve_until_stopped

    fds = [int(fd) for fd in os.environ[_ENV_FDS].split(",") if fd]
    ready_fd, lifeline_fd = int(os.environ[_ENV_READY]), int(os.environ[_ENV_LIFELINE])
    config = load_config()
    configure_logging(config, debug=os.environ.get(_ENV_DEBUG) == "1")
    app = create_app(config, insecure_public=os.environ.get("OCC_INSECURE_PUBLIC", "") in ("1", "true", "yes"))
    host = os.environ.get("OCC_BIND_HOST") or config.host
    app.state.guard.learn_bind(host, config)
    socks = [socket.socket(fileno=fd) for fd in fds]
    hc = hypercorn_config(config, host=host, port=0)
    sockets = Sockets(secure_sockets=[], insecure_sockets=socks, quic_sockets=[])

    async def run() -> None:
        stop = trio.Event()
        with trio.open_signal_receiver(signal.SIGTERM) as signals:  # open for the whole life: a second
            async with trio.open_nursery() as watchers:             # SIGTERM must not kill a stopping worker

                async def on_signal() -> None:
                    async for _ in signals:
                        stop.set()

                async def on_orphaned() -> None:
                    lifeline = trio.lowlevel.FdStream(lifeline_fd)
                    while await lifeline.receive_some(64):
                        pass
                    if not stop.is_set():
                        log.warning("the parent occ process is gone: this worker stops")
                    stop.set()

                if early:
                    stop.set()
                watchers.start_soon(on_signal)
                watchers.start_soon(on_orphaned)
                async with trio.open_nursery() as serving:  # returns after the graceful shutdown
                    await serving.start(partial(serve_until_stopped, app, hc, sockets, stop.wait))
                    with open(ready_fd, "wb", buffering=0) as ready:
                        ready.write(b"r")
                watchers.cancel_scope.cancel()

    trio.run(run)
    return 0


if __name__ == "__main__":
    from occ.observe.logs import install_scrubbing_hooks

    install_scrubbing_hooks()  # a worker's uncaught traceback passes the scrubber, as the CLI's does
    raise SystemExit(worker_main())

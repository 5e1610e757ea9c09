"""A real Redis (or Valkey) for the shared-state tests: its own process on a free loopback port.

``redis-server`` (or ``valkey-server``) comes from the distribution's packages (``.ci/run`` installs it);
without one the tests that need it are skipped with the reason. Nothing is saved to disk. A test may
stop the server and start it again on the same port (:meth:`RedisServer.restart`), and may put
:class:`SlowProxy` in front of it to make it answer late.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time

import attrs
import trio

__all__ = ["RedisServer", "SlowProxy", "redis_binary", "start_redis"]


def redis_binary() -> str | None:
    return shutil.which("redis-server") or shutil.which("valkey-server")


def _die_with_parent() -> None:
    """On Linux, the server is killed if the test run that started it dies without stopping it."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@attrs.define
class RedisServer:
    binary: str
    port: int
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--protected-mode", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited with {self.process.returncode}")
            if self._ready():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port} within 10 s")

    def _ready(self) -> bool:
        if not self.password:
            return _ping(self.port)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                return b"+PONG" in s.recv(64)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_redis(password: str | None = None) -> RedisServer:
    """A started server on a free port (a port taken in between is retried)."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("no redis-server or valkey-server on PATH")
    for _ in range(5):
        server = RedisServer(binary, _free_port(), password)
        try:
            server.start()
            return server
        except RuntimeError:
            continue
    raise RuntimeError("could not start a redis server on a free port")


@attrs.define
class SlowProxy:
    """A TCP proxy of ours in front of the server that holds every reply ``delay_s`` (0: none) before
    passing it on: a server that answers slowly, without touching the server."""

    target_port: int
    delay_s: float = 0.0
    port: int = 0

    async def serve(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()
            return
        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(self._copy, client, upstream, False, nursery.cancel_scope)
            nursery.start_soon(self._copy, upstream, client, True, nursery.cancel_scope)

    async def _copy(self, source: trio.SocketStream, sink: trio.SocketStream, slow: bool,
                    scope: trio.CancelScope) -> None:
        try:
            while True:
                data = await source.receive_some(65536)
                if not data:
                    break
                if slow and self.delay_s:
                    await trio.sleep(self.delay_s)
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

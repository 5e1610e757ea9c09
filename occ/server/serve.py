"""Serving occ on hypercorn's trio worker, standalone or inside a caller's nursery.

The worker is hypercorn's own with occ's connection class (:mod:`occ.server.hypercorn_worker`: a write the
socket takes whole is made at once, without three passes of the scheduler).

occ opens its listening sockets itself, before handing them to hypercorn, so a port in use or an
address this machine does not have is one :class:`BindFailed` that names the port, says who holds
it and what to do, instead of an exception group from inside hypercorn's nursery.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from occ.config.model import Config
from occ.core.errors import OccError
from occ.observe.logs import configure_logging, get_logger
from occ.server.app import OccApp, create_app
from occ.server.hypercorn_worker import worker_serve

__all__ = ["SHUTDOWN_FLUSH_S", "BindFailed", "create_app", "describe_bind_failure", "hypercorn_config", "open_sockets",
           "serve", "serve_until_stopped"]

log = get_logger("occ")

#: after the grace, how long the requests occ ends get to write their error event
SHUTDOWN_FLUSH_S = 1.0

#: claude-code-router's default port is occ's too: the most likely other holder of 3456.
CCR_DEFAULT_PORT = 3456


class BindFailed(OccError):
    """occ could not listen where it was asked to. The message is one line: cause, then fix."""


class _HypercornConfig(HypercornConfig):
    """hypercorn's settings plus ``TCP_USER_TIMEOUT`` on the listening sockets (accepted connections
    inherit it): hypercorn shields its socket writes, so a client that stays connected but stops reading
    (a zero receive window) would hold its connection, and the request's task, for ever. The kernel aborts
    such a connection after ``client_write_timeout_ms`` of unacknowledged or unsendable data."""

    tcp_user_timeout_ms: int | None = None

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        option = getattr(socket, "TCP_USER_TIMEOUT", None)  # Linux only
        if option is not None and self.tcp_user_timeout_ms:
            for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, option, self.tcp_user_timeout_ms)
        return sockets


def hypercorn_config(config: Config, *, host: str | None = None, port: int | None = None,
                     workers: int = 1) -> HypercornConfig:
    """hypercorn's settings built once from occ's frozen config.

    No server-side timeout may cut a long stream: hypercorn has no response timeout, its
    keep-alive timeout only applies between requests, and the access log is off (occ writes
    its own line per request).
    """
    hc = _HypercornConfig()
    hc.tcp_user_timeout_ms = int(config.client_write_timeout_s * 1000)
    hc.bind = [f"{host or config.host}:{config.port if port is None else port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    # occ's own graceful shutdown (serve_until_stopped) ends what is left after shutdown_grace_ms with an
    # error event, then needs a moment to write it; hypercorn's hard cut comes only after that
    hc.graceful_timeout = config.shutdown_grace_s + SHUTDOWN_FLUSH_S + 1
    hc.keep_alive_timeout = 75
    hc.h11_max_incomplete_size = 64 * 1024
    hc.workers = workers
    return hc


def open_sockets(hc: HypercornConfig) -> Sockets:
    """hypercorn's listening sockets, bound and listening.

    Raises:
        OSError: the bind or listen failed (pass it to :func:`describe_bind_failure`).
    """
    sockets = hc.create_sockets()
    try:
        for sock in sockets.insecure_sockets:
            sock.listen(hc.backlog)
    except OSError:
        for sock in sockets.insecure_sockets:
            sock.close()
        raise
    return sockets


def describe_bind_failure(exc: OSError, host: str, port: int) -> str:
    """One line for a failed bind: what happened, and what to do about it.

    For a port in use it asks the holder for ``/health`` (one second at most), because whether
    another occ answers or something else (claude-code-router also defaults to 3456) decides
    the fix. Blocking: call it from a thread inside trio.
    """
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return (f"cannot listen on {where}: {host!r} is not a known host name ({exc.strerror}); "
                "use an address such as 127.0.0.1 (occ serve --host 127.0.0.1)")
    if exc.errno == errno.EADDRINUSE:
        holder, kind = probe_holder(host, port)
        stop = "use that one, or stop it" if kind == "occ" else "stop that process"
        return (f"port {port} is already in use on {host}: {holder}. {stop.capitalize()}, or run occ on "
                f"another port: occ serve --port {port + 1} (or set \"port\" in the config)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"not allowed to listen on {where} ({exc.strerror}): ports below 1024 need privileges; "
                f"use a higher port (occ serve --port 3456)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot listen on {where}: {host} is not an address of this machine ({exc.strerror}); "
                "bind 127.0.0.1, 0.0.0.0 or one of this machine's own addresses (occ serve --host ...)")
    return f"cannot listen on {where}: {exc.strerror or exc}"


def probe_holder(host: str, port: int, timeout_s: float = 1.0) -> tuple[str, str]:
    """Who holds ``host:port``, as a phrase, and which kind: ``"occ"`` (its ``/health`` names occ and
    its version), ``"other"`` (some other HTTP server) or ``"silent"`` (nothing answers HTTP).
    ``occ serve`` uses it for a port in use, ``occ code`` before handing Claude Code to the port."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    netloc = f"[{target}]:{port}" if ":" in target else f"{target}:{port}"
    url = f"http://{netloc}/health"
    other = " (claude-code-router also listens on 3456 by default)" if port == CCR_DEFAULT_PORT else ""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status, server, raw = response.status, response.headers.get("server"), response.read(65536)
    except urllib.error.HTTPError as exc:
        status, server, raw = exc.code, exc.headers.get("server"), b""
    except (urllib.error.URLError, OSError, ValueError):
        return f"the process holding it does not answer HTTP on {url}{other}", "silent"
    try:
        health = json.loads(raw)
    except ValueError:
        health = None
    if isinstance(health, dict) and health.get("service") == "occ" and isinstance(health.get("version"), str):
        return (f"another occ (version {health.get('version')}, config {health.get('config')}) is already "
                f"serving there (ANTHROPIC_BASE_URL=http://{netloc})"), "occ"
    served_by = f", server {server!r}" if server else ""
    return f"something that is not occ answers there (GET /health: HTTP {status}{served_by}){other}", "other"


async def serve(config: Config, *, host: str | None = None, port: int | None = None,
                app: OccApp | None = None, shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve occ until cancelled (or ``shutdown_trigger`` returns, then gracefully: see
    :func:`serve_until_stopped`).

    Shaped like ``hypercorn.trio.serve``: ``task_status.started(binds)`` reports the bound
    addresses (``["http://127.0.0.1:54321"]``), so ``await nursery.start(occ.serve, config)``
    works with ``port=0``.

    Raises:
        BindFailed: the address cannot be listened on (port in use, not this machine's address...).
    """
    configure_logging(config, quiet_if_configured=True)
    app = app or create_app(config)
    app.state.guard.learn_bind(host or config.host, config)  # a public bind without keys: 403s, logged
    hc = hypercorn_config(config, host=host, port=port)
    bind_host, bind_port = host or config.host, config.port if port is None else port
    try:
        sockets = open_sockets(hc)
    except OSError as exc:
        message = await trio.to_thread.run_sync(describe_bind_failure, exc, bind_host, bind_port)
        raise BindFailed(message) from exc
    if shutdown_trigger is None:
        await worker_serve(wrap_app(app, hc.wsgi_max_body_size, None), hc, sockets=sockets, task_status=task_status)
    else:
        await serve_until_stopped(app, hc, sockets, shutdown_trigger, task_status=task_status)


async def serve_until_stopped(app: OccApp, hc: HypercornConfig, sockets: Sockets,
                              shutdown_trigger: Callable[[], Awaitable[Any]], *,
                              task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """hypercorn on ``sockets`` until ``shutdown_trigger`` returns, then occ's graceful shutdown: hypercorn
    stops accepting; requests in flight get ``shutdown_grace_ms`` to finish; each one still running then ends
    with an ``overloaded_error`` ("server shutting down": an ``error`` event, or a 529 if nothing was sent
    yet) and is logged with ``outcome=server_shutdown``; hypercorn closes the connections and returns."""
    stopping = trio.Event()

    async def trigger() -> None:
        await shutdown_trigger()
        stopping.set()

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(worker_serve, wrap_app(app, hc.wsgi_max_body_size, None), hc,
                                            sockets=sockets, shutdown_trigger=trigger))
        task_status.started(binds)
        await stopping.wait()
        grace_s = app.state.config.shutdown_grace_s
        log.info("stopping: no new connections, in-flight requests have %.0fs to finish", grace_s)
        ended = await app.state.finish_requests(grace_s, flush_s=SHUTDOWN_FLUSH_S)
        if ended:
            log.warning("shutdown: %d request(s) still running after %gs (shutdown_grace_ms) were ended with "
                        "overloaded_error", ended, grace_s)
        # hypercorn returns once every connection has closed; its own graceful_timeout is the backstop
        nursery.cancel_scope.deadline = trio.current_time() + SHUTDOWN_FLUSH_S + 2

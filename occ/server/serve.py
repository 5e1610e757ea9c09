"""Serving occ on hypercorn's trio worker, standalone or inside a caller's nursery."""

from __future__ import annotations

import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from occ.config.model import Config
from occ.observe.logs import configure_logging
from occ.server.app import OccApp, create_app

__all__ = ["create_app", "hypercorn_config", "serve"]



def hypercorn_config(config: Config, *, host: str | None = None, port: int | None = None,
                     workers: int = 1) -> HypercornConfig:
    """hypercorn's settings built once from occ's frozen config.

    No server-side timeout may cut a long stream: hypercorn has no response timeout, its
    keep-alive timeout only applies between requests, and the access log is off (occ writes
    its own line per request).
    """
    hc = HypercornConfig()
    hc.bind = [f"{host or config.host}:{config.port if port is None else port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = config.shutdown_grace_s
    hc.keep_alive_timeout = 75
    hc.h11_max_incomplete_size = 64 * 1024
    hc.workers = workers
    return hc


async def serve(config: Config, *, host: str | None = None, port: int | None = None,
                app: OccApp | None = None, shutdown_trigger: Any = None,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve occ until cancelled (or ``shutdown_trigger`` returns).

    Shaped like ``hypercorn.trio.serve``: ``task_status.started(binds)`` reports the bound
    addresses (``["http://127.0.0.1:54321"]``), so ``await nursery.start(occ.serve, config)``
    works with ``port=0``.
    """
    configure_logging(config, quiet_if_configured=True)
    app = app or create_app(config)
    kwargs: dict[str, Any] = {}
    if shutdown_trigger is not None:
        kwargs["shutdown_trigger"] = shutdown_trigger
    await hypercorn_serve(app, hypercorn_config(config, host=host, port=port), task_status=task_status,
                          **kwargs)

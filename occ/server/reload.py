"""Hot reload: a changed config file is parsed, validated and swapped in atomically.

* Requests already running keep the snapshot they started with; new requests and new attempts see
  the new one (timeouts included).
* An invalid file leaves the old config in place, and the log says exactly why (every problem).
* Editors that save by rename replace the file's inode: the watcher compares (mtime, size, inode)
  of the *path*, so a rename-save is just another change. Polling the path's stat once a second is
  cheap, portable and needs no extra dependency; a burst of writes is debounced.
* SIGHUP reloads at once, whether or not ``hot_reload`` is on.
"""

from __future__ import annotations

import os
import signal
import threading

import trio

from occ.config.parse import load_config
from occ.core.errors import ConfigError
from occ.observe.logs import configure_logging, get_logger
from occ.server.state import ServerState

__all__ = ["reload_now", "watch_config"]

log = get_logger("occ.server.reload")

POLL_INTERVAL_S = 1.0
DEBOUNCE_S = 0.3


def _fingerprint(path: str) -> tuple[float, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


def reload_now(state: ServerState) -> bool:
    """Load ``state.config_path`` again; swap it in if valid. Returns whether it was swapped."""
    path = state.config_path
    if not path or not os.path.isfile(path):
        log.warning("reload skipped: no config file to reload (%s)", path or "embedded default")
        return False
    try:
        config = load_config(path)
    except ConfigError as exc:
        log.error("config reload failed, keeping the previous config: %s", "; ".join(exc.problems))
        return False
    except Exception:  # occ's own bug in the loader: it must not take the serving process down with it
        log.exception("config reload failed (an error in occ, please report it), keeping the previous config")
        return False
    for warning in config.warnings:
        log.warning("config: %s", warning)
    state.swap_config(config)
    configure_logging(config, quiet_if_configured=True)  # level and format follow the file
    log.info("config reloaded from %s", path)
    return True


async def watch_config(state: ServerState, *, poll_interval_s: float = POLL_INTERVAL_S) -> None:
    """Run for the life of the server: SIGHUP always, file polling while ``hot_reload`` is on."""
    async with trio.open_nursery() as nursery:
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            nursery.start_soon(_on_sighup, state)
        await _poll(state, poll_interval_s)


async def _on_sighup(state: ServerState) -> None:
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            log.info("SIGHUP: reloading config")
            reload_now(state)


async def _poll(state: ServerState, poll_interval_s: float) -> None:
    path = state.config_path
    last = _fingerprint(path) if path else None
    while True:
        await trio.sleep(poll_interval_s)
        if not state.config.hot_reload or not state.config_path:
            continue
        path = state.config_path
        current = _fingerprint(path)
        if current is None or current == last:
            continue
        await trio.sleep(DEBOUNCE_S)
        settled = _fingerprint(path)
        if settled != current:
            continue
        last = settled
        reload_now(state)

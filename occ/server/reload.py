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
import time

import trio

from occ.config.parse import load_config
from occ.core.errors import ConfigError
from occ.observe.logs import configure_logging, get_logger
from occ.server.state import ServerState

__all__ = ["RELOAD_PROBLEM", "reload_now", "watch_config"]

log = get_logger("occ.server.reload")

POLL_INTERVAL_S = 1.0
DEBOUNCE_S = 0.3


def _fingerprint(path: str) -> tuple[float, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


#: The key of ``ServerState.problems`` for a reload that failed (shown until one succeeds).
RELOAD_PROBLEM = "config_reload"


def _failed(state: ServerState, why: str) -> bool:
    loaded = time.strftime("%H:%M:%S", time.localtime(state.config_loaded_at))
    state.problems[RELOAD_PROBLEM] = (f"config reload failed at {time.strftime('%H:%M:%S')}, still running the "
                                      f"config loaded at {loaded}: {why}")
    return False


def reload_now(state: ServerState) -> bool:
    """Load ``state.config_path`` again; swap it in if valid. Returns whether it was swapped. A failure
    keeps the old config and is shown (``/health``, ``/status``, ``/ui``) until a reload succeeds."""
    path = state.config_path
    if not path:
        log.warning("reload skipped: no config file to reload (embedded default)")
        return False
    if not os.path.isfile(path):
        log.error("config reload failed, keeping the previous config: %s does not exist", path)
        return _failed(state, f"{path} does not exist")
    try:
        config = load_config(path)
    except ConfigError as exc:
        log.error("config reload failed, keeping the previous config: %s", "; ".join(exc.problems))
        return _failed(state, "; ".join(exc.problems))
    except Exception as exc:  # occ's own bug in the loader: it must not take the serving process down with it
        log.exception("config reload failed (an error in occ, please report it), keeping the previous config")
        return _failed(state, f"an error in occ ({type(exc).__name__}), see the log")
    for warning in config.warnings:
        log.warning("config: %s", warning)
    state.swap_config(config)
    state.problems.pop(RELOAD_PROBLEM, None)
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
        if current is None and last is not None:  # deleted (or mid-rename): say so if it stays gone
            await trio.sleep(DEBOUNCE_S)
            if _fingerprint(path) is None:
                last = None
                reload_now(state)  # keeps the config, records why
            continue
        if current is None or current == last:
            continue
        await trio.sleep(DEBOUNCE_S)
        settled = _fingerprint(path)
        if settled != current:
            continue
        last = settled
        reload_now(state)

"""Hot reload: valid changes swap in atomically, invalid ones leave the old config (and say why),
rename-saves are seen, SIGHUP reloads at once."""

from __future__ import annotations

import json
import logging
import os
import signal

import trio

from occ.config.parse import load_config
from occ.server.reload import watch_config
from occ.server.state import ServerState


def write(path, model_id: str, hot: bool = True) -> None:
    path.write_text(json.dumps({"hot_reload": hot, "models": {"default": {"model_id": model_id}}}))


async def wait_model(state: ServerState, model_id: str) -> None:
    with trio.fail_after(5):
        while state.config.models["default"].model_id != model_id:
            await trio.sleep(0.02)


async def test_valid_change_swaps_invalid_keeps_old_rename_save_seen(tmp_path, nursery, caplog):
    caplog.set_level(logging.INFO)
    path = tmp_path / "config.json"
    write(path, "first")
    state = ServerState(config=load_config(str(path), env={}), config_path=str(path))
    snapshot = state.config
    nursery.start_soon(lambda: watch_config(state, poll_interval_s=0.05))
    await trio.sleep(0.1)

    write(path, "second")
    await wait_model(state, "second")
    assert snapshot.models["default"].model_id == "first"  # a running request's snapshot is untouched

    path.write_text('{"models": {"default": {"provider": "nowhere", "model_id": "x"}}}')
    with trio.fail_after(5):
        while "keeping the previous config" not in caplog.text:
            await trio.sleep(0.02)
    assert 'unknown provider "nowhere"' in caplog.text
    assert state.config.models["default"].model_id == "second"

    tmp = tmp_path / "config.json.tmp"
    write(tmp, "third")
    os.replace(tmp, path)  # how editors save: write elsewhere, rename over
    await wait_model(state, "third")


async def test_sighup_reloads_even_without_hot_reload(tmp_path, nursery):
    path = tmp_path / "config.json"
    write(path, "one", hot=False)
    state = ServerState(config=load_config(str(path), env={}), config_path=str(path))
    nursery.start_soon(lambda: watch_config(state, poll_interval_s=0.05))
    await trio.sleep(0.1)
    write(path, "two", hot=False)
    await trio.sleep(0.2)
    assert state.config.models["default"].model_id == "one"
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_model(state, "two")


def test_a_loader_bug_during_reload_keeps_the_old_config(tmp_path, monkeypatch, caplog):
    """The watcher runs in the server's nursery: an unexpected exception out of it would stop serving."""
    from occ.server import reload

    path = tmp_path / "config.json"
    write(path, "first")
    state = ServerState(config=load_config(str(path), env={}), config_path=str(path))

    def broken(path: str) -> None:
        raise RuntimeError("a bug in the loader")

    monkeypatch.setattr(reload, "load_config", broken)
    assert reload.reload_now(state) is False
    assert state.config.models["default"].model_id == "first"
    assert "keeping the previous config" in caplog.text and "a bug in the loader" in caplog.text

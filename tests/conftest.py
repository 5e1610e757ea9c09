"""Shared fixtures: the real occ on hypercorn, a fake upstream, and the official SDK as client.

Everything listens on 127.0.0.1 port 0 and is started with ``await nursery.start(...)`` inside the
test's nursery, so it stops with the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, settings
from support.fake_upstream import FakeUpstream, start_fake
from support.stack import TEST_KEY, fake_provider, make_config, sdk  # noqa: F401  (re-exported for tests)

import occ
from occ.config.model import Config

# Property tests check what the code does, never how fast: Hypothesis' default 200 ms deadline per
# example and its too_slow health check are timing asserts, and on a machine shared by several
# processes an example now and then takes longer (the scrub-path tests failed that way). Off for all.
settings.register_profile("occ", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("occ")


@pytest.fixture(autouse=True)
def private_data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test's usage ledger (on by default) goes to a fresh XDG data dir, never the user's, and
    its fallback files (a ledger that cannot be written) to a fresh XDG state dir."""
    home = str(tmp_path_factory.mktemp("xdg-data"))
    monkeypatch.setenv("XDG_DATA_HOME", home)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    return home


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeUpstream:
    return await start_fake(nursery)


@pytest.fixture
def start_occ(nursery: trio.Nursery) -> Callable[[Config], Any]:
    """``url = await start_occ(config)``: the real server, on hypercorn, on an ephemeral port."""

    async def start(config: Config, app: Any = None) -> str:
        binds = await nursery.start(lambda task_status: occ.serve(config, app=app, task_status=task_status))
        return binds[0]

    return start


@pytest.fixture(scope="session")
def redis_server():
    """One real Redis for the session (its own process, free loopback port); tests keep apart by key
    prefix. Skipped, with the reason, when no server binary is installed."""
    from support.redis_server import redis_binary, start_redis

    if redis_binary() is None:
        pytest.skip("no redis-server or valkey-server on PATH (apt-get install redis-server)")
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def own_redis():
    """A Redis of this test's own, which it may stop and start again."""
    from support.redis_server import redis_binary, start_redis

    if redis_binary() is None:
        pytest.skip("no redis-server or valkey-server on PATH (apt-get install redis-server)")
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def key_prefix() -> str:
    import uuid

    return f"occtest-{uuid.uuid4().hex[:10]}"

"""Prices that ship, end to end: a preset model answered through real occ records the cost of the
catalog's price, cache reads at the cache price, streamed or not; a config figure overrides the
catalog's; ``occ prices`` says where every figure came from and names a model without one."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
import trio
from support.fake_upstream import Reply
from support.sdk_answers import Answer, chat_body, chat_stream
from support.stack import ROOT, fake_provider, sdk

from occ.config.parse import parse_config
from occ.observe.ledger import Ledger

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "price this"}]


def _config(fake, path: str, prices: dict | None = None):
    return parse_config({
        "host": "127.0.0.1", "port": 0,
        # the preset's own name: its models are the catalog's; only the address is the fake's
        "providers": {"opencode-go": fake_provider(fake)},
        "models": {"default": {"provider": "opencode-go", "model_id": "kimi-k2.6"}},
        "usage": {"path": path, "flush_interval_ms": 50},
        **({"prices": prices} if prices else {}),
    }, env={}, source="test")


async def _costs(client, path: str, n: int) -> list[tuple[int, int, int, float | None]]:
    with trio.fail_after(30):
        while Ledger(path).count() < n:
            await trio.sleep(0.05)
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT input_tokens, output_tokens, cache_read_tokens, cost_usd FROM requests "
                                 "ORDER BY ts"))
    finally:
        conn.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_preset_model_costs_the_catalog_price_with_cache_reads_at_the_cache_price(fake, start_occ, tmp_path,
                                                                                       stream):
    answer = Answer(text="priced", usage=(10_000, 500), cached=8_000, model="kimi-k2.6")
    if stream:
        fake.queue(CHAT, Reply(headers={"content-type": "text/event-stream"}, chunks=[chat_stream(answer)]))
    else:
        fake.queue(CHAT, Reply(headers={"content-type": "application/json"}, body=chat_body(answer).encode()))
    path = str(tmp_path / "usage.sqlite")
    client = sdk(await start_occ(_config(fake, path)))
    with trio.fail_after(30):
        if stream:
            async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=USER) as events:
                await events.get_final_message()
        else:
            await client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=USER)
    [(inputs, outputs, cache_read, cost)] = await _costs(client, path, 1)
    assert (2_000, 500, 8_000) == (inputs, outputs, cache_read)
    # providers/opencode-go/models/kimi-k2.6.toml: input 0.95, output 4.0, cache_read 0.16 per million
    assert cost == pytest.approx((2_000 * 0.95 + 500 * 4.0 + 8_000 * 0.16) / 1e6)


async def test_a_config_price_overrides_the_catalog(fake, start_occ, tmp_path):
    answer = Answer(text="priced", usage=(1_000, 100), cached=0, model="kimi-k2.6")
    fake.queue(CHAT, Reply(headers={"content-type": "application/json"}, body=chat_body(answer).encode()))
    path = str(tmp_path / "usage.sqlite")
    client = sdk(await start_occ(_config(fake, path, {"opencode-go/kimi-k2.6": {"input": 2, "output": 10}})))
    with trio.fail_after(30):
        await client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=USER)
    [(_, _, _, cost)] = await _costs(client, path, 1)
    assert cost == pytest.approx((1_000 * 2 + 100 * 10) / 1e6)


def _occ(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OCC_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "occ.cli", *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


def test_occ_prices_names_the_source_of_every_figure_and_the_unpriced(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "api_key": "sk-test-0123456789abcdef",
        "models": {"default": {"provider": "opencode-go", "model_id": "kimi-k2.6"},
                   "think": {"provider": "opencode-zen", "model_id": "claude-sonnet-4-5"},
                   "fast": {"provider": "opencode-go", "model_id": "not-in-the-catalog"}},
        "prices": {"opencode-zen/claude-sonnet-4-5": {"cache_read": 0.25}},
    }))
    done = _occ("prices", "--config", str(config), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["catalog"]["repo"] == "https://github.com/anomalyco/models.dev"
    rows = {row["model"]: row for row in data["models"]}
    kimi = rows["opencode-go/kimi-k2.6"]["figures"]
    assert kimi["input"] == {"usd_per_mtok": 0.95, "source": "catalog providers/opencode-go/models/kimi-k2.6.toml"}
    assert kimi["cache_write"]["source"] == "default (= input)"
    sonnet = rows["opencode-zen/claude-sonnet-4-5"]["figures"]
    assert sonnet["cache_read"] == {"usd_per_mtok": 0.25, "source": "config prices.opencode-zen/claude-sonnet-4-5"}
    assert rows["opencode-go/not-in-the-catalog"]["priced"] is False
    table = _occ("prices", "--config", str(config), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert f"read {data['catalog']['read']}" in table.stdout
    assert "UNPRICED" in table.stdout and "opencode-go/not-in-the-catalog" in table.stdout.splitlines()[-1]
    [line] = [line for line in table.stdout.splitlines() if line.startswith("opencode-go/not-in-the-catalog")]
    assert line.split()[1:5] == ["-", "-", "-", "-"]  # unpriced, never 0

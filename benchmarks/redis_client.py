"""The shared-state client, chosen by measurement: one sync tick's pipeline, N times, three ways.

    python benchmarks/redis_client.py [--ticks 2000]

Starts its own ``redis-server`` on a free loopback port (nothing saved), fills it with what a fleet of
four processes and six models would hold, then times the exchange occ's sync task makes each tick
(TIME, HSET heartbeat, PEXPIRE, HGETALL of the processes, breakers and counters), from a trio program:

* ``occ``: occ's own client (occ/server/redis_link.py): RESP on trio streams, replies parsed by
  ``hiredis.Reader``; runs on the event loop, cancellable by any cancel scope;
* ``redis-py thread``: redis-py's pipeline (with hiredis) in a worker thread, ``trio.to_thread.run_sync``;
  the only way to use it from trio, and a deadline cannot cancel a call blocked in the thread;
* ``redis-py direct``: the same pipeline called on the event loop, blocking it: the floor of redis-py's
  own cost, not a usable design.

Prints wall time and this process's CPU time per tick. Every figure is a median of five rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import orjson
import redis
import trio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from support.redis_server import start_redis

from occ.config.parse import parse_config
from occ.server.redis_link import RedisLink

P = "bench"


def tick_commands() -> list[list[str | int | bytes]]:
    beat = orjson.dumps({"host": "h", "pid": 1, "version": "0", "started": 0, "seen": 0, "in_flight": 3,
                         "clients": {"key#0": 2, "key#1": 1}})
    return [["TIME"], ["HSET", f"{P}:procs", "me", beat], ["PEXPIRE", f"{P}:procs", 86_400_000],
            ["HGETALL", f"{P}:procs"], ["HGETALL", f"{P}:breakers"], ["HGETALL", f"{P}:counts"]]


def fill(client: redis.Redis) -> None:
    beat = orjson.dumps({"host": "h", "pid": 2, "version": "0", "started": 0, "seen": 0, "in_flight": 5,
                         "clients": {"key#0": 3}})
    for i in range(4):
        client.hset(f"{P}:procs", f"proc-{i}", beat)
    for m in range(6):
        client.hset(f"{P}:breakers", f"p/model-{m}", str(time.time() * 1000)) if m < 2 else None
        for outcome in ("requests", "ok", "http_500", "timeout"):
            client.hset(f"{P}:counts", f"p/model-{m}|{outcome}", 1000 + m)


async def measure(name: str, run_tick, ticks: int) -> tuple[str, float, float]:
    walls, cpus = [], []
    for _ in range(5):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(ticks):
            await run_tick()
        walls.append((time.perf_counter() - wall) / ticks * 1e6)
        cpus.append((time.process_time() - cpu) / ticks * 1e6)
    return name, statistics.median(walls), statistics.median(cpus)


async def main(ticks: int) -> None:
    server = start_redis()
    try:
        config = parse_config({"models": {"default": {"model_id": "m"}}, "shared_state": {"url": server.url}},
                              env={}, source="bench").shared_state
        assert config is not None
        sync = redis.Redis(host="127.0.0.1", port=server.port)
        fill(sync)
        commands = tick_commands()
        link = await RedisLink.connect(config)

        async def occ_tick() -> None:
            with trio.fail_after(1):
                await link.pipeline(commands)

        def pipeline_blocking() -> None:
            pipe = sync.pipeline(transaction=False)
            for c in commands:
                pipe.execute_command(*c)
            pipe.execute()

        async def thread_tick() -> None:
            await trio.to_thread.run_sync(pipeline_blocking)

        async def direct_tick() -> None:
            pipeline_blocking()

        rows = [await measure("occ (RESP on trio + hiredis.Reader)", occ_tick, ticks),
                await measure("redis-py in a worker thread", thread_tick, ticks),
                await measure("redis-py on the loop (blocks it; floor only)", direct_tick, ticks)]
        await link.aclose()
        sync.close()
    finally:
        server.stop()
    print(f"{ticks} ticks x 5 rounds, medians; redis {server.binary}; redis-py {redis.__version__}\n")
    print("| client | wall per tick (us) | CPU per tick, this process (us) |")
    print("|---|---|---|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=2000)
    trio.run(main, parser.parse_args().ticks)

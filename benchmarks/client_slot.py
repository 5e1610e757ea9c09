"""The fleet-wide client slot's price on the request path (issue 26): one ``SharedState.client_slot`` and
``release_slot`` per request, against a real local Redis, as a request with ``max_concurrent_per_client``
and ``shared_state`` pays it. Prints the wall time a request waits for its slot (one round trip through
the sync task) and this process's CPU per slot, sequential and with C requests at once.

usage: python benchmarks/client_slot.py [--slots N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import trio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from support.redis_server import start_redis

from occ.config.parse import parse_config
from occ.observe.observer import Observer
from occ.resilience.fleet import FleetBreakers
from occ.server.client_limits import ClientLimiter
from occ.server.shared_state import SharedState


async def run(slots: int, concurrency: int, url: str) -> None:
    config = parse_config({"models": {"default": {"model_id": "m"}},
                           "shared_state": {"url": url, "key_prefix": "bench-slot"}}, env={}, source="bench")
    shared = SharedState(FleetBreakers(), ClientLimiter(), Observer())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(shared.run, lambda: config.shared_state, lambda: 0)
        while shared.status != "connected":
            await trio.sleep(0.01)
        for c in (1, concurrency):
            left = iter(range(slots))
            waits: list[float] = []

            async def worker(left=left, waits=waits) -> None:
                for _ in left:
                    start = time.perf_counter()
                    token, checked = await shared.client_slot("key#0", 10_000)
                    waits.append(time.perf_counter() - start)
                    assert checked and token
                    shared.release_slot("key#0", token)

            cpu, wall = time.process_time(), time.perf_counter()
            async with trio.open_nursery() as inner:
                for _ in range(c):
                    inner.start_soon(worker)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            waits.sort()
            print(f"c={c}: {slots} slots in {wall:.2f}s; wait p50 {waits[len(waits) // 2] * 1e6:.0f} us, "
                  f"p95 {waits[int(len(waits) * 0.95)] * 1e6:.0f} us; CPU per slot {cpu / slots * 1e6:.0f} us")
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    server = start_redis()
    try:
        trio.run(run, args.slots, args.concurrency, server.url)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

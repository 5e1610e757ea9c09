"""Run occ inside your own trio program, next to your own tasks.

    python examples/embed_in_trio.py [CONFIG.json]

``occ.serve`` is shaped like ``hypercorn.trio.serve``: ``nursery.start`` returns the bound
addresses, and cancelling the nursery stops the server (in-flight requests are cancelled with it).
"""

from __future__ import annotations

import sys

import httpx
import trio

import occ
from occ.config.parse import load_config


async def main(config_path: str | None = None) -> None:
    config = load_config(config_path)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(lambda task_status: occ.serve(config, port=0, task_status=task_status))
        url = binds[0]
        print(f"occ is serving on {url}")
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"{url}/health")).json()
        print(f"health: {health['status']} (occ {health['version']})")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:2])

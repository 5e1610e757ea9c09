"""A large Claude Code history through occ's synchronous request work, in process: CPU seconds per step.

The history is ``big_body.py``'s (user/assistant turns, a tool call and its result each, ~30 MB): with
300-byte results that is 55,350 tool results in 110,702 messages, the shape where per-message work shows;
with 100 KB results, few large strings. For each, the steps a request takes before its first upstream byte:
validation (``parse_messages_request``), the token count, routing, and the translation to chat completions
(``build_request`` and its JSON) and to the Anthropic passthrough (``build_body``), the way occ runs them
(``occ.core.collector.collector_paused`` around them for a body this large), and with the collector left
running, for comparison. Goal (issue 25): the 55,000-result history translated to chat in <= 0.5 s.

usage: python benchmarks/large_history.py [--mb 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from big_body import big_request
from components import bench_config

from occ.core.tokens import count_tokens
from occ.core.validate import parse_messages_request
from occ.resilience.routing import route
from occ.translate.wires import wire_for

try:
    from occ.core.collector import collector_paused
except ImportError:  # before issue 25
    collector_paused = None


def timed(fn: Callable[[], Any], rounds: int, paused: bool) -> float:
    figures = []
    for _ in range(rounds):
        if paused:
            gc.disable()
        start = time.process_time()
        fn()
        figures.append(time.process_time() - start)
        gc.enable()
    return statistics.median(figures)


def steps_for(body: bytes, request: dict[str, Any], config: Any, model: Any, chat: Any,
              passthrough: Any) -> dict[str, Callable[[], Any]]:
    return {
        "validate": lambda: parse_messages_request(body),
        "count": lambda: count_tokens(request),
        "route": lambda: route(request, config, token_estimate=100_000),
        "chat": lambda: chat.build(request, b"", model, True, lambda _: None),
        "passthrough": lambda: passthrough.build(request, body, model, True, lambda _: None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = bench_config()
    model = config.models["default"]
    chat, passthrough = wire_for("openai"), wire_for("anthropic")
    print(f"load average {os.getloadavg()[0]:.2f}; occ.core.collector "
          f"{'present' if collector_paused else 'absent (before issue 25)'}")
    print("\n| history | collector | validate | count | route | chat build | passthrough build | total to chat |")
    print("|---|---|---|---|---|---|---|---|")
    for result_kb in (0.3, 100):
        body = big_request(int(args.mb * 1_000_000), int(result_kb * 1000))
        request = parse_messages_request(body)
        shape = f"{len(body) / 1e6:.0f} MB, {len(request['messages']):,} messages ({result_kb:g} KB results)"
        for paused in (False, True):
            steps = steps_for(body, request, config, model, chat, passthrough)
            figures = {name: timed(fn, args.rounds, paused) for name, fn in steps.items()}
            total = figures["validate"] + figures["count"] + figures["route"] + figures["chat"]
            print(f"| {shape} | {'paused' if paused else 'running'} | {figures['validate']:.3f} s "
                  f"| {figures['count']:.3f} s | {figures['route']:.3f} s | {figures['chat']:.3f} s "
                  f"| {figures['passthrough']:.3f} s | {total:.3f} s |", flush=True)
        del body, request, steps
    print(f"\nload average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

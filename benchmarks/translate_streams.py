"""The price of one stream translation, in process: the recorded upstream streams of tests/recordings fed
through occ's SSE decoder, a wire's stream translator and the Anthropic stream builder, as the fallback
loop does, with no server and no sockets. Prints µs per stream and per upstream event, best of the rounds.

    PYTHONPATH=. python benchmarks/translate_streams.py [--wire responses] [--rounds 5] [--repeat 400]

Run it on two checkouts (``PYTHONPATH=/path/to/other/checkout``) to price a translator change; a
recording that the other checkout cannot translate is reported, not timed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from occ.config.model import ModelConfig
from occ.core.sse import SSEDecoder
from occ.translate.anthropic_events import AnthropicStreamBuilder
from occ.translate.wires import wire_for

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "recordings"
PROVIDERS = {"openai": "opencode-go", "responses": "opencode-zen", "gemini": "opencode-zen",
             "anthropic": "opencode-go"}


def translate_once(wire: str, raw: bytes, model: ModelConfig) -> int:
    builder = AnthropicStreamBuilder(message_id="msg_bench", model="claude-x", input_tokens=100)
    translator = wire_for(wire).stream_translator(builder, model, ["Read", "Grep", "Bash"])
    events = 0
    for event in SSEDecoder().feed(raw):
        translator.feed(event)
        events += 1
    translator.close()
    builder.take()
    return events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wire", default="responses", choices=sorted(PROVIDERS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=400)
    args = parser.parse_args()
    model = ModelConfig(provider=PROVIDERS[args.wire], model_id="recorded-model")
    print(f"| {args.wire} recording | events | µs per stream | µs per event |")
    print("|---|---|---|---|")
    for path in sorted((RECORDINGS / args.wire).glob("*.sse")):
        raw = path.read_bytes()
        try:
            events = translate_once(args.wire, raw, model)
        except Exception as exc:  # an error stream, or a checkout that cannot read it
            print(f"| {path.name} | - | not translated ({type(exc).__name__}) | - |")
            continue
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.repeat):
                translate_once(args.wire, raw, model)
            best = min(best, (time.perf_counter() - start) / args.repeat)
        print(f"| {path.name} | {events} | {best * 1e6:.1f} | {best * 1e6 / events:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The price of one stream translation, in process: the recorded upstream streams of tests/recordings fed
through occ's SSE decoder, a wire's stream translator and the Anthropic stream builder, as the fallback
loop does, with no server and no sockets. Prints µs per stream and per upstream event, best of the rounds.
``--history N`` prices the other direction instead: the wire's ``build_request`` for a Claude Code history of
N tool-loop turns (thinking, text, a call, its result).

    PYTHONPATH=. python benchmarks/translate_streams.py [--wire responses] [--rounds 5] [--repeat 400]
    PYTHONPATH=. python benchmarks/translate_streams.py --wire openai --history 100

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


def history(turns: int) -> dict[str, object]:
    messages: list[dict[str, object]] = [{"role": "user", "content": "go"}]
    for i in range(turns):
        messages.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "t" * 200, "signature": "occ1."}, {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": f"call_{i}", "name": "Read", "input": {"file_path": f"/a/{i}.py"}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"call_{i}",
                                                      "content": "x" * 500}]})
    return {"model": "x", "max_tokens": 1000, "messages": messages,
            "tools": [{"name": "Read", "input_schema": {"type": "object",
                                                        "properties": {"file_path": {"type": "string"}}}}]}


def price_build(wire: str, turns: int, rounds: int, repeat: int, model: ModelConfig) -> None:
    request = history(turns)
    module = {"openai": "openai_chat", "responses": "responses", "gemini": "gemini"}[wire]
    build = __import__(f"occ.translate.{module}", fromlist=["build_request"]).build_request
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            build(request, model, stream=True)
        best = min(best, (time.perf_counter() - start) / repeat)
    print(f"{wire} build_request, {turns} tool turns: {best * 1e6:.0f} µs ({best * 1e6 / turns:.2f} µs per turn)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wire", default="responses", choices=sorted(PROVIDERS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=400)
    parser.add_argument("--history", type=int, default=0, metavar="N")
    args = parser.parse_args()
    model = ModelConfig(provider=PROVIDERS[args.wire], model_id="recorded-model")
    if args.history:
        price_build(args.wire, args.history, args.rounds, args.repeat, model)
        return 0
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

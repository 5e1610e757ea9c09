"""The passthrough body build's price with thinking fitted to the endpoint (docs/thinking.md).

Times ``build_body`` (the whole Anthropic-wire request build: parse, model swap, rules, thinking fit,
serialise) and ``fit_thinking`` alone, in process, on Claude Code-shaped bodies: a one-turn main-loop
request and a realistic long one (80 messages, 25 tools, ~130 KB), each with Claude Code's
``{"type": "adaptive", "budget_tokens": 0}`` and ``output_config.effort``, for an OpenCode Go model
(reshaped to ``enabled``) and a Zen ``claude-*`` model (kept adaptive). Run it from a tree without the
change (``PYTHONPATH=<that tree>``) for the before numbers; ``fit_thinking`` is then reported absent.

    PYTHONPATH=$PWD python benchmarks/thinking_shape.py [--rounds 7]

Standard library plus occ; no sockets.
"""

from __future__ import annotations

import argparse
import json
import timeit
from typing import Any

from occ.config.model import ModelConfig
from occ.translate import anthropic_passthrough as passthrough

MODELS = {"go qwen3.7-plus": ModelConfig("opencode-go", "qwen3.7-plus"),
          "zen claude-opus-4-8": ModelConfig("opencode-zen", "claude-opus-4-8")}


def claude_code_body(turns: int, tools: int) -> dict[str, Any]:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 80}
                                               for i in range(6)}, "required": ["p0"]}
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"step {i} " + "y" * 600}]})
        messages.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "z" * 300, "signature": "EqSig" + "a" * 200},
            {"type": "tool_use", "id": f"toolu_{i:04d}", "name": "Read", "input": {"file_path": f"/a/{i}.py"}}]})
    messages.append({"role": "user", "content": "go on"})
    return {"model": "claude-opus-4-8", "max_tokens": 32000, "stream": True,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.252; cch=1;"},
                       {"type": "text", "text": "You are Claude Code. " * 200}],
            "tools": [{"name": f"tool{i}", "description": "d" * 200, "input_schema": schema} for i in range(tools)],
            "thinking": {"budget_tokens": 0, "type": "adaptive"}, "output_config": {"effort": "high"},
            "messages": messages}


def best_us(fn: Any, rounds: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(rounds, number)) / number * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    fit = getattr(passthrough, "fit_thinking", None)
    caps_of = None
    if fit is not None:
        from occ.config.presets import thinking_caps as caps_of
    for label, request in (("one turn", claude_code_body(0, 0)), ("80 messages, 25 tools", claude_code_body(40, 25))):
        raw = json.dumps(request).encode()
        for name, model in MODELS.items():
            build = best_us(lambda raw=raw, request=request, model=model:
                            passthrough.build_body(raw, request, model), args.rounds)
            line = f"{label:22} {len(raw) / 1024:6.1f} KB  {name:20} build_body {build:8.1f} us"
            if fit is not None and caps_of is not None:
                fitted = best_us(lambda request=request, model=model:
                                 fit({**request, "thinking": dict(request["thinking"]),
                                      "output_config": dict(request["output_config"])}, caps_of(model)),
                                 args.rounds)
                line += f"   fit_thinking + thinking_caps {fitted:6.2f} us"
            else:
                line += "   (no fit_thinking in this tree)"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The passthrough body build's price with the rest of Claude Code's body fitted (docs/passthrough-body.md).

Times ``build_body`` (parse, model swap, rules, body fit, thinking fit, serialise) and ``fit_body`` alone,
in process, on an 83 KB Claude Code 2.1.331-shaped main-loop request: the first user turn, a list-content
``role: "system"`` message carrying ``output_config``, 12 tools of them ``DeferredToolPlaceholder`` and a
loaded ``NotebookEdit`` with ``defer_loading``, a ToolSearch turn whose result is a ``tool_reference``,
then 24 tool turns. For an OpenCode Go model (portable: everything folded) and a Zen ``claude-opus-4-8``
(native: nothing to do). Run it from a tree without the change (``PYTHONPATH=<that tree>``) for the
before numbers; ``fit_body`` is then reported absent.

    PYTHONPATH=$PWD python benchmarks/passthrough_body.py [--rounds 7]

Standard library plus occ; no sockets.
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from typing import Any

from occ.config.model import ModelConfig
from occ.translate import anthropic_passthrough as passthrough

MODELS = {"go minimax-m3": ModelConfig("opencode-go", "minimax-m3"),
          "zen claude-opus-4-8": ModelConfig("opencode-zen", "claude-opus-4-8")}
SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
          "properties": {"command": {"type": "string", "description": "x" * 200}}, "required": ["command"],
          "additionalProperties": False}


def claude_code_body(turns: int) -> dict[str, Any]:
    names = ["Agent", "Bash", "Edit", "NotebookEdit", "ListAgents", "Read", "ReportFindings", "ScheduleWakeup",
             "Skill", "ToolSearch", "Workflow", "DeferredToolPlaceholder", "Write"]
    tools = [{"name": n, "description": "d" * 2000, "input_schema": SCHEMA,
              **({"defer_loading": True} if n in ("NotebookEdit", "DeferredToolPlaceholder") else {})} for n in names]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\n" + "c" * 600 + "\n</system-reminder>"},
            {"type": "text", "text": "Fix the failing test."}]},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\n" + "e" * 400},
                                       {"type": "text", "text": "deferred tools:\n" + "NotebookEdit\n" * 20},
                                       {"type": "text", "text": "agent types:\n" + "a" * 5000}],
         "output_config": {"effort": "medium"}},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Load it.", "signature": "EqSig" + "s" * 300},
            {"type": "tool_use", "id": "toolu_search", "name": "ToolSearch",
             "input": {"query": "select:NotebookEdit", "max_results": 5}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_search",
                                      "content": [{"type": "tool_reference", "tool_name": "NotebookEdit"}]},
                                     {"type": "text", "text": "Tool loaded."}]},
    ]
    for i in range(turns):
        messages.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "z" * 300, "signature": "EqSig" + "a" * 200},
            {"type": "tool_use", "id": f"toolu_{i:04d}", "name": "Read", "input": {"file_path": f"/a/{i}.py"}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i:04d}",
                                                      "content": "y" * 800}]})
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {"model": "claude-opus-5-5", "messages": messages,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.331.c8e;"},
                       {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "p" * 7000, "cache_control": {"type": "ephemeral"}}],
            "tools": tools, "metadata": {"user_id": "{\"session_id\":\"s\"}"}, "max_tokens": 128000,
            "thinking": {"type": "adaptive", "display": "updates"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "medium"}, "stream": True}


def best_us(fn: Any, rounds: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(rounds, number)) / number * 1e6


def fit_us(fit: Any, caps: Any, raw: bytes, rounds: int, batch: int = 200) -> float:
    """``fit_body`` alone: it changes the body it is given, so each call gets its own freshly parsed
    copy, made before the clock starts."""
    best = float("inf")
    for _ in range(rounds):
        bodies = [json.loads(raw) for _ in range(batch)]
        start = time.perf_counter()
        for body in bodies:
            fit(body, caps)
        best = min(best, (time.perf_counter() - start) / batch * 1e6)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    fit = getattr(passthrough, "fit_body", None)
    request = claude_code_body(24)
    raw = json.dumps(request).encode()
    for name, model in MODELS.items():
        build = best_us(lambda model=model: passthrough.build_body(raw, request, model), args.rounds)
        line = f"{len(raw) / 1024:5.1f} KB  {name:20} build_body {build:8.1f} us"
        if fit is not None:
            from occ.config.presets import body_caps

            line += f"   fit_body {fit_us(fit, body_caps(model), raw, args.rounds):7.1f} us"
        else:
            line += "   (no fit_body in this tree)"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

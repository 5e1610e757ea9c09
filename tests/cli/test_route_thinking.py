"""``occ route`` shows, under each model of the chain, the thinking and effort it would be sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.stack import ROOT

CONFIG = {
    "models": {"default": {"provider": "opencode-go", "model_id": "qwen3.7-plus"}},
    "fallbacks": {"default": [{"provider": "opencode-zen", "model_id": "claude-sonnet-4-6"},
                              {"provider": "opencode-zen", "model_id": "claude-opus-4-8"},
                              {"provider": "opencode-go", "model_id": "kimi-k2.6"},
                              {"provider": "opencode-zen", "model_id": "gpt-5.5"}]},
}
#: What Claude Code 2.1.252+ sends.
REQUEST = {"model": "claude-opus-4-8", "max_tokens": 32000, "stream": True,
           "thinking": {"budget_tokens": 0, "type": "adaptive"}, "output_config": {"effort": "max"},
           "messages": [{"role": "user", "content": "hello"}]}


def test_route_shows_the_thinking_each_model_gets(tmp_path):
    path = tmp_path / "occ.json"
    path.write_text(json.dumps(CONFIG))
    result = subprocess.run([sys.executable, "-m", "occ.cli.main", "route", "-", "--config", str(path)],
                            input=json.dumps(REQUEST).encode(), capture_output=True, cwd=ROOT, timeout=60,
                            env={**os.environ, "OCC_API_KEY": "sk-test-route-0123456789"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    at = {line.split()[2]: lines[i + 1].strip() for i, line in enumerate(lines) if line.strip()[:2] in
          ("1.", "2.", "3.", "4.", "5.")}
    go = at["opencode-go/qwen3.7-plus"]
    assert go.startswith('thinking: {"type":"enabled","budget_tokens":31999}, effort: none')
    assert "OpenCode gateway: no adaptive thinking" in go and "adaptive -> enabled" in go
    sonnet = at["opencode-zen/claude-sonnet-4-6"]
    assert sonnet.startswith('thinking: {"type":"adaptive"}, effort: high') and "effort max -> high" in sonnet
    assert at["opencode-zen/claude-opus-4-8"].startswith('thinking: {"type":"adaptive"}, effort: max')
    assert at["opencode-go/kimi-k2.6"] == 'thinking: reasoning_effort "high"'
    assert at["opencode-zen/gpt-5.5"].startswith('thinking: reasoning {"effort":"high"')


def test_route_shows_the_body_fit_on_the_anthropic_wire(tmp_path):
    """Claude Code 2.1.331's system message and placeholder tool: folded for Go, as sent for Opus 4.8."""
    from support.claude_code_bodies import cc_2_1_331

    path = tmp_path / "occ.json"
    path.write_text(json.dumps(CONFIG))
    result = subprocess.run([sys.executable, "-m", "occ.cli.main", "route", "-", "--config", str(path)],
                            input=json.dumps(cc_2_1_331()).encode(), capture_output=True, cwd=ROOT, timeout=60,
                            env={**os.environ, "OCC_API_KEY": "sk-test-route-0123456789"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    at = {line.split()[2]: lines[i + 1].strip() for i, line in enumerate(lines) if line.strip()[:2] in
          ("1.", "2.", "3.", "4.", "5.")}
    go = at["opencode-go/qwen3.7-plus"]
    assert "; body: 1 tool_reference block as text; defer_loading removed, deferred tools not loaded yet left " \
           "out: DeferredToolPlaceholder; 1 system message folded into system/user text; message keys " \
           "output_config removed" in go
    assert "; body:" not in at["opencode-zen/claude-opus-4-8"]
    assert "1 system message folded" in at["opencode-zen/claude-sonnet-4-6"]

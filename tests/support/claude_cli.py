"""The real Claude Code CLI in tests: where to find it, how to run it through occ, and the Anthropic-wire
script its end-to-end tests answer with (shared by every test file that drives the CLI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import trio

from support.fake_upstream import Reply, Seen
from support.shapes import ev

MARKER = "occ-marker-5721"
MESSAGES = "/v1/messages"
SIGNATURE = "EqQBCkgIARABGAIiQL+real/upstream/signature=="


def claude_bin() -> str | None:
    explicit = os.environ.get("OCC_CLAUDE_BIN")
    if explicit and os.path.exists(explicit):
        return explicit
    return shutil.which("claude")


CLAUDE = claude_bin()


needs_cli = pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (set OCC_CLAUDE_BIN or put "
                               "claude on PATH; .ci/run installs it with npm)")


async def run_cli(url: str, tmp_path) -> list[dict]:
    """``claude -p`` asked to run the marker command, through occ; its stream-json lines, checked to
    end in a successful result that mentions the marker, with the Bash tool really run."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_AUTH_TOKEN": "occ-test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    with trio.fail_after(180):
        result = await trio.run_process(
            [CLAUDE, "-p", "Run the shell command that prints the marker, then tell me what it printed.",
             "--output-format", "stream-json", "--verbose", "--allowedTools", "Bash"],
            stdin=subprocess.DEVNULL, capture_stdout=True, capture_stderr=True, env=env, cwd=str(work),
            check=False)
    lines = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip().startswith("{")]
    final = [line for line in lines if line.get("type") == "result"]
    assert final, f"no result line; stderr: {result.stderr.decode()[-2000:]}"
    assert final[-1]["is_error"] is False, final[-1]
    assert MARKER in final[-1]["result"]
    tool_results = [
        block for line in lines if line.get("type") == "user"
        for block in line.get("message", {}).get("content", []) if isinstance(block, dict)
        and block.get("type") == "tool_result"
    ]
    assert any(MARKER in json.dumps(block.get("content")) for block in tool_results), "the Bash tool did not run"
    return lines


def anthropic_events(*blocks: dict, stop: str) -> list[bytes]:
    out = [ev({"type": "message_start", "message": {
        "id": "msg_up", "type": "message", "role": "assistant", "model": "minimax-m3", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 900, "output_tokens": 1}}})]
    for index, block in enumerate(blocks):
        kind = block["type"]
        if kind == "thinking":
            out += [ev({"type": "content_block_start", "index": index,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                    ev({"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}),
                    ev({"type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": block["signature"]}})]
        elif kind == "text":
            out += [ev({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                    ev({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": block["text"]}})]
        else:
            out += [ev({"type": "content_block_start", "index": index, "content_block": {
                        "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}),
                    ev({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}})]
        out.append(ev({"type": "content_block_stop", "index": index}))
    out += [ev({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 20}}),
            ev({"type": "message_stop"})]
    return out


def anthropic_script(seen: Seen) -> Reply:
    messages = seen.json.get("messages", [])
    answered = any(isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
                   for m in messages)
    if answered:
        return Reply(chunks=anthropic_events({"type": "text", "text": f"The command printed {MARKER}."},
                                              stop="end_turn"))
    return Reply(chunks=anthropic_events(
        {"type": "thinking", "thinking": "I should run it.", "signature": SIGNATURE},
        {"type": "tool_use", "id": "toolu_up_1", "name": "Bash",
         "input": {"command": f"echo {MARKER}", "description": "Print the marker"}},
        stop="tool_use"))

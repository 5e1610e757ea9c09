"""The real client's WebSearch: Claude Code CLI -> occ -> a chat model that calls WebSearch; the CLI's own
search request (Anthropic's web_search server tool) -> occ -> the ``web_search`` scenario's Responses model.

What is proved: the CLI accepts occ's search blocks (its stream handler reads a ``server_tool_use``'s
input from the ``input_json_delta`` pieces), its WebSearch tool returns the sources occ gave it to the
main loop, and the search went to the model that can search, not to the chat model.
"""

from __future__ import annotations

import json
import os
import subprocess

import trio
from support import search_answers as S
from support.claude_cli import CLAUDE, needs_cli
from support.fake_upstream import Reply, Seen, sse
from support.shapes import chunk, tool_delta, usage_chunk
from support.stack import make_config

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MARKER = "occ-search-marker-3318"


def _main_loop(seen: Seen) -> Reply:
    messages = seen.json.get("messages", [])
    if "tools" not in seen.json:  # the CLI's search request, the results given by occ's backend
        said = json.dumps(messages)
        text = "Rust 1.80 was released on 25 July 2024." if S.URL_1 in said else "No results were given."
        return Reply(chunks=sse(chunk({"content": text}), chunk(finish="stop"), usage_chunk(900, 10)))
    results = [m for m in messages if m.get("role") == "tool"]
    if results:
        found = S.URL_1 in json.dumps(results)
        text = f"Found it: {MARKER}." if found else "The search gave me nothing."
        return Reply(chunks=sse(chunk({"content": text}), chunk(finish="stop"), usage_chunk(1200, 12)))
    return Reply(chunks=sse(chunk({"role": "assistant", "content": ""}),
                            chunk(tool_delta(0, "call_ws_1", "WebSearch", json.dumps({"query": S.QUERY}))),
                            chunk(finish="tool_calls"), usage_chunk(1000, 20)))


async def _run(url: str, tmp_path) -> list[dict]:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "ANTHROPIC_BASE_URL": url,
           "ANTHROPIC_AUTH_TOKEN": "occ-test", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "NO_PROXY": "127.0.0.1,localhost"}
    with trio.fail_after(180):
        result = await trio.run_process(
            [CLAUDE, "-p", f"Search the web for: {S.QUERY}", "--output-format", "stream-json", "--verbose",
             "--allowedTools", "WebSearch"],
            stdin=subprocess.DEVNULL, capture_stdout=True, capture_stderr=True, env=env, cwd=str(work), check=False)
    lines = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip().startswith("{")]
    final = [line for line in lines if line.get("type") == "result"]
    assert final, f"no result line; stderr: {result.stderr.decode()[-2000:]}"
    assert final[-1]["is_error"] is False, final[-1]
    assert MARKER in final[-1]["result"], final[-1]
    tool_results = [b for line in lines if line.get("type") == "user"
                    for b in line.get("message", {}).get("content", []) if isinstance(b, dict)
                    and b.get("type") == "tool_result"]
    assert any(S.URL_1 in json.dumps(b.get("content")) for b in tool_results), tool_results
    return lines


@needs_cli
async def test_claude_code_web_search_through_a_responses_model(fake, start_occ, tmp_path):
    fake.default(CHAT, _main_loop)
    fake.default(RESPONSES, Reply(chunks=[S.responses_search_stream()]))
    config = make_config(fake, models={"default": {"provider": "fake", "model_id": "glm-5"},
                                       "web_search": {"provider": "fake", "model_id": "gpt-5.4",
                                                      "wire_format": "responses"}})
    await _run(await start_occ(config), tmp_path)
    searches = fake.requests(RESPONSES)
    assert len(searches) == 1 and {"type": "web_search"} in searches[0].json["tools"]
    assert S.QUERY in json.dumps(searches[0].json["input"])


@needs_cli
async def test_claude_code_web_search_through_searxng(fake, start_occ, tmp_path, nursery):
    from support.fake_upstream import start_fake

    searxng = await start_fake(nursery)
    searxng.default("/search", Reply(body=S.searxng_answer()))
    fake.default(CHAT, _main_loop)
    config = make_config(fake, models={"default": {"provider": "fake", "model_id": "glm-5"}},
                         web_search={"backend": "searxng", "url": searxng.url})
    await _run(await start_occ(config), tmp_path)
    assert len(searxng.requests("/search")) == 1
    assert not fake.requests(RESPONSES)

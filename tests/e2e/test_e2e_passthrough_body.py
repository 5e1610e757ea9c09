"""The rest of Claude Code's body on the passthrough, end to end (docs/passthrough-body.md): occ on
hypercorn, Claude Code's exact bodies and betas sent raw (and through the official SDK), and fake
Anthropic-wire upstreams that answer as the real ones do. A strict endpoint that is not Anthropic's
(MiniMax's and Qwen's Anthropic routes) answers 400 to ``role: "system"`` messages, unknown message
keys, ``tool_reference`` blocks and ``defer_loading``; real Claude takes them, tool search only with
its beta."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest
import trio
from support.claude_cli import CLAUDE, MARKER, MESSAGES, SIGNATURE
from support.claude_cli import anthropic_events as _anthropic_events
from support.claude_code_bodies import BETAS_197, BETAS_331, cc_2_1_197, cc_2_1_331
from support.fake_upstream import Reply, Seen
from support.sdk_answers import Answer, anthropic_error, anthropic_stream
from support.stack import TEST_KEY, make_config, sdk

ANSWER = Answer(text="Done.", model="minimax-m3")
CC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "client-key", "user-agent": "claude-cli/2.1.331"}


def answer() -> Reply:
    return Reply(headers={"content-type": "text/event-stream"}, chunks=[anthropic_stream(ANSWER)])


def refusal(body: dict) -> str | None:
    """What a strict Anthropic-compatible endpoint refuses in ``body``, in its own words; None: nothing."""
    for i, message in enumerate(body.get("messages") or []):
        if message.get("role") not in ("user", "assistant"):
            # MiniMax-AI/MiniMax-M2.7#43 (api.minimax.io/anthropic)
            return f"invalid params, chat content has invalid message role: {message.get('role')} (2013)"
        if set(message) - {"role", "content"}:
            return f"messages.{i}.{sorted(set(message) - {'role', 'content'})[0]}: Extra inputs are not permitted"
        for block in message["content"] if isinstance(message["content"], list) else []:
            inner = block.get("content") if block.get("type") == "tool_result" else None
            if isinstance(inner, list) and any(b.get("type") != "text" and b.get("type") != "image" for b in inner):
                return f"messages.{i}: unknown content block type in tool_result"
            if block.get("type") not in ("text", "image", "tool_use", "tool_result", "thinking"):
                return f"messages.{i}: unknown content block type {block.get('type')}"
    for tool in body.get("tools") or []:
        extra = set(tool) - {"name", "description", "input_schema", "cache_control", "type"}
        if extra:
            return f"tools.{tool['name']}.{sorted(extra)[0]}: Extra inputs are not permitted"
    return None


def strict(seen: Seen) -> Reply:
    problem = refusal(seen.json)
    if problem:
        return Reply(status=400, body=anthropic_error("invalid_request_error", problem).encode())
    return answer()


def claude(seen: Seen) -> Reply:
    """Real Anthropic, Opus 4.8+: the whole body is fine; tool search needs its beta."""
    uses_search = "tool_reference" in seen.body.decode() or "defer_loading" in seen.body.decode()
    if uses_search and "advanced-tool-use-2025-11-20" not in seen.headers.get("anthropic-beta", ""):
        return Reply(status=400, body=anthropic_error(
            "invalid_request_error", "tools.3.defer_loading: Extra inputs are not permitted").encode())
    return answer()


def on(fake, model: dict):
    return make_config(fake, models={"default": {"provider": "fake", "wire_format": "anthropic", **model}})


async def post(url: str, body: dict, betas: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(f"{url}/v1/messages?beta=true", content=json.dumps(body),
                                 headers={**CC_HEADERS, "anthropic-beta": betas, "content-type": "application/json"})


async def test_the_strict_fake_refuses_what_claude_code_sends(fake):
    fake.default(MESSAGES, strict)
    for body in (cc_2_1_197(), cc_2_1_331()):
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{fake.url}/v1/messages", json=body)
        assert response.status_code == 400 and "invalid message role: system" in response.text
    assert "tool_result" in refusal({"messages": cc_2_1_197()["messages"][2:]})
    assert "defer_loading" in refusal({"tools": cc_2_1_331()["tools"]})
    assert "output_config" in refusal({"messages": [{**cc_2_1_331()["messages"][1], "role": "user"}]})


@pytest.mark.parametrize(("make", "betas"), [(cc_2_1_197, BETAS_197), (cc_2_1_331, BETAS_331)])
async def test_claude_codes_body_succeeds_on_a_strict_endpoint(fake, start_occ, make, betas):
    fake.default(MESSAGES, strict)
    url = await start_occ(on(fake, {"model_id": "minimax-m3"}))
    response = await post(url, make(), betas)
    assert response.status_code == 200, response.text
    assert "Done." in response.text and "event: message_stop" in response.text
    seen = fake.requests(MESSAGES)
    assert len(seen) == 1, "one request, no failed attempt before it"
    sent = seen[0].json
    assert refusal(sent) is None
    assert "Tool loaded: NotebookEdit" in seen[0].body.decode()
    assert [t["name"] for t in sent["tools"] if t["name"] == "NotebookEdit"] == ["NotebookEdit"]
    assert seen[0].headers["x-api-key"] == TEST_KEY
    for beta in ("mid-conversation-system", "per-turn-control", "advanced-tool-use", "claude-code-"):
        assert beta not in seen[0].headers.get("anthropic-beta", "")


async def test_through_the_sdk_stream(fake, start_occ):
    fake.default(MESSAGES, strict)
    url = await start_occ(on(fake, {"model_id": "qwen3.7-plus"}))
    body = cc_2_1_331()
    async with sdk(url).messages.stream(model=body["model"], max_tokens=body["max_tokens"],
                                        messages=body["messages"], system=body["system"], tools=body["tools"],
                                        thinking=body["thinking"],
                                        extra_body={"output_config": body["output_config"]},
                                        extra_headers={"anthropic-beta": BETAS_331}) as stream:
        final = await stream.get_final_message()
    assert final.content[-1].text == "Done."
    assert refusal(fake.requests(MESSAGES)[0].json) is None


async def test_without_the_fit_the_strict_endpoint_refuses(fake, start_occ):
    """The control: the same upstream, occ told the endpoint is native, answers the client 400."""
    fake.default(MESSAGES, strict)
    url = await start_occ(on(fake, {"model_id": "minimax-m3", "anthropic_body": "native"}))
    response = await post(url, cc_2_1_331(), BETAS_331)
    assert response.status_code == 400 and "invalid message role: system" in response.text


@pytest.mark.parametrize(("make", "betas"), [(cc_2_1_197, BETAS_197), (cc_2_1_331, BETAS_331)])
async def test_real_claude_gets_it_untouched_with_its_betas(fake, start_occ, make, betas):
    fake.default(MESSAGES, claude)
    url = await start_occ(make_config(
        fake, models={"default": {"provider": "opencode-zen", "model_id": "claude-opus-4-8"}},
        opencode_zen={"anthropic_base_url": f"{fake.url}/v1/messages", "api_key": TEST_KEY}))
    body = make()
    response = await post(url, body, betas)
    assert response.status_code == 200, response.text
    seen = fake.requests(MESSAGES)[0]
    assert seen.json["messages"] == body["messages"] and seen.json["tools"] == body["tools"]
    forwarded = seen.headers["anthropic-beta"].split(",")
    expected = [b for b in betas.split(",") if b in (
        "mid-conversation-system-2026-04-07", "per-turn-control-2026-07-01", "advanced-tool-use-2025-11-20",
        "prompt-caching-scope-2026-01-05")]
    assert expected and all(b in forwarded for b in expected)
    assert "claude-code-20250219" not in forwarded and "context-management-2025-06-27" not in forwarded


# -- the real client -----------------------------------------------------------------------------------


def _tool_search_script(seen: Seen) -> Reply:
    """Load NotebookEdit with ToolSearch, then run the marker command, then say what it printed."""
    problem = refusal(seen.json)
    if problem:
        return Reply(status=400, body=anthropic_error("invalid_request_error", problem).encode())
    results = [b for m in seen.json["messages"] if isinstance(m.get("content"), list)
               for b in m["content"] if b.get("type") == "tool_result"]
    if not results:
        return Reply(chunks=_anthropic_events(
            {"type": "thinking", "thinking": "Load the notebook tool first.", "signature": SIGNATURE},
            {"type": "tool_use", "id": "toolu_search_1", "name": "ToolSearch",
             "input": {"query": "select:NotebookEdit", "max_results": 5}}, stop="tool_use"))
    if len(results) == 1:
        return Reply(chunks=_anthropic_events(
            {"type": "tool_use", "id": "toolu_bash_1", "name": "Bash",
             "input": {"command": f"echo {MARKER}", "description": "Print the marker"}}, stop="tool_use"))
    return Reply(chunks=_anthropic_events({"type": "text", "text": f"The command printed {MARKER}."},
                                          stop="end_turn"))


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (set OCC_CLAUDE_BIN or put claude on PATH)")
async def test_the_real_claude_code_cli_with_tool_search_through_a_strict_endpoint(fake, start_occ, tmp_path):
    """Claude Code with tool search on (``ENABLE_TOOL_SEARCH=true``: 2.1.331 has it on for any base URL)
    through occ to an endpoint as strict as MiniMax's: the run loads a tool, runs one and ends well; every
    request the endpoint saw was one it takes, and the loaded tool was offered to the model."""
    fake.default(MESSAGES, _tool_search_script)
    url = await start_occ(on(fake, {"model_id": "minimax-m3"}))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "ANTHROPIC_BASE_URL": url,
           "ANTHROPIC_AUTH_TOKEN": "occ-test", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "NO_PROXY": "127.0.0.1,localhost",
           "ENABLE_TOOL_SEARCH": "true"}
    with trio.fail_after(180):
        result = await trio.run_process(
            [CLAUDE, "-p", "Load the notebook tool, then run the shell command that prints the marker.",
             "--output-format", "stream-json", "--verbose", "--allowedTools", "Bash"],
            stdin=subprocess.DEVNULL, capture_stdout=True, capture_stderr=True, env=env, cwd=str(work), check=False)
    lines = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip().startswith("{")]
    final = [line for line in lines if line.get("type") == "result"]
    assert final and final[-1]["is_error"] is False, (final, result.stderr.decode()[-2000:])
    assert MARKER in final[-1]["result"]
    seen = fake.requests(MESSAGES)
    assert len(seen) >= 3 and all(s.json.get("stream") is True for s in seen), "a non-streaming retry happened"
    assert all(refusal(s.json) is None for s in seen)
    loaded = [s for s in seen if "Tool loaded: NotebookEdit" in s.body.decode()]
    assert loaded and all("NotebookEdit" in [t["name"] for t in s.json["tools"]] for s in loaded)
    assert "<system-reminder>\nThe following deferred tools" in seen[0].body.decode().replace("\\n", "\n")

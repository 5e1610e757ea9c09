"""Thinking in the shape each endpoint takes, end to end: occ on hypercorn, the official SDK as client
sending what Claude Code 2.1.252+ sends, and fake Anthropic-wire upstreams that answer as the real ones
do (docs/thinking.md): OpenCode Go 400s on adaptive thinking (routatic/proxy#171), Claude Opus 4.7+ 400s
on a budget and on an adaptive ``budget_tokens``."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from support.fake_upstream import Reply
from support.sdk_answers import Answer, anthropic_body, anthropic_error, anthropic_stream
from support.shapes import USER
from support.stack import TEST_KEY, make_config, sdk, wait_for_log

#: Claude Code 2.1.252+'s main-loop thinking, and its effort.
CC = {"thinking": {"budget_tokens": 0, "type": "adaptive"}, "extra_body": {"output_config": {"effort": "high"}}}
ANSWER = Answer(text="Done.", thinking="Plan it.", signature="sig-up", model="qwen3.7-plus")


def answer(seen) -> Reply:
    if seen.json.get("stream"):
        return Reply(headers={"content-type": "text/event-stream"}, chunks=[anthropic_stream(ANSWER)])
    return Reply(body=anthropic_body(ANSWER).encode(), headers={"content-type": "application/json"})


def opencode_go(seen) -> Reply:
    """OpenCode Go's Messages route: any thinking but ``enabled`` with a budget is a 400, with the body
    routatic/proxy#171 recorded (``{"model": "qwen3.7-plus"}``)."""
    thinking = seen.json.get("thinking")
    if thinking is not None and (thinking.get("type") != "enabled" or not isinstance(thinking.get("budget_tokens"),
                                                                                   int)):
        return Reply(status=400, body={"model": seen.json["model"]})
    if thinking is not None and not 1024 <= thinking["budget_tokens"] < seen.json["max_tokens"]:
        return Reply(status=400, body=anthropic_error("invalid_request_error", "thinking.budget_tokens").encode())
    return answer(seen)


def claude_adaptive_only(seen) -> Reply:
    """Claude Opus 4.7+: ``enabled`` is a 400, so is ``budget_tokens`` beside ``adaptive``."""
    thinking = seen.json.get("thinking") or {}
    if thinking.get("type") == "enabled":
        return Reply(status=400, body=anthropic_error(
            "invalid_request_error", '"thinking.type.enabled" is not supported for this model. Use '
            '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.').encode())
    if "budget_tokens" in thinking:
        return Reply(status=400, body=anthropic_error(
            "invalid_request_error", "thinking.adaptive.budget_tokens: Extra inputs are not permitted").encode())
    return answer(seen)


def preset_on_fake(fake, preset: str, model_id: str, **model: Any):
    """The real preset (its thinking table) with its Messages URL pointed at the fake."""
    return make_config(fake, models={"default": {"provider": preset, "model_id": model_id, **model}},
                       **{preset.replace("-", "_"): {"anthropic_base_url": f"{fake.url}/v1/messages",
                                                      "api_key": TEST_KEY}})


async def test_the_fake_go_refuses_what_claude_code_sends(fake):
    """The fake is as strict as Go: the request Claude Code sends, forwarded as is, is a 400."""
    import httpx

    fake.default("/v1/messages", opencode_go)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.url}/v1/messages", json={
            "model": "qwen3.7-plus", "max_tokens": 32000, "messages": USER, **{"thinking": CC["thinking"]}})
    assert response.status_code == 400 and response.json() == {"model": "qwen3.7-plus"}


@pytest.mark.parametrize("stream", [True, False])
async def test_claude_codes_adaptive_thinking_succeeds_on_go(fake, start_occ, caplog, stream):
    fake.default("/v1/messages", opencode_go)
    url = await start_occ(preset_on_fake(fake, "opencode-go", "qwen3.7-plus"))
    client = sdk(url)
    if stream:
        async with client.messages.stream(model="claude-opus-4-8", max_tokens=32000, messages=USER, **CC) as s:
            final = await s.get_final_message()
    else:
        final = await client.messages.create(model="claude-opus-4-8", max_tokens=32000, messages=USER, timeout=60,
                                             **CC)
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[1].text == "Done."
    seen = fake.requests("/v1/messages")
    assert len(seen) == 1, "one request, no failed attempt before it"
    assert seen[0].json["thinking"] == {"type": "enabled", "budget_tokens": 24576}
    assert "output_config" not in seen[0].json
    await wait_for_log(caplog, "adaptive -> enabled, budget_tokens 24576", logger="occ.server.fallback")


async def test_go_with_too_small_a_cap_gets_no_thinking(fake, start_occ):
    fake.default("/v1/messages", opencode_go)
    url = await start_occ(preset_on_fake(fake, "opencode-go", "minimax-m3", max_tokens=1000))
    final = await sdk(url).messages.create(model="claude-opus-4-8", max_tokens=32000, messages=USER, timeout=60,
                                           **CC)
    assert final.content[-1].text == "Done."
    sent = fake.requests("/v1/messages")[0].json
    assert sent["max_tokens"] == 1000 and "thinking" not in sent


async def test_zen_claude_keeps_adaptive_thinking_and_its_effort(fake, start_occ):
    fake.default("/v1/messages", claude_adaptive_only)
    url = await start_occ(preset_on_fake(fake, "opencode-zen", "claude-opus-4-8"))
    async with sdk(url).messages.stream(model="claude-opus-4-8", max_tokens=32000, messages=USER, **CC) as s:
        final = await s.get_final_message()
    assert final.content[-1].text == "Done."
    sent = fake.requests("/v1/messages")[0].json
    assert sent["thinking"] == {"type": "adaptive"}
    assert sent["output_config"] == {"effort": "high"}


async def test_zen_claude_gets_adaptive_for_an_old_clients_budget(fake, start_occ):
    """``claude --model haiku`` sends ``enabled`` 31999; routed to Opus 4.8 it must become adaptive."""
    fake.default("/v1/messages", claude_adaptive_only)
    url = await start_occ(preset_on_fake(fake, "opencode-zen", "claude-opus-4-8"))
    await sdk(url).messages.create(model="claude-haiku-4-5", max_tokens=32000, messages=USER, timeout=60,
                                   thinking={"type": "enabled", "budget_tokens": 31999})
    sent = fake.requests("/v1/messages")[0].json
    assert sent["thinking"] == {"type": "adaptive"} and sent["output_config"] == {"effort": "high"}


async def test_a_configured_shape_on_any_provider(fake, start_occ):
    """A provider occ has no table for: ``thinking_shape`` on the model says what it takes."""
    fake.default("/v1/messages", opencode_go)
    model = {"provider": "fake", "model_id": "qwen3.7-plus", "wire_format": "anthropic",
             "thinking_shape": "enabled", "effort_levels": []}
    url = await start_occ(make_config(fake, models={"default": model}))
    final = await sdk(url).messages.create(model="claude-opus-4-8", max_tokens=32000, messages=USER, timeout=60,
                                           thinking=CC["thinking"],
                                           extra_body={"output_config": {"effort": "low"}})
    assert final.content[-1].text == "Done."
    assert fake.requests("/v1/messages")[0].json["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_without_the_table_go_would_refuse(fake, start_occ):
    """The control: the same upstream, occ told the endpoint takes adaptive, answers the client 400."""
    fake.default("/v1/messages", opencode_go)
    url = await start_occ(preset_on_fake(fake, "opencode-go", "qwen3.7-plus", thinking_shape="adaptive"))
    with pytest.raises(anthropic.BadRequestError):
        await sdk(url).messages.create(model="claude-opus-4-8", max_tokens=32000, messages=USER, timeout=60,
                                       **CC)


async def test_the_real_claude_code_cli_through_go(fake, start_occ, tmp_path):
    """The real client (Claude Code CLI, adaptive thinking by default) through the Go preset to a fake as
    strict as Go: the run succeeds, and every request Go saw had thinking in the shape it takes."""
    from support.claude_cli import CLAUDE, MESSAGES, anthropic_script, run_cli

    if CLAUDE is None:
        pytest.skip("Claude Code CLI not installed (set OCC_CLAUDE_BIN or put claude on PATH)")

    def go(seen):
        refused = opencode_go(seen) if "thinking" in seen.json else None
        return refused if refused is not None and refused.status == 400 else anthropic_script(seen)

    fake.default(MESSAGES, go)
    await run_cli(await start_occ(preset_on_fake(fake, "opencode-go", "minimax-m3")), tmp_path)
    seen = fake.requests(MESSAGES)
    assert seen and all(s.json.get("stream") is True for s in seen), "the CLI fell back to a non-streaming retry"
    shapes = {json.dumps(s.json.get("thinking"), sort_keys=True) for s in seen}
    assert all(s == "null" or '"type": "enabled"' in s for s in shapes), shapes
    assert any('"type": "enabled"' in s for s in shapes), "the CLI's main loop asked for thinking"

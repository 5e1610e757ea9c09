"""Routing as a pure function with a reason; the breaker state machine; the failure classifier."""

from __future__ import annotations

import os

import pytest

from occ.config import load_config, parse_config
from occ.errors import (
    InvalidRequest,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStalled,
    UpstreamStatus,
    UpstreamTimeout,
)
from occ.resilience.breaker import BreakerRegistry
from occ.resilience.classify import classify
from occ.routing import route
from occ.tokens import count_tokens

SEED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "seed-config.json")


def m(mid: str, **kw):
    return {"provider": "opencode-go", "model_id": mid, **kw}


CONFIG = parse_config({
    "enable_streaming_scenario_routing": True,
    "models": {s: m(f"{s}-model") for s in ("default", "background", "think", "complex")}
    | {"long_context": m("long-model", context_threshold=1000), "fast": m("fast-model", vision=False),
       "alias": m("alias-model")},
    "fallbacks": {"default": [m("fb-1"), m("default-model"), m("fb-2", vision=False)], "think": [m("think-fb")]},
    "model_overrides": {"claude-haiku-4-5": m("override-model")},
}, env={}, source="t")


def req(text: str = "hello", **extra):
    return {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": text}], **extra}


def ids(r):
    return [x.model_id for x in r.chain]


def test_default_with_dedup_and_reason():
    r = route(req(), CONFIG)
    assert r.scenario == "default" and ids(r) == ["default-model", "fb-1", "fb-2"]
    assert "no rule matched" in r.reason


def test_long_context_over_threshold():
    r = route(req("word " * 3000), CONFIG)
    assert r.scenario == "long_context" and "> threshold 1000" in r.reason


def test_override_then_own_ids_then_respect_requested():
    assert ids(route({**req(), "model": "claude-haiku-4-5[1m]"}, CONFIG))[0] == "override-model"
    r = route({**req(), "model": "claude-occ-think"}, CONFIG)
    assert r.scenario == "think" and ids(r) == ["think-model", "think-fb"]
    assert route({**req(), "model": "alias"}, CONFIG).scenario == "default"  # respect_requested_model off


def test_haiku_thinking_and_cues_from_the_latest_user_message_only():
    assert route({**req(), "model": "claude-3-5-haiku"}, CONFIG).scenario == "background"
    assert route(req(thinking={"type": "adaptive"}), CONFIG).scenario == "think"
    assert route(req("please think step by step"), CONFIG).scenario == "think"
    assert route(req("refactor this module"), CONFIG).scenario == "complex"
    history = {**req(), "messages": [{"role": "user", "content": "refactor everything"},
                                     {"role": "assistant", "content": "done"},
                                     {"role": "user", "content": "thanks"}]}
    assert route(history, CONFIG).scenario == "default"


def test_images_never_go_to_text_only_models():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    request = {**req(), "messages": [{"role": "user", "content": [image]}]}
    r = route(request, CONFIG)
    assert "fb-2" not in ids(r) and "text-only" in r.reason
    r = route({**request, "model": "claude-occ-fast"}, CONFIG)
    assert all(x.vision is not False for x in r.chain) and r.chain


def test_seed_config_two_live_routes():
    seed = load_config(SEED, env={})
    fast = route(req(stream=True), seed)
    assert fast.scenario == "fast" and ids(fast) == ["deepseek-v4-flash", "mimo-v2.5"]
    assert "enable_streaming_scenario_routing" in fast.reason
    long = route(req("token " * 200000, stream=True), seed)
    assert long.scenario == "long_context" and ids(long) == ["minimax-m3", "deepseek-v4-pro", "mimo-v2.5-pro"]


def test_count_tokens_counts_everything():
    base = count_tokens(req("hello world"))
    with_tools = count_tokens(req("hello world", tools=[{"name": "Bash", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string", "description": "x" * 400}}}}]))
    assert 0 < base < with_tools
    assert count_tokens({"messages": []}) == 1


def test_breaker_opens_skips_half_opens_once_and_recovers():
    b = BreakerRegistry(failure_threshold=2, cooldown_s=10)
    key = ("p", "m")
    b.record_failure(key, 0)
    assert b.allow(key, 1)
    b.record_failure(key, 1)
    assert b.state(key, 2) == "open" and not b.allow(key, 2)
    assert b.state(key, 11) == "half_open"
    assert b.allow(key, 11) and not b.allow(key, 11)  # exactly one probe
    b.release(key)  # the probe's client left: slot freed, still half-open
    assert b.allow(key, 12)
    b.record_failure(key, 12)
    assert b.state(key, 13) == "open"
    assert b.allow(key, 23)
    b.record_success(key, 23)
    assert b.state(key, 23) == "closed" and b.snapshot(23) == {}


def test_breaker_honours_retry_after():
    b = BreakerRegistry(failure_threshold=1, cooldown_s=5)
    b.record_failure(("p", "m"), 0, retry_after_s=60)
    assert not b.allow(("p", "m"), 30) and b.allow(("p", "m"), 61)


@pytest.mark.parametrize(("exc", "action", "counts"), [
    (UpstreamConnectError("x"), "next", True),
    (UpstreamTimeout("x"), "next", True),
    (UpstreamStalled("x"), "next", True),
    (UpstreamProtocolError("x"), "next", True),
    (UpstreamStatus(429, "slow"), "next", True),
    (UpstreamStatus(529, "overloaded"), "next", True),
    (UpstreamStatus(503, "x"), "next", True),
    (UpstreamStatus(402, "x"), "next", True),
    (UpstreamStatus(400, "GoUsageLimitError: usage limit reached"), "next", True),
    (UpstreamStatus(401, "bad key"), "next", False),
    (UpstreamStatus(404, "model not found"), "next", True),
    (UpstreamStatus(400, "messages.0: bad"), "stop", False),
    (UpstreamStatus(422, "bad"), "stop", False),
])
def test_classifier_table(exc, action, counts):
    verdict = classify(exc)
    assert (verdict.action, verdict.counts_against_health) == (action, counts)


def test_context_length_errors_say_prompt_is_too_long():
    exc = UpstreamStatus(400, "upstream HTTP 400: This model's maximum context length is 128000 tokens")
    assert classify(exc).action == "stop"
    assert exc.message.startswith("prompt is too long") and exc.http_status == 400


def test_unknown_occ_error_moves_on():
    assert classify(InvalidRequest("x")).action == "next"

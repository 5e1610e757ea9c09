"""Routing a web search: the ``web_search`` scenario, models that can search, and the refusal."""

from __future__ import annotations

from typing import Any

from occ.config.parse import parse_config
from occ.resilience.routing import format_route, route, search_mode

TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}


def m(mid: str, **kw: Any) -> dict[str, Any]:
    return {"provider": "opencode-go", "model_id": mid, **kw}


def config(**top: Any):
    data = {"api_key": "k", "models": {"default": m("glm-5"), "think": m("kimi-k2.6")}, **top}
    return parse_config(data, env={}, source="test")


def req(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-occ-think", "max_tokens": 10, "tools": [TOOL], "stream": True,
            "messages": [{"role": "user", "content": "Perform a web search for the query: occ"}], **extra}


def test_the_web_search_scenario_wins_over_the_requested_model():
    cfg = config(models={"default": m("glm-5"), "web_search": m("gpt-5.4", provider="opencode-zen")},
                 fallbacks={"web_search": [m("gemini-3-pro", provider="opencode-zen")]})
    r = route(req(), cfg)
    assert r.scenario == "web_search" and [x.model_id for x in r.chain] == ["gpt-5.4", "gemini-3-pro"]
    assert "web_search_20250305" in r.reason and "native" in r.reason and r.web_search and r.refusal is None
    shown = format_route(r, lambda model: "responses")
    assert "scenario:  web_search" in shown and "gpt-5.4" in shown


def test_without_the_tool_the_scenario_is_not_used():
    cfg = config(models={"default": m("glm-5"), "web_search": m("gpt-5.4", provider="opencode-zen")})
    r = route(req(tools=[]), cfg)
    assert r.scenario == "think" and not r.web_search


def test_models_that_cannot_search_leave_the_chain():
    cfg = config(fallbacks={"think": [m("gpt-5.4", provider="opencode-zen"), m("minimax-m3")]})
    r = route(req(), cfg)
    assert [x.model_id for x in r.chain] == ["gpt-5.4"]
    assert "dropped opencode-go/kimi-k2.6, opencode-go/minimax-m3" in r.reason


def test_a_capable_model_is_found_elsewhere_in_the_config():
    cfg = config(models={"default": m("glm-5"), "other": m("gemini-3-pro", provider="opencode-zen")})
    r = route(req(model="claude-sonnet-4-5"), cfg)
    assert [x.model_id for x in r.chain] == ["gemini-3-pro"] and "instead" in r.reason


def test_a_backend_lets_every_model_search():
    cfg = config(web_search={"backend": "searxng", "url": "http://127.0.0.1:8888"})
    r = route(req(), cfg)
    assert [x.model_id for x in r.chain] == ["kimi-k2.6"] and "backend" in r.reason
    assert search_mode(cfg.models["default"], cfg) == "backend"


def test_nothing_can_search_is_a_refusal_naming_the_keys():
    r = route(req(), config())
    assert r.chain == () and r.refusal is not None
    for key in ("models.web_search", "web_search.backend", "web_search.url", "web_search.api_key"):
        assert key in r.refusal
    assert "refused:   400 invalid_request_error" in format_route(r, lambda model: "openai")


def test_a_model_can_be_told_how_it_searches():
    cfg = config(models={"default": m("glm-5", web_search="native"),
                         "zen": m("gpt-5.4", provider="opencode-zen", web_search="backend")})
    assert search_mode(cfg.models["default"], cfg) == "native"
    assert search_mode(cfg.models["zen"], cfg) is None  # backend asked for, none configured
    assert search_mode(parse_config({"api_key": "k", "models": {"default": m("claude-sonnet-4-5",
                                                                                provider="opencode-zen")}},
                                    env={}, source="t").models["default"],
                       config()) == "native"


def test_openrouter_and_openai_chat_models_search_themselves():
    cfg = config(providers={"or": {"base_url": "https://openrouter.ai/api/v1/chat/completions", "api_key": "k"},
                            "oa": {"base_url": "https://api.openai.com/v1/chat/completions", "api_key": "k"}},
                 models={"default": {"provider": "or", "model_id": "deepseek/deepseek-v4"},
                         "other": {"provider": "oa", "model_id": "gpt-5-search-api"}})
    assert search_mode(cfg.models["default"], cfg) == "native"
    assert search_mode(cfg.models["other"], cfg) == "native"
    r = route(req(model="claude-sonnet-4-5"), cfg)
    assert [x.model_id for x in r.chain] == ["deepseek/deepseek-v4"] and r.refusal is None

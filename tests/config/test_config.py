"""The config model: the seed's file loads unchanged, every error is reported with its key path."""

from __future__ import annotations

import json
import os

import pytest

from occ.config.parse import load_config, parse_config
from occ.config.presets import auth_headers, endpoint_url, resolve_protocol
from occ.core.errors import ConfigError

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")


def parse(data, env=None):
    return parse_config(data, env=env or {}, source="test")


def test_seed_config_loads_with_its_values():
    config = load_config(os.path.join(EXAMPLES, "seed-config.json"), env={"OC_GO_CC_API_KEY": "k-123456"})
    assert config.hot_reload is True and config.enable_streaming_scenario_routing is False
    assert config.models["long_context"].model_id == "minimax-m3"
    assert config.models["long_context"].context_threshold == 80000
    assert config.models["think"].thinking == {"type": "enabled"}
    assert config.models["fast"].temperature == 0.2
    assert [m.model_id for m in config.fallbacks["default"]] == ["deepseek-v4-flash", "deepseek-v4-pro"]
    go = config.providers["opencode-go"]
    assert go.api_keys == ("k-123456",) and go.timeout_s == 300.0
    assert go.streaming_timeout_s is None and go.stall_timeout_s == 120.0
    assert config.providers["opencode-zen"].gemini_base_url == "https://opencode.ai/zen/v1/models"
    assert config.warnings == ()


@pytest.mark.parametrize("name", sorted(os.listdir(EXAMPLES)))
def test_every_example_loads(name):
    if name.endswith(".json"):
        load_config(os.path.join(EXAMPLES, name), env={})


def test_embedded_default_loads_without_env():
    config = load_config(None, env={})
    assert config.source == "<embedded default>"
    assert config.providers["opencode-go"].api_keys == ()
    assert config.providers["opencode-go"].api_key_env == "OCC_API_KEY"


def test_every_error_at_once_with_key_paths():
    with pytest.raises(ConfigError) as info:
        parse({"port": 99999, "hot_reload": "yes",
               "models": {"default": {"provider": "opencode-goo", "model_id": "x"},
                          "think": {"provider": "opencode-go"},
                          "fast": {"model_id": "y", "wire_format": "grpc", "timeout_ms": -5}},
               "fallbacks": {"default": "nope"}, "logging": {"level": "loud"}})
    problems = info.value.problems
    assert 'models.default.provider: unknown provider "opencode-goo" (known: opencode-go, opencode-zen)' in problems
    paths = [p.split(":")[0] for p in problems]
    for path in ("port", "hot_reload", "models.think.model_id", "models.fast.wire_format",
                 "models.fast.timeout_ms", "fallbacks.default", "logging.level"):
        assert path in paths, (path, problems)


def test_unknown_keys_warn_not_fail():
    config = parse({"modles": {}, "models": {"default": {"model_id": "m", "colour": "red"}}})
    assert 'unknown key "modles" (ignored)' in config.warnings
    assert 'unknown key "models.default.colour" (ignored)' in config.warnings


def test_env_expansion_is_safe_and_has_defaults():
    config = parse({"api_key": "${KEY}", "host": "${HOST:-127.0.0.2}",
                    "models": {"default": {"model_id": "${MODEL:-kimi-k2.6}"}},
                    "opencode_go": {"headers": {"x-note": '${NOTE}'}}},
                   env={"KEY": 'ab"c\\d-long', "NOTE": 'quote " and } brace'})
    assert config.providers["opencode-go"].api_keys == ('ab"c\\d-long',)
    assert config.host == "127.0.0.2"
    assert config.models["default"].model_id == "kimi-k2.6"
    assert config.providers["opencode-go"].headers["x-note"] == 'quote " and } brace'


def test_missing_key_names_the_variable_and_errors_never_show_keys():
    config = parse({"api_key": "${MY_KEY_VAR}", "models": {"default": {"model_id": "m"}}})
    assert config.providers["opencode-go"].api_keys == ()
    assert config.providers["opencode-go"].api_key_env == "MY_KEY_VAR"
    with pytest.raises(ConfigError) as info:
        parse({"api_key": "${K}", "models": {"default": {"model_id": "m", "provider": 5}}},
              env={"K": "super-secret-value"})
    assert "super-secret-value" not in str(info.value)


def test_key_pool_and_occ_api_key_fallback():
    config = parse({"api_keys": ["a-123456", "b-123456"], "models": {"default": {"model_id": "m"}}})
    assert config.providers["opencode-zen"].api_keys == ("a-123456", "b-123456")
    config = parse({"models": {"default": {"model_id": "m"}}}, env={"OCC_API_KEY": "env-key-1"})
    assert config.providers["opencode-go"].api_keys == ("env-key-1",)


def test_timeouts_merge_model_over_provider():
    config = parse({"opencode_go": {"timeout_ms": 1000, "streaming_timeout_ms": 60000, "stream_timeout_ms": 5000},
                    "models": {"default": {"model_id": "m", "stream_timeout_ms": 2500}}})
    t = config.timeouts_for(config.models["default"])
    assert (t.timeout_s, t.streaming_timeout_s, t.stall_timeout_s, t.connect_timeout_s) == (1.0, 60.0, 2.5, 10.0)


def test_temperature_zero_and_respect_requested_default():
    config = parse({"models": {"default": {"model_id": "m", "temperature": 0}}})
    assert config.models["default"].temperature == 0.0
    assert config.respect_requested_model is False


@pytest.mark.parametrize(("provider", "model_id", "extra", "protocol"), [
    ("opencode-go", "minimax-m3", {}, "anthropic"),
    ("opencode-go", "qwen3.7-max", {}, "anthropic"),
    ("opencode-go", "deepseek-v4-pro", {}, "openai"),
    ("opencode-zen", "claude-sonnet-4-5", {}, "anthropic"),
    ("opencode-zen", "claude-sonnet-4-5", {"anthropic_tools_disabled": True}, "openai"),
    ("opencode-zen", "gemini-3.1-pro", {}, "gemini"),
    ("opencode-zen", "gpt-5.5", {}, "responses"),
    ("opencode-zen", "glm-5.1", {}, "openai"),
    ("opencode-go", "deepseek-v4-pro", {"wire_format": "anthropic"}, "anthropic"),
])
def test_protocol_table(provider, model_id, extra, protocol):
    config = parse({"models": {"default": {"provider": provider, "model_id": model_id, **extra}}})
    model = config.models["default"]
    assert resolve_protocol(model, config.providers[provider]) == protocol


def test_custom_provider_urls_and_auth():
    config = parse({"providers": {"local": {"base_url": "http://127.0.0.1:9/v1/chat/completions",
                                            "gemini_base_url": "http://127.0.0.1:9/v1beta/models",
                                            "api_key": "lk-123456", "headers": {"X-Org": "o"}}},
                    "models": {"default": {"provider": "local", "model_id": "g", "wire_format": "gemini"}}})
    local = config.providers["local"]
    assert endpoint_url(local, "gemini", "g", stream=True) == \
        "http://127.0.0.1:9/v1beta/models/g:streamGenerateContent?alt=sse"
    assert auth_headers(local, "gemini", "lk-123456") == {"x-goog-api-key": "lk-123456", "x-org": "o"}
    with pytest.raises(ConfigError) as info:
        parse({"providers": {"local": {"base_url": "http://127.0.0.1:9/v1/chat/completions"}},
               "models": {"default": {"provider": "local", "model_id": "g", "wire_format": "responses"}}})
    assert "has no responses_base_url" in str(info.value)


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{\n  "port": 3456,\n  oops\n}')
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    assert "line 3" in info.value.problems[0]


def test_init_template_is_valid_json_config():
    from occ.config.parse import init_template

    parse(json.loads(init_template()))


def test_comment_keys_are_ignored_at_every_level():
    config = parse({"$comment": "top", "_comment_x": "top too",
                    "models": {"$comment": "m", "default": {"model_id": "m", "$comment": "entry"}},
                    "fallbacks": {"$comment": "f", "default": [{"model_id": "n"}]},
                    "model_overrides": {"_comment": "o"},
                    "providers": {"$comment": "p", "local": {"base_url": "http://127.0.0.1:9/v1/chat/completions",
                                                             "headers": {"$comment": "h", "X-Org": "o"}}},
                    "logging": {"$comment": "l"}, "circuit_breaker": {"$comment": "b"}})
    assert config.warnings == ()
    assert set(config.models) == {"default"} and set(config.fallbacks) == {"default"}
    assert config.model_overrides == {}
    assert set(config.providers) == {"opencode-go", "opencode-zen", "local"}
    assert dict(config.providers["local"].headers) == {"X-Org": "o"}


def test_a_key_pasted_into_the_wrong_field_never_reaches_a_message():
    secret = "sk-live-0123456789"
    with pytest.raises(ConfigError) as info:
        parse({"api_key": "${K}", "opencode_go": {"base_url": "${K}"}, "models": {"default": {"model_id": "m"}}},
              env={"K": secret})
    assert info.value.problems == ["opencode_go.base_url: expected an http:// or https:// URL, got '[redacted]'"]
    with pytest.raises(ConfigError) as info:
        parse({"providers": {"x": {"api_key": secret, "protocol": secret}}, "models": {"default": {"model_id": "m"}}})
    assert secret not in str(info.value) and "providers.x.protocol" in str(info.value)


def test_credentials_in_a_base_url_are_refused_without_repeating_them():
    """occ's client does not send URL credentials and its logs show URLs: a password there would be
    ignored and leaked, so the config says where to put it instead."""
    with pytest.raises(ConfigError) as info:
        parse({"api_key": "k", "providers": {"gw": {"base_url": "https://bob:hunter2-pw@gw.example/v1",
                                                    "protocol": "openai"}},
               "models": {"default": {"provider": "gw", "model_id": "m"}}})
    [problem] = info.value.problems
    assert problem.startswith("providers.gw.base_url: the URL holds credentials") and "headers" in problem
    assert "hunter2" not in problem and "bob" not in problem


@pytest.mark.parametrize(("url", "needle"), [
    ("http://[::1/v1", "not a valid URL"),
    ("http://host:99999/v1", "not a valid URL"),
    ("HTTPS://bob:hunter2-pw@gw.example/v1", "holds credentials"),
    ("ftp://bob:hunter2-pw@gw.example/v1", "got a URL with credentials"),
])
def test_bad_provider_urls_are_config_errors_that_never_repeat_a_password(url, needle):
    with pytest.raises(ConfigError) as info:
        parse({"api_key": "k", "providers": {"gw": {"base_url": url, "protocol": "openai"}},
               "models": {"default": {"provider": "gw", "model_id": "m"}}})
    [problem] = info.value.problems
    assert problem.startswith("providers.gw.base_url: ") and needle in problem and "hunter2" not in problem


def test_an_uppercase_scheme_is_a_url():
    config = parse({"api_key": "k", "providers": {"gw": {"base_url": "HTTPS://gw.example/v1", "protocol": "openai"}},
                    "models": {"default": {"provider": "gw", "model_id": "m"}}})
    assert config.providers["gw"].base_url == "HTTPS://gw.example/v1"



# -- shared_state ------------------------------------------------------------------------------------

def _shared(url, **extra):
    return parse({"models": {"default": {"model_id": "kimi-k2.6"}}, "shared_state": {"url": url, **extra}},
                 env={"REDIS_PW": "pw-from-env-123456"})


def test_shared_state_is_off_unless_configured():
    assert parse({"models": {"default": {"model_id": "kimi-k2.6"}}}).shared_state is None


def test_shared_state_urls():
    s = _shared("redis://cache.internal:6380/2").shared_state
    assert (s.host, s.port, s.db, s.tls, s.password, s.key_prefix) == ("cache.internal", 6380, 2, False, None, "occ")
    s = _shared("rediss://app:${REDIS_PW}@cache.internal", key_prefix="team-a", sync_interval_ms=100).shared_state
    assert (s.tls, s.port, s.db, s.username, s.password) == (True, 6379, 0, "app", "pw-from-env-123456")
    assert s.display == "rediss://app@cache.internal:6379/0" and "pw-from" not in repr(s)
    assert (s.key_prefix, s.sync_interval_s) == ("team-a", 0.1)


def test_bad_shared_state_urls_are_errors_that_never_repeat_the_password():
    for url, needle in [("http://h:6379/0", "redis:// or rediss://"), ("redis://h:6379/zero", "database number"),
                        ("redis://:${REDIS_PW}@h:6379/x", "database number"), ("redis://", "no host"),
                        ("redis://h:99999/0", "not a valid URL"), ("redis://h/0?ssl=1", "query")]:
        with pytest.raises(ConfigError) as info:
            _shared(url)
        text = "; ".join(info.value.problems)
        assert needle in text and "pw-from-env" not in text, text
    with pytest.raises(ConfigError) as info:
        parse({"models": {"default": {"model_id": "k"}}, "shared_state": {}})
    assert "shared_state.url: required" in info.value.problems[0]


def test_the_fleet_example_config_loads_with_its_secrets_from_the_environment():
    env = {"OCC_API_KEY": "k-123456", "OCC_CLIENT_KEY": "client-key-1234567890", "REDIS_PASSWORD": "redis-pw-123456"}
    config = load_config(os.path.join(EXAMPLES, "fleet", "occ.json"), env=env)
    assert config.shared_state is not None and config.shared_state.password == "redis-pw-123456"
    assert config.shared_state.display == "redis://redis:6379/0"
    assert config.client_api_keys == ("client-key-1234567890",)

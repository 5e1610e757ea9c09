"""occ's configuration: a frozen attrs model, loaded from JSON, validated all at once.

The seed's (oc-go-cc's) config file loads unchanged. Differences, on purpose:

* ``respect_requested_model`` absent means **false** (the seed's absent-means-true sent ``claude-*``
  ids upstream, where they failed);
* ``streaming_timeout_ms`` absent means **no total cap** on a stream (the seed fell back to
  ``timeout_ms`` and cut every stream at five minutes); ``stream_timeout_ms`` is the stall guard;
* a ``temperature`` of 0 is a real value, not "unset";
* ``${VAR}`` and ``${VAR:-default}`` are expanded after JSON parsing, so a value is never pasted
  into the JSON text unescaped.

Durations are ``*_ms`` in the file and seconds (``*_s``) in the model, converted once, here.
Every problem is reported with its key path, all at once. Sans-IO: no trio, no httpx.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from occ.config.model import (
    ANTHROPIC_BODIES,
    BREAKER_KEYS,
    DEFAULT_PATH,
    EFFORT_LEVELS,
    EMBEDDED_SOURCE,
    LOG_LEVELS,
    LOGGING_KEYS,
    MODEL_KEYS,
    PRICE_KEYS,
    PROTOCOLS,
    PROVIDER_KEYS,
    SCENARIOS,
    SEARCH_BACKENDS,
    SHARED_STATE_KEYS,
    THINKING_SHAPES,
    TOP_LEVEL_KEYS,
    USAGE_KEYS,
    WEB_SEARCH_KEYS,
    WEB_SEARCH_MODES,
    BreakerConfig,
    Config,
    LoggingConfig,
    ModelConfig,
    Price,
    ProviderConfig,
    SharedStateConfig,
    UsageConfig,
    WebSearchConfig,
    client_key_problems,
)
from occ.config.presets import _PRESET_KEYS, PRESET_PRICES, PRESETS, resolve_protocol, url_field
from occ.config.price_catalog import CATALOG
from occ.core.errors import ConfigError
from occ.core.scrub import Scrubber, looks_like_key

__all__ = ["default_config", "format_models_table", "init_template", "load_config", "parse_config"]

# -- expansion -----------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, env: Mapping[str, str], unresolved: set[str]) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            unresolved.add(name)
            return ""
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, env, unresolved) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, env, unresolved) for k, v in value.items()}
    return value


def _var_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [m.group(1) for m in _VAR.finditer(value)]
    if isinstance(value, list):
        return [n for v in value for n in _var_names(v)]
    return []


# -- the parser ----------------------------------------------------------------------------------


def _is_comment(key: str) -> bool:
    """``$comment``/``_comment`` keys carry prose (JSON has no comments): ignored at every level."""
    return key.startswith(("$comment", "_comment"))


def _entries(mapping: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The items of a name -> value map (models, fallbacks, providers, headers...) minus comments."""
    return [(k, v) for k, v in mapping.items() if not _is_comment(k)]


def _secrets(data: Mapping[str, Any]) -> set[str]:
    """Every credential the (expanded) file holds, wherever it sits, valid or not.

    Messages are scrubbed of these at the end, so no error or warning can carry a key, even when a
    variable holding one was pasted into the wrong field (``"base_url": "${OPENAI_API_KEY}"``).
    """
    found: set[str] = set()

    def take(section: Any) -> None:
        if not isinstance(section, dict):
            return
        for name in ("api_key", "api_keys", "client_api_keys"):
            value = section.get(name)
            values = value if isinstance(value, list) else [value]
            found.update(v for v in values if isinstance(v, str))
        headers = section.get("headers")
        if isinstance(headers, dict):
            found.update(v for v in headers.values() if isinstance(v, str))

    take(data)
    shared_state = data.get("shared_state")
    if isinstance(shared_state, dict) and isinstance(shared_state.get("url"), str):
        try:
            password = urllib.parse.urlsplit(shared_state["url"]).password
        except ValueError:
            password = None
        if password:
            found.add(urllib.parse.unquote(password))
            found.add(password)
    take(data.get("opencode_go"))
    take(data.get("opencode_zen"))
    take(data.get("web_search"))
    if isinstance(data.get("providers"), dict):
        for section in data["providers"].values():
            take(section)
    return {s for s in found if len(s) >= 6}


_KEY_FIELDS = frozenset({"api_key", "api_keys", "client_api_keys", "headers"})


def _misplaced_keys(value: Any, path: str = "") -> list[str]:
    """Paths of values shaped like an API key outside the fields meant for keys (a key pasted into
    ``base_url`` or ``model_id``): worth a warning, and the value is never shown."""
    if isinstance(value, str):
        return [path] if looks_like_key(value) else []
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items() if k not in _KEY_FIELDS and not _is_comment(str(k))]
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    return [p for key, v in items for p in _misplaced_keys(v, f"{path}.{key}" if path else key)]


def _scrub(messages: list[str], secrets: set[str]) -> list[str]:
    """Messages minus the file's secrets and anything shaped like a key (one pasted into the wrong
    field, ``"base_url": "sk-..."``, is no configured secret, but is still never repeated)."""
    scrubber = Scrubber(secrets)
    return [scrubber.scrub(message) for message in messages]


class _Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._paths: set[str] = set()

    def error(self, path: str, text: str) -> None:
        """Record a problem with ``path``; only the first per key, so a wrong value never also reads
        as a missing one ("expected a string" and then "required" for the same ``model_id``)."""
        if path in self._paths:
            return
        self._paths.add(path)
        self.errors.append(f"{path}: {text}")

    def unknown(self, path: str, data: Mapping[str, Any], known: frozenset[str]) -> None:
        for key in data:
            if key not in known and not _is_comment(key):
                where = f"{path}." if path else ""
                self.warnings.append(f'unknown key "{where}{key}" (ignored)')


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _kinds(value: Any) -> str:
    """What an array-of-strings field holds instead, without showing any value (they may be keys)."""
    if not isinstance(value, list):
        return _kind(value)
    odd = sorted({_kind(v) for v in value if not isinstance(v, str)})
    return f"an array holding {' and '.join(odd)}" if odd else "an array"


def _get(p: _Problems, data: Mapping[str, Any], key: str, path: str, kind: str, default: Any = None) -> Any:
    """Read ``data[key]`` expecting ``kind`` (str/bool/int/number/object/duration); record problems."""
    if key not in data or data[key] is None:
        return default
    value = data[key]
    full = f"{path}.{key}" if path else key
    if kind == "str":
        if isinstance(value, str):
            return value
        p.error(full, f"expected a string, got {_kind(value)}")
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        p.error(full, f"expected true or false, got {_kind(value)}")
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                p.error(full, f"expected a non-negative integer, got {value}")
                return default
            return value
        p.error(full, f"expected an integer, got {_kind(value)}")
    elif kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        p.error(full, f"expected a number, got {_kind(value)}")
    elif kind == "duration":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value <= 0:
                p.error(full, f"expected a positive number of milliseconds, got {value}")
                return default
            return float(value) / 1000.0
        p.error(full, f"expected a number of milliseconds, got {_kind(value)}")
    elif kind == "object":
        if isinstance(value, dict):
            return value
        p.error(full, f"expected an object, got {_kind(value)}")
    return default


def _url(p: _Problems, data: Mapping[str, Any], key: str, path: str, default: str | None) -> str | None:
    value = _get(p, data, key, path, "str", default)
    if not value:
        return value or default
    try:
        parts = urllib.parse.urlsplit(value)
        netloc = parts.netloc
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError as exc:
        shown = "" if "@" in value else f" {value!r}"
        p.error(f"{path}.{key}", f"not a valid URL{shown}: {exc}")
        return value
    if parts.scheme.lower() not in ("http", "https"):
        shown = "a URL with credentials" if "@" in value else repr(value)  # never repeat a password
        p.error(f"{path}.{key}", f"expected an http:// or https:// URL, got {shown}")
    elif "@" in netloc:
        p.error(f"{path}.{key}", "the URL holds credentials (user:password@), which occ neither sends nor keeps "
                "out of logs; put them in the provider's headers instead (\"authorization\": \"Basic ...\")")
    return value


def _shared_state(p: _Problems, data: Mapping[str, Any]) -> SharedStateConfig | None:
    """``shared_state``: a ``redis://`` or ``rediss://`` URL (user and password in it are allowed, and
    kept out of every message), and the sync settings."""
    section = _get(p, data, "shared_state", "", "object", None)
    if section is None:
        return None
    p.unknown("shared_state", section, SHARED_STATE_KEYS)
    url = _get(p, section, "url", "shared_state", "str", None)
    prefix = _get(p, section, "key_prefix", "shared_state", "str", "occ") or "occ"
    interval = _get(p, section, "sync_interval_ms", "shared_state", "duration", 0.25)
    timeout = _get(p, section, "timeout_ms", "shared_state", "duration", 1.0)
    if not url:
        p.error("shared_state.url", 'required: "redis://host:port/db" (or rediss:// for TLS)')
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        host, port, path = parts.hostname, parts.port or 6379, parts.path.strip("/")
        username, password = parts.username, parts.password
    except ValueError as exc:
        p.error("shared_state.url", f"not a valid URL: {exc}")
        return None
    problems = []
    if parts.scheme.lower() not in ("redis", "rediss"):
        problems.append(f"expected a redis:// or rediss:// URL, got scheme {parts.scheme or 'none'!r}")
    if not host:
        problems.append("the URL names no host")
    if path and not path.isdigit():
        problems.append(f"the path is the database number (redis://host:6379/0), got {path!r}")
    if parts.query or parts.fragment:
        problems.append("the URL may not carry a query or fragment; put settings in shared_state's own keys")
    if interval > 5.0:
        problems.append("sync_interval_ms above 5000 would leave processes seconds apart; keep it <= 5000")
    for problem in problems:
        p.error("shared_state.url" if "URL" in problem or "path" in problem else "shared_state", problem)
    if problems:
        return None
    return SharedStateConfig(
        url=url, host=host or "", port=port, db=int(path or 0),
        username=urllib.parse.unquote(username) if username else None,
        password=urllib.parse.unquote(password) if password else None,
        tls=parts.scheme.lower() == "rediss", key_prefix=prefix, sync_interval_s=interval, timeout_s=timeout)


def _web_search(p: _Problems, data: Mapping[str, Any]) -> WebSearchConfig | None:
    """``web_search``: the search backend (SearXNG needs its ``url``; Tavily its ``api_key``)."""
    section = _get(p, data, "web_search", "", "object", None)
    if section is None:
        return None
    p.unknown("web_search", section, WEB_SEARCH_KEYS)
    backend = _get(p, section, "backend", "web_search", "str", None)
    if backend not in SEARCH_BACKENDS:
        p.error("web_search.backend", f"expected one of {', '.join(SEARCH_BACKENDS)}, got "
                f"{'nothing' if backend is None else repr(backend)}")
        return None
    default_url = {"tavily": "https://api.tavily.com"}.get(backend)
    url = _url(p, section, "url", "web_search", default_url)
    key = _get(p, section, "api_key", "web_search", "str", None) or None
    results = _get(p, section, "max_results", "web_search", "int", 5)
    timeout = _get(p, section, "timeout_ms", "web_search", "duration", 10.0)
    if not url:
        p.error("web_search.url", f"required for {backend}: the server's address, e.g. \"http://127.0.0.1:8888\"")
    if backend == "tavily" and not key:
        p.error("web_search.api_key", 'required for tavily: "api_key": "${TAVILY_API_KEY}"')
    if not 1 <= results <= 20:
        p.error("web_search.max_results", f"expected an integer from 1 to 20, got {results}")
    if p.errors and any(e.startswith("web_search") for e in p.errors):
        return None
    return WebSearchConfig(backend=backend, url=str(url).rstrip("/"), api_key=key, max_results=results,
                           timeout_s=timeout)


def _strings(p: _Problems, data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        p.error(key, f"expected an array of strings, got {_kind(value)}")
        return []
    return list(value)


def _keys(p: _Problems, data: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
    """``api_key`` and ``api_keys`` of one object; None when neither is present."""
    out: list[str] = []
    present = False
    if "api_key" in data and data["api_key"] is not None:
        present = True
        if isinstance(data["api_key"], str):
            if data["api_key"]:
                out.append(data["api_key"])
        else:
            p.error(f"{path}api_key", f"expected a string, got {_kind(data['api_key'])}")
    if "api_keys" in data and data["api_keys"] is not None:
        present = True
        value = data["api_keys"]
        if isinstance(value, list) and all(isinstance(k, str) for k in value):
            out.extend(k for k in value if k)
        else:
            p.error(f"{path}api_keys", f"expected an array of strings, got {_kinds(value)}")
    return tuple(dict.fromkeys(out)) if present else None


def _provider(p: _Problems, name: str, data: Mapping[str, Any], path: str, preset: str | None,
              shared_keys: tuple[str, ...], shared_env: str, raw: Mapping[str, Any]) -> ProviderConfig:
    p.unknown(path, data, PROVIDER_KEYS)
    urls = PRESETS.get(preset or "", {})
    protocol = _get(p, data, "protocol", path, "str")
    if protocol is not None and protocol not in PROTOCOLS:
        p.error(f"{path}.protocol", f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
        protocol = None
    own = _keys(p, data, f"{path}.")
    env_names = _var_names(raw.get("api_key")) + _var_names(raw.get("api_keys"))
    headers = dict(_entries(_get(p, data, "headers", path, "object", {}) or {}))
    if any(not isinstance(v, str) for v in headers.values()):
        bad = ", ".join(f"{k!r} is {_kind(v)}" for k, v in headers.items() if not isinstance(v, str))
        p.error(f"{path}.headers", f"expected an object of string values, got one where {bad}")
        headers = {}
    timeout_s = _get(p, data, "timeout_ms", path, "duration", 300.0)
    streaming = _get(p, data, "streaming_timeout_ms", path, "duration", None)
    stall = _get(p, data, "stream_timeout_ms", path, "duration", 120.0)
    payload = _get(p, data, "payload_timeout_ms", path, "duration", 300.0)
    connect = _get(p, data, "connect_timeout_ms", path, "duration", 10.0)
    return ProviderConfig(
        name=name,
        base_url=_url(p, data, "base_url", path, urls.get("base_url")),
        anthropic_base_url=_url(p, data, "anthropic_base_url", path, urls.get("anthropic_base_url")),
        responses_base_url=_url(p, data, "responses_base_url", path, urls.get("responses_base_url")),
        gemini_base_url=_url(p, data, "gemini_base_url", path, urls.get("gemini_base_url")),
        protocol=protocol,
        preset=preset,
        api_keys=own if own is not None else shared_keys,
        api_key_env=(env_names[0] if env_names else shared_env) if own is not None else shared_env,
        headers=dict(headers),
        timeout_s=timeout_s,
        streaming_timeout_s=streaming,
        stall_timeout_s=stall,
        payload_timeout_s=payload,
        connect_timeout_s=connect,
    )


def _model(p: _Problems, data: Any, path: str, providers: Mapping[str, ProviderConfig]) -> ModelConfig | None:
    if not isinstance(data, dict):
        p.error(path, f"expected an object with provider and model_id, got {_kind(data)}")
        return None
    p.unknown(path, data, MODEL_KEYS)
    provider = _get(p, data, "provider", path, "str", "opencode-go")
    if provider not in providers:
        known = ", ".join(sorted(providers))
        p.error(f"{path}.provider", f'unknown provider "{provider}" (known: {known})')
    model_id = _get(p, data, "model_id", path, "str")
    if not model_id:
        p.error(f"{path}.model_id", "required: the upstream model id, e.g. \"deepseek-v4-pro\"")
        model_id = ""
    wire = _get(p, data, "wire_format", path, "str")
    if wire is not None and wire not in PROTOCOLS:
        p.error(f"{path}.wire_format", f"unknown protocol {wire!r} (known: {', '.join(PROTOCOLS)})")
        wire = None
    thinking = _get(p, data, "thinking", path, "object")
    max_tokens = _get(p, data, "max_tokens", path, "int")
    if max_tokens is None:
        max_tokens = _get(p, data, "max_output_tokens", path, "int")
    search = _get(p, data, "web_search", path, "str")
    if search is not None and search not in WEB_SEARCH_MODES:
        p.error(f"{path}.web_search", f"expected one of {', '.join(WEB_SEARCH_MODES)}, got {search!r}")
        search = None
    temperature = _get(p, data, "temperature", path, "number")
    if temperature is not None and not 0 <= temperature <= 2:
        p.error(f"{path}.temperature", f"expected a number between 0 and 2, got {temperature:g}")
    shape = _get(p, data, "thinking_shape", path, "str")
    if shape is not None and shape not in THINKING_SHAPES:
        p.error(f"{path}.thinking_shape", f"unknown thinking shape {shape!r} (known: {', '.join(THINKING_SHAPES)})")
        shape = None
    body = _get(p, data, "anthropic_body", path, "str")
    if body is not None and body not in ANTHROPIC_BODIES:
        p.error(f"{path}.anthropic_body", f"expected one of {', '.join(ANTHROPIC_BODIES)}, got {body!r}")
        body = None
    return ModelConfig(
        provider=provider,
        model_id=model_id,
        temperature=temperature,
        top_p=_get(p, data, "top_p", path, "number"),
        max_tokens=max_tokens or None,
        context_window=_get(p, data, "context_window", path, "int"),
        reasoning_effort=_get(p, data, "reasoning_effort", path, "str"),
        thinking=dict(thinking) if thinking is not None else None,
        context_threshold=_get(p, data, "context_threshold", path, "int"),
        vision=_get(p, data, "vision", path, "bool"),
        anthropic_tools_disabled=_get(p, data, "anthropic_tools_disabled", path, "bool", False),
        wire_format=wire,
        timeout_s=_get(p, data, "timeout_ms", path, "duration"),
        streaming_timeout_s=_get(p, data, "streaming_timeout_ms", path, "duration"),
        stall_timeout_s=_get(p, data, "stream_timeout_ms", path, "duration"),
        payload_timeout_s=_get(p, data, "payload_timeout_ms", path, "duration"),
        thinking_shape=shape,
        effort_levels=_effort_levels(p, data, path),
        web_search=search,
        anthropic_body=body,
    )


def _effort_levels(p: _Problems, data: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
    """``effort_levels``: a list of Anthropic effort values (``[]``: the endpoint takes no effort)."""
    value = data.get("effort_levels")
    if value is None:
        return None
    full = f"{path}.effort_levels"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        p.error(full, f"expected an array of strings such as [\"low\", \"medium\", \"high\"], got {_kind(value)}")
        return None
    unknown = [v for v in value if v not in EFFORT_LEVELS]
    if unknown:
        p.error(full, f"unknown effort {unknown[0]!r} (known: {', '.join(EFFORT_LEVELS)})")
        return None
    return tuple(level for level in EFFORT_LEVELS if level in value)


def parse_config(data: Any, *, env: Mapping[str, str], source: str) -> Config:
    """Build a :class:`Config` from parsed JSON.

    Raises:
        ConfigError: every problem found, each with its key path.
    """
    p = _Problems()
    if not isinstance(data, dict):
        raise ConfigError([f"the config must be a JSON object, got {_kind(data)}"], source)
    raw = data
    unresolved: set[str] = set()
    data = _expand(data, env, unresolved)
    p.unknown("", data, TOP_LEVEL_KEYS)

    shared_env_names = _var_names(raw.get("api_key")) + _var_names(raw.get("api_keys"))
    shared = _keys(p, data, "") or ()
    shared_env = shared_env_names[0] if shared_env_names else "OCC_API_KEY"
    if not shared and env.get("OCC_API_KEY"):
        shared = (env["OCC_API_KEY"],)

    providers: dict[str, ProviderConfig] = {}
    for file_key, name in _PRESET_KEYS.items():
        section = _get(p, data, file_key, "", "object", {}) or {}
        providers[name] = _provider(p, name, section, file_key, name, shared, shared_env,
                                    raw.get(file_key) if isinstance(raw.get(file_key), dict) else {})
    custom = _get(p, data, "providers", "", "object", {}) or {}
    for name, section in _entries(custom):
        path = f"providers.{name}"
        if not isinstance(section, dict):
            p.error(path, f"expected an object, got {_kind(section)}")
            continue
        preset = name if name in PRESETS else None
        raw_section = (raw.get("providers") or {}).get(name) or {}
        providers[name] = _provider(p, name, section, path, preset, shared, shared_env, raw_section)

    models: dict[str, ModelConfig] = {}
    model_section = _get(p, data, "models", "", "object", {}) or {}
    for name, entry in _entries(model_section):
        model = _model(p, entry, f"models.{name}", providers)
        if model is not None:
            models[name] = model
    if "default" not in models and not any(e.startswith("models.default") for e in p.errors):
        p.error("models.default", "required: the model for requests no other scenario claims")

    fallbacks: dict[str, tuple[ModelConfig, ...]] = {}
    for name, entries in _entries(_get(p, data, "fallbacks", "", "object", {}) or {}):
        if not isinstance(entries, list):
            p.error(f"fallbacks.{name}", f"expected an array of models, got {_kind(entries)}")
            continue
        chain = [_model(p, e, f"fallbacks.{name}.{i}", providers) for i, e in enumerate(entries)]
        fallbacks[name] = tuple(m for m in chain if m is not None)

    overrides: dict[str, ModelConfig] = {}
    for name, entry in _entries(_get(p, data, "model_overrides", "", "object", {}) or {}):
        model = _model(p, entry, f"model_overrides.{name}", providers)
        if model is not None:
            overrides[name] = model

    log_section = _get(p, data, "logging", "", "object", {}) or {}
    p.unknown("logging", log_section, LOGGING_KEYS)
    level = (_get(p, log_section, "level", "logging", "str", "info") or "info").lower()
    if level not in LOG_LEVELS:
        p.error("logging.level", f"expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
        level = "info"
    fmt = _get(p, log_section, "format", "logging", "str", "text")
    if fmt not in ("text", "json"):
        p.error("logging.format", f'expected "text" or "json", got {fmt!r}')
        fmt = "text"
    logging_config = LoggingConfig(
        level=level, requests=_get(p, log_section, "requests", "logging", "bool", False), format=fmt,
        body_limit_bytes=_get(p, log_section, "body_limit_bytes", "logging", "int", 4096))

    breaker_section = _get(p, data, "circuit_breaker", "", "object", {}) or {}
    p.unknown("circuit_breaker", breaker_section, BREAKER_KEYS)
    threshold = _get(p, breaker_section, "failure_threshold", "circuit_breaker", "int", 3)
    if threshold < 1:
        p.error("circuit_breaker.failure_threshold", f"expected an integer >= 1, got {threshold}")
        threshold = 3
    breaker = BreakerConfig(threshold, _get(p, breaker_section, "cooldown_ms", "circuit_breaker", "duration", 30.0),
                            _get(p, breaker_section, "max_retry_after_ms", "circuit_breaker", "duration", 300.0))

    usage = _usage(p, _get(p, data, "usage", "", "object", {}) or {})
    prices = _prices(p, _get(p, data, "prices", "", "object", {}) or {})

    port = data.get("port", 3456)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        p.error("port", f"expected an integer from 0 to 65535, got {port!r}")
        port = 3456
    client_keys = data.get("client_api_keys") or []
    if not isinstance(client_keys, list) or not all(isinstance(k, str) for k in client_keys):
        p.error("client_api_keys", f"expected an array of strings, got {_kinds(client_keys)}")
        client_keys = []
    for problem in client_key_problems(client_keys):
        p.errors.append(problem)
    origins = _strings(p, data, "allowed_origins")
    for index, origin in enumerate(origins):
        parts = urllib.parse.urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            p.error(f"allowed_origins.{index}", f"expected an origin like \"https://app.example\" (scheme and "
                    f"host, no path), got {origin!r}")
    hosts = _strings(p, data, "allowed_hosts")
    for index, host in enumerate(hosts):
        if not host or "/" in host or " " in host:
            p.error(f"allowed_hosts.{index}", f"expected a host name, optionally with :port, got {host!r}")
    limit = _get(p, data, "max_concurrent_per_client", "", "int")
    if limit == 0:
        p.error("max_concurrent_per_client", "expected an integer >= 1 (or leave it out for no limit), got 0")
        limit = None
    max_body = _get(p, data, "max_body_bytes", "", "int", 32 * 1024 * 1024)
    if max_body < 1024:
        p.error("max_body_bytes", f"expected at least 1024, got {max_body}")
        max_body = 32 * 1024 * 1024

    for path, model in _all_model_entries(models, fallbacks, overrides):
        provider = providers.get(model.provider)
        if provider is None or not model.model_id:
            continue
        protocol = resolve_protocol(model, provider)
        field = url_field(protocol)
        if not getattr(provider, field):
            p.error(path, f'model "{model.model_id}" speaks {protocol}, but provider "{provider.name}" '
                    f"has no {field}")

    scalars = {
        "host": _get(p, data, "host", "", "str", "127.0.0.1") or "127.0.0.1",
        "hot_reload": _get(p, data, "hot_reload", "", "bool", False),
        "enable_streaming_scenario_routing": _get(p, data, "enable_streaming_scenario_routing", "", "bool", False),
        "respect_requested_model": _get(p, data, "respect_requested_model", "", "bool", False),
        "heartbeat_interval_s": _get(p, data, "heartbeat_interval_ms", "", "duration", 5.0),
        "request_timeout_s": _get(p, data, "request_timeout_ms", "", "duration", None),
        "shutdown_grace_s": _get(p, data, "shutdown_grace_ms", "", "duration", 10.0),
        "metrics_public": _get(p, data, "metrics_public", "", "bool", False),
        "client_write_timeout_s": _get(p, data, "client_write_timeout_ms", "", "duration", 60.0),
    }
    shared_state = _shared_state(p, data)
    web_search = _web_search(p, data)
    for path in _misplaced_keys(data):
        p.warnings.append(f"{path}: the value looks like an API key (not shown); keys belong in api_key, "
                          "api_keys or client_api_keys")
    secrets = _secrets(data)
    if p.errors:
        raise ConfigError(_scrub(p.errors, secrets), source, warnings=_scrub(p.warnings, secrets))
    return Config(
        models=models,
        providers=providers,
        fallbacks=fallbacks,
        model_overrides=overrides,
        port=port,
        **scalars,
        logging=logging_config,
        max_body_bytes=max_body,
        client_api_keys=tuple(client_keys),
        allowed_origins=tuple(origins),
        allowed_hosts=tuple(hosts),
        max_concurrent_per_client=limit,
        breaker=breaker,
        usage=usage,
        prices=prices,
        shared_state=shared_state,
        web_search=web_search,
        source=source,
        warnings=tuple(_scrub(p.warnings, secrets)),
    )


def _usage(p: _Problems, section: Mapping[str, Any]) -> UsageConfig:
    p.unknown("usage", section, USAGE_KEYS)
    path = _get(p, section, "path", "usage", "str")
    return UsageConfig(enabled=_get(p, section, "enabled", "usage", "bool", True),
                       path=path or None,
                       flush_interval_s=_get(p, section, "flush_interval_ms", "usage", "duration", 1.0))


def _prices(p: _Problems, section: Mapping[str, Any]) -> dict[str, Price]:
    """The presets' catalog prices (models.dev), with the file's figures laid over them, figure by figure.

    A label outside the catalog needs ``input`` and ``output``; a figure neither the file nor the
    catalog gives (a cache price) costs as much as ``input`` (an over- rather than an
    under-estimate), and ``cache_read: 0`` is a real price. An entry of the file replaces the
    catalog's long-context tiers: its figures apply at every prompt size. Each price's ``origin``
    says where each figure came from (``occ prices``).
    """
    out = dict(PRESET_PRICES)
    for label, entry in _entries(section):
        path = f"prices.{label}"
        if not isinstance(entry, dict):
            p.error(path, f"expected an object of USD per million tokens, got {_kind(entry)}")
            continue
        p.unknown(path, entry, PRICE_KEYS)
        values = {k: _get(p, entry, k, path, "number") for k in sorted(PRICE_KEYS)}
        for key, value in values.items():
            if value is not None and value < 0:
                p.error(f"{path}.{key}", f"expected a price >= 0, got {value:g}")
        catalog = CATALOG.get(label)
        figures = {k: (v, "config") if v is not None else (None, "") for k, v in values.items()}
        if catalog is not None:
            figures = {k: figures[k] if figures[k][0] is not None else
                       (catalog.figures[k], "catalog") if catalog.figures[k] is not None else (None, "")
                       for k in figures}
        if figures["input"][0] is None or figures["output"][0] is None:
            p.error(path, "required: input and output (USD per million tokens)")
            continue
        fields = ("input", "output", "cache_read", "cache_write")
        final = [figures[k][0] if figures[k][0] is not None else figures["input"][0] for k in fields]
        origin = tuple(figures[k][1] or "default" for k in fields)
        out[label] = Price(*final, origin=origin)  # type: ignore[arg-type]
    return out


def _all_model_entries(models: Mapping[str, ModelConfig], fallbacks: Mapping[str, tuple[ModelConfig, ...]],
                       overrides: Mapping[str, ModelConfig]) -> list[tuple[str, ModelConfig]]:
    out = [(f"models.{k}", m) for k, m in models.items()]
    out += [(f"fallbacks.{k}.{i}", m) for k, chain in fallbacks.items() for i, m in enumerate(chain)]
    out += [(f"model_overrides.{k}", m) for k, m in overrides.items()]
    return out


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([f"the file is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, "
                           f"column {column} cannot be read; save the file as UTF-8"], path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"], path) from None


def default_config(env: Mapping[str, str] | None = None) -> Config:
    """The embedded default: OpenCode Go models, key from ``$OCC_API_KEY``."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_config.json")
    return parse_config(_read_json(here), env=os.environ if env is None else env, source=EMBEDDED_SOURCE)


def load_config(path: str | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """``path``, else ``$OCC_CONFIG``, else ``~/.config/occ/config.json`` if it exists, else the
    embedded default."""
    env = os.environ if env is None else env
    if path is None and env.get("OCC_CONFIG"):
        path = env["OCC_CONFIG"]
    if path is None:
        candidate = os.path.expanduser(DEFAULT_PATH)
        if os.path.isfile(candidate):
            path = candidate
    if path is None:
        return default_config(env)
    path = os.path.expanduser(path)
    return parse_config(_read_json(path), env=env, source=path)


def init_template() -> str:
    """The commented example config ``occ init`` writes (``$comment`` keys are ignored by the parser)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "init_template.json")
    with open(here, encoding="utf-8") as f:
        return f.read()


def format_models_table(config: Config) -> str:
    def show(m: ModelConfig) -> str:
        return f"{m.label} ({resolve_protocol(m, config.providers[m.provider])})"

    rows = [("scenario", "model (protocol)", "fallbacks")]
    names = [s for s in SCENARIOS if s in config.models] + [n for n in config.models if n not in SCENARIOS]
    for name in names:
        chain = config.fallbacks.get(name) or (config.fallbacks.get("default", ()) if name in SCENARIOS else ())
        rows.append((name, show(config.models[name]), ", ".join(show(m) for m in chain) or "-"))
    for name, model in config.model_overrides.items():
        rows.append((f"override {name}", show(model), ", ".join(show(m) for m in config.fallbacks.get(name, ()))
                     or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

"""Check an incoming Messages request body before anything else looks at it.

Claude Code and the SDKs send far more than occ reads; unknown fields are tolerated (never a 422).
What occ does read must have the right shape, and a bad body gets one clear 400 that names the
field, the way Anthropic's own API does. Sans-IO.
"""

from __future__ import annotations

from typing import Any

from occ.core.errors import InvalidRequest
from occ.core.jsonfast import JSONDecodeError, loads_request

__all__ = ["normalize_model_name", "parse_count_tokens_request", "parse_messages_request"]

_ROLES = ("user", "assistant", "system")


def _load_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise InvalidRequest("request body is empty: expected a JSON object")
    try:
        value = loads_request(body)
    except JSONDecodeError as exc:
        raise InvalidRequest(_not_json(body, exc)) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {_kind(value)}")
    return value


def _not_json(body: bytes, exc: Exception) -> str:
    """Why ``body`` is not JSON, in the client's terms. orjson reports invalid UTF-8 as "str is not
    valid UTF-8: surrogates not allowed", which names neither the byte nor the fix."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return (f"request body is not valid UTF-8: byte 0x{body[bad.start]:02x} at offset {bad.start}; "
                "JSON must be sent as UTF-8")
    return f"request body is not valid JSON: {exc}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _check_messages(request: dict[str, Any]) -> None:
    messages = request.get("messages")
    if "messages" not in request:
        raise InvalidRequest("messages: field required")
    if not isinstance(messages, list):
        raise InvalidRequest(f"messages: expected an array of messages, got {_kind(messages)}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages.{i}: expected an object, got {_kind(message)}")
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequest(f"messages.{i}.role: expected one of user, assistant, system, got {role!r}")
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise InvalidRequest(f"messages.{i}.content: expected a string or an array of blocks, "
                                 f"got {_kind(content)}")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise InvalidRequest(f"messages.{i}.content.{j}: expected a content block with a type")
    system = request.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise InvalidRequest(f"system: expected a string or an array of text blocks, got {_kind(system)}")
    tools = request.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest(f"tools: expected an array, got {_kind(tools)}")


def normalize_model_name(model: str) -> str:
    """Claude Code may append ``[1m]`` (1M context) to a model name; it is not part of the id."""
    model = model.strip()
    if model.endswith("]") and "[" in model:
        model = model[: model.rindex("[")]
    return model


def parse_messages_request(body: bytes) -> dict[str, Any]:
    """The request as a dict, or :class:`InvalidRequest` naming the first bad field."""
    request = _load_object(body)
    model = request.get("model")
    if "model" not in request:
        raise InvalidRequest("model: field required")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest(f"model: expected a non-empty string, got {_kind(model)}")
    _check_messages(request)
    if "max_tokens" not in request:
        raise InvalidRequest("max_tokens: field required")
    max_tokens = request.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest(f"max_tokens: expected an integer >= 1, got {max_tokens!r}")
    stream = request.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest(f"stream: expected a boolean, got {_kind(stream)}")
    for key in ("temperature", "top_p"):
        value = request.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise InvalidRequest(f"{key}: expected a number, got {_kind(value)}")
    stops = request.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise InvalidRequest("stop_sequences: expected an array of strings")
    return request


def parse_count_tokens_request(body: bytes) -> dict[str, Any]:
    request = _load_object(body)
    if "model" in request and not isinstance(request["model"], str):
        raise InvalidRequest(f"model: expected a string, got {_kind(request['model'])}")
    _check_messages(request)
    return request

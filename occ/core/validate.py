"""Check an incoming Messages request body before anything else looks at it.

Claude Code and the SDKs send far more than occ reads; unknown fields are tolerated (never a 422).
What occ does read must have the right shape, and a bad body gets one clear 400 that names the
field, the way Anthropic's own API does. Sans-IO.
"""

from __future__ import annotations

import binascii
from typing import Any

from occ.core.errors import InvalidRequest
from occ.core.jsonfast import JSONDecodeError, loads_request, loads_request_text

__all__ = ["LOW_MEMORY_PARSE_BYTES", "normalize_model_name", "parse_count_tokens_request", "parse_messages_request",
           "parse_messages_text"]

#: From this size on the server parses a body from its text (:func:`parse_messages_text`), to peak at
#: twice its size instead of three times. Below it the bytes' parse (orjson) is kept: 1.3-2.5x faster
#: there, and a few MB held once more do not matter.
LOW_MEMORY_PARSE_BYTES = 8 << 20

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
                kind = block["type"]
                if kind == "image" or kind == "document":  # the API's 400, not an upstream's confusion
                    _check_source(block, f"messages.{i}.content.{j}.{kind}",
                                  _IMAGE_TYPES if kind == "image" else ("application/pdf",), decode=False)
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
    return _checked(_load_object(body))


def parse_messages_text(text: str) -> dict[str, Any]:
    """:func:`parse_messages_request` for a large body already decoded from UTF-8, whose bytes the
    caller has let go: parsed in at most twice its size (:func:`~occ.core.jsonfast.loads_request_text`).

    Whatever that parser refuses is judged again by :func:`parse_messages_request`, so a bad body gets
    the same verdict and the same message at any size.
    """
    try:
        value = loads_request_text(text)
    except (ValueError, RecursionError):
        return parse_messages_request(text.encode())
    if not isinstance(value, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {_kind(value)}")
    return _checked(value)


def _checked(request: dict[str, Any]) -> dict[str, Any]:
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
    if not request["messages"]:
        raise InvalidRequest("messages: at least one message is required")
    return request


def parse_count_tokens_request(body: bytes) -> dict[str, Any]:
    """The count_tokens body, refused where Anthropic's API refuses it: a model and at least one
    message are required, and every image and document block must carry a well-formed source
    (valid base64 included), so ``/context`` never shows a count for a request the model would reject.

    The Messages path (:func:`parse_messages_request`) checks the same sources except that base64
    decodes: decoding every image of a session's history on each turn would cost milliseconds per
    request, and the upstream refuses bad base64 with its own 400 anyway."""
    request = _load_object(body)
    if "model" not in request:
        raise InvalidRequest("model: field required")
    if not isinstance(request["model"], str) or not request["model"].strip():
        raise InvalidRequest(f"model: expected a non-empty string, got {_kind(request['model'])}")
    _check_messages(request)
    if not request["messages"]:
        raise InvalidRequest("messages: at least one message is required")
    system = request.get("system")
    if isinstance(system, list):
        _check_blocks(system, "system")
    for i, message in enumerate(request["messages"]):
        if isinstance(message["content"], list):
            _check_blocks(message["content"], f"messages.{i}.content")
    return request


_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _check_blocks(blocks: list[Any], path: str) -> None:
    for j, block in enumerate(blocks):
        where = f"{path}.{j}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}: expected a content block with a type")
        kind = block["type"]
        if kind == "text" and not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{where}.text: field required (a string)")
        elif kind == "image":
            _check_source(block, f"{where}.image", _IMAGE_TYPES)
        elif kind == "document":
            _check_source(block, f"{where}.document", ("application/pdf",))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise InvalidRequest(f"{where}.tool_use: id and name are required (strings)")
            if not isinstance(block.get("input"), dict):
                raise InvalidRequest(f"{where}.tool_use.input: expected an object, got {_kind(block.get('input'))}")
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise InvalidRequest(f"{where}.tool_result.tool_use_id: field required (a string)")
            inner = block.get("content")
            if isinstance(inner, list):
                _check_blocks(inner, f"{where}.tool_result.content")


def _check_source(block: dict[str, Any], where: str, media_types: tuple[str, ...], *, decode: bool = True) -> None:
    """A block's ``source`` as the API requires it; ``decode`` also checks base64 data decodes (not on
    the Messages path: decoding every image of a session's history each turn costs milliseconds)."""
    source = block.get("source")
    if source is None:
        raise InvalidRequest(f"{where}.source: field required")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: expected an object, got {_kind(source)}")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in media_types:
            raise InvalidRequest(f"{where}.source.base64.media_type: expected one of {', '.join(media_types)}, "
                                 f"got {source.get('media_type')!r}")
        data = source.get("data")
        if not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.source.base64.data: field required (a non-empty base64 string)")
        if decode:
            try:
                binascii.a2b_base64(data, strict_mode=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest(f"{where}.source.base64.data: invalid base64 data") from None
    elif kind == "url":
        if not isinstance(source.get("url"), str) or not source["url"]:
            raise InvalidRequest(f"{where}.source.url.url: field required (a string)")
    elif kind == "file":
        if not isinstance(source.get("file_id"), str) or not source["file_id"]:
            raise InvalidRequest(f"{where}.source.file.file_id: field required (a string)")
    elif kind == "text" and where.endswith(".document"):
        if not isinstance(source.get("data"), str):
            raise InvalidRequest(f"{where}.source.text.data: field required (a string)")
    elif kind == "content" and where.endswith(".document"):
        if not isinstance(source.get("content"), (str, list)):
            raise InvalidRequest(f"{where}.source.content.content: expected a string or an array of blocks")
    else:
        allowed = "base64, url, file" + (", text, content" if where.endswith(".document") else "")
        raise InvalidRequest(f"{where}.source.type: expected one of {allowed}, got {kind!r}")

"""JSON in and out on the hot path: orjson when installed, the standard library otherwise.

Both produce compact UTF-8 with non-ASCII kept as is; ``dumps`` returns bytes, ``dumps_str`` text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["SURROGATE_ESCAPE", "JSONDecodeError", "dumps", "dumps_str", "loads", "loads_request", "loads_request_text",
           "repair_surrogates"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: A ``\uD800``-``\uDFFF`` escape in raw JSON: half of a surrogate pair, or a lone one.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

try:
    import orjson

    JSONDecodeError: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)

    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def dumps_str(obj: Any) -> str:
        return orjson.dumps(obj).decode()

except ImportError:  # pragma: no cover - orjson is a declared dependency
    JSONDecodeError = (ValueError,)

    def loads(data: str | bytes) -> Any:
        return json.loads(data)

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    def dumps_str(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def loads_request(data: bytes) -> Any:
    """A client's JSON body, with lone UTF-16 surrogate escapes (``"\\ud83d"`` with no partner)
    replaced by U+FFFD.

    JavaScript strings may hold half a surrogate pair (a tool output cut in the middle of an emoji),
    and ``JSON.stringify`` writes it as an escape. Anthropic's API answers such a body with 400 "no
    low surrogate in string", and since the string stays in the history every later turn fails the
    same way (anthropics/claude-code#3277 and its many duplicates). No upstream can take it either, so
    occ repairs the string rather than ending the session. Everything else invalid stays invalid.

    Raises:
        ValueError (one of :data:`JSONDecodeError`): not JSON, or ``NaN``/``Infinity`` literals.
    """
    try:
        return loads(data)
    except JSONDecodeError as first:
        if SURROGATE_ESCAPE.search(data) is None:
            raise
        # only this one leniency: strict UTF-8 (no UTF-16, no raw surrogate bytes), finite numbers
        try:
            return repair_surrogates(json.loads(data.decode("utf-8"), parse_constant=_no_constants,
                                                parse_float=_finite))
        except (ValueError, RecursionError):
            raise first from None


_SURROGATE_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def loads_request_text(text: str) -> Any:
    """A large client body, already decoded from UTF-8, parsed by the standard library: what
    :func:`loads_request` accepts, in at most twice the body's size.

    orjson copies its whole input before it builds a value, so ``loads_request`` holds the raw bytes,
    that copy and the parsed objects at once (three times a 30 MB body). ``json.loads`` on text makes
    its strings straight from the text, and the caller has dropped the bytes by then. Its speed on a
    history of large tool results is orjson's. It reads what orjson reads where they differ
    (``NaN``/``Infinity`` and floats out of range refused, integers beyond 64 bits read as floats),
    and lone surrogate escapes are repaired as ``loads_request`` repairs them.

    Raises:
        ValueError: anything this parser refuses; RecursionError: nesting deeper than it goes. The
            caller then asks :func:`loads_request` for its verdict (and its error message).
    """
    value = json.loads(text, parse_constant=_no_constants, parse_float=_finite, parse_int=_int64)
    if _SURROGATE_ESCAPE_TEXT.search(text) is not None:
        value = repair_surrogates(value)
    return value


def _int64(text: str) -> int | float:
    """An integer as orjson reads it: beyond its 64-bit range, a float."""
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 64) else _finite(text)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


def repair_surrogates(value: Any) -> Any:
    """``value`` (parsed by the standard library) with every lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {repair_surrogates(k): repair_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repair_surrogates(v) for v in value]
    return value

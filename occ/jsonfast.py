"""JSON in and out on the hot path: orjson when installed, the standard library otherwise.

Both produce compact UTF-8 with non-ASCII kept as is; ``dumps`` returns bytes, ``dumps_str`` text.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSONDecodeError", "dumps", "dumps_str", "loads"]

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

"""Talking to upstream providers: the only module that imports httpx.

httpx's own timeouts are set explicitly: connect and pool bounded, read and write ``None``. Its
5 s read default would cut a model that thinks in silence; in occ only the cancel scopes of the
fallback loop decide how long an attempt may take (see ``occ/fallback.py``).

Every httpx exception is mapped to an occ error here, around the request *and* the body
iteration, so nothing above this module sees httpx.
"""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .errors import UpstreamConnectError, UpstreamProtocolError, UpstreamStatus
from .jsonfast import JSONDecodeError, loads

__all__ = ["KeyPool", "UpstreamClient", "UpstreamResponse", "parse_retry_after", "status_error"]

_ERROR_BODY_LIMIT = 64 * 1024


class KeyPool:
    """Round-robin over a provider's keys (the seed's ``api_keys``). One per provider per config."""

    def __init__(self) -> None:
        self._cycles: dict[tuple[str, tuple[str, ...]], itertools.cycle[str]] = {}

    def next_key(self, provider: str, keys: tuple[str, ...]) -> str | None:
        if not keys:
            return None
        if len(keys) == 1:
            return keys[0]
        cycle = self._cycles.get((provider, keys))
        if cycle is None:
            cycle = self._cycles[(provider, keys)] = itertools.cycle(keys)
        return next(cycle)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), in seconds."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamStatus:
    """An upstream HTTP error as an occ error, with the upstream's own message when it has one.

    Understands the OpenAI (``{"error":{"message","type","code"}}``), Anthropic
    (``{"type":"error","error":{...}}``) and Gemini (``{"error":{"code","message","status",
    "details"}}``) envelopes; anything else is quoted, clipped.
    """
    message = ""
    upstream_type: str | None = None
    retry_after = parse_retry_after(headers)
    try:
        parsed: Any = loads(body) if body else None
    except JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            etype = err.get("type") or err.get("status") or err.get("code")
            upstream_type = str(etype) if etype is not None else None
            for detail in err.get("details") or []:
                if isinstance(detail, dict) and "retryDelay" in detail and retry_after is None:
                    try:
                        retry_after = float(str(detail["retryDelay"]).rstrip("s"))
                    except ValueError:
                        pass
        elif isinstance(err, str):
            message = err
        elif isinstance(parsed.get("message"), str):
            message = parsed["message"]
            if isinstance(parsed.get("type"), str):
                upstream_type = parsed["type"]
    if not message:
        text = body.decode("utf-8", "replace").strip()
        message = text[:500] if text else f"HTTP {status}"
    anthropic_type = upstream_type if upstream_type in {"overloaded_error", "rate_limit_error"} else None
    if upstream_type in {"UNAVAILABLE", "RESOURCE_EXHAUSTED"}:
        anthropic_type = "overloaded_error" if upstream_type == "UNAVAILABLE" else "rate_limit_error"
    return UpstreamStatus(status, f"upstream HTTP {status}: {message}", retry_after_s=retry_after,
                          upstream_type=anthropic_type)


class UpstreamResponse:
    """A streaming upstream response whose status is 2xx. Iterate :meth:`chunks` for raw bytes."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = response.headers

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                if chunk:
                    yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamProtocolError(f"upstream connection broke mid-body: {_describe(exc)}") from None

    async def read_all(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UpstreamProtocolError(f"upstream body larger than {limit} bytes")
        return b"".join(parts)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class UpstreamClient:
    """One long-lived httpx client with a large keep-alive pool, shared by every provider.

    Open it for the lifetime of serving (``async with``). Connection pools are per origin inside
    httpx, so one client is one pool per provider.
    """

    def __init__(self, *, max_connections: int = 1024, keepalive: int = 256) -> None:
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=keepalive,
                                    keepalive_expiry=60.0)
        self._client: httpx.AsyncClient | None = None
        self.keys = KeyPool()

    async def __aenter__(self) -> UpstreamClient:
        self._client = httpx.AsyncClient(
            limits=self._limits,
            timeout=httpx.Timeout(connect=10.0, read=None, write=None, pool=30.0),
            follow_redirects=False,
            trust_env=True,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @asynccontextmanager
    async def open(self, url: str, *, headers: Mapping[str, str], body: bytes,
                   connect_timeout_s: float) -> AsyncIterator[UpstreamResponse]:
        """POST ``body`` and yield the 2xx response with its body unread.

        Raises:
            UpstreamConnectError: no connection could be made.
            UpstreamStatus: the upstream answered with an error status (its body is read, bounded).
            UpstreamProtocolError: the connection broke.
        """
        if self._client is None:
            raise RuntimeError("UpstreamClient used outside `async with`")
        timeout = httpx.Timeout(connect=connect_timeout_s, read=None, write=None, pool=connect_timeout_s)
        request = self._client.build_request("POST", url, headers=headers, content=body, timeout=timeout)
        try:
            response = await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamConnectError(f"cannot connect to upstream: {_describe(exc)}") from None
        except httpx.HTTPError as exc:
            raise UpstreamProtocolError(f"upstream request failed: {_describe(exc)}") from None
        try:
            if response.status_code >= 300:
                raw = b""
                try:
                    async for chunk in response.aiter_bytes():
                        raw += chunk
                        if len(raw) > _ERROR_BODY_LIMIT:
                            break
                except httpx.HTTPError:
                    pass
                raise status_error(response.status_code, raw, response.headers)
            yield UpstreamResponse(response)
        finally:
            await response.aclose()

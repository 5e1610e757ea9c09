"""Talking to upstream providers: the only module that imports httpx.

Requests go through occ's own keep-alive pool (``occ/http_pool.py``), or through httpx when the
environment sends the origin through a proxy. Neither has a read timeout: a model may think in
silence for minutes, and in occ only the cancel scopes of the fallback loop decide how long an
attempt may take (see ``occ/fallback.py``). Connecting is bounded by ``connect_timeout_ms``.

Every transport failure is mapped to an occ error here or in the pool, around the request *and*
the body iteration, so nothing above this module sees httpx or a socket error.
"""

from __future__ import annotations

import email.utils
import itertools
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import attrs
import httpx

from occ.core.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamStatus
from occ.core.scrub import clip
from occ.core.upstream_errors import from_http, upstream_failure
from occ.upstream.http1 import check_headers
from occ.upstream.pool import ConnectionPool, Origin, decode_error_body

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
    """An upstream HTTP error as an occ error, with the upstream's own message when it has one
    (any provider's envelope: :func:`occ.core.upstream_errors.from_http`) and its ``Retry-After``."""
    return upstream_failure(from_http(status, body, parse_retry_after(headers)))


class UpstreamResponse:
    """A streaming upstream response whose status is 2xx. Iterate :meth:`chunks` for raw bytes."""

    def __init__(self, status: int, headers: Mapping[str, str], chunks: Callable[[], AsyncIterator[bytes]],
                 read: Callable[[], Awaitable[bytes]] | None = None) -> None:
        self.status = status
        self.headers = headers
        self._chunks = chunks
        self._iterator: AsyncIterator[bytes] | None = None
        #: a read cancelled while it waits loses nothing and the next one goes on (occ's pool); through httpx
        #: (a proxy) the cancelled read ends the body (its iterator and connection are closed)
        self.reads_resume = read is not None
        if read is not None:
            self.read = read  # type: ignore[method-assign]

    async def read(self) -> bytes:
        """The body's next bytes, ``b""`` at its end (use this or :meth:`chunks`, not both): one await per
        upstream read, the streaming pump's hot path."""
        if self._iterator is None:
            self._iterator = aiter(self._chunks())
        return await anext(self._iterator, b"")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def chunks(self) -> AsyncIterator[bytes]:
        return self._chunks()

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
    return clip(f"{type(exc).__name__}: {text}", 300)


def _ssl_context() -> ssl.SSLContext:
    """The trust httpx would use (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), HTTP/1.1 only."""
    context = httpx.create_ssl_context(trust_env=True)
    context.set_alpn_protocols(["http/1.1"])
    return context


class UpstreamClient:
    """The connections to every upstream, open for the lifetime of serving (``async with``).

    Requests go through occ's own keep-alive pool (:mod:`occ.upstream.pool`): httpx's general
    machinery cost more CPU per request and per streamed chunk than the rest of occ together
    (``benchmarks/RESULTS.md``). An origin that the environment routes through a proxy
    (``HTTPS_PROXY``, ``ALL_PROXY``, ... minus ``NO_PROXY``; the system settings on macOS and
    Windows) goes through httpx instead, which speaks to proxies; its own timeouts stay off but for
    connect and pool, as in the pool. ``max_connections`` bounds the requests in flight on both
    paths together (the pool's slots); one more waits for a free slot for at most its connect
    timeout.
    """

    def __init__(self, *, max_connections: int = 1024, keepalive: int = 256,
                 ssl_context: Callable[[], ssl.SSLContext] = _ssl_context) -> None:
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=keepalive,
                                    keepalive_expiry=60.0)
        self._keepalive = keepalive
        self._max_connections = max_connections
        self._ssl_context = ssl_context
        self._pool: ConnectionPool | None = None
        self._httpx: httpx.AsyncClient | None = None
        self._targets: dict[str, _Target] = {}
        self.keys = KeyPool()

    async def __aenter__(self) -> UpstreamClient:
        self._pool = ConnectionPool(ssl_context=self._ssl_context, max_idle_per_origin=self._keepalive,
                                    max_active=self._max_connections)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pool, self._pool = self._pool, None
        client, self._httpx = self._httpx, None
        if pool is not None:
            await pool.aclose()
        if client is not None:
            await client.aclose()

    def connection_stats(self) -> dict[str, int]:
        pool = self._pool
        if pool is None:
            return {"opened": 0, "reused": 0, "sent": 0, "idle": 0, "busy": 0}
        return {"opened": pool.opened, "reused": pool.reused, "sent": pool.sent, "idle": pool.idle_count(),
                "busy": pool.busy}

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError("UpstreamClient used outside `async with`")
        return self._pool

    def _target(self, url: str) -> _Target:
        """Where ``url`` goes, worked out once per URL (a model's endpoint repeats on every request)."""
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = _parse_target(url)
        return target

    @asynccontextmanager
    async def open(self, url: str, *, headers: Mapping[str, str], body: bytes,
                   connect_timeout_s: float) -> AsyncIterator[UpstreamResponse]:
        """POST ``body`` and yield the 2xx response with its body unread.

        Raises:
            UpstreamConnectError: no connection could be made.
            UpstreamStatus: the upstream answered with an error status (its body is read, bounded).
            UpstreamProtocolError: the connection broke.
        """
        pool = self.pool
        where = self._target(url)
        if where.proxied:
            async with pool.slot(connect_timeout_s), self._open_httpx(url, headers, body,
                                                                      connect_timeout_s) as response:
                yield response
            return
        request_headers = dict(headers)
        request_headers.setdefault("accept-encoding", "gzip, deflate")
        async with pool.request(where.origin, where.target, request_headers, body,
                                connect_timeout_s=connect_timeout_s) as response:
            if response.status >= 300:  # read raw first: a coding occ cannot decode must not hide the status
                raw = await _read_error_body(response.raw_chunks())
                raise status_error(response.status, decode_error_body(raw, response.content_encoding),
                                   response.headers)
            yield UpstreamResponse(response.status, response.headers, response.chunks, response.read)

    @asynccontextmanager
    async def _open_httpx(self, url: str, headers: Mapping[str, str], body: bytes,
                          connect_timeout_s: float) -> AsyncIterator[UpstreamResponse]:
        check_headers(headers)  # httpx's own error would quote the value, which may be a key
        if self._httpx is None:
            try:
                self._httpx = httpx.AsyncClient(
                    limits=self._limits,
                    timeout=httpx.Timeout(connect=10.0, read=None, write=None, pool=30.0),
                    follow_redirects=False,
                    trust_env=True,
                )
            except ImportError as exc:  # a socks:// proxy without httpx[socks]
                raise UpstreamConnectError(f"cannot use the proxy from the environment: {exc}") from None
        client = self._httpx
        timeout = httpx.Timeout(connect=connect_timeout_s, read=None, write=None, pool=connect_timeout_s)
        request = client.build_request("POST", url, headers=headers, content=body, timeout=timeout)
        try:
            response = await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamConnectError(f"cannot connect to upstream: {_describe(exc)}") from None
        except httpx.HTTPError as exc:
            raise UpstreamProtocolError(f"upstream request failed: {_describe(exc)}") from None

        def chunks() -> AsyncIterator[bytes]:
            return _mapped_body(response.aiter_bytes())

        try:
            if response.status_code >= 300:
                encoding = response.headers.get("content-encoding", "").strip().lower()
                # raw: a coding occ cannot decode must not turn a 429 into a protocol error
                raw = await _read_error_body(_mapped_body(response.aiter_raw()))
                raise status_error(response.status_code, decode_error_body(raw, encoding), response.headers)
            yield UpstreamResponse(response.status_code, response.headers, chunks)
        finally:
            await response.aclose()


async def _mapped_body(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An httpx body iterator with empty chunks skipped and httpx's errors mapped to occ's, the one place
    they are (around the body as around the request)."""
    try:
        async for chunk in source:
            if chunk:
                yield chunk
    except httpx.HTTPError as exc:
        raise UpstreamProtocolError(f"upstream connection broke mid-body: {_describe(exc)}") from None


@attrs.frozen
class _Target:
    origin: Origin
    target: str
    proxied: bool


def _parse_target(url: str) -> _Target:
    """The origin, the percent-encoded request target, and whether the environment (or the
    system's settings, on macOS and Windows, as httpx reads them) sends the origin through a proxy."""
    try:
        parsed = httpx.URL(url)
        scheme, host, port = parsed.scheme, parsed.raw_host.decode("ascii"), parsed.port
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise UpstreamConnectError(f"cannot connect to upstream: {url!r} is not a valid URL") from None
    if scheme not in ("http", "https") or not host:
        raise UpstreamConnectError(f"cannot connect to upstream: {url!r} is not an http(s) URL")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    proxied = bool(proxy) and not urllib.request.proxy_bypass(host)
    return _Target(Origin(scheme, host, port or (443 if scheme == "https" else 80)),
                   parsed.raw_path.decode("ascii"), proxied)


async def _read_error_body(chunks: AsyncIterator[bytes]) -> bytes:
    """An error response's body, bounded; whatever arrived if the connection broke meanwhile."""
    raw = b""
    try:
        async for chunk in chunks:
            raw += chunk
            if len(raw) > _ERROR_BODY_LIMIT:
                break
    except UpstreamProtocolError:
        pass
    return raw

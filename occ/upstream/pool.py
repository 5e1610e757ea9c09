"""Keep-alive HTTP/1.1 connections to upstreams, on trio streams, framed by :mod:`occ.upstream.http1`.

One :class:`ConnectionPool` serves every provider: idle connections wait per origin, newest
first, and a request takes one or opens a new one. Nothing here has a timeout of its own beyond
the connect deadline: how long a request may take is decided by the caller's cancel scopes
(``occ/fallback.py``), and a cancelled request closes its connection at once, which is how the
upstream learns that the client left.

A connection is reused only when its response ended exactly where its framing said, and is
checked before reuse: an idle connection the server has closed (or written to) is readable, and is
dropped before anything is sent on it. A request is sent a second time only when it provably never
left whole: the write on a reused connection failed before the request was complete, and no answer
came. A reused connection that dies *after* the whole request was written is a failure for the
fallback loop, never a silent second copy: the upstream may have read the POST, run the generation
and billed it (RFC 9110 §9.2.2: POST is not idempotent).

To keep that race rare, idle connections expire before common upstream keep-alive timeouts: after
:data:`IDLE_EXPIRY_S` (4 s; Node.js, uvicorn, hypercorn and Apache close idle connections at 5 s), or,
when the server announces ``Keep-Alive: timeout=N``, 2 s before its N (at least N/2, at most
:data:`MAX_IDLE_EXPIRY_S`).

Each open connection belongs to a request in flight, an idle slot (at most ``max_idle_per_origin``)
or a bounded drain. Requests in flight are capped (``max_active``, all origins together); one more
waits for a slot, and finding none in its connect timeout is :class:`~occ.core.errors.Overloaded`: occ's
own limit, not the model's health, so the client gets a 529 to retry and no breaker counts it.
"""

from __future__ import annotations

import errno
import select
import ssl
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from occ.core.errors import Overloaded, UpstreamConnectError, UpstreamProtocolError
from occ.upstream.http1 import ResponseParser, request_head

__all__ = ["ConnectionPool", "Origin", "PoolResponse"]

_READ_SIZE = 64 * 1024
#: How long a connection may sit idle when its server did not say (``Keep-Alive: timeout=N``): well
#: under the 5 s at which Node.js, uvicorn, hypercorn and Apache close idle connections.
IDLE_EXPIRY_S = 4.0
#: The longest idle time occ keeps, whatever the server announces (AWS load balancers close at 60 s).
MAX_IDLE_EXPIRY_S = 50.0
_poll = getattr(select, "poll", None)  # not on Windows
#: what a left-behind response may still send before its connection is given up on
_DRAIN_LIMIT = 64 * 1024
#: a direct read or write failed with one of these: occ closed the socket itself (trio's own list)
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})


@attrs.frozen
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@attrs.define(eq=False)
class _Connection:
    """One connection to an origin, and its reads and writes.

    On a plain TCP connection :meth:`receive` and :meth:`send` talk to the socket directly, with the same
    bytes, errors and cancellation as trio's stream methods, minus their wrappers: ``BrokenResourceError``
    when the peer broke the connection, ``ClosedResourceError`` when occ had closed the socket itself.
    A streamed upstream sends one delta at a time: on a quiet process the next one is never there yet, and
    trying a read first (as ``receive_some`` does) costs a failed ``recv`` (``EAGAIN``, raised and caught)
    per delta; on a busy one it usually is, and waiting first costs an epoll round trip per delta.
    So :meth:`receive` tries first while that finds data, and after a miss tries again only every 2, 4 ...
    16 reads. A write the socket takes whole is made at once; the rest goes through ``send_all``. TLS
    connections use the stream as they are (``benchmarks/components.py`` prices both ways).
    """

    origin: Origin
    stream: trio.abc.Stream
    socket: Any
    idle_since: float = 0.0
    #: how long this connection may stay idle (from its server's ``Keep-Alive`` header, else the pool's)
    expiry_s: float | None = None
    #: the standard-library socket under a plain TCP stream (None for TLS: its bytes are not the socket's)
    raw: Any = attrs.field(default=None, init=False)
    #: reads to wait first before trying one again, and how many after the next miss (see the class)
    _until_try: int = attrs.field(default=0, init=False)
    _try_every: int = attrs.field(default=1, init=False)

    def __attrs_post_init__(self) -> None:
        if type(self.stream) is trio.SocketStream:
            self.raw = getattr(self.socket, "_sock", None)  # trio's socket wraps the stdlib one

    async def receive(self) -> bytes:
        """The next bytes the server sent (``b""``: it closed); a cancellation point that loses nothing (it
        is raised only before anything is read)."""
        raw = self.raw
        if raw is None:
            return await self.stream.receive_some(_READ_SIZE)
        if self._until_try <= 0:
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                data = raw.recv(_READ_SIZE)
            except BlockingIOError:
                self._try_every = self._until_try = min(2 * self._try_every, 16)
            except OSError as exc:
                raise _socket_error(exc) from exc
            else:
                self._try_every = 1
                await trio.lowlevel.cancel_shielded_checkpoint()  # others run; a cancel waits for the next read
                return data
        else:
            self._until_try -= 1
            if raw.fileno() < 0:  # closed by occ: wait_readable would raise ValueError and keep its fd busy
                raise trio.ClosedResourceError("this socket was already closed")
        while True:
            await trio.lowlevel.wait_readable(raw)
            try:
                return raw.recv(_READ_SIZE)
            except BlockingIOError:  # woken with nothing to read after all: wait again
                continue
            except OSError as exc:
                raise _socket_error(exc) from exc

    async def send(self, data: bytes) -> None:
        """Write all of ``data``: at once when the socket takes it, else the rest through ``send_all``; as
        ``send_all``, nothing is written once the task is cancelled (an upstream is never asked for a request
        whose client has left or whose deadline has passed)."""
        raw = self.raw
        if raw is not None:
            await trio.lowlevel.checkpoint_if_cancelled()  # no scheduler pass unless cancelled
            try:
                sent = raw.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise _socket_error(exc) from exc
            if sent == len(data):
                return
            data = memoryview(data)[sent:]  # the rest, not a copy of it (a 30 MB body is one write)
        await self.stream.send_all(data)

    def looks_alive(self) -> bool:
        """An idle HTTP/1.1 connection has nothing to read; if it has (EOF, a TLS close_notify or
        stray bytes), it is no use for another request.

        A TLS stream may hold bytes above the socket: plaintext OpenSSL has decrypted but not handed
        out (trio forwards ``pending()``), or records already pulled into its incoming buffer, which
        trio does not expose: its private attribute is read, and a TLS stream without it is never
        reused (safe, only slower).
        """
        stream = self.stream
        if isinstance(stream, trio.SSLStream):
            incoming = getattr(stream, "_incoming", None)
            if incoming is None or incoming.pending or stream.pending():
                return False
        try:
            fileno = self.socket.fileno()
            if fileno < 0:
                return False
            if _poll is None:
                return not select.select([fileno], [], [], 0)[0]
            poller = _poll()
            poller.register(fileno, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False


def _socket_error(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """What trio's ``SocketStream`` raises for this error of a direct read or write, so a TCP connection
    fails as a TLS one does: a socket occ closed itself is occ's own doing (``ClosedResourceError``, which
    no caller takes for an upstream that broke), anything else the peer's (``BrokenResourceError``)."""
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


class _Stale(Exception):
    """The write on a reused connection failed before the request was complete, and no answer came: the
    server cannot have acted on it, so sending it again is safe."""


def keep_alive_expiry(headers: dict[str, str], default_s: float) -> float:
    """How long a connection may stay idle after a response with these headers: 2 s before the server's
    announced ``Keep-Alive: timeout=N`` (at least N/2), capped at :data:`MAX_IDLE_EXPIRY_S`; ``default_s``
    when it announced nothing."""
    value = headers.get("keep-alive", "")
    for part in value.split(","):
        name, _, number = part.strip().partition("=")
        if name.strip().lower() == "timeout":
            try:
                announced = float(number.strip())
            except ValueError:
                return default_s
            if announced <= 0:
                return 0.0
            return min(MAX_IDLE_EXPIRY_S, max(announced / 2, announced - 2))
    return default_s


_NO_DECODER = object()


class PoolResponse:
    """An upstream response with its head read and its body not yet."""

    def __init__(self, parser: ResponseParser, conn: _Connection, first: bytes) -> None:
        self._parser = parser
        self._conn = conn
        self._first = first
        self.status = parser.status
        self.headers = parser.headers
        #: the content coding, lower-cased ("" for none); one occ cannot decode fails :meth:`chunks`
        #: only, so that an error status is never hidden behind it (:meth:`raw_chunks` still reads)
        self.content_encoding = parser.headers.get("content-encoding", "").strip().lower()
        self._decoder: Any = _NO_DECODER  # read()'s decoder, made on its first call
        self._compressed = 0

    @property
    def complete(self) -> bool:
        return self._parser.complete

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, transfer and content coding removed.

        Raises:
            UpstreamProtocolError: a content coding occ does not decode, or a broken body.
        """
        try:
            decoder = content_decoder(self.content_encoding)
        except UpstreamProtocolError:
            self._parser.forbid_reuse()  # the body is left unread: nothing of it may reach a next request
            raise
        async for data in self._read(decoder):
            yield data

    async def read(self) -> bytes:
        """The body's next bytes as they arrive, transfer and content coding removed; ``b""`` at its end.

        The same bytes as :meth:`chunks`, one coroutine call per upstream read with no async generator in
        between: what a streaming pump awaits once per upstream chunk.

        Raises:
            UpstreamProtocolError: a content coding occ does not decode, or a broken body.
        """
        decoder = self._decoder
        if decoder is _NO_DECODER:
            try:
                decoder = self._decoder = content_decoder(self.content_encoding)
            except UpstreamProtocolError:
                self._parser.forbid_reuse()  # the body is left unread: nothing of it may reach a next request
                raise
        parser = self._parser
        while True:
            data, self._first = self._first, b""
            if data and decoder is not None:
                self._compressed += len(data)
                data = _decompress(decoder, data)
            if data:
                return data
            if parser.complete:
                if decoder is not None and self._compressed and not decoder.eof:
                    raise UpstreamProtocolError("upstream's compressed body ended before its compressed stream did")
                return b""
            try:
                raw = await self._conn.receive()
            except trio.BrokenResourceError as exc:
                raise UpstreamProtocolError(f"upstream connection broke mid-body: {_cause(exc)}") from None
            if not raw:
                parser.feed_eof()  # raises unless the body was framed to end here
                continue
            self._first = parser.feed(raw)

    async def raw_chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes with the transfer coding removed and the content coding kept (an error
        body, read before anything is decided about its coding: :func:`decode_error_body`)."""
        async for data in self._read(None):
            yield data

    async def _read(self, decoder: Any) -> AsyncIterator[bytes]:
        parser = self._parser
        receive = self._conn.receive
        data = self._first
        self._first = b""
        compressed = 0
        while True:
            if data:
                if decoder is not None:
                    compressed += len(data)
                    data = _decompress(decoder, data)
                if data:
                    yield data
            if parser.complete:
                if decoder is not None and compressed and not decoder.eof:
                    raise UpstreamProtocolError("upstream's compressed body ended before its compressed stream did")
                break
            try:
                raw = await receive()
            except trio.BrokenResourceError as exc:
                raise UpstreamProtocolError(f"upstream connection broke mid-body: {_cause(exc)}") from None
            if not raw:
                parser.feed_eof()  # raises unless the body was framed to end here
                data = b""
                continue
            data = parser.feed(raw)


def content_decoder(encoding: str) -> Any:
    """A decompressor for a ``Content-Encoding`` value, None for none.

    Raises:
        UpstreamProtocolError: a coding occ does not decode (``br``, ``zstd``...; occ asks for
            ``gzip, deflate`` only).
    """
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _DeflateDecoder()
    if encoding not in ("", "identity"):
        raise UpstreamProtocolError(f"upstream used content-encoding {encoding!r}, which occ does not decode")
    return None


def decode_error_body(raw: bytes, encoding: str) -> bytes:
    """An error response's raw body, decoded when occ can; otherwise nothing, so that the status (a 429
    or 503 stays a 429 or 503) and its headers speak for it, never a protocol error nor binary noise."""
    try:
        decoder = content_decoder(encoding)
        return raw if decoder is None else decoder.decompress(raw)
    except (UpstreamProtocolError, zlib.error):
        return b""


def _decompress(decoder: Any, data: bytes) -> bytes:
    try:
        return decoder.decompress(data)
    except zlib.error as exc:
        raise UpstreamProtocolError(f"upstream body is not valid compressed data: {exc}") from None


class _DeflateDecoder:
    """``deflate`` as servers really send it: zlib-wrapped, or (against the RFC) raw."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._first = b""

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            header = self._first
            wrapped = (header[0] & 0x0F) == 8 and ((header[0] << 8) | header[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data, self._first = self._first, b""
        return self._inner.decompress(data)

    @property
    def eof(self) -> bool:
        return self._inner is not None and self._inner.eof


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    return f"{type(cause).__name__}: {cause}"[:200]


class ConnectionPool:
    """Keep-alive connections per origin. Use as ``async with`` for the lifetime of serving."""

    def __init__(self, *, ssl_context: Callable[[], ssl.SSLContext], max_idle_per_origin: int = 256,
                 idle_expiry_s: float = IDLE_EXPIRY_S, drain_s: float = 5.0, max_active: int = 1024) -> None:
        self._ssl_context_factory = ssl_context
        #: requests in flight (connecting, exchanging, read or drained), all origins together: each
        #: holds a socket, and sockets are a finite resource of the process
        self._active = trio.Semaphore(max_active, max_value=max_active)
        self._max_active = max_active
        self._ssl_context: ssl.SSLContext | None = None
        self._max_idle = max_idle_per_origin
        self._expiry = idle_expiry_s
        self._idle: dict[Origin, list[_Connection]] = {}
        self._drainer: trio.Nursery | None = None
        self._drain_s = drain_s
        self._closed = False
        #: connections opened, and requests sent on a kept-alive one, over the pool's life (/status)
        self.opened = 0
        self.reused = 0
        #: requests written whole (a resend counts again): what the upstreams should have received
        self.sent = 0

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                _close_quietly(conn)

    @property
    def busy(self) -> int:
        """Requests holding a connection now (connecting, exchanging, being read or drained)."""
        return self._max_active - self._active.value

    def idle_count(self, origin: Origin | None = None) -> int:
        if origin is not None:
            return len(self._idle.get(origin, ()))
        return sum(len(conns) for conns in self._idle.values())

    @asynccontextmanager
    async def request(self, origin: Origin, target: str, headers: dict[str, str], body: bytes, *,
                      connect_timeout_s: float) -> AsyncIterator[PoolResponse]:
        """Send ``POST target`` and yield the response once its head has arrived.

        Leaving the block returns the connection to the pool if its response was read to the
        end and the server allows reuse, and closes it otherwise (a cancelled request included).

        Raises:
            UpstreamConnectError: no connection could be made within ``connect_timeout_s``.
            UpstreamProtocolError: the connection broke or the response was not valid HTTP/1.1.
        """
        if self._closed:
            raise RuntimeError("ConnectionPool used after aclose()")
        head = request_head("POST", target, origin.host_header, headers, len(body))
        payload = head + body if len(body) < 256 * 1024 else None
        await self._acquire_slot(connect_timeout_s)
        slot_passed_on = False  # to _release (here or in the drain task), which gives it back
        try:
            response, conn = await self._send(origin, target, head, body, payload, connect_timeout_s)
            try:
                yield response
            except BaseException:
                # An error raised after the body was read to its end (an error status, say) leaves a
                # connection as good as a success does; any other leaves it mid-response.
                slot_passed_on = True
                self._release(conn, response)
                raise
            parser = response._parser
            if not parser.complete and self._drainer is not None and not self._closed:
                try:
                    self._drainer.start_soon(self._drain, conn, response)
                    slot_passed_on = True
                    return
                except RuntimeError:  # the server is shutting down: its nursery takes no new tasks
                    pass
            slot_passed_on = True
            self._release(conn, response)
        finally:
            if not slot_passed_on:
                self._active.release()

    @asynccontextmanager
    async def slot(self, timeout_s: float) -> AsyncIterator[None]:
        """Hold one of the pool's in-flight slots for a request made another way (through a proxy,
        by httpx), so the cap counts every upstream request of the process.

        Raises:
            Overloaded: no slot came free within ``timeout_s``.
        """
        await self._acquire_slot(timeout_s)
        try:
            yield
        finally:
            self._active.release()

    async def _acquire_slot(self, timeout_s: float) -> None:
        try:
            self._active.acquire_nowait()  # the common case, without a checkpoint
            return
        except trio.WouldBlock:
            pass
        with trio.move_on_after(timeout_s):
            await self._active.acquire()
            return
        raise Overloaded(f"occ is overloaded: all {self._max_active} upstream connections were busy for "
                         f"{timeout_s:g}s")

    async def _send(self, origin: Origin, target: str, head: bytes, body: bytes, payload: bytes | None,
                    connect_timeout_s: float) -> tuple[PoolResponse, _Connection]:
        """The request on a kept-alive connection (resent once on a fresh one if that one turns out
        stale), up to the response head."""
        fresh_only = False
        while True:
            conn = None if fresh_only else self._take_idle(origin)
            reused = conn is not None
            if reused:
                self.reused += 1
            else:
                conn = await self._connect(origin, connect_timeout_s)
            try:
                response = await self._exchange(conn, head, body, payload, reused)
            except _Stale:
                _close_quietly(conn)
                fresh_only = True  # one resend, on a new connection: never a third copy
                continue
            except BaseException:
                _close_quietly(conn)
                raise
            return response, conn

    def drain_in(self, nursery: trio.Nursery) -> None:
        """Let responses that their reader left early finish in ``nursery``, so their connections
        can be reused.

        A stream's reader stops at the protocol's last event (``[DONE]``, ``message_stop``); the
        HTTP end of the body (the last chunk) often follows in a separate write. Without this the
        connection would be closed, and the next request would pay a new TCP and TLS handshake.
        """
        self._drainer = nursery

    async def sweep_idle(self) -> None:
        """Close expired idle connections every :data:`IDLE_EXPIRY_S`, until cancelled (run it for the
        server's lifetime). Without traffic nothing takes or returns a connection, so idle ones past their
        expiry would otherwise stay open (as CLOSE_WAIT sockets once the server closes them)."""
        while not self._closed:
            await trio.sleep(self._expiry or IDLE_EXPIRY_S)
            now = trio.current_time()
            for origin, conns in list(self._idle.items()):
                keep = []
                for conn in conns:
                    if self._expired(conn, now):
                        _close_quietly(conn)
                    else:
                        keep.append(conn)
                if keep:
                    self._idle[origin] = keep
                else:
                    self._idle.pop(origin, None)

    async def _drain(self, conn: _Connection, response: PoolResponse) -> None:
        try:
            with trio.move_on_after(self._drain_s):
                size = 0
                async for chunk in response.chunks():
                    size += len(chunk)
                    if size > _DRAIN_LIMIT:
                        break
        except UpstreamProtocolError:
            pass
        finally:  # cancelled too (server shutdown): the connection is closed, not left to the GC
            self._release(conn, response)

    def _release(self, conn: _Connection, response: PoolResponse) -> None:
        """Back to the pool if the response ended where its framing said and the server allows
        it; closed otherwise; and the request's slot is free. Synchronous, so no cancellation can
        land in between."""
        try:
            if response._parser.reusable and not self._closed:
                conn.expiry_s = keep_alive_expiry(response.headers, self._expiry)
                self._put_idle(conn)
            else:
                _close_quietly(conn)
        finally:
            self._active.release()

    async def _exchange(self, conn: _Connection, head: bytes, body: bytes, payload: bytes | None,
                        reused: bool) -> PoolResponse:
        parser = ResponseParser()
        answered = False  # any byte at all (a 100 Continue included) means the server saw the request
        send_failed: trio.BrokenResourceError | None = None
        try:
            if payload is not None:
                await conn.send(payload)
            else:
                await conn.send(head)
                await conn.send(body)
            self.sent += 1
        except trio.BrokenResourceError as exc:
            # The server may have answered early (a 413 or 401 before reading a large body) and
            # closed: its answer, if it can still be read, says more than the broken pipe.
            send_failed = exc
        unsent = reused and send_failed is not None  # the write failed before the request was complete
        try:
            while True:
                raw = await conn.receive()
                if not raw:
                    if send_failed is not None and not answered:
                        break
                    if not answered:
                        raise UpstreamProtocolError(
                            "upstream closed the connection after the request was sent, without answering "
                            "(not sent again: the upstream may have acted on it)")
                    parser.feed_eof()
                answered = True
                data = parser.feed(raw)
                if parser.head_done:
                    if send_failed is not None:
                        parser.forbid_reuse()  # the server has not read our whole request
                    return PoolResponse(parser, conn, data)
        except trio.BrokenResourceError as exc:
            if unsent and not answered:
                raise _Stale from None
            raise UpstreamProtocolError(f"upstream connection broke: {_cause(send_failed or exc)}") from None
        if unsent:
            raise _Stale
        raise UpstreamProtocolError(f"upstream connection broke while sending the request: {_cause(send_failed)}")

    def _take_idle(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        if not conns:
            return None
        now = trio.current_time()
        while conns:
            conn = conns.pop()
            if not self._expired(conn, now) and conn.looks_alive():
                return conn
            _close_quietly(conn)
        return None

    def _expired(self, conn: _Connection, now: float) -> bool:
        expiry = self._expiry if conn.expiry_s is None else conn.expiry_s
        return now - conn.idle_since >= expiry

    def _put_idle(self, conn: _Connection) -> None:
        conns = self._idle.setdefault(conn.origin, [])
        now = trio.current_time()
        # oldest first: the connections a burst left behind expire here, not only when taken
        while conns and (len(conns) >= self._max_idle or self._expired(conns[0], now)):
            _close_quietly(conns.pop(0))
        conn.idle_since = now
        conns.append(conn)

    async def _connect(self, origin: Origin, timeout_s: float) -> _Connection:
        stream: trio.abc.Stream | None = None
        try:
            with trio.fail_after(timeout_s):
                tcp = await trio.open_tcp_stream(origin.host, origin.port)
                stream = tcp
                if origin.scheme == "https":
                    if self._ssl_context is None:
                        self._ssl_context = self._ssl_context_factory()
                    tls = trio.SSLStream(tcp, self._ssl_context, server_hostname=origin.host,
                                         https_compatible=True)
                    stream = tls
                    await tls.do_handshake()
        except trio.TooSlowError:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise UpstreamConnectError(f"cannot connect to upstream {origin.host}:{origin.port}: "
                                       f"no connection within {timeout_s:g}s") from None
        except (OSError, trio.BrokenResourceError, UnicodeError, ValueError) as exc:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise UpstreamConnectError(f"cannot connect to upstream {origin.host}:{origin.port}: "
                                       f"{_describe_os_error(exc)}") from None
        except BaseException:  # cancelled half-way: the half-open socket must not outlive us
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
        self.opened += 1
        return _Connection(origin, stream, tcp.socket)


def _close_quietly(conn: _Connection) -> None:
    """Close a connection without a checkpoint, so a cancelled caller cannot skip it. Nothing else
    reads or writes it by then, so dropping the socket is all closing means (the server learns at
    once; a TLS close_notify to a peer we are abandoning helps no one)."""
    try:
        conn.socket.close()
    except OSError:
        pass


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, trio.BrokenResourceError):
        exc = exc.__cause__ or exc
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"[:200]

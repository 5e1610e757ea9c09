"""hypercorn's trio worker as occ runs it: the same server, with writes the socket takes made at once.

hypercorn writes every piece of a response (the head, each body chunk) through its connection's
``protocol_send``: its send lock (a checkpoint), a shielded scope, then trio's ``send_all`` (two more
checkpoints around one ``send``). For a streamed answer that is once per upstream delta, and each of those
checkpoints is a pass of trio's scheduler: measured, the whole stack's per-delta cost was mostly these
passes, not the work (benchmarks/RESULTS.md, "the floor"). :class:`_TCPServer` keeps hypercorn's path for
everything but the common case, a plain TCP connection whose socket takes the whole write at once and which
no other write holds: that write is made there and then, with no checkpoint, which is what ``send_all``
would have done after its checkpoints. What the socket does not take (a client reading slowly), a write
while another holds the lock, TLS connections and every error go through hypercorn's own code, unchanged.

:func:`worker_serve` is hypercorn's ``hypercorn.trio.run.worker_serve`` (0.17 and 0.18 are the same
here) serving with that connection class: hypercorn offers no other way to choose it. On a plain TCP
connection the HTTP/1.1 protocol is hypercorn's with a request's head read once (:mod:`occ.server.h11_protocol`);
nothing else of hypercorn is changed: its HTTP/2, lifespan, graceful shutdown and limits are its own.

Two more passes of the scheduler go per request, measured at c=1 (benchmarks/RESULTS.md):

- **The app's queue.** hypercorn hands a request's app its body and its disconnect through a trio memory
  channel, whose ``send`` and ``receive`` each yield to the scheduler even when they need not wait: about
  five task steps and three scheduler passes a request. :class:`_AppQueue` is the same bounded queue
  (``max_app_queue_size``: hypercorn still stops reading when the app does not read) that waits only when it
  must.
- **One write per response start and end.** hypercorn writes a response's head when the app sends
  ``http.response.start``, and its first body part as another write (a whole JSON answer likewise). On a
  plain HTTP/1.x connection, a head the app marks :data:`BODY_FOLLOWS` (occ's relay and JSON answers do) is
  held and written with the first body part in one ``sendmsg``, and a send that ends a body is one write
  (:class:`_OneWritePerSend`): the same bytes in the same order, a syscall and a wake-up of the client
  fewer. The parts of a stream between its first and last go out as before, one write each, at once.

And one cancel scope per read: hypercorn reads each connection under ``trio.fail_after(read_timeout or
inf)``, a scope entered and left around every read even with no read timeout, where it can never fire;
:meth:`_TCPServer._read_without_timeout` is the same loop without it (-20 us a request at c=32).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from random import randint
from typing import Any

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol as _HypercornH11Protocol
from hypercorn.protocol.http_stream import ASGIHTTPState
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.task_group import TaskGroup, _handle
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ASGIReceiveEvent, ConnectionState, LifespanState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr

from occ.observe.logs import get_logger
from occ.server.h11_protocol import H11Protocol

log = get_logger(__name__)

__all__ = ["BODY_FOLLOWS", "ON_DISCONNECT", "WHOLE_WRITES", "on_disconnect", "worker_serve", "writes_whole"]

#: The key, in each request's ``scope["state"]``, by which an HTTP/1.1 request served here says that every
#: ASGI send it makes reaches the socket whole or not at all: nothing between the ASGI send and the socket
#: write can be cancelled (hypercorn's HTTP/1.1 path has no checkpoint before ``protocol_send``, and
#: :class:`_TCPServer` shields all of its own). occ's relay then needs no shielded scope of its own per write.
WHOLE_WRITES = "occ.whole_writes"


#: A key an app may set in an ``http.response.start`` message: its next send (the first body part) follows at
#: once, with no wait between. hypercorn writes a head when the start is sent; on occ's connection (plain
#: HTTP/1.x) a head so marked is held and written with that body part in one write. Other servers, and
#: HTTP/2, ignore the key. An app that set it and then fails still has its head written (before the close).
BODY_FOLLOWS = "occ.body_follows"

#: The key, in each request's ``scope["extensions"]`` on occ's connection, of a function that calls a
#: callback the moment the request's ``http.disconnect`` comes (at once if it already has) and returns a
#: function that forgets it. The disconnect needs no task waiting in ``receive()`` for it then: the request's
#: scope is cancelled from where hypercorn learns of it (:func:`on_disconnect`).
ON_DISCONNECT = "occ.on_disconnect"


def on_disconnect(scope: dict[str, Any]) -> Callable[[Callable[[], None]], Callable[[], None]] | None:
    """The request's :data:`ON_DISCONNECT` registration, or None under another server."""
    extensions = scope.get("extensions")
    return extensions.get(ON_DISCONNECT) if extensions else None


def writes_whole(scope: dict[str, Any]) -> bool:
    """Whether ``scope`` is a request on occ's own HTTP/1.1 connection (:data:`WHOLE_WRITES`). HTTP/2 is
    not: its sends wait for flow control before they reach the connection."""
    state = scope.get("state")
    return bool(state and state.get(WHOLE_WRITES)) and scope.get("http_version") in ("1.0", "1.1")


class _TCPServer(TCPServer):
    """hypercorn's connection, whose writes skip the scheduler when the socket takes them whole."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stream = self.stream
        # the standard-library socket under a plain TCP stream; None for TLS (its bytes are not the socket's)
        self._raw = getattr(stream.socket, "_sock", None) if type(stream) is trio.SocketStream else None
        #: while an ASGI send that starts or ends a response runs, and from a head marked BODY_FOLLOWS to its
        #: first body part: the bytes made meanwhile, written in one write when that send returns
        self._held: list[bytes] | None = None
        if self._raw is not None:
            self.app = _OneWritePerSend(self.app, self)
        #: writes made at once, and those that went hypercorn's way (tests and benchmarks read them)
        self.direct_writes = 0
        self.queued_writes = 0
        # the keep-alive watch (see _watch_idle): whether the connection is idle, when its keep-alive time
        # ends, the scope of the watch's wait (whose deadline is that end while idle, none while busy), and
        # the event the watch waits on when the worker terminates during a request
        self._is_idle = False
        self._idle_deadline = math.inf
        self._idle_scope: trio.CancelScope | None = None
        self._went_idle: trio.Event | None = None
        self._watching = False
        self._first_request_seen = False
        #: the watch's whole life: it ends when the connection reads no more (no request can come then)
        self._watch_scope = trio.CancelScope()

    async def run(self) -> None:
        """hypercorn's, with a failure of this connection's protocol code kept to this connection. hypercorn
        lets any exception out of it into the listeners' nursery, which ends every other connection and the
        server: hypercorn 0.17 with h2 4 raises ``TypeError`` on any h2c upgrade (``curl --http2
        http://...``), so one request stopped occ. The connection is closed (hypercorn's own ``finally``)
        and the failure logged by its type only: its text can quote the request's headers."""
        try:
            await super().run()
        except Exception as exc:  # a cancellation (a BaseException) still goes up
            log.error("occ's HTTP server closed a connection its protocol code failed on (%s); the others go on",
                      _names(exc))

    async def protocol_send(self, event: Event) -> None:
        raw = self._raw
        held = self._held
        if held is not None:
            if type(event) is RawData:
                if event.data:
                    held.append(event.data)
                return
            await self.write_held()  # a close or an idle comes after what was held, as it was sent
        if raw is not None and type(event) is RawData and not self.send_lock.locked():
            data = event.data
            if not data:  # h11's end of a Content-Length body: nothing to write, no syscall for it
                return
            try:
                sent = raw.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:  # the peer is gone: hypercorn's path meets the same error and handles it its way
                sent = -1
            if sent == len(data):
                self.direct_writes += 1
                return
            if sent > 0:
                event = RawData(data=memoryview(data)[sent:])  # part is on the wire: the rest (no copy) below
        if type(event) is Updated:
            await self._updated(event.idle)
            return
        if type(event) is RawData:
            # hypercorn's path, shielded whole (its own shield starts only after its send lock): what h11 has
            # framed reaches the socket whatever is cancelled meanwhile, so no chunk is dropped or cut in two
            # (WHOLE_WRITES). The client leaving ends the write; one that stays but reads nothing is ended by
            # the kernel after client_write_timeout_ms (TCP_USER_TIMEOUT, occ.server.serve).
            self.queued_writes += 1
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
            return
        await super().protocol_send(event)

    def frames_chunks_here(self) -> bool:
        """Whether a middle body part of the response under way may be framed here, as h11's chunked writer
        frames it (``%x CRLF data CRLF``), past hypercorn's stream and h11: ~11 us a part through them, for a
        write that changes no state in either (h11's chunked writer keeps none, and a body part moves neither
        h11's state nor hypercorn's stream). Only while h11 is sending a chunked body (not HTTP/1.0's
        close-delimited one, not a Content-Length one, whose count h11 keeps) of a response hypercorn's
        stream is still sending (not a HEAD's, not one whose client has gone): otherwise hypercorn's way.
        Reads hypercorn's and h11's attributes; where they are not there (another version), always False."""
        h11_protocol = getattr(self.protocol, "protocol", None)
        connection = getattr(h11_protocol, "connection", None)
        stream = getattr(h11_protocol, "stream", None)
        return (type(getattr(connection, "_writer", None)).__name__ == "ChunkedWriter"
                and getattr(connection, "our_state", None) is h11.SEND_BODY
                and getattr(stream, "state", None) is ASGIHTTPState.RESPONSE
                and getattr(stream, "closed", True) is False)

    def hold(self) -> None:
        """Hold the bytes of the writes that follow, until :meth:`write_held` (with what is held already)."""
        if self._held is None:
            self._held = []

    async def write_held(self) -> None:
        """Write what was held, in one syscall when the socket takes it all and no other write holds the lock;
        the rest hypercorn's way, shielded, in order (as :meth:`protocol_send` does for one write)."""
        held, self._held = self._held, None
        if not held:
            return
        raw = self._raw
        assert raw is not None
        sent = 0
        if not self.send_lock.locked():
            try:
                sent = raw.sendmsg(held) if len(held) > 1 else raw.send(held[0])
            except BlockingIOError:
                sent = 0
            except OSError:  # the peer is gone: hypercorn's path meets the same error and handles it its way
                sent = 0
            if sent == sum(len(part) for part in held):
                self.direct_writes += 1
                return
        # hypercorn's path (its protocol_send), for all that is left under one hold of the send lock: released
        # between the parts, it could let another writer's bytes in between a head and its body
        self.queued_writes += 1
        with trio.CancelScope(shield=True):
            async with self.send_lock:
                try:
                    for part in _after(held, sent):
                        await self.stream.send_all(part)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    await self.protocol.handle(Closed())

    async def _updated(self, idle: bool) -> None:
        """The connection went idle (a response ended) or busy (a request came). hypercorn stops and starts
        a task for every request (a lock, a nursery start, a cancel: ~30 us); here one watch task per
        connection waits in one cancel scope whose deadline moves instead: the keep-alive time's end while
        idle, none while busy, so a request wakes no task. The first request stops the task hypercorn
        started with the connection."""
        scope = self._idle_scope
        if not idle:
            if not self._first_request_seen:
                self._first_request_seen = True
                await self.idle_task.stop()
            self._is_idle = False
            self._idle_deadline = math.inf
            if scope is not None:
                scope.deadline = math.inf
            return
        self._is_idle = True
        self._idle_deadline = trio.current_time() + self.config.keep_alive_timeout
        if scope is not None:
            scope.deadline = self._idle_deadline
        went_idle = self._went_idle
        if went_idle is not None:
            went_idle.set()
        if not self._watching:
            self._watching = True
            self._task_group.spawn(self._watch_idle)

    async def _read_data(self) -> None:
        """hypercorn's read loop; when it ends (the client closed, or the connection did) so does the watch,
        which would otherwise wait for an idle that never comes (``Connection: close``, a client gone
        mid-request) and keep the connection's task group, and the worker's shutdown, waiting."""
        task_group = self._task_group
        task_group.spawn_app = partial(_spawn_app, task_group)  # type: ignore[method-assign]
        wrapper = self.protocol
        if self._raw is not None and type(wrapper.protocol) is _HypercornH11Protocol:  # nothing read yet
            wrapper.protocol = H11Protocol(wrapper.app, wrapper.config, wrapper.context, wrapper.task_group,
                                           wrapper.state, wrapper.ssl, wrapper.client, wrapper.server, wrapper.send)
        try:
            if self.config.read_timeout:
                await super()._read_data()
            else:
                await self._read_without_timeout()
        finally:
            self._watch_scope.cancel()

    async def _read_without_timeout(self) -> None:
        """hypercorn's read loop (0.17 and 0.18 differ only in a no-op ``bytes()``) when it has no read
        timeout (occ sets none): hypercorn enters ``trio.fail_after(inf)`` around every read, a cancel scope
        that can never fire, at ~6 us each (benchmarks/RESULTS.md); this loop is the same without it."""
        receive_some = self.stream.receive_some
        handle = self.protocol.handle
        while True:
            try:
                data = await receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await handle(RawData(bytes(data)))
            if data == b"":
                break
        await handle(Closed())

    async def _watch_idle(self) -> None:
        with self._watch_scope:
            await self._watch_idle_periods()

    async def _watch_idle_periods(self) -> None:
        """hypercorn's idle timeout, for the connection's whole life: while the connection is idle, close it
        after ``keep_alive_timeout``, or at once when the worker is shutting down (``context.terminated``);
        while a request runs, nothing (the scope's deadline is none then, and a worker that terminates
        meanwhile closes the connection when the request is done)."""
        while True:
            try:
                with trio.CancelScope(deadline=self._idle_deadline) as scope:
                    self._idle_scope = scope  # KEEP-ALIVE DEADLINE: moved by every request and every idle
                    await self.context.terminated.wait()
            finally:  # the watch cancelled too (the connection reads no more): no deadline is moved after it
                self._idle_scope = None
            if self.context.terminated.is_set():
                while not self._is_idle:  # a request runs: the connection closes once it is done
                    self._went_idle = trio.Event()
                    await self._went_idle.wait()
                break
            # the deadline came; a request that arrived meanwhile (while trio delivered the cancel) has made
            # the connection busy again, or been and gone and set a later deadline: then a new wait
            if self._is_idle and trio.current_time() >= self._idle_deadline:
                break
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


def _names(exc: BaseException) -> str:
    """The exception's type, or its group's members' types (a task group wraps what its tasks raise)."""
    if isinstance(exc, BaseExceptionGroup):
        return ", ".join(_names(inner) for inner in exc.exceptions)
    return type(exc).__name__


def _after(parts: list[bytes], sent: int) -> list[bytes | memoryview]:
    """What of ``parts`` is left once the first ``sent`` bytes are written (no copy of a part begun)."""
    rest: list[bytes | memoryview] = []
    for part in parts:
        if sent >= len(part):
            sent -= len(part)
            continue
        rest.append(memoryview(part)[sent:] if sent else part)
        sent = 0
    return rest


class _OneWritePerSend:
    """The app as hypercorn calls it on a plain TCP connection, with a response's start and end written in one
    syscall each (:meth:`_TCPServer.hold`). hypercorn writes a head when ``http.response.start`` is sent, each
    body part, and the end of a body (a chunked body's last chunk), each as a write of its own. Here a head
    marked :data:`BODY_FOLLOWS` is held and goes out with the first body part; a send that ends the body goes
    out in one write with its last part.

    Nothing in hypercorn's HTTP/1.1 send path waits, so holding changes no order: what a send made is
    written before it returns (a marked head, before the next send returns), before any other task writes.
    HTTP/2 sends wait for flow control, which could need the peer to read what is held, so they are never held.
    """

    __slots__ = ("_app", "_connection")

    def __init__(self, app: AppWrapper, connection: _TCPServer) -> None:
        self._app = app
        self._connection = connection

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]], sync_spawn: Callable[..., Any],
                       call_soon: Callable[..., Any]) -> None:
        if scope["type"] != "http" or scope.get("http_version") not in ("1.0", "1.1"):
            await self._app(scope, receive, send, sync_spawn, call_soon)
            return
        connection = self._connection
        body_started = False

        async def send_in_one_write(message: dict[str, Any]) -> None:
            nonlocal body_started
            if body_started and message.get("more_body", False):  # a middle part: one write already
                body = message.get("body", b"")
                if body and connection.frames_chunks_here():
                    await connection.protocol_send(RawData(data=b"%x\r\n%b\r\n" % (len(body), body)))
                    return
                await send(message)
                return
            kind = message["type"]
            body_started = body_started or kind == "http.response.body"
            connection.hold()
            if kind == "http.response.start" and message.get(BODY_FOLLOWS):
                try:
                    await send(message)  # the head stays held: the first body part writes it (an error: the close)
                except BaseException:  # refused (a second start, say): hold nothing for parts that never come
                    await connection.write_held()
                    raise
                return
            try:
                await send(message)
            finally:
                await connection.write_held()

        await self._app(scope, receive, send_in_one_write, sync_spawn, call_soon)


class _AppQueue:
    """What hypercorn hands a request's app (its body parts, the disconnect), as hypercorn's memory channel
    of ``max_app_queue_size`` does, but yielding to the scheduler only to wait: a message put while there
    is room, or received while one is there, is a method call. A full queue still stops hypercorn's reading
    until the app reads (a body is never buffered past the bound). A cancelled ``receive`` takes nothing.

    The disconnect also calls the callbacks given to :meth:`on_disconnect`: an app that reads nothing more
    once it has the body learns of it at once.

    The disconnect never waits for room, and ends a put that does. hypercorn puts it from the app's own
    send when the response ends (its ``StreamClosed``), with that send's bytes held (:class:`_OneWritePerSend`):
    in a queue full of body the app did not read (an answer given before reading, a 413), a wait there was
    for a read that app can never make, so the answer was never written and the request never ended
    (hypercorn's channel waits there too). And a body put that waits when the request ends would wait
    forever, and the connection's reading with it (no next request, no end of the connection's task): the
    request is over, so what comes after its disconnect is dropped, as nothing follows ``http.disconnect``.
    """

    __slots__ = ("_arrived", "_callbacks", "_disconnected", "_messages", "_size", "_taken")

    def __init__(self, size: int) -> None:
        self._messages: deque[ASGIReceiveEvent] = deque()
        self._size = max(1, size)
        self._arrived = trio.lowlevel.ParkingLot()
        self._taken = trio.lowlevel.ParkingLot()
        self._disconnected = False
        self._callbacks: list[Callable[[], None]] = []

    async def put(self, message: ASGIReceiveEvent) -> None:
        if self._disconnected:  # the request is over: nothing comes after its disconnect
            return
        if message["type"] == "http.disconnect":
            self._disconnected = True
            self._messages.append(message)  # past the bound by this one message, never waiting (see above)
            if self._arrived:
                self._arrived.unpark()
            if self._taken:
                self._taken.unpark_all()  # a body put waiting for room: its part is after the end now
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback()
            return
        while len(self._messages) >= self._size:
            await self._taken.park()
            if self._disconnected:
                return
        self._messages.append(message)
        if self._arrived:
            self._arrived.unpark()

    async def receive(self) -> ASGIReceiveEvent:
        while not self._messages:
            await self._arrived.park()
        message = self._messages.popleft()
        if self._taken:
            self._taken.unpark()
        return message

    def on_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the disconnect comes, or now if it has; returns what forgets it."""
        if self._disconnected:
            callback()
            return _nothing
        self._callbacks.append(callback)

        def forget() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return forget


def _nothing() -> None:
    pass


async def _spawn_app(task_group: TaskGroup, app: AppWrapper, config: HypercornConfig, scope: Any,
                     send: Callable[[Any], Awaitable[None]]) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
    """hypercorn's ``TaskGroup.spawn_app`` with :class:`_AppQueue` for its memory channel, and the queue's
    :data:`ON_DISCONNECT` in an HTTP request's scope."""
    queue = _AppQueue(config.max_app_queue_size)
    if scope.get("type") == "http":
        scope.setdefault("extensions", {})[ON_DISCONNECT] = queue.on_disconnect
    task_group.spawn(_handle, app, config, scope, queue.receive, send, trio.to_thread.run_sync,
                     trio.from_thread.run)
    return queue.put


async def worker_serve(
    app: AppWrapper,
    config: HypercornConfig,
    *,
    sockets: Sockets,
    shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``sockets`` (bound and listening) as ``hypercorn.trio.run.worker_serve`` does, with
    :class:`_TCPServer` for each connection."""
    config.set_statsd_logger_class(StatsdLogger)

    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    max_requests = None
    if config.max_requests is not None:
        max_requests = config.max_requests + randint(0, config.max_requests_jitter)
    context = WorkerContext(max_requests)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()

        async with trio.open_nursery() as server_nursery:
            ssl_context = config.create_ssl_context()
            listeners: list[trio.SSLListener[trio.SocketStream] | trio.SocketListener] = []
            binds = []
            for sock in sockets.secure_sockets:
                listeners.append(trio.SSLListener(trio.SocketListener(trio.socket.from_stdlib_socket(sock)),
                                                  ssl_context, https_compatible=True))
                bind = repr_socket_addr(sock.family, sock.getsockname())
                binds.append(f"https://{bind}")
                await config.log.info(f"Running on https://{bind} (CTRL + C to quit)")
            for sock in sockets.insecure_sockets:
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                bind = repr_socket_addr(sock.family, sock.getsockname())
                binds.append(f"http://{bind}")
                await config.log.info(f"Running on http://{bind} (CTRL + C to quit)")
            if sockets.quic_sockets:
                raise ValueError("occ does not serve HTTP/3 (QUIC) sockets")

            task_status.started(binds)
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    if shutdown_trigger is not None:
                        nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    state = ConnectionState({**lifespan_state, WHOLE_WRITES: True})
                    nursery.start_soon(partial(
                        trio.serve_listeners,
                        partial(_TCPServer, app, config, context, state),
                        listeners,
                        handler_nursery=server_nursery,
                    ))
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, other_errors = error.split((ShutdownError, KeyboardInterrupt))
                if other_errors is not None:
                    raise other_errors from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout

        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()

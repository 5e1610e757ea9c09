"""occ's hypercorn connection (occ.server.hypercorn_worker._TCPServer): a write the socket takes whole is
made at once with no checkpoint; everything else (a part the socket did not take, a write while another
holds the lock, a peer that is gone, TLS) goes hypercorn's way, and the bytes reach the peer whole and in
order whatever is cancelled meanwhile. Real TCP sockets on 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import select
import socket
import ssl
import time
from functools import partial
from typing import Any

import h11
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData, Updated
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app
from support.asgi_servers import hypercorn_config as _config
from support.asgi_servers import lifespan as _lifespan
from support.asgi_servers import raw_response as _raw_response
from support.asgi_servers import serve_on_occ as _serve_on_occ

from occ.server.hypercorn_worker import (
    BODY_FOLLOWS,
    WHOLE_WRITES,
    _AppQueue,
    _OneWritePerSend,
    _TCPServer,
    on_disconnect,
    worker_serve,
    writes_whole,
)

LIMIT = 10
BIG = bytes(range(256)) * 16 * 1024  # 4 MiB: more than both socket buffers hold


class _Protocol:
    """Stands for hypercorn's protocol: records what the connection tells it."""

    def __init__(self) -> None:
        self.events: list[object] = []

    async def handle(self, event: object) -> None:
        self.events.append(event)


def _tcp_pair(small_buffers: bool = False) -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    if small_buffers:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    return server, client


def _server(sock: socket.socket, stream: trio.abc.Stream | None = None) -> tuple[_TCPServer, _Protocol]:
    stream = stream if stream is not None else trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    tcp = _TCPServer(None, HypercornConfig(), WorkerContext(None), {}, stream)
    protocol = _Protocol()
    tcp.protocol = protocol  # type: ignore[assignment]
    return tcp, protocol


async def _read_all(peer: trio.SocketStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = await peer.receive_some(1 << 20)
        assert part, "the connection closed early"
        data += part
    return bytes(data)


async def test_a_write_the_socket_takes_is_made_at_once_without_a_checkpoint():
    sock, peer_sock = _tcp_pair()
    tcp, protocol = _server(sock)
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(peer_sock))
    with trio.testing.assert_no_checkpoints():
        await tcp.protocol_send(RawData(data=b"HTTP/1.1 200 OK\r\n\r\n"))
        await tcp.protocol_send(RawData(data=b"5\r\nhello\r\n"))
    assert tcp.direct_writes == 2 and tcp.queued_writes == 0
    with trio.fail_after(LIMIT):
        assert await _read_all(peer, 29) == b"HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n"
    assert protocol.events == []
    await peer.aclose()
    await tcp.stream.aclose()


async def _cancelled_mid_write(tcp: _TCPServer, peer: trio.SocketStream, writes: Any, size: int) -> bytes:
    """Run ``writes`` (a large write the socket takes only part of) in a scope, cancel that scope while the
    rest waits for the peer, check the write still goes on, then read ``size`` bytes: what reached the peer."""
    finished = trio.Event()
    writer_scope: list[trio.CancelScope] = []

    async def write() -> None:
        with trio.CancelScope() as scope:
            writer_scope.append(scope)
            await writes()
        finished.set()

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            await trio.testing.wait_all_tasks_blocked()
            assert not finished.is_set()  # the socket did not take it all
            writer_scope[0].cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert not finished.is_set()  # cancelled, and still writing the rest
            return await _read_all(peer, size)


async def test_what_the_socket_does_not_take_follows_whole_even_when_the_writer_is_cancelled():
    """The socket takes part of a large write; the rest waits for the peer. Cancelling the writer then must
    not cut the chunk in two: the rest is shielded, as hypercorn's own writes are, and arrives in order."""
    sock, peer_sock = _tcp_pair(small_buffers=True)
    tcp, _ = _server(sock)
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(peer_sock))
    assert await _cancelled_mid_write(tcp, peer, partial(tcp.protocol_send, RawData(data=BIG)), len(BIG)) == BIG
    assert tcp.direct_writes == 0 and tcp.queued_writes == 1
    await peer.aclose()
    await tcp.stream.aclose()


async def test_a_write_while_another_holds_the_lock_waits_its_turn():
    """The first write blocks on a full socket. The peer then reads, so the socket has room again before the
    first writer has run: a second write must not use that room at once (its bytes would land inside the
    first's chunk); it queues behind the lock and follows the first."""
    sock, peer_sock = _tcp_pair(small_buffers=True)
    tcp, _ = _server(sock)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tcp.protocol_send, RawData(data=BIG))
            await trio.testing.wait_all_tasks_blocked()
            assert tcp.send_lock.locked()
            received = bytearray(_drain(peer_sock))  # no checkpoint: the first writer has not run since
            assert select.select([], [sock], [], 1)[1], "the socket has room again"
            nursery.start_soon(tcp.protocol_send, RawData(data=b"after"))
            peer = trio.SocketStream(trio.socket.from_stdlib_socket(peer_sock))
            received += await _read_all(peer, len(BIG) + 5 - len(received))
    assert bytes(received) == BIG + b"after"
    assert tcp.direct_writes == 0 and tcp.queued_writes == 2
    await peer.aclose()
    await tcp.stream.aclose()


def _drain(peer: socket.socket) -> bytes:
    """What the peer can read now, read without any trio checkpoint."""
    peer.setblocking(False)
    data = bytearray()
    time.sleep(0.05)  # the kernel moves what the sender had queued as the window opens
    while True:
        try:
            part = peer.recv(1 << 20)
        except BlockingIOError:
            return bytes(data)
        data += part


async def test_a_write_in_a_cancelled_scope_still_ends_its_chunk():
    """A writer whose scope is already cancelled: the socket takes part of its write at once (no checkpoint
    before it); the rest goes through hypercorn's send lock, whose checkpoint would raise Cancelled and leave
    half a chunk on the wire. It is shielded, so the write ends whole and only then is anything cancelled."""
    sock, peer_sock = _tcp_pair(small_buffers=True)
    tcp, _ = _server(sock)
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(peer_sock))
    received = bytearray()

    async def read() -> None:
        received.extend(await _read_all(peer, len(BIG)))

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            with trio.CancelScope() as scope:
                scope.cancel()
                await tcp.protocol_send(RawData(data=BIG))
    assert bytes(received) == BIG
    await peer.aclose()
    await tcp.stream.aclose()


async def test_a_peer_that_is_gone_is_handled_the_way_hypercorn_handles_it():
    sock, peer_sock = _tcp_pair()
    tcp, protocol = _server(sock)
    peer_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer_sock.close()  # a reset: the next write fails
    with trio.fail_after(LIMIT):
        for _ in range(3):  # the first write may still be taken by the kernel before the reset is seen
            await tcp.protocol_send(RawData(data=b"x" * 1024))
            await trio.sleep(0.01)
            if protocol.events:
                break
    assert any(isinstance(event, Closed) for event in protocol.events)
    await tcp.stream.aclose()


async def test_a_closed_stream_is_handled_the_way_hypercorn_handles_it():
    sock, peer_sock = _tcp_pair()
    tcp, protocol = _server(sock)
    await tcp.stream.aclose()
    with trio.fail_after(LIMIT):
        await tcp.protocol_send(RawData(data=b"late"))
    assert any(isinstance(event, Closed) for event in protocol.events)
    peer_sock.close()


async def test_tls_connections_keep_hypercorn_s_path():
    sock, peer_sock = _tcp_pair()
    tcp_stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    tls = trio.SSLStream(tcp_stream, ssl.create_default_context(), server_side=False, server_hostname="x")
    tcp, _ = _server(sock, tls)
    assert tcp._raw is None  # encrypted bytes are not the socket's to write
    other, other_peer = _tcp_pair()
    plain, _ = _server(other)
    assert plain._raw is not None  # and a plain one has the fast path (trio still wraps a stdlib socket)
    for s in (sock, peer_sock, other, other_peer):
        s.close()


async def test_other_events_go_to_hypercorn():
    sock, peer_sock = _tcp_pair()
    tcp, protocol = _server(sock)
    await tcp.protocol_send(Closed())
    assert any(isinstance(e, Closed) for e in protocol.events)
    assert tcp.direct_writes == 0
    peer_sock.close()


# -- one write for a send that starts or ends a response ------------------------------------------------


async def test_a_marked_head_goes_out_with_the_first_body_part_and_an_end_with_its_last():
    """As hypercorn's HTTP/1.1 path does (no checkpoint): the head is framed when the start is sent, each body
    part as it comes, the chunked end apart. A head marked BODY_FOLLOWS is held and written with the first
    part, a middle part goes out at once, the last part and the end are one write; a close that comes while
    bytes are held follows them."""
    sock, peer_sock = _tcp_pair()
    tcp, protocol = _server(sock)
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(peer_sock))

    async def hypercorn_send(message: dict) -> None:
        held_during.append(tcp._held is not None)
        if message["type"] == "http.response.start":
            await tcp.protocol_send(RawData(data=b"HTTP/1.1 200 OK\r\n\r\n"))
        else:
            await tcp.protocol_send(RawData(data=message["body"]))
            if not message.get("more_body"):
                await tcp.protocol_send(RawData(data=b"0\r\n\r\n"))
                await tcp.protocol_send(Closed())

    held_during: list[bool] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], BODY_FOLLOWS: True})  # type: ignore[operator]
        assert tcp.direct_writes == 0  # the head waits for its body
        with trio.testing.assert_no_checkpoints():
            await send({"type": "http.response.body", "body": b"first", "more_body": True})  # type: ignore[operator]
        assert tcp.direct_writes == 1
        await send({"type": "http.response.body", "body": b"middle", "more_body": True})  # type: ignore[operator]
        assert tcp.direct_writes == 2
        await send({"type": "http.response.body", "body": b"last"})  # type: ignore[operator]

    wrapped = _OneWritePerSend(wrap_app(app, 1 << 20, "asgi"), tcp)
    expected = b"HTTP/1.1 200 OK\r\n\r\nfirstmiddlelast0\r\n\r\n"
    with trio.fail_after(LIMIT):
        await wrapped({"type": "http", "http_version": "1.1"}, None, hypercorn_send, None, None)  # type: ignore[arg-type]
        received = await _read_all(peer, len(expected))
    assert received == expected
    assert held_during == [True, True, False, True]  # start, first part, a middle part (not held), the end
    assert tcp.direct_writes == 3 and tcp.queued_writes == 0
    assert any(isinstance(event, Closed) for event in protocol.events)
    await peer.aclose()


async def test_a_marked_start_that_is_refused_holds_nothing_after_it():
    """A start hypercorn refuses (a second one, once the response has begun) must not leave the connection
    holding: the parts an app still sends would wait for a send that never comes."""
    sock, peer_sock = _tcp_pair()
    tcp, _ = _server(sock)

    async def hypercorn_send(message: dict) -> None:
        if message["type"] == "http.response.start":
            raise RuntimeError("Unexpected message type, http.response.start given the state RESPONSE")
        await tcp.protocol_send(RawData(data=message["body"]))

    async def app(scope: dict, receive: object, send: object) -> None:
        with pytest.raises(RuntimeError):
            await send({"type": "http.response.start", "status": 500, "headers": [], BODY_FOLLOWS: True})  # type: ignore[operator]
        assert tcp._held is None

    await _OneWritePerSend(wrap_app(app, 1 << 20, "asgi"), tcp)({"type": "http", "http_version": "1.1"}, None,
                                                                 hypercorn_send, None, None)  # type: ignore[arg-type]
    peer_sock.close()
    await tcp.stream.aclose()


async def _writes_of_one_response(app, request: bytes = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
                                  monkeypatch=None) -> tuple[bytes, list[_TCPServer]]:
    """``app`` served by occ's worker (real hypercorn), one request on a real socket: what the client read
    until the server closed, and the connection objects (their write counts)."""
    connections: list[_TCPServer] = []
    original = _TCPServer.__init__

    def tracking(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        connections.append(self)

    monkeypatch.setattr(_TCPServer, "__init__", tracking)
    return await _raw_response(app, request, "occ"), connections


@pytest.mark.parametrize("marked", [True, False])
async def test_through_hypercorn_a_marked_json_answer_is_one_write(monkeypatch, marked: bool):
    """Against hypercorn's own protocol code: start (marked or not) + one whole body; ``connection: close``
    makes hypercorn close after it, so the client reads to the end."""

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        if marked:
            start[BODY_FOLLOWS] = True
        await send(start)  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    data, connections = await _writes_of_one_response(
        app, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", monkeypatch)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nok")
    assert [c.direct_writes for c in connections] == [1 if marked else 2]


async def test_through_hypercorn_a_marked_head_whose_app_fails_is_still_written(monkeypatch):
    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": [], BODY_FOLLOWS: True})  # type: ignore[operator]
        raise RuntimeError("the app fails between its head and its body")

    data, _ = await _writes_of_one_response(app, monkeypatch=monkeypatch)
    assert data.startswith(b"HTTP/1.1 200 ")  # the head reached the client, then the connection closed


async def test_http2_sends_are_never_held():
    """An HTTP/2 send may wait for the peer's flow control; bytes held then could be what the peer waits for."""
    sock, peer_sock = _tcp_pair()
    tcp, _ = _server(sock)
    held_during: list[bool] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"x"})  # type: ignore[operator]

    async def spy_send(message: dict) -> None:
        held_during.append(tcp._held is not None)

    wrapped = _OneWritePerSend(wrap_app(app, 1 << 20, "asgi"), tcp)
    await wrapped({"type": "http", "http_version": "2"}, None, spy_send, None, None)  # type: ignore[arg-type]
    assert held_during == [False, False]
    tls_sock, tls_peer = _tcp_pair()
    tls = trio.SSLStream(trio.SocketStream(trio.socket.from_stdlib_socket(tls_sock)), ssl.create_default_context(),
                         server_side=False, server_hostname="x")
    tls_tcp, _ = _server(tls_sock, tls)
    assert not isinstance(tls_tcp.app, _OneWritePerSend)  # TLS: the bytes are not the socket's to hold
    for s in (sock, peer_sock, tls_sock, tls_peer):
        s.close()


HEAD = b"HTTP/1.1 200 OK\r\n\r\n"


async def _held_head_and_big(tcp: _TCPServer) -> None:
    """A held response start: a head and a body larger than the socket takes, written as one."""
    tcp.hold()
    await tcp.protocol_send(RawData(data=HEAD))
    await tcp.protocol_send(RawData(data=BIG))
    await tcp.write_held()


async def test_what_is_held_and_not_taken_follows_whole_even_when_the_writer_is_cancelled():
    sock, peer_sock = _tcp_pair(small_buffers=True)
    tcp, _ = _server(sock)
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(peer_sock))
    assert await _cancelled_mid_write(tcp, peer, partial(_held_head_and_big, tcp), len(HEAD) + len(BIG)) == HEAD + BIG
    assert tcp.direct_writes == 0 and tcp.queued_writes == 1  # the rest, under one hold of the send lock
    await peer.aclose()
    await tcp.stream.aclose()


async def test_what_is_held_and_waits_for_the_lock_goes_out_whole_before_the_next_writer():
    """A held head and body that must wait for the send lock (another write is under way) go out under one
    hold of the lock: a writer queued behind them can never land between the head and its body."""
    sock, peer_sock = _tcp_pair(small_buffers=True)
    tcp, _ = _server(sock)

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tcp.protocol_send, RawData(data=BIG))  # fills the socket and holds the lock
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(_held_head_and_big, tcp)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(tcp.protocol_send, RawData(data=b"after"))
            await trio.testing.wait_all_tasks_blocked()
            peer = trio.SocketStream(trio.socket.from_stdlib_socket(peer_sock))
            received = await _read_all(peer, 2 * len(BIG) + len(HEAD) + 5)
    assert received == BIG + HEAD + BIG + b"after"
    await peer.aclose()
    await tcp.stream.aclose()


def _h11_body(raw: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """The status and body of a raw response, as h11 reads them (its framing checked)."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    client.receive_data(raw)
    client.receive_data(b"")
    status, body = 0, b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.NEED_DATA:
            return status, body


@pytest.mark.parametrize(("request_line", "method"), [
    (b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b"GET"),  # chunked: framed by occ
    (b"GET / HTTP/1.0\r\nhost: x\r\n\r\n", b"GET"),  # HTTP/1.0: close-delimited, hypercorn's way
    (b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b"HEAD"),  # no body at all
])
async def test_a_stream_s_middle_parts_framed_here_are_byte_for_byte_hypercorn_s(request_line, method,
                                                                                  monkeypatch):
    """The middle parts of a streamed body that occ's connection frames itself (past hypercorn's stream and
    h11) make exactly the bytes stock hypercorn makes, h11 reads them back whole; HTTP/1.0 and HEAD, which
    are not chunked, go hypercorn's way and match too."""
    parts = [b"event: x\ndata: %d\n\n" % n for n in range(40)] + [b"y" * 70000, b"", b"tail"]

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                    "headers": [(b"content-type", b"text/event-stream")], BODY_FOLLOWS: True})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"", "more_body": False})  # type: ignore[operator]

    answers: list[bool] = []
    original = _TCPServer.frames_chunks_here

    def spy(self: _TCPServer) -> bool:
        answers.append(original(self))
        return answers[-1]

    monkeypatch.setattr(_TCPServer, "frames_chunks_here", spy)
    ours = await _raw_response(app, request_line, "occ")
    stock = await _raw_response(app, request_line, "hypercorn")
    assert ours == stock
    chunked = b"HTTP/1.1" in request_line and method == b"GET"
    assert answers and all(answers) if chunked else not any(answers)  # the empty part is never asked
    status, body = _h11_body(ours, method)
    assert status == 200 and body == (b"" if method == b"HEAD" else b"".join(parts))


async def test_middle_parts_are_framed_here_only_while_a_chunked_body_is_under_way():
    sock, peer_sock = _tcp_pair()
    tcp, _ = _server(sock)
    assert not tcp.frames_chunks_here()  # no request yet: hypercorn's way
    peer_sock.close()
    await tcp.stream.aclose()


# -- the app's queue: hypercorn's memory channel without a scheduler pass per message --------------------


async def test_the_app_queue_hands_messages_over_in_order_without_a_checkpoint():
    queue = _AppQueue(3)
    with trio.testing.assert_no_checkpoints():
        for n in range(3):
            await queue.put({"type": "http.request", "body": bytes([n]), "more_body": n < 2})
        assert [(await queue.receive())["body"] for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]


async def test_a_full_app_queue_stops_the_reader_until_the_app_reads():
    """hypercorn's reading waits while the app has ``max_app_queue_size`` messages it has not read: a body is
    never buffered past the bound."""
    queue = _AppQueue(2)
    put: list[int] = []

    async def reader() -> None:
        for n in range(4):
            await queue.put({"type": "http.request", "body": b"x", "n": n})  # type: ignore[typeddict-unknown-key]
            put.append(n)

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert put == [0, 1]
            assert (await queue.receive())["n"] == 0  # type: ignore[typeddict-item]
            await trio.testing.wait_all_tasks_blocked()
            assert put == [0, 1, 2]
            assert [(await queue.receive())["n"] for _ in range(3)] == [1, 2, 3]  # type: ignore[typeddict-item]


async def test_a_cancelled_receive_takes_nothing_and_waiting_receivers_each_get_one():
    queue = _AppQueue(10)
    got: list[str] = []

    async def receive_one() -> None:
        got.append((await queue.receive())["type"])

    with trio.fail_after(LIMIT):
        with trio.move_on_after(0.01):
            await queue.receive()  # nothing came: cancelled while waiting
        await queue.put({"type": "http.disconnect"})
        assert (await queue.receive())["type"] == "http.disconnect"  # the cancelled one took nothing
        queue = _AppQueue(10)  # (nothing follows a disconnect: the next request's queue)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_one)
            nursery.start_soon(receive_one)
            await trio.testing.wait_all_tasks_blocked()
            await queue.put({"type": "http.request"})
            await queue.put({"type": "http.disconnect"})
    assert sorted(got) == ["http.disconnect", "http.request"]


async def test_the_disconnect_calls_back_at_once_even_when_the_app_reads_nothing():
    """The disconnect reaches ``on_disconnect``'s callbacks even in a full queue; one registered after it is
    called at once; one forgotten is not called."""
    queue = _AppQueue(1)
    calls: list[str] = []
    forget = queue.on_disconnect(lambda: calls.append("forgotten"))
    forget()
    queue.on_disconnect(lambda: calls.append("first"))
    await queue.put({"type": "http.request", "body": b"", "more_body": False})  # the queue is full now
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(queue.put, {"type": "http.disconnect"})
            await trio.testing.wait_all_tasks_blocked()
            assert calls == ["first"]  # while the app has read nothing
            queue.on_disconnect(lambda: calls.append("late"))
            assert calls == ["first", "late"]
            assert (await queue.receive())["type"] == "http.request"
    assert (await queue.receive())["type"] == "http.disconnect"
    assert calls == ["first", "late"]


async def test_the_disconnect_never_waits_for_room_and_ends_a_put_that_waits():
    """hypercorn puts the disconnect from the app's own send when a response ends: waiting there for room in
    a queue the app does not read would never end. A body put waiting for room when the request ends would
    wait forever too (and hypercorn's reading with it): it ends, and what comes after the disconnect is
    dropped."""
    queue = _AppQueue(1)
    await queue.put({"type": "http.request", "body": b"0", "more_body": True})  # the queue is full now
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(queue.put, {"type": "http.request", "body": b"1", "more_body": False})
            await trio.testing.wait_all_tasks_blocked()  # the body's end waits for room
            with trio.testing.assert_no_checkpoints():
                await queue.put({"type": "http.disconnect"})
        # the waiting put has ended (the nursery is done), its part dropped
        await queue.put({"type": "http.request", "body": b"2", "more_body": False})
        assert [await queue.receive(), await queue.receive()] == [
            {"type": "http.request", "body": b"0", "more_body": True}, {"type": "http.disconnect"}]
        assert not queue._messages


async def test_an_answer_given_without_reading_a_full_queue_is_written_and_the_connection_serves_on():
    """Through occ's worker, an app answers a POST without reading its body while its queue is full
    (``max_app_queue_size`` 1: the body part is there, the body's end waits for room). The answer's end puts
    the disconnect from the app's own send, with the answer's bytes held: it used to wait there for a read
    that never comes, the answer never written, the request never ended. Then the next request on the
    connection is answered: hypercorn's reading does not stay waiting to put the finished request's body."""

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["method"] == "POST":
            await trio.testing.wait_all_tasks_blocked()  # the body has come and hypercorn waits for room
        await send({"type": "http.response.start", "status": 413 if scope["method"] == "POST" else 200,  # type: ignore[operator]
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await _serve_on_occ(nursery, app, _config(max_app_queue_size=1))
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n0123456789")
            data = b""
            while not data.endswith(b"\r\n\r\nok"):
                part = await stream.receive_some(4096)
                assert part, "closed before the answer"
                data += part
            assert data.startswith(b"HTTP/1.1 413 ")
            await _get(stream)  # the same connection serves the next request
            await stream.aclose()
            nursery.cancel_scope.cancel()


async def test_a_request_body_sent_in_pieces_reaches_a_slow_app_whole():
    """Through occ's worker: a chunked body of many pieces, an app that reads slowly (the queue fills and
    hypercorn stops reading), then answers with what it read; and a client that leaves reaches the app's
    ``on_disconnect`` callback while the app waits for nothing from ``receive()``."""
    disconnected = trio.Event()

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["path"] == "/wait":
            register = on_disconnect(scope)
            assert register is not None  # occ's connection offers it on every HTTP request
            register(disconnected.set)
            await trio.sleep_forever()
        body = bytearray()
        while True:
            message = await receive()  # type: ignore[operator]
            body += message.get("body", b"")
            await trio.sleep(0.001)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": bytes(body)})  # type: ignore[operator]

    pieces = [bytes([n % 256]) * (n + 1) for n in range(200)]
    expected = b"".join(pieces)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await _serve_on_occ(nursery, app)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
            for piece in pieces:
                await stream.send_all(b"%x\r\n%s\r\n" % (len(piece), piece))
            await stream.send_all(b"0\r\n\r\n")
            data = b""
            while not data.endswith(expected):
                part = await stream.receive_some(1 << 16)
                assert part, "closed before the answer"
                data += part
            assert data.split(b"\r\n\r\n", 1)[1] == expected
            await stream.send_all(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n")
            await trio.sleep(0.05)
            await stream.aclose()
            await disconnected.wait()
            nursery.cancel_scope.cancel()
    assert on_disconnect({"type": "http", "extensions": {}}) is None  # another server: occ watches with a task


async def test_requests_on_occ_s_connection_say_they_write_whole():
    """occ's worker marks each HTTP/1.1 request's scope (WHOLE_WRITES), which is how occ's relay knows it
    may write without a scope of its own; an HTTP/2 request is never taken for one."""
    seen: list[bool] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        seen.append(writes_whole(scope))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await _serve_on_occ(nursery, app)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"ok"):
                data += await stream.receive_some(4096)
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert seen == [True]
    assert not writes_whole({"state": {WHOLE_WRITES: True}, "http_version": "2"})
    assert not writes_whole({"state": {}, "http_version": "1.1"})


# -- keep-alive: one watch task per connection instead of hypercorn's task per request ----------------


async def _slow_app(scope: dict, receive: object, send: object) -> None:
    """Answers ``ok``; ``/slow`` after 0.6 s (longer than the tests' keep-alive time)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["path"] == "/slow":
        await trio.sleep(0.6)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


async def _start(nursery: trio.Nursery, keep_alive_s: float, shutdown: trio.Event | None = None) -> int:
    trigger = shutdown.wait if shutdown is not None else None
    return await _serve_on_occ(nursery, _slow_app, _config(keep_alive_timeout=keep_alive_s, graceful_timeout=5),
                               shutdown_trigger=trigger)


async def _get(stream: trio.SocketStream, path: str = "/") -> None:
    await stream.send_all(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        part = await stream.receive_some(4096)
        assert part, "closed before the answer"
        data += part


async def _closed_within(stream: trio.SocketStream, seconds: float) -> float:
    started = trio.current_time()
    with trio.fail_after(seconds):
        while await stream.receive_some(4096):
            pass
    return trio.current_time() - started


async def test_an_idle_connection_closes_after_the_keep_alive_time_and_a_busy_one_does_not():
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, keep_alive_s=0.3)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await _get(stream, "/slow")  # a request longer than the keep-alive time is not cut
            for _ in range(3):  # pauses shorter than it keep the connection
                await trio.sleep(0.1)
                await _get(stream)
            waited = await _closed_within(stream, 3)
            assert waited >= 0.25  # closed for being idle, not earlier
            await stream.aclose()
            nursery.cancel_scope.cancel()


async def test_a_configured_read_timeout_still_ends_a_connection_that_stops_sending():
    """occ's connection reads without hypercorn's per-read scope only when there is no read timeout (occ sets
    none); one that is configured is hypercorn's, and ends a request head that stops coming."""
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            config = _config(keep_alive_timeout=60, read_timeout=0.3)
            port = await _serve_on_occ(nursery, _slow_app, config)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await _get(stream)  # served as usual
            await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n")  # and then nothing more
            waited = await _closed_within(stream, 3)
            assert waited >= 0.2  # for the read timeout (the keep-alive time is a minute)
            await stream.aclose()
            nursery.cancel_scope.cancel()


async def test_shutdown_closes_idle_connections_at_once_and_busy_ones_after_their_request():
    shutdown = trio.Event()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, keep_alive_s=60, shutdown=shutdown)
            idle = await trio.open_tcp_stream("127.0.0.1", port)
            await _get(idle)
            await _get(idle)
            busy = await trio.open_tcp_stream("127.0.0.1", port)
            await _get(busy)
            answered = trio.Event()

            async def slow() -> None:
                await _get(busy, "/slow")
                answered.set()

            nursery.start_soon(slow)
            await trio.sleep(0.1)  # the slow request is running
            started = trio.current_time()
            shutdown.set()
            assert await _closed_within(idle, 2) < 1.0  # idle: closed at once, not after 60 s
            await answered.wait()  # busy: its request is answered whole...
            await _closed_within(busy, 3)  # ...then the connection is closed
            assert trio.current_time() - started < 3
            for stream in (idle, busy):
                await stream.aclose()


class _TaskGroup:
    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    def spawn(self, func: object, *args: object) -> None:
        self.nursery.start_soon(func, *args)  # type: ignore[arg-type]


async def test_a_request_that_starts_and_ends_between_two_steps_of_the_watch_does_not_close_the_connection():
    """The watch waits in its keep-alive scope; a request comes and is answered before the watch runs again
    (its wait cancelled, the connection idle again): that is a new idle period, not the end of the old one."""
    sock, peer_sock = _tcp_pair()
    tcp, protocol = _server(sock)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            tcp._task_group = _TaskGroup(nursery)  # type: ignore[assignment]
            tcp._first_request_seen = True  # (hypercorn's own first idle task is not running here)
            await tcp.protocol_send(Updated(idle=True))
            await trio.testing.wait_all_tasks_blocked()
            await tcp.protocol_send(Updated(idle=False))
            await tcp.protocol_send(Updated(idle=True))
            await trio.testing.wait_all_tasks_blocked()
            assert protocol.events == []  # not closed: keep_alive_timeout has not passed since it went idle
            tcp.context.terminated._event.set()  # the worker shuts down while it is idle: closed at once
            await trio.testing.wait_all_tasks_blocked()
            assert any(isinstance(event, Closed) for event in protocol.events)
    peer_sock.close()


async def _serve_until_stopped(nursery: trio.Nursery, shutdown: trio.Event, done: trio.Event) -> int:
    """occ's worker with a long keep-alive time and a long graceful shutdown (60 s each): ``done`` is set when
    it returns, which it does at once after ``shutdown`` if no connection task is left."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.keep_alive_timeout = 60
    config.graceful_timeout = 60
    sockets = config.create_sockets()
    for sock in sockets.insecure_sockets:
        sock.listen(8)

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        await worker_serve(wrap_app(_slow_app, config.wsgi_max_body_size, None), config, sockets=sockets,
                           shutdown_trigger=shutdown.wait, task_status=task_status)
        done.set()

    binds = await nursery.start(run)
    return int(binds[0].rsplit(":", 1)[1])


@pytest.mark.parametrize("how", ["connection: close", "client left mid-request"])
async def test_a_connection_that_ends_without_going_idle_leaves_no_task_behind(how: str):
    """A connection whose last request does not end in an idle connection (``Connection: close``, or a client
    that left while it ran) must end its task, keep-alive watch included: else each one stays until the worker
    stops, which then waits for them the whole graceful timeout."""
    shutdown, done = trio.Event(), trio.Event()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await _serve_until_stopped(nursery, shutdown, done)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await _get(stream)  # the watch task runs from here on
            if how == "connection: close":
                await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                await _closed_within(stream, 5)  # answered, then closed by the server
            else:
                await stream.send_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
                await trio.sleep(0.1)
                await stream.aclose()
                await trio.sleep(0.7)  # the request ran to its end (0.6 s)
            await stream.aclose()
            shutdown.set()
            await done.wait()  # at once: no connection is left (else after graceful_timeout, 60 s, past LIMIT)


async def test_a_connection_whose_protocol_code_fails_is_closed_and_the_server_serves_on(monkeypatch, caplog):
    """An exception out of hypercorn's protocol code for one connection (hypercorn 0.17 with h2 4 raises
    TypeError on any h2c upgrade) closes that connection only: the next client is served, and the log names
    the failure by its type, never quoting the request (its headers may carry a key)."""
    from occ.server.h11_protocol import H11Protocol

    original = H11Protocol._check_protocol

    async def failing(self: H11Protocol, event: h11.Request) -> None:
        if event.target == b"/boom":
            raise TypeError("a bug quoting x-api-key: sk-ant-secret-0123456789")
        await original(self, event)

    monkeypatch.setattr(H11Protocol, "_check_protocol", failing)

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await _serve_on_occ(nursery, app, _config(errorlog=None))
            for target, answered in ((b"/boom", False), (b"/", True)):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(b"GET " + target + b" HTTP/1.1\r\nhost: x\r\nx-api-key: sk-ant-secret-0123456789"
                                      b"\r\nconnection: close\r\n\r\n")
                data = b""
                while part := await stream.receive_some(1 << 16):
                    data += part
                await stream.aclose()
                assert data.endswith(b"ok") is answered
            nursery.cancel_scope.cancel()
    failures = [r for r in caplog.records if "protocol code failed" in r.getMessage()]
    assert len(failures) == 1 and "TypeError" in failures[0].getMessage()
    assert "sk-ant-secret" not in caplog.text

"""The pool's reads and writes on a plain TCP connection go to the socket directly (occ.upstream.pool
._Connection): the same bytes, the same errors (trio's BrokenResourceError for a peer that broke the
connection, ClosedResourceError for a socket occ closed), the same cancellation as trio's stream methods.
Real TCP sockets on 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import socket
import ssl

import pytest
import trio
import trio.testing

from occ.upstream.pool import Origin, _Connection

LIMIT = 10
BIG = bytes(range(256)) * 16 * 1024  # 4 MiB: more than both socket buffers hold
ORIGIN = Origin("http", "127.0.0.1", 80)


def _pair(small_buffers: bool = False) -> tuple[_Connection, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    if small_buffers:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    tsock = trio.socket.from_stdlib_socket(ours)
    return _Connection(ORIGIN, trio.SocketStream(tsock), tsock), theirs


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


async def test_receive_gives_what_arrives_then_empty_at_the_end():
    conn, theirs = _pair()
    assert conn.raw is not None
    theirs.sendall(b"hello")
    with trio.fail_after(LIMIT):
        assert await conn.receive() == b"hello"
        theirs.shutdown(socket.SHUT_WR)
        assert await conn.receive() == b""
    theirs.close()
    conn.socket.close()


async def test_a_cancelled_receive_loses_nothing():
    conn, theirs = _pair()
    with trio.move_on_after(0.05) as scope:
        await conn.receive()
    assert scope.cancelled_caught
    theirs.sendall(b"after")
    with trio.fail_after(LIMIT):
        assert await conn.receive() == b"after"
    theirs.close()
    conn.socket.close()


async def test_a_reset_is_trio_s_broken_resource_error():
    conn, theirs = _pair()
    _reset(theirs)
    with trio.fail_after(LIMIT), pytest.raises(trio.BrokenResourceError):
        await conn.receive()
    conn.socket.close()


@pytest.mark.parametrize("path", ["direct, read tried first", "direct, read waited first", "trio's stream"])
async def test_a_socket_occ_closed_is_trio_s_closed_resource_error(path):
    """occ closed the socket itself (the pool drops a connection by closing it): reads and writes say so as
    trio's own stream does, never as an upstream that broke the connection; twice, so the closed fd is not
    left registered with trio as busy."""
    conn, theirs = _pair()
    if path == "trio's stream":
        conn.raw = None
    elif path == "direct, read waited first":
        conn._until_try = 4  # as after a read that found nothing: the next ones wait before trying
    conn.socket.close()
    with trio.fail_after(LIMIT):
        for _ in range(2):
            with pytest.raises(trio.ClosedResourceError):
                await conn.receive()
            with pytest.raises(trio.ClosedResourceError):
                await conn.send(b"x")
    theirs.close()


async def test_a_large_send_arrives_whole_when_the_socket_takes_only_part():
    conn, theirs = _pair(small_buffers=True)
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(theirs))
    received = bytearray()

    async def read() -> None:
        while len(received) < len(BIG):
            received.extend(await peer.receive_some(1 << 20))

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await conn.send(BIG)
    assert bytes(received) == BIG
    await peer.aclose()
    conn.socket.close()


async def test_a_small_send_is_made_without_a_pass_of_the_scheduler():
    """No schedule point (its only cancel point, taken before the write, costs no pass unless cancelled)."""
    conn, theirs = _pair()
    others: list[str] = []

    async def other() -> None:
        others.append("ran")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await conn.send(b"GET / HTTP/1.1\r\n\r\n")
        assert others == []  # the other task had no turn during the send
    assert theirs.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
    theirs.close()
    conn.socket.close()


async def test_a_send_to_a_reset_peer_is_trio_s_broken_resource_error():
    conn, theirs = _pair()
    _reset(theirs)
    await trio.sleep(0.05)  # the reset reaches our socket
    with trio.fail_after(LIMIT), pytest.raises(trio.BrokenResourceError):
        for _ in range(3):  # the first write may still be taken before the reset is seen
            await conn.send(b"x" * 1024)
    conn.socket.close()


async def test_tls_connections_use_their_stream():
    ours, theirs = socket.socketpair()
    tsock = trio.socket.from_stdlib_socket(ours)
    tls = trio.SSLStream(trio.SocketStream(tsock), ssl.create_default_context(), server_hostname="x")
    assert _Connection(ORIGIN, tls, tsock).raw is None  # encrypted bytes are not the socket's
    ours.close()
    theirs.close()


class CountingSocket:
    """The connection's socket, with its ``recv`` calls counted (tries that found nothing included)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls = 0
        self.misses = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int) -> bytes:
        self.calls += 1
        try:
            return self.sock.recv(size)
        except BlockingIOError:
            self.misses += 1
            raise


async def test_reads_try_first_while_data_is_waiting_and_back_off_after_a_miss():
    """Busy: the next delta is already there, so it is read at once (one recv, no wait). Quiet: after a read
    found nothing, the next ones wait first and try again only every 2, then 4... reads."""
    conn, theirs = _pair()
    counting = conn.raw = CountingSocket(conn.raw)
    with trio.fail_after(LIMIT):
        for i in range(3):  # data waiting every time: each read is one recv that finds it
            theirs.sendall(b"d%d" % i)
            await trio.sleep(0.02)
            assert await conn.receive() == b"d%d" % i
        assert (counting.calls, counting.misses) == (3, 0)

        async def later(data: bytes) -> None:
            await trio.sleep(0.05)
            theirs.sendall(data)

        pattern = []
        for i in range(6):  # quiet: nothing is there when the read starts
            async with trio.open_nursery() as nursery:
                nursery.start_soon(later, b"q%d" % i)
                before = counting.misses
                assert await conn.receive() == b"q%d" % i
                pattern.append(counting.misses - before)
    assert pattern == [1, 0, 0, 1, 0, 0]  # a try, then two waits first (every 2), a try, ... (then every 4)
    theirs.close()
    conn.socket.close()


@pytest.mark.parametrize("direct", [True, False])
async def test_a_send_in_a_cancelled_scope_raises_cancelled_and_writes_nothing(direct):
    """As trio's ``send_all``: a task whose scope is cancelled (its client left, its deadline passed) gets
    Cancelled before a byte goes out, so an upstream is never asked for a request nobody waits for.
    ``direct=False`` is trio's own stream, the behaviour to match."""
    conn, theirs = _pair()
    if not direct:
        conn.raw = None
    with trio.CancelScope() as scope:
        scope.cancel()
        await conn.send(b"POST /v1/chat/completions HTTP/1.1\r\n\r\n")
    assert scope.cancelled_caught
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(100)
    theirs.close()
    conn.socket.close()

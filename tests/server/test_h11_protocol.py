"""occ's HTTP/1.1 protocol (occ.server.h11_protocol): the reader agrees with h11's on any head, byte split
and error; the protocol answers byte for byte as stock hypercorn does, upgrades and HTTP/2 included. Real
TCP sockets on 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import re
import socket
import time
from typing import Any
from wsgiref.handlers import format_date_time

import h2.config
import h2.connection
import h2.events
import h11
import h11._readers
import pytest
import trio
from h11._readers import _decode_header_lines
from hypercorn.config import Config as HypercornConfig
from hypercorn.protocol.h11 import H11Protocol as _HypercornH11Protocol
from hypothesis import given
from hypothesis import strategies as st
from support.asgi_servers import LIMIT, hypercorn_config, lifespan, raw_response, serve_on_occ

from occ.server import h11_protocol
from occ.server.h11_protocol import READER_FITS, H11Protocol, header_lines

pytestmark = pytest.mark.skipif(not READER_FITS, reason="this h11 reads heads its own way only")

# -- the reader, against h11's ------------------------------------------------------------------------------

_TOKEN = st.text("abcXYZ-_!#$%&'*+.^`|~019", min_size=1, max_size=8).map(str.encode)
_VALUE_BYTE = st.sampled_from([b"a", b"Z", b"0", b" ", b"\t", b":", b",", b";", b"=", b"\x7f", b"\x80", b"\xff",
                               b"\xe9", b"\x00", b"\x01", b"\r", b'"', b"\\", b"/"])
_VALUE = st.lists(_VALUE_BYTE, max_size=10).map(b"".join)
_LINE = st.one_of(
    st.tuples(_TOKEN, st.sampled_from([b":", b": ", b":\t", b" :", b"", b"::"]), _VALUE).map(b"".join),
    st.tuples(st.sampled_from([b" ", b"\t", b"  "]), _VALUE).map(b"".join),  # a folded continuation
    st.lists(_VALUE_BYTE, max_size=6).map(b"".join),  # anything at all (no LF: lines are split on it)
)


def _outcome(read: Any, lines: list[bytearray]) -> object:
    try:
        return ("pairs", read(lines))
    except h11.LocalProtocolError as error:
        return ("error", str(error), error.error_status_hint)


@given(st.lists(_LINE, max_size=12))
def test_header_lines_are_what_h11_reads_or_h11_s_own_error(lines):
    """Any block of header lines (folded, malformed, odd bytes, empty values): the same pairs as h11's
    reader, or the same error."""
    ours = _outcome(header_lines, [bytearray(line) for line in lines])
    theirs = _outcome(lambda block: list(_decode_header_lines(block)), [bytearray(line) for line in lines])
    assert ours == theirs


def test_a_common_head_is_read_without_h11_s_line_by_line_reader(monkeypatch):
    """The common head (no folded or malformed line) takes the one-``findall`` way, so the saving is real; a
    folded one goes to h11's reader."""
    calls: list[int] = []

    def spy(lines: Any) -> Any:
        calls.append(1)
        return _decode_header_lines(lines)

    monkeypatch.setattr(h11_protocol, "_decode_header_lines", spy)
    assert header_lines([bytearray(b"Host: x"), bytearray(b"X-A:  b c\t")]) == [(b"Host", b"x"), (b"X-A", b"b c")]
    assert not calls
    assert header_lines([bytearray(b"Host: x"), bytearray(b"  folded")]) == [(b"Host", b"x folded")]
    assert calls


def _events(connection: h11.Connection, chunks: list[bytes]) -> list[object]:
    """What a server connection makes of ``chunks`` (then the end of input): events as comparable tuples,
    up to the first error."""
    seen: list[object] = []
    for chunk in [*chunks, b""]:
        connection.receive_data(chunk)
        for _ in range(20):  # bounded: a request's events, then NEED_DATA or PAUSED
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as error:
                return [*seen, ("error", str(error), error.error_status_hint)]
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, h11.Request):
                seen.append(("request", event.method, event.target, event.http_version,
                             list(event.headers.raw_items()), list(event.headers)))
            else:
                seen.append(repr(event))
            if isinstance(event, h11.ConnectionClosed):
                return seen
    return seen


_HEAD = st.tuples(
    st.sampled_from([b"GET / HTTP/1.1", b"POST /v1/messages?beta=true HTTP/1.1", b"GET / HTTP/1.0", b"PRI * HTTP/2.0",
                     b"get  / HTTP/1.1", b"GET /\x80 HTTP/1.1", b"\x16\x03\x01", b"", b"GET / HTTP/1.1 "]),
    st.lists(_LINE, max_size=6),
    st.sampled_from([[b"Host: x"], [], [b"Host: x", b"host: y"], [b"Host: x", b"Content-Length: 3"],
                     [b"Host: x", b"Transfer-Encoding: chunked"], [b"Content-Length: 1, 1", b"Host: x"]]),
    st.sampled_from([b"\r\n", b"\n"]),
    st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
)


@given(_HEAD, st.lists(st.integers(0, 400), max_size=6))
def test_occ_s_connection_reads_any_request_stream_as_h11_does(head, cuts):
    """A server connection with occ's reader and h11's own, fed the same bytes in the same pieces: the same
    requests, bodies and errors, in the same order."""
    request_line, lines, framing, eol, rest = head
    data = eol.join([request_line, *lines, *framing, b"", b""]) + rest
    points = sorted({min(cut, len(data)) for cut in cuts})
    chunks = [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]
    ours = _events(h11_protocol._Connection(h11.SERVER), chunks)
    theirs = _events(h11.Connection(h11.SERVER), chunks)
    assert ours == theirs


def test_a_head_too_large_is_refused_as_h11_refuses_it():
    """h11's limit on an incomplete head still holds with occ's reader."""
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000
    for make in (h11_protocol._Connection, h11.Connection):
        connection = make(h11.SERVER, max_incomplete_event_size=16 * 1024)
        connection.receive_data(data)
        with pytest.raises(h11.RemoteProtocolError, match="Receive buffer too long"):
            connection.next_event()


# -- the protocol, against stock hypercorn's bytes ---------------------------------------------------------


async def _echo(scope: dict, receive: Any, send: Any) -> None:
    """Answers with what it was given: the scope's request fields, its headers and the body."""
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/fail":
        raise RuntimeError("the app fails before it answers")
    seen = repr((scope["method"], scope["path"], scope["raw_path"], scope["query_string"], scope["http_version"],
                 scope["headers"], body)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": seen})


_CLOSE = b"Connection: close\r\n"
_REQUESTS = {
    "odd headers": b"GET /a%20b?q=1&r HTTP/1.1\r\nHost: x\r\nX-Mixed-Case: A\tb\r\nX-Empty:\r\nx-dup: 1\r\n"
                   b"X-Dup: 2\r\nX-High: \xe9\xff\r\n" + _CLOSE + b"\r\n",
    "folded header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n  b\r\n" + _CLOSE + b"\r\n",
    "malformed header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad header: 1\r\n\r\n",
    "malformed request line": b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    "no host": b"GET / HTTP/1.1\r\n" + _CLOSE + b"\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: x\n" + _CLOSE.replace(b"\r", b"") + b"\n",
    "chunked body": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + _CLOSE
                    + b"\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    "100-continue": b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n" + _CLOSE
                    + b"\r\n{}",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz"
                 b"GET /3 HTTP/1.1\r\nHost: x\r\n" + _CLOSE + b"\r\n",
    "HTTP/1.0": b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    "HEAD": b"HEAD / HTTP/1.1\r\nHost: x\r\n" + _CLOSE + b"\r\n",
    "app fails": b"GET /fail HTTP/1.1\r\nHost: x\r\n" + _CLOSE + b"\r\n",
    "h2c upgrade with a body": b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
                               b"Connection: Upgrade, HTTP2-Settings, close\r\nContent-Length: 2\r\n\r\n{}",
    "websocket upgrade": b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
}


@pytest.mark.parametrize("name", list(_REQUESTS))
async def test_occ_s_protocol_answers_byte_for_byte_as_stock_hypercorn(name):
    ours = await raw_response(_echo, _REQUESTS[name], "occ")
    stock = await raw_response(_echo, _REQUESTS[name], "hypercorn")
    assert ours == stock
    assert ours.startswith(b"HTTP/1.1 ")


async def test_raw_header_names_reach_the_app_as_stock_hypercorn_passes_them():
    """``h11_pass_raw_headers`` (names as the client wrote them) goes hypercorn's way, and so is the same."""
    request = _REQUESTS["odd headers"]
    ours = await raw_response(_echo, request, "occ", h11_pass_raw_headers=True)
    assert ours == await raw_response(_echo, request, "hypercorn", h11_pass_raw_headers=True)
    assert b"X-Mixed-Case" in ours


async def test_a_common_request_takes_the_one_pass_way_on_a_real_connection(monkeypatch):
    """Pipelined requests with no upgrade, in one second: no line-by-line reading by h11, no header scan by
    hypercorn, and the server's own headers made once (the saving is real, not only equal bytes)."""
    calls: dict[str, int] = {"h11 reader": 0, "hypercorn scan": 0, "own headers": 0}

    def counted(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(h11_protocol, "_decode_header_lines", counted("h11 reader", _decode_header_lines))
    monkeypatch.setattr(h11._readers, "_decode_header_lines", counted("h11 reader", _decode_header_lines))
    for method in ("_check_protocol", "_create_stream"):
        monkeypatch.setattr(_HypercornH11Protocol, method,
                            counted("hypercorn scan", getattr(_HypercornH11Protocol, method)))
    monkeypatch.setattr(HypercornConfig, "response_headers",
                        counted("own headers", HypercornConfig.response_headers))
    monkeypatch.setattr(h11_protocol, "time", lambda: 1_800_000_000.5)
    request = b"GET /1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n" * 2 + b"GET /3 HTTP/1.1\r\nHost: x\r\n" + _CLOSE + b"\r\n"
    answer = await raw_response(_echo, request, "occ")
    assert answer.count(b"HTTP/1.1 200") == 3
    assert calls == {"h11 reader": 0, "hypercorn scan": 0, "own headers": 1}


async def test_the_last_request_a_connection_may_make_says_connection_close():
    request = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    ours = await raw_response(_echo, request, "occ", keep_alive_max_requests=2)
    assert ours == await raw_response(_echo, request, "hypercorn", keep_alive_max_requests=2)
    assert ours.count(b"connection: close") == 1


async def test_every_answer_has_a_current_date(monkeypatch):
    """The Date made once a second is that second's, on each answer of a connection."""
    now = [1_800_000_000.2]
    monkeypatch.setattr(h11_protocol, "time", lambda: now[0])
    monkeypatch.setattr("hypercorn.config.time", lambda: now[0])
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await serve_on_occ(nursery, _echo, hypercorn_config(errorlog=None))
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            dates = []
            for step in (0.0, 0.5, 0.6, 3.0):
                now[0] += step
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while not data.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
                    data += await stream.receive_some(1 << 16)
                dates.append(re.search(rb"\r\ndate: ([^\r]*)\r\n", data).group(1).decode())  # type: ignore[union-attr]
            await stream.aclose()
            nursery.cancel_scope.cancel()
    expected = [format_date_time(t) for t in (1_800_000_000.2, 1_800_000_000.7, 1_800_000_001.3, 1_800_000_004.3)]
    assert dates == expected


async def test_occ_s_connections_run_occ_s_protocol(monkeypatch):
    """The protocol is the one occ's connection runs (so the tests above compare it, not hypercorn with
    itself)."""
    made: list[H11Protocol] = []
    original = H11Protocol.__init__

    def spy(self: H11Protocol, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(H11Protocol, "__init__", spy)
    await raw_response(_echo, _REQUESTS["odd headers"], "occ")
    assert len(made) == 1 and isinstance(made[0].connection, h11_protocol._Connection)


def _h2_exchange(port: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """One HTTP/2 request with prior knowledge (no upgrade), by h2's client: the answer's headers and body."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(1, [(":method", "GET"), (":path", "/h2"), (":scheme", "http"), (":authority", "x")],
                        end_stream=True)
    headers: list[tuple[bytes, bytes]] = []
    body = b""
    with socket.create_connection(("127.0.0.1", port), timeout=LIMIT) as sock:
        sock.sendall(client.data_to_send())
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline:
            data = sock.recv(1 << 16)
            if not data:
                break
            for event in client.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = list(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    client.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    return headers, body
            sock.sendall(client.data_to_send())
    raise AssertionError("no HTTP/2 answer")


async def test_http2_with_prior_knowledge_is_still_served():
    """``PRI * HTTP/2.0`` on occ's connection goes to hypercorn's HTTP/2, which answers."""
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            port = await serve_on_occ(nursery, _echo, hypercorn_config(errorlog=None))
            headers, body = await trio.to_thread.run_sync(_h2_exchange, port)
            nursery.cancel_scope.cancel()
    assert (b":status", b"200") in headers
    assert body.startswith(b"('GET', '/h2'") and b"'2'" in body

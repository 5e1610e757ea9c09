"""occ's HTTP/1.1 response reader against h11, byte for byte.

Each case is a response as a server could send it (h11's own reader tests, the RFC 9112 edge cases,
and what providers and proxies were seen sending). Both parsers get the same bytes, whole and one byte
at a time; they must agree on whether it is a response at all and, if it is, on the status, the header
values, the body, whether the body ended and whether the connection may carry another request.

Where they differ on purpose, :data:`DIFFERENCES` says why, and the test checks that they still differ
(a difference that went away must leave the list).
"""

from __future__ import annotations

from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.core.errors import UpstreamProtocolError
from occ.upstream.http1 import ResponseParser

OK = b"HTTP/1.1 200 OK\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"

#: name -> (response bytes, the server closes the connection after them)
CASES: dict[str, tuple[bytes, bool]] = {
    # framing
    "content-length": (OK + b"Content-Length: 5\r\n\r\nhello", False),
    "content-length zero": (OK + b"Content-Length: 0\r\n\r\n", False),
    "content-length repeated equal": (OK + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok", False),
    "content-length list equal": (OK + b"Content-Length: 2, 2\r\n\r\nok", False),
    "content-length conflicting": (OK + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nok", False),
    "content-length negative": (OK + b"Content-Length: -1\r\n\r\n", False),
    "content-length 21 digits": (OK + b"Content-Length: 000000000000000000002\r\n\r\nok", False),
    "content-length 20 digits": (OK + b"Content-Length: 00000000000000000002\r\n\r\nok", False),
    "until close": (OK + b"X: y\r\n\r\nall of it", True),
    "until close, nothing": (OK + b"\r\n", True),
    "chunked": (OK + CHUNKED + b"\r\n5\r\nhello\r\n0\r\n\r\n", False),
    "chunked, upper hex": (OK + CHUNKED + b"\r\naA\r\n" + b"x" * 0xAA + b"\r\n0\r\n\r\n", False),
    "chunked, extensions": (OK + CHUNKED + b'\r\n5; hello=there\r\nxxxxx\r\n0; random="junk"; some=more\r\n\r\n',
                            False),
    "chunked, trailing blanks on size": (OK + CHUNKED + b"\r\n5   \t \r\n01234\r\n0\r\n\r\n", False),
    "chunked, trailers": (OK + CHUNKED + b"\r\n3\r\nabc\r\n0\r\nSome: header\r\n\r\n", False),
    "chunked, bad trailer": (OK + CHUNKED + b"\r\n3\r\nabc\r\n0\r\nno colon\r\n\r\n", False),
    "chunked, size too long": (OK + CHUNKED + b"\r\n" + b"9" * 100 + b"\r\nxxx", False),
    "chunked, NUL in size": (OK + CHUNKED + b"\r\n10\x00\r\nxxx", False),
    "chunked, data longer than size": (OK + CHUNKED + b"\r\n3\r\nxxx__1a\r\n", False),
    "chunked, CR then junk after data": (OK + CHUNKED + b"\r\n3\r\nxxx\r_1a\r\n", False),
    "chunked, junk then LF after data": (OK + CHUNKED + b"\r\n3\r\nxxx_\n1a\r\n", False),
    "chunked, bare LF after data": (OK + CHUNKED + b"\r\n3\r\nxxx\n0\r\n\r\n", False),
    "chunked, bare LF size line": (OK + CHUNKED + b"\r\n3\nxxx\r\n0\r\n\r\n", False),
    "chunked, leading blank in size": (OK + CHUNKED + b"\r\n 3\r\nxxx\r\n0\r\n\r\n", False),
    "chunked twice": (OK + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", False),
    "two transfer-encoding lines": (OK + CHUNKED + CHUNKED + b"\r\n0\r\n\r\n", False),
    "gzip, chunked": (OK + b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n", False),
    "gzip alone": (OK + b"Transfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08", True),
    "identity": (OK + b"Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok", False),
    "chunked, case and blanks": (OK + b"Transfer-Encoding:  ChUnKeD \r\n\r\n2\r\nok\r\n0\r\n\r\n", False),
    "chunked beside content-length": (OK + b"Content-Length: 100\r\n" + CHUNKED + b"\r\n2\r\nok\r\n0\r\n\r\n",
                                      False),
    # the head
    "no reason": (b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", False),
    "reason with NUL": (b"HTTP/1.1 200 OK\x00xxxx\r\nContent-Length: 0\r\n\r\n", False),
    "reason with tab": (b"HTTP/1.1 200 O\tK\r\nContent-Length: 0\r\n\r\n", False),
    "bare LF head": (b"HTTP/1.1 200 OK\nA: 1\nB: 2\n\n", True),
    "mixed line ends": (b"HTTP/1.1 200 OK\r\nA: 1\nContent-Length: 0\n\r\n", False),
    "empty value": (OK + b"Foo:\r\nContent-Length: 0\r\n\r\n", False),
    "blank value": (OK + b"Foo: \t \t \r\nContent-Length: 0\r\n\r\n", False),
    "inner blanks kept": (OK + b"Foo: a a a a a \r\nContent-Length: 0\r\n\r\n", False),
    "obs-fold": (OK + b"Some: multi-line\r\n header\r\n\tnonsense\r\n    \t   \t\tI guess\r\n"
                 b"More: in the\r\n    last header  \r\nContent-Length: 0\r\n\r\n", False),
    "continuation first": (OK + b"  folded: line\r\nContent-Length: 0\r\n\r\n", False),
    "blank before colon": (OK + b"foo  : line\r\nContent-Length: 0\r\n\r\n", False),
    "tab before colon": (OK + b"foo\t: line\r\nContent-Length: 0\r\n\r\n", False),
    "no name": (OK + b": line\r\nContent-Length: 0\r\n\r\n", False),
    "NUL in value": (OK + b"X: a\x00b\r\nContent-Length: 0\r\n\r\n", False),
    "DEL in value": (OK + b"X: a\x7fb\r\nContent-Length: 0\r\n\r\n", False),
    "control char in value": (OK + b"X: a\x01b\r\nContent-Length: 0\r\n\r\n", False),
    "tab in value": (OK + b"X: a\tb\r\nContent-Length: 0\r\n\r\n", False),
    "obs-text in value": (OK + b"X: caf\xe9\r\nContent-Length: 0\r\n\r\n", False),
    "repeated header": (OK + b"Set: a\r\nSet: b\r\nContent-Length: 0\r\n\r\n", False),
    "100 continue first": (b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"Content-Length: 2\r\n\r\nok", False),
    "103 early hints first": (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK + b"Content-Length: 0\r\n\r\n",
                              False),
    "garbage status line": (b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", False),
    "not http": (b"SSH-2.0-OpenSSH\r\n\r\n", False),
    # connection reuse
    "connection close": (OK + b"Connection: close\r\nContent-Length: 2\r\n\r\nok", False),
    "connection keep-alive, Close": (OK + b"Connection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok", False),
    "http/1.0": (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "http/1.0 keep-alive": (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", False),
    "204 with a length": (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", False),
    "304": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", False),
    # errors the way providers send them
    "429 json": (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 27\r\n\r\n{\"error\":{\"message\":\"x\"}}\r\n", False),
    "503 chunked html": (b"HTTP/1.1 503 Service Unavailable\r\n" + CHUNKED + b"\r\nb\r\n<html></h1>\r\n0\r\n\r\n",
                         False),
    "sse until close": (OK + b"Content-Type: text/event-stream\r\n\r\ndata: {}\n\ndata: [DONE]\n\n", True),
}

#: Cases where occ and h11 differ on purpose: name -> why.
DIFFERENCES = {
    "chunked beside content-length": "occ reads the body as h11 does, but never reuses the connection: the pair is "
                                     "a request-smuggling signal (RFC 9112 §6.3 item 3)",
}


def _occ(raw: bytes, eof: bool, *, bytewise: bool) -> tuple[Any, ...]:
    parser = ResponseParser()
    body = b""
    try:
        for piece in ([raw[i:i + 1] for i in range(len(raw))] if bytewise else [raw]):
            body += parser.feed(piece)
        if eof:
            parser.feed_eof()
    except UpstreamProtocolError:
        return ("error",)
    headers = {k: v for k, v in parser.headers.items() if k not in ("content-length", "transfer-encoding")}
    return (parser.status, headers, body, parser.complete, parser.reusable)


def _h11(raw: bytes, eof: bool, *, bytewise: bool) -> tuple[Any, ...]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/v1/messages", headers=[("Host", "upstream"),
                                                                        ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    status, headers, body, complete = 0, {}, b"", False
    pieces = [raw[i:i + 1] for i in range(len(raw))] if bytewise else [raw]
    if eof:
        pieces.append(b"")
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
                    break
                if isinstance(event, h11.Response):
                    status = event.status_code
                    for name, value in event.headers:
                        key = name.decode().lower()
                        if key in ("content-length", "transfer-encoding"):
                            continue
                        text = value.decode("latin-1")
                        headers[key] = f"{headers[key]}, {text}" if key in headers else text
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    complete = True
    except h11.RemoteProtocolError:
        return ("error",)
    if not status:
        return ("error",) if eof or raw else ("incomplete",)
    reusable = complete and conn.our_state is h11.DONE and conn.their_state is h11.DONE
    return (status, headers, body, complete, reusable)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_occ_reads_what_h11_reads(name: str, bytewise: bool) -> None:
    raw, eof = CASES[name]
    ours, theirs = _occ(raw, eof, bytewise=bytewise), _h11(raw, eof, bytewise=bytewise)
    if name in DIFFERENCES:
        assert ours != theirs, f"{name}: occ now agrees with h11; drop it from DIFFERENCES"
        return
    assert ours == theirs, name


def test_a_coded_body_is_neither_passed_on_nor_the_connection_reused() -> None:
    """The issue's case: ``gzip, chunked`` used to come through as gzip bytes, on a reused connection."""
    assert _occ(*CASES["gzip, chunked"], bytewise=False) == ("error",)


def test_folded_values_read_as_h11_reads_them() -> None:
    _, headers, *_ = _occ(*CASES["obs-fold"], bytewise=False)
    assert headers == {"some": "multi-line header nonsense I guess", "more": "in the last header"}


_FIELD = st.tuples(st.sampled_from([b"X-A", b"x-b", b"Set-Cookie", b"Foo"]),
                   st.binary(max_size=12).filter(lambda v: b"\r" not in v and b"\n" not in v))


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(_FIELD, max_size=4), fold=st.sampled_from([b"", b"\r\n ", b"\r\n\t"]),
       body=st.binary(max_size=40), chunked=st.booleans(), le=st.sampled_from([b"\r\n", b"\n"]))
def test_generated_heads_read_alike(fields: list[tuple[bytes, bytes]], fold: bytes, body: bytes, chunked: bool,
                                    le: bytes) -> None:
    """Any header bytes (controls, obs-text, folds) and either framing: same verdict, same values."""
    head = OK.replace(b"\r\n", le)
    for name, value in fields:
        head += name + b": " + value + fold.replace(b"\r\n", le) + b"v" * bool(fold) + le
    if chunked:
        payload = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        raw = head + b"Transfer-Encoding: chunked" + le + le + payload
    else:
        raw = head + b"Content-Length: %d" % len(body) + le + le + body
    assert _occ(raw, False, bytewise=False) == _h11(raw, False, bytewise=False)

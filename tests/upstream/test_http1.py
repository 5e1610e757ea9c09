"""occ.upstream.http1: the sans-IO HTTP/1.1 request head and response parser.

Unit tests pin each framing rule; the property tests feed generated responses split at arbitrary
points and require the same body, completeness and reusability as feeding them whole.
"""

from __future__ import annotations

import itertools

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.core.errors import UpstreamProtocolError
from occ.upstream.http1 import MAX_HEAD_BYTES, ResponseParser, request_head

CRLF = b"\r\n"


def feed_all(raw: bytes, *, pieces: list[int] | None = None, eof: bool = False,
             method: str = "POST") -> tuple[ResponseParser, bytes]:
    """Feed ``raw`` (split before each index in ``pieces``) and return the parser and the body."""
    parser = ResponseParser(method=method)
    cuts = sorted(set(pieces or []))
    bounds = [0, *cuts, len(raw)]
    body = b""
    for start, end in itertools.pairwise(bounds):
        body += parser.feed(raw[start:end])
    if eof:
        parser.feed_eof()
    return parser, body


def feed_bytewise(raw: bytes, *, eof: bool = False, method: str = "POST") -> tuple[ResponseParser, bytes]:
    return feed_all(raw, pieces=list(range(1, len(raw))), eof=eof, method=method)


def response(status: str = "200 OK", headers: list[str] | tuple[str, ...] = (), body: bytes = b"",
             *, version: str = "1.1", le: bytes = CRLF) -> bytes:
    lines = [f"HTTP/{version} {status}".encode(), *(h.encode("latin-1") for h in headers)]
    return le.join(lines) + le + le + body


def rejects(raw: bytes, match: str | None = None) -> None:
    with pytest.raises(UpstreamProtocolError, match=match):
        feed_all(raw)
    with pytest.raises(UpstreamProtocolError, match=match):
        feed_bytewise(raw)


def rejects_once(raw: bytes, match: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=match):
        feed_all(raw)


# -- Content-Length bodies ------------------------------------------------------------------------


def test_content_length_body_in_one_feed() -> None:
    parser, body = feed_all(response(headers=["Content-Length: 5", "Content-Type: text/plain"], body=b"hello"))
    assert body == b"hello"
    assert parser.head_done and parser.complete and parser.reusable
    assert parser.status == 200 and parser.reason == "OK" and parser.http_minor == 1
    assert parser.headers == {"content-length": "5", "content-type": "text/plain"}


def test_content_length_body_across_feeds_returns_only_body_bytes() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Le") == b""
    assert not parser.head_done
    assert parser.feed(b"ngth: 10\r\n\r\nabc") == b"abc"
    assert parser.head_done and not parser.complete and not parser.reusable
    assert parser.feed(b"defg") == b"defg"
    assert not parser.complete
    assert parser.feed(b"hij") == b"hij"
    assert parser.complete and parser.reusable


def test_content_length_zero_is_complete_with_the_head() -> None:
    parser, body = feed_all(response(headers=["Content-Length: 0"]))
    assert body == b"" and parser.complete and parser.reusable


def test_content_length_body_may_contain_blank_lines() -> None:
    payload = b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
    parser, body = feed_bytewise(response(headers=[f"Content-Length: {len(payload)}"], body=payload))
    assert body == payload and parser.complete and parser.reusable


def test_head_with_bare_lf_line_ends() -> None:
    raw = response(headers=["Content-Length: 3", "X-A: b"], body=b"xyz", le=b"\n")
    for parser, body in (feed_all(raw), feed_bytewise(raw)):
        assert body == b"xyz" and parser.complete and parser.headers["x-a"] == "b"


def test_head_with_mixed_line_ends() -> None:
    raw = b"HTTP/1.1 200 OK\nContent-Length: 2\r\nX-A: b\n\r\nhi"
    parser, body = feed_bytewise(raw)
    assert body == b"hi" and parser.complete and parser.headers == {"content-length": "2", "x-a": "b"}


# -- headers, status line ---------------------------------------------------------------------------


def test_headers_are_lowercased_stripped_and_repeats_joined() -> None:
    raw = response(headers=["Set-Cookie: a=1", "X-Thing:   spaced \t", "SET-COOKIE: b=2", "Empty:",
                            "Content-Length: 0"])
    parser, _ = feed_all(raw)
    assert parser.headers == {"set-cookie": "a=1, b=2", "x-thing": "spaced", "empty": "", "content-length": "0"}


def test_header_values_are_latin1() -> None:
    parser, _ = feed_all(b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n")
    assert parser.headers["x-name"] == "café"


@pytest.mark.parametrize(("line", "status", "reason"), [
    ("HTTP/1.1 200 OK", 200, "OK"),
    ("HTTP/1.1 404 Not Found", 404, "Not Found"),
    ("HTTP/1.1 200", 200, ""),
    ("HTTP/1.1 200 ", 200, ""),
    ("HTTP/1.1 599 weird  reason\tphrase", 599, "weird  reason\tphrase"),
])
def test_status_line_variants(line: str, status: int, reason: str) -> None:
    parser, _ = feed_all(line.encode() + b"\r\nContent-Length: 0\r\n\r\n")
    assert (parser.status, parser.reason) == (status, reason)


@pytest.mark.parametrize("line", [
    b"HTTP/2 200 OK", b"HTTP/2.0 200 OK", b"HTTP/1.2 200 OK", b"http/1.1 200 OK", b"HTTP/1.1 20 OK",
    b"HTTP/1.1 2000 OK", b"HTTP/1.1 abc OK", b" HTTP/1.1 200 OK", b"ICY 200 OK", b"HTTP/1.1  200 OK",
    b"HTTP/1.1\t200 OK", b"", b"<html>hello</html>",
])
def test_no_status_line_is_rejected(line: bytes) -> None:
    rejects(line + b"\r\nContent-Length: 0\r\n\r\n", "status line")


@pytest.mark.parametrize("line", [b" folded", b"\tfolded", b" \t folded  "])
def test_obs_fold_is_unfolded_into_one_space(line: bytes) -> None:
    """RFC 9112 §5.2: a user agent replaces each obs-fold with SP before interpreting the value."""
    parser, _ = feed_all(b"HTTP/1.1 200 OK\r\nX-A: b\r\n" + line + b"\r\nContent-Length: 0\r\n\r\n")
    assert parser.headers["x-a"] == "b folded" and parser.complete


def test_a_continuation_line_before_any_field_is_rejected() -> None:
    rejects(b"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 0\r\n\r\n", "continuation")


@pytest.mark.parametrize("line", [
    b"NoColonHere", b"Bad Name: x", b"Name : x", b": value", b"N\xe9me: x", b"(paren): x", b"\r",
    b"X-Cr: a\rb",  # a bare CR inside a value (RFC 9112 lets a recipient refuse it)
])
def test_malformed_header_line_is_rejected(line: bytes) -> None:
    rejects(b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 0\r\n\r\n", "malformed")


@pytest.mark.parametrize("bad", [b"NoColon", b" continued", b"X-Cr: a\rb"])
def test_a_long_malformed_header_line_is_rejected_at_once(bad: bytes) -> None:
    """Fields are matched anchored where each must start: a search for the next match from every bad
    position would take seconds on one 60 KB line (a long token-like value), freezing the loop."""
    line = bad + b"A" * 60_000
    rejects(b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 0\r\n\r\n",
            "continuation" if bad[:1] == b" " else "malformed")


def test_head_too_big_without_end_is_rejected_before_it_ends() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nX-Big: ")
    with pytest.raises(UpstreamProtocolError, match="larger than"):
        for _ in range(MAX_HEAD_BYTES // 1024 + 2):
            parser.feed(b"a" * 1024)


def test_head_too_big_in_one_feed_is_rejected() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\nContent-Length: 0\r\n\r\n"
    rejects_once(raw, "larger than")


def _head_of_length(size: int) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: "
    return head + b"a" * (size - len(head))


def test_head_just_under_the_limit_is_accepted() -> None:
    raw = _head_of_length(MAX_HEAD_BYTES - 3) + b"\r\n\r\n"
    for pieces in ([], [len(raw) - 1], [len(raw) - 2], [len(raw) - 3], [4096 * k for k in range(1, 17)]):
        parser, _ = feed_all(raw, pieces=pieces)
        assert parser.complete


def test_head_at_the_limit_is_accepted_however_split() -> None:
    raw = _head_of_length(MAX_HEAD_BYTES) + b"\r\n\r\n"
    parser, _ = feed_all(raw)
    assert parser.complete  # accepted whole
    parser, _ = feed_all(raw, pieces=[len(raw) - 1])
    assert parser.complete


# -- Content-Length validation ----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    ["Content-Length: 3", "Content-Length: 3"],
    ["Content-Length: 3, 3"],
    ["Content-Length: 3,3, 3"],
    ["Content-Length:  3 "],
])
def test_identical_duplicate_content_lengths_are_accepted(headers: list[str]) -> None:
    parser, body = feed_all(response(headers=headers, body=b"abc"))
    assert body == b"abc" and parser.complete and parser.reusable


@pytest.mark.parametrize("headers", [
    ["Content-Length: 3", "Content-Length: 4"],
    ["Content-Length: 3, 4"],
    ["Content-Length: 3,"],
])
def test_conflicting_content_lengths_are_rejected(headers: list[str]) -> None:
    rejects(response(headers=headers, body=b"abcd"), "Content-Length")


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "", "1.0", "0x10", "5 5", "1_0", "1e3", "five"])
def test_non_numeric_content_length_is_rejected(value: str) -> None:
    rejects(response(headers=[f"Content-Length: {value}"], body=b"abcde"), "Content-Length")


@pytest.mark.parametrize("value", [b"\xb2", b"\xb9", b"1\xb3"])
def test_superscript_digit_content_length_is_a_protocol_error(value: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        feed_all(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\nab")


def test_large_content_length_is_accepted_and_counted() -> None:
    parser = ResponseParser()
    parser.feed(response(headers=["Content-Length: 100000000000"]))
    assert parser.head_done and not parser.complete
    assert parser.feed(b"x" * 1000) == b"x" * 1000
    assert not parser.complete


# -- chunked bodies ---------------------------------------------------------------------------------

TE_CHUNKED = "Transfer-Encoding: chunked"


def test_chunked_body() -> None:
    raw = response(headers=[TE_CHUNKED], body=b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    for parser, body in (feed_all(raw), feed_bytewise(raw)):
        assert body == b"hello world" and parser.complete and parser.reusable


def test_chunked_with_extensions() -> None:
    raw = response(headers=[TE_CHUNKED],
                   body=b"5;name=value\r\nhello\r\n1 ; a=\"b;c\"\r\n!\r\n0;last\r\n\r\n")
    for parser, body in (feed_all(raw), feed_bytewise(raw)):
        assert body == b"hello!" and parser.complete


def test_chunked_with_trailers() -> None:
    raw = response(headers=[TE_CHUNKED], body=b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n")
    for parser, body in (feed_all(raw), feed_bytewise(raw)):
        assert body == b"abc" and parser.complete and parser.reusable
        assert "x-checksum" not in parser.headers


@pytest.mark.parametrize("size", [b"A", b"a", b"00A", b"0000000000000000A"[-16:], b"A\t", b"A \t"])
def test_chunked_hex_sizes(size: bytes) -> None:
    data = bytes(range(10))
    raw = response(headers=[TE_CHUNKED], body=size + b"\r\n" + data + b"\r\n0\r\n\r\n")
    parser, body = feed_all(raw)
    assert body == data and parser.complete


def test_chunked_uppercase_multi_digit_hex() -> None:
    data = b"z" * 0x1F
    raw = response(headers=[TE_CHUNKED], body=b"1F\r\n" + data + b"\r\n0\r\n\r\n")
    parser, body = feed_bytewise(raw)
    assert body == data and parser.complete


def test_chunked_with_bare_lf_head_and_crlf_chunks() -> None:
    raw = response(headers=[TE_CHUNKED], body=b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: t\r\n\r\n", le=b"\n")
    for parser, body in (feed_all(raw), feed_bytewise(raw)):
        assert body == b"abcde" and parser.complete and parser.reusable


@pytest.mark.parametrize("body", [b"3\nabc\r\n0\r\n\r\n", b"3\r\nabc\n0\r\n\r\n", b"3\r\nabc\r\n0\n\r\n"])
def test_chunk_lines_and_chunk_data_end_in_crlf_exactly(body: bytes) -> None:
    """As h11 reads them: a bare LF there is how two parsers come to disagree on where a body ends."""
    rejects(response(headers=[TE_CHUNKED], body=body))


def test_chunk_data_may_contain_crlf() -> None:
    raw = response(headers=[TE_CHUNKED], body=b"4\r\n\r\n\r\n\r\n0\r\n\r\n")
    parser, body = feed_bytewise(raw)
    assert body == b"\r\n\r\n" and parser.complete


def test_chunked_wins_over_content_length() -> None:
    raw = response(headers=["Content-Length: 100", TE_CHUNKED], body=b"2\r\nok\r\n0\r\n\r\n")
    parser, body = feed_all(raw)
    assert body == b"ok" and parser.complete
    assert not parser.reusable  # both framings at once is a smuggling signal: no next request on it


@pytest.mark.parametrize("coding", ["gzip, Chunked", "gzip", "identity", "deflate, chunked", "chunked, gzip", ""])
def test_transfer_codings_other_than_chunked_are_refused(coding: str) -> None:
    """Coded bytes passed on as the body would be garbage, and the connection's framing unknown."""
    rejects(response(headers=[f"Transfer-Encoding: {coding}", "Content-Length: 2"], body=b"2\r\nok\r\n0\r\n\r\n"),
            "transfer coding")


def test_transfer_encoding_chunked_is_case_and_blank_insensitive() -> None:
    parser, body = feed_all(response(headers=["Transfer-Encoding:  Chunked "], body=b"2\r\nok\r\n0\r\n\r\n"))
    assert body == b"ok" and parser.reusable


@pytest.mark.parametrize("headers", [
    ["Transfer-Encoding: chunked, chunked"],
    ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
    ["Transfer-Encoding: chunked, gzip, chunked"],
])
def test_double_chunked_is_rejected(headers: list[str]) -> None:
    rejects(response(headers=headers, body=b"0\r\n\r\n"), "chunked")


@pytest.mark.parametrize("size", [b"xyz", b"", b"-1", b"0x5", b"1_0", b"+5", b"12345678901234567", b"5 5", b";ext"])
def test_invalid_chunk_size_is_rejected(size: bytes) -> None:
    rejects(response(headers=[TE_CHUNKED], body=size + b"\r\nhello\r\n0\r\n\r\n"), "chunk size")


def test_over_long_chunk_size_line_is_rejected() -> None:
    raw = response(headers=[TE_CHUNKED], body=b"5;" + b"e" * 5000)
    parser = ResponseParser()
    parser.feed(raw[:100])
    with pytest.raises(UpstreamProtocolError, match="over-long"):
        parser.feed(raw[100:])
    with pytest.raises(UpstreamProtocolError, match="over-long"):
        feed_bytewise(raw)


def test_over_long_trailer_line_is_rejected() -> None:
    raw = response(headers=[TE_CHUNKED], body=b"0\r\nX-T: " + b"t" * 5000)
    with pytest.raises(UpstreamProtocolError, match="over-long"):
        feed_all(raw)


def test_chunk_size_line_under_the_limit_split_is_accepted() -> None:
    raw = response(headers=[TE_CHUNKED], body=b"3;" + b"e" * 4000 + b"\r\nabc\r\n0\r\n\r\n")
    parser, body = feed_bytewise(raw)
    assert body == b"abc" and parser.complete


def test_over_long_chunk_size_line_rejected_however_split() -> None:
    raw = response(headers=[TE_CHUNKED], body=b"3;" + b"e" * 5000 + b"\r\nabc\r\n0\r\n\r\n")
    with pytest.raises(UpstreamProtocolError):
        feed_bytewise(raw)  # rejected today
    with pytest.raises(UpstreamProtocolError):
        feed_all(raw)  # accepted today


@pytest.mark.parametrize("tail", [b"5\r\nhelloX\r\n0\r\n\r\n", b"5\r\nhello world\r\n0\r\n\r\n",
                                  b"2\r\nhello\r\n0\r\n\r\n"])
def test_chunk_data_longer_than_declared_is_rejected(tail: bytes) -> None:
    rejects(response(headers=[TE_CHUNKED], body=tail), "longer than its declared size")


# -- until-close, no-body responses -----------------------------------------------------------------


def test_until_close_body_completes_at_eof_and_is_not_reusable() -> None:
    parser = ResponseParser()
    assert parser.feed(response(body=b"part one ")) == b"part one "
    assert parser.head_done and not parser.complete
    assert parser.feed(b"part two") == b"part two"
    assert not parser.complete
    parser.feed_eof()
    assert parser.complete and not parser.reusable


def test_until_close_body_may_be_empty() -> None:
    parser, body = feed_all(response(), eof=True)
    assert body == b"" and parser.complete and not parser.reusable


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
@pytest.mark.parametrize("headers", [[], ["Content-Length: 10"], [TE_CHUNKED]])
def test_204_and_304_have_no_body(status: str, headers: list[str]) -> None:
    parser, body = feed_all(response(status, headers))
    assert body == b"" and parser.complete and parser.reusable


def test_head_request_response_has_no_body() -> None:
    for headers in (["Content-Length: 100"], [TE_CHUNKED], []):
        parser, body = feed_all(response(headers=headers), method="HEAD")
        assert body == b"" and parser.complete and parser.reusable


def test_bytes_after_a_bodiless_response_make_it_not_reusable() -> None:
    parser, body = feed_all(response("204 No Content") + b"junk")
    assert body == b"" and parser.complete and not parser.reusable


# -- interim responses ------------------------------------------------------------------------------


def test_interim_100_and_103_are_skipped() -> None:
    raw = (b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
           + response("201 Created", ["Content-Length: 2"], b"ok"))
    for parser, body in (feed_all(raw), feed_bytewise(raw)):
        assert parser.status == 201 and parser.reason == "Created"
        assert body == b"ok" and parser.complete and parser.reusable
        assert "link" not in parser.headers


def test_interim_response_in_its_own_feed() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n") == b""
    assert not parser.head_done and parser.status == 0
    assert parser.feed(response(headers=["Content-Length: 1"], body=b"x")) == b"x"
    assert parser.complete and parser.status == 200


def test_eof_after_only_an_interim_response_raises() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n")
    with pytest.raises(UpstreamProtocolError, match="response head"):
        parser.feed_eof()


def test_101_switching_protocols_is_rejected() -> None:
    rejects(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "101")


# -- keep-alive rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "headers", "reusable"), [
    ("1.1", [], True),
    ("1.1", ["Connection: close"], False),
    ("1.1", ["Connection: CLOSE"], False),
    ("1.1", ["Connection: keep-alive, Close"], False),
    ("1.1", ["Connection: keep-alive"], True),
    ("1.1", ["Connection: upgrade"], True),
    ("1.0", [], False),
    ("1.0", ["Connection: keep-alive"], False),  # as h11: HTTP/1.0 keep-alive is never trusted
    ("1.0", ["Connection: Keep-Alive"], False),
    ("1.0", ["Connection: close"], False),
])
def test_connection_reuse_rules(version: str, headers: list[str], reusable: bool) -> None:
    parser, body = feed_all(response(headers=[*headers, "Content-Length: 2"], body=b"ok", version=version))
    assert body == b"ok" and parser.complete
    assert parser.reusable is reusable
    assert parser.http_minor == int(version[-1])


def test_connection_close_with_chunked_is_not_reusable() -> None:
    parser, body = feed_all(response(headers=[TE_CHUNKED, "Connection: close"], body=b"1\r\nx\r\n0\r\n\r\n"))
    assert body == b"x" and parser.complete and not parser.reusable


def test_http10_without_length_reads_until_close() -> None:
    parser, body = feed_all(response(body=b"data", version="1.0", headers=["Connection: keep-alive"]), eof=True)
    assert body == b"data" and parser.complete and not parser.reusable


def test_eof_after_complete_response_is_not_an_error_but_ends_reuse() -> None:
    parser, _ = feed_all(response(headers=["Content-Length: 1"], body=b"x"))
    assert parser.reusable
    parser.feed_eof()
    assert parser.complete and not parser.reusable


# -- EOF before the end -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r"])
def test_eof_mid_head_raises(raw: bytes) -> None:
    parser = ResponseParser()
    parser.feed(raw)
    with pytest.raises(UpstreamProtocolError, match="before a complete response head"):
        parser.feed_eof()


@pytest.mark.parametrize("raw", [
    response(headers=["Content-Length: 3"], body=b"ab"),
    response(headers=["Content-Length: 3"]),
    response(headers=[TE_CHUNKED]),
    response(headers=[TE_CHUNKED], body=b"5\r\nhel"),
    response(headers=[TE_CHUNKED], body=b"5\r\nhello"),
    response(headers=[TE_CHUNKED], body=b"5\r\nhello\r\n"),
    response(headers=[TE_CHUNKED], body=b"5\r\nhello\r\n0\r\n"),
    response(headers=[TE_CHUNKED], body=b"5\r\nhello\r\n0\r\nTrailer: x\r\n"),
])
def test_eof_mid_body_raises(raw: bytes) -> None:
    parser = ResponseParser()
    parser.feed(raw)
    assert parser.head_done and not parser.complete
    with pytest.raises(UpstreamProtocolError, match="middle of the response body"):
        parser.feed_eof()


# -- bytes after the response -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    response(headers=["Content-Length: 2"], body=b"ok"),
    response(headers=[TE_CHUNKED], body=b"2\r\nok\r\n0\r\n\r\n"),
])
def test_extra_bytes_after_complete_response_make_it_not_reusable(raw: bytes) -> None:
    extra = b"HTTP/1.1 200 OK\r\n"
    same_feed, body = feed_all(raw + extra)
    assert body == b"ok" and same_feed.complete and not same_feed.reusable
    later = ResponseParser()
    assert later.feed(raw) == b"ok" and later.reusable
    assert later.feed(b"") == b"" and later.reusable
    assert later.feed(extra) == b""
    assert later.complete and not later.reusable


# -- request_head ---------------------------------------------------------------------------------


def test_request_head_exact_bytes() -> None:
    head = request_head("POST", "/v1/messages?beta=true", "api.example.com:8443",
                        {"Authorization": "Bearer k", "Content-Type": "application/json"}, 42)
    assert head == (b"POST /v1/messages?beta=true HTTP/1.1\r\n"
                    b"host: api.example.com:8443\r\n"
                    b"Authorization: Bearer k\r\n"
                    b"Content-Type: application/json\r\n"
                    b"content-length: 42\r\n\r\n")


def test_request_head_drops_callers_framing_headers() -> None:
    head = request_head("POST", "/", "h", {"HOST": "evil", "Content-Length": "999", "transfer-encoding": "chunked",
                                           "Transfer-Encoding": "gzip", "X-Keep": "1"}, 0)
    assert head == b"POST / HTTP/1.1\r\nhost: h\r\nX-Keep: 1\r\ncontent-length: 0\r\n\r\n"
    assert head.lower().count(b"host:") == 1 and head.lower().count(b"content-length:") == 1
    assert b"transfer-encoding" not in head.lower()


@pytest.mark.parametrize(("name", "value"), [
    ("X-A", "a\r\nInjected: 1"), ("X-A", "a\nb"), ("X-A", "a\rb"), ("X-A", "a\x00b"),
    ("X-\r\nA", "v"), ("X-\nA", "v"), ("X\x00", "v"), ("", "v"), ("X:A", "v"),
])
def test_request_head_rejects_control_characters(name: str, value: str) -> None:
    with pytest.raises(UpstreamProtocolError, match="cannot be sent upstream") as caught:
        request_head("POST", "/", "h", {name: value}, 0)
    assert value not in str(caught.value) or not value.strip()  # the value may be a secret


def test_request_head_rejects_non_latin1_value() -> None:
    with pytest.raises(UpstreamProtocolError, match="latin-1"):
        request_head("POST", "/", "h", {"X-A": "漢"}, 0)


def test_a_key_with_a_trailing_cr_is_refused_without_echoing_it() -> None:
    with pytest.raises(UpstreamProtocolError) as caught:
        request_head("POST", "/", "h", {"authorization": "Bearer sk-SECRET\r"}, 0)
    assert "SECRET" not in str(caught.value) and "'authorization'" in str(caught.value)


def test_request_head_round_trips_latin1() -> None:
    assert b"X-A: caf\xe9\r\n" in request_head("POST", "/", "h", {"X-A": "café"}, 1)


# -- properties: any split, same result -------------------------------------------------------------


@attrs.frozen
class Generated:
    raw: bytes
    body: bytes
    framing: str  # "length", "chunked" or "close"
    keep_alive: bool
    status: int


_TOKEN_CHARS = st.sampled_from("abcxyzABC019-_!#$%&'*+.^`|~")
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=12)


@st.composite
def generated_responses(draw: st.DrawFn) -> Generated:
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    le = draw(st.sampled_from([b"\r\n", b"\n"]))
    status = draw(st.sampled_from([200, 201, 400, 429, 500, 529]))
    close = draw(st.booleans())
    headers: list[bytes] = []
    for _ in range(draw(st.integers(0, 3))):
        name = "x-" + draw(st.text(_TOKEN_CHARS, min_size=1, max_size=8))
        headers.append(f"{name}: {draw(_VALUE).strip()}".encode("latin-1"))
    if close:
        headers.append(b"Connection: close")
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=6)))) if body else []
        bounds = [0, *cuts, len(body)]
        payload = b""
        for start, end in itertools.pairwise(bounds):
            piece = body[start:end]
            if not piece:
                continue
            size = draw(st.sampled_from(["%x", "%X", "%04x"])) % len(piece)
            ext = draw(st.sampled_from(["", ";a=b", " ; name=\"q;uoted\"", ";x"]))
            payload += (size + ext).encode() + CRLF + piece + CRLF  # chunk lines: CRLF only, as h11
        payload += b"0" + CRLF
        for i in range(draw(st.integers(0, 2))):
            payload += b"Trailer-%d: v" % i + CRLF
        payload += CRLF
    else:
        payload = body
    head = le.join([b"HTTP/1.1 %d Reason" % status, *headers]) + le + le
    interim = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue" + le + le,
                                    b"HTTP/1.1 103 Early Hints" + le + b"Link: </a>" + le + le]))
    return Generated(interim + head + payload, body, framing, keep_alive=not close and framing != "close",
                     status=status)


def _outcome(parser: ResponseParser, body: bytes) -> tuple[object, ...]:
    return (body, parser.complete, parser.reusable, parser.status, parser.reason, parser.http_minor, parser.headers)


def _splits(raw_len: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, raw_len), max_size=12)


@settings(max_examples=200, deadline=None)
@given(generated=generated_responses(), data=st.data())
def test_any_split_gives_the_same_response(generated: Generated, data: st.DataObject) -> None:
    eof = generated.framing == "close"
    whole, whole_body = feed_all(generated.raw, eof=eof)
    assert whole_body == generated.body
    assert whole.complete
    assert whole.status == generated.status
    assert whole.reusable is generated.keep_alive
    pieces = data.draw(_splits(len(generated.raw)), label="pieces")
    split, split_body = feed_all(generated.raw, pieces=pieces, eof=eof)
    assert _outcome(split, split_body) == _outcome(whole, whole_body)


@settings(max_examples=60, deadline=None)
@given(generated=generated_responses())
def test_byte_by_byte_gives_the_same_response(generated: Generated) -> None:
    eof = generated.framing == "close"
    bytewise, body = feed_bytewise(generated.raw, eof=eof)
    assert _outcome(bytewise, body) == _outcome(*feed_all(generated.raw, eof=eof))
    assert body == generated.body and bytewise.complete


@settings(max_examples=200, deadline=None)
@given(generated=generated_responses(), data=st.data())
def test_a_truncated_framed_response_is_never_complete(generated: Generated, data: st.DataObject) -> None:
    if generated.framing == "close":
        return
    cut = data.draw(st.integers(0, len(generated.raw) - 1), label="cut")
    truncated = generated.raw[:cut]
    pieces = data.draw(_splits(len(truncated)), label="pieces")
    parser, body = feed_all(truncated, pieces=pieces)
    assert not parser.complete and not parser.reusable
    assert generated.body.startswith(body)
    with pytest.raises(UpstreamProtocolError):
        parser.feed_eof()


@settings(max_examples=150, deadline=None)
@given(generated=generated_responses(), extra=st.binary(min_size=1, max_size=40), data=st.data())
def test_bytes_after_a_framed_response_never_leak_into_the_body(generated: Generated, extra: bytes,
                                                                 data: st.DataObject) -> None:
    if generated.framing == "close":
        return
    raw = generated.raw + extra
    pieces = data.draw(_splits(len(raw)), label="pieces")
    parser, body = feed_all(raw, pieces=pieces)
    assert body == generated.body
    assert parser.complete and not parser.reusable

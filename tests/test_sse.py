"""The incremental SSE decoder: the WHATWG grammar, and identical events for any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.errors import UpstreamProtocolError
from occ.sse import SSEDecoder, SSEEvent


def decode(*chunks: bytes) -> tuple[list[SSEEvent], SSEDecoder]:
    decoder = SSEDecoder()
    events = [e for c in chunks for e in decoder.feed(c)]
    return events + decoder.close(), decoder


def test_basic_fields_comments_and_multiline_data():
    events, decoder = decode(b": keepalive\nevent: a\ndata: one\ndata:two\nid: 7\nretry: 10\n\ndata: x\n\n")
    assert events == [SSEEvent("one\ntwo", "a", "7", 10), SSEEvent("x", "message", "7", 10)]
    assert decoder.comments == 1 and not decoder.truncated


def test_edge_44_crlf_and_lone_cr_line_ends():
    events, _ = decode(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n")
    assert [e.data for e in events] == ["a", "b", "c"]


def test_cr_at_chunk_end_then_lf_is_one_line_end():
    events, _ = decode(b"data: a\r", b"\n\r", b"\n")
    assert [e.data for e in events] == ["a"]


def test_edge_45_utf8_split_across_chunks():
    raw = "data: héllo 😀\n\n".encode()
    cut = raw.index("😀".encode()) + 2
    events, _ = decode(raw[:cut], raw[cut:])
    assert events[0].data == "héllo 😀"


def test_unicode_line_separators_inside_json_are_not_line_ends():
    events, _ = decode('data: {"t": "a\u2028b\u0085c"}\n\n'.encode())
    assert events[0].data == '{"t": "a\u2028b\u0085c"}'


def test_missing_final_blank_line_flushes_and_records_truncation():
    events, decoder = decode(b"data: [DONE]")
    assert events[0].data == "[DONE]" and decoder.truncated


def test_bom_and_empty_events_and_no_space_after_colon():
    events, _ = decode(b"\xef\xbb\xbfdata:x\n\nevent: lonely\n\n")
    assert events == [SSEEvent("x")]


def test_line_cap():
    decoder = SSEDecoder(max_line=100)
    with pytest.raises(UpstreamProtocolError):
        decoder.feed(b"data: " + b"x" * 200)


STREAM = (
    b": OPENROUTER PROCESSING\r\n\r\nevent: e\r\ndata: {\"a\": \"\xc3\xa9\xf0\x9f\x98\x80\"}\r\n\r\n"
    b"data: line1\ndata: line2\n\nid: 3\rdata: cr\r\rdata: [DONE]\n\n"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_chunking_gives_the_same_events(cuts):
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert decode(*chunks)[0] == decode(STREAM)[0]


def test_byte_by_byte():
    assert decode(*[STREAM[i:i + 1] for i in range(len(STREAM))])[0] == decode(STREAM)[0]

"""The incremental SSE decoder: the WHATWG grammar, and identical events for any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.core.errors import UpstreamProtocolError
from occ.core.sse import SSEDecoder, SSEEvent


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


def test_line_cap_counts_a_line_held_in_many_pieces():
    decoder = SSEDecoder(max_line=100)
    for _ in range(10):
        decoder.feed(b"data: " + b"x" * 3)  # 90 bytes held, no line end yet
    with pytest.raises(UpstreamProtocolError):
        decoder.feed(b"x" * 20)


def test_a_long_line_in_many_pieces_is_one_line():
    """A long ``data:`` line (a big tool call, sent whole) arrives in many reads without a line end;
    the pieces are held apart and joined once, at the line end."""
    line = b'data: {"x": "' + b"y" * 50_000 + b'"}'
    chunks = [line[i:i + 1000] for i in range(0, len(line), 1000)]
    events, _ = decode(*chunks, b"\r", b"\n", b"\r\n", b"data: next\n\n")
    assert [len(e.data) for e in events] == [len(line) - 6, 4]


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


# -- generated streams --------------------------------------------------------------------------------

_LINE = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """Random events in one line-end style (LF, CRLF or CR; mixing CR and LF is ambiguous by the
    spec), with comments, ids, retry, no-space ``data:`` and events without data; returns the bytes
    and the events the WHATWG rules give."""
    nl = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines: list[str] = []
    expected: list[SSEEvent] = []
    last_id: str | None = None
    retry: int | None = None
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            lines.append(":" + draw(_LINE))
        kind = draw(st.one_of(st.none(), st.sampled_from(["message", "ping", "content_block_delta"])))
        if kind is not None:
            lines.append(f"event: {kind}")
        if draw(st.booleans()):
            last_id = draw(st.text("abc123", max_size=4))
            lines.append(f"id: {last_id}")
        if draw(st.integers(0, 5)) == 0:
            retry = draw(st.integers(0, 9999))
            lines.append(f"retry: {retry}")
        data = draw(st.lists(_LINE, max_size=3))
        for value in data:
            lines.append(f"data:{value}" if not value.startswith(" ") and draw(st.booleans()) else f"data: {value}")
        lines.append("")
        if data:
            expected.append(SSEEvent("\n".join(data), kind or "message", last_id, retry))
    raw = nl.join(lines) + (nl if lines else "")
    if draw(st.booleans()):
        raw = "\ufeff" + raw
    return raw.encode(), expected


@settings(max_examples=300, deadline=None)
@given(sse_streams(), st.data())
def test_generated_streams_decode_to_the_spec_events_under_any_split(stream, data):
    raw, expected = stream
    assert decode(raw)[0] == expected
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=20))))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert decode(*chunks)[0] == expected


@settings(max_examples=50, deadline=None)
@given(sse_streams())
def test_generated_streams_byte_by_byte(stream):
    raw, expected = stream
    assert decode(*[raw[i:i + 1] for i in range(len(raw))])[0] == expected


def test_a_value_keeps_all_but_one_leading_space():
    events, _ = decode(b"data:  two\n\n")
    assert events[0].data == " two"


def test_field_without_colon_and_unknown_fields():
    events, _ = decode(b"data\nfoo: bar\ndata: x\n\n")
    assert events[0].data == "\nx"


def test_id_with_nul_is_ignored_and_bad_retry_too():
    events, _ = decode(b"id: 1\n\ndata: a\nid: x\x00y\nretry: 1s\n\n")
    assert events == [SSEEvent("a", "message", "1", None)]


def test_a_truncated_multibyte_character_at_eof_is_replaced_not_raised():
    events, decoder = decode("data: é".encode()[:-1])
    assert events[0].data == "\ufffd" and decoder.truncated


def test_event_size_cap():
    decoder = SSEDecoder(max_event=100)
    with pytest.raises(UpstreamProtocolError):
        decoder.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"y" * 60 + b"\n")


def test_comments_count_as_liveness():
    _, decoder = decode(b": OPENROUTER PROCESSING\n\n: again\n\n")
    assert decoder.comments == 2

"""The large-body parse (from text, in twice the body's size) gives the verdict of the bytes' parse:
the same request, or the same 400 with the same message, whatever orjson and the standard library
disagree on (NaN, integers beyond 64 bits, floats out of range, lone surrogates, a BOM, nesting)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.core.errors import InvalidRequest
from occ.core.validate import parse_messages_request, parse_messages_text


def _verdict(parse, body: bytes):
    try:
        return "ok", parse(body)
    except InvalidRequest as exc:
        return "400", str(exc)


def _same(body: bytes) -> None:
    assert _verdict(parse_messages_text, body.decode("utf-8")) == _verdict(parse_messages_request, body)


GOOD = b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": %s}]}'


@pytest.mark.parametrize("content", [
    b'"hi"', b'"cut \\ud83d here, kept \\ud83d\\ude00"', b'"\\udc00 alone"', b"18446744073709551615",
    b"18446744073709551616", b"-9223372036854775809", b"1e308", b"1.5", b"NaN", b"Infinity", b"-Infinity",
    b"1e400", b'"raw\x01control"', b'"\xc3\xa9t\xc3\xa9"', b"[" * 600 + b"]" * 600, b"[" * 1100 + b"]" * 1100,
])
def test_contents_either_parser_might_read_differently(content):
    _same(GOOD % content)


@pytest.mark.parametrize("body", [
    b"", b"   \n", b"[]", b'"text"', b"\xef\xbb\xbf" + GOOD % b'"hi"', GOOD % b'"hi"' + b" trailing",
    b'{"model": "m"}', b'{"model": "", "max_tokens": 5, "messages": []}',
    b'{"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}',
    b'{"model": "m", "max_tokens": 5, "messages": [], "stream": "yes"}', b'{"model": "m", "model": 3}',
    b'{"a": 1,}', b"{'a': 1}",
])
def test_bad_and_odd_bodies_get_the_same_answer(body):
    _same(body)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=20))
def test_any_json_content_reads_the_same(content):
    _same(GOOD % json.dumps(content).encode())

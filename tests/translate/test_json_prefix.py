"""JsonPrefix against json.loads, over arbitrary JSON, arbitrary splits and arbitrary damage.

The prefix check decides which tool-input fragments reach the client; the Anthropic SDKs parse the
accumulated input after every fragment, so an accepted prefix that is not the start of a JSON object
breaks the client mid-stream, and a refused valid one holds a tool call back. It takes runs (string
contents, whitespace, digits) whole for speed, so these check that no way of splitting the text, and no
position of a bad character, changes its verdict.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from occ.translate.json_prefix import JsonPrefix

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=25,
)
_objects = st.dictionaries(_text, _json, max_size=6)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def is_json_object(text: str) -> bool:
    """The reference: RFC 8259 JSON (no NaN or Infinity, which Python's json accepts) whose value is an object."""
    try:
        return isinstance(json.loads(text, parse_constant=_reject_constant), dict)
    except ValueError:
        return False


def verdict(parts: list[str]) -> tuple[bool, int, bool]:
    prefix = JsonPrefix()
    for part in parts:
        if not prefix.feed(part):
            break
    return prefix.broken, prefix.offset, prefix.complete


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(_objects, st.sampled_from([None, 1, 2]), st.lists(st.integers(0, 400), max_size=8))
def test_every_prefix_of_an_object_is_accepted_and_the_whole_is_complete(value: dict, indent: int | None,
                                                                         cuts: list[int]) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=bool(cuts and cuts[0] % 2))
    parts = split(text, cuts)
    prefix = JsonPrefix()
    for part in parts:
        assert prefix.feed(part), (text, part)
        assert not prefix.complete or part is parts[-1] or not "".join(parts[parts.index(part) + 1:]).strip()
    assert prefix.complete and prefix.offset == len(text)


@settings(max_examples=500, deadline=None)
@given(_objects, st.integers(0, 10_000), st.sampled_from(list('"\\{}[],:-.eE+0a \x01\n\t\u00e9u')),
       st.lists(st.integers(0, 400), max_size=8))
def test_damaged_text_gets_the_same_verdict_however_it_is_split(value: dict, where: int, bad: str,
                                                                 cuts: list[int]) -> None:
    """One character inserted anywhere: whole, split at random, or one character at a time, JsonPrefix says
    the same thing, and when it calls the text complete json.loads agrees (and the other way round)."""
    text = json.dumps(value)
    where %= len(text) + 1
    damaged = text[:where] + bad + text[where:]
    whole = verdict([damaged])
    assert verdict(split(damaged, cuts)) == whole
    assert verdict(list(damaged)) == whole
    broken, offset, complete = whole
    assert complete == is_json_object(damaged)
    if broken:  # what was accepted is still a prefix of something valid: the refused character is the fault
        assert offset < len(damaged)
    else:
        assert offset == len(damaged)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]":,0123456789-+.eEtrufalsn \\u\n', max_size=40))
def test_arbitrary_json_shaped_text_matches_json_loads_when_whole(text: str) -> None:
    prefix = JsonPrefix()
    prefix.feed(text)
    assert prefix.complete == is_json_object(text)
    one_by_one = JsonPrefix()
    for char in text:
        if not one_by_one.feed(char):
            break
    assert (one_by_one.broken, one_by_one.offset, one_by_one.complete) == (prefix.broken, prefix.offset,
                                                                          prefix.complete)


def test_a_prefix_that_cannot_become_an_object_is_refused_where_it_breaks() -> None:
    cases = {
        '{"a": 01': 7,  # a leading zero followed by a digit
        '{"a": "x\x01': 8,  # a control character inside a string
        '{"a" 1': 5,
        '{"a": tru ': 9,
        '{"a": 1}}': 8,
        '[1]': 0,
        '{"a": "\\x"}': 8,
        '{"a": 1.e5}': 8,
    }
    for text, offset in cases.items():
        prefix = JsonPrefix()
        assert not prefix.feed(text), text
        assert prefix.broken and prefix.offset == offset, (text, prefix.offset)
        assert not prefix.feed("}")  # stays broken


def test_a_large_string_value_is_accepted_in_pieces() -> None:
    content = "line of a file that the model writes, with \\\"quotes\\\" and \\u00e9\\n" * 3000
    text = '{"file_path": "/src/x.py", "content": "' + content + '"}'
    prefix = JsonPrefix()
    for start in range(0, len(text), 997):
        assert prefix.feed(text[start:start + 997])
    assert prefix.complete

"""The stream builder every translator writes through: any sequence of calls gives a stream the
Anthropic SDKs accept, and upstream reasoning state handed to it is never lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from support.anthropic_checker import check_stream

from occ.translate.anthropic_events import SIGNATURE_PREFIX, AnthropicStreamBuilder, Usage

texts = st.sampled_from(["", " ", "\n\n", "a", "Hello", " world", "\u2028x", "ok "])
calls = st.one_of(
    st.tuples(st.just("text"), texts),
    st.tuples(st.just("thinking"), texts),
    st.tuples(st.just("signature"), st.integers(0, 10**6).map(lambda n: f"{SIGNATURE_PREFIX}g.m|sig{n}")),
    st.tuples(st.just("tool"), st.sampled_from(['{"a":1}', "{}", ""])),
    st.tuples(st.just("end_block"), st.none()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(calls, max_size=14), st.data())
def test_any_call_sequence_is_a_valid_stream_that_keeps_every_signature(script, data):
    builder = AnthropicStreamBuilder(message_id="msg_b", model="claude-x", input_tokens=5)
    out = b""
    signatures = []
    tools = 0
    for kind, value in script:
        if kind == "text":
            builder.text(value)
        elif kind == "thinking":
            builder.thinking(value)
        elif kind == "signature":
            builder.thinking_signature(value)
            signatures.append(value)
        elif kind == "tool":
            tools += 1
            builder.tool_use(f"toolu_{tools}", "Bash", value)
        else:
            builder.end_block()
        if data.draw(st.booleans(), label="take now"):
            out += builder.take()
    builder.finish("end_turn", Usage(input_tokens=5, output_tokens=1))
    message = check_stream(out + builder.take())
    blocks = message["content"]
    carried = [b["signature"] for b in blocks if b["type"] == "thinking" and b["signature"] != SIGNATURE_PREFIX]
    # in order: each signature rides in a thinking block, except one replaced by a later one while the
    # same thinking block stayed open (translators give one per block)
    assert carried == _last_signature_per_block(script)
    assert set(carried) <= set(signatures)
    assert sum(b["type"] == "tool_use" for b in blocks) == tools
    assert message["stop_reason"] == ("tool_use" if tools else "end_turn")


def test_a_failed_attempt_leaves_nothing_held_for_the_next():
    """Whitespace the builder holds back (it may still become a block) is dropped with the attempt."""
    builder = AnthropicStreamBuilder(message_id="msg_t", model="claude-x", input_tokens=5)
    builder.text("   ")
    builder.thinking("\n")
    builder.forget_uncommitted()
    builder.text("Hi")
    builder.finish("end_turn")
    assert check_stream(builder.take())["content"] == [{"type": "text", "text": "Hi"}]


def _last_signature_per_block(script: list[tuple[str, object]]) -> list[str]:
    """The signatures that must survive: each one, except one overwritten by a later one while the
    same thinking block stayed open (a model of the builder's rule, independent of its code)."""
    kept: list[str] = []
    open_kind = None  # "thinking" / "text" while a block is open
    pending: str | None = None  # the signature of the open thinking block
    for kind, value in script:
        if kind in ("text", "thinking"):
            assert isinstance(value, str)
            if not value.strip() and open_kind != kind:
                continue  # whitespace alone never opens a block
            if open_kind != kind:
                if pending is not None:
                    kept.append(pending)
                    pending = None
                open_kind = kind
        elif kind == "signature":
            assert isinstance(value, str)
            if open_kind == "thinking":
                pending = value
            else:
                kept.append(value)  # a thinking block of its own, opened and closed at once
                open_kind = None
        else:  # a tool call or end_block closes whatever is open
            if pending is not None:
                kept.append(pending)
                pending = None
            open_kind = None
    if pending is not None:
        kept.append(pending)
    return kept

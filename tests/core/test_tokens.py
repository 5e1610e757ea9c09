"""The offline token estimate: what it counts, how close it is, and that no body can break it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.core.tokens import IMAGE_FLAT, PDF_PAGE, count_tokens, estimate_routing_tokens, image_tokens, text_tokens

# Reference counts were measured once with cl100k_base (bpe-openai) and the legacy Claude tokenizer that
# anthropic==0.37.1 ships; docs/token-counting.md says how. The texts are repeated to make them weigh.
SAMPLES = {
    "english": ("Each request runs in a trio nursery. A client disconnect cancels everything beneath at once, "
                "the upstream connection included; an attempt deadline or a stall fires inside the fallback loop, "
                "which moves on before commit and ends the stream with an error event after it. ") * 10,
    "python": ("async def _fallback(state: ServerState, call: Call) -> T:\n"
               "    for model in call.route.chain:\n"
               "        if not state.breakers.allow(model.key, trio.current_time()):\n"
               "            skipped.append(model.label)\n"
               "            continue\n"
               "        result = await attempt(model, provider, protocol, timeouts)\n") * 10,
    "chinese": "当上游模型返回错误时，我们应该尝试下一个模型；当客户端断开连接时，不应该把它算作模型的失败。" * 10,
}
# name -> (cl100k_base, legacy Claude)
REFERENCE = {"english": (511, 521), "python": (600, 730), "chinese": (430, 360)}


def body(content: Any = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": content}], **extra}


def png(width: int, height: int) -> dict[str, Any]:
    head = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + width.to_bytes(4, "big") \
        + height.to_bytes(4, "big") + bytes(5)
    return {"type": "base64", "media_type": "image/png", "data": base64.b64encode(head).decode()}


def jpeg(width: int, height: int) -> dict[str, Any]:
    app0 = b"\xff\xe0" + (16).to_bytes(2, "big") + b"JFIF\x00" + bytes(9)
    sof = b"\xff\xc2" + (17).to_bytes(2, "big") + b"\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") \
        + bytes(12)
    return {"type": "base64", "media_type": "image/jpeg", "data": base64.b64encode(b"\xff\xd8" + app0 + sof).decode()}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_estimate_stays_near_real_tokenizers(name):
    estimate = text_tokens(SAMPLES[name])
    for reference in REFERENCE[name]:
        assert 0.75 * reference <= estimate <= 1.45 * reference, (name, estimate, reference)


def test_cjk_text_is_not_undercounted_like_chars_over_four():
    text = SAMPLES["chinese"]
    assert text_tokens(text) > 2.5 * len(text) / 4


def test_edge_46_claude_code_count_tokens_bodies_are_answered():
    """/context sends {model, messages, tools} with no system, and content "foo" when empty."""
    tools = [{"name": "Bash", "description": "Run a shell command.", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]
    plain = count_tokens({"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "foo"}]})
    with_tools = count_tokens({"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "foo"}],
                               "tools": tools})
    assert 1 <= plain < 10
    assert with_tools - plain > 350  # schema plus Anthropic's tool-use preamble


BIG = "lorem ipsum dolor " * 200  # 3600 characters, ~950 tokens


@pytest.mark.parametrize("part", [
    {"system": BIG},
    {"system": [{"type": "text", "text": BIG, "cache_control": {"type": "ephemeral"}}]},
    {"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": BIG, "signature": "s"}]}]},
    {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Write",
                                                     "input": {"content": BIG}}]}]},
    {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": BIG}]}]},
    {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                "content": [{"type": "text", "text": BIG}]}]}]},
    {"messages": [{"role": "system", "content": BIG}]},
    {"tools": [{"name": "Doc", "description": BIG, "input_schema": {"type": "object"}}]},
    {"output_config": {"format": {"type": "json_schema", "schema": {"description": BIG}}}},
    {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": BIG}}]}]},
])
def test_every_part_the_model_reads_is_counted(part):
    base = count_tokens(body())
    merged = body(**{k: v for k, v in part.items() if k != "messages"})
    merged["messages"] = body()["messages"] + part.get("messages", [])
    added = count_tokens(merged) - base
    assert 900 <= added <= 1400, added


def test_cache_control_and_signatures_are_not_text():
    plain = count_tokens(body([{"type": "text", "text": "hello"}]))
    cache = {"type": "ephemeral", "ttl": "1h"}
    marked = count_tokens(body([{"type": "text", "text": "hello", "cache_control": cache}]))
    assert plain == marked


def test_images_cost_their_pixels_like_anthropic():
    assert image_tokens(png(1000, 1000)) == 1334  # 1e6 / 750
    assert image_tokens(png(200, 100)) == 27
    assert 1500 <= image_tokens(png(4000, 3000)) <= 1540  # resized to ~1.15 MP
    assert image_tokens(jpeg(800, 600)) == 640
    gif = base64.b64encode(b"GIF89a" + (300).to_bytes(2, "little") + (150).to_bytes(2, "little") + bytes(4))
    assert image_tokens({"type": "base64", "data": gif.decode()}) == 60
    assert count_tokens(body([{"type": "image", "source": png(1000, 1000)}])) == 1334 + 4


@pytest.mark.parametrize("source", [
    {"type": "url", "url": "https://example.com/a.png"},
    {"type": "base64", "media_type": "image/webp", "data": base64.b64encode(b"RIFF....WEBPVP8 ").decode()},
    {"type": "base64", "data": "!!!not base64!!!"},
    None,
])
def test_images_of_unknown_size_cost_a_flat_1600(source):
    assert image_tokens(source) == IMAGE_FLAT


def test_pdf_documents_cost_per_page():
    pdf = b"%PDF-1.4\n1 0 obj <</Type /Pages /Count 3>>\n" + b"<</Type /Page /Parent 1 0 R>>\n" * 3
    block = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": base64.b64encode(pdf).decode()}}
    assert count_tokens(body([block])) == 3 * PDF_PAGE + 4


def test_routing_estimate_is_the_count_tokens_answer():
    request = body(SAMPLES["python"], system="be brief", tools=[{"name": "x", "input_schema": {}}])
    assert estimate_routing_tokens(request) == count_tokens(request)


def test_a_megabyte_body_is_counted():
    """How fast is benchmarks/components.py's business ("count_tokens (1 MB of tool results)")."""
    messages = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}",
                                              "content": SAMPLES["python"] * 4}]} for i in range(400)]
    assert count_tokens({"messages": messages}) > 200_000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["type", "text", "content", "input", "source", "data", "thinking", "name", "messages", "system", "tools"]),
        inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_json_body_gives_a_positive_count(value):
    request = value if isinstance(value, dict) else {"messages": value}
    assert count_tokens(request) >= 1


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.text(min_size=1, max_size=300))
def test_more_text_never_counts_fewer_tokens(prefix, extra):
    """Monotone: appending text to a prompt or adding a message can only raise the estimate, so a longer
    conversation never slips back under the long_context threshold."""
    def body(*texts: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": t} for t in texts]}
    assert count_tokens(body(prefix + extra)) >= count_tokens(body(prefix))
    assert count_tokens(body(prefix, extra)) > count_tokens(body(prefix))

"""Tool definitions, ids and names for chat upstreams: the hardening rules (seed §5.2 and issue 4),
and properties: the normalizer is total, id and name mappings are reversible and always valid."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occ.translate.tool_ids import (
    MAX_UPSTREAM_ID,
    from_upstream_id,
    from_upstream_name,
    restore_tool_names,
    to_upstream_id,
    to_upstream_name,
)
from occ.translate.tool_schema import EMPTY_SCHEMA, harden_schema, openai_tools

ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.mark.parametrize("schema", [None, {}, "", " null ", "{bad", "[]", 42, [1], True, b"{}"])
def test_absent_empty_invalid_or_non_object_schemas_become_the_empty_object_schema(schema):
    assert harden_schema(schema) == EMPTY_SCHEMA


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "string"}, {"type": "object", "properties": {}}),
    ({"type": ["object", "null"], "properties": {"a": {}}}, {"type": "object", "properties": {"a": {}}}),
    ({"properties": []}, {"type": "object", "properties": {}}),
    ({"properties": None, "description": "d"}, {"type": "object", "properties": {}, "description": "d"}),
    ({"type": "object", "required": None}, {"type": "object", "properties": {}}),
    ({"type": "object", "required": "a"}, {"type": "object", "properties": {}}),
    ({"type": "object", "required": ["a", 1, None]}, {"type": "object", "properties": {}, "required": ["a"]}),
    ('{"type": "object", "properties": {"q": {"type": "string"}}}',
     {"type": "object", "properties": {"q": {"type": "string"}}}),
])
def test_schema_repairs(schema, expected):
    assert harden_schema(schema) == expected


def test_the_callers_additional_properties_and_schema_key_are_kept():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"a": {"type": "string", "format": "uri"}}, "additionalProperties": True}
    assert harden_schema(schema) == schema


def test_the_input_is_not_mutated():
    schema = {"required": None}
    harden_schema(schema)
    assert schema == {"required": None}


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["type", "properties", "required", "x", "$schema"]),
                                            inner, max_size=4)),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, JSON.map(json.dumps), st.text(max_size=20)))
def test_harden_schema_is_total_and_always_an_object_schema(schema):
    out = harden_schema(schema)
    assert out["type"] == "object" and isinstance(out["properties"], dict)
    assert "required" not in out or all(isinstance(r, str) for r in out["required"])
    json.dumps(out)


def test_openai_tools_shape():
    tools = openai_tools([{"name": "Read", "description": "Read a file", "input_schema": {"type": "object"},
                           "cache_control": {"type": "ephemeral"}, "strict": True}])
    assert tools == [{"type": "function", "function": {"name": "Read", "description": "Read a file",
                                                       "parameters": {"type": "object", "properties": {}}}}]


def test_openai_tools_skips_blank_names_server_tools_and_duplicates():
    tools = openai_tools([
        {"name": "", "input_schema": {}}, {"name": "  ", "input_schema": {}}, {"input_schema": {}}, "junk",
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "web_fetch_20250910", "name": "web_fetch"},
        {"type": "custom", "name": "Custom", "input_schema": {}},
        {"name": "Read", "input_schema": None, "defer_loading": True},
        {"name": "Read", "input_schema": {}},
    ])
    assert [t["function"]["name"] for t in tools] == ["Custom", "Read"]
    assert "defer_loading" not in json.dumps(tools)
    assert openai_tools(None) == [] and openai_tools("x") == []


def test_invalid_tool_names_are_shortened_and_restored():
    names = ["mcp__" + "x" * 70, "my.tool", "Read "]
    tools = openai_tools([{"name": n, "input_schema": {}} for n in names])
    upstream = [t["function"]["name"] for t in tools]
    assert all(OPENAI_NAME.match(n) for n in upstream) and len(set(upstream)) == 3
    assert [from_upstream_name(n, names) for n in upstream] == names


# -- ids and names -----------------------------------------------------------------------------------------


def test_edge_13_kimi_ids():
    encoded = from_upstream_id("functions.Bash:0")
    assert encoded.startswith("occ-") and ANTHROPIC_ID.match(encoded)
    assert to_upstream_id(encoded) == "functions.Bash:0"


def test_valid_ids_pass_unchanged_and_missing_ids_are_generated():
    assert from_upstream_id("call_abc-1") == "call_abc-1" and to_upstream_id("toolu_01A") == "toolu_01A"
    assert from_upstream_id(None).startswith("toolu_") and from_upstream_id("") != from_upstream_id("")


def test_an_upstream_id_that_looks_like_ours_is_encoded_too():
    assert to_upstream_id(from_upstream_id("occ-abc")) == "occ-abc"


def test_a_foreign_occ_prefixed_id_is_not_decoded_into_garbage():
    assert to_upstream_id("occ-Y2FsbF8x") == "occ-Y2FsbF8x"  # base64 of "call_1", which is never encoded


def test_edge_14_long_client_ids_are_shortened_deterministically():
    long_id = "toolu_" + "a" * 60
    assert len(to_upstream_id(long_id)) <= MAX_UPSTREAM_ID
    assert to_upstream_id(long_id) == to_upstream_id(long_id) != to_upstream_id(long_id + "b")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(min_size=1, max_size=60), st.from_regex(r"[a-zA-Z0-9_-]{1,60}", fullmatch=True)))
def test_any_upstream_id_maps_to_a_valid_anthropic_id_and_back(upstream_id):
    """Reversible, except that a valid id over 40 characters comes back hashed (OpenAI would reject it;
    the hash is the same for the call and its result, which is all the upstream checks)."""
    anthropic_id = from_upstream_id(upstream_id)
    assert ANTHROPIC_ID.match(anthropic_id)
    back = to_upstream_id(anthropic_id)
    if ANTHROPIC_ID.match(upstream_id) and len(upstream_id) > MAX_UPSTREAM_ID:
        assert len(back) <= MAX_UPSTREAM_ID and back == to_upstream_id(anthropic_id)
    else:
        assert back == upstream_id


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=90), min_size=1, max_size=5, unique=True))
def test_any_tool_names_map_to_valid_upstream_names_and_back(names):
    upstream = [to_upstream_name(n) for n in names]
    assert all(OPENAI_NAME.match(n) for n in upstream)
    if len(set(upstream)) == len(names):
        assert [from_upstream_name(n, names) for n in upstream] == names


def test_restore_tool_names_on_a_message():
    name = "mcp__" + "y" * 70
    message: dict[str, Any] = {"content": [{"type": "text", "text": "x"},
                                           {"type": "tool_use", "id": "a", "name": to_upstream_name(name)}]}
    restore_tool_names(message, [name])
    assert message["content"][1]["name"] == name

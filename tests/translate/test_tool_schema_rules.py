"""The named tool-schema rules for OpenAI-compatible upstreams (chat completions and Responses), with
the schemas providers were seen rejecting, and the property that a schema no rule applies to reaches
the upstream untouched."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from occ.config.model import ModelConfig
from occ.translate import responses
from occ.translate.tool_schema import (
    KNOWN_FORMATS,
    OPENAI_RULES,
    const_to_enum,
    drop_meta_keywords,
    inline_refs,
    object_at_top,
    unknown_formats,
    upstream_schema,
)


def test_inline_refs_resolves_defs_and_drops_them():
    """Moonshot: "At path 'properties.external.$ref': $defs not found for reference"."""
    schema = {"type": "object", "$defs": {"Ext": {"type": "object", "properties": {"name": {"type": "string"}},
                                                  "required": ["name"]}},
              "properties": {"external": {"$ref": "#/$defs/Ext", "description": "External actor"}}}
    out = inline_refs(schema)
    assert out == {"type": "object", "properties": {"external": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
        "description": "External actor"}}}
    assert "$ref" not in json.dumps(out) and schema["$defs"]  # the input is not mutated


def test_inline_refs_follows_any_local_pointer_and_cuts_recursion():
    """nanobot#5040: a ``#/properties/...`` self-reference; recursion is unrolled, then cut."""
    schema = {"type": "object", "properties": {
        "filter": {"anyOf": [{"type": "object", "properties": {
            "and": {"type": "array", "items": {"$ref": "#/properties/filter/anyOf/0"}}}}]},
        "legacy": {"$ref": "#/definitions/Old"}, "remote": {"$ref": "https://example.com/s.json", "type": "string"}},
        "definitions": {"Old": {"type": "integer"}}}
    out = inline_refs(schema)
    text = json.dumps(out)
    assert "$ref" not in text and "definitions" not in out
    assert out["properties"]["legacy"] == {"type": "integer"}
    assert out["properties"]["remote"] == {"type": "string"}  # unresolvable: dropped, siblings kept
    assert "recursive structure" in text


def test_defs_without_any_ref_are_dropped_too():
    assert inline_refs({"type": "object", "properties": {}, "$defs": {"X": {}}}) == {"type": "object",
                                                                                   "properties": {}}


def test_meta_keywords_const_and_formats():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x", "type": "object",
              "properties": {"mode": {"const": "fast", "$comment": "c"},
                             "when": {"type": "string", "format": "date-time"},
                             "path": {"type": "string", "format": "uri-reference", "description": "Where"},
                             "n": {"type": "integer", "format": "int32"}}}
    out = unknown_formats(const_to_enum(drop_meta_keywords(schema)))
    assert out == {"type": "object", "properties": {
        "mode": {"enum": ["fast"]}, "when": {"type": "string", "format": "date-time"},
        "path": {"type": "string", "description": "Where (format: uri-reference)"},
        "n": {"type": "integer", "description": "(format: int32)"}}}


def test_top_level_combinators_become_one_object_and_nested_one_of_is_any_of():
    """Moonshot: top-level ``oneOf`` without ``type: object``; OpenAI: parameters must be an object."""
    schema = {"oneOf": [{"type": "object", "properties": {"id": {"type": "string"}, "all": {"type": "boolean"}},
                         "required": ["id", "all"]},
                        {"type": "object", "properties": {"id": {"type": "string"}, "tag": {"type": "string"}},
                         "required": ["id"]}],
              "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}
    out = object_at_top(schema)
    assert out["type"] == "object" and out["required"] == ["id"]
    assert set(out["properties"]) == {"v", "id", "all", "tag"}
    assert out["properties"]["v"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    all_of = object_at_top({"allOf": [{"properties": {"a": {}}, "required": ["a"]},
                                      {"properties": {"b": {}}, "required": ["b"]}]})
    assert all_of == {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a", "b"]}


def test_responses_tools_are_not_strict_and_get_the_same_rules():
    request = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
               "tools": [{"name": "T", "input_schema": {"type": "object", "$schema": "s",
                                                        "properties": {"a": {"$ref": "#/$defs/A"}},
                                                        "$defs": {"A": {"type": "string"}}}}]}
    body = responses.build_request(request, ModelConfig(provider="p", model_id="gpt-5.5"), stream=False)
    assert body["tools"] == [{"type": "function", "name": "T", "strict": False,
                              "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}]


# -- properties --------------------------------------------------------------------------------------

_LEAF = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean"])},
                          optional={"description": st.text(max_size=10),
                                    "enum": st.lists(st.text(max_size=3), min_size=1, max_size=3),
                                    "minimum": st.integers(0, 5)}),
    st.fixed_dictionaries({"type": st.just("string"), "format": st.sampled_from(sorted(KNOWN_FORMATS))}),
)


def _node(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("array"), "items": children}),
        st.fixed_dictionaries({"anyOf": st.lists(children, min_size=1, max_size=3)}),
        st.builds(lambda props, extra: {"type": "object", "properties": props,
                                        "required": sorted(props)[:1], **extra},
                  st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), children, max_size=4),
                  st.sampled_from([{}, {"additionalProperties": False}, {"description": "d"}])),
    )


VALID = st.builds(lambda props: {"type": "object", "properties": props},
                  st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                                  st.recursive(_LEAF, _node, max_leaves=12), max_size=5))


@settings(max_examples=150, deadline=None)
@given(VALID)
def test_a_schema_no_rule_applies_to_is_untouched(schema):
    assert upstream_schema(schema) == schema
    for rule in OPENAI_RULES:
        assert rule(schema) is schema  # not even copied


ANY = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                   lambda kids: st.one_of(st.lists(kids, max_size=3),
                                          st.dictionaries(st.sampled_from(
                                              ["type", "properties", "$ref", "$defs", "oneOf", "anyOf", "allOf",
                                               "const", "format", "items", "required", "#", "a"]),
                                              kids, max_size=4)), max_leaves=15)


@settings(max_examples=200, deadline=None)
@given(ANY)
def test_the_rules_are_total_idempotent_and_leave_an_object(schema):
    out = upstream_schema(schema)
    assert out["type"] == "object" and isinstance(out["properties"], dict)
    assert upstream_schema(out) == out
    assert not {"$defs", "definitions", "oneOf", "$ref", "$schema", "const"} & set(out)

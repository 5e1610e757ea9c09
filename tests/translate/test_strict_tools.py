"""Responses function tools carry ``strict: false`` unless the schema is known to satisfy strict mode.

Responses function tools are strict by default ("Whether to enforce strict parameter validation.
Default ``true``", the API reference and the openai SDK's ``FunctionToolParam``), and strict mode
refuses a schema with an optional property, without ``additionalProperties: false`` on every object or
with a keyword it lacks. The cross-check: a schema :func:`is_strict_schema` accepts is a fixed point of
the openai SDK's own ``_ensure_strict_json_schema`` (what the SDK does to make a schema strict)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib._pydantic import _ensure_strict_json_schema
from openai.types.responses import FunctionToolParam
from pydantic import TypeAdapter

from occ.config.model import ModelConfig
from occ.translate import responses
from occ.translate.tool_schema import is_strict_schema, upstream_schema

GPT = ModelConfig(provider="opencode-zen", model_id="gpt-5.5")
STRICT = {"type": "object", "additionalProperties": False, "required": ["path", "mode", "tags"],
          "properties": {"path": {"type": "string", "description": "file"},
                         "mode": {"type": ["string", "null"], "enum": ["r", "w", None]},
                         "tags": {"type": "array", "maxItems": 3,
                                  "items": {"type": "object", "additionalProperties": False, "required": ["k"],
                                            "properties": {"k": {"anyOf": [{"type": "integer", "minimum": 0},
                                                                           {"type": "string", "format": "uuid"}]}}}}}}
#: Claude Code's Read tool: valid JSON Schema, not strict (two optional properties).
READ = {"type": "object", "additionalProperties": False, "required": ["file_path"],
        "properties": {"file_path": {"type": "string"}, "offset": {"type": "number"}, "limit": {"type": "number"}},
        "$schema": "http://json-schema.org/draft-07/schema#"}


def tools_sent(*schemas: Any) -> list[dict[str, Any]]:
    request = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}],
               "tools": [{"name": f"T{i}", "input_schema": s} for i, s in enumerate(schemas)]}
    tools = responses.build_request(request, GPT, stream=True)["tools"]
    adapter = TypeAdapter(FunctionToolParam)
    for tool in tools:
        adapter.validate_python(tool)  # the SDK's own type for a Responses function tool
    return tools


def test_a_strict_schema_is_sent_strict():
    (tool,) = tools_sent(STRICT)
    assert tool["strict"] is True and tool["parameters"] == STRICT


def test_a_valid_but_not_strict_schema_is_sent_not_strict():
    (tool,) = tools_sent(READ)
    assert tool["strict"] is False
    assert tool["parameters"]["required"] == ["file_path"], "the schema itself is not made strict"


def test_a_tool_without_a_schema_is_the_empty_strict_object():
    (tool,) = tools_sent(None)
    assert tool["parameters"] == {"type": "object", "properties": {}, "additionalProperties": False}
    assert tool["strict"] is True


@pytest.mark.parametrize("change", [
    lambda s: s.pop("additionalProperties"),
    lambda s: s.update(additionalProperties=True),
    lambda s: s["required"].pop(),
    lambda s: s["properties"]["tags"]["items"].pop("additionalProperties"),
    lambda s: s["properties"]["tags"]["items"]["required"].clear(),
    lambda s: s["properties"]["path"].update(minLength=1),
    lambda s: s["properties"]["path"].update(default="a"),
    lambda s: s["properties"]["path"].update(format="uri"),
    lambda s: s["properties"]["tags"].update(uniqueItems=True),
    lambda s: s["properties"].update(any={}),
    lambda s: s["properties"]["mode"].update(type=["string", "bogus"]),
    lambda s: s["properties"]["path"].update(additionalProperties=False),
    lambda s: s["properties"]["tags"]["items"]["properties"]["k"].update(anyOf=[]),
    lambda s: s.update(patternProperties={"^x": {"type": "string"}}),
])
def test_anything_strict_mode_may_refuse_is_not_strict(change):
    schema = copy.deepcopy(STRICT)
    change(schema)
    if schema["properties"].get("any") == {}:
        schema["required"].append("any")
    assert not is_strict_schema(schema)


def test_limits():
    wide = {"type": "object", "additionalProperties": False, "required": [f"p{i}" for i in range(5001)],
            "properties": {f"p{i}": {"type": "string"} for i in range(5001)}}
    assert not is_strict_schema(wide)
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(11):
        deep = {"type": "object", "additionalProperties": False, "required": ["a"], "properties": {"a": deep}}
    assert not is_strict_schema(deep)
    many = {"type": "object", "additionalProperties": False, "required": ["e"],
            "properties": {"e": {"type": "string", "enum": [str(i) for i in range(1001)]}}}
    assert not is_strict_schema(many)


def test_junk_is_not_strict_and_never_raises():
    for junk in (None, [], "x", {"type": "object", "properties": {"a": {"type": "string"}}, "required": [{}],
                                 "additionalProperties": False},
                 {"type": "object", "properties": [], "additionalProperties": False},
                 {"type": "object", "properties": {"a": {"type": "string", "format": ["x"]}}, "required": ["a"],
                  "additionalProperties": False}):
        assert is_strict_schema(junk) is False


_LEAF = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])},
                          optional={"description": st.text(max_size=5), "minimum": st.integers(0, 3)}),
    st.fixed_dictionaries({"type": st.just("string")},
                          optional={"format": st.sampled_from(["uuid", "date", "uri"]), "minLength": st.just(1),
                                    "enum": st.lists(st.text(max_size=2), min_size=1, max_size=3)}),
)


def _node(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def obj(props: dict[str, Any], closed: bool, all_required: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "properties": props,
                               "required": list(props) if all_required else list(props)[:1]}
        if closed:
            out["additionalProperties"] = False
        return out

    return st.one_of(
        st.builds(obj, st.dictionaries(st.sampled_from("abc"), kids, max_size=3), st.booleans(), st.booleans()),
        st.fixed_dictionaries({"type": st.just("array"), "items": kids}),
        st.fixed_dictionaries({"anyOf": st.lists(kids, min_size=1, max_size=2)}),
    )


SCHEMAS = st.builds(lambda props, closed, req: {"type": "object", "properties": props,
                                                "required": list(props) if req else [],
                                                **({"additionalProperties": False} if closed else {})},
                    st.dictionaries(st.sampled_from("xyz"), st.recursive(_LEAF, _node, max_leaves=8), max_size=3),
                    st.booleans(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(SCHEMAS)
def test_strict_means_the_sdks_own_strictifier_has_nothing_to_add(schema):
    sent = upstream_schema(schema)
    if is_strict_schema(sent):
        assert _ensure_strict_json_schema(copy.deepcopy(sent), path=(), root={}) == sent
        assert json.loads(json.dumps(sent)) == sent
    elif sent.get("properties") and set(sent.get("required", [])) != set(sent["properties"]):
        assert _ensure_strict_json_schema(copy.deepcopy(sent), path=(), root={}) != sent

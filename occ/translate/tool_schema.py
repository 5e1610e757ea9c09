"""Tool definitions that OpenAI-style upstreams accept, whatever the client sent.

A total normalizer (it never raises): the seed's PR #80 rules plus its reviewers' findings. An
absent, null, empty, invalid or non-object schema becomes an empty object schema; a wrong ``type``
is coerced; missing or malformed ``properties`` are filled; ``required: null`` (or any non-list) is
removed and non-string entries dropped; an explicit ``additionalProperties`` is the caller's and stays.

Then the named rules of :data:`OPENAI_RULES` (docs/tool-schemas.md says what each provider rejects),
each a pure function that returns its input object itself when it has nothing to do, so a schema no
rule applies to reaches the upstream exactly as the client wrote it:

* :func:`inline_refs`: local ``$ref`` pointers are inlined and ``$defs``/``definitions`` dropped
  (Moonshot/Kimi: "not a valid moonshot flavored json schema" for a ``$ref`` outside ``#/$defs``, or
  with a sibling ``type``; several OpenAI-compatible servers do not resolve references at all);
* :func:`drop_meta_keywords`: ``$schema``, ``$id``, ``$comment``... (annotations no model reads, which
  strict validators reject as unknown keywords);
* :func:`const_to_enum`: ``const: x`` is ``enum: [x]``, the form every validator knows;
* :func:`object_at_top`: parameters must be an object schema: a top-level ``anyOf``/``oneOf``/``allOf``
  of object schemas is merged into one (Moonshot rejects a top-level ``oneOf``; OpenAI "must be type
  object"); nested ``oneOf`` becomes ``anyOf`` (OpenAI's strict subset and most validators have no
  ``oneOf``; for a model the two say the same);
* :func:`unknown_formats`: a ``format`` outside the widely supported set moves into the description.

Tool search: Claude Code marks tools ``defer_loading: true``; a chat upstream has no such notion,
so the tool is sent like any other and the flag dropped (with ``cache_control`` and ``strict``,
which would switch OpenAI into strict-schema validation the schema was never written for). Sans-IO.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from occ.translate.tool_ids import to_upstream_name

__all__ = [
    "EMPTY_SCHEMA",
    "OPENAI_RULES",
    "const_to_enum",
    "drop_meta_keywords",
    "harden_schema",
    "inline_refs",
    "is_strict_schema",
    "object_at_top",
    "openai_tools",
    "unknown_formats",
    "upstream_schema",
]

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def harden_schema(schema: Any) -> dict[str, Any]:
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except ValueError:
            return dict(EMPTY_SCHEMA)
    if not isinstance(schema, dict) or not schema:
        return dict(EMPTY_SCHEMA)
    out = dict(schema)
    out["type"] = "object"
    if not isinstance(out.get("properties"), dict):
        out["properties"] = {}
    if "required" in out:
        required = out["required"]
        if isinstance(required, list):
            out["required"] = [r for r in required if isinstance(r, str)]
        else:
            del out["required"]
    return out


# -- the named rules ---------------------------------------------------------------------------------

Schema = dict[str, Any]
#: keys whose value is one subschema / a list of subschemas / a map of name -> subschema
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
        "unevaluatedProperties", "unevaluatedItems", "additionalItems")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")


def _map_children(schema: Schema, fn: Callable[[Any], Any]) -> Schema:
    """``schema`` with ``fn`` applied to each direct subschema; the same object if none changed."""
    changes: dict[str, Any] = {}
    for key in _ONE:
        value = schema.get(key)
        if isinstance(value, dict):
            new = fn(value)
            if new is not value:
                changes[key] = new
    for key in _MANY:
        value = schema.get(key)
        if isinstance(value, list):
            items = [fn(v) if isinstance(v, dict) else v for v in value]
            if any(a is not b for a, b in zip(items, value, strict=True)):
                changes[key] = items
    for key in _MAP:
        value = schema.get(key)
        if isinstance(value, dict):
            entries = {k: fn(v) if isinstance(v, dict) else v for k, v in value.items()}
            if any(entries[k] is not value[k] for k in value):
                changes[key] = entries
    return {**schema, **changes} if changes else schema


def _everywhere(rule: Callable[[Schema], Schema]) -> Callable[[Schema], Schema]:
    """Apply a one-node rule to every subschema, bottom up."""
    def walk(schema: Schema) -> Schema:
        return rule(_map_children(schema, walk))

    return walk


def _pointer(root: Schema, ref: str) -> Any:
    """The target of a local JSON pointer (``#/$defs/Item``, ``#/properties/a/items``), or None."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


#: how deep a recursive reference is unrolled before it is cut to a plain ``{"type": ...}``
_REF_DEPTH = 3


def inline_refs(schema: Schema) -> Schema:
    """Inline every local ``$ref`` and drop ``$defs``/``definitions``. A reference that cannot be
    resolved (remote, or a broken pointer) is dropped, keeping its siblings; a recursive one is
    unrolled :data:`_REF_DEPTH` times, then cut to its target's ``type`` (with a note)."""
    if "$ref" not in json.dumps(schema):
        if "$defs" in schema or "definitions" in schema:
            return {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
        return schema

    def resolve(node: Any, trail: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"] if isinstance(node["$ref"], str) else ""
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            target = _pointer(schema, ref)
            if not isinstance(target, dict):
                return resolve(siblings, trail) if siblings else {}
            if trail.count(ref) >= _REF_DEPTH:
                cut: Schema = {"type": target["type"]} if isinstance(target.get("type"), str) else {}
                cut["description"] = "(recursive structure, not expanded further)"
                return cut
            inlined = resolve(target, (*trail, ref))
            if siblings:  # siblings annotate the reference (description, default...): theirs win
                inlined = {**inlined, **resolve(siblings, trail)}
            return inlined
        return _map_children(node, lambda child: resolve(child, trail))

    out = resolve(schema, ())
    if "$defs" in out or "definitions" in out:
        out = {k: v for k, v in out.items() if k not in ("$defs", "definitions")}
    return out


_META = frozenset({"$schema", "$id", "$comment", "$anchor", "$dynamicAnchor", "$vocabulary"})


def _drop_meta(node: Schema) -> Schema:
    return {k: v for k, v in node.items() if k not in _META} if _META.intersection(node) else node


def _const(node: Schema) -> Schema:
    if "const" not in node:
        return node
    out = {k: v for k, v in node.items() if k != "const"}
    out.setdefault("enum", [node["const"]])
    return out


def _one_of(node: Schema) -> Schema:
    broken = [k for k in ("anyOf", "oneOf", "allOf") if k in node and not isinstance(node[k], list)]
    if broken:  # a combinator that is not a list (null included) says nothing: validators reject it
        node = {k: v for k, v in node.items() if k not in broken}
    if not isinstance(node.get("oneOf"), list):
        return node
    out = {k: v for k, v in node.items() if k != "oneOf"}
    out["anyOf"] = [*out.get("anyOf", []), *node["oneOf"]] if isinstance(out.get("anyOf"), list) else node["oneOf"]
    return out


#: formats OpenAI's structured outputs document and JSON Schema validators agree on
KNOWN_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid",
                           "uri"})


def _format(node: Schema) -> Schema:
    fmt = node.get("format")
    if fmt is None or (isinstance(fmt, str) and fmt in KNOWN_FORMATS):
        return node
    out = {k: v for k, v in node.items() if k != "format"}
    note = f"(format: {fmt})" if isinstance(fmt, str) else ""
    if note:
        out["description"] = f"{out['description']} {note}" if isinstance(out.get("description"), str) else note
    return out


drop_meta_keywords = _everywhere(_drop_meta)
const_to_enum = _everywhere(_const)
unknown_formats = _everywhere(_format)
_nested_one_of = _everywhere(_one_of)


def object_at_top(schema: Schema) -> Schema:
    """The parameters as one object schema: a top-level combinator of object schemas is merged (the
    properties of all, required only what every branch requires); nested ``oneOf`` is ``anyOf``."""
    branches: list[Any] = []
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list):
            branches.extend((key, b) for b in schema[key])
    if branches and all(isinstance(b, dict) and (b.get("type") in (None, "object")) and
                        isinstance(b.get("properties"), dict) for _, b in branches):
        merged = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "allOf")}
        properties = dict(merged.get("properties") or {})
        required_sets: list[set[str]] = []
        for kind, branch in branches:
            properties.update(branch["properties"])
            req = {r for r in branch.get("required") or [] if isinstance(r, str)}
            if kind == "allOf":
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *sorted(req)]))
            else:
                required_sets.append(req)
        if required_sets:
            common = set.intersection(*required_sets)
            merged["required"] = list(dict.fromkeys([*merged.get("required", []), *sorted(common)]))
        if not merged.get("required"):
            merged.pop("required", None)
        merged["type"] = "object"
        merged["properties"] = properties
        schema = merged
    return _nested_one_of(schema)


#: The rules every OpenAI-compatible wire (chat completions and Responses) gets, in order.
OPENAI_RULES: tuple[Callable[[Schema], Schema], ...] = (inline_refs, drop_meta_keywords, const_to_enum,
                                                        object_at_top, unknown_formats)


def upstream_schema(schema: Any) -> Schema:
    """The client's tool schema as an OpenAI-compatible upstream accepts it: hardened, then each
    rule of :data:`OPENAI_RULES`."""
    out = harden_schema(schema)
    for rule in OPENAI_RULES:
        out = rule(out)
    return harden_schema(out)


# -- strict mode (OpenAI structured outputs) ---------------------------------------------------------

#: Keywords OpenAI's strict mode documents (structured outputs, "Supported schemas"): the types, ``enum``
#: and ``anyOf``; string ``pattern``/``format``; number ``multipleOf``/``minimum``/``maximum``/exclusive
#: bounds; array ``items``/``minItems``/``maxItems``; object ``properties``/``required``/
#: ``additionalProperties``; annotations. Anything else (``default``, ``minLength``, ``allOf``, ``not``,
#: ``patternProperties``, ``uniqueItems``, ``const``...) may be refused, so a schema using it is not
#: known to be strict.
_STRICT_KEYWORDS = frozenset({
    "type", "description", "title", "enum", "anyOf", "properties", "required", "additionalProperties",
    "items", "pattern", "format", "multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minItems", "maxItems",
})
_STRICT_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
#: The string formats strict mode documents (``uri``, which other validators take, is not one of them).
_STRICT_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
_NUMERIC = ("multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
#: OpenAI's documented limits: nesting depth, object properties in all, enum values in all.
_STRICT_DEPTH, _STRICT_PROPERTIES, _STRICT_ENUM_VALUES = 10, 5000, 1000


def is_strict_schema(schema: Any) -> bool:
    """Whether ``schema`` (as sent: after :func:`upstream_schema`) is known to satisfy OpenAI's strict
    mode: an object at the top (no ``anyOf`` there), every object with ``additionalProperties: false``
    and every property in ``required``, only the keywords of :data:`_STRICT_KEYWORDS`, within the
    documented limits. False whenever in doubt: a strict tool whose schema strict mode refuses is a 400
    for the whole request, a non-strict one only loses the guarantee."""
    if not isinstance(schema, dict) or schema.get("type") != "object" or "anyOf" in schema:
        return False
    counts = [0, 0]  # properties, enum values
    return _strict(schema, 1, counts) and counts[0] <= _STRICT_PROPERTIES and counts[1] <= _STRICT_ENUM_VALUES


def _strict(node: Any, depth: int, counts: list[int]) -> bool:
    """One node of :func:`is_strict_schema`; the object rules first, where most schemas fail."""
    if not isinstance(node, dict) or depth > _STRICT_DEPTH:
        return False
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else () if kind is None else (kind,)
    properties = node.get("properties")
    if properties is not None or "object" in kinds:
        properties = {} if properties is None else properties
        required = node.get("required", [])
        if (node.get("additionalProperties") is not False or not isinstance(properties, dict)
                or not isinstance(required, list) or len(required) != len(properties)
                or not all(isinstance(r, str) and r in properties for r in required)
                or len(set(required)) != len(required)):
            return False
    elif "additionalProperties" in node or "required" in node:
        return False
    if not _STRICT_KEYWORDS.issuperset(node) or not all(isinstance(k, str) and k in _STRICT_TYPES for k in kinds):
        return False
    if kind is None and "anyOf" not in node and "enum" not in node:
        return False  # an untyped schema ("any value") has no strict form
    if ("format" in node and (not isinstance(node["format"], str) or node["format"] not in _STRICT_FORMATS)) or (
            "pattern" in node and not isinstance(node["pattern"], str)):
        return False
    if any(not _is_count(node[k]) for k in ("minItems", "maxItems") if k in node) or any(
            not _is_number(node[k]) for k in _NUMERIC if k in node):
        return False
    if "enum" in node:
        if not isinstance(node["enum"], list) or not node["enum"]:
            return False
        counts[1] += len(node["enum"])
    if "anyOf" in node and (not isinstance(node["anyOf"], list) or not node["anyOf"]
                            or not all(_strict(branch, depth + 1, counts) for branch in node["anyOf"])):
        return False
    if properties:
        counts[0] += len(properties)
        if not all(_strict(child, depth + 1, counts) for child in properties.values()):
            return False
    if ("array" in kinds or "items" in node) and not _strict(node.get("items"), depth + 1, counts):
        return False
    return True


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_server_tool(tool: dict[str, Any]) -> bool:
    """Anthropic server tools (``web_search_20250305``, ``web_fetch_*``, ``code_execution_*``...) carry a
    versioned ``type``: only Anthropic can run them."""
    kind = tool.get("type")
    return isinstance(kind, str) and kind not in ("custom", "function")


def openai_tools(tools: Any) -> list[dict[str, Any]]:
    """Anthropic tools as chat-completions ``tools``; blank names, duplicates and server tools are
    skipped (an upstream answers 400 to either)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or _is_server_tool(tool):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        upstream_name = to_upstream_name(name)
        if upstream_name in seen:
            continue
        seen.add(upstream_name)
        function: dict[str, Any] = {"name": upstream_name, "parameters": upstream_schema(tool.get("input_schema"))}
        if isinstance(tool.get("description"), str) and tool["description"]:
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out

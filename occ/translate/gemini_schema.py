"""JSON Schema cleaned to the OpenAPI subset Gemini's ``functionDeclarations.parameters`` accepts.

One unknown key anywhere rejects the whole request ("Invalid JSON payload received. Unknown name"),
so this is an allow-list applied recursively, with conversions for what has an equivalent
(protocols.md §5, edge cases 39-40). Pure function, never raises.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clean_schema"]

_ALLOWED = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "properties", "required", "items",
    "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum", "minProperties",
    "maxProperties", "anyOf", "propertyOrdering", "default", "example",
})
_FORMATS = {"string": {"enum", "date-time"}, "integer": {"int32", "int64"}, "number": {"float", "double"}}


def clean_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    defs = {**(schema.get("$defs") or {}), **(schema.get("definitions") or {})}
    out = _clean(schema, defs, ())
    if out.get("type") != "object":
        out = {"type": "object", "properties": {}}
    return out


def _resolve(ref: str, defs: dict[str, Any]) -> tuple[str, Any]:
    name = ref.rsplit("/", 1)[-1]
    return name, defs.get(name)


def _clean(schema: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    if isinstance(schema.get("$ref"), str):
        name, target = _resolve(schema["$ref"], defs)
        if target is None or name in seen:
            return {"type": "object"}
        return _clean(target, defs, (*seen, name))
    schema = dict(schema)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema.pop("allOf"):
            part = _clean(part, defs, seen)
            props = {**merged.get("properties", {}), **part.get("properties", {})}
            required = [*merged.get("required", []), *part.get("required", [])]
            merged.update(part)
            if props:
                merged["properties"] = props
            if required:
                merged["required"] = list(dict.fromkeys(required))
        schema = {**merged, **schema}
    if "oneOf" in schema and "anyOf" not in schema:
        schema["anyOf"] = schema.pop("oneOf")
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    kind = schema.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        if len(types) < len(kind):
            schema["nullable"] = True
        kind = schema["type"] = types[0] if types else "string"
    for bound, target in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = schema.get(bound)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            step = 1 if kind == "integer" else 0
            schema[target] = value + step if bound == "exclusiveMinimum" else value - step
    if isinstance(schema.get("examples"), list) and schema["examples"] and "example" not in schema:
        schema["example"] = schema["examples"][0]
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _ALLOWED:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _clean(sub, defs, seen) for name, sub in value.items()}
        elif key == "items":
            out[key] = _clean(value, defs, seen)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [_clean(v, defs, seen) for v in value]
        elif key == "format":
            if isinstance(value, str) and value in _FORMATS.get(str(kind), set()):
                out[key] = value
            elif isinstance(value, str):
                out["description"] = (str(schema.get("description", "")) + f" (format: {value})").strip()
        elif key == "enum" and isinstance(value, list):
            out[key] = [str(v) for v in value if v is not None]
            out["type"] = "string"
        elif key == "description" and "description" in out:
            continue
        else:
            out[key] = value
    if "enum" in out:
        out["type"] = "string"
    if isinstance(out.get("required"), list):
        names = out.get("properties") or {}
        out["required"] = [r for r in out["required"] if r in names]
        if not out["required"]:
            del out["required"]
    return out

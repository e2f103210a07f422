"""A LitAPI's pydantic request model, and an example JSON body for it built from its JSON schema."""

from __future__ import annotations

from typing import Any, Dict, Optional

from litserve.api import request_annotation

_PLACEHOLDERS = {"string": "text", "integer": 1, "number": 1.0, "boolean": True, "null": None}


def pydantic_model(annotation: Any) -> Optional[type]:
    """``annotation`` when it is a pydantic model class, else None."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def pydantic_request_model(lit_api: Any) -> Optional[type]:
    """The pydantic model that request bodies are validated against, if ``decode_request`` names one."""
    return pydantic_model(request_annotation(lit_api))


def example_body(model: type) -> Dict[str, Any]:
    """A body that validates against ``model`` where the schema allows: examples and defaults first, then a
    placeholder per type that respects the bounds the schema gives."""
    schema = model.model_json_schema()
    body = _example(schema, schema.get("$defs", {}), depth=0)
    return body if isinstance(body, dict) else {}


def _example(schema: Dict[str, Any], defs: Dict[str, Any], depth: int) -> Any:
    if depth > 8:
        return None
    if "$ref" in schema:
        return _example(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, depth + 1)
    for key in ("examples", "enum"):
        if schema.get(key):
            return schema[key][0]
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _example(options[0], defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        properties = schema.get("properties", {})
        return {
            name: _example(sub, defs, depth + 1)
            for name, sub in properties.items()
            if name in required or _has_example(sub)
        }
    if kind == "array":
        item = _example(schema.get("items", {}), defs, depth + 1)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "string":
        return "a" * int(schema["minLength"]) if schema.get("minLength", 0) > 4 else "text"
    return _PLACEHOLDERS.get(kind or "", None)


def _has_example(schema: Dict[str, Any]) -> bool:
    return "examples" in schema or "const" in schema or schema.get("default") is not None


def _number(schema: Dict[str, Any], kind: str) -> Any:
    value: Optional[float] = None
    for key, step in (("minimum", 0), ("exclusiveMinimum", 1), ("maximum", 0), ("exclusiveMaximum", -1)):
        if key in schema:
            value = schema[key] + step
            break
    if value is None:
        value = 1
    return int(value) if kind == "integer" else float(value)

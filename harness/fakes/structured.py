"""Structured output as the local servers take it: Ollama's ``format`` and OpenAI's ``response_format``.

The fakes check a request's schema the way the servers do and refuse a bad one with their 400; a request with a
valid schema and no scripted text gets a reply that satisfies the schema (:func:`schema_instance`). A scripted text is
sent as it is, so a test can script a good grade, malformed JSON, or anything else (as the Anthropic fake does).

The schema check uses ``jsonschema`` (a dev dependency, like the fakes' other test-only needs), imported when a
structured request arrives.
"""

from __future__ import annotations

import json
import re
from typing import Any

OPENAI_FORMAT_TYPES = ("text", "json_object", "json_schema")
_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _schema_problem(schema: Any) -> str | None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        return "the schema is not a JSON object"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"invalid JSON Schema: {exc.message}"
    return None


def ollama_format_problem(body: dict[str, Any]) -> str | None:
    """Ollama's 400 for a ``format`` that is neither ``"json"`` nor a JSON schema; None when it is fine or absent."""
    fmt = body.get("format")
    if fmt is None or fmt in ("", "json"):
        return None
    problem = _schema_problem(fmt) if isinstance(fmt, dict) else "not a schema"
    if problem is None:
        return None
    return f'invalid format: {json.dumps(fmt)[:200]}; expected "json" or a valid JSON Schema ({problem})'


def ollama_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("format")
    return fmt if isinstance(fmt, dict) else None


def response_format_problem(body: dict[str, Any]) -> str | None:
    """The 400 message for a bad ``response_format`` (OpenAI's rules, which llama.cpp and vLLM accept too)."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in OPENAI_FORMAT_TYPES:
        got = fmt.get("type") if isinstance(fmt, dict) else fmt
        return f"response_format type must be one of {', '.join(OPENAI_FORMAT_TYPES)}, but got: {got!r}"
    if fmt["type"] != "json_schema":
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        return "Missing required parameter: 'response_format.json_schema'."
    name = spec.get("name")
    if not isinstance(name, str) or not _SCHEMA_NAME.match(name):
        return "Invalid 'response_format.json_schema.name': must match ^[a-zA-Z0-9_-]{1,64}$."
    schema = spec.get("schema")
    problem = _schema_problem(schema)
    if problem is not None:
        return f"Invalid schema for response_format '{name}': {problem}"
    if spec.get("strict") is True:
        strict = _strict_problem(schema, "schema")
        if strict is not None:
            return f"Invalid schema for response_format '{name}': In context={strict}"
    return None


def _strict_problem(schema: Any, where: str) -> str | None:
    """Strict mode: every object forbids extra keys and requires every property it lists."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            return f"{where}: 'additionalProperties' is required to be supplied and to be false"
        properties = schema.get("properties") or {}
        missing = sorted(set(properties) - set(schema.get("required") or []))
        if missing:
            return f"{where}: 'required' must include every key in properties; missing {missing}"
        for key, sub in properties.items():
            found = _strict_problem(sub, f"{where}.properties.{key}")
            if found:
                return found
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            found = _strict_problem(sub, f"{where}.{key}.{name}")
            if found:
                return found
    return None


def openai_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        schema = fmt["json_schema"].get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def schema_instance(schema: dict[str, Any]) -> str:
    """A JSON text that satisfies ``schema``: the last ``enum`` value (a rubric's best score), false, "ok"."""
    return json.dumps(_instance(schema, schema))


def _instance(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _instance(root["$defs"][ref.rsplit("/", 1)[-1]], root)
    if "enum" in schema:
        return schema["enum"][-1]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        return {key: _instance(sub, root) for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "null":
        return None
    return "ok"

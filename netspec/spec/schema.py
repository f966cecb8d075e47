"""Tier one: JSON Schema validation of the parsed document, every error collected and located."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance

from .diagnostics import Reporter

_KEYWORD_CODES = {
    "required": "NS101",
    "additionalProperties": "NS102",
    "type": "NS103",
    "enum": "NS104",
    "const": "NS104",
    "pattern": "NS104",
    "minimum": "NS105",
    "maximum": "NS105",
    "exclusiveMinimum": "NS105",
    "exclusiveMaximum": "NS105",
    "minItems": "NS106",
    "maxItems": "NS106",
    "maxLength": "NS106",
    "oneOf": "NS107",
    "anyOf": "NS107",
}


def schema_text() -> str:
    """The schema as shipped inside the package."""
    return resources.files("netspec").joinpath("schemas/netspec.schema.json").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(schema_text())


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}" if len(value) < 60 else f"a string of {len(value)} characters"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else type(value).__name__


def _message(error: ValidationError) -> tuple[str, str, bool]:
    """(code, message, point at key) for one schema error."""
    kw = error.validator
    code = _KEYWORD_CODES.get(kw, "NS100")
    sch = error.schema if isinstance(error.schema, dict) else {}
    inst = error.instance
    if kw == "required":
        missing = [p for p in error.validator_value if isinstance(inst, dict) and p not in inst]
        return code, f"missing required property '{missing[0] if missing else error.validator_value}'", False
    if kw == "additionalProperties":
        allowed = sorted(sch.get("properties", {}))
        extra = sorted(k for k in inst if k not in allowed)
        return code, f"unknown property '{extra[0]}' (allowed here: {', '.join(allowed)})", True
    if kw == "type":
        return code, f"expected {error.validator_value}, got {_got(inst)}", False
    if kw in ("enum",):
        options = ", ".join(json.dumps(v) for v in error.validator_value)
        return code, f"{_got(inst)} is not one of {options}", False
    if kw == "const":
        return code, f"expected {json.dumps(error.validator_value)}, got {_got(inst)}", False
    if kw == "pattern":
        what = sch.get("title", "value").lower()
        return code, f"{_got(inst)} is not a valid {what}: {sch.get('description', error.message)}", False
    if kw == "exclusiveMinimum" and list(error.absolute_path)[-1:] == ["lambda"]:
        return "NS503", f"lambda must be > 0, got {inst}", False
    if kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        return code, f"expected a number {words[kw]} {error.validator_value}, got {inst}", False
    if kw in ("minItems", "maxItems"):
        lo, hi = sch.get("minItems"), sch.get("maxItems")
        count = f"{lo}" if lo == hi else f"{lo or 0} to {hi}" if hi is not None else f"at least {lo}"
        return code, f"expected {count} items, got {len(inst)}", False
    if kw in ("oneOf", "anyOf"):
        title = sch.get("title", "value")
        return code, f"expected {title.lower()}: {sch.get('description', '')} Got {_got(inst)}".rstrip(), False
    return code, error.message, False


def check_schema(doc_data: Any, reporter: Reporter) -> int:
    """Validate against the schema; report every error, most relevant first. Returns the count."""
    errors = list(_validator().iter_errors(doc_data))
    if not errors:
        return 0
    # the best match first (highest relevance, as jsonschema's best_match), the rest in document order
    best = max(errors, key=relevance)
    rest = sorted((e for e in errors if e is not best), key=lambda e: reporter.position(tuple(e.absolute_path)))
    seen: set = set()
    ordered = []
    for error in [best, *rest]:
        key = (tuple(error.absolute_path), error.validator, str(error.validator_value)[:80])
        if key in seen:
            continue
        seen.add(key)
        ordered.append(error)
    for error in ordered:
        code, message, at_key = _message(error)
        path = tuple(error.absolute_path)
        if at_key and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            extra = sorted(k for k in error.instance if k not in allowed)
            if extra:
                path = path + (extra[0],)
        reporter.add(code, message, path, at_key=at_key)
    return len(ordered)


__all__ = ["check_schema", "schema", "schema_text", "jsonschema"]

"""Tier one: JSON Schema validation of the parsed document, every error collected and located."""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

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


def _is_integer(checker, instance) -> bool:
    # JSON Schema counts 3.0 as an integer; a spec means a count or a size, so 3.0 is refused
    return isinstance(instance, int) and not isinstance(instance, bool)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    strict = jsonschema.validators.extend(
        Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)
    )
    return strict(schema())


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


def _branch_fits(errors: list[ValidationError]) -> bool:
    """Whether a oneOf/anyOf branch accepts the instance's JSON type (its errors lie deeper or are
    about something other than the type)."""
    return not any(e.validator == "type" and not e.relative_path for e in errors)


def _descend(error: ValidationError) -> ValidationError:
    """The most telling error for a oneOf/anyOf failure. When exactly one of the allowed forms has the
    value's JSON type, that form's own error says more (``kernel_size: [3, 3, 3]`` -> "expected 2 items,
    got 3"); a pattern mismatch stays with the parent, whose description lists the accepted forms."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        if len(branches) != len(error.validator_value):
            return error  # some form matched: the value fits several forms, which none of ours allow
        fitting = [errs for errs in branches.values() if _branch_fits(errs)]
        if len(fitting) != 1:
            return error
        inner = min(fitting[0], key=lambda e: (len(e.relative_path), e.validator in ("oneOf", "anyOf")))
        if inner.validator == "pattern":
            return error
        error = inner
    return error


def _near(word: str, options: list[str]) -> str | None:
    near = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return near[0] if near else None


def _close(word: str, options: list[str]) -> str:
    near = _near(word, options)
    return f"; did you mean '{near}'?" if near else ""


def _typos(errors: list[ValidationError]) -> set[tuple[tuple, str]]:
    """(object path, property) of every missing property that an unknown one nearby was surely meant
    to be (``unit: 2`` where ``units`` is missing): the unknown property's diagnostic says it all."""
    meant = set()
    for error in errors:
        if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
            continue
        allowed = list(error.schema.get("properties", {}))
        for key in error.instance:
            near = None if key in allowed else _near(key, allowed)
            if near is not None and near not in error.instance:
                meant.add((tuple(error.absolute_path), near))
    return meant


def _messages(error: ValidationError, typos: set = frozenset()) -> list[tuple[str, str, tuple]]:
    """(code, message, path) of every diagnostic one schema error stands for (an unknown property's
    path ends in the property's name)."""
    kw = error.validator
    code = _KEYWORD_CODES.get(kw, "NS100")
    sch = error.schema if isinstance(error.schema, dict) else {}
    inst = error.instance
    path = tuple(error.absolute_path)
    if kw == "required":
        missing = [p for p in error.validator_value if isinstance(inst, dict) and p not in inst and (path, p) not in typos]
        return [(code, f"missing required property '{p}'", path) for p in missing]
    if kw == "additionalProperties":
        allowed = sorted(sch.get("properties", {}))
        extra = [k for k in inst if k not in allowed]
        listing = f" (allowed here: {', '.join(allowed)})"
        return [(code, f"unknown property '{k}'{_close(k, allowed)}{listing}", path + (k,)) for k in extra]
    if kw == "type":
        return [(code, f"expected {_article(error.validator_value)}, got {_got(inst)}", path)]
    if kw == "enum":
        options = ", ".join(json.dumps(v) for v in error.validator_value)
        near = _close(inst, [str(v) for v in error.validator_value]) if isinstance(inst, str) else ""
        return [(code, f"{_got(inst)} is not one of {options}{near}", path)]
    if kw == "const":
        return [(code, f"expected {json.dumps(error.validator_value)}, got {_got(inst)}", path)]
    if kw == "pattern":
        what = sch.get("title", "value").lower()
        return [(code, f"{_got(inst)} is not a valid {what}: {sch.get('description', error.message)}", path)]
    if kw == "exclusiveMinimum" and path[-1:] == ("lambda",):
        return [("NS503", f"lambda must be > 0, got {inst}", path)]
    if kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        return [(code, f"expected a number {words[kw]} {error.validator_value}, got {inst}", path)]
    if kw in ("minItems", "maxItems"):
        lo, hi = sch.get("minItems"), sch.get("maxItems")
        count = f"{lo}" if lo == hi else f"{lo or 0} to {hi}" if hi is not None else f"at least {lo}"
        return [(code, f"expected {count} items, got {len(inst)}", path)]
    if kw == "maxLength":
        return [(code, f"expected at most {error.validator_value} characters, got {len(inst)}", path)]
    if kw in ("oneOf", "anyOf"):
        title = sch.get("title", "value")
        return [(code, f"expected {title.lower()}: {sch.get('description', '')} Got {_got(inst)}".rstrip(), path)]
    return [(code, error.message, path)]


def _article(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_article(e) for e in expected)
    words = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
             "number": "a number", "boolean": "true or false", "null": "null"}
    return words.get(expected, str(expected))


def check_schema(doc_data: Any, reporter: Reporter) -> int:
    """Validate against the schema; report every error, the most relevant first, the rest in document
    order. Returns the number of diagnostics.

    The most relevant error is the shallowest (a missing top-level block says more than a detail inside
    it), then the earliest in the file. A oneOf/anyOf error is replaced by the error inside the one form
    that fits the value's type, where there is exactly one. A property missing because of a typo in its
    name is reported once, as the unknown property.
    """
    errors = [_descend(e) for e in _validator().iter_errors(doc_data)]
    if not errors:
        return 0
    found: list[tuple[int, str, str, tuple]] = []
    seen: set = set()
    typos = _typos(errors)
    for error in errors:
        depth = len(error.absolute_path)
        for code, message, path in _messages(error, typos):
            if (code, path, message) not in seen:
                seen.add((code, path, message))
                found.append((depth, code, message, path))

    def place(item):
        return reporter.position(item[3])

    # an unknown property (a typo) comes before a missing one on the same object; "none of the forms" last
    rank = {"NS102": 0, "NS107": 2}
    best = min(found, key=lambda item: (item[0], rank.get(item[1], 1), place(item)))
    rest = sorted((item for item in found if item is not best), key=place)
    for _depth, code, message, path in [best, *rest]:
        reporter.add(code, message, path)
    return len(found)


__all__ = ["check_schema", "schema", "schema_text"]

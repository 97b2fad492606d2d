"""The JSON Schema subset the constrained decoder supports: a feature check and a validator.

Supported keywords (draft 2020-12 meaning): type, properties, required, additionalProperties,
items, minItems, maxItems, enum, const, anyOf, oneOf, allOf, $ref (local: "#", "#/$defs/...",
"#/definitions/..."), $defs, definitions, pattern, minLength, maxLength, minimum, maximum,
exclusiveMinimum, exclusiveMaximum, format (date, date-time, time, email, uuid), and the
annotations title, description, default, examples, $schema, $id, $comment, deprecated,
readOnly, writeOnly. Anything else is reported by `unsupported()`; the validator never raises.

A `pattern` is matched with RE2 (google-re2), whose matching time is linear in the length of the
text whatever the pattern (no backtracking), so a user's `^(a+)+$` cannot hang `validate`. RE2
has no back-references or look-around; a pattern that needs them is reported as unsupported, as
the constrained decoder could not follow it either.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from datetime import date, datetime
from typing import Any
from collections.abc import Iterator

SUBSCHEMA_KEYS = ("additionalProperties", "items")
SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
CHECK_KEYS = frozenset({
    "type", "required", "minItems", "maxItems", "enum", "const", "$ref", "pattern", "minLength",
    "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "format",
})
ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly",
})
SUPPORTED = CHECK_KEYS | ANNOTATIONS | set(SUBSCHEMA_KEYS) | set(SUBSCHEMA_LISTS) | set(
    SUBSCHEMA_MAPS)
FORMATS = ("date", "date-time", "time", "email", "uuid")
TYPES = ("string", "integer", "number", "boolean", "null", "object", "array")


# RE2 keeps each compiled pattern within this many bytes; a pattern that needs more is refused.
PATTERN_MAX_MEM = 8 << 20


class PatternError(ValueError):
    """A `pattern` RE2 cannot compile (bad syntax, back-references, look-around, too large)."""


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """`pattern` compiled by RE2 (linear-time matching); PatternError when it cannot be."""
    import re2

    if not isinstance(pattern, str):
        raise PatternError("a pattern is a string")
    options = re2.Options()
    options.log_errors = False  # RE2 would print the pattern on stderr
    options.max_mem = PATTERN_MAX_MEM
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise PatternError(str(detail) or "not a valid regular expression") from None


# A string the schema leaves unbounded (no maxLength, enum, const or fixed-size format) is capped
# at this many characters in the grammar the decoder follows (the user is told; README "Limits on
# untrusted input"): without it one free-text field could decode up to the whole token budget.
MAX_STRING_LENGTH = 1000
BOUNDED_FORMATS = ("date", "date-time", "time", "uuid")


def bound_strings(schema: dict, limit: int = MAX_STRING_LENGTH) -> tuple[dict, list[str]]:
    """A copy of `schema` in which every unbounded string has maxLength `limit` (or its
    minLength, when larger), and the JSON pointers of those strings."""
    out = copy.deepcopy(schema)
    paths = []
    for path, sub in subschemas(out):
        kind = sub.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if ("string" not in kinds or "maxLength" in sub or "enum" in sub or "const" in sub
                or sub.get("format") in BOUNDED_FORMATS):
            continue
        low = sub.get("minLength")
        low = low if isinstance(low, int) and not isinstance(low, bool) else 0
        sub["maxLength"] = max(limit, low)
        paths.append(path)
    return out, paths


def subschemas(schema: Any, path: str = "#") -> Iterator[tuple[str, dict]]:
    """Every schema object inside `schema` (itself included), with its JSON pointer."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for key in SUBSCHEMA_KEYS:
        if isinstance(schema.get(key), dict):
            yield from subschemas(schema[key], f"{path}/{key}")
    for key in SUBSCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                yield from subschemas(sub, f"{path}/{key}/{i}")
    for key in SUBSCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            for name, sub in schema[key].items():
                yield from subschemas(sub, f"{path}/{key}/{name}")


def unsupported(schema: Any) -> list[str]:
    """Problems that keep `schema` from being used by the decoder, as "pointer: problem"."""
    if not isinstance(schema, dict):
        return ["#: a JSON Schema is a JSON object"]
    found: list[str] = []
    for path, sub in subschemas(schema):
        for key in sub:
            if key not in SUPPORTED:
                found.append(f"{path}: keyword {key!r} is not supported")
        kind = sub.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        for k in kinds:
            if k not in TYPES:
                found.append(f"{path}: type {k!r} is not a JSON Schema type")
        if "format" in sub and sub["format"] not in FORMATS:
            found.append(f"{path}: format {sub['format']!r} is not supported "
                         f"(supported: {', '.join(FORMATS)})")
        if "pattern" in sub and not isinstance(sub["pattern"], str):
            found.append(f"{path}: pattern must be a string")
        elif "pattern" in sub:
            if re.search(r"\(\?[=!]|\(\?<[=!]", str(sub["pattern"])):
                found.append(f"{path}: look-around in a pattern is not supported")
            else:
                try:
                    compile_pattern(sub["pattern"])
                except PatternError as exc:
                    found.append(f"{path}: pattern is not a valid regular expression for the "
                                 f"linear-time matcher (RE2: {exc}); back-references and "
                                 "look-around are not supported")
        ref = sub.get("$ref")
        if ref is not None and _resolve(schema, ref) is None:
            found.append(f"{path}: $ref {ref!r} is not a local reference that resolves")
        extra = sub.get("additionalProperties")
        if extra is not None and not isinstance(extra, (bool, dict)):
            found.append(f"{path}: additionalProperties must be a boolean or a schema")
    if not found:
        found += [f"{ref}: $ref is recursive ({' -> '.join(cycle)}): the decoder needs a "
                  "bounded answer; nest a fixed number of levels instead"
                  for ref, cycle in _recursive_refs(schema)]
    return found


def _recursive_refs(root: dict) -> list[tuple[str, list[str]]]:
    """Each $ref target from which a chain of $refs leads back to itself, with that chain."""
    def refs_in(node: dict) -> list[str]:
        return [sub["$ref"] for _, sub in subschemas(node) if isinstance(sub.get("$ref"), str)]

    edges: dict[str, list[str]] = {}
    pending = refs_in(root)
    while pending:
        ref = pending.pop()
        if ref in edges:
            continue
        target = _resolve(root, ref)
        edges[ref] = refs_in(target) if target is not None else []
        pending += edges[ref]
    found: list[tuple[str, list[str]]] = []
    state: dict[str, int] = {}  # 1: on the current chain, 2: done

    def visit(ref: str, chain: list[str]) -> None:
        state[ref] = 1
        for nxt in edges.get(ref, []):
            if state.get(nxt) == 1:
                found.append((nxt, chain[chain.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, chain + [nxt])
        state[ref] = 2

    for ref in list(edges):
        if ref not in state:
            visit(ref, [ref])
    return found


def _resolve(root: dict, ref: Any) -> dict | None:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return False


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


_FORMAT_RX = {
    "date-time": re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?"
                            r"([Zz]|[+-]\d{2}:\d{2})"),
    "time": re.compile(r"\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"),
    "email": re.compile(r"[^@\s]+@[^@\s]+"),
    "uuid": re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}"),
}


def _format_ok(value: str, fmt: str) -> bool:
    try:
        if fmt == "date":
            return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)) and bool(
                date.fromisoformat(value))
        if fmt == "date-time":
            return bool(_FORMAT_RX[fmt].fullmatch(value)) and bool(
                datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError:
        return False
    rx = _FORMAT_RX.get(fmt)
    return rx is None or bool(rx.fullmatch(value))


def _path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


class _Validator:
    def __init__(self, root: dict):
        self.root = root

    def errors(self, value: Any, schema: Any, where: str, depth: int = 0) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._check(value, schema, where, out, depth)
        return out

    def _check(self, value: Any, schema: Any, where: str, out: list, depth: int) -> None:
        if schema is True or schema == {}:
            return
        if schema is False or not isinstance(schema, dict):
            out.append((where, "no value is allowed here"))
            return
        if depth > 64:
            out.append((where, "the schema nests too deeply"))
            return
        if "$ref" in schema:
            target = _resolve(self.root, schema["$ref"])
            if target is None:
                out.append((where, "the schema's $ref does not resolve"))
                return
            self._check(value, target, where, out, depth + 1)
        kind = schema.get("type")
        if kind is not None:
            kinds = kind if isinstance(kind, list) else [kind]
            if not any(_is_type(value, k) for k in kinds):
                out.append((where, f"expected {' or '.join(map(str, kinds))}"))
                return
        if "enum" in schema and not any(_equal(value, e) for e in schema["enum"]):
            out.append((where, "not one of the allowed values"))
        if "const" in schema and not _equal(value, schema["const"]):
            out.append((where, "not the required constant"))
        for sub in schema.get("allOf", []):
            self._check(value, sub, where, out, depth + 1)
        if "anyOf" in schema:
            self._alternatives(value, schema["anyOf"], where, out, depth, exactly_one=False)
        if "oneOf" in schema:
            self._alternatives(value, schema["oneOf"], where, out, depth, exactly_one=True)
        if isinstance(value, str):
            self._string(value, schema, where, out)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._number(value, schema, where, out)
        elif isinstance(value, list):
            self._array(value, schema, where, out, depth)
        elif isinstance(value, dict):
            self._object(value, schema, where, out, depth)

    def _alternatives(self, value, options, where, out, depth, exactly_one):
        results = [self.errors(value, sub, where, depth + 1) for sub in options]
        passing = sum(1 for r in results if not r)
        if passing == 1 or (passing > 1 and not exactly_one):
            return
        if passing > 1:
            out.append((where, "matches more than one of the allowed forms"))
            return
        typed = [r for r, sub in zip(results, options) if not any(
            msg.startswith("expected ") and w == where for w, msg in r)]
        if len(typed) == 1:
            out.extend(typed[0])
        else:
            out.append((where, "does not match any of the allowed forms"))

    def _string(self, value: str, schema: dict, where: str, out: list) -> None:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append((where, f"longer than {schema['maxLength']} characters"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append((where, f"shorter than {schema['minLength']} characters"))
        if "pattern" in schema:
            try:
                ok = compile_pattern(schema["pattern"]).search(value) is not None
            except (PatternError, TypeError):
                ok = False
            if not ok:
                out.append((where, f"does not match the pattern {schema['pattern']}"))
        if "format" in schema and not _format_ok(value, schema["format"]):
            out.append((where, f"not a valid {schema['format']}"))

    def _number(self, value, schema, where, out) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            out.append((where, "not a finite number"))
            return
        for key, bad in (("minimum", lambda v, b: v < b), ("maximum", lambda v, b: v > b),
                         ("exclusiveMinimum", lambda v, b: v <= b),
                         ("exclusiveMaximum", lambda v, b: v >= b)):
            bound = schema.get(key)
            numeric = isinstance(bound, (int, float)) and not isinstance(bound, bool)
            if numeric and bad(value, bound):
                out.append((where, f"violates {key} {bound}"))

    def _array(self, value: list, schema: dict, where: str, out: list, depth: int) -> None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append((where, f"more than {schema['maxItems']} items"))
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append((where, f"fewer than {schema['minItems']} items"))
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                self._check(item, items, _path(where, i), out, depth + 1)

    def _object(self, value: dict, schema: dict, where: str, out: list, depth: int) -> None:
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append((_path(where, key), "missing"))
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                self._check(item, props[key], _path(where, key), out, depth + 1)
            elif extra is False:
                out.append((_path(where, key), "unexpected key"))
            elif isinstance(extra, dict):
                self._check(item, extra, _path(where, key), out, depth + 1)


def validate(value: Any, schema: dict) -> list[tuple[str, str]]:
    """Every violation of `schema` by `value` as (field path, message); [] when it conforms."""
    try:
        return _Validator(schema).errors(value, schema, "")
    except RecursionError:
        return [("", "the value nests too deeply")]

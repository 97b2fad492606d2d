"""Our JSON Schema subset validator (user JSON Schemas, and the decoder-shape check of the
built-ins) agrees with the independent `jsonschema` package on random instances."""

from __future__ import annotations

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docextract import schemas
from docextract.schemas import _jsonschema

SCHEMA = {
    "type": "object",
    "properties": {
        "s": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "[a-c]"},
        "n": {"type": ["integer", "null"], "minimum": -3, "exclusiveMaximum": 10},
        "x": {"type": "number", "exclusiveMinimum": 0.5, "maximum": 7},
        "e": {"enum": [1, "a", None, True, [1, 2]]},
        "c": {"const": 0},
        "a": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"$ref": "#/$defs/leaf"}},
        "o": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 2}]},
        "u": {"anyOf": [{"type": "string", "format": "date"}, {"type": "boolean"}]},
        "all": {"allOf": [{"type": "string"}, {"maxLength": 3}]},
        "free": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    "required": ["s", "e"],
    "additionalProperties": False,
    "$defs": {"leaf": {"type": "object", "properties": {"k": {"type": "boolean"}},
                       "required": ["k"], "additionalProperties": False}},
}
SCALARS = (st.none() | st.booleans() | st.integers(-5, 12) | st.floats(-2, 9, allow_nan=False)
           | st.sampled_from(["", "a", "ab", "abc", "abcd", "zzzz", "xaz", "2024-02-29",
                              "2024-02-30", "é€a"]))
VALUES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=3)
                      | st.dictionaries(st.sampled_from(["k", "z"]), kids, max_size=2),
                      max_leaves=6)
INSTANCES = st.dictionaries(st.sampled_from(list(SCHEMA["properties"]) + ["other"]), VALUES,
                            max_size=8)
REFERENCE = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def test_schema_is_supported():
    assert _jsonschema.unsupported(SCHEMA) == []


@settings(max_examples=300, deadline=None)
@given(INSTANCES | VALUES)
def test_agrees_with_jsonschema(instance):
    ours = _jsonschema.validate(instance, SCHEMA)
    assert (ours == []) == REFERENCE.is_valid(instance), ours


@pytest.mark.parametrize("name", schemas.BUILTIN)
def test_builtin_schemas_are_supported_by_our_subset(name):
    assert _jsonschema.unsupported(schemas.get(name).json_schema) == []


def test_paths_of_nested_errors():
    errors = _jsonschema.validate({"s": "ab", "e": 1, "a": [{"k": True}, {"k": 1}]}, SCHEMA)
    assert errors == [("a[1].k", "expected boolean")]
    assert _jsonschema.validate({"e": 1}, SCHEMA) == [("s", "missing")]


def test_deep_nesting_does_not_raise():
    nested = {"$ref": "#/$defs/n",
              "$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}}
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert _jsonschema.validate(deep, nested) == [("" + "[0]" * 32, "the schema nests too deeply")]
    assert _jsonschema.validate([[[]]], nested) == []

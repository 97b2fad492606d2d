"""A user's schema is untrusted input: its patterns cannot hang validation, and what it asks
of the decoder is bounded before a model is loaded."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from docextract.cli import app
from docextract.schemas import _jsonschema


def invoke(*args, stdin: str | None = None):
    return CliRunner().invoke(app, list(args), input=stdin)


def write(path, value) -> str:
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("pattern", [r"^(a+)+$", r"^(a|a)*$", r"^(a|aa)+$", r"^([a-z]*)*$"])
def test_catastrophic_pattern_does_not_hang_validate(tmp_path, pattern):
    # With a backtracking engine each of these takes about 2**n steps on n "a"s and a "!": the
    # old validator never returned for 40 characters. RE2 answers in linear time.
    schema = write(tmp_path / "s.json", {"type": "object", "properties": {
        "code": {"type": "string", "maxLength": 100, "pattern": pattern}}})
    doc = write(tmp_path / "d.json", {"code": "a" * 40 + "!"})
    res = invoke("validate", doc, "--schema", schema)
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["valid"] is False
    assert out["errors"][0]["loc"] == "code" and "pattern" in out["errors"][0]["msg"]


def test_patterns_still_match_as_before():
    schema = {"type": "string", "pattern": r"^[A-Z]{5}[0-9]{4}[A-Z]$"}
    assert _jsonschema.validate("ABCDE1234F", schema) == []
    assert _jsonschema.validate("ABCDE1234", schema) != []
    # Unanchored, as JSON Schema says: a match anywhere in the string.
    assert _jsonschema.validate("xx12yy", {"type": "string", "pattern": r"\d\d"}) == []


@pytest.mark.parametrize("pattern,why", [(r"(a)\1", "back-reference"),
                                         (r"((a{100}){100}){100}", "too large"),
                                         (r"(?<=a)b", "look-around")])
def test_patterns_without_a_linear_time_match_are_refused_at_schema_load(tmp_path, capfd, pattern,
                                                                        why):
    schema = write(tmp_path / "s.json", {"type": "object", "properties": {
        "code": {"type": "string", "maxLength": 10, "pattern": pattern}}})
    doc = write(tmp_path / "d.json", {"code": "aa"})
    res = invoke("validate", doc, "--schema", schema)
    assert res.exit_code == 2, (why, res.output)
    assert "pattern" in res.stderr and "Traceback" not in res.output
    # RE2's own logging (C++, straight to file descriptor 2) stays off.
    assert "re2.cc" not in res.stderr and "re2.cc" not in capfd.readouterr().err


RECURSIVE = {"type": "object", "required": ["root"], "properties": {"root": {"$ref": "#/$defs/node"}},
             "$defs": {"node": {"type": "object", "properties": {
                 "name": {"type": "string", "maxLength": 10},
                 "child": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}}}}


def _page(tmp_path) -> str:
    from PIL import Image

    path = tmp_path / "page.png"
    Image.new("RGB", (64, 64), "white").save(path)
    return str(path)


def test_recursive_ref_is_refused_at_schema_load_before_the_model(tmp_path, monkeypatch):
    from docextract import pipeline

    def no_model(opts, console):
        raise AssertionError("the model was loaded for a schema that cannot be used")

    monkeypatch.setattr(pipeline, "load_engine", no_model)
    schema = write(tmp_path / "tree.json", RECURSIVE)
    res = invoke("run", _page(tmp_path), "--schema", schema)
    assert res.exit_code == 2, res.output
    assert "$ref is recursive (#/$defs/node -> #/$defs/node)" in res.stderr
    res = invoke("validate", write(tmp_path / "d.json", {"root": {"name": "a"}}), "--schema", schema)
    assert res.exit_code == 2 and "recursive" in res.stderr


def test_an_unbounded_string_is_capped_for_the_decoder_with_a_warning(tmp_path, monkeypatch,
                                                                      fake_engine):
    from docextract import pipeline
    from docextract.schemas._jsonschema import MAX_STRING_LENGTH

    engine = fake_engine('{"note":"ok","code":"AB","day":"2024-01-02"}')
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: engine)
    schema = {"type": "object", "required": ["note"], "properties": {
        "note": {"type": "string"}, "code": {"type": ["string", "null"], "maxLength": 4},
        "day": {"type": "string", "format": "date"}}}
    res = invoke("run", _page(tmp_path), "--schema", write(tmp_path / "s.json", schema))
    assert res.exit_code == 0, res.output
    assert "#/properties/note set no maxLength" in res.stderr and "code" not in res.stderr
    sent = engine.requests[0].json_schema["properties"]
    assert sent["note"]["maxLength"] == MAX_STRING_LENGTH
    assert sent["code"]["maxLength"] == 4 and "maxLength" not in sent["day"]
    # The token budget follows the cap instead of the 32,768-token ceiling.
    assert engine.requests[0].max_new_tokens < 8000
    # Validation is the user's schema as written: a longer string is still valid there.
    res = invoke("validate", write(tmp_path / "d.json", {"note": "x" * 5000}), "--schema",
                 str(tmp_path / "s.json"))
    assert res.exit_code == 0, res.output

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

"""`doctor --self-test`: one constrained extraction end to end on a random tiny model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest

from docextract import pipeline, schemas, selftest
from docextract.console import Console
from docextract.engine.api import Completion
from docextract.errors import ModelError

STAGES = ("checkpoint_s", "render_s", "load_s", "extract_s", "prefill_s", "decode_s", "validate_s")


def _console() -> tuple[Console, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Console(stdout=out, stderr=err, verbose=True, color=False), out, err


def test_self_test_extracts_schema_conforming_json_and_cleans_up(tmp_path):
    console, out, err = _console()
    report = selftest.run_selftest(console, workdir=tmp_path)
    assert report["error"] is None and report["failed_stage"] is None
    assert report["ok"] is True
    assert report["schema"] == "pan@1" and report["device"] == "cpu"
    assert set(STAGES) <= set(report["stages"])
    assert all(report["stages"][k] > 0 for k in STAGES)
    assert report["stages"]["prefill_s"] + report["stages"]["decode_s"] <= (
        report["stages"]["extract_s"])
    assert report["total_s"] >= sum(report["stages"][k] for k in
                                    ("checkpoint_s", "render_s", "load_s", "extract_s"))
    assert report["finish_reason"] == "stop"
    budget = pipeline.max_new_tokens_for(schemas.get("pan").json_schema)
    assert 1 <= report["tokens"]["generated"] <= budget and report["tokens"]["prompt"] > 30
    assert report["page"]["width"] * report["page"]["height"] <= selftest.PAGE_MAX_PIXELS
    result = report["output"]
    assert result["parsed"] and result["conforms"] and result["schema_errors"] == []
    # An independent validator agrees that the constrained output has the schema's shape.
    data = json.loads(result["text"])
    jsonschema.validate(data, schemas.get("pan").json_schema,
                        format_checker=jsonschema.FormatChecker())
    assert "cannot read" in report["note"]
    json.dumps(report)
    assert not Path(report["workdir"]).exists() and list(tmp_path.iterdir()) == []
    assert out.getvalue() == ""
    assert "cannot read documents" in err.getvalue() and "self-test: ok" in err.getvalue()


def test_a_failing_stage_is_reported_and_the_folder_removed(tmp_path, monkeypatch):
    from docextract.engine import randomckpt

    def broken(dest, **kwargs):
        Path(dest).mkdir(parents=True)
        raise ModelError("disk full", hint="free some space")

    monkeypatch.setattr(randomckpt, "write", broken)
    console, out, err = _console()
    report = selftest.run_selftest(console, workdir=tmp_path)
    assert report["ok"] is False and report["failed_stage"] == "checkpoint"
    assert report["error"] == "disk full (hint: free some space)"
    assert report["stages"] == {} and report["output"] is None
    assert list(tmp_path.iterdir()) == []
    assert out.getvalue() == ""
    assert "self-test failed at checkpoint: disk full" in err.getvalue()


@pytest.mark.parametrize("text, reason, why", [
    ('{"pan":"ABCDE1234F"', "length", "not JSON"),
    ('{"pan":"abc"}', "stop", "does not conform"),
    ('{"pan":null,"name":null,"father_name":null,"date_of_birth":null}', "length", "token budget"),
], ids=["unparsed", "nonconforming", "unterminated"])
def test_bad_engine_output_fails_the_self_test(text, reason, why, tmp_path, monkeypatch):
    from docextract.engine.engine import Engine

    def generate(self, requests):
        return [Completion(text=text, tokens=[1, 2, 3], finish_reason=reason, prompt_tokens=50,
                           timings={"prefill_s": 0.001, "decode_s": 0.002}) for _ in requests]

    monkeypatch.setattr(Engine, "generate", generate)
    console, _, err = _console()
    report = selftest.run_selftest(console, workdir=tmp_path)
    assert report["ok"] is False and report["failed_stage"] is None
    assert why in report["error"] and why in err.getvalue()
    assert report["finish_reason"] == reason
    assert list(tmp_path.iterdir()) == []


def test_doctor_self_test_command_reports_stages():
    from typer.testing import CliRunner

    from docextract.cli import app

    res = CliRunner().invoke(app, ["doctor", "--self-test", "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["self_test"]["ok"] is True
    assert set(STAGES) <= set(report["self_test"]["stages"])
    assert report["summary"]["self-test"].startswith("ok in ")

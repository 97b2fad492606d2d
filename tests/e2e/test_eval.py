"""`docextract eval --schema auto` on the real engine (a tiny random checkpoint) over two
committed samples: it runs end to end and writes the JSON and HTML reports. The random model
cannot read, so the test checks the report, not the score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from docextract import pipeline
from docextract.cli import app

SAMPLES = Path(__file__).parents[2] / "samples" / "data"
SMALL = ["--max-pixels", str(96 * 32 * 32), "--device", "cpu", "--no-progress"]


def test_eval_auto_end_to_end(short_model, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    for stem, suffix in (("pan-s1-001", ".pdf"), ("aadhaar-s1-001-photo", ".jpg")):
        shutil.copy(SAMPLES / f"{stem}{suffix}", folder / f"{stem}{suffix}")
        shutil.copy(SAMPLES / f"{stem}.truth.json", folder / f"{stem}.truth.json")
    out, html = tmp_path / "report.json", tmp_path / "report.html"
    res = CliRunner().invoke(app, ["eval", str(folder), "--schema", "auto", "--model",
                                   str(short_model), "-o", str(out), "--html", str(html), *SMALL])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["format"] == "docextract-eval/1"
    assert report["documents"]["scored"] == 2 and report["documents"]["unmatched"] == []
    assert set(report["schemas"]) == {"pan", "aadhaar"}
    assert set(report["document_type"]["confusion"]) == {"pan", "aadhaar"}
    for row in report["document_type"]["confusion"].values():
        assert set(row) <= set(pipeline.DOCUMENT_TYPES) | {"none"}
    for name, sr in report["schemas"].items():
        assert sr["documents"] == 1
        for f in sr["fields"].values():
            assert f["n"] == 1 and 0.0 <= f["accuracy"] <= 1.0
    assert report["speed"]["documents"] == 2 and report["speed"]["tokens"] > 0
    assert report["speed"]["wall"]["documents"] == 2
    assert [d["name"] for d in report["per_document"]] == ["aadhaar-s1-001-photo", "pan-s1-001"]
    page = html.read_text(encoding="utf-8")
    assert "<table>" in page and "aadhaar" in page and "pan" in page

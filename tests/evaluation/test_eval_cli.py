"""`docextract eval` end to end on a fake engine and on stored records: the extraction goes
through batch (resumable, multi-page photos joined into one document), the JSON and HTML reports,
--map, --compare, and the usage/input errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docextract import pipeline, schemas
from docextract.cli import app

SAMPLES = Path(__file__).parents[2] / "samples" / "data"
SMALL = ["--max-pixels", str(64 * 32 * 32), "--device", "cpu", "--no-progress"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def truth_text(name: str) -> str:
    return json.dumps(json.loads((SAMPLES / f"{name}.truth.json").read_text(encoding="utf-8")))


@pytest.fixture
def labelled(tmp_path) -> Path:
    """A PAN PDF and a two-page statement photographed page by page, with truth files."""
    folder = tmp_path / "labelled"
    folder.mkdir()
    for name in ("pan-s1-001.pdf", "pan-s1-001.truth.json", "bank_statement-s1-001-photo-p1.jpg",
                 "bank_statement-s1-001-photo-p2.jpg", "bank_statement-s1-001-photo.truth.json"):
        shutil.copy(SAMPLES / name, folder / name)
    return folder


@pytest.fixture
def engine(monkeypatch, fake_engine):
    """Answers with the truth of the document it is shown: two pages -> the statement."""
    def answer(request):
        if len(request.images) == 2:
            return truth_text("bank_statement-s1-001-photo")
        return truth_text("pan-s1-001")

    e = fake_engine(answer)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: e)
    return e


def test_extraction_through_batch_scores_and_resumes(labelled, engine, tmp_path):
    out, html = tmp_path / "report.json", tmp_path / "report.html"
    res = run("eval", labelled, "--schema", "pan", "-o", out, "--html", html, *SMALL)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["documents"]["scored"] == 1
    assert report["documents"]["other_schema"] == ["bank_statement-s1-001-photo"]
    assert report["summary"]["all_right_rate"] == 1.0
    assert report["run"]["predictions"].endswith("predictions.jsonl")
    assert (labelled / ".docextract-eval" / "predictions.jsonl").is_file()
    assert report["speed"]["wall"]["documents"] == 1
    assert "pan: 1 documents" in res.stderr
    asked = len(engine.requests)
    # Again: everything is in the predictions file, nothing is extracted.
    res = run("eval", labelled, "--schema", "pan", "-o", out, *SMALL)
    assert res.exit_code == 0, res.output
    assert len(engine.requests) == asked
    assert "wall" not in json.loads(out.read_text())["speed"]


def test_page_photos_are_one_document(labelled, engine, tmp_path):
    res = run("eval", labelled, "--schema", "bank_statement", "--work", tmp_path / "w", *SMALL)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["documents"]["scored"] == 1
    assert [len(r.images) for r in engine.requests] == [2]
    lst = report["schemas"]["bank_statement"]["lists"]["transactions"]
    assert lst["precision"] == lst["recall"] == 1.0
    assert report["speed"]["pages"] == 2
    assert (tmp_path / "w" / "pages" / "bank_statement-s1-001-photo.tiff").is_file()


def test_predictions_of_a_batch_grouped_by_stem_score_the_page_photos(labelled, engine, tmp_path):
    """Page photos extracted by `batch --group-by stem` (one record, `sources` in page order) are
    matched to their truth when the batch's output is given as --predictions."""
    preds = tmp_path / "batch.jsonl"
    photos = sorted(labelled.glob("bank_statement-*-p*.jpg"))
    res = run("batch", *photos, "--group-by", "stem", "--schema", "bank_statement", "--out", preds,
              *SMALL)
    assert res.exit_code == 0, res.output
    res = run("eval", labelled, "--schema", "bank_statement", "--predictions", preds, "-q")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["documents"]["unmatched"] == [] and report["documents"]["scored"] == 1
    assert report["summary"]["all_right_rate"] == 1.0, report["per_document"][0]["wrong"]
    # Matched by the files' names when the photos were re-encoded since (another sha256).
    record = json.loads(preds.read_text())
    record["sha256"] = "0" * 64
    preds.write_text(json.dumps(record) + "\n")
    report = json.loads(run("eval", labelled, "--schema", "bank_statement", "--predictions", preds,
                            "-q").stdout)
    assert report["documents"]["scored"] == 1


def records_for(folder: Path, edit=None) -> list[dict]:
    """Records as batch writes them for every document of `folder` (truth as data)."""
    entries = json.loads((SAMPLES / "manifest.json").read_text())["documents"]
    out = []
    for e in entries:
        if len(e["files"]) != 1 or not (folder / e["files"][0]).exists():
            continue
        data = json.loads((SAMPLES / e["truth"]).read_text())
        if edit:
            edit(e["name"], data)
        out.append({"source": f"somewhere/{e['files'][0]}", "sha256": None,
                    "schema": schemas.get(e["schema"]).ref, "document_type": e["schema"],
                    "pages": e["pages"], "data": data, "valid": True, "errors": [],
                    "timing": {"ingest_s": 0.1, "prefill_s": 0.2, "decode_s": 0.7, "tokens": 40},
                    "confidence": {"name": 0.8} if e["schema"] == "pan" else {},
                    "needs_review": False, "review": []})
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_predictions_without_a_model_and_html(tmp_path):
    preds = write_jsonl(tmp_path / "p.jsonl", records_for(SAMPLES))
    html = tmp_path / "r.html"
    res = run("eval", SAMPLES, "--predictions", preds, "--html", html, "--no-progress")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    # The two-page statement photo has no single-file record: listed, not scored.
    assert report["documents"]["unmatched"] == ["bank_statement-s1-001-photo"]
    assert report["summary"]["all_right_rate"] == 1.0
    assert report["confidence"]["fields"] == 4
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "reliability" in page
    assert not re.search(r"<script|<link|@import|\bsrc=|url\(|https?://", page)


def test_map_file(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(SAMPLES / "pan-s1-001.pdf", folder / "card.pdf")
    t = json.loads((SAMPLES / "pan-s1-001.truth.json").read_text())
    user = {"PAN No": t["pan"], "Holder": t["name"], "Father": t["father_name"],
            "DOB": "/".join(reversed(t["date_of_birth"].split("-")))}
    (folder / "card.truth.json").write_text(json.dumps(user))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"PAN No": "pan", "Holder": "name", "Father": "father_name",
                                   "DOB": "date_of_birth"}))
    rec = next(r for r in records_for(SAMPLES) if r["source"].endswith("pan-s1-001.pdf"))
    rec["source"] = "elsewhere/card.pdf"
    preds = write_jsonl(tmp_path / "p.jsonl", [rec])
    res = run("eval", folder, "--schema", "pan", "--predictions", preds, "--map", mapping,
              "--no-progress")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["all_right_rate"] == 1.0
    # Without the map the labels fit no schema.
    res = run("eval", folder, "--schema", "pan", "--predictions", preds, "--no-progress")
    assert res.exit_code == 3 and "--map" in res.stderr


def test_compare_names_the_changed_fields(tmp_path):
    good = write_jsonl(tmp_path / "a.jsonl", records_for(SAMPLES))

    def break_pan(name, data):
        if name == "pan-s1-001":
            data["name"] = "WRONG"

    bad = write_jsonl(tmp_path / "b.jsonl", records_for(SAMPLES, break_pan))
    for preds, out in ((good, "A.json"), (bad, "B.json")):
        res = run("eval", SAMPLES, "--predictions", preds, "-o", tmp_path / out, "-q")
        assert res.exit_code == 0, res.output
    res = run("eval", "--compare", tmp_path / "A.json", tmp_path / "B.json")
    assert res.exit_code == 0, res.output
    diff = json.loads(res.stdout)
    changed = [(f["schema"], f["field"], f["accuracy"]["change"]) for f in diff["fields"]
               if f["status"] != "same"]
    assert changed == [("pan", "name", -0.25)]
    assert "name" in res.stderr and "-0.250" in res.stderr


@pytest.mark.parametrize("args,code,message", [
    (["eval", "/no/such/folder", "--schema", "pan"], 3, "not a folder"),
    (["eval", str(SAMPLES)], 2, "--schema is needed"),
    (["eval"], 2, "give the folder"),
    (["eval", str(SAMPLES), "--schema", "nope"], 2, "unknown schema"),
    (["eval", "--compare", str(SAMPLES / "manifest.json"), str(SAMPLES / "manifest.json")], 3,
     "not a docextract eval report"),
])
def test_errors_are_one_line_with_their_exit_code(args, code, message):
    res = run(*args)
    assert res.exit_code == code, res.output
    assert message in res.stderr
    assert "Traceback" not in res.output


def test_no_labelled_documents(tmp_path):
    res = run("eval", tmp_path, "--schema", "pan")
    assert res.exit_code == 3 and "no labelled documents" in res.stderr


def test_a_user_json_schema(tmp_path):
    schema = {"type": "object", "properties": {
        "receipt_no": {"type": ["string", "null"]}, "total": {"type": ["number", "null"]},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "what": {"type": "string"}, "price": {"type": "number"}}}}}}
    (tmp_path / "receipt.json").write_text(json.dumps(schema))
    folder = tmp_path / "receipts"
    folder.mkdir()
    shutil.copy(SAMPLES / "pan-s1-001.pdf", folder / "r1.pdf")
    (folder / "r1.truth.json").write_text(json.dumps(
        {"receipt_no": "R 12", "total": "10.50",
         "items": [{"what": "Tea", "price": 4}, {"what": "Cake", "price": 6.5}]}))
    rec = {"source": "r1.pdf", "schema": "receipt@0", "pages": 1, "valid": True,
           "data": {"receipt_no": "r12", "total": 10.5,
                    "items": [{"what": "cake", "price": 6.50}, {"what": "TEA", "price": 4.0}]}}
    preds = write_jsonl(tmp_path / "p.jsonl", [rec])
    res = run("eval", folder, "--schema", tmp_path / "receipt.json", "--predictions", preds, "-q")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    (name,) = report["schemas"]
    sr = report["schemas"][name]
    assert sr["fields"]["receipt_no"]["kind"] == "identifier"
    assert sr["lists"]["items"]["keys"] == ["what", "price"]
    assert sr["lists"]["items"]["precision"] == 1.0 and sr["all_right_rate"] == 1.0

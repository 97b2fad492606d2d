"""The review list of a record: planted wrong values, validation errors, retries, low confidence
and photos, through the pipeline with a fake engine on the committed samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import docextract.samples
from docextract import ingest, review, schemas
from docextract.engine.api import Completion
from docextract.evidence import NO_TEXT_LAYER
from docextract.pipeline import extract_document
from docextract.review import recheck

DATA = Path(docextract.samples.__file__).parent / "data"


def _truth(name):
    return json.loads((DATA / f"{name}.truth.json").read_text(encoding="utf-8"))


class ScoredEngine:
    """Answers with given JSON texts in turn; every character is one token of probability 0.99,
    except the characters of `doubtful` values (0.3)."""

    name, experts = "fake-scored", "bf16"

    def __init__(self, *answers, doubtful=()):
        self.answers = list(answers)
        self.doubtful = doubtful

    def generate(self, requests):
        out = []
        for r in requests:
            assert r.logprobs
            text = json.dumps(self.answers.pop(0), separators=(",", ":"), ensure_ascii=False)
            low = [text.index(json.dumps(v, ensure_ascii=False)[1:-1]) for v in self.doubtful]
            lps = [math.log(0.99)] * len(text)
            for start, v in zip(low, self.doubtful):
                for k in range(start, start + len(v)):
                    lps[k] = math.log(0.3)
            out.append(Completion(text=text, tokens=list(range(len(text) + 1)), finish_reason="stop",
                                  timings={}, logprobs=lps + [None], forced=[False] * len(text) + [True],
                                  offsets=list(range(len(text) + 1))))
        return out


def _reasons(record):
    return {r["loc"]: r["reasons"] for r in record["review"]}


def test_truth_of_a_pdf_needs_no_review():
    pages = ingest.load(str(DATA / "pan-s1-001.pdf"))
    record = extract_document(pages, schemas.get("pan"), ScoredEngine(_truth("pan-s1-001")))
    assert record["valid"] and not record["needs_review"] and record["review"] == []
    assert set(record["confidence"]) == {"pan", "name", "father_name", "date_of_birth"}
    assert all(v == 0.99 for v in record["confidence"].values())
    assert all(e["bbox"] and e["page"] == 1 and e["unit"] == "pt" for e in record["evidence"].values())


def test_planted_wrong_value_and_validation_error_are_listed_with_their_reasons():
    truth = _truth("pan-s1-001")
    planted = {**truth, "father_name": "RAMESH KRISHNAN IYER", "date_of_birth": "2099-01-01"}
    pages = ingest.load(str(DATA / "pan-s1-001.pdf"))
    record = extract_document(pages, schemas.get("pan"), ScoredEngine(planted, planted),
                              retries=0)
    reasons = _reasons(record)
    assert reasons["father_name"] == ["not_on_page"]
    assert "validation_error" in reasons["date_of_birth"]
    assert "pan" not in reasons and "name" not in reasons
    assert record["needs_review"] and record["evidence"]["father_name"]["bbox"] is None
    assert any(e["loc"] == "date_of_birth" and e["severity"] == "error" for e in record["errors"])


def test_low_confidence_and_a_retry_that_changed_a_value():
    truth = _truth("pan-s1-001")
    wrong = {**truth, "date_of_birth": "2099-01-01"}
    pages = ingest.load(str(DATA / "pan-s1-001.pdf"))
    engine = ScoredEngine(wrong, truth, doubtful=[truth["name"]])
    record = extract_document(pages, schemas.get("pan"), engine, retries=1)
    assert record["attempts"] == 2 and record["valid"]
    assert record["confidence"]["name"] == 0.3
    assert _reasons(record) == {"name": ["low_confidence"], "date_of_birth": ["retry_changed"]}
    higher = extract_document(pages, schemas.get("pan"), ScoredEngine(truth, doubtful=[truth["name"]]),
                              review_below=0.2)
    assert higher["review"] == []


def test_photo_fields_have_no_box_and_a_reason():
    pages = ingest.load(str(DATA / "pan-s1-001-photo.jpg"))
    record = extract_document(pages, schemas.get("pan"), ScoredEngine(_truth("pan-s1-001-photo")))
    assert record["evidence"] and all(e["bbox"] is None and e["reason"] == NO_TEXT_LAYER
                                      for e in record["evidence"].values())
    assert record["review"] == []


def test_masked_values_keep_their_box_not_their_text_and_recheck_finds_them_again():
    truth = _truth("aadhaar-s1-001")
    pages = ingest.load(str(DATA / "aadhaar-s1-001.pdf"))
    record = extract_document(pages, schemas.get("aadhaar"), ScoredEngine(truth))
    assert record["masked"] == ["aadhaar_number", "vid"]
    box = record["evidence"]["aadhaar_number"]["bbox"]
    assert box is not None
    text = json.dumps({k: v for k, v in record.items() if k != "data"}, ensure_ascii=False)
    assert truth["aadhaar_number"] not in text and truth["aadhaar_number"][:8] not in text
    again = recheck(json.loads(json.dumps(record)), pages)
    assert again["evidence"]["aadhaar_number"]["bbox"] == box
    assert again["review"] == record["review"]
    # A person's correction is checked against the page the same way.
    corrected = json.loads(json.dumps(record))
    corrected["data"]["name"] = "Someone Else"
    assert {"loc": "name", "reasons": ["not_on_page"]} in recheck(corrected, pages)["review"]


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_review_below_bounds(value):
    truth = _truth("pan-s1-001")
    pages = ingest.load(str(DATA / "pan-s1-001.pdf"))
    record = extract_document(pages, schemas.get("pan"), ScoredEngine(truth), review_below=value)
    assert record["needs_review"] is (value == 1.0)


def test_the_record_carries_its_review_threshold_and_eval_reads_it():
    from docextract.evaluation import core, dataset

    truth = _truth("pan-s1-001")
    pages = ingest.load(str(DATA / "pan-s1-001.pdf"))
    spec = schemas.get("pan")
    record = extract_document(pages, spec, ScoredEngine(truth, doubtful=[truth["name"]]),
                              review_below=0.2)
    assert record["review_below"] == 0.2 and record["review"] == []
    assert extract_document(pages, spec, ScoredEngine(truth))["review_below"] == 0.9
    # `review` recomputes with its own threshold, and says which.
    again = recheck(json.loads(json.dumps(record)), pages, threshold=0.5)
    assert again["review_below"] == 0.5 and _reasons(again) == {"name": ["low_confidence"]}
    # eval scores the record at the threshold it was made with, not at its default.
    case = dataset.Case("pan-s1-001", DATA / "pan-s1-001.truth.json", [])
    case.truth, case.schema, case.record = truth, "pan", json.loads(json.dumps(record))
    report = core.score_cases([case])["confidence"]
    assert (report["threshold"], report["threshold_from"]) == (0.2, "record (review_below)")


def _picture_checks(png, box_pt, page):
    """The masked number's box is black in the picture (all of it)."""
    from PIL import Image

    image = Image.open(png).convert("L")
    sx, sy = page.image.width / page.size_pt[0], page.image.height / page.size_pt[1]
    x0, y0, x1, y1 = box_pt
    crop = image.crop((int(x0 * sx) + 1, int(y0 * sy) + 1, int(x1 * sx) - 1, int(y1 * sy) - 1))
    return max(crop.getdata())


def test_run_annotate_and_review_command_draw_pages_with_masked_numbers_black(tmp_path,
                                                                               monkeypatch):
    from typer.testing import CliRunner

    from docextract import pipeline
    from docextract.cli import app

    truth = _truth("aadhaar-s1-001")
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: ScoredEngine(truth, truth))
    pdf = DATA / "aadhaar-s1-001.pdf"
    res = CliRunner().invoke(app, ["run", str(pdf), "-s", "aadhaar", "--annotate",
                                   str(tmp_path / "ann"), "-o", str(tmp_path / "rec.json")])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "rec.json").read_text(encoding="utf-8"))
    pages = ingest.load(str(pdf))
    png = tmp_path / "ann" / "aadhaar-s1-001" / "page-001.png"
    assert _picture_checks(png, record["evidence"]["aadhaar_number"]["bbox"], pages[0]) == 0
    res = CliRunner().invoke(app, ["review", str(tmp_path / "rec.json"), str(pdf), "--out",
                                   str(tmp_path / "again"), "--review-below", "1.0"])
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert again["evidence"] == record["evidence"] and again["needs_review"]
    assert {r["loc"] for r in again["review"]} >= {"name", "aadhaar_number"}
    assert _picture_checks(tmp_path / "again" / "page-001.png",
                           again["evidence"]["aadhaar_number"]["bbox"], pages[0]) == 0
    # A photo: no boxes, the page pixelated because the record masks a number it cannot locate.
    photo = DATA / "aadhaar-s1-001-photo.jpg"
    res = CliRunner().invoke(app, ["review", str(tmp_path / "rec.json"), str(photo), "--out",
                                   str(tmp_path / "photo")])
    assert res.exit_code == 0 and "not the file the record was made from" in res.output
    from PIL import Image

    picture = Image.open(tmp_path / "photo" / "page-001.png")
    original = ingest.load(str(photo))[0].image
    assert picture.height > original.height  # the panel listing the fields without a box
    assert len(set(picture.crop((0, 0, original.width, original.height)).getdata())) < \
        len(set(original.getdata())) / 20


def test_a_row_added_by_a_retry_flags_that_row_only():
    rows = [{"date": f"2024-04-0{i}", "amount": str(i)} for i in range(1, 6)]
    before = {"name": "A", "transactions": rows[:2] + rows[3:]}
    after = {"name": "A", "transactions": rows}
    assert review.changed_leaves(before, after) == ["transactions[2].date",
                                                     "transactions[2].amount"]
    # A row removed is named by its list; a value edited in place by its own path.
    assert review.changed_leaves(after, before) == ["transactions"]
    edited = {"name": "B", "transactions": [dict(r) for r in rows]}
    edited["transactions"][4]["amount"] = "50"
    assert review.changed_leaves(after, edited) == ["name", "transactions[4].amount"]
    assert review.changed_leaves(None, after) == [] and review.changed_leaves(after, after) == []

def test_a_rate_found_as_two_halves_is_drawn_as_two_boxes_not_their_union():
    from docextract import annotate
    from docextract.evidence import locate

    truth = _truth("gst_invoice-s1-001")
    page = ingest.load(str(DATA / "gst_invoice-s1-001.pdf"))[0]
    found = locate(truth, [page], schemas.get("invoice").json_schema)["lines[1].tax_rate"]
    assert found["match"] == "cgst+sgst halves"
    record = {"data": truth, "evidence": {"lines[1].tax_rate": found}, "review": []}
    picture = annotate.page_picture(record, page)
    sx = page.image.width / page.size_pt[0]
    sy = page.image.height / page.size_pt[1]
    green = annotate.COLOURS["fine"]
    (a0, _, a1, _), (b0, _, b1, _) = found["parts"]
    y = round(found["bbox"][3] * sy) + 2  # the bottom edge (the label sits on the top one)
    for x0, x1 in ((a0, a1), (b0, b1)):
        assert picture.getpixel((round((x0 + x1) / 2 * sx), y)) == green
    # Between the halves (the CGST amount column) no edge is drawn.
    assert picture.getpixel((round((a1 + b0) / 2 * sx), y)) != green

"""One field pydantic rejects does not hide the domain findings on the other fields."""

import json
from pathlib import Path

from docextract import schemas

DATA = Path(__file__).parents[2] / "samples" / "data"


def test_an_impossible_date_does_not_hide_a_bad_gstin():
    spec = schemas.get("invoice")
    truth = json.loads((DATA / "gst_invoice-s1-001.truth.json").read_text())
    truth["invoice_date"] = "2024-02-30"
    truth["supplier"]["gstin"] = truth["supplier"]["gstin"][:-1] + (
        "A" if truth["supplier"]["gstin"][-1] != "A" else "B")
    result = spec.validate(truth)
    found = {(i.loc, i.type) for i in result.issues if i.severity == "error"}
    assert ("supplier.gstin", "gstin_checksum") in found
    assert any(loc == "invoice_date" for loc, _ in found)
    assert result.data["invoice_date"] == "2024-02-30"  # the value as read, for the reviewer
    assert not result.valid


def test_a_valid_record_is_unchanged():
    spec = schemas.get("invoice")
    truth = json.loads((DATA / "gst_invoice-s1-001.truth.json").read_text())
    assert spec.validate(truth).valid

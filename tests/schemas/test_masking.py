"""Masking that cannot be bypassed: a valid Aadhaar number or VID planted anywhere (free text of
every schema, unknown keys, a record validated under another schema) never reaches the output in
full; PANs and IBANs outside their fields and a record's own account number repeated elsewhere
are masked too; `--unmask` shows everything."""

from __future__ import annotations

import copy
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import verhoeff as std_verhoeff
from stdnum.in_ import aadhaar as std_aadhaar
from stdnum.in_ import vid as std_vid
from typer.testing import CliRunner

from docextract import pipeline, schemas
from docextract.cli import app
from docextract.schemas import masking

from .conftest import USER_SCHEMA, aadhaar_doc, gst_invoice_doc, pan_doc, statement_doc

SEPARATORS = re.compile("[ .\\-\u00a0\u2009\u202f\u2010\u2011]")


def _receipt():
    return {"shop": "Corner shop", "total": "12.50", "date": None,
            "items": [{"name": "Tea", "qty": 1}], "paid_by": "cash"}


SPECS = {
    "aadhaar": (lambda: schemas.get("aadhaar"), aadhaar_doc),
    "pan": (lambda: schemas.get("pan"), pan_doc),
    "bank_statement": (lambda: schemas.get("bank_statement"), statement_doc),
    "invoice": (lambda: schemas.get("invoice"), gst_invoice_doc),
    "user_json_schema": (lambda: schemas._registry.from_json_schema("receipt", USER_SCHEMA),
                         _receipt),
}


def _string_slots(node, here=()):
    """Paths of every string or null leaf (where a model may write free text)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _string_slots(value, here + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _string_slots(value, here + (i,))
    elif node is None or isinstance(node, str):
        yield here


def _put(doc, path, value):
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@st.composite
def identifiers(draw):
    """A python-stdnum-valid Aadhaar number or VID, and how it is written."""
    size = draw(st.sampled_from([12, 16]))
    while True:
        body = str(draw(st.integers(2, 9))) + draw(st.text("0123456789", min_size=size - 2,
                                                            max_size=size - 2))
        number = body + std_verhoeff.calc_check_digit(body)
        if (std_aadhaar if size == 12 else std_vid).is_valid(number):
            break
    sep = draw(st.sampled_from(["", " ", "-", ".", "\u00a0"]))
    written = sep.join(number[i:i + 4] for i in range(0, size, 4))
    return number, written


# Text around the number: anything but digits (a digit glued to it makes a longer number,
# which is no longer Aadhaar-shaped).
AROUND = st.text(st.characters(blacklist_categories=("Nd", "Cs")), max_size=12)


def _leaks(number: str, output: str) -> bool:
    return number in SEPARATORS.sub("", output)


def _run_validate(spec, doc, unmask=False) -> str:
    return json.dumps(pipeline.validate_document(json.dumps(doc), spec, unmask=unmask),
                      ensure_ascii=False)


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_planted_numbers_never_leave_in_full(name, data):
    make_spec, make_doc = SPECS[name]
    spec, doc = make_spec(), make_doc()
    slots = list(_string_slots(doc))
    planted = []
    for path in data.draw(st.lists(st.sampled_from(slots), min_size=1, max_size=3, unique=True)):
        number, written = data.draw(identifiers())
        _put(doc, path, data.draw(AROUND) + " " + written + " " + data.draw(AROUND))
        planted.append(number)
    where = data.draw(st.sampled_from(["fields", "unknown_value", "unknown_key", "nested_key"]))
    number, written = data.draw(identifiers())
    if where == "unknown_value":
        doc["remarks"] = "AEPS cash withdrawal " + written
        planted.append(number)
    elif where == "unknown_key":
        doc[written] = "x"
        planted.append(number)
    elif where == "nested_key" and isinstance(doc.get("transactions") or doc.get("lines")
                                              or doc.get("items"), list):
        rows = doc.get("transactions") or doc.get("lines") or doc.get("items")
        rows[0][number] = number
        planted.append(number)
    output = _run_validate(spec, doc)
    assert not [n for n in planted if _leaks(n, output)], output
    # --unmask shows what was planted (so the check above is not vacuous).
    assert all(_leaks(n, _run_validate(spec, doc, unmask=True)) for n in planted)


@pytest.mark.parametrize("schema,other", [("aadhaar", "pan"), ("aadhaar", "invoice"),
                                          ("aadhaar", "bank_statement")])
def test_record_validated_under_another_schema_is_masked(schema, other):
    doc = aadhaar_doc()
    output = _run_validate(schemas.get(other), doc)
    assert "234123412346" not in output and "2341234123412341" not in output
    assert "XXXXXXXX2346" in output or "XXXX XXXX 2346" in output


def test_narration_aeps_number_is_masked():
    doc = statement_doc()
    doc["transactions"][1]["description"] = "AEPS CW 2341 2341 2346 BANK OF BARODA"
    out = pipeline.validate_document(json.dumps(doc), schemas.get("bank_statement"))
    assert out["data"]["transactions"][1]["description"] == "AEPS CW XXXX XXXX 2346 BANK OF BARODA"
    assert "transactions[1].description" in out["masked"]
    assert out["valid"]


def test_pan_iban_and_own_account_number_outside_their_fields():
    doc = statement_doc()
    doc["account_holder"] = "Asha Verma (PAN ACUPA7085R)"
    doc["transactions"][0]["description"] = "NEFT from GB82 WEST 1234 5698 7654 32 salary"
    doc["transactions"][2]["description"] = "ATM withdrawal a/c 12345678901"
    out = pipeline.validate_document(json.dumps(doc), schemas.get("bank_statement"))
    data = out["data"]
    assert data["account_holder"] == "Asha Verma (PAN ACUPAXXXXR)"
    assert data["transactions"][0]["description"] == (
        "NEFT from GB82 XXXX XXXX XXXX XX54 32 salary")
    assert data["transactions"][2]["description"] == "ATM withdrawal a/c XXXXXXX8901"
    assert data["account_number"] == "XXXXXXX8901"


def test_gstin_and_vat_number_are_not_masked():
    doc = gst_invoice_doc()
    doc["lines"][0]["description"] = "Supplied to 27AABCO6063D1ZM under GB980780684"
    out = pipeline.validate_document(json.dumps(doc), schemas.get("invoice"))
    assert out["data"]["supplier"]["gstin"] == "27AAPFU0939F1ZV"
    assert out["data"]["lines"][0]["description"] == doc["lines"][0]["description"]
    assert out["masked"] == []


def test_invalid_checksum_numbers_are_left_alone():
    """Only numbers python-stdnum accepts are masked: a 12-digit reference with a wrong check
    digit is not an Aadhaar number."""
    text = "UPI ref 234123412347 and 123412341234"
    assert masking.mask_text(text) == text


def test_unknown_key_in_error_paths_is_masked(tmp_path):
    doc = pan_doc()
    doc["2341 2341 2346"] = "x"
    path = tmp_path / "pan.json"
    path.write_text(json.dumps(doc))
    res = CliRunner().invoke(app, ["validate", str(path), "-s", "pan"])
    assert res.exit_code == 1
    assert "2341 2341 2346" not in res.stdout and "234123412346" not in res.stdout
    assert "XXXX XXXX 2346" in res.stdout
    unmasked = CliRunner().invoke(app, ["validate", str(path), "-s", "pan", "--unmask"])
    assert "2341 2341 2346" in unmasked.stdout


def test_run_masks_free_text_under_a_user_schema(monkeypatch, fake_engine, tmp_path):
    from PIL import Image

    spec = schemas._registry.from_json_schema("receipt", copy.deepcopy(USER_SCHEMA))
    real_get = schemas.get
    monkeypatch.setattr(schemas, "get", lambda name: spec if name == "receipt" else real_get(name))
    answer = json.dumps({"shop": "Aadhaar 9999 4105 7058 seen", "total": "1.00",
                         "items": [], "paid_by": "cash"})
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: fake_engine(answer))
    image = tmp_path / "r.png"
    Image.new("RGB", (64, 64), "white").save(image)
    res = CliRunner().invoke(app, ["run", str(image), "-s", "receipt"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["data"]["shop"] == "Aadhaar XXXX XXXX 7058 seen"
    assert record["masked"] == ["shop"]


def test_unmask_help_says_what_it_unmasks():
    res = CliRunner().invoke(app, ["validate", "--help"], env={"COLUMNS": "200"})
    help_text = " ".join(res.stdout.split())
    assert "Aadhaar numbers and VIDs, PANs, bank account numbers and IBANs" in help_text
    assert "auto" not in help_text

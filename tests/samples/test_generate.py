"""The generator: determinism, the CLI, photo geometry, fonts, and the identifier and money helpers
cross-checked against the schema package's own checkers."""

from __future__ import annotations

import io
import json
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps
from stdnum import iban as std_iban
from stdnum.gb import vat as std_gb_vat
from stdnum.in_ import aadhaar as std_aadhaar
from stdnum.in_ import gstin as std_gstin
from stdnum.in_ import pan as std_pan
from stdnum.in_ import vid as std_vid

from docextract.console import Console
from docextract.samples import generate, ids, money, photo, render
from docextract.schemas import checks


@pytest.mark.parametrize("kind", generate.KINDS)
def test_same_seed_same_truth_and_bytes(kind):
    a, b = generate.make(kind, 7, 2), generate.make(kind, 7, 2)
    assert a.truth == b.truth
    assert render.pdf_bytes(a.doc) == render.pdf_bytes(b.doc)
    assert generate.make(kind, 8, 2).truth != a.truth


def test_documents_do_not_depend_on_each_other():
    assert generate.make("pan", 3, 2).truth == generate.make("pan", 3, 2).truth
    assert generate.make("pan", 3, 1).truth != generate.make("pan", 3, 2).truth


def test_gst_invoices_alternate_inter_and_intra_state():
    intra = generate.make("gst_invoice", 4, 1).truth
    inter = generate.make("gst_invoice", 4, 2).truth
    assert intra["igst_total"] is None and intra["cgst_total"] == intra["sgst_total"]
    assert intra["supplier"]["state_code"] == intra["place_of_supply_code"]
    assert inter["igst_total"] is not None and inter["cgst_total"] is None
    assert inter["supplier"]["state_code"] != inter["place_of_supply_code"]


def test_statement_reconciles_and_spans_pages():
    truth = generate.make("bank_statement", 2, 1).truth
    rows = truth["transactions"]
    balance = Decimal(truth["opening_balance"])
    for row in rows:
        assert (row["debit"] is None) != (row["credit"] is None)
        balance += Decimal(row["credit"] or 0) - Decimal(row["debit"] or 0)
        assert Decimal(row["balance"]) == balance
    assert Decimal(truth["closing_balance"]) == balance
    assert rows[-1]["page"] >= 2
    assert any(len(row["description"]) > 45 for row in rows)


def test_pan_fifth_letter_is_the_surname_initial():
    for index in range(1, 6):
        truth = generate.make("pan", 11, index).truth
        assert truth["pan"][4] == truth["name"].split()[-1][0]
        assert truth["pan"][3] == "P"


def test_make_rejects_unknown_kind_and_variant():
    from docextract.errors import UsageError

    with pytest.raises(UsageError):
        generate.make("passport", 1, 1)
    with pytest.raises(UsageError):
        generate.make("pan", 1, 1, "checksum")


def test_main_writes_documents_truth_and_manifest(tmp_path):
    err = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=err, progress_enabled=False)
    rc = generate.main(["--out", str(tmp_path), "--seed", "5", "--types", "aadhaar", "invoice",
                        "--count", "1", "--photos", "--broken"], console)
    assert rc == 0
    docs = json.loads((tmp_path / "manifest.json").read_text())["documents"]
    kinds = {(d["kind"], d["form"], d["broken"]) for d in docs}
    assert ("aadhaar", "photo", None) in kinds and ("vat_invoice", "pdf", "totals") in kinds
    assert not any(d["kind"] in ("pan", "bank_statement") for d in docs)
    for d in docs:
        for name in d["files"] + [d["truth"]] + ([d["expected"]] if d["broken"] else []):
            assert (tmp_path / name).stat().st_size > 0
    assert "wrote" in err.getvalue()


def test_eval_set_is_what_docextract_eval_reads(tmp_path):
    from docextract.evaluation import dataset

    console = Console(stdout=io.StringIO(), stderr=io.StringIO(), progress_enabled=False)
    assert generate.main(["--out", str(tmp_path), "--eval", "1", "--types", "pan"], console) == 0
    cases, orphans = dataset.discover(tmp_path)
    assert orphans == []
    assert sorted((c.name, [f.name for f in c.files]) for c in cases) == [
        ("pan-s0-001", ["pan-s0-001.pdf"]), ("pan-s0-001-photo", ["pan-s0-001-photo.jpg"])]
    assert dataset.manifest_schemas(tmp_path) == {"pan-s0-001.truth.json": "pan",
                                                  "pan-s0-001-photo.truth.json": "pan"}


@pytest.mark.parametrize("argv", [["--types", "passport"], ["--count", "-1"], ["--bogus"],
                                  ["--eval", "0"]])
def test_main_usage_errors_exit_2(tmp_path, argv):
    err = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=err, progress_enabled=False)
    assert generate.main(["--out", str(tmp_path)] + argv, console) == 2
    assert err.getvalue().startswith("error:")


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_phone_photo_exif_makes_the_page_upright(marker_page, orientation):
    data = photo.phone_photo(marker_page, random.Random(orientation), long_side=400,
                             orientation=orientation)
    img = Image.open(io.BytesIO(data))
    assert img.getexif()[photo.ORIENTATION_TAG] == orientation
    assert (img.width > img.height) == (orientation in (6, 8))
    upright = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), np.int32)
    assert upright.shape[0] > upright.shape[1]
    r, g, b = upright[..., 0], upright[..., 1], upright[..., 2]
    ys, xs = np.nonzero((g > 120) & (r < 100) & (b < 100))
    assert len(xs) > 100
    # The marker sits in the page's top-left quadrant, so it must in the upright photo too.
    assert xs.mean() < 0.45 * upright.shape[1] and ys.mean() < 0.45 * upright.shape[0]


def test_phone_photo_is_degraded_not_a_copy(marker_page):
    data = photo.phone_photo(marker_page, random.Random(1), long_side=400, orientation=6)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("L"),
                         np.float32)
    # Desk around the page, uneven light across the paper, and no pure white left.
    assert upright.max() < 255 and upright[:5].mean() < 200
    paper = upright[upright.shape[0] // 3: 2 * upright.shape[0] // 3, upright.shape[1] // 2:]
    assert paper.std() > 2


def test_fonts_cover_rupee_and_devanagari_and_text_round_trips():
    deva = render.font("deva")
    assert deva.has_glyph(0x20B9) and deva.has_glyph(0x0915)
    doc = pymupdf.open()
    c = render.Canvas(doc.new_page(width=300, height=100))
    c.text(10, 30, "भारत सरकार / Government", 10)
    c.text(10, 60, f"{render.RUPEE} 1,23,456.00", 10)
    c.finish()
    text = doc[0].get_text()
    assert "भारत सरकार" in text and "\u20b9 1,23,456.00" in text
    fonts = {f[3] for f in doc[0].get_fonts()}
    assert any("Devanagari" in name for name in fonts)


def test_wrap_keeps_every_character():
    from docextract.samples.statement import wrap

    s = "UPI/DR/412345678901/AMAZON PAY/HDFC/amazonpay@ybl/Payment for order 12345"
    lines = wrap(s, 120, 7.2)
    assert len(lines) > 1
    assert all(render.text_width(line, 7.2) <= 120 for line in lines)
    assert "".join(lines).replace(" ", "") == s.replace(" ", "")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_generated_identifiers_pass_python_stdnum(seed):
    """samples/ids.py is our own code: every identifier it makes must satisfy python-stdnum, the
    reference nobody here wrote, and every broken one must fail it."""
    rng = random.Random(seed)
    number = ids.aadhaar(rng)
    assert std_aadhaar.is_valid(number)
    assert not std_aadhaar.is_valid(ids.break_verhoeff(number))
    body = "".join(rng.choice("0123456789") for _ in range(15))
    assert std_vid.is_valid("9" + body[1:] + ids.verhoeff_check_digit("9" + body[1:])) or (
        body[1:] == body[1:][::-1])
    pan = ids.pan(rng, rng.choice("PCFHT"), rng.choice("ABCXYZ"))
    assert std_pan.is_valid(pan)
    gstin = ids.gstin(rng, rng.choice(ids.GST_STATES)[0], pan)
    assert std_gstin.is_valid(gstin)
    assert not std_gstin.is_valid(ids.break_gstin(gstin))
    assert std_gb_vat.is_valid(ids.uk_vat(rng))
    sort, account = f"{rng.randint(0, 999999):06d}", f"{rng.randint(0, 10**8 - 1):08d}"
    assert std_iban.is_valid(ids.iban_gb("WEST", sort, account))


def test_committed_and_generated_identifiers_pass_python_stdnum():
    """Every identifier in every valid sample truth (committed set and a fresh seed) passes
    python-stdnum; the broken Aadhaar variant fails it."""
    docs = [generate.make(kind, 5, 1).truth for kind in generate.KINDS]
    data = Path(generate.__file__).parent / "data"
    manifest = json.loads((data / "manifest.json").read_text())["documents"]
    docs += [json.loads((data / e["truth"]).read_text()) for e in manifest if not e["broken"]]
    seen = set()
    for doc in docs:
        if "aadhaar_number" in doc:
            assert std_aadhaar.is_valid(doc["aadhaar_number"])
            assert doc["vid"] is None or std_vid.is_valid(doc["vid"])
            seen.add("aadhaar")
        if "pan" in doc:
            assert std_pan.is_valid(doc["pan"])
            seen.add("pan")
        for party in (doc.get("supplier") or {}, doc.get("buyer") or {}):
            if party.get("gstin"):
                assert std_gstin.is_valid(party["gstin"])
                seen.add("gstin")
            if party.get("vat_number"):
                assert std_gb_vat.is_valid(party["vat_number"])
                seen.add("vat")
        if doc.get("ifsc"):
            # python-stdnum has no IFSC/MICR module: our own shape checks (RBI formats).
            assert checks.ifsc(doc["ifsc"]) == [] and checks.micr(doc["micr"]) == []
            seen.add("ifsc")
    # The statements are Indian (no IBAN): ids.iban_gb is checked by the property test above.
    assert seen == {"aadhaar", "pan", "gstin", "vat", "ifsc"}
    broken = generate.make("aadhaar", 1, 1, "checksum").truth["aadhaar_number"]
    assert not std_aadhaar.is_valid(broken)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_identifiers_pass_the_schema_checkers(seed):
    rng = random.Random(seed)
    aadhaar = ids.aadhaar(rng)
    assert checks.aadhaar(aadhaar) == []
    assert [f[0] for f in checks.aadhaar(ids.break_verhoeff(aadhaar))] == ["aadhaar_checksum"]
    pan = ids.pan(rng, "C", "N")
    assert checks.pan(pan) == []
    gstin = ids.gstin(rng, "27", pan)
    assert checks.gstin(gstin) == []
    assert "gstin_checksum" in [f[0] for f in checks.gstin(ids.break_gstin(gstin))]
    assert checks.uk_vat(ids.uk_vat(rng)) == []
    sort, account = f"{rng.randint(0, 999999):06d}", f"{rng.randint(0, 10**8 - 1):08d}"
    assert checks.iban(ids.iban_gb("WEST", sort, account)) == []
    assert checks.ifsc(ids.ifsc(rng, "SBIN")) == []
    assert checks.micr(ids.micr(rng, "400", "002")) == []


def test_public_values():
    assert ids.verhoeff_check_digit("23412341234") == "6"
    assert ids.gstin_check_char("27AAPFU0939F1Z") == "V"
    assert ids.gstin_check_char("06AABCO6063D1Z") == "Q"
    assert ids.iban_gb("WEST", "123456", "98765432") == "GB82WEST12345698765432"


@pytest.mark.parametrize("value, text", [
    ("0", "0.00"), ("999.5", "999.50"), ("100000", "1,00,000.00"),
    ("12345678.9", "1,23,45,678.90"), ("-1234.5", "-1,234.50"),
])
def test_group_indian(value, text):
    assert money.group_indian(Decimal(value)) == text


@settings(max_examples=80, deadline=None)
@given(st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2))
def test_amount_in_words_reads_back(value):
    assert checks.words_to_amount(money.rupees_in_words(value)) == value

"""The committed sample set under samples/data: truth validates, broken variants fail as declared,
files open, photos are sideways in pixels and upright through EXIF, and the generator reproduces
the set."""

from __future__ import annotations

import json
from collections import Counter

import pymupdf
from PIL import Image, ImageOps

from docextract import schemas
from docextract.samples import generate
from docextract.samples.photo import ORIENTATION_TAG

SEED = 1


def _load(data_dir, name):
    return json.loads((data_dir / name).read_text(encoding="utf-8"))


def _errors(validation):
    return sorted((i.loc, i.type) for i in validation.issues if i.severity == "error")


def test_manifest_matches_the_folder(data_dir, manifest):
    listed = {"manifest.json"}
    for entry in manifest:
        listed.update(entry["files"])
        listed.add(entry["truth"])
        if entry["broken"]:
            listed.add(entry["expected"])
    on_disk = {p.name for p in data_dir.iterdir()}
    assert on_disk == listed


def test_every_type_is_covered(manifest):
    kinds = Counter((e["kind"], e["form"]) for e in manifest if e["broken"] is None)
    for kind in generate.KINDS:
        assert kinds[(kind, "pdf")] >= 2
        assert kinds[(kind, "photo")] >= 1
    broken = {(e["kind"], e["broken"]) for e in manifest if e["broken"]}
    assert broken == {(k, b) for k, names in generate.BROKEN.items() for b in names}


def test_committed_set_is_small(data_dir):
    total = sum(p.stat().st_size for p in data_dir.iterdir())
    assert total < 3 * 1024 * 1024


def test_truth_validates(data_dir, valid_entry):
    data = _load(data_dir, valid_entry["truth"])
    result = schemas.get(valid_entry["schema"]).validate(data)
    assert result.valid, result.errors
    assert result.data == data


def test_broken_truth_fails_with_expected_codes(data_dir, broken_entry):
    expected = _load(data_dir, broken_entry["expected"])
    assert expected["schema"] == broken_entry["schema"] and expected["valid"] is False
    result = schemas.get(broken_entry["schema"]).validate(_load(data_dir, broken_entry["truth"]))
    assert not result.valid
    assert _errors(result) == sorted((e["loc"], e["type"]) for e in expected["errors"])


def test_pdf_opens_with_its_page_count(data_dir, pdf_entry):
    with pymupdf.open(data_dir / pdf_entry["files"][0]) as doc:
        assert doc.page_count == pdf_entry["pages"]
        text = "".join(page.get_text() for page in doc)
    truth = _load(data_dir, pdf_entry["truth"])
    if pdf_entry["kind"] == "bank_statement":
        assert pdf_entry["pages"] >= 2
        pages = {row["page"] for row in truth["transactions"]}
        assert pages == set(range(1, pdf_entry["pages"] + 1))
        # The table continues across the break: rows of every page are in the text layer.
        assert all(row["reference"] in text for row in truth["transactions"] if row["reference"])
    if pdf_entry["kind"] == "aadhaar":
        # Shaped Devanagari (pre-base matras, conjuncts) reads back as written: render.py gives
        # it an invisible text layer over the glyphs, which themselves carry no text.
        assert truth["name"] in text and "भारत सरकार" in text
        assert truth["name_local"] in text and "मेरा आधार, मेरी पहचान" in text
        assert not any(ch in text for ch in "\ufffdɚţďəʟ")
    if pdf_entry["kind"] == "pan":
        assert "स्थायी लेखा संख्या कार्ड" in text and "पिता का नाम / Father's Name" in text
    if pdf_entry["kind"] == "gst_invoice":
        assert "\u20b9" in text


def test_photo_is_sideways_and_upright_through_exif(data_dir, photo_entry):
    source = data_dir / (photo_entry["name"].removesuffix("-photo") + ".pdf")
    with pymupdf.open(source) as doc:
        sizes = [(p.rect.width, p.rect.height) for p in doc]
    assert len(photo_entry["files"]) == len(sizes)
    for name, (w, h) in zip(photo_entry["files"], sizes):
        with Image.open(data_dir / name) as img:
            assert img.format == "JPEG"
            orientation = img.getexif().get(ORIENTATION_TAG)
            assert orientation in (6, 8)
            raw_landscape = img.width > img.height
            upright = ImageOps.exif_transpose(img)
        assert raw_landscape != (w > h)
        assert (upright.width > upright.height) == (w > h)


def test_photo_truth_equals_pdf_truth(data_dir, photo_entry):
    pdf_truth = photo_entry["name"].removesuffix("-photo") + ".truth.json"
    assert _load(data_dir, photo_entry["truth"]) == _load(data_dir, pdf_truth)


def test_generator_reproduces_the_committed_truth(data_dir, pdf_entry):
    sample = generate.make(pdf_entry["kind"], SEED, pdf_entry["index"], pdf_entry["broken"])
    assert sample.truth == _load(data_dir, pdf_entry["truth"])
    assert sample.doc.page_count == pdf_entry["pages"]

"""Evidence (page and box) for the committed born-digital samples: the truth file's values are
found on the right page, and the text pymupdf reads back inside each box is the value."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pymupdf
import pytest
from types import SimpleNamespace

import docextract.samples
from docextract import ingest, schemas
from docextract.evidence import NO_TEXT_LAYER, is_category, locate

DATA = Path(docextract.samples.__file__).parent / "data"
ENTRIES = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))["documents"]
PDFS = [e for e in ENTRIES if e["form"] == "pdf"]
PHOTOS = [e for e in ENTRIES if e["form"] == "photo"]
DATE_FORMATS = ["%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d-%b-%Y", "%d %b %Y", "%d %B %Y",
                "%B %d, %Y", "%Y-%m-%d", "%d %b, %Y"]


def _text_pages(path):
    """What ingest keeps of a PDF for evidence (words in points), without rendering."""
    with pymupdf.open(path) as doc:
        return [SimpleNamespace(number=i + 1, words=[tuple(w[:8]) for w in p.get_text("words")])
                for i, p in enumerate(doc)]


def test_ingest_keeps_the_text_layer_of_pdf_pages():
    entry = PDFS[0]
    pages = ingest.load(str(DATA / entry["files"][0]))
    assert [p.words for p in pages] == [p.words for p in _text_pages(DATA / entry["files"][0])]
    with pymupdf.open(DATA / entry["files"][0]) as doc:
        assert pages[0].size_pt == (doc[0].rect.width, doc[0].rect.height)


def _leaves(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def _parts(path):
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]


def _page_of(truth, path):
    """The `page` field of the object holding `path`, if it has one."""
    node = truth
    for part in _parts(path)[:-1]:
        node = node[part]
    return node.get("page") if isinstance(node, dict) else None


def _same(text: str, value) -> bool:
    """Does the text read back from a box spell `value`? (Own rules, written for this test.)"""
    text = " ".join(text.split())
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        for fmt in DATE_FORMATS:
            try:
                if datetime.strptime(text, fmt).date().isoformat() == value:
                    return True
            except ValueError:
                pass
        return False
    if isinstance(value, (int, float)) or re.fullmatch(r"-?\d+(\.\d+)?", str(value)):
        bare = re.sub(r"^(₹|Rs\.?|£|\$|€)\s*|\s*(Dr|Cr|%)$|,", "", text)
        try:
            if abs(Decimal(bare)) == abs(Decimal(str(value))):
                return True
        except InvalidOperation:
            pass
    fold = lambda s: "".join(ch for ch in s.casefold() if ch.isalnum())  # noqa: E731
    signs = {"INR": ("₹", "Rs"), "GBP": ("£",), "USD": ("$",), "EUR": ("€",)}
    return fold(text) == fold(str(value)) or (value in signs and text.startswith(signs[value]))


@pytest.fixture(scope="module")
def results():
    out = {}
    for entry in PDFS:
        truth = json.loads((DATA / entry["truth"]).read_text(encoding="utf-8"))
        schema = schemas.get(entry["schema"]).json_schema
        out[entry["name"]] = (truth, locate(truth, _text_pages(DATA / entry["files"][0]), schema),
                              schema)
    return out


def test_truth_values_are_found_on_the_right_page_with_their_text_in_the_box(results):
    located = total = 0
    report = []
    for entry in PDFS:
        truth, evidence, schema = results[entry["name"]]
        doc = pymupdf.open(DATA / entry["files"][0])
        held = list(doc)
        layers = [page.get_textpage() for page in held]
        misses, wrong = [], []
        n = ok = 0
        for path, value in _leaves(truth):
            # `page` fields are where values are; categories and yes/no values are not printed.
            if value is None or path.split(".")[-1] == "page" or is_category(schema, _parts(path)):
                continue
            n += 1
            ev = evidence.get(path)
            want = _page_of(truth, path)
            if not ev or ev["bbox"] is None or (want is not None and ev["page"] != want):
                misses.append(f"{path}={value!r} ({ev and ev.get('reason')})")
                continue
            page, rect = held[ev["page"] - 1], pymupdf.Rect(ev["bbox"])
            # get_textbox takes ~0.2 s a call here: it reads a few boxes of each document, and
            # get_text with the box as clip (the same text on these samples, ~1 ms) the rest.
            if ok < 3:
                text = page.get_textbox(rect, textpage=layers[ev["page"] - 1])
            else:
                text = page.get_text("text", clip=rect)
            if not _same(text, value):
                wrong.append(f"{path}={value!r} box reads {text!r}")
                continue
            ok += 1
        located, total = located + ok, total + n
        report.append(f"{entry['name']}: {ok}/{n} located; misses: {misses or 'none'}")
        assert not wrong, f"{entry['name']}: box text differs: {wrong}"
        # Per document: the shortfalls known today are Devanagari names (the samples' text
        # layer does not map those glyphs back to Unicode) and GST rates printed as two halves.
        assert ok >= 0.8 * n, "\n".join(report)
    print("\n".join(report))
    assert located >= 0.95 * total, "\n".join(report)


def test_a_value_not_on_the_page_has_no_box_and_says_so(results):
    truth, _, schema = results[PDFS[0]["name"]]
    entry = PDFS[0]
    pages = _text_pages(DATA / entry["files"][0])
    key = next(k for k, v in truth.items() if isinstance(v, str) and not is_category(schema, [k]))
    planted = {**truth, key: "ZZQ Nowhere 99871"}
    ev = locate(planted, pages, schema)
    assert ev[key]["bbox"] is None
    assert "not found" in ev[key]["reason"]


def test_a_wrong_page_number_is_reported():
    entry = next(e for e in PDFS if e["pages"] > 1 and e["kind"] == "bank_statement")
    truth = json.loads((DATA / entry["truth"]).read_text(encoding="utf-8"))
    pages = _text_pages(DATA / entry["files"][0])
    last = truth["transactions"][-1]
    assert last["page"] == entry["pages"]
    last["page"] = 1
    ev = locate(truth, pages, schemas.get(entry["schema"]).json_schema)
    n = len(truth["transactions"]) - 1
    assert ev[f"transactions[{n}].description"]["page"] == entry["pages"]
    assert "not on page 1" in ev[f"transactions[{n}].description"]["reason"]


@pytest.mark.parametrize("entry", PHOTOS[:2], ids=[e["name"] for e in PHOTOS[:2]])
def test_photos_get_no_box_and_a_reason(entry):
    truth = json.loads((DATA / entry["truth"]).read_text(encoding="utf-8"))
    pages = ingest.load(str(DATA / entry["files"][0]))
    ev = locate(truth, pages, schemas.get(entry["schema"]).json_schema)
    assert ev and all(e["bbox"] is None for e in ev.values())
    assert any(e["reason"] == NO_TEXT_LAYER for e in ev.values())


@pytest.mark.parametrize("value,printed", [
    ("118000.50", "1,18,000.50"), ("118000.50", "₹ 1,18,000.50"), ("118000.50", "118,000.50"),
    ("2024-03-05", "05/03/2024"), ("2024-03-05", "05-Mar-2024"), ("2024-03-05", "5 March 2024"),
    ("485874644227", "4858 7464 4227"), ("Pooja Mishra", "POOJA  MISHRA"),
    ("XXXX XXXX 4227", "4858 7464 4227"), ("-8694.21", "8,694.21 Dr"),
])
def test_spellings_a_person_accepts(value, printed):
    words, x = [], 10.0
    for w in ("Total", ":") + tuple(printed.split()) + ("end",):
        words.append((x, 10.0, x + 8 * len(w), 20.0, w, 0, 0, len(words)))
        x += 8 * len(w) + 4
    page = type("P", (), {"number": 1, "words": words})()
    ev = locate({"v": value}, [page])["v"]
    assert ev["bbox"] is not None, ev
    # The box covers the printed value, from its first word with a letter or digit, and no more.
    first = next(w for w in words[2:] if any(ch.isalnum() for ch in w[4]))
    assert ev["bbox"][0] == first[0] and words[1][2] < ev["bbox"][2] < words[-1][0]

"""Seeded generator of synthetic documents with ground truth.

    python -m docextract.samples.generate --out DIR --seed N [--types ...] [--count N]
                                          [--photos [N]] [--broken] [--long PAGES ...]
    python -m docextract.samples.generate --eval N --out DIR   (an evaluation set, see below)

For each document NAME it writes NAME.pdf and NAME.truth.json (the schema's JSON form, unmasked);
with --photos, phone photos NAME-photo.jpg (NAME-photo-p1.jpg, -p2.jpg... for multi-page
documents: one photo per page, together one document) and NAME-photo.truth.json; with --broken,
documents whose truth is deliberately invalid, each with NAME.expected.json listing the validator
errors it must raise; with --long, one long bank statement of each given page count (rows cut
by page breaks, narrations of several lines: bank_statement-sN-long-PAGES). DIR/manifest.json
indexes everything. --eval N is an evaluation set for `docextract eval DIR`: N documents per
type, each as a PDF and as phone photo(s), with truth files (the same as --count N --photos).

Each document has its own random stream, seeded from (seed, kind, index), so a document does not
change when others are added or left out; same seed, same truth and same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

import pymupdf

from ..console import Console
from ..errors import DocextractError, InputError, UsageError
from . import ids, invoice, kyc, photo, render, statement, truth

KINDS = ("aadhaar", "pan", "bank_statement", "gst_invoice", "vat_invoice")
SCHEMA = {"aadhaar": "aadhaar", "pan": "pan", "bank_statement": "bank_statement",
          "gst_invoice": "invoice", "vat_invoice": "invoice"}
ALIASES = {"invoice": ("gst_invoice", "vat_invoice"), "all": KINDS}
# Cards are small: render them finer and let them fill less of the photo.
CARD_DPI, PAGE_DPI = 400, 150
CARD_FILL, PAGE_FILL = 0.7, 0.86


@dataclass
class Sample:
    """One generated document: its pages, its truth and, for a broken one, the errors expected."""

    stem: str
    kind: str
    index: int
    broken: str | None
    doc: pymupdf.Document
    truth: dict[str, Any]
    expected: list[dict[str, str]] | None = None
    why: str = ""
    facts: Any = None  # long statements: the StatementFacts, for per-window truth

    @property
    def schema(self) -> str:
        return SCHEMA[self.kind]


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random("/".join(str(p) for p in (seed,) + parts))


def _aadhaar(rng: random.Random, broken: str | None) -> tuple[Any, Any, list, str]:
    facts = kyc.aadhaar_facts(rng)
    expected, why = [], ""
    if broken == "checksum":
        facts.number = ids.break_verhoeff(facts.number)
        expected = [{"loc": "aadhaar_number", "type": "aadhaar_checksum"}]
        why = "the Aadhaar number's Verhoeff check digit is wrong"
    return kyc.draw_aadhaar(facts, rng), truth.aadhaar(facts), expected, why


def _pan(rng: random.Random, broken: str | None) -> tuple[Any, Any, list, str]:
    facts = kyc.pan_facts(rng)
    expected, why = [], ""
    if broken == "serial":
        facts.number = facts.number[:5] + "0000" + facts.number[9]
        expected = [{"loc": "pan", "type": "pan_serial"}]
        why = "the PAN's serial number is 0000, which is never issued"
    return kyc.draw_pan(facts, rng), truth.pan(facts), expected, why


def _statement(rng: random.Random, broken: str | None) -> tuple[Any, Any, list, str]:
    facts = statement.statement_facts(rng)
    expected, why = [], ""
    if broken == "running_balance":
        k = rng.randint(2, len(facts.txns) - 3)
        facts.txns[k].balance += Decimal(rng.choice(("90.00", "900.00", "9.00", "1000.00")))
        expected = [{"loc": f"transactions[{k}].balance", "type": "running_balance"}]
        why = f"row {k}'s running balance does not follow from the previous row"
    doc = statement.draw_statement(facts, rng)
    return doc, truth.statement(facts), expected, why


def _gst(rng: random.Random, broken: str | None, index: int) -> tuple[Any, Any, list, str]:
    facts = invoice.gst_facts(rng, intra=index % 2 == 1)
    expected, why = [], ""
    if broken == "gstin_checksum":
        facts.supplier.tax_id = ids.break_gstin(facts.supplier.tax_id)
        expected = [{"loc": "supplier.gstin", "type": "gstin_checksum"}]
        why = "the supplier's GSTIN has a wrong check character"
    elif broken == "totals":
        facts.printed["grand_total"] = facts.grand_total + Decimal(rng.choice(("90", "900", "10")))
        expected = [{"loc": "grand_total", "type": "grand_total"}]
        why = "the grand total is not taxable value + taxes + round off"
    return invoice.draw_gst(facts, rng), truth.invoice(facts), expected, why


def _vat(rng: random.Random, broken: str | None) -> tuple[Any, Any, list, str]:
    facts = invoice.uk_facts(rng)
    expected, why = [], ""
    if broken == "totals":
        facts.printed["grand_total"] = facts.grand_total + Decimal(rng.choice(("10", "100")))
        expected = [{"loc": "grand_total", "type": "grand_total"}]
        why = "the total due is not net + VAT"
    return invoice.draw_uk(facts, rng), truth.invoice(facts), expected, why


BROKEN = {"aadhaar": ("checksum",), "pan": ("serial",), "bank_statement": ("running_balance",),
          "gst_invoice": ("gstin_checksum", "totals"), "vat_invoice": ("totals",)}


def make(kind: str, seed: int, index: int, broken: str | None = None) -> Sample:
    """Document number `index` (from 1) of `kind`; `broken` names one of BROKEN[kind]."""
    if kind not in KINDS:
        raise UsageError(f"unknown document kind {kind!r}", hint="one of: " + ", ".join(KINDS))
    if broken is not None and broken not in BROKEN[kind]:
        raise UsageError(f"no broken variant {broken!r} for {kind}")
    tag = f"broken-{broken}" if broken else "ok"
    rng = _rng(seed, kind, tag, index)
    makers: dict[str, Callable[[], tuple[Any, Any, list, str]]] = {
        "aadhaar": lambda: _aadhaar(rng, broken), "pan": lambda: _pan(rng, broken),
        "bank_statement": lambda: _statement(rng, broken),
        "gst_invoice": lambda: _gst(rng, broken, index), "vat_invoice": lambda: _vat(rng, broken),
    }
    doc, data, expected, why = makers[kind]()
    stem = f"{kind}-s{seed}-{index:03d}" if not broken else f"{kind}-s{seed}-broken-{broken}"
    sample = Sample(stem, kind, index, broken, doc, data, expected or None, why)
    _self_check(sample)
    return sample


def make_long(seed: int, pages: int) -> Sample:
    """A bank statement of exactly `pages` pages (statement.long_statement), with its truth."""
    facts, doc = statement.long_statement(_rng(seed, "bank_statement", "long", pages), pages)
    sample = Sample(f"bank_statement-s{seed}-long-{pages}", "bank_statement", pages, None, doc,
                    truth.statement(facts))
    sample.facts = facts
    _self_check(sample)
    return sample


def _self_check(sample: Sample) -> None:
    """A valid sample must validate; a broken one must fail with exactly the expected errors."""
    result = truth.check(sample.schema, sample.truth)
    got = sorted((i.loc, i.type) for i in result.issues if i.severity == "error")
    want = sorted((e["loc"], e["type"]) for e in sample.expected or [])
    if got != want:
        raise RuntimeError(f"{sample.stem}: validator errors {got}, expected {want}")


def photos(sample: Sample, seed: int) -> list[bytes]:
    """One phone photo (JPEG bytes) per page, each with its own random stream."""
    card = sample.kind in ("aadhaar", "pan")
    out = []
    for number, page in enumerate(sample.doc, 1):
        rng = _rng(seed, sample.stem, "photo", number)
        image = photo.render_page(page, CARD_DPI if card else PAGE_DPI)
        out.append(photo.phone_photo(image, rng, fill=CARD_FILL if card else PAGE_FILL))
    return out


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"


def write(sample: Sample, out: Path, seed: int, with_photos: bool) -> list[dict[str, Any]]:
    """Write the sample's files under `out`; returns its manifest entries."""
    entries = []
    pdf = f"{sample.stem}.pdf"
    (out / pdf).write_bytes(render.pdf_bytes(sample.doc))
    variants = [(sample.stem, [pdf], "pdf")]
    if with_photos:
        shots = photos(sample, seed)
        names = ([f"{sample.stem}-photo.jpg"] if len(shots) == 1 else
                 [f"{sample.stem}-photo-p{k}.jpg" for k in range(1, len(shots) + 1)])
        for name, data in zip(names, shots):
            (out / name).write_bytes(data)
        variants.append((f"{sample.stem}-photo", names, "photo"))
    for stem, files, form in variants:
        (out / f"{stem}.truth.json").write_text(_dump(sample.truth), encoding="utf-8")
        entry: dict[str, Any] = {
            "name": stem, "kind": sample.kind, "schema": sample.schema, "form": form,
            "files": files, "pages": sample.doc.page_count, "truth": f"{stem}.truth.json",
            "index": sample.index, "broken": sample.broken,
        }
        if sample.expected is not None:
            (out / f"{stem}.expected.json").write_text(_dump({
                "schema": sample.schema, "valid": False, "why": sample.why,
                "errors": sample.expected}), encoding="utf-8")
            entry["expected"] = f"{stem}.expected.json"
        entries.append(entry)
    return entries


def generate(out: Path, seed: int, kinds: Sequence[str], count: int, photo_count: int = 0,
             broken: bool = False, console: Console | None = None,
             long: Sequence[int] = ()) -> list[dict[str, Any]]:
    """Generate into `out`; `photo_count` documents of each kind also get photos (-1: all);
    `long`: page counts of long bank statements to add."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder: {exc.strerror}") from None
    jobs = [(k, i, None) for k in kinds for i in range(1, count + 1)]
    if broken:
        jobs += [(k, 1, b) for k in kinds for b in BROKEN[k]]
    manifest: list[dict[str, Any]] = []
    console = console or Console()
    with console.progress("generating samples", total=len(jobs) + len(long)) as bar:
        for kind, index, fault in jobs:
            sample = make(kind, seed, index, fault)
            shoot = fault is None and (photo_count < 0 or index <= photo_count)
            manifest += write(sample, out, seed, shoot)
            bar.update(1)
        for pages in long:
            manifest += write(make_long(seed, pages), out, seed, photo_count != 0)
            bar.update(1)
    (out / "manifest.json").write_text(_dump({"seed": seed, "documents": manifest}),
                                       encoding="utf-8")
    return manifest


class _Parser(argparse.ArgumentParser):
    """argparse that reports through the console and raises instead of exiting."""

    def __init__(self, console: Console, **kwargs: Any):
        super().__init__(**kwargs)
        self.console = console

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint="see --help")

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            self.console.emit_text(message)


def _kinds(names: list[str]) -> list[str]:
    kinds: list[str] = []
    for name in names:
        for k in ALIASES.get(name, (name,)):
            if k not in KINDS:
                raise UsageError(f"unknown document type {name!r}",
                                 hint="one of: " + ", ".join(KINDS + tuple(ALIASES)))
            if k not in kinds:
                kinds.append(k)
    return kinds


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    console = console or Console()
    parser = _Parser(console, prog="python -m docextract.samples.generate",
                     description="Generate synthetic documents (PDF, phone photos) with ground "
                                 "truth JSON.")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", nargs="+", default=["all"], metavar="TYPE",
                        help="aadhaar pan bank_statement gst_invoice vat_invoice, or invoice/all")
    parser.add_argument("--count", type=int, default=2, help="documents per type")
    parser.add_argument("--photos", nargs="?", type=int, const=-1, default=0, metavar="N",
                        help="phone photos too: of every document, or of the first N per type")
    parser.add_argument("--broken", action="store_true",
                        help="also documents whose truth is deliberately invalid")
    parser.add_argument("--eval", type=int, default=None, metavar="N",
                        help="an evaluation set for 'docextract eval': N documents per type, "
                             "each as PDF and phone photo (--count N --photos)")
    parser.add_argument("--long", nargs="+", type=int, default=[], metavar="PAGES",
                        help="also a long bank statement of each of these page counts (2-60)")
    try:
        args = parser.parse_args(argv)
        if args.eval is not None:
            if args.eval < 1:
                raise UsageError("--eval must be 1 or more")
            args.count, args.photos = args.eval, -1
        if args.count < 0:
            raise UsageError("--count must be 0 or more")
        if any(not 2 <= n <= 60 for n in args.long):
            raise UsageError("--long takes page counts from 2 to 60",
                             hint="60 pages hold about 900 rows; the schema allows 1000")
        manifest = generate(args.out, args.seed, _kinds(args.types), args.count, args.photos,
                            args.broken, console, long=args.long)
    except DocextractError as exc:
        console.report(exc)
        return int(exc.exit_code)
    except SystemExit as exc:
        return int(exc.code or 0)
    console.info(f"wrote {len(manifest)} documents to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Invoice: Indian GST tax invoice (Rule 46 CGST Rules), UK VAT invoice (VAT Regulations 1995
reg 14/16A) or any other invoice, told apart by `tax_regime`.

Line `amount` is the taxable (net) value of the line after discount; `tax_rate` its total rate
in percent (the GST rate, split in halves as CGST + SGST within a state; or the VAT rate).
Arithmetic (domain.md sections 1.6, 1.7), all in Decimal:
- line: amount = quantity x unit_price - discount (+-0.01); tax = amount x rate (+-0.01);
- totals: taxable_value = sum of line amounts; each tax total = sum of its line taxes
  (+-0.01 per line); tax_total = CGST + SGST + IGST + cess (or the VAT); when the lines print
  no tax of that kind, each total is checked against the lines' rates instead (CGST and SGST
  each amount x rate / 2, IGST and VAT amount x rate);
- grand_total = taxable_value + tax_total + round_off (+-0.01), |round_off| < 1.00; with no tax
  totals printed, the tax is the sum of the lines' taxes;
- GST: CGST = SGST and no IGST when the supplier's state is the place of supply, else IGST only
  (IGST within one state is only a warning: SEZ and export supplies are inter-state), on the
  totals and on every line;
- exports (place of supply 96, "Other Countries") are inter-state: IGST, or zero-rated under a
  Letter of Undertaking with no tax at all (IGST Act s.16; CGST Rules r.96A);
- the amount in words, when it can be read, equals the grand total.
GSTINs and VAT numbers are public registration numbers and are not masked.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import Field

from . import Issue, checks
from ._common import check_dates, close, error, fmt, issues, loc, round2, warning
from ._types import (Currency, Date, Gstin, HsnSac, Money, Page, Percent, Quantity, StateCode,
                     Strict, UkVat, UnitPrice, text)

VERSION = "1"
MAX_LINES = 250

INSTRUCTION = """\
Extract this invoice: parties, every line item across all pages, and the totals.
- tax_regime: "in_gst" for an Indian GST invoice, "uk_vat" for a UK VAT invoice, else "other".
- document_type: the kind of document as titled (tax invoice, simplified invoice, bill of
  supply, credit note, debit note, other).
- invoice_number exactly as printed; dates as YYYY-MM-DD (printed dates are day first).
  tax_point_date: the UK "tax point" / time of supply if printed separately.
- currency: ISO code (INR, GBP, EUR...).
- supplier and buyer: name, address (one line, comma separated), gstin (15 characters), UK
  vat_number (as printed without spaces, with its GB/XI prefix if shown), state and its 2-digit
  GST state_code.
- place_of_supply: as printed (state name); place_of_supply_code: its 2-digit GST state code.
- reverse_charge: true or false when the invoice says whether tax is payable on reverse charge.
- lines: one object per item row. quantity, unit (e.g. NOS, KG, hrs), unit_price, discount,
  amount (the taxable value of the line before tax), tax_rate (the total GST or VAT rate in
  percent, e.g. "18" for CGST 9% + SGST 9%), cgst_amount, sgst_amount, igst_amount, cess_amount,
  tax_amount (the line's VAT or total tax if printed), total (line total with tax if printed),
  hsn_sac (HSN or SAC code digits), page (1-based page of the row).
- Totals as printed: taxable_value (total before tax), cgst_total, sgst_total, igst_total,
  cess_total, tax_total (total tax / total VAT), round_off (signed), grand_total, and
  amount_in_words exactly as printed.
- Amounts, quantities and rates: plain decimals as strings, no currency sign or thousands
  separators ("118000.00", "2.5", "18"); a credit amount or negative round off has a minus sign.
Use null for anything not printed on the document. Never guess or complete a value, and never
compute a value that is not printed.
"""


class Party(Strict):
    name: text(200) | None = None
    address: text(400) | None = None
    gstin: Gstin | None = None
    vat_number: UkVat | None = None
    state: text(50) | None = None
    state_code: StateCode | None = None


class Line(Strict):
    description: text(300) | None = None
    hsn_sac: HsnSac | None = None
    quantity: Quantity | None = None
    unit: text(20) | None = None
    unit_price: UnitPrice | None = None
    discount: Money | None = None
    amount: Money | None = None
    tax_rate: Percent | None = None
    cgst_amount: Money | None = None
    sgst_amount: Money | None = None
    igst_amount: Money | None = None
    cess_amount: Money | None = None
    tax_amount: Money | None = None
    total: Money | None = None
    page: Page | None = None


class Invoice(Strict):
    tax_regime: Literal["in_gst", "uk_vat", "other"] = "other"
    document_type: Literal["tax_invoice", "simplified_invoice", "bill_of_supply", "credit_note",
                           "debit_note", "other"] | None = None
    invoice_number: text(40) | None = None
    invoice_date: Date | None = None
    due_date: Date | None = None
    tax_point_date: Date | None = None
    currency: Currency | None = None
    supplier: Party = Field(default_factory=Party)
    buyer: Party = Field(default_factory=Party)
    shipping_address: text(400) | None = None
    place_of_supply: text(50) | None = None
    place_of_supply_code: StateCode | None = None
    reverse_charge: bool | None = None
    lines: list[Line] = Field(default_factory=list, max_length=MAX_LINES)
    taxable_value: Money | None = None
    cgst_total: Money | None = None
    sgst_total: Money | None = None
    igst_total: Money | None = None
    cess_total: Money | None = None
    tax_total: Money | None = None
    round_off: Money | None = None
    grand_total: Money | None = None
    amount_in_words: text(300) | None = None


Model = Invoice

# GST rate slabs in percent (CGST + SGST, or IGST); "GST 2.0" from 22 September 2025 moved most
# 12% and 28% goods to 5% and 18% and added 40%. Unusual rates are warnings only.
GST_2_0 = date(2025, 9, 22)
GST_RATES_BEFORE = frozenset(Decimal(r) for r in "0 0.1 0.25 1 1.5 3 5 6 7.5 12 18 28".split())
GST_RATES_FROM = frozenset(Decimal(r) for r in "0 0.1 0.25 1 1.5 3 5 6 7.5 18 40".split())
UK_VAT_RATES = frozenset(Decimal(r) for r in "0 5 20".split())
GST_START = date(2017, 7, 1)
ROUND_OFF_LIMIT = Decimal("1.00")


def validate(doc: Invoice, today: date | None = None) -> list[Issue]:
    today = today or date.today()
    found = _parties(doc)
    found += _dates(doc, today)
    found += _lines(doc)
    found += _totals(doc)
    if doc.tax_regime == "in_gst":
        found += _gst_split(doc)
    found += _words(doc)
    return found


def _parties(doc: Invoice) -> list[Issue]:
    found: list[Issue] = []
    for role in ("supplier", "buyer"):
        party: Party = getattr(doc, role)
        if party.gstin is not None:
            found += issues(loc(role, "gstin"), checks.gstin(party.gstin))
            if party.state_code is not None and party.state_code != party.gstin[:2]:
                found.append(error(loc(role, "state_code"), "state_code",
                                   "the state code differs from the GSTIN's first two digits"))
        if party.vat_number is not None:
            found += issues(loc(role, "vat_number"), checks.uk_vat(party.vat_number))
        if party.state_code is not None and party.state_code not in checks.GST_STATES:
            found.append(error(loc(role, "state_code"), "state_code", "not a GST state code"))
    if doc.place_of_supply_code is not None and doc.place_of_supply_code not in checks.GST_STATES:
        found.append(error("place_of_supply_code", "state_code", "not a GST state code"))
    if doc.tax_regime == "in_gst":
        if doc.supplier.gstin is None:
            found.append(warning("supplier.gstin", "missing_field",
                                 "a GST tax invoice names the supplier's GSTIN"))
        if doc.currency is not None and doc.currency != "INR":
            found.append(warning("currency", "currency_regime", "a GST invoice is normally in INR"))
        number = doc.invoice_number
        if number is not None and not re.fullmatch(r"[A-Za-z0-9/\-]{1,16}", number):
            found.append(warning("invoice_number", "invoice_number_format",
                                 "a GST invoice number has at most 16 letters, digits, - or /"))
    elif doc.tax_regime == "uk_vat":
        if doc.supplier.vat_number is None:
            found.append(warning("supplier.vat_number", "missing_field",
                                 "a UK VAT invoice shows the supplier's VAT number"))
        if doc.currency is not None and doc.currency != "GBP":
            found.append(warning("currency", "currency_regime",
                                 "a UK VAT invoice in another currency must state the VAT in GBP"))
    if doc.invoice_number is None:
        found.append(warning("invoice_number", "missing_field", "no invoice number was found"))
    return found


def _dates(doc: Invoice, today: date) -> list[Issue]:
    earliest = GST_START if doc.tax_regime == "in_gst" else date(1990, 1, 1)
    found = check_dates("invoice_date", doc.invoice_date, today=today, earliest=earliest,
                        future="warning", what="invoice date")
    found += check_dates("tax_point_date", doc.tax_point_date, today=today, earliest=earliest,
                         future="warning", what="tax point")
    if doc.invoice_date and doc.due_date and doc.due_date < doc.invoice_date:
        found.append(error("due_date", "date_order", "the due date is before the invoice date"))
    return found


def _rates(doc: Invoice) -> frozenset[Decimal] | None:
    if doc.tax_regime == "uk_vat":
        return UK_VAT_RATES
    if doc.tax_regime == "in_gst":
        on = doc.invoice_date
        return GST_RATES_FROM if on is not None and on >= GST_2_0 else GST_RATES_BEFORE
    return None


def _export(doc: Invoice) -> bool:
    """Place of supply 96 ("Other Countries"): an export, inter-state by law (IGST Act s.7(5))."""
    place = doc.place_of_supply_code or doc.buyer.state_code
    return place == checks.GST_EXPORT


def _intra_state(doc: Invoice) -> bool | None:
    """Supplier's state == place of supply; None when either is unknown."""
    supplier = doc.supplier.gstin[:2] if doc.supplier.gstin else doc.supplier.state_code
    place = doc.place_of_supply_code
    if place is None:
        place = doc.buyer.gstin[:2] if doc.buyer.gstin else doc.buyer.state_code
    if supplier is None or place is None:
        return None
    return supplier == place


def _lines(doc: Invoice) -> list[Issue]:
    found: list[Issue] = []
    rates = _rates(doc)
    intra = _intra_state(doc)
    for i, line in enumerate(doc.lines):
        amount = line.amount
        if line.quantity is not None and line.unit_price is not None and amount is not None:
            expected = round2(line.quantity * line.unit_price - (line.discount or 0))
            if not close(expected, amount):
                found.append(error(loc("lines", i, "amount"), "line_amount",
                                   f"quantity x unit price - discount = {fmt(expected)}, the line "
                                   f"shows {fmt(amount)}"))
        if line.tax_rate is not None and rates is not None and line.tax_rate not in rates:
            found.append(warning(loc("lines", i, "tax_rate"), "tax_rate_unusual",
                                 "the rate is not one of the usual rates of this tax regime"))
        if amount is not None and line.tax_rate is not None:
            found += _line_tax(doc, i, line, intra)
        taxes = [v for v in (line.cgst_amount, line.sgst_amount, line.igst_amount,
                             line.cess_amount) if v is not None]
        if (line.tax_amount is not None and taxes
                and not close(line.tax_amount, sum(taxes, Decimal(0)))):
            found.append(error(loc("lines", i, "tax_amount"), "line_tax",
                               "the line's tax differs from the sum of its CGST, SGST, IGST and "
                               "cess"))
        if line.total is not None and amount is not None:
            tax = line.tax_amount if line.tax_amount is not None else sum(taxes, Decimal(0))
            if not close(line.total, amount + tax):
                found.append(error(loc("lines", i, "total"), "line_total",
                                   f"amount + tax = {fmt(amount + tax)}, the line shows "
                                   f"{fmt(line.total)}"))
    return found


def _line_tax(doc: Invoice, i: int, line: Line, intra: bool | None) -> list[Issue]:
    found: list[Issue] = []
    full = round2(line.amount * line.tax_rate / 100)
    half = round2(line.amount * line.tax_rate / 200)
    expected_taxes: list[tuple[str, Decimal | None, Decimal]] = []
    if doc.tax_regime == "in_gst":
        if line.igst_amount is not None and line.igst_amount != 0:
            expected_taxes.append(("igst_amount", line.igst_amount, full))
        if line.cgst_amount is not None:
            expected_taxes.append(("cgst_amount", line.cgst_amount, half))
        if line.sgst_amount is not None:
            expected_taxes.append(("sgst_amount", line.sgst_amount, half))
        if intra is False and line.igst_amount is None and line.cgst_amount is None:
            expected_taxes.append(("tax_amount", line.tax_amount, full))
    else:
        expected_taxes.append(("tax_amount", line.tax_amount, full))
    for name, shown, expected in expected_taxes:
        if shown is not None and shown == 0 and _export(doc):
            continue  # zero-rated export under a Letter of Undertaking: no tax charged
        if shown is not None and not close(shown, expected):
            found.append(error(loc("lines", i, name), "line_tax",
                               f"amount x rate gives {fmt(expected)}, the line shows {fmt(shown)}"))
    return found


def _sum(values: list[Decimal | None]) -> Decimal | None:
    """Sum when every value is present (an unknown cell makes the sum unknown)."""
    if not values or any(v is None for v in values):
        return None
    return sum(values, Decimal(0))


def _line_tax_of(line: Line) -> Decimal | None:
    """The tax a line prints: its tax amount, else the sum of the parts it prints."""
    if line.tax_amount is not None:
        return line.tax_amount
    parts = [v for v in (line.cgst_amount, line.sgst_amount, line.igst_amount, line.cess_amount)
             if v is not None]
    return sum(parts, Decimal(0)) if parts else None


def _totals(doc: Invoice) -> list[Issue]:
    found: list[Issue] = []
    lines = doc.lines
    tolerance = Decimal("0.01") * max(len(lines), 1)
    net = _sum([ln.amount for ln in lines])
    if doc.taxable_value is not None and net is not None and not close(net, doc.taxable_value):
        found.append(error("taxable_value", "taxable_total",
                           f"the line amounts add up to {fmt(net)}"))
    for total_name, line_name in (("cgst_total", "cgst_amount"), ("sgst_total", "sgst_amount"),
                                  ("igst_total", "igst_amount"), ("cess_total", "cess_amount")):
        total = getattr(doc, total_name)
        summed = _sum([getattr(ln, line_name) for ln in lines])
        if total is not None and summed is not None and not close(total, summed, tolerance):
            found.append(error(total_name, "tax_total",
                               f"the lines' taxes add up to {fmt(summed)}"))
    parts = [v for v in (doc.cgst_total, doc.sgst_total, doc.igst_total, doc.cess_total)
             if v is not None]
    tax = doc.tax_total
    if tax is not None and parts and not close(tax, sum(parts, Decimal(0))):
        found.append(error("tax_total", "tax_total",
                           "the tax total differs from CGST + SGST + IGST + cess"))
    line_tax = _sum([_line_tax_of(ln) for ln in lines])
    if tax is not None and not parts and line_tax is not None and not close(tax, line_tax, tolerance):
        found.append(error("tax_total", "tax_total", f"the lines' tax adds up to {fmt(line_tax)}"))
    found += _rate_totals(doc, tolerance)
    if tax is None and parts:
        tax = sum(parts, Decimal(0))
    if tax is None:
        # Tax printed per line only: the grand total holds the lines' taxes.
        tax = sum((t for t in map(_line_tax_of, lines) if t is not None), Decimal(0))
    if doc.round_off is not None and abs(doc.round_off) >= ROUND_OFF_LIMIT:
        found.append(error("round_off", "round_off", "a round off is less than 1.00"))
    base = doc.taxable_value if doc.taxable_value is not None else net
    if doc.grand_total is not None and base is not None:
        expected = base + tax + (doc.round_off or 0)
        if not close(expected, doc.grand_total):
            found.append(error("grand_total", "grand_total",
                               f"taxable value + tax + round off = {fmt(expected)}, the invoice "
                               f"shows {fmt(doc.grand_total)}"))
    return found


def _rate_totals(doc: Invoice, tolerance: Decimal) -> list[Issue]:
    """Tax totals against the lines' rates where the lines print no tax of that kind (CGST and
    SGST of 180.00 each on 1000.00 at 18% are wrong: each is 90.00). Needs every line's amount
    and rate; per-line rounding and rounding on the total both stay within the tolerance."""
    lines = doc.lines
    if not lines or any(ln.amount is None or ln.tax_rate is None for ln in lines):
        return []
    full = sum((round2(ln.amount * ln.tax_rate / 100) for ln in lines), Decimal(0))
    half = sum((round2(ln.amount * ln.tax_rate / 200) for ln in lines), Decimal(0))
    found: list[Issue] = []

    def against(name: str, shown: Decimal | None, expected: Decimal, what: str) -> None:
        if shown is None or close(shown, expected, tolerance):
            return
        if shown == 0 and _export(doc):
            return  # zero-rated export under a Letter of Undertaking
        found.append(error(name, "tax_total", f"{what} at the lines' rates is {fmt(expected)}, "
                                              f"the invoice shows {fmt(shown)}"))

    def unprinted(line_name: str) -> bool:
        return all(getattr(ln, line_name) is None for ln in lines)

    if doc.tax_regime == "in_gst":
        # Which kind is due: the place of supply decides; unknown, the kind the invoice charges
        # (a "0.00" of the other kind is not checked against the rate).
        intra = _intra_state(doc)
        charged = {n: v is not None and v != 0 for n, v in (
            ("local", doc.cgst_total or doc.sgst_total), ("igst", doc.igst_total))}
        if intra is True or (intra is None and charged["local"]):
            if unprinted("cgst_amount"):
                against("cgst_total", doc.cgst_total, half, "CGST")
            if unprinted("sgst_amount"):
                against("sgst_total", doc.sgst_total, half, "SGST")
        if (intra is False or (intra is None and charged["igst"])) and unprinted("igst_amount"):
            against("igst_total", doc.igst_total, full, "IGST")
    parts = (doc.cgst_total, doc.sgst_total, doc.igst_total)
    if (doc.tax_total is not None and all(p is None for p in parts)
            and all(_line_tax_of(ln) is None for ln in lines)):
        against("tax_total", doc.tax_total - (doc.cess_total or 0), full,
                "VAT" if doc.tax_regime == "uk_vat" else "the tax")
    return found


def _gst_split(doc: Invoice) -> list[Issue]:
    found: list[Issue] = []
    intra = _intra_state(doc)
    cgst, sgst, igst = doc.cgst_total, doc.sgst_total, doc.igst_total
    has = {name: v is not None and v != 0 for name, v in
           (("cgst", cgst), ("sgst", sgst), ("igst", igst))}
    if cgst is not None and sgst is not None and cgst != sgst:
        found.append(error("sgst_total", "tax_split", "CGST and SGST differ"))
    for i, line in enumerate(doc.lines):
        if (line.cgst_amount is not None and line.sgst_amount is not None
                and line.cgst_amount != line.sgst_amount):
            found.append(error(loc("lines", i, "sgst_amount"), "tax_split",
                               "the line's CGST and SGST differ"))
    if intra is None:
        return found
    found += _gst_split_lines(doc, intra, has["igst"])
    if intra:
        if has["igst"] and (has["cgst"] or has["sgst"]):
            found.append(error("igst_total", "tax_split",
                               "an invoice has either IGST or CGST + SGST, not both"))
        elif has["igst"]:
            found.append(warning("igst_total", "tax_split",
                                 "IGST within one state: only right for SEZ or export supplies"))
        elif has["cgst"] != has["sgst"]:
            found.append(error("sgst_total" if has["cgst"] else "cgst_total", "tax_split",
                               "within one state both CGST and SGST are charged"))
    elif has["cgst"] or has["sgst"]:
        found.append(error("cgst_total" if has["cgst"] else "sgst_total", "tax_split",
                           "between states only IGST is charged, not CGST/SGST"))
    return found


def _gst_split_lines(doc: Invoice, intra: bool, igst_total: bool) -> list[Issue]:
    """The intra/inter-state rule on each line's taxes."""
    found: list[Issue] = []
    for i, line in enumerate(doc.lines):
        igst = line.igst_amount is not None and line.igst_amount != 0
        local = [n for n in ("cgst_amount", "sgst_amount")
                 if getattr(line, n) is not None and getattr(line, n) != 0]
        if not intra and local:
            found.append(error(loc("lines", i, local[0]), "tax_split",
                               "between states only IGST is charged, not CGST/SGST"))
        elif intra and igst and local:
            found.append(error(loc("lines", i, "igst_amount"), "tax_split",
                               "a line has either IGST or CGST + SGST, not both"))
        elif intra and igst and not igst_total:
            found.append(warning(loc("lines", i, "igst_amount"), "tax_split",
                                 "IGST within one state: only right for SEZ or export supplies"))
        elif intra and len(local) == 1:
            other = "sgst_amount" if local == ["cgst_amount"] else "cgst_amount"
            if getattr(line, other) is not None:  # printed as zero, not merely absent
                found.append(error(loc("lines", i, other), "tax_split",
                                   "within one state both CGST and SGST are charged"))
    return found


def _words(doc: Invoice) -> list[Issue]:
    if doc.amount_in_words is None or doc.grand_total is None:
        return []
    value = checks.words_to_amount(doc.amount_in_words)
    if value is None or value == abs(doc.grand_total):
        return []
    return [error("amount_in_words", "amount_in_words",
                  f"the amount in words reads {fmt(value)}, the grand total is "
                  f"{fmt(doc.grand_total)}")]

"""Indian GST tax invoices (intra-state CGST+SGST, inter-state IGST) and UK VAT invoices."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pymupdf

from . import ids, pools
from .money import group_indian, group_western, q2, rupees_in_words
from .render import GREY, LIGHT, RUPEE, WHITE, Canvas, Color
from .statement import A4, MARGIN, wrap

POUND = "\u00a3"


@dataclass
class Party:
    name: str
    address: list[str]
    tax_id: str
    state: str = ""
    state_code: str = ""


@dataclass
class Line:
    description: str
    code: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    rate: Decimal
    net: Decimal = Decimal(0)
    cgst: Decimal = Decimal(0)
    sgst: Decimal = Decimal(0)
    igst: Decimal = Decimal(0)
    vat: Decimal = Decimal(0)

    @property
    def tax(self) -> Decimal:
        return self.cgst + self.sgst + self.igst + self.vat

    @property
    def total(self) -> Decimal:
        return self.net + self.tax


@dataclass
class InvoiceFacts:
    regime: str
    number: str
    issued: date
    supplier: Party
    buyer: Party
    lines: list[Line]
    currency: str
    intra_state: bool = False
    tax_point: date | None = None
    due: date | None = None
    round_off: Decimal = Decimal(0)
    bank: dict[str, str] = field(default_factory=dict)
    accent: Color = (0.1, 0.3, 0.5)
    # Figures as printed; the broken variants change these, not the lines.
    printed: dict[str, Decimal] = field(default_factory=dict)

    @property
    def taxable(self) -> Decimal:
        return sum((ln.net for ln in self.lines), Decimal(0))

    def tax_sum(self, name: str) -> Decimal:
        return sum((getattr(ln, name) for ln in self.lines), Decimal(0))

    @property
    def total_tax(self) -> Decimal:
        return sum((ln.tax for ln in self.lines), Decimal(0))

    @property
    def grand_total(self) -> Decimal:
        return self.taxable + self.total_tax + self.round_off

    def figure(self, name: str) -> Decimal:
        computed = {
            "taxable": self.taxable, "cgst": self.tax_sum("cgst"), "sgst": self.tax_sum("sgst"),
            "igst": self.tax_sum("igst"), "vat": self.tax_sum("vat"),
            "total_tax": self.total_tax, "grand_total": self.grand_total,
        }[name]
        return self.printed.get(name, computed)


def _dec(x: float, places: str = "0.01") -> Decimal:
    return Decimal(str(x)).quantize(Decimal(places))


def _in_party(rng: random.Random, state: tuple[str, str, str, str, str] | None = None) -> Party:
    name, holder = rng.choice(pools.IN_BUSINESSES)
    city, code, state_name, pin, _ = state or rng.choice(pools.CITIES)
    pan = ids.pan(rng, holder, name[0])
    address = [f"{rng.choice(('Shop No.', 'Plot No.', 'Unit', 'Gala No.'))} {rng.randint(1, 240)}, "
               f"{rng.choice(pools.BUILDINGS)}",
               f"{rng.choice(pools.STREETS)}, {city} - {pin}{rng.randint(1, 99):03d}"]
    return Party(name, address, ids.gstin(rng, code, pan), state_name, code)


def gst_facts(rng: random.Random, intra: bool | None = None, lines: int | None = None
              ) -> InvoiceFacts:
    city = rng.choice(pools.CITIES)
    supplier = _in_party(rng, city)
    intra = rng.random() < 0.5 if intra is None else intra
    if intra:
        buyer = _in_party(rng, rng.choice([c for c in pools.CITIES if c[1] == city[1]]))
    else:
        buyer = _in_party(rng, rng.choice([c for c in pools.CITIES if c[1] != city[1]]))
    while buyer.name == supplier.name:
        buyer = _in_party(rng, (city if intra else rng.choice(
            [c for c in pools.CITIES if c[1] != city[1]])))
    issued = date(2023, 4, 1) + timedelta(days=rng.randint(0, 800))
    fy = issued.year if issued.month >= 4 else issued.year - 1
    prefix = "".join(w[0] for w in supplier.name.split()[:3]).upper()
    number = f"{prefix}/{fy % 100:02d}-{(fy + 1) % 100:02d}/{rng.randint(1, 2999):04d}"
    n = lines if lines is not None else rng.randint(2, 9)
    items: list[Line] = []
    for desc, hsn, rate, unit, (lo, hi) in rng.sample(pools.IN_GOODS, min(n, len(pools.IN_GOODS))):
        qty = Decimal(rng.randint(1, 40)) if unit != "KGS" else _dec(rng.uniform(1, 60), "0.5")
        price = _dec(rng.uniform(lo, hi))
        net = q2(qty * price)
        r = Decimal(rate)
        line = Line(desc, hsn, qty, unit, price, r, net)
        if intra:
            line.cgst = q2(net * r / 200)
            line.sgst = q2(net * r / 200)
        else:
            line.igst = q2(net * r / 100)
        items.append(line)
    facts = InvoiceFacts("IN_GST", number, issued, supplier, buyer, items, "INR", intra)
    exact = facts.taxable + facts.total_tax
    facts.round_off = exact.quantize(Decimal("1")) - exact if rng.random() < 0.7 else Decimal(0)
    bank_name, bank_code, _, accent = rng.choice(pools.BANKS)
    facts.bank = {"Bank": bank_name, "A/c No.": ids.account_number(rng, 14),
                  "IFSC": ids.ifsc(rng, bank_code)}
    facts.accent = accent
    return facts


def uk_facts(rng: random.Random, lines: int | None = None) -> InvoiceFacts:
    sname, (s1, s2, s3) = rng.choice(pools.UK_SUPPLIERS)
    bname, (b1, b2, b3) = rng.choice(pools.UK_CUSTOMERS)
    supplier = Party(sname, [s1, s2, s3], ids.uk_vat(rng))
    buyer = Party(bname, [b1, b2, b3], "")
    issued = date(2023, 1, 1) + timedelta(days=rng.randint(0, 900))
    number = f"INV-{issued.year}-{rng.randint(1, 9999):04d}"
    n = lines if lines is not None else rng.randint(2, 7)
    items: list[Line] = []
    for desc, rate, (lo, hi) in rng.sample(pools.UK_GOODS, min(n, len(pools.UK_GOODS))):
        litres = "litres" in desc
        qty = Decimal(rng.randint(300, 1500)) if litres else Decimal(rng.randint(1, 12))
        price = _dec(rng.uniform(lo, hi), "0.001" if litres else "0.01")
        net = q2(qty * price)
        r = Decimal(rate)
        items.append(Line(desc, "", qty, "", price, r, net, vat=q2(net * r / 100)))
    facts = InvoiceFacts("UK_VAT", number, issued, supplier, buyer, items, "GBP")
    facts.tax_point = issued - timedelta(days=rng.choice((0, 0, 1, 3)))
    facts.due = issued + timedelta(days=rng.choice((14, 30)))
    sort = f"{rng.randint(10, 99)}{rng.randint(0, 99):02d}{rng.randint(0, 99):02d}"
    account = f"{rng.randint(0, 99999999):08d}"
    bank_code, bank_name = rng.choice(pools.UK_BANKS)
    facts.bank = {"Bank": bank_name, "Sort code": f"{sort[:2]}-{sort[2:4]}-{sort[4:]}",
                  "Account": account, "IBAN": ids.iban_gb(bank_code, sort, account)}
    facts.accent = rng.choice(((0.15, 0.35, 0.3), (0.2, 0.2, 0.45), (0.45, 0.2, 0.15)))
    return facts


def _qty(q: Decimal) -> str:
    return f"{q:f}".rstrip("0").rstrip(".") if "." in f"{q:f}" else f"{q:f}"


def _gst_columns(intra: bool) -> list[tuple[str, float, str]]:
    cols = [("Sl", 16, "left"), ("Description of Goods / Services", 0, "left"),
            ("HSN/SAC", 40, "left"), ("Qty", 30, "right"), ("Unit", 24, "left"),
            ("Rate", 48, "right"), ("Taxable", 58, "right")]
    if intra:
        cols += [("CGST%", 26, "right"), ("CGST", 44, "right"), ("SGST%", 26, "right"),
                 ("SGST", 44, "right")]
    else:
        cols += [("IGST%", 28, "right"), ("IGST", 54, "right")]
    cols += [("Total", 54, "right")]
    used = sum(w for _, w, _ in cols)
    cols[1] = (cols[1][0], A4[0] - 2 * MARGIN - used, "left")
    return cols


def _pct(r: Decimal) -> str:
    return _qty(r) + "%"


def _table(c: Canvas, y: float, cols: list[tuple[str, float, str]], rows: list[list[str]],
           accent: Color, size: float = 6.8, wrap_col: int = 1) -> float:
    """Item table with a header band; the `wrap_col` column wraps. Returns the y below it."""
    c.rect((MARGIN, y, c.width - MARGIN, y + 15), fill=accent)
    x = MARGIN
    for title, width, align in cols:
        tx = x + width - 2.5 if align == "right" else x + 2.5
        c.text(tx, y + 10, title, 6.3, bold=True, color=WHITE, align=align)
        x += width
    y += 15
    for row in rows:
        cells = [wrap(v, width - 5, size) if k == wrap_col else [v]
                 for k, (v, (_, width, _)) in enumerate(zip(row, cols))]
        height = max(len(cl) for cl in cells) * 8.6 + 5
        x = MARGIN
        for (_title, width, align), lines in zip(cols, cells):
            tx = x + width - 2.5 if align == "right" else x + 2.5
            for k, line in enumerate(lines):
                c.text(tx, y + 9 + k * 8.6, line, size, align=align)
            c.line(x, y, x, y + height, LIGHT, 0.4)
            x += width
        c.line(x, y, x, y + height, LIGHT, 0.4)
        y += height
        c.line(MARGIN, y, c.width - MARGIN, y, LIGHT, 0.5)
    return y


def _party(c: Canvas, x: float, y: float, title: str, p: Party, tax_label: str,
           state: bool) -> float:
    c.text(x, y, title, 7, bold=True, color=GREY)
    y += 11
    c.text(x, y, p.name, 8.5, bold=True)
    for line in p.address:
        y += 10
        c.text(x, y, line, 7.5)
    if p.tax_id:
        y += 10
        c.text(x, y, f"{tax_label}: {p.tax_id}", 7.5, bold=True)
    if state:
        y += 10
        c.text(x, y, f"State Name: {p.state}, Code: {p.state_code}", 7.5)
    return y


def draw_gst(f: InvoiceFacts, rng: random.Random) -> pymupdf.Document:
    doc = pymupdf.open()
    c = Canvas(doc.new_page(width=A4[0], height=A4[1]))
    w = c.width
    c.text(w / 2, 40, "TAX INVOICE", 15, bold=True, color=f.accent, align="center")
    c.text(w - MARGIN, 40, "ORIGINAL FOR RECIPIENT", 6.5, color=GREY, align="right")
    c.line(MARGIN, 48, w - MARGIN, 48, f.accent, 1.2)
    y = _party(c, MARGIN, 64, "SUPPLIER", f.supplier, "GSTIN/UIN", True)
    meta = [("Invoice No.", f.number), ("Invoice Date", f.issued.strftime("%d-%b-%Y")),
            ("Place of Supply", f"{f.buyer.state} ({f.buyer.state_code})"),
            ("Reverse Charge", "No"), ("Supply Type", "Intra-State" if f.intra_state
                                       else "Inter-State")]
    my = 64
    for label, value in meta:
        c.text(360, my, label, 7.5, color=GREY)
        c.text(430, my, ": " + value, 7.5, bold=label == "Invoice No.")
        my += 11
    y = max(y, my) + 14
    c.line(MARGIN, y - 8, w - MARGIN, y - 8, LIGHT, 0.6)
    y = _party(c, MARGIN, y + 4, "BILL TO (RECIPIENT)", f.buyer, "GSTIN/UIN", True) + 16

    cols = _gst_columns(f.intra_state)
    rows = []
    for k, ln in enumerate(f.lines, 1):
        row = [str(k), ln.description, ln.code, _qty(ln.quantity), ln.unit,
               group_indian(ln.unit_price), group_indian(ln.net)]
        if f.intra_state:
            row += [_pct(ln.rate / 2), group_indian(ln.cgst), _pct(ln.rate / 2),
                    group_indian(ln.sgst)]
        else:
            row += [_pct(ln.rate), group_indian(ln.igst)]
        rows.append(row + [group_indian(ln.total)])
    y = _table(c, y, cols, rows, f.accent) + 14

    totals = [("Total Taxable Value", f.figure("taxable"))]
    if f.intra_state:
        totals += [("CGST", f.figure("cgst")), ("SGST", f.figure("sgst"))]
    else:
        totals += [("IGST", f.figure("igst"))]
    if f.round_off:
        totals.append(("Round Off", f.round_off))
    ty = y
    for label, value in totals:
        c.text(420, ty, label, 7.5)
        c.text(w - MARGIN, ty, group_indian(value), 7.5, align="right")
        ty += 11
    c.rect((360, ty - 8, w - MARGIN, ty + 7), fill=LIGHT)
    c.text(366, ty + 3, "Grand Total", 9, bold=True)
    c.text(w - MARGIN - 3, ty + 3, f"{RUPEE} {group_indian(f.figure('grand_total'))}", 9,
           bold=True, align="right")
    words = rupees_in_words(f.figure("grand_total"))
    c.text(MARGIN, y, "Amount Chargeable (in words)", 7, color=GREY)
    for k, line in enumerate(wrap(words, 300, 7.8)):
        c.text(MARGIN, y + 11 + k * 10, line, 7.8, bold=True)
    by = max(ty + 34, y + 60)
    c.text(MARGIN, by, "Company's Bank Details", 7, bold=True, color=GREY)
    for k, (label, value) in enumerate(f.bank.items()):
        c.text(MARGIN, by + 11 + k * 10, f"{label} : {value}", 7.5)
    c.text(w - MARGIN, by, f"for {f.supplier.name}", 8, bold=True, align="right")
    c.text(w - MARGIN, by + 44, "Authorised Signatory", 7.5, align="right")
    dy = by + 70
    c.text(MARGIN, dy, "Declaration: We declare that this invoice shows the actual price of the "
           "goods described and that all particulars are true and correct.", 6.5, color=GREY)
    c.text(w / 2, A4[1] - 36, "This is a Computer Generated Invoice", 7, color=GREY,
           align="center")
    c.text(w / 2, A4[1] - 22, "SYNTHETIC SPECIMEN", 5.5, color=(0.6, 0.6, 0.6), align="center")
    c.finish()
    return doc


def vat_display(number: str) -> str:
    return f"GB {number[:3]} {number[3:7]} {number[7:]}"


def draw_uk(f: InvoiceFacts, rng: random.Random) -> pymupdf.Document:
    doc = pymupdf.open()
    c = Canvas(doc.new_page(width=A4[0], height=A4[1]))
    w = c.width
    c.rect((0, 0, w, 8), fill=f.accent)
    c.text(MARGIN, 46, f.supplier.name, 15, bold=True, color=f.accent)
    y = 60
    for line in f.supplier.address:
        c.text(MARGIN, y, line, 8)
        y += 10.5
    c.text(MARGIN, y, f"VAT Registration No: {vat_display(f.supplier.tax_id)}", 8, bold=True)
    c.text(w - MARGIN, 46, "VAT INVOICE", 18, bold=True, align="right")
    meta = [("Invoice number", f.number), ("Invoice date", f.issued.strftime("%d %B %Y")),
            ("Tax point", f.tax_point.strftime("%d %B %Y")),
            ("Payment due", f.due.strftime("%d %B %Y"))]
    my = 64
    for label, value in meta:
        c.text(400, my, label, 8, color=GREY)
        c.text(w - MARGIN, my, value, 8, align="right", bold=label == "Invoice number")
        my += 11
    y = max(y, my) + 26
    c.text(MARGIN, y, "Invoice to", 7.5, bold=True, color=GREY)
    c.text(MARGIN, y + 12, f.buyer.name, 9, bold=True)
    for k, line in enumerate(f.buyer.address):
        c.text(MARGIN, y + 23 + k * 10.5, line, 8)
    y += 70

    used = 40 + 62 + 44 + 66 + 60
    cols = [("Description", A4[0] - 2 * MARGIN - used, "left"), ("Qty", 40, "right"),
            ("Unit price", 62, "right"), ("VAT rate", 44, "right"), ("Net", 66, "right"),
            ("VAT", 60, "right")]
    rows = []
    for ln in f.lines:
        price = f"{ln.unit_price:,.3f}" if ln.unit_price.as_tuple().exponent < -2 else \
            group_western(ln.unit_price)
        rows.append([ln.description, _qty(ln.quantity), f"{POUND}{price}", _pct(ln.rate),
                     f"{POUND}{group_western(ln.net)}", f"{POUND}{group_western(ln.vat)}"])
    y = _table(c, y, cols, rows, f.accent, size=7.5, wrap_col=0) + 16

    x_label, x_val = 360, w - MARGIN
    c.text(x_label, y, "Total net (excl. VAT)", 8)
    c.text(x_val, y, f"{POUND}{group_western(f.figure('taxable'))}", 8, align="right")
    y += 12
    for rate in sorted({ln.rate for ln in f.lines}, reverse=True):
        net = sum((ln.net for ln in f.lines if ln.rate == rate), Decimal(0))
        vat = sum((ln.vat for ln in f.lines if ln.rate == rate), Decimal(0))
        c.text(x_label, y, f"VAT @ {_pct(rate)} on {POUND}{group_western(net)}", 8)
        c.text(x_val, y, f"{POUND}{group_western(vat)}", 8, align="right")
        y += 12
    c.text(x_label, y, "Total VAT", 8, bold=True)
    c.text(x_val, y, f"{POUND}{group_western(f.figure('vat'))}", 8, bold=True, align="right")
    y += 8
    c.rect((x_label - 6, y, w - MARGIN + 4, y + 18), fill=f.accent)
    c.text(x_label, y + 12.5, "Total due (GBP)", 9.5, bold=True, color=WHITE)
    c.text(x_val, y + 12.5, f"{POUND}{group_western(f.figure('grand_total'))}", 9.5, bold=True,
           color=WHITE, align="right")
    y += 46
    c.text(MARGIN, y, "Payment details", 8, bold=True)
    for k, (label, value) in enumerate(f.bank.items()):
        c.text(MARGIN, y + 12 + k * 10.5, f"{label}: {value}", 8)
    c.text(MARGIN, y + 62, f"Please quote {f.number} with your payment. Thank you for your "
           "business.", 7.5, color=GREY)
    c.text(w / 2, A4[1] - 22, "SYNTHETIC SPECIMEN", 5.5, color=(0.6, 0.6, 0.6), align="center")
    c.finish()
    return doc

"""Multi-page Indian bank statements: a reconciling transaction list laid out as a table that
continues across page breaks, with wrapped narrations and Dr/Cr balances.

`long_statement` makes statements of a given page count (30, 40, 60 pages) with narrations of
several lines and rows cut by the page break: the first lines (date, amounts, balance) at the
foot of one page, the rest of the narration at the top of the next."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pymupdf

from . import ids, pools
from .kyc import person
from .money import group_indian, q2
from .render import BLACK, GREY, LIGHT, WHITE, Canvas, text_width

A4 = (595.28, 841.89)
MARGIN = 28.0
FONT = 7.2
LINE = 9.0
# (header, width, align); widths sum to the text width of A4 minus margins.
COLUMNS = (
    ("Date", 50, "left"),
    ("Narration", 170, "left"),
    ("Chq./Ref.No.", 70, "left"),
    ("Value Dt", 50, "left"),
    ("Withdrawal Amt.", 62, "right"),
    ("Deposit Amt.", 62, "right"),
    ("Closing Balance", 75.28, "right"),
)


@dataclass
class Txn:
    day: date
    value_day: date
    narration: str
    ref: str
    debit: Decimal | None
    credit: Decimal | None
    balance: Decimal
    page: int = 0
    # Narration lines printed on `page` when the row goes on at the top of the next page; 0 when
    # the whole row is on one page.
    split: int = 0


@dataclass
class StatementFacts:
    bank: str
    bank_colour: tuple[float, float, float]
    branch: str
    branch_address: str
    ifsc: str
    micr: str
    holder: str
    holder_address: list[str]
    account_number: str
    account_type: str
    customer_id: str
    start: date
    end: date
    opening: Decimal
    txns: list[Txn]
    date_style: str
    drcr: bool
    carry_rows: bool
    pages: int = 0
    split_rows: bool = False  # long statements: rows may be cut by a page break

    @property
    def closing(self) -> Decimal:
        return self.txns[-1].balance if self.txns else self.opening

    @property
    def total_debits(self) -> Decimal:
        return sum((t.debit for t in self.txns if t.debit is not None), Decimal(0))

    @property
    def total_credits(self) -> Decimal:
        return sum((t.credit for t in self.txns if t.credit is not None), Decimal(0))


def _amount(rng: random.Random, lo: float, hi: float) -> Decimal:
    return q2(Decimal(str(round(rng.uniform(lo, hi), 2))))


def _ref12(rng: random.Random) -> str:
    return str(rng.randint(10**11, 10**12 - 1))


def _entry(rng: random.Random, kind: str, names: list[str], employer: str, bank_code: str,
           day: date) -> tuple[str, str, Decimal | None, Decimal | None]:
    """(narration, ref, debit, credit) for one transaction kind."""
    other = rng.choice(names)
    code = rng.choice(("HDFC", "ICIC", "SBIN", "UTIB", "YESB", "KKBK"))
    if kind == "salary":
        month = day.strftime("%b %Y").upper()
        return (f"NEFT CR-{code}N{rng.randint(10**9, 10**10 - 1)}-{employer}-SALARY FOR {month}",
                f"{code}N{rng.randint(10**8, 10**9 - 1)}", None, _amount(rng, 38000, 145000))
    if kind == "upi_dr":
        m = rng.choice(pools.MERCHANTS)
        vpa = m.lower().replace(" ", "") + "@" + rng.choice(("ybl", "okaxis", "paytm", "icici"))
        return (f"UPI/DR/{_ref12(rng)}/{m}/{code}/{vpa}/Payment", _ref12(rng),
                _amount(rng, 45, 4800), None)
    if kind == "upi_cr":
        return (f"UPI/CR/{_ref12(rng)}/{other.upper()}/{code}/{other.split()[0].lower()}"
                f"{rng.randint(1, 99)}@oksbi/Sent via UPI", _ref12(rng), None,
                _amount(rng, 200, 15000))
    if kind == "atm":
        return (f"ATM WDL {bank_code} ATM {rng.choice(pools.STREETS).upper()} "
                f"S1AW{rng.randint(100000, 999999)}", f"{rng.randint(100000, 999999)}",
                Decimal(rng.choice((500, 1000, 2000, 3000, 5000, 10000))), None)
    if kind == "pos":
        return (f"POS {rng.randint(4000, 4999)}XXXXXX{rng.randint(1000, 9999)} "
                f"{rng.choice(pools.MERCHANTS)}", f"{rng.randint(10**9, 10**10 - 1)}",
                _amount(rng, 150, 9000), None)
    if kind == "emi":
        lender = rng.choice(("BAJAJ FINANCE LTD", "HDFC LTD HOME LOAN", "TATA CAPITAL FIN"))
        return (f"ACH D- {lender}-EMI {rng.randint(1, 36):02d}/36 P{rng.randint(10**7, 10**8)}",
                f"ACH{rng.randint(10**6, 10**7)}", _amount(rng, 4500, 32000), None)
    if kind == "cheque":
        chq = f"{rng.randint(1, 999999):06d}"
        return (f"CHQ DEP - CLG - {other.upper()} - {code} BANK", chq, None,
                _amount(rng, 5000, 90000))
    if kind == "imps":
        return (f"IMPS/P2A/{_ref12(rng)}/{other.upper()}/{code}/Rent "
                f"{day.strftime('%b').upper()}", _ref12(rng), _amount(rng, 8000, 35000), None)
    if kind == "charges":
        return ("SMS ALERT CHARGES FOR QUARTER INCL GST 18%", "-", Decimal("17.70"), None)
    return (f"INT.PD:{(day - timedelta(days=90)).strftime('%d-%m-%Y')} TO "
            f"{day.strftime('%d-%m-%Y')}", "-", None, _amount(rng, 60, 2400))


def statement_facts(rng: random.Random, rows: int | None = None) -> StatementFacts:
    bank, code, micr_bank, colour = rng.choice(pools.BANKS)
    city, _state_code, state, pin, micr_city = rng.choice(pools.CITIES)
    p = person(rng)
    branch = f"{rng.choice(pools.STREETS)}, {city}"
    months = rng.choice((1, 1, 3))
    first_month = rng.randint(0, 29 - months)
    start = date(2023 + first_month // 12, first_month % 12 + 1, 1)
    end_month = start.month + months
    end = (date(start.year + (end_month > 12), (end_month - 1) % 12 + 1, 1)
           if end_month <= 12 else date(start.year + 1, 1, 1)) - timedelta(days=1)
    account_type = rng.choice(("Savings", "Savings", "Current", "Overdraft"))
    overdraft = account_type == "Overdraft"
    opening = _amount(rng, 500, 12000) if overdraft else _amount(rng, 3000, 240000)
    n = rows if rows is not None else rng.randint(30, 70)
    firsts = pools.MALE_NAMES + pools.FEMALE_NAMES
    names = [f"{rng.choice(firsts)[0]} {rng.choice(pools.SURNAMES)[0]}" for _ in range(8)]
    employer = rng.choice(pools.EMPLOYERS)

    days = sorted(start + timedelta(days=rng.randint(0, (end - start).days)) for _ in range(n))
    kinds = rng.choices(("upi_dr", "upi_cr", "atm", "pos", "emi", "cheque", "imps"),
                        weights=(40, 12, 8, 10, 4, 3, 4), k=n)
    # One salary credit a month: the first transaction on or after a payday.
    for m in range(months):
        payday = date(start.year + (start.month + m - 1) // 12, (start.month + m - 1) % 12 + 1,
                      rng.randint(1, 7))
        first = next((k for k, d in enumerate(days) if d >= payday), None)
        if first is not None:
            kinds[first] = "salary"
    if overdraft and n > 4:
        kinds[3] = "imps"
    if months == 3 and n > 1:
        kinds[-1] = "interest"
        kinds[-2] = "charges"
        days[-1] = days[-2] = end
    txns: list[Txn] = []
    balance = opening
    for k, (day, kind) in enumerate(zip(days, kinds)):
        narration, ref, debit, credit = _entry(rng, kind, names, employer, code, day)
        if overdraft and k == 3 and debit is not None:
            # Overdraft accounts dip below zero, so some balances print as "Dr".
            debit = q2(max(balance, Decimal(0)) + _amount(rng, 2000, 20000))
        if not overdraft and debit is not None and debit > balance:
            debit = q2(balance * Decimal("0.3"))
            if debit <= 0:
                debit, credit = None, _amount(rng, 500, 5000)
        balance = balance - (debit or 0) + (credit or 0)
        value_day = day + timedelta(days=rng.choice((0, 0, 0, 1))) if kind == "cheque" else day
        txns.append(Txn(day, min(value_day, end), narration, ref, debit, credit, balance))

    address = [f"{rng.randint(1, 420)}, {rng.choice(pools.BUILDINGS)}",
               rng.choice(pools.STREETS), f"{city} - {pin}{rng.randint(1, 99):03d}",
               f"{state}, India"]
    return StatementFacts(
        bank=bank, bank_colour=colour, branch=branch,
        branch_address=f"{rng.randint(1, 99)}, {branch} {pin}{rng.randint(1, 99):03d}",
        ifsc=ids.ifsc(rng, code), micr=ids.micr(rng, micr_city, micr_bank),
        holder=(p.name_en.upper() if rng.random() < 0.6
                else f"{'MR' if p.gender == 'MALE' else 'MS'}. {p.name_en.upper()}"),
        holder_address=address, account_number=ids.account_number(rng, rng.choice((11, 12, 14))),
        account_type=account_type, customer_id=str(rng.randint(10**7, 10**9)),
        start=start, end=end, opening=opening, txns=txns,
        date_style=rng.choice(("%d/%m/%y", "%d-%m-%Y", "%d %b %Y")),
        drcr=overdraft or rng.random() < 0.5, carry_rows=rng.random() < 0.6,
    )


def wrap(s: str, width: float, size: float) -> list[str]:
    """Greedy wrap at spaces, "/" and "-" (narrations are slash-joined codes), else anywhere."""
    return list(_wrap(s, width, size))


@functools.lru_cache(maxsize=4096)
def _wrap(s: str, width: float, size: float) -> tuple[str, ...]:
    lines, cur = [], ""
    tokens, tok = [], ""
    for ch in s:
        tok += ch
        if ch in " /-":
            tokens.append(tok)
            tok = ""
    if tok:
        tokens.append(tok)
    for t in tokens:
        if text_width(cur + t, size) <= width:
            cur += t
            continue
        if cur:
            lines.append(cur.rstrip())
            cur = ""
        while text_width(t, size) > width:
            cut = len(t)
            while cut > 1 and text_width(t[:cut], size) > width:
                cut -= 1
            lines.append(t[:cut])
            t = t[cut:]
        cur = t
    if cur.strip():
        lines.append(cur.rstrip())
    return tuple(lines)


def _balance_text(value: Decimal, drcr: bool) -> str:
    if not drcr:
        return group_indian(value)
    return f"{group_indian(abs(value))} {'Dr' if value < 0 else 'Cr'}"


def _fmt(d: date, style: str) -> str:
    return d.strftime(style)


def _header_block(c: Canvas, f: StatementFacts) -> float:
    """First-page header: bank, branch, customer and account details. Returns the y below it."""
    w = c.width
    c.rect((0, 0, w, 56), fill=f.bank_colour)
    c.text(MARGIN, 32, f.bank.upper(), 17, bold=True, color=WHITE)
    c.text(w - MARGIN, 24, "Statement of Account", 10, color=WHITE, align="right")
    c.text(w - MARGIN, 40, f"{f.account_type} Account", 8, color=WHITE, align="right")
    y = 76
    c.text(MARGIN, y, f.holder, 9, bold=True)
    for line in f.holder_address:
        y += 11
        c.text(MARGIN, y, line, 8)
    right = [
        ("Account Branch", f.branch), ("Branch Address", f.branch_address),
        ("Account No", f.account_number), ("Account Type", f.account_type),
        ("Customer ID", f.customer_id), ("Currency", "INR"),
        ("IFSC", f.ifsc), ("MICR", f.micr),
    ]
    ry = 76
    for label, value in right:
        c.text(318, ry, label, 7.5, color=GREY)
        c.text(392, ry, ":  " + value, 7.5)
        ry += 10.5
    y = max(y, ry) + 12
    period = f"Statement From : {_fmt(f.start, '%d/%m/%Y')}  To : {_fmt(f.end, '%d/%m/%Y')}"
    c.rect((MARGIN, y - 10, w - MARGIN, y + 5), fill=LIGHT)
    c.text(w / 2, y, period, 8.5, bold=True, align="center")
    return y + 16


def _table_header(c: Canvas, y: float, colour: tuple[float, float, float]) -> float:
    c.rect((MARGIN, y, c.width - MARGIN, y + 14), fill=colour)
    x = MARGIN
    for title, width, align in COLUMNS:
        tx = x + width - 3 if align == "right" else x + 3
        c.text(tx, y + 10, title, 7, bold=True, color=WHITE, align=align)
        x += width
    return y + 17


def _row(c: Canvas, y: float, cells: list[list[str]], shade: bool, bold: bool = False) -> float:
    height = max(len(lines) for lines in cells) * LINE + 3
    if shade:
        c.rect((MARGIN, y - 1, c.width - MARGIN, y + height - 1), fill=(0.955, 0.965, 0.98))
    x = MARGIN
    for (_title, width, align), lines in zip(COLUMNS, cells):
        tx = x + width - 3 if align == "right" else x + 3
        for k, line in enumerate(lines):
            c.text(tx, y + 7 + k * LINE, line, FONT, bold=bold, align=align)
        x += width
    c.line(MARGIN, y + height - 1, c.width - MARGIN, y + height - 1, LIGHT, 0.4)
    return y + height


def _cells(t: Txn, f: StatementFacts) -> list[list[str]]:
    return [
        [_fmt(t.day, f.date_style)],
        wrap(t.narration, COLUMNS[1][1] - 6, FONT),
        wrap(t.ref, COLUMNS[2][1] - 6, FONT),
        [_fmt(t.value_day, f.date_style)],
        [group_indian(t.debit) if t.debit is not None else ""],
        [group_indian(t.credit) if t.credit is not None else ""],
        [_balance_text(t.balance, f.drcr)],
    ]


def _carry(label: str, balance: Decimal, f: StatementFacts) -> list[list[str]]:
    return [[""], [label], [""], [""], [""], [""], [_balance_text(balance, f.drcr)]]


def narration_parts(t: Txn, lines_first: int) -> tuple[str, str] | None:
    """The narration as printed before and after a page break after `lines_first` of its wrapped
    lines, or None when the break is not between two lines or joining the parts by the merge rule
    (docextract.windows.join_text) would not give the narration back."""
    from ..windows import join_text

    lines = wrap(t.narration, COLUMNS[1][1] - 6, FONT)
    if not 1 <= lines_first < len(lines):
        return None
    pos = 0
    for line in lines[:lines_first]:
        pos = t.narration.index(line, pos) + len(line)
    head, tail = t.narration[:pos].rstrip(), t.narration[pos:].lstrip()
    if not head or not tail or join_text(head, tail) != t.narration:
        return None
    return head, tail


def _layout(f: StatementFacts, first_top: float) -> list[list[int]]:
    """Split transaction indices into pages (the table continues across page breaks). With
    `split_rows`, a row that does not fit is cut after the lines that do (see Txn.split)."""
    bottom = A4[1] - 70
    top = MARGIN + 30 + 17 + (LINE + 3) * f.carry_rows
    pages: list[list[int]] = [[]]
    y = first_top + 17 + (LINE + 3) * (1 + f.carry_rows)
    for k, t in enumerate(f.txns):
        t.split = 0
        cells = _cells(t, f)
        lines = max(len(c) for c in cells)
        h = lines * LINE + 3
        limit = bottom - (LINE + 3) * f.carry_rows
        if y + h > limit:
            room = int((limit - y - 3) // LINE)
            if (f.split_rows and 1 <= room < lines and pages[-1]
                    and all(len(c) <= room for c in cells[2:])
                    and narration_parts(t, room) is not None):
                t.split = room
                pages[-1].append(k)
                pages.append([])
                y = top + (len(cells[1]) - room) * LINE + 3
                continue
            pages.append([])
            y = top
        pages[-1].append(k)
        y += h
    return pages


def draw_statement(f: StatementFacts, rng: random.Random) -> pymupdf.Document:
    doc = pymupdf.open()
    probe = Canvas(pymupdf.open().new_page(width=A4[0], height=A4[1]))
    first_top = _header_block(probe, f)
    pages = _layout(f, first_top)
    f.pages = len(pages)
    balance = f.opening
    for p, rows in enumerate(pages):
        c = Canvas(doc.new_page(width=A4[0], height=A4[1]))
        if p == 0:
            y = _header_block(c, f)
        else:
            c.text(MARGIN, MARGIN + 8, f.bank.upper(), 10, bold=True, color=f.bank_colour)
            c.text(c.width - MARGIN, MARGIN + 8,
                   f"Account No : {f.account_number}   Statement From : "
                   f"{_fmt(f.start, '%d/%m/%Y')} To : {_fmt(f.end, '%d/%m/%Y')}", 7,
                   align="right")
            y = MARGIN + 30
        y = _table_header(c, y, f.bank_colour)
        if p == 0:
            y = _row(c, y, _carry("OPENING BALANCE", f.opening, f), False, bold=True)
        elif f.carry_rows:
            y = _row(c, y, _carry("BALANCE BROUGHT FORWARD", balance, f), False, bold=True)
        if p > 0 and f.txns[pages[p - 1][-1]].split:
            cut = f.txns[pages[p - 1][-1]]
            rest = wrap(cut.narration, COLUMNS[1][1] - 6, FONT)[cut.split:]
            y = _row(c, y, [[""], rest, [""], [""], [""], [""], [""]], False)
        for j, k in enumerate(rows):
            t = f.txns[k]
            t.page = p + 1
            cells = _cells(t, f)
            if t.split:
                cells[1] = cells[1][:t.split]
            y = _row(c, y, cells, j % 2 == 1)
            balance = t.balance
        if p < len(pages) - 1 and f.carry_rows:
            y = _row(c, y, _carry("BALANCE CARRIED FORWARD", balance, f), False, bold=True)
        if p == len(pages) - 1:
            _summary(c, y + 10, f)
        c.line(MARGIN, A4[1] - 48, A4[0] - MARGIN, A4[1] - 48, GREY, 0.4)
        c.text(MARGIN, A4[1] - 36, "This is a computer generated statement and does not "
               "require a signature.", 6.5, color=GREY)
        c.text(A4[0] - MARGIN, A4[1] - 36, f"Page {p + 1} of {len(pages)}", 7, align="right")
        c.text(A4[0] / 2, A4[1] - 22, "SYNTHETIC SPECIMEN - NOT A REAL ACCOUNT", 5.5,
               color=(0.6, 0.6, 0.6), align="center")
        c.finish()
    return doc


def _summary(c: Canvas, y: float, f: StatementFacts) -> None:
    labels = ("Opening Balance", "Dr Count", "Cr Count", "Debits", "Credits", "Closing Bal")
    n_dr = sum(t.debit is not None for t in f.txns)
    n_cr = sum(t.credit is not None for t in f.txns)
    values = (_balance_text(f.opening, f.drcr), str(n_dr), str(n_cr),
              group_indian(f.total_debits), group_indian(f.total_credits),
              _balance_text(f.closing, f.drcr))
    c.text(MARGIN, y + 8, "STATEMENT SUMMARY :-", 8, bold=True)
    y += 14
    col = (c.width - 2 * MARGIN) / 6
    c.rect((MARGIN, y, c.width - MARGIN, y + 26), stroke=GREY, width=0.5)
    for k, (label, value) in enumerate(zip(labels, values)):
        x = MARGIN + k * col + col / 2
        c.text(x, y + 10, label, 7, bold=True, align="center")
        c.text(x, y + 21, value, 7.5, align="center")
    c.text(c.width / 2, y + 44, "*** End of Statement ***", 7.5, color=BLACK, align="center")


# Extra narration text of long statements, so that rows wrap over several lines.
_REMARKS = ("BEING PAYMENT TOWARDS INVOICE", "RENT AND MAINTENANCE CHARGES FOR THE MONTH",
            "TRANSFER TO SELF ACCOUNT FOR HOUSEHOLD EXPENSES AND SCHOOL FEES",
            "REFUND AGAINST ORDER CANCELLED BY CUSTOMER", "SETTLEMENT OF CARD DUES",
            "REIMBURSEMENT OF TRAVEL AND CONVEYANCE FOR FIELD VISIT",
            "CONTRIBUTION TOWARDS SOCIETY CORPUS FUND AND REPAIRS")


def long_statement(rng: random.Random, pages: int) -> tuple[StatementFacts, pymupdf.Document]:
    """A statement of exactly `pages` pages whose narrations wrap over 3 to 7 lines, with rows
    cut by page breaks (at most ~15 rows a page, so 60 pages stay under the schema's 1000)."""
    f = statement_facts(rng, rows=pages * 16)
    for t in f.txns:
        words = [rng.choice(_REMARKS) for _ in range(rng.randint(2, 3))]
        extra = f" {' '.join(words)}"[:280 - len(t.narration)].rsplit(" ", 1)[0]
        t.narration = f"{t.narration}{extra} REF {rng.randint(10**5, 10**9)}"
    f.split_rows = True
    first_top = _header_block(Canvas(pymupdf.open().new_page(width=A4[0], height=A4[1])), f)
    keep = [f.txns[k] for rows in _layout(f, first_top)[:pages] for k in rows]
    if keep and keep[-1].split:
        keep.pop()
    f.txns = keep
    doc = draw_statement(f, rng)
    if f.pages != pages:
        raise RuntimeError(f"a long statement of {f.pages} pages instead of {pages}")
    return f, doc

"""Bank statement (Indian or UK account): header, balances and every transaction row.

Balances are signed: an overdrawn ("Dr") balance is negative, a "Cr" balance positive. Debits
and credits are positive amounts in their own column. Rows are kept in the printed order
(chronological or reverse-chronological; the validator detects which, from the dates or, when
every row has the same date, from the running balances), without brought/carried
forward, opening/closing or page-subtotal rows.
Reconciliation (domain.md section 1.10): opening + credits - debits = closing within 0.01;
each row's running balance exactly; a failing row is reported, never corrected.
Account number and IBAN are masked to their last 4 characters unless the user asks otherwise.
"""

from __future__ import annotations

import re
from datetime import date
from itertools import pairwise
from decimal import Decimal

from pydantic import Field

from . import Issue, checks
from ._common import (CENT, check_dates, close, error, fmt, issues, loc, mask_tail, masker,
                      warning)
from ._types import (AccountNumber, Currency, Date, Iban, Ifsc, Micr, Money, Page, SortCode,
                     Strict, text)

VERSION = "1"
MAX_TRANSACTIONS = 1000

INSTRUCTION = """\
Extract this bank statement: the header fields and every transaction row, across all pages, in
the printed order.
- account_number: digits as printed, no spaces; if partly masked, X for each hidden digit.
- ifsc and micr (India), sort_code as NN-NN-NN and iban (UK): exactly as printed, no spaces.
- currency: ISO code (INR, GBP...).
- period_start, period_end: the statement period, YYYY-MM-DD. Printed dates are day first
  (DD/MM/YYYY, DD-Mon-YY).
- Amounts: plain decimals as strings, no currency sign or thousands separators ("125000.50").
  Balances are signed: a balance marked Dr (overdrawn) is negative, Cr or unmarked positive.
- opening_balance, closing_balance; total_debits, total_credits: only if printed.
- transactions: one object per row. Join a narration that wraps over several lines into one
  description. debit: the withdrawal amount, credit: the deposit amount (one of them per row,
  the other null). balance: the running balance after the row. reference: cheque number or
  reference, if in its own column. page: the page (1-based) where the row is printed.
  Leave out "B/F", "C/F", opening/closing balance lines, page subtotals and repeated headers.
Use null for anything not visible on the document. Never guess or complete a value.
"""


class Transaction(Strict):
    date: Date | None = None
    value_date: Date | None = None
    description: text(300) | None = None
    reference: text(40) | None = None
    debit: Money | None = None
    credit: Money | None = None
    balance: Money | None = None
    page: Page | None = None


class BankStatement(Strict):
    bank_name: text(100) | None = None
    branch: text(150) | None = None
    account_holder: text(150) | None = None
    address: text(400) | None = None
    account_number: AccountNumber | None = None
    ifsc: Ifsc | None = None
    micr: Micr | None = None
    sort_code: SortCode | None = None
    iban: Iban | None = None
    currency: Currency | None = None
    period_start: Date | None = None
    period_end: Date | None = None
    opening_balance: Money | None = None
    closing_balance: Money | None = None
    total_debits: Money | None = None
    total_credits: Money | None = None
    transactions: list[Transaction] = Field(default_factory=list, max_length=MAX_TRANSACTIONS)


Model = BankStatement

_CARRIED = re.compile(r"\b(b/?f|c/?f|brought forward|carried forward|opening balance|"
                      r"closing balance|balance forward)\b", re.IGNORECASE)


def validate(doc: BankStatement, today: date | None = None) -> list[Issue]:
    today = today or date.today()
    found = _identifiers(doc)
    found += _period(doc, today)
    found += _rows(doc)
    found += _reconcile(doc)
    return found


def _identifiers(doc: BankStatement) -> list[Issue]:
    found: list[Issue] = []
    if doc.ifsc is not None:
        found += issues("ifsc", checks.ifsc(doc.ifsc))
    if doc.micr is not None:
        found += issues("micr", checks.micr(doc.micr))
    if doc.sort_code is not None:
        found += issues("sort_code", checks.sort_code(doc.sort_code))
    if doc.iban is not None:
        if "XXXX" in doc.iban:
            found.append(warning("iban", "iban_masked", "the IBAN is masked on the document"))
        else:
            iban_issues = issues("iban", checks.iban(doc.iban))
            found += iban_issues
            if not iban_issues and doc.iban.startswith("GB"):
                found += _iban_matches(doc)
    if doc.account_number is not None and doc.account_number.startswith("X"):
        found.append(warning("account_number", "account_masked",
                             "the account number is masked on the document"))
    return found


def _iban_matches(doc: BankStatement) -> list[Issue]:
    found: list[Issue] = []
    sort = doc.iban[8:14]
    account = doc.iban[14:22]
    if doc.sort_code is not None and doc.sort_code.replace("-", "") != sort:
        found.append(error("sort_code", "iban_mismatch", "the sort code differs from the IBAN's"))
    number = doc.account_number
    if number is not None and not number.startswith("X") and number.zfill(8) != account:
        found.append(error("account_number", "iban_mismatch",
                           "the account number differs from the IBAN's"))
    return found


def _period(doc: BankStatement, today: date) -> list[Issue]:
    found: list[Issue] = []
    start, end = doc.period_start, doc.period_end
    found += check_dates("period_start", start, today=today, earliest=date(1990, 1, 1),
                         what="period start")
    found += check_dates("period_end", end, today=today, earliest=date(1990, 1, 1),
                         what="period end")
    if start and end and start > end:
        found.append(error("period_end", "date_order", "the period ends before it starts"))
    dated = [(i, t.date) for i, t in enumerate(doc.transactions) if t.date is not None]
    for i, d in dated:
        if (start and d < start) or (end and d > end):
            found.append(error(loc("transactions", i, "date"), "date_out_of_period",
                               "the row date is outside the statement period"))
    if len(dated) >= 2:
        ascending = dated[0][1] <= dated[-1][1]
        for (_, a), (j, b) in pairwise(dated):
            if (b < a) if ascending else (b > a):
                found.append(error(loc("transactions", j, "date"), "date_order",
                                   "the row is out of date order"))
    return found


def _reverse(doc: BankStatement) -> bool:
    """Printed newest first? The dates decide when the first and last differ; when every row
    has the same date (or none), the balances do: the order in which more rows follow from the
    row before (and the opening/closing balances) wins; a tie is chronological."""
    dates = [t.date for t in doc.transactions if t.date is not None]
    if len(dates) >= 2 and dates[0] != dates[-1]:
        return dates[0] > dates[-1]
    return _fits(doc, newest_first=True) > _fits(doc, newest_first=False)


def _fits(doc: BankStatement, newest_first: bool) -> int:
    """How many balances follow from the one before in this reading order."""
    rows = list(reversed(doc.transactions)) if newest_first else list(doc.transactions)
    previous = doc.opening_balance
    fits = 0
    for t in rows:
        delta = (t.credit or 0) - (t.debit or 0)
        expected = None if previous is None else previous + delta
        if t.balance is not None and expected is not None and t.balance == expected:
            fits += 1
        previous = t.balance if t.balance is not None else expected
    if rows and doc.closing_balance is not None and rows[-1].balance == doc.closing_balance:
        fits += 1
    return fits


def _rows(doc: BankStatement) -> list[Issue]:
    """One of debit/credit per row, and each running balance against the previous one.
    After a mismatch the next row may chain from the printed or from the computed balance, so
    one misread figure yields one error, on its own row."""
    found: list[Issue] = []
    rows = list(enumerate(doc.transactions))
    if _reverse(doc):
        rows.reverse()
    previous: list[Decimal] = [] if doc.opening_balance is None else [doc.opening_balance]
    for i, t in rows:
        here = loc("transactions", i)
        for name in ("debit", "credit"):
            value = getattr(t, name)
            if value is not None and value < 0:
                found.append(error(loc("transactions", i, name), "amount_negative",
                                   f"a {name} is a positive amount"))
        if t.debit is not None and t.credit is not None and (t.debit != 0 and t.credit != 0):
            found.append(error(here, "debit_and_credit", "a row has a debit or a credit, not both"))
        elif t.debit is None and t.credit is None:
            if t.description and _CARRIED.search(t.description):
                found.append(warning(here, "carried_forward_row",
                                     "a brought/carried forward row is not a transaction"))
            else:
                found.append(error(here, "no_amount", "a row has neither a debit nor a credit"))
        delta = (t.credit or 0) - (t.debit or 0)
        expected = [p + delta for p in previous]
        if t.balance is None:
            previous = expected[:1]
            continue
        if expected and t.balance not in expected:
            found.append(error(loc("transactions", i, "balance"), "running_balance",
                               f"previous balance {fmt(previous[0])} + credit - debit = "
                               f"{fmt(expected[0])}, the row shows {fmt(t.balance)}"))
            previous = [t.balance, expected[0]]
        else:
            previous = [t.balance]
    return found


def _reconcile(doc: BankStatement) -> list[Issue]:
    found: list[Issue] = []
    rows = doc.transactions
    debits = sum((t.debit for t in rows if t.debit is not None), Decimal(0))
    credits = sum((t.credit for t in rows if t.credit is not None), Decimal(0))
    if doc.total_debits is not None and not close(doc.total_debits, debits):
        found.append(error("total_debits", "total_mismatch",
                           f"the rows' debits add up to {fmt(debits)}"))
    if doc.total_credits is not None and not close(doc.total_credits, credits):
        found.append(error("total_credits", "total_mismatch",
                           f"the rows' credits add up to {fmt(credits)}"))
    if doc.opening_balance is not None and doc.closing_balance is not None:
        expected = doc.opening_balance + credits - debits
        if not close(expected, doc.closing_balance, CENT):
            found.append(error("closing_balance", "balance_mismatch",
                               f"opening + credits - debits = {fmt(expected)}, the statement "
                               f"shows {fmt(doc.closing_balance)}"))
            return found
    if rows and doc.closing_balance is not None:
        last = rows[0] if _reverse(doc) else rows[-1]
        if last.balance is not None and last.balance != doc.closing_balance:
            found.append(error("closing_balance", "balance_mismatch",
                               "the closing balance differs from the last row's balance"))
    return found


mask = masker({
    ("account_number",): lambda v: mask_tail(v, ()),
    ("iban",): lambda v: str(v)[:4] + mask_tail(str(v)[4:], ()),
})

"""Long documents read in page windows: the merge rules at page breaks, the default window, and a
generated 40-page statement read back exactly through a fake engine that answers each window
with that window's truth; a fake that drops the row after a page break gets a reconciliation
error naming the break, and the windows around it are asked again."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest
from PIL import Image

from docextract import pipeline, schemas, windows
from docextract.samples import statement, truth

STATEMENT = windows.RULES["bank_statement"]
INVOICE = windows.RULES["invoice"]


def row(date=None, desc=None, debit=None, credit=None, balance=None, page=1):
    return {"date": date, "value_date": date, "description": desc, "reference": None,
            "debit": debit, "credit": credit, "balance": balance, "page": page}


def test_plan_covers_the_pages_in_order():
    assert windows.plan(7, 3) == [(0, 2), (3, 5), (6, 6)]
    assert windows.plan(6, 3) == [(0, 2), (3, 5)]
    assert windows.plan(2, 4) == [(0, 1)]


@pytest.mark.parametrize("a,b,joined", [
    ("UPI/DR/4021/", "AMAZON/ybl", "UPI/DR/4021/AMAZON/ybl"),
    ("NEFT CR-HDFC-", "ACME LTD", "NEFT CR-HDFC-ACME LTD"),
    ("RENT AND MAINTENANCE", "CHARGES", "RENT AND MAINTENANCE CHARGES"),
    ("RENT ", " CHARGES", "RENT CHARGES"),
], ids=["slash", "hyphen", "space", "spaces-trimmed"])
def test_join_text(a, b, joined):
    assert windows.join_text(a, b) == joined


def test_fragment_after_the_break_continues_the_last_row():
    m = windows.merge([[row("2024-04-01", "A", "1.00", None, "9.00"),
                        row("2024-04-02", "UPI/DR/1/", "2.00", None, "7.00", page=1)],
                       [row(None, "SHOP/ybl", page=2), row("2024-04-03", "C", "1.00", None, "6.00", 2)]],
                      STATEMENT)
    assert [r["description"] for r in m.rows] == ["A", "UPI/DR/1/SHOP/ybl", "C"]
    assert m.rows[1]["page"] == 1 and m.origins == [(0, 0), (0, 1), (1, 1)]
    assert m.starts == [0, 2]


def test_fragment_before_the_break_starts_the_first_row_after_it():
    m = windows.merge([[row("2024-04-01", "A", "1.00", None, "9.00"), row(None, "SALARY FOR", page=1)],
                       [row("2024-04-02", "APRIL", None, "5.00", "14.00", page=2)]], STATEMENT)
    assert [r["description"] for r in m.rows] == ["A", "SALARY FOR APRIL"]
    assert m.rows[1]["page"] == 1 and m.rows[1]["credit"] == "5.00"
    assert m.starts == [0, 1] and m.origins[1] == (1, 0)


def test_carried_forward_lines_are_dropped():
    m = windows.merge([[row("2024-04-01", "A", "1.00", None, "9.00"),
                        row(None, "BALANCE CARRIED FORWARD", balance="9.00")],
                       [row(None, "B/F", balance="9.00", page=2),
                        row("2024-04-02", "B", "1.00", None, "8.00", page=2)]], STATEMENT)
    assert [r["description"] for r in m.rows] == ["A", "B"]


def test_a_statement_row_repeated_over_the_break_is_kept_once():
    first = row("2024-04-02", "UPI/DR/1/SHOP", "2.00", None, "7.00")
    again = row("2024-04-02", "UPI/DR/1/SHOP/ybl/Payment", "2.00", None, "7.00", page=2)
    m = windows.merge([[first], [again, row("2024-04-02", "X", "2.00", None, "5.00", 2)]],
                      STATEMENT)
    assert [r["description"] for r in m.rows] == ["UPI/DR/1/SHOP/ybl/Payment", "X"]
    assert m.warnings == []


def test_same_amount_and_date_but_another_balance_is_another_row():
    m = windows.merge([[row("2024-04-02", "T", "2.00", None, "7.00")],
                       [row("2024-04-02", "T", "2.00", None, "5.00", page=2)]], STATEMENT)
    assert len(m.rows) == 2


def test_an_invoice_line_repeated_over_the_break_is_kept_once_with_a_warning():
    line = {"description": "Widget", "quantity": "2", "amount": "10.00", "page": 1}
    other = {"description": "Gadget", "quantity": "1", "amount": "5.00", "page": 2}
    m = windows.merge([[line], [dict(line, page=2), other]], INVOICE)
    assert [r["description"] for r in m.rows] == ["Widget", "Gadget"]
    assert [w[1] for w in m.warnings] == ["repeated_row"]
    # Two different lines are not merged, whatever their description.
    m = windows.merge([[line], [dict(line, amount="12.00", page=2)]], INVOICE)
    assert len(m.rows) == 2 and m.warnings == []


def test_boundary_check_names_the_first_row_after_the_break():
    spans = [(0, 1), (2, 3)]
    rows = [[row("2024-04-01", "A", "1.00", None, "9.00")],
            [row("2024-04-03", "C", "1.00", None, "6.00", page=3)]]
    (found,) = windows.boundary_issues(windows.merge(rows, STATEMENT), spans, STATEMENT)
    assert found[:2] == (1, 1) and "9.00" in found[2] and "8.00" in found[2]
    rows[1][0]["balance"] = "8.00"
    assert windows.boundary_issues(windows.merge(rows, STATEMENT), spans, STATEMENT) == []


@dataclass
class FakePage:
    image: Image.Image
    number: int
    source: str = "fake.pdf"
    sha256: str = "0" * 64


def fake_pages(n: int, size=(64, 96)) -> list[FakePage]:
    return [FakePage(Image.new("RGB", size, "white"), k) for k in range(1, n + 1)]


def test_default_window_fits_the_context():
    spec = schemas.get("bank_statement")
    pages = fake_pages(10, (32 * 32, 32 * 32))  # 1024 image tokens a page
    per_page = 1024 + windows.ANSWER_TOKENS_PER_PAGE
    w = windows.Windowing(None, 1000 + 2 * per_page, lambda text: 1000 - 64)
    assert w.size(spec, pages) == 2
    assert windows.Windowing(None, 10**6, lambda t: 10).size(spec, pages) == windows.WINDOW_CAP
    assert windows.Windowing(None, 10, lambda t: 10).size(spec, pages) == 1
    assert windows.Windowing(3).size(spec, pages) == 3
    assert windows.Windowing(0).size(spec, pages) == 0  # --window 0: one request
    assert windows.Windowing(10).size(spec, pages) == 0  # fits one window
    assert windows.Windowing(3).size(schemas.get("pan"), pages) == 0  # no row list


def window_of(request) -> tuple[int, int]:
    numbers = [int(label.split()[1]) for label in request.image_labels]
    return numbers[0], numbers[-1]


class StatementEngine:
    """Answers the header request with the truth's header fields, and each window with the
    truth rows printed on its pages; `drop` removes rows from a window's answer."""

    name, experts = "fake-model", "bf16"

    def __init__(self, facts, full, drop=None):
        self.facts, self.full, self.drop = facts, full, drop or (lambda first, rows: rows)
        self.batches = []

    def generate(self, requests):
        from docextract.engine.api import Completion

        self.batches.append(list(requests))
        out = []
        for r in requests:
            if "transactions" in r.json_schema["properties"]:
                first, last = window_of(r)
                rows = self.drop(first, truth.statement_window(self.facts, first, last))
                text = json.dumps({"transactions": rows})
            else:
                text = json.dumps({k: v for k, v in self.full.items() if k != "transactions"})
            out.append(Completion(text=text, tokens=[0] * 8, finish_reason="stop",
                                  timings={"prefill_s": 0.001, "decode_s": 0.002}))
        return out


@pytest.fixture(scope="module")
def long40():
    facts, doc = statement.long_statement(random.Random("m14/40"), 40)
    assert doc.page_count == 40
    return facts, truth.statement(facts)


def test_forty_page_statement_is_read_back_exactly_from_its_windows(long40):
    facts, full = long40
    # Rows cut by the page breaks between windows of 3 pages.
    assert sum(1 for t in facts.txns if t.split and t.page % 3 == 0) >= 3
    lines = [len(statement.wrap(t.narration, statement.COLUMNS[1][1] - 6, statement.FONT))
             for t in facts.txns]
    assert min(lines) >= 2 and sum(n >= 4 for n in lines) > len(lines) // 2  # multi-line
    engine = StatementEngine(facts, full)
    record = pipeline.extract(fake_pages(40), schemas.get("bank_statement"), engine, unmask=True,
                              windowing=windows.Windowing(3))
    assert record["errors"] == [] and record["valid"] is True
    assert record["data"] == full
    assert record["windows"] == [[a, min(a + 2, 40)] for a in range(1, 41, 3)]
    assert record["header_pages"] == [1, 40] and record["attempts"] == 1
    # One batch: the header and all 14 windows side by side.
    (batch,) = engine.batches
    assert len(batch) == 15 and record["timing"]["requests"] == 15
    assert record["timing"]["tokens"] == 15 * 8


def test_a_row_dropped_at_a_page_break_is_named_and_its_windows_asked_again(long40):
    facts, full = long40
    # The first page of a window that begins with a whole row (not the rest of a cut one).
    starts = [a for a in range(4, 41, 3) if not facts.txns[
        next(k for k, t in enumerate(facts.txns) if t.page >= a) - 1].split]
    page = starts[0]
    dropped = next(k for k, t in enumerate(facts.txns) if t.page == page)

    def drop(first, rows):
        return rows[1:] if first == page else rows

    engine = StatementEngine(facts, full, drop)
    record = pipeline.extract(fake_pages(40), schemas.get("bank_statement"), engine, unmask=True,
                              windowing=windows.Windowing(3))
    assert record["valid"] is False and record["attempts"] == 2
    boundary = [e for e in record["errors"] if e["type"] == "window_boundary"]
    assert boundary == [{
        "loc": f"transactions[{dropped}]", "type": "window_boundary", "severity": "error",
        "msg": boundary[0]["msg"]}]
    assert f"between page {page - 1} and page {page}" in boundary[0]["msg"]
    # The retry asks again the two windows around that break, naming their rows, and the header
    # (whose totals no longer match the rows).
    first, retry = engine.batches
    assert len(first) == 15
    asked = sorted(window_of(r) for r in retry)
    assert asked == [(1, 40), (page - 3, page - 1), (page, page + 2)]
    after = next(r for r in retry if window_of(r)[0] == page)
    assert "transactions[0]" in after.prompt and "page break" in after.prompt


def test_invoice_lines_are_read_in_windows_and_merged():
    from docextract.samples import generate

    full = generate.make("gst_invoice", 3, 1).truth
    lines = full["lines"]
    assert len(lines) >= 3
    for k, line in enumerate(lines):
        line["page"] = k + 1  # one line a page
    n = len(lines)

    class InvoiceEngine(StatementEngine):
        def generate(self, requests):
            from docextract.engine.api import Completion

            out = []
            for r in requests:
                if list(r.json_schema["properties"]) == ["lines"]:
                    first, last = window_of(r)
                    text = json.dumps({"lines": [ln for ln in lines if first <= ln["page"] <= last]})
                else:
                    text = json.dumps({k: v for k, v in full.items() if k != "lines"})
                out.append(Completion(text=text, tokens=[0], finish_reason="stop"))
            return out

    record = pipeline.extract(fake_pages(n), schemas.get("invoice"), InvoiceEngine(None, full),
                              windowing=windows.Windowing(2))
    assert record["errors"] == [] and record["data"] == full
    assert record["windows"] == [[a, min(a + 1, n)] for a in range(1, n + 1, 2)]

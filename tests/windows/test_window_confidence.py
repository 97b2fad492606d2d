"""Field confidence of a document read in windows: each merged field takes the value tokens of the
answer(s) it was read from, a description joined over a page break those of both parts. The
expected numbers are computed here from the answers' text by string search, not through the
JSON walker the engine side uses."""

from __future__ import annotations

import json
import math
import random

from docextract import pipeline, schemas, windows
from docextract.confidence import leaf_spans
from docextract.engine.api import Completion

from .test_windows import StatementEngine, fake_pages, long40, row  # noqa: F401 (fixture)

STATEMENT = windows.RULES["bank_statement"]


def answer(obj, seed: str) -> Completion:
    """One token per character, each with its own log-probability."""
    text = json.dumps(obj, separators=(",", ":"))
    rng = random.Random(seed)
    lps = [math.log(rng.uniform(0.5, 1.0)) for _ in text]
    return Completion(text=text, tokens=list(range(len(text))), finish_reason="stop",
                      logprobs=lps, forced=[False] * len(text), offsets=list(range(len(text))))


def value_lps(c: Completion, row_obj: dict, key: str) -> list[float]:
    """The log-probabilities of the characters of row_obj[key] inside answer c (the row's JSON is
    found by search; a string's quotes are not value characters)."""
    row_text = json.dumps(row_obj, separators=(",", ":"))
    start = c.text.index(row_text)
    assert c.text.count(row_text) == 1
    shown = json.dumps(row_obj[key], separators=(",", ":"))
    at = start + row_text.index(f'"{key}":{shown}') + len(key) + 3
    if shown.startswith('"'):
        at, shown = at + 1, shown[1:-1]
    return c.logprobs[at:at + len(shown)]


def geo(lps: list[float]) -> float:
    return round(math.exp(sum(lps) / len(lps)), 3)


def test_a_row_joined_over_a_break_takes_both_parts_tokens():
    a = row("2024-04-01", "ALPHA", "1.00", None, "9.00")
    head = row(None, "SALARY FOR", page=1)
    tail = row("2024-04-02", "APRIL", None, "5.00", "14.00", page=2)
    c2 = row("2024-04-03", "GAMMA", "1.00", None, "13.00", page=2)
    header = answer({"bank_name": "TEST BANK", "account_number": "50100012345678"}, "h")
    w0, w1 = answer({"transactions": [a, head]}, "w0"), answer({"transactions": [tail, c2]}, "w1")
    m = windows.merge([[a, head], [tail, c2]], STATEMENT)
    assert [r["description"] for r in m.rows] == ["ALPHA", "SALARY FOR APRIL", "GAMMA"]
    mean, low = windows.field_confidence(header, [w0, w1], m, STATEMENT)

    joined = value_lps(w0, head, "description") + value_lps(w1, tail, "description")
    assert mean["transactions[1].description"] == geo(joined)
    assert low["transactions[1].description"] == round(math.exp(min(joined)), 3)
    # The other fields of the joined row: the date and amounts from the row after the break,
    # the page from the part that starts it.
    assert mean["transactions[1].credit"] == geo(value_lps(w1, tail, "credit"))
    assert mean["transactions[1].date"] == geo(value_lps(w1, tail, "date"))
    assert mean["transactions[1].page"] == geo(value_lps(w0, head, "page"))
    # Rows shifted by the join keep their own tokens; header fields are the header answer's.
    assert mean["transactions[2].balance"] == geo(value_lps(w1, c2, "balance"))
    assert mean["transactions[0].description"] == geo(value_lps(w0, a, "description"))
    hdr = {"bank_name": "TEST BANK", "account_number": "50100012345678"}
    assert mean["account_number"] == geo(value_lps(header, hdr, "account_number"))
    # Null fields get no entry.
    assert "transactions[1].debit" not in mean and "transactions[1].reference" not in mean


def test_a_fragment_after_the_break_and_a_repeated_row():
    a = row("2024-04-02", "UPI/DR/1/", "2.00", None, "7.00", page=1)
    frag = row(None, "SHOP/ybl", page=2)
    b = row("2024-04-03", "C", "1.00", None, "6.00", 2)
    w0, w1 = answer({"transactions": [a]}, "a"), answer({"transactions": [frag, b]}, "b")
    m = windows.merge([[a], [frag, b]], STATEMENT)
    mean, _ = windows.field_confidence(None, [w0, w1], m, STATEMENT)
    assert mean["transactions[0].description"] == geo(value_lps(w0, a, "description")
                                                      + value_lps(w1, frag, "description"))
    assert mean["transactions[0].page"] == geo(value_lps(w0, a, "page"))
    assert mean["transactions[1].date"] == geo(value_lps(w1, b, "date"))

    # The same transaction on both sides of a break, the second with the longer narration.
    short = row("2024-04-02", "NEFT ACME", "2.00", None, "7.00", page=1)
    longer = dict(short, description="NEFT ACME LTD", page=2)
    w0, w1 = answer({"transactions": [short]}, "c"), answer({"transactions": [longer]}, "d")
    m = windows.merge([[short], [longer]], STATEMENT)
    assert len(m.rows) == 1 and m.rows[0]["description"] == "NEFT ACME LTD"
    mean, _ = windows.field_confidence(None, [w0, w1], m, STATEMENT)
    assert mean["transactions[0].description"] == geo(value_lps(w1, longer, "description"))
    assert mean["transactions[0].balance"] == geo(value_lps(w0, short, "balance"))


class ConfidentStatementEngine(StatementEngine):
    """The statement fake, its answers with one token per character and log-probabilities."""

    def generate(self, requests):
        out = []
        for r, c in zip(requests, super().generate(requests)):
            out.append(answer(json.loads(c.text), f"{r.image_labels}"))
        return out


def test_every_field_of_a_forty_page_statement_gets_a_confidence(long40):  # noqa: F811
    facts, full = long40
    record = pipeline.extract(fake_pages(40), schemas.get("bank_statement"),
                              ConfidentStatementEngine(facts, full), unmask=True,
                              windowing=windows.Windowing(3))
    assert record["data"] == full and record["windows"]
    leaves = {p for p, (_, _, v) in leaf_spans(json.dumps(record["data"])).items() if v is not None}
    assert set(record["confidence"]) == leaves == set(record["confidence_min"])
    assert all(0 < record["confidence_min"][p] <= record["confidence"][p] <= 1 for p in leaves)
    # A threshold above every value puts every field on the review list.
    engine = ConfidentStatementEngine(facts, full)
    strict = pipeline.drive(pipeline.extract_flow(
        fake_pages(40), schemas.get("bank_statement"), pipeline.model_info(engine), unmask=True,
        windowing=windows.Windowing(3), review_below=1.0), engine)
    assert {r["loc"] for r in strict["review"]} >= leaves

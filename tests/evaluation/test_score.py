"""Scoring with hand-computed expectations: identity is 100%, each known perturbation gives
exactly the metrics worked out by hand in the comments, and the confidence figures agree with a
direct computation from their definitions."""

from __future__ import annotations

import copy
import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest

from docextract import schemas
from docextract.evaluation import core, dataset, fields as F, score as S

SAMPLES = Path(__file__).parents[2] / "samples" / "data"


def truth(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.truth.json").read_text(encoding="utf-8"))


def case(name: str, schema: str, data, *, truth_data=None, **record) -> dataset.Case:
    c = dataset.Case(name, SAMPLES / f"{name}.truth.json", [])
    c.truth = truth_data if truth_data is not None else truth(name)
    c.schema = schema
    c.record = {"schema": schemas.get(schema).ref, "data": data, "valid": True, "pages": 1,
                **record}
    return c


def identity_cases() -> list[dataset.Case]:
    entries = json.loads((SAMPLES / "manifest.json").read_text())["documents"]
    return [case(e["name"], e["schema"], truth(e["name"]), document_type=e["schema"])
            for e in entries]


def test_predictions_equal_to_truth_score_100_percent_everywhere():
    report = core.score_cases(identity_cases(), auto=True)
    assert report["summary"]["all_right_rate"] == 1.0
    assert report["summary"]["field_accuracy"] == 1.0
    assert report["document_type"]["accuracy"] == 1.0
    for sr in report["schemas"].values():
        assert sr["all_right_rate"] == 1.0
        for f in sr["fields"].values():
            assert f["accuracy"] == 1.0
            assert f["presence"]["fp"] == f["presence"]["fn"] == 0
        for lst in sr["lists"].values():
            assert lst["precision"] == lst["recall"] == 1.0
            assert lst["matched"] == lst["truth_rows"] == lst["pred_rows"] > 0
            assert all(c["accuracy"] == 1.0 for c in lst["columns"].values())
    assert all(d["all_right"] and d["wrong"] == [] for d in report["per_document"])


def pan_pair(change1=None, change2=None):
    """Two PAN documents (4 fields each); `change` edits the first prediction."""
    t1, t2 = truth("pan-s1-001"), truth("pan-s1-002")
    p1, p2 = copy.deepcopy(t1), copy.deepcopy(t2)
    if change1:
        change1(p1)
    if change2:
        change2(p2)
    return [case("pan-s1-001", "pan", p1), case("pan-s1-002", "pan", p2)]


def test_one_wrong_field():
    cases = pan_pair(lambda p: p.update(name="SOMEONE ELSE"))
    r = core.score_cases(cases)["schemas"]["pan"]
    # name: 1 of 2 right; both present on both sides -> tp 2, precision = recall = 1.
    assert r["fields"]["name"]["accuracy"] == 0.5
    assert r["fields"]["name"]["presence"] == {"tp": 2, "fp": 0, "fn": 0, "precision": 1.0,
                                               "recall": 1.0}
    assert r["fields"]["pan"]["accuracy"] == 1.0
    assert r["all_right"] == 1 and r["all_right_rate"] == 0.5
    # 8 field values, 7 right.
    assert core.score_cases(cases)["summary"]["field_accuracy"] == 0.875


def test_null_where_truth_has_a_value_and_a_value_where_truth_is_null():
    def blank(p):
        p["father_name"] = None

    t2 = truth("pan-s1-002")
    t2_null = dict(t2, father_name=None)
    cases = [case("pan-s1-001", "pan", dict(truth("pan-s1-001"), father_name=None)),
             case("pan-s1-002", "pan", dict(t2, father_name="INVENTED"), truth_data=t2_null)]
    f = core.score_cases(cases)["schemas"]["pan"]["fields"]["father_name"]
    # doc 1: truth value, prediction null -> fn; doc 2: truth null, prediction value -> fp.
    assert f["accuracy"] == 0.0
    assert f["presence"] == {"tp": 0, "fp": 1, "fn": 1, "precision": 0.0, "recall": 0.0}
    cases = pan_pair(blank)
    f = core.score_cases(cases)["schemas"]["pan"]["fields"]["father_name"]
    # doc 1 fn, doc 2 tp: precision 1/1, recall 1/2.
    assert f["accuracy"] == 0.5
    assert f["presence"] == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5}


def statement(edit):
    t = truth("bank_statement-s1-001")
    p = copy.deepcopy(t)
    edit(p["transactions"])
    return t, core.score_cases([case("bank_statement-s1-001", "bank_statement", p)])


def test_missing_row():
    t, report = statement(lambda rows: rows.pop(4))
    n = len(t["transactions"])
    lst = report["schemas"]["bank_statement"]["lists"]["transactions"]
    assert (lst["truth_rows"], lst["pred_rows"], lst["matched"]) == (n, n - 1, n - 1)
    assert lst["precision"] == 1.0
    assert lst["recall"] == round((n - 1) / n, 6)
    assert all(c["n"] == n - 1 and c["accuracy"] == 1.0 for c in lst["columns"].values())
    assert report["per_document"][0]["all_right"] is False
    assert report["per_document"][0]["wrong"] == ["transactions: 1 truth row(s) not found"]


def test_extra_row():
    extra = {"date": "2023-02-30", "value_date": None, "description": "NOT ON THE PAGE",
             "reference": None, "debit": "1.00", "credit": None, "balance": "0.00", "page": 1}
    t, report = statement(lambda rows: rows.insert(3, extra))
    n = len(t["transactions"])
    lst = report["schemas"]["bank_statement"]["lists"]["transactions"]
    assert (lst["truth_rows"], lst["pred_rows"], lst["matched"]) == (n, n + 1, n)
    assert lst["precision"] == round(n / (n + 1), 6) and lst["recall"] == 1.0
    assert all(c["accuracy"] == 1.0 for c in lst["columns"].values())
    # The extra row is predicted row 3; the rows after it are matched despite the shift.
    assert report["per_document"][0]["wrong"] == ["transactions[3]"]


def test_swapped_rows_are_matched_by_content_not_position():
    def swap(rows):
        rows[2], rows[5] = rows[5], rows[2]

    _, report = statement(swap)
    lst = report["schemas"]["bank_statement"]["lists"]["transactions"]
    assert lst["precision"] == lst["recall"] == 1.0
    assert all(c["accuracy"] == 1.0 for c in lst["columns"].values())
    assert report["per_document"][0]["all_right"] is True


def test_one_wrong_cell_keeps_its_row_matched():
    def edit(rows):
        rows[6]["balance"] = "1.23"

    t, report = statement(edit)
    n = len(t["transactions"])
    lst = report["schemas"]["bank_statement"]["lists"]["transactions"]
    assert lst["matched"] == n
    assert lst["columns"]["balance"]["accuracy"] == round((n - 1) / n, 6)
    assert lst["columns"]["date"]["accuracy"] == 1.0
    assert report["per_document"][0]["wrong"] == ["transactions[6].balance"]


def test_a_record_of_another_type_predicts_nothing():
    c = case("pan-s1-001", "pan", {"aadhaar_number": None})
    c.record["schema"] = schemas.get("aadhaar").ref
    c.record["document_type"] = "aadhaar"
    report = core.score_cases([c], auto=True)
    assert report["document_type"] == {"accuracy": 0.0, "confusion": {"pan": {"aadhaar": 1}}}
    f = report["schemas"]["pan"]["fields"]
    assert all(v["accuracy"] == 0.0 and v["presence"]["fn"] == 1 for v in f.values())


@pytest.mark.parametrize("kind,truth_value,pred,same", [
    ("decimal", "118000.50", "118000.5", True),
    ("decimal", "1,18,000.50", "118000.5", True),
    ("decimal", "₹ 1,18,000.50", "118000.50", True),
    ("decimal", "118000.50", "118000.05", False),
    ("decimal", 3, "3.00", True),
    ("date", "05/03/2024", "2024-03-05", True),
    ("date", "5 March 2024", "2024-03-05", True),
    ("date", "05-Mar-2024", "2024-05-03", False),
    ("identifier", "27AAPFU 0939F1ZV", "27aapfu0939f1zv", True),
    ("identifier", "27AAPFU0939F1ZV", "27AAPFU0939F1ZW", False),
    ("text", "Caf\u00e9  Mumbai ", "CAFE\u0301 mumbai", True),
    ("text", "Ravi Kumar", "Ravi  Kumari", False),
    ("text", "   ", None, True),
    ("boolean", False, None, False),
])
def test_normalisation(kind, truth_value, pred, same):
    assert F.same(truth_value, pred, kind) is same


def test_field_kinds_come_from_the_json_schema():
    lay = F.layout(schemas.get("invoice").json_schema)
    kinds = {c.path: c.kind for c in lay.scalars}
    assert kinds["invoice_date"] == "date" and kinds["grand_total"] == "decimal"
    assert kinds["supplier.gstin"] == "identifier" and kinds["invoice_number"] == "identifier"
    assert kinds["supplier.name"] == "text" and kinds["reverse_charge"] == "boolean"
    (lines,) = lay.lists
    assert lines.path == "lines" and lines.keys == F.ROW_KEYS["lines"]
    assert {c.path: c.kind for c in lines.columns}["tax_rate"] == "decimal"


def test_hungarian_equals_brute_force():
    rng = random.Random(7)
    for _ in range(200):
        n, m = rng.randint(1, 5), rng.randint(1, 5)
        cost = np.array([[rng.randint(0, 9) for _ in range(m)] for _ in range(n)], float)
        pairs = S.hungarian(cost)
        assert len(pairs) == min(n, m)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
        if n <= m:
            best = min(sum(cost[i, p[i]] for i in range(n))
                       for p in itertools.permutations(range(m), n))
        else:
            best = min(sum(cost[p[j], j] for j in range(m))
                       for p in itertools.permutations(range(n), m))
        assert sum(cost[i, j] for i, j in pairs) == best


# ---- confidence ----

TABLE = [(0.95, True), (0.92, True), (0.91, False), (0.85, True), (0.62, False), (0.62, True),
         (0.30, False), (0.05, False), (1.0, True)]


def test_auroc_equals_the_pairwise_definition():
    scores, labels = [s for s, _ in TABLE], [y for _, y in TABLE]
    pos = [s for s, y in TABLE if y]
    neg = [s for s, y in TABLE if not y]
    pairs = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    assert S.auroc(scores, labels) == pytest.approx(pairs / (len(pos) * len(neg)))
    # By hand: 5 right x 4 wrong = 20 pairs; 0.95, 0.92 and 1.0 beat all 4 (12), 0.85 beats 3
    # (not 0.91), 0.62 beats 0.30 and 0.05 and ties 0.62 (2.5): 17.5.
    assert pairs == 17.5
    assert S.auroc([0.9, 0.8], [True, True]) is None


def test_ece_in_ten_bins_by_hand():
    scores, labels = [s for s, _ in TABLE], [y for _, y in TABLE]
    ece, bins = S.reliability(scores, labels)
    # bins: [0.0,0.1): 0.05 wrong -> |0 - 0.05| ; [0.3,0.4): 0.30 wrong -> 0.30;
    # [0.6,0.7): 0.62 x2, one right -> |0.5 - 0.62| = 0.12; [0.8,0.9): 0.85 right -> 0.15;
    # [0.9,1.0]: 0.95, 0.92, 0.91, 1.0 -> accuracy 3/4, confidence 0.945 -> 0.195.
    by_hand = (1 * 0.05 + 1 * 0.30 + 2 * 0.12 + 1 * 0.15 + 4 * 0.195) / 9
    assert ece == pytest.approx(by_hand, abs=1e-6)
    assert [b["n"] for b in bins] == [1, 0, 0, 1, 0, 0, 2, 0, 1, 4]


def test_review_tradeoff_and_record_review():
    items = [(s, y) for s, y in TABLE]
    rep = S.confidence_report(items, [True, False], 0.9,
                              reviewed=[False, False, True, True, True, True, True, True, False])
    cur = next(t for t in rep["tradeoff"] if t["current"])
    # below 0.9: 0.85, 0.62, 0.62, 0.30, 0.05 -> 5 of 9 reviewed; kept 0.95, 0.92, 0.91, 1.0:
    # 3 of 4 right.
    assert (cur["threshold"], cur["review_share"], cur["kept_accuracy"]) == (0.9, round(5 / 9, 6),
                                                                             0.75)
    assert rep["record_review"] == {"review_share": round(6 / 9, 6), "kept_accuracy": 1.0,
                                    "kept": 3, "reviewed": 6}
    assert rep["without_confidence"] == {"fields": 2, "wrong": 1}


def test_confidence_from_records_and_threshold_from_the_record():
    cases = pan_pair(lambda p: p.update(name="SOMEONE ELSE"))
    cases[0].record |= {"confidence": {"pan": 0.99, "name": 0.4, "father_name": 0.97,
                                       "date_of_birth": 0.95},
                        "review": [{"loc": "name", "reasons": ["low_confidence"]}],
                        "needs_review": True, "review_below": 0.5}
    report = core.score_cases(cases)
    c = report["confidence"]
    # Only document 1 has confidence: 4 fields, the one wrong (name) has the lowest -> AUROC 1.
    assert (c["fields"], c["right"], c["auroc"]) == (4, 3, 1.0)
    assert (c["threshold"], c["threshold_from"]) == (0.5, "record (review_below)")
    assert c["record_review"] == {"review_share": 0.25, "kept_accuracy": 1.0, "kept": 3,
                                  "reviewed": 1}
    assert report["schemas"]["pan"]["needs_review_rate"] == 1.0
    cases[0].record.pop("review_below")
    assert core.score_cases(cases, 0.8)["confidence"]["threshold_from"] == "--review-below"
    assert core.score_cases(cases)["confidence"]["threshold"] == 0.9


def test_row_confidence_uses_the_predicted_row_index():
    t = truth("bank_statement-s1-001")
    p = copy.deepcopy(t)
    p["transactions"][0], p["transactions"][1] = p["transactions"][1], p["transactions"][0]
    p["transactions"][0]["balance"] = "9.99"  # truth row 1, predicted first, balance wrong
    c = case("bank_statement-s1-001", "bank_statement", p,
             confidence={"transactions[0].balance": 0.2, "transactions[1].balance": 0.8})
    rep = core.score_cases([c])["confidence"]
    assert (rep["fields"], rep["right"], rep["auroc"]) == (2, 1, 1.0)


def test_masked_records_are_compared_masked():
    t = truth("aadhaar-s1-001")
    masked, paths = schemas.get("aadhaar").mask(t)
    assert "aadhaar_number" in paths
    c = case("aadhaar-s1-001", "aadhaar", masked, masked=paths)
    assert core.score_cases([c])["summary"]["all_right_rate"] == 1.0


def test_speed_from_timings():
    recs = [{"pages": 2, "timing": {"ingest_s": 0.5, "prefill_s": 1.0, "decode_s": 2.5,
                                    "tokens": 100}},
            {"pages": 1, "timing": {"ingest_s": 0.5, "detect_s": 0.5, "prefill_s": 0.5,
                                    "decode_s": 2.5, "tokens": 50}},
            {"pages": 0, "data": None}]
    sp = S.speed(recs, wall_s=5.0, fresh=recs[:2])
    # 8 s in all for 2 documents, 3 pages, 150 tokens; decode 5 s.
    assert (sp["documents"], sp["pages"], sp["tokens"], sp["seconds"]) == (2, 3, 150, 8.0)
    assert (sp["documents_per_s"], sp["pages_per_s"], sp["tokens_per_s"]) == (0.25, 0.375, 18.75)
    assert (sp["decode_tokens_per_s"], sp["seconds_per_page"]) == (30.0, round(8 / 3, 6))
    assert sp["wall"]["documents_per_s"] == 0.4 and sp["wall"]["seconds_per_page"] == round(5 / 3, 6)


def test_map_renames_user_keys_to_schema_paths():
    user = {"PAN No": "ABCPK1234L", "Holder": {"Name": "RAVI"},
            "txns": [{"Bal": "1.00", "When": "2024-01-01"}, {"Bal": "2.00"}]}
    mapping = {"PAN No": "pan", "Holder.Name": "name", "txns": "transactions",
               "txns[].Bal": "transactions[].balance"}
    assert F.apply_map(user, mapping) == {
        "pan": "ABCPK1234L", "name": "RAVI",
        "transactions": [{"balance": "1.00", "When": "2024-01-01"}, {"balance": "2.00"}]}

"""Long bank statements from the generator: exact page count, rows cut by page breaks, and the
command line's --long with photos (one photo per page, one document)."""

from __future__ import annotations

import json

import pytest

from docextract.console import Console
from docextract.samples import generate, statement, truth
from docextract.windows import join_text


def test_long_statement_has_the_pages_asked_and_valid_truth():
    sample = generate.make_long(5, 6)
    assert sample.doc.page_count == 6 and sample.facts.pages == 6
    assert truth.check("bank_statement", sample.truth).valid
    assert {r["page"] for r in sample.truth["transactions"]} == set(range(1, 7))
    assert generate.make_long(5, 6).truth == sample.truth  # seeded


def test_cut_rows_print_their_narration_on_both_pages():
    sample = generate.make_long(2, 8)
    cut = [t for t in sample.facts.txns if t.split]
    assert cut, "an 8-page long statement has rows cut by a page break"
    for t in cut:
        head, tail = statement.narration_parts(t, t.split)
        assert join_text(head, tail) == t.narration
        before = sample.doc[t.page - 1].get_text()
        after = sample.doc[t.page].get_text()
        first_line = statement.wrap(tail, statement.COLUMNS[1][1] - 6, statement.FONT)[0]
        assert head.split()[-1] in before and tail.split()[0] in after
        assert first_line.split()[0] in after
    # Per-window truth: the rows of pages 1..k and k+1..8 merge back to the statement's rows.
    k = cut[0].page
    left = truth.statement_window(sample.facts, 1, k)
    right = truth.statement_window(sample.facts, k + 1, 8)
    assert left[-1]["description"] != sample.truth["transactions"][len(left) - 1]["description"]
    assert right[0]["date"] is None and right[0]["balance"] is None


def test_cli_long_with_photos(tmp_path):
    code = generate.main(["--out", str(tmp_path), "--types", "pan", "--count", "0", "--long", "3",
                          "--photos"], console=Console(progress_enabled=False))
    assert code == 0
    docs = json.loads((tmp_path / "manifest.json").read_text())["documents"]
    assert [(d["name"], d["form"], d["pages"]) for d in docs] == [
        ("bank_statement-s0-long-3", "pdf", 3), ("bank_statement-s0-long-3-photo", "photo", 3)]
    assert docs[1]["files"] == [f"bank_statement-s0-long-3-photo-p{k}.jpg" for k in (1, 2, 3)]
    assert all((tmp_path / f).is_file() for d in docs for f in d["files"])


@pytest.mark.parametrize("pages", ["1", "61"])
def test_cli_long_page_count_out_of_range_is_usage(tmp_path, pages):
    code = generate.main(["--out", str(tmp_path), "--count", "0", "--long", pages],
                         console=Console(progress_enabled=False))
    assert code == 2

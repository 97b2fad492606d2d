"""A UK VAT invoice's total VAT must equal the sum of its lines' VAT."""

import json
from decimal import Decimal
from pathlib import Path

from docextract import schemas

TRUTH = Path(__file__).parents[2] / "samples" / "data" / "vat_invoice-s1-001.truth.json"


def test_vat_total_must_match_the_lines():
    spec = schemas.get("invoice")
    data = json.loads(TRUTH.read_text())
    assert spec.validate(data).valid
    # Inflate both the VAT total and the grand total: the grand-total rule alone cannot see it.
    for key in ("tax_total", "grand_total"):
        data[key] = str(Decimal(data[key]) + 10)
    result = spec.validate(data)
    assert not result.valid
    assert [(i.loc, i.type) for i in result.issues if i.severity == "error"] == [("tax_total", "tax_total")]

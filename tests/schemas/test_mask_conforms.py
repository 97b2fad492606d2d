"""Masking never turns a schema-conforming value into one the schema rejects."""

import json
from pathlib import Path

import jsonschema
import pytest

from docextract import schemas

TRUTH = Path(__file__).parents[2] / "samples" / "data" / "bank_statement-s1-001.truth.json"


@pytest.mark.parametrize("number", ["1234", "12345", "X1234", "123456789012"])
def test_masked_account_numbers_still_conform(number):
    spec = schemas.get("bank_statement")
    data = json.loads(TRUTH.read_text())
    data["account_number"] = number
    jsonschema.validate(data, spec.json_schema)
    masked, _ = spec.mask(data)
    jsonschema.validate(masked, spec.json_schema)
    assert masked["account_number"][-4:] == number[-4:]
    assert masked["account_number"].count("X") == len(number) - 4

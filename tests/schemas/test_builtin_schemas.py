"""The JSON Schemas the decoder is constrained by: bounds on every string and array, patterns on
identifiers, dates and money, closed objects with every key required; they compile with
llguidance, its grammar accepts valid records (masked ones too) and rejects malformed ones, and
they agree with an independent JSON Schema validator."""

from __future__ import annotations

import json

import jsonschema
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from docextract import schemas
from docextract.schemas import _types
from docextract.schemas._jsonschema import subschemas

IDENTIFIER_PATTERNS = {
    "aadhaar_number": _types.AADHAAR, "vid": _types.VID, "pan": _types.PAN,
    "gstin": _types.GSTIN, "ifsc": _types.IFSC, "micr": _types.MICR,
    "vat_number": _types.UK_VAT, "iban": _types.IBAN, "sort_code": _types.SORT_CODE,
    "account_number": _types.ACCOUNT_NUMBER, "pincode": _types.PINCODE,
    "currency": _types.CURRENCY, "hsn_sac": _types.HSN_SAC, "state_code": _types.STATE_CODE,
    "place_of_supply_code": _types.STATE_CODE,
}
DATE_FIELDS = {"date_of_birth", "issue_date", "date", "value_date", "period_start", "period_end",
               "invoice_date", "due_date", "tax_point_date"}
MONEY_FIELDS = {"opening_balance", "closing_balance", "total_debits", "total_credits", "debit",
                "credit", "balance", "discount", "amount", "cgst_amount", "sgst_amount",
                "igst_amount", "cess_amount", "tax_amount", "total", "taxable_value", "cgst_total",
                "sgst_total", "igst_total", "cess_total", "tax_total", "round_off", "grand_total"}
COMPACT = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}


def non_null(prop: dict, root: dict) -> dict:
    """The non-null branch of a nullable property, with a $ref resolved."""
    if "anyOf" in prop:
        branches = [b for b in prop["anyOf"] if b.get("type") != "null"]
        assert len(branches) == 1 and len(prop["anyOf"]) == 2
        prop = branches[0]
    if "$ref" in prop:
        prop = root["$defs"][prop["$ref"].rsplit("/", 1)[1]]
    return prop


@pytest.mark.parametrize("name", schemas.BUILTIN)
def test_every_string_and_array_is_bounded_and_every_key_required(name):
    schema = schemas.get(name).json_schema
    seen_strings = 0
    for path, sub in subschemas(schema):
        assert not {"title", "default", "description"} & sub.keys(), path
        if sub.get("type") == "string":
            seen_strings += 1
            assert isinstance(sub.get("maxLength"), int) or "enum" in sub, path
            assert sub.get("maxLength", 0) <= 400, path
        if sub.get("type") == "array":
            assert isinstance(sub.get("maxItems"), int), path
        if sub.get("type") == "integer":
            assert "minimum" in sub and "maximum" in sub, path
        if sub.get("type") == "object":
            assert sub["additionalProperties"] is False, path
            assert sub["required"] == list(sub["properties"]), path
        assert sub.get("type") != "number", f"{path}: money and numbers are decimal strings"
    assert seen_strings >= 4
    assert "$ref" not in json.dumps(schema) or "$defs" in schema


@pytest.mark.parametrize("name", schemas.BUILTIN)
def test_identifiers_dates_and_money_have_patterns(name):
    schema = schemas.get(name).json_schema
    checked = 0
    for path, sub in subschemas(schema):
        for key, prop in sub.get("properties", {}).items():
            target = non_null(prop, schema)
            if key in IDENTIFIER_PATTERNS:
                assert target["pattern"] == IDENTIFIER_PATTERNS[key], f"{path}/{key}"
                checked += 1
            elif key in DATE_FIELDS:
                assert target["pattern"] == _types.DATE, f"{path}/{key}"
                checked += 1
            elif key in MONEY_FIELDS:
                assert target["pattern"] == _types.MONEY, f"{path}/{key}"
                checked += 1
    assert checked >= 2


def test_array_bounds_meet_the_issue():
    statement = schemas.get("bank_statement").json_schema
    invoice = schemas.get("invoice").json_schema
    assert statement["properties"]["transactions"]["maxItems"] >= 500
    assert invoice["properties"]["lines"]["maxItems"] >= 200


def test_closed_values_are_enums():
    invoice = schemas.get("invoice").json_schema["properties"]
    assert invoice["tax_regime"]["enum"] == ["in_gst", "uk_vat", "other"]
    assert "enum" in non_null(invoice["document_type"], {})
    assert "enum" in non_null(schemas.get("aadhaar").json_schema["properties"]["gender"], {})


def test_schemas_stay_compact():
    # The model reads the schema in its prompt.
    for name in schemas.BUILTIN:
        size = len(json.dumps(schemas.get(name).json_schema, separators=(",", ":")))
        assert size < 6000, name


@pytest.fixture(scope="module")
def llg():
    llguidance = pytest.importorskip("llguidance")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(['{"name":null,"amount":"1250.50","date":"2024-04-05"}'] * 10,
                            trainer)
    return llguidance, llguidance.LLTokenizer(tok.to_str())


@pytest.mark.parametrize("name", schemas.BUILTIN)
def test_compiles_with_llguidance(llg, name):
    llguidance, tokenizer = llg
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schemas.get(name).json_schema,
                                                            overrides=COMPACT)
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    assert not is_error and messages == []


def accepts(llg, schema: dict, record: dict) -> bool:
    llguidance, tokenizer = llg
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=COMPACT)
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    tokens = tokenizer.tokenize_str(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    if matcher.validate_tokens(tokens) != len(tokens):
        return False
    matcher.consume_tokens(tokens)
    return matcher.is_accepting()


@pytest.mark.parametrize("key", ["aadhaar", "pan", "bank_statement", "invoice", "uk_invoice"])
def test_llguidance_accepts_valid_and_masked_records(llg, docs, key):
    spec = schemas.get("invoice" if key == "uk_invoice" else key)
    assert accepts(llg, spec.json_schema, docs[key])
    masked, _ = spec.mask(docs[key])
    assert accepts(llg, spec.json_schema, masked)


@pytest.mark.parametrize("key,field,bad", [
    ("aadhaar", "aadhaar_number", "134123412346"), ("aadhaar", "aadhaar_number", "2341 2341 2346"),
    ("aadhaar", "date_of_birth", "14/07/1990"), ("pan", "pan", "acupa7085r"),
    ("bank_statement", "ifsc", "SBIN1061100"), ("bank_statement", "opening_balance", "10,000.00"),
    ("bank_statement", "opening_balance", "1e4"), ("invoice", "tax_regime", "gst"),
    ("invoice", "grand_total", 4951.0),
])
def test_llguidance_rejects_malformed_fields(llg, docs, key, field, bad):
    record = dict(docs[key], **{field: bad})
    assert not accepts(llg, schemas.get(key).json_schema, record)
    assert jsonschema.Draft202012Validator(schemas.get(key).json_schema).is_valid(record) is False


@pytest.mark.parametrize("key", ["aadhaar", "pan", "bank_statement", "invoice", "uk_invoice"])
def test_independent_validator_agrees_on_valid_and_masked(docs, key):
    spec = schemas.get("invoice" if key == "uk_invoice" else key)
    validator = jsonschema.Draft202012Validator(spec.json_schema)
    assert validator.is_valid(docs[key])
    assert validator.is_valid(spec.mask(docs[key])[0])
    missing = dict(docs[key])
    missing.popitem()
    assert not validator.is_valid(missing)
    assert not validator.is_valid(dict(docs[key], extra=None))

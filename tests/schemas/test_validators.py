"""Domain validation of each built-in schema through `Spec.validate`: valid documents pass, each
rule fires with its stable code on the right field path, and nothing raises on any input."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docextract import schemas
from docextract.schemas import CODES


def check(name: str, doc: dict):
    result = schemas.get(name).validate(json.dumps(doc))
    assert {i.type for i in result.issues} <= set(CODES)
    return result


def codes(result) -> set[tuple[str, str, str]]:
    return {(i.loc, i.type, i.severity) for i in result.issues}


@pytest.mark.parametrize("key", ["aadhaar", "pan", "bank_statement", "invoice", "uk_invoice"])
def test_valid_documents_pass_without_findings(docs, key):
    result = check("invoice" if key == "uk_invoice" else key, docs[key])
    assert result.valid and result.issues == []
    assert result.data == docs[key]


def test_aadhaar_rules(docs):
    doc = docs["aadhaar"]
    assert codes(check("aadhaar", dict(doc, aadhaar_number="234123412347"))) == {
        ("aadhaar_number", "aadhaar_checksum", "error")}
    assert codes(check("aadhaar", dict(doc, vid="2341234123412342"))) == {
        ("vid", "vid_checksum", "error")}
    masked = check("aadhaar", dict(doc, aadhaar_number="XXXX XXXX 2346", vid=None))
    assert masked.valid and codes(masked) == {("aadhaar_number", "aadhaar_masked", "warning")}
    missing = check("aadhaar", dict(doc, aadhaar_number=None))
    assert missing.valid and ("aadhaar_number", "missing_field", "warning") in codes(missing)
    future = (date.today() + timedelta(days=3)).isoformat()
    assert ("date_of_birth", "date_future", "error") in codes(
        check("aadhaar", dict(doc, date_of_birth=future)))
    assert codes(check("aadhaar", dict(doc, year_of_birth=1991))) == {
        ("year_of_birth", "dob_mismatch", "error")}
    assert codes(check("aadhaar", dict(doc, issue_date="1989-01-01"))) >= {
        ("issue_date", "date_order", "error"), ("issue_date", "date_implausible", "warning")}
    assert codes(check("aadhaar", dict(doc, date_of_birth="1990-02-30"))) == {
        ("date_of_birth", "date_invalid", "error")}


def test_pan_rules(docs):
    doc = docs["pan"]
    mismatch = check("pan", dict(doc, name="Rahul Kumar Sharma"))
    assert mismatch.valid and codes(mismatch) == {("pan", "pan_name_mismatch", "warning")}
    assert codes(check("pan", dict(doc, pan="ACUXA7085R"))) == {("pan", "pan_holder_type", "error")}
    assert codes(check("pan", dict(doc, pan="ACUPA0000R"))) == {("pan", "pan_serial", "error")}
    masked = check("pan", dict(doc, pan="ACUPAXXXXR"))
    assert masked.valid and codes(masked) == {("pan", "pan_masked", "warning")}


def statement_with(doc, row, **changes):
    doc = copy.deepcopy(doc)
    doc["transactions"][row].update(changes)
    return doc


def test_statement_misread_balance_is_pinned_to_its_row(docs):
    bad = statement_with(docs["bank_statement"], 1, balance="58794.50")
    assert codes(check("bank_statement", bad)) == {
        ("transactions[1].balance", "running_balance", "error")}


def test_statement_misread_amount_is_pinned_to_its_row(docs):
    bad = statement_with(docs["bank_statement"], 1, debit="1205.50")
    assert codes(check("bank_statement", bad)) == {
        ("transactions[1].balance", "running_balance", "error"),
        ("total_debits", "total_mismatch", "error"),
        ("closing_balance", "balance_mismatch", "error")}


def test_statement_dr_balance_written_positive_fails(docs):
    bad = statement_with(docs["bank_statement"], 2, balance="11250.50")
    assert ("transactions[2].balance", "running_balance", "error") in codes(
        check("bank_statement", bad))


def test_statement_reverse_chronological_is_valid(docs):
    doc = copy.deepcopy(docs["bank_statement"])
    doc["transactions"].reverse()
    result = check("bank_statement", doc)
    assert result.valid and result.issues == []
    doc["transactions"][0]["balance"] = "8749.51"
    assert ("transactions[0].balance", "running_balance", "error") in codes(
        check("bank_statement", doc))


def test_statement_row_rules(docs):
    doc = docs["bank_statement"]
    both = statement_with(doc, 0, debit="5.00")
    assert ("transactions[0]", "debit_and_credit", "error") in codes(check("bank_statement", both))
    neither = statement_with(doc, 3, credit=None)
    assert ("transactions[3]", "no_amount", "error") in codes(check("bank_statement", neither))
    negative = statement_with(doc, 1, debit="-1250.50", balance="61250.50")
    assert ("transactions[1].debit", "amount_negative", "error") in codes(
        check("bank_statement", negative))
    outside = statement_with(doc, 3, date="2024-05-02")
    assert ("transactions[3].date", "date_out_of_period", "error") in codes(
        check("bank_statement", outside))
    unordered = statement_with(doc, 1, date="2024-04-15")
    assert ("transactions[2].date", "date_order", "error") in codes(
        check("bank_statement", unordered))


def test_statement_carried_forward_row_is_a_warning(docs):
    doc = copy.deepcopy(docs["bank_statement"])
    doc["transactions"].insert(2, dict(doc["transactions"][1], debit=None, description="C/F",
                                       reference=None))
    doc["total_debits"] = None
    result = check("bank_statement", doc)
    assert result.valid and codes(result) == {("transactions[2]", "carried_forward_row",
                                               "warning")}


def test_statement_totals_and_period(docs):
    doc = docs["bank_statement"]
    assert codes(check("bank_statement", dict(doc, closing_balance="8750.50"))) == {
        ("closing_balance", "balance_mismatch", "error")}
    assert ("period_end", "date_order", "error") in codes(
        check("bank_statement", dict(doc, period_end="2024-03-31")))
    assert codes(check("bank_statement", dict(doc, total_credits="70000.10"))) == {
        ("total_credits", "total_mismatch", "error")}


def test_statement_uk_identifiers(docs):
    doc = dict(docs["bank_statement"], ifsc=None, micr=None, currency="GBP",
               iban="GB82WEST12345698765432", sort_code="12-34-56", account_number="98765432")
    assert check("bank_statement", doc).issues == []
    assert codes(check("bank_statement", dict(doc, sort_code="12-34-57"))) == {
        ("sort_code", "iban_mismatch", "error")}
    assert codes(check("bank_statement", dict(doc, account_number="98765433"))) == {
        ("account_number", "iban_mismatch", "error")}
    assert codes(check("bank_statement", dict(doc, iban="GB82WEST12345698765433"))) == {
        ("iban", "iban_checksum", "error")}
    masked = check("bank_statement", dict(doc, account_number="XXXX5432"))
    assert masked.valid and codes(masked) == {("account_number", "account_masked", "warning")}


def invoice_with(doc, **changes):
    doc = copy.deepcopy(doc)
    for path, value in changes.items():
        node = doc
        parts = path.split("__")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node[p]
        node[parts[-1]] = value
    return doc


def test_invoice_line_arithmetic(docs):
    doc = docs["invoice"]
    assert codes(check("invoice", invoice_with(doc, lines__0__quantity="11"))) == {
        ("lines[0].amount", "line_amount", "error")}
    assert codes(check("invoice", invoice_with(doc, lines__1__cgst_amount="47.60",
                                               lines__1__sgst_amount="47.60",
                                               cgst_total="273.05", sgst_total="273.05",
                                               tax_total="546.10", round_off="-0.10"))) == {
        ("lines[1].cgst_amount", "line_tax", "error"),
        ("lines[1].sgst_amount", "line_tax", "error")}
    assert codes(check("invoice", invoice_with(doc, lines__0__total="2955.99"))) == {
        ("lines[0].total", "line_total", "error")}
    huge = invoice_with(doc, lines__0__quantity="999999999999.9999",
                        lines__0__unit_price="99999999999999.9999")
    assert codes(check("invoice", huge)) == {("lines[0].amount", "line_amount", "error")}


def test_invoice_totals(docs):
    doc = docs["invoice"]
    assert codes(check("invoice", invoice_with(doc, taxable_value="4450.00"))) == {
        ("taxable_value", "taxable_total", "error"), ("grand_total", "grand_total", "error")}
    assert codes(check("invoice", invoice_with(doc, grand_total="4961.00"))) == {
        ("grand_total", "grand_total", "error"), ("amount_in_words", "amount_in_words", "error")}
    assert codes(check("invoice", invoice_with(doc, tax_total="545.00"))) == {
        ("tax_total", "tax_total", "error"), ("grand_total", "grand_total", "error")}
    assert ("round_off", "round_off", "error") in codes(
        check("invoice", invoice_with(doc, round_off="1.10", grand_total="4952.00")))
    assert codes(check("invoice", invoice_with(
        doc, amount_in_words="Rupees Four Thousand Nine Hundred Fifteen Only"))) == {
        ("amount_in_words", "amount_in_words", "error")}


def inter_state(doc):
    """The same invoice billed to Haryana: IGST instead of CGST + SGST."""
    doc = invoice_with(doc, place_of_supply="Haryana", place_of_supply_code="06",
                       buyer__gstin="06AABCO6063D1ZQ", cgst_total=None, sgst_total=None,
                       igst_total="545.90")
    for line in doc["lines"]:
        line["igst_amount"] = f"{float(line['cgst_amount']) * 2:.2f}"
        line["cgst_amount"] = line["sgst_amount"] = None
    doc["lines"][0]["total"] = None
    return doc


def test_invoice_gst_split(docs):
    doc = inter_state(docs["invoice"])
    assert check("invoice", doc).issues == []
    with_cgst = invoice_with(doc, cgst_total="272.95", sgst_total="272.95", igst_total=None)
    assert ("cgst_total", "tax_split", "error") in codes(check("invoice", with_cgst))
    sez = invoice_with(doc, place_of_supply_code="27", buyer__gstin="27AABCO6063D1ZM")
    result = check("invoice", sez)
    assert result.valid and codes(result) == {("igst_total", "tax_split", "warning")}
    unequal = invoice_with(docs["invoice"], sgst_total="272.96", tax_total="545.91",
                           round_off="0.09")
    assert ("sgst_total", "tax_split", "error") in codes(check("invoice", unequal))


def test_invoice_identifiers_and_dates(docs):
    doc = docs["invoice"]
    assert codes(check("invoice", invoice_with(doc, buyer__gstin="27AABCO6063D1ZN"))) == {
        ("buyer.gstin", "gstin_checksum", "error")}
    assert codes(check("invoice", invoice_with(doc, supplier__state_code="29"))) == {
        ("supplier.state_code", "state_code", "error")}
    assert codes(check("invoice", invoice_with(doc, due_date="2024-06-01"))) == {
        ("due_date", "date_order", "error")}
    future = (date.today() + timedelta(days=30)).isoformat()
    result = check("invoice", invoice_with(doc, invoice_date=future, due_date=None))
    assert result.valid and ("invoice_date", "date_future", "warning") in codes(result)
    assert codes(check("invoice", invoice_with(doc, invoice_date="2016-01-05"))) == {
        ("invoice_date", "date_implausible", "warning")}
    assert codes(check("invoice", invoice_with(docs["uk_invoice"],
                                               supplier__vat_number="GB980780685"))) == {
        ("supplier.vat_number", "vat_number_checksum", "error")}


def test_invoice_rate_slabs_depend_on_the_date(docs):
    doc = docs["invoice"]
    assert codes(check("invoice", invoice_with(doc, lines__0__tax_rate="17"))) >= {
        ("lines[0].tax_rate", "tax_rate_unusual", "warning")}
    after = invoice_with(doc, invoice_date="2025-10-01", due_date=None)
    assert check("invoice", after).issues == []
    after = invoice_with(after, lines__0__tax_rate="28", lines__0__cgst_amount="350.70",
                         lines__0__sgst_amount="350.70", lines__0__total=None,
                         cgst_total="398.20", sgst_total="398.20", tax_total="796.40",
                         round_off="-0.40", grand_total="5201.00", amount_in_words=None)
    assert codes(check("invoice", after)) == {("lines[0].tax_rate", "tax_rate_unusual", "warning")}


def test_uk_invoice_vat(docs):
    doc = docs["uk_invoice"]
    assert codes(check("invoice", invoice_with(doc, lines__0__tax_amount="260.00",
                                               tax_total="264.00", grand_total="1694.00",
                                               amount_in_words=None))) == {
        ("lines[0].tax_amount", "line_tax", "error")}
    eur = check("invoice", invoice_with(doc, currency="EUR"))
    assert eur.valid and codes(eur) == {("currency", "currency_regime", "warning")}


def test_shape_errors_name_the_path(docs):
    doc = statement_with(docs["bank_statement"], 2, balance="-11,250.50")
    result = check("bank_statement", doc)
    assert not result.valid and codes(result) == {("transactions[2].balance", "schema", "error")}
    assert result.data == doc
    result = check("invoice", invoice_with(docs["invoice"], lines__1__page=0))
    assert codes(result) == {("lines[1].page", "schema", "error")}
    result = check("aadhaar", {k: v for k, v in docs["aadhaar"].items() if k != "vid"})
    assert codes(result) == {("vid", "schema", "error")}
    result = check("pan", dict(docs["pan"], nickname="R"))
    assert codes(result) == {("nickname", "schema", "error")}


@pytest.mark.parametrize("raw,data_none", [
    ("{not json", True), ("[1, 2]", True), ('"text"', True), ("", True), ("NaN", True),
    (b"\xff\xfe", True), ('{"pan": 1}', False),
])
def test_bad_input_becomes_issues(raw, data_none):
    result = schemas.get("pan").validate(raw)
    assert not result.valid and result.issues
    assert (result.data is None) == data_none
    assert result.issues[0].type in ("json", "schema")


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=12), kids,
                                                              max_size=4), max_leaves=12)


def mutated(doc: dict):
    """Strategy: the document with one value replaced by arbitrary JSON."""
    keys = list(doc)
    return st.builds(lambda k, v: dict(doc, **{k: v}), st.sampled_from(keys), ANY_JSON)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_validate_and_mask_never_raise(docs, data):
    for name, doc in (("aadhaar", docs["aadhaar"]), ("bank_statement", docs["bank_statement"]),
                      ("invoice", docs["invoice"]), ("pan", docs["pan"])):
        value = data.draw(mutated(doc) | ANY_JSON | st.text(max_size=30))
        spec = schemas.get(name)
        result = spec.validate(value)
        assert isinstance(result.valid, bool)
        if result.data is not None:
            spec.mask(result.data)


MONEY = st.from_regex(r"\A-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?\Z")
WIDE = st.from_regex(r"\A[1-9][0-9]{11}\.[0-9]{4}\Z")
ROW_VALUES = (MONEY | WIDE | ANY_JSON
              | st.from_regex(r"\A[0-9]{4}-(0[1-9]|1[0-2])-[0-3][0-9]\Z"))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rows_and_lines_with_any_values_never_break_the_validators(docs, data):
    for name, key, rows in (("bank_statement", "bank_statement", "transactions"),
                            ("invoice", "invoice", "lines"), ("invoice", "uk_invoice", "lines")):
        doc = copy.deepcopy(docs[key])
        for _ in range(data.draw(st.integers(1, 4))):
            row = data.draw(st.sampled_from(doc[rows]))
            row[data.draw(st.sampled_from(sorted(row)))] = data.draw(ROW_VALUES)
        top = data.draw(st.sampled_from(sorted(doc)))
        if top != rows:
            doc[top] = data.draw(MONEY | st.none())
        result = schemas.get(name).validate(doc)
        assert "validator_failed" not in {i.type for i in result.issues}

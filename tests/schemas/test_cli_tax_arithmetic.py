"""Tax arithmetic a tax accountant would check, each case through `docextract validate`: totals
against the rate when the lines print no tax, the intra/inter-state rule on line taxes, invoices
with tax per line only, exports (place of supply 96) with IGST or zero-rated under LUT."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from docextract.cli import app
from docextract.schemas.invoice import Invoice, Line, Party

SUPPLIER = Party(name="Unique Fasteners LLP", gstin="27AAPFU0939F1ZV", state="Maharashtra",
                 state_code="27")


def validate(tmp_path, doc: dict, *extra: str):
    path = tmp_path / "invoice.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    res = CliRunner().invoke(app, ["validate", str(path), "--schema", "invoice", *extra])
    assert res.exit_code in (0, 1), res.output
    out = json.loads(res.stdout)
    errors = {(e["loc"], e["type"]) for e in out["errors"] if e["severity"] == "error"}
    return res.exit_code, errors


def gst(place="27", lines=None, **totals) -> dict:
    """One line of 1000.00 at 18% from Maharashtra (27) to `place`, no tax on the line unless
    given."""
    lines = lines or [Line(description="Steel bracket", hsn_sac="7326", quantity="4",
                           unit_price="250", amount="1000.00", tax_rate="18")]
    return Invoice(tax_regime="in_gst", document_type="tax_invoice", invoice_number="MH/0042",
                   invoice_date="2024-06-15", currency="INR", supplier=SUPPLIER,
                   buyer=Party(name="Orion Builders"), place_of_supply_code=place,
                   lines=lines, taxable_value="1000.00", **totals).model_dump(mode="json")


def test_gst_totals_against_the_rate_when_lines_have_no_tax(tmp_path):
    wrong = gst(cgst_total="180.00", sgst_total="180.00", tax_total="360.00",
                grand_total="1360.00")
    code, errors = validate(tmp_path, wrong)
    assert code == 1
    assert errors == {("cgst_total", "tax_total"), ("sgst_total", "tax_total")}
    right = gst(cgst_total="90.00", sgst_total="90.00", tax_total="180.00", grand_total="1180.00")
    assert validate(tmp_path, right) == (0, set())


def test_gst_tax_total_only_against_the_rate(tmp_path):
    code, errors = validate(tmp_path, gst(tax_total="360.00", grand_total="1360.00"))
    assert code == 1 and errors == {("tax_total", "tax_total")}
    assert validate(tmp_path, gst(tax_total="180.00", grand_total="1180.00")) == (0, set())


def test_uk_vat_total_against_the_rate(tmp_path):
    def uk(vat, total):
        return Invoice(tax_regime="uk_vat", invoice_number="2024-0117", invoice_date="2024-03-01",
                       currency="GBP", supplier=Party(name="Westfield Ltd",
                                                      vat_number="GB980780684"),
                       lines=[Line(description="Consulting", amount="100.00", tax_rate="20")],
                       taxable_value="100.00", tax_total=vat,
                       grand_total=total).model_dump(mode="json")

    code, errors = validate(tmp_path, uk("10.00", "110.00"))
    assert code == 1 and errors == {("tax_total", "tax_total")}
    assert validate(tmp_path, uk("20.00", "120.00")) == (0, set())


def test_line_level_cgst_sgst_on_an_inter_state_invoice_fail(tmp_path):
    line = Line(description="Steel bracket", amount="1000.00", tax_rate="18",
                cgst_amount="90.00", sgst_amount="90.00")
    doc = gst(place="06", lines=[line], grand_total="1180.00")
    code, errors = validate(tmp_path, doc)
    assert code == 1 and errors == {("lines[0].cgst_amount", "tax_split")}
    line = Line(description="Steel bracket", amount="1000.00", tax_rate="18", igst_amount="180.00")
    assert validate(tmp_path, gst(place="06", lines=[line], grand_total="1180.00")) == (0, set())


def test_per_line_tax_only_is_valid_when_the_grand_total_holds_it(tmp_path):
    lines = [Line(description="Steel bracket", amount="1000.00", tax_rate="18",
                  cgst_amount="90.00", sgst_amount="90.00", total="1180.00"),
             Line(description="Installation", amount="500.00", tax_rate="5",
                  cgst_amount="12.50", sgst_amount="12.50")]
    doc = gst(lines=lines, grand_total="1705.00")
    doc["taxable_value"] = "1500.00"
    assert validate(tmp_path, doc) == (0, set())
    doc["grand_total"] = "1500.00"
    code, errors = validate(tmp_path, doc)
    assert code == 1 and errors == {("grand_total", "grand_total")}


@pytest.mark.parametrize("case", ["igst", "lut_zero_tax", "lut_no_tax"])
def test_exports_to_place_of_supply_96(tmp_path, case):
    if case == "igst":
        line = Line(description="Steel bracket", amount="1000.00", tax_rate="18",
                    igst_amount="180.00")
        doc = gst(place="96", lines=[line], igst_total="180.00", tax_total="180.00",
                  grand_total="1180.00")
    elif case == "lut_zero_tax":
        line = Line(description="Steel bracket", amount="1000.00", tax_rate="18",
                    igst_amount="0.00")
        doc = gst(place="96", lines=[line], igst_total="0.00", tax_total="0.00",
                  grand_total="1000.00")
    else:
        line = Line(description="Steel bracket", amount="1000.00", tax_rate="0")
        doc = gst(place="96", lines=[line], grand_total="1000.00")
    doc["place_of_supply"] = "Other Countries"
    assert validate(tmp_path, doc) == (0, set())


def test_export_with_cgst_sgst_fails(tmp_path):
    line = Line(description="Steel bracket", amount="1000.00", tax_rate="18",
                cgst_amount="90.00", sgst_amount="90.00")
    doc = gst(place="96", lines=[line], cgst_total="90.00", sgst_total="90.00",
              grand_total="1180.00")
    code, errors = validate(tmp_path, doc)
    assert code == 1
    assert ("cgst_total", "tax_split") in errors and ("lines[0].cgst_amount", "tax_split") in errors


# --- bank statements printed newest first, every row on one date ----------------------------

def statement(rows, opening="10000.00", closing="11250.00") -> dict:
    from docextract.schemas.bank_statement import BankStatement, Transaction

    return BankStatement(
        bank_name="State Bank of India", account_number="12345678901", ifsc="SBIN0061100",
        currency="INR", period_start="2024-04-01", period_end="2024-04-30",
        opening_balance=opening, closing_balance=closing,
        transactions=[Transaction(date="2024-04-05", description=d, debit=dr, credit=cr,
                                  balance=bal, page=1) for d, dr, cr, bal in rows],
    ).model_dump(mode="json")


# Oldest first: +5000, -2500, -1250.
ROWS = [("NEFT salary", None, "5000.00", "15000.00"), ("UPI rent", "2500.00", None, "12500.00"),
        ("ATM", "1250.00", None, "11250.00")]


def validate_statement(tmp_path, doc):
    path = tmp_path / "statement.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    res = CliRunner().invoke(app, ["validate", str(path), "--schema", "bank_statement"])
    out = json.loads(res.stdout)
    return res.exit_code, {(e["loc"], e["type"]) for e in out["errors"] if e["severity"] == "error"}


@pytest.mark.parametrize("newest_first", [False, True])
def test_single_date_statement_in_either_order(tmp_path, newest_first):
    rows = list(reversed(ROWS)) if newest_first else ROWS
    assert validate_statement(tmp_path, statement(rows)) == (0, set())


def test_single_date_newest_first_still_pinpoints_a_bad_row(tmp_path):
    rows = list(reversed(ROWS))
    rows[1] = ("UPI rent", "2500.00", None, "12590.00")  # printed row 1 misread
    code, errors = validate_statement(tmp_path, statement(rows))
    assert code == 1 and errors == {("transactions[1].balance", "running_balance")}


def test_single_date_newest_first_without_opening_balance(tmp_path):
    doc = statement(list(reversed(ROWS)))
    doc["opening_balance"] = None
    assert validate_statement(tmp_path, doc) == (0, set())


def test_a_printed_zero_of_the_other_kind_is_not_checked_against_the_rate(tmp_path):
    intra = gst(cgst_total="90.00", sgst_total="90.00", igst_total="0.00", tax_total="180.00",
                grand_total="1180.00")
    assert validate(tmp_path, intra) == (0, set())
    inter = gst(place="06", cgst_total="0.00", sgst_total="0.00", igst_total="180.00",
                tax_total="180.00", grand_total="1180.00")
    assert validate(tmp_path, inter) == (0, set())
    wrong = gst(place="06", igst_total="90.00", tax_total="90.00", grand_total="1090.00")
    code, errors = validate(tmp_path, wrong)
    assert code == 1 and errors == {("igst_total", "tax_total")}

"""Valid documents of each built-in type, built through the models (public test values of
domain.md), as JSON-ready dicts that tests corrupt copies of; a user JSON Schema and a user
pydantic file."""

from __future__ import annotations

import json

import pytest

from docextract.schemas.aadhaar import AadhaarCard
from docextract.schemas.bank_statement import BankStatement, Transaction
from docextract.schemas.invoice import Invoice, Line, Party
from docextract.schemas.pan import PanCard


def aadhaar_doc() -> dict:
    return AadhaarCard(
        aadhaar_number="234123412346", vid="2341234123412341", name="Asha Verma",
        name_local="आशा वर्मा", date_of_birth="1990-07-14", gender="female",
        address="12 MG Road, Indore, Madhya Pradesh", pincode="452001", issue_date="2019-03-02",
    ).model_dump(mode="json")


def pan_doc() -> dict:
    return PanCard(pan="ACUPA7085R", name="Rahul Kumar Agarwal", father_name="Suresh Agarwal",
                   date_of_birth="1985-01-31").model_dump(mode="json")


def statement_doc() -> dict:
    rows = [
        Transaction(date="2024-04-02", description="NEFT salary", credit="50000.00",
                    balance="60000.00", page=1),
        Transaction(date="2024-04-05", description="UPI grocer", debit="1250.50",
                    balance="58749.50", page=1),
        Transaction(date="2024-04-09", description="ATM withdrawal", debit="70000.00",
                    balance="-11250.50", page=2),
        Transaction(date="2024-04-20", description="Cheque deposit", reference="000123",
                    credit="20000.00", balance="8749.50", page=2),
    ]
    return BankStatement(
        bank_name="State Bank of India", account_holder="Asha Verma",
        account_number="12345678901", ifsc="SBIN0061100", micr="452002003", currency="INR",
        period_start="2024-04-01", period_end="2024-04-30", opening_balance="10000.00",
        closing_balance="8749.50", total_debits="71250.50", total_credits="70000.00",
        transactions=rows,
    ).model_dump(mode="json")


def gst_invoice_doc() -> dict:
    """Intra-state (27 -> 27): CGST + SGST."""
    lines = [
        Line(description="Steel bracket", hsn_sac="7326", quantity="10", unit="NOS",
             unit_price="250.50", amount="2505.00", tax_rate="18", cgst_amount="225.45",
             sgst_amount="225.45", total="2955.90", page=1),
        Line(description="Installation", hsn_sac="998719", quantity="2", unit="HRS",
             unit_price="1000", discount="100.00", amount="1900.00", tax_rate="5",
             cgst_amount="47.50", sgst_amount="47.50", page=1),
    ]
    return Invoice(
        tax_regime="in_gst", document_type="tax_invoice", invoice_number="MH/24-25/0042",
        invoice_date="2024-06-15", due_date="2024-07-15", currency="INR",
        supplier=Party(name="Unique Fasteners LLP", gstin="27AAPFU0939F1ZV", state="Maharashtra",
                       state_code="27"),
        buyer=Party(name="Orion Builders Pvt Ltd", gstin="27AABCO6063D1ZM"),
        place_of_supply="Maharashtra", place_of_supply_code="27", reverse_charge=False,
        lines=lines, taxable_value="4405.00", cgst_total="272.95", sgst_total="272.95",
        tax_total="545.90", round_off="0.10", grand_total="4951.00",
        amount_in_words="Rupees Four Thousand Nine Hundred Fifty One Only",
    ).model_dump(mode="json")


def uk_invoice_doc() -> dict:
    lines = [
        Line(description="Consulting", quantity="3", unit="days", unit_price="450.00",
             amount="1350.00", tax_rate="20", tax_amount="270.00", page=1),
        Line(description="Children's car seat", quantity="1", unit_price="80.00",
             amount="80.00", tax_rate="5", tax_amount="4.00", page=1),
    ]
    return Invoice(
        tax_regime="uk_vat", document_type="tax_invoice", invoice_number="2024-0117",
        invoice_date="2024-03-01", tax_point_date="2024-02-29", currency="GBP",
        supplier=Party(name="Westfield Ltd", address="1 High St, Leeds", vat_number="GB980780684"),
        buyer=Party(name="Brook & Co"), lines=lines, taxable_value="1430.00", tax_total="274.00",
        grand_total="1704.00",
        amount_in_words="One Thousand Seven Hundred and Four Pounds Only",
    ).model_dump(mode="json")


USER_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Receipt", "description": "A shop receipt.", "type": "object",
    "properties": {
        "shop": {"type": "string", "maxLength": 80},
        "total": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
        "date": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        "items": {"type": "array", "maxItems": 5, "items": {"$ref": "#/$defs/item"}},
        "paid_by": {"enum": ["cash", "card"]},
    },
    "required": ["shop", "total"], "additionalProperties": False,
    "$defs": {"item": {"type": "object", "properties": {
        "name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
        "required": ["name"]}},
}

USER_MODEL = '''
from typing import Literal
from pydantic import BaseModel, Field

VERSION = "7"

class Item(BaseModel):
    name: str = Field(max_length=40)
    qty: int = Field(ge=1, le=99)

class Receipt(BaseModel):
    """A shop receipt."""
    shop: str = Field(max_length=80)
    total: str = Field(pattern=r"^[0-9]+\\.[0-9]{2}$")
    paid_by: Literal["cash", "card"] | None = None
    items: list[Item] = Field(default_factory=list, max_length=5)
'''

@pytest.fixture
def user_schema() -> dict:
    """A user's JSON Schema (a fresh copy: tests edit it)."""
    return json.loads(json.dumps(USER_SCHEMA))


@pytest.fixture
def user_model() -> str:
    """Source of a user's pydantic model file."""
    return USER_MODEL


@pytest.fixture
def docs() -> dict[str, dict]:
    return {"aadhaar": aadhaar_doc(), "pan": pan_doc(), "bank_statement": statement_doc(),
            "invoice": gst_invoice_doc(), "uk_invoice": uk_invoice_doc()}

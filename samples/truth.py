"""Ground truth through the schemas: document facts -> the schema's pydantic model -> its JSON form
(the same keys and value formats the constrained decoder writes, unmasked), checked by the
schema's own validators."""

from __future__ import annotations

import importlib
from decimal import Decimal
from typing import Any

from .. import schemas
from .invoice import InvoiceFacts, _qty
from .kyc import AadhaarFacts, PanFacts
from .money import rupees_in_words
from .statement import StatementFacts


def build(schema: str, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` through `docextract.schemas.<schema>.Model`, back out as JSON-ready data."""
    model = importlib.import_module(f"docextract.schemas.{schema}").Model
    return model.model_validate(fields).model_dump(mode="json")


def check(schema: str, data: dict[str, Any]) -> schemas.Validation:
    return schemas.get(schema).validate(data)


def _one_line(parts: list[str]) -> str:
    return ", ".join(parts)


def aadhaar(f: AadhaarFacts) -> dict[str, Any]:
    p = f.person
    return build("aadhaar", {
        "aadhaar_number": f.number, "vid": f.vid, "name": p.name_en, "name_local": p.name_hi,
        "date_of_birth": p.dob, "gender": p.gender.lower(), "issue_date": f.issued,
    })


def pan(f: PanFacts) -> dict[str, Any]:
    p = f.person
    return build("pan", {
        "pan": f.number, "name": p.name_en.upper(), "father_name": p.father_en.upper(),
        "date_of_birth": p.dob,
    })


def _txn(t) -> dict[str, Any]:
    return {"date": t.day, "value_date": t.value_day, "description": t.narration,
            "reference": None if t.ref == "-" else t.ref, "debit": t.debit, "credit": t.credit,
            "balance": t.balance, "page": t.page}


def statement(f: StatementFacts) -> dict[str, Any]:
    rows = [_txn(t) for t in f.txns]
    return build("bank_statement", {
        "bank_name": f.bank, "branch": f.branch, "account_holder": f.holder,
        "address": _one_line(f.holder_address), "account_number": f.account_number,
        "ifsc": f.ifsc, "micr": f.micr, "currency": "INR",
        "period_start": f.start, "period_end": f.end,
        "opening_balance": f.opening, "closing_balance": f.closing,
        "total_debits": f.total_debits, "total_credits": f.total_credits,
        "transactions": rows,
    })


def statement_window(f: StatementFacts, first: int, last: int) -> list[dict[str, Any]]:
    """The transaction rows as printed on pages `first`..`last` alone, in the schema's JSON form:
    a row cut by the page break after `last` with the narration printed so far, and the rest of
    a row cut by the break before `first` as a row with only its description and page."""
    from .statement import narration_parts

    rows: list[dict[str, Any]] = []
    for t in f.txns:
        if t.split and t.page == first - 1:
            tail = narration_parts(t, t.split)[1]
            rows.append({"date": None, "value_date": None, "description": tail,
                         "reference": None, "debit": None, "credit": None, "balance": None,
                         "page": first})
        elif first <= t.page <= last:
            row = _txn(t)
            if t.split and t.page == last:
                row["description"] = narration_parts(t, t.split)[0]
            rows.append(row)
    doc = build("bank_statement", {"transactions": rows})
    return doc["transactions"]


def _party(p, gst: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "address": _one_line(p.address)}
    if gst:
        out |= {"gstin": p.tax_id, "state": p.state, "state_code": p.state_code}
    elif p.tax_id:
        out["vat_number"] = "GB" + p.tax_id
    return out


def _plain(q: Decimal) -> Decimal:
    return Decimal(_qty(q))


def invoice(f: InvoiceFacts) -> dict[str, Any]:
    gst = f.regime == "IN_GST"
    lines = []
    for ln in f.lines:
        line: dict[str, Any] = {
            "description": ln.description, "quantity": _plain(ln.quantity),
            "unit_price": ln.unit_price, "amount": ln.net, "tax_rate": _plain(ln.rate), "page": 1,
        }
        if gst:
            line |= {"hsn_sac": ln.code, "unit": ln.unit, "total": ln.total}
            if f.intra_state:
                line |= {"cgst_amount": ln.cgst, "sgst_amount": ln.sgst}
            else:
                line["igst_amount"] = ln.igst
        else:
            line["tax_amount"] = ln.vat
        lines.append(line)
    fields: dict[str, Any] = {
        "tax_regime": "in_gst" if gst else "uk_vat", "document_type": "tax_invoice",
        "invoice_number": f.number, "invoice_date": f.issued, "currency": f.currency,
        "supplier": _party(f.supplier, gst), "buyer": _party(f.buyer, gst), "lines": lines,
        "taxable_value": f.figure("taxable"), "grand_total": f.figure("grand_total"),
    }
    if gst:
        fields |= {"place_of_supply": f.buyer.state, "place_of_supply_code": f.buyer.state_code,
                   "reverse_charge": False,
                   "amount_in_words": rupees_in_words(f.figure("grand_total"))}
        if f.intra_state:
            fields |= {"cgst_total": f.figure("cgst"), "sgst_total": f.figure("sgst")}
        else:
            fields["igst_total"] = f.figure("igst")
        if f.round_off:
            fields["round_off"] = f.round_off
    else:
        fields |= {"tax_point_date": f.tax_point, "due_date": f.due,
                   "tax_total": f.figure("vat")}
    return build("invoice", fields)

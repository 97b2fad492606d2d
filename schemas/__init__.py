"""Document schemas: registry and the Spec contract the pipeline uses.

A schema module (one per document type) defines `Model` (pydantic), `VERSION`, `INSTRUCTION` and
`validate(model_instance) -> list[Issue]` for its cross-field rules, and optionally
`mask(data) -> (masked_copy, masked_paths)`. `get(name)` resolves, in this order: a built-in
name (optionally `name@VERSION`), a name registered by another package under the
`docextract.schemas` entry-point group (the entry point loads such a module, a Spec or a pydantic
model), a `path/to/schema.json` (JSON Schema, shape checks only), a `path/to/module.py:Class`
(a pydantic model) or `path/to/module.py` (a module like a built-in one).

`Spec.validate` first checks the JSON Schema the decoder was constrained by (every key present,
patterns, bounds), then the pydantic model, then the domain rules; it never raises. Each finding
is an `Issue` whose `type` is one of `CODES` (stable: scripts match on them) and whose `loc` is
the field path, e.g. `transactions[12].balance`.

Masking (default output; `--unmask` turns it off): Aadhaar "XXXX XXXX 1234", VID
"XXXX XXXX XXXX 1234", PAN "ABCDEXXXXF", bank account number and IBAN keep the last 4 characters.
Then every Aadhaar number, VID, PAN and IBAN anywhere else in the record (free text, unknown
keys, any schema) is masked too, and so is a value masked in its own field wherever it is
repeated (see masking.py). GSTINs and UK VAT numbers are public business registrations and are
not masked.

This package imports pydantic and the standard library only (no torch, no engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from ..errors import UsageError

BUILTIN = ("aadhaar", "pan", "bank_statement", "invoice")
ENTRY_POINT_GROUP = "docextract.schemas"

CODES = {
    "json": "the input is not JSON (syntax error, not UTF-8)",
    "schema": "the JSON does not fit the schema: wrong type, missing or unknown key, pattern, "
              "length or bounds",
    "date_invalid": "a date that does not exist (2024-02-30)",
    "validator_failed": "a user schema's own validator raised",
    "missing_field": "a key field of the document was not found (warning)",
    "aadhaar_format": "Aadhaar number not 12 digits starting 2-9, or a palindrome",
    "aadhaar_checksum": "Aadhaar Verhoeff check digit wrong",
    "aadhaar_masked": "the document shows a masked Aadhaar number (warning)",
    "vid_format": "VID not 16 digits starting 2-9, or a palindrome",
    "vid_checksum": "VID Verhoeff check digit wrong",
    "vid_masked": "the document shows a masked VID (warning)",
    "dob_mismatch": "year of birth and date of birth disagree",
    "pan_format": "PAN not 5 letters, 4 digits, 1 letter",
    "pan_holder_type": "PAN 4th letter is not a holder type",
    "pan_serial": "PAN serial 0000",
    "pan_name_mismatch": "PAN 5th letter is not an initial of the name (warning)",
    "pan_masked": "the document shows a masked PAN (warning)",
    "gstin_format": "GSTIN shape wrong: neither a regular GSTIN nor a known special registration",
    "gstin_state_code": "GSTIN state code unknown (error), retired or 96 exports (warning)",
    "gstin_pan": "the PAN inside the GSTIN is invalid",
    "gstin_special": "a special GST registration: TDS on a TAN, TCS, UIN, non-resident, OIDAR, "
                     "government (warning)",
    "gstin_checksum": "GSTIN mod-36 check character wrong (warning on special registrations)",
    "state_code": "a GST state code that is unknown or disagrees with the GSTIN",
    "ifsc_format": "IFSC not 4 letters, 0, 6 letters/digits",
    "micr_format": "MICR not 9 digits",
    "sort_code_format": "sort code not NN-NN-NN",
    "vat_number_format": "UK VAT number shape wrong",
    "vat_number_checksum": "UK VAT number mod-97 check wrong",
    "iban_format": "IBAN shape or length wrong",
    "iban_country": "IBAN country does not use IBANs",
    "iban_checksum": "IBAN mod-97 check, or the national check digits inside it, wrong",
    "iban_bank": "IBAN bank code not in python-stdnum's list for its country (warning)",
    "iban_mismatch": "sort code or account number differs from the IBAN",
    "iban_masked": "the document shows a masked IBAN (warning)",
    "account_masked": "the document shows a masked account number (warning)",
    "date_future": "a date in the future (error for birth dates and statements, else warning)",
    "date_implausible": "a date too far in the past for this document (warning)",
    "date_order": "dates in the wrong order (period, due date, statement rows)",
    "date_out_of_period": "a statement row dated outside the statement period",
    "amount_negative": "a debit or credit amount below zero",
    "debit_and_credit": "a statement row with both a debit and a credit",
    "no_amount": "a statement row with neither debit nor credit",
    "carried_forward_row": "a brought/carried forward row among the transactions (warning)",
    "running_balance": "a row's balance is not previous balance + credit - debit",
    "balance_mismatch": "opening + credits - debits is not the closing balance",
    "total_mismatch": "printed total debits/credits differ from the rows",
    "line_amount": "invoice line amount is not quantity x unit price - discount",
    "line_tax": "invoice line tax is not amount x rate",
    "line_total": "invoice line total is not amount + tax",
    "taxable_total": "taxable value is not the sum of the line amounts",
    "tax_total": "a tax total is not the sum of its lines or of its parts",
    "tax_split": "CGST/SGST/IGST used against the place of supply, or CGST != SGST",
    "tax_rate_unusual": "a tax rate outside the regime's usual rates (warning)",
    "round_off": "round off of 1.00 or more",
    "grand_total": "grand total is not taxable value + tax + round off",
    "amount_in_words": "the amount in words differs from the grand total",
    "invoice_number_format": "GST invoice number over 16 characters or other than A-Z 0-9 - / "
                             "(warning)",
    "currency_regime": "currency unusual for the tax regime (warning)",
}


@dataclass(frozen=True)
class Issue:
    """One validation finding. `severity` "error" makes the record invalid; "warning" does not."""

    loc: str
    type: str
    msg: str
    severity: str = "error"

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "type": self.type, "msg": self.msg, "severity": self.severity}


@dataclass
class Validation:
    """Outcome of validating one extraction: the data (JSON-ready, None when it did not parse at
    all) and every finding."""

    data: dict[str, Any] | None
    issues: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.data is not None and not any(i.severity == "error" for i in self.issues)

    @property
    def errors(self) -> list[dict[str, str]]:
        return [i.as_dict() for i in self.issues]


@dataclass(frozen=True)
class Spec:
    """Everything the pipeline needs to know about one document type."""

    name: str
    version: str
    instruction: str
    json_schema: dict[str, Any]
    validator: Callable[[Any], Validation]
    masker: Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]] | None = None
    # The pydantic model behind a built-in or pydantic schema; None for a JSON Schema file.
    model: Any = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def decoder_schema(self) -> dict[str, Any]:
        """The JSON Schema the decoder follows: `json_schema` with every unbounded string capped
        at `_jsonschema.MAX_STRING_LENGTH` characters (validation still uses `json_schema`)."""
        from . import _jsonschema

        return _jsonschema.bound_strings(self.json_schema)[0]

    @property
    def unbounded_strings(self) -> list[str]:
        """JSON pointers of the strings `decoder_schema` had to cap (no maxLength given)."""
        from . import _jsonschema

        return _jsonschema.bound_strings(self.json_schema)[1]

    def validate(self, obj: Any) -> Validation:
        """`obj` is a JSON text or an already parsed value; never raises on bad input."""
        return self.validator(obj)

    def mask(self, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A masked copy of `data` and the paths of the fields that were masked: the schema's
        own masker, then `masking.scrub` over the whole record, so that no field name, unknown
        key or schema lets an identifier through."""
        from . import masking

        masked, paths = (data, []) if self.masker is None else self.masker(data)
        masked, found = masking.scrub(masked, masking.own_values(data, masked))
        return masked, list(dict.fromkeys(paths + found))

    def output(self, validation: Validation, *, unmask: bool = False
               ) -> tuple[dict[str, Any] | None, list[dict[str, str]], list[str]]:
        """What a record shows of a validation: (data, errors, masked paths). By default the
        data is masked (`mask`) and so are the error paths and messages (an unknown key can be
        an Aadhaar number); `unmask` shows both as they are."""
        from . import masking

        data, errors, masked = validation.data, validation.errors, []
        if unmask:
            return data, errors, masked
        if data is not None:
            data, masked = self.mask(data)
        return data, masking.scrub(errors)[0], masked


def names() -> list[str]:
    """Built-in schema names, then those registered by other packages."""
    return list(BUILTIN) + sorted(n for n in _entry_points() if n not in BUILTIN)


def get(name: str) -> Spec:
    """Resolve a schema name or path to its Spec; unknown names raise UsageError (exit 2)."""
    from . import _registry

    return _registry.resolve(name)


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


__all__ = ["BUILTIN", "CODES", "Issue", "Spec", "UsageError", "Validation", "get", "names"]

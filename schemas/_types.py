"""Field types shared by the built-in schemas: identifiers, dates and money.

Money is a JSON *string* holding a plain decimal ("123456.78", "-250.00"; no grouping, no
currency sign), parsed into `decimal.Decimal` on the Python side. Why a string and not a JSON
number:
- exact: a JSON number goes through binary floating point in most consumers (Python's json,
  JavaScript, jq before 1.7), so 0.1 + 0.2 style drift appears in totals; a string cannot drift
  and the validators do all arithmetic in Decimal;
- bounded: a pattern caps digits before and after the point, so a constrained decode cannot run
  away inside a number literal (the vLLM "number-literal loop" failures) and cannot emit exponent
  forms or `NaN`;
- jq users write `.grand_total | tonumber` (or compare strings for equality); the value is
  exactly what was printed on the document, without float artefacts.
Quantities, unit prices and tax rates follow the same rule with more decimals allowed.

Every type here accepts, in Python, either its JSON form (string) or the Python value (Decimal,
date), so the sample generator can build ground truth through the models, and it rejects floats:
a float has already lost the printed digits.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

# Identifier patterns (domain.md section 1); the masked forms are what `mask()` writes, so a
# masked record validates again (with a warning, the checksum cannot be checked).
AADHAAR = r"^([2-9][0-9]{11}|XXXX XXXX [0-9]{4})$"
VID = r"^([2-9][0-9]{15}|XXXX XXXX XXXX [0-9]{4})$"
PAN = r"^[A-Z]{5}([0-9]{4}|XXXX)[A-Z]$"
# Any 15-character GST identifier (the NIC e-invoice schema's shape): regular GSTINs and the
# special registrations (TDS on a TAN, UIN, non-resident...) alike; the domain rules tell them
# apart and report a special one as a warning, not a rejection.
GSTIN = r"^[0-9]{2}[0-9A-Z]{13}$"
IFSC = r"^[A-Z]{4}0[A-Z0-9]{6}$"
MICR = r"^[0-9]{9}$"
UK_VAT = r"^(GB|XI)?([0-9]{9}|[0-9]{12}|GD[0-9]{3}|HA[0-9]{3}|(GD|HA)8888[0-9]{5})$"
IBAN = r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"
SORT_CODE = r"^[0-9]{2}-[0-9]{2}-[0-9]{2}$"
ACCOUNT_NUMBER = r"^X{0,16}[0-9]{4,20}$"
PINCODE = r"^[1-9][0-9]{5}$"
STATE_CODE = r"^[0-9]{2}$"
HSN_SAC = r"^[0-9]{4,8}$"
CURRENCY = r"^[A-Z]{3}$"
DATE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
MONEY = r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$"
QUANTITY = r"^-?(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$"
UNIT_PRICE = r"^-?(0|[1-9][0-9]{0,13})(\.[0-9]{1,4})?$"
PERCENT = r"^(0|[1-9][0-9]?|100)(\.[0-9]{1,3})?$"

_MAX_LEN = {
    AADHAAR: 14, VID: 19, PAN: 10, GSTIN: 15, IFSC: 11, MICR: 9, UK_VAT: 14, IBAN: 34,
    SORT_CODE: 8, ACCOUNT_NUMBER: 20, PINCODE: 6, STATE_CODE: 2, HSN_SAC: 8, CURRENCY: 3,
    DATE: 10, MONEY: 19, QUANTITY: 18, UNIT_PRICE: 20, PERCENT: 7,
}


def _pattern_str(pattern: str, name: str):
    rx = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and rx.fullmatch(value):
            return value
        raise PydanticCustomError("schema", "not a valid {name}: expected pattern {pattern}",
                                  {"name": name, "pattern": pattern})

    return Annotated[str, BeforeValidator(check), WithJsonSchema(
        {"type": "string", "pattern": pattern, "maxLength": _MAX_LEN[pattern]})]


def _decimal(pattern: str, name: str):
    rx = re.compile(pattern)

    def check(value: Any) -> Decimal:
        text = str(value) if isinstance(value, Decimal) else value
        if isinstance(text, str) and rx.fullmatch(text):
            try:
                return Decimal(text)
            except InvalidOperation:
                pass
        raise PydanticCustomError("schema", "not a valid {name}: expected a decimal string "
                                  "matching {pattern}", {"name": name, "pattern": pattern})

    return Annotated[Decimal, BeforeValidator(check), PlainSerializer(str, return_type=str),
                     WithJsonSchema({"type": "string", "pattern": pattern,
                                     "maxLength": _MAX_LEN[pattern]})]


def _date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(DATE, value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("date_invalid", "not a calendar date") from None
    raise PydanticCustomError("schema", "not a date: expected YYYY-MM-DD")


def text(max_length: int):
    """A free-text string with its bound (every string the decoder writes has one)."""
    return Annotated[str, WithJsonSchema({"type": "string", "maxLength": max_length}),
                     BeforeValidator(_bounded(max_length))]


def _bounded(max_length: int):
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("schema", "expected a string")
        if len(value) > max_length:
            raise PydanticCustomError("schema", "longer than {n} characters", {"n": max_length})
        return value

    return check


def integer(minimum: int, maximum: int):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise PydanticCustomError("schema", "expected an integer in [{lo}, {hi}]",
                                      {"lo": minimum, "hi": maximum})
        return value

    return Annotated[int, BeforeValidator(check),
                     WithJsonSchema({"type": "integer", "minimum": minimum, "maximum": maximum})]


Aadhaar = _pattern_str(AADHAAR, "Aadhaar number")
Vid = _pattern_str(VID, "VID")
Pan = _pattern_str(PAN, "PAN")
Gstin = _pattern_str(GSTIN, "GSTIN")
Ifsc = _pattern_str(IFSC, "IFSC")
Micr = _pattern_str(MICR, "MICR code")
UkVat = _pattern_str(UK_VAT, "UK VAT number")
Iban = _pattern_str(IBAN, "IBAN")
SortCode = _pattern_str(SORT_CODE, "sort code")
AccountNumber = _pattern_str(ACCOUNT_NUMBER, "account number")
Pincode = _pattern_str(PINCODE, "PIN code")
StateCode = _pattern_str(STATE_CODE, "state code")
HsnSac = _pattern_str(HSN_SAC, "HSN/SAC code")
Currency = _pattern_str(CURRENCY, "currency code")
Money = _decimal(MONEY, "amount")
Quantity = _decimal(QUANTITY, "quantity")
UnitPrice = _decimal(UNIT_PRICE, "unit price")
Percent = _decimal(PERCENT, "percentage")
Date = Annotated[date, BeforeValidator(_date),
                 WithJsonSchema({"type": "string", "pattern": DATE, "maxLength": 10})]
Page = integer(1, 9999)


class Strict(BaseModel):
    """Base of every built-in model: unknown keys are errors. Built in Python, omitted fields
    default to None; `Spec.validate` checks the JSON Schema first, where every key is required,
    because the decoder always writes every key."""

    model_config = ConfigDict(extra="forbid")

"""Aadhaar card (UIDAI): front (number, name, birth date, gender) and back (address).

The number and the VID are masked in every output unless the user asks otherwise (RBI KYC
direction, UIDAI; domain.md section 1.2). A card that is already masked ("XXXX XXXX 1234") is
accepted as such, with a warning, so the model never has to invent the hidden digits.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from . import Issue, checks
from ._common import check_dates, error, issues, mask_tail, masker, warning
from ._types import Aadhaar, Date, Pincode, Strict, Vid, integer, text

VERSION = "1"

INSTRUCTION = """\
Extract the fields of this Aadhaar card (front and, when present, back).
- aadhaar_number: the 12-digit Aadhaar number, digits only, no spaces. If the card shows it masked
  (XXXX XXXX 1234), write "XXXX XXXX " followed by the 4 visible digits.
- vid: the 16-digit Virtual ID if printed (digits only), or "XXXX XXXX XXXX " + last 4 if masked.
- name: the holder's name in English as printed; name_local: the name in the regional script
  (e.g. Hindi) as printed.
- date_of_birth: YYYY-MM-DD (the card prints DD/MM/YYYY, day first). year_of_birth: only when the
  card shows a year of birth instead of a full date, else null.
- gender: "male", "female" or "transgender".
- address: the full address from the back, one line, comma separated; pincode: its 6-digit PIN.
- issue_date: the "Issue Date" or "Download Date" printed on the card, YYYY-MM-DD.
Use null for anything not visible on the document. Never guess or complete a value.
"""


class AadhaarCard(Strict):
    aadhaar_number: Aadhaar | None = None
    vid: Vid | None = None
    name: text(100) | None = None
    name_local: text(100) | None = None
    date_of_birth: Date | None = None
    year_of_birth: integer(1900, 2100) | None = None
    gender: Literal["male", "female", "transgender"] | None = None
    address: text(400) | None = None
    pincode: Pincode | None = None
    issue_date: Date | None = None


Model = AadhaarCard

# UIDAI issued the first numbers in September 2010.
FIRST_ISSUE = date(2010, 9, 29)


def _masked(value: str) -> bool:
    return value.startswith("X")


def validate(doc: AadhaarCard, today: date | None = None) -> list[Issue]:
    today = today or date.today()
    found: list[Issue] = []
    if doc.aadhaar_number is None:
        found.append(warning("aadhaar_number", "missing_field", "no Aadhaar number was found"))
    elif _masked(doc.aadhaar_number):
        found.append(warning("aadhaar_number", "aadhaar_masked",
                             "the number is masked on the document; its checksum is unchecked"))
    else:
        found += issues("aadhaar_number", checks.aadhaar(doc.aadhaar_number))
    if doc.vid is not None:
        if _masked(doc.vid):
            found.append(warning("vid", "vid_masked", "the VID is masked on the document"))
        else:
            found += issues("vid", checks.vid(doc.vid))
    found += check_dates("date_of_birth", doc.date_of_birth, today=today,
                         earliest=date(today.year - 130, 1, 1), future="error",
                         what="date of birth")
    if doc.year_of_birth is not None:
        if doc.year_of_birth > today.year:
            found.append(error("year_of_birth", "date_future",
                               "the year of birth is in the future"))
        if doc.date_of_birth is not None and doc.date_of_birth.year != doc.year_of_birth:
            found.append(error("year_of_birth", "dob_mismatch",
                               "the year of birth differs from the date of birth"))
    found += check_dates("issue_date", doc.issue_date, today=today, earliest=FIRST_ISSUE,
                         future="warning", what="issue date")
    if doc.issue_date and doc.date_of_birth and doc.issue_date < doc.date_of_birth:
        found.append(error("issue_date", "date_order", "the card was issued before the birth date"))
    return found


mask = masker({
    ("aadhaar_number",): lambda v: mask_tail(v, (4, 4)),
    ("vid",): lambda v: mask_tail(v, (4, 4, 4)),
})

"""PAN card (Income Tax Department, India): PAN, name, father's name, date of birth.

The PAN is masked as ABCDEXXXXF (CBDT style, domain.md section 2) unless the user asks
otherwise. Its 10th letter is a check letter of an unpublished algorithm: not verified.
"""

from __future__ import annotations

import re
from datetime import date

from . import Issue, checks
from ._common import check_dates, issues, masker, warning
from ._types import Date, Pan, Strict, text

VERSION = "1"

INSTRUCTION = """\
Extract the fields of this PAN card.
- pan: the 10-character Permanent Account Number, capitals, no spaces (5 letters, 4 digits,
  1 letter). If the card shows it masked, write the visible characters with XXXX for the digits.
- name: the holder's name as printed (for a company or firm card: the entity's name).
- father_name: the father's name as printed, null on cards of companies and firms.
- date_of_birth: date of birth (or of incorporation/formation), YYYY-MM-DD; the card prints
  DD/MM/YYYY, day first.
Use null for anything not visible on the document. Never guess or complete a value.
"""


class PanCard(Strict):
    pan: Pan | None = None
    name: text(100) | None = None
    father_name: text(100) | None = None
    date_of_birth: Date | None = None


Model = PanCard


def validate(doc: PanCard, today: date | None = None) -> list[Issue]:
    today = today or date.today()
    found: list[Issue] = []
    if doc.pan is None:
        found.append(warning("pan", "missing_field", "no PAN was found"))
    elif doc.pan[5:9] == "XXXX":
        found.append(warning("pan", "pan_masked", "the PAN is masked on the document"))
        found += issues("pan", checks.pan(doc.pan[:5] + "0001" + doc.pan[9]))
    else:
        found += issues("pan", checks.pan(doc.pan))
        found += name_match(doc.pan, doc.name)
    individual = doc.pan is not None and doc.pan[3] == "P"
    found += check_dates("date_of_birth", doc.date_of_birth, today=today,
                         earliest=date(today.year - 130 if individual else 1800, 1, 1),
                         future="error", what="date of birth")
    return found


def name_match(pan: str, name: str | None) -> list[Issue]:
    """The 5th letter is the initial of the surname (individuals) or of the entity name: a
    warning when it is the initial of no word of the name (name order varies across India)."""
    if not name or not re.fullmatch(r"[A-Z]{5}[0-9]{4}[A-Z]", pan):
        return []
    initials = {w[0] for w in re.findall(r"[A-Za-z]+", name.upper())
                if w not in {"M", "S", "MS", "MESSRS", "THE", "SHRI", "SMT", "MR", "MRS", "DR"}}
    if initials and pan[4] not in initials:
        return [warning("pan", "pan_name_mismatch",
                        "the 5th letter of the PAN is not the initial of the holder's (sur)name")]
    return []


def _mask_pan(value: object) -> str:
    raw = re.sub(r"\s", "", str(value))
    if len(raw) == 10:
        return raw[:5] + "XXXX" + raw[9]
    return "X" * len(raw)


mask = masker({("pan",): _mask_pan})

"""Identifier checks, dates and money parsing for the document schemas (domain.md section 1).

Each identifier check takes any value and returns a list of findings `(type, message, severity)`,
empty when the value is valid; it never raises and never normalises: the decoder writes the
canonical form (the JSON Schema pattern), so "acup a7085r" is a format error, not a PAN to fix.
`compact()` is there for callers that want to normalise text they typed themselves.
Messages never contain the value itself (logs must stay free of document content).

The algorithms are python-stdnum's wherever it is right (Aadhaar, VID, PAN, GSTIN checksum,
IBAN, UK VAT): an algorithm tested only against our own second copy of it is not tested. Our own
code remains where python-stdnum is wrong or silent, each place naming its source: GST state
codes 38/96/97/99, special GSTIN registrations, the UK VAT remainder 55, IFSC and MICR.
"""

from __future__ import annotations

import re
import string
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from stdnum import exceptions as _std
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum import numdb as _numdb
from stdnum import verhoeff as _verhoeff
from stdnum.gb import vat as _gb_vat
from stdnum.in_ import aadhaar as _aadhaar
from stdnum.in_ import pan as _pan
from stdnum.in_ import vid as _vid

Finding = tuple[str, str, str]

# The SWIFT IBAN registry as python-stdnum ships it (country -> BBAN structure).
_IBAN_DB = _numdb.get("iban")

ERROR = "error"
WARNING = "warning"

_ALNUM36 = string.digits + string.ascii_uppercase

# The holder types of python-stdnum's PAN module (the 4th letter); kept here for the messages.
PAN_HOLDER_TYPES = {
    "P": "individual", "C": "company", "H": "Hindu undivided family", "F": "firm or LLP",
    "A": "association of persons", "B": "body of individuals", "G": "government",
    "J": "artificial juridical person", "L": "local authority", "T": "trust", "K": "krish (legacy)",
}

# GST state codes (CBIC). python-stdnum's GSTIN table stops at 37, so this table is ours: it
# adds 38 Ladakh (UT since 31 October 2019), 97 Other Territory and 99 Centre Jurisdiction
# (GSTN state code list, CBIC notification of state codes), and 96 Other Countries, the place
# of supply of exports in GST returns (GSTR-1 "Place of Supply" list). 25 (Daman and Diu) was
# merged into 26 in January 2020 and 28 is Andhra Pradesh before its division: both still
# appear on old documents.
GST_STATES = {
    "01": "Jammu and Kashmir", "02": "Himachal Pradesh", "03": "Punjab", "04": "Chandigarh",
    "05": "Uttarakhand", "06": "Haryana", "07": "Delhi", "08": "Rajasthan", "09": "Uttar Pradesh",
    "10": "Bihar", "11": "Sikkim", "12": "Arunachal Pradesh", "13": "Nagaland", "14": "Manipur",
    "15": "Mizoram", "16": "Tripura", "17": "Meghalaya", "18": "Assam", "19": "West Bengal",
    "20": "Jharkhand", "21": "Odisha", "22": "Chhattisgarh", "23": "Madhya Pradesh",
    "24": "Gujarat", "25": "Daman and Diu", "26": "Dadra and Nagar Haveli and Daman and Diu",
    "27": "Maharashtra", "28": "Andhra Pradesh (before division)", "29": "Karnataka", "30": "Goa",
    "31": "Lakshadweep", "32": "Kerala", "33": "Tamil Nadu", "34": "Puducherry",
    "35": "Andaman and Nicobar Islands", "36": "Telangana", "37": "Andhra Pradesh",
    "38": "Ladakh", "96": "Other Countries", "97": "Other Territory", "99": "Centre Jurisdiction",
}
GST_STATES_RETIRED = frozenset({"25", "28"})
# The place of supply of an export: never the state of a registration.
GST_EXPORT = "96"

_RX = {
    "aadhaar": re.compile(r"[2-9][0-9]{11}"),
    "vid": re.compile(r"[2-9][0-9]{15}"),
    "pan": re.compile(r"[A-Z]{5}[0-9]{4}[A-Z]"),
    # Any 15-character GST identifier (the shape of the NIC e-invoice schema); which form it is
    # decides the checks below.
    "gstin": re.compile(r"[0-9]{2}[0-9A-Z]{13}"),
    "ifsc": re.compile(r"[A-Z]{4}0[A-Z0-9]{6}"),
    "micr": re.compile(r"[0-9]{9}"),
    "iban": re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}"),
    "uk_vat": re.compile(r"(GB|XI)?([0-9]{9}|[0-9]{12}|GD[0-9]{3}|HA[0-9]{3}|(GD|HA)8888[0-9]{5})"),
}

# GSTIN forms. The regular one is python-stdnum's (state, PAN, entity 1-9/A-Z, "Z", check).
# The special registrations are not in python-stdnum: their shapes are those the GST portal
# issues, as listed by the india-compliance GST app (resilient-tech, gst_india constants):
# TDS deductors registered on a TAN, e-commerce operators collecting TCS, UIN of UN bodies and
# embassies, non-resident taxable persons, OIDAR providers and government departments.
_GSTIN_REGULAR = re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]")
_GSTIN_PAN_BASED = re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z][1-9A-Z][0-9A-Z]")
_GSTIN_SPECIAL = (
    ("a TDS registration on a TAN", re.compile(r"[0-9]{2}[A-Z]{4}[A-Z0-9][0-9]{4}[A-Z][1-9A-Z]D"
                                               r"[0-9A-Z]")),
    ("a UIN of a UN body or embassy", re.compile(r"[0-9]{4}[A-Z]{3}[0-9]{5}[UO]N[0-9A-Z]")),
    ("a non-resident taxable person", re.compile(r"[0-9]{4}[A-Z]{3}[0-9]{5}NR[0-9A-Z]")),
    ("an OIDAR registration", re.compile(r"99[0-9]{2}[A-Z]{3}[0-9]{5}OS[0-9A-Z]")),
    ("a government department ID", re.compile(r"[0-9]{2}[A-Z]{4}[0-9]{5}[A-Z][0-9]Z[0-9]")),
)


def compact(value: str) -> str:
    """Uppercase and drop spaces, hyphens and dots: "acup a7085r" -> "ACUPA7085R"."""
    return re.sub(r"[\s.\-]", "", value).upper()


def _err(code: str, msg: str) -> list[Finding]:
    return [(code, msg, ERROR)]


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def verhoeff_digit(digits: str) -> str:
    """The Verhoeff check digit to append to the decimal string `digits` (python-stdnum)."""
    return _verhoeff.calc_check_digit(digits)


def verhoeff_ok(digits: str) -> bool:
    """True when the decimal string `digits` ends with its correct Verhoeff check digit."""
    if not isinstance(digits, str) or not digits.isascii() or not digits.isdigit():
        return False
    return _verhoeff.is_valid(digits)


def aadhaar(value: Any) -> list[Finding]:
    """12 digits, first 2-9, not a palindrome, Verhoeff check digit (UIDAI; python-stdnum
    stdnum.in_.aadhaar)."""
    if not _is_str(value) or not _RX["aadhaar"].fullmatch(value):
        return _err("aadhaar_format", "an Aadhaar number is 12 digits, the first one 2-9")
    try:
        _aadhaar.validate(value)
    except _std.InvalidChecksum:
        return _err("aadhaar_checksum", "the Verhoeff check digit does not match")
    except _std.ValidationError:
        return _err("aadhaar_format", "a palindrome is not a valid Aadhaar number")
    return []


def vid(value: Any) -> list[Finding]:
    """Virtual ID: 16 digits, first 2-9, not a palindrome, Verhoeff check digit (python-stdnum
    stdnum.in_.vid)."""
    if not _is_str(value) or not _RX["vid"].fullmatch(value):
        return _err("vid_format", "a VID is 16 digits, the first one 2-9")
    try:
        _vid.validate(value)
    except _std.InvalidChecksum:
        return _err("vid_checksum", "the Verhoeff check digit does not match")
    except _std.ValidationError:
        return _err("vid_format", "a palindrome is not a valid VID")
    return []


def pan(value: Any) -> list[Finding]:
    """AAAAA9999A; 4th letter a holder type; serial 0001-9999 (python-stdnum stdnum.in_.pan).
    The 10th letter's algorithm is not public, so it is not checked."""
    if not _is_str(value) or not _RX["pan"].fullmatch(value):
        return _err("pan_format", "a PAN is 5 letters, 4 digits, 1 letter")
    if _pan.is_valid(value):
        return []
    if value[5:9] == "0000":
        return _err("pan_serial", "the serial number 0000 is never issued")
    return _err("pan_holder_type", "the 4th letter is not a known PAN holder type")


def gstin_check_char(first14: str) -> str:
    """Luhn mod 36 check character for the first 14 characters of a GSTIN (python-stdnum)."""
    return _luhn.calc_check_digit(first14, _ALNUM36)


def gstin(value: Any) -> list[Finding]:
    """A regular GSTIN: state code, embedded PAN, registration count 1-9/A-Z, "Z", Luhn mod 36
    check character (python-stdnum stdnum.in_.gstin, with our state code table). Special
    registrations (TDS on a TAN, TCS, UIN, non-resident, OIDAR, government) are warnings."""
    if not _is_str(value) or not _RX["gstin"].fullmatch(value):
        return _err("gstin_format", "a GSTIN is 15 capital letters and digits, the first two "
                    "a state code")
    if _GSTIN_PAN_BASED.fullmatch(value):
        return _gstin_pan_based(value)
    for kind, rx in _GSTIN_SPECIAL:
        if rx.fullmatch(value):
            found = [("gstin_special", f"{kind}: a special registration; check it on the GST "
                                       "portal", WARNING)]
            if not _luhn.is_valid(value, _ALNUM36):
                # The portal's check character of these forms is not documented publicly:
                # reported, never a rejection (domain.md 1.3).
                found.append(("gstin_checksum", "the check character (15th) does not match the "
                              "regular GSTIN algorithm", WARNING))
            return found
    return _err("gstin_format", "not a GSTIN: 2 digits, a PAN, an entity code 1-9/A-Z, Z and a "
                "check character (or a recognised special registration)")


def _gstin_pan_based(value: str) -> list[Finding]:
    found: list[Finding] = []
    state = value[:2]
    if state == GST_EXPORT:
        found.append(("gstin_state_code", "96 is the place of supply of exports, not a state "
                      "of registration", WARNING))
    elif state not in GST_STATES:
        found.append(("gstin_state_code", "the first two digits are not a GST state code", ERROR))
    elif state in GST_STATES_RETIRED:
        found.append(("gstin_state_code", "the state code is no longer issued", WARNING))
    for code, msg, sev in pan(value[2:12]):
        found.append(("gstin_pan", f"characters 3-12 are not a valid PAN: {msg}", sev))
    if value[13] != "Z":
        found.append(("gstin_special", ("the 14th character is not Z: a special registration "
                                        "(e.g. TCS of an e-commerce operator); check it on the "
                                        "GST portal"), WARNING))
    if not _luhn.is_valid(value, _ALNUM36):
        found.append(("gstin_checksum", "the check character (15th) does not match", ERROR))
    return found


def ifsc(value: Any) -> list[Finding]:
    """4-letter bank code, "0", 6-character branch code; no check digit exists. Our own check:
    python-stdnum has no IFSC module (RBI, IFSC format)."""
    if not _is_str(value) or not _RX["ifsc"].fullmatch(value):
        return _err("ifsc_format", "an IFSC is 4 letters, 0, then 6 letters or digits")
    return []


def micr(value: Any) -> list[Finding]:
    """9 digits: city, bank and branch codes; no check digit exists. Our own check:
    python-stdnum has no MICR module (RBI, MICR code structure)."""
    if not _is_str(value) or not _RX["micr"].fullmatch(value):
        return _err("micr_format", "a MICR code is 9 digits")
    if value[:3] == "000":
        return _err("micr_format", "a MICR city code is never 000")
    return []


def uk_vat_checksum(nine: str) -> int:
    """HMRC weighted sum of a 9-digit VAT number, mod 97 (0: old series, 42: "9755" series)."""
    return _gb_vat.checksum(nine)


def uk_vat(value: Any) -> list[Finding]:
    """GB/XI prefix optional; 9 digits, 12 (9 + branch), GD000-GD499, HA500-HA999 or the
    GD8888/HA8888 forms (python-stdnum stdnum.gb.vat), with one correction: python-stdnum also
    accepts a weighted-sum remainder of 55. HMRC's rule has two series only: the original one
    (sum mod 97 == 0) and the "9755" one for numbers issued from November 2009 (sum + 55 is a
    multiple of 97, i.e. remainder 42); see domain.md 1.8 and HMRC's VAT registration number
    check (VATREC / "9755" modulus). Remainder 55 is neither."""
    if not _is_str(value) or not _RX["uk_vat"].fullmatch(value):
        return _err("vat_number_format", "a UK VAT number is 9 or 12 digits (GB/XI prefix "
                    "optional), GDnnn or HAnnn")
    try:
        body = _gb_vat.validate(value)
    except _std.InvalidChecksum:
        return _err("vat_number_checksum", "the mod 97 check digits do not match")
    except _std.ValidationError:
        return _err("vat_number_format", "government department numbers are GD000-GD499, "
                    "health authorities HA500-HA999")
    if body.isdigit() and uk_vat_checksum(body[:9]) == 55:
        return _err("vat_number_checksum", "the mod 97 check digits do not match")
    return []


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits of the IBAN with this country code and BBAN (python-stdnum)."""
    return _iban.calc_check_digits(country + "00" + bban)


def iban(value: Any) -> list[Finding]:
    """ISO 13616 (python-stdnum stdnum.iban): a country of the SWIFT IBAN registry, its BBAN
    structure and length, mod 97 == 1, and the national check digits inside the BBAN where
    python-stdnum knows them (BE, ES, ME, NO). A Belgian bank code missing from python-stdnum's
    bank list is a warning: the list is a lookup table that can be out of date."""
    if not _is_str(value) or not _RX["iban"].fullmatch(value):
        return _err("iban_format", "an IBAN is a country code, 2 check digits and the BBAN")
    if not _IBAN_DB.info(value)[0][1]:
        return _err("iban_country", "this country does not use IBANs")
    # The structure alone: the same BBAN with correct check digits.
    shaped = value[:2] + iban_check_digits(value[:2], value[4:]) + value[4:]
    try:
        _iban.validate(shaped, check_country=False)
    except _std.ValidationError:
        return _err("iban_format", "the BBAN does not have this country's length or structure")
    if shaped != value:
        return _err("iban_checksum", "the IBAN check digits do not match")
    try:
        _iban.validate(value, check_country=True)
    except _std.InvalidComponent:
        return [("iban_bank", "the bank code is not in python-stdnum's list for this country",
                 WARNING)]
    except _std.ValidationError:
        return _err("iban_checksum", "the national check digits inside the IBAN do not match")
    return []


def sort_code(value: Any) -> list[Finding]:
    """Six digits printed NN-NN-NN (the modulus tables of Pay.UK are not shipped)."""
    if not _is_str(value) or not re.fullmatch(r"[0-9]{2}-[0-9]{2}-[0-9]{2}", value):
        return _err("sort_code_format", "a sort code is six digits written NN-NN-NN")
    return []


def is_valid(check, value: Any) -> bool:
    """True when `check(value)` reports no error (warnings allowed)."""
    return not any(sev == ERROR for _, _, sev in check(value))


_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august",
                "september", "october", "november", "december")
_MONTHS = {**{m: i + 1 for i, m in enumerate(_MONTH_NAMES)},
           **{m[:3]: i + 1 for i, m in enumerate(_MONTH_NAMES)}, "sept": 9}


def parse_date(text: Any) -> date | None:
    """A printed Indian/UK date, day first: 05/04/2024, 05-04-24, 05.04.2024, 05-Apr-2024,
    "5 April 2024", or ISO 2024-04-05. None when it is not a real date. Two-digit years are
    20YY when that is not in the future (statement style), else 19YY."""
    if not isinstance(text, str):
        return None
    s = text.strip().lower().replace(",", " ")
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", s)
    if m:
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    else:
        m = re.fullmatch(r"(\d{1,2})\s*[/.\- ]\s*([a-z]+|\d{1,2})\.?\s*[/.\- ]\s*(\d{2}|\d{4})", s)
        if not m:
            return None
        d, y = int(m[1]), int(m[3])
        month = m[2]
        if month.isdigit():
            mo = int(month)
        elif month in _MONTHS:
            mo = _MONTHS[month]
        else:
            return None
        if len(m[3]) == 2:
            y = 2000 + y if 2000 + y <= date.today().year else 1900 + y
    try:
        return date(y, mo, d)
    except ValueError:
        return None


_AMOUNT_PREFIX = re.compile(r"^(₹|rs\.?|inr|£|gbp|\$|usd|€|eur)\s*", re.IGNORECASE)


def parse_amount(text: Any) -> Decimal | None:
    """A printed amount as Decimal: "₹1,23,45,678.90", "Rs. 1,000/-", "INR 500", "£1,234.50",
    "1,234.50 Dr" (negative), "(250.00)" (negative), "-12.5". Lakh/crore grouping (last three
    digits, then pairs) and international grouping (threes) are both accepted, mixtures are not.
    None when the text is not an amount. Never goes through float."""
    if not isinstance(text, str):
        return None
    s = text.strip()
    negative = False
    m = re.search(r"\s*\b(dr|cr)\.?$", s, re.IGNORECASE)
    if m:
        negative = m[1].lower() == "dr"
        s = s[: m.start()].strip()
    if s.startswith("(") and s.endswith(")"):
        negative, s = True, s[1:-1].strip()
    if s.startswith("-"):
        negative, s = not negative, s[1:].strip()
    s = _AMOUNT_PREFIX.sub("", s)
    if s.endswith("/-"):
        s = s[:-2].strip()
    if s.startswith("-"):
        negative, s = not negative, s[1:].strip()
    m = re.fullmatch(r"(\d[\d,]*)(\.\d+)?", s)
    if not m:
        return None
    whole = m[1]
    if "," in whole:
        groups = whole.split(",")
        head, tail = groups[0], groups[1:]
        indian = (len(tail[-1]) == 3 and all(len(g) == 2 for g in tail[:-1])
                  and 1 <= len(head) <= 2)
        western = all(len(g) == 3 for g in tail) and 1 <= len(head) <= 3
        single = len(tail) == 1 and len(tail[0]) == 3 and 1 <= len(head) <= 3
        if not (indian or western or single):
            return None
    try:
        value = Decimal(whole.replace(",", "") + (m[2] or ""))
    except InvalidOperation:
        return None
    return -value if negative else value


_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"thousand": 10**3, "lakh": 10**5, "lakhs": 10**5, "lac": 10**5, "lacs": 10**5,
           "crore": 10**7, "crores": 10**7, "million": 10**6, "billion": 10**9}
_MAJOR = {"rupees", "rupee", "rs", "inr", "pounds", "pound", "gbp", "sterling", "dollars",
          "dollar", "usd", "euros", "euro", "eur"}
_MINOR = {"paise", "paisa", "pence", "penny", "cents", "cent", "p"}
_FILLER = {"only", "and", "indian", "us", "the", "sum", "of", "amount", "in", "words", "total",
           "chargeable"}


def _words_number(words: list[str]) -> int | None:
    if not words:
        return None
    total = current = 0
    for w in words:
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = (current or 1) * 100
        elif w in _SCALES:
            scale = _SCALES[w]
            if current == 0 and total:
                total *= scale
            else:
                total += (current or 1) * scale
            current = 0
        else:
            return None
    return total + current


def words_to_amount(text: Any) -> Decimal | None:
    """"Rupees One Lakh Twenty Thousand and Fifty Paise Only" -> Decimal("120000.50").
    Indian (lakh, crore) and international scales; None when any word is not understood."""
    if not isinstance(text, str):
        return None
    words = re.sub(r"[^a-z\s]", " ", text.lower().replace("-", " ")).split()
    if not words or re.search(r"\d", text):
        return None
    minor_at = next((i for i, w in enumerate(words) if w in _MINOR), None)
    minor_words: list[str] = []
    if minor_at is not None:
        before = []
        i = minor_at - 1
        while i >= 0 and words[i] not in _MAJOR and words[i] not in _FILLER:
            before.insert(0, words[i])
            i -= 1
        if before:
            minor_words = before
            major = words[: i + 1] + words[minor_at + 1:]
        else:
            j = minor_at + 1
            while j < len(words) and words[j] not in _FILLER and words[j] not in _MAJOR:
                minor_words.append(words[j])
                j += 1
            major = words[:minor_at] + words[j:]
    else:
        major = words
    major = [w for w in major if w not in _MAJOR and w not in _FILLER]
    whole = _words_number(major) if major else 0
    fraction = _words_number(minor_words) if minor_words else 0
    if whole is None or fraction is None or fraction > 99 or (not major and not minor_words):
        return None
    return Decimal(whole * 100 + fraction).scaleb(-2)

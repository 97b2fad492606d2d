"""Identifier checks, dates and money parsing for the document schemas (domain.md section 1).

Each identifier check takes any value and returns a list of findings `(type, message, severity)`,
empty when the value is valid; it never raises and never normalises: the decoder writes the
canonical form (the JSON Schema pattern), so "acup a7085r" is a format error, not a PAN to fix.
`compact()` is there for callers that want to normalise text they typed themselves.
Messages never contain the value itself (logs must stay free of document content).
"""

from __future__ import annotations

import re
import string
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

Finding = tuple[str, str, str]

ERROR = "error"
WARNING = "warning"

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 8, 3, 0, 2, 1, 7, 6),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 2, 6, 1, 5, 8, 3, 9),
)
_VERHOEFF_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)

_ALNUM36 = string.digits + string.ascii_uppercase

PAN_HOLDER_TYPES = {
    "P": "individual", "C": "company", "H": "Hindu undivided family", "F": "firm or LLP",
    "A": "association of persons", "B": "body of individuals", "G": "government",
    "J": "artificial juridical person", "L": "local authority", "T": "trust", "K": "krish (legacy)",
}

# GST state codes (CBIC); 25 (Daman and Diu) was merged into 26 in January 2020 and 28 is
# Andhra Pradesh before its division: both still appear on old documents.
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
    "38": "Ladakh", "97": "Other Territory", "99": "Centre Jurisdiction",
}
GST_STATES_RETIRED = frozenset({"25", "28"})

# IBAN lengths per country (SWIFT IBAN registry); India has no IBAN.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

_RX = {
    "aadhaar": re.compile(r"[2-9][0-9]{11}"),
    "vid": re.compile(r"[2-9][0-9]{15}"),
    "pan": re.compile(r"[A-Z]{5}[0-9]{4}[A-Z]"),
    "gstin": re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z][0-9A-Z]{2}"),
    "ifsc": re.compile(r"[A-Z]{4}0[A-Z0-9]{6}"),
    "micr": re.compile(r"[0-9]{9}"),
    "vat9": re.compile(r"[0-9]{9}([0-9]{3})?"),
    "iban": re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}"),
    "gb_bban": re.compile(r"[A-Z]{4}[0-9]{14}"),
    "sort_code": re.compile(r"[0-9]{2}-?[0-9]{2}-?[0-9]{2}"),
}


def compact(value: str) -> str:
    """Uppercase and drop spaces, hyphens and dots: "acup a7085r" -> "ACUPA7085R"."""
    return re.sub(r"[\s.\-]", "", value).upper()


def _err(code: str, msg: str) -> list[Finding]:
    return [(code, msg, ERROR)]


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def verhoeff_digit(digits: str) -> str:
    """The Verhoeff check digit to append to the decimal string `digits`."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[(i + 1) % 8][int(ch)]]
    return str(_VERHOEFF_INV[c])


def verhoeff_ok(digits: str) -> bool:
    """True when the decimal string `digits` ends with its correct Verhoeff check digit."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def aadhaar(value: Any) -> list[Finding]:
    """12 digits, first 2-9, not a palindrome, Verhoeff check digit (UIDAI)."""
    if not _is_str(value) or not _RX["aadhaar"].fullmatch(value):
        return _err("aadhaar_format", "an Aadhaar number is 12 digits, the first one 2-9")
    if value == value[::-1]:
        return _err("aadhaar_format", "a palindrome is not a valid Aadhaar number")
    if not verhoeff_ok(value):
        return _err("aadhaar_checksum", "the Verhoeff check digit does not match")
    return []


def vid(value: Any) -> list[Finding]:
    """Virtual ID: 16 digits, first 2-9, Verhoeff check digit."""
    if not _is_str(value) or not _RX["vid"].fullmatch(value):
        return _err("vid_format", "a VID is 16 digits, the first one 2-9")
    if not verhoeff_ok(value):
        return _err("vid_checksum", "the Verhoeff check digit does not match")
    return []


def pan(value: Any) -> list[Finding]:
    """AAAAA9999A; 4th letter a holder type; serial 0001-9999. The 10th letter's algorithm is
    not public, so it is not checked."""
    if not _is_str(value) or not _RX["pan"].fullmatch(value):
        return _err("pan_format", "a PAN is 5 letters, 4 digits, 1 letter")
    if value[3] not in PAN_HOLDER_TYPES:
        return _err("pan_holder_type", "the 4th letter is not a known PAN holder type")
    if value[5:9] == "0000":
        return _err("pan_serial", "the serial number 0000 is never issued")
    return []


def gstin_check_char(first14: str) -> str:
    """Luhn mod 36 check character for the first 14 characters of a GSTIN."""
    total = 0
    for i, ch in enumerate(first14):
        v = _ALNUM36.index(ch) * (2 if i % 2 else 1)
        total += v // 36 + v % 36
    return _ALNUM36[(36 - total % 36) % 36]


def gstin(value: Any) -> list[Finding]:
    """State code, embedded PAN, registration count 1-9/A-Z, Luhn mod 36 check character."""
    if not _is_str(value) or not _RX["gstin"].fullmatch(value):
        return _err("gstin_format", "a GSTIN is 2 digits, a PAN, an entity code 1-9/A-Z, "
                    "a letter or digit and a check character")
    found: list[Finding] = []
    if value[:2] not in GST_STATES:
        found.append(("gstin_state_code", "the first two digits are not a GST state code", ERROR))
    elif value[:2] in GST_STATES_RETIRED:
        found.append(("gstin_state_code", "the state code is no longer issued", WARNING))
    for code, msg, sev in pan(value[2:12]):
        found.append(("gstin_pan", f"characters 3-12 are not a valid PAN: {msg}", sev))
    if value[13] != "Z":
        found.append(("gstin_special", ("the 14th character is not Z: a special registration "
                                        "(TDS/TCS, UIN, non-resident); check it on the GST "
                                        "portal"), WARNING))
    if gstin_check_char(value[:14]) != value[14]:
        found.append(("gstin_checksum", "the check character (15th) does not match", ERROR))
    return found


def ifsc(value: Any) -> list[Finding]:
    """4-letter bank code, "0", 6-character branch code (RBI); no check digit exists."""
    if not _is_str(value) or not _RX["ifsc"].fullmatch(value):
        return _err("ifsc_format", "an IFSC is 4 letters, 0, then 6 letters or digits")
    return []


def micr(value: Any) -> list[Finding]:
    """9 digits: city, bank and branch codes; no check digit exists."""
    if not _is_str(value) or not _RX["micr"].fullmatch(value):
        return _err("micr_format", "a MICR code is 9 digits")
    if value[:3] == "000":
        return _err("micr_format", "a MICR city code is never 000")
    return []


def uk_vat_checksum(nine: str) -> int:
    """HMRC weighted sum of a 9-digit VAT number, mod 97 (0: old series, 42: "9755" series)."""
    weights = (8, 7, 6, 5, 4, 3, 2, 10, 1)
    return sum(w * int(d) for w, d in zip(weights, nine)) % 97


def uk_vat(value: Any) -> list[Finding]:
    """GB/XI prefix optional; 9 digits, 12 (9 + branch), GD000-GD499 or HA500-HA999."""
    if not _is_str(value):
        return _err("vat_number_format", "a UK VAT number is a string")
    body = value[2:] if value[:2] in ("GB", "XI") else value
    if body.startswith("GD") and body[2:].isdigit() and len(body) == 5 and body.isascii():
        if int(body[2:]) < 500:
            return []
        return _err("vat_number_format", "government department numbers are GD000-GD499")
    if body.startswith("HA") and body[2:].isdigit() and len(body) == 5 and body.isascii():
        if int(body[2:]) >= 500:
            return []
        return _err("vat_number_format", "health authority numbers are HA500-HA999")
    if not _RX["vat9"].fullmatch(body):
        return _err("vat_number_format", "a UK VAT number is 9 or 12 digits (GB/XI prefix "
                    "optional), GDnnn or HAnnn")
    remainder = uk_vat_checksum(body[:9])
    if remainder == 0 or (remainder == 42 and int(body[:9]) >= 100_000_000):
        return []
    return _err("vat_number_checksum", "the mod 97 check digits do not match")


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits of the IBAN with this country code and BBAN."""
    return f"{98 - _iban_mod97(bban + country + '00'):02d}"


def _iban_mod97(text: str) -> int:
    return int("".join(str(_ALNUM36.index(c)) for c in text)) % 97


def iban(value: Any) -> list[Finding]:
    """ISO 13616: country length and, for GB, the BBAN shape; mod 97 of the rearranged string
    must be 1."""
    if not _is_str(value) or not _RX["iban"].fullmatch(value):
        return _err("iban_format", "an IBAN is a country code, 2 check digits and the BBAN")
    length = IBAN_LENGTHS.get(value[:2])
    if length is None:
        return _err("iban_country", "this country does not use IBANs")
    if len(value) != length:
        return _err("iban_format", f"an IBAN of this country has {length} characters")
    if value[:2] == "GB" and not _RX["gb_bban"].fullmatch(value[4:]):
        return _err("iban_format", "a GB IBAN holds 4 letters, a sort code and an 8-digit "
                    "account number")
    if _iban_mod97(value[4:] + value[:4]) != 1:
        return _err("iban_checksum", "the IBAN check digits do not match")
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

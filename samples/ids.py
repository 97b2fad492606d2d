"""Identifier makers for synthetic documents: every number is drawn from a seeded `random.Random`
and carries a correct check digit (or, for the broken variants, a deliberately wrong one).

Written independently of `docextract.schemas.checks` (which uses python-stdnum): the sample tests
check every generated identifier with python-stdnum, the reference nobody here wrote.
"""

from __future__ import annotations

import random
import string


def _d5(j: int, k: int) -> int:
    """Multiplication in the dihedral group D5: 0-4 rotations, 5-9 reflections (Verhoeff 1969)."""
    if j < 5:
        return (j + k) % 5 + (5 if k >= 5 else 0)
    return (j - k) % 5 + (5 if k < 5 else 0)


# The permutation of position 1 is (1 5 7 6 2 8 3 0 9 4) in one-line form; position i uses it
# i times, and the 8th power is the identity. Derived, never typed in: a typed table once had
# two wrong rows here and made every sample Aadhaar number invalid.
_P1 = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)


def _powers(perm: tuple[int, ...], count: int) -> tuple[tuple[int, ...], ...]:
    rows = [tuple(range(10))]
    for _ in range(count - 1):
        rows.append(tuple(perm[x] for x in rows[-1]))
    return tuple(rows)


_VERHOEFF_D = tuple(tuple(_d5(j, k) for k in range(10)) for j in range(10))
_VERHOEFF_P = _powers(_P1, 8)
assert tuple(_P1[x] for x in _VERHOEFF_P[7]) == tuple(range(10)), "p^8 must be the identity"
_VERHOEFF_INV = tuple(next(k for k in range(10) if _VERHOEFF_D[j][k] == 0) for j in range(10))

_ALNUM36 = string.digits + string.ascii_uppercase

# GST state codes used for addresses (code, state); 25 is retired, 97/99 are not places.
GST_STATES = (
    ("07", "Delhi"),
    ("09", "Uttar Pradesh"),
    ("19", "West Bengal"),
    ("24", "Gujarat"),
    ("27", "Maharashtra"),
    ("29", "Karnataka"),
    ("32", "Kerala"),
    ("33", "Tamil Nadu"),
    ("36", "Telangana"),
    ("08", "Rajasthan"),
    ("06", "Haryana"),
)


def verhoeff_check_digit(digits: str) -> str:
    """The digit to append to `digits` so that the Verhoeff checksum of the whole is 0."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[(i + 1) % 8][int(ch)]]
    return str(_VERHOEFF_INV[c])


def verhoeff_valid(number: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(number)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def aadhaar(rng: random.Random) -> str:
    """12 digits, first 2-9, Verhoeff-valid, not a palindrome."""
    while True:
        body = str(rng.randint(2, 9)) + "".join(rng.choice(string.digits) for _ in range(10))
        number = body + verhoeff_check_digit(body)
        if number != number[::-1]:
            return number


def break_verhoeff(number: str) -> str:
    """The same number with its last digit replaced so the checksum fails."""
    good = number[-1]
    return number[:-1] + str((int(good) + 1) % 10)


def pan(rng: random.Random, holder: str, name_letter: str, serial: int | None = None) -> str:
    """PAN: 3 letters, holder type, first letter of surname/entity name, serial 0001-9999, letter.

    The last letter's algorithm is undocumented (domain.md 1.1), so it is drawn at random.
    """
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(3))
    number = rng.randint(1, 9999) if serial is None else serial
    return f"{letters}{holder}{name_letter.upper()}{number:04d}{rng.choice(string.ascii_uppercase)}"


def gstin_check_char(first14: str) -> str:
    total = 0
    for i, ch in enumerate(first14):
        v = _ALNUM36.index(ch) * (1 if i % 2 == 0 else 2)
        total += v // 36 + v % 36
    return _ALNUM36[(36 - total % 36) % 36]


def gstin(rng: random.Random, state_code: str, pan_number: str) -> str:
    """State code + PAN + entity number (1-9, then A-Z) + "Z" + mod-36 check character."""
    entity = rng.choice("1111112223AB")
    first14 = f"{state_code}{pan_number}{entity}Z"
    return first14 + gstin_check_char(first14)


def break_gstin(number: str) -> str:
    """Same GSTIN with a check character that does not match."""
    good = number[-1]
    return number[:-1] + _ALNUM36[(_ALNUM36.index(good) + 7) % 36]


def uk_vat(rng: random.Random) -> str:
    """9-digit UK VAT number valid under the mod 97 (remainder 0) or "9755" (remainder 42) rule."""
    while True:
        first7 = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(6))
        s = sum(w * int(d) for w, d in zip(range(8, 1, -1), first7))
        target = rng.choice((0, 42))
        # Total S = s + last2 must be = target (mod 97); last2 is 10*d8 + d9 in 0..99.
        last2 = (target - s) % 97
        candidates = [v for v in (last2, last2 + 97) if v <= 99]
        number = f"{first7}{rng.choice(candidates):02d}"
        if int(number) >= 100_000_000:
            return number


def ifsc(rng: random.Random, bank_code: str) -> str:
    """4-letter bank code, a literal 0, then a 6-character branch code (digits here)."""
    return f"{bank_code}0{rng.randint(0, 999999):06d}"


def micr(rng: random.Random, city_code: str, bank_code: str) -> str:
    """3-digit city code + 3-digit bank code + 3-digit branch code."""
    return f"{city_code}{bank_code}{rng.randint(1, 999):03d}"


def iban_gb(bank: str, sort_code: str, account: str) -> str:
    """GB IBAN: "GB" + mod-97 check digits + bank code + sort code + account number."""
    bban = f"{bank}{sort_code}{account}"
    rearranged = bban + "GB00"
    numeric = "".join(str(_ALNUM36.index(ch)) for ch in rearranged)
    return f"GB{98 - int(numeric) % 97:02d}{bban}"


def account_number(rng: random.Random, length: int) -> str:
    return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(length - 1))

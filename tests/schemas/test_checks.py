"""Identifier checks with the public values of domain.md, every single-character corruption of
them, property tests, and the date/amount parsers."""

from __future__ import annotations

import random
import string
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stdnum import iban as std_iban
from stdnum import luhn as std_luhn
from stdnum import verhoeff as std_verhoeff

from docextract.schemas import checks

VALID = {
    "aadhaar": ["234123412346"],
    "vid": ["2341234123412341"],
    "gstin": ["27AAPFU0939F1ZV", "06AABCO6063D1ZQ"],
    "uk_vat": ["980780684", "GB980780684", "XI980780684", "980780684001", "GD123", "HA612"],
    "iban": ["GB82WEST12345698765432", "DE89370400440532013000"],
    "pan": ["ACUPA7085R"],
    "ifsc": ["SBIN0061100"],
    "micr": ["400002012"],
    "sort_code": ["12-34-56"],
}
ALNUM36 = string.digits + string.ascii_uppercase
# Characters a misread or a typo can put in an identifier.
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase + " -./"
FAST = settings(max_examples=60, deadline=None)


def corruptions(value: str):
    """Every substitution of one character, every deletion and every insertion (at the ends:
    inside, an insertion is a substitution of a longer string, covered by length checks)."""
    for i, old in enumerate(value):
        for ch in ALPHABET:
            if ch != old:
                yield value[:i] + ch + value[i + 1:]
        yield value[:i] + value[i + 1:]
    for ch in string.digits:
        yield value + ch
        yield ch + value


def failing(check, value):
    return [c for c in corruptions(value) if checks.is_valid(check, c)]


@pytest.mark.parametrize("kind,value", [(k, v) for k, vs in VALID.items() for v in vs])
def test_public_values_are_valid(kind, value):
    assert getattr(checks, kind)(value) == []


@pytest.mark.parametrize("kind,value", [("aadhaar", "234123412346"),
                                        ("vid", "2341234123412341"),
                                        ("gstin", "27AAPFU0939F1ZV"),
                                        ("gstin", "06AABCO6063D1ZQ"),
                                        ("iban", "GB82WEST12345698765432")])
def test_every_single_character_corruption_fails(kind, value):
    assert failing(getattr(checks, kind), value) == []


def test_uk_vat_corruptions_fail_except_the_second_series_collision():
    # The HMRC "9755" series accepts remainder 42 besides 0: a change of +42 in the weighted sum
    # (weight 6 digit +7, weight 7 digit +6) turns one valid number into another valid one.
    def remainder(s):
        digits = s[-9:]
        return sum(w * int(d) for w, d in zip((8, 7, 6, 5, 4, 3, 2, 10, 1), digits)) % 97

    for value in ("980780684", "GB980780684"):
        passing = failing(checks.uk_vat, value)
        assert passing == [value.replace("980", "987")]
        assert all(remainder(p) == 42 for p in passing)


def test_pan_corruptions_that_change_shape_type_or_serial_fail():
    # The PAN's 10th letter has no public check algorithm, so a letter replaced by another
    # letter in positions 1-3, 5 or 10 cannot be detected; everything else must be.
    value = "ACUPA7085R"
    for bad in failing(checks.pan, value):
        assert len(bad) == 10 and bad[:3].isupper() and bad[4].isupper() and bad[9].isupper()
        assert bad[3] == "P" or bad[3] in checks.PAN_HOLDER_TYPES
        assert bad[5:9].isdigit() and bad[5:9] != "0000"
        assert sum(a != b for a, b in zip(bad, value)) == 1
    assert checks.pan("ACUXA7085R")[0][0] == "pan_holder_type"
    assert checks.pan("ACUPA0000R")[0][0] == "pan_serial"
    assert checks.pan("ACUPA708SR")[0][0] == "pan_format"


def test_specific_codes():
    assert checks.aadhaar("234123412347")[0][0] == "aadhaar_checksum"
    assert checks.aadhaar("134123412346")[0][0] == "aadhaar_format"
    assert checks.aadhaar("234123321432")[0][0] == "aadhaar_format"
    assert checks.vid("2341234123412342")[0][0] == "vid_checksum"
    assert checks.gstin("27AAPFU0939F1ZW")[0][0] == "gstin_checksum"
    assert checks.gstin("27AAPFU0939F0ZV")[0][0] == "gstin_format"
    assert checks.vid("2341234114321432")[0][0] in ("vid_format", "vid_checksum")
    assert {f[0] for f in checks.gstin("40AAPFU0939F1ZV")} >= {"gstin_state_code"}
    assert {f[0] for f in checks.gstin("27AAPXU0939F1ZV")} >= {"gstin_pan"}
    assert checks.uk_vat("980780685")[0][0] == "vat_number_checksum"
    assert checks.uk_vat("GD500")[0][0] == "vat_number_format"
    assert checks.uk_vat("HA499")[0][0] == "vat_number_format"
    assert checks.iban("GB83WEST12345698765432")[0][0] == "iban_checksum"
    assert checks.iban("IN82WEST12345698765432")[0][0] == "iban_country"
    assert checks.iban("GB82WEST1234569876543")[0][0] == "iban_format"
    assert checks.ifsc("SBIN1061100")[0][0] == "ifsc_format"
    assert checks.micr("40000201")[0][0] == "micr_format"


@pytest.mark.parametrize("code", ["38", "97", "99"])
def test_gstin_new_and_special_state_codes(code):
    first14 = code + "AAPFU0939F1Z"
    assert checks.gstin(first14 + std_luhn.calc_check_digit(first14, ALNUM36)) == []


def test_gstin_retired_state_and_special_registration_are_warnings():
    for first14 in ("25AAPFU0939F1Z", "27AAPFU0939F1D"):
        number = first14 + std_luhn.calc_check_digit(first14, ALNUM36)
        found = checks.gstin(number)
        assert found and all(sev == "warning" for _, _, sev in found)
        assert checks.is_valid(checks.gstin, number)


def test_uk_vat_second_series_and_low_numbers():
    # Build a number whose weighted sum is 42 mod 97: valid from 100000000 upwards only.
    for prefix in ("1234567", "0012345"):
        base = sum(w * int(d) for w, d in zip((8, 7, 6, 5, 4, 3, 2), prefix))
        check = next(c for c in range(100) if (base + c) % 97 == 42)
        number = f"{prefix}{check:02d}"
        assert checks.is_valid(checks.uk_vat, number) == (int(number) >= 100_000_000)


@FAST
@given(st.text("0123456789", min_size=11, max_size=11).filter(lambda s: s[0] not in "01"))
def test_generated_aadhaar_numbers_pass(body):
    number = body + std_verhoeff.calc_check_digit(body)
    assert checks.aadhaar(number) == [] or number == number[::-1]


@FAST
@given(st.text("0123456789", min_size=15, max_size=15).filter(lambda s: s[0] not in "01"))
def test_generated_vids_pass(body):
    number = body + std_verhoeff.calc_check_digit(body)
    assert checks.vid(number) == [] or number == number[::-1]


@FAST
@given(st.sampled_from(sorted(checks.GST_STATES.keys() - checks.GST_STATES_RETIRED - {"96"})),
       st.text(string.ascii_uppercase, min_size=3, max_size=3),
       st.sampled_from(sorted(checks.PAN_HOLDER_TYPES)), st.sampled_from(string.ascii_uppercase),
       st.integers(1, 9999), st.sampled_from(string.ascii_uppercase),
       st.sampled_from("123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
def test_generated_gstins_pass(state, head, holder, fifth, serial, last, entity):
    pan = f"{head}{holder}{fifth}{serial:04d}{last}"
    assert checks.pan(pan) == []
    first14 = f"{state}{pan}{entity}Z"
    assert checks.gstin(first14 + std_luhn.calc_check_digit(first14, ALNUM36)) == []


@FAST
@given(st.integers(100_000_000 // 100, 9_999_999), st.sampled_from([0, 42]),
       st.sampled_from(["", "GB", "XI"]), st.sampled_from(["", "001", "123"]))
def test_generated_uk_vat_numbers_pass(seven, remainder, prefix, branch):
    body = f"{seven:07d}"
    base = sum(w * int(d) for w, d in zip((8, 7, 6, 5, 4, 3, 2), body))
    check = next(c for c in range(100) if (base + c) % 97 == remainder)
    number = f"{body}{check:02d}"
    if remainder == 42 and int(number) < 100_000_000:
        return
    assert checks.uk_vat(prefix + number + branch) == []


@FAST
@given(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4),
       st.text("0123456789", min_size=14, max_size=14))
def test_generated_gb_ibans_pass(bank, numbers):
    bban = bank + numbers
    assert checks.iban("GB" + std_iban.calc_check_digits("GB00" + bban) + bban) == []


ALL_CHECKS = [checks.aadhaar, checks.vid, checks.pan, checks.gstin, checks.ifsc, checks.micr,
              checks.uk_vat, checks.iban, checks.sort_code]
ANY_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                        lambda kids: st.lists(kids, max_size=3)
                        | st.dictionaries(st.text(max_size=3), kids, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40) | st.text("0123456789ABCDEFGHXZ GBXI-", max_size=24) | ANY_JSON)
def test_checks_never_raise(value):
    for check in ALL_CHECKS:
        found = check(value)
        assert isinstance(found, list)
        assert all(sev in ("error", "warning") for _, _, sev in found)
    checks.parse_date(value)
    checks.parse_amount(value)
    checks.words_to_amount(value)


def test_random_strings_of_the_right_shape_mostly_fail():
    rng = random.Random(7)
    numbers = [str(rng.randint(2, 9)) + "".join(rng.choices(string.digits, k=11))
               for _ in range(500)]
    bad = sum(not checks.is_valid(checks.aadhaar, n) for n in numbers)
    # Verhoeff accepts 1 in 10 random numbers.
    assert 400 <= bad <= 500


@pytest.mark.parametrize("text,expected", [
    ("05/04/2024", date(2024, 4, 5)), ("05-04-2024", date(2024, 4, 5)),
    ("05.04.2024", date(2024, 4, 5)), ("05-Apr-2024", date(2024, 4, 5)),
    ("5 April 2024", date(2024, 4, 5)), ("05 Sept 2024", date(2024, 9, 5)),
    ("2024-04-05", date(2024, 4, 5)), ("05/04/24", date(2024, 4, 5)),
    ("31/02/2024", None), ("13/13/2024", None), ("April 5", None), ("", None),
])
def test_parse_date(text, expected):
    assert checks.parse_date(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("₹1,23,45,678.90", "12345678.90"), ("Rs. 1,000/-", "1000"), ("INR 500", "500"),
    ("£1,234.50", "1234.50"), ("1,234,567.89", "1234567.89"), ("1,234.50 Dr", "-1234.50"),
    ("1,234.50 Cr", "1234.50"), ("(250.00)", "-250.00"), ("-12.5", "-12.5"), ("0.10", "0.10"),
    ("1,2345.00", None), ("12,34,567", "1234567"), ("1,23,456,789", None), ("abc", None),
    ("1.2.3", None), ("", None),
])
def test_parse_amount(text, expected):
    got = checks.parse_amount(text)
    assert (got is None and expected is None) or (got == Decimal(expected) and
                                                  str(got) == expected)


@pytest.mark.parametrize("text,expected", [
    ("Rupees One Lakh Twenty Thousand and Fifty Paise Only", "120000.50"),
    ("INR Five Thousand Crore Only", "50000000000.00"),
    ("Rupees Four Thousand Nine Hundred Fifty One Only", "4951.00"),
    ("One Crore Twenty Three Lakh Forty-Five Thousand Six Hundred Seventy-Eight Rupees",
     "12345678.00"),
    ("One Thousand Seven Hundred and Four Pounds Only", "1704.00"),
    ("Two Million Pounds and Five Pence", "2000000.05"),
    ("Rupees Ninety Nine Only", "99.00"),
    ("Rupees 1,000 Only", None), ("Rupees Lots Only", None), ("", None),
])
def test_words_to_amount(text, expected):
    got = checks.words_to_amount(text)
    assert (got is None and expected is None) or got == Decimal(expected)


def test_compact():
    assert checks.compact("acup a7085r") == "ACUPA7085R"
    assert checks.compact("2341-2341.2346") == "234123412346"

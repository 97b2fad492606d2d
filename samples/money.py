"""Money as printed on Indian and UK documents: lakh/crore grouping, amount in words, 2 dp."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")

_ONES = ("", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten",
         "Eleven", "Twelve", "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen",
         "Eighteen", "Nineteen")
_TENS = ("", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety")


def q2(value: Decimal) -> Decimal:
    """Round half up to 2 decimal places, as tax is rounded on invoices."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def group_indian(value: Decimal) -> str:
    """1234567.8 -> "12,34,567.80": last three digits, then groups of two."""
    sign = "-" if value < 0 else ""
    whole, frac = f"{abs(q2(value)):.2f}".split(".")
    head, tail = whole[:-3], whole[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return sign + ",".join(groups + [tail]) + "." + frac


def group_western(value: Decimal) -> str:
    """1234567.8 -> "1,234,567.80"."""
    return f"{q2(value):,.2f}"


def _below_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    return (_TENS[n // 10] + (" " + _ONES[n % 10] if n % 10 else "")).strip()


def _below_thousand(n: int) -> str:
    parts = []
    if n >= 100:
        parts.append(_ONES[n // 100] + " Hundred")
    if n % 100:
        parts.append(_below_hundred(n % 100))
    return " ".join(parts)


def words_indian(n: int) -> str:
    """Integer in words with the Indian scale: 12345678 -> "One Crore Twenty Three Lakh ..."."""
    if n == 0:
        return "Zero"
    parts = []
    crore, n = divmod(n, 10_000_000)
    lakh, n = divmod(n, 100_000)
    thousand, n = divmod(n, 1000)
    if crore:
        parts.append(words_indian(crore) + " Crore")
    if lakh:
        parts.append(_below_hundred(lakh) + " Lakh")
    if thousand:
        parts.append(_below_hundred(thousand) + " Thousand")
    if n:
        parts.append(_below_thousand(n))
    return " ".join(parts)


def rupees_in_words(value: Decimal) -> str:
    """Decimal rupees -> "Rupees One Lakh Five Thousand and Paise Fifty Only"."""
    value = q2(value)
    rupees = int(value)
    paise = int((value - rupees) * 100)
    text = "Rupees " + words_indian(rupees)
    if paise:
        text += " and Paise " + _below_hundred(paise)
    return text + " Only"

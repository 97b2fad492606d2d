"""Masking that a field name cannot bypass (domain.md section 2; RBI KYC direction, UIDAI).

`Spec.mask` first applies the schema's own masker (Aadhaar "XXXX XXXX 1234" in `aadhaar_number`,
PAN "ABCDEXXXXF" in `pan`, ...), then `scrub` walks the whole record, keys included, whatever
the schema and whatever the field, and masks:

- every Aadhaar number or VID: a run of 12 or 16 digits, written together or in groups split by
  single spaces, dots or hyphens, that python-stdnum accepts (first digit 2-9, not a palindrome,
  Verhoeff check digit). All digits but the last 4 become X, the separators stay:
  "AEPS 2341 2341 2346" -> "AEPS XXXX XXXX 2346". A bank reference or any other number that
  happens to have this shape and check digit is masked too: 1 in 10 random 12-digit numbers
  passes Verhoeff, and the tool cannot tell them apart, so it errs on the side of the card holder;
- every PAN: 5 capital letters, 4 digits, a capital letter, standing alone (not inside a longer
  word, so never inside a GSTIN, which is a public registration) with a valid holder type and
  serial (python-stdnum): "ABCDEXXXXF";
- every IBAN of the SWIFT registry with correct check digits, written together or in groups of
  four: the country, the check digits and the last 4 characters stay;
- every other occurrence of a value that the schema's masker masked in its own field (an
  account number repeated in a narration, say): all but its last 4 characters become X.

Account numbers without an IBAN carry no check digit and look like any other number, so outside
their own field they are masked only when they are the record's own account number. GSTINs and
UK VAT numbers are public business registrations and are never masked. `--unmask` turns all of
this off.
"""

from __future__ import annotations

import re
from typing import Any

from stdnum import iban as _iban
from stdnum import numdb as _numdb
from stdnum.in_ import aadhaar as _aadhaar
from stdnum.in_ import pan as _pan
from stdnum.in_ import vid as _vid

from ._common import loc

_SEP = "[ .\\-\u00a0\u2009\u202f\u2010\u2011]"
# Digit groups joined by single separators (a space, a dot, a hyphen). An amount whose integer
# part has this shape is masked too: better a masked 200-billion figure than a leaked number.
_DIGIT_RUN = re.compile(rf"(?<![0-9])[0-9]+(?:{_SEP}[0-9]+)*(?![0-9])")
_PAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{5}[0-9]{4}[A-Z](?![A-Za-z0-9])")
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}")
_IBAN_DB = _numdb.get("iban")  # the registry python-stdnum ships (country -> BBAN structure)
_MIN_OWN = 6


def scrub(data: Any, own: list[str] | None = None) -> tuple[Any, list[str]]:
    """A copy of `data` with every identifier above masked, and the paths where it masked one.
    `own`: values the schema's masker masked in their own fields."""
    patterns = [_own_pattern(v) for v in own or () if _own_pattern(v) is not None]
    done: list[str] = []
    return _walk(data, (), patterns, done), done


def own_values(original: Any, masked: Any) -> list[str]:
    """The original strings at the places where `masked` differs from `original` (same shape,
    as a masker returns)."""
    out: list[str] = []
    if isinstance(original, dict) and isinstance(masked, dict):
        for key, value in original.items():
            if key in masked:
                out += own_values(value, masked[key])
    elif isinstance(original, list) and isinstance(masked, list):
        for a, b in zip(original, masked):
            out += own_values(a, b)
    elif isinstance(original, str) and original != masked:
        out.append(original)
    return out


def mask_text(text: str, own: list[re.Pattern] | None = None) -> str:
    """`text` with every Aadhaar/VID, PAN, IBAN and own value masked."""
    text = _DIGIT_RUN.sub(_mask_digit_run, text)
    text = _PAN.sub(lambda m: m[0] if not _pan.is_valid(m[0]) else m[0][:5] + "XXXX" + m[0][9],
                    text)
    text = _mask_ibans(text)
    for pattern in own or ():
        text = pattern.sub(lambda m: _x_but_last4(m[0]), text)
    return text


def _walk(node: Any, here: tuple, own: list[re.Pattern], done: list[str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            new_key = mask_text(key, own) if isinstance(key, str) else key
            if new_key != key:
                done.append(loc(*here, new_key) if here else new_key)
            out[new_key] = _walk(value, here + (new_key,), own, done)
        return out
    if isinstance(node, list):
        return [_walk(item, here + (i,), own, done) for i, item in enumerate(node)]
    if isinstance(node, str):
        new = mask_text(node, own)
    elif isinstance(node, int) and not isinstance(node, bool):
        new = _mask_number(str(node))
    elif isinstance(node, float) and node.is_integer() and abs(node) < 1e17:
        new = _mask_number(str(int(node)))
    else:
        return node
    if new is None or new == node:
        return node
    done.append(loc(*here) if here else "")
    return new


def _mask_number(digits: str) -> str | None:
    masked = mask_text(digits)
    return masked if masked != digits else None


def _is_id(digits: str) -> bool:
    return (len(digits) == 12 and _aadhaar.is_valid(digits)) or (
        len(digits) == 16 and _vid.is_valid(digits))


def _mask_digit_run(m: re.Match) -> str:
    """Within one run of digit groups, mask every window of whole groups that holds 12 or 16
    digits and is an Aadhaar number or a VID (16-digit windows first)."""
    text = m[0]
    groups = [(g.start(), g.end()) for g in re.finditer("[0-9]+", text)]
    chars = list(text)
    for size in (16, 12):
        for i in range(len(groups)):
            count, j = 0, i
            while j < len(groups) and count < size:
                count += groups[j][1] - groups[j][0]
                j += 1
            if count != size:
                continue
            start, end = groups[i][0], groups[j - 1][1]
            window = "".join(chars[start:end])
            digits = re.sub("[^0-9]", "", window)
            if len(digits) == size and _is_id(digits):
                chars[start:end] = list(_x_but_last4(window))
    return "".join(chars)


def _mask_ibans(text: str) -> str:
    """IBANs written together or with single spaces between groups."""
    out, pos = [], 0
    for m in _IBAN_START.finditer(text):
        if m.start() < pos:
            continue
        props = _IBAN_DB.info(m[0])[0][1]
        bban = props.get("bban")
        if not bban:
            continue
        length = 4 + sum(int(n) for n in re.findall(r"([0-9]+)!", bban))
        end, count = m.start(), 0
        while end < len(text) and count < length:
            if text[end].isalnum():
                count += 1
            elif not (text[end] == " " and end + 1 < len(text) and text[end + 1].isalnum()):
                break
            end += 1
        if count != length or (end < len(text) and text[end].isalnum()):
            continue
        candidate = text[m.start():end]
        if not _iban.is_valid(candidate.replace(" ", ""), check_country=False):
            continue
        out.append(text[pos:m.start() + 4])
        out.append(_x_but_last4(candidate[4:]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _x_but_last4(text: str) -> str:
    """Every letter or digit but the last 4 becomes X; separators stay."""
    keep = 4
    out = []
    for ch in reversed(text):
        if ch.isalnum():
            out.append(ch if keep > 0 else "X")
            keep -= 1
        else:
            out.append(ch)
    return "".join(reversed(out))


def _own_pattern(value: str) -> re.Pattern | None:
    chars = [c for c in value if c.isalnum()]
    if len(chars) < _MIN_OWN or "XXXX" in value:
        return None
    body = f"{_SEP}?".join(re.escape(c) for c in chars)
    return re.compile(rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])")

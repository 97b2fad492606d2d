"""Where each extracted value is printed: page and box from a born-digital PDF's text layer.

Every non-null leaf value of a record (except `page` fields and yes/no values, which are not
printed text) is looked up among the pymupdf words of the pages, in reading order, with the
spellings a person would accept as the same value:

- amounts (`118000.50`, JSON numbers): one word equal as a number once currency signs or codes
  (₹ Rs £ $ € INR GBP ...), digit grouping (Indian `1,18,000.50` or Western `118,000.50`), a
  trailing `%` and brackets are taken off; a negative amount may be printed without its sign
  (`8,694.21 Dr`); a field named `...rate` must be printed with its `%`;
- dates `YYYY-MM-DD`: `05/03/2024`, `5/3/2024`, `05-03-2024`, `05.03.2024`, `05-Mar-2024`,
  `05 Mar 2024`, `5 March 2024`, `March 5, 2024`, `2024-03-05`;
- everything else (names, identifiers, addresses, descriptions): equal once case, spaces and
  punctuation are ignored (`4858 7464 4227` = `485874644227`, a two-line address = the same
  address joined with commas); a masked value (`XXXX XXXX 4227`) matches any digits in the X
  places;
- a rate of an intra-state GST line (an item with a CGST or SGST amount) printed only as its two
  halves, `9%` CGST and `9%` SGST for `18`: both halves on the item's row locate it; its box is
  the union of the two, with `parts` (the two boxes) and `match: "cgst+sgst halves"`;
- names and other text in any script: Unicode NFKC (so NFC; a nukta letter equals its
  consonant + nukta), case-folded, joiners (ZWJ, ZWNJ) dropped, combining marks (matras, virama)
  kept: `मिश्रा` is not `मीश्रा`.

A value may span several words and lines; it must start and end on word boundaries. Its box is
the union of the words it covers, in PDF points (72 per inch, origin top left of the page).
Where a value is printed more than once, the occurrence nearest to the object's least ambiguous
field is taken (vertically only for the items of an array), so that the fields of one transaction
or invoice line point at the same row, and a supplier's state at the supplier's block. A field of an object with a `page` field is looked up on that page first; found only on
another page, it is a page mismatch.

Photos and scans have no text layer: their fields get no box, with the reason stated. So does a
value in a script (Devanagari, say) whose text on the page does not map back to Unicode (a font
without a usable ToUnicode map: glyph numbers or U+FFFD come back instead of letters): it is not
called absent from a page where it cannot be read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Sequence

from .confidence import join

UNIT = "pt"
NO_TEXT_LAYER = "no text layer (a photo or a scan): the value cannot be located"
NOT_FOUND = "not found in the text layer of any page"
NOT_ON_ROW = "not found on the row of the item's other fields"
NOT_LOOKED_UP = "a category or yes/no value chosen by the model, not printed text"
UNMAPPED = ("not found; the page's {script} text does not map back to Unicode (its font has no "
            "usable ToUnicode map), so the value cannot be located")
HALVES = "cgst+sgst halves"

_CURRENCY = re.compile(r"^(?:₹|rs\.?|inr|£|gbp|\$|usd|€|eur)+|(?:₹|rs\.?|inr|£|gbp|\$|usd|€|eur|/-)+$",
                       re.IGNORECASE)
_AMOUNT = re.compile(r"^[-+]?[0-9][0-9,]*(?:\.[0-9]+)?$")
_DECIMAL_VALUE = re.compile(r"^-?[0-9]+\.[0-9]+$")
_INTEGER_VALUE = re.compile(r"^-?[0-9]+$")
# Currency codes and the signs a document may print instead.
_SIGNS = {"INR": ("₹", "Rs.", "Rs"), "GBP": ("£",), "USD": ("$", "US$"), "EUR": ("€",)}
_ISO_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]


def norm(text: str) -> str:
    """Case-, space- and punctuation-insensitive form: letters, digits and marks only."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum() or unicodedata.category(ch).startswith("M"))


def script(ch: str) -> str | None:
    """The script of a letter or mark from its Unicode name ("DEVANAGARI", "LATIN"), else None."""
    if unicodedata.category(ch)[0] not in "LM":
        return None
    return unicodedata.name(ch, "").split(" ")[0] or None


def unmapped_script(value: str, pages: Sequence[PageText]) -> str | None:
    """The script of `value` (other than Latin) when a page's text in that script does not map
    back to Unicode: a word holding letters of the script and U+FFFD, a private-use character or
    a non-ASCII letter of another script (a glyph number read as a character, `मɚ`)."""
    wanted = {script(ch) for ch in value} - {None, "LATIN"}
    for name in sorted(wanted):
        for page in pages:
            for w in page.words:
                word = str(w[4])
                if any(script(ch) == name for ch in word) and any(
                        ch == "\ufffd" or unicodedata.category(ch) == "Co"
                        or (ord(ch) > 0x7F and script(ch) not in (None, name)) for ch in word):
                    return name.capitalize()
    return None


def amount(text: str) -> Decimal | None:
    """A printed amount as a number (None if it is not one): `₹1,18,000.50` -> 118000.50."""
    t = text.strip().strip("()[]:;")
    t = _CURRENCY.sub("", t.replace(" ", "")).rstrip("%")
    t = _CURRENCY.sub("", t)
    if not _AMOUNT.match(t):
        return None
    try:
        return Decimal(t.replace(",", ""))
    except InvalidOperation:
        return None


def date_spellings(value: str) -> set[str]:
    """The usual printed forms of an ISO date, in `norm` form."""
    m = _ISO_DATE.match(value)
    if not m:
        return set()
    try:
        d = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return set()
    y, yy, mm, dd = f"{d.year}", f"{d.year % 100:02d}", f"{d.month:02d}", f"{d.day:02d}"
    full, short = _MONTHS[d.month - 1], _MONTHS[d.month - 1][:3]
    forms = {f"{y}{mm}{dd}"}
    for day in (dd, str(d.day)):
        for month in (mm, str(d.month)):
            forms |= {f"{day}{month}{y}", f"{day}{month}{yy}" if len(day + month) == 4 else ""}
        for month in (full, short, "Sept" if d.month == 9 else short):
            forms |= {f"{day}{month}{y}", f"{month}{day}{y}"}
    return {norm(f) for f in forms if f}


@dataclass
class Hit:
    page: int  # 1-based page number
    bbox: tuple[float, float, float, float]


class PageText:
    """One page's words in reading order, as one normalised string with word boundaries."""

    def __init__(self, number: int, words: Sequence[tuple]):
        self.number = number
        self.words = list(words)
        self.norms = [norm(str(w[4])) for w in self.words]
        self.text = "".join(self.norms)
        self.starts: dict[int, int] = {}
        self.ends: dict[int, int] = {}
        pos = 0
        for i, n in enumerate(self.norms):
            if n:
                self.starts.setdefault(pos, i)
                self.ends[pos + len(n)] = i
            pos += len(n)
        self.amounts = [amount(str(w[4])) for w in self.words]

    def _box(self, first: int, last: int) -> tuple[float, float, float, float]:
        ws = [w for w, n in zip(self.words[first:last + 1], self.norms[first:last + 1]) if n] \
            or self.words[first:last + 1]
        # A word's box runs from the font's ascender to its descender, into the lines above and
        # below on tightly set pages: a fifth of the height is taken off at the top and bottom.
        # Not at the top of Devanagari and other Indic words, whose vowel signs rise there above
        # the headline.
        trim = min(w[3] - w[1] for w in ws) * 0.2
        tall = any(script(ch) not in (None, "LATIN") for w in ws for ch in str(w[4]))
        return (min(w[0] for w in ws), min(w[1] for w in ws) + (trim / 4 if tall else trim),
                max(w[2] for w in ws), max(w[3] for w in ws) - trim)

    def find_text(self, pattern: str) -> list[Hit]:
        """Occurrences of a `norm`-form regex that start and end on word boundaries."""
        hits = []
        for m in re.finditer(f"(?=({pattern}))", self.text):
            start, end = m.start(1), m.end(1)
            if end > start and start in self.starts and end in self.ends:
                hits.append(Hit(self.number, self._box(self.starts[start], self.ends[end])))
        return hits

    def find_sign(self, signs: Sequence[str]) -> list[Hit]:
        """Words that are, or start with, one of `signs` (a currency sign before an amount)."""
        return [Hit(self.number, self._box(i, i)) for i, w in enumerate(self.words)
                if any(str(w[4]) == s or (str(w[4]).startswith(s) and amount(str(w[4])) is not None)
                       for s in signs)]

    def find_amount(self, value: Decimal) -> list[Hit]:
        hits = []
        for i, a in enumerate(self.amounts):
            if a is None:
                continue
            if a == value or (value < 0 and a == -value):
                last = i
                if value < 0 and i + 1 < len(self.words) and norm(str(self.words[i + 1][4])) == "dr":
                    last = i + 1
                hits.append(Hit(self.number, self._box(i, last)))
        return hits


def candidates(value: Any, page: PageText) -> list[Hit]:
    """Every place `value` is printed on `page` (see the module docstring for the rules)."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)) or (isinstance(value, str) and _DECIMAL_VALUE.match(value)):
        try:
            return page.find_amount(Decimal(str(value)))
        except InvalidOperation:
            return []
    text = str(value)
    if _INTEGER_VALUE.match(text):
        # Digits: an identifier printed as is, else a whole amount printed as `2,000.00`.
        return page.find_text(re.escape(norm(text))) or page.find_amount(Decimal(text))
    if text.upper() in _SIGNS:
        return page.find_text(re.escape(norm(text))) or page.find_sign(_SIGNS[text.upper()])
    forms = date_spellings(text)
    if forms:
        return [h for f in sorted(forms, key=len, reverse=True) for h in page.find_text(re.escape(f))]
    n = norm(text)
    if not n:
        return []
    if "xxxx" in n:
        return page.find_text("".join("[0-9x]" if c == "x" else re.escape(c) for c in n))
    return page.find_text(re.escape(n))


def leaves(data: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [x for k, v in data.items() for x in leaves(v, join(path, k))]
    if isinstance(data, list):
        return [x for i, v in enumerate(data) for x in leaves(v, join(path, i))]
    return [(path, data)]


def _schema_node(schema: dict | None, path_parts: list) -> dict | None:
    node = schema
    defs = (schema or {}).get("$defs", {})
    for part in path_parts:
        node = _deref(node, defs)
        if node is None:
            return None
        if isinstance(part, int):
            node = node.get("items")
        else:
            node = node.get("properties", {}).get(part)
    return _deref(node, defs)


def _deref(node: dict | None, defs: dict) -> dict | None:
    for _ in range(16):
        if not isinstance(node, dict):
            return None
        if "$ref" in node:
            node = defs.get(node["$ref"].rsplit("/", 1)[-1])
            continue
        branches = [b for b in node.get("anyOf", node.get("oneOf", []))
                    if isinstance(b, dict) and b.get("type") != "null"]
        if branches and "properties" not in node and "enum" not in node:
            node = branches[0]
            continue
        return node
    return None


def is_category(schema: dict | None, parts: list) -> bool:
    """A value from the schema's fixed list (enum/const) or a boolean: the model's choice, not
    necessarily printed as such."""
    node = _schema_node(schema, parts)
    return bool(node) and ("enum" in node or "const" in node or node.get("type") == "boolean")


def locate(data: Any, pages: Sequence[Any], schema: dict | None = None) -> dict[str, dict]:
    """{path: evidence} for every non-null leaf of `data` (except `page` fields). `pages` are
    ingest.Pages (or anything with `number` and `words`: pymupdf words in PDF points, None for an
    image). Evidence: {"page", "bbox" [x0, y0, x1, y1] or None, "unit": "pt"} plus "reason" when
    there is no box, or when the value was found on another page than the record says, and
    "parts" (boxes) and "match" when the value is printed in parts (a rate as CGST + SGST)."""
    words = {p.number: getattr(p, "words", None) for p in pages}
    texts = {n: PageText(n, w) for n, w in words.items() if w}
    has_layer = {n: bool(w) for n, w in words.items()}
    out: dict[str, dict] = {}
    _locate_node(data, "", [], texts, has_layer, schema, out)
    return out


def _locate_node(node: Any, path: str, parts: list, texts: dict, has_layer: dict,
                 schema: dict | None, out: dict) -> None:
    if isinstance(node, list):
        for i, v in enumerate(node):
            _locate_node(v, join(path, i), parts + [i], texts, has_layer, schema, out)
        return
    if not isinstance(node, dict):
        if node is not None:
            _locate_leaves({path: (parts, node)}, None, texts, has_layer, schema, out)
        return
    page = node.get("page")
    named = page if isinstance(page, int) and not isinstance(page, bool) else None
    own = {}
    for k, v in node.items():
        if isinstance(v, (dict, list)):
            _locate_node(v, join(path, k), parts + [k], texts, has_layer, schema, out)
        elif v is not None and k != "page":
            own[join(path, k)] = (parts + [k], v)
    _locate_leaves(own, named, texts, has_layer, schema, out, row=path.endswith("]"))


def _locate_leaves(own: dict, named: int | None, texts: dict, has_layer: dict,
                   schema: dict | None, out: dict, row: bool = False) -> None:
    """Evidence for the leaves of one object: the least ambiguous one anchors the others. In an
    array item (a table row), a value of one or two characters (a quantity, a rate) counts only
    on the anchor's row: alone it would match too many places."""
    order = ([named] if named in has_layer else []) + [n for n in has_layer if n != named]
    found: dict[str, list[Hit]] = {}
    halves: dict[str, list[Hit]] = {}
    # An intra-state GST line: CGST and SGST, each at half the line's rate.
    intra = any(p.rsplit(".", 1)[-1] in ("cgst_amount", "sgst_amount") for p in own)
    for path, (parts, value) in own.items():
        if isinstance(value, bool):
            out[path] = {"page": named, "bbox": None, "unit": UNIT, "reason": NOT_LOOKED_UP}
            continue
        hits: list[Hit] = []
        for number in order:
            if number in texts:
                hits = candidates(value, texts[number])
                if path.rsplit(".", 1)[-1].endswith("rate"):
                    # A rate is printed with its % sign (a bare "5" is a serial number or a count).
                    hits = [h for h in hits if _printed_with_percent(texts[number], h)]
                if hits:
                    break
        if row and intra and path.rsplit(".", 1)[-1].endswith("rate"):
            halves[path] = _halves(value, [texts[n] for n in order if n in texts])
        if hits:
            found[path] = hits
        elif not texts:
            out[path] = {"page": named, "bbox": None, "unit": UNIT, "reason": NO_TEXT_LAYER}
        elif is_category(schema, parts):
            out[path] = {"page": named, "bbox": None, "unit": UNIT, "reason": NOT_LOOKED_UP}
        elif isinstance(value, str) and (name := unmapped_script(value, list(texts.values()))):
            out[path] = {"page": named, "bbox": None, "unit": UNIT,
                         "reason": UNMAPPED.format(script=name)}
        elif not all(has_layer.values()):
            out[path] = {"page": named, "bbox": None, "unit": UNIT,
                         "reason": "not found in the text layer; some pages have none (scans)"}
        else:
            out[path] = {"page": named, "bbox": None, "unit": UNIT, "reason": NOT_FOUND}
    anchor = None
    if found:
        path = min(found, key=lambda p: (len(norm(str(own[p][1]))) <= 2, len(found[p]),
                                         -len(norm(str(own[p][1])))))
        anchor = found[path][0]
    if row and anchor is not None:
        for path in [p for p in found if len(norm(str(own[p][1]))) <= 2]:
            found[path] = [h for h in found[path] if _on_row(h, anchor)]
            if not found[path]:
                del found[path]
                out[path] = {"page": named, "bbox": None, "unit": UNIT, "reason": NOT_ON_ROW}
    # Two fields of one object with the same value (CGST and SGST) take different occurrences.
    used: set[tuple] = set()
    for path, hits in halves.items():
        # A rate printed only as its CGST and SGST halves: the first two on the item's row.
        pair = sorted((h for h in hits if anchor is not None and _on_row(h, anchor)),
                      key=lambda h: h.bbox[0])[:2]
        if path in found or len(pair) < 2:
            continue
        union = tuple(f(a, b) for f, a, b in zip((min, min, max, max), pair[0].bbox, pair[1].bbox))
        out[path] = {"page": anchor.page, "bbox": [round(x, 2) for x in _outward(union)],
                     "unit": UNIT, "parts": [[round(x, 2) for x in _outward(h.bbox)] for h in pair],
                     "match": HALVES}
        if named is not None and anchor.page != named:
            out[path]["reason"] = (f"found on page {anchor.page}, not on page {named} that the "
                                   "record names")
        used |= {(h.page, h.bbox) for h in pair}
    for path, hits in found.items():
        best = min(hits, key=lambda h: ((h.page, h.bbox) in used, h.page != anchor.page,
                                        _distance(h.bbox, anchor.bbox, row)))
        used.add((best.page, best.bbox))
        entry = {"page": best.page, "bbox": [round(x, 2) for x in _outward(best.bbox)], "unit": UNIT}
        if named is not None and best.page != named:
            entry["reason"] = f"found on page {best.page}, not on page {named} that the record names"
        out[path] = entry


def _on_row(hit: Hit, anchor: Hit) -> bool:
    return (hit.page == anchor.page and hit.bbox[1] < anchor.bbox[3]
            and hit.bbox[3] > anchor.bbox[1])


def _halves(value: Any, pages: Sequence[PageText]) -> list[Hit]:
    """Everywhere half of a rate is printed with its % sign (the item's row is picked later)."""
    try:
        half = Decimal(str(value)) / 2
    except InvalidOperation:
        return []
    if isinstance(value, bool) or not half.is_finite() or half <= 0:
        return []
    return [h for page in pages for h in page.find_amount(half) if _printed_with_percent(page, h)]


def _distance(a: tuple, b: tuple, row: bool) -> float:
    """Between box centres: vertical only within a table row's object (its cells sit side by
    side), both ways for other objects (a supplier block, say)."""
    dy = abs((a[1] + a[3]) - (b[1] + b[3])) / 2
    dx = 0.0 if row else abs((a[0] + a[2]) - (b[0] + b[2])) / 2
    return (dx * dx + dy * dy) ** 0.5


def _printed_with_percent(page: PageText, hit: Hit) -> bool:
    return any(str(w[4]).endswith("%") for w in page.words
               if w[0] >= hit.bbox[0] - 0.5 and w[2] <= hit.bbox[2] + 0.5
               and w[1] < hit.bbox[3] and w[3] > hit.bbox[1])


def _outward(box: tuple[float, ...]) -> tuple[float, ...]:
    """Rounded to 0.01 pt away from the box's inside, so the rounded box still holds the words."""
    import math

    x0, y0, x1, y1 = box
    return (math.floor(x0 * 100) / 100, math.floor(y0 * 100) / 100,
            math.ceil(x1 * 100) / 100, math.ceil(y1 * 100) / 100)

"""The fields of a schema, how each kind of value is normalised before comparison, and the
renaming of a user's label keys (`--map`).

Kinds, read from the schema's JSON Schema (so user schemas get them too):
- date: a string whose pattern is the ISO date pattern, or `format: date`. Compared as calendar
  dates; truth may also be written 05/03/2024, 05-03-2024, 05.03.2024 (day first), 05-Mar-2024 or
  5 March 2024.
- decimal: integers, numbers, and strings whose pattern is a decimal number (money, quantities,
  rates). Compared as decimals (`118000.5` = `118000.50`); grouping commas, spaces, underscores and
  currency signs are dropped first.
- identifier: other strings with a pattern (GSTIN, IFSC, PAN...) and unpatterned strings whose name
  says they are a number, reference, id or code. Compared without any whitespace, case-folded.
- boolean: compared as is.
- text: everything else (names, addresses, enums). Compared after Unicode NFC, case-folding and
  collapsing runs of whitespace to one space (ends trimmed).
An empty or all-whitespace string counts as null.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import InputError

DATE_PATTERN_MARK = "[0-9]{4}-(0[1-9]"
DECIMAL_PATTERN_MARK = r"(\.[0-9]"
_ID_NAME = re.compile(r"(^|_)(number|no|num|reference|ref|id|code|gstin|pan|ifsc|micr|iban|vid|"
                      r"hsn_sac|sort_code)$")
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d-%b-%Y", "%d %b %Y",
                 "%d %B %Y", "%d-%B-%Y", "%d/%m/%y", "%d-%b-%y")
_MONEY_JUNK = re.compile(r"[,\s_₹$£€]|Rs\.?|INR|GBP|USD|EUR", re.IGNORECASE)


@dataclass(frozen=True)
class Column:
    """A scalar field: its path (dotted; `[]` marks a list's rows) and its kind."""

    path: str
    kind: str


@dataclass(frozen=True)
class ListField:
    """A list of objects (statement rows, invoice lines): its path, row columns, key columns."""

    path: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    scalars: tuple[Column, ...]
    lists: tuple[ListField, ...]


# The columns a row is recognised by when matching predicted rows to truth rows. Other list
# fields (user schemas) use every scalar column except `page`.
ROW_KEYS = {
    "transactions": ("date", "description", "debit", "credit", "balance"),
    "lines": ("description", "quantity", "unit_price", "amount"),
}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    for _ in range(32):
        if "$ref" in node:
            node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
            continue
        options = [n for n in node.get("anyOf", node.get("oneOf", [])) if n.get("type") != "null"]
        if options:
            node = options[0]
            continue
        return node
    return node


def _kind(name: str, node: dict[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind in ("integer", "number"):
        return "decimal"
    if kind == "boolean":
        return "boolean"
    if kind == "string" or kind is None:
        pattern = node.get("pattern", "")
        if node.get("format") == "date" or DATE_PATTERN_MARK in pattern:
            return "date"
        if DECIMAL_PATTERN_MARK in pattern:
            return "decimal"
        if "enum" in node:
            return "text"
        if pattern or _ID_NAME.search(name):
            return "identifier"
    return "text"


def layout(json_schema: dict[str, Any]) -> Layout:
    """The scalar fields and list fields of a schema, in schema order."""
    defs = json_schema.get("$defs", {})
    scalars: list[Column] = []
    lists: list[ListField] = []

    def walk(node: dict[str, Any], prefix: str, into: list[Column], depth: int) -> None:
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            sub = _resolve(sub, defs)
            if sub.get("type") == "object" and depth < 8:
                walk(sub, path + ".", into, depth + 1)
            elif sub.get("type") == "array":
                item = _resolve(sub.get("items", {}), defs)
                if item.get("type") == "object" and into is scalars:
                    cols: list[Column] = []
                    walk(item, "", cols, depth + 1)
                    keys = ROW_KEYS.get(name) or tuple(c.path for c in cols if c.path != "page")
                    keys = tuple(k for k in keys if any(c.path == k for c in cols))
                    lists.append(ListField(path, tuple(cols), keys))
                else:
                    into.append(Column(path, "list"))
            else:
                into.append(Column(path, _kind(name, sub)))

    walk(_resolve(json_schema, defs), "", scalars, 0)
    return Layout(tuple(scalars), tuple(lists))


def get_path(data: Any, path: str) -> Any:
    """The value at a dotted path of nested objects; None when any part is missing."""
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def normalise(value: Any, kind: str) -> Any:
    """The comparable form of a value (None for null and blank); a value that does not parse as
    its kind is kept as normalised text, so it can still equal an identical truth."""
    if value is None:
        return None
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value)
        if not value.strip():
            return None
    if kind == "boolean":
        return value if isinstance(value, bool) else _text(str(value))
    if kind == "decimal":
        return _decimal(value)
    if kind == "date":
        return _date(value)
    if kind == "identifier":
        return re.sub(r"\s+", "", str(value)).casefold()
    if kind == "list":
        if not isinstance(value, list):
            return _text(str(value))
        return tuple(sorted(repr(normalise(v, "text")) for v in value)) or None
    return _text(str(value))


def _text(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


def _decimal(value: Any) -> Any:
    if isinstance(value, bool):
        return _text(str(value))
    if isinstance(value, (int, float)):
        return Decimal(str(value)).normalize()
    text = _MONEY_JUNK.sub("", str(value))
    if text.startswith("(") and text.endswith(")"):
        text = "-" + text[1:-1]
    try:
        number = Decimal(text)
    except InvalidOperation:
        return _text(str(value))
    if not number.is_finite():
        return _text(str(value))
    return number.normalize() if number else Decimal(0)


def _date(value: Any) -> Any:
    text = " ".join(str(value).split())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return _text(text)


def same(truth: Any, pred: Any, kind: str) -> bool:
    return normalise(truth, kind) == normalise(pred, kind)


# ---- --map: a user's label keys -> schema paths ----

def load_map(raw: Any, where: str) -> dict[str, str]:
    """`{"user key or path": "schema path"}`; paths are dotted, `[]` marks a list's rows (e.g.
    `"txns[].Bal": "transactions[].balance"`, `"txns": "transactions"`)."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                            for k, v in raw.items()):
        raise InputError(f"{where}: the map must be a JSON object of strings",
                         hint='e.g. {"Aadhaar No": "aadhaar_number", "txns[].Bal": '
                              '"transactions[].balance"}')
    return dict(raw)


def apply_map(data: Any, mapping: dict[str, str]) -> Any:
    """`data` with its keys renamed by `mapping` (longest matching source path first)."""
    if not mapping or not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for path, value in _leaves(data, ""):
        generic = re.sub(r"\[\d+\]", "[]", path)
        target = generic
        for source in sorted(mapping, key=len, reverse=True):
            if generic == source or generic.startswith(source + ".") or \
                    generic.startswith(source + "["):
                target = mapping[source] + generic[len(source):]
                break
        indices = iter(re.findall(r"\[(\d+)\]", path))
        target = re.sub(r"\[\]", lambda _m: f"[{next(indices, '0')}]", target)
        _put(out, target, value)
    return out


def _leaves(data: Any, prefix: str):
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        for i, value in enumerate(data):
            yield from _leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, data


def _put(out: dict[str, Any], path: str, value: Any) -> None:
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    node: Any = out
    for here, nxt in zip(parts, parts[1:] + [None]):
        empty: Any = [] if nxt is not None and nxt.startswith("[") else {}
        if here.startswith("["):
            i = int(here[1:-1])
            while len(node) <= i:
                node.append(None)
            if nxt is None:
                node[i] = value
                return
            if node[i] is None:
                node[i] = empty
            node = node[i]
        else:
            if nxt is None:
                node[here] = value
                return
            node = node.setdefault(here, empty)

"""Helpers shared by the schema modules: field paths, findings -> Issues, tolerant comparison of
Decimals, date plausibility and masking of raw (possibly malformed) records."""

from __future__ import annotations

import copy
import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from collections.abc import Callable, Iterable

from . import Issue
from .checks import Finding

CENT = Decimal("0.01")


def loc(*parts: str | int) -> str:
    """loc("transactions", 12, "balance") -> "transactions[12].balance"."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else p
    return out


def issues(where: str, findings: Iterable[Finding]) -> list[Issue]:
    return [Issue(where, code, msg, sev) for code, msg, sev in findings]


def error(where: str, code: str, msg: str) -> Issue:
    return Issue(where, code, msg, "error")


def warning(where: str, code: str, msg: str) -> Issue:
    return Issue(where, code, msg, "warning")


def round2(value: Decimal) -> Decimal:
    """Commercial rounding to 2 decimals (half up), as invoices print tax."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def close(a: Decimal, b: Decimal, tolerance: Decimal = CENT) -> bool:
    return abs(a - b) <= tolerance


def fmt(value: Decimal) -> str:
    return f"{value:.2f}"


def check_dates(where: str, value: date | None, *, today: date, earliest: date,
                future: str = "error", what: str = "date") -> list[Issue]:
    """A date in the future (`future` severity) or before `earliest` (warning) is reported."""
    if value is None:
        return []
    if value > today:
        return [Issue(where, "date_future", f"the {what} is in the future", future)]
    if value < earliest:
        return [warning(where, "date_implausible", f"the {what} is before {earliest.isoformat()}")]
    return []


def mask_tail(value: Any, groups: tuple[int, ...]) -> str:
    """Keep only the last 4 characters; `groups` lays out the Xs in blocks ((4, 4) -> "XXXX XXXX
    1234"); an empty tuple keeps the length ("XXXXXXXX1234"). A value of 4 characters or fewer
    is its own last four and stays as it is, so a masked value still fits the schema."""
    raw = re.sub(r"\s", "", str(value))
    tail = raw[-4:]
    if groups:
        return " ".join(["X" * n for n in groups] + [tail]).strip()
    return "X" * (len(raw) - len(tail)) + tail


def masker(rules: dict[tuple[str, ...], Callable[[Any], str]]):
    """A `mask(data)` that applies `rules[path](value)` at each path ("*" steps into every item
    of a list) and reports the paths it changed; works on any JSON value without raising."""

    def mask(data: Any) -> tuple[Any, list[str]]:
        out = copy.deepcopy(data)
        done: list[str] = []
        for path, rule in rules.items():
            _apply(out, path, (), rule, done)
        return out, done

    return mask


def _apply(node: Any, path: tuple[str, ...], here: tuple[str | int, ...],
           rule: Callable[[Any], str], done: list[str]) -> None:
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(node, list):
            for i, item in enumerate(node):
                _apply(item, rest, here + (i,), rule, done)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _apply(node[head], rest, here + (head,), rule, done)
        return
    value = node[head]
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, (dict, list)):
        node[head] = "XXXX"
    else:
        masked = rule(value)
        if masked == value:
            return
        node[head] = masked
    done.append(loc(*here, head))

"""Long documents with row lists (bank statement transactions, invoice lines) read in page windows.

A document of more pages than the window is read with several requests that the continuously
batched engine decodes side by side: one for the header fields (every field but the rows) from
its first and last pages, and one per window of consecutive pages for the rows printed there.
The rows are merged in page order, then the whole record is validated by the schema as usual.

Merge rules (applied in this order):
1. Brought/carried forward lines, opening/closing balance lines (no debit and no credit, a
   narration such as "B/F" or "BALANCE CARRIED FORWARD") are not transactions: dropped wherever
   a window gives them (bank statements only; the schema's instruction already asks to leave
   them out). Then, at each boundary between two windows:
2. A row cut by the page break: a row with a description but no date and no amounts
   (`fragment`) right after the break continues the last row before it, and one right before
   the break starts the first row after it. Their descriptions are joined: directly when the
   first part ends with "/" or "-" (a narration wrapped at a separator), else with one space.
3. A row repeated on both sides of the break: for bank statements, a row after the break with
   the same date, debit, credit and balance as the last row before it is the same transaction
   (two different rows cannot leave the same balance with the same non-zero amount), kept once
   (with the longer description when one extends the other); for invoices, a line identical in
   every field but its page is kept once, with a `repeated_row` warning so a person can check.

Reconciliation across windows (bank statements): the running balance must continue over each
boundary; where it does not, the record gets a `window_boundary` error on the first row after
the break naming the pages, and, with retries left, both windows around it are asked again with
the failing rows named (as a validation retry does for a one-request read).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Sequence

# At most this many pages in one window by default: one long answer is where models lose rows
# (issue 14), and more windows decode side by side.
WINDOW_CAP = 4
# Output tokens kept free per page of a window when sizing the default window (a statement page
# holds up to ~40 rows of ~50 tokens).
ANSWER_TOKENS_PER_PAGE = 2048
# Pixels per image token after the 2x2 patch merge (16-pixel patches).
PIXELS_PER_TOKEN = 32 * 32

_CARRIED = re.compile(r"\b(b/?f|c/?f|brought forward|carried forward|opening balance|"
                      r"closing balance|balance forward)\b", re.IGNORECASE)
_INDEX = re.compile(r"^(?P<rows>[A-Za-z_][A-Za-z0-9_]*)\[(?P<i>[0-9]+)\](?P<rest>.*)$")


@dataclass(frozen=True)
class RowRule:
    """How one schema's row list is merged across page breaks."""

    rows: str  # the top-level list of row objects
    amounts: tuple[str, ...]  # fields a fragment (the rest of a cut row) does not have
    date: str | None = None
    running_balance: bool = False  # rows carry a running balance (debit, credit, balance)


RULES = {
    "bank_statement": RowRule("transactions", ("debit", "credit", "balance"), date="date",
                              running_balance=True),
    "invoice": RowRule("lines", ("quantity", "unit_price", "discount", "amount", "tax_rate",
                                 "cgst_amount", "sgst_amount", "igst_amount", "cess_amount",
                                 "tax_amount", "total")),
}


def rule_for(spec) -> RowRule | None:
    """The row rule of a schema read in windows, or None (read in one request)."""
    rule = RULES.get(getattr(spec, "name", None))
    props = (getattr(spec, "json_schema", None) or {}).get("properties", {})
    if rule is None or props.get(rule.rows, {}).get("type") != "array":
        return None
    return rule


def plan(count: int, window: int) -> list[tuple[int, int]]:
    """Windows over `count` pages as 0-based inclusive (first, last) positions, in order."""
    window = max(1, window)
    return [(a, min(a + window, count) - 1) for a in range(0, count, window)]


def page_tokens(pages: Sequence[Any]) -> int:
    """Image tokens of the largest page (pages are already sized in 32-pixel tiles)."""
    return max(math.ceil(p.image.width * p.image.height / PIXELS_PER_TOKEN) for p in pages)


def default_window(pages: Sequence[Any], context: int | None, text_tokens: int) -> int:
    """Pages per window: as many as fit the context with `ANSWER_TOKENS_PER_PAGE` of answer room
    per page after the prompt text, at most WINDOW_CAP, at least 1."""
    if not context:
        return WINDOW_CAP
    per_page = page_tokens(pages) + ANSWER_TOKENS_PER_PAGE
    fit = (context - text_tokens) // per_page
    return max(1, min(WINDOW_CAP, fit))


def header_schema(schema: dict[str, Any], rule: RowRule) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    out["properties"].pop(rule.rows)
    if rule.rows in out.get("required", []):
        out["required"] = [r for r in out["required"] if r != rule.rows]
    return out


def rows_schema(schema: dict[str, Any], rule: RowRule) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "required": [rule.rows],
                           "properties": {rule.rows: copy.deepcopy(schema["properties"][rule.rows])}}
    if "$defs" in schema:
        out["$defs"] = copy.deepcopy(schema["$defs"])
    return out


def header_note(rule: RowRule, first: int, last: int, count: int) -> str:
    return (f"These are the first and last pages (page {first} and page {last}) of a {count}-page "
            f"document. Read every field except {rule.rows}: the rows are read separately.")


def window_note(rule: RowRule, first: int, last: int, count: int) -> str:
    return (f"These are pages {first} to {last} of a {count}-page document. Read only the "
            f"{rule.rows} printed on these pages, in order; the other fields are read separately. "
            f"If the first row on page {first} is the rest of a row begun on the previous page "
            "(no date and no amounts of its own), give it as a row with only its description and "
            f"page. Give a row cut off at the end of page {last} as far as it is printed.")


def is_carried(row: dict[str, Any], rule: RowRule) -> bool:
    if not rule.running_balance:
        return False
    desc = row.get("description")
    return (row.get("debit") is None and row.get("credit") is None and isinstance(desc, str)
            and bool(_CARRIED.search(desc)))


def is_fragment(row: dict[str, Any], rule: RowRule) -> bool:
    desc = row.get("description")
    if not isinstance(desc, str) or not desc.strip():
        return False
    if rule.date is not None and row.get(rule.date) is not None:
        return False
    return all(row.get(k) is None for k in rule.amounts)


def join_text(a: str, b: str) -> str:
    """Two parts of one narration wrapped over a page break, as one description."""
    a, b = a.rstrip(), b.lstrip()
    if not a or not b:
        return a + b
    return a + b if a.endswith(("/", "-")) else f"{a} {b}"


def _join_rows(head: dict[str, Any], tail: dict[str, Any]) -> dict[str, Any]:
    """A row whose description goes on in `tail`; every other field from whichever has it."""
    out = dict(head)
    out["description"] = join_text(head.get("description") or "", tail.get("description") or "")
    for key, value in tail.items():
        if key not in ("description", "page") and out.get(key) is None:
            out[key] = value
    if out.get("page") is None:
        out["page"] = tail.get("page")
    return out


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _same_transaction(a: dict[str, Any], b: dict[str, Any], rule: RowRule) -> bool:
    if rule.running_balance:
        keys = (rule.date, "debit", "credit", "balance")
        if a.get("balance") is None or (a.get("debit") is None and a.get("credit") is None):
            return False
        return all(_norm(a.get(k)) == _norm(b.get(k)) for k in keys)
    others = set(a) | set(b)
    others.discard("page")
    if all(a.get(k) is None for k in rule.amounts):
        return False
    return all(_norm(a.get(k)) == _norm(b.get(k)) for k in others)


def _norm(value: Any) -> Any:
    money = _money(value) if isinstance(value, str) else None
    return money if money is not None else value


@dataclass
class Merged:
    """Rows of all windows in page order, each with where it came from (window, local index)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    origins: list[tuple[int, int]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # first merged index of each window
    warnings: list[tuple[int, str, str]] = field(default_factory=list)  # (row, type, message)
    # Fields of a merged row that came from other rows than its origin (a row joined over a
    # page break): {row: {field: [(window, local index), ...] in reading order}}.
    joined: dict[int, dict[str, list[tuple[int, int]]]] = field(default_factory=dict)

    def sources(self, j: int, key: str) -> list[tuple[int, int]]:
        """The window rows whose `key` value makes up merged row j's (for confidence)."""
        return self.joined.get(j, {}).get(key, [self.origins[j]])


def _join_sources(head: dict[str, Any], head_src, tail: dict[str, Any], tail_src
                  ) -> dict[str, list[tuple[int, int]]]:
    """Where each field of _join_rows(head, tail) comes from; `head_src`/`tail_src` give a
    field's sources in each part."""
    out = {"description": head_src("description") + tail_src("description")}
    for key in set(head) | set(tail):
        if key == "description":
            continue
        out[key] = head_src(key) if head.get(key) is not None else tail_src(key)
    return out


def merge(windows: Sequence[Sequence[dict[str, Any]]], rule: RowRule) -> Merged:
    """The rows of consecutive windows as one list, by the rules in the module docstring."""
    m = Merged()
    for w, rows in enumerate(windows):
        items = [(k, dict(r)) for k, r in enumerate(rows) if isinstance(r, dict)]
        items = [(k, r) for k, r in items if not is_carried(r, rule)]
        m.starts.append(len(m.rows))
        pending = None  # the sources of items[0]'s fields when it was joined to a fragment
        if m.rows and items:
            # A fragment before the break starts the first row after it.
            if is_fragment(m.rows[-1], rule) and not is_fragment(items[0][1], rule):
                j = len(m.rows) - 1
                head = m.rows.pop()
                head_joined = m.joined.pop(j, {})
                head_origin = m.origins.pop()
                k0, tail = items[0]
                items[0] = (k0, _join_rows(head, tail) | {"page": head.get("page")})
                pending = _join_sources(
                    head, lambda key: head_joined.get(key, [head_origin]), tail,
                    lambda key: [(w, k0)])
                m.starts[-1] = len(m.rows)
            # A fragment after the break continues the last row before it.
            elif is_fragment(items[0][1], rule):
                j = len(m.rows) - 1
                k0, tail = items[0]
                m.joined[j] = _join_sources(m.rows[-1], lambda key: m.sources(j, key),
                                            tail, lambda key: [(w, k0)])
                m.rows[-1] = _join_rows(m.rows[-1], tail)
                items = items[1:]
            if items and m.rows and _same_transaction(m.rows[-1], items[0][1], rule):
                kept, again = m.rows[-1], items[0][1]
                a, b = kept.get("description") or "", again.get("description") or ""
                if b.startswith(a) and len(b) > len(a):
                    kept["description"] = b
                    m.joined.setdefault(len(m.rows) - 1, {})["description"] = (
                        pending or {}).get("description", [(w, items[0][0])])
                pending = None
                if not rule.running_balance:
                    m.warnings.append((len(m.rows) - 1, "repeated_row",
                                       "an identical row on both sides of a page break was kept "
                                       "once"))
                items = items[1:]
        if pending is not None and items:
            m.joined[len(m.rows)] = pending
        for k, r in items:
            m.rows.append(r)
            m.origins.append((w, k))
    return m


def _reverse(rows: Sequence[dict[str, Any]], rule: RowRule) -> bool:
    dates = [r.get(rule.date) for r in rows if rule.date and isinstance(r.get(rule.date), str)]
    return len(dates) >= 2 and dates[0] > dates[-1]


def _fmt(value: Decimal) -> str:
    return f"{value:.2f}"


def boundary_issues(m: Merged, spans: Sequence[tuple[int, int]], rule: RowRule
                    ) -> list[tuple[int, int, str]]:
    """(row index, window after the break, reason) for each boundary where the running balance
    does not continue."""
    if not rule.running_balance:
        return []
    found = []
    reverse = _reverse(m.rows, rule)
    for w in range(1, len(spans)):
        j = m.starts[w]
        if j == 0 or j >= len(m.rows) or m.origins[j][0] != w:
            continue
        before, after = m.rows[j - 1], m.rows[j]
        # The later row (in time) must be the earlier one's balance + its credit - its debit.
        older, newer = (after, before) if reverse else (before, after)
        prev, bal = _money(older.get("balance")), _money(newer.get("balance"))
        if prev is None or bal is None:
            continue
        expected = prev + (_money(newer.get("credit")) or 0) - (_money(newer.get("debit")) or 0)
        if expected != bal:
            found.append((j, w, f"previous balance {_fmt(prev)} + credit - debit = "
                                        f"{_fmt(expected)}, the row shows {_fmt(bal)}"))
    return found


def parse_rows(text: str, rule: RowRule) -> list[dict[str, Any]] | None:
    """The rows of one window's answer; None when it is not the expected object."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get(rule.rows), list):
        return None
    return [r for r in obj[rule.rows] if isinstance(r, dict)]


def parse_header(text: str, rule: RowRule) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    obj.pop(rule.rows, None)
    return obj


def locate(loc: str, rule: RowRule) -> tuple[int, str] | None:
    """`transactions[12].balance` -> (12, ".balance"); None for a header field."""
    match = _INDEX.match(loc)
    if match is None or match["rows"] != rule.rows:
        return None
    return int(match["i"]), match["rest"]


@dataclass(frozen=True)
class Windowing:
    """How a run reads long documents: `window` pages per window (None: chosen from `context`,
    0: never split), the context one request may fill, and a token counter for prompt text."""

    window: int | None = None
    context: int | None = None
    count_tokens: Any = None

    def size(self, spec, pages: Sequence[Any]) -> int:
        """Pages per window for this document, or 0 when it is read in one request."""
        rule = rule_for(spec)
        if rule is None or self.window == 0 or not pages:
            return 0
        window = self.window
        if window is None:
            text = _prompt(spec.instruction, window_note(rule, 1, 1, len(pages)),
                           rows_schema(spec.json_schema, rule))
            counted = (self.count_tokens(text) if self.count_tokens is not None
                       else len(text.encode()))
            window = default_window(pages, self.context, counted + 64)
        return window if len(pages) > window else 0


def _prompt(instruction: str, note: str, schema: dict[str, Any]) -> str:
    schema_text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    return (f"{instruction.strip()}\n\n{note}\n\n"
            "Answer with one JSON object only, conforming to this JSON Schema:\n"
            f"{schema_text}")


def _label(pages: Sequence[Any]) -> list[str]:
    return [f"Page {p.number}" for p in pages]


def windowed_flow(pages: Sequence[Any], spec, window: int, model_info: dict[str, str], *,
                  unmask: bool = False, retries: int = 1):
    """One long document as a generator (see pipeline.extract_flow): yields lists of Requests
    (the header request, then one per window; later only those asked again), is sent their
    Completions in the same order, returns the record fields with `windows` and `header_pages`."""
    import time

    from . import pipeline
    from .engine.api import Request

    rule = rule_for(spec)
    n = len(pages)
    spans = plan(n, window)
    hschema, rschema = header_schema(spec.json_schema, rule), rows_schema(spec.json_schema, rule)
    ends = [pages[0], pages[-1]]
    requests = [Request(prompt=_prompt(spec.instruction, header_note(rule, ends[0].number,
                                                                     ends[1].number, n), hschema),
                        images=[p.image for p in ends], image_labels=_label(ends),
                        json_schema=hschema,
                        max_new_tokens=pipeline.max_new_tokens_for(hschema), logprobs=True)]
    names = [f"the header (pages {ends[0].number} and {ends[1].number})"]
    for a, b in spans:
        part = pages[a:b + 1]
        first, last = part[0].number, part[-1].number
        requests.append(Request(prompt=_prompt(spec.instruction, window_note(rule, first, last, n),
                                               rschema),
                                images=[p.image for p in part], image_labels=_label(part),
                                json_schema=rschema,
                                max_new_tokens=pipeline.max_new_tokens_for(rschema),
                                logprobs=True))
        names.append(f"pages {first}-{last}")
    prompts = [r.prompt for r in requests]
    answers: list[str] = [""] * len(requests)
    latest: list[Any] = [None] * len(requests)  # each request's last Completion
    first = None  # the data of the first round (what a retry changed, for review)
    finished: list[str] = ["stop"] * len(requests)
    timing: dict[str, Any] = {"prefill_s": 0.0, "decode_s": 0.0, "tokens": 0, "requests": 0}
    todo = list(range(len(requests)))
    rounds = 0
    t0 = time.monotonic()
    while True:
        rounds += 1
        completions = yield [requests[i] for i in todo]
        for i, c in zip(todo, completions):
            for key in ("prefill_s", "decode_s"):
                timing[key] += float(c.timings.get(key, 0.0))
            timing["tokens"] += len(c.tokens)
            timing["requests"] += 1
            answers[i], finished[i], latest[i] = c.text, c.finish_reason, c
        header = parse_header(answers[0], rule)
        parts = [parse_rows(a, rule) for a in answers[1:]]
        merged = merge([p or [] for p in parts], rule)
        data = {**(header or {}), rule.rows: merged.rows}
        validation = spec.validate(data)
        first = validation.data if rounds == 1 else first
        own: dict[int, list] = {}  # issues that belong to one request as a whole
        for i, ok in enumerate([header is not None] + [p is not None for p in parts]):
            if not ok:
                own.setdefault(i, []).append(pipeline._issue(
                    "", "unreadable_answer", f"the answer for {names[i]} is not the expected "
                                             "JSON object"))
        extra = [x for found in own.values() for x in found]
        extra += pipeline._page_issues(validation.data, n)
        crossings = boundary_issues(merged, spans, rule)
        for row, w, reason in crossings:
            before, after = pages[spans[w - 1][1]].number, pages[spans[w][0]].number
            extra.append(pipeline._issue(
                f"{rule.rows}[{row}]", "window_boundary",
                f"the running balance does not continue over the page break between page "
                f"{before} and page {after} ({reason}): a row may be missing or repeated there"))
        extra += [pipeline._issue(f"{rule.rows}[{row}]", kind, msg, severity="warning")
                  for row, kind, msg in merged.warnings]
        cut = [pipeline._issue("", "truncated", f"generation stopped at max_new_tokens "
                                                f"({names[i]})")
               for i, reason in enumerate(finished) if reason == "length"]
        validation.issues[:0] = cut
        validation.issues.extend(extra)
        hard = [x for x in validation.issues if x.severity == "error" and x.type != "truncated"]
        if validation.valid or not hard or rounds > retries:
            break
        feedback = _attribute(hard, merged, rule, own, len(requests))
        todo = sorted(feedback)
        for i in todo:
            old = requests[i]
            requests[i] = Request(prompt=prompts[i] + "\n\n" + pipeline.feedback_text(feedback[i]),
                                  images=old.images, image_labels=old.image_labels,
                                  json_schema=old.json_schema, max_new_tokens=old.max_new_tokens,
                                  logprobs=True)
    timing["wall_s"] = time.monotonic() - t0
    confidence = field_confidence(latest[0], latest[1:], merged, rule)
    final = validation.data
    data, masked = validation.data, []
    if data is not None and not unmask:
        data, masked = spec.mask(data)
    return {"data": data, "valid": validation.valid, "errors": validation.errors,
            "masked": masked, "attempts": rounds,
            "timing": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in timing.items()},
            "model": dict(model_info),
            "windows": [[pages[a].number, pages[b].number] for a, b in spans],
            "header_pages": [ends[0].number, ends[1].number],
            # For review.assess, not the record (pipeline.extract_flow takes them out):
            "_confidence": confidence, "_unmasked": final, "_first": first if rounds > 1 else None}


def field_confidence(header, parts: Sequence[Any], m: Merged, rule: RowRule,
                     digits: int = 3) -> tuple[dict[str, float], dict[str, float]]:
    """(confidence, confidence_min) of the merged record, as confidence.field_confidence defines
    them for one answer: the header's fields from the header answer; each merged row's fields from
    the window answer(s) they were read from, a description joined over a page break from the
    value tokens of both parts."""
    from .confidence import summarise, token_logprobs

    pooled: dict[str, list[float]] = dict(token_logprobs(header))
    by_window = [token_logprobs(c) for c in parts]
    local: list[dict[tuple[int, str], list[tuple[str, list[float]]]]] = []
    for found in by_window:
        index: dict[tuple[int, str], list[tuple[str, list[float]]]] = {}
        for path, lps in found.items():
            where = locate(path, rule)
            if where is None or not where[1].startswith("."):
                continue
            k, rest = where
            key = re.split(r"[.\[]", rest[1:], maxsplit=1)[0]
            index.setdefault((k, key), []).append((rest, lps))
        local.append(index)
    for j, row in enumerate(m.rows):
        for key, value in row.items():
            if value is None:
                continue
            for w, k in m.sources(j, key):
                if w >= len(local):
                    continue
                for rest, lps in local[w].get((k, key), ()):
                    pooled.setdefault(f"{rule.rows}[{j}]{rest}", []).extend(lps)
    return summarise(pooled, digits)


def _attribute(hard: Sequence[Any], m: Merged, rule: RowRule, own: dict[int, list],
               count: int) -> dict[int, list]:
    """Each hard issue as its request would read it: 0 the header, 1 + w window w, row indices
    made local to the window's own answer. A boundary issue goes to the windows on both sides."""
    from .schemas import Issue

    out: dict[int, list] = {}
    for i, found in own.items():
        out.setdefault(i, []).extend(found)
    for x in hard:
        if x.type == "unreadable_answer":
            continue
        where = locate(x.loc, rule)
        if where is None:
            out.setdefault(0, []).append(x)
            continue
        j, rest = where
        if j >= len(m.origins):
            out.setdefault(0, []).append(x)
            continue
        w, k = m.origins[j]
        out.setdefault(1 + w, []).append(Issue(f"{rule.rows}[{k}]{rest}", x.type, x.msg,
                                               x.severity))
        if x.type == "window_boundary" and j > 0:
            pw, pk = m.origins[j - 1]
            out.setdefault(1 + pw, []).append(Issue(
                f"{rule.rows}[{pk}]", x.type, "the running balance after this last row does "
                "not continue on the next page: check for a row missing or repeated at the end "
                "of the last page", x.severity))
    return {i: v for i, v in out.items() if 0 <= i < count}

"""Scoring records against truth: fields, list rows, documents, document types, confidence
quality and speed. Pure functions over plain data (no engine, no files).

Definitions (the README repeats them):
- A field is right when its normalised prediction equals its normalised truth (see fields.py);
  null = null is right. Accuracy = right / documents of that schema.
- Presence: tp = both non-null, fp = prediction non-null where truth is null, fn = prediction null
  where truth is non-null; precision = tp / (tp + fp), recall = tp / (tp + fn).
- List rows are matched to truth rows by an optimal assignment (Hungarian algorithm) maximising
  the number of equal key columns (fields.ROW_KEYS), ties broken towards the same position; a pair
  counts as matched only when at least half of its key columns are equal. Row precision = matched
  / predicted rows, row recall = matched / truth rows; a column's accuracy is over matched pairs.
- A document is all right when every scalar field is right and every list has all its rows
  matched, no extra rows, and every cell of every matched pair right.
- A record of another document type than the truth, or with no data, predicts null everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import fields as F

INF = float("inf")


def hungarian(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment of a rectangular matrix: pairs (row, col), one per row when rows
    <= cols (else one per col). O(n^2 m), the inner loop vectorised."""
    cost = np.asarray(cost, dtype=float)
    if cost.size == 0:
        return []
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=int)  # p[j]: row (1-based) assigned to column j; 0 = none
    way = np.zeros(m + 1, dtype=int)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, INF)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], INF)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j]]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted(pairs)


def match_rows(truth: Sequence[dict], pred: Sequence[dict], lst: F.ListField) -> list[tuple[int, int]]:
    """Pairs (truth row, predicted row) of the assignment, keeping pairs with at least half of
    the key columns equal."""
    if not truth or not pred:
        return []
    kinds = {c.path: c.kind for c in lst.columns}
    keys = lst.keys or tuple(kinds)
    tn = [[F.normalise(_get(r, k), kinds[k]) for k in keys] for r in truth]
    pn = [[F.normalise(_get(r, k), kinds[k]) for k in keys] for r in pred]
    agree = np.array([[sum(a == b for a, b in zip(t, q)) for q in pn] for t in tn], dtype=float)
    n, m = agree.shape
    tie = np.abs(np.arange(n)[:, None] - np.arange(m)[None, :]) / (1.0 + n * max(n, m))
    pairs = hungarian(tie - agree)
    return [(i, j) for i, j in pairs if 2 * agree[i, j] >= len(keys)]


def _get(row: Any, path: str) -> Any:
    return F.get_path(row, path) if isinstance(row, dict) else None


def _rows(data: Any, path: str) -> list:
    rows = F.get_path(data, path) if isinstance(data, dict) else None
    return [r if isinstance(r, dict) else {} for r in rows] if isinstance(rows, list) else []


@dataclass
class Tally:
    """Counts for one field or column."""

    n: int = 0
    right: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, truth: Any, pred: Any, right: bool) -> None:
        self.n += 1
        self.right += right
        if truth is not None and pred is not None:
            self.tp += 1
        elif pred is not None:
            self.fp += 1
        elif truth is not None:
            self.fn += 1

    def as_dict(self, kind: str) -> dict[str, Any]:
        return {"kind": kind, "n": self.n, "right": self.right,
                "accuracy": ratio(self.right, self.n),
                "presence": {"tp": self.tp, "fp": self.fp, "fn": self.fn,
                             "precision": ratio(self.tp, self.tp + self.fp),
                             "recall": ratio(self.tp, self.tp + self.fn)}}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 6) if b else None


@dataclass
class DocScore:
    """One document: its wrong field paths, list row counts, confidence items."""

    all_right: bool
    wrong: list[str]
    scalars: dict[str, tuple[Any, Any, bool]]
    lists: dict[str, dict[str, Any]]
    items: list[tuple[str, float, bool]] = field(default_factory=list)  # (path, confidence, right)
    unconfident: list[bool] = field(default_factory=list)  # right? of fields with no confidence


def score_document(truth: dict[str, Any], pred: dict[str, Any] | None, layout: F.Layout,
                   confidence: dict[str, float] | None = None) -> DocScore:
    """Compare one prediction (None: nothing predicted) with its truth."""
    pred = pred if isinstance(pred, dict) else {}
    conf = confidence if isinstance(confidence, dict) else None
    wrong: list[str] = []
    scalars: dict[str, tuple[Any, Any, bool]] = {}
    items: list[tuple[str, float, bool]] = []
    unconfident: list[bool] = []

    def note(path: str, right: bool) -> None:
        if conf is None:
            return
        c = conf.get(path)
        if isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c):
            items.append((path, float(c), right))
        else:
            unconfident.append(right)

    for col in layout.scalars:
        t = F.normalise(F.get_path(truth, col.path), col.kind)
        p = F.normalise(F.get_path(pred, col.path), col.kind)
        right = t == p
        scalars[col.path] = (t, p, right)
        note(col.path, right)
        if not right:
            wrong.append(col.path)
    lists: dict[str, dict[str, Any]] = {}
    for lst in layout.lists:
        trows, prows = _rows(truth, lst.path), _rows(pred, lst.path)
        pairs = match_rows(trows, prows, lst)
        cols = {c.path: Tally() for c in lst.columns}
        cells_right = True
        for i, j in pairs:
            for c in lst.columns:
                t = F.normalise(_get(trows[i], c.path), c.kind)
                p = F.normalise(_get(prows[j], c.path), c.kind)
                cols[c.path].add(t, p, t == p)
                note(f"{lst.path}[{j}].{c.path}", t == p)
                if t != p:
                    cells_right = False
                    wrong.append(f"{lst.path}[{j}].{c.path}")
        matched_pred = {j for _, j in pairs}
        for j in range(len(prows)):
            if j not in matched_pred:
                wrong.append(f"{lst.path}[{j}]")
                for c in lst.columns:
                    if F.normalise(_get(prows[j], c.path), c.kind) is not None:
                        note(f"{lst.path}[{j}].{c.path}", False)
        missing = len(trows) - len(pairs)
        if missing:
            wrong.append(f"{lst.path}: {missing} truth row(s) not found")
        lists[lst.path] = {"truth_rows": len(trows), "pred_rows": len(prows),
                           "matched": len(pairs), "columns": cols,
                           "right": cells_right and len(pairs) == len(trows) == len(prows)}
    all_right = not wrong
    return DocScore(all_right, wrong, scalars, lists, items, unconfident)


class SchemaScore:
    """Sums over the documents of one schema."""

    def __init__(self, name: str, layout: F.Layout):
        self.name, self.layout = name, layout
        self.fields = {c.path: Tally() for c in layout.scalars}
        self.lists = {lst.path: {"truth_rows": 0, "pred_rows": 0, "matched": 0,
                                 "columns": {c.path: Tally() for c in lst.columns}}
                      for lst in layout.lists}
        self.docs = 0
        self.all_right = 0
        self.flags = {"valid": [0, 0], "needs_review": [0, 0]}  # [true, known]
        self.outcomes: dict[str, int] = {}

    def add(self, doc: DocScore, record: dict[str, Any] | None) -> None:
        self.docs += 1
        self.all_right += doc.all_right
        for path, (t, p, right) in doc.scalars.items():
            self.fields[path].add(t, p, right)
        for path, got in doc.lists.items():
            acc = self.lists[path]
            for k in ("truth_rows", "pred_rows", "matched"):
                acc[k] += got[k]
            for col, tally in got["columns"].items():
                mine = acc["columns"][col]
                for k in ("n", "right", "tp", "fp", "fn"):
                    setattr(mine, k, getattr(mine, k) + getattr(tally, k))
        record = record or {}
        for flag, counts in self.flags.items():
            if isinstance(record.get(flag), bool):
                counts[0] += record[flag]
                counts[1] += 1
        if isinstance(record.get("valid"), bool):
            key = ("valid" if record["valid"] else "invalid") + (
                "_right" if doc.all_right else "_wrong")
            self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        kinds = {c.path: c.kind for c in self.layout.scalars}
        out_fields = {p: t.as_dict(kinds[p]) for p, t in self.fields.items()}
        out_lists = {}
        for lst in self.layout.lists:
            acc = self.lists[lst.path]
            kinds = {c.path: c.kind for c in lst.columns}
            out_lists[lst.path] = {
                "keys": list(lst.keys), "truth_rows": acc["truth_rows"],
                "pred_rows": acc["pred_rows"], "matched": acc["matched"],
                "precision": ratio(acc["matched"], acc["pred_rows"]),
                "recall": ratio(acc["matched"], acc["truth_rows"]),
                "columns": {c: t.as_dict(kinds[c]) for c, t in acc["columns"].items()}}
        return {
            "documents": self.docs, "all_right": self.all_right,
            "all_right_rate": ratio(self.all_right, self.docs),
            "valid_rate": ratio(*self.flags["valid"]),
            "needs_review_rate": ratio(*self.flags["needs_review"]),
            "valid_vs_right": dict(sorted(self.outcomes.items())),
            "fields": out_fields, "lists": out_lists,
        }


# ---- confidence quality ----

def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a right item has a higher score than a wrong one (ties count one half);
    None when either class is empty."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda k: scores[k])
    ranks = [0.0] * len(scores)
    k = 0
    while k < len(order):
        e = k
        while e + 1 < len(order) and scores[order[e + 1]] == scores[order[k]]:
            e += 1
        for t in range(k, e + 1):
            ranks[order[t]] = (k + e) / 2 + 1
        k = e + 1
    rank_pos = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def reliability(scores: Sequence[float], labels: Sequence[bool], bins: int = 10
                ) -> tuple[float | None, list[dict[str, Any]]]:
    """Expected calibration error over `bins` equal-width bins of [0, 1] (a bin holds
    [lo, hi), the last also 1.0): sum over bins of (items in bin / items) x |accuracy - mean
    confidence|; and the bins."""
    table = []
    total = len(scores)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(s, y) for s, y in zip(scores, labels)
                  if lo <= s < hi or (b == bins - 1 and s == hi)]
        row: dict[str, Any] = {"lo": round(lo, 6), "hi": round(hi, 6), "n": len(inside),
                               "confidence": None, "accuracy": None}
        if inside:
            conf = sum(s for s, _ in inside) / len(inside)
            acc = sum(y for _, y in inside) / len(inside)
            row["confidence"], row["accuracy"] = round(conf, 6), round(acc, 6)
            ece += len(inside) / total * abs(acc - conf)
        table.append(row)
    return (round(ece, 6) if total else None), table


THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def review_tradeoff(scores: Sequence[float], labels: Sequence[bool], threshold: float
                    ) -> list[dict[str, Any]]:
    """At each threshold: the share of fields sent to review (confidence below it) and the
    accuracy of the fields kept (confidence at or above it)."""
    rows = []
    for t in sorted(set(THRESHOLDS) | {threshold}):
        kept = [y for s, y in zip(scores, labels) if s >= t]
        rows.append({"threshold": t, "current": t == threshold,
                     "review_share": ratio(len(scores) - len(kept), len(scores)),
                     "kept_accuracy": ratio(sum(kept), len(kept)),
                     "kept": len(kept), "reviewed": len(scores) - len(kept)})
    return rows


def confidence_report(items: Sequence[tuple[float, bool]], unconfident: Sequence[bool],
                      threshold: float, reviewed: Sequence[bool] | None = None) -> dict[str, Any]:
    """`items`: (confidence, right) of every field that has a confidence; `unconfident`: right?
    of the fields without one (null predictions); `reviewed`: for each item, whether the record's
    own review list names it (the tool's decision, all reasons together)."""
    scores = [s for s, _ in items]
    labels = [y for _, y in items]
    ece, bins = reliability(scores, labels)
    au = auroc(scores, labels)
    out: dict[str, Any] = {
        "fields": len(items), "right": sum(labels), "accuracy": ratio(sum(labels), len(labels)),
        "mean_confidence": ratio(sum(scores), len(scores)),
        "auroc": None if au is None else round(au, 6), "ece": ece, "bins": bins,
        "threshold": threshold, "tradeoff": review_tradeoff(scores, labels, threshold),
        "without_confidence": {"fields": len(unconfident),
                               "wrong": len(unconfident) - sum(unconfident)},
    }
    if reviewed is not None and len(reviewed) == len(items):
        kept = [y for y, r in zip(labels, reviewed) if not r]
        out["record_review"] = {"review_share": ratio(len(labels) - len(kept), len(labels)),
                                "kept_accuracy": ratio(sum(kept), len(kept)),
                                "kept": len(kept), "reviewed": len(labels) - len(kept)}
    return out


# ---- speed ----

def speed(records: Sequence[dict[str, Any]], wall_s: float | None = None,
          fresh: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Throughput from the records' own timings (the sum of each document's ingest, type choice,
    prefill and decode seconds: the time one at a time would take) and, when eval ran the
    extraction itself, from the wall clock over the `fresh` records it extracted (batched)."""
    docs = pages = tokens = 0
    seconds = decode = 0.0
    for r in records:
        t = r.get("timing")
        if not isinstance(t, dict):
            continue
        docs += 1
        pages += int(r.get("pages") or 0)
        tokens += int(t.get("tokens") or 0)
        decode += float(t.get("decode_s") or 0.0)
        seconds += sum(float(t.get(k) or 0.0) for k in ("ingest_s", "detect_s", "prefill_s",
                                                          "decode_s"))
    out: dict[str, Any] = {
        "documents": docs, "pages": pages, "tokens": tokens, "seconds": round(seconds, 4),
        "documents_per_s": ratio(docs, seconds), "pages_per_s": ratio(pages, seconds),
        "tokens_per_s": ratio(tokens, seconds), "decode_tokens_per_s": ratio(tokens, decode),
        "seconds_per_page": ratio(seconds, pages),
    }
    if wall_s and fresh:
        wpages = sum(int(r.get("pages") or 0) for r in fresh)
        wtokens = sum(int((r.get("timing") or {}).get("tokens") or 0) for r in fresh)
        out["wall"] = {"documents": len(fresh), "pages": wpages, "tokens": wtokens,
                       "seconds": round(wall_s, 4),
                       "documents_per_s": ratio(len(fresh), wall_s),
                       "pages_per_s": ratio(wpages, wall_s),
                       "tokens_per_s": ratio(wtokens, wall_s),
                       "seconds_per_page": ratio(wall_s, wpages)}
    return out

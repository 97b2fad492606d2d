"""The review list: which fields of a record a person should check, and why.

A field needs review when
- `low_confidence`: its confidence (confidence.py) is below the threshold (`--review-below`,
  default DEFAULT_REVIEW_BELOW);
- `validation_error`: a validation error (severity "error") names it (or the object or document
  it belongs to: the loc of the error is listed as it is);
- `not_on_page`: the document is a born-digital PDF and its value is not in the text layer;
- `page_mismatch`: the value is printed on another page than the record's `page` field says;
- `retry_changed`: a retry (after validation errors) gave it another value than the first answer.

Record fields added here: `confidence` and `confidence_min` ({path: probability}), `evidence`
({path: {page, bbox, unit, reason?, parts?, match?}}, bbox in PDF points), `review` ([{loc,
reasons}]), `needs_review` and `review_below` (the confidence threshold the review used, so that
`docextract eval` and a reader know what `low_confidence` meant).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from . import evidence as ev
from .confidence import field_confidence, join

# A starting point, not a calibrated figure: a model that is right on a field is usually far
# more sure than this of every choice it made; calibrate on your own documents (README).
DEFAULT_REVIEW_BELOW = 0.9
REASONS = ("low_confidence", "validation_error", "not_on_page", "page_mismatch", "retry_changed")


def changed_leaves(before: Any, after: Any, path: str = "") -> list[str]:
    """Paths (in `after`) of the leaves whose value differs between two answers. Lists are
    aligned first, so that a row a retry added or removed flags that row only, not every row
    after it: an added row's leaves are listed, a removed row as the list's own path."""
    if before is None or after is None:
        return []
    return _changed(before, after, path)


def _changed(before: Any, after: Any, path: str) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in list(after) + [k for k in before if k not in after]:
            here = join(path, key)
            if key not in after:
                out += [p for p, _ in ev.leaves(before[key], here)] or [here]
            elif key not in before:
                out += [p for p, v in ev.leaves(after[key], here)]
            else:
                out += _changed(before[key], after[key], here)
        return out
    if isinstance(before, list) and isinstance(after, list):
        import difflib

        def canon(items: list) -> list[str]:
            return [json.dumps(x, sort_keys=True, ensure_ascii=False) for x in items]

        out = []
        blocks = difflib.SequenceMatcher(None, canon(before), canon(after), autojunk=False)
        for op, a0, a1, b0, b1 in blocks.get_opcodes():
            if op == "equal":
                continue
            pairs = min(a1 - a0, b1 - b0) if op == "replace" else 0
            for k in range(pairs):  # rows edited in place
                out += _changed(before[a0 + k], after[b0 + k], join(path, b0 + k))
            for j in range(b0 + pairs, b1):  # rows added
                out += [p for p, _ in ev.leaves(after[j], join(path, j))]
            if a1 - a0 > pairs and path not in out:  # rows removed
                out.append(path)
        return out
    return [] if before == after else [path]


def review_list(data: Any, errors: Sequence[dict], confidence: dict[str, float],
                evidence: dict[str, dict], changed: Sequence[str] = (),
                threshold: float = DEFAULT_REVIEW_BELOW) -> list[dict[str, Any]]:
    """[{loc, reasons}] in document order (leaves first, then other locs errors name)."""
    reasons: dict[str, list[str]] = {}

    def add(loc: str, why: str) -> None:
        found = reasons.setdefault(loc, [])
        if why not in found:
            found.append(why)

    for path, value in confidence.items():
        if value < threshold:
            add(path, "low_confidence")
    for e in errors:
        if e.get("severity", "error") == "error":
            add(e.get("loc", ""), "validation_error")
    for path, entry in evidence.items():
        if entry.get("bbox") is None and entry.get("reason") in (ev.NOT_FOUND, ev.NOT_ON_ROW):
            add(path, "not_on_page")
        elif entry.get("bbox") is not None and entry.get("reason"):
            add(path, "page_mismatch")
    for path in changed:
        add(path, "retry_changed")
    order = {p: i for i, (p, _) in enumerate(ev.leaves(data))} if data is not None else {}
    locs = sorted(reasons, key=lambda p: (p not in order, order.get(p, 0), p))
    return [{"loc": p, "reasons": [r for r in REASONS if r in reasons[p]]} for p in locs]


def assess(data: Any, pages: Sequence[Any], schema: dict | None, errors: Sequence[dict],
           completion: Any = None, changed: Sequence[str] = (),
           threshold: float = DEFAULT_REVIEW_BELOW,
           confidence: tuple[dict, dict] | None = None, unmask: bool = False) -> dict[str, Any]:
    """The record fields confidence, confidence_min, evidence, review and needs_review for the
    unmasked `data` read from `pages`. Confidence comes from `completion` (the answer the data
    came from), or is given as (confidence, confidence_min). Evidence never holds a value; the
    paths are masked as the record's errors are (an unknown key can be an Aadhaar number) unless
    `unmask`."""
    mean, low = confidence if confidence is not None else field_confidence(completion)
    found = ev.locate(data, pages, schema) if data is not None else {}
    review = review_list(data, errors, mean, found, changed, threshold)
    fields = {"confidence": mean, "confidence_min": low, "evidence": found, "review": review,
              "needs_review": bool(review), "review_below": threshold}
    if not unmask:
        from .schemas import masking

        fields = masking.scrub(fields)[0]
    return fields


def recheck(record: dict[str, Any], pages: Sequence[Any],
            threshold: float = DEFAULT_REVIEW_BELOW) -> dict[str, Any]:
    """`docextract review`: the record with `evidence` and `review` recomputed against its
    document (a corrected record, or one from another tool). Its data is validated again when
    its schema is known (errors and valid are replaced); masked values are matched with any
    digits in their X places; `retry_changed` reasons are kept (the history is not in the
    document)."""
    from . import schemas
    from .errors import DocextractError

    out = dict(record)
    data = record.get("data")
    errors = record.get("errors") or []
    spec = None
    if record.get("schema"):
        try:
            spec = schemas.get(record["schema"])
        except DocextractError:
            spec = None
    if spec is not None and data is not None:
        validation = spec.validate(json.loads(json.dumps(data)))
        errors = validation.errors
        out["valid"], out["errors"] = validation.valid, errors
    changed = [r["loc"] for r in record.get("review") or [] if "retry_changed" in r["reasons"]]
    confidence = (record.get("confidence") or {}, record.get("confidence_min") or {})
    fields = assess(data, pages, spec.json_schema if spec else None, errors, changed=changed,
                    threshold=threshold, confidence=confidence)
    out.update(evidence=fields["evidence"], review=fields["review"],
               needs_review=fields["needs_review"], review_below=fields["review_below"])
    return out

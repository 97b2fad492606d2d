"""`docextract eval`: find the labelled documents, get their records (extract them through the
batch engine, or read records already written), score, and build the report (plain data)."""

from __future__ import annotations

import copy
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..console import Console
from ..errors import InputError, UsageError
from ..fsutil import display_name
from . import dataset, fields as F, score as S

REPORT_FORMAT = "docextract-eval/1"
DEFAULT_REVIEW_BELOW = 0.9
# Record keys that may carry the review threshold the record was made with (issue 12).
THRESHOLD_KEYS = ("review_below", "review_threshold")
NORMALISATION = {
    "decimal": "money, quantities, rates, integers: as decimals (grouping commas, spaces and "
               "currency signs dropped; 118000.5 = 118000.50)",
    "date": "as calendar dates (ISO, or day-first 05/03/2024, 05-Mar-2024, 5 March 2024 in truth)",
    "identifier": "without whitespace, case-folded",
    "text": "Unicode NFC, case-folded, whitespace runs collapsed, ends trimmed",
    "boolean": "as is",
    "null": "null, a missing key and a blank string are the same",
}


def _schema_name(ref: Any) -> str | None:
    return ref.partition("@")[0] if isinstance(ref, str) and ref else None


def evaluate(folder: str, schema: str | None, console: Console, *,
             predictions: str | None = None, predictions_out: str | None = None,
             work: str | None = None, mapping: dict[str, str] | None = None,
             review_below: float | None = None, opts=None, workers: int = 2,
             engine_factory=None) -> dict[str, Any]:
    from .. import pipeline, schemas

    root = dataset.check_folder(folder)
    if predictions is None and schema is None:
        raise UsageError("--schema is needed to extract the documents",
                         hint="pass --schema NAME|auto, or --predictions results.jsonl")
    wanted = schema or "auto"
    if wanted == "auto":
        candidates = {n: schemas.get(n) for n in pipeline.DOCUMENT_TYPES if n != "other"}
    else:
        spec = schemas.get(wanted)  # a name, or a user schema file
        candidates = {spec.name: spec}
    cases, orphans = dataset.discover(root)
    for name in orphans:
        console.warn(f"{name}{dataset.TRUTH_SUFFIX}: no document beside it (skipped)")
    dataset.load_truths(cases, root, mapping or {}, candidates)
    skipped = [c.name for c in cases if c.schema not in candidates]
    cases = [c for c in cases if c.schema in candidates]
    if not cases:
        raise InputError(f"{display_name(root)}: no labelled documents"
                         + (f" of schema {wanted}" if wanted != "auto" else ""),
                         hint=(f"{len(skipped)} truth file(s) fit another schema, or need "
                               "--map to rename their keys" if skipped else
                               f"each document needs NAME{dataset.TRUTH_SUFFIX} beside it"))

    run_info: dict[str, Any] = {}
    if predictions is not None:
        dataset.attach_records(cases, dataset.read_records(Path(predictions)))
        run_info = {"predictions": display_name(predictions)}
    else:
        run_info = _extract(cases, root, wanted, console, opts, work, predictions_out, workers,
                            engine_factory)
    unmatched = [c.name for c in cases if c.record is None]
    for name in unmatched:
        console.warn(f"{name}: no record for this document (not scored)")
    scored = [c for c in cases if c.record is not None]
    report = score_cases(scored, review_below, auto=wanted == "auto", specs=candidates,
                         wall_s=run_info.pop("wall_s", None), fresh=run_info.pop("fresh", []))
    report["run"] = {"folder": display_name(root), "schema": wanted, **run_info}
    report["documents"] = {"labelled": len(cases) + len(skipped), "scored": len(scored),
                           "unmatched": unmatched, "other_schema": skipped,
                           "truth_without_document": orphans}
    return report


def _extract(cases, root: Path, schema: str, console: Console, opts, work, predictions_out,
             workers, engine_factory) -> dict[str, Any]:
    """Run the batch engine over the cases into the predictions file (resumable)."""
    import os

    from ..batch import collect_documents, read_existing, record_key, run_batch
    from ..ingest import file_sha256
    from ..pipeline import RunOptions, model_identity, resolve_schema

    opts = opts or RunOptions(schema=schema)
    opts.schema = schema
    work_dir = Path(work) if work else root / ".docextract-eval"
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{display_name(work_dir)}: cannot create the work folder: "
                         f"{exc.strerror}", hint="pass --work DIR, a folder you can write") from None
    out = Path(predictions_out) if predictions_out else work_dir / "predictions.jsonl"
    inputs = []
    for case in cases:
        case.input = case.files[0] if len(case.files) == 1 else dataset.join_pages(case, work_dir)
        case.sha256 = file_sha256(str(case.input))
        inputs.append(str(case.input))
    target = resolve_schema(schema)
    model_id = opts.model or os.environ.get("DOCEXTRACT_MODEL") or "default"
    settings = opts.decoding_settings()
    before, _ = read_existing(out)
    t0 = time.monotonic()
    run_batch(inputs, opts, console, out=str(out), resume=True, workers=workers,
              engine_factory=engine_factory)
    wall_s = time.monotonic() - t0
    # The keys batch gave these documents (after the run: a repository id names its folder then).
    identity = model_identity(opts)
    keys = {c.name: record_key([(doc.name, c.sha256)], target.ref, identity, settings)
            for c, doc in zip(cases, collect_documents(inputs, None))}
    records = dataset.read_records(out)
    by_key = {r.get("key"): r for r in records if r.get("key")}
    dataset.attach_records(cases, records)  # fallback: same file under other settings
    for case in cases:
        case.record = by_key.get(keys[case.name], case.record)
    fresh = [c.record for c in cases if c.record is not None and keys[c.name] not in before]
    return {"predictions": display_name(out), "model": model_id, "settings": settings,
            "wall_s": wall_s, "fresh": fresh}


def _threshold(records: list[dict[str, Any]], given: float | None) -> tuple[float, str]:
    for rec in records:
        for key in THRESHOLD_KEYS:
            value = rec.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value), f"record ({key})"
    if given is not None:
        return given, "--review-below"
    return DEFAULT_REVIEW_BELOW, "default"


def _truth_for(case, spec, layout: F.Layout) -> dict[str, Any]:
    """The truth as the record shows it: fields the record masked are compared masked."""
    masked = case.record.get("masked") if isinstance(case.record, dict) else None
    if not masked or not isinstance(case.truth, dict):
        return case.truth
    try:
        shown, _ = spec.mask(case.truth)
    except Exception:  # a truth the masker cannot handle: compare as is
        return case.truth
    truth = copy.deepcopy(case.truth)
    for path in masked:
        if isinstance(path, str):
            _copy_at(shown, truth, path)
    return truth


def _copy_at(src: Any, dst: Any, path: str) -> None:
    """dst[path] = src[path] for a record path such as `transactions[1].reference`, when both
    hold it (a truth shorter than the record is left as it is)."""
    steps: list[Any] = []
    for part in path.split("."):
        name, *indices = re.split(r"\[", part)
        if name:
            steps.append(name)
        steps += [int(i.rstrip("]")) for i in indices if i.rstrip("]").isdigit()]
    for step in steps[:-1] if steps else ():
        try:
            src, dst = src[step], dst[step]
        except (KeyError, IndexError, TypeError):
            return
    if not steps:
        return
    last = steps[-1]
    try:
        value = src[last]
        dst[last]  # noqa: B018 (the truth holds it too)
    except (KeyError, IndexError, TypeError):
        return
    dst[last] = value


def score_cases(cases, review_below: float | None = None, *, auto: bool = False,
                specs: dict[str, Any] | None = None, wall_s: float | None = None,
                fresh=()) -> dict[str, Any]:
    """The report for cases that carry truth, schema name and record; `specs` resolves schema
    names that are not built in (a user's schema file)."""
    from .. import schemas

    per_schema: dict[str, S.SchemaScore] = {}
    specs = dict(specs or {})
    items: list[tuple[float, bool]] = []
    reviewed: list[bool] = []
    unconfident: list[bool] = []
    has_conf = has_review = False
    confusion: dict[str, dict[str, int]] = {}
    per_doc = []
    records = [c.record for c in cases]
    for case in sorted(cases, key=lambda c: c.name):
        if case.schema not in specs:
            specs[case.schema] = schemas.get(case.schema)
        if case.schema not in per_schema:
            per_schema[case.schema] = S.SchemaScore(case.schema,
                                                    F.layout(specs[case.schema].json_schema))
        spec, acc = specs[case.schema], per_schema[case.schema]
        rec = case.record
        pred_schema = _schema_name(rec.get("schema"))
        pred = rec.get("data") if pred_schema == case.schema else None
        conf = rec.get("confidence")
        doc = S.score_document(_truth_for(case, spec, acc.layout), pred, acc.layout,
                               conf if isinstance(conf, dict) else None)
        acc.add(doc, rec)
        if isinstance(conf, dict):
            has_conf = True
            review = rec.get("review")
            locs = {r.get("loc") for r in review if isinstance(r, dict)} \
                if isinstance(review, list) else None
            has_review = has_review or locs is not None
            for path, c, right in doc.items:
                items.append((c, right))
                reviewed.append(bool(locs) and path in locs)
            unconfident += doc.unconfident
        predicted = rec.get("document_type") or pred_schema or "none"
        confusion.setdefault(case.schema, {}).setdefault(predicted, 0)
        confusion[case.schema][predicted] += 1
        per_doc.append({"name": case.name, "schema": case.schema, "predicted": predicted,
                        "valid": rec.get("valid"), "needs_review": rec.get("needs_review"),
                        "all_right": doc.all_right, "wrong": doc.wrong})
    threshold, source = _threshold(records, review_below)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT, "docextract": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "normalisation": NORMALISATION,
        "summary": _summary(per_schema, per_doc),
        "schemas": {name: s.as_dict() for name, s in sorted(per_schema.items())},
    }
    if auto:
        right = sum(n for t, row in confusion.items() for p, n in row.items() if p == t)
        report["document_type"] = {"accuracy": S.ratio(right, len(cases)),
                                   "confusion": confusion}
    if has_conf:
        conf_report = S.confidence_report(items, unconfident, threshold,
                                          reviewed if has_review else None)
        conf_report["threshold_from"] = source
        report["confidence"] = conf_report
    report["speed"] = S.speed(records, wall_s, list(fresh))
    report["per_document"] = per_doc
    return report


def _summary(per_schema: dict[str, S.SchemaScore], per_doc: list[dict[str, Any]]) -> dict[str, Any]:
    n = right = 0
    for s in per_schema.values():
        for t in s.fields.values():
            n += t.n
            right += t.right
        for lst in s.lists.values():
            for t in lst["columns"].values():
                n += t.n
                right += t.right
    docs = len(per_doc)
    known = [d for d in per_doc if isinstance(d["valid"], bool)]
    flagged = [d for d in per_doc if isinstance(d["needs_review"], bool)]
    return {"documents": docs, "all_right": sum(d["all_right"] for d in per_doc),
            "all_right_rate": S.ratio(sum(d["all_right"] for d in per_doc), docs),
            "valid_rate": S.ratio(sum(d["valid"] for d in known), len(known)),
            "needs_review_rate": S.ratio(sum(d["needs_review"] for d in flagged), len(flagged)),
            "field_accuracy": S.ratio(right, n), "fields": n}

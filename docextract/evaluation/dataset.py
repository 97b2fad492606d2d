"""An evaluation set on disk, its extraction through the batch engine, and reading records.

Layout: every document NAME in the folder (recursive; hidden entries skipped) has its truth
beside it as NAME.truth.json, in the schema's own JSON form (what `run --unmask` writes as
`data`). The document is NAME.pdf / NAME.jpg / ... (any suffix batch reads), or one photo per
page NAME-p1.jpg, NAME-p2.jpg, ... (eval joins those into one multi-page TIFF in its work folder,
pixels unchanged, so the model sees them as one document). An optional manifest.json
(`{"documents": [{"truth": "NAME.truth.json", "schema": "invoice"}, ...]}`, as the samples
generator writes) names each truth's schema; without it the schema (among the built-ins and the
one `--schema` names) whose fields best cover the truth's keys is taken, so `--schema pan` on a mixed folder scores only the PAN truths.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from ..fsutil import display_name

TRUTH_SUFFIX = ".truth.json"


@dataclass
class Case:
    """One labelled document."""

    name: str  # relative to the folder, without suffix
    truth_path: Path
    files: list[Path]  # the document (one file), or its page photos in order
    truth: dict[str, Any] | None = None
    schema: str | None = None  # the truth's schema name
    input: Path | None = None  # what is given to the engine
    sha256: str | None = None
    record: dict[str, Any] | None = field(default=None, repr=False)


def _document_suffixes() -> set[str]:
    from ..batch import DOCUMENT_SUFFIXES

    return DOCUMENT_SUFFIXES


def discover(folder: Path) -> tuple[list[Case], list[str]]:
    """The labelled documents under `folder`, and the truth files that have no document."""
    if not folder.is_dir():
        raise InputError(f"{display_name(folder)}: not a folder",
                         hint="give the folder that holds the documents and their .truth.json files")
    suffixes = _document_suffixes()
    cases: list[Case] = []
    orphans: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = sorted(f for f in files if not f.startswith("."))
        by_lower = {n.lower(): n for n in names}
        for truth_name in (n for n in names if n.endswith(TRUTH_SUFFIX)):
            stem = truth_name[: -len(TRUTH_SUFFIX)]
            here = Path(root)
            rel = str((here / stem).relative_to(folder))
            single = [here / by_lower[f"{stem}{s}".lower()] for s in sorted(suffixes)
                      if f"{stem}{s}".lower() in by_lower]
            if single:
                cases.append(Case(rel, here / truth_name, single[:1]))
                continue
            pages = []
            pat = re.compile(re.escape(stem) + r"-p(\d+)(\.[A-Za-z]+)$")
            for n in names:
                m = pat.fullmatch(n)
                if m and m[2].lower() in suffixes:
                    pages.append((int(m[1]), here / n))
            pages.sort()
            if pages and [k for k, _ in pages] == list(range(1, len(pages) + 1)):
                cases.append(Case(rel, here / truth_name, [p for _, p in pages]))
            else:
                orphans.append(rel)
    return cases, orphans


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{display_name(path)}: cannot read the {what}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{display_name(path)}: the {what} is not JSON ({exc})") from None


def manifest_schemas(folder: Path) -> dict[str, str]:
    """truth file (relative path) -> schema name, from folder/manifest.json when present."""
    path = folder / "manifest.json"
    if not path.is_file():
        return {}
    raw = read_json(path, "manifest")
    out = {}
    for entry in raw.get("documents", []) if isinstance(raw, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("truth"), str) \
                and isinstance(entry.get("schema"), str):
            out[entry["truth"]] = entry["schema"]
    return out


def guess_schema(truth: dict[str, Any], candidates: dict[str, Any]) -> str | None:
    """The candidate schema (name -> Spec) whose top-level fields best cover the truth's keys
    (Jaccard)."""
    keys = set(truth)
    best, best_score = None, 0.0
    for name, spec in candidates.items():
        props = set(spec.json_schema.get("properties", {}))
        score = len(keys & props) / max(1, len(keys | props))
        if score > best_score:
            best, best_score = name, score
    return best


def join_pages(case: Case, work: Path) -> Path:
    """The page photos of `case` as one multi-page TIFF (lossless) in the work folder; rewritten
    only when a page changed, so the batch key (the file's sha256) stays stable."""
    from PIL import Image, ImageOps

    out = work / "pages" / (case.name.replace(os.sep, "__") + ".tiff")
    out.parent.mkdir(parents=True, exist_ok=True)
    newest = max(p.stat().st_mtime for p in case.files)
    if out.exists() and out.stat().st_mtime >= newest:
        return out
    images = []
    for p in case.files:
        try:
            with Image.open(p) as im:
                images.append(ImageOps.exif_transpose(im).convert("RGB"))
        except OSError as exc:
            raise InputError(f"{display_name(p)}: cannot read the page photo ({exc})") from None
    tmp = out.with_suffix(".tmp.tiff")
    images[0].save(tmp, format="TIFF", save_all=True, append_images=images[1:],
                   compression="tiff_deflate")
    os.replace(tmp, out)
    return out


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records written by `run` (one JSON object, or JSON Lines) or `batch` (JSON Lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{display_name(path)}: cannot read the predictions: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{display_name(path)}: the predictions are not UTF-8 text") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        return [whole]
    if isinstance(whole, list):
        return [r for r in whole if isinstance(r, dict)]
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{display_name(path)}: line {number} is not JSON",
                             hint="give the JSON Lines file that run or batch wrote") from None
        if isinstance(rec, dict):
            records.append(rec)
    return records


def attach_records(cases: list[Case], records: list[dict[str, Any]]) -> None:
    """Give each case its record: by the document's sha256 when it matches, else by file names
    (the record's `source`; for page photos, the file names in its `sources`); the last record
    wins. A document of page photos has the sha256 that `batch --group-by stem` and
    `run --one-document` give it (see grouping.combined_sha256)."""
    from ..grouping import combined_sha256
    from ..ingest import file_sha256

    by_sha: dict[str, dict[str, Any]] = {}
    by_name: dict[Any, dict[str, Any]] = {}
    for rec in records:
        if isinstance(rec.get("sha256"), str):
            by_sha[rec["sha256"]] = rec
        sources = rec.get("sources")
        if isinstance(sources, list) and len(sources) > 1:
            names = tuple(Path(s["source"]).name if isinstance(s, dict)
                          and isinstance(s.get("source"), str) else None for s in sources)
            by_name[names] = rec
        elif isinstance(rec.get("source"), str):
            by_name[Path(rec["source"]).name] = rec
    for case in cases:
        if case.sha256 is None:
            try:
                case.sha256 = combined_sha256([file_sha256(str(f)) for f in case.files])
            except (OSError, InputError):
                case.sha256 = None
        rec = by_sha.get(case.sha256) if case.sha256 else None
        if rec is None:
            names = [f.name for f in case.files]
            rec = by_name.get(names[0] if len(names) == 1 else tuple(names))
        case.record = rec


def load_truths(cases: list[Case], folder: Path, mapping: dict[str, str],
                candidates: dict[str, Any]) -> list[Case]:
    """Read each truth (renamed by `mapping`) and decide its schema name: the manifest's, else
    the best fit among the built-ins and `candidates` (name -> Spec)."""
    from .. import schemas
    from ..schemas import BUILTIN
    from .fields import apply_map

    listed = manifest_schemas(folder)
    for case in cases:
        raw = read_json(case.truth_path, "truth file")
        if not isinstance(raw, dict):
            raise InputError(f"{display_name(case.truth_path)}: the truth must be a JSON object")
        case.truth = apply_map(raw, mapping)
        rel = str(case.truth_path.relative_to(folder))
        # Without a manifest: the best-fitting schema, among the built-ins and the one asked
        # for, so that `--schema pan` on a mixed folder scores only the PAN truths.
        pool = {**{n: schemas.get(n) for n in BUILTIN}, **candidates}
        case.schema = listed.get(rel) or guess_schema(case.truth, pool)
    return cases


def check_folder(folder: str | None) -> Path:
    if folder is None:
        raise UsageError("give the folder of labelled documents",
                         hint="docextract eval DIR --schema NAME|auto (or --compare A.json B.json)")
    return Path(folder)

"""`docextract batch`: many documents -> JSON Lines, resumable, never losing a finished record.

Guarantees:
- one record per input document, appended with a single write and flushed (and fsynced), so a
  crash leaves at most one partial last line;
- resume (default): each record carries `key` = sha256(file) + schema@version + model id +
  decoding settings; inputs whose key is already in the output are skipped. A partial last line
  and records of retryable failures (engine errors, interruptions, files that could not be read
  at all) are dropped by rewriting the file atomically before the run appends;
- Ctrl-C finishes the current record, then exits 130; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

from .console import Console, dumps
from .errors import ExitCode, InputError, Interrupted, UsageError
from .fsutil import atomic_write_text, display_name
from . import pipeline
from .pipeline import EngineFactory, RunOptions, error_record
from .status import EngineStatus

# Suffixes batch picks up from folders when no --glob is given.
DOCUMENT_SUFFIXES = {".pdf", ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff",
                     ".heic", ".heif"}
RETRYABLE_TYPES = {"model", "interrupted"}


def collect_inputs(paths: Sequence[str], glob: str | None, exclude: Path | None = None) -> list[str]:
    """Files given directly, plus the documents under the given folders (recursive, sorted).
    Hidden files and folders are skipped; `exclude` (the output file) is never an input."""
    found: list[str] = []
    excluded = exclude.resolve() if exclude else None
    for given in paths:
        p = Path(given)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    if glob is not None:
                        if not fnmatch.fnmatch(name, glob):
                            continue
                    elif Path(name).suffix.lower() not in DOCUMENT_SUFFIXES:
                        continue
                    path = Path(root) / name
                    if excluded is not None and path.resolve() == excluded:
                        continue
                    found.append(str(path))
        elif p.exists() or given == "-":
            if given == "-":
                raise UsageError("batch cannot read a document from stdin",
                                 hint="use 'docextract run -' for one document from stdin")
            found.append(given)
        else:
            # Still an input: it becomes an error record (the batch goes on).
            found.append(given)
    seen: set[str] = set()
    return [f for f in found if not (f in seen or seen.add(f))]


def record_key(sha256: str, schema_ref: str, model_id: str, settings: dict[str, Any]) -> str:
    blob = json.dumps({"sha256": sha256, "schema": schema_ref, "model": model_id,
                       "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def read_existing(out: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    """Finished records of a previous run, by key, and whether the file needs a rewrite (a
    partial last line, or records to retry)."""
    if not out.exists():
        return {}, False
    raw = out.read_bytes()
    keep: dict[str, dict[str, Any]] = {}
    dirty = False
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        dirty = True  # no final newline: the last line was cut short
        lines.pop()
    for line in lines:
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            dirty = True
            continue
        key = rec.get("key") if isinstance(rec, dict) else None
        types = {e.get("type") for e in rec.get("errors", [])} if isinstance(rec, dict) else set()
        if not key or types & RETRYABLE_TYPES or key in keep:
            dirty = True
            continue
        keep[key] = rec
    return keep, dirty


class _StopFlag:
    """First Ctrl-C: finish the current record; second: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _prefetch(inputs: list[str], opts: RunOptions, workers: int) -> Iterator[tuple[str, Future]]:
    """Read and render documents in background threads, a few ahead of the engine."""
    from . import ingest
    from .ingest import file_sha256

    def load(path: str):
        sha = None
        try:
            sha = file_sha256(path)
        except (OSError, InputError):
            pass
        t0 = time.monotonic()
        try:
            pages = ingest.load(path, **opts.ingest_kwargs())
        except InputError as exc:
            return sha, exc, 0.0
        return sha, pages, time.monotonic() - t0

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        ahead = max(2, 2 * workers)
        futures: list[tuple[str, Future]] = []
        it = iter(inputs)
        for path in it:
            futures.append((path, pool.submit(load, path)))
            if len(futures) >= ahead:
                break
        while futures:
            path, fut = futures.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                futures.append((nxt, pool.submit(load, nxt)))
            yield path, fut


def run_batch(paths: Sequence[str], opts: RunOptions, console: Console, *, out: str,
              glob: str | None = None, resume: bool = True, workers: int = 2,
              engine_factory: EngineFactory | None = None) -> ExitCode:
    engine_factory = engine_factory or pipeline.load_engine
    target = pipeline.resolve_schema(opts.schema)
    to_stdout = out == "-"
    out_path = None if to_stdout else Path(out)
    if out_path is not None and out_path.is_dir():
        raise UsageError(f"{display_name(out)} is a folder", hint="--out takes a .jsonl file name")
    inputs = collect_inputs(paths, glob, exclude=out_path)
    if not inputs:
        raise UsageError("no documents found in the given paths",
                         hint="check the folder, or pass --glob '*.ext' to pick other files")

    existing: dict[str, dict[str, Any]] = {}
    if out_path is not None:
        if resume:
            existing, dirty = read_existing(out_path)
            if dirty:
                atomic_write_text(out_path, "".join(dumps(r) + "\n" for r in existing.values()))
        else:
            atomic_write_text(out_path, "")
    model_id = opts.model or os.environ.get("DOCEXTRACT_MODEL") or "default"
    settings = opts.decoding_settings()

    runner = _Runner(console, opts, target, engine_factory, existing, model_id, settings,
                     None if to_stdout else open(out_path, "a", encoding="utf-8"))
    try:
        with _StopFlag() as stop, console.progress("documents", total=len(inputs)) as bar:
            runner.run(_prefetch(inputs, opts, workers), stop, bar)
    finally:
        runner.close()
    c = runner.counts
    console.info(f"{c['done']} processed, {c['skipped']} already done, {c['errors']} unreadable, "
                 f"{c['invalid']} invalid" + ("" if to_stdout else f"; results in {display_name(out)}"))
    return runner.worst


class _Runner:
    """Documents in, records out. With an engine that offers `session()`, many documents are in
    flight at once (continuous batching: a document's next request, e.g. the extraction after
    `--schema auto`'s type choice or a validation retry, is queued as soon as its previous one
    finishes) and records are written in completion order; otherwise one document at a time."""

    def __init__(self, console, opts, target, engine_factory, existing, model_id, settings, sink):
        self.console, self.opts, self.target = console, opts, target
        self.engine_factory = engine_factory
        self.existing, self.model_id, self.settings = existing, model_id, settings
        self.sink = sink
        self.engine = None
        self.session = None
        self.inflight: dict[int, dict[str, Any]] = {}
        self.counts = {"done": 0, "skipped": 0, "errors": 0, "invalid": 0}
        self.worst = ExitCode.OK
        self.pages = 0
        self.tokens = 0
        self.t_start = time.monotonic()

    def run(self, docs, stop, bar) -> None:
        self.bar = bar
        docs = iter(docs)
        exhausted = False
        while True:
            while not exhausted and not stop.requested and self._has_room():
                item = next(docs, None)
                if item is None:
                    exhausted = True
                    break
                self._start(*item)
            if self.session is not None and self.session.has_work:
                for tag, completion in self.session.step():
                    self._advance(tag, completion)
                continue
            if exhausted or stop.requested:
                break
        if stop.requested:
            raise Interrupted("interrupted; finished records are saved",
                              hint="run the same command again to resume")

    def _has_room(self) -> bool:
        if self.session is None:
            return True
        # Keep the queue a little ahead of the pool so a freed slot never waits for ingestion.
        return self.session.in_flight < self.session.slots + 2

    def _start(self, path: str, fut) -> None:
        sha, pages, ingest_s = fut.result()
        key = record_key(sha, self.target.ref, self.model_id, self.settings) if sha else None
        if key is not None and key in self.existing:
            self.counts["skipped"] += 1
            self.worst = _worse(self.worst, self.existing[key])
            self.bar.update(1, skipped=self.counts["skipped"])
            return
        doc = {"path": path, "sha": sha, "key": key, "ingest_s": ingest_s}
        if isinstance(pages, InputError):
            self.console.warn(pages.message)
            self._finish(doc, self._error(doc, pages))
            return
        self.pages += len(pages)
        if self.engine is None:
            self.engine = self.engine_factory(self.opts, self.console)
            if hasattr(self.engine, "session"):
                status = ({"progress": EngineStatus(self.bar, ticker=False)}
                          if getattr(self.engine, "reports_progress", False) else {})
                self.session = self.engine.session(slots=self.opts.max_batch,
                                                   memory_gib=self.opts.gpu_memory, **status)
        model = pipeline.model_info(self.engine)
        doc["flow"] = pipeline.document_flow(pages, self.target, model, unmask=self.opts.unmask,
                                             retries=self.opts.retries)
        if self.session is None:
            try:
                fields = pipeline.drive(doc["flow"], self.engine)
            except InputError as exc:  # e.g. more pages than the model's context
                self._finish(doc, self._error(doc, exc))
                return
            self._finish(doc, self._record(doc, fields))
            return
        tag = id(doc)
        self.inflight[tag] = doc
        self._submit(tag, doc, next(doc["flow"]))

    def _submit(self, tag: int, doc: dict[str, Any], request) -> None:
        try:
            self.session.submit(request, tag)
        except InputError as exc:
            del self.inflight[tag]
            self._finish(doc, self._error(doc, exc))

    def _advance(self, tag: int, completion) -> None:
        doc = self.inflight[tag]
        try:
            request = doc["flow"].send(completion)
        except StopIteration as done:
            del self.inflight[tag]
            self._finish(doc, self._record(doc, done.value))
            return
        self._submit(tag, doc, request)

    def _record(self, doc: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        record = {"source": display_name(doc["path"]), "sha256": doc["sha"], **fields}
        record["timing"] = {"ingest_s": round(doc["ingest_s"], 4), **record["timing"]}
        record["max_pixels"] = self.opts.ingest_kwargs()["max_pixels"]
        self.tokens += record["timing"].get("tokens", 0)
        if not record["valid"]:
            self.counts["invalid"] += 1
        return record

    def _error(self, doc: dict[str, Any], exc: InputError) -> dict[str, Any]:
        if "flow" in doc:
            self.console.warn(f"{display_name(doc['path'])}: {exc.message}")
        self.counts["errors"] += 1
        return error_record(display_name(doc["path"]), exc, sha256=doc["sha"],
                            schema_ref=self.target.ref)

    def _finish(self, doc: dict[str, Any], record: dict[str, Any]) -> None:
        record["key"] = doc["key"]
        line = dumps(record) + "\n"
        if self.sink is None:
            self.console.emit_text(line)
        else:
            self.sink.write(line)
            self.sink.flush()
            os.fsync(self.sink.fileno())
        self.worst = _worse(self.worst, record)
        if doc["key"] is not None:
            self.existing[doc["key"]] = record
        self.counts["done"] += 1
        elapsed = max(time.monotonic() - self.t_start, 1e-9)
        self.bar.update(1, errors=self.counts["errors"],
                        rate=f"{self.counts['done'] / elapsed:.2f} docs/s",
                        pages=f"{self.pages / elapsed:.1f}/s", tokens=f"{self.tokens / elapsed:.0f}/s")

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        if self.sink is not None:
            self.sink.close()


def _worse(code: ExitCode, record: dict[str, Any]) -> ExitCode:
    """Exit code over all inputs, resumed ones included: 3 if any could not be read, else 1 if
    any is invalid, else 0."""
    if record.get("data") is None and any(e.get("type") == "input" for e in record["errors"]):
        return ExitCode.INPUT
    if not record.get("valid") and code == ExitCode.OK:
        return ExitCode.VALIDATION_FAILED
    return code

"""`docextract batch`: many documents -> JSON Lines, resumable, never losing a finished record.

Guarantees (README "Reliability"):
- the output is checked before any work (not a folder, not an input, not a file docextract did
  not write unless --force) and has one writer: an advisory lock (`OutputLock`) held for the
  whole run;
- one record per input document, appended with a single write and flushed (and fsynced), so a
  crash leaves at most one partial last line;
- resume (default): each record carries `key` (`record_key`: the document's files, each by its
  name relative to the folder given and its sha256, + schema@version + the model's resolved
  folder and config hash + decoding settings); inputs whose key is already in the output are
  skipped. A partial last line and records of retryable failures (engine errors, interruptions,
  files that could not be read at all) are dropped by rewriting the file atomically before the run
  appends; a line that is not a batch record is never dropped: the file is refused instead;
- Ctrl-C or SIGTERM finishes the records in flight, then exits 130 (143 for SIGTERM); a second
  one stops at once.
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
from typing import Any, Iterator, NamedTuple, Sequence

from .console import Console, dumps
from .errors import ExitCode, InputError, Interrupted, Terminated, UsageError
from .fsutil import (OutputLock, atomic_write_text, check_output, display_name, is_record,
                     output_error)
from . import budget, grouping, objstore, pipeline
from .pipeline import EngineFactory, RunOptions, error_record
from .status import EngineStatus

# Suffixes batch picks up from folders when no --glob is given.
DOCUMENT_SUFFIXES = {".pdf", ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff",
                     ".heic", ".heif"}
RETRYABLE_TYPES = {"model", "interrupted"}


class Input(NamedTuple):
    """One input file: `path` as found, `name` its path relative to the folder it was found
    under (a file given directly: its file name), '/'-separated; unique within a batch."""

    path: str
    name: str


def collect_documents(paths: Sequence[str], glob: str | None,
                      exclude: Path | None = None) -> list[Input]:
    """Files given directly, plus the documents under the given folders (recursive, sorted), each
    once (by real path). Hidden files and folders are skipped; `exclude` (the output file) is
    never an input. Names that would repeat (two folders or files with the same layout) get
    `#2`, `#3`... in input order, so that identical files keep one record each."""
    found: list[Input] = []
    excluded = os.path.realpath(exclude) if exclude else None
    for given in paths:
        p = Path(given)
        if given == "-":
            raise UsageError("batch cannot read a document from stdin",
                             hint="use 'docextract run -' for one document from stdin")
        if objstore.is_uri(given):  # object storage: named by full URI (see objstore.py)
            found += [Input(obj, str(obj)) for obj in
                      objstore.collect(given, glob, DOCUMENT_SUFFIXES)]
        elif p.is_dir():
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
                    if excluded is not None and os.path.realpath(path) == excluded:
                        continue
                    found.append(Input(str(path), path.relative_to(p).as_posix()))
        else:
            # A missing file is still an input: it becomes an error record (the batch goes on).
            found.append(Input(given, p.name or given))
    seen: set[str] = set()
    names: dict[str, int] = {}
    out: list[Input] = []
    for inp in found:
        real = inp.path if isinstance(inp.path, objstore.ObjectPath) else os.path.realpath(inp.path)
        if real in seen:
            continue
        seen.add(real)
        n = names[inp.name] = names.get(inp.name, 0) + 1
        out.append(inp if n == 1 else Input(inp.path, f"{inp.name}#{n}"))
    return out


def collect_inputs(paths: Sequence[str], glob: str | None, exclude: Path | None = None) -> list[str]:
    """The paths of `collect_documents`."""
    return [inp.path for inp in collect_documents(paths, glob, exclude)]


KEY_VERSION = 2


def record_key(files: Sequence[tuple[str, str]], schema_ref: str, model: dict[str, Any] | None,
               settings: dict[str, Any]) -> str:
    """The resume key of one document made of `files`, each (name relative to the folder given,
    sha256 of its bytes), in page order: sha256 of the canonical JSON of
    {"v": 2, "files": [[name, sha256], ...], "schema": "name@version", "model": model identity
    (`pipeline.model_identity`: resolved folder and config.json sha256; null for a record made
    without the model, e.g. an unreadable file), "settings": decoding settings}."""
    blob = json.dumps({"v": KEY_VERSION, "files": [[n, h] for n, h in files], "schema": schema_ref,
                       "model": model, "settings": settings},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def legacy_key(sha256: str, schema_ref: str, model_arg: str, settings: dict[str, Any]) -> str:
    """The key of records written before key version 2 (content + the typed --model string);
    matched only together with the record's `source`, so those outputs stay resumable."""
    blob = json.dumps({"sha256": sha256, "schema": schema_ref, "model": model_arg,
                       "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ForeignOutput(Exception):
    """The output holds lines that are not batch records: resume cannot prove they are its own."""

    def __init__(self, line: int):
        super().__init__(f"line {line}")
        self.line = line


def read_existing(out: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    """Finished records of a previous run, by key, and whether the file needs a rewrite (a
    partial last line, or records to retry). Raises ForeignOutput at the first line that is not
    a batch record (a record with `key`): such a line is never rewritten away."""
    if not out.exists():
        return {}, False
    raw = out.read_bytes()
    keep: dict[str, dict[str, Any]] = {}
    dirty = False
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        # No final newline: the last line was cut short by a crash. Records start with
        # {"source": (the writer's order), anything else is not ours.
        if not lines[-1].startswith(b'{"source":'):
            raise ForeignOutput(len(lines))
        dirty = True
        lines.pop()
    for number, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
            raise ForeignOutput(number) from None
        if not is_record(rec) or not isinstance(rec.get("key", 0), (str, type(None))):
            raise ForeignOutput(number)
        key = rec["key"]
        types = {e.get("type") for e in rec["errors"] if isinstance(e, dict)}
        if not key or types & RETRYABLE_TYPES or key in keep:
            dirty = True
            continue
        keep[key] = rec
    return keep, dirty


class _StopFlag:
    """First Ctrl-C (or SIGTERM): finish the records in flight; second: stop at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            if signum == signal.SIGTERM:
                raise Terminated("terminated (SIGTERM) a second time; stopped at once",
                                 hint="run the same command again to resume")
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def stopped(self) -> Interrupted:
        if self.signum == signal.SIGTERM:
            return Terminated("terminated (SIGTERM); finished records are saved",
                              hint="run the same command again to resume")
        return Interrupted("interrupted; finished records are saved",
                           hint="run the same command again to resume")

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def read_document(path, opts: RunOptions) -> tuple[Any, Any, float]:
    """(sha256 or None, pages or the InputError, seconds) for a file's path; for a Document of
    several files: (each file's sha256 or None, (pages, sources, sha) or the InputError, s)."""
    from . import ingest
    from .ingest import file_sha256

    if isinstance(path, grouping.Document):
        t0 = time.monotonic()
        shas, pages = grouping.load_batch_document(path, opts)
        return shas, pages, time.monotonic() - t0
    if isinstance(path, objstore.ObjectPath):  # one read, into memory
        t0 = time.monotonic()
        sha, pages = objstore.read_document(path, opts)
        return sha, pages, 0.0 if isinstance(pages, InputError) else time.monotonic() - t0
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


def _prefetch(inputs: list[Input], opts: RunOptions, workers: int) -> Iterator[tuple[Input, Future]]:
    """Read and render documents in background threads, a few ahead of the engine."""

    def load(path):
        return read_document(path, opts)

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        ahead = max(2, 2 * workers)
        futures: list[tuple[Input, Future]] = []
        it = iter(inputs)
        for inp in it:
            futures.append((inp, pool.submit(load, _single(inp))))
            if len(futures) >= ahead:
                break
        while futures:
            inp, fut = futures.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                futures.append((nxt, pool.submit(load, _single(nxt))))
            yield inp, fut
    finally:
        # Stopping early (Ctrl-C, an error): documents read ahead are dropped, not waited for.
        pool.shutdown(wait=False, cancel_futures=True)


def _single(inp):
    """What `_prefetch` loads: a file's path, or a Document of several files."""
    return inp if isinstance(inp, grouping.Document) else inp.path


def open_output(out: str, *, inputs: Sequence[str], resume: bool, force: bool
                ) -> tuple[Any, OutputLock | None, dict[str, dict[str, Any]]]:
    """Check `--out` (before any work), lock it and read what a previous run finished: (the
    target, its lock or None, the finished records by key). A file whose lines resume cannot
    prove are its own is refused (exit 2) unless --force, which starts it afresh."""
    from .fsutil import written_by_docextract

    target = check_output(out, inputs=inputs, force=force, ours=lambda p: True)
    if target.special:
        return target, None, {}
    lock = OutputLock(target.real, display_name(out))
    lock.__enter__()
    try:
        existing: dict[str, dict[str, Any]] = {}
        rewrite = None
        if not resume:
            if target.exists and not force and not written_by_docextract(target.real):
                raise _foreign(out, None)
            rewrite = []
        else:
            try:
                existing, dirty = read_existing(target.real)
            except ForeignOutput as exc:
                if not force:
                    raise _foreign(out, exc.line) from None
                existing, dirty = {}, True
            if dirty:
                rewrite = existing.values()
        if rewrite is not None:
            atomic_write_text(target.real, "".join(dumps(r) + "\n" for r in rewrite))
    except BaseException:
        lock.__exit__(None, None, None)
        raise
    return target, lock, existing


def _foreign(out: str, line: int | None) -> UsageError:
    where = f" (line {line} is not a batch record)" if line else ""
    return UsageError(f"--out {display_name(out)} exists and was not written by docextract "
                      f"batch{where}; refusing to replace it",
                      hint="choose another --out, or add --force to replace that file")


def gather(paths: Sequence[str], glob: str | None, out: str, group_by: str | None
           ) -> tuple[list, list[str]]:
    """The batch's documents (grouped as `group_by` says) and the files named directly; `out`
    is checked first (before any work) unless it is stdout."""
    to_stdout = out == "-"
    direct = [p for p in paths if p != "-" and not os.path.isdir(p)]
    if not to_stdout:
        check_output(out, inputs=direct, force=True)
    inputs = collect_documents(paths, glob, exclude=None if to_stdout else Path(out))
    if not inputs:
        raise UsageError("no documents found in the given paths",
                         hint="check the folder, or pass --glob '*.ext' to pick other files")
    given = [objstore.clean(p) if objstore.is_uri(p) else p for p in paths]
    return grouping.batch_documents(inputs, group_by, given), direct


def open_sink(out: str, direct: Sequence[str], *, resume: bool, force: bool
              ) -> tuple[OutputLock | None, dict[str, dict[str, Any]], Any]:
    """(lock, finished records by key, the file records are appended to) for `out`; all
    None/empty for stdout."""
    if out == "-":
        return None, {}, None
    target, lock, existing = open_output(out, inputs=direct, resume=resume, force=force)
    try:
        return lock, existing, open(target.real, "a", encoding="utf-8")
    except OSError as exc:
        if lock is not None:
            lock.__exit__(None, None, None)
        raise output_error(out, exc) from None


def run_batch(paths: Sequence[str], opts: RunOptions, console: Console, *, out: str,
              glob: str | None = None, resume: bool = True, workers: int = 2,
              engine_factory: EngineFactory | None = None, force: bool = False,
              group_by: str | None = None) -> ExitCode:
    """`group_by` "folder" or "stem": several files as one document (see grouping.py)."""
    if group_by not in (None,) + grouping.GROUP_BY:
        raise UsageError(f"unknown --group-by {group_by!r}", hint="use folder or stem")
    engine_factory = engine_factory or pipeline.load_engine
    target = pipeline.resolve_schema(opts.schema, console)
    to_stdout = out == "-"
    inputs, direct = gather(paths, glob, out, group_by)
    lock, existing, sink = open_sink(out, direct, resume=resume, force=force)
    settings = opts.decoding_settings()
    runner = _Runner(console, opts, target, engine_factory, existing, pipeline.model_identity(opts),
                     settings, sink, out)
    runner.fsync = lock is not None  # not on a device or FIFO (/dev/stdout, /dev/null)
    docs = _prefetch(inputs, opts, budget.reader_threads(workers, opts.device))
    try:
        with _StopFlag() as stop, console.progress("documents", total=len(inputs)) as bar:
            runner.run(docs, stop, bar)
    finally:
        docs.close()
        runner.close()
        if lock is not None:
            lock.__exit__(None, None, None)
    console.info(summary(runner.counts) + ("" if to_stdout else f"; results in {display_name(out)}"))
    return runner.worst


def new_counts() -> dict[str, int]:
    return {"done": 0, "skipped": 0, "errors": 0, "invalid": 0, "earlier_errors": 0,
            "earlier_invalid": 0}


def count_skipped(counts: dict[str, int], previous: dict[str, Any] | None) -> None:
    """A document already in --out: counted, and its verdict kept for the summary (the exit code
    covers it too, see _worse)."""
    counts["skipped"] += 1
    if previous is None:
        return
    if previous.get("data") is None and previous.get("errors"):
        counts["earlier_errors"] += 1
    elif not previous.get("valid"):
        counts["earlier_invalid"] += 1


def summary(c: dict[str, int]) -> str:
    """The batch's last line on stderr. The first four counts are this run's; the documents
    already done before are summed up in brackets when any of them failed, so that a resumed
    run's exit code 1 or 3 is explained by the line above it."""
    line = (f"{c['done']} processed, {c['skipped']} already done, {c['errors']} unreadable, "
            f"{c['invalid']} invalid")
    if c.get("earlier_errors") or c.get("earlier_invalid"):
        line += (f" (of those already done: {c.get('earlier_errors', 0)} unreadable, "
                 f"{c.get('earlier_invalid', 0)} invalid)")
    return line


class _Runner:
    """Documents in, records out. With an engine that offers `session()`, many documents are in
    flight at once (continuous batching: a document's next request, e.g. the extraction after
    `--schema auto`'s type choice or a validation retry, is queued as soon as its previous one
    finishes) and records are written in completion order; otherwise one document at a time."""

    def __init__(self, console, opts, target, engine_factory, existing, model_id, settings, sink,
                 out="-"):
        self.console, self.opts, self.target = console, opts, target
        self.engine_factory = engine_factory
        self.existing, self.model_id, self.settings = existing, model_id, settings
        # Records of outputs written before key version 2 are matched by their old key + source.
        self.model_arg = opts.model or os.environ.get("DOCEXTRACT_MODEL") or "default"
        self.sink, self.out = sink, out
        self.fsync = True
        self.engine = None
        self.session = None
        self.windowing = None
        self.inflight: dict[int, dict[str, Any]] = {}
        self.counts = new_counts()
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
            raise stop.stopped()

    def _has_room(self) -> bool:
        if self.session is None:
            return True
        # Keep the queue a little ahead of the pool so a freed slot never waits for ingestion.
        return self.session.in_flight < self.session.slots + 2

    def _key(self, inp: Input, sha: str | None, uses_model: bool) -> str | None:
        """This input's key (None when its bytes could not be read: retried on every run).
        A record made without the model (an unreadable document) does not depend on it. A
        document of several files: every file, by name and sha256, in page order."""
        files = (list(zip([i.name for i in inp.inputs], sha))
                 if isinstance(inp, grouping.Document) else [(inp.name, sha)])
        if sha is None or any(h is None for _, h in files):
            return None
        return record_key(files, self.target.ref,
                          self.model_id if uses_model else None, self.settings)

    def _done_before(self, inp: Input, sha: str | None, key: str | None) -> dict | None:
        if key is not None and key in self.existing:
            return self.existing[key]
        if sha is None or isinstance(inp, grouping.Document):
            return None
        old = legacy_key(sha, self.target.ref, self.model_arg, self.settings)
        rec = self.existing.get(old)
        if rec is not None and rec.get("source") == display_name(inp.path):
            # Claimed once: an identical file elsewhere is not covered by this record.
            del self.existing[old]
            return rec
        return None

    def _start(self, inp: Input, fut) -> None:
        sha, pages, ingest_s = fut.result()
        key = self._key(inp, sha, not isinstance(pages, InputError))
        previous = self._done_before(inp, sha, key)
        if previous is not None:
            count_skipped(self.counts, previous)
            self.worst = _worse(self.worst, previous)
            self.bar.update(1, skipped=self.counts["skipped"])
            return
        path = inp.path
        doc = {"path": path, "sha": sha, "key": key, "ingest_s": ingest_s}
        if isinstance(inp, grouping.Document):
            doc["sha"] = None if key is None else grouping.combined_sha256(sha)
            if not isinstance(pages, InputError):
                pages, doc["sources"], _ = pages
        if isinstance(pages, InputError):
            self.console.warn(pages.message)
            self._finish(doc, self._error(doc, pages))
            return
        self.pages += len(pages)
        if self.engine is None:
            self.engine = self.engine_factory(self.opts, self.console)
            if "repo" in self.model_id:  # downloaded by the load: now a folder in the cache
                self.model_id = pipeline.model_identity(self.opts)
                doc["key"] = self._key(inp, sha, True)
            if hasattr(self.engine, "session"):
                status = ({"progress": EngineStatus(self.bar, ticker=False)}
                          if getattr(self.engine, "reports_progress", False) else {})
                self.session = self.engine.session(slots=self.opts.max_batch,
                                                   memory_gib=self.opts.gpu_memory, **status)
            self.windowing = pipeline.windowing_for(
                self.opts, self.engine, getattr(self.session, "slot_tokens", None))
        model = pipeline.model_info(self.engine)
        doc["flow"] = pipeline.document_flow(pages, self.target, model, unmask=self.opts.unmask,
                                             retries=self.opts.retries, windowing=self.windowing,
                                             review_below=self.opts.review_below)
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
        """Queue a flow's request, or all of a list (page windows: decoded side by side)."""
        try:
            if isinstance(request, list):
                doc["parts"] = [None] * len(request)
                for k, part in enumerate(request):
                    self.session.submit(part, (tag, k))
            else:
                self.session.submit(request, tag)
        except InputError as exc:  # parts already queued finish unheard (see _advance)
            del self.inflight[tag]
            self._finish(doc, self._error(doc, exc))

    def _advance(self, tag, completion) -> None:
        if isinstance(tag, tuple):  # one of a list: the flow goes on once all have finished
            tag, k = tag
            doc = self.inflight.get(tag)
            if doc is None:
                return
            doc["parts"][k] = completion
            if any(c is None for c in doc["parts"]):
                return
            completion = doc.pop("parts")
        doc = self.inflight[tag]
        try:
            request = doc["flow"].send(completion)
        except StopIteration as done:
            del self.inflight[tag]
            self._finish(doc, self._record(doc, done.value))
            return
        self._submit(tag, doc, request)

    def _record(self, doc: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        head = {"source": display_name(doc["path"]), "sha256": doc["sha"]}
        if "sources" in doc:  # a document of several files
            head["sources"] = doc["sources"]
        record = {**head, **fields}
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
            try:
                self.sink.write(line)
                self.sink.flush()
                if self.fsync:
                    os.fsync(self.sink.fileno())
            except OSError as exc:
                raise output_error(self.out, exc) from None
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
            try:
                self.sink.close()
            except OSError:  # already reported by the write that failed
                pass


def _worse(code: ExitCode, record: dict[str, Any]) -> ExitCode:
    """Exit code over all inputs, resumed ones included: 3 if any could not be read, else 1 if
    any is invalid, else 0."""
    if record.get("data") is None and any(e.get("type") == "input" for e in record["errors"]):
        return ExitCode.INPUT
    if not record.get("valid") and code == ExitCode.OK:
        return ExitCode.VALIDATION_FAILED
    return code

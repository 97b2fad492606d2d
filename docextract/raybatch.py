"""`docextract batch --ray auto|ADDRESS`: the same batch over a Ray cluster (`docextract[ray]`).

Stages:
- read (Ray Data, CPU tasks, one document per block): each input's sha256 and resume key, by
  batch.py's own `read_document` and `_Runner._key` / `_done_before`; a document already in
  --out is not rendered, only marked skipped; the others are rendered into pages;
- extract (a pool of `Extractor` actors, one engine each, `num_gpus=1` on a cluster with GPUs):
  a block's documents enter the actor's continuously batched session (batch.py's `_Runner`
  driving pipeline flows), many documents in flight per actor; schema validation and masking
  run in the flow, on the actor's CPU. The pool is driven from here rather than by Ray Data's
  `map_batches`, whose actor pool retries a failing block without end and then fails the whole
  dataset: here a document whose actor died is sent to another actor, MAX_ATTEMPTS times in
  all, and then becomes an error record (type `model`, retried by the next run);
- write (this driver): the same output checks, lock, resume reading and one-write-per-line
  records as a local batch (`batch.open_output`, `_Runner._finish`), in completion order.

Back-pressure: the driver takes a rendered block only when an actor has room for it, and Ray
Data's streaming executor stops reading ahead once the blocks waiting hold
`READ_AHEAD_BYTES` of object store memory.
"""

from __future__ import annotations

import os
import pickle
import queue
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, Sequence

from . import batch, grouping, objstore, pipeline
from .console import Console
from .errors import ExitCode, InputError, ModelError, UsageError
from .fsutil import display_name
from .pipeline import RunOptions, error_record

MAX_ATTEMPTS = 3
READ_AHEAD_BYTES = 2 << 30
NAMESPACE = "docextract"
ACTOR_PREFIX = "docextract-extractor-"


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--ray needs Ray Data, which is not installed",
                         hint="pip install 'docextract[ray]'") from None
    import logging

    # Ray Data logs each execution to the console; stderr carries only our own lines.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray


def _pack_input(inp) -> bytes:
    return pickle.dumps(inp)


def read_row(row: dict[str, Any], *, opts: RunOptions, schema_ref: str, model_id: dict,
             settings: dict, done: dict[str, dict], cwd: str, model_arg: str) -> dict[str, Any]:
    """Read stage (a Ray Data map, on CPU): {"i", "skip", "key", "blob"}; blob (pickle, between
    our own processes only) holds (input, sha, pages or (InputError message, hint), seconds).
    Files are read by their path joined to the driver's folder `cwd`; records name them as given."""
    inp = pickle.loads(row["inp"])
    runner = batch._Runner(Console(quiet=True), opts, SimpleNamespace(ref=schema_ref), None,
                           dict(done), model_id, settings, None)
    runner.model_arg = model_arg
    sha, pages, ingest_s = batch.read_document(batch._single(_absolute(inp, cwd)), opts)
    failed = isinstance(pages, InputError)
    key = runner._key(inp, sha, not failed)
    previous = runner._done_before(inp, sha, key)
    if previous is not None:
        return {"i": row["i"], "skip": True, "key": previous.get("key") or key, "blob": b""}
    if failed:
        pages = (pages.message, pages.hint)
    return {"i": row["i"], "skip": False, "key": key or "",
            "blob": pickle.dumps((inp, sha, pages, failed, ingest_s))}


class _ActorRunner(batch._Runner):
    """batch._Runner inside an actor: records go back to the caller instead of a file."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bar = SimpleNamespace(update=lambda *a, **k: None)
        self.waiting: dict[str, Future] = {}

    def _finish(self, doc, record) -> None:
        record["key"] = doc["key"]
        self.waiting.pop(doc["path"]).set_result(record)


class Extractor:
    """One engine, loaded once; `extract(block)` may be called by several threads at once (the
    actor's max_concurrency): their documents share one session driven by one engine thread."""

    def __init__(self, opts: RunOptions, model_id: dict, settings: dict):
        console = Console(quiet=True)
        target = pipeline.resolve_schema(opts.schema)
        self.runner = r = _ActorRunner(console, opts, target, pipeline.load_engine, {}, model_id,
                                       settings, None)
        r.engine = pipeline.load_engine(opts, console)
        if hasattr(r.engine, "session"):
            r.session = r.engine.session(slots=opts.max_batch, memory_gib=opts.gpu_memory)
        r.windowing = pipeline.windowing_for(opts, r.engine, getattr(r.session, "slot_tokens", None))
        self.inbox: queue.Queue = queue.Queue()
        self.failure: BaseException | None = None
        threading.Thread(target=self._loop, daemon=True, name="engine").start()

    def ready(self) -> bool:
        return True

    def _loop(self) -> None:
        r = self.runner
        try:
            while True:
                busy = r.session is not None and r.session.has_work
                while r._has_room():
                    try:
                        (inp, sha, pages, ingest_s), fut = self.inbox.get(block=not busy)
                    except queue.Empty:
                        break
                    r.waiting[inp.path] = fut
                    done: Future = Future()
                    done.set_result((sha, pages, ingest_s))
                    r._start(inp, done)
                    busy = r.session is not None and r.session.has_work
                if r.session is not None and r.session.has_work:
                    for tag, completion in r.session.step():
                        r._advance(tag, completion)
        except BaseException as exc:  # the engine is broken: every caller hears of it
            self.failure = exc
            for fut in list(r.waiting.values()):
                fut.set_exception(exc)
            r.waiting.clear()

    def extract(self, block) -> list[dict[str, Any]]:
        from ray.data.block import BlockAccessor

        out, futures = [], []
        for row in BlockAccessor.for_block(block).iter_rows(public_row_format=True):
            if row["skip"]:
                out.append({"i": row["i"], "skip": True, "key": row["key"]})
                continue
            inp, sha, pages, failed, ingest_s = pickle.loads(row["blob"])
            if failed:
                pages = InputError(*pages)
            if self.failure is not None:
                raise self.failure
            fut: Future = Future()
            futures.append((row["i"], fut))
            self.inbox.put(((inp, sha, pages, ingest_s), fut))
        for i, fut in futures:
            while True:
                try:
                    out.append({"i": i, "record": fut.result(timeout=1.0)})
                    break
                except TimeoutError:
                    if self.failure is not None:
                        raise self.failure from None
        return out


def _connect(ray, address: str) -> bool:
    """Join the cluster (or reuse this process's connection); True when we joined it here."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                 namespace=NAMESPACE)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(f"--ray {address}: cannot join a Ray cluster ({exc})".splitlines()[0],
                         hint="start one with 'ray start --head', or pass its address") from None
    return True


def _pool_shape(ray, actors: int | None, actor_cpus: float | None) -> tuple[int, float, int]:
    """(actors, CPUs each, GPUs each): one actor per GPU on a cluster with GPUs, else one."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    n = actors or int(os.environ.get("DOCEXTRACT_RAY_ACTORS", 0)) or max(1, gpus)
    cpus = actor_cpus or float(os.environ.get("DOCEXTRACT_RAY_ACTOR_CPUS", 1))
    return n, cpus, 1 if gpus else 0


class _Pool:
    """The extraction actors: started, replaced when they die, counted."""

    def __init__(self, ray, opts, model_id, settings, n, cpus, gpus):
        self.ray, self.args = ray, (opts, model_id, settings)
        self.cls = ray.remote(Extractor)
        self.cpus, self.gpus = cpus, gpus
        self.room = (opts.max_batch or 8) + 2
        self.actors: dict[str, Any] = {}
        self.load: dict[str, int] = {}
        self.ready: dict[Any, str] = {}
        self.live: set[str] = set()
        self.started = 0
        self.max_starts = 3 * n + MAX_ATTEMPTS
        self.lost = 0
        self.run_id = f"{os.getpid()}-{int(time.time() * 1000) % 10**8}"
        for _ in range(n):
            self.start()

    def start(self) -> None:
        if self.started >= self.max_starts:
            raise ModelError(f"{self.started} extraction actors started and {self.lost} lost; "
                             "giving up", hint="see the Ray logs of the failed actors")
        name = f"{ACTOR_PREFIX}{self.run_id}-{self.started}"
        self.started += 1
        actor = self.cls.options(name=name, namespace=NAMESPACE, num_cpus=self.cpus,
                                 num_gpus=self.gpus, max_concurrency=self.room + 2,
                                 max_restarts=0).remote(*self.args)
        self.actors[name] = actor
        self.load[name] = 0
        self.ready[actor.ready.remote()] = name

    def poll_ready(self) -> None:
        if not self.ready:
            return
        done, _ = self.ray.wait(list(self.ready), num_returns=len(self.ready), timeout=0)
        for ref in done:
            name = self.ready.pop(ref)
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayActorError as exc:
                cause = getattr(exc, "cause", None) or exc
                if not self.live:
                    raise ModelError(f"the extraction actor could not start: {_first_line(cause)}",
                                     hint="check --model on every node (docextract doctor)") from None
                self.drop(name)
                continue
            self.live.add(name)

    def pick(self, avoid: str | None = None) -> str | None:
        names = [n for n in self.actors if self.load[n] < self.room and n != avoid]
        if not names and avoid in self.actors and self.load[avoid] < self.room:
            names = [avoid]
        return min(names, key=lambda n: (n not in self.live, self.load[n]), default=None)

    def drop(self, name: str) -> None:
        """A dead (or broken) actor: forget it, kill what is left of it, start another."""
        actor = self.actors.pop(name, None)
        if actor is None:
            return
        self.lost += 1
        self.live.discard(name)
        self.load.pop(name, None)
        try:
            self.ray.kill(actor)
        except Exception:  # already gone
            pass
        self.start()

    def close(self) -> None:
        for actor in self.actors.values():
            try:
                self.ray.kill(actor)
            except Exception:
                pass
        self.actors.clear()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]


def run_ray_batch(paths: Sequence[str], opts: RunOptions, console: Console, *, out: str,
                  address: str = "auto", glob: str | None = None, resume: bool = True,
                  force: bool = False, group_by: str | None = None, actors: int | None = None,
                  actor_cpus: float | None = None) -> ExitCode:
    """`batch --ray`: as batch.run_batch, over the Ray cluster at `address`."""
    ray = _import_ray()
    if group_by not in (None,) + grouping.GROUP_BY:
        raise UsageError(f"unknown --group-by {group_by!r}", hint="use folder or stem")
    target = pipeline.resolve_schema(opts.schema, console)
    to_stdout = out == "-"
    inputs, direct = batch.gather(paths, glob, out, group_by)
    lock, existing, sink = batch.open_sink(out, direct, resume=resume, force=force)
    settings = opts.decoding_settings()
    model_id = pipeline.model_identity(opts)
    writer = batch._Runner(console, opts, target, None, existing, model_id, settings, sink, out)
    writer.fsync = lock is not None
    joined = False
    pool = None
    try:
        joined = _connect(ray, address)
        done = {k: {"source": r.get("source"), "key": k} for k, r in existing.items()}
        ds = _read_stage(ray, inputs, opts, target.ref, model_id, settings, done)
        pool = _Pool(ray, opts, model_id, settings, *_pool_shape(ray, actors, actor_cpus))
        with batch._StopFlag() as stop, console.progress("documents", total=len(inputs)) as bar:
            writer.bar = bar
            _drive(ray, ds, pool, writer, inputs, existing, stop, bar)
    finally:
        if pool is not None:
            pool.close()
        writer.close()
        if lock is not None:
            lock.__exit__(None, None, None)
        if joined:
            ray.shutdown()
    c = writer.counts
    lost = f", {pool.lost} actor(s) lost" if pool is not None and pool.lost else ""
    console.info(batch.summary(c) + lost
                 + ("" if to_stdout else f"; results in {display_name(out)}"))
    return writer.worst


def _absolute(inp, cwd: str):
    """The input with its files' paths joined to `cwd` (workers may start in another folder)."""
    if isinstance(inp, grouping.Document):
        return grouping.Document(inp.source, tuple(_absolute(i, cwd) for i in inp.inputs))
    if isinstance(inp.path, objstore.ObjectPath):
        return inp
    return batch.Input(os.path.join(cwd, inp.path), inp.name)


def _read_stage(ray, inputs, opts, schema_ref, model_id, settings, done):
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
        object_store_memory=READ_AHEAD_BYTES)
    ctx.execution_options.preserve_order = False
    items = [{"i": i, "inp": _pack_input(inp)} for i, inp in enumerate(inputs)]
    model_arg = opts.model or os.environ.get("DOCEXTRACT_MODEL") or "default"
    return ray.data.from_items(items, override_num_blocks=len(items)).map(
        read_row, fn_kwargs={"opts": opts, "schema_ref": schema_ref, "model_id": model_id,
                             "settings": settings, "done": done, "cwd": os.getcwd(),
                             "model_arg": model_arg}, num_cpus=1)


def _drive(ray, ds, pool, writer, inputs, existing, stop, bar) -> None:
    """Blocks from the read stage to the actors, records to the output; see the module doc."""
    blocks: queue.Queue = queue.Queue(maxsize=max(2, len(pool.actors) * pool.room))
    feeder_error: list[BaseException] = []
    end = object()

    def feed():
        try:
            for bundle in ds.iter_internal_ref_bundles():
                for entry in bundle.blocks:
                    while not stop.requested:
                        try:
                            blocks.put(entry[0] if isinstance(entry, tuple) else entry.ref,
                                       timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.requested:
                        return
        except BaseException as exc:
            feeder_error.append(exc)
        finally:
            blocks.put(end)

    threading.Thread(target=feed, daemon=True, name="read-stage").start()
    inflight: dict[Any, tuple[Any, str, int]] = {}  # task ref -> (block ref, actor, attempts)
    retry: list[tuple[Any, int, str]] = []
    written: set[int] = set()
    failed_blocks = 0
    fed_all = False
    while True:
        pool.poll_ready()
        while not stop.requested and (retry or not fed_all):
            if retry:
                block, attempts, avoid = retry[0]
            else:
                block, attempts, avoid = None, 0, None
            name = pool.pick(avoid)
            if name is None:
                break
            if block is None:
                try:
                    block = blocks.get_nowait()
                except queue.Empty:
                    break
                if block is end:
                    fed_all = True
                    continue
            else:
                retry.pop(0)
            ref = pool.actors[name].extract.remote(block)
            pool.load[name] += 1
            inflight[ref] = (block, name, attempts + 1)
        if feeder_error:
            raise feeder_error[0]
        if not inflight and (stop.requested or (fed_all and not retry)):
            break
        if not inflight:
            time.sleep(0.05)
            continue
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
        for ref in ready:
            block, name, attempts = inflight.pop(ref)
            if name in pool.load:
                pool.load[name] -= 1
            try:
                results = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                pool.drop(name)
                if attempts < MAX_ATTEMPTS:
                    writer.console.warn(f"an extraction actor failed ({_first_line(exc)}); "
                                        f"its documents go to another actor")
                    retry.append((block, attempts, name))
                else:
                    failed_blocks += 1
                continue
            for item in results:
                _write(item, writer, inputs, existing, written)
        bar.update(0, actors=len(pool.live))
    if stop.requested:
        raise stop.stopped()
    # Documents whose every attempt died with its actor: an error record each (retried by the
    # next run, as engine failures are).
    for i, inp in enumerate(inputs):
        if i not in written:
            exc = ModelError(f"extraction failed {MAX_ATTEMPTS} times (its actor died each time)")
            record = error_record(display_name(inp.path), exc, sha256=None,
                                  schema_ref=writer.target.ref)
            writer.counts["errors"] += 1
            writer._finish({"key": None}, record)
            if writer.worst != ExitCode.INPUT:
                writer.worst = ExitCode.MODEL
            written.add(i)


def _write(item, writer, inputs, existing, written) -> None:
    i = item["i"]
    if i in written:  # a block done twice (a retry after a lost answer): one record only
        return
    written.add(i)
    if item.get("skip"):
        previous = existing.get(item["key"])
        batch.count_skipped(writer.counts, previous)
        if previous is not None:
            writer.worst = batch._worse(writer.worst, previous)
        writer.bar.update(1, skipped=writer.counts["skipped"])
        return
    record = item["record"]
    if record.get("data") is None and any(e.get("type") == "input" for e in record["errors"]):
        writer.counts["errors"] += 1
        writer.console.warn(record["errors"][0]["msg"])
    elif not record.get("valid"):
        writer.counts["invalid"] += 1
    writer.pages += record.get("pages") or 0
    writer.tokens += (record.get("timing") or {}).get("tokens", 0)
    writer._finish({"key": record.get("key")}, record)

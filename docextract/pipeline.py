"""Pages + schema + engine -> one record per document (the record format of architecture.md).

`extract` is the library entry point; `run_files` is what `docextract run` does with several
inputs. The engine is anything with `generate(requests)` (see engine/api.py), so tests drive the
pipeline through a fake engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .console import Console, dumps
from .errors import DocextractError, ExitCode, InputError, ModelError
from .fsutil import atomic_write_text, check_output, display_name, written_by_docextract
from . import grouping, windows
from .status import EngineStatus

DEFAULT_RETRIES = 1


@dataclass
class RunOptions:
    """Everything `run` and `batch` take from the command line that shapes an extraction."""

    schema: str
    model: str | None = None
    pages: str | None = None
    dpi: int | None = None
    max_pixels: int | None = None
    password: str | None = None
    experts: str | None = None  # None: the model's default (bf16, or what the default model uses)
    device: str | None = None
    unmask: bool = False
    retries: int = DEFAULT_RETRIES
    offline: bool = False
    # batch: documents decoded together (None: what fits the GPU memory budget; 8 on CPU) and
    # the GPU memory docextract may use in all, in GiB (None: 90% of the card).
    max_batch: int | None = None
    gpu_memory: float | None = None
    # Pages per window for schemas with row lists (None: chosen from the context; 0: one request).
    window: int | None = None
    # Fields whose confidence is below this go on the review list (review.py; None: default).
    review_below: float | None = None
    # `run --annotate DIR`: page pictures of each document into DIR/<document name>/.
    annotate: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The model's context in tokens, once known (read from config.json before the first page is
    # rendered when the model is local): pages beyond it are refused before rendering.
    context: int | None = None
    _context_looked_up: bool = field(default=False, repr=False)

    def ingest_kwargs(self) -> dict[str, Any]:
        from . import budget, ingest

        return {
            "dpi": self.dpi or ingest.DEFAULT_DPI,
            "pages": self.pages,
            "max_pixels": self.max_pixels or budget.default_max_pixels(self.device),
            "password": self.password,
            "max_image_tokens": self.model_context(),
        }

    def model_context(self) -> int | None:
        """`context`, or else the max_position_embeddings of the model's config.json when the
        model is a local folder or already in the Hugging Face cache (never downloads)."""
        if self.context is None and not self._context_looked_up:
            self._context_looked_up = True
            self.context = _local_context(self.model or os.environ.get("DOCEXTRACT_MODEL"))
        return self.context

    def decoding_settings(self) -> dict[str, Any]:
        """What changes the output for the same file, schema and model (part of the batch key)."""
        k = self.ingest_kwargs()
        settings = {"pages": k["pages"], "dpi": k["dpi"], "max_pixels": k["max_pixels"],
                    "experts": self.experts or "default", "retries": self.retries,
                    "unmask": self.unmask, "decoding": "greedy"}
        if self.window is not None:  # keys of runs without --window stay as they were
            settings["window"] = self.window
        return settings


EngineFactory = Callable[[RunOptions, Console], Any]


def _gpu_memory_gib(device: str | None) -> float | None:
    """Memory of the GPU the engine will run on: `--device cuda:N` names it, else the first."""
    device = None if device in (None, "auto") else device
    if device is not None and not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        index = torch.device(device).index if device else None
    except (RuntimeError, ValueError):  # a malformed --device is reported when the engine loads
        index = None
    return torch.cuda.get_device_properties(index or 0).total_memory / 2**30


def _local_context(model: str | None) -> int | None:
    from .engine import hub
    from .engine.config import load_config

    if not model:
        return None
    try:
        folder = Path(model).expanduser()
        if not (folder / "config.json").is_file():
            folder = None if hub.looks_like_path(model) else hub.cached(model)
        return None if folder is None else load_config(folder).text_config.max_position_embeddings
    except (DocextractError, OSError):
        return None  # the engine's own load reports a broken model


def _looks_like_path(model: str) -> bool:
    from .engine.hub import looks_like_path

    return looks_like_path(model)


def model_identity(opts: RunOptions) -> dict[str, Any]:
    """The model as the batch key names it, without loading or downloading anything: its
    resolved folder and the sha256 of its config.json (`--model DIR` and `--model DIR/`, or a
    repository id and its cached folder, are the same model); {"repo": id} for a repository not
    downloaded yet."""
    from .engine import hub

    model = opts.model or os.environ.get("DOCEXTRACT_MODEL")
    if not model:
        model = hub.default_model(_gpu_memory_gib(opts.device))[0]
    path = Path(model).expanduser()
    folder = path if path.is_dir() else (None if _looks_like_path(model) else hub.cached(model))
    if folder is None:
        return {"repo": model}
    try:
        config = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
    except OSError:
        config = None
    return {"folder": os.path.realpath(folder), "config_sha256": config}


def resolve_model(opts: RunOptions, console: Console) -> tuple[Path, str]:
    """The checkpoint folder and the model's name for `--model DIR|REPO_ID`, DOCEXTRACT_MODEL or
    the default for this machine; a repository missing from the cache is downloaded (weights,
    config and tokenizer only), never with --offline / HF_HUB_OFFLINE."""
    from .engine import hub

    model = opts.model or os.environ.get("DOCEXTRACT_MODEL")
    offline = opts.offline or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not model:
        gpu = _gpu_memory_gib(opts.device)
        model, experts = hub.default_model(gpu)
        if opts.experts is None:
            opts.experts = experts
        where = f"a GPU with {gpu:.0f} GiB" if gpu else "no GPU"
        console.info(f"no --model given: using {model} ({experts} experts), the default for {where}")
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{display_name(model)}: no config.json in the model directory",
                             hint="download a model with 'docextract model pull REPO_ID'")
        return path, path.resolve().name
    if _looks_like_path(model):
        raise ModelError(f"{display_name(model)}: not a model directory",
                         hint=hub.missing_folder_hint(model))
    folder = hub.cached(model)
    if folder is not None:
        return folder, model
    if offline:
        raise ModelError(f"{model} is not downloaded and downloads are off (--offline / "
                         "HF_HUB_OFFLINE)",
                         hint=f"run 'docextract model pull {model}' where the network is "
                              "available, or pass --model DIR")
    size = hub.download_size(model)
    amount = f"{size / 1e9:.1f} GB" if size else "size unknown"
    console.info(f"downloading {model} ({amount}: weights, config and tokenizer only) into the "
                 "Hugging Face cache; no document leaves this machine")
    with console.progress("download (bytes)") as bar:
        folder = hub.pull(model, progress=bar.set)
    return folder, model


def load_engine(opts: RunOptions, console: Console):
    """The engine for the resolved model, loaded once per process."""
    path, name = resolve_model(opts, console)
    from .engine import Engine

    device = opts.device or "auto"
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    # bf16 matrix products are slow on most CPUs: float32 there (DOCEXTRACT_CPU_DTYPE=bfloat16
    # for CPUs with bf16 matrix instructions; it changes the greedy tokens, see README).
    dtype = os.environ.get("DOCEXTRACT_CPU_DTYPE", "float32") if device == "cpu" else "bfloat16"
    if device == "cpu":
        from .budget import set_cpu_threads

        console.debug(f"{set_cpu_threads()} CPU threads")
    opts.experts = opts.experts or "bf16"
    console.info(f"loading model {name} ({opts.experts} experts, {device})")
    t0 = time.monotonic()
    engine = Engine.load(path, device=device, dtype=dtype, experts=opts.experts, name=name)
    engine.console = console  # self-check warnings and the warm-up progress line
    console.debug(f"model loaded in {time.monotonic() - t0:.1f} s")
    if hasattr(engine, "prepare_grammars"):
        # One native call holding the GIL (progress lines stop meanwhile): said, and done before
        # any page starts (see Engine.prepare_grammars).
        console.info(f"reading the {engine.config.text_config.vocab_size:,}-token vocabulary "
                     "for constrained decoding")
        engine.prepare_grammars()
    config = getattr(engine, "config", None)
    if config is not None and str(device).startswith("cuda"):
        import torch

        from .engine.quant import widened_fp8_note

        note = widened_fp8_note(config, engine.experts,
                                torch.cuda.get_device_capability(engine.model.device))
        if note:
            console.warn(note)
    if config is not None:
        opts.context = config.text_config.max_position_embeddings
    return engine


def prompt_for(spec) -> str:
    """The user text that follows the page images."""
    schema_text = json.dumps(spec.json_schema, separators=(",", ":"), ensure_ascii=False)
    return (f"{spec.instruction.strip()}\n\n"
            "Answer with one JSON object only, conforming to this JSON Schema:\n"
            f"{schema_text}")


def max_new_tokens_for(schema: dict[str, Any], cap: int = 32768) -> int:
    """An upper bound on the tokens of any compact JSON value the schema admits (a token is at
    least one byte), capped: the schema's maxLength/maxItems bounds make this finite."""
    defs = schema.get("$defs", {})

    def size(node: dict[str, Any], depth: int = 0) -> int:
        if depth > 32:
            return cap
        if "$ref" in node:
            return size(defs.get(node["$ref"].rsplit("/", 1)[-1], {}), depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in node:
                return max(size(n, depth + 1) for n in node[key])
        if "enum" in node:
            return max(len(json.dumps(v, ensure_ascii=False).encode()) for v in node["enum"])
        if "const" in node:
            return len(json.dumps(node["const"], ensure_ascii=False).encode())
        kind = node.get("type")
        if isinstance(kind, list):
            return max(size({**node, "type": k}, depth + 1) for k in kind)
        if kind == "object":
            props = node.get("properties", {})
            return 2 + sum(len(k.encode()) + 4 + size(v, depth + 1) for k, v in props.items())
        if kind == "array":
            return 2 + node.get("maxItems", cap) * (1 + size(node.get("items", {}), depth + 1))
        if kind == "string":
            if "maxLength" not in node and node.get("format") in ("date", "date-time", "time",
                                                                   "uuid"):
                return 2 + 64  # a fixed-size format: at most ~35 characters, all ASCII
            # Escapes can take up to 6 bytes a character (\uXXXX).
            return 2 + 6 * node.get("maxLength", cap)
        if kind in ("number", "integer"):
            return 32
        if kind == "boolean":
            return 5
        return 4

    return min(cap, size(schema) + 1)


def extract_flow(pages: Sequence[Any], spec, model_info: dict[str, str], *,
                 unmask: bool = False, retries: int = DEFAULT_RETRIES, windowing=None,
                 review_below: float | None = None):
    """One document's extraction as a generator: yields engine Requests, is sent their
    Completions, returns the record fields (data, valid, errors, masked, attempts, timing, model,
    and confidence, confidence_min, evidence, review, needs_review from review.py).
    Driven by `drive`, or many documents at once by the batch runner. A long document with a row
    list is read in page windows (see windows.py): then the flow yields lists of Requests and is
    sent lists of Completions; confidence is then taken from the answer(s) each field was read
    from (windows.field_confidence)."""
    from . import review
    from .engine.api import Request

    window = windowing.size(spec, pages) if windowing is not None else 0
    threshold = review.DEFAULT_REVIEW_BELOW if review_below is None else review_below
    if window:
        result = yield from windows.windowed_flow(pages, spec, window, model_info, unmask=unmask,
                                                  retries=retries)
        confidence, data, first = (result.pop(k) for k in ("_confidence", "_unmasked", "_first"))
        changed = review.changed_leaves(first, data) if first is not None else ()
        return {**result, **review.assess(data, pages, spec.json_schema, result["errors"],
                                          changed=changed, threshold=threshold,
                                          confidence=confidence, unmask=unmask)}

    prompt = prompt_for(spec)
    # Unbounded strings capped (see Spec.decoder_schema), so no field decodes for minutes.
    decoder_schema = spec.decoder_schema
    request = Request(prompt=prompt, images=[p.image for p in pages],
                      image_labels=[f"Page {p.number}" for p in pages],
                      json_schema=decoder_schema, max_new_tokens=max_new_tokens_for(decoder_schema),
                      logprobs=True)
    timing: dict[str, Any] = {"prefill_s": 0.0, "decode_s": 0.0, "tokens": 0}
    attempts = 0
    validation = first = None
    while True:
        attempts += 1
        completion = yield request
        for key in ("prefill_s", "decode_s"):
            timing[key] += float(completion.timings.get(key, 0.0))
        timing["tokens"] += len(completion.tokens)
        validation = spec.validate(completion.text)
        first = validation.data if attempts == 1 else first
        validation.issues.extend(_page_issues(validation.data, len(pages)))
        if completion.finish_reason == "length":
            validation.issues.insert(0, _issue("", "truncated",
                                               "generation stopped at max_new_tokens"))
        hard = [i for i in validation.issues if i.severity == "error" and i.type != "truncated"]
        if validation.valid or not hard or attempts > retries or validation.data is None:
            break
        request = Request(prompt=prompt + "\n\n" + feedback_text(hard), images=request.images,
                          image_labels=request.image_labels, json_schema=request.json_schema,
                          max_new_tokens=request.max_new_tokens, logprobs=True)
    data, errors, masked = spec.output(validation, unmask=unmask)
    fields = review.assess(validation.data, pages, spec.json_schema, errors, completion,
                           review.changed_leaves(first, validation.data) if attempts > 1 else (),
                           threshold=threshold, unmask=unmask)
    return {"data": data, "valid": validation.valid, "errors": errors,
            "masked": masked, "attempts": attempts,
            "timing": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in timing.items()},
            "model": dict(model_info), **fields}


def _page_issues(data: Any, pages: int, path: str = "") -> list:
    """A warning for every `page` field that names a page the document does not have."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else key
            if key == "page" and isinstance(value, int) and not isinstance(value, bool):
                if not 1 <= value <= pages:
                    found.append(_issue(here, "page_out_of_range",
                                        f"page {value} of a {pages}-page document",
                                        severity="warning"))
            else:
                found += _page_issues(value, pages, here)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found += _page_issues(item, pages, f"{path}[{i}]")
    return found


def model_info(engine) -> dict[str, str]:
    return {"name": getattr(engine, "name", "unknown"), "experts": getattr(engine, "experts", "unknown")}


def drive(flow, engine, progress=None) -> Any:
    """Run a flow to its end; the requests a flow yields together are generated together.
    `progress` goes to engines that report it (`reports_progress`, see engine/progress.py)."""
    reports = progress is not None and getattr(engine, "reports_progress", False)
    kwargs = {"progress": progress} if reports else {}
    try:
        request = next(flow)
        while True:
            if isinstance(request, list):
                request = flow.send(engine.generate(request, **kwargs))
                continue
            (completion,) = engine.generate([request], **kwargs)
            request = flow.send(completion)
    except StopIteration as stop:
        return stop.value


def windowing_for(opts: RunOptions, engine, context: int | None = None) -> windows.Windowing:
    """How this run reads long documents: --window, else a size fitted to `context` (default:
    the model's)."""
    if context is None:
        config = getattr(engine, "config", None)
        context = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
    tokenizer = getattr(engine, "tokenizer", None)
    count = (lambda text: len(tokenizer.encode(text))) if tokenizer is not None else None
    return windows.Windowing(opts.window, context, count)


def extract(pages: Sequence[Any], spec, engine, *, unmask: bool = False,
            retries: int = DEFAULT_RETRIES, windowing=None) -> dict[str, Any]:
    """One document's pages -> record fields: data, valid, errors, masked, timing, model."""
    return drive(extract_flow(pages, spec, model_info(engine), unmask=unmask, retries=retries,
                              windowing=windowing), engine)


AUTO = "auto"
DOCUMENT_TYPES = ("aadhaar", "pan", "bank_statement", "invoice", "other")
CHOOSER_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["document_type"],
                  "properties": {"document_type": {"enum": list(DOCUMENT_TYPES)}}}
CHOOSER_PROMPT = (
    "Which kind of document is this page from? aadhaar: an Indian Aadhaar card or letter (UIDAI); "
    "pan: an Indian PAN card (Income Tax Department); bank_statement: a bank account statement "
    "with transactions; invoice: a tax invoice or bill (GST, VAT or other); other: anything else.\n"
    "Answer with one JSON object: {\"document_type\": ...}.")


@dataclass(frozen=True)
class AutoSchema:
    """`--schema auto`: the document type is chosen by the model from the first page."""

    specs: tuple

    @property
    def ref(self) -> str:
        return "auto(" + ",".join(s.ref for s in self.specs) + ")"


def resolve_schema(name: str, console: Console | None = None):
    """A Spec, or AutoSchema for `auto`; unknown names raise UsageError (exit 2). With `console`,
    a schema whose strings have no maxLength is named in a warning (the decoder caps them)."""
    from . import schemas
    from .schemas._jsonschema import MAX_STRING_LENGTH

    if name == AUTO:
        return AutoSchema(tuple(schemas.get(n) for n in DOCUMENT_TYPES if n != "other"))
    spec = schemas.get(name)
    unbounded = spec.unbounded_strings
    if console is not None and unbounded:
        shown = ", ".join(unbounded[:5]) + (f" and {len(unbounded) - 5} more"
                                             if len(unbounded) > 5 else "")
        console.warn(f"schema {spec.name!r}: {shown} set no maxLength; the model may write at "
                     f"most {MAX_STRING_LENGTH} characters in each (give maxLength to choose)")
    return spec


def detect_request(pages: Sequence[Any]):
    """The request that chooses the document type from the first page, under a grammar."""
    from .engine.api import Request

    return Request(prompt=CHOOSER_PROMPT, images=[pages[0].image],
                   image_labels=[f"Page {pages[0].number}"], json_schema=CHOOSER_SCHEMA,
                   max_new_tokens=max_new_tokens_for(CHOOSER_SCHEMA))


def detected_type(completion) -> str:
    try:
        kind = json.loads(completion.text)["document_type"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return "other"
    return kind if kind in DOCUMENT_TYPES else "other"


def document_flow(pages: Sequence[Any], target, model: dict[str, str], *, unmask: bool = False,
                  retries: int = DEFAULT_RETRIES, windowing=None,
                  review_below: float | None = None):
    """Record fields for one document as a generator of engine requests (see extract_flow):
    schema, pages, data, valid, errors, masked, attempts, model, timing (and document_type with
    --schema auto)."""
    if not isinstance(target, AutoSchema):
        result = yield from extract_flow(pages, target, model, unmask=unmask, retries=retries,
                                         windowing=windowing, review_below=review_below)
        return {"schema": target.ref, "pages": len(pages), **result}
    completion = yield detect_request(pages)
    kind = detected_type(completion)
    detect_s = round(float(completion.timings.get("prefill_s", 0.0))
                     + float(completion.timings.get("decode_s", 0.0)), 4)
    if kind == "other":
        from . import review

        errors = [{"loc": "", "type": "unsupported_document", "severity": "error",
                   "msg": "the document is none of " + ", ".join(DOCUMENT_TYPES[:-1])}]
        return {"schema": None, "document_type": kind, "pages": len(pages), "data": None,
                "valid": False, "errors": errors, "masked": [], "attempts": 0, "model": dict(model),
                "timing": {"detect_s": detect_s}, **review.assess(None, pages, None, errors)}
    spec = next(s for s in target.specs if s.name == kind)
    result = yield from extract_flow(pages, spec, model, unmask=unmask, retries=retries,
                                     windowing=windowing, review_below=review_below)
    result["timing"]["detect_s"] = detect_s
    return {"schema": spec.ref, "document_type": kind, "pages": len(pages), **result}


def extract_document(pages: Sequence[Any], target, engine, *, unmask: bool = False,
                     retries: int = DEFAULT_RETRIES, windowing=None,
                     review_below: float | None = None, progress=None) -> dict[str, Any]:
    """Record fields for one document, driving the engine one request (or window set) at a
    time."""
    return drive(document_flow(pages, target, model_info(engine), unmask=unmask, retries=retries,
                               windowing=windowing, review_below=review_below), engine, progress)


def feedback_text(issues) -> str:
    """The retry prompt: name each failing field (never its value) and ask to read it again."""
    lines = [f"- {i.loc or '(document)'}: {i.msg}" for i in issues[:20]]
    return ("Your previous answer failed these checks. Read those fields on the page again and "
            "copy them exactly as printed; if the document itself has the error, keep what is "
            "printed:\n" + "\n".join(lines))


def _issue(loc: str, type_: str, msg: str, severity: str = "error"):
    from .schemas import Issue

    return Issue(loc=loc, type=type_, msg=msg, severity=severity)


def error_record(source: str, exc: DocextractError, *, sha256: str | None, schema_ref: str | None,
                 ) -> dict[str, Any]:
    return {"source": source, "sha256": sha256, "schema": schema_ref, "pages": 0, "data": None,
            "valid": False,
            "errors": [{"loc": "", "type": exc.record_type, "msg": exc.message, "severity": "error"}]}


def process_file(source: str, target, opts: RunOptions, get_engine: Callable[[], Any],
                 stdin=None, progress=None) -> dict[str, Any]:
    """Read one input and extract it; input errors raise InputError."""
    from . import ingest

    t0 = time.monotonic()
    kwargs = opts.ingest_kwargs()
    pages = ingest.load(source, stdin=stdin, **kwargs)
    ingest_s = time.monotonic() - t0
    record: dict[str, Any] = {"source": display_name(source), "sha256": pages[0].sha256}
    try:
        engine = get_engine()
        record.update(extract_document(pages, target, engine, unmask=opts.unmask,
                                       retries=opts.retries,
                                       windowing=windowing_for(opts, engine),
                                       review_below=opts.review_below, progress=progress))
    except InputError as exc:  # e.g. more pages than the model's context: name the file
        raise InputError(f"{display_name(source)}: {exc.message}", hint=exc.hint) from None
    record["timing"] = {"ingest_s": round(ingest_s, 4), **record["timing"]}
    record["max_pixels"] = kwargs["max_pixels"]
    if opts.annotate:
        from . import annotate

        annotate.write(record, pages, Path(opts.annotate) / Path(display_name(source)).stem)
    return record


def run_files(files: Sequence[str], opts: RunOptions, console: Console, *, out: str | None = None,
              engine_factory: EngineFactory | None = None, force: bool = False,
              one_document: bool = False) -> ExitCode:
    """`docextract run`: one record per input; one input -> one JSON object, several -> JSONL.
    With `one_document`, all the files are the pages of one document (see grouping.py).

    Exit code: 3 if any input could not be read, else 4 on an engine failure, else 1 if any
    extraction is invalid, else 0. With one input, an unreadable file is only an error line
    (nothing on stdout); with several, it is also an error record, so the JSON Lines keep one
    line per input. `out` is checked before anything is read or loaded (see fsutil.check_output).
    """
    target = resolve_schema(opts.schema, console)
    if out is not None:
        check_output(out, inputs=[f for f in files if f != "-"], force=force,
                     ours=written_by_docextract)
    engine = None

    def get_engine():
        nonlocal engine
        if engine is None:
            engine = (engine_factory or load_engine)(opts, console)
        return engine

    records: list[dict[str, Any]] = []
    code = ExitCode.OK
    documents = [list(files)] if one_document and len(files) > 1 else [[f] for f in files]
    single = len(documents) == 1
    with console.progress("documents", total=len(documents)) as bar:
        for doc in documents:
            source = doc[0]
            try:
                with EngineStatus(bar) as status:
                    record = (process_file(source, target, opts, get_engine, progress=status)
                              if len(doc) == 1 else
                              grouping.process_document(doc, target, opts, get_engine,
                                                        progress=status))
            except InputError as exc:
                if single:
                    raise
                console.error(exc.message, exc.hint)
                record = error_record(display_name(source), exc, sha256=None, schema_ref=target.ref)
                code = ExitCode.INPUT
            except ModelError:
                raise
            if not record["valid"] and code == ExitCode.OK:
                code = ExitCode.VALIDATION_FAILED
            records.append(record)
            if out is None and not single:
                console.emit_line(record)
            bar.update(1)
    if out is not None:
        text = (dumps(records[0], pretty=True) + "\n" if single
                else "".join(dumps(r) + "\n" for r in records))
        atomic_write_text(out, text)
        console.info(f"wrote {len(records)} record(s) to {display_name(out)}")
    elif single:
        console.emit(records[0])
    return code


MAX_JSON_DEPTH = 64


def _too_deep() -> InputError:
    return InputError(f"not JSON that can be checked: nested deeper than {MAX_JSON_DEPTH} levels",
                      hint="records nest a few levels deep; is this the right file?")


def _check_depth(obj: Any) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH (no record comes near), measured without
    recursion, before any recursive validation sees it."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def validate_document(text: str, spec, *, unmask: bool = False) -> dict[str, Any]:
    """`docextract validate`: check a JSON document against a schema's shape and domain rules.
    Not JSON at all -> InputError (exit 3)."""
    def no_constants(name: str):
        raise InputError(f"not JSON: {name} is not a JSON value")

    try:
        obj = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # nested past Python's own limit
        raise _too_deep() from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise InputError("not JSON that can be checked: a number has more than "
                         f"{sys.get_int_max_str_digits()} digits",
                         hint="numbers in a record have at most a few dozen digits") from None
    _check_depth(obj)
    validation = spec.validate(obj)
    data, errors, masked = spec.output(validation, unmask=unmask)
    return {"schema": spec.ref, "valid": validation.valid, "errors": errors,
            "masked": masked, "data": data}

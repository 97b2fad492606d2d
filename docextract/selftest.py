"""`docextract doctor --self-test`: one constrained extraction end to end on a random tiny model.

A random Qwen3.5 checkpoint is written into a private temporary folder (removed afterwards), a
synthetic PAN card is rendered into a page the way `docextract run` renders it, the engine loads
the checkpoint with its strict loader and `pipeline.extract` runs one extraction under the `pan`
JSON Schema. The report gives each stage's time and whether the output parsed, conformed to the
schema and ended inside its token budget. A random model cannot read the page: this checks the
machinery, not accuracy.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .console import Console
from .errors import DocextractError

SCHEMA = "pan"
SAMPLE_SEED = 1
# A card page at 100 dpi capped to 64 tiles of 32x32 pixels: a few dozen image tokens.
PAGE_DPI = 100
PAGE_MAX_PIXELS = 64 * 32 * 32
NOTE = ("the model has random weights and cannot read the page: the self-test checks the "
        "machinery (checkpoint, page rendering, vision, constrained decoding, validation), "
        "not accuracy")


class _Recorder:
    """The engine as the pipeline sees it, keeping each completion for the report."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.name = engine.name
        self.experts = engine.experts
        self.completions: list[Any] = []

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        out = self.engine.generate(requests)
        self.completions.extend(out)
        return out


class _Stages:
    def __init__(self, console: Console, report: dict[str, Any]):
        self.console = console
        self.report = report

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.report["failed_stage"] = name
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        self.report["stages"][f"{name}_s"] = round(seconds, 4)
        self.report["failed_stage"] = None
        self.console.debug(f"self-test: {name} took {seconds:.2f} s")


def run_selftest(console: Console, *, device: str = "cpu",
                 workdir: str | Path | None = None) -> dict[str, Any]:
    """Run the self-test and return its report (JSON-ready); never raises for a failing stage.

    `device` "cpu", "cuda" or "auto" (float32 on CPU, bfloat16 on CUDA); `workdir` is where the
    private temporary folder is made (default: the system's temp directory). Report keys: ok,
    note, schema, device, stages ({stage}_s: seconds for checkpoint, render, load, extract,
    validate; prefill_s and decode_s inside extract), total_s, tokens, finish_reason, output
    (parsed, conforms, schema_errors, valid, domain_errors, text), failed_stage, error."""
    report: dict[str, Any] = {"ok": False, "note": NOTE, "schema": None, "device": device,
                              "stages": {}, "total_s": None, "tokens": None,
                              "finish_reason": None, "output": None, "page": None,
                              "failed_stage": None, "error": None, "workdir": None}
    steps = _Stages(console, report)
    console.info("self-test: one extraction with a random tiny model (it checks the machinery; "
                 "a random model cannot read documents)")
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="docextract-selftest-", dir=workdir,
                                         ignore_cleanup_errors=True) as tmp:
            report["workdir"] = tmp
            _run(Path(tmp), steps, report, device)
    except DocextractError as exc:
        report["error"] = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    except Exception as exc:  # noqa: BLE001 (a failing self-test is reported, doctor goes on)
        report["error"] = f"{type(exc).__name__}: {exc}"
    report["total_s"] = round(time.perf_counter() - t0, 4)
    if report["error"] is None:
        out = report["output"]
        report["ok"] = bool(out["parsed"] and out["conforms"] and report["finish_reason"] == "stop")
        if not report["ok"]:
            report["error"] = _why_not(report)
    if report["ok"]:
        console.info(f"self-test: ok in {report['total_s']:.1f} s")
    else:
        stage = report["failed_stage"]
        console.warn(f"self-test failed{f' at {stage}' if stage else ''}: {report['error']}")
    return report


def _why_not(report: dict[str, Any]) -> str:
    out = report["output"]
    if not out["parsed"]:
        return "the constrained output is not JSON"
    if not out["conforms"]:
        return f"the output does not conform to the schema: {out['schema_errors'][:3]}"
    return f"generation did not stop inside its token budget ({report['finish_reason']})"


def _run(tmp: Path, steps: _Stages, report: dict[str, Any], device: str) -> None:
    import torch

    from . import ingest, pipeline, schemas
    from .engine import randomckpt
    from .engine.engine import Engine
    from .samples import generate as samples
    from .samples import render

    spec = schemas.get(SCHEMA)
    report["schema"] = spec.ref
    dtype = torch.float32
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        dtype = torch.bfloat16
    with steps.stage("checkpoint"):
        model_dir = randomckpt.write(tmp / "random-tiny-moe", kind="moe", preset="tiny", seed=0)
    with steps.stage("render"):
        sample = samples.make("pan", SAMPLE_SEED, 1)
        pdf = tmp / f"{sample.stem}.pdf"
        pdf.write_bytes(render.pdf_bytes(sample.doc))
        pages = ingest.load(pdf, dpi=PAGE_DPI, max_pixels=PAGE_MAX_PIXELS)
    report["page"] = {"width": pages[0].image.width, "height": pages[0].image.height}
    with steps.stage("load"):
        engine = Engine.load(model_dir, device=device, dtype=dtype)
    report["device"] = str(engine.model.device)
    recorder = _Recorder(engine)
    with steps.stage("extract"):
        pipeline.extract(pages, spec, recorder, retries=0)
    (completion,) = recorder.completions
    for key in ("prefill_s", "decode_s"):
        if key in completion.timings:
            report["stages"][key] = round(float(completion.timings[key]), 4)
    report["tokens"] = {"prompt": completion.prompt_tokens, "generated": len(completion.tokens)}
    report["finish_reason"] = completion.finish_reason
    with steps.stage("validate"):
        report["output"] = _check_output(completion.text, spec)


def _check_output(text: str, spec: Any) -> dict[str, Any]:
    """Did the text parse, conform to the JSON Schema (an independent check of the decoder's
    grammar) and pass the schema's domain rules?"""
    from .schemas import _jsonschema

    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"parsed": False, "conforms": False, "schema_errors": [], "valid": False,
                "domain_errors": [], "text": text}
    problems = _jsonschema.validate(value, spec.json_schema)
    validation = spec.validate(value)
    return {"parsed": True, "conforms": not problems,
            "schema_errors": [f"{where}: {msg}" for where, msg in problems],
            "valid": validation.valid,
            "domain_errors": sorted({i.type for i in validation.issues if i.severity == "error"}),
            "text": text}

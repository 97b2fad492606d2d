"""The `docextract eval` command (registered on the app by cli.py); the logic is in core.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional, Tuple

import typer

from ..cli import (DeviceOpt, DpiOpt, ExpertsOpt, MaxPixelsOpt, ModelOpt, NoProgress, OfflineOpt,
                   PasswordOpt, Quiet, RetriesOpt, UnmaskOpt, Verbose, _console, _guard, _options,
                   app)

PathOpt = Optional[Path]


@app.command("eval")
def eval_cmd(
        folder: Annotated[Optional[str], typer.Argument(
            help="Folder of documents, each with NAME.truth.json beside it.")] = None,
        schema: Annotated[Optional[str], typer.Option(
            "--schema", "-s", help="The truth's schema, or auto (the model chooses the type; "
                                   "truth types from manifest.json or the truth's keys).")] = None,
        predictions: Annotated[PathOpt, typer.Option(
            "--predictions", help="Score these records (from run/batch) instead of extracting.")] = None,
        predictions_out: Annotated[PathOpt, typer.Option(
            "--predictions-out", help="JSON Lines file the extraction writes and resumes "
                                      "(default: WORK/predictions.jsonl).")] = None,
        work: Annotated[PathOpt, typer.Option(
            "--work", help="Work folder (default: DIR/.docextract-eval).")] = None,
        map_file: Annotated[PathOpt, typer.Option(
            "--map", help='JSON {"your label key": "schema.path"}; [] marks list rows.')] = None,
        out: Annotated[PathOpt, typer.Option(
            "--out", "-o", help="Write the JSON report here (atomically) instead of stdout.")] = None,
        html_out: Annotated[PathOpt, typer.Option(
            "--html", help="Also write a self-contained HTML report.")] = None,
        review_below: Annotated[Optional[float], typer.Option(
            "--review-below", min=0.0, max=1.0,
            help="Review threshold for the confidence trade-off when the records do not carry "
                 "one (default 0.9).")] = None,
        compare: Annotated[Optional[Tuple[Path, Path]], typer.Option(
            "--compare", help="Compare two JSON reports: what changed per field.")] = None,
        model: ModelOpt = None, dpi: DpiOpt = None, max_pixels: MaxPixelsOpt = None,
        password: PasswordOpt = None, experts: ExpertsOpt = None, device: DeviceOpt = None,
        unmask: UnmaskOpt = False, retries: RetriesOpt = 1, offline: OfflineOpt = False,
        workers: Annotated[int, typer.Option("--workers", min=1, max=64,
                                             help="Threads reading documents.")] = 2,
        max_batch: Annotated[Optional[int], typer.Option(
            "--max-batch", min=1, max=256, envvar="DOCEXTRACT_MAX_BATCH",
            help="Documents decoded together.")] = None,
        gpu_memory: Annotated[Optional[float], typer.Option(
            "--gpu-memory", min=1, envvar="DOCEXTRACT_GPU_MEMORY",
            help="GiB of GPU memory for weights and state.")] = None,
        quiet: Quiet = False, verbose: Verbose = False, no_progress: NoProgress = False) -> None:
    """Score extraction on your own labelled documents: field accuracy, list rows, document
    type, confidence quality and speed. Extraction runs through the batch engine and resumes.

    [b]Examples[/b]

      docextract eval ./labelled --schema auto --model ~/models/qwen3.5-0.8b --html report.html

      docextract eval ./labelled --schema invoice --predictions results.jsonl -o report.json

      docextract eval --compare small.json large.json
    """
    from ..fsutil import display_name
    from . import report as R

    console = _console(quiet, verbose, no_progress)
    with _guard(console):
        if compare is not None:
            diff = R.compare(R.load_report(str(compare[0])), R.load_report(str(compare[1])))
            R.print_compare(diff, console)
            _write(diff, out, console)
            return
        from . import core, dataset
        from .fields import load_map

        mapping = load_map(dataset.read_json(map_file, "map"), display_name(map_file)) \
            if map_file else None
        opts = _options(schema or "auto", model, None, dpi, max_pixels, password, experts,
                        device, unmask, retries, offline)
        opts.max_batch, opts.gpu_memory = max_batch, gpu_memory
        report = core.evaluate(folder, schema, console,
                               predictions=str(predictions) if predictions else None,
                               predictions_out=str(predictions_out) if predictions_out else None,
                               work=str(work) if work else None, mapping=mapping,
                               review_below=review_below, opts=opts, workers=workers)
        R.print_tables(report, console)
        if html_out is not None:
            _write_text(html_out, R.to_html(report), console)
        _write(report, out, console)


def _write(obj, out: Path | None, console) -> None:
    from ..console import dumps

    if out is None:
        console.emit(obj)
        return
    _write_text(out, dumps(obj, pretty=True) + "\n", console)


def _write_text(out: Path, text: str, console) -> None:
    from ..errors import InputError
    from ..fsutil import atomic_write_text, display_name

    try:
        atomic_write_text(out, text)
    except OSError as exc:
        raise InputError(f"{display_name(out)}: cannot write: {exc.strerror}") from None
    console.info(f"wrote {display_name(out)}")

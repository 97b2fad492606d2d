"""The command line: parse, call the library, emit. No logic lives here."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, List, Optional

import typer

from . import __version__
from .cliopts import (bare_ray_is_auto, Quiet, Verbose, NoProgress, SchemaOpt, ModelOpt, PagesOpt,
                      DpiOpt, MaxPixelsOpt, PasswordOpt, ExpertsOpt, DeviceOpt, UnmaskOpt,
                      RetriesOpt, OfflineOpt, WindowOpt, ForceOpt, GlobOpt, ResumeOpt, WorkersOpt,
                      MaxBatchOpt, GpuMemoryOpt, GroupByOpt, RayOpt)
from .console import Console
from .errors import DocextractError, ExitCode, sigterm_as_error
from .reviewcmd import AnnotateOpt, ReviewBelowOpt, register as register_review

app = typer.Typer(
    name="docextract", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
    help="""Validated JSON from PDFs, scans and phone photos of KYC documents (Aadhaar, PAN), bank
statements and invoices (GST, UK VAT), read by a local Qwen3.5 model. Nothing leaves the machine.

[b]Examples[/b]

  docextract run scan.pdf --schema invoice | jq .data.total

  docextract batch ./inbox --schema auto --out results.jsonl

  docextract schemas aadhaar

Exit codes: 0 ok, 1 validation failed, 2 usage, 3 unreadable input or unwritable output,
4 model/engine failure, 130 interrupted, 141 stdout closed, 143 terminated (SIGTERM).""")
model_app = typer.Typer(no_args_is_help=True, help="Download, inspect and quantise models.")
app.add_typer(model_app, name="model")

register_review(app)  # `review`, from its own module


def _console(quiet: bool = False, verbose: bool = False, no_progress: bool = False) -> Console:
    console = Console(quiet=quiet, verbose=verbose, progress_enabled=not no_progress)
    console.capture_library_output()
    return console


@contextmanager
def _guard(console: Console) -> Iterator[None]:
    """Map every failure to `error:`/`hint:` on stderr and its exit code."""
    try:
        with sigterm_as_error():
            yield
    except BrokenPipeError:  # `| head -1`: the reader has what it wanted
        console.drop_stdout()
        raise typer.Exit(int(ExitCode.BROKEN_PIPE))
    except DocextractError as exc:
        console.report(exc)
        raise typer.Exit(int(exc.exit_code))
    except KeyboardInterrupt:
        console.error("interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    except typer.Exit:
        raise
    except Exception as exc:  # a bug: say so in one line, traceback with -v
        console.report(exc)
        raise typer.Exit(int(ExitCode.MODEL))


def _options(schema, model, pages, dpi, max_pixels, password, experts, device, unmask, retries,
             offline, window=None):
    from .pipeline import RunOptions

    return RunOptions(schema=schema, model=model, pages=pages, dpi=dpi, max_pixels=max_pixels,
                      password=password, experts=experts, device=device, unmask=unmask,
                      retries=retries, offline=offline, window=window)


@app.command()
def run(files: Annotated[List[str], typer.Argument(help="PDF or image files; - reads stdin.")],
        schema: SchemaOpt, model: ModelOpt = None, pages: PagesOpt = None, dpi: DpiOpt = None,
        max_pixels: MaxPixelsOpt = None, password: PasswordOpt = None, annotate: AnnotateOpt = None,
        experts: ExpertsOpt = None, device: DeviceOpt = None, unmask: UnmaskOpt = False,
        retries: RetriesOpt = 1, offline: OfflineOpt = False, window: WindowOpt = None,
        one_document: Annotated[bool, typer.Option("--one-document", help="The files are the "
                                                   "pages of one document, in order.")] = False,
        review_below: ReviewBelowOpt = None,
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write here (atomically) "
                                                    "instead of stdout.")] = None,
        force: ForceOpt = False, quiet: Quiet = False, verbose: Verbose = False, no_progress: NoProgress = False) -> None:
    """Extract one record per document: one JSON object for one file, JSON Lines for several.

    [b]Examples[/b]

      docextract run scan.pdf --schema invoice

      docextract run statement.pdf -s bank_statement --pages 1-3 | jq '.data.closing_balance'

      cat photo.heic | docextract run - --schema aadhaar --model ~/models/qwen3.5-35b-a3b
    """
    from .pipeline import run_files

    console = _console(quiet, verbose, no_progress)
    with _guard(console):
        opts = _options(schema, model, pages, dpi, max_pixels, password, experts, device, unmask,
                        retries, offline, window)
        opts.review_below, opts.annotate = review_below, str(annotate) if annotate else None
        code = run_files(files, opts, console, out=str(out) if out else None, force=force,
                         one_document=one_document)
    raise typer.Exit(int(code))


@app.command()
def batch(paths: Annotated[List[str], typer.Argument(help="Folders (recursive) and files.")],
          schema: SchemaOpt,
          out: Annotated[str, typer.Option("--out", "-o", help="JSON Lines file, or - for stdout.")],
          glob: GlobOpt = None, resume: ResumeOpt = True, workers: WorkersOpt = 2,
          max_batch: MaxBatchOpt = None, gpu_memory: GpuMemoryOpt = None,
          model: ModelOpt = None, pages: PagesOpt = None, dpi: DpiOpt = None,
          max_pixels: MaxPixelsOpt = None, password: PasswordOpt = None,
          experts: ExpertsOpt = None, device: DeviceOpt = None, unmask: UnmaskOpt = False,
          retries: RetriesOpt = 1, offline: OfflineOpt = False, force: ForceOpt = False,
          window: WindowOpt = None, group_by: GroupByOpt = None, ray: RayOpt = None,
          review_below: ReviewBelowOpt = None,
          quiet: Quiet = False, verbose: Verbose = False, no_progress: NoProgress = False) -> None:
    """Extract every document under folders into a JSON Lines file; resumes where it stopped.

    Unreadable files become error records and the batch goes on. Ctrl-C finishes the current
    document and exits 130; running the same command again resumes.

    [b]Examples[/b]

      docextract batch ./kyc --schema aadhaar --out aadhaar.jsonl

      docextract batch ./invoices --glob '*.pdf' -s invoice -o - | jq -c 'select(.valid|not)'
    """
    from .batch import run_batch

    console = _console(quiet, verbose, no_progress)
    with _guard(console):
        opts = _options(schema, model, pages, dpi, max_pixels, password, experts, device, unmask,
                        retries, offline, window)
        opts.max_batch, opts.gpu_memory, opts.review_below = max_batch, gpu_memory, review_below
        if ray is not None:
            from .raybatch import run_ray_batch as run_batch  # noqa: F811
        kw = {"address": ray} if ray is not None else {"workers": workers}
        code = run_batch(paths, opts, console, out=out, glob=glob, resume=resume, force=force,
                         group_by=group_by, **kw)
    raise typer.Exit(int(code))


@app.command("schemas")
def schemas_cmd(name: Annotated[Optional[str], typer.Argument(help="Print this schema.")] = None,
                as_json: Annotated[bool, typer.Option("--json", help="List as JSON.")] = False,
                quiet: Quiet = False, verbose: Verbose = False) -> None:
    """List the schemas, or print one as JSON Schema (what the decoder is constrained by).

    [b]Examples[/b]

      docextract schemas

      docextract schemas invoice | jq '.properties | keys'
    """
    from . import schemas

    console = _console(quiet, verbose)
    with _guard(console):
        if name is not None:
            console.emit(schemas.get(name).json_schema)
            return
        listing = []
        for n in schemas.names():
            spec = schemas.get(n)
            listing.append({"name": n, "version": spec.version, "ref": spec.ref})
        if as_json:
            console.emit(listing)
        else:
            console.emit_text("\n".join(f"{s['name']}\t{s['ref']}" for s in listing))


@app.command()
def validate(file: Annotated[str, typer.Argument(help="A JSON file, or - for stdin.")],
             schema: Annotated[str, typer.Option("--schema", "-s", help=(
                 "A schema name (see 'docextract schemas'), path/to/schema.json or "
                 "path/to/module.py:Class."))],
             unmask: UnmaskOpt = False,
             quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Check a JSON document against a schema; exit 0 valid, 1 invalid, 3 unreadable.

    [b]Examples[/b]

      docextract validate truth.json --schema pan

      jq .data record.json | docextract validate - -s invoice | jq .errors
    """
    from . import schemas
    from .errors import InputError
    from .fsutil import display_name
    from .pipeline import validate_document

    console = _console(quiet, verbose)
    with _guard(console):
        spec = schemas.get(schema)
        try:
            if file == "-" and sys.stdin is None:  # started with stdin closed (<&-)
                raise OSError(9, "stdin is closed")
            raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise InputError(f"{display_name(file)}: cannot read: {reason}") from None
        try:
            result = validate_document(text, spec, unmask=unmask)
        except InputError as exc:
            raise InputError(f"{display_name(file)}: {exc.message}") from None
        console.emit(result)
    raise typer.Exit(int(ExitCode.OK if result["valid"] else ExitCode.VALIDATION_FAILED))


@app.command()
def pages(file: Annotated[str, typer.Argument(help="A PDF or image; - reads stdin.")],
          out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNG pages.")],
          pages: PagesOpt = None, dpi: DpiOpt = None, max_pixels: MaxPixelsOpt = None,
          password: PasswordOpt = None, quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Write the page images exactly as the model will see them (PNG, named by page number).

    [b]Examples[/b]

      docextract pages scan.pdf --out pages/ --pages 1-2

      docextract pages photo.heic -o pages/ | jq -r '.[].path'
    """
    from . import ingest
    from .budget import default_max_pixels

    console = _console(quiet, verbose)
    with _guard(console):
        loaded = ingest.load(file, dpi=dpi or ingest.DEFAULT_DPI, pages=pages, password=password,
                             max_pixels=max_pixels or default_max_pixels(None))
        written = ingest.write_pages(loaded, out)
        console.emit([{"page": p.number, "path": str(w), "width": p.image.width,
                       "height": p.image.height} for p, w in zip(loaded, written)])


@model_app.command("pull")
def model_pull(repo_id: Annotated[str, typer.Argument(help="e.g. Qwen/Qwen3.5-35B-A3B")],
               dir: Annotated[Optional[Path], typer.Option("--dir", help="Download here instead "
                                                           "of the Hugging Face cache.")] = None,
               offline: OfflineOpt = False, quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Download the files the engine needs (weights, config, tokenizer), resumably.

    [b]Example[/b]

      docextract model pull Qwen/Qwen3.5-35B-A3B --dir ~/models/qwen3.5-35b-a3b
    """
    console = _console(quiet, verbose)
    with _guard(console):
        from .engine import hub

        with console.progress("download (bytes)") as bar:
            path = hub.pull(repo_id, dir, offline=offline, progress=bar.set)
        console.emit({"repo_id": repo_id, "path": str(path)})


@model_app.command("info")
def model_info(model_dir: Annotated[Path, typer.Argument(help="A model directory.")],
               measure: Annotated[bool, typer.Option("--measure", help="Load the model in each "
                                                     "--experts mode and report real memory.")] = False,
               device: Annotated[str, typer.Option("--device", help="Device for --measure.")] = "cpu",
               quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Architecture, parameter counts, layer pattern, experts, dtypes and memory per mode.

    [b]Example[/b]

      docextract model info ~/models/qwen3.5-35b-a3b | jq .memory
    """
    console = _console(quiet, verbose)
    with _guard(console):
        from .engine import info

        console.emit(info.describe(model_dir, measure=measure, device=device))


@model_app.command("quantize")
def model_quantize(src: Annotated[Path, typer.Argument(help="Source model directory.")],
                   out: Annotated[Path, typer.Option("--out", help="Destination directory.")],
                   experts: Annotated[str, typer.Option("--experts", help="int8 or int4.")] = "int4",
                   quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Write a checkpoint with quantised experts that loads directly.

    [b]Example[/b]

      docextract model quantize ~/models/qwen3.5-35b-a3b --out ~/models/q35-int4 --experts int4
    """
    console = _console(quiet, verbose)
    with _guard(console):
        from .engine.quant import quantize_checkpoint

        with console.progress("quantize (bytes)") as bar:
            path = quantize_checkpoint(src, out, experts, progress=bar.set)
        console.emit({"source": str(src), "path": str(path), "experts": experts})


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Report as JSON.")] = False,
           self_test: Annotated[bool, typer.Option("--self-test", help="Also run one constrained "
                                                   "extraction on a random tiny model.")] = False,
           gpu: Annotated[bool, typer.Option("--gpu", help="Check every Triton kernel and CUDA "
                                             "graphs on the GPU against PyTorch.")] = False,
           device: DeviceOpt = None, quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Check the installation: Python, torch, GPU, Triton, dependencies, model.

    [b]Examples[/b]

      docextract doctor --json | jq .gpu

      docextract doctor --self-test

      docextract doctor --gpu
    """
    from .doctor import check

    console = _console(quiet, verbose)
    with _guard(console):
        report = check()
        if self_test:
            from .selftest import run_selftest

            result = run_selftest(console, device=device or "auto")
            report["self_test"] = result
            report["summary"]["self-test"] = (
                f"ok in {result['total_s']:.1f} s" if result["ok"]
                else f"failed at {result['failed_stage']}: {result['error']}")
            report["summary"]["stages"] = ", ".join(
                f"{k[:-2]} {v:.2f} s" for k, v in result["stages"].items())
            report["usable"] = report["usable"] and result["ok"]
        if gpu:
            from .doctor import gpu_check, gpu_table

            report["gpu_check"] = gpu_check(device or "auto")
        if as_json:
            console.emit(report)
        else:
            console.emit_text("\n".join(f"{k:<14} {v}" for k, v in report["summary"].items()))
            if gpu:
                console.emit_text(gpu_table(report["gpu_check"]))
    raise typer.Exit(0 if report["usable"] else int(ExitCode.MODEL))


def _version(value: bool) -> None:
    if value:
        Console().emit_text(f"docextract {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version.")] = False) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: click's own usage errors also become `error:` + `hint:`."""
    try:  # typer 0.2x vendors click
        from typer._click import exceptions as click_exc
    except ImportError:  # older typer uses click itself
        from click import exceptions as click_exc

    console = Console()
    argv = bare_ray_is_auto(sys.argv[1:] if argv is None else list(argv))
    try:
        code = typer.main.get_command(app).main(args=argv, prog_name="docextract",
                                                standalone_mode=False)
    except (BrokenPipeError, SystemExit) as exc:  # help or usage text into `| head`
        if isinstance(exc, SystemExit) and not isinstance(exc.__context__, BrokenPipeError):
            raise
        console.drop_stdout()
        code = int(ExitCode.BROKEN_PIPE)
    except click_exc.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx else "docextract"
        if exc.format_message().strip():  # empty when help was shown for a bare command
            console.error(exc.format_message(), f"see '{path} --help'")
        code = int(ExitCode.USAGE)
    except (getattr(click_exc, "Abort", typer.Abort), typer.Abort):
        console.error("interrupted")
        code = int(ExitCode.INTERRUPTED)
    except click_exc.ClickException as exc:
        console.error(exc.format_message())
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)


from .evaluation import command as _eval_command  # noqa: E402,F401  (registers `eval`)

"""The options several commands share, declared once (typer's Annotated form) for cli.py."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Quiet = Annotated[bool, typer.Option("--quiet", "-q", envvar="DOCEXTRACT_QUIET",
                                     help="Only errors on stderr.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", envvar="DOCEXTRACT_VERBOSE",
                                       help="Debug messages and tracebacks on stderr.")]
NoProgress = Annotated[bool, typer.Option("--no-progress", envvar="DOCEXTRACT_NO_PROGRESS",
                                          help="No progress bars.")]
SchemaOpt = Annotated[str, typer.Option("--schema", "-s", help="A schema name (see 'docextract "
                                        "schemas'), auto, path/to/schema.json or path/to/module.py:Class.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", envvar="DOCEXTRACT_MODEL",
                                                 help="Model directory or repository id.")]
PagesOpt = Annotated[Optional[str], typer.Option("--pages", "-p", help="Pages to read, e.g. 1-3,5.")]
DpiOpt = Annotated[Optional[int], typer.Option("--dpi", envvar="DOCEXTRACT_DPI", min=36, max=1200,
                                               help="PDF render resolution (default 200).")]
MaxPixelsOpt = Annotated[Optional[int], typer.Option(
    "--max-pixels", envvar="DOCEXTRACT_MAX_PIXELS", min=32 * 32,
    help="Pixel budget per page; larger pages are scaled down (default 2560 x 32 x 32 on a GPU, "
         "768 x 32 x 32 on the CPU).")]
PasswordOpt = Annotated[Optional[str], typer.Option("--password", envvar="DOCEXTRACT_PDF_PASSWORD",
                                                    help="Password of encrypted PDFs.")]
ExpertsOpt = Annotated[Optional[str], typer.Option(
    "--experts", envvar="DOCEXTRACT_EXPERTS",
    help="Routed-expert precision: bf16, int8 or int4 (default bf16; int4 for the default model "
         "on 32-79 GiB GPUs).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", envvar="DOCEXTRACT_DEVICE",
                                                  help="cuda or cpu (default: cuda when present).")]
UnmaskOpt = Annotated[bool, typer.Option("--unmask", help=(
    "Show in full what is masked by default: Aadhaar numbers and VIDs, PANs, bank account numbers "
    "and IBANs, in their own fields and wherever else they appear (free text, unknown keys, "
    "error paths). GSTINs and UK VAT numbers are never masked."))]
RetriesOpt = Annotated[int, typer.Option("--retries", min=0, max=5,
                                         help="Extra attempts when hard validation errors remain.")]
OfflineOpt = Annotated[bool, typer.Option("--offline", envvar="HF_HUB_OFFLINE",
                                          help="Never download anything.")]
WindowOpt = Annotated[Optional[int], typer.Option("--window", min=0, help="Pages per request for "
                                                  "the rows of long documents (0: one request).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an --out file that docextract "
                                        "did not write (its content is lost).")]

# batch
GlobOpt = Annotated[Optional[str], typer.Option("--glob", help="Only files matching this "
                                                "pattern, e.g. '*.pdf'.")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Skip documents already in "
                                         "--out.")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, max=64, help="Threads reading and "
                                         "rendering documents.")]
MaxBatchOpt = Annotated[Optional[int], typer.Option(
    "--max-batch", min=1, max=256, envvar="DOCEXTRACT_MAX_BATCH",
    help="Documents decoded together (default: what fits --gpu-memory; 8 on CPU).")]
GpuMemoryOpt = Annotated[Optional[float], typer.Option(
    "--gpu-memory", min=1, envvar="DOCEXTRACT_GPU_MEMORY",
    help="GiB of GPU memory for weights and state in all (default: 90% of the card).")]
GroupByOpt = Annotated[Optional[str], typer.Option(
    "--group-by", help="Files as pages of one document: folder or stem.")]
RayOpt = Annotated[Optional[str], typer.Option(
    "--ray", help="Run on a Ray cluster: auto (also --ray alone before another option or at the "
                  "end) or the cluster's address (docextract[ray]).")]


def bare_ray_is_auto(argv: list[str]) -> list[str]:
    """`--ray` with no value (last, or followed by another option) means `--ray auto`; a word
    after it is its value, as for any option."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("auto")
    return out

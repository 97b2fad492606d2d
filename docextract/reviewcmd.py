"""`docextract review`: a record checked against its document, with pictures for the reviewer.
Registered on the app by cli.py (`register`), which also takes --review-below and --annotate
from here. No `from __future__ import annotations`: the command is defined inside `register`,
and typer reads its annotations as objects."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .review import DEFAULT_REVIEW_BELOW

ReviewBelowOpt = Annotated[Optional[float], typer.Option(
    "--review-below", min=0.0, max=1.0, envvar="DOCEXTRACT_REVIEW_BELOW",
    help=f"Fields with a confidence below this go on the review list (default "
         f"{DEFAULT_REVIEW_BELOW}; uncalibrated, see README).")]
AnnotateOpt = Annotated[Optional[Path], typer.Option(
    "--annotate", help="Also write each page as PNG with a box per located field, into "
                       "DIR/<document name>/.")]


def read_record(path: Path) -> dict:
    """One record from a JSON file (or a JSON Lines file holding one record)."""
    from .errors import InputError
    from .fsutil import display_name

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{display_name(path)}: cannot read: "
                         f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{display_name(path)}: not a JSON record ({exc.msg} at line "
                         f"{exc.lineno})", hint="give one record, as 'docextract run' writes "
                                                "it; split JSON Lines with jq -c") from None
    if not isinstance(record, dict) or "data" not in record:
        raise InputError(f"{display_name(path)}: not a docextract record (no \"data\" field)")
    return record


def register(app: typer.Typer) -> None:
    from .cli import DpiOpt, MaxPixelsOpt, PagesOpt, PasswordOpt, Quiet, Verbose

    @app.command()
    def review(record: Annotated[Path, typer.Argument(help="A record (JSON) from 'docextract run'.")],
               document: Annotated[str, typer.Argument(help="The PDF or image it was read from.")],
               out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the "
                                                           "annotated PNG pages.")] = None,
               review_below: ReviewBelowOpt = None, pages: PagesOpt = None,
               dpi: DpiOpt = None, max_pixels: MaxPixelsOpt = None, password: PasswordOpt = None,
               quiet: Quiet = False, verbose: Verbose = False) -> None:
        """Check a record against its document: prints it with evidence and review recomputed, and
        with --out draws each page with a box per located field (green fine, amber review, red
        validation error; masked numbers blacked out).

        [b]Examples[/b]

          docextract review invoice.json invoice.pdf --out review/

          docextract review card.json card.pdf | jq '.review[] | select(.reasons | index("not_on_page"))'
        """
        from . import annotate, ingest
        from .cli import _console, _guard
        from .fsutil import display_name
        from .review import recheck

        console = _console(quiet, verbose)
        with _guard(console):
            given = read_record(record)
            loaded = ingest.load(document, dpi=dpi or ingest.DEFAULT_DPI, pages=pages,
                                 password=password, max_pixels=max_pixels or ingest.DEFAULT_MAX_PIXELS)
            if given.get("sha256") and given["sha256"] != loaded[0].sha256:
                console.warn(f"{display_name(document)} is not the file the record was made from "
                             "(its sha256 differs)")
            result = recheck(given, loaded,
                             DEFAULT_REVIEW_BELOW if review_below is None else review_below)
            if out is not None:
                written = annotate.write(result, loaded, out)
                console.info(f"wrote {len(written)} page picture(s) to {display_name(out)}")
            console.emit(result)

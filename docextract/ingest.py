"""Any input file -> the page images the model sees.

A document is read once into memory (one read: the sha256 and the decoded pages come from the
same bytes), its type is sniffed from its first bytes (never from the file name), and each
selected page becomes an RGB image whose sides are multiples of 32 (one model token = 32x32
pixels) within a pixel budget. PDFs render through pymupdf; JPEG, PNG, WebP, BMP, GIF (first
frame), TIFF (every page), HEIC/HEIF and AVIF through Pillow (pillow-heif for HEIF).

Sizing rule (`fit_size`): a page within the budget keeps its size, each side rounded to the
nearest multiple of 32 (halves round up, never below 32), so it grows by at most 16 pixels a side.
A page above the budget, or one that rounding would push over it, is scaled by
sqrt(max_pixels / (w * h)) and each side rounded down to a multiple of 32 (never below 32), as the
model's own image processor does; a very elongated page then has its long side cut to fit.

Limits, checked before anything is decoded: an image, or a PDF page at the requested dpi, above
MAX_SOURCE_PIXELS is refused (decompression bombs); a file above MAX_FILE_BYTES is not read;
more than `max_pages` selected pages is refused with a hint to use --pages.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import math
import os
import stat
import struct
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence

import numpy as np
import pymupdf
# The plugin imports register the formats that sniff() can name.
from PIL import (BmpImagePlugin, GifImagePlugin, Image, ImageOps, JpegImagePlugin,  # noqa: F401
                 PngImagePlugin, TiffImagePlugin, WebPImagePlugin)

from .errors import InputError, PageRangeError, UsageError
from .fsutil import display_name
from .objstore import is_uri

DEFAULT_DPI = 200
PATCH = 32
# ~2.5k model tokens of 32x32 pixels: an A4 page at 200 dpi comes out at 1344x1920.
DEFAULT_MAX_PIXELS = 2560 * PATCH * PATCH
DEFAULT_MAX_PAGES = 500
# 16384 x 16384: above this an image or a rendered PDF page is refused before decoding. A 200 MP
# phone photo (16320x12240) still passes.
MAX_SOURCE_PIXELS = 16384 * 16384
MAX_FILE_BYTES = 1 << 30
# Memory one image may take while it is decoded and turned into RGB (Pillow keeps 4 bytes a
# pixel for RGB): an RGB image at MAX_SOURCE_PIXELS fits; an RGBA, 16-bit or 32-bit one, whose
# flattening takes several times more, is allowed fewer pixels (see _decode_bytes).
MAX_DECODE_BYTES = 1 << 30
# The model's image processor refuses more elongated images.
MAX_ASPECT_RATIO = 200
SUPPORTED = "PDF, JPEG, PNG, WebP, BMP, GIF, TIFF, HEIC/HEIF, AVIF"

# Pillow's own bomb check is kept as a backstop at our limit. Our check on the header size runs
# first, so Pillow never warns (on stderr) about an image we accept.
Image.MAX_IMAGE_PIXELS = MAX_SOURCE_PIXELS
# MuPDF would print its errors on stderr; we turn them into InputError instead.
pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)
# pymupdf is not thread-safe and batch reads documents in worker threads.
_PDF_LOCK = threading.Lock()
# What pymupdf raises for a damaged file: its own errors, and MuPDF's (not RuntimeErrors).
_PDF_ERRORS = (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)
_EXIF_ORIENTATION = 0x0112

_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
# Everything Pillow and its plugins raise for a corrupt or truncated image (a superset of what
# Image.open itself catches while identifying a file).
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, IndexError, KeyError, TypeError,
                 EOFError, RuntimeError) + _BOMB_ERRORS
# Pillow logs and warns about corrupt-file details; without this, logging's last resort and the
# warnings module would print them on stderr. The InputError (or the decoded page) is what matters.
logging.getLogger("PIL").addHandler(logging.NullHandler())
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


@dataclass
class Page:
    image: Image.Image  # RGB, sides multiples of 32, within max_pixels
    number: int  # 1-based page number in the source document
    source: str  # the path as given ("-" for stdin)
    sha256: str  # sha256 hex of the whole source file's bytes
    # PDF pages: the text layer as pymupdf words (x0, y0, x1, y1, text, block, line, word) in PDF
    # points ([] when the page has none: a scan), and the page size in points; None for images.
    words: list | None = None
    size_pt: tuple[float, float] | None = None


def load(source: str | os.PathLike | bytes, *, dpi: int = DEFAULT_DPI, pages: str | None = None,
         max_pixels: int = DEFAULT_MAX_PIXELS, password: str | None = None,
         max_pages: int = DEFAULT_MAX_PAGES, stdin: BinaryIO | None = None,
         max_image_tokens: int | None = None) -> list[Page]:
    """Read one document (`-` = stdin) and return its selected pages, ready for the model.

    `max_image_tokens` (the model's context, when known): the selected pages' image tokens (one
    per 32x32 pixels after sizing) are counted from the page sizes before any page is rendered,
    and a document above it is refused (InputError), so a long PDF never fills memory first.

    Raises UsageError for bad arguments (a malformed `pages` spec, dpi or budget out of range) and
    InputError, naming the file, for anything wrong with the input itself.
    """
    ranges = parse_pages(pages) if pages is not None else None
    _check_options(dpi, max_pixels, max_pages)
    is_stdin = _is_stdin(source)
    name = "stdin" if is_stdin else display_name(source)
    data = _read_stdin(stdin) if is_stdin else _read_file(source, name)
    return _load_data(data, name, "-" if is_stdin else os.fsdecode(source), ranges, pages, dpi,
                      max_pixels, password, max_pages, max_image_tokens)


def load_bytes(data: bytes, source: str, *, dpi: int = DEFAULT_DPI, pages: str | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, password: str | None = None,
               max_pages: int = DEFAULT_MAX_PAGES, max_image_tokens: int | None = None
               ) -> list[Page]:
    """As `load`, for a document already in memory (read from object storage): `source` names
    it in errors and in each Page; nothing is written to disk."""
    ranges = parse_pages(pages) if pages is not None else None
    _check_options(dpi, max_pixels, max_pages)
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{display_name(source)}: file is larger than the limit of "
                         f"{_size(MAX_FILE_BYTES)}")
    return _load_data(bytes(data), display_name(source), str(source), ranges, pages, dpi,
                      max_pixels, password, max_pages, max_image_tokens)


def _check_options(dpi: int, max_pixels: int, max_pages: int) -> None:
    if not 36 <= dpi <= 1200:
        raise UsageError(f"--dpi {dpi} is out of range", hint="use a value between 36 and 1200")
    if max_pixels < PATCH * PATCH:
        raise UsageError(f"--max-pixels {max_pixels} is below one 32x32 tile",
                         hint=f"use at least {PATCH * PATCH}")
    if max_pages < 1:
        raise UsageError(f"max_pages must be at least 1, got {max_pages}")


def _load_data(data: bytes, name: str, source: str, ranges, pages: str | None, dpi: int,
               max_pixels: int, password: str | None, max_pages: int,
               max_image_tokens: int | None) -> list[Page]:
    if not data:
        raise InputError(f"{name}: file is empty (0 bytes)")
    kind = sniff(data)
    if kind is None:
        what, hint = describe_unknown(data)
        raise InputError(f"{name}: not a PDF or image ({what})", hint=hint)
    ctx = _Context(name=name, source=source,
                   sha256=hashlib.sha256(data).hexdigest(), ranges=ranges, spec=pages,
                   dpi=dpi, max_pixels=max_pixels, max_pages=max_pages,
                   max_image_tokens=max_image_tokens)
    if kind == "PDF":
        return _load_pdf(data, ctx, password)
    return _load_image(data, kind, ctx)


def parse_pages(spec: str) -> list[tuple[int, int | None]]:
    """`"1-3,5"` -> [(1, 3), (5, 5)]; `"2-"` -> [(2, None)] (to the end); `"-4"` -> [(1, 4)].

    Pages are 1-based and inclusive; spaces around items are allowed. Bad syntax -> UsageError.
    """
    hint = "write pages as a comma-separated list of numbers and ranges, e.g. 1-3,5 or 2- or -4"
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise UsageError("--pages is empty", hint=hint)
    ranges: list[tuple[int, int | None]] = []
    for item in text.split(","):
        item = item.strip()
        first, dash, last = item.partition("-")
        first, last = first.strip(), last.strip()
        bad = (not item or (not dash and not first) or (dash and not first and not last)
               or any(part and not (part.isascii() and part.isdigit()) for part in (first, last)))
        if bad:
            raise UsageError(f"--pages {spec!r}: {item!r} is not a page or a range", hint=hint)
        start = int(first) if first else 1
        end = (int(last) if last else None) if dash else start
        if start < 1 or (end is not None and end < 1):
            raise UsageError(f"--pages {spec!r}: pages are numbered from 1", hint=hint)
        if end is not None and end < start:
            raise UsageError(f"--pages {spec!r}: range {item!r} ends before it starts", hint=hint)
        ranges.append((start, end))
    return ranges


def select_pages(ranges: Sequence[tuple[int, int | None]] | None, count: int, name: str,
                 spec: str | None = None) -> list[int]:
    """The 1-based page numbers `ranges` picks out of a `count`-page document, in document order,
    each once. A page beyond the end -> PageRangeError (exit 2, a bad page range) naming the page
    count."""
    if ranges is None:
        return list(range(1, count + 1))
    chosen: set[int] = set()
    for start, end in ranges:
        last = count if end is None else end
        if start > count or last > count:
            asked = start if start > count else last
            shown = spec if spec is not None else ",".join(
                f"{s}-{'' if e is None else e}" for s, e in ranges)
            raise PageRangeError(f"{name}: --pages {shown} asks for page {asked}, but the "
                                 f"document has {_plural(count, 'page')}")
        chosen.update(range(start, last + 1))
    return sorted(chosen)


def fit_size(width: float, height: float, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """The (width, height) a page is resized to: sides multiples of 32, w * h <= max_pixels,
    aspect ratio kept as closely as the 32-pixel grid allows (rule in the module docstring)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"page size must be positive, got {width}x{height}")
    if max_pixels < PATCH * PATCH:
        raise ValueError(f"max_pixels must be at least {PATCH * PATCH}, got {max_pixels}")
    if width * height <= max_pixels:
        w, h = _round_to_patch(width), _round_to_patch(height)
        if w * h <= max_pixels:
            return w, h
    # The model's own smart_resize rule: scale into the budget, then round each side down.
    scale = math.sqrt(max_pixels / (width * height))
    w, h = _floor_to_patch(width * scale), _floor_to_patch(height * scale)
    # A side held at the 32 floor (very elongated pages) or float rounding can leave the product
    # above the budget: trim the longer side until it fits.
    while w * h > max_pixels:
        if w >= h:
            w -= PATCH
        else:
            h -= PATCH
    return w, h


def file_sha256(path: str | os.PathLike | bytes) -> str:
    """sha256 hex of a file's bytes, read in chunks; unreadable -> InputError naming the file."""
    name = display_name(path)
    digest = hashlib.sha256()
    read = 0
    try:
        with _open_regular(path, name) as f:
            while chunk := f.read(1 << 20):
                read += len(chunk)
                if read > MAX_FILE_BYTES:  # a file that grows while it is read
                    raise InputError(f"{name}: file is larger than the limit of "
                                     f"{_size(MAX_FILE_BYTES)}")
                digest.update(chunk)
    except OSError as exc:
        raise _os_error(name, exc) from None
    return digest.hexdigest()


def write_pages(pages: Iterable[Page], out_dir: str | os.PathLike) -> list[Path]:
    """Write each page as PNG into `out_dir` (created if needed), named by page number:
    page-001.png, page-002.png ... (wider numbers when a page number has more digits). Each file
    is written atomically; a symbolic link (or a FIFO, a device) already in the folder under a
    page's name is refused (UsageError) before anything is written, never followed."""
    from .fsutil import atomic_write_bytes, output_error

    pages = list(pages)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{display_name(out)}: is a file, not a folder",
                         hint="--out takes a folder for the PNG pages") from None
    except OSError as exc:
        raise output_error(out, exc) from None
    digits = max([3] + [len(str(p.number)) for p in pages])
    paths = [out / f"page-{page.number:0{digits}d}.png" for page in pages]
    for path in paths:
        if path.is_symlink() or (path.exists() and not path.is_file()):
            what = "a symbolic link" if path.is_symlink() else "not a regular file"
            raise UsageError(f"{display_name(path)} is {what}; refusing to write through it",
                             hint="remove it, or choose an empty folder for --out")
    for page, path in zip(pages, paths):
        buf = io.BytesIO()
        page.image.save(buf, "PNG")
        atomic_write_bytes(path, buf.getvalue())
    return paths


def sniff(data: bytes) -> str | None:
    """The document type from its first bytes: "PDF", "JPEG", "PNG", "GIF", "BMP", "WEBP",
    "TIFF", "HEIF", "AVIF", or None when it is none of them."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM") and len(head) >= 26:
        return "BMP"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    brands = _ftyp_brands(data)
    if brands & {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}:
        return "HEIF"
    if brands & {b"avif", b"avis"}:
        return "AVIF"
    if brands & {b"mif1", b"msf1"}:
        return "HEIF"
    # The PDF header may follow some junk; readers look within the first kilobyte. Not in a
    # container of another kind: a ZIP (Word, Excel...) or an old Office file may hold a PDF.
    if head.startswith(b"%PDF-"):
        return "PDF"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\xd0\xcf\x11\xe0", b"%!PS")):
        return None
    if b"%PDF-" in data[:1024]:
        return "PDF"
    return None


def describe_unknown(data: bytes) -> tuple[str, str]:
    """(what the bytes look like, a hint) for a file that is neither a PDF nor a known image."""
    head = data[:2048]
    export = "export or print the document to PDF first"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive; Word, Excel and OpenDocument files are ZIP archives", export
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "an old Microsoft Office file", export
    if head.startswith(b"%!PS"):
        return "a PostScript file", "convert it to PDF first (e.g. with ps2pdf)"
    if _ftyp_brands(data):
        return "a video or other ISO media file, not a still image", f"supported: {SUPPORTED}"
    text = _as_text(head)
    if text is not None:
        lowered = text.lstrip().lower()
        if lowered.startswith(("<!doctype html", "<html")):
            return "starts with HTML: a saved web page?", export
        if lowered.startswith(("<svg", "<?xml")):
            return "starts with XML/SVG text", f"supported: {SUPPORTED}"
        return "starts with text", f"supported: {SUPPORTED}"
    shown = " ".join(f"{b:02x}" for b in head[:8])
    return f"unrecognised content starting with bytes {shown}", f"supported: {SUPPORTED}"


@dataclass
class _Context:
    name: str
    source: str
    sha256: str
    ranges: list[tuple[int, int | None]] | None
    spec: str | None
    dpi: int
    max_pixels: int
    max_pages: int
    max_image_tokens: int | None = None
    image_tokens: int = 0

    def count_tokens(self, sizes: Sequence[tuple[int, int]]) -> None:
        """Add pages of these (sized) dimensions to the document's image tokens; refuse the
        document once they exceed `max_image_tokens`, before those pages are rendered."""
        self.image_tokens += sum((w // PATCH) * (h // PATCH) for w, h in sizes)
        if self.max_image_tokens is not None and self.image_tokens > self.max_image_tokens:
            raise InputError(
                f"{self.name}: the selected pages need at least {self.image_tokens:,} image "
                f"tokens at --max-pixels {self.max_pixels:,}, above the model's context of "
                f"{self.max_image_tokens:,} tokens; nothing was rendered",
                hint="select fewer pages with --pages, or shrink them with --max-pixels")

    def select(self, count: int) -> list[int]:
        numbers = select_pages(self.ranges, count, self.name, self.spec)
        if len(numbers) > self.max_pages:
            raise InputError(
                f"{self.name}: {_plural(len(numbers), 'page')} selected, above the limit of "
                f"{self.max_pages} pages per document",
                hint=f"choose pages with --pages, e.g. --pages 1-{self.max_pages}")
        return numbers


def _is_stdin(source) -> bool:
    return isinstance(source, str) and source == "-"


def _read_stdin(stream: BinaryIO | None) -> bytes:
    if stream is None:
        if sys.stdin is None or getattr(sys.stdin, "buffer", None) is None:
            raise InputError("stdin: is closed, nothing was piped in",
                             hint="pipe a file in, e.g. docextract run - < scan.pdf")
        stream = sys.stdin.buffer
    try:
        if stream.isatty():
            raise InputError("stdin: is a terminal, nothing was piped in",
                             hint="pipe a file in, e.g. docextract run - < scan.pdf")
    except (AttributeError, ValueError):
        pass
    try:
        data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _os_error("stdin", exc) from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"stdin: input is larger than the limit of {_size(MAX_FILE_BYTES)}")
    return data


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_readable_path(path, name: str, st: os.stat_result | None = None) -> os.stat_result:
    """Only regular files are read: a FIFO would block, a device (/dev/zero) never ends."""
    if st is None:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _os_error(name, exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a directory, not a file",
                         hint="to read every document in a folder, use 'docextract batch DIR'")
    if not stat.S_ISREG(st.st_mode):
        kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
        raise InputError(f"{name}: is {kind}, not a regular file; skipped",
                         hint="copy the document to a file, or pipe it in: docextract run - < FILE")
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(f"{name}: file is {_size(st.st_size)}, above the limit of "
                         f"{_size(MAX_FILE_BYTES)}")
    return st


def _open_regular(path, name: str) -> BinaryIO:
    """Open `path` for reading only if it is a regular file: opened without blocking (a FIFO with
    no writer would wait forever), then checked on the open descriptor (no race with a swap)."""
    _check_readable_path(path, name)
    f = open(path, "rb", opener=_open_nonblocking)
    try:
        _check_readable_path(path, name, os.fstat(f.fileno()))
        os.set_blocking(f.fileno(), True)
    except BaseException:
        f.close()
        raise
    return f


def _open_nonblocking(path, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _read_file(path, name: str) -> bytes:
    try:
        with _open_regular(path, name) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _os_error(name, exc) from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{name}: file is larger than the limit of {_size(MAX_FILE_BYTES)}")
    return data


def _os_error(name: str, exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        if is_uri(name):
            return InputError(f"{name}: no such file",
                              hint="object storage is read by 'docextract batch URI --out FILE'")
        return InputError(f"{name}: no such file")
    if isinstance(exc, PermissionError):
        return InputError(f"{name}: permission denied",
                          hint="check the file's permissions (ls -l) or run as its owner")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{name}: is a directory, not a file",
                          hint="to read every document in a folder, use 'docextract batch DIR'")
    if isinstance(exc, NotADirectoryError):
        return InputError(f"{name}: no such file (a part of the path is not a folder)")
    if exc.errno == errno.ELOOP:
        return InputError(f"{name}: is a symbolic link loop; skipped",
                          hint="fix or remove the link (ls -l shows where it points)")
    return InputError(f"{name}: cannot read ({exc.strerror or type(exc).__name__})")


def _load_pdf(data: bytes, ctx: _Context, password: str | None) -> list[Page]:
    name = ctx.name
    tail = data[-2048:].rstrip(b"\x00\r\n\t \x0c")
    if b"%%EOF" not in tail:
        # Readers may repair such a file silently, but its last pages or objects are then lost.
        raise InputError(f"{name}: PDF is truncated (no %%EOF marker at its end)",
                         hint="the download or copy was probably interrupted; get the file again")
    with _PDF_LOCK:
        try:
            doc = pymupdf.open(stream=data, filetype="pdf")
        except _PDF_ERRORS as exc:
            raise _damaged_pdf(name, "cannot be opened", exc) from None
        try:
            return _render_pdf(doc, ctx, password)
        except _PDF_ERRORS as exc:
            raise _damaged_pdf(name, "cannot be read", exc) from None
        finally:
            doc.close()
            pymupdf.TOOLS.reset_mupdf_warnings()


def _damaged_pdf(name: str, what: str, exc: BaseException) -> InputError:
    return InputError(f"{name}: PDF is damaged and {what} ({_first_line(exc)})",
                      hint="open it in a PDF viewer and save or print it to a new PDF")


def _render_pdf(doc, ctx: _Context, password: str | None) -> list[Page]:
    name = ctx.name
    if doc.needs_pass:
        if password is None:
            raise InputError(f"{name}: PDF is encrypted",
                             hint="pass its password with --password (or DOCEXTRACT_PDF_PASSWORD)")
        if not doc.authenticate(password):
            raise InputError(f"{name}: wrong password for the encrypted PDF",
                             hint="check the value given with --password")
    count = doc.page_count
    if count == 0:
        raise InputError(f"{name}: PDF has no pages (damaged?)")
    # Every page is sized before any is rendered, so that a document beyond the model's context
    # is refused without rendering (see _Context.count_tokens).
    sized = [_size_pdf_page(doc, number, ctx) for number in ctx.select(count)]
    ctx.count_tokens([(w, h) for _, _, w, h in sized])
    pages = []
    for number, page, w, h in sized:
        rect = page.rect
        w_pt, h_pt = rect.width, rect.height
        # Render straight at the target size: one pass, no oversized intermediate bitmap.
        matrix = pymupdf.Matrix(w / w_pt, h / h_pt)
        try:
            pix = page.get_pixmap(matrix=matrix, colorspace=pymupdf.csRGB, alpha=False)
        except _PDF_ERRORS as exc:
            raise InputError(f"{name}: page {number} cannot be rendered "
                             f"({_first_line(exc)})") from None
        image = Image.frombytes("RGB", (pix.width, pix.height), pix.samples, "raw", "RGB",
                                pix.stride)
        if image.size != (w, h):
            # MuPDF rounds the pixel box outwards: at most a pixel or two to take off or add.
            image = image.resize((w, h), Image.Resampling.LANCZOS)
        try:
            words = [tuple(w[:8]) for w in page.get_text("words")]
        except _PDF_ERRORS:
            words = []
        pages.append(Page(image=image, number=number, source=ctx.source, sha256=ctx.sha256,
                          words=words, size_pt=(w_pt, h_pt)))
    return pages


def _size_pdf_page(doc, number: int, ctx: _Context):
    """(number, page, width, height): a PDF page and the size it will be rendered at."""
    name = ctx.name
    try:
        page = doc.load_page(number - 1)
        rect = page.rect
    except _PDF_ERRORS as exc:
        raise InputError(f"{name}: page {number} cannot be read ({_first_line(exc)})") from None
    w_pt, h_pt = rect.width, rect.height
    if not (w_pt > 0 and h_pt > 0):
        raise InputError(f"{name}: page {number} has an empty page box ({w_pt}x{h_pt} pt)")
    width, height = w_pt * ctx.dpi / 72, h_pt * ctx.dpi / 72
    if width * height > MAX_SOURCE_PIXELS:
        raise InputError(
            f"{name}: page {number} is {w_pt / 72:.0f}x{h_pt / 72:.0f} inches, "
            f"{width:.0f}x{height:.0f} pixels at {ctx.dpi} dpi, above the limit of "
            f"{MAX_SOURCE_PIXELS:,} pixels; refusing to render",
            hint="lower --dpi, or check the file: no real page is that large")
    _check_aspect(name, number, width, height)
    w, h = fit_size(width, height, ctx.max_pixels)
    return number, page, w, h


def _load_image(data: bytes, kind: str, ctx: _Context) -> list[Page]:
    name = ctx.name
    label = {"WEBP": "WebP", "HEIF": "HEIC/HEIF"}.get(kind, kind)
    factory = _image_factory(kind, name)
    canvas = _gif_canvas(data) if kind == "GIF" else None
    if canvas is not None and canvas[0] * canvas[1] > MAX_SOURCE_PIXELS:
        # Pillow grows a GIF's canvas to its first frame while reading the header: check first.
        raise _bomb(name, "image", canvas)
    try:
        # The plugin reads only the header here; nothing is decoded yet.
        im = factory(io.BytesIO(data), "")
        # Only TIFF holds pages; other frames (GIF, WebP, MPO, HEIF) are animations or variants.
        count = im.n_frames if kind == "TIFF" else 1
    except _BOMB_ERRORS:
        raise _bomb(name, "image", None) from None
    except _IMAGE_ERRORS as exc:
        raise InputError(f"{name}: {label} image is corrupt ({_first_line(exc)})") from None
    pages = []
    for number in ctx.select(count):
        try:
            if number > 1:
                im.seek(number - 1)
            image = _decode(im, kind, number, count, ctx)
        except _BOMB_ERRORS:
            raise _bomb(name, f"page {number}" if count > 1 else "image", None) from None
        except _IMAGE_ERRORS as exc:
            where = f" (page {number})" if count > 1 else ""
            raise InputError(f"{name}: {label} image data is truncated or corrupt{where} "
                             f"({_first_line(exc)})") from None
        pages.append(Page(image=image, number=number, source=ctx.source, sha256=ctx.sha256))
    return pages


def _image_factory(kind: str, name: str):
    if kind == "HEIF" and "HEIF" not in Image.OPEN:
        from pillow_heif import register_heif_opener

        register_heif_opener()
    elif kind == "AVIF":
        try:
            from PIL import AvifImagePlugin  # noqa: F401
        except ImportError:
            pass
    entry = Image.OPEN.get(kind)
    if entry is None:
        raise InputError(f"{name}: {kind} images are not supported by this installation",
                         hint=f"convert it to PNG or JPEG; supported: {SUPPORTED}")
    return entry[0]


def _decode(im: Image.Image, kind: str, number: int, count: int, ctx: _Context) -> Image.Image:
    width, height = im.size
    if width * height > MAX_SOURCE_PIXELS:
        raise _bomb(ctx.name, f"page {number}" if count > 1 else "image", (width, height))
    _check_aspect(ctx.name, number if count > 1 else None, width, height)
    if kind != "JPEG":
        # Before the orientation is read: Pillow decodes a whole PNG to look for its EXIF.
        # (A JPEG's EXIF is in its header, and draft() below shrinks what is decoded.)
        _check_decode_bytes(im, False, ctx.name, number, count)
    # HEIF decoders apply the rotation themselves and reset the EXIF orientation to 1.
    orientation = _orientation(im) if kind != "HEIF" else 1
    sideways = orientation in (5, 6, 7, 8)
    w, h = fit_size(*((height, width) if sideways else (width, height)), ctx.max_pixels)
    ctx.count_tokens([(w, h)])
    if kind == "JPEG" and w * h < width * height:
        # JPEG decodes at 1/2, 1/4 or 1/8 scale for free; draft keeps at least the target size.
        im.draft(None, (h, w) if sideways else (w, h))
    _check_decode_bytes(im, orientation != 1, ctx.name, number, count)
    im.load()
    image = ImageOps.exif_transpose(im) if orientation != 1 else im
    image = to_rgb(image)
    if image.size != (w, h):
        image = image.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    elif image is im:
        # Detach from the file object: the next TIFF page would seek this very image.
        image = im.copy()
    return image


def _check_decode_bytes(im: Image.Image, rotated: bool, name: str, number: int,
                        count: int) -> None:
    need = _decode_bytes(im, rotated)
    if need > MAX_DECODE_BYTES:
        where = f"page {number}" if count > 1 else "image"
        raise InputError(
            f"{name}: {where} is {im.width}x{im.height} pixels in mode {im.mode}: decoding "
            f"and flattening it to RGB takes about {_size(need)}, above the limit of "
            f"{_size(MAX_DECODE_BYTES)}; refusing to decode",
            hint="scale the image down, or save it as 8-bit RGB without transparency")


def _decode_bytes(im: Image.Image, rotated: bool) -> int:
    """Peak bytes of decoding `im` at its (drafted) size and turning it into RGB the way
    `_decode` and `to_rgb` do: Pillow's storage (1 byte a pixel for 1/L/P, 2 for 16-bit, 4 for
    32-bit and for every multi-band mode), plus the full-size copies each conversion makes."""
    pixels = im.width * im.height
    mode = im.mode
    stored = {"1": 1, "L": 1, "P": 1}.get(mode, 2 if mode.startswith("I;16") else 4)
    if mode == "RGB" and "transparency" not in im.info:
        extra = 0
    elif mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
        extra = 16  # an RGBA copy, the white canvas, the composite, the RGB result
    elif mode.startswith("I;16"):
        extra = 10  # the array, shifted to 8 bits, 8-bit gray, RGB
    elif mode.startswith("I") or mode == "F":
        extra = 18  # the array, its 64-bit working copy, 8-bit gray, RGB
    else:
        extra = 4  # one conversion to RGB
    return pixels * (stored + extra + (stored if rotated else 0))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: transparency composited on white, 16/32-bit and float grayscale
    scaled to 8 bits, CMYK, palette and the rest through Pillow's conversions."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(image)), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Wide grayscale [H, W] -> uint8 [H, W]: 16-bit by its top byte, floats in [0, 1] by 255."""
    if values.dtype.kind == "f":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0)
        top = float(values.max(initial=0.0))
        scale = 255.0 if top <= 1.0 else (1.0 if top <= 255 else 255.0 / top)
        return np.clip(values * scale, 0, 255).astype(np.uint8)
    if values.dtype == np.uint16:
        return (values >> 8).astype(np.uint8)  # no 64-bit copy of a 16-bit image
    wide = values.astype(np.int64)
    top = int(wide.max(initial=0))
    if top > 65535:
        wide = wide * 255 // top
    elif values.dtype == np.uint16 or top > 255:
        wide = wide >> 8
    return np.clip(wide, 0, 255).astype(np.uint8)


def _gif_canvas(data: bytes) -> tuple[int, int] | None:
    """A GIF's canvas once its first frame is placed: the logical screen, grown to the frame's
    extent (what Pillow allocates). None when the header cannot be walked."""
    if len(data) < 13:
        return None
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    # Walked as Pillow walks it: extensions skipped, stray bytes skipped, ";" ends the file.
    while pos < len(data) and data[pos] != 0x3B:
        if data[pos] == 0x2C:
            if pos + 9 > len(data):
                return None
            x, y, w, h = struct.unpack_from("<HHHH", data, pos + 1)
            return max(width, x + w), max(height, y + h)
        if data[pos] == 0x21:
            # Extension: introducer, label, then data sub-blocks up to an empty one.
            pos += 2
            while pos < len(data) and data[pos]:
                pos += data[pos] + 1
        pos += 1
    return None


def _bomb(name: str, what: str, size: tuple[int, int] | None) -> InputError:
    shown = f" is {size[0]}x{size[1]} pixels," if size else " is"
    return InputError(f"{name}: {what}{shown} above the limit of {MAX_SOURCE_PIXELS:,} pixels; "
                      "refusing to decode",
                      hint="scale the image down first; no document page needs that many pixels")


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except _IMAGE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_aspect(name: str, number: int | None, width: float, height: float) -> None:
    ratio = max(width, height) / max(1e-9, min(width, height))
    if ratio > MAX_ASPECT_RATIO:
        where = f"page {number}" if number is not None else "image"
        raise InputError(f"{name}: {where} is {width:.0f}x{height:.0f} pixels, more elongated "
                         f"than the model's limit of {MAX_ASPECT_RATIO}:1",
                         hint="crop or split the image into pages")


def _ftyp_brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base media file (HEIF, AVIF, MP4...)."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return set()
    size = int.from_bytes(data[:4], "big")
    end = min(max(size, 16), len(data), 256)
    brands = {data[8:12]}
    brands.update(data[i:i + 4] for i in range(16, end - 3, 4))
    return brands


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(head) - 3:
            return None
        text = head[:exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\n\r\x0c" for ch in text)
    return text if text and printable >= 0.95 * len(text) else None


def _round_to_patch(value: float) -> int:
    return max(PATCH, int((value + PATCH / 2) // PATCH) * PATCH)


def _floor_to_patch(value: float) -> int:
    return max(PATCH, int(value // PATCH) * PATCH)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n:,} {word}s"


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 2**20:,.1f} MiB"

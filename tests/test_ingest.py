"""docextract.ingest at library level: every input kind becomes upright RGB pages on the 32-pixel
grid within the pixel budget, and every bad input is a one-line InputError naming the file."""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, JpegImagePlugin

from docextract import ingest
from docextract.errors import ExitCode, InputError, UsageError

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 255, 255)


def quadrants(width: int = 96, height: int = 64) -> Image.Image:
    """An upright test card: red top-left, blue top-right, green bottom-left, white bottom-right."""
    im = Image.new("RGB", (width, height), WHITE)
    im.paste(RED, (0, 0, width // 2, height // 2))
    im.paste(BLUE, (width // 2, 0, width, height // 2))
    im.paste(GREEN, (0, height // 2, width // 2, height))
    return im


def near(pixel, color, tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, color))


def assert_quadrants(im: Image.Image) -> None:
    w, h = im.size
    assert near(im.getpixel((w // 4, h // 4)), RED)
    assert near(im.getpixel((3 * w // 4, h // 4)), BLUE)
    assert near(im.getpixel((w // 4, 3 * h // 4)), GREEN)
    assert near(im.getpixel((3 * w // 4, 3 * h // 4)), WHITE)


def assert_model_ready(pages, max_pixels: int = ingest.DEFAULT_MAX_PIXELS) -> None:
    for page in pages:
        w, h = page.image.size
        assert page.image.mode == "RGB"
        assert w % 32 == 0 and h % 32 == 0 and w >= 32 and h >= 32
        assert w * h <= max_pixels


def input_error(excinfo, name: str) -> str:
    """The message of an InputError: exit code 3, one printable line that starts with the name."""
    exc = excinfo.value
    assert isinstance(exc, InputError) and exc.exit_code == ExitCode.INPUT == 3
    message = exc.message
    assert message.startswith(f"{name}: ")
    assert "\n" not in message and message.isprintable()
    assert exc.hint is None or ("\n" not in exc.hint and exc.hint.isprintable())
    return message


def make_pdf(path: Path, sizes=((595, 842),) * 3, rotate: dict[int, int] | None = None) -> Path:
    doc = pymupdf.open()
    for i, (w, h) in enumerate(sizes):
        page = doc.new_page(width=w, height=h)
        # A black box in the top-left corner and the page number: content that must show.
        page.draw_rect(pymupdf.Rect(0, 0, w / 4, h / 4), color=(0, 0, 0), fill=(0, 0, 0))
        page.insert_text((w / 2, h / 2), f"page {i + 1}", fontsize=24)
        if rotate and i in rotate:
            page.set_rotation(rotate[i])
    doc.save(path)
    doc.close()
    return path


@pytest.fixture
def pdf3(tmp_path):
    return make_pdf(tmp_path / "scan.pdf")


@pytest.fixture
def count_renders(monkeypatch):
    calls = []
    real = pymupdf.Page.get_pixmap

    def counting(self, *args, **kwargs):
        calls.append(self.number)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pymupdf.Page, "get_pixmap", counting)
    return calls


@pytest.fixture(scope="module")
def pdf2000(tmp_path_factory):
    """2,000 A6 pages; page 1999 alone is landscape, so its size shows which page was rendered."""
    path = tmp_path_factory.mktemp("big") / "statement.pdf"
    doc = pymupdf.open()
    for i in range(2000):
        doc.new_page(width=420 if i == 1998 else 298, height=298 if i == 1998 else 420)
    doc.save(path)
    doc.close()
    return path


def png_bomb_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, followed by a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))


# ---- the sizing rule ----

@pytest.mark.parametrize("size, budget, expected", [
    ((1024, 768), 2_621_440, (1024, 768)),      # already on the grid
    ((300, 400), 2_621_440, (288, 416)),        # nearest multiple: 9.4 -> 9, 12.5 -> 13 tiles
    ((10, 10), 2_621_440, (32, 32)),            # never below one tile
    ((1653.9, 2339.0), 2_621_440, (1344, 1920)),  # A4 at 200 dpi, scaled into the budget
    ((4000, 3000), 1024 * 1024, (1152, 864)),
    ((112, 80), 96 * 96, (96, 64)),             # rounding up would leave the budget: round down
    ((20, 6000), 32 * 32 * 50, (32, 1600)),     # very thin: the long side is cut to fit
], ids=["on-grid", "round-nearest", "tiny", "a4-200dpi", "photo", "round-down", "thin"])
def test_fit_size(size, budget, expected):
    assert ingest.fit_size(*size, budget) == expected


@settings(max_examples=300, deadline=None)
@given(w=st.floats(1, 30000), h=st.floats(1, 30000), tiles=st.integers(1, 6000))
def test_fit_size_properties(w, h, tiles):
    budget = tiles * 32 * 32
    assume(max(w, h) / min(w, h) <= ingest.MAX_ASPECT_RATIO)
    tw, th = ingest.fit_size(w, h, budget)
    assert tw % 32 == 0 and th % 32 == 0 and tw >= 32 and th >= 32
    assert tw * th <= budget
    # Never grows a side by more than what reaching the grid (or the 32 minimum) needs.
    assert tw <= max(32, w + 16) and th <= max(32, h + 16)
    if tw >= 320 and th >= 320:
        assert abs((tw / th) / (w / h) - 1) < 0.11
    if w * h > budget and tw > 32 and th > 32:
        # Downscaled as little as the grid allows: one more tile row or column would not fit or
        # would exceed the scaled size.
        scale = (budget / (w * h)) ** 0.5
        assert tw + 32 > w * scale or th + 32 > h * scale


# ---- --pages ----

@pytest.mark.parametrize("spec, expected", [
    ("1-3,5", [(1, 3), (5, 5)]), ("2-", [(2, None)]), ("-4", [(1, 4)]),
    (" 7 , 2-3 ", [(7, 7), (2, 3)]), ("4-4", [(4, 4)]),
])
def test_parse_pages(spec, expected):
    assert ingest.parse_pages(spec) == expected


@pytest.mark.parametrize("spec", ["", " ", "0", "3-1", "a", "1--2", "1,,2", "-", "1-2-3", "1.5",
                                  "²", "1;2", "-0"])
def test_parse_pages_rejects_bad_syntax(spec):
    with pytest.raises(UsageError) as excinfo:
        ingest.parse_pages(spec)
    assert excinfo.value.exit_code == ExitCode.USAGE == 2
    assert excinfo.value.hint and "1-3,5" in excinfo.value.hint


def test_select_pages_in_document_order_each_once():
    ranges = ingest.parse_pages("5,1-3,2,7-")
    assert ingest.select_pages(ranges, 8, "x.pdf") == [1, 2, 3, 5, 7, 8]
    assert ingest.select_pages(None, 3, "x.pdf") == [1, 2, 3]


@pytest.mark.parametrize("spec, asked", [("2,9", 9), ("3-12", 12), ("9-", 9)])
def test_page_beyond_the_document_names_the_page_count(pdf3, spec, asked):
    with pytest.raises(InputError) as excinfo:  # an input error record in a batch
        ingest.load(pdf3, pages=spec)
    assert excinfo.value.exit_code == 2  # README: a bad page range is a usage error
    message = excinfo.value.message
    assert message.startswith(f"{pdf3}: ") and message.isprintable()
    assert f"page {asked}" in message and "has 3 pages" in message


# ---- PDFs ----

def test_pdf_pages_are_model_ready(pdf3):
    pages = ingest.load(str(pdf3))
    assert [p.number for p in pages] == [1, 2, 3]
    assert_model_ready(pages)
    # A4 at 200 dpi (1654x2339) is scaled into the budget, keeping its shape.
    assert all(p.image.size == (1344, 1920) for p in pages)
    digest = hashlib.sha256(pdf3.read_bytes()).hexdigest()
    assert all(p.sha256 == digest and p.source == str(pdf3) for p in pages)
    # The drawn content is there: a black box top-left, white paper elsewhere.
    assert pages[0].image.getpixel((100, 100)) == (0, 0, 0)
    assert pages[0].image.getpixel((1300, 1900)) == WHITE


def test_pdf_dpi_and_budget(pdf3):
    (page,) = ingest.load(pdf3, dpi=72, pages="2")
    assert page.number == 2 and page.image.size == (608, 832)  # 595x842 pt to the nearest tile
    (small,) = ingest.load(pdf3, pages="1", max_pixels=200_000)
    assert_model_ready([small], 200_000)
    assert small.image.size == (352, 512)


def test_only_selected_pdf_pages_are_rendered(pdf3, count_renders):
    pages = ingest.load(pdf3, pages="3,1")
    assert [p.number for p in pages] == [1, 3]
    assert sorted(count_renders) == [0, 2]


def test_rotated_pdf_page_comes_out_as_displayed(tmp_path):
    path = make_pdf(tmp_path / "rot.pdf", sizes=((400, 600),), rotate={0: 90})
    (page,) = ingest.load(path, dpi=72)
    assert page.image.size == (608, 416)  # landscape, as a viewer shows it


def test_pdf_renders_flattened_on_white(tmp_path):
    doc = pymupdf.open()
    doc.new_page(width=200, height=200)  # nothing drawn: transparent page
    doc.save(tmp_path / "blank.pdf")
    (page,) = ingest.load(tmp_path / "blank.pdf")
    assert page.image.mode == "RGB" and page.image.getextrema() == ((255, 255),) * 3


def test_encrypted_pdf_needs_its_password(tmp_path, pdf3):
    path = tmp_path / "locked.pdf"
    doc = pymupdf.open(pdf3)
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="s3cret", owner_pw="owner")
    doc.close()
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert "PDF is encrypted" in input_error(excinfo, str(path))
    assert "--password" in excinfo.value.hint
    with pytest.raises(InputError) as excinfo:
        ingest.load(path, password="wrong")
    assert "wrong password" in input_error(excinfo, str(path))
    pages = ingest.load(path, password="s3cret", pages="2")
    assert [p.number for p in pages] == [2]
    assert pages[0].image.getpixel((100, 100)) == (0, 0, 0)


def test_truncated_pdf(tmp_path, pdf3, capfd):
    data = pdf3.read_bytes()
    for cut in (len(data) // 2, len(data) - 40, 400):
        path = tmp_path / f"cut{cut}.pdf"
        path.write_bytes(data[:cut])
        with pytest.raises(InputError) as excinfo:
            ingest.load(path)
        assert "PDF is truncated" in input_error(excinfo, str(path))
    assert capfd.readouterr() == ("", "")


def test_random_bytes_pdf(tmp_path, capfd):
    rng = random.Random(7)
    path = tmp_path / "scan.pdf"
    path.write_bytes(bytes(rng.randrange(1, 256) for _ in range(4000)))
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert "not a PDF or image (unrecognised content" in input_error(excinfo, str(path))
    # A PDF header followed by garbage gets as far as MuPDF, which must stay silent.
    path.write_bytes(b"%PDF-1.7\n" + bytes(rng.randrange(256) for _ in range(4000)) + b"\n%%EOF\n")
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert "PDF is damaged" in input_error(excinfo, str(path))
    assert capfd.readouterr() == ("", "")


def test_absurd_pdf_page_is_refused_before_rendering(tmp_path, count_renders):
    path = make_pdf(tmp_path / "poster.pdf", sizes=((595, 842), (14400, 14400)))
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    message = input_error(excinfo, str(path))
    assert "page 2 is 200x200 inches, 40000x40000 pixels at 200 dpi" in message
    assert "refusing to render" in message and "--dpi" in excinfo.value.hint
    assert count_renders == []  # every page is sized before any is rendered


def test_2000_page_pdf_renders_only_the_selected_page(pdf2000, count_renders):
    t0 = time.monotonic()
    (page,) = ingest.load(pdf2000, pages="1999")
    elapsed = time.monotonic() - t0
    assert page.number == 1999 and count_renders == [1998]
    assert page.image.width > page.image.height  # the one landscape page
    assert elapsed < 10, f"selecting one page of 2,000 took {elapsed:.1f} s"


def test_2000_page_pdf_hits_the_page_limit(pdf2000, count_renders):
    with pytest.raises(InputError) as excinfo:
        ingest.load(pdf2000)
    message = input_error(excinfo, str(pdf2000))
    assert "2,000 pages selected, above the limit of 500 pages per document" in message
    assert "--pages" in excinfo.value.hint
    assert count_renders == []  # refused before rendering anything
    with pytest.raises(InputError):
        ingest.load(pdf2000, pages="1-3", max_pages=2)
    assert len(ingest.load(pdf2000, pages="10-12", max_pages=3, dpi=36)) == 3


def test_pdf_loads_from_several_threads(pdf3):
    results, errors = [], []

    def work():
        try:
            results.append([p.image.size for p in ingest.load(pdf3, dpi=36)])
        except Exception as exc:  # collected and checked below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 4 and len(set(map(tuple, results))) == 1


# ---- images ----

def _save(im: Image.Image, path: Path, fmt: str, **kw) -> Path:
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    im.save(path, fmt, **kw)
    return path


@pytest.mark.parametrize("fmt, kw", [
    ("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"lossless": True}), ("BMP", {}),
    ("TIFF", {}), ("HEIF", {"quality": 95}), ("AVIF", {"quality": 95}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_image_formats(tmp_path, fmt, kw):
    path = _save(quadrants(), tmp_path / "doc.bin", fmt, **kw)  # the name says nothing
    (page,) = ingest.load(path)
    assert page.number == 1 and page.image.size == (96, 64)
    assert_model_ready([page])
    assert_quadrants(page.image)
    assert page.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_gif_first_frame_only(tmp_path):
    frames = [quadrants(), Image.new("RGB", (96, 64), BLUE), Image.new("RGB", (96, 64), RED)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    (page,) = ingest.load(path)
    assert_quadrants(page.image)


def test_multipage_tiff(tmp_path):
    pages = [Image.new("RGB", (96 + 32 * i, 96), color) for i, color in
             enumerate([RED, GREEN, BLUE])]
    path = tmp_path / "fax.tiff"
    pages[0].save(path, save_all=True, append_images=pages[1:], compression="tiff_lzw")
    loaded = ingest.load(path)
    assert [p.number for p in loaded] == [1, 2, 3]
    assert [p.image.size for p in loaded] == [(96, 96), (128, 96), (160, 96)]
    assert [p.image.getpixel((5, 5)) for p in loaded] == [RED, GREEN, BLUE]
    (second,) = ingest.load(path, pages="2")
    assert second.number == 2 and second.image.getpixel((5, 5)) == GREEN


# Orientation o: how the camera stored the pixels; `undo` turns the upright card into them.
_STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_comes_out_upright(tmp_path, orientation):
    upright = quadrants(128, 96)
    undo = _STORED[orientation]
    stored = upright.transpose(undo) if undo is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(stored, tmp_path / "photo.jpg", "JPEG", quality=95, exif=exif.tobytes())
    (page,) = ingest.load(path)
    assert page.image.size == (128, 96)
    assert_quadrants(page.image)


def test_large_sideways_phone_photo(tmp_path, monkeypatch):
    drafts = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        drafts.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    upright = quadrants(2400, 3200)  # portrait page, photographed with the phone held sideways
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "IMG_0001.JPG", "JPEG",
                 quality=85, exif=exif.tobytes())
    assert Image.open(path).size == (3200, 2400)
    (page,) = ingest.load(path, max_pixels=500_000)
    assert page.image.height > page.image.width
    # Decoded at reduced scale, asked in stored (landscape) orientation for the upright target.
    assert drafts == [page.image.size[::-1]]
    assert_model_ready([page], 500_000)
    assert_quadrants(page.image)


def test_heic_orientation(tmp_path):
    upright = quadrants(128, 96)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "IMG_0002.HEIC",
                 "HEIF", quality=95, exif=exif.tobytes())
    (page,) = ingest.load(path)
    assert page.image.size == (128, 96)
    assert_quadrants(page.image)


def _palette_with_transparency():
    im = Image.new("P", (64, 64), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 32, 32))
    im.info["transparency"] = 0
    return im, {"transparency": 0}


@pytest.mark.parametrize("make, fmt, corner, middle", [
    (lambda: (Image.new("CMYK", (64, 64), (0, 255, 255, 0)), {}), "JPEG", RED, RED),
    (_palette_with_transparency, "PNG", RED, WHITE),
    (lambda: (Image.new("RGBA", (64, 64), (0, 0, 255, 0)), {}), "PNG", WHITE, WHITE),
    (lambda: (Image.new("LA", (64, 64), (0, 128)), {}), "PNG", (127, 127, 127), (127, 127, 127)),
    (lambda: (Image.fromarray(np.full((64, 64), 40000, np.uint16)), {}), "PNG",
     (156, 156, 156), (156, 156, 156)),
    (lambda: (Image.fromarray(np.full((64, 64), 51200, np.int32)), {}), "TIFF",
     (200, 200, 200), (200, 200, 200)),
    (lambda: (Image.fromarray(np.full((64, 64), 0.5, np.float32)), {}), "TIFF",
     (127, 127, 127), (127, 127, 127)),
    (lambda: (Image.new("1", (64, 64), 0), {}), "BMP", (0, 0, 0), (0, 0, 0)),
], ids=["cmyk", "palette-transparency", "rgba", "la", "gray16", "int32", "float", "bilevel"])
def test_modes_become_rgb_on_white(tmp_path, make, fmt, corner, middle):
    im, kw = make()
    path = _save(im, tmp_path / "img", fmt, **kw)
    (page,) = ingest.load(path)
    assert page.image.mode == "RGB"
    assert near(page.image.getpixel((5, 5)), corner, 3)
    assert near(page.image.getpixel((40, 40)), middle, 3)


def test_type_comes_from_the_bytes_not_the_name(tmp_path, pdf3):
    png_named_pdf = _save(quadrants(), tmp_path / "invoice.pdf", "PNG")
    assert_quadrants(ingest.load(png_named_pdf)[0].image)
    pdf_named_jpg = tmp_path / "photo.jpg"
    pdf_named_jpg.write_bytes(pdf3.read_bytes())
    assert len(ingest.load(pdf_named_jpg)) == 3


def test_stdin(pdf3):
    data = pdf3.read_bytes()
    pages = ingest.load("-", stdin=io.BytesIO(data), pages="2")
    assert [(p.number, p.source) for p in pages] == [(2, "-")]
    assert pages[0].sha256 == hashlib.sha256(data).hexdigest()
    buf = io.BytesIO()
    quadrants().save(buf, "PNG")
    assert_quadrants(ingest.load("-", stdin=io.BytesIO(buf.getvalue()))[0].image)


def test_stdin_errors():
    with pytest.raises(InputError) as excinfo:
        ingest.load("-", stdin=io.BytesIO(b""))
    assert "file is empty" in input_error(excinfo, "stdin")
    with pytest.raises(InputError) as excinfo:
        ingest.load("-", stdin=io.BytesIO(b"name,amount\nrent,100\n"))
    assert "starts with text" in input_error(excinfo, "stdin")

    class Terminal(io.BytesIO):
        def isatty(self):
            return True

    with pytest.raises(InputError) as excinfo:
        ingest.load("-", stdin=Terminal(b""))
    assert "is a terminal" in input_error(excinfo, "stdin")


# ---- bad inputs ----

def test_missing_file(tmp_path):
    path = tmp_path / "nope.pdf"
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert input_error(excinfo, str(path)).endswith("no such file")


def test_directory(tmp_path):
    with pytest.raises(InputError) as excinfo:
        ingest.load(tmp_path)
    assert "is a directory" in input_error(excinfo, str(tmp_path))
    assert "docextract batch" in excinfo.value.hint


def test_zero_byte_file(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"")
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert "file is empty (0 bytes)" in input_error(excinfo, str(path))


@pytest.mark.parametrize("content, what", [
    (b"Dear customer,\nplease find attached\n", "starts with text"),
    ("नमस्ते, यह एक पाठ है".encode(), "starts with text"),
    (b"<!DOCTYPE html><html><body>invoice</body></html>", "HTML"),
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "ZIP archive"),
], ids=["text", "hindi-text", "html", "docx"])
def test_not_an_image(tmp_path, content, what):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    message = input_error(excinfo, str(path))
    assert message.startswith(f"{path}: not a PDF or image (") and what in message
    assert excinfo.value.hint


def test_truncated_and_corrupt_images(tmp_path):
    buf = io.BytesIO()
    quadrants(400, 300).save(buf, "JPEG")
    path = tmp_path / "photo.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert "JPEG image data is truncated or corrupt" in input_error(excinfo, str(path))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert "PNG image is corrupt" in input_error(excinfo, str(path))


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if any image data is decoded."""
    def refuse(self):
        raise AssertionError("image data was decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_decompression_bomb_png_refused_before_decoding(tmp_path, no_decoding):
    path = tmp_path / "photo.png"
    path.write_bytes(png_bomb_header(40000, 40000))
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    message = input_error(excinfo, str(path))
    assert message == (f"{path}: image is 40000x40000 pixels, above the limit of "
                       f"{ingest.MAX_SOURCE_PIXELS:,} pixels; refusing to decode")
    # Pillow's own check is set deliberately, as a backstop at the same limit.
    assert Image.MAX_IMAGE_PIXELS == ingest.MAX_SOURCE_PIXELS


def test_decompression_bomb_jpeg_refused_before_decoding(tmp_path, no_decoding):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), WHITE).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 30000, 30000)  # height, width in the frame header
    path = tmp_path / "photo.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert "image is 30000x30000 pixels" in input_error(excinfo, str(path))


@pytest.mark.parametrize("side", [20000, 30000], ids=["warning-band", "error-band"])
def test_decompression_bomb_gif_frame_extent(tmp_path, side, capfd):
    # A 16x16 GIF (global palette, a comment) whose first frame claims side x side pixels:
    # Pillow grows its canvas to the frame while reading the header, so we must check first.
    path = tmp_path / "anim.gif"
    path.write_bytes(b"GIF89a" + struct.pack("<HHBBB", 16, 16, 0x80, 0, 0) + b"\x00" * 6
                     + b"\x21\xfe\x03abc\x00"
                     + b"\x2c" + struct.pack("<HHHHB", 8, 0, side, side, 0)
                     + b"\x02\x02\x4c\x01\x00\x3b")
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert f"image is {side + 8}x{side} pixels, above the limit" in input_error(excinfo, str(path))
    assert capfd.readouterr() == ("", "")


def test_elongated_image_refused(tmp_path):
    path = _save(Image.new("RGB", (10, 5000), WHITE), tmp_path / "strip.png", "PNG")
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert "200:1" in input_error(excinfo, str(path))


def test_unreadable_permissions(tmp_path, monkeypatch):
    path = _save(quadrants(), tmp_path / "scan.png", "PNG")
    path.chmod(0)
    try:
        blocked = not os.access(path, os.R_OK)
        if not blocked:
            # Root reads through chmod 000: make open() fail as it would for anyone else.
            def denied(file, *args, **kwargs):
                raise PermissionError(13, "Permission denied", os.fsdecode(file))
            monkeypatch.setattr(ingest, "open", denied, raising=False)
        with pytest.raises(InputError) as excinfo:
            ingest.load(path)
        assert input_error(excinfo, str(path)).endswith("permission denied")
        with pytest.raises(InputError):
            ingest.file_sha256(path)
    finally:
        path.chmod(0o644)


def test_non_utf8_file_names(tmp_path):
    folder = os.fsencode(tmp_path)
    missing = folder + b"/scan-\xff\xfe.pdf"
    with pytest.raises(InputError) as excinfo:
        ingest.load(missing)
    assert input_error(excinfo, f"{tmp_path}/scan-\\xff\\xfe.pdf").endswith("no such file")
    bad = folder + b"/re\xe7u.jpg"
    with open(bad, "wb") as f:
        f.write(b"not an image at all\n")
    with pytest.raises(InputError) as excinfo:
        ingest.load(bad)
    assert "starts with text" in input_error(excinfo, f"{tmp_path}/re\\xe7u.jpg")
    good = folder + b"/photo-\xe9.png"
    with open(good, "wb") as f:
        quadrants().save(f, "PNG")
    (page,) = ingest.load(good)
    # The source keeps the undecodable bytes (surrogate escapes), so the path round-trips.
    assert os.fsencode(page.source) == good
    # Given as str the way sys.argv delivers it (surrogate escapes), the message is the same.
    with pytest.raises(InputError) as excinfo:
        ingest.load(os.fsdecode(missing))
    input_error(excinfo, f"{tmp_path}/scan-\\xff\\xfe.pdf")


def test_control_characters_in_names_stay_on_one_line(tmp_path):
    path = tmp_path / "scan\nerror: fake.pdf"
    with pytest.raises(InputError) as excinfo:
        ingest.load(path)
    assert input_error(excinfo, f"{tmp_path}/scan\\nerror: fake.pdf").endswith("no such file")


def test_bad_arguments_are_usage_errors(pdf3):
    for kwargs in ({"dpi": 0}, {"dpi": 5000}, {"max_pixels": 100}, {"max_pages": 0},
                   {"pages": "2-1"}):
        with pytest.raises(UsageError):
            ingest.load(pdf3, **kwargs)


@pytest.fixture(scope="module")
def seed_files():
    from pillow_heif import register_heif_opener

    register_heif_opener()
    seeds = {}
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "HEIF"):
        buf = io.BytesIO()
        quadrants(40, 30).save(buf, fmt)
        seeds[fmt] = buf.getvalue()
    doc = pymupdf.open()
    doc.new_page(width=200, height=100).insert_text((20, 50), "total 100.00")
    seeds["PDF"] = doc.tobytes()
    return seeds


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "HEIF", "PDF"])
def test_damaged_files_never_crash(seed_files, fmt):
    """Bytes flipped, cut out or inserted: either model-ready pages or an InputError, nothing
    else (this once found Pillow's TypeError on a TIFF and MuPDF's non-RuntimeError errors)."""
    rng = random.Random(fmt)
    outcomes = set()
    for _ in range(40):
        data = bytearray(seed_files[fmt])
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(data))
            op = rng.random()
            if op < 0.6:
                data[i] = rng.randrange(256)
            elif op < 0.8:
                del data[i:i + rng.randint(1, 40)]
            else:
                data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        try:
            pages = ingest.load("-", stdin=io.BytesIO(bytes(data)), max_pixels=4096, dpi=36)
        except InputError as exc:
            assert exc.message.startswith("stdin: ") and "\n" not in exc.message
            outcomes.add("error")
        else:
            assert_model_ready(pages, 4096)
            outcomes.add("pages")
    assert "error" in outcomes


# ---- hashing and writing ----

def test_file_sha256(tmp_path, pdf3):
    assert ingest.file_sha256(pdf3) == hashlib.sha256(pdf3.read_bytes()).hexdigest()
    with pytest.raises(InputError) as excinfo:
        ingest.file_sha256(tmp_path / "gone.pdf")
    input_error(excinfo, str(tmp_path / "gone.pdf"))


def test_write_pages(tmp_path, pdf3):
    pages = ingest.load(pdf3, dpi=36)
    written = ingest.write_pages(pages, tmp_path / "out" / "pages")
    assert [p.name for p in written] == ["page-001.png", "page-002.png", "page-003.png"]
    for page, path in zip(pages, written):
        with Image.open(path) as im:
            assert im.mode == "RGB" and im.tobytes() == page.image.tobytes()
    many = [ingest.Page(Image.new("RGB", (32, 32)), n, "x", "0" * 64) for n in (7, 1000)]
    assert [p.name for p in ingest.write_pages(many, tmp_path / "many")] == [
        "page-0007.png", "page-1000.png"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError):
        ingest.write_pages(pages, blocker)

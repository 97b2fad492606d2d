"""Inputs at the command line: `docextract pages` writes upright, model-ready PNG pages, and every
bad input given to `run` or `pages` exits 3 with one `error:` line naming the file, an optional
`hint:` line, nothing on stdout and no traceback. Ingestion happens before any model is loaded,
so none of these needs an engine."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pymupdf
import pytest
from PIL import Image
from typer.testing import CliRunner

from docextract import ingest, pipeline
from docextract.cli import app

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 255, 255)
GOOD = '{"id_number":"234123412346","items":[1,2],"total":3}'


def invoke(*args: str, input: bytes | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def console_script() -> list[str]:
    script = shutil.which("docextract", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "from docextract.cli import main; main()"]


def assert_input_error(code: int, stdout: str, stderr: str, name: str) -> str:
    """Exit 3, nothing on stdout, `error: NAME: ...` on one line, at most a `hint:` line after."""
    assert code == 3, stderr
    assert stdout == ""
    assert "Traceback" not in stderr
    # A plain progress line ("documents: 0/1 ...") may come first when reading took over a
    # second on a loaded machine: progress is not part of the error.
    lines = [line for line in stderr.splitlines() if not line.startswith("documents: ")]
    assert 1 <= len(lines) <= 2, stderr
    assert lines[0].startswith(f"error: {name}: ") and lines[0].isprintable()
    if len(lines) == 2:
        assert lines[1].startswith("hint: ") and lines[1].isprintable()
    return stderr


@pytest.fixture
def no_engine(monkeypatch, receipt_spec):
    """`--schema receipt` resolves, and loading a model fails the test: ingestion comes first."""
    def refuse(opts, console):
        raise AssertionError("the engine was loaded for an unreadable input")
    monkeypatch.setattr(pipeline, "load_engine", refuse)


def run_error(path, *extra: str) -> str:
    res = invoke("run", str(path), "--schema", "receipt", *extra)
    return assert_input_error(res.exit_code, res.stdout, res.stderr, str(path))


def make_pdf(path: Path, pages: int = 3, size=(595, 842)) -> Path:
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=size[0], height=size[1])
        page.draw_rect(pymupdf.Rect(0, 0, size[0] / 4, size[1] / 4), color=(0, 0, 0),
                       fill=(0, 0, 0))
        page.insert_text((size[0] / 2, size[1] / 2), f"page {i + 1}", fontsize=20)
    doc.save(path)
    doc.close()
    return path


def sideways_photo(path: Path, orientation: int = 6) -> Path:
    """A portrait card (red top-left, blue top-right, green bottom-left) whose stored pixels are
    rotated, as a phone held sideways writes them, with the EXIF tag that turns it upright."""
    upright = Image.new("RGB", (1200, 1600), WHITE)
    upright.paste(RED, (0, 0, 600, 800))
    upright.paste(BLUE, (600, 0, 1200, 800))
    upright.paste(GREEN, (0, 800, 600, 1600))
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(turn).save(path, "JPEG", quality=90, exif=exif.tobytes())
    return path


def near(pixel, color, tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, color))


# ---- docextract pages ----

def test_pages_writes_a_multipage_pdf(tmp_path):
    pdf = make_pdf(tmp_path / "statement.pdf", pages=4)
    out = tmp_path / "pages"
    res = invoke("pages", str(pdf), "--out", str(out))
    assert res.exit_code == 0, res.stderr
    listing = json.loads(res.stdout)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["page-001.png", "page-002.png", "page-003.png", "page-004.png"]
    assert [e["page"] for e in listing] == [1, 2, 3, 4]
    for entry in listing:
        with Image.open(entry["path"]) as im:
            assert im.mode == "RGB" and im.size == (entry["width"], entry["height"])
            assert im.width % 32 == 0 and im.height % 32 == 0
            assert im.width * im.height <= ingest.DEFAULT_MAX_PIXELS
            assert im.height > im.width  # portrait pages stay portrait
            assert im.getpixel((20, 20)) == (0, 0, 0)  # the drawn box, top-left


def test_pages_selection_and_dpi(tmp_path):
    pdf = make_pdf(tmp_path / "statement.pdf", pages=5)
    res = invoke("pages", str(pdf), "--out", str(tmp_path / "o"), "--pages", "2,4-", "--dpi", "72")
    assert res.exit_code == 0, res.stderr
    assert [(e["page"], e["width"], e["height"]) for e in json.loads(res.stdout)] == [
        (2, 608, 832), (4, 608, 832), (5, 608, 832)]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "page-002.png", "page-004.png", "page-005.png"]


@pytest.mark.parametrize("orientation", [6, 8])
def test_pages_turns_a_sideways_phone_photo_upright(tmp_path, orientation):
    photo = sideways_photo(tmp_path / "IMG_2041.JPG", orientation)
    with Image.open(photo) as raw:
        assert raw.size == (1600, 1200)  # stored landscape
    budget = 400_000
    res = invoke("pages", str(photo), "--out", str(tmp_path / "o"), "--max-pixels", str(budget))
    assert res.exit_code == 0, res.stderr
    (entry,) = json.loads(res.stdout)
    with Image.open(tmp_path / "o" / "page-001.png") as im:
        w, h = im.size
        assert (w, h) == (entry["width"], entry["height"])
        assert h > w and w % 32 == 0 and h % 32 == 0 and w * h <= budget
        assert near(im.getpixel((w // 4, h // 4)), RED)
        assert near(im.getpixel((3 * w // 4, h // 4)), BLUE)
        assert near(im.getpixel((w // 4, 3 * h // 4)), GREEN)
        assert near(im.getpixel((3 * w // 4, 3 * h // 4)), WHITE)


def test_pages_encrypted_pdf_with_password(tmp_path):
    plain = make_pdf(tmp_path / "plain.pdf", pages=2)
    locked = tmp_path / "kyc.pdf"
    doc = pymupdf.open(plain)
    doc.save(locked, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="1234", owner_pw="owner")
    doc.close()
    res = invoke("pages", str(locked), "--out", str(tmp_path / "o"))
    err = assert_input_error(res.exit_code, res.stdout, res.stderr, str(locked))
    assert "PDF is encrypted" in err and "hint: pass its password with --password" in err
    res = invoke("pages", str(locked), "--out", str(tmp_path / "o"), "--password", "4321")
    assert "wrong password" in assert_input_error(res.exit_code, res.stdout, res.stderr,
                                                  str(locked))
    res = invoke("pages", str(locked), "--out", str(tmp_path / "o"), "--password", "1234")
    assert res.exit_code == 0, res.stderr
    assert len(json.loads(res.stdout)) == 2


def test_bad_pages_spec_is_a_usage_error(tmp_path, no_engine):
    pdf = make_pdf(tmp_path / "scan.pdf", pages=1)
    for args in (["pages", str(pdf), "--out", str(tmp_path / "o")],
                 ["run", str(pdf), "--schema", "receipt"]):
        res = invoke(*args, "--pages", "3-1")
        assert res.exit_code == 2, res.stderr
        assert res.stderr.startswith("error: --pages '3-1'") and "Traceback" not in res.stderr


def test_pages_beyond_the_document_is_a_bad_page_range_exit_2(tmp_path, no_engine):
    # README: 2 = usage error: bad flag, unknown schema, bad page range.
    pdf = make_pdf(tmp_path / "scan.pdf", pages=3)
    res = invoke("run", str(pdf), "--schema", "receipt", "--pages", "2-7")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith(f"error: {pdf}: --pages 2-7 asks for page 7")
    assert "has 3 pages" in res.stderr and "Traceback" not in res.stderr


# ---- bad inputs given to `run` (each exits 3 before any model is loaded) ----

def test_missing_file(tmp_path, no_engine):
    assert "no such file" in run_error(tmp_path / "scan.pdf")


def test_directory_given_to_run(tmp_path, no_engine):
    err = run_error(tmp_path)
    assert "is a directory" in err and "hint: " in err and "docextract batch" in err


def test_zero_byte_file(tmp_path, no_engine):
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"")
    assert "file is empty (0 bytes)" in run_error(path)


def test_truncated_pdf(tmp_path, no_engine):
    data = make_pdf(tmp_path / "full.pdf").read_bytes()
    path = tmp_path / "scan.pdf"
    path.write_bytes(data[: len(data) * 2 // 3])
    assert "PDF is truncated" in run_error(path)


def test_random_bytes_pdf(tmp_path, no_engine):
    rng = random.Random(11)
    path = tmp_path / "scan.pdf"
    path.write_bytes(bytes(rng.randrange(1, 256) for _ in range(5000)))
    assert "not a PDF or image" in run_error(path)
    path.write_bytes(b"%PDF-1.4\n" + bytes(rng.randrange(256) for _ in range(5000)) + b"%%EOF\n")
    assert "PDF is damaged" in run_error(path)


def test_text_file_named_jpg(tmp_path, no_engine):
    path = tmp_path / "photo.jpg"
    path.write_text("Aadhaar scan to follow\n")
    assert "not a PDF or image (starts with text)" in run_error(path)


def test_encrypted_pdf(tmp_path, no_engine):
    path = tmp_path / "statement.pdf"
    doc = pymupdf.open(make_pdf(tmp_path / "plain.pdf", pages=1))
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="owner")
    doc.close()
    assert "hint: pass its password with --password" in run_error(path)
    assert "wrong password" in run_error(path, "--password", "nope")


def test_decompression_bomb(tmp_path, no_engine):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b""))
    t0 = time.monotonic()
    err = run_error(path)
    assert "image is 40000x40000 pixels" in err and "refusing to decode" in err
    assert time.monotonic() - t0 < 5


def test_absurd_pdf_page(tmp_path, no_engine):
    path = make_pdf(tmp_path / "poster.pdf", pages=1, size=(14400, 14400))
    err = run_error(path)
    assert "40000x40000 pixels at 200 dpi" in err and "hint: lower --dpi" in err


def test_2000_page_pdf(tmp_path, no_engine):
    doc = pymupdf.open()
    for i in range(2000):
        doc.new_page(width=420 if i == 1998 else 298, height=298 if i == 1998 else 420)
    path = tmp_path / "ledger.pdf"
    doc.save(path)
    doc.close()
    err = run_error(path)
    assert "2,000 pages selected, above the limit of 500" in err and "hint: " in err
    assert "--pages" in err
    t0 = time.monotonic()
    res = invoke("pages", str(path), "--out", str(tmp_path / "o"), "--pages", "1999")
    assert res.exit_code == 0, res.stderr
    assert time.monotonic() - t0 < 10
    (entry,) = json.loads(res.stdout)
    assert entry["page"] == 1999 and entry["width"] > entry["height"]
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["page-1999.png"]


def test_unreadable_permissions(tmp_path, no_engine, monkeypatch):
    path = make_pdf(tmp_path / "scan.pdf", pages=1)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            # Running as root, chmod does not stop reads: fail open() the way it fails for others.
            def denied(file, *args, **kwargs):
                raise PermissionError(13, "Permission denied", os.fsdecode(file))
            monkeypatch.setattr(ingest, "open", denied, raising=False)
        assert "permission denied" in run_error(path)
    finally:
        path.chmod(0o644)


def test_bad_input_among_several_becomes_an_error_record(tmp_path, receipt_spec, monkeypatch,
                                                          fake_engine):
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: fake_engine(GOOD))
    good = tmp_path / "good.png"
    Image.new("RGB", (200, 100), WHITE).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    res = invoke("run", str(good), str(bad), "--schema", "receipt")
    assert res.exit_code == 3
    first, second = (json.loads(line) for line in res.stdout.splitlines())
    assert first["valid"] is True and first["pages"] == 1
    assert second["data"] is None and second["errors"][0]["type"] == "input"
    assert second["errors"][0]["msg"].startswith(f"{bad}: not a PDF or image")
    assert res.stderr.startswith(f"error: {bad}: not a PDF or image")


# ---- through the real console script ----

def test_non_utf8_file_name(tmp_path):
    name = os.fsencode(tmp_path) + b"/scan-\xff\xfe.pdf"
    with open(name, "wb") as f:
        f.write(b"%PDF-1.7\nthis is not really a PDF\n")
    proc = subprocess.run(console_script() + [b"run", name, b"--schema", b"invoice"],
                          capture_output=True, timeout=60)
    stderr = proc.stderr.decode("utf-8")
    assert_input_error(proc.returncode, proc.stdout.decode(), stderr,
                       f"{tmp_path}/scan-\\xff\\xfe.pdf")
    assert "PDF is truncated" in stderr


def test_stdin_is_sniffed_from_the_bytes(tmp_path):
    proc = subprocess.run(console_script() + ["run", "-", "--schema", "invoice"],
                          input=b"invoice.pdf\nthis is text, not a PDF\n", capture_output=True,
                          timeout=60)
    stderr = proc.stderr.decode()
    assert_input_error(proc.returncode, proc.stdout.decode(), stderr, "stdin")
    assert "starts with text" in stderr
    photo = io.BytesIO()
    Image.new("RGB", (300, 200), BLUE).save(photo, "WEBP")
    proc = subprocess.run(console_script() + ["pages", "-", "--out", str(tmp_path / "o")],
                          input=photo.getvalue(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    (entry,) = json.loads(proc.stdout)
    assert (entry["width"], entry["height"]) == (288, 192)


@pytest.mark.parametrize("tag, value, reason", [
    (277, 30000, "Invalid value for samples per pixel"),  # Pillow logs an error of its own
    (258, 10**6, "unknown data organization"),  # Pillow warns "Truncated File Read"
], ids=["logged", "warned"])
def test_corrupt_tiff_leaves_only_the_error_on_stderr(tmp_path, tag, value, reason):
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), RED).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", data, entry)[0] == tag:
            struct.pack_into("<H" if value < 65536 else "<I", data, entry + 8, value)
    path = tmp_path / "fax.tif"
    path.write_bytes(bytes(data))
    proc = subprocess.run(console_script() + ["pages", str(path), "--out", str(tmp_path / "o")],
                          capture_output=True, timeout=60)
    stderr = proc.stderr.decode()
    assert_input_error(proc.returncode, proc.stdout.decode(), stderr, str(path))
    assert stderr == f"error: {path}: TIFF image is corrupt ({reason})\n"

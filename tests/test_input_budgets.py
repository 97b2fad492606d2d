"""Budgets checked before work: a document's pages against the model's context before they are
rendered or become tensors, and an image's decoded bytes (not its pixels) before it is decoded."""

from __future__ import annotations

import json

import pymupdf
import pytest
from PIL import Image
from typer.testing import CliRunner

from docextract import ingest, pipeline
from docextract.cli import app
from docextract.errors import InputError


@pytest.fixture
def renders(monkeypatch):
    calls = []
    real = pymupdf.Page.get_pixmap

    def counting(self, *args, **kwargs):
        calls.append(self.number)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pymupdf.Page, "get_pixmap", counting)
    return calls


def long_pdf(path, pages=150):
    doc = pymupdf.open()
    for _ in range(pages):
        doc.new_page(width=595, height=842)
    doc.save(path)
    doc.close()
    return str(path)


def test_pages_beyond_the_context_are_refused_before_any_is_rendered(tmp_path, renders):
    path = long_pdf(tmp_path / "long.pdf")
    # A4 at 200 dpi within the default budget: 1344x1920 pixels, 42x60 = 2,520 tokens a page.
    with pytest.raises(InputError, match=r"at least 378,000 image tokens .* context of 262,144 "
                                         r"tokens; nothing was rendered") as info:
        ingest.load(path, max_image_tokens=262_144)
    assert renders == [] and "--pages" in info.value.hint
    assert len(ingest.load(path, pages="1-2", max_image_tokens=5040)) == 2


def test_a_tiff_is_refused_page_by_page_before_decoding(tmp_path):
    frames = [Image.new("RGB", (640, 640), "white") for _ in range(5)]
    path = tmp_path / "scan.tiff"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    # 20x20 = 400 tokens a page: the third page crosses 1,000.
    with pytest.raises(InputError, match="at least 1,200 image tokens"):
        ingest.load(str(path), max_image_tokens=1000)
    assert len(ingest.load(str(path), pages="1-2", max_image_tokens=1000)) == 2


def test_run_reads_the_context_from_a_local_model_before_rendering(tmp_path, monkeypatch,
                                                                  renders):
    from docextract.engine import randomckpt

    model = tmp_path / "model"
    model.mkdir()
    config = randomckpt.config_dict("dense")
    config["text_config"]["max_position_embeddings"] = 32_768
    (model / "config.json").write_text(json.dumps(config))

    def no_engine(opts, console):
        raise AssertionError("the model was loaded for a document that cannot fit")

    monkeypatch.setattr(pipeline, "load_engine", no_engine)
    res = CliRunner().invoke(app, ["run", long_pdf(tmp_path / "long.pdf"), "--schema", "pan",
                                   "--model", str(model)])
    assert res.exit_code == 3, res.output
    assert "above the model's context of 32,768 tokens; nothing was rendered" in res.stderr
    assert renders == []


def test_the_engine_measures_the_prompt_before_making_pixel_tensors(monkeypatch):
    from docextract.engine import randomckpt
    from docextract.engine.api import Request

    engine = randomckpt.random_engine("dense", dtype=randomckpt.torch.float32)
    monkeypatch.setattr(engine.config.text_config, "max_position_embeddings", 2048)

    def no_tensors(images):
        raise AssertionError("pixel tensors were made for a prompt that cannot fit")

    monkeypatch.setattr(engine, "processor", engine.processor)
    monkeypatch.setattr(type(engine.processor), "__call__", lambda self, images: no_tensors(images))
    pages = [Image.new("RGB", (1024, 1024), "white")] * 3  # 3 x 1,024 image tokens
    with pytest.raises(InputError, match="3,072 of them for page images"):
        engine.prompt(Request(prompt="x", images=pages, max_new_tokens=100))


@pytest.mark.parametrize("mode,make", [
    ("RGBA", lambda: Image.new("RGBA", (1024, 1024), (255, 0, 0, 128))),
    ("I;16", lambda: Image.new("I;16", (1024, 1024), 40000)),
    ("LA", lambda: Image.new("LA", (1024, 1024), (10, 20))),
])
def test_decoded_bytes_not_pixels_are_limited(tmp_path, monkeypatch, mode, make):
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (1024, 1024), "white").save(rgb)
    wide = tmp_path / "wide.png"
    make().save(wide)
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load",
                        lambda self: decoded.append(self.mode) or real_load(self))
    # An RGB image of a million pixels takes 4 MiB decoded: it fits a 6 MiB budget; the same
    # pixels in RGBA, 16-bit or gray+alpha need several times more once flattened to RGB.
    monkeypatch.setattr(ingest, "MAX_DECODE_BYTES", 6 << 20)
    assert ingest.load(str(rgb))[0].image.mode == "RGB"
    decoded.clear()
    with pytest.raises(InputError, match=rf"1024x1024 pixels in mode {mode}: decoding and "
                                         r"flattening it to RGB takes about .* refusing") as info:
        ingest.load(str(wide))
    assert decoded == [] and "8-bit RGB" in info.value.hint
    monkeypatch.setattr(ingest, "MAX_DECODE_BYTES", 1 << 30)
    assert ingest.load(str(wide))[0].image.mode == "RGB"


def test_sixteen_bit_gray_keeps_its_top_byte():
    values = ingest.np.array([[0, 255, 256, 40000, 65535]], dtype=ingest.np.uint16)
    assert ingest._to_uint8(values).tolist() == [[0, 0, 1, 156, 255]]

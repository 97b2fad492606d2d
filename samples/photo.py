"""Phone-photo simulation with Pillow and numpy only.

A rendered page is laid on a desk, warped in perspective, lit unevenly, blurred, given sensor
noise and saved as JPEG whose raw pixels are sideways (or upside down): only the EXIF Orientation
tag makes them upright, as with a phone that was held rotated (domain.md section 3, item 5).
Orientations 6 and 8 (sideways) are drawn; 3 (upside down) is available by argument.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageFilter

# EXIF Orientation value -> the transpose that turns the upright picture into the stored pixels
# (the inverse of what `ImageOps.exif_transpose` applies).
_STORE = {
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
    3: Image.Transpose.ROTATE_180,
}
ORIENTATION_TAG = 0x0112


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> list[float]:
    """Coefficients for `Image.transform(PERSPECTIVE)` mapping output points dst[i] to src[i].

    dst, src: [4, 2] (x, y) pixel coordinates.
    """
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -x * u, -y * u])
        rows.append([0, 0, 0, x, y, 1, -x * v, -y * v])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist()


def _smooth_field(nprng: np.random.Generator, size: tuple[int, int], cells: int, lo: float,
                  hi: float) -> np.ndarray:
    """A smooth random field in [lo, hi] of shape [H, W] (bicubic upscale of a coarse grid)."""
    w, h = size
    coarse = nprng.uniform(0, 255, (cells, max(2, cells * h // w))).astype(np.uint8)
    img = Image.fromarray(coarse.T).resize((w, h), Image.Resampling.BICUBIC)
    return lo + (hi - lo) * np.asarray(img, np.float32) / 255.0


def _desk(nprng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Background [H, W, 3] float32: a tinted surface with blotches and fine grain."""
    base = np.array(
        [(118, 84, 58), (72, 74, 80), (150, 140, 124), (40, 58, 92), (182, 178, 170)]
        [nprng.integers(0, 5)], np.float32)
    blotch = _smooth_field(nprng, size, 9, 0.8, 1.15)
    grain = nprng.normal(1.0, 0.03, (size[1], size[0])).astype(np.float32)
    return base[None, None, :] * (blotch * grain)[:, :, None]


def _lighting(nprng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Multiplicative light [H, W]: a directional gradient, a vignette and a soft shadow."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs, ys = xs / w - 0.5, ys / h - 0.5
    angle = nprng.uniform(0, 2 * np.pi)
    strength = nprng.uniform(0.12, 0.3)
    light = 1.0 + strength * (np.cos(angle) * xs + np.sin(angle) * ys)
    light *= 1.0 - 0.35 * (xs**2 + ys**2)
    cx, cy = nprng.uniform(-0.5, 0.5, 2)
    shadow = np.exp(-(((xs - cx) / 0.25) ** 2 + ((ys - cy) / 0.18) ** 2))
    light *= 1.0 - nprng.uniform(0.1, 0.25) * shadow
    return light.astype(np.float32)


def phone_photo(page: Image.Image, rng: random.Random, long_side: int = 1600,
                fill: float = 0.82, orientation: int | None = None) -> bytes:
    """JPEG bytes of a simulated phone photo of `page` (an upright RGB rendering).

    The frame has the page's orientation (portrait page, portrait photo); `fill` is the share of
    the frame's shorter side the document spans. `orientation` (3, 6 or 8) is drawn from `rng`
    (6 or 8) when None.
    """
    nprng = np.random.default_rng(rng.getrandbits(64))
    portrait = page.height >= page.width
    short = long_side * 3 // 4
    size = (short, long_side) if portrait else (long_side, short)
    fw, fh = size

    scale = min(fw * fill / page.width, fh * fill / page.height)
    w, h = page.width * scale, page.height * scale
    cx = fw / 2 + rng.uniform(-0.04, 0.04) * fw
    cy = fh / 2 + rng.uniform(-0.04, 0.04) * fh
    theta = np.deg2rad(rng.uniform(-4.0, 4.0))
    # [4, 2] corners: top-left, top-right, bottom-right, bottom-left, centred on the origin.
    quad = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    keystone = rng.uniform(-0.07, 0.07)
    quad[:2, 0] *= 1 - max(keystone, 0)
    quad[2:, 0] *= 1 + min(keystone, 0)
    quad += np.array([[rng.uniform(-0.012, 0.012) * fw, rng.uniform(-0.012, 0.012) * fh]
                      for _ in range(4)])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    dst = quad @ rot.T + np.array([cx, cy])
    src = np.array([[0, 0], [page.width, 0], [page.width, page.height], [0, page.height]], float)
    coeffs = _perspective_coeffs(dst, src)

    warped = page.convert("RGB").transform(size, Image.Transform.PERSPECTIVE, coeffs,
                                           Image.Resampling.BICUBIC)
    mask = Image.new("L", page.size, 255).transform(size, Image.Transform.PERSPECTIVE, coeffs,
                                                    Image.Resampling.BILINEAR)
    alpha = np.asarray(mask, np.float32)[:, :, None] / 255.0
    shadow_img = mask.filter(ImageFilter.GaussianBlur(fw * 0.012))
    shadow = np.asarray(shadow_img, np.float32)[:, :, None] / 255.0
    shift = max(2, fw // 150)
    shadow = np.roll(shadow, (shift, shift), axis=(0, 1))

    desk = _desk(nprng, size) * (1.0 - 0.45 * shadow)
    paper = np.asarray(warped, np.float32) * np.array([1.0, 0.985, 0.95], np.float32)
    img = desk * (1.0 - alpha) + paper * alpha
    img *= _lighting(nprng, size)[:, :, None]

    blurred = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.6, 1.3)))
    noisy = np.asarray(blurred, np.float32) + nprng.normal(0, rng.uniform(2.0, 4.5), (fh, fw, 1))
    upright = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))

    if orientation is None:
        orientation = rng.choice((6, 6, 8))
    stored = upright.transpose(_STORE[orientation])
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    exif[0x010F] = "docextract"
    exif[0x0110] = "synthetic phone"
    exif[0x0131] = "docextract.samples"
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=rng.randint(72, 86), exif=exif.tobytes(), optimize=True)
    return out.getvalue()


def render_page(page, dpi: int) -> Image.Image:
    """RGB rendering of a pymupdf page (upright, no alpha)."""
    pix = page.get_pixmap(dpi=dpi, alpha=False)
    return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)

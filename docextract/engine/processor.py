"""Image preprocessing of the reference (transformers' Qwen2-VL image processor, PIL path) and the
3-stream M-RoPE positions of a prompt mixing text and images.

An image becomes `pixel_values` rows of patch_dim = C * temporal_patch * patch^2 values (channel,
time, y, x), ordered merge-window by merge-window, and its `grid_thw` in patch units.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import InputError, ModelError
from .config import VisionConfig

# preprocessor_config.json of every Qwen3.5 release (shortest_edge / longest_edge in pixels).
DEFAULT_MIN_PIXELS = 65536
DEFAULT_MAX_PIXELS = 16777216
MAX_ASPECT_RATIO = 200


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Nearest size with both sides multiples of `factor` and an area within [min, max] pixels."""
    if min(height, width) <= 0:
        raise InputError(f"image of {width}x{height} pixels is empty")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise InputError(
            f"image of {width}x{height} pixels has an aspect ratio above {MAX_ASPECT_RATIO}",
            hint="crop the image or split the page",
        )
    h = round(height / factor) * factor
    w = round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white (as the reference does)."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


@dataclass
class ImageProcessor:
    patch_size: int = 16
    temporal_patch_size: int = 2
    merge_size: int = 2
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255

    @classmethod
    def from_dir(cls, model_dir: str | Path, vision: VisionConfig, max_pixels: int | None = None) -> ImageProcessor:
        """From the checkpoint's preprocessor_config.json when present, else the Qwen3.5 defaults
        with the patch geometry of `vision`; `max_pixels` caps the pixel budget per image."""
        values: dict[str, Any] = {
            "patch_size": vision.patch_size,
            "temporal_patch_size": vision.temporal_patch_size,
            "merge_size": vision.spatial_merge_size,
        }
        path = Path(model_dir) / "preprocessor_config.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise ModelError(f"cannot read {path}: {_first_line(exc)}") from exc
            size = data.get("size") or {}
            for key, src in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
                if data.get(key) is not None:
                    values[key] = int(data[key])
                elif size.get(src) is not None:
                    values[key] = int(size[src])
            for key in ("patch_size", "temporal_patch_size", "merge_size", "rescale_factor"):
                if data.get(key) is not None:
                    values[key] = data[key]
            for key in ("image_mean", "image_std"):
                if data.get(key) is not None:
                    values[key] = tuple(float(x) for x in data[key])
        if max_pixels is not None:
            values["max_pixels"] = min(max_pixels, values.get("max_pixels", DEFAULT_MAX_PIXELS))
        proc = cls(**values)
        if (proc.patch_size, proc.temporal_patch_size, proc.merge_size) != (
            vision.patch_size, vision.temporal_patch_size, vision.spatial_merge_size
        ):
            raise ModelError(f"{path}: patch geometry does not match the vision config")
        return proc

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def grid(self, image: Image.Image) -> list[int]:
        """[1, gh, gw]: the patch grid `image` will have, from its size alone (no pixel read)."""
        h, w = smart_resize(image.height, image.width, self.factor, self.min_pixels,
                            self.max_pixels)
        return [1, h // self.patch_size, w // self.patch_size]

    def __call__(self, images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """images -> (pixel_values [N, patch_dim] fp32, image_grid_thw [n, 3] long)."""
        rows, grids = [], []
        for image in images:
            patches, grid = self.patchify(self.normalize(image))
            rows.append(patches)
            grids.append(grid)
        return torch.from_numpy(np.concatenate(rows)), torch.tensor(grids, dtype=torch.long)

    def normalize(self, image: Image.Image) -> np.ndarray:
        """Resize (bicubic) and normalise: -> [C, H', W'] fp32."""
        image = to_rgb(image)
        h, w = smart_resize(image.height, image.width, self.factor, self.min_pixels, self.max_pixels)
        if (h, w) != (image.height, image.width):
            image = image.resize((w, h), resample=Image.Resampling.BICUBIC)
        # Same casts as the reference: rescale in float64, then float32 arithmetic.
        x = (np.asarray(image).astype(np.float64) * self.rescale_factor).astype(np.float32)
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        return ((x - mean) / std).transpose(2, 0, 1)

    def patchify(self, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """[C, H, W] -> ([gh*gw, C*tp*p*p] in merge-window order, [1, gh, gw]); a still image is
        one frame repeated over the temporal patch."""
        c, h, w = x.shape
        p, m, tp = self.patch_size, self.merge_size, self.temporal_patch_size
        gh, gw = h // p, w // p
        x = x.reshape(c, gh // m, m, p, gw // m, m, p)
        # -> [gh/m, gw/m, m, m, C, p, p]
        x = x.transpose(1, 4, 2, 5, 0, 3, 6)
        x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], tp, p, p))
        return np.ascontiguousarray(x).reshape(gh * gw, c * tp * p * p), [1, gh, gw]


def image_token_count(grid_thw: torch.Tensor | list[int], merge_size: int) -> int:
    """Language-model tokens of one image: t * h * w / merge^2."""
    t, h, w = (int(v) for v in grid_thw)
    return t * h * w // (merge_size * merge_size)


def mrope_positions(
    input_ids: torch.Tensor, image_grid_thw: torch.Tensor | None, image_token_id: int, merge_size: int
) -> tuple[torch.Tensor, int]:
    """M-RoPE positions of one prompt. input_ids [T], image_grid_thw [n, 3] -> ([3, T] long, delta).

    Text advances all three streams by one per token. A run of image tokens with merged grid
    (t, h, w) gets T = start + ti, H = start + hi, W = start + wi and moves on by max(h, w).
    Decoding continues at position = tokens so far + delta on all streams.
    """
    ids = input_ids.tolist()
    grids = [] if image_grid_thw is None else image_grid_thw.tolist()
    parts: list[torch.Tensor] = []
    cur, i, n_img = 0, 0, 0
    while i < len(ids):
        j = i
        is_image = ids[i] == image_token_id
        while j < len(ids) and (ids[j] == image_token_id) == is_image:
            j += 1
        if not is_image:
            parts.append(torch.arange(cur, cur + j - i).expand(3, -1))
            cur += j - i
        else:
            if n_img >= len(grids):
                raise ModelError(f"engine: image placeholder run {n_img + 1} has no image_grid_thw entry")
            t, h, w = grids[n_img][0], grids[n_img][1] // merge_size, grids[n_img][2] // merge_size
            if t * h * w != j - i:
                raise ModelError(
                    f"engine: image {n_img + 1} has {j - i} <|image_pad|> tokens but its grid needs {t * h * w}"
                )
            tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
            parts.append(torch.stack([tt, hh, ww]).reshape(3, -1) + cur)
            cur += max(h, w)
            n_img += 1
        i = j
    if n_img != len(grids):
        raise ModelError(f"engine: {len(grids)} images given for {n_img} image placeholder runs")
    if not parts:
        return torch.zeros(3, 0, dtype=torch.long), 0
    positions = torch.cat(parts, dim=1)
    return positions, int(positions.max()) + 1 - len(ids)

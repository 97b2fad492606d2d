"""Image preprocessing and M-RoPE positions against transformers (Qwen2VLImageProcessorPil and
Qwen3_5MoeModel.get_rope_index)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen3_5MoeConfig, Qwen3_5MoeModel
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil, smart_resize as hf_smart_resize

from docextract.engine.config import VisionConfig
from docextract.engine.processor import ImageProcessor, image_token_count, mrope_positions, smart_resize
from docextract.errors import InputError, ModelError

MIN_PIXELS, MAX_PIXELS = 32 * 32 * 4, 32 * 32 * 48
IMAGE_ID = 505


def _image(h: int, w: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    bands = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    data = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    return Image.fromarray(data[..., 0] if bands == 1 else data, mode)


def _reference(images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
    proc = Qwen2VLImageProcessorPil(
        min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=16, temporal_patch_size=2, merge_size=2,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    out = proc(images, return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"]


@pytest.mark.parametrize(
    "h,w", [(1, 1), (31, 33), (100, 100), (70, 130), (1080, 1920), (4000, 20), (20, 3999), (777, 555)]
)
def test_smart_resize_matches_reference(h, w):
    assert smart_resize(h, w, 32, MIN_PIXELS, MAX_PIXELS) == hf_smart_resize(h, w, 32, MIN_PIXELS, MAX_PIXELS)
    assert smart_resize(h, w, 32, 65536, 16777216) == hf_smart_resize(h, w, 32, 65536, 16777216)


def test_extreme_aspect_ratio_is_an_input_error():
    with pytest.raises(InputError, match="aspect ratio"):
        smart_resize(10, 2500, 32, MIN_PIXELS, MAX_PIXELS)


@pytest.mark.parametrize(
    "shapes",
    [
        pytest.param([(70, 130, "RGB")], id="one-rgb"),
        pytest.param([(20, 20, "RGB")], id="tiny-upscaled"),
        pytest.param([(900, 700, "RGB")], id="large-capped"),
        pytest.param([(64, 300, "RGBA"), (250, 90, "L"), (96, 96, "RGB")], id="mixed-modes"),
    ],
)
def test_pixel_values_match_reference(shapes):
    images = [_image(h, w, mode, seed=i) for i, (h, w, mode) in enumerate(shapes)]
    if images[0].mode == "RGBA":
        images[0].putpixel((0, 0), (10, 20, 30, 0))
    ref_pixels, ref_grid = _reference(images)
    pixels, grid = ImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)(images)
    assert grid.tolist() == ref_grid.tolist()
    assert pixels.shape == ref_pixels.shape and pixels.dtype == torch.float32
    # Same PIL resize and the same float casts: equal to the last bit.
    assert torch.equal(pixels, ref_pixels)


def test_from_dir_reads_preprocessor_config(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 4096, "longest_edge": 200704}, "image_mean": [0.5, 0.5, 0.5],
                    "image_std": [0.25, 0.5, 0.5], "patch_size": 16, "merge_size": 2, "temporal_patch_size": 2})
    )
    vision = VisionConfig()
    proc = ImageProcessor.from_dir(tmp_path, vision)
    assert (proc.min_pixels, proc.max_pixels, proc.image_std) == (4096, 200704, (0.25, 0.5, 0.5))
    assert ImageProcessor.from_dir(tmp_path, vision, max_pixels=32 * 32 * 10).max_pixels == 32 * 32 * 10
    default = ImageProcessor.from_dir(tmp_path / "missing", vision)
    assert (default.min_pixels, default.max_pixels) == (65536, 16777216)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"patch_size": 14}))
    with pytest.raises(ModelError, match="patch geometry"):
        ImageProcessor.from_dir(tmp_path, vision)


@pytest.fixture(scope="module")
def rope_reference():
    config = Qwen3_5MoeConfig(
        text_config=dict(vocab_size=512, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=16, num_experts=2, num_experts_per_tok=1,
                         moe_intermediate_size=8, shared_expert_intermediate_size=8,
                         linear_num_key_heads=1, linear_num_value_heads=1, linear_key_head_dim=8,
                         linear_value_head_dim=8),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=1, out_hidden_size=32,
                           num_position_embeddings=16),
        image_token_id=IMAGE_ID, video_token_id=506, vision_start_token_id=503, vision_end_token_id=504,
    )
    return Qwen3_5MoeModel(config).eval()


def _prompt(parts: list) -> list[int]:
    ids = []
    for part in parts:
        if isinstance(part, tuple):
            ids += [503] + [IMAGE_ID] * image_token_count(part, 2) + [504]
        else:
            ids += list(range(10, 10 + part))
    return ids


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param([7], id="text-only"),
        pytest.param([3, (1, 4, 8)], id="image-last"),
        pytest.param([2, (1, 4, 8), 5, (1, 12, 6), 9], id="two-images-text-after"),
        pytest.param([(1, 2, 2), (1, 6, 2), 1], id="images-first"),
    ],
)
def test_mrope_positions_match_get_rope_index(rope_reference, parts):
    ids = torch.tensor([_prompt(parts)])
    grids = [p for p in parts if isinstance(p, tuple)]
    grid = torch.tensor(grids) if grids else None
    ref_pos, ref_delta = rope_reference.get_rope_index(ids, (ids == IMAGE_ID).int(), image_grid_thw=grid)
    pos, delta = mrope_positions(ids[0], grid, IMAGE_ID, 2)
    assert torch.equal(pos, ref_pos[:, 0])
    assert delta == int(ref_delta[0, 0])


def test_mrope_positions_reject_mismatched_images():
    ids = torch.tensor(_prompt([2, (1, 4, 4), 3]))
    with pytest.raises(ModelError, match="needs 8"):
        mrope_positions(ids, torch.tensor([[1, 4, 8]]), IMAGE_ID, 2)
    with pytest.raises(ModelError, match="2 images given for 1"):
        mrope_positions(ids, torch.tensor([[1, 4, 4], [1, 4, 4]]), IMAGE_ID, 2)
    with pytest.raises(ModelError, match="no image_grid_thw"):
        mrope_positions(ids, None, IMAGE_ID, 2)

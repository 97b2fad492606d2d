"""The vision tower against transformers' Qwen3_5MoeVisionModel with the same random weights."""

from __future__ import annotations

import pytest
import torch
from transformers.models.qwen3_5_moe.configuration_qwen3_5_moe import Qwen3_5MoeVisionConfig
from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import Qwen3_5MoeVisionModel

from docextract.engine.config import VisionConfig
from docextract.engine.vision import VisionModel, patch_coords

# Relative max error bound, float32.
BOUND = 1e-5
VISION = dict(depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=24,
              num_position_embeddings=36)


@pytest.fixture(scope="module")
def towers():
    torch.manual_seed(0)
    ref = Qwen3_5MoeVisionModel(Qwen3_5MoeVisionConfig(**VISION)).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            # LayerNorms start at (1, 0): move them so a wrong norm cannot hide.
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.2)
    ours = VisionModel(VisionConfig(**VISION), torch.float32)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


@pytest.mark.parametrize(
    "grids",
    [
        pytest.param([[1, 4, 4]], id="one-small"),
        pytest.param([[1, 16, 8]], id="one-larger-than-pos-grid"),
        pytest.param([[1, 2, 12], [1, 10, 4], [1, 6, 6]], id="three-aspect-ratios"),
        pytest.param([[2, 4, 6]], id="two-frames"),
    ],
)
def test_vision_matches_transformers(towers, grids):
    ref, ours = towers
    grid = torch.tensor(grids)
    n = int(grid.prod(-1).sum())
    pixels = torch.randn(n, 3 * 2 * 16 * 16, generator=torch.Generator().manual_seed(n))
    with torch.no_grad():
        expected = ref(pixels, grid_thw=grid).pooler_output
        got = ours(pixels, grid)
    assert got.shape == expected.shape == (n // 4, VISION["out_hidden_size"])
    err = ((got - expected).abs().max() / expected.abs().max()).item()
    assert err <= BOUND, f"relative max error {err:.2e} > {BOUND:.0e}"


def test_images_do_not_attend_to_each_other(towers):
    _, ours = towers
    grid = torch.tensor([[1, 4, 4], [1, 4, 6]])
    pixels = torch.randn(16 + 24, 1536)
    with torch.no_grad():
        both = ours(pixels, grid)
        first = ours(pixels[:16], grid[:1])
    torch.testing.assert_close(both[:4], first, rtol=1e-5, atol=1e-6)


def test_patch_coords_follow_merge_windows():
    coords = patch_coords(torch.tensor([[1, 2, 4]]), 2).tolist()
    assert coords == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2], [0, 3], [1, 2], [1, 3]]

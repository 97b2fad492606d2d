import pytest
import torch

from docextract.kernels import gated_rms_norm, rms_norm
from docextract.kernels.norm import naive

# fp32: only summation order differs; fp16: one rounding of the output (2^-11 relative)
RATIO = {torch.float32: 1e-6, torch.float16: 1e-3}
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float16, id="fp16")]
ROWS = [pytest.param(n, id=f"rows{n}") for n in (1, 3, 17, 64, 65, 130)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("width", [pytest.param(64, id="D64"), pytest.param(96, id="D96")])
def test_rms_norm_matches_naive(rows, width, dtype, device, assert_close):
    g = torch.Generator().manual_seed(rows * 1000 + width)
    x = (torch.randn(rows, width, generator=g) * 3).to(device, dtype)
    w = (torch.randn(width, generator=g) * 0.1).to(device, dtype)
    ref = naive.rms_norm(x, w)
    out = rms_norm(x, w, impl="triton")
    assert out.dtype == dtype
    assert_close("rms_norm", ref, out, RATIO[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [pytest.param(n, id=f"rows{n}") for n in (1, 17, 130)])
def test_rms_norm_with_residual_matches_naive(rows, dtype, device, assert_close):
    g = torch.Generator().manual_seed(rows)
    x, res = (torch.randn(2, 4, rows, 80, generator=g) * 2).to(device, dtype)
    w = (torch.randn(80, generator=g) * 0.1).to(device, dtype)
    ref_y, ref_h = naive.rms_norm(x, w, 1e-6, res)
    y, h = rms_norm(x, w, residual=res, impl="triton")
    assert torch.equal(h, ref_h)
    assert_close("rms_norm+residual", ref_y, y, RATIO[dtype])


def test_rms_norm_naive_is_zero_centred_formula():
    x = torch.tensor([[3.0, -4.0]])
    w = torch.tensor([0.0, 1.0])
    # rms = sqrt((9 + 16) / 2); weights act as (1 + w)
    rms = (12.5 + 1e-6) ** 0.5
    assert torch.allclose(naive.rms_norm(x, w), torch.tensor([[3.0 / rms, -8.0 / rms]]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize(
    "weight_dtype", [pytest.param(torch.float32, id="w32"), pytest.param(None, id="wact")]
)
def test_gated_rms_norm_matches_naive(rows, dtype, weight_dtype, device, assert_close):
    g = torch.Generator().manual_seed(rows + 7)
    x = torch.randn(rows, 2, 64, generator=g).to(device, dtype)
    z = (torch.randn(rows, 2, 64, generator=g) * 2).to(device, dtype)
    w = (1 + 0.1 * torch.randn(64, generator=g)).to(device, weight_dtype or dtype)
    ref = naive.gated_rms_norm(x, z, w)
    out = gated_rms_norm(x, z, w, impl="triton")
    assert out.dtype == dtype
    assert_close("gated_rms_norm", ref, out, RATIO[dtype])


def test_gated_rms_norm_matches_transformers_module():
    from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import Qwen3_5MoeRMSNormGated

    g = torch.Generator().manual_seed(0)
    module = Qwen3_5MoeRMSNormGated(64, eps=1e-6)
    with torch.no_grad():
        module.weight.copy_(1 + 0.1 * torch.randn(64, generator=g))
    x = torch.randn(5, 64, generator=g).to(torch.bfloat16)
    z = torch.randn(5, 64, generator=g).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(naive.gated_rms_norm(x, z, module.weight), module(x, z))


def test_rms_norm_matches_transformers_module():
    from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import Qwen3_5MoeRMSNorm

    g = torch.Generator().manual_seed(1)
    module = Qwen3_5MoeRMSNorm(48, eps=1e-6)
    with torch.no_grad():
        module.weight.copy_(0.1 * torch.randn(48, generator=g))
    x = torch.randn(7, 48, generator=g).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(naive.rms_norm(x, module.weight), module(x))


@pytest.mark.parametrize(
    "args, match",
    [
        pytest.param((torch.zeros(2, 8), torch.zeros(7)), "weight must have shape", id="weight"),
        pytest.param((torch.zeros(2, 8, dtype=torch.int32), torch.zeros(8)), "int32", id="dtype"),
    ],
)
def test_rms_norm_rejects_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        rms_norm(*args)


def test_gated_rms_norm_rejects_mismatched_gate():
    with pytest.raises(ValueError, match="partner"):
        gated_rms_norm(torch.zeros(2, 8), torch.zeros(2, 4), torch.ones(8))

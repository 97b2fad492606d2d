import pytest
import torch

import docextract.kernels as K
from docextract.kernels import _dispatch
from docextract.kernels.norm import naive as norm_naive


def test_auto_uses_naive_on_cpu_and_impl_overrides_env(monkeypatch):
    x = torch.zeros(2)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.delenv("DOCEXTRACT_KERNELS", raising=False)
    assert _dispatch.use_triton(None, x) is False
    monkeypatch.setenv("DOCEXTRACT_KERNELS", "triton")
    assert _dispatch.use_triton(None, x) is True
    assert _dispatch.use_triton("naive", x) is False
    monkeypatch.setenv("DOCEXTRACT_KERNELS", "naive")
    assert _dispatch.use_triton("triton", x) is True


def test_bad_choice_is_rejected(monkeypatch):
    monkeypatch.setenv("DOCEXTRACT_KERNELS", "fast")
    with pytest.raises(ValueError, match="DOCEXTRACT_KERNELS='fast'"):
        _dispatch.use_triton(None, torch.zeros(1))
    with pytest.raises(ValueError, match="impl='cuda'"):
        _dispatch.use_triton("cuda", torch.zeros(1))


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        K.rms_norm(torch.ones(2, 4), torch.zeros(4), impl="triton")


def test_env_var_routes_a_public_op(monkeypatch, device):
    def refuse(*args, **kwargs):
        raise RuntimeError("naive path taken")

    monkeypatch.setattr(norm_naive, "rms_norm", refuse)
    x, w = torch.ones(3, 8, device=device), torch.zeros(8, device=device)
    monkeypatch.setenv("DOCEXTRACT_KERNELS", "triton")
    assert torch.allclose(K.rms_norm(x, w).cpu(), torch.ones(3, 8), atol=1e-5)
    monkeypatch.setenv("DOCEXTRACT_KERNELS", "naive")
    with pytest.raises(RuntimeError, match="naive path taken"):
        K.rms_norm(x, w)


def test_package_imports_no_triton_jit_module_eagerly():
    """TRITON_INTERPRET may be set after `import docextract.kernels`: no @triton.jit yet."""
    import subprocess
    import sys

    code = (
        "import sys, docextract.kernels; "
        "print(sorted(m for m in sys.modules if m == 'triton' or m.startswith('triton.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_record_captures_launches_on_the_meta_device_without_running_them():
    """The compile tests rely on this: ops on meta tensors inside record() take the Triton path
    and hand over their launches (outputs allocated, nothing run)."""
    x = torch.zeros(4, 96, device="meta")
    w = torch.zeros(96, device="meta")
    with _dispatch.record() as launches:
        y = K.rms_norm(x, w, impl="triton")
    assert y.device.type == "meta" and y.shape == x.shape
    (launch,) = launches
    assert launch.name == "_rms_norm_kernel" and launch.constexprs["BLOCK_D"] == 128
    # outside record() meta tensors stay off the Triton path in "auto"
    assert _dispatch.use_triton(None, x) is False


def test_device_limits_injected_by_target():
    limits = _dispatch.DeviceLimits((8, 6), 101_376, 82, "sm_86")
    assert _dispatch.device_limits(torch.device("cpu")) == _dispatch.CPU_LIMITS
    with _dispatch.target(limits):
        assert _dispatch.device_limits(torch.device("cpu")) is limits


def test_chunk_state_stages_follow_the_shared_memory_limit():
    from docextract.kernels.gated_delta.chunk import state_options, state_shared_bytes

    def limits(smem):
        return _dispatch.DeviceLimits((8, 0), smem, 1, "x")

    # BT 16, BK 128, BV 32: fp32 3 stages fit a 99 KiB consumer GPU, 2 stages fit 72 KiB
    assert state_options(limits(101_376), 16, 128, 32, 4) == {"num_warps": 8, "num_stages": 3}
    assert state_options(limits(73_728), 16, 128, 32, 4) == {"num_warps": 8, "num_stages": 2}
    assert state_options(limits(48 * 1024), 16, 128, 32, 4)["num_stages"] == 1
    # the old launch (BT 32, 3 stages, bf16) does not fit sm_86 by the estimate either
    assert state_shared_bytes(3, 32, 128, 32, 2) > 101_376


def test_a_failed_self_check_routes_an_op_to_pytorch_even_when_triton_is_forced():
    x = torch.zeros(2)
    _dispatch.set_fallback("rms_norm", "test")
    try:
        assert _dispatch.use_triton("triton", x, op="rms_norm") is False
        assert _dispatch.use_triton("triton", x, op="gated_rms_norm") is True
    finally:
        _dispatch.set_fallback("rms_norm", None)
    assert _dispatch.use_triton("triton", x, op="rms_norm") is True

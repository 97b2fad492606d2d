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

"""Backend choice shared by every public op: Triton on CUDA tensors, the naive reference elsewhere.

The choice is, in order: the op's `impl` argument, then `DOCEXTRACT_KERNELS`, then "auto". Triton
modules are imported only when a Triton path runs, so `TRITON_INTERPRET=1` set after this package
is imported (as the tests do) still takes effect.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NamedTuple

import torch

IMPLS = ("auto", "naive", "triton")
ENV = "DOCEXTRACT_KERNELS"


def interpreter_on() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


# op name -> why its Triton kernel failed the engine's self-check (engine/selfcheck.py): such an
# op runs its PyTorch path whatever `impl` or DOCEXTRACT_KERNELS ask
_fallback: dict[str, str] = {}


def set_fallback(op: str, reason: str | None) -> None:
    """Route `op` to its PyTorch path (reason given) or back to the normal choice (None)."""
    if reason is None:
        _fallback.pop(op, None)
    else:
        _fallback[op] = reason


def fallbacks() -> dict[str, str]:
    return dict(_fallback)


def use_triton(impl: str | None, *tensors: torch.Tensor, op: str | None = None) -> bool:
    """True when the op should run its Triton kernel on these tensors."""
    choice = impl if impl is not None else os.environ.get(ENV, "auto")
    if choice not in IMPLS:
        source = "impl" if impl is not None else ENV
        raise ValueError(f"{source}={choice!r}: expected one of {', '.join(IMPLS)}")
    if op is not None and op in _fallback and not _recording:
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if _recording and all(t.is_cuda or t.is_meta for t in tensors):
        # recording launches on the meta device (compile tests): take the Triton path
        on_cuda = True
    if choice == "naive":
        return False
    if choice == "auto":
        return on_cuda
    if not on_cuda and not interpreter_on():
        raise ValueError(
            "the Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 to run on the CPU"
        )
    return True


def wants_naive(impl: str | None) -> bool:
    """True when the reference is asked for by name (`impl` or DOCEXTRACT_KERNELS=naive)."""
    return (impl if impl is not None else os.environ.get(ENV, "auto")) == "naive"


def slot_run(slots: list[int]) -> slice | None:
    """Cache slots forming one increasing run lo..hi-1 -> slice(lo, hi) (the CPU decode ops then
    update the pool's rows in place), else None."""
    if slots and slots[0] >= 0 and slots == list(range(slots[0], slots[0] + len(slots))):
        return slice(slots[0], slots[0] + len(slots))
    return None


def check(cond: bool, message: str) -> None:
    """Raise ValueError(message) unless cond (shape and dtype validation of the public ops)."""
    if not cond:
        raise ValueError(message)


def check_float(name: str, t: torch.Tensor) -> None:
    check(
        t.dtype in (torch.float32, torch.float16, torch.bfloat16),
        f"{name}: expected float32, float16 or bfloat16, got {t.dtype}",
    )


def check_cu_seqlens(cu_seqlens: torch.Tensor, num_tokens: int) -> None:
    """Shape and dtype always; the values too when on the CPU (on CUDA that would cost a sync)."""
    check(
        cu_seqlens.dim() == 1 and cu_seqlens.numel() >= 2,
        f"cu_seqlens: expected shape [S+1] with S >= 1, got {tuple(cu_seqlens.shape)}",
    )
    check(cu_seqlens.dtype == torch.int32, f"cu_seqlens: expected int32, got {cu_seqlens.dtype}")
    if cu_seqlens.device.type == "cpu":
        check(
            int(cu_seqlens[0]) == 0
            and int(cu_seqlens[-1]) == num_tokens
            and bool((cu_seqlens[1:] >= cu_seqlens[:-1]).all()),
            f"cu_seqlens: expected non-decreasing offsets from 0 to {num_tokens}, "
            f"got {cu_seqlens.tolist()}",
        )



# --- Kernel launches: one path for every Triton launch, so that they can be recorded ----------

class Launch(NamedTuple):
    """One kernel launch: kernel[grid](*args, **constexprs, **options)."""

    kernel: object
    grid: tuple[int, ...]
    args: tuple
    constexprs: dict
    options: dict

    @property
    def name(self) -> str:
        fn = getattr(self.kernel, "fn", self.kernel)
        return getattr(fn, "__name__", str(fn))

    def __call__(self) -> None:
        launch(self)


_recording: list[list[Launch]] = []


@contextlib.contextmanager
def record() -> Iterator[list[Launch]]:
    """Record every launch made inside the block instead of running it (the ops still allocate
    their outputs): the compile tests run the engine on the meta device this way and compile
    each recorded launch for real GPU targets."""
    launches: list[Launch] = []
    _recording.append(launches)
    try:
        yield launches
    finally:
        _recording.pop()


def recording() -> bool:
    return bool(_recording)


def _device_of(args: tuple) -> torch.device | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
    return None


def launch(item: Launch) -> None:
    """Run (or record) a launch. On CUDA it runs with the tensors' device current, so that
    Triton takes that device's stream (`--device cuda:1` would otherwise launch on device 0)."""
    if _recording:
        _recording[-1].append(item)
        return
    dev = _device_of(item.args)
    run = item.kernel[item.grid]
    if dev is not None and dev.type == "cuda" and dev.index is not None \
            and dev.index != torch.cuda.current_device():
        with torch.cuda.device(dev):
            run(*item.args, **item.constexprs, **item.options)
        return
    run(*item.args, **item.constexprs, **item.options)


def run(kernel, grid, *args, options: dict | None = None, **constexprs) -> None:
    """kernel[grid](*args, **constexprs, **options), through `launch` (recordable, right device)."""
    launch(Launch(kernel, tuple(grid), args, constexprs, dict(options or {})))


# --- Device limits the kernels choose their tiles from --------------------------------------

class DeviceLimits(NamedTuple):
    capability: tuple[int, int]
    smem_per_block: int  # shared memory one block may opt in to, bytes
    sms: int
    name: str


# no GPU (the interpreter on the CPU): plan as for the smallest target, a consumer card (sm_86)
CPU_LIMITS = DeviceLimits((8, 6), 101_376, 4, "cpu")
_targets: list[DeviceLimits] = []
_cuda_limits: dict[int, DeviceLimits] = {}


@contextlib.contextmanager
def target(limits: DeviceLimits) -> Iterator[DeviceLimits]:
    """Plan launches for `limits` instead of the tensors' device (compile tests, self-checks)."""
    _targets.append(limits)
    try:
        yield limits
    finally:
        _targets.pop()


def device_limits(device: torch.device | None = None) -> DeviceLimits:
    """The limits of `device` (a CUDA device's properties, read once), or the `target` set."""
    if _targets:
        return _targets[-1]
    if device is None or device.type != "cuda":
        return CPU_LIMITS
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _cuda_limits:
        p = torch.cuda.get_device_properties(index)
        smem = getattr(p, "shared_memory_per_block_optin", 0) or 48 * 1024
        _cuda_limits[index] = DeviceLimits((p.major, p.minor), int(smem), p.multi_processor_count,
                                           p.name)
    return _cuda_limits[index]

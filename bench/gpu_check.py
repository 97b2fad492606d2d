"""GPU check: one command that fits a 10-minute call.

    python bench/gpu_check.py [--results bench/RESULTS.md] [--commit SHA]
    python bench/gpu_check.py --quick        # CPU through TRITON_INTERPRET=1, tiny shapes

Section `kernels`: every Triton kernel against its naive.py on CUDA (parity, relative RMS error),
then its time and achieved GB/s (memory-bound ops) or TFLOP/s (prefill GEMMs, chunked DeltaNet)
against the H200 floors of performance.md (4.8 TB/s, ~790 TFLOP/s bf16). Shapes are those of
Qwen3.5-35B-A3B (hidden 2048, 256 experts top-8 of width 512, DeltaNet 16 key / 32 value heads of
128, conv width 8192). End-to-end sections (decode tokens/s, prefill, peak memory) go beside
`kernels` as more functions of the same form. Exit status 1 when a parity check fails.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PEAK_BYTES_S = 4.8e12
PEAK_FLOPS = 790e12
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Case:
    """One kernel at one shape: both paths return a tensor or a tuple of tensors to compare."""

    name: str
    shape: str
    naive: Callable[[], object]
    triton: Callable[[], object]
    ratio: float
    bytes: float = 0.0
    flops: float = 0.0


@dataclass
class Row:
    name: str
    shape: str
    err: float
    ok: bool
    ms: float
    achieved: str
    floor_ms: float


def rel_err(ref, out) -> float:
    import torch

    refs = ref if isinstance(ref, tuple) else (ref,)
    outs = out if isinstance(out, tuple) else (out,)
    worst = 0.0
    for r, o in zip(refs, outs):
        r, o = r.double(), o.double()
        if not torch.isfinite(o).all():
            return float("inf")
        den = r.pow(2).mean().sqrt().item()
        num = (r - o).pow(2).mean().sqrt().item()
        worst = max(worst, num / den if den > 0 else num)
    return worst


def timed_ms(fn: Callable[[], object], cuda: bool) -> float:
    if cuda:
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=10, rep=50))
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def run_case(case: Case, cuda: bool) -> Row:
    err = rel_err(case.naive(), case.triton())
    ms = timed_ms(case.triton, cuda)
    if case.flops:
        achieved = f"{case.flops / ms / 1e9:.1f} TFLOP/s"
        floor = case.flops / PEAK_FLOPS * 1e3
    else:
        achieved = f"{case.bytes / ms / 1e6:.0f} GB/s"
        floor = case.bytes / PEAK_BYTES_S * 1e3
    return Row(case.name, case.shape, err, err <= case.ratio, ms, achieved, floor)


def kernel_cases(quick: bool, device: str) -> list[Case]:
    """Real 35B-A3B shapes in bf16 on CUDA; tiny fp16/fp32 ones for --quick (interpreter)."""
    import torch

    import docextract.kernels as K
    from docextract.kernels.gated_delta import naive as gd_naive
    from docextract.kernels.moe import naive as moe_naive
    from docextract.kernels.moe import quantize

    gen = torch.Generator(device=device).manual_seed(0)
    dt = torch.float16 if quick else torch.bfloat16
    # bf16 keeps 8 mantissa bits: rounding the stored intermediates costs up to ~1e-2
    ratio = 2e-3 if quick else 1e-2

    def randn(*shape, dtype=dt, scale=1.0):
        return (torch.randn(*shape, generator=gen, device=device) * scale).to(dtype)

    def cu(*lengths):
        offsets = [0]
        for n in lengths:
            offsets.append(offsets[-1] + n)
        return torch.tensor(offsets, dtype=torch.int32, device=device)

    H = 64 if quick else 2048
    T_pre = 24 if quick else 2048
    esize = torch.finfo(dt).bits // 8
    cases = []

    x, res, w = randn(T_pre, H), randn(T_pre, H), randn(H, scale=0.1)
    cases.append(
        Case(
            "rms_norm+residual",
            f"T={T_pre} H={H}",
            lambda: K.rms_norm(x, w, residual=res, impl="naive"),
            lambda: K.rms_norm(x, w, residual=res, impl="triton"),
            ratio,
            bytes=4 * T_pre * H * esize,
        )
    )
    Hv, Hk, Dk, Dv = (4, 2, 32, 32) if quick else (32, 16, 128, 128)
    o, z, wn = randn(T_pre * Hv, Dv), randn(T_pre * Hv, Dv), randn(Dv, dtype=torch.float32)
    cases.append(
        Case(
            "gated_rms_norm",
            f"rows={T_pre * Hv} D={Dv}",
            lambda: K.gated_rms_norm(o, z, wn, impl="naive"),
            lambda: K.gated_rms_norm(o, z, wn, impl="triton"),
            ratio,
            bytes=3 * T_pre * Hv * Dv * esize,
        )
    )

    C = 2 * Hk * Dk + Hv * Dv
    lengths = (T_pre // 2, T_pre // 4, T_pre - T_pre // 2 - T_pre // 4)
    xc, wc, cuc = randn(T_pre, C), randn(C, 4, scale=0.5), cu(*lengths)
    init = randn(len(lengths), C, 3)
    cases.append(
        Case(
            "causal_conv1d",
            f"T={T_pre} C={C} seqs={len(lengths)}",
            lambda: K.causal_conv1d(xc, wc, cuc, init, impl="naive"),
            lambda: K.causal_conv1d(xc, wc, cuc, init, impl="triton"),
            ratio,
            bytes=2 * T_pre * C * esize,
        )
    )
    for B in (1, 4) if quick else (1, 32):
        pool = randn(2 * B, C, 3)
        idx = torch.arange(B, dtype=torch.int32, device=device) * 2
        xu = randn(B, C)
        pools = [pool.clone(), pool.clone()]
        cases.append(
            Case(
                "causal_conv1d_update",
                f"B={B} C={C}",
                lambda xu=xu, p=pools[0], idx=idx: (
                    K.causal_conv1d_update(xu, p, wc, idx, impl="naive"),
                    p,
                ),
                lambda xu=xu, p=pools[1], idx=idx: (
                    K.causal_conv1d_update(xu, p, wc, idx, impl="triton"),
                    p,
                ),
                ratio,
                bytes=B * C * (2 * 3 + 2) * esize,
            )
        )

    q, k = randn(T_pre, Hk, Dk), randn(T_pre, Hk, Dk)
    v, beta = randn(T_pre, Hv, Dv), torch.rand(T_pre, Hv, generator=gen, device=device).to(dt)
    g = -0.5 * torch.rand(T_pre, Hv, generator=gen, device=device)
    cud = cu(*lengths)
    h0 = randn(len(lengths), Hv, Dk, Dv, dtype=torch.float32)
    # per token and value head: ~8 products of Dk x Dv plus ~4 of chunk x D (chunk 64)
    gd_flops = 2 * T_pre * Hv * (8 * Dk * Dv + 4 * 64 * Dk)
    cases.append(
        Case(
            "chunk_gated_delta_rule",
            f"T={T_pre} Hv={Hv} D={Dk} seqs={len(lengths)}",
            lambda: gd_naive.chunked(q, k, v, g, beta, cud, h0),
            lambda: K.chunk_gated_delta_rule(q, k, v, g, beta, cud, h0, impl="triton"),
            ratio,
            flops=gd_flops,
        )
    )
    for B in (1, 4) if quick else (1, 32):
        pool = randn(2 * B, Hv, Dk, Dv, dtype=torch.float32)
        idx = torch.arange(B, dtype=torch.int32, device=device) * 2
        pools = [pool.clone(), pool.clone()]
        args = (q[:B], k[:B], v[:B], g[:B], beta[:B])
        cases.append(
            Case(
                "recurrent_gated_delta_rule",
                f"B={B} Hv={Hv} D={Dk}",
                lambda a=args, p=pools[0], idx=idx: (gd_naive.decode(*a, p, idx), p),
                lambda a=args, p=pools[1], idx=idx: (
                    K.recurrent_gated_delta_rule(*a, p, idx, impl="triton"),
                    p,
                ),
                ratio,
                bytes=B * Hv * Dk * Dv * 4 * 2,
            )
        )

    E, top_k, I = (8, 2, 32) if quick else (256, 8, 512)
    logits = randn(T_pre, E, dtype=torch.float32)
    cases.append(
        Case(
            "moe_route",
            f"T={T_pre} E={E} k={top_k}",
            lambda: K.moe_route(logits, top_k, impl="naive")[0],
            lambda: K.moe_route(logits, top_k, impl="triton")[0],
            1e-5,
            bytes=T_pre * E * 4,
        )
    )
    w13 = randn(E, 2 * I, H, scale=H**-0.5)
    w2 = randn(E, H, I, scale=I**-0.5)
    formats = {
        "bf16" if not quick else "fp16": (
            K.ExpertWeights("float", w13),
            K.ExpertWeights("float", w2),
        )
    }
    for fmt in ("int8", "int4", "fp8"):
        formats[fmt] = (quantize(w13.float(), fmt), quantize(w2.float(), fmt))
    for T in (1, 5, T_pre) if quick else (1, 32, T_pre):
        xt = randn(T, H)
        tw, tid = moe_naive.route(randn(T, E, dtype=torch.float32), top_k)
        # decode reads every touched expert once; prefill is counted in FLOPs
        touched = int(torch.unique(tid).numel())
        for name, (a, b) in formats.items():
            per_expert = (
                sum(
                    w.data.numel() * w.data.element_size()
                    + (w.scale.numel() * w.scale.element_size() if w.scale is not None else 0)
                    for w in (a, b)
                )
                / E
            )
            prefill = T == T_pre
            cases.append(
                Case(
                    f"moe_experts[{name}]",
                    f"T={T} E={E} k={top_k} I={I} H={H}",
                    lambda xt=xt, tw=tw, tid=tid, a=a, b=b: moe_naive.experts(xt, tw, tid, a, b),
                    lambda xt=xt, tw=tw, tid=tid, a=a, b=b: K.moe_experts(
                        xt, tw, tid, a, b, impl="triton"
                    ),
                    ratio,
                    bytes=0.0 if prefill else touched * per_expert,
                    flops=2 * T * top_k * 3 * I * H if prefill else 0.0,
                )
            )
    return cases


def gpu_name(cuda: bool) -> str:
    if not cuda:
        return "cpu-interpreter"
    import torch

    return torch.cuda.get_device_name()


def commit_id(given: str | None) -> str:
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


HEADER = (
    "| date | GPU | commit | section | kernel | shape | parity err | ms | achieved | floor ms | "
    "of floor |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def format_rows(rows: list[Row], gpu: str, commit: str) -> list[str]:
    date = datetime.date.today().isoformat()
    lines = []
    for r in rows:
        share = f"{r.floor_ms / r.ms:.0%}" if r.ms > 0 else "-"
        status = f"{r.err:.1e}" + ("" if r.ok else " FAIL")
        lines.append(
            f"| {date} | {gpu} | {commit} | kernels | {r.name} | {r.shape} | {status} | "
            f"{r.ms:.4f} | {r.achieved} | {r.floor_ms:.4f} | {share} |"
        )
    return lines


def append_results(path: Path, lines: list[str]) -> None:
    """Append table rows to a markdown file, writing the header first when the file is new."""
    new = not path.exists()
    with path.open("a") as fh:
        fh.write((HEADER if new else "") + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU, Triton interpreter, tiny shapes")
    parser.add_argument("--results", type=Path, help="append the rows to this markdown file")
    parser.add_argument("--commit", help="commit id for the rows (default: git rev-parse)")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    cuda = not args.quick
    if cuda and not torch.cuda.is_available():
        print("error: no CUDA device; use --quick for the CPU run", file=sys.stderr)
        return 2
    device = "cuda" if cuda else "cpu"
    rows = []
    for case in kernel_cases(args.quick, device):
        rows.append(run_case(case, cuda))
    lines = format_rows(rows, gpu_name(cuda), commit_id(args.commit))
    print(HEADER + "\n".join(lines))
    if args.results:
        append_results(args.results, lines)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

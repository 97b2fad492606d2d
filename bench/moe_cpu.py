"""The routed experts on the CPU: the reference loop (kernels/moe/naive.py) against the grouped
path (kernels/moe/grouped_cpu.py: torch._grouped_mm, and its per-expert-matmul fallback), in
float32 and bfloat16, in one run. Shapes default to bench/throughput.py's MoE (hidden 512,
32 experts top-4 of width 256) at decode (8 tokens: a batch of 8 documents) and prefill sizes.

Prints, per token count: median ms of --runs calls of each path, the ratio to the reference,
and the relative RMS error of each path's output against the float32 reference; plus one dense
F.linear of an expert's gate+up shape over all the tokens, in each dtype, to show what the CPU's
bf16 matrix products cost on their own.

    .venv/bin/python bench/moe_cpu.py [--threads 1] [--tokens 8,64,2048] [--runs 7]
                                      [--hidden 512 --experts 32 --top-k 4 --inter 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from docextract.kernels import ExpertWeights
from docextract.kernels.moe import grouped_cpu, naive


def timed(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def rel_err(ref: torch.Tensor, out: torch.Tensor) -> float:
    ref, out = ref.double(), out.double()
    return ((ref - out).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", default="8,64,2048")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--inter", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    H, E, k, inter = args.hidden, args.experts, args.top_k, args.inter
    g = torch.Generator().manual_seed(0)
    w13 = torch.randn(E, 2 * inter, H, generator=g) / H**0.5
    w2 = torch.randn(E, H, inter, generator=g) / inter**0.5
    weights = {dt: (ExpertWeights("float", w13.to(dt)), ExpertWeights("float", w2.to(dt)))
               for dt in (torch.float32, torch.bfloat16)}
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, load "
          f"average {os.getloadavg()[0]:.1f}; hidden {H}, {E} experts top-{k}, width {inter}; "
          f"torch._grouped_mm on the CPU: {'yes' if grouped_cpu.HAS_GROUPED_MM else 'no'}")
    print()
    print("| tokens | path | dtype | ms | vs naive fp32 | rel. RMS error vs naive fp32 |")
    print("|---|---|---|---|---|---|")
    for T in (int(t) for t in args.tokens.split(",")):
        x = torch.randn(T, H, generator=g)
        topw, ids = naive.route(torch.randn(T, E, generator=g), k)
        ref = naive.experts(x, topw, ids, *weights[torch.float32])
        base = None
        for dt, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            xd = x.to(dt)
            paths = [("naive", lambda: naive.experts(xd, topw, ids, *weights[dt]))]
            if grouped_cpu.HAS_GROUPED_MM:
                paths.append(("grouped (_grouped_mm)", lambda: grouped_cpu.experts(
                    xd, topw, ids, *weights[dt], use_grouped_mm=True)))
            paths.append(("grouped (matmul per expert)", lambda: grouped_cpu.experts(
                xd, topw, ids, *weights[dt], use_grouped_mm=False)))
            # a dense layer of the same size (gate+up of one expert over all tokens) for scale
            dense = weights[dt][0].data[0]
            paths.append(("dense F.linear [T,H]x[2I,H]",
                          lambda: torch.nn.functional.linear(xd, dense)))
            for label, fn in paths:
                ms = timed(fn, args.runs)
                base = base or ms
                err = rel_err(ref, fn()) if label.startswith(("naive", "grouped")) else None
                print(f"| {T} | {label} | {name} | {ms:.2f} | {base / ms:.2f}x | "
                      + (f"{err:.1e} |" if err is not None else "- |"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

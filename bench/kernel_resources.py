"""Registers, local memory (spills) and shared memory of the heavy kernels, before and after the
issue-11 launch changes, compiled for real GPU targets on a machine without a GPU.

Each row compiles one launch the engine records at the Qwen3.5-35B-A3B shapes (through
tests/kernels/compile_targets.py) twice: with the launch parameters the engine used before
(the baseline) and with what it uses now, and prints both with the ratio. Run without
TRITON_INTERPRET; give TRITON_CACHE_DIR an empty folder to get ptxas' spill counts too:

    TRITON_CACHE_DIR=$(mktemp -d) python bench/kernel_resources.py [--targets 86,90]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kernels"))

import compile_targets as ct  # noqa: E402

from docextract.kernels._dispatch import Launch  # noqa: E402

# (label, kernel, dtype, experts, which recorded launch, the baseline's constexprs and options)
CASES = [
    ("chunk_state prefill", "_chunk_state_kernel", "bf16", "float", 0,
     {"BT": 32}, {"num_warps": 4, "num_stages": 3}),
    ("chunk_state prefill", "_chunk_state_kernel", "fp32", "float", 0,
     {"BT": 32}, {"num_warps": 4, "num_stages": 3}),
    ("chunk_wu prefill", "_chunk_wu_kernel", "bf16", "float", 0, {"BT": 32}, {}),
    ("conv_varlen 4096 tok", "_conv_varlen_kernel", "bf16", "float", 0, {"BLOCK_T": 64}, {}),
    ("conv_varlen 4096 tok", "_conv_varlen_kernel", "fp32", "float", 0, {"BLOCK_T": 64}, {}),
    ("moe gate_up int4 B=1", "_moe_gemm_kernel", "bf16", "int4", 0,
     {"BLOCK_K": 128}, {"num_warps": 4, "num_stages": 4}),
    ("moe gate_up fp32 4096", "_moe_gemm_kernel", "fp32", "float", -2,
     {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64}, {"num_warps": 8, "num_stages": 3}),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="86,90")
    args = ap.parse_args(argv)
    targets = [int(t) for t in args.targets.split(",")]
    print(f"{'target':<7} {'launch':<22} {'dtype':<5} {'':<9} {'shared B':>9} {'regs':>5} "
          f"{'stack B':>8} {'spill st B':>10} {'fits':>5}")
    for cc in targets:
        for label, kernel, dt, fmt, index, old_ce, old_opts in CASES:
            scenarios = ("decode",) if "B=1" in label else ("uncached",)
            launches = [x for x in ct.record("35B-A3B", ct.DTYPES[dt], fmt, cc, scenarios)
                        if x.name == kernel]
            if kernel == "_moe_gemm_kernel":
                launches = [x for x in launches if x.constexprs["GATED"]]
            now = launches[index]
            old = Launch(now.kernel, now.grid, now.args, {**now.constexprs, **old_ce}, old_opts)
            rows = {}
            for name, launch in (("baseline", old), ("now", now)):
                r = ct.compile_launch(launch, cc)
                rows[name] = r
                if "error" in r:
                    print(f"sm_{cc:<4} {label:<22} {dt:<5} {name:<9} {r['error']}")
                    continue
                spill = "-" if r["spill_stores"] is None else f"{r['spill_stores']:,}"
                fits = "yes" if r["shared"] <= ct.SMEM_LIMITS[cc] else "NO"
                print(f"sm_{cc:<4} {label:<22} {dt:<5} {name:<9} {r['shared']:>9,} {r['regs']:>5} "
                      f"{r['stack']:>8,} {spill:>10} {fits:>5}", flush=True)
            b, n = rows["baseline"], rows["now"]
            if "error" not in b and "error" not in n:
                ratio = (n["stack"] / b["stack"]) if b["stack"] else float("nan")
                print(f"{'':<7} {'':<22} {'':<5} {'ratio':<9} {n['shared'] / b['shared']:>9.2f} "
                      f"{n['regs'] / b['regs']:>5.2f} {ratio:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

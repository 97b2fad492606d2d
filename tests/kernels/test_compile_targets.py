"""Every Triton launch the engine makes, compiled for the GPUs users own, without a GPU.

compile_targets.py runs the engine's own code on the meta device with the Triton kernels forced
on, records every launch (decode at batch 1/8/64, packed prefill of 4,096 tokens and of 8 x 512,
the uncached forward) and compiles each distinct one to cubin for each target with the bundled
ptxas, reporting shared memory, registers and local memory (spills). It runs in a subprocess:
this process has TRITON_INTERPRET=1, under which kernels cannot be compiled.

The default run compiles a subset (compile_targets.SUBSET: Qwen3.5-35B-A3B in bf16 with int4 and
FP8 experts, decode at batch 64 and the packed 8 x 512 prefill, for sm_89, whose 101,376-byte
shared-memory limit is the tightest with sm_86's); `-m gpu_compile_full` compiles every model,
dtype, expert format and target, and checks that the old chunk-state launch is caught. A compile cache under the user's
cache dir (DOCEXTRACT_TEST_TRITON_CACHE to move it) makes a second run cheap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "compile_targets.py"
# every kernel of the engine: norms, conv, gated delta rule, attention, MoE
KERNELS = {
    "_rms_norm_kernel", "_gated_rms_norm_kernel", "_conv_varlen_kernel",
    "_conv_final_state_kernel", "_conv_update_kernel", "_chunk_wu_kernel", "_chunk_state_kernel",
    "_recurrent_kernel", "_split_kernel", "_combine_kernel", "_store_kernel", "_route_kernel",
    "_count_kernel", "_offsets_kernel", "_scatter_kernel", "_moe_gemm_kernel",
}
# the shared-memory limits per block, CUDA C++ Programming Guide, "Technical Specifications per
# Compute Capability": 163 KiB (8.0), 99 KiB (8.6, 8.9), 227 KiB (9.0)
LIMITS = {80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cache = os.environ.get("DOCEXTRACT_TEST_TRITON_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "docextract" / "test-triton")
    env["TRITON_CACHE_DIR"] = cache
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    return env


def _run(*args: str, timeout: int = 1800) -> tuple[int, list[dict], str]:
    run = subprocess.run([sys.executable, str(SCRIPT), "--quiet", *args], env=_env(),
                         capture_output=True, text=True, check=False, timeout=timeout)
    lines = run.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("["):
        raise AssertionError(f"compile_targets.py failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return run.returncode, json.loads(lines[-1]), "\n".join(lines[:-1])


def test_the_target_table_matches_the_cuda_guide():
    sys.path.insert(0, str(HERE))
    try:
        import compile_targets
    finally:
        sys.path.remove(str(HERE))
    assert compile_targets.SMEM_LIMITS == LIMITS


def test_engine_launches_compile_and_fit_a_consumer_gpu():
    rc, rows, table = _run()
    print(table)
    problems = [line for line in table.splitlines() if line.startswith("PROBLEM")]
    assert rc == 0 and not problems, "\n".join(problems)
    assert {r["kernel"] for r in rows} == KERNELS
    cases = {c for r in rows for c in r["cases"]}
    # int4 and (sm_89 has FP8) FP8 experts
    assert {c.split("/")[2] for c in cases} == {"int4", "fp8"}
    for r in rows:
        assert r["has_cubin"] and r["shared"] <= LIMITS[89] and r["regs"] <= 255, r


@pytest.mark.gpu_compile_full
def test_the_old_chunk_state_config_is_caught():
    """The launch the engine made before (BT 32, 4 warps, 3 stages) needs more shared memory
    than an RTX 3090 has: the sweep must report it, not pass it."""
    code = f"""
import sys, json
sys.path.insert(0, {str(HERE)!r})
import compile_targets as ct
from docextract.kernels._dispatch import Launch
launches = [l for l in ct.record("35B-A3B", ct.DTYPES["bf16"], "float", 86, scenarios=("uncached",))
            if l.name == "_chunk_state_kernel"]
l = launches[0]
old = Launch(l.kernel, l.grid, l.args, {{**l.constexprs, "BT": 32}}, {{"num_warps": 4, "num_stages": 3}})
row = {{"target": 86, "kernel": l.name, "cases": ["old"], "limit": ct.SMEM_LIMITS[86],
       **ct.compile_launch(old, 86)}}
print(json.dumps([row, ct.problems([row])]))
"""
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True,
                         check=False, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    row, problems = json.loads(run.stdout.strip().splitlines()[-1])
    assert row["shared"] > LIMITS[86], row
    assert problems and "shared" in problems[0]


@pytest.mark.gpu_compile_full
def test_every_model_dtype_and_target_compiles_and_fits():
    rc, rows, table = _run("--full", timeout=6 * 3600)
    print(table)
    problems = [line for line in table.splitlines() if line.startswith("PROBLEM")]
    assert rc == 0 and not problems, "\n".join(problems)
    assert {r["kernel"] for r in rows} == KERNELS
    assert {r["target"] for r in rows} == set(LIMITS)

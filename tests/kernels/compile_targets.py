"""Compile every Triton launch the engine makes, at the real Qwen3.5 shapes, for the GPUs users
own, on a machine without a GPU.

The engine's own code runs on the meta device with the Triton kernels forced on, inside
`kernels._dispatch.record()` (each launch is recorded instead of run) and `target()` (the device
limits the kernels choose their tiles from). Scenarios: decode steps at batch 1, 8 and 64, packed
prefill of 4,096 tokens and of 8 x 512 into the cache, and the uncached forward. Each distinct
launch (kernel, specialised signature, constexprs, options) is compiled to cubin for each target
with the bundled ptxas, which reports registers, spills and shared memory.

Run in a process WITHOUT TRITON_INTERPRET (the tests start it as a subprocess):
    python tests/kernels/compile_targets.py [--full] [--models 35B-A3B,...] [--targets 86,90]
(no option: the default test's subset, see SUBSET)
prints a table and, last, one JSON line with a row per compile.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import time

import torch

# bytes of shared memory one block may use (the opt-in maximum), per compute capability; from the
# CUDA C++ Programming Guide, "Technical Specifications per Compute Capability"
SMEM_LIMITS = {80: 166_912, 86: 101_376, 89: 101_376, 90: 232_448}
TARGET_SMS = {80: 108, 86: 82, 89: 128, 90: 132}
TARGET_NAMES = {80: "A100", 86: "RTX 3090", 89: "RTX 4090 / L4", 90: "H100"}

# real sizes (docs: /work/shared/design/qwen35.md §1.1); 4 layers = 3 DeltaNet + 1 attention,
# which holds every distinct layer shape of the model
_COMMON = {"num_hidden_layers": 4, "head_dim": 256, "linear_key_head_dim": 128,
           "linear_value_head_dim": 128, "linear_num_key_heads": 16, "linear_conv_kernel_dim": 4}
MODELS = {
    "0.8B": ("qwen3_5", {"hidden_size": 1024, "num_attention_heads": 8, "num_key_value_heads": 2,
                         "linear_num_value_heads": 16, "intermediate_size": 3584,
                         "tie_word_embeddings": True}),
    "9B": ("qwen3_5", {"hidden_size": 4096, "num_attention_heads": 16, "num_key_value_heads": 4,
                       "linear_num_value_heads": 32, "intermediate_size": 12288}),
    "27B": ("qwen3_5", {"hidden_size": 5120, "num_attention_heads": 24, "num_key_value_heads": 4,
                        "linear_num_value_heads": 48, "intermediate_size": 17408}),
    "35B-A3B": ("qwen3_5_moe", {"hidden_size": 2048, "num_attention_heads": 16,
                                "num_key_value_heads": 2, "linear_num_value_heads": 32,
                                "num_experts": 256, "num_experts_per_tok": 8,
                                "moe_intermediate_size": 512,
                                "shared_expert_intermediate_size": 512}),
    "122B-A10B": ("qwen3_5_moe", {"hidden_size": 3072, "num_attention_heads": 32,
                                  "num_key_value_heads": 2, "linear_num_value_heads": 64,
                                  "num_experts": 256, "num_experts_per_tok": 8,
                                  "moe_intermediate_size": 1024,
                                  "shared_expert_intermediate_size": 1024}),
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# the requests a user can make of a checkpoint: (config has an FP8 release, --experts)
EXPERT_REQUESTS = (("bf16", False), ("int8", False), ("int4", False), ("bf16", True))
DECODE_BATCHES = (1, 8, 64)
PREFILLS = ((4096,), (512,) * 8)
CACHE_LEN = 4608


def model_config(name: str, fp8: bool = False):
    from docextract.engine.config import ModelConfig

    model_type, text = MODELS[name]
    data = {"model_type": model_type, "text_config": {**_COMMON, **text},
            "vision_config": {"out_hidden_size": text["hidden_size"]}}
    if "tie_word_embeddings" in text:
        data["tie_word_embeddings"] = text["tie_word_embeddings"]
    if fp8:
        data["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3",
                                       "weight_block_size": [128, 128]}
    return ModelConfig.from_dict(data)


def expert_formats(name: str, cc: int) -> list[tuple[str, bool]]:
    """(format the engine stores the experts in on this target, fp8 release) per request."""
    from docextract.engine.quant import resolve_experts

    config = model_config(name)
    if not config.is_moe:
        return [("float", False)]
    out = []
    for requested, fp8 in EXPERT_REQUESTS:
        fmt, _ = resolve_experts(None, model_config(name, fp8), requested,
                                 capability=(cc // 10, cc % 10))
        if (fmt, fp8) not in out and (fmt, False) not in out:
            out.append((fmt, fp8))
    return out


def record(name: str, dtype: torch.dtype, fmt: str, cc: int, scenarios=None,
           decode_batches=DECODE_BATCHES, prefills=PREFILLS) -> list:
    """Every launch of the scenarios, for a model in `dtype` with experts in `fmt` on target cc."""
    from docextract.engine.quant import convert_experts
    from docextract.engine.qwen3_5 import Batch, Model
    from docextract.kernels import _dispatch

    config = model_config(name)
    convert = None if fmt == "float" else (lambda m: convert_experts(m, fmt))
    limits = _dispatch.DeviceLimits((cc // 10, cc % 10), SMEM_LIMITS[cc], TARGET_SMS[cc], f"sm_{cc}")
    scenarios = scenarios or ("decode", "prefill", "uncached")
    with _dispatch.target(limits), _dispatch.record() as launches, torch.inference_mode():
        model = Model.empty(config, dtype, "meta", convert)
        model.kernels = "triton"
        H = config.text_config.hidden_size
        if "decode" in scenarios:
            cache = model.make_cache(max(decode_batches), CACHE_LEN)
            for b in decode_batches:
                ids = torch.zeros(b, dtype=torch.long, device="meta")
                pos = torch.zeros(3, b, dtype=torch.long, device="meta")
                slots = torch.zeros(b, dtype=torch.int32, device="meta")
                model.decode_static(ids, pos, slots, cache)
        for lens in prefills:
            T = sum(lens)
            x = torch.zeros(T, H, dtype=dtype, device="meta")
            pos = torch.zeros(3, T, dtype=torch.long, device="meta")
            if "prefill" in scenarios:
                cache = model.make_cache(len(lens), CACHE_LEN)
                model(x, Batch(list(lens), pos, cache, list(range(len(lens)))))
            if "uncached" in scenarios:
                model(x, Batch(list(lens), pos))
    return launches


def _signature(launch) -> tuple[dict, dict, dict]:
    """(signature, constexprs, attrs) as the Triton runtime specialises this launch's arguments
    (ints equal to 1 become constants, 16-divisible ints and aligned pointers get divisibility)."""
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend

    fn = launch.kernel
    names = [n for n in fn.arg_names if n not in launch.constexprs]
    sig = dict.fromkeys(launch.constexprs, "constexpr")
    constexprs = dict(launch.constexprs)
    attrs = {}
    for name, arg in zip(names, launch.args, strict=True):
        kind, spec = native_specialize_impl(BaseBackend, arg, False, True, True)
        sig[name] = kind
        if kind == "constexpr":
            constexprs[name] = spec
        elif spec:
            attrs[(fn.arg_names.index(name),)] = BaseBackend.parse_attr(spec)
    return {n: sig[n] for n in fn.arg_names}, constexprs, attrs


def launch_key(launch) -> str:
    sig, constexprs, attrs = _signature(launch)
    return json.dumps([launch.name, sig, sorted((k, str(v)) for k, v in constexprs.items()),
                       sorted(str(a) for a in attrs.items()), sorted(launch.options.items())])


_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def resource_usage(cubin: bytes) -> dict:
    """REG, STACK, SHARED, LOCAL of the cubin's kernel (the bundled cuobjdump -res-usage)."""
    import subprocess
    import tempfile

    from triton import knobs

    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([knobs.nvidia.cuobjdump.path, "-res-usage", f.name],
                              capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text)}


def compile_launch(launch, cc: int) -> dict:
    """Compile one launch for sm_cc -> {shared, regs, spill_stores, spill_loads, stack, seconds}
    or {error}. Registers and spills come from ptxas -v."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig, constexprs, attrs = _signature(launch)
    src = ASTSource(launch.kernel, sig, constexprs, attrs)
    out = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), knobs.nvidia.scope():
            knobs.nvidia.dump_ptxas_log = True
            kernel = triton.compile(src, target=GPUTarget("cuda", cc, 32), options=launch.options)
    except Exception as exc:  # compile errors are the finding, reported per launch
        return {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"}
    log = out.getvalue()
    usage = resource_usage(kernel.asm["cubin"])
    spill = _SPILL.search(log)
    return {
        "shared": int(kernel.metadata.shared),
        "regs": usage.get("REG"),
        # from ptxas -v when this process compiled it (None on a compile-cache hit)
        "spill_stores": int(spill.group(1)) if spill else None,
        "spill_loads": int(spill.group(2)) if spill else None,
        # local memory per thread (the spills live there), from the cubin
        "stack": usage.get("STACK", 0),
        "num_warps": kernel.metadata.num_warps,
        "num_stages": kernel.metadata.num_stages,
        "seconds": round(time.perf_counter() - start, 2),
        "has_cubin": "cubin" in kernel.asm,
    }


SUBSET = {
    # the default test run: every kernel once, on the tightest shared-memory limit (sm_89 = sm_86's,
    # and FP8 compiles there), the packed multi-sequence prefill into the cache, decode at batch
    # 64, the two packed expert formats (the 16-bit and int8 GEMMs are the same code with wider
    # loads; the full sweep compiles them)
    "models": ("35B-A3B",), "dtypes": ("bf16",), "targets": (89,), "formats": ("int4", "fp8"),
    "scenarios": ("decode", "prefill"), "decode_batches": (64,), "prefills": ((512,) * 8,),
}
FULL = {"models": tuple(MODELS), "dtypes": tuple(DTYPES), "targets": tuple(SMEM_LIMITS),
        "formats": None, "scenarios": None, "decode_batches": DECODE_BATCHES,
        "prefills": PREFILLS}


KERNEL_MODULES = ("attention.decode", "conv.varlen", "conv.update", "gated_delta.chunk",
                  "gated_delta.recurrent", "moe.fused", "moe.align", "moe.route", "norm.fused")


def sweep(models, dtypes, targets, kernels=None, progress=None, formats=None, scenarios=None,
          decode_batches=DECODE_BATCHES, prefills=PREFILLS) -> list[dict]:
    """Record and compile; one row per (target, distinct launch) with the cases that made it."""
    import importlib

    for mod in KERNEL_MODULES:  # all read now: a sweep sees one version of the sources
        importlib.import_module(f"docextract.kernels.{mod}")
    rows = []
    for cc in targets:
        distinct: dict[str, tuple] = {}
        for name in models:
            fmts = [f for f, _ in expert_formats(name, cc)]
            if formats and MODELS[name][0] == "qwen3_5_moe":
                fmts = [f for f in fmts if f in formats]
            for dt in dtypes:
                for fmt in fmts:
                    for launch in record(name, DTYPES[dt], fmt, cc, scenarios, decode_batches,
                                         prefills):
                        if kernels and launch.name not in kernels:
                            continue
                        key = launch_key(launch)
                        case = f"{name}/{dt}/{fmt}"
                        if key in distinct:
                            distinct[key][1].add(case)
                        else:
                            distinct[key] = (launch, {case})
        for launch, cases in distinct.values():
            result = compile_launch(launch, cc)
            row = {"target": cc, "kernel": launch.name, "cases": sorted(cases),
                   "options": launch.options, "limit": SMEM_LIMITS[cc], **result}
            if progress:
                progress(row)
            rows.append(row)
    return rows


def problems(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if "error" in r:
            out.append(f"sm_{r['target']} {r['kernel']} {r['cases'][:3]}: {r['error']}")
        elif r["shared"] > r["limit"]:
            out.append(f"sm_{r['target']} {r['kernel']} {r['cases'][:3]}: {r['shared']:,} B shared "
                       f"> {r['limit']:,}")
        elif not r["has_cubin"]:
            out.append(f"sm_{r['target']} {r['kernel']}: no cubin")
    return out


def summary(rows: list[dict]) -> list[str]:
    """Worst case per (target, kernel): max shared, registers, spill stores, stack."""
    worst: dict[tuple, dict] = {}
    for r in rows:
        if "error" in r:
            continue
        w = worst.setdefault((r["target"], r["kernel"]), {"n": 0, "shared": 0, "regs": 0,
                                                           "stack": 0})
        w["n"] += 1
        for k in ("shared", "regs", "stack"):
            w[k] = max(w[k], r[k] or 0)
    lines = [f"{'target':<7} {'kernel':<26} {'launches':>8} {'max shared B':>12} {'max regs':>8} "
             f"{'max stack B':>11}"]
    for (cc, kernel), w in sorted(worst.items()):
        lines.append(f"sm_{cc:<4} {kernel:<26} {w['n']:>8} {w['shared']:>12,} {w['regs']:>8} "
                     f"{w['stack']:>11,}")
    return lines


def main(argv=None) -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("run without TRITON_INTERPRET: the kernels must be compiled, not interpreted",
              file=sys.stderr)
        return 2
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="every model, dtype and target")
    ap.add_argument("--models")
    ap.add_argument("--dtypes")
    ap.add_argument("--targets")
    ap.add_argument("--kernels", help="only these kernels (comma-separated names)")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    plan = dict(FULL if args.full else SUBSET)
    if args.models or args.dtypes or args.targets:
        # a chosen slice: every scenario and format of it
        plan.update({k: FULL[k] for k in ("formats", "scenarios", "decode_batches", "prefills")})
    if args.models:
        plan["models"] = tuple(args.models.split(","))
    if args.dtypes:
        plan["dtypes"] = tuple(args.dtypes.split(","))
    if args.targets:
        plan["targets"] = tuple(int(t) for t in args.targets.split(","))

    def progress(r):
        if not args.quiet:
            print(f"sm_{r['target']} {r['kernel']:<24} {r.get('shared', '-'):>7} "
                  f"regs={r.get('regs')} stack={r.get('stack')} "
                  f"{r.get('error', '')} {r['cases'][:2]}", file=sys.stderr, flush=True)

    kernels = set(args.kernels.split(",")) if args.kernels else None
    rows = sweep(plan["models"], plan["dtypes"], plan["targets"], kernels, progress,
                 plan["formats"], plan["scenarios"], plan["decode_batches"], plan["prefills"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f)
    for line in summary(rows):
        print(line)
    for line in problems(rows):
        print("PROBLEM", line)
    print(json.dumps(rows))
    return 1 if problems(rows) else 0


if __name__ == "__main__":
    sys.exit(main())

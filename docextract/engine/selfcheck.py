"""Self-check on first use: each Triton op runs once on small inputs of the loaded model's own
sizes and dtype and is compared with its PyTorch reference (the op's naive.py); an op that fails
(compile error, out of resources, a result beyond its tolerance) is routed to its PyTorch path for
the rest of the process, with one warning line naming the op and the reason.

Results are cached per GPU name, driver, torch and Triton version and model shape in
$XDG_CACHE_HOME/docextract/selfcheck.json (~/.cache when unset; DOCEXTRACT_SELFCHECK_CACHE names
another file), so the check costs nothing the second time. DOCEXTRACT_SELFCHECK=0 skips it.

The checks run wherever the engine would run Triton: on CUDA, and on the CPU through the
interpreter (TRITON_INTERPRET=1 with kernels="triton"), which is how the tests exercise them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import kernels as K
from ..fsutil import atomic_write_text
from ..kernels import _dispatch
from ..kernels.attention import decode_attention, store_kv

log = logging.getLogger("docextract.engine")

# relative max error (max |triton - reference| / max |reference|) an op may show, by dtype: fp32
# differs only in summation order; 16-bit outputs are rounded once more on one side
TOLERANCE = {torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 4e-2}
GRAPHS = "cuda_graphs"


@dataclass
class Result:
    op: str
    path: str  # "triton" or "pytorch" (for cuda_graphs: "graphs" or "eager")
    max_error: float | None = None
    tolerance: float | None = None
    seconds: float = 0.0
    reason: str | None = None
    cached: bool = False


def cache_path() -> Path:
    override = os.environ.get("DOCEXTRACT_SELFCHECK_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "docextract" / "selfcheck.json"


def environment_key(device: torch.device) -> str:
    """GPU name, driver, torch and Triton versions: what a check result depends on."""
    import triton

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        try:
            driver = str(torch._C._cuda_getDriverVersion())
        except Exception:  # not every torch build exposes it
            driver = "unknown"
    else:
        name, driver = f"{device.type} (Triton interpreter)", "none"
    return f"{name} | driver {driver} | torch {torch.__version__} | triton {triton.__version__}"


@dataclass
class Subject:
    """What the checks need of a model: its text config, dtype, device and one layer's routed
    experts as loaded (None for a dense model)."""

    config: object  # TextConfig
    dtype: torch.dtype
    device: torch.device
    experts: tuple | None = None  # (w13, w2) ExpertWeights


def subject_of(model) -> Subject:
    experts = None
    for layer in model.model.language_model.layers:
        if hasattr(layer.mlp, "experts"):
            experts = layer.mlp.experts.weights()
            break
    return Subject(model.config.text_config, model.dtype, model.device, experts)


def random_subject(config, dtype: torch.dtype, device: torch.device, fmt: str = "float",
                   seed: int = 0) -> Subject:
    """A subject with one layer of random experts of `config`'s sizes in `fmt` (doctor --gpu
    without loading a whole checkpoint)."""
    from ..kernels.moe import quantize

    experts = None
    if config.is_moe:
        g = torch.Generator().manual_seed(seed)
        E, H, I = config.num_experts, config.hidden_size, config.moe_intermediate_size
        w13 = (torch.randn(E, 2 * I, H, generator=g) * H**-0.5).to(device=device, dtype=dtype)
        w2 = (torch.randn(E, H, I, generator=g) * I**-0.5).to(device=device, dtype=dtype)
        experts = (quantize(w13, fmt), quantize(w2, fmt))
    return Subject(config, dtype, torch.device(device), experts)


def model_key(subject: Subject) -> str:
    t = subject.config
    fmt = subject.experts[0].name if subject.experts else "none"
    return (f"{str(subject.dtype).removeprefix('torch.')} H{t.hidden_size} attn "
            f"{t.num_attention_heads}/{t.num_key_value_heads}x{t.head_dim} linear "
            f"{t.linear_num_key_heads}/{t.linear_num_value_heads}x{t.linear_key_head_dim} conv "
            f"{t.conv_dim}x{t.linear_conv_kernel_dim} experts {fmt}")


def _rel_max_error(ref, out) -> float:
    if isinstance(ref, (tuple, list)):
        return max(_rel_max_error(r, o) for r, o in zip(ref, out, strict=True))
    if ref.shape != out.shape:
        raise ValueError(f"shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    r, o = ref.detach().double().cpu(), out.detach().double().cpu()
    if not torch.isfinite(o).all():
        return float("inf")
    return float((r - o).abs().max() / r.abs().max().clamp_min(1e-6))


def _cases(subject: Subject) -> dict[str, Callable[[str], object]]:
    """op -> run(impl): each op once on small random inputs of the model's sizes (seeded), run
    with impl "triton" or "naive"; in-place state is cloned per call."""
    t, dtype, device = subject.config, subject.dtype, subject.device
    g = torch.Generator(device="cpu").manual_seed(0)

    def rnd(*shape, dt=dtype, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device=device, dtype=dt)

    def i32(values):
        return torch.tensor(values, dtype=torch.int32, device=device)

    H, nh, nkv, hd = t.hidden_size, t.num_attention_heads, t.num_key_value_heads, t.head_dim
    hk, hv, dk, dv = (t.linear_num_key_heads, t.linear_num_value_heads, t.linear_key_head_dim,
                      t.linear_value_head_dim)
    C, Kc = t.conv_dim, t.linear_conv_kernel_dim
    lens = [5, 21]  # the second crosses a chunk boundary
    cu = i32([0, lens[0], sum(lens)])
    T = sum(lens)
    x, res, w = rnd(T, H), rnd(T, H), rnd(H, scale=0.1)
    xg, zg, wg = rnd(T, hv, dv), rnd(T, hv, dv), rnd(dv, scale=0.1) + 1
    xc, wc, init_c = rnd(T, C), rnd(C, Kc, scale=0.5), rnd(2, C, Kc - 1)
    pool_c, slots = rnd(3, C, Kc - 1), i32([2, -1, 0])
    xu = rnd(3, C)
    q, k, v = rnd(T, hk, dk), rnd(T, hk, dk), rnd(T, hv, dv)
    gdec = -torch.rand(T, hv, generator=g).to(device) * 0.5
    beta = torch.rand(T, hv, generator=g).to(device=device, dtype=dtype)
    state0 = rnd(2, hv, dk, dv, dt=torch.float32, scale=0.1)
    pool_s = rnd(3, hv, dk, dv, dt=torch.float32, scale=0.1)
    qa, kc_, vc_ = rnd(3, nh, hd), rnd(3, nkv, 40, hd), rnd(3, nkv, 40, hd)
    ka, va, lengths = rnd(3, nkv, hd), rnd(3, nkv, hd), i32([7, 0, 33])
    cases: dict[str, Callable[[str], object]] = {
        "rms_norm": lambda impl: K.rms_norm(x, w, t.rms_norm_eps, residual=res, impl=impl),
        "gated_rms_norm": lambda impl: K.gated_rms_norm(xg, zg, wg, t.rms_norm_eps, impl=impl),
        "causal_conv1d": lambda impl: K.causal_conv1d(xc, wc, cu, init_c, impl=impl),
        "causal_conv1d_update": lambda impl: (
            lambda pool: (K.causal_conv1d_update(xu, pool, wc, slots, impl=impl), pool))(pool_c.clone()),
        "chunk_gated_delta_rule": lambda impl: K.chunk_gated_delta_rule(
            q, k, v, gdec, beta, cu, state0, impl=impl),
        "recurrent_gated_delta_rule": lambda impl: (
            lambda pool: (K.recurrent_gated_delta_rule(q[:3], k[:3], v[:3], gdec[:3], beta[:3], pool,
                                                       slots, impl=impl), pool))(pool_s.clone()),
        "store_kv": lambda impl: (
            lambda kc, vc: (store_kv(ka, va, kc, vc, slots, lengths, impl=impl), kc, vc)[1:])(
                kc_.clone(), vc_.clone()),
        "decode_attention": lambda impl: decode_attention(
            qa, kc_, vc_, slots, lengths, hd**-0.5, impl=impl),
    }
    if subject.experts is not None:
        logits = rnd(T, t.num_experts)
        w13, w2 = subject.experts
        ids = torch.stack([torch.randperm(t.num_experts, generator=g)[: t.num_experts_per_tok]
                           for _ in range(T)]).to(device=device, dtype=torch.int32)
        topw = torch.rand(T, t.num_experts_per_tok, generator=g).to(device)
        xm = rnd(T, H, scale=0.5)
        cases["moe_route"] = lambda impl: K.moe_route(logits, t.num_experts_per_tok, impl=impl)
        cases["moe_experts"] = lambda impl: K.moe_experts(xm, topw, ids, w13, w2, impl=impl)
    return cases


def _check_op(run: Callable[[str], object], device: torch.device, tol: float) -> tuple[float | None, float, str | None]:
    """(max error, seconds of the Triton run, reason it failed or None)."""
    start = time.perf_counter()
    try:
        out = run("triton")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        ref = run("naive")
        err = _rel_max_error(ref, out)
    except Exception as exc:  # compile errors, out of resources, launch failures: all fall back
        return None, time.perf_counter() - start, f"{type(exc).__name__}: {_first_line(exc)}"
    if not err <= tol:
        return err, seconds, f"max error {err:.2e} > tolerance {tol:.0e}"
    return err, seconds, None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "no message")[:200]


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(path: Path, env: str, key: str, results: list[Result]) -> None:
    data = _load(path)
    data.setdefault(env, {})[key] = {
        r.op: {k: v for k, v in asdict(r).items() if k not in ("op", "cached")} for r in results}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError as exc:  # a read-only home must not stop the run
        log.debug("self-check cache not written: %s", exc)


def cached(subject: Subject) -> dict[str, dict]:
    """The cached results of this model on its device ({} when never checked)."""
    return _load(cache_path()).get(environment_key(subject.device), {}).get(model_key(subject), {})


def record_graphs(model, reason: str | None) -> None:
    """Remember whether CUDA graphs of this model worked here (reason None) or why not."""
    subject = subject_of(model)
    path, env, key = cache_path(), environment_key(subject.device), model_key(subject)
    data = _load(path)
    entry = data.setdefault(env, {}).setdefault(key, {})
    entry[GRAPHS] = {"path": "eager" if reason else "graphs", "reason": reason}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        log.debug("self-check cache not written: %s", exc)


def graphs_failed(model) -> str | None:
    """Why CUDA graphs failed before for this model here, or None."""
    entry = cached(subject_of(model)).get(GRAPHS) or {}
    return entry.get("reason") if entry.get("path") == "eager" else None


def run_checks(model, *, force: bool = False, warn: Callable[[str], None] | None = None,
               ops: set[str] | None = None) -> list[Result]:
    """Check every Triton op for `model` (a Model or a Subject; from the cache unless `force`),
    route the failures to PyTorch (`_dispatch.set_fallback`) and warn once per failed op.
    `ops` limits the check to those ops. -> one Result per op."""
    warn = warn or log.warning
    subject = model if isinstance(model, Subject) else subject_of(model)
    device = subject.device
    env, key = environment_key(device), model_key(subject)
    stored = cached(subject)
    previous = {} if force else stored
    tol = TOLERANCE[subject.dtype]
    results: list[Result] = []
    fresh = False
    with torch.inference_mode():
        cases = _cases(subject)
        for op, run in cases.items():
            if ops is not None and op not in ops:
                continue
            entry = previous.get(op)
            if entry is not None:
                result = Result(op, entry["path"], entry.get("max_error"), entry.get("tolerance"),
                                entry.get("seconds", 0.0), entry.get("reason"), cached=True)
            else:
                _dispatch.set_fallback(op, None)
                err, seconds, reason = _check_op(run, device, tol)
                result = Result(op, "pytorch" if reason else "triton", err, tol, round(seconds, 4),
                                reason)
                fresh = True
            results.append(result)
    for r in results:
        _dispatch.set_fallback(r.op, r.reason)
        if r.reason:
            warn(f"{r.op}: the Triton kernel failed its self-check on this GPU ({r.reason}); "
                 "using the PyTorch path")
    if fresh:
        kept = list(results)
        done = {r.op for r in results}
        for op, entry in stored.items():
            if op not in done and op != GRAPHS:
                kept.append(Result(op, entry["path"], entry.get("max_error"), entry.get("tolerance"),
                                   entry.get("seconds", 0.0), entry.get("reason")))
        if GRAPHS in stored:
            graphs = stored[GRAPHS]
            kept.append(Result(GRAPHS, graphs["path"], reason=graphs.get("reason")))
        _save(cache_path(), env, key, kept)
    return results

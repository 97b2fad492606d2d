"""`docextract doctor`: what is installed and whether it is usable. Reads nothing from the
network and nothing of the user's documents."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__

DEPENDENCIES = ("torch", "triton", "numpy", "typer", "rich", "pydantic", "pymupdf", "pillow",
                "pillow-heif", "safetensors", "tokenizers", "jinja2", "huggingface_hub")
REQUIRED_IMPORTS = ("torch", "numpy", "typer", "rich", "pydantic", "pymupdf", "PIL",
                    "safetensors", "tokenizers", "jinja2")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _model_problem(model: str, path: Path) -> str | None:
    """Why the configured model cannot be used, read from the local disk only (a repository id
    that is not downloaded yet is fine: run and batch download it)."""
    import json

    from .pipeline import _looks_like_path

    if not path.is_dir():
        return "no such model folder" if _looks_like_path(model) else None
    config = path / "config.json"
    if not config.is_file():
        return "no config.json in the model folder"
    try:
        if not isinstance(json.loads(config.read_bytes()), dict):
            return "config.json is not a JSON object"
    except (OSError, ValueError, RecursionError) as exc:
        return f"config.json cannot be read ({type(exc).__name__})"
    if not any(path.glob("*.safetensors")):
        return "no .safetensors weights in the model folder"
    return None


def check() -> dict[str, Any]:
    report: dict[str, Any] = {
        "docextract": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "dependencies": {d: _version(d) for d in DEPENDENCIES},
    }
    problems: list[str] = []
    for mod in REQUIRED_IMPORTS:
        try:
            __import__(mod)
        except Exception as exc:  # any import failure makes the install unusable
            problems.append(f"cannot import {mod}: {type(exc).__name__}")
    gpu: dict[str, Any] = {"cuda": False}
    try:
        import torch

        report["torch_build"] = torch.__version__
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            gpu = {"cuda": True, "cuda_version": torch.version.cuda, "count": torch.cuda.device_count(),
                   "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                   "capability": f"{props.major}.{props.minor}"}
    except Exception as exc:
        problems.append(f"torch: {type(exc).__name__}: {exc}")
    report["gpu"] = gpu
    try:
        import triton  # noqa: F401

        report["triton"] = "usable on GPU" if gpu["cuda"] else "installed (kernels run on GPU only; CPU uses the PyTorch path)"
    except Exception as exc:
        report["triton"] = f"unavailable: {type(exc).__name__}"
    model = os.environ.get("DOCEXTRACT_MODEL")
    if model is None:
        report["model"] = {"configured": False}
    else:
        p = Path(model).expanduser()
        report["model"] = {"configured": True, "value": model,
                           "local_dir": p.is_dir(), "has_config": (p / "config.json").is_file()}
        problem = _model_problem(model, p)
        if problem:
            problems.append(f"DOCEXTRACT_MODEL={model}: {problem}")
    report["offline"] = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    report["problems"] = problems
    report["usable"] = not problems
    report["summary"] = {
        "docextract": __version__,
        "python": f"{report['python']} ({sys.executable})",
        "torch": report.get("torch_build", "missing"),
        "gpu": (f"{gpu['name']}, {gpu['memory_gib']} GiB" if gpu["cuda"] else "none (CPU only)"),
        "triton": report["triton"],
        "model": (model if model else "not configured (--model DIR or DOCEXTRACT_MODEL)"),
        "status": "ok" if not problems else "; ".join(problems),
    }
    return report


def gpu_check(device: str = "auto") -> dict[str, Any]:
    """`doctor --gpu`: the engine's first-use self-check (engine/selfcheck.py) run now, every
    Triton op against its PyTorch reference on small random inputs of the configured model's sizes
    (DOCEXTRACT_MODEL's config.json; else Qwen3.5-35B-A3B's) and one layer of random experts in
    the format the engine would load, then a CUDA-graph capture of a tiny random model. Updates
    the self-check cache. On the CPU it runs only through the Triton interpreter (tests)."""
    import time

    import torch

    from .engine import randomckpt, selfcheck
    from .engine.config import ModelConfig, load_config
    from .engine.quant import resolve_experts
    from .kernels._dispatch import interpreter_on

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    out: dict[str, Any] = {"device": str(dev), "rows": [], "ok": True}
    if dev.type != "cuda" and not interpreter_on():
        out["note"] = "no CUDA device: the Triton kernels are not used; everything runs on PyTorch"
        return out
    if dev.type == "cuda":
        model_dir = os.environ.get("DOCEXTRACT_MODEL")
        if model_dir and (Path(model_dir) / "config.json").is_file():
            config, source = load_config(Path(model_dir)), model_dir
        else:
            # a qwen3_5_moe config's defaults are Qwen3.5-35B-A3B's sizes
            config = ModelConfig.from_dict({"model_type": "qwen3_5_moe",
                                            "vision_config": {"out_hidden_size": 2048}})
            model_dir, source = None, "Qwen3.5-35B-A3B sizes"
        fmt, _ = resolve_experts(model_dir, config, "bf16", torch.cuda.get_device_capability(dev))
        dtype = torch.bfloat16
        out["gpu"] = torch.cuda.get_device_name(dev)
    else:
        config, source, fmt, dtype = randomckpt.model_config("moe", "tiny"), "tiny random model", \
            "float", torch.float32
    out["model"] = f"{source} ({str(dtype).removeprefix('torch.')}, {fmt} experts)"
    warnings: list[str] = []
    subject = selfcheck.random_subject(config.text_config, dtype, dev, fmt)
    for r in selfcheck.run_checks(subject, force=True, warn=warnings.append):
        out["rows"].append({"op": r.op, "path": r.path, "max_error": r.max_error,
                            "seconds": r.seconds, "reason": r.reason})
    if dev.type == "cuda":
        from .engine.graphs import DecodeGraphs

        start = time.perf_counter()
        tiny = randomckpt.random_model(randomckpt.model_config("moe", "tiny"), dev, dtype, seed=0)
        graphs = DecodeGraphs(tiny, tiny.make_cache(2, 64), buckets=(1, 2), warn=warnings.append)
        out["rows"].append({"op": selfcheck.GRAPHS, "path": "graphs" if graphs.enabled else "eager",
                            "max_error": None, "seconds": round(time.perf_counter() - start, 4),
                            "reason": graphs.disabled_reason})
    out["ok"] = all(r["reason"] is None for r in out["rows"])
    return out


def gpu_table(report: dict[str, Any]) -> str:
    """The `doctor --gpu` table: op, path used, max error, time (and why an op fell back)."""
    lines = [f"device: {report['device']}" + (f" ({report['gpu']})" if report.get("gpu") else "")]
    if report.get("note"):
        return "\n".join(lines + [report["note"]])
    lines.append(f"model:  {report['model']}")
    lines.append(f"{'op':<28} {'path':<8} {'max error':>10} {'time s':>8}")
    for r in report["rows"]:
        err = "-" if r["max_error"] is None else f"{r['max_error']:.2e}"
        why = f"  {r['reason']}" if r["reason"] else ""
        lines.append(f"{r['op']:<28} {r['path']:<8} {err:>10} {r['seconds']:>8.3f}{why}")
    return "\n".join(lines)

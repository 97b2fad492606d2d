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

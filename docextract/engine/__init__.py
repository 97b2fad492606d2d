"""docextract's own inference engine for the Qwen3.5 family (PyTorch + Triton).

Importing this package does not import torch; `Engine` is loaded on first use.
"""

from .api import Completion, EngineLike, Request

__all__ = ["Completion", "Engine", "EngineLike", "Request"]


def __getattr__(name: str):
    if name == "Engine":
        from .engine import Engine

        return Engine
    raise AttributeError(name)

"""Tile configurations of the grouped GEMMs, read from JSON files, never written in code.

configs/<GPU>.json (the CUDA device name with every run of non-alphanumerics as "_", e.g.
NVIDIA_H200.json) is searched first, then configs/default.json. A file holds
    {"entries": [{"match": {"E": 256, "N": 1024, "K": 2048, "dtype": "int4"},
                  "by_m": {"16": {"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128,
                                  "num_warps": 4, "num_stages": 3}, ...}}, ...]}
where `match` may name any subset of E (experts), N (output width of the weight), K (input
width), dtype (weight format: bf16, fp16, fp32, int8, int4, fp8); the matching entry naming the
most keys wins (the first on a tie), and in it the smallest `by_m` bucket >= M (tokens in the
call), else the largest bucket.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"
KEYS = ("E", "N", "K", "dtype")
TILE_KEYS = ("BLOCK_M", "BLOCK_N", "BLOCK_K")


def config_file_name(gpu: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", gpu).strip("_") + ".json"


@functools.lru_cache(maxsize=16)
def _read(path: Path) -> tuple:
    """The entries of one file, as (match, by_m) pairs sorted by bucket; () when absent."""
    if not path.is_file():
        return ()
    entries = json.loads(path.read_text())["entries"]
    out = []
    for entry in entries:
        unknown = set(entry["match"]) - set(KEYS)
        if unknown:
            raise ValueError(f"{path.name}: unknown match keys {sorted(unknown)}")
        buckets = tuple(sorted((int(m), cfg) for m, cfg in entry["by_m"].items()))
        out.append((entry["match"], buckets))
    return tuple(out)


def validate(cfg: dict, dtype: str, source: str) -> dict:
    """A copy of cfg, or ValueError when its tiles do not suit the weight format."""
    for key in TILE_KEYS:
        value = cfg.get(key)
        if not isinstance(value, int) or value < 16 or value & (value - 1):
            raise ValueError(f"{source}: {key} must be a power of two >= 16, got {value!r}")
    if dtype in ("int4", "fp8") and 128 % cfg["BLOCK_K"]:
        raise ValueError(f"{source}: {dtype} scales groups of 128 inputs, BLOCK_K must divide 128")
    return dict(cfg)


def get_config(
    E: int,
    N: int,
    K: int,
    dtype: str,
    M: int,
    gpu: str | None = None,
    directory: Path = CONFIG_DIR,
) -> dict:
    """Tiles for a grouped GEMM of M tokens over E experts with weights [E, N, K] in `dtype`."""
    wanted = {"E": E, "N": N, "K": K, "dtype": dtype}
    files = ([directory / config_file_name(gpu)] if gpu else []) + [directory / "default.json"]
    for path in files:
        best = None
        for match, buckets in _read(path):
            fits = all(wanted[key] == value for key, value in match.items())
            if fits and (best is None or len(match) > len(best[0])):
                best = (match, buckets)
        if best is not None:
            buckets = best[1]
            cfg = next((c for m, c in buckets if m >= M), buckets[-1][1])
            return validate(cfg, dtype, path.name)
    raise ValueError(f"no MoE tile config matches {wanted} in {[p.name for p in files]}")

"""Tile configurations of the grouped GEMMs, read from JSON files, never written in code.

configs/<GPU>.json (the CUDA device name with every run of non-alphanumerics as "_", e.g.
NVIDIA_H200.json) is searched first, then configs/default.json. A file holds
    {"entries": [{"match": {"E": 256, "N": 1024, "K": 2048, "dtype": "int4"},
                  "by_m": {"16": {"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128,
                                  "num_warps": 4, "num_stages": 3}, ...}}, ...]}
where `match` may name any subset of E (experts), N (output width of the weight), K (input
width), dtype (weight format: bf16, fp16, fp32, int8, int4, fp8) and act (activation dtype: bf16,
fp16, fp32; the dot runs in it, so fp32 activations need twice the shared memory of 16-bit
ones); the matching entry naming the most keys wins (the first on a tie), and in it the smallest
`by_m` bucket >= M (tokens in the call), else the largest bucket.

`fit` then lowers num_stages, BLOCK_N and BLOCK_K until the estimated shared memory fits the
device's per-block limit (`shared_memory_per_block_optin`), so that a config tuned on an H100 still
launches on a 99 KiB consumer card.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"
KEYS = ("E", "N", "K", "dtype", "act")
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
    act: str = "bf16",
) -> dict:
    """Tiles for a grouped GEMM of M tokens over E experts with weights [E, N, K] in `dtype` and
    activations in `act`."""
    wanted = {"E": E, "N": N, "K": K, "dtype": dtype, "act": act}
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


ACT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


# bytes per weight element as stored (the formats the grouped GEMM loads)
WEIGHT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "int8": 1, "fp8": 1, "int4": 0.5}


def shared_bytes(cfg: dict, act: str, gated: bool, weight: str | None = None) -> int:
    """Estimated shared memory of one program: num_stages - 1 buffered K steps of the activation
    tile [BLOCK_M, BLOCK_K] and the weight tile(s) [BLOCK_K, BLOCK_N] (two when gated), 16-bit and
    fp32 weights counted in the activation dtype (they are converted before the dot), packed ones
    as stored. Equal to what Triton 3.9 reports for the 16-bit and fp32 configs, above it for the
    8- and 4-bit formats (tests/kernels/compile_targets.py)."""
    wbytes = ACT_BYTES[act] if weight in (None, "bf16", "fp16", "fp32") else WEIGHT_BYTES[weight]
    a = cfg["BLOCK_M"] * cfg["BLOCK_K"] * ACT_BYTES[act]
    w = (2 if gated else 1) * cfg["BLOCK_K"] * cfg["BLOCK_N"] * wbytes
    return int(max(1, cfg.get("num_stages", 2) - 1) * (a + w))


def fit(cfg: dict, act: str, gated: bool, limit: int, weight: str | None = None) -> dict:
    """cfg with num_stages, then BLOCK_N, then BLOCK_K lowered until `shared_bytes` <= limit."""
    cfg = dict(cfg)
    while shared_bytes(cfg, act, gated, weight) > limit:
        if cfg.get("num_stages", 2) > 2:
            cfg["num_stages"] -= 1
        elif cfg["BLOCK_N"] > 32:
            cfg["BLOCK_N"] //= 2
        elif cfg["BLOCK_K"] > 32:
            cfg["BLOCK_K"] //= 2
        else:
            break
    return cfg

"""Warm-up of a session's shapes when it opens, so that no document pays a kernel compile.

Triton compiles a kernel once per distinct specialisation: its constexprs (block sizes picked
from the sequence count, the MoE tile bucket picked from the token count) and its integer
arguments (1, or a multiple of 16, or neither). `plan` lists packed prefills and decode steps that
reach each class a session of `slots` sequences can meet; `warm_up` runs them in the session's own
cache (the slots used are reset afterwards) with a progress line.
"""

from __future__ import annotations

import contextlib
import time

import torch

from .qwen3_5 import Batch

# MoE tile buckets are picked by tokens per call: <= 16, <= 256, more (kernels/moe/configs)
LARGE_PREFILL = 300


def plan(slots: int, slot_tokens: int, decode_batches: list[int] | None = None) -> list[tuple[str, list[int]]]:
    """[("prefill", sequence lengths) | ("decode", [batch size])] for a session of `slots`."""
    steps: list[tuple[str, list[int]]] = []
    counts = []
    s = 1
    while s <= slots:
        counts.append(s)
        s *= 2
    if counts[-1] != slots:
        counts.append(slots)
    for s in counts:
        for n in (16, 17, max(17, -(-LARGE_PREFILL // s))):
            n = min(n, slot_tokens)
            if ("prefill", [n] * s) not in steps:
                steps.append(("prefill", [n] * s))
    for b in decode_batches if decode_batches is not None else counts:
        steps.append(("decode", [b]))
    return steps


def warm_up(model, sched, console=None) -> float:
    """Run the session's shapes once (see `plan`); -> seconds spent. `sched` is the session's
    scheduler: its cache holds the state, its decode graphs (when any) were captured already."""
    cache = sched.cache
    graphs = sched.graphs
    # with graphs (or their eager padded step) decode runs only the bucket sizes
    decode = [] if graphs is not None and graphs.enabled else None
    if graphs is not None and not graphs.enabled:
        decode = list(graphs.buckets)
    steps = plan(cache.num_slots, cache.max_len, decode)
    device = model.device
    start = time.perf_counter()
    bar_cm = (console.progress("warm-up: compiling the GPU kernels for this session's shapes",
                               total=len(steps)) if console is not None
              else contextlib.nullcontext(None))
    with torch.inference_mode(), bar_cm as bar:
        for kind, sizes in steps:
            if kind == "prefill":
                slots = list(range(len(sizes)))
                cache.reset(slots)
                T = sum(sizes)
                x = model.embed(torch.zeros(T, dtype=torch.long, device=device), images=False)
                pos = torch.zeros(3, T, dtype=torch.long, device=device)
                model(x, Batch(list(sizes), pos, cache, slots))
                cache.reset(slots)
            elif graphs is not None:
                # all rows padding: no state changes
                graphs._slots[: sizes[0]].fill_(-1)
                graphs._step(sizes[0])
            else:
                b = sizes[0]
                slots = list(range(b))
                cache.reset(slots)
                x = model.embed(torch.zeros(b, dtype=torch.long, device=device), images=False)
                pos = torch.zeros(3, b, dtype=torch.long, device=device)
                model(x, Batch([1] * b, pos, cache, slots))
                cache.reset(slots)
            if bar is not None:
                bar.update(1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return time.perf_counter() - start

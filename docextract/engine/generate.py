"""Generation: prompts (ids with expanded image pads, images, grammar constraint), the packed
prefill that runs the vision tower once for all of them, and the loops over the scheduler.

`generate_step` is a generator in the style of mlx-lm's: it yields the tokens of each step and
drops sequences as they finish; `generate` runs to the end. Both hand the work to
`scheduler.Scheduler` (continuous batching over a slot pool). Sampling is a plain callable on
fp32 logits (greedy by default); every sequence has its own `logits_processors`, callables
(generated_ids, logits[V]) -> logits[V], and an optional grammar `constraint` that masks and
forces tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ModelError
from .processor import mrope_positions
from .progress import ProgressFn, Work
from .qwen3_5 import Batch, Model
from .scheduler import greedy

LogitsProcessor = Callable[[list[int], torch.Tensor], torch.Tensor]
Sampler = Callable[[torch.Tensor], int]




@dataclass
class Prompt:
    """One sequence to continue: ids with expanded <|image_pad|> runs, and its images."""

    input_ids: torch.Tensor  # [T] long
    pixel_values: torch.Tensor | None = None  # [N, patch_dim]
    image_grid_thw: torch.Tensor | None = None  # [n, 3]
    max_new_tokens: int = 256
    logits_processors: list[LogitsProcessor] = field(default_factory=list)
    # A grammar state (engine/constrain.py SequenceConstraint) that masks and forces tokens.
    constraint: Any = None
    # Record each generated token's log-probability (Generation.logprobs).
    logprobs: bool = False


@dataclass
class Generation:
    tokens: list[int]
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    # With Prompt.logprobs (see api.Completion): log-probability and grammar-forced flag per token.
    logprobs: list[float | None] | None = None
    forced: list[bool] | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _prepare(model: Model, prompts: Sequence[Prompt], progress: ProgressFn | None = None,
             ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[int]]:
    """Embeddings [T_s, H], positions [3, T_s] and rope delta of each prompt; the vision tower
    runs once over the images of all prompts."""
    merge = model.config.vision_config.spatial_merge_size
    with_images = [p for p in prompts if p.pixel_values is not None and p.pixel_values.shape[0]]
    image_embeds: dict[int, torch.Tensor] = {}
    if with_images:
        grids = torch.cat([p.image_grid_thw for p in with_images])
        after_block = None
        if progress is not None:
            depth, n = len(model.model.visual.blocks), len(with_images)
            after_block = lambda i: progress(Work("vision", i, depth, n))  # noqa: E731
        embeds = model.encode_images(torch.cat([p.pixel_values for p in with_images]), grids,
                                     after_block)
        sizes = [int(g.prod()) // (merge * merge) for p in with_images for g in p.image_grid_thw]
        parts = iter(embeds.split(sizes))
        for p in with_images:
            image_embeds[id(p)] = torch.cat([next(parts) for _ in range(p.image_grid_thw.shape[0])])
    embeds, positions, deltas = [], [], []
    for p in prompts:
        ids = p.input_ids.reshape(-1)
        if ids.numel() == 0:
            raise ModelError("engine: empty prompt")
        grid = p.image_grid_thw if id(p) in image_embeds else None
        pos, delta = mrope_positions(ids, grid, model.config.image_token_id, merge)
        embeds.append(model.embed(ids, image_embeds.get(id(p))))
        positions.append(pos.to(model.device))
        deltas.append(delta)
    return embeds, positions, deltas


def prefill(
    model: Model, prompts: Sequence[Prompt], cache, slots: Sequence[int], chunk: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[torch.Tensor, list[int], float]:
    """Feed every prompt into its cache slot. -> (last-token logits [S, V] fp32, rope deltas, vision seconds).

    With `chunk`, at most `chunk` tokens of each prompt go into one forward (chunked prefill).
    `progress` receives vision blocks and prompt tokens done (engine/progress.py).
    """
    start = time.perf_counter()
    embeds, positions, deltas = _prepare(model, prompts, progress)
    _sync(model.device)
    vision_s = time.perf_counter() - start
    lengths = [e.shape[0] for e in embeds]
    step = chunk or max(lengths)
    last: list[torch.Tensor | None] = [None] * len(prompts)
    total, done = sum(lengths), 0
    if progress is not None:
        progress(Work("prefill", 0, total, len(prompts)))
    for lo in range(0, max(lengths), step):
        active = [s for s, n in enumerate(lengths) if n > lo]
        pieces = [(min(lengths[s], lo + step) - lo) for s in active]
        x = torch.cat([embeds[s][lo : lo + step] for s in active])
        pos = torch.cat([positions[s][:, lo : lo + step] for s in active], dim=1)
        hidden = model(x, Batch(pieces, pos, cache, [slots[s] for s in active]))
        ends = torch.tensor(pieces).cumsum(0) - 1
        for s, row in zip(active, ends.tolist()):
            if lengths[s] <= lo + step:
                last[s] = hidden[row]
        if progress is not None:
            done += sum(pieces)
            progress(Work("prefill", done, total, len(prompts)))
    logits = model.lm_logits(torch.stack(last)).float()
    return logits, deltas, vision_s


def _scheduler(model: Model, prompts: Sequence[Prompt], stop_ids: Sequence[int], sampler: Sampler,
               prefill_chunk: int | None, max_batch: int | None, progress: ProgressFn | None = None):
    """A scheduler sized for `prompts` (at most `max_batch` slots) with every prompt queued."""
    from .scheduler import Scheduler

    if any(p.max_new_tokens < 1 for p in prompts):
        raise ModelError("engine: max_new_tokens must be at least 1")
    slots = min(len(prompts), max_batch or len(prompts))
    max_len = max(p.input_ids.numel() + p.max_new_tokens for p in prompts)
    sched = Scheduler(model, num_slots=slots, max_len=max_len, stop_ids=stop_ids,
                      sampler=sampler, prefill_chunk=prefill_chunk, progress=progress)
    for i, p in enumerate(prompts):
        sched.add(p, i)
    return sched


def generate_step(
    model: Model,
    prompts: Sequence[Prompt],
    *,
    stop_ids: Sequence[int] = (),
    sampler: Sampler = greedy,
    prefill_chunk: int | None = None,
    timings: dict[str, float] | None = None,
    max_batch: int | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[list[tuple[int, int]]]:
    """Yield, step after step, (prompt index, token) for every token appended in that step.

    At most `max_batch` prompts run at once (default: all); the next one joins as soon as one
    finishes (continuous batching, engine/scheduler.py). A sequence stops after a token in
    `stop_ids` (which it yields) or after its max_new_tokens. A sequence with a grammar
    `constraint` may append several tokens in one step (the tokens the grammar forces are fed to
    the model together). `timings`, when given, receives vision_s, prefill_s and decode_s (of the
    last sequence to finish) and mask_s (all masks). `progress` receives the work done
    (engine/progress.py).
    """
    if not prompts:
        return
    sched = _scheduler(model, prompts, stop_ids, sampler, prefill_chunk, max_batch, progress)
    timings = {} if timings is None else timings
    try:
        while sched.has_work:
            events, finished = sched.step()
            for seq in finished:
                timings.update(seq.timings)
            yield events
        timings["mask_s"] = sched.stats["mask_s"]
    finally:
        sched.close()


def generate(
    model: Model,
    prompts: Sequence[Prompt],
    *,
    stop_ids: Sequence[int] = (),
    sampler: Sampler = greedy,
    prefill_chunk: int | None = None,
    max_batch: int | None = None,
    progress: ProgressFn | None = None,
) -> list[Generation]:
    """Run every prompt to the end (continuously batched, `max_batch` at once): tokens (a final
    stop token included), finish reason and each sequence's own timings. `progress` receives the
    work done (engine/progress.py)."""
    if not prompts:
        return []
    sched = _scheduler(model, prompts, stop_ids, sampler, prefill_chunk, max_batch, progress)
    done: dict[int, object] = {}
    try:
        while sched.has_work:
            for seq in sched.step()[1]:
                done[seq.index] = seq
    finally:
        sched.close()
    return [Generation(tokens=done[i].generated, finish_reason=done[i].finish_reason,
                       prompt_tokens=p.input_ids.numel(), timings=dict(done[i].timings),
                       logprobs=done[i].logprobs, forced=done[i].forced_flags)
            for i, p in enumerate(prompts)]

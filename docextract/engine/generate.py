"""Batched generation: vision once, packed prefill, then one token per sequence per step.

`generate_step` is a generator in the style of mlx-lm's: it yields the tokens of each step and
drops sequences as they finish. Sampling is a plain callable on fp32 logits (greedy by default)
and every sequence has its own `logits_processors`, callables (generated_ids, logits[V]) ->
logits[V], applied in order before sampling (issue 5 plugs the JSON-grammar mask in there).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ModelError
from .processor import mrope_positions
from .qwen3_5 import Batch, Model

LogitsProcessor = Callable[[list[int], torch.Tensor], torch.Tensor]
Sampler = Callable[[torch.Tensor], int]


def greedy(logits: torch.Tensor) -> int:
    return int(torch.argmax(logits))


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


@dataclass
class Generation:
    tokens: list[int]
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    timings: dict[str, float] = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _prepare(model: Model, prompts: Sequence[Prompt]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[int]]:
    """Embeddings [T_s, H], positions [3, T_s] and rope delta of each prompt; the vision tower
    runs once over the images of all prompts."""
    merge = model.config.vision_config.spatial_merge_size
    with_images = [p for p in prompts if p.pixel_values is not None and p.pixel_values.shape[0]]
    image_embeds: dict[int, torch.Tensor] = {}
    if with_images:
        grids = torch.cat([p.image_grid_thw for p in with_images])
        embeds = model.encode_images(torch.cat([p.pixel_values for p in with_images]), grids)
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
    model: Model, prompts: Sequence[Prompt], cache, slots: Sequence[int], chunk: int | None = None
) -> tuple[torch.Tensor, list[int], float]:
    """Feed every prompt into its cache slot. -> (last-token logits [S, V] fp32, rope deltas, vision seconds).

    With `chunk`, at most `chunk` tokens of each prompt go into one forward (chunked prefill).
    """
    start = time.perf_counter()
    embeds, positions, deltas = _prepare(model, prompts)
    _sync(model.device)
    vision_s = time.perf_counter() - start
    lengths = [e.shape[0] for e in embeds]
    step = chunk or max(lengths)
    last: list[torch.Tensor | None] = [None] * len(prompts)
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
    logits = model.lm_logits(torch.stack(last)).float()
    return logits, deltas, vision_s


def _choose(prompt: Prompt, generated: list[int], scores: torch.Tensor, sampler: Sampler,
            stops: set[int], timings: dict[str, float]) -> tuple[list[int], bool]:
    """The tokens a sequence appends this step and whether it is done. Without a constraint:
    one sampled token. With one: the tokens the grammar forces (no sampling), else one sampled
    token under the grammar's mask followed by whatever the grammar then forces; once the JSON
    value is complete, a stop token is appended without another model call."""
    for proc in prompt.logits_processors:
        scores = proc(generated, scores)
    c = prompt.constraint
    if c is None:
        token = sampler(scores)
        return [token], token in stops
    start = time.perf_counter()
    tokens = c.forced()
    for t in tokens:
        c.accept(t)
    if not tokens:
        allowed = c.allowed().to(scores.device)
        if allowed.shape[0] < scores.shape[0]:
            allowed = torch.nn.functional.pad(allowed, (0, scores.shape[0] - allowed.shape[0]))
        scores = scores.masked_fill(~allowed[: scores.shape[0]], float("-inf"))
        timings["mask_s"] = timings.get("mask_s", 0.0) + time.perf_counter() - start
        token = sampler(scores)
        start = time.perf_counter()
        if token in stops:
            timings["mask_s"] += time.perf_counter() - start
            return [token], True
        c.accept(token)
        tokens = [token]
        for t in c.forced():
            c.accept(t)
            tokens.append(t)
    done = False
    if c.finished:
        tokens.append(c.stop_token)
        done = True
    timings["mask_s"] = timings.get("mask_s", 0.0) + time.perf_counter() - start
    return tokens, done


def generate_step(
    model: Model,
    prompts: Sequence[Prompt],
    *,
    stop_ids: Sequence[int] = (),
    sampler: Sampler = greedy,
    prefill_chunk: int | None = None,
    timings: dict[str, float] | None = None,
) -> Iterator[list[tuple[int, int]]]:
    """Yield, step after step, (prompt index, token) for every token appended this step.

    A sequence stops after a token in `stop_ids` (which it yields) or after its max_new_tokens.
    A sequence with a grammar `constraint` may append several tokens in one step (the tokens the
    grammar forces are fed to the model together, in one forward). `timings`, when given,
    receives vision_s, prefill_s, decode_s and (with constraints) mask_s.
    """
    stops = set(stop_ids)
    budget = [p.max_new_tokens for p in prompts]
    if any(b < 1 for b in budget):
        raise ModelError("engine: max_new_tokens must be at least 1")
    max_len = max(p.input_ids.numel() + b for p, b in zip(prompts, budget))
    slots = list(range(len(prompts)))
    generated: list[list[int]] = [[] for _ in prompts]
    timings = {} if timings is None else timings
    with torch.inference_mode():
        cache = model.make_cache(len(prompts), max_len)
        start = time.perf_counter()
        logits, deltas, timings["vision_s"] = prefill(model, prompts, cache, slots, prefill_chunk)
        _sync(model.device)
        timings["prefill_s"] = time.perf_counter() - start
        running = list(range(len(prompts)))
        decode_start = time.perf_counter()
        while running:
            step, still, fresh = [], [], []
            for row, s in enumerate(running):
                tokens, done = _choose(prompts[s], generated[s], logits[row], sampler, stops, timings)
                tokens = tokens[: budget[s] - len(generated[s])]
                generated[s].extend(tokens)
                step.extend((s, t) for t in tokens)
                if not done and len(generated[s]) < budget[s]:
                    still.append(s)
                    fresh.append(tokens)
            yield step
            running = still
            if not running:
                break
            ids = torch.tensor([t for tokens in fresh for t in tokens], device=model.device)
            pos = torch.cat([torch.arange(len(tokens)) + cache.lengths[s] + deltas[s]
                             for s, tokens in zip(running, fresh)]).to(model.device)
            hidden = model(model.embed(ids), Batch([len(t) for t in fresh], pos.expand(3, -1), cache, running))
            last = torch.tensor([len(t) for t in fresh]).cumsum(0) - 1
            logits = model.lm_logits(hidden[last.to(hidden.device)]).float()
        _sync(model.device)
        timings["decode_s"] = time.perf_counter() - decode_start


def generate(
    model: Model,
    prompts: Sequence[Prompt],
    *,
    stop_ids: Sequence[int] = (),
    sampler: Sampler = greedy,
    prefill_chunk: int | None = None,
) -> list[Generation]:
    """Run `generate_step` to the end: tokens (a final stop token included) and finish reason."""
    timings: dict[str, float] = {}
    tokens: list[list[int]] = [[] for _ in prompts]
    for step in generate_step(
        model, prompts, stop_ids=stop_ids, sampler=sampler, prefill_chunk=prefill_chunk, timings=timings
    ):
        for s, token in step:
            tokens[s].append(token)
    stops = set(stop_ids)
    return [
        Generation(
            tokens=t,
            finish_reason="stop" if t and t[-1] in stops else "length",
            prompt_tokens=p.input_ids.numel(),
            timings=dict(timings),
        )
        for p, t in zip(prompts, tokens)
    ]

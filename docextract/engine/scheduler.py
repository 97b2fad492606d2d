"""Continuous batching: many sequences share one state-slot pool and one forward per step.

A `Scheduler` owns a cache (a KV slot per sequence for the attention layers, conv + recurrent
state per sequence for the DeltaNet layers), allocated once. Sequences wait in a queue; a step
either admits waiting sequences into free slots and prefills them together (packed, within a
token budget, the vision tower run once for all their images), or decodes every running sequence
in one forward. A sequence that finishes frees its slot at once, so the next waiting one joins at
the following step. Nothing is copied between steps: each sequence reads and writes its own slot.

Grammar masks are computed on the grammar library's worker threads while the forward runs (a
background thread hands them to it), then applied to the whole batch of logits at once. Tokens
the grammar forces are appended without sampling and fed together in the next forward.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from ..errors import ModelError
from .constrain import bitmask_to_bool
from .progress import ProgressFn, Work
from .qwen3_5 import Batch, Model

Sampler = Callable[[torch.Tensor], int]


def greedy(logits: torch.Tensor) -> int:
    return int(torch.argmax(logits))


@dataclass
class Sequence_:
    """One prompt on its way through the scheduler."""

    index: int
    prompt: object  # generate.Prompt
    slot: int = -1
    delta: int = 0
    generated: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # appended, not yet fed to the model
    forced: list[int] = field(default_factory=list)  # what the grammar forces at this step
    finish_reason: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    # With prompt.logprobs: per generated token, its log-probability before any mask (None where
    # not computed) and whether the grammar forced it.
    logprobs: list[float | None] | None = None
    forced_flags: list[bool] | None = None

    @property
    def budget(self) -> int:
        return self.prompt.max_new_tokens


class Scheduler:
    """Waiting and running queues over a fixed pool of `num_slots` cache slots of `max_len`."""

    def __init__(self, model: Model, *, num_slots: int, max_len: int, stop_ids: Sequence[int] = (),
                 sampler: Sampler = greedy, prefill_tokens: int = 16384,
                 prefill_chunk: int | None = None, graphs: bool | None = False,
                 progress: ProgressFn | None = None):
        if num_slots < 1:
            raise ModelError("engine: the state pool needs at least one slot")
        self.model = model
        self.cache = model.make_cache(num_slots, max_len)
        self.max_len = max_len
        self.stops = set(stop_ids)
        self.sampler = sampler
        self.prefill_tokens = prefill_tokens
        self.prefill_chunk = prefill_chunk
        # Called with the work done (engine/progress.py): vision, prefill chunks, decode steps.
        self.progress = progress
        # CUDA graphs of the decode step (engine/graphs.py); None: when the model is on CUDA with
        # the Triton kernels. With graphs every decode step feeds one token per sequence, so that
        # tokens the grammar forces are fed over several graph replays instead of one eager
        # forward with longer pieces.
        self.graphs = None
        if graphs or (graphs is None and model.device.type == "cuda"):
            from ..kernels import _dispatch
            from .graphs import DecodeGraphs

            if graphs or _dispatch.use_triton(model.kernels, self.cache.lengths_dev):
                self.graphs = DecodeGraphs(model, self.cache)
        self.free = list(range(num_slots - 1, -1, -1))
        self.waiting: deque[Sequence_] = deque()
        self.running: list[Sequence_] = []
        self._masks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docextract-mask")
        self.stats = {"steps": 0, "prefill_steps": 0, "forward_s": 0.0, "mask_s": 0.0,
                      "mask_wait_s": 0.0}

    def add(self, prompt, index: int) -> Sequence_:
        n = prompt.input_ids.numel()
        if n == 0:
            raise ModelError("engine: empty prompt")
        if prompt.max_new_tokens < 1:
            raise ModelError("engine: max_new_tokens must be at least 1")
        if n + 1 > self.max_len:
            raise ModelError(f"engine: a prompt of {n} tokens does not fit a cache slot of "
                             f"{self.max_len}")
        prompt.max_new_tokens = min(prompt.max_new_tokens, self.max_len - n)
        seq = Sequence_(index, prompt)
        if getattr(prompt, "logprobs", False):
            seq.logprobs, seq.forced_flags = [], []
        self.waiting.append(seq)
        return seq

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def close(self) -> None:
        self._masks.shutdown(wait=True)

    def step(self) -> tuple[list[tuple[int, int]], list[Sequence_]]:
        """One forward. -> ((sequence index, token) for every token appended, finished ones)."""
        self.stats["steps"] += 1
        admitted = self._admit()
        if admitted:
            return self._prefill(admitted)
        events, finished = self._decode()
        if self.progress is not None and events:
            running = self.running + finished
            self.progress(Work("decode", sum(len(s.generated) for s in running), None,
                               len(running)))
        return events, finished

    def _admit(self) -> list[Sequence_]:
        admitted: list[Sequence_] = []
        tokens = 0
        while self.waiting and self.free:
            n = self.waiting[0].prompt.input_ids.numel()
            if admitted and tokens + n > self.prefill_tokens:
                break
            seq = self.waiting.popleft()
            seq.slot = self.free.pop()
            self.cache.reset([seq.slot])
            admitted.append(seq)
            tokens += n
        return admitted

    def _prefill(self, admitted: list[Sequence_]):
        from .generate import prefill

        self.stats["prefill_steps"] += 1
        start = time.perf_counter()
        # The first masks depend on the grammars only: computed while the prefill runs.
        masks: Future = self._masks.submit(self._masks_for, admitted)
        with torch.inference_mode():
            logits, deltas, vision_s = prefill(self.model, [s.prompt for s in admitted],
                                               self.cache, [s.slot for s in admitted],
                                               self.prefill_chunk, self.progress)
        allowed = masks.result()
        prefill_s = time.perf_counter() - start
        for seq, delta in zip(admitted, deltas):
            seq.delta = delta
            seq.timings.update(vision_s=vision_s, prefill_s=prefill_s)
            seq.started = time.perf_counter()
        self.running.extend(admitted)
        return self._choose(admitted, logits, allowed)

    def _decode(self):
        seqs = self.running
        if not seqs:
            return [], []
        feed = [s.pending[:1] if self.graphs is not None else s.pending for s in seqs]
        # Sequences that feed their last pending token choose their next ones from this step.
        choosing = [s for s, f in zip(seqs, feed) if len(f) == len(s.pending)]
        lengths = [len(f) for f in feed]
        ids = torch.tensor([t for f in feed for t in f], device=self.model.device)
        pos = torch.cat([torch.arange(n) + self.cache.lengths[s.slot] + s.delta
                         for s, n in zip(seqs, lengths)]).to(self.model.device)
        # The grammar state already includes every pending token: its masks can be computed
        # while the forward runs.
        masks: Future = self._masks.submit(self._masks_for, choosing)
        start = time.perf_counter()
        with torch.inference_mode():
            if self.graphs is not None:
                logits = self.graphs(ids, pos.expand(3, -1), [s.slot for s in seqs])
            else:
                hidden = self.model(self.model.embed(ids, images=False),
                                    Batch(lengths, pos.expand(3, -1), self.cache,
                                          [s.slot for s in seqs]))
                last = torch.tensor(lengths).cumsum(0) - 1
                logits = self.model.lm_logits(hidden[last.to(hidden.device)]).float()
        forward_done = time.perf_counter()
        allowed = masks.result()
        self.stats["forward_s"] += forward_done - start
        self.stats["mask_wait_s"] += time.perf_counter() - forward_done
        for s, f in zip(seqs, feed):
            if len(f) < len(s.pending):
                s.pending = s.pending[len(f):]
        rows = [seqs.index(s) for s in choosing]
        return self._choose(choosing, logits[rows], allowed)

    def _masks_for(self, seqs: Sequence[Sequence_]) -> torch.Tensor | None:
        """bool [S, V] of allowed tokens (None when no sequence is constrained); records what
        each constrained sequence's grammar forces, for which no mask is needed."""
        rows = []
        for i, s in enumerate(seqs):
            c = s.prompt.constraint
            s.forced = [] if c is None else c.forced()
            if c is not None and not s.forced:
                rows.append((c, i))
        if not rows:
            return None
        start = time.perf_counter()
        compiler = rows[0][0].compiler
        bitmask = torch.full((len(seqs), compiler_words(compiler)), -1, dtype=torch.int32)
        compiler.fill_bitmasks(rows, bitmask)
        self.stats["mask_s"] += time.perf_counter() - start
        return bitmask_to_bool(bitmask, compiler.vocab_size)

    def _choose(self, seqs: list[Sequence_], logits: torch.Tensor, allowed: torch.Tensor | None):
        # Only when a sequence asked: what the model believed, before the mask ([S] or None).
        raw, lse = logits, None
        if any(s.logprobs is not None for s in seqs):
            lse = torch.logsumexp(logits, dim=-1)
        if allowed is not None:
            width = min(allowed.shape[1], logits.shape[1])
            logits = logits[:, :width].masked_fill(~allowed[:, :width].to(logits.device), float("-inf"))
        rows = []
        for i, s in enumerate(seqs):
            row = logits[i]
            for proc in s.prompt.logits_processors:
                row = proc(s.generated, row)
            rows.append(row)
        if self.sampler is greedy:
            picks = torch.stack(rows).argmax(-1).tolist()
        else:
            picks = [self.sampler(r) for r in rows]
        if lse is not None:
            first = [s.forced[0] if s.forced else p for s, p in zip(seqs, picks)]
            index = torch.tensor(first, device=logits.device).unsqueeze(1)
            believed = (raw.gather(1, index).squeeze(1) - lse).tolist()
        events: list[tuple[int, int]] = []
        finished: list[Sequence_] = []
        for i, (s, pick) in enumerate(zip(seqs, picks)):
            chose = not s.forced
            tokens, done = self._append(s, pick)
            tokens = tokens[: s.budget - len(s.generated)]
            if s.logprobs is not None and tokens:
                only = chose and allowed is not None and s.prompt.constraint is not None \
                    and int(allowed[i].sum()) == 1
                s.logprobs.extend([believed[i]] + [None] * (len(tokens) - 1))
                s.forced_flags.extend([not chose or only] + [True] * (len(tokens) - 1))
            s.generated.extend(tokens)
            events.extend((s.index, t) for t in tokens)
            if done or len(s.generated) >= s.budget:
                s.finish_reason = "stop" if s.generated and s.generated[-1] in self.stops else "length"
                finished.append(s)
            else:
                s.pending = tokens
        for s in finished:
            s.timings["decode_s"] = time.perf_counter() - s.started
            self.running.remove(s)
            self.free.append(s.slot)
        return events, finished

    def _append(self, s: Sequence_, pick: int) -> tuple[list[int], bool]:
        """The tokens `s` appends given the sampled `pick`, and whether it is done."""
        c = s.prompt.constraint
        if c is None:
            return [pick], pick in self.stops
        tokens = s.forced
        for t in tokens:
            c.accept(t)
        if not tokens:
            if pick in self.stops:
                return [pick], True
            c.accept(pick)
            tokens = [pick]
            for t in c.forced():
                c.accept(t)
                tokens.append(t)
        if c.finished:
            return tokens + [c.stop_token], True
        return tokens, False


def compiler_words(compiler) -> int:
    return (compiler.vocab_size + 31) // 32


def slot_bytes(config, max_len: int, dtype: torch.dtype) -> int:
    """Bytes of one cache slot: KV of `max_len` tokens in each attention layer, conv state and
    the fp32 recurrent state in each DeltaNet layer."""
    t = config.text_config
    item = torch.empty((), dtype=dtype).element_size()
    kv = len(t.full_attention_layers) * 2 * t.num_key_value_heads * t.head_dim * max_len * item
    conv = len(t.linear_attention_layers) * t.conv_dim * (t.linear_conv_kernel_dim - 1) * item
    state = (len(t.linear_attention_layers) * t.linear_num_value_heads * t.linear_key_head_dim
             * t.linear_value_head_dim * 4)
    return kv + conv + state


class Session:
    """The batch runner's view of the engine: requests in (with a tag), completions out, all
    continuously batched over one slot pool allocated at start-up."""

    def __init__(self, engine, *, slots: int, slot_tokens: int, graphs: bool | None = None,
                 progress: ProgressFn | None = None):
        self.engine = engine
        self.slots = slots
        self.slot_tokens = slot_tokens
        self.sched = Scheduler(engine.model, num_slots=slots, max_len=slot_tokens,
                               stop_ids=list(engine.tokenizer.stop_ids), graphs=graphs,
                               prefill_chunk=getattr(engine, "prefill_chunk", None),
                               progress=progress)
        self._tags: dict[int, tuple[object, float]] = {}
        self._next = 0

    def submit(self, request, tag) -> None:
        """Queue a request; it starts as soon as a slot is free. A request that cannot fit a
        slot raises InputError (see Engine._fit_context)."""
        start = time.perf_counter()
        if request.json_schema is not None:
            self.engine.grammars.grammar(request.json_schema)
        prompt = self.engine.prompt(request, context=self.slot_tokens)
        self.engine._fit_context(prompt, context=self.slot_tokens)
        if request.json_schema is not None:
            prompt.constraint = self.engine.grammars.new(request.json_schema)
        self._tags[self._next] = (tag, time.perf_counter() - start)
        self.sched.add(prompt, self._next)
        self._next += 1

    @property
    def has_work(self) -> bool:
        return self.sched.has_work

    @property
    def in_flight(self) -> int:
        return len(self.sched.running) + len(self.sched.waiting)

    def step(self) -> list[tuple[object, object]]:
        """One forward; -> (tag, Completion) of the requests that finished in it."""
        from .generate import Generation

        out = []
        for seq in self.sched.step()[1]:
            tag, prep = self._tags.pop(seq.index)
            gen = Generation(tokens=seq.generated, finish_reason=seq.finish_reason,
                             prompt_tokens=seq.prompt.input_ids.numel(), timings=dict(seq.timings),
                             logprobs=seq.logprobs, forced=seq.forced_flags)
            out.append((tag, self.engine._completion(gen, prep)))
        return out

    def close(self) -> None:
        self.sched.close()

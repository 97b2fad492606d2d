"""The Engine API (contract, see architecture.md): load a checkpoint, run the full forward, and
generate completions for requests of images + text."""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import InputError, ModelError, UsageError
from ..kernels import _dispatch
from ..kernels._dispatch import interpreter_on
from .api import Completion, Request
from .config import ModelConfig, load_config
from .constrain import GrammarCompiler
from .generate import LogitsProcessor, Prompt, generate
from .progress import ProgressFn
from .processor import ImageProcessor, mrope_positions
from .quant import REQUESTS, load_model
from .qwen3_5 import Batch, Model
from .tokenizer import ImageSlot, Tokenizer

log = logging.getLogger("docextract.engine")
EXPERT_FORMATS = REQUESTS
KERNEL_CHOICES = ("auto", "naive", "triton")
# Output tokens a prompt must leave room for (or its whole budget when smaller).
MIN_OUTPUT_ROOM = 2048
# Prompt tokens per prefill forward on the CPU (progress every few seconds on a long page);
# on CUDA a page goes in one forward.
CPU_PREFILL_CHUNK = 512
DTYPES = {
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
    "float32": torch.float32, "fp32": torch.float32,
}


def _device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UsageError(f"unknown device {device!r}", hint="use cpu, cuda or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("CUDA was requested but no CUDA device is available to torch",
                         hint="use --device cpu, or install a CUDA build of torch")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported device {device!r}", hint="use cpu, cuda or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"no CUDA device {dev.index}: torch sees {torch.cuda.device_count()}",
                         hint="use cuda:0 .. cuda:N-1 (docextract doctor lists the GPUs)")
    return dev


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise UsageError(f"unsupported dtype {dtype!r}", hint="use bfloat16, float16 or float32")


def _check_kernels(kernels: str, device: torch.device) -> None:
    if kernels not in KERNEL_CHOICES:
        raise UsageError(f"unknown kernels choice {kernels!r}", hint=f"use one of {', '.join(KERNEL_CHOICES)}")
    if kernels != "triton":
        return
    if importlib.util.find_spec("triton") is None:
        raise ModelError("kernels='triton' needs the triton package", hint="install triton, or use kernels='auto'")
    if device.type != "cuda" and not interpreter_on():
        raise ModelError("the Triton kernels run on CUDA devices (on the CPU only through "
                         "TRITON_INTERPRET=1, for tests)", hint="use kernels='auto' or 'naive' on the CPU")


class Engine:
    """A loaded Qwen3.5 checkpoint with its tokenizer and image processor."""

    # generate() takes a `progress` callable (engine/progress.py); test fakes may not.
    reports_progress = True

    def __init__(self, model: Model, tokenizer: Tokenizer, processor: ImageProcessor, *, name: str,
                 experts: str = "bf16", kernels: str = "auto", max_batch: int = 8):
        _check_kernels(kernels, model.device)
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor
        self.name = name
        # The routed experts' storage: bf16 (16-bit, the model dtype), int8, int4 or fp8.
        self.experts = experts
        self.kernels = kernels
        # "auto" leaves the choice to the ops (DOCEXTRACT_KERNELS, else Triton on CUDA).
        model.kernels = None if kernels == "auto" else kernels
        # Requests generated together in one batch (one cache slot each).
        self.max_batch = max_batch
        # Prompt tokens per prefill forward (None: all at once).
        self.prefill_chunk = CPU_PREFILL_CHUNK if model.device.type == "cpu" else None
        self._grammars: GrammarCompiler | None = None
        # What the loader found (files, dtypes, quantisation, skipped MTP tensors); None when
        # the engine was built around a model in memory.
        self.load_report = None
        # A docextract.console.Console for warnings and progress lines (set by the CLI); without
        # one they go to the "docextract.engine" logger.
        self.console = None
        # The self-check's results (engine/selfcheck.py), once it has run.
        self.selfcheck: list | None = None
        model.warn = self._warn

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device = "auto",
             dtype: torch.dtype | str = torch.bfloat16, experts: str = "bf16", kernels: str = "auto",
             *, max_pixels: int | None = None, name: str | None = None) -> Engine:
        """Read config, weights, tokenizer and preprocessing settings from a checkpoint folder.

        `experts`: "bf16" keeps the routed experts as stored (16-bit; an FP8 release's stay FP8
        where the kernels take them; a `model quantize` checkpoint's stay int8/int4), "int8" and
        "int4" quantise them while loading (see quant.py); `engine.experts` says what was loaded.
        `kernels`: "auto" (Triton on CUDA, DOCEXTRACT_KERNELS to override), "naive" or "triton".
        `max_pixels` caps the pixels of each image (default: the checkpoint's preprocessor
        config); `name` is what `engine.name` reports (default: the folder name).
        """
        if experts not in EXPERT_FORMATS:
            raise UsageError(f"unknown expert format {experts!r}", hint=f"use one of {', '.join(EXPERT_FORMATS)}")
        dev = _device(device)
        _check_kernels(kernels, dev)
        model_dir = Path(model_dir)
        config = load_config(model_dir)
        # Tokenizer and chat template before the weights: a broken or hostile template (rendered
        # once here, under the sandbox's limits) is refused before gigabytes are read.
        tokenizer = Tokenizer.from_dir(model_dir, config)
        tokenizer.render([ImageSlot(), "Extract the fields."])
        model, report, stored = load_model(model_dir, config, _dtype(dtype), dev, experts)
        processor = ImageProcessor.from_dir(model_dir, config.vision_config, max_pixels)
        engine = cls(model, tokenizer, processor, name=name or model_dir.resolve().name,
                     experts=stored, kernels=kernels)
        engine.load_report = report
        return engine

    def _warn(self, message: str) -> None:
        if self.console is not None:
            self.console.warn(message)
        else:
            log.warning(message)

    def uses_triton(self) -> bool:
        """Whether the model's ops take their Triton path on its device (CUDA, or the CPU
        through TRITON_INTERPRET=1 with kernels="triton")."""
        try:
            return _dispatch.use_triton(self.model.kernels, torch.empty(0, device=self.model.device))
        except ValueError:
            return False

    def self_check(self, force: bool = False) -> list:
        """Run each Triton op once against its PyTorch reference before the first document
        (engine/selfcheck.py; cached per GPU, driver, torch and Triton version): an op that fails
        runs on its PyTorch path from then on, with one warning. No-op without Triton, or with
        DOCEXTRACT_SELFCHECK=0. -> the per-op results."""
        if self.selfcheck is None or force:
            from . import selfcheck

            if os.environ.get("DOCEXTRACT_SELFCHECK", "1") == "0" or not self.uses_triton():
                self.selfcheck = []
            else:
                self.selfcheck = selfcheck.run_checks(self.model, force=force, warn=self._warn)
        return self.selfcheck

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def logits(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
               image_grid_thw: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Full forward without cache, Hugging Face input conventions.

        input_ids [B, T] with each image's <|image_pad|> run already expanded; pixel_values
        [N, patch_dim] and image_grid_thw [n, 3] for the images of all rows in order;
        attention_mask [B, T] (1 = token): each row's unmasked tokens form one sequence, with
        positions counted over them only -> logits [B, T, V] float32 (zero at masked positions).
        """
        model, cfg = self.model, self.config
        if input_ids.ndim != 2:
            raise UsageError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}")
        keep = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        rows = [ids[k] for ids, k in zip(input_ids.cpu(), keep.cpu())]
        merge = cfg.vision_config.spatial_merge_size
        grids = list(image_grid_thw.cpu()) if image_grid_thw is not None else []
        with torch.inference_mode():
            image_embeds = None
            if pixel_values is not None:
                image_embeds = model.encode_images(pixel_values, image_grid_thw)
            embeds, positions, used, start = [], [], 0, 0
            for ids in rows:
                runs = int(((ids == cfg.image_token_id).int().diff(prepend=torch.zeros(1, dtype=torch.int)) == 1).sum())
                if used + runs > len(grids):
                    raise ModelError(f"engine: {len(grids)} images given for more image placeholder runs",
                                     hint="pass pixel_values and image_grid_thw for every image")
                grid = torch.stack(grids[used : used + runs]) if runs else None
                pos, _ = mrope_positions(ids, grid, cfg.image_token_id, merge)
                n_img = int((ids == cfg.image_token_id).sum())
                embeds.append(model.embed(ids, image_embeds[start : start + n_img] if n_img else None))
                positions.append(pos)
                used, start = used + runs, start + n_img
            if used != len(grids):
                raise ModelError(f"engine: {len(grids)} images given for {used} image placeholder runs")
            lens = [len(ids) for ids in rows]
            batch = Batch(lens, torch.cat(positions, dim=1).to(model.device))
            flat = model.lm_logits(model(torch.cat(embeds), batch)).float()
        out = flat.new_zeros(*input_ids.shape, flat.shape[-1])
        out[keep.to(out.device)] = flat
        return out

    def prompt(self, request: Request, logits_processors: Sequence[LogitsProcessor] = (), *,
               context: int | None = None) -> Prompt:
        """A request as a generation prompt: chat-formatted ids (thinking off) with each image's
        pads expanded. Images come first, each after its label ("Page 2: "), then the text.
        The prompt is measured against the context (the model's, or `context` when smaller)
        from the images' sizes, before any pixel becomes a tensor (see _check_room)."""
        labels = request.image_labels
        if labels is not None and len(labels) != len(request.images):
            raise UsageError(f"{len(labels)} image labels for {len(request.images)} images")
        pixel_values = grid = None
        content: list[str | ImageSlot] = []
        for k, _ in enumerate(request.images):
            if labels is not None:
                content.append(f"{labels[k]}: ")
            content.append(ImageSlot())
        content.append(request.prompt)
        grids = [self.processor.grid(image) for image in request.images]
        ids = self.tokenizer.build_prompt_ids(content, request.system, image_grid_thw=grids)
        image_tokens = sum(self.tokenizer.image_pad_count(g) for g in grids)
        self._check_room(len(ids), image_tokens, request.max_new_tokens, context)
        if request.images:
            pixel_values, grid = self.processor(list(request.images))
            if grid.tolist() != grids:
                raise ModelError("engine: image grids differ from the sizes measured beforehand")
        return Prompt(torch.tensor(ids, dtype=torch.long), pixel_values, grid,
                      max_new_tokens=request.max_new_tokens, logits_processors=list(logits_processors),
                      logprobs=request.logprobs)

    @property
    def grammars(self) -> GrammarCompiler:
        """The JSON-Schema compiler for this tokenizer (built on first use, or by
        `prepare_grammars`: a vocabulary scan)."""
        if self._grammars is None:
            stops = [self.tokenizer.im_end_id] + [i for i in self.tokenizer.stop_ids
                                                  if i != self.tokenizer.im_end_id]
            self._grammars = GrammarCompiler(
                self.tokenizer.to_json(), self.config.text_config.vocab_size, stops,
                mask_threads=1 if self.model.device.type == "cpu" else None)
        return self._grammars

    def prepare_grammars(self) -> None:
        """Build the grammar compiler now. The grammar library reads the whole vocabulary in one
        native call that holds the GIL (about 1 s for 248k tokens on a quiet core, 12 s under
        load), so no other Python thread runs meanwhile: the CLI calls this while loading the
        model, under its own status line, so that no page's progress stalls on it."""
        self.grammars  # noqa: B018 (built by the property)

    def _fit_context(self, prompt: Prompt, context: int | None = None) -> None:
        """Cap the output budget at the context left after the prompt (the model's, or a cache
        slot's when smaller); a prompt that leaves no reasonable room is refused (never truncated
        silently)."""
        context = min(context or 1 << 62, self.config.text_config.max_position_embeddings)
        n = prompt.input_ids.numel()
        images = int((prompt.input_ids == self.config.image_token_id).sum())
        self._check_room(n, images, prompt.max_new_tokens, context)
        prompt.max_new_tokens = min(prompt.max_new_tokens, context - n)

    def _check_room(self, n: int, images: int, max_new_tokens: int, context: int | None) -> None:
        """A prompt of `n` tokens (`images` of them for page images) leaves room for the answer
        in the context (the model's, or `context` when smaller), else InputError."""
        context = min(context or 1 << 62, self.config.text_config.max_position_embeddings)
        if n + min(max_new_tokens, MIN_OUTPUT_ROOM) > context:
            raise InputError(f"the document needs {n:,} prompt tokens ({images:,} of them for "
                             f"page images) plus room for the answer, above the model's context "
                             f"of {context:,} tokens",
                             hint="select fewer pages with --pages, or shrink them with --max-pixels")

    def generate(self, requests: Sequence[Request], *,
                 progress: ProgressFn | None = None) -> list[Completion]:
        """Greedy completions, continuously batched: up to `max_batch` requests decode together
        and a waiting one joins as soon as one finishes. A request with a `json_schema` is
        decoded under that schema's grammar (compact JSON). `progress` is called with the work
        done (vision blocks, prefill tokens, decode tokens; engine/progress.py)."""
        for r in requests:
            if r.json_schema is not None:
                self.grammars.grammar(r.json_schema)  # refuse an unusable schema up front
        self.self_check()
        prompts, prepare = [], []
        for r in requests:
            start = time.perf_counter()
            p = self.prompt(r)
            self._fit_context(p)
            if r.json_schema is not None:
                p.constraint = self.grammars.new(r.json_schema)
            prompts.append(p)
            prepare.append(time.perf_counter() - start)
        gens = generate(self.model, prompts, stop_ids=list(self.tokenizer.stop_ids),
                        max_batch=self.max_batch, prefill_chunk=self.prefill_chunk,
                        progress=progress)
        return [self._completion(g, s) for g, s in zip(gens, prepare)]

    def session(self, *, slots: int | None = None, slot_tokens: int | None = None,
                memory_gib: float | None = None, graphs: bool | None = None,
                warm_up: bool = True, progress: ProgressFn | None = None):
        """A continuously batched session over a slot pool allocated now (see scheduler.Session).

        `slot_tokens` (default: the model's context, at most 65,536) bounds prompt + answer of
        one request. `slots` defaults, on CUDA, to what fits in `memory_gib` of GPU memory in all
        (default 90% of the card) after the weights, keeping a tenth for activations; on CPU to
        `max_batch`. `graphs`: CUDA graphs of the decode step (default: on CUDA with the Triton
        kernels; DOCEXTRACT_CUDA_GRAPHS=0 turns them off). With the Triton kernels the ops are
        self-checked first, and `warm_up` runs the prefill and decode shapes the session will use
        now (a progress line), so that no document pays a kernel compile. `progress`: see
        generate()."""
        from .scheduler import Session, slot_bytes

        ctx = self.config.text_config.max_position_embeddings
        slot_tokens = min(slot_tokens or 65536, ctx)
        if slots is None:
            slots = self.max_batch
            if self.model.device.type == "cuda":
                total = torch.cuda.get_device_properties(self.model.device).total_memory
                budget = memory_gib * 2**30 if memory_gib else 0.9 * total
                free = 0.9 * (budget - torch.cuda.memory_allocated(self.model.device))
                per_slot = slot_bytes(self.config, slot_tokens, self.model.dtype)
                slots = int(free // per_slot)
                if slots < 1:
                    raise ModelError(f"no room for a {slot_tokens}-token cache slot in "
                                     f"{budget / 2**30:.0f} GiB after the weights",
                                     hint="raise --gpu-memory, or use --experts int4")
                slots = min(slots, 256)
        if graphs is None and os.environ.get("DOCEXTRACT_CUDA_GRAPHS", "1") == "0":
            graphs = False
        self.self_check()
        session = Session(self, slots=slots, slot_tokens=slot_tokens, graphs=graphs,
                          progress=progress)
        # (on the CPU the Triton interpreter compiles nothing: no warm-up there)
        if warm_up and self.model.device.type == "cuda" and self.uses_triton():
            from .warmup import warm_up as run_warm_up

            run_warm_up(self.model, session.sched, self.console)
        return session

    def _completion(self, g, preprocess_s: float) -> Completion:
        text_ids = g.tokens[:-1] if g.finish_reason == "stop" else g.tokens
        text = self.tokenizer.decode(text_ids)
        return Completion(text=text, tokens=g.tokens,
                          finish_reason=g.finish_reason, prompt_tokens=g.prompt_tokens,
                          timings={"preprocess_s": preprocess_s, **g.timings},
                          logprobs=g.logprobs, forced=g.forced,
                          offsets=None if g.logprobs is None else self._offsets(g.tokens, text))

    def _offsets(self, tokens: Sequence[int], text: str) -> list[int]:
        """Where each token starts in `text`, in characters (see Completion.offsets)."""
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out, chars = [], 0
        for t in tokens:
            out.append(min(chars, len(text)))
            chars += len(decoder.decode(self.tokenizer.token_bytes(t)))
        return out

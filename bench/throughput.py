"""Throughput for batches of documents: our engine at 1, 8 and 32 concurrent documents against
transformers `generate`, one by one and as one left-padded batch, on the CPU in float32.

One random Qwen3.5-MoE checkpoint is built with transformers (hidden 512, 8 layers = 6 DeltaNet +
2 attention, 32 experts top-4, vocabulary 16384, vision depth 4 of width 256; the bench sizes of
bench/cpu_engine_vs_transformers.py) and saved with a small byte-level BPE tokenizer. One document
is one page image of 256-484 image tokens plus an instruction of a few hundred text tokens, in the
chat format our engine builds. Every document is decoded greedily for exactly --new-tokens tokens:
the lm_head rows of the 33 added tokens (stop tokens, vision placeholders, ...) are zero, so their
logit is exactly 0 while the largest of the other random logits is always positive: no path stops
early and none emits a vision placeholder (a real model never does; our engine refuses a
generated <|image_pad|>). The run checks that every output has that length.

Rows, all on the same documents in one run:
- ours at 1, 8, 32 concurrent documents (`engine.max_batch`); ours at 1 is (a), one at a time;
- (b) transformers `generate` one document at a time;
- (c) transformers `generate` on groups of 8 and of 32 documents, each one left-padded batch with
  pixel_values / image_grid_thw / mm_token_type_ids for all its images.
Both sides get their inputs from the same requests inside the timed region: ours from
`engine.generate`, transformers from `engine.prompt` (the same ids and pixel values, so token
differences come from the models only). Each path runs one short warm-up first. Wall time covers
preprocessing, vision, prefill and decode. The tokens of the batched runs are compared with those
of our one-at-a-time run: equal documents, and tokens up to the first difference.

    .venv/bin/python bench/throughput.py [--threads 1] [--docs 32] [--new-tokens 64]
                                         [--batches 8,32] [--profile N] [--quick] [--batched-only]

`--profile N` adds a cProfile (top entries) of our engine at N concurrent documents and of
transformers on batches of N. `--repeat N` runs each batched pair N times, ours and transformers
alternating, and reports the fastest run of each (on a machine shared with other work, the
fastest run is the one least slowed by it; every time is printed too). `--quick` runs a tiny model on 4 documents in a few seconds (the
test).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from docextract.engine import Request
from docextract.engine.randomckpt import SPECIAL_TOKENS, write_tokenizer

INSTRUCTION = ("Extract the fields of this document and answer with one JSON object only. Use null "
               "for anything not visible on the document. Never guess or complete a value. ")
# Field descriptions; each document takes a different run of them (prompts of varied length).
FIELDS = (
    "invoice_number: the number printed at the top of the first page",
    "invoice_date: the date of issue as YYYY-MM-DD",
    "seller_gstin: the seller's GSTIN, 15 characters such as 27AAPFU0939F1Z5",
    "buyer_name: the name of the buyer as printed",
    "place_of_supply: the state name and its code, e.g. Karnataka (29)",
    "lines: one object per line item with description, HSN/SAC, quantity, unit price",
    "taxable_value: the sum of the taxable values of all lines",
    "cgst, sgst, igst: the tax amounts in rupees, 9%, 9% or 18%",
    "grand_total: the total in figures, e.g. 1,18,000.00",
    "account_number: the account number of a bank statement, digits only",
    "ifsc: the IFSC code of the branch, such as HDFC0001234",
    "opening_balance and closing_balance of the statement period",
    "transactions: date, narration, reference number, withdrawal, deposit, balance",
    "vat_number: a UK VAT registration number like GB 123 4567 89",
    "pan: the permanent account number, ten characters such as ABCDE1234F",
    "aadhaar: the twelve digit number, written 2345 6789 0123",
)


@dataclass(frozen=True)
class Size:
    text: dict
    vision: dict
    first_special_id: int
    docs: int
    new_tokens: int
    batches: tuple[int, ...]
    # Page images (height, width); one token per 32x32 pixels.
    pages: tuple[tuple[int, int], ...]
    fields: tuple[int, int]  # field lines per prompt, from..to
    min_pixels: int


def _rope(section: list[int]) -> dict:
    return {"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": 0.25,
            "mrope_section": section, "mrope_interleaved": True}


FULL = Size(
    text={"vocab_size": 16384, "hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8,
          "num_key_value_heads": 2, "head_dim": 64, "linear_num_key_heads": 4,
          "linear_num_value_heads": 8, "linear_key_head_dim": 64, "linear_value_head_dim": 64,
          "num_experts": 32, "num_experts_per_tok": 4, "moe_intermediate_size": 256,
          "shared_expert_intermediate_size": 256, "initializer_range": 0.05,
          "rope_parameters": _rope([3, 3, 2])},
    vision={"depth": 4, "hidden_size": 256, "intermediate_size": 1024, "num_heads": 4,
            "out_hidden_size": 512, "num_position_embeddings": 2304},
    first_special_id=16000, docs=32, new_tokens=64, batches=(8, 32),
    pages=((512, 512), (512, 640), (640, 640), (512, 896), (704, 704), (576, 768)),
    fields=(4, 8), min_pixels=256 * 256,
)
QUICK = Size(
    text={"vocab_size": 1024, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
          "num_key_value_heads": 2, "head_dim": 32, "linear_num_key_heads": 2,
          "linear_num_value_heads": 4, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
          "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
          "shared_expert_intermediate_size": 48, "initializer_range": 0.1,
          "full_attention_interval": 2, "rope_parameters": _rope([2, 1, 1])},
    vision={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
            "out_hidden_size": 64, "num_position_embeddings": 64},
    first_special_id=960, docs=4, new_tokens=8, batches=(2, 4),
    pages=((64, 64), (64, 96), (96, 96), (64, 128)),
    fields=(1, 3), min_pixels=32 * 32,
)


def token_ids(first_special_id: int) -> dict[str, int]:
    return {tok: first_special_id + i for i, tok in enumerate(SPECIAL_TOKENS)}


def build_checkpoint(folder: Path, size: Size) -> None:
    """Save a random Qwen3.5-MoE with transformers, plus tokenizer and preprocessor files; the
    lm_head rows of all added tokens are zero (never generated)."""
    from transformers import Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration

    ids = token_ids(size.first_special_id)
    stops = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    config = Qwen3_5MoeConfig(
        text_config=dict(size.text, eos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(size.vision),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen3_5MoeForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.lm_head.weight[list(ids.values())] = 0.0
    model.save_pretrained(folder)
    (folder / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": stops, "pad_token_id": ids["<|endoftext|>"], "do_sample": False}))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "patch_size": 16, "temporal_patch_size": 2,
         "merge_size": 2, "size": {"shortest_edge": size.min_pixels, "longest_edge": 1024 * 1024}}))
    write_tokenizer(folder, size.first_special_id)


def documents(size: Size, seed: int, schema: dict | None = None) -> list[Request]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(size.docs):
        h, w = size.pages[k % len(size.pages)]
        page = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        n = int(rng.integers(size.fields[0], size.fields[1] + 1))
        lines = [FIELDS[(k + i) % len(FIELDS)] for i in range(n)]
        prompt = INSTRUCTION + "Fields:\n" + "\n".join(lines)
        out.append(Request(prompt=prompt, images=[page], max_new_tokens=size.new_tokens,
                           json_schema=schema, logprobs=schema is not None))
    return out


def sample_answer_lengths(engine, count: int, cap: int) -> list[int]:
    """Tokens of the committed samples' truths (compact JSON, this checkpoint's tokenizer), in
    name order over the born-digital ones, cycled to `count`, each at most `cap`."""
    folder = Path(__file__).resolve().parents[1] / "samples" / "data"
    truths = sorted(p for p in folder.glob("*.truth.json") if "-photo" not in p.name)
    out = []
    for k in range(count):
        data = json.loads(truths[k % len(truths)].read_text(encoding="utf-8"))
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        out.append(min(cap, len(engine.tokenizer.encode(text)) + 1))  # + the stop token
    return out


class GrammarProcessor:
    """transformers' side of `--schema`: the same grammar library, tokenizer and schema as our
    engine (engine.grammars), one matcher per row, applied as a logits processor one token per
    step. Where the grammar forces tokens, only the next forced token is allowed (our engine feeds
    the whole forced run to the model in one forward instead); a complete value allows only the
    stop token our engine appends. So both sides choose among the same tokens at every step."""

    def __init__(self, engine, schema: dict, rows: int, start: int, stops: set[int]):
        self.cons = [engine.grammars.new(schema) for _ in range(rows)]
        self.start, self.stops = start, stops
        self.done = [False] * rows

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        keep = torch.zeros_like(scores, dtype=torch.bool)
        for i, c in enumerate(self.cons):
            if input_ids.shape[1] > self.start and not self.done[i]:
                last = int(input_ids[i, -1])
                if last in self.stops:
                    self.done[i] = True
                else:
                    c.accept(last)
            if self.done[i]:
                keep[i, :] = True  # finished rows: transformers pads them
            elif c.finished:
                keep[i, c.stop_token] = True
            elif forced := c.forced():
                keep[i, forced[0]] = True
            else:
                allowed = c.allowed()
                keep[i, : allowed.numel()] = allowed[: scores.shape[1]]
        return scores.masked_fill(~keep, float("-inf"))


@dataclass
class Run:
    name: str
    concurrent: int
    seconds: float
    tokens: list[list[int]]
    load: tuple[float, float]


def timed(name: str, concurrent: int, fn) -> Run:
    before = os.getloadavg()[0]
    start = time.perf_counter()
    tokens = fn()
    seconds = time.perf_counter() - start
    return Run(name, concurrent, seconds, tokens, (before, os.getloadavg()[0]))


def ours(engine, requests: list[Request], concurrent: int) -> list[list[int]]:
    engine.max_batch = concurrent
    return [c.tokens for c in engine.generate(requests)]


def transformers_batches(model, engine, requests: list[Request], batch: int, pad_id: int) -> list[list[int]]:
    """transformers `generate` on groups of `batch` requests, each group one left-padded batch."""
    image_id = engine.config.image_token_id
    out: list[list[int]] = []
    for lo in range(0, len(requests), batch):
        prompts = [engine.prompt(r) for r in requests[lo : lo + batch]]
        longest = max(p.input_ids.numel() for p in prompts)
        ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            n = p.input_ids.numel()
            ids[row, longest - n :] = p.input_ids
            mask[row, longest - n :] = 1
        images = [p for p in prompts if p.pixel_values is not None]
        kwargs = {}
        if images:
            kwargs = {"pixel_values": torch.cat([p.pixel_values for p in images]),
                      "image_grid_thw": torch.cat([p.image_grid_thw for p in images]),
                      "mm_token_type_ids": (ids == image_id).int()}
        group = requests[lo : lo + batch]
        n_new = max(r.max_new_tokens for r in group)  # a padded batch runs to its longest member
        schema = requests[lo].json_schema
        if schema is not None:
            from transformers import LogitsProcessorList

            stops = set(engine.tokenizer.stop_ids) | {engine.tokenizer.im_end_id}
            kwargs["logits_processor"] = LogitsProcessorList(
                [GrammarProcessor(engine, schema, len(prompts), longest, stops)])
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n_new, do_sample=False,
                                 pad_token_id=pad_id, **kwargs)
        for r, row in zip(group, gen[:, longest:].tolist()):
            if schema is not None:  # up to and with the stop token (then padding)
                stop = next((k for k, t in enumerate(row) if t in stops), None)
                row = row if stop is None else row[: stop + 1]
            out.append(row[: r.max_new_tokens])
    return out


def agreement(reference: list[list[int]], other: list[list[int]]) -> tuple[int, int, int]:
    """-> (documents equal, tokens before the first difference, tokens in all)."""
    same = sum(a == b for a, b in zip(reference, other))
    prefix = 0
    for a, b in zip(reference, other):
        for x, y in zip(a, b):
            if x != y:
                break
            prefix += 1
    return same, prefix, sum(len(a) for a in reference)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def profile(fn, top: int = 25) -> str:
    """Top entries of a cProfile of fn(), by own time and by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 4 documents (for the test)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--docs", type=int, help="documents (default 32; quick 4)")
    parser.add_argument("--new-tokens", type=int, help="generated tokens per document (default 64)")
    parser.add_argument("--batches", help="concurrent documents besides 1, comma separated (default 8,32)")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="cProfile both at N concurrent documents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--answer-lengths", choices=("fixed", "samples"), default="fixed",
                        help="fixed: every document generates --new-tokens; samples: document k "
                             "stops after as many tokens as the k-th committed sample's truth "
                             "(compact JSON in this tokenizer; at most --new-tokens), as a batch of "
                             "mixed documents would; transformers' padded batch then runs to its "
                             "longest member")
    parser.add_argument("--schema", metavar="NAME",
                        help="decode constrained by this docextract schema on both sides (the "
                             "same grammar library on transformers' side as a logits processor)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each batched pair N times, alternating; report the fastest")
    parser.add_argument("--batched-only", action="store_true",
                        help="leave out the one-at-a-time rows (a) and (b); tokens are then "
                             "compared with ours at the first batch size")
    args = parser.parse_args()
    started, head = time.perf_counter(), commit()
    size = QUICK if args.quick else FULL
    changes = {}
    if args.docs:
        changes["docs"] = args.docs
    if args.new_tokens:
        changes["new_tokens"] = args.new_tokens
    if args.batches:
        changes["batches"] = tuple(int(b) for b in args.batches.split(","))
    if changes:
        size = Size(**{**size.__dict__, **changes})
    torch.set_num_threads(args.threads)

    import transformers
    from transformers import Qwen3_5MoeForConditionalGeneration

    from docextract.engine import Engine

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_checkpoint(folder, size)
        engine = Engine.load(folder, device="cpu", dtype=torch.float32)
        ref = Qwen3_5MoeForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    pad_id = token_ids(size.first_special_id)["<|endoftext|>"]
    params = sum(p.numel() for p in ref.parameters())
    schema = None
    if args.schema:
        from docextract import schemas

        schema = schemas.get(args.schema).decoder_schema
    requests = documents(size, args.seed, schema)
    if args.answer_lengths == "samples":
        budgets = sample_answer_lengths(engine, size.docs, size.new_tokens)
        requests = [Request(prompt=r.prompt, images=r.images, max_new_tokens=n,
                            json_schema=r.json_schema, logprobs=r.logprobs)
                    for r, n in zip(requests, budgets)]
        print("answer lengths (tokens): " + ", ".join(map(str, budgets)))
    prompt_lens = [engine.prompt(r).input_ids for r in requests]
    image_lens = [int((ids == engine.config.image_token_id).sum()) for ids in prompt_lens]
    prompt_lens = [ids.numel() for ids in prompt_lens]

    warm = [Request(prompt=requests[0].prompt, images=requests[0].images, max_new_tokens=2,
                    json_schema=schema)]
    ours(engine, warm, 1)
    transformers_batches(ref, engine, warm, 1, pad_id)
    if args.batched_only:
        # Without the one-at-a-time rows, the first batched row would also pay the first
        # batch-sized allocations: warm both sides up on a batch of the first size.
        b = size.batches[0]
        warm = [Request(prompt=r.prompt, images=r.images, max_new_tokens=2, json_schema=schema)
                for r in requests[:b]]
        ours(engine, warm, b)
        transformers_batches(ref, engine, warm, b, pad_id)

    runs: list[Run] = [] if args.batched_only else [
        timed("ours (a)", 1, lambda: ours(engine, requests, 1)),
        timed("transformers one by one (b)", 1,
              lambda: transformers_batches(ref, engine, requests, 1, pad_id))]
    all_times: dict[str, list[float]] = {}
    for b in size.batches:
        pair: dict[str, Run] = {}
        for _ in range(max(1, args.repeat)):
            for run in (timed("ours", b, lambda b=b: ours(engine, requests, b)),
                        timed(f"transformers batched (c{b})", b,
                              lambda b=b: transformers_batches(ref, engine, requests, b, pad_id))):
                all_times.setdefault(f"{run.name} at {b}", []).append(run.seconds)
                if run.name not in pair or run.seconds < pair[run.name].seconds:
                    pair[run.name] = run
        runs.extend(pair.values())
    total_s = time.perf_counter() - started

    added = set(token_ids(size.first_special_id).values())
    budgets = [r.max_new_tokens for r in requests]
    if schema is None:
        bad = [(r.name, r.concurrent, len(t)) for r in runs for t, n in zip(r.tokens, budgets)
               if len(t) != n or set(t) & added]
    else:  # a JSON value may end before the budget, with the stop token
        bad = [(r.name, r.concurrent, len(t)) for r in runs for t in r.tokens
               if len(t) > size.new_tokens or set(t[:-1]) & added]
    if bad or any(len(r.tokens) != size.docs for r in runs):
        print(f"error: not every path generated {size.new_tokens} ordinary tokens per document: {bad[:4]}",
              file=sys.stderr)
        return 1

    generated = sum(len(t) for t in runs[0].tokens)
    lengths = f"{min(budgets)}" if min(budgets) == max(budgets) else f"{min(budgets)}-{max(budgets)}"
    c_rate = {r.concurrent: size.docs / r.seconds for r in runs if r.name.startswith("transformers batched")}
    base = runs[0].tokens
    print(f"date {date.today()}; {machine()}; Python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, docextract commit {head}; {args.threads} torch "
          f"thread(s); float32, kernels {engine.kernels}")
    print(f"checkpoint: {params / 1e6:.1f}M parameters, hidden {size.text['hidden_size']}, "
          f"{size.text['num_hidden_layers']} layers, {size.text['num_experts']} experts top-"
          f"{size.text['num_experts_per_tok']}, vocabulary {size.text['vocab_size']}, vision depth "
          f"{size.vision['depth']} width {size.vision['hidden_size']}")
    print(f"documents: {size.docs}, one page each; prompt tokens {min(prompt_lens)}-{max(prompt_lens)} "
          f"(mean {sum(prompt_lens) / len(prompt_lens):.0f}), of them image tokens "
          f"{min(image_lens)}-{max(image_lens)}; {lengths} generated tokens each, greedy, "
          f"added tokens' lm_head rows zero; whole run (build, load, all rows) {total_s:.0f} s")
    if schema is not None:
        print(f"constrained by schema {args.schema!r} on both sides: {generated} tokens generated "
              f"in all ({generated / size.docs:.1f} a document, the stop token included)")
    print()
    heads = ["run", "concurrent docs", "wall s", "docs/s", "generated tok/s"]
    heads += [f"vs (c{b})" for b in size.batches] + ["load avg before/after"]
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for r in runs:
        rate = size.docs / r.seconds
        cells = [r.name, str(r.concurrent), f"{r.seconds:.2f}", f"{rate:.3f}", f"{generated / r.seconds:.1f}"]
        cells += [f"{rate / c_rate[b]:.2f}x" for b in size.batches]
        cells.append(f"{r.load[0]:.1f}/{r.load[1]:.1f}")
        print("| " + " | ".join(cells) + " |")
    print()
    print(f"| run | concurrent docs | documents equal to {runs[0].name} at {runs[0].concurrent} | "
          "tokens before the first difference |")
    print("|---|---|---|---|")
    for r in runs[1:]:
        same, prefix, total = agreement(base, r.tokens)
        print(f"| {r.name} | {r.concurrent} | {same}/{size.docs} | {prefix}/{total} |")
    if args.repeat > 1:
        print()
        for name, times in all_times.items():
            print(f"{name}: " + ", ".join(f"{t:.2f}" for t in times) + " s")
    ours_batched = [r for r in runs[1:] if r.name == "ours"]
    equal = all(r.tokens == base for r in ours_batched)
    print()
    if not args.batched_only:
        print(f"our batched outputs equal our one-at-a-time outputs: {'yes' if equal else 'NO'}")
    if args.profile:
        n = args.profile
        print()
        print(f"cProfile, ours at {n} concurrent documents:")
        print(profile(lambda: ours(engine, requests, n)))
        print(f"cProfile, transformers batched {n} documents at a time:")
        print(profile(lambda: transformers_batches(ref, engine, requests, n, pad_id)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What per-token log-probabilities (Request.logprobs) cost in the decode step.

A random checkpoint with the real 248,320-token vocabulary (the log-sum-exp runs over all of it)
and a small text tower (hidden 256, 4 layers, 8 experts) so that the vocabulary-sized work is a
large share of the step, i.e. the overhead is shown at its most visible. Sequences decode under
a JSON Schema grammar, as the pipeline runs them. For each batch size the same requests run with
logprobs off and on, alternately, `--rounds` times; every decode step (Scheduler.step after the
prefill) is timed and the median is reported, with the ratio on/off. The tokens must be the same
both ways. Then the added work alone (log-sum-exp and gather over [batch, V], on the same
device) for scale. Prints Markdown on stdout.

    .venv/bin/python bench/logprobs.py [--rounds 5] [--tokens 48] [--batch 1 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from docextract.engine import Request
from docextract.engine.randomckpt import random_engine
from docextract.engine.scheduler import Scheduler

PRESET = {"first_special_id": 248044,
          "text_config": {"vocab_size": 248320, "hidden_size": 256, "num_hidden_layers": 4,
                          "num_attention_heads": 4}}
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["id", "name", "amounts"],
          "properties": {"id": {"type": "string", "maxLength": 12},
                         "name": {"type": "string", "maxLength": 40},
                         "amounts": {"type": "array", "maxItems": 8,
                                     "items": {"type": "string", "maxLength": 12}}}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(engine, batch: int, tokens: int, logprobs: bool) -> tuple[list[float], list[list[int]]]:
    """Decode-step times (s) of one batch, and the tokens generated."""
    requests = [Request(prompt=f"Document {i}: read the fields", json_schema=SCHEMA,
                        max_new_tokens=tokens, logprobs=logprobs) for i in range(batch)]
    sched = Scheduler(engine.model, num_slots=batch, max_len=512,
                      stop_ids=list(engine.tokenizer.stop_ids))
    for i, r in enumerate(requests):
        p = engine.prompt(r)
        p.constraint = engine.grammars.new(SCHEMA)
        sched.add(p, i)
    steps: list[float] = []
    done = {}
    try:
        first = True
        while sched.has_work:
            _sync(engine.model.device)
            start = time.perf_counter()
            _, finished = sched.step()
            _sync(engine.model.device)
            if not first:
                steps.append(time.perf_counter() - start)
            first = False
            for s in finished:
                done[s.index] = s.generated
    finally:
        sched.close()
    return steps, [done[i] for i in range(batch)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    engine = random_engine("moe", PRESET, device=device, dtype=torch.float32)
    engine.grammars  # build the grammar tokenizer outside the timings
    print(f"# Decode step with and without per-token log-probabilities\n\n{platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {args.threads} thread(s), device {device}; vocabulary "
          f"{PRESET['text_config']['vocab_size']:,}, hidden 256, 4 layers, 8 experts, float32; "
          f"{args.tokens} new tokens under a JSON Schema; {args.rounds} rounds each way, "
          "alternating; median of every decode step.\n")
    print("| batch | steps timed (off / on) | step off (ms) | step on (ms) | on / off | same tokens |")
    print("|---:|---:|---:|---:|---:|:---:|")
    run(engine, args.batch[0], 8, True)  # warm-up
    for batch in args.batch:
        off, on, same = [], [], True
        for _ in range(args.rounds):
            t_off, tok_off = run(engine, batch, args.tokens, False)
            t_on, tok_on = run(engine, batch, args.tokens, True)
            off += t_off
            on += t_on
            same &= tok_off == tok_on
        a, b = statistics.median(off) * 1e3, statistics.median(on) * 1e3
        print(f"| {batch} | {len(off)} / {len(on)} | {a:.2f} | {b:.2f} | {b / a:.3f} | "
              f"{'yes' if same else 'NO'} |")
    print("\nThe added work alone (log-sum-exp over the vocabulary, gather, copy to host):\n")
    print("| batch | added, median (ms per step) | added, fastest of 50 (ms) |")
    print("|---:|---:|---:|")
    for batch in args.batch:
        logits = torch.randn(batch, PRESET["text_config"]["vocab_size"], device=device)
        picks = torch.zeros(batch, 1, dtype=torch.long, device=device)
        times = []
        for _ in range(50):
            _sync(device)
            start = time.perf_counter()
            lse = torch.logsumexp(logits, dim=-1)
            (logits.gather(1, picks).squeeze(1) - lse).tolist()
            _sync(device)
            times.append(time.perf_counter() - start)
        print(f"| {batch} | {statistics.median(times) * 1e3:.3f} | {min(times) * 1e3:.3f} |")


if __name__ == "__main__":
    main()

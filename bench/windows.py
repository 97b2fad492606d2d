"""Time to the record of one long bank statement: one request for all its pages (`--window 0`, the
baseline) against page windows (the header from the first and last pages plus one request per
window, decoded side by side by the continuously batched engine), on the CPU in float32.

The statement is generated (samples long_statement: rows cut by page breaks, narrations of
several lines), rendered and ingested as `run` does, then extracted through the real pipeline
flow (pipeline.extract) on our engine with a random-weight checkpoint of a CPU preset
(randomckpt, `--preset tiny` by default). A random model cannot read rows, so the decode work is
made to follow what the request reads instead: each request is generated without its grammar
for exactly `--tokens-per-page` x (its pages) tokens (the lm_head rows of the added tokens are
zero, so no request stops early). The baseline thus decodes one sequence of N x T tokens, the
windowed read ceil(N / W) sequences of W x T tokens and a header of 2 x T, side by side; the
prompt text (instruction + schema) is repeated in every request. Records are invalid (random
text does not parse) and retries are off: only time is measured. Each mode runs once to warm up,
then --repeats times; the table shows the best time.

    .venv/bin/python bench/windows.py [--pages 20] [--window 4] [--tokens-per-page 64]
                                      [--max-pixels 262144] [--preset tiny] [--repeats 2]
                                      [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def build(folder: Path, preset: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from docextract.engine import randomckpt

    randomckpt.write(folder, kind="moe", preset=preset, seed=14, dtype=torch.float32)
    config = randomckpt.model_config("moe", preset)
    first = randomckpt.first_special_id(config)
    path = folder / "model.safetensors"
    weights = load_file(str(path))
    weights["lm_head.weight"][first:] = 0.0
    save_file(weights, str(path), metadata={"format": "pt"})


class FixedLength:
    """The engine, with each request decoded without grammar for tokens_per_page x its pages."""

    def __init__(self, engine, tokens_per_page: int):
        self.engine, self.per_page = engine, tokens_per_page
        self.name, self.experts = engine.name, engine.experts
        self.prompt_tokens = 0
        self.new_tokens = 0

    def generate(self, requests):
        fixed = [dataclasses.replace(r, json_schema=None,
                                     max_new_tokens=self.per_page * len(r.images))
                 for r in requests]
        out = self.engine.generate(fixed)
        for r, c in zip(fixed, out):
            if len(c.tokens) != r.max_new_tokens:
                raise RuntimeError(f"a request stopped after {len(c.tokens)} of "
                                   f"{r.max_new_tokens} tokens")
            self.prompt_tokens += c.prompt_tokens
            self.new_tokens += len(c.tokens)
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--tokens-per-page", type=int, default=64)
    parser.add_argument("--max-pixels", type=int, default=256 * 32 * 32)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="4 pages, window 2, 8 tokens/page")
    args = parser.parse_args()
    if args.quick:
        args.pages, args.window, args.tokens_per_page, args.repeats = 4, 2, 8, 1
        args.max_pixels = 64 * 32 * 32
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from docextract import ingest, pipeline, schemas, windows
    from docextract.engine import Engine
    from docextract.samples import generate, render

    t_start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sample = generate.make_long(14, args.pages)
        pdf = tmp / "statement.pdf"
        pdf.write_bytes(render.pdf_bytes(sample.doc))
        pages = ingest.load(str(pdf), max_pixels=args.max_pixels)
        build(tmp / "model", args.preset)
        engine = Engine.load(tmp / "model", device="cpu", dtype="float32")
        spec = schemas.get("bank_statement")
        rows = []
        for label, window in (("one request (--window 0)", 0), (f"windows of {args.window}",
                                                                 args.window)):
            times = []
            for k in range(1 + args.repeats):
                fixed = FixedLength(engine, args.tokens_per_page)
                t0 = time.perf_counter()
                record = pipeline.extract(pages, spec, fixed, retries=0,
                                          windowing=windows.Windowing(window))
                elapsed = time.perf_counter() - t0
                if k:
                    times.append(elapsed)
            requests = record["timing"].get("requests", 1)
            rows.append((label, requests, fixed.prompt_tokens, fixed.new_tokens, min(times)))
    base = rows[0][4]
    print(f"# {args.pages}-page statement, {len(pages)} pages of up to "
          f"{windows.page_tokens(pages)} image tokens, preset {args.preset}, CPU float32, "
          f"{args.threads} thread(s), {args.tokens_per_page} output tokens per page read, "
          f"max_batch {engine.max_batch}; best of {args.repeats} after a warm-up")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}; "
          f"whole run {time.monotonic() - t_start:.0f} s")
    print(f"{'mode':<26} {'requests':>8} {'prompt tok':>10} {'output tok':>10} "
          f"{'time to record s':>16} {'vs one request':>14}")
    for label, requests, prompt, new, best in rows:
        print(f"{label:<26} {requests:>8} {prompt:>10} {new:>10} {best:>16.2f} "
              f"{base / best:>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

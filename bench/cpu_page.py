"""Time to the first token of one A4 page on the CPU: our engine against transformers, at several
page budgets, in one run, on a random checkpoint of the real Qwen3.5-0.8B shapes (float32).

The page is a committed sample (default samples/data/gst_invoice-s1-001.pdf) read by
`ingest.load` at each budget of `--rows` (in 32x32 tiles; 2560 was the default before issue 17).
The request is the page image and, by default, a short instruction of ~200 tokens as in the issue's
measurement (2,739 prompt tokens at 2560 tiles); `--run-prompt` uses the text that `docextract run
--schema invoice` puts after the image (instruction and JSON Schema: ~4,700 tokens with the random
checkpoint's small tokenizer, fewer with the real one). Generated for one token: preprocessing,
vision tower, prefill and the first greedy token. Ours is `engine.generate` (no grammar, so the
first token can be compared with transformers; with `--schema` the grammar mask is applied too);
transformers is `generate(max_new_tokens=1)` on the ids and pixel values of `engine.prompt`
(counted in its time). Our rows also say when the engine's first progress event came (after the
call) and the longest time between two events (vision blocks, prefill chunks): what the status line
on stderr follows. Each of `--rows` runs ours, then transformers when asked, at its thread count.
One warm-up of each at the smallest budget comes first. The table says the load average around each
row: the machine may be shared.

    .venv/bin/python bench/cpu_page.py [--rows 2:2560+tf,2:768+tf] [--file PDF] [--depth 4,2]
                                       [--dtype float32|bfloat16] [--preset 0.8b] [--run-prompt]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


SHORT_PROMPT = ("Extract the fields of this document and answer with one JSON object only. Use "
                "null for anything not visible on the document. Never guess or complete a value. "
                "Fields:\ninvoice_number: the number printed at the top of the first page\n"
                "invoice_date: the date of issue as YYYY-MM-DD\nseller_gstin: the seller's GSTIN, "
                "15 characters such as 27AAPFU0939F1Z5\n"
                "buyer_name: the name of the buyer as printed")


def request_for(pages, spec, schema: bool, run_prompt: bool):
    from docextract.engine import Request
    from docextract.pipeline import prompt_for

    return Request(prompt=prompt_for(spec) if run_prompt else SHORT_PROMPT,
                   images=[p.image for p in pages],
                   image_labels=[f"Page {p.number}" for p in pages],
                   json_schema=spec.json_schema if schema else None, max_new_tokens=1)


def ours(engine, request) -> tuple[float, int, dict]:
    """-> (seconds, first token, timings + first_progress_s and longest_gap_s: when the engine's
    first progress event came after the call, and the longest time between two events)."""
    stamps: list[float] = []
    start = time.perf_counter()
    (completion,) = engine.generate([request],
                                    progress=lambda work: stamps.append(time.perf_counter()))
    end = time.perf_counter()
    gaps = [b - a for a, b in zip([start] + stamps, stamps + [end])]
    first = stamps[0] - start if stamps else end - start
    timings = dict(completion.timings, first_progress_s=first, longest_gap_s=max(gaps))
    return end - start, completion.tokens[0], timings


def theirs(model, engine, request) -> tuple[float, int]:
    start = time.perf_counter()
    p = engine.prompt(request)
    ids = p.input_ids[None]
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=1,
                             do_sample=False, pixel_values=p.pixel_values,
                             image_grid_thw=p.image_grid_thw,
                             mm_token_type_ids=(ids == engine.config.image_token_id).int())
    return time.perf_counter() - start, int(out[0, -1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2:2560+tf,2:768+tf,1:2560+tf,1:768+tf",
                        help="THREADS:BUDGET[+tf] rows in order; BUDGET in 32x32 tiles, +tf also "
                             "times transformers (default: today's 2560 and the CPU default 768, "
                             "2 and 1 threads)")
    parser.add_argument("--file", default=str(ROOT / "samples/data/gst_invoice-s1-001.pdf"))
    parser.add_argument("--preset", default="0.8b")
    parser.add_argument("--depth", metavar="TEXT,VISION",
                        help="keep only this many text layers and vision blocks of the preset's "
                             "shapes (e.g. 4,2: a sixth of 0.8B's 24 and 12, the same mix of "
                             "attention and DeltaNet layers) for a shorter run")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--schema", action="store_true", help="decode under the invoice grammar")
    parser.add_argument("--run-prompt", action="store_true",
                        help="the instruction + JSON Schema text of docextract run")
    args = parser.parse_args()
    plan = []
    for row in args.rows.split(","):
        n, rest = row.split(":")
        plan.append((int(n), int(rest.removesuffix("+tf")), rest.endswith("+tf")))
    budgets = sorted({b for _, b, _ in plan})
    dtype = getattr(torch, args.dtype)

    from docextract import ingest, schemas
    from docextract.engine import Engine
    from docextract.engine import randomckpt

    spec = schemas.get("invoice")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        preset: str | dict = args.preset
        if args.depth:
            text_layers, vision_blocks = (int(v) for v in args.depth.split(","))
            preset = {"base": args.preset, "text_config": {"num_hidden_layers": text_layers},
                      "vision_config": {"depth": vision_blocks}}
        randomckpt.write(tmp, kind="dense", preset=preset, dtype=dtype)
        engine = Engine.load(tmp, device="cpu", dtype=dtype, max_pixels=max(budgets) * 1024)
        ref = None
        if any(tf for _, _, tf in plan):
            import transformers
            from transformers import Qwen3_5ForConditionalGeneration

            ref = Qwen3_5ForConditionalGeneration.from_pretrained(tmp, dtype=dtype).eval()
    build_s = time.perf_counter() - started
    def page_request(tiles: int):
        pages = ingest.load(args.file, max_pixels=tiles * 1024)
        return request_for(pages, spec, args.schema, args.run_prompt)

    requests = {b: page_request(b) for b in budgets}
    warm = page_request(64)
    ours(engine, warm)
    if ref is not None:
        theirs(ref, engine, warm)

    rows = []
    for n, b, tf in plan:
        torch.set_num_threads(n)
        req = requests[b]
        load0 = os.getloadavg()[0]
        s, tok, timings = ours(engine, req)
        print(f"# {n} thread(s), budget {b}: ours {s:.1f} s", file=sys.stderr, flush=True)
        t = theirs(ref, engine, req) if tf else (None, None)
        if tf:
            print(f"# {n} thread(s), budget {b}: transformers {t[0]:.1f} s", file=sys.stderr,
                  flush=True)
        rows.append((n, b, req, s, tok, timings, t, load0, os.getloadavg()[0]))
    params = sum(p.numel() for p in engine.model.parameters())
    print(f"date {date.today()}; {os.cpu_count()} CPUs, usable {len(os.sched_getaffinity(0))}; "
          f"Python {platform.python_version()}, torch {torch.__version__}"
          + (f", transformers {transformers.__version__}" if ref is not None else "")
          + f"; {args.dtype}; random {args.preset} dense checkpoint"
          + (f" cut to {args.depth} text layers,vision blocks" if args.depth else "")
          + f" ({params / 1e9:.2f}B parameters); "
          f"build+load {build_s:.0f} s; page {Path(args.file).name}")
    print()
    print("| threads | budget (tiles) | page px | prompt tokens (image) | ours TTFT s | vision s | "
          "prefill s | transformers TTFT s | ours / transformers | vs first budget | same first "
          "token | first progress s | longest gap s | load avg before/after |")
    print("|" + "---|" * 14)
    first: dict[int, float] = {}
    for n, b, req, s, tok, timings, (ts, ttok), l0, l1 in rows:
        p = engine.prompt(req)
        img = int((p.input_ids == engine.config.image_token_id).sum())
        w, h = req.images[0].size
        first.setdefault(n, s)
        cells = [str(n), str(b), f"{w}x{h}", f"{p.input_ids.numel()} ({img})", f"{s:.1f}",
                 f"{timings.get('vision_s', 0):.1f}",
                 f"{timings.get('prefill_s', 0) - timings.get('vision_s', 0):.1f}",
                 f"{ts:.1f}" if ts else "-", f"{s / ts:.2f}x" if ts else "-",
                 f"{s / first[n]:.2f}x", ("yes" if tok == ttok else "NO") if ts else "-",
                 f"{timings['first_progress_s']:.2f}", f"{timings['longest_gap_s']:.1f}",
                 f"{l0:.1f}/{l1:.1f}"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

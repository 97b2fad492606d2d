"""Our engine against transformers on one random Qwen3.5-MoE checkpoint, on the CPU, float32.

Builds the checkpoint with transformers (hidden 512, 8 layers = 6 DeltaNet + 2 attention,
32 experts top-4, vision tower of depth 4), saves it, loads it in both, then times one request
of an image of 256 language-model tokens (512x512 pixels) plus a short text:
- prefill: a generation of one token (vision tower + prefill forward + first token);
- decode: (time of 1 + N tokens - time of 1 token) / N, greedy.
Median of --runs runs each, the two implementations interleaved. Prints a Markdown table.

    .venv/bin/python bench/cpu_engine_vs_transformers.py [--runs 5] [--new-tokens 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date

import numpy as np
import torch
from PIL import Image


def build_checkpoint(folder: str) -> None:
    from transformers import Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration

    config = Qwen3_5MoeConfig(
        text_config=dict(
            vocab_size=16384, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
            num_key_value_heads=2, head_dim=64, linear_num_key_heads=4, linear_num_value_heads=8,
            linear_key_head_dim=64, linear_value_head_dim=64, num_experts=32, num_experts_per_tok=4,
            moe_intermediate_size=256, shared_expert_intermediate_size=256, initializer_range=0.05,
            rope_parameters=dict(rope_type="default", rope_theta=10_000_000.0, partial_rotary_factor=0.25,
                                 mrope_section=[3, 3, 2], mrope_interleaved=True),
        ),
        vision_config=dict(depth=4, hidden_size=256, intermediate_size=1024, num_heads=4, out_hidden_size=512,
                           num_position_embeddings=2304),
        image_token_id=16000, video_token_id=16001, vision_start_token_id=16002, vision_end_token_id=16003,
    )
    torch.manual_seed(0)
    Qwen3_5MoeForConditionalGeneration(config).eval().save_pretrained(folder)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import Qwen3_5MoeForConditionalGeneration

    from docextract.engine.generate import Prompt, generate
    from docextract.engine.processor import ImageProcessor
    from docextract.engine.qwen3_5 import Model
    from docextract.engine.config import load_config
    from docextract.engine.weights import load_weights

    with tempfile.TemporaryDirectory() as folder:
        build_checkpoint(folder)
        config = load_config(folder)
        ours = Model.empty(config, torch.float32, "cpu")
        load_weights(ours, folder, config)
        ref = Qwen3_5MoeForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    pixel_values, grid = ImageProcessor(min_pixels=512 * 512, max_pixels=512 * 512)([image])
    n_image = int(grid.prod()) // 4
    ids = [1, 2, 3, 16002] + [16000] * n_image + [16003] + list(range(100, 132))
    input_ids = torch.tensor(ids)
    n_new = args.new_tokens

    def ours_run(n: int) -> list[int]:
        prompt = Prompt(input_ids, pixel_values, grid, max_new_tokens=n)
        return generate(ours, [prompt])[0].tokens

    def ref_run(n: int) -> list[int]:
        with torch.no_grad():
            out = ref.generate(input_ids=input_ids[None], pixel_values=pixel_values, image_grid_thw=grid,
                               mm_token_type_ids=(input_ids[None] == 16000).int(), max_new_tokens=n,
                               min_new_tokens=n, do_sample=False)
        return out[0, len(ids):].tolist()

    same = ours_run(n_new + 1) == ref_run(n_new + 1)
    results = {"ours": {}, "transformers": {}}
    for _ in range(args.runs):
        for name, fn in (("ours", ours_run), ("transformers", ref_run)):
            results[name].setdefault("one", []).append(median_time(lambda: fn(1), 1))
            results[name].setdefault("many", []).append(median_time(lambda: fn(n_new + 1), 1))
    rows = {}
    for name, r in results.items():
        one, many = statistics.median(r["one"]), statistics.median(r["many"])
        rows[name] = (one * 1000, n_new / (many - one))

    print(f"date {date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, prompt {len(ids)} tokens ({n_image} image tokens, 1024 patches), "
          f"{n_new} decoded tokens, median of {args.runs}; greedy tokens identical: {same}")
    print()
    print("| | prefill ms | decode tokens/s |")
    print("|---|---|---|")
    for name, (prefill_ms, tps) in rows.items():
        print(f"| {name} | {prefill_ms:.1f} | {tps:.1f} |")
    ours_row, ref_row = rows["ours"], rows["transformers"]
    print(f"| ours / transformers | {ours_row[0] / ref_row[0]:.2f}x time | {ours_row[1] / ref_row[1]:.2f}x speed |")


if __name__ == "__main__":
    main()

"""Progress of the engine's work through the `progress` callable (engine/progress.py): vision
blocks, prefill tokens per chunk, decode tokens; reporting changes no output."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from docextract.engine import Engine, Request
from docextract.engine.progress import PHASES, Work


def _photo(h, w, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_generate_reports_vision_prefill_and_decode(tiny_checkpoint):
    engine = Engine.load(tiny_checkpoint("moe").path, device="cpu", dtype=torch.float32)
    assert engine.reports_progress and engine.prefill_chunk  # chunked on the CPU
    requests = [Request(prompt="Read the page.", images=[_photo(256, 300, 0)], max_new_tokens=5),
                Request(prompt="And this one.", images=[_photo(200, 200, 1)], max_new_tokens=3)]
    plain = [c.tokens for c in engine.generate(requests)]
    engine.prefill_chunk = 16
    events: list[Work] = []
    reported = engine.generate(requests, progress=events.append)
    assert [c.tokens for c in reported] == plain
    assert {e.phase for e in events} == set(PHASES)
    phases = [e.phase for e in events]
    assert phases.index("vision") < phases.index("prefill") < phases.index("decode")

    depth = engine.config.vision_config.depth
    vision = [e for e in events if e.phase == "vision"]
    assert [(e.done, e.total, e.sequences) for e in vision] == [(i, depth, 2) for i in range(depth + 1)]

    prefill = [e for e in events if e.phase == "prefill"]
    total = sum(engine.prompt(r).input_ids.numel() for r in requests)
    assert all(e.total == total and e.sequences == 2 for e in prefill)
    done = [e.done for e in prefill]
    assert done[0] == 0 and done[-1] == total and done == sorted(done)
    # 16 tokens of each prompt per forward: one event per chunk
    longest = max(engine.prompt(r).input_ids.numel() for r in requests)
    assert len(prefill) == 1 + -(-longest // 16)

    decode = [e for e in events if e.phase == "decode"]
    assert all(e.total is None for e in decode)
    # tokens of the documents in flight: both at first, the longer one alone at the end
    assert decode[0].sequences == 2 and decode[-1].sequences == 1
    assert decode[-1].done == max(len(t) for t in plain) > min(len(t) for t in plain)

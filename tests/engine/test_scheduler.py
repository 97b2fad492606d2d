"""Continuous batching: a small slot pool serves more requests than it has slots, sequences join
as others finish, and every result equals the same request run alone (text, images, grammar)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from docextract.engine import Engine, Request
from docextract.engine.generate import generate
from docextract.engine.scheduler import Scheduler

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["n", "tags"],
          "properties": {"n": {"type": "string", "pattern": "^[0-9]{1,6}$", "maxLength": 6},
                         "tags": {"type": "array", "maxItems": 2,
                                  "items": {"enum": ["paid", "due", "void"]}}}}


@pytest.fixture(scope="module")
def engine(tiny_checkpoint) -> Engine:
    return Engine.load(tiny_checkpoint("moe").path, device="cpu", dtype=torch.float32)


def photo(h: int, w: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def mixed_requests() -> list[Request]:
    out = []
    for i in range(7):
        images = [photo(64 + 32 * (i % 3), 96, i)] if i % 2 else []
        out.append(Request(prompt=f"request {i} " + "x" * (i * 7), images=images,
                           json_schema=SCHEMA if i % 3 == 0 else None,
                           max_new_tokens=6 + 5 * (i % 4)))
    return out


def test_more_requests_than_slots_equal_each_alone(engine, monkeypatch):
    alone = []
    for r in mixed_requests():
        (c,) = engine.generate([r])
        alone.append(c.tokens)
    monkeypatch.setattr(engine, "max_batch", 3)
    together = engine.generate(mixed_requests())
    assert [c.tokens for c in together] == alone


def test_a_waiting_sequence_takes_the_slot_of_a_finished_one(engine):
    prompts = [engine.prompt(Request(prompt=f"p{i}", max_new_tokens=n))
               for i, n in enumerate([2, 9, 4])]
    sched = Scheduler(engine.model, num_slots=2, max_len=64, stop_ids=[])
    for i, p in enumerate(prompts):
        sched.add(p, i)
    slots_seen, running_sizes = {}, []
    while sched.has_work:
        for s in sched.running + list(sched.waiting):
            if s.slot >= 0:
                slots_seen[s.index] = s.slot
        sched.step()
        running_sizes.append(len(sched.running))
    sched.close()
    assert max(running_sizes) == 2  # never more than the pool
    assert sched.stats["prefill_steps"] == 2  # the third joined once the first finished
    assert slots_seen[2] == slots_seen[0]


def test_masks_are_computed_for_constrained_sequences_only(engine):
    requests = mixed_requests()[:4]
    for r in requests:
        r.max_new_tokens = 60
    prompts = [engine.prompt(r) for r in requests]
    for p, r in zip(prompts, requests):
        if r.json_schema is not None:
            p.constraint = engine.grammars.new(r.json_schema)
    gens = generate(engine.model, prompts, stop_ids=engine.tokenizer.stop_ids, max_batch=4)
    import json

    for g, r in zip(gens, requests):
        if r.json_schema is not None:
            assert g.finish_reason == "stop"
            json.loads(engine.tokenizer.decode(g.tokens[:-1]))


def test_session_streams_completions_equal_to_runs_alone(engine):
    alone = [engine.generate([r])[0].tokens for r in mixed_requests()]
    session = engine.session(slots=2, slot_tokens=512)
    requests = mixed_requests()
    done = {}
    submitted = 0
    try:
        while len(done) < len(requests):
            # Keep one request queued beyond the pool, as the batch runner does.
            while submitted < len(requests) and session.in_flight < session.slots + 1:
                session.submit(requests[submitted], submitted)
                submitted += 1
            for tag, completion in session.step():
                done[tag] = completion.tokens
    finally:
        session.close()
    assert [done[i] for i in range(len(requests))] == alone


def test_session_refuses_a_request_beyond_its_slot(engine):
    from docextract.errors import InputError

    session = engine.session(slots=1, slot_tokens=64)
    try:
        with pytest.raises(InputError, match="context of 64 tokens"):
            session.submit(Request(prompt="word " * 80, max_new_tokens=4), "x")
    finally:
        session.close()


def test_one_token_steps_through_the_static_decode_path_give_the_same_tokens(engine):
    """What a CUDA-graph session runs (one token per sequence per step, through the padded static
    decode buffers), run eagerly on the CPU: same tokens, grammar-forced ones included."""
    from docextract.engine.graphs import DecodeGraphs

    requests = mixed_requests()
    for r in requests:
        r.max_new_tokens = 40
    expected = [engine.generate([r])[0].tokens for r in requests]
    prompts = [engine.prompt(r) for r in requests]
    for p, r in zip(prompts, requests):
        if r.json_schema is not None:
            p.constraint = engine.grammars.new(r.json_schema)
    sched = Scheduler(engine.model, num_slots=3, max_len=400, stop_ids=engine.tokenizer.stop_ids)
    sched.graphs = DecodeGraphs(engine.model, sched.cache, enabled=False, pad=True)
    done = {}
    for i, p in enumerate(prompts):
        sched.add(p, i)
    while sched.has_work:
        for seq in sched.step()[1]:
            done[seq.index] = seq.generated
    sched.close()
    assert [done[i] for i in range(len(requests))] == expected


def test_a_generated_image_pad_is_embedded_as_text(engine):
    """A model may emit <|image_pad|> as an ordinary token: decoding goes on (transformers
    embeds it as text too)."""
    pad = engine.config.image_token_id

    def force_pad(generated, logits):
        if len(generated) == 1:
            logits = logits.clone()
            logits[pad] = logits.max() + 1
        return logits

    prompt = engine.prompt(Request(prompt="x", max_new_tokens=5))
    prompt.logits_processors = [force_pad]
    (gen,) = generate(engine.model, [prompt], stop_ids=[])
    assert gen.tokens[1] == pad and len(gen.tokens) == 5

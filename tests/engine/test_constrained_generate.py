"""Decoding under a JSON Schema: the text conforms, forced tokens go through the model in one
forward and give the same choices as a full forward, batches equal runs alone."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch

from docextract.engine import Engine, Request
from docextract.engine.generate import generate
from docextract.errors import UsageError

SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["id", "kind", "amounts", "note"],
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Z]{3}[0-9]{2}$", "maxLength": 5},
        "kind": {"enum": ["invoice", "receipt", "statement"]},
        "amounts": {"type": "array", "maxItems": 3,
                    "items": {"type": "string", "pattern": "^[0-9]{1,4}\\.[0-9]{2}$", "maxLength": 7}},
        "note": {"anyOf": [{"type": "string", "maxLength": 6}, {"type": "null"}]},
    },
}


@pytest.fixture(scope="module")
def engine(tiny_checkpoint) -> Engine:
    return Engine.load(tiny_checkpoint("moe").path, device="cpu", dtype=torch.float32)


def requests(n: int) -> list[Request]:
    return [Request(prompt=f"Document {i}: read it" + " please" * i, json_schema=SCHEMA,
                    max_new_tokens=120) for i in range(n)]


def test_output_conforms_and_ends_with_a_stop(engine):
    for c in engine.generate(requests(3)):
        assert c.finish_reason == "stop"
        assert c.tokens[-1] == engine.tokenizer.im_end_id
        value = json.loads(c.text)
        jsonschema.validate(value, SCHEMA)
        assert c.text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_batch_equals_each_alone(engine):
    together = engine.generate(requests(3))
    alone = [engine.generate([r])[0] for r in requests(3)]
    assert [c.tokens for c in together] == [c.tokens for c in alone]


def test_every_sampled_token_is_the_masked_argmax_of_a_full_forward(engine):
    """Forced runs are fed as multi-token pieces: replaying the whole sequence in one uncached
    forward must give the same greedy choice wherever the model chose."""
    (request,) = requests(1)
    prompt = engine.prompt(request)
    prompt.constraint = engine.grammars.new(SCHEMA)
    (gen,) = generate(engine.model, [prompt], stop_ids=engine.tokenizer.stop_ids)
    ids = torch.cat([prompt.input_ids, torch.tensor(gen.tokens[:-1])]).unsqueeze(0)
    logits = engine.logits(ids)[0, prompt.input_ids.numel() - 1:]
    replay = engine.grammars.new(SCHEMA)
    sampled = 0
    i = 0
    while i < len(gen.tokens) - 1:
        forced = replay.forced()
        if forced:
            assert gen.tokens[i:i + len(forced)] == forced
            for t in forced:
                replay.accept(t)
            i += len(forced)
            continue
        masked = logits[i].masked_fill(~replay.allowed(), float("-inf"))
        assert int(masked.argmax()) == gen.tokens[i]
        replay.accept(gen.tokens[i])
        sampled += 1
        i += 1
    assert sampled > 3 and replay.finished


def test_a_tight_budget_ends_with_length(engine):
    (c,) = engine.generate([Request(prompt="x", json_schema=SCHEMA, max_new_tokens=4)])
    assert c.finish_reason == "length" and len(c.tokens) == 4


def test_unusable_schema_is_refused_before_any_work(engine):
    bad = {"type": "object", "properties": {"x": {"not": {"type": "string"}}}}
    with pytest.raises(UsageError, match="constrained decoding"):
        engine.generate([Request(prompt="x", json_schema=bad)])


def test_a_prompt_beyond_the_context_is_refused_not_truncated(engine, monkeypatch):
    from docextract.errors import InputError

    text = engine.config.text_config
    monkeypatch.setattr(text, "max_position_embeddings", 40)
    with pytest.raises(InputError, match="above the model's context of 40 tokens") as info:
        engine.generate([Request(prompt="word " * 60, max_new_tokens=10)])
    assert "--pages" in info.value.hint
    # A prompt that fits gets its output budget capped at the room left.
    from docextract.engine import engine as engine_module

    monkeypatch.setattr(engine_module, "MIN_OUTPUT_ROOM", 5)
    (c,) = engine.generate([Request(prompt="hi", max_new_tokens=10_000)])
    assert len(engine.prompt(Request(prompt="hi")).input_ids) + len(c.tokens) <= 40

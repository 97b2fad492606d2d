"""Grammar constraint: every path through the mask yields JSON that conforms to the schema."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from docextract.engine.constrain import GrammarCompiler, apply_bitmask, bitmask_to_bool
from docextract.errors import UsageError

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
STOP = [0, 2]
VOCAB = 420  # the model's logits are wider than the tokenizer's vocabulary

SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["pan", "name", "amounts", "kind", "date"],
    "properties": {
        "pan": {"type": "string", "pattern": "^[A-Z]{5}[0-9]{4}[A-Z]$", "maxLength": 10},
        "name": {"anyOf": [{"type": "string", "maxLength": 12}, {"type": "null"}]},
        "amounts": {"type": "array", "maxItems": 3,
                    "items": {"type": "string", "pattern": "^-?[0-9]{1,6}\\.[0-9]{2}$",
                              "maxLength": 10}},
        "kind": {"enum": ["invoice", "receipt"]},
        "date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "maxLength": 10},
    },
}


@pytest.fixture(scope="module")
def compiler():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=360, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = '{"pan":"ABCDE1234F","name":"Ram","amounts":["10.00"],"kind":"invoice"} 2024-05-01'
    tok.train_from_iterator([text] * 20, trainer)
    return GrammarCompiler(tok.to_str(), VOCAB, STOP), tok


def walk(compiler, tok, seed):
    """Random allowed tokens until the grammar is finished; returns the text and steps."""
    gc, _ = compiler, tok
    c = gc.new(SCHEMA)
    rng = random.Random(seed)
    out = []
    for step in range(2000):
        forced = c.forced()
        if forced:
            for t in forced:
                c.accept(t)
            out.extend(forced)
            continue
        if c.finished:
            return tok.decode(out), step
        allowed = c.allowed().nonzero().flatten().tolist()
        assert allowed, "the grammar allowed nothing before it finished"
        t = rng.choice(allowed)
        if t in STOP:
            return tok.decode(out), step
        c.accept(t)
        out.append(t)
    raise AssertionError("generation did not terminate")


@pytest.mark.parametrize("seed", range(8))
def test_random_walks_give_schema_valid_json(compiler, seed):
    gc, tok = compiler
    text, _ = walk(gc, tok, seed)
    value = json.loads(text)
    jsonschema.validate(value, SCHEMA)
    assert " " not in text.replace(value["name"] or "", "")  # compact: no free whitespace


def test_tokens_beyond_the_tokenizer_and_specials_are_never_allowed(compiler):
    gc, tok = compiler
    allowed = gc.new(SCHEMA).allowed()
    assert allowed.shape == (VOCAB,)
    assert not allowed[tok.get_vocab_size():].any()
    assert not allowed[[0, 1, 2]].any()  # specials, stop included, before the value is complete


def test_grammars_are_cached(compiler):
    gc, _ = compiler
    assert gc.grammar(SCHEMA) is gc.grammar(json.loads(json.dumps(SCHEMA)))


def test_apply_bitmask_matches_allowed(compiler):
    gc, _ = compiler
    c = gc.new(SCHEMA)
    row = torch.zeros((VOCAB + 31) // 32, dtype=torch.int32)
    c.fill_bitmask(row)
    logits = torch.randn(1, VOCAB)
    apply_bitmask(logits, row.unsqueeze(0))
    assert torch.equal(torch.isfinite(logits[0]), c.allowed())
    assert torch.equal(bitmask_to_bool(row.unsqueeze(0), VOCAB)[0], c.allowed())


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"x": {"not": {"type": "string"}}}},
    {"type": "string", "pattern": "^(?=a)b$"},
], ids=["not", "lookahead"])
def test_unsupported_schema_is_refused_up_front(compiler, schema):
    gc, _ = compiler
    with pytest.raises(UsageError, match="cannot be used for constrained decoding"):
        gc.new(schema)


def test_sequences_of_one_schema_are_independent(compiler):
    gc, tok = compiler
    a, b = gc.new(SCHEMA), gc.new(SCHEMA)
    for t in a.forced():
        a.accept(t)
    assert a.forced() != b.forced() or not a.forced()
    assert b.forced()  # b still at the start: the opening of the object is forced

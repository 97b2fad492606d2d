"""Per-token log-probabilities (Request.logprobs) and the field confidence built on them, checked
against a teacher-forced full forward (engine.logits) of the generated tokens, with the token to
field mapping and the forced tokens recomputed here another way."""

from __future__ import annotations

import json
import math

import pytest
import torch

from docextract.confidence import field_confidence
from docextract.engine import Engine, Request

SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["id", "kind", "party", "amounts", "note", "flag"],
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Z]{3}[0-9]{2}$", "maxLength": 5},
        "kind": {"enum": ["invoice", "receipt", "statement"]},
        "party": {"type": "object", "additionalProperties": False, "required": ["name", "pin"],
                  "properties": {"name": {"type": "string", "maxLength": 10},
                                 "pin": {"type": "integer", "minimum": 0, "maximum": 999999}}},
        "amounts": {"type": "array", "maxItems": 3,
                    "items": {"type": "string", "pattern": "^[0-9]{1,4}\\.[0-9]{2}$"}},
        "note": {"anyOf": [{"type": "string", "maxLength": 6}, {"type": "null"}]},
        "flag": {"type": "boolean"},
    },
}
PROMPTS = ["Read the document: ₹ 1,18,000.50", "पूजा मिश्रा, 05/03/2024", "Invoice INV-1 total 42"]


@pytest.fixture(scope="module")
def engine(tiny_checkpoint) -> Engine:
    return Engine.load(tiny_checkpoint("moe").path, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def completions(engine):
    with_lp = engine.generate([Request(prompt=p, json_schema=SCHEMA, max_new_tokens=150,
                                       logprobs=True) for p in PROMPTS])
    without = engine.generate([Request(prompt=p, json_schema=SCHEMA, max_new_tokens=150)
                               for p in PROMPTS])
    return with_lp, without


def _pieces(value, path=""):
    """Compact JSON of `value` as (text, path of the leaf it is the value of, or None) pieces."""
    sep = (lambda p, k: f"{p}[{k}]") if isinstance(value, list) else (
        lambda p, k: f"{p}.{k}" if p else k)
    if isinstance(value, dict):
        yield "{", None
        for n, (k, v) in enumerate(value.items()):
            yield ("," if n else "") + json.dumps(k, ensure_ascii=False) + ":", None
            yield from _pieces(v, sep(path, k))
        yield "}", None
    elif isinstance(value, list):
        yield "[", None
        for n, v in enumerate(value):
            if n:
                yield ",", None
            yield from _pieces(v, sep(path, n))
        yield "]", None
    elif isinstance(value, str):
        inner = json.dumps(value, ensure_ascii=False)[1:-1]
        yield '"', None
        yield inner, path
        yield '"', None
    else:
        yield json.dumps(value), path


def _reference(engine, request, completion):
    """{path: (geometric mean, min)} from a teacher-forced forward, computed independently."""
    prompt = engine.prompt(request)
    n = prompt.input_ids.numel()
    ids = torch.cat([prompt.input_ids, torch.tensor(completion.tokens[:-1])]).unsqueeze(0)
    logp = torch.log_softmax(engine.logits(ids)[0, n - 1:].double(), dim=-1)
    believed = [float(logp[j, t]) for j, t in enumerate(completion.tokens)]
    # Forced tokens by replaying the grammar: fast-forwarded, or the only one the mask allows.
    replay = engine.grammars.new(SCHEMA)
    forced, j = [], 0
    while j < len(completion.tokens):
        ff = replay.forced()
        if ff:
            forced += [True] * len(ff)
            for t in ff:
                replay.accept(t)
            j += len(ff)
        elif replay.finished:
            forced.append(True)
            j += 1
        else:
            forced.append(int(replay.allowed().sum()) == 1)
            replay.accept(completion.tokens[j])
            j += 1
    # Character span of each token: decode growing prefixes.
    text = completion.text
    starts = [len(engine.tokenizer.decode(completion.tokens[:j]).rstrip("\ufffd"))
              for j in range(len(completion.tokens))]
    ends = starts[1:] + [len(text)]
    pos, spans = 0, {}
    for piece, path in _pieces(json.loads(text)):
        if path is not None:
            spans[path] = (pos, pos + len(piece))
        pos += len(piece)
    assert pos == len(text)
    out = {}
    value = json.loads(text)
    for path, (a, b) in spans.items():
        node = value
        for part in path.replace("[", ".").replace("]", "").split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        if node is None:
            continue
        lo, hi = (a, b) if b > a else (b, b + 1)
        chosen = [believed[j] for j in range(len(starts))
                  if starts[j] < hi and max(ends[j], starts[j]) > lo and not forced[j]]
        if chosen:
            out[path] = (math.exp(sum(chosen) / len(chosen)), math.exp(min(chosen)))
    return believed, forced, out


def test_logprobs_leave_greedy_output_unchanged(completions):
    with_lp, without = completions
    assert [c.tokens for c in with_lp] == [c.tokens for c in without]
    assert [c.text for c in with_lp] == [c.text for c in without]
    for c in without:
        assert c.logprobs is None and c.forced is None and c.offsets is None
    for c in with_lp:
        assert len(c.logprobs) == len(c.forced) == len(c.offsets) == len(c.tokens)


def test_logprobs_and_field_confidence_match_a_teacher_forced_forward(engine, completions):
    checked = 0
    for prompt, c in zip(PROMPTS, completions[0]):
        request = Request(prompt=prompt, json_schema=SCHEMA, max_new_tokens=150, logprobs=True)
        believed, forced, reference = _reference(engine, request, c)
        assert c.forced == forced
        for j, lp in enumerate(c.logprobs):
            if lp is None:
                assert forced[j], f"token {j} was chosen but has no log-probability"
            else:
                assert abs(lp - believed[j]) < 1e-4
        mean, low = field_confidence(c, digits=None)
        assert set(mean) == set(reference)
        for path, (m, lo) in reference.items():
            assert abs(mean[path] - m) < 1e-4, path
            assert abs(low[path] - lo) < 1e-4, path
            checked += 1
        rounded, _ = field_confidence(c)
        assert all(rounded[p] == round(mean[p], 3) for p in mean)
        assert {"id", "kind", "party.pin", "flag"} <= set(mean), c.text
    assert checked >= 10

"""bench/grammar.py stays runnable: its --quick run end to end, and the tiktoken -> tokenizer.json
conversion of bench/qwen_vocab.py on a small rank table."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def qwen_vocab():
    spec = importlib.util.spec_from_file_location("bench_qwen_vocab", BENCH / "qwen_vocab.py")
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def rank_bpe(word: bytes, ranks: dict[bytes, int]) -> list[int]:
    """tiktoken's rule: a whole piece in the table is one token; else merge the adjacent pair
    whose concatenation has the lowest rank, leftmost first, until none is in the table."""
    if word in ranks:
        return [ranks[word]]
    parts = [word[i : i + 1] for i in range(len(word))]
    while True:
        pairs = [(ranks.get(a + b), i) for i, (a, b) in enumerate(pairwise(parts))]
        pairs = [p for p in pairs if p[0] is not None]
        if not pairs:
            return [ranks[p] for p in parts]
        _, i = min(pairs)
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def test_converted_ranks_encode_like_tiktoken(qwen_vocab, tmp_path):
    from tokenizers import Tokenizer

    ranks = {bytes([b]): b for b in range(256)}
    # "xyz" has no two-part route (no "xy" nor "yz"): reachable only as a whole piece.
    for token in [b"ab", b"cd", b"abcd", b"bc", b"abc", b"xyz", b"aa", b"aaa", b"\xe2\x82",
                  "₹".encode()]:
        ranks[token] = len(ranks)
    merges, orphans = qwen_vocab.recover_merges(ranks)
    assert orphans == 1
    assert (b"ab", b"cd") in merges and (b"aa", b"a") in merges
    specials = [(len(ranks) + i, t) for i, t in enumerate(qwen_vocab.SPECIAL_TOKENS)]
    data = qwen_vocab.tokenizer_json(ranks, merges, qwen_vocab.PRETOKENIZE_REGEX, specials)
    tok = Tokenizer.from_str(json.dumps(data))
    for word in ["abcd", "abcabcd", "bcd", "aaaaa", "xyz", "xyzab", "dcba", "₹₹"]:
        assert tok.encode(word, add_special_tokens=False).ids == rank_bpe(word.encode(), ranks), word
        assert tok.decode(tok.encode(word).ids) == word
    im_end = dict(specials)
    ids = tok.encode("ab<|im_end|>", add_special_tokens=False).ids
    assert ids == [ranks[b"ab"], next(i for i, t in im_end.items() if t == "<|im_end|>")]


def test_quick_run_prints_every_table(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, str(BENCH / "grammar.py"), "--quick"], env=env,
                            capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "conversion check" in out and "all passed" in out
    assert "FAILED" not in out and "REJECTED" not in out
    for lib in ("llguidance", "xgrammar"):
        compiled = rf"^\| pan \| {lib} \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$"
        assert re.search(compiled, out, re.MULTILINE), lib
        walked = re.search(rf"^\| pan \| (\d+) \| (\d+) \| {lib} \|.*\| (\w+) \| (\d+)/(\d+) \|$",
                           out, re.MULTILINE)
        assert walked, lib
        docs, tokens, accepted, ended, total = walked.groups()
        assert int(tokens) > 50 and accepted == "yes" and ended == total == docs
    probes = re.findall(r"^\| ([^|]+) \| (yes|no) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", out,
                        re.MULTILINE)
    assert len(probes) >= 10
    # The library constrain.py uses never lets invalid JSON or a broken rule through.
    assert all(llg.strip() == "no" for _, expected, llg, _, _ in probes if expected == "no")
    forward = re.search(r"^\| bench checkpoint \| ([\d.]+) \(([\d.]+)\) \| ([\d.]+)% \|", out,
                        re.MULTILINE)
    assert forward and float(forward.group(1)) >= float(forward.group(2)) > 0
    assert list(tmp_path.glob("docextract-bench/trained-*.tokenizer.json"))

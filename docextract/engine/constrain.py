"""JSON Schema -> per-sequence token constraint (llguidance behind one class).

llguidance was chosen over xgrammar 0.2.9 after measuring both on our schemas with a 248k-token
vocabulary (bench/grammar.py; figures in bench/RESULTS.md): it compiles each schema in about
0.1-3 ms where xgrammar took up to ~50 ms (more under load); its masks cost a mean 35 us against
xgrammar's 19 us, well under 1% of a decode step either way; and xgrammar let raw control
characters into strings bounded by maxLength (JSON that does not parse) and refused every escape
(no quote or line break in a free-text field), while llguidance produced valid JSON for every
probe. Its tokenizer takes tokenizer.json as is.

Output is compact JSON: no free whitespace, "," and ":" separators, so a bounded schema always
terminates inside the token budget. Special tokens are outside the grammar's alphabet; only the
stop tokens may end the sequence, and only once the JSON value is complete. A started matcher is
kept per schema and copied for each new sequence (microseconds, against milliseconds to build).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Sequence

import torch

from ..errors import ModelError, UsageError

COMPACT = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}


def _llguidance():
    try:
        import llguidance
    except ImportError as exc:  # a broken install, not a user error
        raise ModelError("constrained decoding needs the llguidance package",
                         hint="reinstall docextract: pip install -e .") from exc
    return llguidance


class GrammarCompiler:
    """Built once per tokenizer (the vocabulary scan takes a few seconds on 248k tokens); compiled
    grammars are cached per schema."""

    def __init__(self, tokenizer_json: str, vocab_size: int, stop_ids: Sequence[int],
                 mask_threads: int | None = None):
        llg = _llguidance()
        # Threads of the mask executor (None: the library's default, 80% of the CPUs). A CPU
        # engine passes 1: the masks are computed while torch runs the forward on every core.
        self.mask_threads = mask_threads
        self._llg = llg
        self.vocab_size = int(vocab_size)
        self.stop_ids = list(stop_ids)
        self.tokenizer = llg.LLTokenizer(tokenizer_json, n_vocab=self.vocab_size,
                                         eos_token=self.stop_ids)
        self._cache: dict[str, str] = {}
        self._templates: dict[str, Any] = {}
        self._executor = None
        self._lock = threading.Lock()

    def grammar(self, schema: dict[str, Any]) -> str:
        """The compiled grammar for `schema`; an unsupported schema raises UsageError."""
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            grammar = self._llg.LLMatcher.grammar_from_json_schema(schema, overrides=COMPACT)
        except ValueError as exc:
            raise UsageError(f"the JSON Schema cannot be used for constrained decoding: {exc}") from None
        is_error, messages = self._llg.LLMatcher.validate_grammar_with_warnings(grammar, self.tokenizer)
        if is_error:
            msg = messages[0] if messages else "unknown error"
            raise UsageError(f"the JSON Schema cannot be used for constrained decoding: {msg}",
                             hint="simplify the schema (see README, 'Schemas')")
        with self._lock:
            self._cache[key] = grammar
        return grammar

    def fill_bitmasks(self, rows: Sequence[tuple["SequenceConstraint", int]],
                      bitmask: torch.Tensor) -> None:
        """Masks of many sequences at once, on the library's own worker threads: row `i` of
        `bitmask` (int32 [B, W], CPU, contiguous) gets the mask of the constraint paired with
        `i`; other rows are left as they are."""
        if not rows:
            return
        if self._executor is None:
            self._executor = self._llg.LLExecutor(num_threads=self.mask_threads)
        self._executor.unsafe_compute_mask_ptr([(c.matcher, i) for c, i in rows],
                                               bitmask.data_ptr(), bitmask.shape[1] * 4,
                                               bitmask.shape[0])
        for c, _ in rows:
            c._check()

    def new(self, schema: dict[str, Any]) -> "SequenceConstraint":
        grammar = self.grammar(schema)
        with self._lock:
            template = self._templates.get(grammar)
        if template is None:
            template = self._llg.LLMatcher(self.tokenizer, grammar, log_level=0)
            if template.is_error():
                raise UsageError(f"the JSON Schema cannot be used for constrained decoding: "
                                 f"{_first_line(template.get_error())}")
            with self._lock:
                self._templates[grammar] = template
        return SequenceConstraint(self, template.deep_copy())


class SequenceConstraint:
    """The grammar state of one generated sequence."""

    def __init__(self, compiler: GrammarCompiler, matcher: Any):
        self.compiler = compiler
        self.matcher = matcher
        self.words = (compiler.vocab_size + 31) // 32
        # Appended without a model call once the value is complete.
        self.stop_token = compiler.stop_ids[0]

    def fill_bitmask(self, row: torch.Tensor) -> None:
        """Write the allowed-token bitmask into `row` (int32 [ceil(V/32)], CPU, contiguous):
        bit j of word i allows token 32*i + j."""
        self.matcher.unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * 4)
        self._check()

    def allowed(self) -> torch.Tensor:
        """bool [V]: the tokens the grammar allows next."""
        row = torch.zeros(self.words, dtype=torch.int32)
        self.fill_bitmask(row)
        return bitmask_to_bool(row.unsqueeze(0), self.compiler.vocab_size)[0]

    def forced(self) -> list[int]:
        """Tokens the grammar forces from here (may be empty); consume them with `accept`."""
        return list(self.matcher.compute_ff_tokens())

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(int(token)):
            self._check()
            raise ModelError("constrained decoding failed: the model chose a token the grammar "
                             "does not allow")

    @property
    def finished(self) -> bool:
        """The value is complete and nothing but a stop token may follow."""
        if self.matcher.is_stopped():
            return True
        return self.matcher.is_accepting() and not self._more()

    def _more(self) -> bool:
        allowed = self.allowed()
        allowed[self.compiler.stop_ids] = False
        return bool(allowed.any())

    def _check(self) -> None:
        if self.matcher.is_error():
            raise ModelError(f"constrained decoding failed: the grammar matcher stopped "
                             f"({_matcher_reason(self.matcher.get_error())})",
                             hint="run it again; if it repeats, simplify the schema "
                                  "(README, 'Schemas')")


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "unknown error"


def _matcher_reason(error: str) -> str:
    """What kind of failure llguidance reports, without the rest of its message: that holds the
    tokens decoded so far (document text) and the whole grammar (the schema), which never go on
    stderr or into a record."""
    kind = (error or "").split(":", 1)[0].strip()
    kind = kind if kind.replace(" ", "").isalpha() and len(kind) <= 40 else "matcher error"
    stop = re.search(r"^Stop: ([A-Za-z]+)$", error or "", re.MULTILINE)
    return f"{kind}, {stop.group(1)}" if stop else kind


def bitmask_to_bool(mask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int32 [B, W] bitmask -> bool [B, V] (plain torch; llguidance's own helper compiles)."""
    shifts = torch.arange(32, dtype=torch.int32, device=mask.device)
    bits = (mask.unsqueeze(-1) >> shifts) & 1  # [B, W, 32]
    return bits.reshape(mask.shape[0], -1)[:, :vocab_size].bool()


def apply_bitmask(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """logits [B, V] with disallowed tokens set to -inf (in place); mask int32 [B, W] on any
    device."""
    allowed = bitmask_to_bool(mask.to(logits.device, non_blocking=True), logits.shape[-1])
    return logits.masked_fill_(~allowed, float("-inf"))

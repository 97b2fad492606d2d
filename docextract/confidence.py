"""Per-field confidence from the model's own token probabilities.

The engine reports, for each generated token, its log-probability under the model's distribution
before the grammar mask, and which tokens the grammar forced (engine/api.py Completion). Here the
tokens are mapped onto the JSON leaf values they spell, by character offsets in the compact JSON
text:

- a leaf's *value characters* are the characters of a number or literal, or those between a
  string's quotes (as written in the JSON text, escapes included);
- its *value tokens* are the tokens that contain at least one of its value characters and were
  not forced by the grammar (a token like `"AB` that carries a quote and letters counts; a token
  like `":"` does not). An empty string has no value characters: the token holding its closing
  quote (the model's choice to end it) stands in;
- `confidence` is the geometric mean of the value tokens' probabilities, `confidence_min` the
  smallest, both rounded to 3 decimals. A leaf whose value tokens were all forced (the grammar
  alone decided it) or null gets no entry.

Paths are written like the validation error locs: `gstin`, `supplier.gstin`,
`transactions[11].balance`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterator

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WS = " \t\n\r"


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def leaf_spans(text: str) -> dict[str, tuple[int, int, Any]]:
    """{path: (start, end, value)} of every leaf (string, number, true/false, null) of the JSON
    `text`; [start, end) are the value characters (inside the quotes for a string). Text that is
    not complete JSON gives the leaves read before the point where it stops."""
    spans: dict[str, tuple[int, int, Any]] = {}
    try:
        _value(text, _skip(text, 0), "", spans)
    except (ValueError, IndexError):
        pass
    return spans


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _value(text: str, i: int, path: str, spans: dict) -> int:
    """Read the value at `i`; -> the index after it."""
    ch = text[i]
    if ch == "{":
        i = _skip(text, i + 1)
        if text[i] == "}":
            return i + 1
        while True:
            key, i = json.decoder.scanstring(text, i + 1)
            i = _skip(text, i)
            if text[i] != ":":
                raise ValueError("expected ':'")
            i = _skip(text, _value(text, _skip(text, i + 1), join(path, key), spans))
            if text[i] == "}":
                return i + 1
            if text[i] != ",":
                raise ValueError("expected ','")
            i = _skip(text, i + 1)
    if ch == "[":
        i = _skip(text, i + 1)
        if text[i] == "]":
            return i + 1
        k = 0
        while True:
            i = _skip(text, _value(text, i, join(path, k), spans))
            k += 1
            if text[i] == "]":
                return i + 1
            if text[i] != ",":
                raise ValueError("expected ','")
            i = _skip(text, i + 1)
    if ch == '"':
        value, end = json.decoder.scanstring(text, i + 1)
        spans[path] = (i + 1, end - 1, value)
        return end
    for word, value in (("true", True), ("false", False), ("null", None)):
        if text.startswith(word, i):
            spans[path] = (i, i + len(word), value)
            return i + len(word)
    m = _NUMBER.match(text, i)
    if not m:
        raise ValueError(f"unexpected {ch!r}")
    spans[path] = (i, m.end(), json.loads(m.group()))
    return m.end()


def _token_ranges(offsets: list[int], length: int) -> Iterator[tuple[int, int, int]]:
    for j, start in enumerate(offsets):
        end = offsets[j + 1] if j + 1 < len(offsets) else length
        yield j, start, max(end, start)


def value_tokens(text: str, offsets: list[int], forced: list[bool],
                 logprobs: list[float | None]) -> dict[str, list[int]]:
    """{path: indices of the value tokens} of every non-null leaf (see the module docstring)."""
    ranges = list(_token_ranges(offsets, len(text)))
    out: dict[str, list[int]] = {}
    for path, (start, end, value) in leaf_spans(text).items():
        if value is None:
            continue
        lo, hi = (start, end) if end > start else (end, end + 1)
        out[path] = [j for j, a, b in ranges
                     if a < hi and b > lo and not forced[j] and logprobs[j] is not None]
    return out


def token_logprobs(completion) -> dict[str, list[float]]:
    """{path: log-probabilities of its value tokens} of every non-null leaf of the completion's
    JSON with at least one value token the model chose; empty when the completion carries no
    log-probabilities (Request.logprobs was off, or a fake engine)."""
    logprobs = getattr(completion, "logprobs", None)
    offsets = getattr(completion, "offsets", None)
    forced = getattr(completion, "forced", None)
    if logprobs is None or offsets is None or forced is None:
        return {}
    return {path: [logprobs[j] for j in tokens]
            for path, tokens in value_tokens(completion.text, offsets, forced, logprobs).items()
            if tokens}


def summarise(pooled: dict[str, list[float]], digits: int | None = 3
              ) -> tuple[dict[str, float], dict[str, float]]:
    """{path: log-probabilities} -> (confidence, confidence_min): geometric mean and minimum of
    the probabilities, rounded to `digits` (None: not rounded)."""
    mean = {p: math.exp(sum(v) / len(v)) for p, v in pooled.items()}
    low = {p: math.exp(min(v)) for p, v in pooled.items()}
    if digits is not None:
        mean = {p: round(x, digits) for p, x in mean.items()}
        low = {p: round(x, digits) for p, x in low.items()}
    return mean, low


def field_confidence(completion, digits: int | None = 3) -> tuple[dict[str, float], dict[str, float]]:
    """-> (confidence, confidence_min): {path: probability} of every non-null leaf of the
    completion's JSON with at least one value token the model chose. Empty when the completion
    carries no log-probabilities. `digits`: the rounding (None: none)."""
    return summarise(token_logprobs(completion), digits)

"""The data types of the Engine API (contract, see architecture.md). No torch import here, so that
the pipeline and its tests can use them without loading the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


@dataclass
class Request:
    """One generation: images in order, then the user text, under an optional JSON Schema."""

    prompt: str
    images: list[Any] = field(default_factory=list)  # PIL images, in page order
    json_schema: dict[str, Any] | None = None
    max_new_tokens: int = 1024
    # Optional text placed before each image (e.g. "Page 3"); same length as `images` when given.
    image_labels: list[str] | None = None
    system: str | None = None
    # Per-token log-probabilities in the Completion (see Completion.logprobs); off costs nothing.
    logprobs: bool = False


@dataclass
class Completion:
    text: str
    tokens: list[int]
    finish_reason: str  # "stop" (stop token or grammar accepted), "length" (max_new_tokens)
    prompt_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # prefill_s, decode_s, vision_s ...
    # With Request.logprobs, one entry per token of `tokens`: the token's natural log-probability
    # under the model's own distribution, before the grammar mask and any logits processor (what
    # the model believed), or None where that distribution was not computed (grammar-forced
    # tokens are fed to the model together, without a choice); `forced` marks the tokens the grammar forced (fast-forwarded, the stop token that
    # ends a complete value, or the only token its mask allowed); `offsets` the character offset
    # in `text` where each token starts (a token that starts inside a multi-byte character
    # counts from that character; the final stop token at len(text)).
    logprobs: list[float | None] | None = None
    forced: list[bool] | None = None
    offsets: list[int] | None = None


class EngineLike(Protocol):
    """What the pipeline needs from an engine; the real Engine and the test fakes both fit."""

    name: str
    experts: str

    def generate(self, requests: Sequence[Request]) -> list[Completion]: ...

"""A tiny random checkpoint that "prefers to stop": one residual channel is held constant and the
LM head reads it to favour `"`, `]` and `}`, so under a schema's grammar the random model closes
strings and arrays early and every extraction stays short. It still cannot read documents."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from docextract.engine import randomckpt

CONSTANT = 10.0
BIAS = 6.0
PREFERRED = ('"', "]", "}")
# Every projection that writes into the residual stream leaves channel 0 alone.
WRITERS = ("linear_attn.out_proj.weight", "self_attn.o_proj.weight",
           "shared_expert.down_proj.weight", "mlp.down_proj.weight")


def bias_checkpoint(folder: Path) -> None:
    from tokenizers import Tokenizer

    path = folder / "model.safetensors"
    weights = load_file(str(path))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    preferred = [tok.token_to_id(t) for t in PREFERRED]
    assert None not in preferred
    for name, w in weights.items():
        if name.endswith("embed_tokens.weight"):
            w[:, 0] = CONSTANT
        elif name.endswith(WRITERS):
            w[0, :] = 0
        elif name.endswith("mlp.experts.down_proj"):
            w[:, 0, :] = 0
        elif name == "model.visual.merger.linear_fc2.weight":
            w[0, :] = 0
        elif name == "model.visual.merger.linear_fc2.bias":
            w[0] = CONSTANT
        elif name == "model.language_model.norm.weight":
            w[0] = 0
        elif name == "lm_head.weight":
            w[:, 0] = 0
            w[preferred, 0] = BIAS
    save_file(weights, str(path), metadata={"format": "pt"})


@pytest.fixture(scope="session")
def short_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("short-model")
    randomckpt.write(folder, kind="moe", seed=3, dtype=torch.float32)
    bias_checkpoint(folder)
    return folder


SHORT_CONTEXT = 8192


@pytest.fixture(scope="session")
def short_context_model(tmp_path_factory) -> Path:
    """The biased model with a context of SHORT_CONTEXT tokens: a 60-page statement does not fit
    one request (issue 14)."""
    folder = tmp_path_factory.mktemp("short-context-model")
    randomckpt.write(folder, kind="moe", seed=3, dtype=torch.float32,
                     preset={"text_config": {"max_position_embeddings": SHORT_CONTEXT}})
    bias_checkpoint(folder)
    return folder

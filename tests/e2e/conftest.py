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


# Credentials for the local S3 server (it accepts any); no real AWS configuration is read.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}


@pytest.fixture(scope="session")
def s3_endpoint():
    """A local S3-compatible server (moto) on 127.0.0.1 and a free port: `HOST:PORT`."""
    import logging

    ThreadedMotoServer = pytest.importorskip("moto.server").ThreadedMotoServer  # a dev extra

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def s3_upload(endpoint: str, bucket: str, objects: dict[str, bytes]) -> None:
    """Create `bucket` on the local server and put `objects` ({key: bytes}) in it."""
    from pyarrow import fs

    store, _ = fs.FileSystem.from_uri(
        f"s3://?endpoint_override={endpoint}&scheme=http&allow_bucket_creation=true")
    store.create_dir(bucket)
    for key, data in objects.items():
        with store.open_output_stream(f"{bucket}/{key}") as f:
            f.write(data)

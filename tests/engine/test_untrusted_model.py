"""A model folder is untrusted input: its index, config and chat template are checked before
they can make docextract open other files, allocate without bound or render for minutes."""

from __future__ import annotations

import json

import pytest

from docextract.engine.weights import checkpoint_files, read_headers
from docextract.errors import ModelError


@pytest.mark.parametrize("shard", ["../outside.safetensors", "../../etc/passwd",
                                   "/etc/passwd", "sub/../../outside.safetensors",
                                   "..", "model.bin"])
def test_index_naming_a_shard_outside_the_folder_is_refused(tmp_path, shard):
    model = tmp_path / "model"
    model.mkdir()
    # The file the index points at exists: the old loader opened it.
    (tmp_path / "outside.safetensors").write_bytes(b"\x00" * 16)
    (model / "model.bin").write_bytes(b"\x00" * 16)
    (model / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a.weight": shard}}))
    with pytest.raises(ModelError, match="not safetensors files of the model folder"):
        checkpoint_files(model)
    with pytest.raises(ModelError, match="not safetensors files of the model folder"):
        read_headers(model)

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


def _config_file(tmp_path, change) -> object:
    from docextract.engine import randomckpt

    data = randomckpt.config_dict("moe")
    change(data)
    folder = tmp_path / "cfg"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(data))
    return folder


def test_zero_context_is_refused_at_config_load(tmp_path):
    from docextract.engine.config import load_config

    folder = _config_file(tmp_path, lambda d: d["text_config"].update(max_position_embeddings=0))
    with pytest.raises(ModelError, match="max_position_embeddings must be a positive integer"):
        load_config(folder)


@pytest.mark.parametrize("section,key,value", [
    ("text_config", "num_hidden_layers", 10**12), ("text_config", "vocab_size", 10**12),
    ("vision_config", "depth", 10**6), ("text_config", "hidden_size", 10**9),
    ("text_config", "num_experts", 10**7)])
def test_absurd_sizes_are_refused_before_anything_is_built(tmp_path, section, key, value):
    from docextract.engine.config import load_config

    # num_hidden_layers 10**12 used to build a 10**12-entry layer list inside the config itself.
    folder = _config_file(tmp_path, lambda d: d[section].update({key: value}))
    with pytest.raises(ModelError, match=f"{key} is {value:,}, above the limit"):
        load_config(folder)


def test_deeply_nested_config_is_a_clean_error(tmp_path):
    from docextract.engine.config import load_config

    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ModelError, match="nests too deeply"):
        load_config(folder)


@pytest.mark.parametrize("section,key,value", [
    ("text_config", "vocab_size", 4096), ("vision_config", "depth", 5),
    ("text_config", "num_hidden_layers", 8)])
def test_config_sizes_that_the_weights_do_not_have_are_refused_before_allocation(
        tmp_path, monkeypatch, section, key, value):
    from docextract.engine import quant, randomckpt
    from docextract.engine.config import load_config

    folder = randomckpt.write(tmp_path / "ckpt", kind="dense")
    data = json.loads((folder / "config.json").read_text())
    data[section][key] = value
    if key == "num_hidden_layers":
        data["text_config"].pop("layer_types", None)
    (folder / "config.json").write_text(json.dumps(data))
    config = load_config(folder)

    def no_allocation(*args, **kwargs):
        raise AssertionError("the model was built before the config was checked")

    monkeypatch.setattr(quant.Model, "empty", no_allocation)
    with pytest.raises(ModelError, match="does not match its weights"):
        quant.load_model(folder, config, quant.torch.float32, "cpu")


@pytest.mark.parametrize("typed", ["models/tpyo", "models/tpyo/", "./tpyo", "~/tpyo-model",
                                   "a/b/c", "models\\tpyo"])
def test_a_mistyped_model_folder_is_never_sent_to_the_hub(tmp_path, monkeypatch, typed):
    from docextract import pipeline
    from docextract.console import Console
    from docextract.engine import hub

    (tmp_path / "models" / "typo").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))

    def hub_call(*args, **kwargs):
        raise AssertionError(f"{typed!r} was looked up on the Hub")

    for name in ("cached", "pull", "download_size"):
        monkeypatch.setattr(hub, name, hub_call)
    opts = pipeline.RunOptions(schema="pan", model=typed)
    with pytest.raises(ModelError, match="not a model directory") as info:
        pipeline.resolve_model(opts, Console(quiet=True))
    assert info.value.exit_code == 4
    if typed.startswith("models/"):
        assert "did you mean models/typo" in info.value.hint


def test_a_repository_id_is_still_a_repository_id(tmp_path, monkeypatch):
    from docextract.engine import hub

    monkeypatch.chdir(tmp_path)
    assert not hub.looks_like_path("Qwen/Qwen3.5-0.8B")
    (tmp_path / "Qwen").mkdir()
    # A local folder named like the owner makes it a path: the local reading wins.
    assert hub.looks_like_path("Qwen/Qwen3.5-0.8B")


def test_a_grammar_failure_names_neither_the_output_nor_the_schema():
    from docextract.engine import randomckpt
    from docextract.engine.constrain import GrammarCompiler

    tok = randomckpt.build_tokenizer()
    compiler = GrammarCompiler(tok.to_str(), 512, [tok.token_to_id("<|im_end|>")])
    schema = {"type": "object", "required": ["holder"], "additionalProperties": False,
              "properties": {"holder": {"type": "string", "maxLength": 3,
                                        "description": "schema-secret"}}}
    constraint = compiler.new(schema)
    # The model's answer so far holds document text; past maxLength the matcher fails.
    with pytest.raises(ModelError) as info:
        for token in tok.encode('{"holder":"Rahul Kumar', add_special_tokens=False).ids:
            constraint.accept(token)
    text = f"{info.value.message} {info.value.hint}"
    assert "constrained decoding failed" in text
    for leaked in ("Rahul", "Kumar", "holder", "schema-secret", "maxLength", "<state>"):
        assert leaked not in text, leaked

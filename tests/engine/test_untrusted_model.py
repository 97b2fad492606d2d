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


DEEP = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"


def test_deeply_nested_config_is_a_clean_error(tmp_path):
    from docextract.engine import randomckpt
    from docextract.engine.config import load_config
    from docextract.engine.processor import ImageProcessor
    from docextract.engine.tokenizer import Tokenizer

    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "config.json").write_text(DEEP)
    with pytest.raises(ModelError, match="nests too deeply"):
        load_config(folder)
    randomckpt.write_tokenizer(folder)
    (folder / "tokenizer_config.json").write_text(DEEP)
    with pytest.raises(ModelError, match="nests too deeply"):
        Tokenizer.from_dir(folder)
    (folder / "preprocessor_config.json").write_text(DEEP)
    with pytest.raises(ModelError, match="preprocessor_config.json: maximum recursion depth"):
        ImageProcessor.from_dir(folder, randomckpt.model_config("dense").vision_config)


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


@pytest.fixture
def template_dir(tmp_path):
    from docextract.engine import randomckpt

    folder = tmp_path / "tok"
    folder.mkdir()
    randomckpt.write_tokenizer(folder)
    return folder


HOSTILE_TEMPLATES = {
    "repeat": "{{ 'A' * 10000000000 }}",
    "nested-range": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                    "{% endfor %}",
    "nested-string-loops": "{% set s = 'ab' * 400000 %}{% for a in s %}{% for b in s %}"
                           "{% endfor %}{% endfor %}",
    "doubling-concat": "{% set s = 'A' * 1000 %}" + "{% set s = s ~ s %}" * 40 + "{{ s|length }}",
    "doubling-plus": "{% set ns = namespace(s='A') %}{% for i in range(60) %}"
                     "{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "exponential-macro": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
                         "{% endmacro %}{{ f(60) }}",
    "macro-buffer": "{% macro m(s) %}{% for i in range(100000) %}{{ s }}{% endfor %}"
                    "{% endmacro %}{{ m('A' * 100000)|length }}",
    "center-filter": "{{ 'a'|center(10000000000) }}",
    "str-method": "{{ 'a'.ljust(10000000000) }}",
    "replace-growth": "{{ ('A' * 100000)|replace('A', 'B' * 100000) }}",
    "join-growth": "{{ (['A' * 100000] * 10)|join('x' * 1000000) }}",
    "format-width": "{{ '%10000000000d' % 1 }}",
    "format-precision": "{{ '%.5000000f' % 1 }}",
    "format-filter-width": "{{ '%5000000s'|format('x') }}",
    "str-format-width": "{{ '{:>10000000000}'.format(1) }}",
    "huge-power": "{{ 10 ** 100000000 }}",
    "squaring": "{% set ns = namespace(n=3) %}{% for i in range(64) %}"
                "{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "output-size": "{% for i in range(100000) %}{{ 'A' * 1000 }}{% endfor %}",
}


@pytest.mark.parametrize("name", HOSTILE_TEMPLATES)
def test_a_hostile_chat_template_is_stopped_by_the_limits(template_dir, monkeypatch, name):
    from docextract.engine import sandbox
    from docextract.engine.tokenizer import Tokenizer

    monkeypatch.setattr(sandbox, "TIME_LIMIT_S", 0.3)
    (template_dir / "chat_template.jinja").write_text(HOSTILE_TEMPLATES[name])
    tok = Tokenizer.from_dir(template_dir)
    with pytest.raises(ModelError, match=r"chat template \(chat_template.jinja\) failed: "
                                         r"(rendering took longer|.*would exceed|.*above)") as info:
        tok.render(["Extract."])
    assert info.value.exit_code == 4


def test_the_limits_leave_real_templates_alone(template_dir):
    from docextract.engine.tokenizer import BUILTIN_CHAT_TEMPLATE, ImageSlot, Tokenizer

    tok = Tokenizer.from_dir(template_dir)
    text = tok.render([ImageSlot(), "x" * 200_000], system="s")
    assert text.count("<|image_pad|>") == 1 and "x" * 200_000 in text
    (template_dir / "chat_template.jinja").write_text(
        "{% for m in messages %}{{ m.role ~ ':' ~ (m.content|map(attribute='type')|join(','))"
        " }}{% endfor %}{{ '%5d' % 42 }}{{ 'ab'|center(6) }}{{ [1, 2]|tojson }}"
        "{{ ' %s in 2000000 %s' % ('a', 'b') }}{{ '{}-{:>3}/9999999'.format(1, 2) }}")
    assert Tokenizer.from_dir(template_dir).render([ImageSlot(), "t"]) == \
        'user:image,text   42  ab  [1, 2] a in 2000000 b1-  2/9999999'
    assert BUILTIN_CHAT_TEMPLATE


@pytest.mark.parametrize("where", ["jinja", "config", "legacy"])
@pytest.mark.parametrize("text", ["", "  \n"])
def test_an_empty_chat_template_is_refused(template_dir, where, text):
    from docextract.engine.tokenizer import Tokenizer

    (template_dir / "chat_template.jinja").unlink()
    if where == "jinja":
        (template_dir / "chat_template.jinja").write_text(text)
    elif where == "config":
        config = json.loads((template_dir / "tokenizer_config.json").read_text())
        config["chat_template"] = text
        (template_dir / "tokenizer_config.json").write_text(json.dumps(config))
    else:
        (template_dir / "chat_template.json").write_text(json.dumps({"chat_template": text}))
    with pytest.raises(ModelError, match="chat template in .* is empty") as info:
        Tokenizer.from_dir(template_dir)
    assert "built-in" in info.value.hint


def test_a_hostile_template_is_refused_before_the_weights_are_loaded(tmp_path, monkeypatch):
    from docextract.engine import engine as engine_module
    from docextract.engine import randomckpt, sandbox

    monkeypatch.setattr(sandbox, "TIME_LIMIT_S", 0.3)
    folder = randomckpt.write(tmp_path / "ckpt", kind="dense")
    (folder / "chat_template.jinja").write_text(HOSTILE_TEMPLATES["nested-range"])

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were loaded before the template was checked")

    monkeypatch.setattr(engine_module, "load_model", no_weights)
    with pytest.raises(ModelError, match="rendering took longer"):
        engine_module.Engine.load(folder, device="cpu", dtype="float32")

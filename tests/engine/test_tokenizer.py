"""The tokenizer and chat prompt, against transformers' Qwen3_5Tokenizer on the tiny tokenizer."""

from __future__ import annotations

import json
import shutil

import pytest

from docextract.engine.config import load_config
from docextract.engine.tokenizer import ImageSlot, Tokenizer
from docextract.errors import ModelError

TEXTS = [
    "Extract the invoice as JSON.",
    "Total: ₹1,23,456.78 (INR) incl. 18% GST; £240.00 VAT",
    "आधार संख्या: 1234 5678 9012 — नाम: राहुल",
    '{"gstin": "27AAPFU0939F1Z5", "items": [{"qty": 12}]}\n\n',
    "  leading spaces\tand tabs\r\nCRLF  lines   ",
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n<think>\n",
    "e\u0301 composed by NFC: é",
    "",
]


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return tiny_checkpoint("moe")


@pytest.fixture(scope="module")
def tok(ckpt):
    return Tokenizer.from_dir(ckpt.path, load_config(ckpt.path))


@pytest.fixture(scope="module")
def hf_tok(ckpt):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ckpt.path)


@pytest.mark.parametrize("text", TEXTS)
def test_encode_matches_transformers(tok, hf_tok, text):
    assert tok.encode(text) == hf_tok(text, add_special_tokens=False)["input_ids"]
    assert tok.encode(text) == hf_tok(text)["input_ids"]


@pytest.mark.parametrize("text", TEXTS)
def test_decode_and_bytes_round_trip(tok, text):
    import unicodedata

    ids = tok.encode(text)
    assert tok.decode(ids) == unicodedata.normalize("NFC", text)
    assert b"".join(tok.token_bytes(i) for i in ids) == unicodedata.normalize("NFC", text).encode()


def test_special_tokens_and_vocabulary(tok, tiny_spec):
    assert tok.vocab_size == tiny_spec.tokenizer_size
    assert tok.im_end_id == tiny_spec.im_end_id and tok.image_pad_id == tiny_spec.image_token_id
    assert {tiny_spec.im_start_id, tiny_spec.im_end_id, tiny_spec.endoftext_id,
            tiny_spec.image_token_id} <= tok.special_ids
    think = tiny_spec.token_ids["<think>"]
    assert think not in tok.special_ids and think in tok.added_ids
    assert len(tok.special_ids) == 21 and len(tok.added_ids) == 33
    vocab = tok.vocab_bytes()
    assert len(vocab) == tok.vocab_size
    assert vocab[tiny_spec.im_end_id] == b"<|im_end|>" and vocab[think] == b"<think>"
    # Byte-level BPE: every single byte is a token of its own.
    singles = {v for v in vocab[: tiny_spec.bpe_size] if len(v) == 1}
    assert singles == {bytes([b]) for b in range(256)}
    assert tok.token_bytes(tiny_spec.vocab_size - 1) == b""


def test_stop_ids_from_tokenizer_and_config(tok, tiny_spec):
    assert tok.stop_ids[:2] == [tiny_spec.im_end_id, tiny_spec.endoftext_id]
    assert set(tok.stop_ids) == {tiny_spec.im_end_id, tiny_spec.endoftext_id}


def test_render_is_the_qwen35_format(tok):
    got = tok.render([ImageSlot(), "Describe this image."])
    assert got == ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this "
                   "image.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert tok.template_source == "chat_template.jinja"


CONTENTS = [
    (["Read the receipt."], None),
    ([ImageSlot(), "Describe this image."], None),
    (["Page 1", ImageSlot(), "Page 2 ", ImageSlot(), "  Extract the invoice as JSON.  "],
     " You extract documents. "),
    ([ImageSlot(), ImageSlot(), ImageSlot()], "x"),
    (["\n\nआधार ₹1,180\n"], None),
]


@pytest.mark.parametrize("content,system", CONTENTS)
def test_render_matches_transformers_apply_chat_template(tok, hf_tok, content, system):
    hf = hf_tok.apply_chat_template(tok.messages(content, system), tokenize=False,
                                    add_generation_prompt=True, enable_thinking=False)
    assert tok.render(content, system) == hf


@pytest.mark.parametrize("content,system", CONTENTS)
def test_builtin_template_renders_like_the_checkpoints(tok, tiny_tokenizer_dir, tmp_path,
                                                        content, system):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_tokenizer_dir / "tokenizer.json", bare / "tokenizer.json")
    builtin = Tokenizer.from_dir(bare)
    assert builtin.template_source == "built-in"
    assert builtin.render(content, system) == tok.render(content, system)


def test_template_sources_in_order(tiny_tokenizer_dir, tmp_path):
    folder = tmp_path / "t"
    shutil.copytree(tiny_tokenizer_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = "FROM-CONFIG {{ messages[-1].content[0].text }}"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert Tokenizer.from_dir(folder).render(["x"]).startswith("<|im_start|>user")
    (folder / "chat_template.jinja").unlink()
    assert Tokenizer.from_dir(folder).render(["hello"]) == "FROM-CONFIG hello"
    config["chat_template"] = [{"name": "tool_use", "template": "TOOLS"},
                               {"name": "default", "template": "DEFAULT"}]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert Tokenizer.from_dir(folder).render(["x"]) == "DEFAULT"
    del config["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": "LEGACY"}))
    assert Tokenizer.from_dir(folder).render(["x"]) == "LEGACY"


def test_add_vision_id_labels_pictures(tok):
    text = tok.render([ImageSlot(), ImageSlot(), "Compare."], add_vision_id=True)
    assert "Picture 1: <|vision_start|>" in text and "Picture 2: <|vision_start|>" in text


def test_build_prompt_ids_expands_pads_like_the_reference_processor(tok, hf_tok, tiny_spec):
    grids = [(1, 4, 6), (1, 2, 2), (1, 10, 4)]
    content = ["Page 1", ImageSlot(grids[0]), "Page 2", ImageSlot(grids[1]), ImageSlot(grids[2]),
               "Extract as JSON."]
    ids = tok.build_prompt_ids(content, system="Be exact.")
    assert ids.count(tiny_spec.image_token_id) == 6 + 1 + 10
    # transformers' processors expand the placeholder in the text, then tokenise.
    text = tok.render(content, system="Be exact.")
    pieces = text.split("<|image_pad|>")
    expanded = pieces[0] + "".join("<|image_pad|>" * (t * h * w // 4) + rest
                                   for (t, h, w), rest in zip(grids, pieces[1:]))
    assert ids == hf_tok(expanded)["input_ids"]
    assert ids == tok.build_prompt_ids([c if isinstance(c, str) else ImageSlot() for c in content],
                                       system="Be exact.", image_grid_thw=grids)
    start = ids.index(tiny_spec.vision_start_id)
    assert ids[start + 1: start + 7] == [tiny_spec.image_token_id] * 6
    assert ids[start + 7] == tiny_spec.vision_end_id


def test_image_count_mismatch_is_an_error(tok):
    with pytest.raises(ModelError, match="2 image placeholders for 1 images"):
        tok.build_prompt_ids([ImageSlot(), ImageSlot(), "x"], image_grid_thw=[(1, 2, 2)])
    with pytest.raises(ModelError, match="no grid_thw"):
        tok.build_prompt_ids([ImageSlot(), "x"])
    with pytest.raises(ModelError, match="text or ImageSlot"):
        tok.render([3])


def test_tokenizer_must_match_the_config(ckpt, tmp_path):
    folder = tmp_path / "mismatch"
    shutil.copytree(ckpt.path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["image_token_id"] = 100
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="image_token_id"):
        Tokenizer.from_dir(folder, load_config(folder))


def test_missing_or_foreign_tokenizer(tiny_tokenizer_dir, tmp_path):
    with pytest.raises(ModelError, match="no tokenizer.json"):
        Tokenizer.from_dir(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(ModelError, match="cannot read"):
        Tokenizer.from_dir(tmp_path)
    data = json.loads((tiny_tokenizer_dir / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "<|image_pad|>"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="image_pad"):
        Tokenizer.from_dir(tmp_path)


def test_template_errors_and_sandbox(tiny_tokenizer_dir, tmp_path):
    folder = tmp_path / "t"
    shutil.copytree(tiny_tokenizer_dir, folder)
    (folder / "chat_template.jinja").write_text("{{ raise_exception('no images here') }}")
    with pytest.raises(ModelError, match="no images here"):
        Tokenizer.from_dir(folder).render(["x"])
    (folder / "chat_template.jinja").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(ModelError, match="chat template"):
        Tokenizer.from_dir(folder).render(["x"])

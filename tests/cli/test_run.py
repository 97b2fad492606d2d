"""`docextract run` through the fake engine: stdout is pure JSON, the record format, exit codes,
masking, the validation-feedback retry, --out."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from docextract import pipeline
from docextract.cli import app

GOOD = '{"id_number":"234123412346","items":[1,2],"total":3}'
BAD = '{"id_number":"234123412346","items":[1,2],"total":4}'


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"doc{i}.png"
        Image.new("RGB", (300 + 10 * i, 200), (255, 255 - i, 255)).save(p)
        paths.append(str(p))
    return paths


@pytest.fixture
def use_engine(monkeypatch, fake_engine):
    def install(answer, **kw):
        engine = fake_engine(answer, **kw)
        monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: engine)
        return engine
    return install


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_one_file_prints_one_record(receipt_spec, use_engine, images):
    engine = use_engine(GOOD)
    res = invoke("run", images[0], "--schema", "receipt")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)  # pure JSON on stdout
    assert record["source"] == images[0]
    assert record["schema"] == "receipt@3"
    assert record["pages"] == 1 and len(record["sha256"]) == 64
    assert record["valid"] is True and record["errors"] == []
    assert record["model"] == {"name": "fake-model", "experts": "bf16"}
    assert set(record["timing"]) >= {"ingest_s", "prefill_s", "decode_s", "tokens"}
    # Masked by default; the record says what was masked.
    assert record["data"]["id_number"] == "XXXXXXXX2346"
    assert record["masked"] == ["id_number"]
    (req,) = engine.requests
    assert req.image_labels == ["Page 1"] and len(req.images) == 1
    assert req.json_schema == receipt_spec.json_schema
    assert "Read the receipt." in req.prompt


def test_unmask(receipt_spec, use_engine, images):
    use_engine(GOOD)
    record = json.loads(invoke("run", images[0], "-s", "receipt", "--unmask").stdout)
    assert record["data"]["id_number"] == "234123412346" and record["masked"] == []


def test_several_files_print_json_lines(receipt_spec, use_engine, images):
    use_engine(GOOD)
    res = invoke("run", *images, "--schema", "receipt")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert [json.loads(line)["source"] for line in lines] == images


def test_invalid_extraction_exits_1_and_retries_once(receipt_spec, use_engine, images):
    engine = use_engine(BAD)
    res = invoke("run", images[0], "--schema", "receipt")
    assert res.exit_code == 1
    record = json.loads(res.stdout)
    assert record["valid"] is False and record["attempts"] == 2
    assert record["errors"][0]["type"] == "total_mismatch"
    assert record["errors"][0]["loc"] == "total"
    # The retry names the failing field but never repeats document content.
    retry = engine.requests[1].prompt
    assert "total: total is not the sum of the items" in retry
    assert "234123412346" not in retry


def test_retry_can_fix(receipt_spec, use_engine, images):
    answers = iter([BAD, GOOD])
    use_engine(lambda r: next(answers))
    record = json.loads(invoke("run", images[0], "-s", "receipt").stdout)
    assert record["valid"] is True and record["attempts"] == 2


def test_retries_zero(receipt_spec, use_engine, images):
    engine = use_engine(BAD)
    invoke("run", images[0], "-s", "receipt", "--retries", "0")
    assert len(engine.requests) == 1


def test_warning_does_not_invalidate(receipt_spec, use_engine, images):
    use_engine('{"id_number":"234123412346","items":[],"total":0}')
    res = invoke("run", images[0], "-s", "receipt")
    record = json.loads(res.stdout)
    assert res.exit_code == 0 and record["valid"] is True
    assert record["errors"][0]["severity"] == "warning"


def test_truncated_generation_is_reported(receipt_spec, use_engine, images):
    use_engine('{"id_number":"2341', finish_reason="length")
    res = invoke("run", images[0], "-s", "receipt")
    record = json.loads(res.stdout)
    assert res.exit_code == 1
    assert record["data"] is None
    assert record["errors"][0]["type"] == "truncated"


def test_bad_file_among_several_becomes_a_record(receipt_spec, use_engine, images, tmp_path):
    use_engine(GOOD)
    missing = str(tmp_path / "nope.pdf")
    res = invoke("run", images[0], missing, images[1], "-s", "receipt")
    assert res.exit_code == 3
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["valid"] for r in records] == [True, False, True]
    assert records[1]["data"] is None and records[1]["errors"][0]["type"] == "input"
    assert "error:" in res.stderr and "nope.pdf" in res.stderr


def test_out_file_is_written_and_stdout_stays_empty(receipt_spec, use_engine, images, tmp_path):
    use_engine(GOOD)
    out = tmp_path / "r.json"
    res = invoke("run", images[0], "-s", "receipt", "--out", str(out))
    assert res.exit_code == 0 and res.stdout == ""
    assert json.loads(out.read_text())["valid"] is True
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_no_model_offline_is_exit_4_with_hint(receipt_spec, images, monkeypatch):
    monkeypatch.delenv("DOCEXTRACT_MODEL", raising=False)
    from docextract.engine import hub

    monkeypatch.setattr(hub, "cached", lambda repo, revision=None: None)
    res = invoke("run", images[0], "-s", "receipt", "--offline", "--device", "cpu")
    assert res.exit_code == 4
    # (a plain progress line may come first when the machine is slow)
    lines = [line for line in res.stderr.splitlines() if not line.startswith("documents: ")]
    assert lines[0] == "no --model given: using Qwen/Qwen3.5-0.8B (bf16 experts), the default for no GPU"
    assert lines[1].startswith("error: Qwen/Qwen3.5-0.8B is not downloaded and downloads are off")
    assert lines[2].startswith("hint: run 'docextract model pull Qwen/Qwen3.5-0.8B'")
    assert "Traceback" not in res.stderr


def test_missing_repo_is_downloaded_with_a_size_line(receipt_spec, images, monkeypatch, tmp_path,
                                                     fake_engine):
    from docextract.engine import Engine, hub

    pulled = []
    monkeypatch.setattr(hub, "cached", lambda repo, revision=None: None)
    monkeypatch.setattr(hub, "download_size", lambda repo, revision=None: 2_345_000_000)
    monkeypatch.setattr(hub, "pull", lambda repo, progress=None: pulled.append(repo) or tmp_path)
    loaded = []
    monkeypatch.setattr(Engine, "load", classmethod(
        lambda cls, path, **kw: loaded.append((path, kw)) or fake_engine(GOOD)))
    res = invoke("run", images[0], "-s", "receipt", "--model", "Qwen/Qwen3.5-2B")
    assert res.exit_code == 0, res.output
    assert pulled == ["Qwen/Qwen3.5-2B"]
    assert ("downloading Qwen/Qwen3.5-2B (2.3 GB: weights, config and tokenizer only) into the "
            "Hugging Face cache; no document leaves this machine") in res.stderr
    assert loaded[0][0] == tmp_path and loaded[0][1]["name"] == "Qwen/Qwen3.5-2B"


def test_default_model_follows_gpu_memory():
    from docextract.engine.hub import default_repo

    assert default_repo(None) == "Qwen/Qwen3.5-0.8B"
    assert default_repo(8) == "Qwen/Qwen3.5-2B"
    assert default_repo(24) == "Qwen/Qwen3.5-9B"
    assert default_repo(141) == "Qwen/Qwen3.5-35B-A3B"


def test_the_default_model_is_sized_for_the_gpu_that_device_names(monkeypatch):
    """Two cards of 8 and 24 GiB: `--device cuda:1` sizes the default model for the second."""
    import torch

    sizes = {0: 8, 1: 24}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: type("P", (), {"total_memory": sizes[i] * 2**30})())
    assert pipeline._gpu_memory_gib("cuda:1") == 24
    assert pipeline._gpu_memory_gib("cuda") == pipeline._gpu_memory_gib(None) == 8
    assert pipeline._gpu_memory_gib("auto") == 8
    assert pipeline._gpu_memory_gib("cpu") is None


def test_model_dir_without_config_is_exit_4(receipt_spec, images, tmp_path):
    res = invoke("run", images[0], "-s", "receipt", "--model", str(tmp_path))
    assert res.exit_code == 4 and "model pull" in res.stderr


def test_unknown_schema_is_exit_2(images):
    res = invoke("run", images[0], "--schema", "no_such_schema")
    assert res.exit_code == 2 and res.stderr.startswith("error:")


def test_max_new_tokens_is_bounded_by_the_schema(receipt_spec):
    n = pipeline.max_new_tokens_for(receipt_spec.json_schema)
    # 12-char id, up to 5 integers, one integer: a few hundred bytes at most.
    assert 50 < n < 1000
    assert pipeline.max_new_tokens_for({"type": "string"}) == 32768


def test_schema_auto_detects_then_extracts(use_engine, images):
    def answer(request):
        if "document_type" in json.dumps(request.json_schema):
            return '{"document_type":"pan"}'
        return '{"pan":"ACUPA7085R","name":"Rahul Kumar","father_name":null,"date_of_birth":"1990-01-31"}'

    engine = use_engine(answer)
    res = invoke("run", images[0], "--schema", "auto")
    record = json.loads(res.stdout)
    assert record["document_type"] == "pan" and record["schema"] == "pan@1"
    assert record["data"]["pan"] == "ACUPAXXXXR"  # PAN masked by default
    assert "detect_s" in record["timing"]
    assert len(engine.requests[0].images) == 1  # the type is chosen from the first page
    assert res.exit_code == (0 if record["valid"] else 1)


def test_schema_auto_other_is_reported(use_engine, images):
    use_engine('{"document_type":"other"}')
    res = invoke("run", images[0], "--schema", "auto")
    record = json.loads(res.stdout)
    assert res.exit_code == 1
    assert record["document_type"] == "other" and record["data"] is None
    assert record["errors"][0]["type"] == "unsupported_document"
    assert record["needs_review"] and record["review"] == [{"loc": "", "reasons": ["validation_error"]}]


def test_default_model_on_a_mid_size_gpu_uses_int4_experts():
    from docextract.engine.hub import default_model

    assert default_model(48) == ("Qwen/Qwen3.5-35B-A3B", "int4")
    assert default_model(80) == ("Qwen/Qwen3.5-35B-A3B", "bf16")


def test_a_page_number_beyond_the_document_is_a_warning(use_engine, images):
    from pathlib import Path

    from docextract import schemas

    spec = schemas.get("invoice")
    truth = json.loads((Path(__file__).parents[2] / "samples" / "data"
                        / "gst_invoice-s1-001.truth.json").read_text())
    truth["lines"][0]["page"] = 7
    use_engine(json.dumps(truth))
    record = json.loads(invoke("run", images[0], "-s", "invoice").stdout)
    warnings = [e for e in record["errors"] if e["type"] == "page_out_of_range"]
    assert warnings == [{"loc": "lines[0].page", "type": "page_out_of_range",
                         "msg": "page 7 of a 1-page document", "severity": "warning"}]
    assert record["valid"] is spec.validate(truth).valid

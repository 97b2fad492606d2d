"""`run` and `batch` on the real engine (a tiny random checkpoint): the output always parses and
conforms to the schema, identifiers have their shape, decoding ends inside its budget, the exit
code follows `valid`, Aadhaar numbers are masked unless --unmask, no socket is opened."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from docextract import pipeline, schemas
from docextract.cli import app

SAMPLES = Path(__file__).parents[2] / "samples" / "data"
CASES = [("aadhaar-s1-001-photo.jpg", "aadhaar"), ("pan-s1-001.pdf", "pan"),
         ("bank_statement-s1-001.pdf", "bank_statement"), ("gst_invoice-s1-001.pdf", "invoice"),
         ("vat_invoice-s1-001-photo.jpg", "invoice")]
SMALL = ["--max-pixels", str(96 * 32 * 32), "--device", "cpu", "--no-progress"]


def run(*args):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("sample,schema", CASES, ids=[c[0] for c in CASES])
def test_run_gives_schema_conforming_records(short_model, sample, schema):
    res = run("run", str(SAMPLES / sample), "--schema", schema, "--model", str(short_model), *SMALL)
    assert res.exit_code in (0, 1), res.output
    record = json.loads(res.stdout)
    spec = schemas.get(schema)
    assert record["data"] is not None
    jsonschema.validate(record["data"], spec.json_schema)  # shapes and identifier patterns
    assert res.exit_code == (0 if record["valid"] else 1)
    assert record["model"] == {"name": short_model.name, "experts": "bf16"}
    budget = pipeline.max_new_tokens_for(spec.json_schema)
    assert 0 < record["timing"]["tokens"] <= budget * record["attempts"]
    assert not any(e["type"] == "truncated" for e in record["errors"])


def test_aadhaar_is_masked_unless_unmask(short_model):
    sample = str(SAMPLES / "aadhaar-s1-001.pdf")
    masked = json.loads(run("run", sample, "-s", "aadhaar", "--model", str(short_model), *SMALL).stdout)
    plain = json.loads(run("run", sample, "-s", "aadhaar", "--model", str(short_model), "--unmask",
                           *SMALL).stdout)
    number = plain["data"]["aadhaar_number"]
    assert number is not None, "the biased model should write a number (its pattern forbids '')"
    assert plain["masked"] == []
    if re.fullmatch(r"[2-9][0-9]{11}", number):
        assert masked["data"]["aadhaar_number"] == "XXXX XXXX " + number[-4:]
        assert "aadhaar_number" in masked["masked"]
    else:  # the model wrote the masked form itself
        assert masked["data"]["aadhaar_number"] == number


def test_schema_auto_returns_a_known_type(short_model):
    res = run("run", str(SAMPLES / "pan-s1-001.pdf"), "--schema", "auto", "--model",
              str(short_model), *SMALL)
    record = json.loads(res.stdout)
    assert record["document_type"] in pipeline.DOCUMENT_TYPES
    assert res.exit_code in (0, 1)


def test_no_socket_is_opened_during_run(short_model, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    res = run("run", str(SAMPLES / "pan-s1-001-photo.jpg"), "-s", "pan", "--model",
              str(short_model), *SMALL)
    assert res.exit_code in (0, 1), res.output
    assert attempts == []


def test_batch_over_the_samples_resumes_after_sigkill(short_model, tmp_path):
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-c", "from docextract.cli import main; main()", "batch", str(SAMPLES),
           "--glob", "*-00?.pdf", "--schema", "auto", "--model", str(short_model), "--out",
           str(out), "--max-batch", "3", *SMALL]
    expected = sorted(p.name for p in SAMPLES.glob("*-00?.pdf"))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= 2):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < end, "no records written"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = out.read_bytes().count(b"\n")
    assert done_before < len(expected)
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["source"]).name for r in records) == expected
    assert all(r["document_type"] in pipeline.DOCUMENT_TYPES for r in records)

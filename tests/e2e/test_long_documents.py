"""A 60-page statement on the real engine (tiny random checkpoint with an 8k context): refused as
beyond the context when read in one request (`run --window 0`), extracted when read in page
windows decoded side by side in the continuously batched session (`batch --window 20`)."""

from __future__ import annotations

import json

import jsonschema
from typer.testing import CliRunner

from docextract import schemas
from docextract.cli import app
from docextract.samples import generate, render

SMALL = ["--max-pixels", str(96 * 32 * 32), "--dpi", "50", "--device", "cpu", "--no-progress"]


def test_sixty_pages_refused_in_one_request_are_extracted_in_windows(short_context_model,
                                                                     tmp_path):
    sample = generate.make_long(1, 60)
    pdf = tmp_path / f"{sample.stem}.pdf"
    pdf.write_bytes(render.pdf_bytes(sample.doc))
    model = ["--model", str(short_context_model)]
    res = CliRunner().invoke(app, ["run", str(pdf), "-s", "bank_statement", "--window", "0",
                                   *model, *SMALL])
    assert res.exit_code == 3, res.output
    assert "above the model's context of 8,192 tokens" in res.stderr

    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["batch", str(pdf), "-s", "bank_statement", "--window", "20",
                                   "--retries", "0", "--out", str(out), *model, *SMALL])
    assert res.exit_code in (0, 1), res.output
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["pages"] == 60
    assert record["windows"] == [[1, 20], [21, 40], [41, 60]]
    assert record["header_pages"] == [1, 60]
    assert record["timing"]["requests"] == 4 and record["timing"]["tokens"] > 0
    assert not any(e["type"] in ("unreadable_answer", "truncated") for e in record["errors"])
    jsonschema.validate(record["data"], schemas.get("bank_statement").json_schema)

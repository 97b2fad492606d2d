"""`docextract run --one-document` (several files, one document) and `--window` on the command line,
through a fake engine."""

from __future__ import annotations

import hashlib
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from docextract import pipeline
from docextract.cli import app

GOOD = '{"id_number":"234123412346","items":[1,2],"total":3}'


@pytest.fixture
def photos(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"stmt-p{i + 1}.png"
        Image.new("RGB", (320, 200 + 32 * i), (255, 250 - i, 255)).save(p)
        paths.append(str(p))
    return paths


@pytest.fixture
def engine(monkeypatch, fake_engine):
    made = fake_engine(GOOD)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: made)
    return made


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_one_document_from_several_files(receipt_spec, engine, photos):
    order = [photos[2], photos[0], photos[1]]
    res = invoke("run", *order, "--one-document", "--schema", "receipt")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)  # one JSON object, not JSON Lines
    assert record["source"] == order[0]
    assert record["sources"] == [{"source": p, "sha256": sha(p), "pages": 1} for p in order]
    assert record["sha256"] == hashlib.sha256("\n".join(sha(p) for p in order).encode()).hexdigest()
    assert record["pages"] == 3
    (request,) = engine.requests
    assert request.image_labels == ["Page 1", "Page 2", "Page 3"]
    # Pages in the order given: the third photo is the tallest.
    assert [im.height for im in request.images] == [256, 192, 224]


def test_one_document_sha_follows_the_order(receipt_spec, engine, photos):
    a = json.loads(invoke("run", *photos, "--one-document", "-s", "receipt").stdout)
    b = json.loads(invoke("run", *photos[::-1], "--one-document", "-s", "receipt").stdout)
    assert a["sha256"] != b["sha256"] and a["data"] == b["data"]


def test_one_document_with_one_file_is_a_plain_record(receipt_spec, engine, photos):
    record = json.loads(invoke("run", photos[0], "--one-document", "-s", "receipt").stdout)
    assert record["sha256"] == sha(photos[0]) and "sources" not in record


def test_one_document_with_an_unreadable_file_is_exit_3(receipt_spec, engine, photos, tmp_path):
    bad = tmp_path / "stmt-p4.png"
    bad.write_bytes(b"not an image at all")
    res = invoke("run", *photos, str(bad), "--one-document", "-s", "receipt")
    assert res.exit_code == 3 and res.stdout == ""
    assert "stmt-p4.png" in res.stderr and "Traceback" not in res.stderr
    assert engine.requests == []


def statement_answer(request):
    """One row per page (a debit of 1.00), and the header fields."""
    numbers = [int(label.split()[1]) for label in request.image_labels]
    rows = [{"date": "2024-04-01", "value_date": None, "description": f"ROW {n}",
             "reference": None, "debit": "1.00", "credit": None, "balance": f"{100 - n}.00",
             "page": n} for n in numbers]
    if "transactions" in request.json_schema["properties"] and len(request.json_schema["properties"]) == 1:
        return json.dumps({"transactions": rows})
    header = {k: None for k in request.json_schema["properties"]}
    header |= {"opening_balance": "100.00", "closing_balance": f"{100 - numbers[-1]}.00"}
    if "transactions" in header:  # read in one request
        header["transactions"] = rows
    return json.dumps(header)


def test_window_option_reads_a_long_statement_in_windows(monkeypatch, fake_engine, tmp_path):
    """Eight one-page photos of a statement, --window 3: the header request and three windows,
    decoded together; the record lists the windows. --window 0: one request."""
    paths = []
    for i in range(8):
        p = tmp_path / f"s-p{i + 1}.png"
        Image.new("RGB", (64, 96), "white").save(p)
        paths.append(str(p))
    made = fake_engine(statement_answer)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: made)
    res = invoke("run", *paths, "--one-document", "-s", "bank_statement", "--window", "3")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["valid"] and record["windows"] == [[1, 3], [4, 6], [7, 8]]
    assert record["header_pages"] == [1, 8]
    assert [r["page"] for r in record["data"]["transactions"]] == list(range(1, 9))
    assert len(made.requests) == 4 and record["timing"]["requests"] == 4
    assert [r.image_labels for r in made.requests[1:]] == [
        ["Page 1", "Page 2", "Page 3"], ["Page 4", "Page 5", "Page 6"], ["Page 7", "Page 8"]]

    made.requests.clear()
    res = invoke("run", *paths, "--one-document", "-s", "bank_statement", "--window", "0")
    record = json.loads(res.stdout)
    assert res.exit_code == 0 and "windows" not in record and len(made.requests) == 1


def test_schema_auto_then_windows(monkeypatch, fake_engine, tmp_path):
    """--schema auto chooses from the first page, then the statement is read in windows."""
    paths = []
    for i in range(5):
        p = tmp_path / f"s-p{i + 1}.png"
        Image.new("RGB", (64, 96), "white").save(p)
        paths.append(str(p))

    def answer(request):
        if request.json_schema == pipeline.CHOOSER_SCHEMA:
            return '{"document_type":"bank_statement"}'
        return statement_answer(request)

    made = fake_engine(answer)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: made)
    res = invoke("run", *paths, "--one-document", "-s", "auto", "--window", "2")
    record = json.loads(res.stdout)
    assert res.exit_code == 0, res.output
    assert record["document_type"] == "bank_statement" and record["windows"] == [[1, 2], [3, 4], [5, 5]]
    assert len(made.requests) == 1 + 4 and record["attempts"] == 1
    assert "detect_s" in record["timing"] and record["timing"]["requests"] == 4

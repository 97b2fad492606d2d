"""`docextract validate` and `docextract schemas` end to end through the CLI (CliRunner)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from docextract.cli import app


def invoke(*args, stdin: str | bytes | None = None):
    return CliRunner().invoke(app, list(args), input=stdin)


def record(res) -> dict:
    return json.loads(res.stdout)


def write(tmp_path, doc, name="doc.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_valid_document_exit_0_and_masked(tmp_path, docs):
    res = invoke("validate", write(tmp_path, docs["aadhaar"]), "--schema", "aadhaar")
    assert res.exit_code == 0, res.output
    out = record(res)
    assert out["schema"] == "aadhaar@1" and out["valid"] is True and out["errors"] == []
    assert sorted(out["masked"]) == ["aadhaar_number", "vid"]
    assert out["data"]["aadhaar_number"] == "XXXX XXXX 2346"
    assert "234123412346" not in res.stdout and "234123412346" not in res.stderr


def test_unmask(tmp_path, docs):
    res = invoke("validate", write(tmp_path, docs["pan"]), "--schema", "pan", "--unmask")
    assert res.exit_code == 0
    out = record(res)
    assert out["masked"] == [] and out["data"]["pan"] == "ACUPA7085R"
    masked = record(invoke("validate", write(tmp_path, docs["pan"]), "--schema", "pan"))
    assert masked["data"]["pan"] == "ACUPAXXXXR" and masked["masked"] == ["pan"]


def test_invalid_document_exit_1_with_paths(tmp_path, docs):
    doc = json.loads(json.dumps(docs["bank_statement"]))
    doc["transactions"][1]["balance"] = "58794.50"
    res = invoke("validate", write(tmp_path, doc), "--schema", "bank_statement")
    assert res.exit_code == 1
    out = record(res)
    assert out["valid"] is False
    assert [(e["loc"], e["type"], e["severity"]) for e in out["errors"]] == [
        ("transactions[1].balance", "running_balance", "error")]
    assert out["data"]["account_number"] == "XXXXXXX8901"


def test_warning_only_is_exit_0(tmp_path, docs):
    res = invoke("validate", write(tmp_path, dict(docs["pan"], name="Rahul Sharma")),
                 "--schema", "pan")
    assert res.exit_code == 0
    assert [e["type"] for e in record(res)["errors"]] == ["pan_name_mismatch"]


def test_shape_error_still_masks(tmp_path, docs):
    doc = dict(docs["aadhaar"], aadhaar_number="2341 2341 2346")
    res = invoke("validate", write(tmp_path, doc), "--schema", "aadhaar")
    assert res.exit_code == 1
    out = record(res)
    assert out["errors"][0]["loc"] == "aadhaar_number" and out["errors"][0]["type"] == "schema"
    assert out["data"]["aadhaar_number"] == "XXXX XXXX 2346"


def test_stdin(docs):
    res = invoke("validate", "-", "--schema", "invoice", stdin=json.dumps(docs["invoice"]))
    assert res.exit_code == 0, res.output
    assert record(res)["schema"] == "invoice@1"
    res = invoke("validate", "-", "--schema", "invoice", stdin="{broken")
    assert res.exit_code == 3 and res.stdout == ""


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b""])
def test_unreadable_or_not_json_exit_3(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    res = invoke("validate", str(path), "--schema", "pan")
    assert res.exit_code == 3 and res.stdout == ""
    assert res.stderr.startswith("error: ")


def test_missing_file_exit_3(tmp_path):
    res = invoke("validate", str(tmp_path / "none.json"), "--schema", "pan")
    assert res.exit_code == 3 and res.stdout == ""


def test_non_object_json_is_invalid_not_unreadable(tmp_path):
    res = invoke("validate", write(tmp_path, [1, 2]), "--schema", "pan")
    assert res.exit_code == 1
    out = record(res)
    assert out["data"] is None and out["errors"][0]["type"] == "schema"


def test_unknown_schema_exit_2(tmp_path, docs):
    res = invoke("validate", write(tmp_path, docs["pan"]), "--schema", "passport")
    assert res.exit_code == 2 and res.stdout == ""
    assert "passport" in res.stderr and "invoice" in res.stderr


def test_user_json_schema_end_to_end(tmp_path, user_schema):
    schema = write(tmp_path, user_schema, "receipt.json")
    good = {"shop": "Kirana", "total": "120.50", "items": [{"name": "rice", "qty": 2}]}
    res = invoke("validate", write(tmp_path, good), "--schema", schema)
    assert res.exit_code == 0, res.output
    assert record(res)["data"] == good and record(res)["schema"].startswith("receipt@")
    res = invoke("validate", write(tmp_path, dict(good, total="12")), "--schema", schema)
    assert res.exit_code == 1
    assert [e["loc"] for e in record(res)["errors"]] == ["total"]
    bad_schema = write(tmp_path, dict(user_schema, **{"if": {}}), "bad.json")
    res = invoke("validate", write(tmp_path, good), "--schema", bad_schema)
    assert res.exit_code == 2 and "'if'" in res.stderr


def test_user_pydantic_file_end_to_end(tmp_path, user_model):
    path = tmp_path / "receipt_model.py"
    path.write_text(user_model)
    good = {"shop": "Kirana", "total": "99.00", "paid_by": "card", "items": []}
    res = invoke("validate", write(tmp_path, good), "--schema", f"{path}:Receipt")
    assert res.exit_code == 0, res.output
    assert record(res)["schema"] == "Receipt@7"
    res = invoke("validate", write(tmp_path, dict(good, paid_by="cheque")),
                 "--schema", f"{path}:Receipt")
    assert res.exit_code == 1 and record(res)["errors"][0]["loc"] == "paid_by"


def test_schemas_list_and_print():
    res = invoke("schemas", "--json")
    assert res.exit_code == 0
    listing = record(res)
    assert [s["name"] for s in listing][:4] == ["aadhaar", "pan", "bank_statement", "invoice"]
    res = invoke("schemas", "invoice")
    assert res.exit_code == 0
    schema = record(res)
    assert schema["properties"]["lines"]["maxItems"] >= 200
    assert invoke("schemas", "nope").exit_code == 2

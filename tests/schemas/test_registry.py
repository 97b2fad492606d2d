"""Resolving `--schema`: built-in names and versions, entry points, JSON Schema files and
pydantic files; clear UsageErrors otherwise; masking of each built-in."""

from __future__ import annotations

import json
import textwrap

import pytest

from docextract import schemas
from docextract.errors import ExitCode, UsageError
from docextract.schemas import Spec

USER_MODULE = '''
from pydantic import BaseModel
from docextract.schemas import Issue

VERSION = "3"
INSTRUCTION = "Read the ticket."

class Model(BaseModel):
    number: str

def validate(doc):
    return [] if doc.number.isdigit() else [Issue("number", "ticket_digits", "digits only")]

def mask(data):
    return dict(data, number="XXXX"), ["number"]
'''


def test_names_and_builtins():
    assert schemas.names()[:4] == ["aadhaar", "pan", "bank_statement", "invoice"]
    for name in schemas.BUILTIN:
        spec = schemas.get(name)
        assert spec.name == name and spec.ref == f"{name}@{spec.version}"
        assert "null" in spec.instruction and "YYYY-MM-DD" in spec.instruction
        assert spec.model is not None
        assert schemas.get(f"{name}@{spec.version}") is spec


def test_unknown_name_lists_known_ones():
    with pytest.raises(UsageError) as err:
        schemas.get("passport")
    assert err.value.exit_code == ExitCode.USAGE
    assert "passport" in err.value.message
    assert all(n in err.value.hint for n in schemas.BUILTIN)
    with pytest.raises(UsageError, match="version"):
        schemas.get("invoice@99")
    with pytest.raises(UsageError):
        schemas.get("")


def test_missing_files_give_a_hint(tmp_path):
    for path in (tmp_path / "nope.json", tmp_path / "nope.py", f"{tmp_path / 'nope.py'}:Model"):
        with pytest.raises(UsageError) as err:
            schemas.get(str(path))
        assert "does not exist" in err.value.message and err.value.hint


def test_user_json_schema(tmp_path, user_schema):
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(user_schema))
    spec = schemas.get(str(path))
    assert spec.name == "receipt" and spec.json_schema == user_schema
    assert "A shop receipt." in spec.instruction
    assert spec.version == schemas.get(str(path)).version
    good = {"shop": "Kirana", "total": "120.50", "date": "2024-01-31",
            "items": [{"name": "rice", "qty": 2}], "paid_by": "cash"}
    result = spec.validate(json.dumps(good))
    assert result.valid and result.data == good
    bad = dict(good, total="120.5", date="2024-02-30", items=[{"qty": 0}], extra=1)
    result = spec.validate(bad)
    assert not result.valid
    assert {(i.loc, i.type) for i in result.issues} == {
        ("total", "schema"), ("date", "schema"), ("items[0].name", "schema"),
        ("items[0].qty", "schema"), ("extra", "schema")}
    assert spec.mask(good) == (good, [])


@pytest.mark.parametrize("keyword,value", [
    ("not", {"type": "null"}), ("patternProperties", {"^x": {}}), ("if", {"type": "object"}),
    ("uniqueItems", True), ("minProperties", 1), ("propertyNames", {"maxLength": 3}),
])
def test_user_json_schema_with_unsupported_keyword(tmp_path, user_schema, keyword, value):
    schema = user_schema
    schema["properties"]["items"][keyword] = value
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema))
    with pytest.raises(UsageError) as err:
        schemas.get(str(path))
    assert repr(keyword) in err.value.message and "#/properties/items" in err.value.message


@pytest.mark.parametrize("change,words", [
    ({"format": "uri"}, "format 'uri'"), ({"pattern": "(?<=a)b"}, "look-around"),
    ({"pattern": "[unclosed"}, "not a valid regular expression"),
    ({"$ref": "other.json#/x"}, "$ref"), ({"type": "decimal"}, "type 'decimal'"),
])
def test_user_json_schema_other_problems(tmp_path, user_schema, change, words):
    schema = user_schema
    schema["properties"]["shop"].update(change)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema))
    with pytest.raises(UsageError, match="not supported|regular expression|\\$ref|type") as err:
        schemas.get(str(path))
    assert words in err.value.message


def test_user_json_schema_not_json_or_not_object(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{oops")
    with pytest.raises(UsageError, match="not valid JSON"):
        schemas.get(str(path))
    path.write_text(json.dumps({"type": "array", "items": {}}))
    with pytest.raises(UsageError, match="JSON object"):
        schemas.get(str(path))


def test_user_pydantic_class(tmp_path, user_model):
    path = tmp_path / "receipt_model.py"
    path.write_text(user_model)
    spec = schemas.get(f"{path}:Receipt")
    assert spec.ref == "Receipt@7" and "A shop receipt." in spec.instruction
    assert "title" not in json.dumps(spec.json_schema)
    good = {"shop": "Kirana", "total": "99.00", "paid_by": None, "items": [{"name": "dal",
                                                                            "qty": 1}]}
    result = spec.validate(good)
    assert result.valid and result.data == good
    result = spec.validate({"shop": "Kirana", "total": "99", "items": [{"name": "dal", "qty": 0}]})
    assert {(i.loc, i.type) for i in result.issues} == {("total", "schema"),
                                                        ("items[0].qty", "schema")}
    with pytest.raises(UsageError) as err:
        schemas.get(f"{path}:Nope")
    assert "Item, Receipt" in err.value.hint


def test_user_module_like_a_builtin(tmp_path):
    path = tmp_path / "ticket.py"
    path.write_text(USER_MODULE)
    spec = schemas.get(str(path))
    assert spec.ref == "ticket@3" and spec.instruction == "Read the ticket."
    assert spec.validate({"number": "123"}).valid
    result = spec.validate({"number": "12a"})
    assert [(i.loc, i.type) for i in result.issues] == [("number", "ticket_digits")]
    assert spec.mask({"number": "123"}) == ({"number": "XXXX"}, ["number"])


def test_user_python_file_problems(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(UsageError, match="failed to import"):
        schemas.get(f"{broken}:Model")
    unsupported = tmp_path / "sets.py"
    unsupported.write_text("from pydantic import BaseModel\n"
                           "class M(BaseModel):\n    tags: set[str]\n")
    with pytest.raises(UsageError, match="uniqueItems"):
        schemas.get(f"{unsupported}:M")
    plain = tmp_path / "plain.py"
    plain.write_text("X = 1\n")
    with pytest.raises(UsageError, match="Model"):
        schemas.get(str(plain))


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed distribution registering three schemas under `docextract.schemas`."""
    (tmp_path / "extra_schemas.py").write_text(textwrap.dedent(USER_MODULE) + textwrap.dedent('''
        from docextract.schemas import get as _get
        SPEC = _get("pan")
        '''))
    dist = tmp_path / "extra_schemas-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-schemas\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[docextract.schemas]\nticket = extra_schemas\npan_again = extra_schemas:SPEC\n"
        "broken = extra_schemas:DOES_NOT_EXIST\nmodelled = extra_schemas:Model\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_schemas(plugin):
    names = schemas.names()
    assert names[:4] == list(schemas.BUILTIN)
    assert {"ticket", "pan_again", "broken", "modelled"} <= set(names[4:])
    ticket = schemas.get("ticket")
    assert ticket.ref == "ticket@3" and not ticket.validate({"number": "x"}).valid
    assert schemas.get("pan_again").ref == "pan@1"
    assert schemas.get("modelled").validate({"number": "1"}).valid
    with pytest.raises(UsageError, match="failed to load"):
        schemas.get("broken")


def test_builtin_names_win_over_entry_points(plugin):
    (plugin / "extra_schemas-1.0.dist-info" / "entry_points.txt").write_text(
        "[docextract.schemas]\ninvoice = extra_schemas\n")
    assert schemas.names().count("invoice") == 1
    assert schemas.get("invoice").ref == "invoice@1"


def test_masking_of_each_builtin(docs):
    cases = {
        "aadhaar": {"aadhaar_number": "XXXX XXXX 2346", "vid": "XXXX XXXX XXXX 2341"},
        "pan": {"pan": "ACUPAXXXXR"},
        "bank_statement": {"account_number": "XXXXXXX8901"},
    }
    for name, expected in cases.items():
        original = json.loads(json.dumps(docs[name]))
        masked, paths = schemas.get(name).mask(docs[name])
        assert docs[name] == original
        assert {k: masked[k] for k in expected} == expected and sorted(paths) == sorted(expected)
        assert schemas.get(name).mask(masked) == (masked, [])
        assert schemas.get(name).validate(masked).valid
    uk = dict(docs["bank_statement"], iban="GB82WEST12345698765432")
    masked, paths = schemas.get("bank_statement").mask(uk)
    assert masked["iban"] == "GB82XXXXXXXXXXXXXX5432" and "iban" in paths
    invoice = docs["invoice"]
    assert schemas.get("invoice").mask(invoice) == (invoice, [])


@pytest.mark.parametrize("value", ["2341 2341 2346", 234123412346, "2341-2341-2346x", "12",
                                   ["234123412346"], {"n": "234123412346"}])
def test_masking_never_leaks_malformed_values(value):
    masked, paths = schemas.get("aadhaar").mask({"aadhaar_number": value, "vid": None})
    assert paths == ["aadhaar_number"]
    assert "23412341" not in json.dumps(masked)


def test_spec_is_a_contract_object():
    spec = Spec(name="x", version="1", instruction="", json_schema={}, validator=lambda o: None)
    assert spec.mask({"a": 1}) == ({"a": 1}, [])

"""`batch` inputs on object storage, read through pyarrow from a local S3 server (moto on
127.0.0.1): what goes wrong is one line (exit 3 for the inputs, 2 without pyarrow), before any
work, with neither the credentials nor the connection options in it. The records themselves are
checked against a local batch over Ray in test_raybatch.py."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from typer.testing import CliRunner

from docextract import objstore
from docextract.cli import app

from .conftest import FAKE_AWS, s3_upload

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pyarrow") is None or importlib.util.find_spec("moto") is None,
    reason="needs pyarrow and moto (pip install -e '.[dev,ray]')")


@pytest.fixture
def aws(monkeypatch, s3_endpoint):
    for k, v in FAKE_AWS.items():
        monkeypatch.setenv(k, v)
    s3_upload(s3_endpoint, "errs", {"in/a.pdf": b"%PDF-1.7 cut short"})
    return s3_endpoint


def batch(uri: str, out) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["batch", uri, "-s", "pan", "--no-progress", "--out", str(out)])
    return res.exit_code, res.output


@pytest.mark.parametrize("where", ["errs/missing", "nobucket/in"], ids=["prefix", "bucket"])
def test_a_missing_prefix_or_bucket_is_one_line_exit_3_without_secrets(aws, where, tmp_path):
    uri = f"s3://AKIDEXAMPLE:SECRETEXAMPLE@{where}?endpoint_override={aws}&scheme=http"
    code, output = batch(uri, tmp_path / "o.jsonl")
    assert code == 3, output
    lines = output.splitlines()
    assert lines[0] == (f"error: s3://{where}: not found "
                        "(no such object or prefix, or no such bucket)")
    assert lines[1].startswith("hint: check the bucket and prefix, the credentials")
    assert len(lines) == 2
    assert "SECRETEXAMPLE" not in output and "AKIDEXAMPLE" not in output
    assert not (tmp_path / "o.jsonl").exists()


def test_credentials_refused_is_one_line_exit_3(aws, monkeypatch, tmp_path):
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # check every key
    code, output = batch(f"s3://errs/in?endpoint_override={aws}&scheme=http", tmp_path / "o.jsonl")
    assert code == 3, output
    lines = output.splitlines()
    assert lines[0].startswith("error: s3://errs/in: cannot ")
    assert "ACCESS_DENIED" in lines[0] or "INVALID_ACCESS_KEY_ID" in lines[0]
    assert "Request ID" not in lines[0] and FAKE_AWS["AWS_SECRET_ACCESS_KEY"] not in output
    assert lines[1].startswith("hint: ") and len(lines) == 2


def test_without_pyarrow_one_error_and_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `from pyarrow import fs` fails
    monkeypatch.setitem(sys.modules, "pyarrow.fs", None)
    code, output = batch("s3://no-pyarrow/in", tmp_path / "o.jsonl")
    assert code == 2, output
    assert output.splitlines() == [
        "error: s3://no-pyarrow/in: reading object storage needs pyarrow",
        "hint: pip install 'docextract[ray]' (or pip install pyarrow)"]


def test_names_drop_credentials_and_options_but_keep_the_rest():
    assert objstore.clean("s3://KEY:SECRET@bucket/in/a.pdf?endpoint_override=h:1&scheme=http") \
        == "s3://bucket/in/a.pdf"
    # abfs names its container before the @: not a credential, kept
    assert objstore.clean("abfs://box@acct.dfs.core.windows.net/in/") \
        == "abfs://box@acct.dfs.core.windows.net/in/"
    assert objstore.is_uri("gs://b/x") and not objstore.is_uri("scans/s3:/x.pdf")


def test_run_points_to_batch_for_a_uri(tmp_path):
    res = CliRunner().invoke(app, ["run", "s3://bucket/in/card.pdf", "-s", "pan", "--model",
                                   str(tmp_path / "no-model"), "--no-progress"])
    assert res.exit_code == 3, res.output
    assert res.output.splitlines() == [
        "error: s3://bucket/in/card.pdf: no such file",
        "hint: object storage is read by 'docextract batch URI --out FILE'"]


def test_a_prefix_lists_as_a_local_folder_and_groups_by_folder(aws):
    from docextract import grouping
    from docextract.batch import DOCUMENT_SUFFIXES

    s3_upload(aws, "walk", {k: b"x" for k in ["in/b.pdf", "in/a.JPG", "in/notes.txt", "in/.h.pdf",
                                               "in/.cache/c.pdf", "in/x/p2.jpg", "in/x/p10.jpg",
                                               "in/y/z/q.png", "in/y/r.png", "inbox/other.pdf"]})
    uri = f"s3://walk/in/?endpoint_override={aws}&scheme=http"
    found = objstore.collect(uri, None, DOCUMENT_SUFFIXES)
    # a folder's files (sorted), then its sub-folders; hidden names and other suffixes left out;
    # in/ is not a prefix of inbox/
    assert found == ["s3://walk/in/a.JPG", "s3://walk/in/b.pdf", "s3://walk/in/x/p10.jpg",
                     "s3://walk/in/x/p2.jpg", "s3://walk/in/y/r.png", "s3://walk/in/y/z/q.png"]
    assert [p.key for p in found][:2] == ["walk/in/a.JPG", "walk/in/b.pdf"]
    assert objstore.collect(uri, "*.png", DOCUMENT_SUFFIXES) == [
        "s3://walk/in/y/r.png", "s3://walk/in/y/z/q.png"]
    groups = grouping.by_folder(found, ["s3://walk/in/"])
    assert [(g.source, g.files) for g in groups] == [
        ("s3://walk/in/a.JPG", ("s3://walk/in/a.JPG",)),
        ("s3://walk/in/b.pdf", ("s3://walk/in/b.pdf",)),
        ("s3://walk/in/x", ("s3://walk/in/x/p2.jpg", "s3://walk/in/x/p10.jpg")),
        ("s3://walk/in/y/r.png", ("s3://walk/in/y/r.png",)),
        ("s3://walk/in/y/z", ("s3://walk/in/y/z/q.png",))]

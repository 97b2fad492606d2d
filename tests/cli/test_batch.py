"""`docextract batch`: one record per input, errors as records, resume, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from docextract import batch, pipeline
from docextract.cli import app

GOOD = '{"id_number":"234123412346","items":[1,2],"total":3}'
FAKE_CLI = Path(__file__).with_name("fake_cli.py")


def make_docs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"doc{i:03d}.png"
        # Distinct pixels -> distinct sha256 -> distinct keys.
        Image.new("RGB", (64, 64), (i % 256, (i * 7) % 256, 100)).save(p)
        out.append(p)
    return out


@pytest.fixture
def engine(monkeypatch, fake_engine):
    e = fake_engine(GOOD)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: e)
    return e


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_folder_to_jsonl_and_resume(receipt_spec, engine, tmp_path):
    docs = make_docs(tmp_path / "in", 5)
    (tmp_path / "in" / "notes.txt").write_text("not a document")
    (tmp_path / "in" / ".hidden.png").write_bytes(docs[0].read_bytes())
    out = tmp_path / "out.jsonl"
    res = invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out))
    assert res.exit_code == 0, res.output
    records = read_jsonl(out)
    assert sorted(r["source"] for r in records) == sorted(str(d) for d in docs)
    assert all(r["key"] and r["valid"] for r in records)
    assert len(engine.requests) == 5
    # Again: everything is already there.
    res = invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out))
    assert res.exit_code == 0 and len(engine.requests) == 5 and len(read_jsonl(out)) == 5
    # Different settings -> different keys -> done again.
    invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out), "--dpi", "150")
    assert len(engine.requests) == 10 and len(read_jsonl(out)) == 10
    # --no-resume starts the file afresh.
    invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out), "--no-resume")
    assert len(read_jsonl(out)) == 5


def test_glob_and_stdout(receipt_spec, engine, tmp_path):
    make_docs(tmp_path / "in", 3)
    res = invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", "-", "--glob", "doc00[01].png")
    assert res.exit_code == 0
    assert [json.loads(line)["source"].endswith(("doc000.png", "doc001.png"))
            for line in res.stdout.splitlines()] == [True, True]


def test_bad_files_become_error_records(receipt_spec, engine, tmp_path):
    make_docs(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    (tmp_path / "in" / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out.jsonl"
    res = invoke("batch", str(tmp_path / "in"), str(tmp_path / "missing.png"), "-s", "receipt",
                 "--out", str(out))
    assert res.exit_code == 3
    records = read_jsonl(out)
    assert len(records) == 5
    bad = [r for r in records if r["data"] is None]
    assert len(bad) == 3 and all(r["errors"][0]["type"] == "input" for r in bad)
    # Re-run: corrupt files (known sha) stay done; the missing file is tried again and still
    # has exactly one record.
    invoke("batch", str(tmp_path / "in"), str(tmp_path / "missing.png"), "-s", "receipt",
           "--out", str(out))
    records = read_jsonl(out)
    assert len(records) == 5 and len({r["source"] for r in records}) == 5


def test_partial_last_line_is_dropped_and_redone(receipt_spec, engine, tmp_path):
    make_docs(tmp_path / "in", 4)
    out = tmp_path / "out.jsonl"
    invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out))
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # crash mid-write
    res = invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out))
    assert res.exit_code == 0
    records = read_jsonl(out)
    assert len(records) == 4 and len({r["key"] for r in records}) == 4
    assert len(engine.requests) == 4 + 2


def test_model_error_records_are_retried(receipt_spec, engine, tmp_path):
    docs = make_docs(tmp_path / "in", 2)
    out = tmp_path / "out.jsonl"
    invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out))
    records = read_jsonl(out)
    records[0]["errors"] = [{"loc": "", "type": "model", "msg": "CUDA out of memory"}]
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out))
    records = read_jsonl(out)
    assert len(records) == 2 and all(r["errors"] == [] for r in records)
    assert sorted(r["source"] for r in records) == sorted(str(d) for d in docs)


def test_output_file_inside_input_folder_is_not_an_input(receipt_spec, engine, tmp_path):
    make_docs(tmp_path, 2)
    out = tmp_path / "results.jsonl"
    res = invoke("batch", str(tmp_path), "-s", "receipt", "--out", str(out), "--glob", "*")
    assert res.exit_code == 0
    assert all(not r["source"].endswith("results.jsonl") for r in read_jsonl(out))


def test_no_documents_is_a_usage_error(receipt_spec, tmp_path):
    (tmp_path / "in").mkdir()
    res = invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(tmp_path / "o.jsonl"))
    assert res.exit_code == 2 and res.stderr.startswith("error: no documents")


def test_read_existing_keeps_records_and_refuses_lines_it_cannot_prove_its_own(tmp_path):
    out = tmp_path / "o.jsonl"
    rec = '{"source": "%s", "valid": true, "errors": [], "key": "%s"}\n'
    out.write_text(rec % ("a.png", "a") + rec % ("b.png", "b") + '{"source":"c.png","va')
    keep, dirty = batch.read_existing(out)
    assert set(keep) == {"a", "b"} and dirty  # the line cut short by a crash goes
    for foreign in ("not json\n", '{"key": "a", "errors": []}\n', "[1, 2]\n", '{"a": 1}'):
        out.write_text(rec % ("a.png", "a") + foreign)
        with pytest.raises(batch.ForeignOutput) as excinfo:
            batch.read_existing(out)
        assert excinfo.value.line == 2


def _run_fake(args, delay):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(FAKE_CLI), str(delay), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_lines(path: Path, n: int, proc, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for records")


def test_sigkill_mid_batch_then_resume(tmp_path):
    docs = make_docs(tmp_path / "in", 50)
    out = tmp_path / "out.jsonl"
    args = ["batch", str(tmp_path / "in"), "--schema", "receipt", "--out", str(out), "--no-progress"]
    proc = _run_fake(args, delay=0.05)
    _wait_for_lines(out, 15, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 15 <= out.read_bytes().count(b"\n") < 50
    proc = _run_fake(args, delay=0.0)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    records = read_jsonl(out)  # every line parses
    assert sorted(r["source"] for r in records) == sorted(str(d) for d in docs)
    assert len({r["key"] for r in records}) == 50


def test_ctrl_c_finishes_the_record_and_exits_130(tmp_path):
    make_docs(tmp_path / "in", 30)
    out = tmp_path / "out.jsonl"
    args = ["batch", str(tmp_path / "in"), "--schema", "receipt", "--out", str(out), "--no-progress"]
    proc = _run_fake(args, delay=0.1)
    _wait_for_lines(out, 3, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read().decode()
    assert "error: interrupted" in err and "hint:" in err and "Traceback" not in err
    data = out.read_bytes()
    assert data.endswith(b"\n") and 3 <= data.count(b"\n") < 30
    proc = _run_fake(args, delay=0.0)
    assert proc.wait(timeout=120) == 0
    assert len(read_jsonl(out)) == 30


def test_stdout_is_pure_jsonl_while_stderr_carries_progress(tmp_path):
    make_docs(tmp_path / "in", 25)
    proc = _run_fake(["batch", str(tmp_path / "in"), "-s", "receipt", "--out", "-"], delay=0.12)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert len(records) == 25
    progress = [line for line in err.decode().splitlines() if line.startswith("documents: ")]
    assert progress and progress[-1].startswith("documents: 25/25")

"""Issue 16, the file/batch/CLI half: hostile file-system situations. Outputs are checked before
any work and never replace an input or a file docextract did not write; one writer per output;
resume keys per input; non-regular inputs skipped; write failures and signals in the user's terms.
The data-loss cases (items 1-5) run both in-process and through a real process on real files."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pymupdf
import pytest
from PIL import Image
from typer.testing import CliRunner

from docextract import batch, fsutil, ingest, pipeline
from docextract.cli import app
from docextract.console import Console, Progress

GOOD = '{"id_number":"234123412346","items":[1,2],"total":3}'
FAKE_CLI = Path(__file__).with_name("fake_cli.py")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def make_docs(folder: Path, n: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(start, start + n):
        p = folder / f"doc{i:03d}.png"
        Image.new("RGB", (64, 64), (i % 256, (i * 7) % 256, 100)).save(p)
        out.append(p)
    return out


def make_pdf(path: Path) -> Path:
    doc = pymupdf.open()
    doc.new_page(width=200, height=300)
    doc.save(path)
    doc.close()
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def engine(monkeypatch, fake_engine, receipt_spec):
    e = fake_engine(GOOD)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: e)
    return e


@pytest.fixture
def no_engine(monkeypatch, receipt_spec):
    def refuse(opts, console):
        raise AssertionError("the model was loaded before the output was checked")
    monkeypatch.setattr(pipeline, "load_engine", refuse)


def fake(args, delay=0.0, **kw):
    """The real command line in a process of its own, with the fake engine (tests/cli/fake_cli.py)."""
    env = {**kw.pop("env", os.environ), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(FAKE_CLI), str(delay), *map(str, args)], env=env,
                            stdout=kw.pop("stdout", subprocess.PIPE),
                            stderr=subprocess.PIPE, **kw)


def cli(args, **kw):
    """The installed console script (no fake engine: for what fails before a model is needed)."""
    script = shutil.which("docextract", path=str(Path(sys.executable).parent))
    cmd = [script] if script else [sys.executable, "-c", "from docextract.cli import main; main()"]
    return subprocess.Popen(cmd + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def finish(proc, timeout=120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, (out or b"").decode(), err.decode()


def wait_lines(path: Path, n: int, proc, timeout=60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for records")


# ---- 1. run --out onto its own input ----

def test_1_run_out_onto_the_input_is_refused(no_engine, tmp_path):
    pdf = make_pdf(tmp_path / "in.pdf")
    before = pdf.read_bytes()
    for out in (pdf, tmp_path / "." / "in.pdf"):
        res = invoke("run", pdf, "-s", "receipt", "--out", out, "--force")
        assert res.exit_code == 2 and "is also an input" in res.stderr, res.stderr
    assert pdf.read_bytes() == before


def test_1_run_out_onto_the_input_subprocess(tmp_path):
    pdf = make_pdf(tmp_path / "in.pdf")
    before = pdf.read_bytes()
    code, out, err = finish(cli(["run", pdf, "-s", "invoice", "--out", pdf]))
    assert code == 2 and "is also an input" in err and "Traceback" not in err
    assert pdf.read_bytes() == before


# ---- 2. batch --out onto a file docextract did not write ----

FOREIGN = {
    "pdf": None,  # made by make_pdf
    "user.jsonl": '{"id": 1, "name": "mine"}\n{"id": 2, "name": "also mine"}\n',
    "pretty.json": '{\n  "settings": {"a": 1}\n}\n',
    "no-newline.jsonl": '{"id": 1}',
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_2_batch_refuses_a_foreign_out_file(engine, tmp_path, kind):
    make_docs(tmp_path / "in", 2)
    out = tmp_path / "out.file"
    if FOREIGN[kind] is None:
        make_pdf(out)
    else:
        out.write_text(FOREIGN[kind])
    out.chmod(0o644)
    before = out.read_bytes()
    for extra in ([], ["--no-resume"]):
        res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out, *extra)
        assert res.exit_code == 2, res.stderr
        assert "was not written by docextract" in res.stderr and "--force" in res.stderr
        assert out.read_bytes() == before and stat.S_IMODE(out.stat().st_mode) == 0o644
    assert engine.requests == []
    # --force: replaced on purpose, with the umask's mode.
    old = os.umask(0o022)
    try:
        res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out, "--force")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.stderr
    assert len(read_jsonl(out)) == 2 and stat.S_IMODE(out.stat().st_mode) == 0o644


def test_2_batch_out_that_is_also_an_input_is_refused(engine, tmp_path):
    docs = make_docs(tmp_path / "in", 2)
    before = docs[0].read_bytes()
    res = invoke("batch", docs[0], docs[1], "-s", "receipt", "--out", docs[0], "--force")
    assert res.exit_code == 2 and "is also an input" in res.stderr
    assert docs[0].read_bytes() == before and engine.requests == []


def test_2_foreign_out_subprocess(tmp_path):
    make_docs(tmp_path / "in", 2)
    out = tmp_path / "mine.jsonl"
    out.write_text('{"id": 1}\n')
    out.chmod(0o644)
    code, _, err = finish(cli(["batch", tmp_path / "in", "-s", "invoice", "--out", out]))
    assert code == 2 and "was not written by docextract" in err
    assert out.read_text() == '{"id": 1}\n' and stat.S_IMODE(out.stat().st_mode) == 0o644
    pdf = make_pdf(tmp_path / "in" / "a.pdf")
    before = pdf.read_bytes()
    code, _, err = finish(cli(["batch", tmp_path / "in", pdf, "-s", "invoice", "--out", pdf]))
    assert code == 2 and pdf.read_bytes() == before


def test_2_resume_keeps_mode_and_own_output_is_not_foreign(engine, tmp_path):
    make_docs(tmp_path / "in", 3)
    out = tmp_path / "out.jsonl"
    old = os.umask(0o027)
    try:
        assert invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
        lines = out.read_text().splitlines(keepends=True)
        out.write_text("".join(lines[:2]) + lines[2][:20])  # a crash mid-line: still ours
        res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)
        assert res.exit_code == 0, res.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o640 and len(read_jsonl(out)) == 3
    finally:
        os.umask(old)


# ---- 3. one writer per output ----

def test_3_a_second_batch_on_the_same_out_is_refused(engine, tmp_path):
    make_docs(tmp_path / "in", 2)
    out = tmp_path / "out.jsonl"
    with fsutil.OutputLock(out):
        res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)
        assert res.exit_code == 2
        assert f"being written by another docextract process (pid {os.getpid()})" in res.stderr
    assert not out.exists() and engine.requests == []
    assert invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out).exit_code == 0
    assert len(read_jsonl(out)) == 2 and not (tmp_path / ".out.jsonl.lock").exists()


def test_3_two_batch_processes_at_once(tmp_path):
    docs = make_docs(tmp_path / "in", 20)
    out = tmp_path / "out.jsonl"
    args = ["batch", tmp_path / "in", "-s", "receipt", "--out", out, "--no-progress"]
    first = fake(args, delay=5.0)  # holds the lock far longer than a process takes to start
    wait_lines(out, 1, first)
    code, _, err = finish(fake(args))
    assert code == 2 and f"(pid {first.pid})" in err, err
    first.send_signal(signal.SIGINT)  # the first one goes on undisturbed until told to stop
    assert first.wait(timeout=120) == 130
    records = read_jsonl(out)
    sources = [r["source"] for r in records]
    assert len(sources) == len(set(sources)) and set(sources) <= set(map(str, docs))


# ---- 4. identical files keep one record each ----

def test_4_identical_files_keep_one_record_each(engine, tmp_path):
    (doc,) = make_docs(tmp_path / "in", 1)
    for i in range(10):
        (tmp_path / "in" / f"copy{i}.png").write_bytes(doc.read_bytes())
    out = tmp_path / "out.jsonl"
    assert invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out).exit_code == 0
    assert len(read_jsonl(out)) == 11
    res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)  # resume
    assert res.exit_code == 0 and len(read_jsonl(out)) == 11 and len(engine.requests) == 11
    assert "11 already done" in res.stderr


def test_4_identical_files_subprocess(tmp_path):
    (doc,) = make_docs(tmp_path / "in", 1)
    (tmp_path / "in" / "sub").mkdir()
    for i in range(10):
        (tmp_path / "in" / ("sub" if i % 2 else ".") / f"copy{i}.png").write_bytes(doc.read_bytes())
    out = tmp_path / "out.jsonl"
    args = ["batch", tmp_path / "in", "-s", "receipt", "--out", out, "--no-progress"]
    for _ in range(2):
        code, _, err = finish(fake(args))
        assert code == 0, err
        records = read_jsonl(out)
        assert len(records) == 11 and len({r["source"] for r in records}) == 11


def test_4_keys_are_per_input_and_path_independent(tmp_path):
    for root in ("a", "b"):
        make_docs(tmp_path / root / "in", 2)
        (tmp_path / root / "in" / "x").mkdir()
        (tmp_path / root / "in" / "x" / "doc000.png").write_bytes(
            (tmp_path / root / "in" / "doc000.png").read_bytes())
    a = batch.collect_documents([str(tmp_path / "a" / "in")], None)
    b = batch.collect_documents([str(tmp_path / "b" / "in")], None)
    assert [i.name for i in a] == [i.name for i in b] == ["doc000.png", "doc001.png",
                                                          "x/doc000.png"]
    # Two files given directly with the same name: still two inputs.
    direct = batch.collect_documents([str(tmp_path / "a/in/doc000.png"),
                                      str(tmp_path / "b/in/doc000.png")], None)
    assert [i.name for i in direct] == ["doc000.png", "doc000.png#2"]
    key = lambda name: batch.record_key([(name, "0" * 64)], "s@1", {"folder": "/m"}, {})  # noqa: E731
    assert key("doc000.png") != key("x/doc000.png")


# ---- 5. the model by its resolved folder and config, not the typed string ----

def _model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "qwen3_5"}')
    return folder


def test_5_model_dir_with_a_slash_is_the_same_model(engine, tmp_path, monkeypatch):
    monkeypatch.delenv("DOCEXTRACT_MODEL", raising=False)
    make_docs(tmp_path / "in", 3)
    model = _model_dir(tmp_path)
    out = tmp_path / "out.jsonl"
    for typed in (str(model), str(model) + "/", str(tmp_path / "models" / "." / "m")):
        res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out, "--model", typed)
        assert res.exit_code == 0, res.stderr
        assert len(read_jsonl(out)) == 3 and len(engine.requests) == 3
    monkeypatch.chdir(tmp_path)
    invoke("batch", "in", "-s", "receipt", "--out", "out.jsonl", "--model", "models/m")
    assert len(read_jsonl(out)) == 3 and len(engine.requests) == 3  # relative paths too
    # Another config is another model.
    (model / "config.json").write_text('{"model_type": "qwen3_5", "x": 1}')
    invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out, "--model", model)
    assert len(read_jsonl(out)) == 6 and len(engine.requests) == 6


def test_5_model_identity_subprocess(tmp_path):
    make_docs(tmp_path / "in", 3)
    model = _model_dir(tmp_path)
    out = tmp_path / "out.jsonl"
    for typed in (model, f"{model}/"):
        code, _, err = finish(fake(["batch", tmp_path / "in", "-s", "receipt", "--out", out,
                                    "--model", typed, "--no-progress"]))
        assert code == 0, err
        assert len(read_jsonl(out)) == 3
    assert "0 processed, 3 already done" in err


def test_5_outputs_written_before_key_v2_stay_resumable(engine, tmp_path):
    docs = make_docs(tmp_path / "in", 2)
    out = tmp_path / "out.jsonl"
    invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)
    opts = pipeline.RunOptions(schema="receipt")
    old = []
    for rec, doc in zip(read_jsonl(out), docs):
        rec["key"] = batch.legacy_key(ingest.file_sha256(doc), "receipt@3", "default",
                                      opts.decoding_settings())
        old.append(json.dumps(rec) + "\n")
    out.write_text("".join(old))
    res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)
    assert res.exit_code == 0 and "2 already done" in res.stderr
    assert len(read_jsonl(out)) == 2 and len(engine.requests) == 2


# ---- 11-13. non-regular inputs ----

def test_11_fifo_in_a_batch_folder_is_an_error_record(tmp_path):
    make_docs(tmp_path / "in", 2)
    os.mkfifo(tmp_path / "in" / "pipe.pdf")
    out = tmp_path / "out.jsonl"
    code, _, err = finish(fake(["batch", tmp_path / "in", "-s", "receipt", "--out", out]),
                          timeout=60)
    assert code == 3, err
    records = {Path(r["source"]).name: r for r in read_jsonl(out)}
    assert len(records) == 3
    assert "named pipe (FIFO)" in records["pipe.pdf"]["errors"][0]["msg"]


def test_12_symlink_to_dev_zero_is_an_error_record(engine, tmp_path):
    make_docs(tmp_path / "in", 1)
    (tmp_path / "in" / "zero.pdf").symlink_to("/dev/zero")
    out = tmp_path / "out.jsonl"
    res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)
    assert res.exit_code == 3
    (bad,) = [r for r in read_jsonl(out) if r["data"] is None]
    assert "character device" in bad["errors"][0]["msg"]
    with pytest.raises(ingest.InputError, match="character device"):
        ingest.file_sha256("/dev/zero")


def test_12_hashing_stops_at_the_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "growing.pdf"
    path.write_bytes(b"%PDF-1.7\n" + b"0" * (3 << 20))
    monkeypatch.setattr(ingest, "MAX_FILE_BYTES", 1 << 20)
    # The file grows after its size was checked: the read itself must stop at the limit.
    monkeypatch.setattr(ingest, "_check_readable_path", lambda path, name, st=None: st)
    with pytest.raises(ingest.InputError, match="larger than the limit"):
        ingest.file_sha256(path)


def test_13_symlink_loop_is_an_error_record_not_an_abort(engine, tmp_path):
    make_docs(tmp_path / "in", 2)
    (tmp_path / "in" / "loop.png").symlink_to(tmp_path / "in" / "loop.png")
    out = tmp_path / "out.jsonl"
    res = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)
    assert res.exit_code == 3, res.stderr
    assert "internal error" not in res.stderr
    records = read_jsonl(out)
    assert len(records) == 3 and sum(r["valid"] for r in records) == 2
    (bad,) = [r for r in records if r["data"] is None]
    assert "symbolic link loop" in bad["errors"][0]["msg"]


# ---- 17. batch -o /dev/stdout into a pipe ----

def test_17_batch_out_dev_stdout_into_a_pipe_does_not_hang(tmp_path):
    make_docs(tmp_path / "in", 3)
    # /dev/stdout through a link of our own: a broken build that replaced its output would
    # replace only this link, never the machine's /dev/stdout.
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/dev/stdout")
    code, out, err = finish(fake(["batch", tmp_path / "in", "-s", "receipt", "-o", stdout]),
                            timeout=60)
    assert code == 0, err
    assert len([json.loads(line) for line in out.splitlines()]) == 3


def char_device(tmp_path: Path, name: str) -> Path:
    """/dev/null or /dev/full to write to. As root, a node of our own in tmp_path: a build that
    wrongly replaces its output (the bug under test) must not replace the machine's device. A
    process that is not root cannot replace /dev's entries, so it gets the real one."""
    if os.geteuid() != 0:
        return Path("/dev") / name
    node = tmp_path / name
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, {"null": 3, "full": 7}[name]))
    return node


# ---- 19. write-side failures are `cannot write NAME: REASON`, never internal errors ----

def test_19_run_checks_the_output_before_loading_the_model(no_engine, tmp_path):
    (doc,) = make_docs(tmp_path, 1)
    cases = [
        (tmp_path / "missing" / "r.json", 3, "the folder"),
        (tmp_path, 2, "is a folder"),
    ]
    for out, code, words in cases:
        res = invoke("run", doc, "-s", "receipt", "--out", out)
        assert res.exit_code == code, res.stderr
        assert words in res.stderr and "internal error" not in res.stderr
        assert len(res.stderr.splitlines()) <= 2


@pytest.mark.parametrize("err, reason", [(errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied")])
def test_19_read_only_folder(no_engine, tmp_path, monkeypatch, err, reason):
    (doc,) = make_docs(tmp_path, 1)

    def refuse(*args, **kwargs):  # root ignores chmod: fail the way a read-only folder does
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(fsutil.tempfile, "mkstemp", refuse)
    for cmd in (["run", doc], ["batch", doc]):
        res = invoke(*cmd, "-s", "receipt", "--out", tmp_path / "r.jsonl")
        assert res.exit_code == 3, res.stderr
        assert res.stderr.startswith(f"error: cannot write {tmp_path / 'r.jsonl'}: {reason}")


def test_19_disk_full(engine, tmp_path):
    (doc,) = make_docs(tmp_path / "in", 1)
    full = char_device(tmp_path, "full")
    for cmd in (["run", doc], ["batch", doc]):
        res = invoke(*cmd, "-s", "receipt", "--out", full)
        assert res.exit_code == 3, res.stderr
        assert f"error: cannot write {full}: disk full" in res.stderr
        assert stat.S_ISCHR(full.stat().st_mode)
        assert "internal error" not in res.stderr


def test_19_disk_full_during_an_atomic_write(engine, tmp_path, monkeypatch):
    (doc,) = make_docs(tmp_path, 1)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fsutil.os, "fsync", full)
    res = invoke("run", doc, "-s", "receipt", "--out", tmp_path / "r.json")
    assert res.exit_code == 3 and f"cannot write {tmp_path / 'r.json'}: disk full" in res.stderr
    assert list(tmp_path.iterdir()) == [doc]  # no temp file left behind


def test_19_long_name_dev_null_and_umask(engine, tmp_path):
    (doc,) = make_docs(tmp_path, 1)
    long = tmp_path / ("r" * 250 + ".json")
    old = os.umask(0o022)
    try:
        res = invoke("run", doc, "-s", "receipt", "--out", long)
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.stderr
    assert json.loads(long.read_text())["valid"] and stat.S_IMODE(long.stat().st_mode) == 0o644
    res = invoke("run", doc, "-s", "receipt", "--out", tmp_path / ("r" * 300))
    assert res.exit_code == 3 and "file name too long" in res.stderr
    null = char_device(tmp_path, "null")
    for cmd in ("run", "batch"):
        res = invoke(cmd, doc, "-s", "receipt", "--out", null)
        assert res.exit_code == 0, res.stderr
        assert stat.S_ISCHR(null.stat().st_mode)


def test_19_broken_pipe_on_stdout(tmp_path):
    make_docs(tmp_path / "in", 6)
    head = f"{sys.executable} -c 'import sys; sys.stdout.write(sys.stdin.readline())'"
    cmd = (f"{sys.executable} {FAKE_CLI} 0.05 batch {tmp_path / 'in'} -s receipt -o - "
           f"--no-progress | {head}; echo \"exit=${{PIPESTATUS[0]}}\" >&2")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert json.loads(proc.stdout.decode())["valid"]
    assert "internal error" not in err and "Traceback" not in err and "Exception" not in err
    assert "exit=141" in err


# ---- 20. validate on hostile JSON, run - with stdin closed ----

@pytest.mark.parametrize("text, words", [("[" * 100_000 + "]" * 100_000, "nested deeper"),
                                         ('{"a": ' + "7" * 100_000 + "}", "digits")])
def test_20_validate_hostile_json(tmp_path, text, words):
    path = tmp_path / "x.json"
    path.write_text(text)
    res = invoke("validate", path, "-s", "pan")
    assert res.exit_code == 3, res.stderr
    assert res.stderr.startswith(f"error: {path}: not JSON that can be checked") and words in res.stderr
    assert "internal error" not in res.stderr


def test_20_run_stdin_closed(tmp_path):
    script = (shutil.which("docextract", path=str(Path(sys.executable).parent))
              or f"{sys.executable} -c 'from docextract.cli import main; main()'")
    for cmd in ("run - -s invoice", "validate - -s pan"):
        proc = subprocess.run(["bash", "-c", f"{script} {cmd} <&-"], capture_output=True,
                              timeout=60)
        err = proc.stderr.decode()
        assert proc.returncode == 3, err
        assert "stdin" in err and "closed" in err and "internal error" not in err


def test_19_help_into_a_closed_pipe():
    """`docextract run --help | head -1`: help text into a pipe whose reader left ends quietly
    with 141, not with a traceback (typer's vendored click has no `Abort` to catch)."""
    script = (shutil.which("docextract", path=str(Path(sys.executable).parent))
              or f"{sys.executable} -c 'from docextract.cli import main; main()'")
    for cmd in ("run --help", "eval --help", "--help"):
        # `true` exits before docextract starts, so the pipe is closed when the help is written.
        proc = subprocess.run(["bash", "-c", f"{script} {cmd} | true; exit ${{PIPESTATUS[0]}}"],
                              capture_output=True, timeout=60)
        err = proc.stderr.decode()
        assert "Traceback" not in err, err
        assert proc.returncode == 141, (cmd, proc.returncode, err)


# ---- 22. doctor and a broken DOCEXTRACT_MODEL ----

def test_22_doctor_does_not_say_ok_for_a_broken_model(tmp_path, monkeypatch):
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    for value, words in ((str(tmp_path / "missing"), "no such model folder"),
                         (str(broken), "config.json cannot be read")):
        monkeypatch.setenv("DOCEXTRACT_MODEL", value)
        res = invoke("doctor")
        assert res.exit_code == 4
        status = next(line for line in res.stdout.splitlines() if line.startswith("status"))
        assert "ok" not in status.split() and words in status


# ---- 23. a symbolic link given as --out is followed on purpose ----

def test_23_symlinked_out_writes_the_target_and_keeps_the_link(engine, tmp_path):
    (doc,) = make_docs(tmp_path, 1)
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "results.jsonl"
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    for _ in range(2):
        res = invoke("batch", doc, "-s", "receipt", "--out", link)
        assert res.exit_code == 0, res.stderr
    assert link.is_symlink() and len(read_jsonl(target)) == 1
    res = invoke("run", doc, "-s", "receipt", "--out", link, "--force")
    assert res.exit_code == 0 and link.is_symlink() and json.loads(target.read_text())["valid"]


def test_23_run_out_onto_a_foreign_file_needs_force(engine, tmp_path):
    (doc,) = make_docs(tmp_path, 1)
    out = tmp_path / "notes.txt"
    out.write_text("my notes\n")
    res = invoke("run", doc, "-s", "receipt", "--out", out)
    assert res.exit_code == 2 and out.read_text() == "my notes\n" and engine.requests == []
    assert invoke("run", doc, "-s", "receipt", "--out", out, "--force").exit_code == 0
    assert invoke("run", doc, "-s", "receipt", "--out", out).exit_code == 0  # ours now


# ---- 24. pages --out does not follow a symbolic link already in the folder ----

def test_24_pages_refuses_a_symlink_in_the_folder(tmp_path):
    pdf = make_pdf(tmp_path / "scan.pdf")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "page-001.png").symlink_to(victim)
    res = invoke("pages", pdf, "--out", tmp_path / "o")
    assert res.exit_code == 2 and "symbolic link" in res.stderr
    assert victim.read_text() == "keep me"


# ---- 25. messages ----

def test_25_a_zip_is_a_zip_not_a_truncated_pdf(no_engine, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("doc.pdf", b"%PDF-1.7\n" + b"x" * 5000)
    path = tmp_path / "archive.pdf"
    path.write_bytes(buf.getvalue())
    res = invoke("run", path, "-s", "receipt")
    assert res.exit_code == 3 and "ZIP archive" in res.stderr and "truncated" not in res.stderr


def test_25_sigterm_keeps_finished_records_and_says_so(tmp_path):
    make_docs(tmp_path / "in", 30)
    out = tmp_path / "out.jsonl"
    args = ["batch", tmp_path / "in", "-s", "receipt", "--out", out, "--no-progress"]
    proc = fake(args, delay=0.1)
    wait_lines(out, 3, proc)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=60)
    assert code == 143
    assert "error: terminated (SIGTERM); finished records are saved" in err and "hint:" in err
    data = out.read_bytes()
    assert data.endswith(b"\n") and 3 <= data.count(b"\n") < 30
    code, _, err = finish(fake(args))
    assert code == 0 and len(read_jsonl(out)) == 30


def test_25_sigterm_during_run_is_not_silent(tmp_path):
    (doc,) = make_docs(tmp_path, 1)
    ready = tmp_path / "ready"
    proc = fake(["run", doc, "-s", "receipt"], delay=30, env={**os.environ,
                                                               "FAKE_CLI_READY": str(ready)})
    end = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.02)  # until the (slow) extraction has started
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=60)
    assert code == 143 and "error: terminated (SIGTERM)" in err and "Traceback" not in err


def test_25_final_progress_line_is_not_repeated(monkeypatch):
    err = io.StringIO()
    console = Console(stderr=err, stdout=io.StringIO(), color=False)
    monkeypatch.setattr(Progress, "DELAY_S", 0.0)
    with console.progress("documents", total=1) as bar:
        bar.update(1)
    assert err.getvalue() == "documents: 1/1\n"


def test_a_resumed_run_explains_its_exit_code(engine, tmp_path):
    """The exit code covers the documents done in earlier runs; the summary says which of them
    failed, so that exit 3 is not next to "0 unreadable" alone."""
    make_docs(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "out.jsonl"
    first = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)
    assert first.exit_code == 3 and "3 processed, 0 already done, 1 unreadable" in first.stderr
    assert "of those already done" not in first.stderr
    again = invoke("batch", tmp_path / "in", "-s", "receipt", "--out", out)
    assert again.exit_code == 3 and len(read_jsonl(out)) == 3
    assert ("0 processed, 3 already done, 0 unreadable, 0 invalid "
            "(of those already done: 1 unreadable, 0 invalid)") in again.stderr

"""`docextract batch --group-by folder|stem`: several files as one document, resume keys over the
whole group (also after SIGKILL), and long documents read in page windows through a continuously
batched session."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from docextract import batch, grouping, pipeline
from docextract.cli import app

GOOD = '{"id_number":"234123412346","items":[1,2],"total":3}'
FAKE_CLI = Path(__file__).with_name("fake_cli.py")


def image(path: Path, shade: int, height: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, height), (shade % 256, (shade * 7) % 256, 90)).save(path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def engine(monkeypatch, fake_engine):
    e = fake_engine(GOOD)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: e)
    return e


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stem_groups(tmp_path):
    assert grouping.page_number("scan/stmt-p12.jpg") == ("stmt", 12)
    assert grouping.page_number("inv_3.png") == ("inv", 3)
    assert grouping.page_number("a-page2.pdf") == ("a", 2)
    assert grouping.page_number("report.pdf") is None
    assert grouping.page_number("aadhaar-s1-001.pdf") is None  # a numbered document, not a page
    groups = grouping.by_stem(["s/st-p2.png", "s/st-p10.png", "s/other.png", "s/st-p1.png",
                               "t/st-p1.png"])
    assert groups == [grouping.Group("s/st", ("s/st-p1.png", "s/st-p2.png", "s/st-p10.png")),
                      grouping.Group("s/other.png", ("s/other.png",)),
                      grouping.Group("t/st-p1.png", ("t/st-p1.png",))]


def test_folder_groups_are_leaf_folders():
    inputs = ["in/a/p1.png", "in/a/p10.png", "in/a/p2.png", "in/top.png", "in/b/x.png", "z.png"]
    assert grouping.by_folder(inputs, ["in", "z.png"]) == [
        grouping.Group("in/a", ("in/a/p1.png", "in/a/p2.png", "in/a/p10.png")),
        grouping.Group("in/top.png", ("in/top.png",)),  # in/ has sub-folders: not a leaf
        grouping.Group("in/b", ("in/b/x.png",)),
        grouping.Group("z.png", ("z.png",))]  # named on the command line


def test_group_by_folder(receipt_spec, engine, tmp_path):
    a = [image(tmp_path / "in" / "a" / f"p{n}.png", n, 64 + 32 * n) for n in (1, 2, 10)]
    single = image(tmp_path / "in" / "b" / "x.png", 40)
    top = image(tmp_path / "in" / "top.png", 50)
    out = tmp_path / "out.jsonl"
    res = invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out", str(out),
                 "--group-by", "folder")
    assert res.exit_code == 0, res.output
    records = {r["source"]: r for r in read_jsonl(out)}
    assert set(records) == {str(tmp_path / "in" / "a"), str(single), str(top)}
    group = records[str(tmp_path / "in" / "a")]
    assert group["pages"] == 3
    assert [s["source"] for s in group["sources"]] == [str(p) for p in a]
    assert group["sha256"] == hashlib.sha256("\n".join(sha(p) for p in a).encode()).hexdigest()
    assert "sources" not in records[str(single)] and records[str(single)]["sha256"] == sha(single)
    asked = [r.image_labels for r in engine.requests]
    assert sorted(map(len, asked)) == [1, 1, 3]
    three = next(r for r in engine.requests if len(r.images) == 3)
    assert [im.height for im in three.images] == [96, 128, 384]  # natural order: p1, p2, p10


def test_group_by_stem_resumes_by_the_whole_group(receipt_spec, engine, tmp_path):
    folder = tmp_path / "in"
    st = [image(folder / f"st-p{n}.png", n) for n in (1, 2, 3)]
    inv = [image(folder / f"inv_{n}.png", 10 + n) for n in (1, 2)]
    image(folder / "other.png", 30)
    out = tmp_path / "out.jsonl"
    args = ["batch", str(folder), "-s", "receipt", "--out", str(out), "--group-by", "stem"]
    assert invoke(*args).exit_code == 0
    records = {r["source"]: r for r in read_jsonl(out)}
    assert set(records) == {str(folder / "st"), str(folder / "inv"), str(folder / "other.png")}
    assert [s["source"] for s in records[str(folder / "st")]["sources"]] == [str(p) for p in st]
    assert len(engine.requests) == 3
    # Nothing changed: everything is skipped.
    res = invoke(*args)
    assert res.exit_code == 0 and len(engine.requests) == 3 and "3 already done" in res.stderr
    # One page of one group changed: that group alone is read again, all its pages.
    image(inv[1], 99)
    assert invoke(*args).exit_code == 0
    assert len(engine.requests) == 4 and len(engine.requests[-1].images) == 2
    records = read_jsonl(out)
    assert len(records) == 4 and len({r["key"] for r in records}) == 4
    # Without --group-by the pages are documents of their own (other keys); other.png, a
    # document of one file either way, keeps its key.
    assert invoke("batch", str(folder), "-s", "receipt", "--out", str(out)).exit_code == 0
    assert len(engine.requests) == 4 + 5


def test_an_unreadable_page_makes_the_group_an_error_record(receipt_spec, engine, tmp_path):
    folder = tmp_path / "in"
    image(folder / "st-p1.png", 1)
    (folder / "st-p2.png").write_bytes(b"not an image")
    out = tmp_path / "out.jsonl"
    res = invoke("batch", str(folder), "-s", "receipt", "--out", str(out), "--group-by", "stem")
    assert res.exit_code == 3
    (record,) = read_jsonl(out)
    assert record["source"] == str(folder / "st") and record["data"] is None
    assert "st-p2.png" in record["errors"][0]["msg"] and engine.requests == []


def test_unknown_group_by_is_usage(receipt_spec, engine, tmp_path):
    image(tmp_path / "in" / "a.png", 1)
    res = invoke("batch", str(tmp_path / "in"), "-s", "receipt", "--out",
                 str(tmp_path / "o.jsonl"), "--group-by", "colour")
    assert res.exit_code == 2 and "group-by" in res.stderr


def _run_fake(args, delay):
    return subprocess.Popen([sys.executable, str(FAKE_CLI), str(delay), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_group_by_stem_resumes_after_sigkill(tmp_path):
    folder = tmp_path / "in"
    for d in range(24):
        for n in (1, 2):
            image(folder / f"doc{d:02d}-p{n}.png", 3 * d + n)
    out = tmp_path / "out.jsonl"
    args = ["batch", str(folder), "--schema", "receipt", "--out", str(out), "--group-by", "stem",
            "--no-progress"]
    proc = _run_fake(args, delay=0.05)
    end = time.monotonic() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= 6):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < end, "no records written"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 6 <= out.read_bytes().count(b"\n") < 24
    proc = _run_fake(args, delay=0.0)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    records = read_jsonl(out)
    assert sorted(r["source"] for r in records) == [str(folder / f"doc{d:02d}") for d in range(24)]
    assert all(r["pages"] == 2 and len(r["sources"]) == 2 for r in records)
    assert len({r["key"] for r in records}) == 24


class FakeSession:
    """A continuously batched session stand-in: finishes one queued request per step, newest
    first, so the parts of a document's window list come back out of order."""

    def __init__(self, engine, slots):
        self.engine, self.slots, self.slot_tokens = engine, slots, 100_000
        self.queue = []

    def submit(self, request, tag):
        self.queue.append((tag, request))

    @property
    def has_work(self):
        return bool(self.queue)

    @property
    def in_flight(self):
        return len(self.queue)

    def step(self):
        tag, request = self.queue.pop()
        return [(tag, self.engine.generate([request])[0])]

    def close(self):
        pass


def statement_answer(request):
    """One row per page read (a debit of 1.00 from 100.00), and the header fields."""
    numbers = [int(label.split()[1]) for label in request.image_labels]
    rows = [{"date": "2024-04-01", "value_date": None, "description": f"ROW {n}",
             "reference": None, "debit": "1.00", "credit": None, "balance": f"{100 - n}.00",
             "page": n} for n in numbers]
    props = request.json_schema["properties"]
    if list(props) == ["transactions"]:
        return json.dumps({"transactions": rows})
    header = {k: None for k in props} | {"opening_balance": "100.00",
                                         "closing_balance": f"{100 - numbers[-1]}.00"}
    if "transactions" in header:  # read in one request
        header["transactions"] = rows
    return json.dumps(header)


def test_windows_through_a_session(monkeypatch, fake_engine, tmp_path):
    made = fake_engine(statement_answer)
    made.session = lambda slots=None, memory_gib=None: FakeSession(made, slots or 4)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: made)
    for n in range(1, 8):
        image(tmp_path / "in" / "stmt" / f"page{n}.png", n)
    image(tmp_path / "in" / "other" / "s-p1.png", 50)
    out = tmp_path / "out.jsonl"
    res = invoke("batch", str(tmp_path / "in"), "-s", "bank_statement", "--out", str(out),
                 "--group-by", "folder", "--window", "2")
    records = {Path(r["source"]).name: r for r in read_jsonl(out)}
    long = records["stmt"]
    assert long["windows"] == [[1, 2], [3, 4], [5, 6], [7, 7]] and long["timing"]["requests"] == 5
    assert [r["page"] for r in long["data"]["transactions"]] == list(range(1, 8))
    assert "windows" not in records["s-p1.png"]
    assert res.exit_code == 0, res.output
    assert all(r["valid"] for r in records.values())


def test_stem_groups_of_the_samples_are_the_generated_multi_photo_documents():
    """The manifest says which files make one document; --group-by stem must agree."""
    data = Path(__file__).parents[2] / "samples" / "data"
    documents = json.loads((data / "manifest.json").read_text())["documents"]
    files = sorted(str(data / f) for d in documents for f in d["files"])
    groups = {g.files for g in grouping.by_stem(files)}
    assert groups == {tuple(str(data / f) for f in d["files"]) for d in documents}

"""CPU mode (issue 17): the page budget chosen for the device and kept in the record, the thread
count from the usable cores, and the engine's progress as status lines on stderr."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docextract import budget, pipeline
from docextract.cli import app
from docextract.console import Progress
from docextract.engine.progress import Work
from docextract.errors import UsageError
from docextract.pipeline import RunOptions
from docextract.status import EngineStatus

GOOD = '{"id_number":"234123412346","items":[1,2],"total":3}'
A4_PDF = str(Path(__file__).resolve().parents[2] / "samples/data/gst_invoice-s1-001.pdf")


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_default_budget_depends_on_the_device():
    assert RunOptions(schema="x", device="cpu").ingest_kwargs()["max_pixels"] == 768 * 32 * 32
    assert RunOptions(schema="x", device="cuda").ingest_kwargs()["max_pixels"] == 2560 * 32 * 32
    assert RunOptions(schema="x", device="cpu", max_pixels=5000).ingest_kwargs()["max_pixels"] == 5000


@pytest.fixture
def engine_with_progress(monkeypatch, fake_engine):
    """A fake engine that reports vision, prefill and decode work like the real one."""

    class Reporting(fake_engine):
        reports_progress = True

        def generate(self, requests, progress=None):
            if progress is not None:
                for i in range(13):
                    progress(Work("vision", i, 12, 1))
                for done in (0, 256, 512, 700):
                    progress(Work("prefill", done, 700, 1))
                for done in (1, 2, 3):
                    progress(Work("decode", done, None, 1))
            return super().generate(requests)

    engine = Reporting(GOOD)
    monkeypatch.setattr(pipeline, "load_engine", lambda opts, console: engine)
    return engine


def test_run_on_cpu_uses_the_cpu_budget_and_records_it(receipt_spec, engine_with_progress):
    res = invoke("run", A4_PDF, "--schema", "receipt", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["max_pixels"] == budget.CPU_MAX_PIXELS
    (req,) = engine_with_progress.requests
    assert req.images[0].size == (736, 1024)  # A4 at 768 tiles
    res = invoke("run", A4_PDF, "--schema", "receipt", "--device", "cpu", "--max-pixels",
                 str(2560 * 1024), "-q")
    assert json.loads(res.stdout)["max_pixels"] == 2560 * 1024
    assert engine_with_progress.requests[-1].images[0].size == (1344, 1920)


def test_run_prints_the_engine_progress_on_stderr(receipt_spec, engine_with_progress, monkeypatch):
    # show every update at once (the real bar waits a second, then a line every 2 s)
    monkeypatch.setattr(Progress, "DELAY_S", 0.0)
    monkeypatch.setattr(Progress, "LINE_EVERY_S", 0.0)
    res = invoke("run", A4_PDF, "--schema", "receipt", "--device", "cpu")
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    assert "documents: 0/1 working: vision 0/12 blocks" in lines
    assert any(line.startswith("documents: 0/1 working: vision 12/12 blocks, about ")
               for line in lines)
    assert any(line.startswith("documents: 0/1 working: prefill 512/700 tokens") for line in lines)
    assert any(line.startswith("documents: 0/1 working: decode 3 tokens") for line in lines)
    assert lines[-1] == "documents: 1/1"  # the status goes with the document
    json.loads(res.stdout)
    # --no-progress: nothing of it
    res = invoke("run", A4_PDF, "--schema", "receipt", "--device", "cpu", "--no-progress")
    assert "working:" not in res.stderr


class _Bar:
    def __init__(self):
        self.fields: dict[str, str] = {}
        self.updates = 0
        self.ticked = threading.Event()

    def update(self, advance=0, **fields):
        self.fields.update(fields)
        self.updates += 1
        if threading.current_thread() is not threading.main_thread():
            self.ticked.set()


def test_status_estimates_and_keeps_ticking():
    now = [100.0]
    bar = _Bar()
    with EngineStatus(bar, clock=lambda: now[0]) as status:
        # before the engine's first event (file, model, grammar) the ticker says it is starting
        now[0] += 5
        assert bar.ticked.wait(timeout=30)
        assert bar.fields["working:"] == "starting, 5 s so far"
        status(Work("vision", 0, 12, 1))
        assert bar.fields["working:"] == "vision 0/12 blocks"
        now[0] += 3
        status(Work("vision", 1, 12, 1))
        assert bar.fields["working:"] == "vision 1/12 blocks, about 33 s left"
        # between events the estimate counts down
        assert status.text(now[0] + 10) == "vision 1/12 blocks, about 23 s left"
        now[0] += 1
        status(Work("prefill", 0, 2000, 2))
        now[0] += 10
        status(Work("prefill", 500, 2000, 2))
        assert bar.fields["working:"] == "prefill 500/2000 tokens (2 documents), about 30 s left"
        now[0] += 100
        status(Work("prefill", 1000, 2000, 2))
        assert bar.fields["working:"] == "prefill 1000/2000 tokens (2 documents), about 2 min left"
        status(Work("decode", 2, None, 2))
        now[0] += 2
        status(Work("decode", 10, None, 2))
        assert bar.fields["working:"] == "decode 10 tokens (2 documents), 4.0 tokens/s"
        # a slow step: the ticker keeps refreshing the bar from its own thread
        bar.ticked.clear()
        assert bar.ticked.wait(timeout=30)
    assert "working:" not in bar.fields


def test_cgroup_quota_and_threads(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert budget.cgroup_cpus(tmp_path) == 1.5
    assert budget.usable_cores(tmp_path) == min(2, len(__import__("os").sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert budget.cgroup_cpus(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert budget.cgroup_cpus(v1) == 1.0 and budget.usable_cores(v1) == 1
    assert budget.cpu_threads({"DOCEXTRACT_THREADS": "3"}, v1) == 3
    assert budget.cpu_threads({"OMP_NUM_THREADS": "4"}, v1) is None
    assert budget.cpu_threads({}, v1) == 1
    with pytest.raises(UsageError):
        budget.cpu_threads({"DOCEXTRACT_THREADS": "lots"}, v1)


def test_batch_shows_the_engine_work_of_the_documents_in_flight(tmp_path, receipt_spec,
                                                                monkeypatch):
    """The real engine (tiny random model) in a batch session: status lines from its events."""
    import io

    import torch
    from PIL import Image

    from docextract.batch import run_batch
    from docextract.console import Console
    from docextract.engine.randomckpt import random_engine

    monkeypatch.setattr(Progress, "DELAY_S", 0.0)
    monkeypatch.setattr(Progress, "LINE_EVERY_S", 0.0)
    for i in range(2):
        Image.new("RGB", (96 + 32 * i, 64), (255, 255 - i, 255)).save(tmp_path / f"d{i}.png")
    engine = random_engine("moe", "tiny", dtype=torch.float32)
    err = io.StringIO()
    opts = RunOptions(schema="receipt", device="cpu", max_batch=2)
    run_batch([str(tmp_path)], opts, Console(stderr=err, stdout=io.StringIO()),
              out=str(tmp_path / "out.jsonl"), engine_factory=lambda o, c: engine)
    text = err.getvalue()
    assert "working: vision 0/2 blocks (2 documents)" in text
    assert "working: prefill 0/" in text and "working: decode " in text
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["max_pixels"] for r in records] == [budget.CPU_MAX_PIXELS] * 2


def test_reader_threads_are_capped_by_the_cores_torch_leaves(tmp_path, monkeypatch):
    four = tmp_path / "four"
    four.mkdir()
    (four / "cpu.max").write_text("400000 100000\n")
    monkeypatch.setattr(budget.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert budget.usable_cores(four) == 4
    # CPU engine on all 4 cores: one reader, whatever --workers asks
    assert budget.reader_threads(8, "cpu", {}, four) == 1
    assert budget.reader_threads(8, "cpu", {"DOCEXTRACT_THREADS": "1"}, four) == 3
    assert budget.reader_threads(2, "cpu", {"DOCEXTRACT_THREADS": "1"}, four) == 2
    assert budget.reader_threads(8, "cpu", {"OMP_NUM_THREADS": "2"}, four) == 2
    # a GPU engine leaves the CPU to the readers, up to the usable cores
    assert budget.reader_threads(8, "cuda", {}, four) == 4
    assert budget.reader_threads(2, "cuda", {}, four) == 2


def test_batch_reads_with_the_capped_thread_count(tmp_path, receipt_spec, engine_with_progress,
                                                  monkeypatch):
    """`batch --workers 8` with a CPU engine on 2 usable cores reads in one thread."""
    from docextract import batch

    seen = []
    real = batch._prefetch

    def spy(inputs, opts, workers):
        seen.append(workers)
        return real(inputs, opts, workers)

    monkeypatch.setattr(batch, "_prefetch", spy)
    monkeypatch.setattr(budget, "usable_cores", lambda root="/sys/fs/cgroup": 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("DOCEXTRACT_THREADS", raising=False)
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (64, 64), "white").save(tmp_path / "in" / "a.png")
    res = invoke("batch", str(tmp_path / "in"), "--schema", "receipt", "--device", "cpu",
                 "--workers", "8", "--out", str(tmp_path / "out.jsonl"), "-q")
    assert res.exit_code == 0, res.output
    assert seen == [1]


def test_the_vocabulary_scan_is_done_at_model_load_before_the_page_starts(tmp_path, receipt_spec,
                                                                          monkeypatch):
    """The grammar library's vocabulary scan holds the GIL (no status line can be printed while
    it runs): `run` does it while loading the model, announced by its own line, and the page's
    engine work (its progress) only starts after it."""
    from PIL import Image

    from docextract.engine import constrain, randomckpt
    from docextract.engine.engine import Engine

    events: list[str] = []
    real_init = constrain.GrammarCompiler.__init__

    def scan(self, *args, **kwargs):
        events.append("scan")
        real_init(self, *args, **kwargs)

    real_generate = Engine.generate

    def generate(self, requests, progress=None):
        events.append("generate")

        def page(work):
            events.append(f"page {work.phase}")
            if progress is not None:
                progress(work)
        return real_generate(self, requests, progress=page)

    monkeypatch.setattr(constrain.GrammarCompiler, "__init__", scan)
    monkeypatch.setattr(Engine, "generate", generate)
    real_info = pipeline.Console.info
    monkeypatch.setattr(pipeline.Console, "info",
                        lambda self, msg: (events.append(msg), real_info(self, msg)))
    folder = randomckpt.write(tmp_path / "tiny", kind="moe")
    Image.new("RGB", (64, 64), "white").save(tmp_path / "page.png")
    res = invoke("run", str(tmp_path / "page.png"), "--schema", "receipt", "--device", "cpu",
                 "--model", str(folder), "--offline")
    assert res.exit_code in (0, 1), res.output  # a random model: any valid-or-invalid record
    said = [i for i, e in enumerate(events) if "-token vocabulary for constrained decoding" in e]
    assert events.count("scan") == 1 and said
    first_page = next(i for i, e in enumerate(events) if e.startswith("page "))
    assert said[0] < events.index("scan") < events.index("generate") < first_page

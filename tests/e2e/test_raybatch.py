"""`batch --ray` on a local Ray instance (CPU, the tiny biased checkpoint, 2 extraction actors of
half a CPU each, so the read stage keeps CPUs of its own): the same records as a local batch, one
record per input after an actor is killed mid-run and after the driver is killed (or
interrupted: exit 130) and re-run, inputs on object storage (a local S3 server), and the install
hint without the extra. One Ray instance for the whole module; its workers find the local S3
server's credentials in their environment, as a cluster's nodes would."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from docextract.cli import app

from .conftest import FAKE_AWS, s3_upload

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="needs the ray extra (pip install -e '.[dev,ray]')")
SMALL = ["--max-pixels", str(96 * 32 * 32), "--device", "cpu", "--no-progress", "--max-batch", "8"]
ACTORS = {"DOCEXTRACT_RAY_ACTORS": "2", "DOCEXTRACT_RAY_ACTOR_CPUS": "0.5"}


def make_docs(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        # Distinct pixels -> distinct sha256 -> distinct keys (and different pictures to read).
        Image.new("RGB", (64, 64), ((i * 37) % 256, (i * 11) % 256, 90 + i)).save(
            folder / f"card{i:03d}.png")
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def comparable(record: dict) -> dict:
    """A record without its timings (which differ from run to run)."""
    return {k: v for k, v in record.items() if k != "timing"}


@pytest.fixture(scope="module")
def cluster():
    import ray

    # loopback only: the test cluster never listens on or dials another address
    with pytest.MonkeyPatch.context() as env:  # the workers' environment, taken at start
        for k, v in FAKE_AWS.items():
            env.setenv(k, v)
        ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                 _node_ip_address="127.0.0.1",
                 namespace="docextract")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def actors(monkeypatch):
    for k, v in ACTORS.items():
        monkeypatch.setenv(k, v)


def invoke(*args):
    return CliRunner().invoke(app, list(args))


@needs_ray
def test_same_records_as_a_local_batch(cluster, actors, short_model, tmp_path):
    docs = make_docs(tmp_path / "in", 40)
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    # One document at a time on both sides: which documents share a decode step depends on
    # timing, and float32 sums over different batch shapes can flip a near-tie of a random model.
    one = [a if a != "8" else "1" for a in SMALL]
    common = [str(docs), "-s", "pan", "--model", str(short_model), *one]
    res = invoke("batch", *common, "--out", str(local))
    assert res.exit_code in (0, 1), res.output
    res = invoke("batch", *common, "--out", str(remote), "--ray", cluster)
    assert res.exit_code in (0, 1), res.output
    a = {r["key"]: comparable(r) for r in read_jsonl(local)}
    b = {r["key"]: comparable(r) for r in read_jsonl(remote)}
    assert len(a) == len(read_jsonl(local)) == 40 and len(read_jsonl(remote)) == 40
    assert b == a
    assert all(r["data"] is not None for r in b.values())
    # Run again: every input is already there (the local batch's resume rule, over Ray).
    res = invoke("batch", *common, "--out", str(remote), "--ray", cluster)
    assert res.exit_code in (0, 1), res.output
    assert "0 processed, 40 already done" in res.output
    assert len(read_jsonl(remote)) == 40


SAMPLES = Path(__file__).parents[2] / "samples" / "data"
# Relative name -> committed sample; the two -pN photos are one document with --group-by stem.
S3_LAYOUT = {"pan-s1-001.pdf": "pan-s1-001.pdf",
             "kyc/aadhaar-s1-001-photo.jpg": "aadhaar-s1-001-photo.jpg",
             "kyc/gst_invoice-s1-001.pdf": "gst_invoice-s1-001.pdf",
             "stmt/bank_statement-s1-001-photo-p1.jpg": "bank_statement-s1-001-photo-p1.jpg",
             "stmt/bank_statement-s1-001-photo-p2.jpg": "bank_statement-s1-001-photo-p2.jpg"}
BAD = b"%PDF-1.7 cut short"


def _relative(record: dict, prefix: str) -> dict:
    """A record with the names in it (source, sources, error messages) relative to `prefix`,
    without its key and timings."""
    assert record["source"].startswith(prefix), (record["source"], prefix)
    return {k: v for k, v in json.loads(json.dumps(record).replace(prefix, "")).items()
            if k not in ("key", "timing")}


@needs_ray
def test_inputs_on_object_storage_same_records_as_local_files(cluster, actors, short_model,
                                                              s3_endpoint, monkeypatch, tmp_path):
    for k, v in FAKE_AWS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DOCEXTRACT_RAY_ACTORS", "1")  # 5 documents: one engine is enough
    objects = {name: (SAMPLES / sample).read_bytes() for name, sample in S3_LAYOUT.items()}
    objects["kyc/broken.pdf"] = BAD
    objects["kyc/.hidden.pdf"] = BAD  # hidden names are skipped, as in a local folder
    s3_upload(s3_endpoint, "docs", {f"in/{k}": v for k, v in objects.items()})
    local = tmp_path / "in"
    for name, data in objects.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(data)
    uri = f"s3://docs/in?endpoint_override={s3_endpoint}&scheme=http"
    # One document at a time on both sides (see test_same_records_as_a_local_batch).
    common = ["-s", "pan", "--model", str(short_model), "--group-by", "stem",
              *[a if a != "8" else "1" for a in SMALL]]
    res = invoke("batch", str(local), *common, "--out", str(tmp_path / "local.jsonl"))
    assert res.exit_code == 3, res.output  # broken.pdf
    res = invoke("batch", uri, *common, "--out", str(tmp_path / "s3.jsonl"), "--ray", cluster)
    assert res.exit_code == 3, res.output
    a = {r["source"]: r for r in read_jsonl(tmp_path / "local.jsonl")}
    b = {r["source"]: r for r in read_jsonl(tmp_path / "s3.jsonl")}
    assert len(a) == len(b) == 5
    # Named by full URI (without the connection options), the same records otherwise.
    assert sorted(b) == ["s3://docs/in/kyc/aadhaar-s1-001-photo.jpg", "s3://docs/in/kyc/broken.pdf",
                         "s3://docs/in/kyc/gst_invoice-s1-001.pdf", "s3://docs/in/pan-s1-001.pdf",
                         "s3://docs/in/stmt/bank_statement-s1-001-photo"]
    assert ({_relative(r, "s3://docs/in/")["source"]: _relative(r, "s3://docs/in/")
             for r in b.values()}
            == {_relative(r, f"{local}/")["source"]: _relative(r, f"{local}/") for r in a.values()})
    assert b["s3://docs/in/stmt/bank_statement-s1-001-photo"]["pages"] == 2
    assert b["s3://docs/in/kyc/broken.pdf"]["errors"][0]["type"] == "input"
    # Run again, locally (a local batch reads object storage too; a Ray re-run skips as it does
    # for local files, test_same_records_as_a_local_batch): every key is found.
    res = invoke("batch", uri, *common, "--out", str(tmp_path / "s3.jsonl"))
    assert "0 processed, 5 already done" in res.output, res.output
    assert res.exit_code == 3
    assert len(read_jsonl(tmp_path / "s3.jsonl")) == 5


def _wait_for_records(out: Path, lines: int, proc, stderr, seconds: float) -> None:
    """Until `out` holds `lines` records, while the driver `proc` runs (else fail with its
    `stderr()`), for at most `seconds`."""
    end = time.monotonic() + seconds
    while not (out.exists() and out.read_bytes().count(b"\n") >= lines):
        assert proc.poll() is None, stderr()
        assert time.monotonic() < end, "no records written"
        time.sleep(0.02)


def _kill_one_actor_when(out: Path, lines: int, killed: list[str], deadline: float) -> None:
    import ray

    while time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= lines:
            names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                     if a["name"].startswith("docextract-extractor-")]
            if names:
                ray.kill(ray.get_actor(names[0], namespace="docextract"))
                killed.append(names[0])
                return
        time.sleep(0.05)


@needs_ray
def test_an_actor_killed_mid_run_loses_nothing(cluster, actors, short_model, tmp_path):
    docs = make_docs(tmp_path / "in", 24)
    out = tmp_path / "out.jsonl"
    killed: list[str] = []
    killer = threading.Thread(target=_kill_one_actor_when,
                              args=(out, 2, killed, time.monotonic() + 120))
    killer.start()
    res = invoke("batch", str(docs), "-s", "pan", "--model", str(short_model), *SMALL,
                 "--out", str(out), "--ray", cluster)
    killer.join()
    assert killed, "no actor was killed"
    assert res.exit_code in (0, 1), res.output
    records = read_jsonl(out)
    assert sorted(Path(r["source"]).name for r in records) == sorted(
        p.name for p in docs.iterdir())
    assert all(r["data"] is not None for r in records)
    assert "1 actor(s) lost" in res.output


@needs_ray
def test_the_driver_killed_and_run_again_ends_with_one_record_per_input(cluster, actors,
                                                                        short_model, tmp_path):
    docs = make_docs(tmp_path / "in", 16)
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-c", "from docextract.cli import main; main()", "batch", str(docs),
           "-s", "pan", "--model", str(short_model),
           # one document per decode step, so records come one by one and the kill lands mid-run
           *[a if a != "8" else "1" for a in SMALL], "--out", str(out), "--ray", cluster]
    env = {**os.environ, **ACTORS}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _wait_for_records(out, 2, proc, lambda: proc.stderr.read().decode(), 180)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = out.read_bytes().count(b"\n")
    assert done_before < 16
    # Run again (here, in this process): the records the killed driver finished are kept.
    res = invoke(*cmd[3:])
    assert res.exit_code in (0, 1), res.output
    records = read_jsonl(out)
    assert sorted(Path(r["source"]).name for r in records) == sorted(
        p.name for p in docs.iterdir())
    assert f"{16 - done_before} processed, {done_before} already done" in res.output


@needs_ray
def test_ctrl_c_on_the_driver_exits_130_and_a_rerun_ends_with_one_record_per_input(
        cluster, actors, short_model, monkeypatch, tmp_path):
    import ray

    n = 16
    docs = make_docs(tmp_path / "in", n)
    out, err = tmp_path / "out.jsonl", tmp_path / "stderr.txt"
    cmd = [sys.executable, "-c", "from docextract.cli import main; main()", "batch", str(docs),
           "-s", "pan", "--model", str(short_model),
           *[a if a != "8" else "1" for a in SMALL], "--out", str(out), "--ray", cluster]
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr,
                                env={**os.environ, **ACTORS, "DOCEXTRACT_RAY_ACTORS": "1"})
    try:
        _wait_for_records(out, 1, proc, err.read_text, 180)
        # One actor, one document per decode step: at most 3 documents are in flight, far from
        # all 16, however slow this machine is.
        assert proc.poll() is None, "every document finished before the interrupt"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.read_text()
    assert code == 130, text
    assert "error: interrupted; finished records are saved" in text
    assert "Traceback" not in text
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.splitlines()]  # complete lines only
    assert all(r["key"] and r["data"] is not None for r in records)
    done_before = len(records)
    assert 1 <= done_before < n
    # Nothing of the interrupted run is left on the cluster: no extraction actor, every CPU
    # free again (read tasks included).
    ours = f"docextract-extractor-{proc.pid}-"
    end = time.monotonic() + 60
    while True:
        left = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith(ours)]
        free = ray.available_resources().get("CPU", 0) == ray.cluster_resources()["CPU"]
        if not left and free:
            break
        assert time.monotonic() < end, (left, ray.available_resources())
        time.sleep(0.2)
    # The rest in one go: documents decoded together (--max-batch is not part of the key).
    monkeypatch.setenv("DOCEXTRACT_RAY_ACTORS", "1")
    rerun = cmd[3:]
    rerun[rerun.index("--max-batch") + 1] = "8"
    res = invoke(*rerun)
    assert res.exit_code in (0, 1), res.output
    records = read_jsonl(out)
    assert sorted(Path(r["source"]).name for r in records) == sorted(
        p.name for p in docs.iterdir())
    assert f"{n - done_before} processed, {done_before} already done" in res.output


def test_without_the_extra_one_error_and_the_install_hint(monkeypatch, tmp_path):
    docs = make_docs(tmp_path / "in", 1)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    res = invoke("batch", str(docs), "-s", "pan", "--out", str(tmp_path / "o.jsonl"),
                 "--ray", "auto")
    assert res.exit_code == 2
    assert res.output.splitlines()[0].startswith("error: --ray needs Ray Data")
    assert "pip install 'docextract[ray]'" in res.output
    assert not (tmp_path / "o.jsonl").exists()

"""`docextract model pull|info` wiring (the library parts are tested in tests/engine)."""

import json

from typer.testing import CliRunner

from docextract.cli import app
from docextract.engine import hub


def test_pull_reports_the_path_and_feeds_progress(monkeypatch, tmp_path):
    calls = []

    def fake_pull(repo_id, dest=None, *, offline=False, progress=None, revision=None):
        calls.append((repo_id, dest, offline))
        progress(10, 100)
        progress(100, 100)
        return tmp_path

    monkeypatch.setattr(hub, "pull", fake_pull)
    res = CliRunner().invoke(app, ["model", "pull", "Qwen/Qwen3.5-0.8B", "--dir", str(tmp_path),
                                   "--offline"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"repo_id": "Qwen/Qwen3.5-0.8B", "path": str(tmp_path)}
    assert calls == [("Qwen/Qwen3.5-0.8B", tmp_path, True)]


def test_info_on_a_folder_without_a_model_is_exit_4(tmp_path):
    res = CliRunner().invoke(app, ["model", "info", str(tmp_path)])
    assert res.exit_code == 4 and res.stderr.startswith("error: ")


def test_quantize_writes_a_checkpoint_that_loads(tmp_path):
    import torch

    from docextract.engine import Engine, randomckpt

    src = randomckpt.write(tmp_path / "src", kind="moe", dtype=torch.float32)
    res = CliRunner().invoke(app, ["model", "quantize", str(src), "--out", str(tmp_path / "q"),
                                   "--experts", "int8"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["experts"] == "int8"
    engine = Engine.load(out["path"], device="cpu", dtype=torch.float32)
    assert engine.experts == "int8"


def test_info_measures_memory_per_mode(tmp_path):
    import torch

    from docextract.engine import randomckpt

    src = randomckpt.write(tmp_path / "m", kind="moe", dtype=torch.float32)
    res = CliRunner().invoke(app, ["model", "info", str(src), "--measure"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert "memory_measured" in report
    text = json.dumps(report["memory_measured"])
    assert "int4" in text and "int8" in text

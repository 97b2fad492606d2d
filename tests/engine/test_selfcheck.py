"""The self-check on first use (engine/selfcheck.py) and the CUDA-graph fallback (engine/graphs.py),
on the CPU: the Triton ops run through the interpreter (TRITON_INTERPRET=1, tests/conftest.py),
and failures are made on purpose (a kernel that raises, one that returns wrong numbers, a capture
that raises, a replay that differs). The run must complete on the PyTorch path, warn once per op,
and the cache file must record it."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import docextract.kernels.gated_delta.chunk as chunk_mod
import docextract.kernels.norm.fused as norm_fused
from docextract import kernels as K
from docextract.engine import randomckpt, selfcheck
from docextract.engine.generate import Prompt
from docextract.engine.graphs import DecodeGraphs
from docextract.kernels import _dispatch

OPS = {"rms_norm", "gated_rms_norm", "causal_conv1d", "causal_conv1d_update",
       "chunk_gated_delta_rule", "recurrent_gated_delta_rule", "store_kv", "decode_attention",
       "moe_route", "moe_experts"}


@pytest.fixture(scope="module")
def model():
    config = randomckpt.model_config("moe", "tiny")
    return randomckpt.random_model(config, "cpu", torch.float32, seed=3)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test: its own cache file, and no op left routed to PyTorch afterwards."""
    path = tmp_path / "cache" / "selfcheck.json"
    monkeypatch.setenv("DOCEXTRACT_SELFCHECK_CACHE", str(path))
    yield path
    for op in list(_dispatch.fallbacks()):
        _dispatch.set_fallback(op, None)


def _entries(path):
    data = json.loads(path.read_text())
    (env,) = data
    assert "triton" in env and "torch" in env
    (entries,) = data[env].values()
    return entries


def test_every_op_passes_and_the_second_run_is_cached(model, isolated, monkeypatch):
    results = selfcheck.run_checks(model)
    assert {r.op for r in results} == OPS
    for r in results:
        assert r.path == "triton" and r.reason is None, r
        assert r.max_error is not None and r.max_error <= selfcheck.TOLERANCE[torch.float32]
    entries = _entries(isolated)
    assert {op for op, e in entries.items() if e["path"] == "triton"} == OPS
    # the second time nothing runs
    monkeypatch.setattr(selfcheck, "_check_op", lambda *a: pytest.fail("check ran again"))
    again = selfcheck.run_checks(model)
    assert all(r.cached and r.path == "triton" for r in again)


def test_a_kernel_that_raises_falls_back_with_one_warning(model, isolated, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("out of resource: shared memory, Required: 123136, Hardware limit: 101376")

    monkeypatch.setattr(norm_fused, "rms_norm", broken)
    warnings: list[str] = []
    checked = {"rms_norm", "gated_rms_norm"}
    results = {r.op: r for r in selfcheck.run_checks(model, warn=warnings.append, ops=checked)}
    assert set(results) == checked
    assert results["rms_norm"].path == "pytorch"
    assert "out of resource" in results["rms_norm"].reason
    assert results["gated_rms_norm"].path == "triton"
    assert len(warnings) == 1 and warnings[0].startswith("rms_norm: ") and "PyTorch" in warnings[0]
    # the op now takes its PyTorch path even when Triton is asked for
    x, w = torch.randn(3, 64), torch.randn(64)
    torch.testing.assert_close(K.rms_norm(x, w, impl="triton"), K.rms_norm(x, w, impl="naive"))
    entry = _entries(isolated)["rms_norm"]
    assert entry["path"] == "pytorch" and "out of resource" in entry["reason"]
    # a later process reads the failure from the cache, falls back and warns again
    _dispatch.set_fallback("rms_norm", None)
    monkeypatch.undo()
    monkeypatch.setenv("DOCEXTRACT_SELFCHECK_CACHE", str(isolated))
    warnings.clear()
    cached = {r.op: r for r in selfcheck.run_checks(model, warn=warnings.append, ops=checked)}
    assert cached["rms_norm"].cached and cached["rms_norm"].path == "pytorch"
    assert "rms_norm" in _dispatch.fallbacks() and len(warnings) == 1


def test_wrong_numbers_fall_back(model, isolated, monkeypatch):
    real = chunk_mod.chunk_gated_delta_rule

    def off_by_a_bit(*args, **kwargs):
        o, final = real(*args, **kwargs)
        return o * 1.01, final

    monkeypatch.setattr(chunk_mod, "chunk_gated_delta_rule", off_by_a_bit)
    results = {r.op: r for r in selfcheck.run_checks(model, warn=lambda m: None,
                                                     ops={"chunk_gated_delta_rule"})}
    r = results["chunk_gated_delta_rule"]
    assert r.path == "pytorch" and "max error" in r.reason and r.max_error > r.tolerance
    assert _entries(isolated)["chunk_gated_delta_rule"]["path"] == "pytorch"


def test_the_engine_runs_on_the_pytorch_path_after_a_failed_check(
        tmp_path, isolated, monkeypatch, caplog):
    monkeypatch.setenv("DOCEXTRACT_SELFCHECK", "1")
    """End to end: an engine on the Triton kernels whose conv kernel raises still generates, on
    the PyTorch conv, the same tokens as the engine on the naive ops."""
    import docextract.kernels.conv.varlen as varlen
    from docextract.engine.engine import Engine
    from docextract.engine.generate import generate

    path = randomckpt.write(tmp_path / "moe", kind="moe", seed=3)
    naive = Engine.load(path, device="cpu", dtype=torch.float32, kernels="naive")
    engine = Engine.load(path, device="cpu", dtype=torch.float32, kernels="triton")

    def broken(*args, **kwargs):
        raise RuntimeError("PTXASError: ptxas fatal")

    monkeypatch.setattr(varlen, "causal_conv1d", broken)
    prompt = [Prompt(torch.arange(3, 20), max_new_tokens=2)]
    with caplog.at_level(logging.WARNING, logger="docextract.engine"):
        results = {r.op: r for r in engine.self_check()}
        got = generate(engine.model, prompt)
    want = generate(naive.model, [Prompt(torch.arange(3, 20), max_new_tokens=2)])
    assert results["causal_conv1d"].path == "pytorch"
    assert got[0].tokens == want[0].tokens
    lines = [r.getMessage() for r in caplog.records if "self-check" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("causal_conv1d: ")
    assert _entries(isolated)["causal_conv1d"]["path"] == "pytorch"


# ---- CUDA graphs -------------------------------------------------------------------------------

def _graphs(model):
    cache = model.make_cache(4, 16)
    warnings: list[str] = []
    graphs = DecodeGraphs(model, cache, buckets=(1, 2, 4), enabled=False, pad=True,
                          warn=warnings.append)
    return graphs, cache, warnings


def test_a_capture_that_raises_turns_graphs_off(model, isolated, monkeypatch):
    graphs, cache, warnings = _graphs(model)

    def capture_fails(self):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    monkeypatch.setattr(DecodeGraphs, "_capture", capture_fails)
    graphs.enabled = True
    assert graphs.capture() is False
    assert not graphs.enabled and "capture failed" in graphs.disabled_reason
    assert len(warnings) == 1 and "CUDA graphs turned off" in warnings[0]
    entry = _entries(isolated)[selfcheck.GRAPHS]
    assert entry["path"] == "eager" and "operation not permitted" in entry["reason"]
    # the run goes on with the eager padded step
    with torch.inference_mode():
        logits = graphs(torch.tensor([5, 6]), torch.zeros(3, 2, dtype=torch.long), [0, 1])
    assert logits.shape == (2, model.config.text_config.vocab_size) and torch.isfinite(logits).all()
    # the next session does not try again
    again, _, warnings2 = _graphs(model)
    again.enabled = True
    monkeypatch.setattr(DecodeGraphs, "_capture", lambda self: pytest.fail("captured again"))
    assert again.capture() is False and "failed here before" in warnings2[0]


class _WrongReplay:
    def __init__(self, graphs):
        self.graphs = graphs

    def replay(self):
        self.graphs._logits.fill_(3.0)


def test_a_replay_that_differs_from_the_eager_step_turns_graphs_off(model, isolated, monkeypatch):
    graphs, cache, warnings = _graphs(model)

    def fake_capture(self):
        self.graphs = {b: _WrongReplay(self) for b in self.buckets}

    monkeypatch.setattr(DecodeGraphs, "_capture", fake_capture)
    graphs.enabled = True
    assert graphs.capture() is False
    assert "differ from the eager step" in graphs.disabled_reason
    assert _entries(isolated)[selfcheck.GRAPHS]["path"] == "eager"


def test_a_faithful_replay_keeps_graphs_on(model, isolated, monkeypatch):
    graphs, cache, warnings = _graphs(model)

    class EagerReplay:
        def __init__(self, g, b):
            self.g, self.b = g, b

        def replay(self):
            self.g._step(self.b)

    monkeypatch.setattr(DecodeGraphs, "_capture",
                        lambda self: self.graphs.update({b: EagerReplay(self, b) for b in self.buckets}))
    graphs.enabled = True
    assert graphs.capture() is True and graphs.disabled_reason is None and not warnings
    assert _entries(isolated)[selfcheck.GRAPHS]["path"] == "graphs"


# ---- doctor --gpu ------------------------------------------------------------------------------

def test_doctor_gpu_prints_the_table_and_records_a_fallback(isolated, monkeypatch):
    """On the CPU `doctor --gpu` runs the checks through the interpreter on a tiny random model;
    a kernel that raises shows as the PyTorch path with its reason."""
    from typer.testing import CliRunner

    from docextract.cli import app

    def broken(*args, **kwargs):
        raise RuntimeError("out of resource: shared memory")

    monkeypatch.setattr(norm_fused, "gated_rms_norm", broken)
    result = CliRunner().invoke(app, ["doctor", "--gpu", "--device", "cpu"])
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("op "))
    rows = {line.split()[0]: line for line in lines[header + 1 :] if line.strip()}
    assert set(rows) == OPS
    assert rows["gated_rms_norm"].split()[1] == "pytorch" and "out of resource" in rows["gated_rms_norm"]
    assert all(rows[op].split()[1] == "triton" for op in OPS - {"gated_rms_norm"})
    assert _entries(isolated)["gated_rms_norm"]["path"] == "pytorch"

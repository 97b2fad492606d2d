"""The static decode step (device tensors only, what a CUDA graph captures) against the eager
packed decode and the uncached forward, the slot pool's length bookkeeping, and `DecodeGraphs`
(eagerly on the CPU; the graph replays themselves under @pytest.mark.gpu)."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from docextract.engine import randomckpt
from docextract.engine.graphs import DecodeGraphs
from docextract.engine.qwen3_5 import Batch
from docextract.errors import ModelError

SLOTS = 6
MAX_LEN = 24
# (slot, prompt length) of the sequences in the cache: different lengths, slots out of order
SEQS = [(4, 5), (0, 9), (3, 2)]


@pytest.fixture(scope="module")
def model():
    config = randomckpt.model_config("moe", "tiny")
    return randomckpt.random_model(config, "cpu", torch.float32, seed=3)


def _prompt(slot: int, n: int) -> torch.Tensor:
    return torch.randint(0, 400, (n,), generator=torch.Generator().manual_seed(100 + slot))


def _prefilled(model, seqs=SEQS, device="cpu"):
    """A cache with each (slot, n) of seqs prefilled with n prompt tokens, in one packed forward."""
    cache = model.make_cache(SLOTS, MAX_LEN)
    ids = torch.cat([_prompt(s, n) for s, n in seqs]).to(device)
    pos = torch.cat([torch.arange(n) for _, n in seqs]).to(device)
    with torch.inference_mode():
        model(model.embed(ids), Batch([n for _, n in seqs], pos.expand(3, -1), cache, [s for s, _ in seqs]))
    return cache


def _eager_step(model, cache, ids: torch.Tensor, slots: list[int]) -> torch.Tensor:
    """The packed (non-static) decode step. -> logits [S, V] fp32."""
    pos = torch.tensor([cache.lengths[s] for s in slots], device=ids.device)
    with torch.inference_mode():
        hidden = model(model.embed(ids), Batch([1] * len(slots), pos.expand(3, -1), cache, slots))
        return model.lm_logits(hidden).float()


def _padded(slots: list[int], ids: torch.Tensor, cache, pad_at: tuple[int, ...]):
    """Rows with padding (slot -1, id 0, position 0) inserted before the given row numbers."""
    rows = []
    for i, (s, t) in enumerate(zip(slots, ids.tolist())):
        rows += [(-1, 0, 0)] * pad_at.count(i)
        rows.append((s, t, cache.lengths[s]))
    rows += [(-1, 0, 0)] * pad_at.count(len(slots))
    index = torch.tensor([r[0] for r in rows], dtype=torch.int32, device=ids.device)
    return index, torch.tensor([r[1] for r in rows], device=ids.device), torch.tensor([r[2] for r in rows], device=ids.device)


def _assert_same_state(a, b, slots, atol=1e-5):
    assert a.lengths == b.lengths
    assert torch.equal(a.lengths_dev.cpu(), torch.tensor(a.lengths, dtype=torch.int32))
    assert torch.equal(a.lengths_dev, b.lengths_dev)
    for layer in a.kv:
        for x, y in zip(a.kv[layer], b.kv[layer]):
            for s in slots:
                torch.testing.assert_close(x[s, :, : a.lengths[s]], y[s, :, : a.lengths[s]], rtol=1e-5, atol=atol)
    for pools_a, pools_b in ((a.conv, b.conv), (a.recurrent, b.recurrent)):
        for layer in pools_a:
            torch.testing.assert_close(pools_a[layer], pools_b[layer], rtol=1e-5, atol=atol)


def test_static_decode_equals_eager_decode_with_padding_rows(model):
    slots = [s for s, _ in SEQS]
    eager, static = _prefilled(model), _prefilled(model)
    untouched = [s for s in range(SLOTS) if s not in slots]
    before = copy.deepcopy(static)
    ids = torch.tensor([7, 300, 42])
    for step in range(3):
        want = _eager_step(model, eager, ids, slots)
        index, pids, pos = _padded(slots, ids, static, pad_at=(0, 2, 3))
        with torch.inference_mode():
            got = model.decode_static(pids, pos, index, static)
        static.advance_host(slots)
        real = index >= 0
        assert got.dtype == torch.float32 and got.shape == (len(index), model.config.text_config.vocab_size)
        torch.testing.assert_close(got[real], want, rtol=1e-5, atol=1e-5)
        _assert_same_state(static, eager, slots)
        ids = want.argmax(-1)
    for s in untouched:
        assert static.lengths[s] == 0 and int(static.lengths_dev[s]) == 0
        for pool in (*static.conv.values(), *static.recurrent.values()):
            assert not pool[s].any()
        for layer in static.kv:
            assert torch.equal(static.kv[layer][0][s], before.kv[layer][0][s])


def test_static_decode_equals_the_uncached_forward(model):
    """Prefill + static decode gives the logits of a full forward over the whole sequence."""
    slots = [s for s, _ in SEQS]
    cache = _prefilled(model)
    ids = torch.tensor([11, 222, 333])
    index, pids, pos = _padded(slots, ids, cache, pad_at=(1,))
    with torch.inference_mode():
        got = model.decode_static(pids, pos, index, cache)[index >= 0]
        for row, (s, n) in enumerate(SEQS):
            full = torch.cat([_prompt(s, n), ids[row : row + 1]])
            hidden = model(model.embed(full), Batch([n + 1], torch.arange(n + 1).expand(3, -1)))
            torch.testing.assert_close(got[row], model.lm_logits(hidden[-1]).float(), rtol=1e-4, atol=1e-4)


def test_static_decode_on_the_triton_kernels(model):
    """The path a graph captures (every op on Triton, here through the interpreter) equals the
    eager decode on the reference kernels."""
    seqs = SEQS[:2]
    slots = [s for s, _ in seqs]
    eager, static = _prefilled(model, seqs), _prefilled(model, seqs)
    ids = torch.tensor([5, 6])
    want = _eager_step(model, eager, ids, slots)
    index, pids, pos = _padded(slots, ids, static, pad_at=(1,))
    model.kernels = "triton"
    try:
        with torch.inference_mode():
            got = model.decode_static(pids, pos, index, static)
    finally:
        model.kernels = None
    static.advance_host(slots)
    torch.testing.assert_close(got[index >= 0], want, rtol=1e-4, atol=1e-4)
    _assert_same_state(static, eager, slots)


class _NoHostReads(TorchDispatchMode):
    """Every aten op a CUDA graph cannot capture raises: a value read back to the host (item,
    bool, int, ...), a tensor made from Python data (also list indexing), nonzero and boolean-mask
    indexing (data-dependent shapes)."""

    REFUSED = ("_local_scalar_dense", "lift_fresh", "lift_fresh_copy", "nonzero", "masked_select")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.REFUSED:
            raise AssertionError(f"host read in the static step: {func}")
        masked = name in ("index", "index_put", "index_put_", "_index_put_impl_") and any(
            t is not None and t.dtype == torch.bool for t in args[1])
        if masked:
            raise AssertionError(f"host read in the static step: {func} with a boolean mask")
        return func(*args, **(kwargs or {}))


def _forbid_host_reads(monkeypatch) -> _NoHostReads:
    """The dispatch-level traps, plus the reads that bypass dispatch (tolist, numpy)."""

    def refuse(name):
        def call(*args, **kwargs):
            raise AssertionError(f"host read in the static step: {name}")

        return call

    for name in ("tolist", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, refuse(name))
    return _NoHostReads()


def test_static_step_reads_nothing_back_to_the_host(model, monkeypatch):
    """The capturability of the step, checked on the CPU: with the Triton kernels (interpreter)
    nothing in `decode_static` reads a value back or builds a tensor from Python data. The same
    traps catch the eager step (its lengths come from the host list)."""
    cache = _prefilled(model, SEQS[:2])
    ids, pos = torch.tensor([5, 0, 6]), torch.tensor([5, 0, 9])
    index = torch.tensor([4, -1, 0], dtype=torch.int32)
    model.kernels = "triton"
    try:
        with monkeypatch.context() as m, torch.inference_mode():
            with _forbid_host_reads(m):
                logits = model.decode_static(ids, pos, index, cache)
            hidden = model.embed(ids[:1])
            with _forbid_host_reads(m), pytest.raises(AssertionError, match="host read"):
                model(hidden, Batch([1], pos[:1].expand(3, -1), cache, [4]))
    finally:
        model.kernels = None
    assert torch.isfinite(logits).all() and cache.lengths_dev.tolist() == [10, 0, 0, 0, 6, 0]


def test_static_decode_rejects_mismatched_shapes(model):
    cache = model.make_cache(2, 8)
    index = torch.zeros(2, dtype=torch.int32)
    with pytest.raises(ModelError, match="static decode"):
        model.decode_static(torch.zeros(2, dtype=torch.long), torch.zeros(3), index, cache)
    with pytest.raises(ModelError, match="static decode"):
        model.decode_static(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2), index, cache)


def test_cache_keeps_device_lengths_in_step(model):
    cache = model.make_cache(4, 8)
    cache.advance([2, 0], [3, 5])
    assert cache.lengths == [5, 0, 3, 0] and cache.lengths_dev.tolist() == [5, 0, 3, 0]
    index = torch.tensor([2, -1, 3, -1], dtype=torch.int32)
    assert cache.static_lengths(index).tolist() == [4, 0, 1, 0]
    cache.static_advance(index)
    cache.advance_host([2, 3])
    assert cache.lengths == [5, 0, 4, 1] and cache.lengths_dev.tolist() == [5, 0, 4, 1]
    cache.reset([0, 3])
    assert cache.lengths == [0, 0, 4, 0] and cache.lengths_dev.tolist() == [0, 0, 4, 0]
    assert cache.decode_lengths([2, 1]).tolist() == [5, 1]
    cache.advance([2], [4])
    with pytest.raises(ModelError, match="exceed 8 tokens"):
        cache.decode_lengths([2])


@pytest.mark.parametrize(
    "buckets, order",
    [
        pytest.param((1, 2, 4), [0, 1, 2], id="pad-3-to-4"),
        pytest.param((2,), [2, 0, 1], id="chunks-of-2"),
    ],
)
def test_padded_eager_runner_equals_eager_decode(model, buckets, order):
    """What a replay runs (static buffers, padding rows up to the bucket, parts beyond the largest
    bucket), eagerly on the CPU."""
    slots = [SEQS[i][0] for i in order]
    eager, cache = _prefilled(model), _prefilled(model)
    graphs = DecodeGraphs(model, cache, buckets=buckets, enabled=False, pad=True)
    assert graphs.buckets == buckets
    ids = torch.tensor([1, 2, 3])
    for _ in range(2):
        want = _eager_step(model, eager, ids, slots)
        got = graphs(ids, torch.tensor([cache.lengths[s] for s in slots]).expand(3, -1), slots)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        _assert_same_state(cache, eager, slots)
        ids = want.argmax(-1)
    one = graphs(ids[:1], torch.tensor([cache.lengths[slots[0]]]), slots[:1])
    assert one.shape == (1, model.config.text_config.vocab_size)
    assert cache.lengths[slots[0]] == eager.lengths[slots[0]] + 1


def test_runner_defaults_and_checks(model):
    cache = _prefilled(model)
    graphs = DecodeGraphs(model, cache)
    assert not graphs.enabled and not graphs.pad and graphs.buckets == (1, 2, 4, 8)
    assert DecodeGraphs(model, model.make_cache(64, 4)).buckets == (1, 2, 4, 8, 16, 32, 64)
    with pytest.raises(ModelError, match="CUDA device"):
        DecodeGraphs(model, cache, enabled=True)
    with pytest.raises(ModelError, match="positive"):
        DecodeGraphs(model, cache, buckets=(0, 4))
    ids, pos = torch.tensor([1, 2]), torch.tensor([9, 5])
    with pytest.raises(ModelError, match="distinct"):
        graphs(ids, pos, [0, 0])
    with pytest.raises(ModelError, match="distinct"):
        graphs(ids, pos, [0, SLOTS])
    with pytest.raises(ModelError, match="positions"):
        graphs(ids, torch.zeros(2, 2, dtype=torch.long), [0, 4])
    cache.lengths[4] = cache.lengths_dev[4] = MAX_LEN
    with pytest.raises(ModelError, match="exceed"):
        graphs(ids, pos, [0, 4])
    got = graphs(ids[:1], pos[:1], [0])
    assert got.shape == (1, model.config.text_config.vocab_size) and cache.lengths[0] == 10


def test_gpu_check_graphs_section_quick(tmp_path, capsys):
    """bench/gpu_check.py --quick --sections graphs (the eager stand-in for the replays): the
    attention kernel rows and, per batch, an eager and a graph row whose parity holds."""
    script = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("bench_gpu_check_graphs", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        results = tmp_path / "RESULTS.md"
        assert module.main(["--quick", "--sections", "graphs", "--results", str(results),
                            "--commit", "abc"]) == 0
    finally:
        del sys.modules[spec.name]
    capsys.readouterr()
    rows = [line.split("|") for line in results.read_text().splitlines() if "| graphs |" in line]
    names = [row[5].strip() for row in rows]
    assert names == ["decode_attention"] * 2 + [f"decode batch {b} {m}" for b in (1, 2)
                                                 for m in ("eager", "graph")]
    for row in rows:
        assert "FAIL" not in row[7] and float(row[8]) > 0
    assert all(float(row[7]) < 1e-2 for row in rows if row[5].strip().endswith("graph"))


@pytest.fixture(scope="module")
def cuda_model():
    config = randomckpt.model_config("moe", "tiny")
    model = randomckpt.random_model(config, "cuda", torch.float32, seed=3)
    model.kernels = "triton"
    return model


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 5], ids=["bucket1", "bucket8-padded"])
def test_graph_replay_equals_eager_decode(cuda_model, batch):
    seqs = [(s, 2 + 3 * s) for s in (4, 0, 3, 1, 5)][:batch]
    slots = [s for s, _ in seqs]
    eager, cache = _prefilled(cuda_model, seqs, "cuda"), _prefilled(cuda_model, seqs, "cuda")
    graphs = DecodeGraphs(cuda_model, cache, buckets=(1, 8))
    assert graphs.enabled and set(graphs.graphs) == {1, 8}
    ids = torch.arange(batch, device="cuda") + 10
    for _ in range(4):
        want = _eager_step(cuda_model, eager, ids, slots)
        pos = torch.tensor([cache.lengths[s] for s in slots], device="cuda")
        got = graphs(ids, pos.expand(3, -1), slots)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        _assert_same_state(cache, eager, slots)
        ids = want.argmax(-1)


@pytest.mark.gpu
def test_graph_replays_do_not_grow_memory(cuda_model):
    seqs = [(0, 3), (2, 4)]
    cache = _prefilled(cuda_model, seqs, "cuda")
    graphs = DecodeGraphs(cuda_model, cache, buckets=(1, 2, 4))
    slots = [0, 2]
    ids = torch.tensor([1, 2], device="cuda")

    def step():
        pos = torch.tensor([cache.lengths[s] for s in slots], device="cuda")
        return graphs(ids, pos, slots).argmax(-1)

    step()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(12):
        ids = step()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before
    assert cache.lengths == [16, 0, 17, 0, 0, 0] and cache.lengths_dev.tolist() == cache.lengths

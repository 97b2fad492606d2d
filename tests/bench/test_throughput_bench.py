"""bench/throughput.py stays runnable: its --quick run end to end (tiny model, 4 documents), and
its token agreement count."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
NUMBER = r"[\d.]+"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("bench_throughput", BENCH / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_agreement_counts_tokens_up_to_the_first_difference(throughput):
    ours = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]]
    other = [[1, 2, 3, 4], [5, 6, 0, 8], [0, 9, 9, 9]]
    assert throughput.agreement(ours, other) == (1, 6, 12)
    assert throughput.agreement(ours, ours) == (3, 12, 12)


def test_quick_run_prints_both_tables(tmp_path):
    result = subprocess.run([sys.executable, str(BENCH / "throughput.py"), "--quick"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "1 torch thread(s)" in out
    assert re.search(r"documents: 4, one page each; prompt tokens \d+-\d+ .*; 8 generated tokens each", out)
    rows = {}
    for name, conc, wall, docs, toks, c2, c4 in re.findall(
            rf"^\| ([^|]+) \| (\d+) \| ({NUMBER}) \| ({NUMBER}) \| ({NUMBER}) \| ({NUMBER})x \| ({NUMBER})x "
            rf"\| {NUMBER}/{NUMBER} \|$", out, re.MULTILINE):
        rows[(name, int(conc))] = [float(v) for v in (wall, docs, toks, c2, c4)]
    assert set(rows) == {("ours (a)", 1), ("transformers one by one (b)", 1), ("ours", 2),
                         ("transformers batched (c2)", 2), ("ours", 4), ("transformers batched (c4)", 4)}
    for wall, docs, toks, _, _ in rows.values():
        # wall is printed to 0.01 s, docs/s to 0.001
        assert wall > 0 and 4 / (wall + 0.005) - 0.001 <= docs <= 4 / max(wall - 0.005, 1e-3) + 0.001
        assert toks == pytest.approx(8 * docs, rel=0.01)
    assert rows[("transformers batched (c2)", 2)][3] == 1.0
    assert rows[("transformers batched (c4)", 4)][4] == 1.0
    agree = {(name, int(conc)): (same, prefix) for name, conc, same, prefix in re.findall(
        r"^\| ([^|]+) \| (\d+) \| (\d+/\d+) \| (\d+/\d+) \|$", out, re.MULTILINE)}
    assert set(agree) == set(rows) - {("ours (a)", 1)}
    # The engine matches transformers greedily on tiny float32 models (tests/engine parity), and
    # batching must not change our tokens.
    for key, counts in agree.items():
        assert counts == ("4/4", "32/32"), key
    assert "our batched outputs equal our one-at-a-time outputs: yes" in out


def test_quick_run_under_a_schema_and_with_mixed_answer_lengths(tmp_path):
    """Both sides constrained by the same grammar give the same tokens; with the samples' answer
    lengths each document stops at its own budget on both sides."""
    result = subprocess.run([sys.executable, str(BENCH / "throughput.py"), "--quick", "--batched-only",
                             "--batches", "4", "--schema", "invoice", "--answer-lengths", "samples",
                             "--new-tokens", "12"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "constrained by schema 'invoice' on both sides" in out
    assert re.search(r"\| transformers batched \(c4\) \| 4 \| 4/4 \| (\d+)/\1 \|", out), out

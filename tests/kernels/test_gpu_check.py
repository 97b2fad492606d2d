import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("bench_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up while the file executes
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_quick_mode_checks_every_kernel_and_appends_rows(gpu_check, tmp_path):
    """Run as the lead would, in its own process (--quick switches the interpreter on)."""
    results = tmp_path / "RESULTS.md"
    command = [sys.executable, str(SCRIPT), "--quick", "--results", str(results)]
    run = subprocess.run(
        [*command, "--commit", "abc1234"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    printed = run.stdout
    rows = [line for line in results.read_text().splitlines() if "| kernels |" in line]
    names = {row.split("|")[5].strip() for row in rows}
    assert names == {
        "rms_norm+residual",
        "gated_rms_norm",
        "causal_conv1d",
        "causal_conv1d_update",
        "chunk_gated_delta_rule",
        "recurrent_gated_delta_rule",
        "moe_route",
        "moe_experts[fp16]",
        "moe_experts[int8]",
        "moe_experts[int4]",
        "moe_experts[fp8]",
    }
    assert all("| cpu-interpreter | abc1234 |" in row for row in rows)
    assert "FAIL" not in printed
    # the end-to-end section: the engine on the tiny preset with int4 experts, Triton kernels
    e2e = [line.split("|") for line in results.read_text().splitlines() if "| e2e |" in line]
    assert [row[5].strip() for row in e2e] == ["prefill", "decode batch 1", "decode batch 4", "memory"]
    for row in e2e[:3]:
        assert float(row[8]) > 0 and float(row[9].split()[0].replace(",", "")) > 0
        assert float(row[10]) > 0 and "int4 experts" in row[6]
    assert e2e[3][6].strip().startswith("weights ")
    gpu_check.append_results(results, rows[:1])
    assert results.read_text().count("| date |") == 1
    assert len(results.read_text().splitlines()) == len(rows) + len(e2e) + 3


def test_unknown_section_is_a_usage_error(gpu_check, capsys):
    assert gpu_check.main(["--quick", "--sections", "kernels,paper"]) == 2
    assert "paper" in capsys.readouterr().err


def test_pages_section_quick(gpu_check, tmp_path):
    results = tmp_path / "RESULTS.md"
    assert gpu_check.main(["--quick", "--sections", "pages", "--results", str(results),
                           "--commit", "abc1234"]) == 0
    rows = [line for line in results.read_text().splitlines() if "| pages |" in line]
    assert len(rows) == 1 and "pages/s" in rows[0] and "max_batch 2" in rows[0]


def test_a_parity_failure_is_reported_and_fails_the_run(gpu_check):
    import torch

    case = gpu_check.Case(
        "broken", "n=4", lambda: torch.ones(4), lambda: torch.ones(4) * 1.1, ratio=1e-3, bytes=16
    )
    row = gpu_check.run_case(case, cuda=False)
    assert not row.ok and abs(row.err - 0.1) < 1e-6
    assert "FAIL" in gpu_check.format_rows([row], "cpu", "x")[0]

"""bench/windows.py stays runnable: its --quick run end to end prints the table with both modes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
def test_quick_run_prints_the_table(tmp_path):
    result = subprocess.run([sys.executable, str(BENCH / "windows.py"), "--quick"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if not line.startswith("#")][1:]
    assert len(rows) == 2
    assert re.match(r"one request \(--window 0\)\s+1\s+\d+\s+32\s+[\d.]+\s+1\.00x", rows[0])
    assert re.match(r"windows of 2\s+3\s+\d+\s+48\s+[\d.]+\s+[\d.]+x", rows[1])

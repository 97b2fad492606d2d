"""Gaps between the progress lines of `docextract run` on a model with the real 248,320-token
vocabulary size, and where the longest one falls.

The grammar library reads the whole vocabulary in one native call that holds the GIL, so no
status line can be printed while it runs. This runs the CLI in a subprocess on a random
checkpoint with Qwen3.5's vocabulary size (randomckpt's 248k random tokenizer; the tiny layers
otherwise, since the scan does not depend on them), stderr piped (plain status lines, one every
2 s), and prints each line's time since the process started, the longest gap, the line before
it, and the longest gap once the page's engine work has started (its first `working:` line
with vision, prefill or decode). `--python` runs another checkout's interpreter (e.g. the
code before a change) on the same checkpoint and page in the same run.

    .venv/bin/python bench/progress_gap.py [--python OTHER/.venv/bin/python ...] [--page PDF]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "samples/data/gst_invoice-s1-001.pdf"
WORK = ("working: vision", "working: prefill", "working: decode")


def checkpoint(folder: Path) -> Path:
    import torch

    from docextract.engine import randomckpt

    preset = {"first_special_id": 248044, "text_config": {"vocab_size": 248320}}
    return randomckpt.write(folder, kind="moe", preset=preset, dtype=torch.float32)


def run(python: str, model: Path, page: Path, schema: str) -> list[tuple[float, str]]:
    cmd = [python, "-c", "import sys; from docextract.cli import main; sys.exit(main())", "run",
           str(page), "--schema", schema, "--device", "cpu", "--model", str(model), "--offline",
           "--max-pixels", str(256 * 32 * 32)]
    # From the interpreter's checkout (X/.venv/bin/python -> X), so that `-c` imports its code.
    root = Path(python).parents[2] if Path(python).parent.parent.name == ".venv" else None
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=root)
    lines = [(time.monotonic() - start, line.rstrip("\n")) for line in proc.stderr]
    proc.wait()
    lines.append((time.monotonic() - start, f"(exit {proc.returncode})"))
    return lines


def longest(lines: list[tuple[float, str]]) -> tuple[float, str]:
    gaps = [(b[0] - a[0], a[1]) for a, b in zip(lines, lines[1:])]
    return max(gaps) if gaps else (0.0, "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[],
                        help="interpreter(s) to run the CLI with (default: this one)")
    parser.add_argument("--page", default=str(PAGE))
    parser.add_argument("--schema", default="invoice")
    parser.add_argument("--show", action="store_true", help="print every line with its time")
    args = parser.parse_args()
    pythons = args.python or [sys.executable]
    with tempfile.TemporaryDirectory() as tmp:
        model = checkpoint(Path(tmp) / "ckpt")
        rows = []
        for python in pythons:
            load = os.getloadavg()[0]
            lines = run(python, model, Path(args.page), args.schema)
            if args.show:
                for t, line in lines:
                    print(f"{t:7.2f}  {line[:150]}")
            first = next((i for i, (_, line) in enumerate(lines) if line.split(" ", 2)[-1]
                          .startswith(WORK) or any(w in line for w in WORK)), len(lines) - 1)
            gap, before = longest(lines)
            page_gap, _ = longest(lines[first:])
            rows.append((python, len(lines), gap, before, page_gap, lines[first][0], load))
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}; page {Path(args.page).name}; "
          f"schema {args.schema}; random checkpoint with a 248,320-token vocabulary")
    print()
    print("| interpreter | lines | longest gap s | line before it | longest gap after the "
          "page's work began s | first page line at s | load avg |")
    print("|---|---|---|---|---|---|---|")
    for python, n, gap, before, page_gap, first_t, load in rows:
        print(f"| {python} | {n} | {gap:.1f} | {before[:70]} | {page_gap:.1f} | {first_t:.1f} "
              f"| {load:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

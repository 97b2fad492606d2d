"""Budgets on untrusted input (issue 16): what they save, each case beside its baseline.

1. A 150-page A4 PDF read for a model with a 262,144-token context: rendered in full (no budget,
   what `ingest.load` did before) against refused from the page sizes (`max_image_tokens`).
   Wall time and peak RSS, each in a fresh process.
2. A schema `pattern` of `^(a+)+$` against "a" * n + "!": Python's backtracking `re` against
   RE2 (what schemas/_jsonschema.py matches with), for growing n.

Usage: .venv/bin/python bench/input_budgets.py [--pages 150] [--max-n 24]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from docextract import ingest
from docextract.errors import InputError
path, budget = sys.argv[1], (int(sys.argv[2]) or None)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    outcome = f"{len(ingest.load(path, max_image_tokens=budget))} pages rendered"
except InputError:
    outcome = "refused"
print(json.dumps({"s": time.perf_counter() - t, "outcome": outcome,
                  "mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""


def pdf_case(pages: int) -> list[tuple[str, dict]]:
    import pymupdf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.pdf"
        doc = pymupdf.open()
        for _ in range(pages):
            doc.new_page(width=595, height=842)
        doc.save(path)
        doc.close()
        rows = []
        for label, budget in (("no budget (before)", 0), ("budget 262,144 tokens", 262_144)):
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(budget)],
                                 capture_output=True, text=True, check=True)
            rows.append((label, json.loads(out.stdout)))
        return rows


def redos_case(max_n: int) -> list[tuple[int, float, float]]:
    import re

    import re2

    rows = []
    for n in range(16, max_n + 1, 2):
        text = "a" * n + "!"
        t = time.perf_counter()
        assert re.search(r"^(a+)+$", text) is None
        slow = time.perf_counter() - t
        compiled = re2.compile(r"^(a+)+$")
        t = time.perf_counter()
        assert compiled.search(text) is None
        rows.append((n, slow, time.perf_counter() - t))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=150)
    parser.add_argument("--max-n", type=int, default=24)
    args = parser.parse_args()
    rows = pdf_case(args.pages)
    print(f"{args.pages}-page A4 PDF, default --dpi and --max-pixels\n")
    print("| | outcome | time s | peak RSS MiB |\n|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['outcome']} | {r['s']:.2f} | {r['mib']:.0f} |")
    (_, before), (_, after) = rows
    print(f"| budget / no budget | | {after['s'] / before['s']:.4f}x | "
          f"{max(after['mib'], 1) / max(before['mib'], 1):.4f}x |\n")
    print('pattern ^(a+)+$ on "a" * n + "!"\n')
    print("| n | Python re ms | RE2 ms | ratio |\n|---|---|---|---|")
    for n, slow, fast in redos_case(args.max_n):
        print(f"| {n} | {slow * 1e3:.2f} | {fast * 1e3:.4f} | {slow / max(fast, 1e-9):,.0f}x |")


if __name__ == "__main__":
    main()

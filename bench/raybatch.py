"""Documents per second of `batch --ray` with 1 and 2 extraction actors against a local `batch`
(the baseline) on the same inputs, on the CPU.

The inputs are small distinct PNG cards read with `--schema pan` by a random-weight checkpoint
(randomckpt `--preset tiny`, float32) through the real pipeline and engine; a random model cannot
read, so the records are invalid and only time is measured, but every document runs the whole
path: render, key, constrained decoding in the continuously batched session, validation,
masking, one locked write per record. Each mode is one whole command (model loading included:
the local run loads one engine, each actor loads its own) into a fresh --out; a local Ray
instance is started once before the runs (its start is not timed). The load average before and
after each run is printed: on a shared machine the ratio says as much about the neighbours as
about Ray.

    .venv/bin/python bench/raybatch.py [--docs 24] [--max-batch 8] [--cpus 4] [--quick]
"""

from __future__ import annotations

import argparse
import os
import threading
import platform
import sys
import tempfile
import time
from pathlib import Path


def make_docs(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (64, 64), ((i * 37) % 256, (i * 11) % 256, 90 + i % 100)).save(
            folder / f"card{i:03d}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--cpus", type=float, default=4, help="logical CPUs of the Ray instance")
    parser.add_argument("--actor-cpus", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="6 documents")
    args = parser.parse_args()
    if args.quick:
        args.docs = 6
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray
    import torch

    from docextract import batch, raybatch
    from docextract.console import Console
    from docextract.engine import randomckpt
    from docextract.pipeline import RunOptions

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    model = tmp / "model"
    randomckpt.write(model, kind="moe", preset="tiny", seed=15, dtype=torch.float32)
    docs = tmp / "docs"
    make_docs(docs, args.docs)
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, _node_ip_address="127.0.0.1")
    console = Console(quiet=True, progress_enabled=False)

    def opts() -> RunOptions:
        o = RunOptions(schema="pan", model=str(model), max_pixels=96 * 32 * 32, device="cpu",
                       retries=0)
        o.max_batch = args.max_batch
        return o

    modes = [("local batch (baseline)", None), ("ray, 1 actor", 1), ("ray, 2 actors", 2)]
    rows = []
    for label, actors in modes:
        out = tmp / f"out-{actors or 0}.jsonl"
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        seen: list[float] = []  # when the first and the last record appeared
        stop = threading.Event()

        def watch(out=out, seen=seen, stop=stop):
            count = 0
            while not stop.is_set():
                now = out.read_bytes().count(b"\n") if out.exists() else 0
                if now > count:
                    count = now
                    seen[:] = [seen[0] if seen else time.perf_counter(), time.perf_counter()]
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        if actors is None:
            batch.run_batch([str(docs)], opts(), console, out=str(out))
        else:
            raybatch.run_ray_batch([str(docs)], opts(), console, out=str(out), actors=actors,
                                   actor_cpus=args.actor_cpus)
        wall = time.perf_counter() - t0
        stop.set()
        watcher.join()
        n = out.read_text().count("\n")
        if n != args.docs:
            print(f"{label}: {n} records for {args.docs} documents", file=sys.stderr)
            return 1
        steady = (n - 1) / max(seen[1] - seen[0], 1e-9)
        rows.append((label, n, wall, n / wall, steady, load0, os.getloadavg()[0]))
    ray.shutdown()
    base, one = rows[0][3], rows[1][3]
    print(f"# {args.docs} documents (64x64 PNG, --schema pan, tiny random model, float32, "
          f"--max-batch {args.max_batch}); Ray: local instance, {args.cpus:g} logical CPUs, "
          f"{args.actor_cpus:g} CPU per actor")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, ray {ray.__version__}, OMP_NUM_THREADS="
          f"{os.environ['OMP_NUM_THREADS']}")
    print("# docs/s: documents / wall time of the whole command; first->last: (documents - 1) /"
          " time from the first record to the last (start-up left out)")
    print(f"{'mode':<24} {'docs':>5} {'wall s':>8} {'docs/s':>7} {'vs local':>9} "
          f"{'vs 1 actor':>10} {'first->last':>11} {'vs local':>9} {'load before':>11} "
          f"{'load after':>10}")
    steady_base = rows[0][4]
    for label, n, wall, rate, steady, l0, l1 in rows:
        vs_one = f"{rate / one:.2f}x" if "actor" in label else "-"
        print(f"{label:<24} {n:>5} {wall:>8.1f} {rate:>7.2f} {rate / base:>8.2f}x "
              f"{vs_one:>10} {steady:>11.2f} {steady / steady_base:>8.2f}x {l0:>11.1f} "
              f"{l1:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

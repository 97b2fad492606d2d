"""The pixel budget per page chosen for the device, and the CPU threads the engine may use.

Budget: on a GPU, `ingest.DEFAULT_MAX_PIXELS` (2560 tiles of 32x32: an A4 page at 200 dpi comes
out at 1344x1920). On the CPU the vision tower's full attention over all patches of a page grows
with the square of its pixels, so the default is what a document needs to stay legible:
CPU_MAX_PIXELS (768 tiles: an A4 page comes out at 736x1024, 1.24 pixels per point, where 8-point
text and the digits of GSTINs and HSN codes in 6.8-point table cells stay readable; looked at on
the committed samples, see README "Page budget"). `--max-pixels` overrides both.

Threads: torch's intra-op threads are set from the cores this process may use (its CPU affinity,
and a cgroup CPU quota when there is one), unless OMP_NUM_THREADS or DOCEXTRACT_THREADS says. The
threads that read and render documents ahead of the engine (`batch --workers`) are capped from the
same count: with a CPU engine, the cores torch's threads leave free (at least one), elsewhere the
usable cores. The grammar library computes masks on one thread of its own with a CPU engine
(engine.Engine.grammars), and in the time the forward runs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from . import ingest

PATCH = ingest.PATCH
CPU_TILES = 768
CPU_MAX_PIXELS = CPU_TILES * PATCH * PATCH
GPU_MAX_PIXELS = ingest.DEFAULT_MAX_PIXELS


def engine_device(device: str | None) -> str:
    """"cuda" or "cpu": what `--device` resolves to (None: DOCEXTRACT_DEVICE, else "auto":
    CUDA when torch sees one)."""
    if not device:
        device = os.environ.get("DOCEXTRACT_DEVICE")
    if device in (None, "", "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if str(device).startswith("cuda") else "cpu"


def default_max_pixels(device: str | None) -> int:
    """The page budget when --max-pixels is not given: the GPU's on CUDA, else the CPU's."""
    return GPU_MAX_PIXELS if engine_device(device) == "cuda" else CPU_MAX_PIXELS


def cgroup_cpus(root: str | os.PathLike = "/sys/fs/cgroup") -> float | None:
    """CPUs allowed by a cgroup quota (v2 cpu.max, else v1 cfs quota/period); None if unlimited
    or unknown."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max" and int(period) > 0:
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cores(root: str | os.PathLike = "/sys/fs/cgroup") -> int:
    """Cores this process may run on: its affinity, capped by a cgroup quota (rounded up)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_cpus(root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def cpu_threads(environ: dict[str, str] | None = None,
                root: str | os.PathLike = "/sys/fs/cgroup") -> int | None:
    """torch threads for the CPU engine: DOCEXTRACT_THREADS if set, None when OMP_NUM_THREADS is
    set (torch already follows it), else the usable cores."""
    env = os.environ if environ is None else environ
    if env.get("DOCEXTRACT_THREADS"):
        try:
            n = int(env["DOCEXTRACT_THREADS"])
        except ValueError:
            n = 0
        if n < 1:
            from .errors import UsageError

            raise UsageError(f"DOCEXTRACT_THREADS={env['DOCEXTRACT_THREADS']!r}: expected a "
                             "positive number of threads")
        return n
    if env.get("OMP_NUM_THREADS"):
        return None
    return usable_cores(root)


def _torch_threads(env: dict[str, str], root: str | os.PathLike) -> int:
    """The intra-op threads a CPU engine runs with (see cpu_threads; OMP_NUM_THREADS when torch
    follows it)."""
    n = cpu_threads(env, root)
    if n is None:
        try:
            n = int(env["OMP_NUM_THREADS"].split(",")[0])
        except ValueError:
            n = usable_cores(root)
    return max(1, n)


def reader_threads(requested: int, device: str | None = None,
                   environ: dict[str, str] | None = None,
                   root: str | os.PathLike = "/sys/fs/cgroup") -> int:
    """Threads reading and rendering documents: at most `requested` and the usable cores; with
    a CPU engine only the cores its torch threads leave free, at least one (a reader on a core
    torch uses takes it from the engine, which waits for its slowest thread at every step)."""
    env = os.environ if environ is None else environ
    cores = usable_cores(root)
    if engine_device(device) == "cpu":
        cores = max(1, cores - _torch_threads(env, root))
    return max(1, min(int(requested), cores))


def set_cpu_threads() -> int:
    """Set torch's intra-op threads for a CPU engine (see cpu_threads); -> the count in use."""
    import torch

    n = cpu_threads()
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
    return torch.get_num_threads()

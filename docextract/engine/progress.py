"""Progress of the engine's long work, reported through a plain callable passed explicitly
(`Engine.generate(requests, progress=fn)`, `generate(..., progress=fn)`, `Scheduler(progress=fn)`);
there is no global hook. The engine calls `fn(Work(...))`:

- "vision": blocks of the vision tower done / total (one event before the first block), for the
  images of every sequence being admitted (they run in one packed pass);
- "prefill": prompt tokens fed / total of the sequences being admitted (one event per chunk);
- "decode": tokens generated so far by the sequences in flight (one event per step).

A callback must be quick and must not raise; what it prints is up to the caller
(docextract/progress.py turns these into the status on stderr).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PHASES = ("vision", "prefill", "decode")


@dataclass(frozen=True)
class Work:
    phase: str  # one of PHASES
    done: int  # vision: blocks; prefill: prompt tokens; decode: generated tokens
    total: int | None  # None for decode (the answer's length is not known)
    sequences: int  # sequences in this phase (documents in flight)


ProgressFn = Callable[[Work], None]

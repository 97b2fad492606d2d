"""What the engine is doing, as the progress bar's status text on stderr, with an estimate.

`EngineStatus` is the `progress` callable handed to `engine.generate` (engine/progress.py): each
`Work` event becomes the bar's "working:" field, e.g. `vision 3/12 blocks, about 40 s left`,
`prefill 512/2739 tokens, about 2 min left`, `decode 37 tokens, 4.1 tokens/s` (with the number of
documents when several are in flight); before the first event, `starting, 4 s so far`. The estimate
is the phase's time per unit of work up to the last event, counted down since then. A ticker thread
refreshes the bar every TICK_S while a document is being processed, so the status keeps moving
through model loading, grammar compilation, a long vision block or a prefill chunk and never looks
hung; it only runs between `__enter__` and `__exit__`, and it and the engine's events touch the bar
under one lock (the caller leaves the bar alone in between).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

FIELD = "working:"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


class EngineStatus:
    TICK_S = 0.5

    def __init__(self, bar: Any, clock: Callable[[], float] = time.monotonic, ticker: bool = True):
        self.bar = bar
        # Without the ticker the bar moves only on events (for a caller that updates the bar
        # itself between them, as batch does after each record).
        self.ticker = ticker
        self.clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._work = None
        self._phase_start = 0.0
        self._phase_first = 0  # work done when the phase's first event came
        self._started = clock()
        self._event_time = 0.0

    def __enter__(self) -> EngineStatus:
        # Before the engine's first event (reading the file, loading the model, compiling the
        # grammar) the status says how long the document has been starting.
        self._started = self.clock()
        self._start_ticker()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self.bar.fields.pop(FIELD, None)
            self._work = None

    def __call__(self, work) -> None:
        now = self.clock()
        with self._lock:
            if self._work is None or work.phase != self._work.phase or work.done < self._work.done:
                self._phase_start, self._phase_first = now, work.done
            self._work, self._event_time = work, now
            self._show(now)
        self._start_ticker()

    def _start_ticker(self) -> None:
        if self.ticker and self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._tick, name="docextract-status",
                                            daemon=True)
            self._thread.start()

    def text(self, now: float | None = None) -> str:
        """The status of the last event, e.g. 'prefill 512/2739 tokens, about 20 s left'."""
        w = self._work
        now = self.clock() if now is None else now
        if w is None:
            return f"starting, {_duration(now - self._started)} so far"
        elapsed = now - self._phase_start
        done = w.done - self._phase_first
        docs = f" ({w.sequences} documents)" if w.sequences > 1 else ""
        if w.phase == "decode":
            rate = f", {done / elapsed:.1f} tokens/s" if done > 0 and elapsed > 0 else ""
            return f"decode {w.done} tokens{docs}{rate}"
        unit = "blocks" if w.phase == "vision" else "tokens"
        text = f"{w.phase} {w.done}/{w.total} {unit}{docs}"
        if done > 0 and w.total:
            # the rate up to the last event, counted down since then
            per_unit = (self._event_time - self._phase_start) / done
            left = per_unit * (w.total - w.done) - (now - self._event_time)
            text += f", about {_duration(max(left, 1))} left"
        else:
            text += f", {_duration(elapsed)} so far" if elapsed >= 1 else ""
        return text

    def _show(self, now: float) -> None:
        self.bar.update(0, **{FIELD: self.text(now)})

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK_S):
            with self._lock:
                self._show(self.clock())

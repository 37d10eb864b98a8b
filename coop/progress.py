"""Progress of a long step as log lines, for a job's log file: done / total, rate and time left, at a steady
interval (not a terminal bar: every line is a whole line, so `tail -f` and `coop status` can read it).

    progress = Progress("feature extraction", total=len(items), unit="images", log=log)
    for batch in loader:
        ...
        progress.update(len(batch))
    progress.done()

A line is written at the first update, then at most every `interval` seconds (default `COOP_PROGRESS_SECONDS`,
30), and once at the end. `extra` (e.g. the last loss) is appended to the line.
"""
from __future__ import annotations

import os
import time
from typing import Callable

DEFAULT_INTERVAL = 30.0


def default_interval() -> float:
    try:
        return float(os.environ.get("COOP_PROGRESS_SECONDS", DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL


def _log_line(message: str) -> None:
    print(message, flush=True)


def format_seconds(seconds: float) -> str:
    """12 s, 3 min 05 s, 2 h 07 min."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counts `done` of `total` units and logs rate and ETA every `interval` seconds."""

    def __init__(self, what: str, total: int, unit: str = "items", log: Callable[[str], None] | None = None,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.unit = what, int(total), unit
        self.log = _log_line if log is None else log
        self.interval = default_interval() if interval is None else float(interval)
        self.clock = clock
        self.start = clock()
        self.count = 0
        self._last = None  # time of the last line

    @property
    def rate(self) -> float:
        elapsed = self.clock() - self.start
        return self.count / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before any unit is done)."""
        rate = self.rate
        if self.count <= 0 or rate <= 0:
            return None
        return max(0, self.total - self.count) / rate

    def line(self, extra: str = "") -> str:
        pct = 100.0 * self.count / self.total if self.total else 100.0
        elapsed = self.clock() - self.start
        parts = [f"{self.what}: {self.count}/{self.total} {self.unit} ({pct:.0f}%)",
                 f"{self.rate:.3g} {self.unit}/s", f"elapsed {format_seconds(elapsed)}"]
        eta = self.eta()
        if self.count < self.total:
            parts.append("ETA " + (format_seconds(eta) if eta is not None else "?"))
        if extra:
            parts.append(extra)
        return ", ".join(parts)

    def update(self, n: int = 1, extra: str = "") -> None:
        self.count += n
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            if self.count < self.total or self._last is None:
                self._last = now
                self.log(self.line(extra))

    def done(self, extra: str = "") -> None:
        """The final line (always written)."""
        self._last = self.clock()
        self.log(self.line(extra))


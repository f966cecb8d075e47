"""A progress bar on stderr: samples done, rate and time left.

On a terminal the bar is redrawn in place (at most ten times a second). When stderr is not a terminal
(a log file, CI) a plain line is written at coarse intervals instead, so logs stay short. Nothing is shown
for runs that finish before ``delay`` seconds.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Report ``done`` out of ``total`` samples.

    Parameters
    ----------
    total : int
        Samples to simulate.
    stream : file, optional
        Where to write (default ``sys.stderr``).
    enabled : bool
        False writes nothing.
    tty : bool, optional
        Force terminal (redrawn bar) or log (plain lines) style; default: ``stream.isatty()``.
    delay : float
        Seconds before anything is shown (short runs stay quiet).
    interval : float
        Seconds between plain lines when not on a terminal.
    clock : callable
        Time source (tests pass a fake one).
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool = True, tty: bool | None = None,
                 delay: float = 2.0, interval: float = 30.0, clock=time.monotonic):
        self.total = int(total)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        try:
            self.tty = bool(self.stream.isatty()) if tty is None else tty
        except (AttributeError, ValueError):
            self.tty = False if tty is None else tty
        self.delay = delay
        self.interval = interval if not self.tty else 0.1
        self.clock = clock
        self.start = clock()
        self.done = 0
        self._last_shown: float | None = None
        self._drawn = False

    def line(self, now: float | None = None) -> str:
        """The text of the bar for the current state."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        frac = self.done / self.total if self.total else 1.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        width = 24
        filled = int(round(frac * width))
        bar = "#" * filled + "-" * (width - filled)
        eta = _duration(left) if left == left else "?"
        return (f"[{bar}] {self.done}/{self.total} samples  {rate:.1f}/s  "
                f"elapsed {_duration(elapsed)}  left {eta}")

    def update(self, done: int) -> None:
        """Set the number of samples done and redraw if it is time to."""
        done = min(int(done), self.total)
        changed = done != self.done
        self.done = done
        if not self.enabled or not changed:
            return
        now = self.clock()
        if now - self.start < self.delay:
            return
        if self._last_shown is not None and now - self._last_shown < self.interval and self.done < self.total:
            return
        self._show(now)

    def advance(self, n: int) -> None:
        """Add ``n`` samples done."""
        self.update(self.done + n)

    def _show(self, now: float) -> None:
        text = self.line(now)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_shown = now
        self._drawn = True

    def close(self, note: str | None = None) -> None:
        """Finish the bar (a final newline on a terminal); ``note`` is written on its own line."""
        if not self.enabled:
            return
        if self._drawn and self.tty:
            self._show(self.clock())
            self.stream.write("\n")
        if note:
            self.stream.write(note + "\n")
        self.stream.flush()

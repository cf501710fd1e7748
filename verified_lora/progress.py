"""Progress reporting for long work: a bar on a terminal, plain lines otherwise, silent by default.

Library code reports steps without taking a callback argument::

    from verified_lora.progress import task

    with task(n_rows, "reference rows", advice="use enclose(backend='arb')") as bar:
        for row in rows:
            ...
            bar.update()

Nothing is printed unless a caller has switched reporting on with :func:`reporting` (the CLI does,
unless ``-q``). Inside it, a :func:`task` draws a ``tqdm`` bar when the stream is a TTY (``tqdm`` is
imported lazily; without it, plain lines are used) and otherwise prints a plain line at most every
``interval`` seconds with ``done/total``, the elapsed time and the estimated time left. After the
first steps a task predicts its total time; when that exceeds ``warn_s`` (default 30 s) it says so
once, with its ``advice`` (how to make the run faster).

:func:`note` prints a one-line message (the CLI's ``[elapsed] message`` lines).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["reporting", "task", "note", "Task", "is_reporting", "format_seconds"]

WARN_SECONDS = 30.0
"""A task predicted to take longer than this says so once, with its advice."""


@dataclass
class _Sink:
    stream: TextIO
    tty: bool
    t0: float = field(default_factory=time.perf_counter)


_SINK: ContextVar[_Sink | None] = ContextVar("verified_lora_progress_sink", default=None)


def format_seconds(s: float) -> str:
    """``42 s``, ``3.5 min``, ``1.2 h``."""
    if s < 90:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


@contextlib.contextmanager
def reporting(enabled: bool = True, stream: TextIO | None = None, tty: bool | None = None) -> Iterator[None]:
    """Switch progress output on (to ``stream``, default stderr) for the calls inside the block."""
    if not enabled:
        token = _SINK.set(None)
    else:
        stream = stream or sys.stderr
        is_tty = bool(getattr(stream, "isatty", lambda: False)()) if tty is None else tty
        token = _SINK.set(_Sink(stream, is_tty))
    try:
        yield
    finally:
        _SINK.reset(token)


def is_reporting() -> bool:
    """Whether a :func:`reporting` block is active."""
    return _SINK.get() is not None


def note(message: str) -> None:
    """Print ``  [elapsed s] message`` when reporting is on."""
    sink = _SINK.get()
    if sink is not None:
        print(f"  [{time.perf_counter() - sink.t0:7.1f}s] {message}", file=sink.stream, flush=True)


class Task:
    """A counted piece of work; use :func:`task` to make one."""

    def __init__(self, total: int, desc: str, *, advice: str = "", warn_s: float = WARN_SECONDS,
                 interval: float = 5.0, estimate_s: float | None = None) -> None:
        self.total, self.desc, self.advice, self.warn_s, self.interval = max(int(total), 0), desc, advice, warn_s, interval
        self.done = 0
        self._sink = _SINK.get()
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._warned = False
        self._bar: Any = None
        if self._sink is not None and estimate_s is not None and estimate_s > warn_s:
            self._warned = True  # said before the work starts; the measured rate is shown by the progress lines
            note(f"{desc}: estimated {format_seconds(estimate_s)} in all from the problem size"
                 + (f"; faster: {advice}" if advice else ""))
        if self._sink is not None and self._sink.tty:
            try:
                from tqdm import tqdm  # lazy: only when a bar is drawn

                self._bar = tqdm(total=self.total, desc=desc, file=self._sink.stream, leave=False,
                                 dynamic_ncols=True, mininterval=0.5)
            except ImportError:
                self._bar = None
        self._t0 = self._last = time.perf_counter()  # after the (lazy) tqdm import

    def predicted_seconds(self) -> float | None:
        """Total time predicted from the steps done so far (``None`` before the first step)."""
        if not self.done:
            return None
        return (time.perf_counter() - self._t0) * self.total / self.done

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps done."""
        self.done += n
        if self._sink is None:
            return
        now = time.perf_counter()
        predicted = self.predicted_seconds()
        if not self._warned and predicted is not None and (now - self._t0 > 0.2 or self.done * 20 >= self.total):
            self._warned = True
            if predicted > self.warn_s:
                self._write(f"{self.desc}: predicted {format_seconds(predicted)} in all "
                            f"({self.done}/{self.total} done in {format_seconds(now - self._t0)})"
                            + (f"; faster: {self.advice}" if self.advice else ""))
        if self._bar is not None:
            self._bar.update(n)
        elif now - self._last >= self.interval and self.done < self.total:
            self._last = now
            left = (predicted or 0.0) - (now - self._t0)
            self._write(f"{self.desc}: {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%), "
                        f"{format_seconds(now - self._t0)} elapsed, about {format_seconds(max(left, 0.0))} left")

    def _write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=self._sink.stream)
        else:
            note(message)

    def close(self) -> None:
        """Finish the task (closes the bar)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def task(total: int, desc: str, *, advice: str = "", warn_s: float = WARN_SECONDS,
         interval: float = 5.0, estimate_s: float | None = None) -> Iterator[Task]:
    """A :class:`Task` of ``total`` steps, closed at the end of the block (silent unless reporting).

    ``estimate_s``: an a-priori time estimate; when it exceeds ``warn_s`` the task says so at once.
    """
    t = Task(total, desc, advice=advice, warn_s=warn_s, interval=interval, estimate_s=estimate_s)
    try:
        yield t
    finally:
        t.close()

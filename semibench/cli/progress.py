"""Progress for `train`, `eval` and `grid`: rich bars on a terminal, plain periodic lines in a log.

Under nohup, Slurm or CI stdout/stderr is a file, and rich draws nothing until the end; tqdm, Lightning
and TRL print plain lines there instead, and so does this. `progress_view(console)` returns rich's
`Progress` on a terminal and `PlainProgress` otherwise: the same calls (add_task, update, advance, as a
context manager), printed as one line for all visible tasks, e.g.

    [02:41:07] grid (steps) 45/360 12% 5m12s ETA 36m21s runs: 1 done, 1 running, 10 left | math-dpo-s1-... 15/30 50% 1m03s ETA 1m03s reward 0.412

at most one line every `SEMIBENCH_PROGRESS_SECONDS` (default 10) and never more than one per update,
plus a line whenever a task finishes. Inside a context (`with`), a quiet spell of `heartbeat_s` (6x the
interval) prints the current line again, so one long call (a cold engine's first evaluation: minutes)
still shows its clock ticking.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

def progress_view(console, with_info: bool = True):
    """Rich bars with ETA when `console` is a terminal, plain periodic lines otherwise.

    A task given `eta=<callable returning seconds left>` shows that instead of the rate-based ETA
    (the grid: its steps and evaluations at their measured costs, `wallclock.GridClock`).
    """
    if console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.text import Text

        class Remaining(TimeRemainingColumn):
            def render(self, task):
                eta = task.fields.get("eta")
                return super().render(task) if eta is None else Text(clock(eta()), style="progress.remaining")

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), Remaining()]
        return Progress(*columns, *([TextColumn("{task.fields[info]}")] if with_info else []), console=console)
    return PlainProgress(console.file)


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


@dataclass
class _Task:
    description: str
    total: float
    completed: float = 0.0
    info: str = ""
    visible: bool = True
    started: float = field(default_factory=lambda: time.monotonic())
    start_completed: float = 0.0  # what was already done when timing started (a resumed run's steps)
    # The rate behind the ETA counts from the last update before progress began: a grid's seed-model
    # evaluation (minutes, no steps) must not make its step ETA read 17 hours.
    rate_from: float = field(default_factory=lambda: time.monotonic())
    eta: Callable[[], float] | None = None  # seconds left, when the caller knows better than the rate

    def line(self, now: float) -> str:
        total = max(self.total, 1)
        text = f"{self.description} {self.completed:g}/{self.total:g} {100 * self.completed / total:.0f}% {clock(now - self.started)}"
        done_here = self.completed - self.start_completed
        if self.eta is not None:
            text += f" ETA {clock(self.eta())}"
        elif 0 < done_here and self.completed < self.total:
            text += f" ETA {clock((now - self.rate_from) / done_here * (self.total - self.completed))}"
        return text + (f" {self.info}" if self.info else "")


class PlainProgress:
    """rich.progress.Progress's calls, printed as throttled plain lines (module docstring)."""

    def __init__(self, stream: TextIO | None = None, interval_s: float | None = None, heartbeat_s: float | None = None):
        self.stream = stream or sys.stderr
        self.interval_s = float(os.environ.get("SEMIBENCH_PROGRESS_SECONDS", 10)) if interval_s is None else interval_s
        self.heartbeat_s = 6 * self.interval_s if heartbeat_s is None else heartbeat_s
        self.tasks: dict[int, _Task] = {}
        self.last_print = float("-inf")
        self._lock = threading.Lock()  # the heartbeat thread prints too
        self._stop = threading.Event()

    def __enter__(self) -> "PlainProgress":
        if self.heartbeat_s > 0:
            threading.Thread(target=self._heartbeat, name="progress-heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if any(t.visible and t.completed < t.total for t in self.tasks.values()):
            self._print()  # where it stopped

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s / 4):
            if time.monotonic() - self.last_print >= self.heartbeat_s:
                self._print()

    def add_task(self, description: str, total: float | None = 100.0, completed: float = 0, visible: bool = True, **fields: Any) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = _Task(description, total or 1.0, completed, str(fields.get("info", "")), visible, start_completed=completed, eta=fields.get("eta"))
        return task_id

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None, advance: float | None = None,
               description: str | None = None, visible: bool | None = None, **fields: Any) -> None:
        task = self.tasks[task_id]
        now = time.monotonic()
        if description is not None and description != task.description:  # a new job in this slot: its clock restarts
            task.description, task.started, task.rate_from = description, now, now
            task.start_completed = completed if completed is not None else 0.0
        if total is not None:
            task.total = total
        if completed is not None:
            if completed < task.completed:  # reset for the next job
                task.started, task.rate_from, task.start_completed = now, now, completed
            task.completed = completed
        if advance:
            task.completed += advance
        if task.completed == task.start_completed:  # still no progress: the rate starts from here
            task.rate_from = now
        if visible is not None:
            task.visible = visible
        if "info" in fields:
            task.info = str(fields["info"])
        finished = task.visible and task.completed >= task.total and (completed is not None or advance)
        if finished or now - self.last_print >= self.interval_s:
            self._print()

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _print(self) -> None:
        with self._lock:
            now = time.monotonic()
            parts = [t.line(now) for t in list(self.tasks.values()) if t.visible]
            if parts:
                print(f"[{time.strftime('%H:%M:%S')}] " + " | ".join(parts), file=self.stream, flush=True)
            self.last_print = now

"""Where a grid's wall clock went: engine starts, generation, reward, training steps, the runs' other
time, and evaluation per benchmark. The grid prints it at its end, so the slow phase is measured, not guessed."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from semibench.runs import RunDir

STEP_PHASES = ("time/sync", "time/generate", "time/reward", "time/train")


@dataclass
class WallSplit:
    """Where a grid's wall clock went, in seconds: engine starts, generation, reward, training steps,
    the training runs' other time (model loading, checkpoints), and evaluation per benchmark."""

    started: float = field(default_factory=time.time)  # wall-clock epoch: results dated before it are not this grid's
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(0.0, seconds)

    def add_training(self, run: RunDir, first_step: int, wall_s: float) -> None:
        """A train() call: its steps' phases from metrics.jsonl, the rest of its wall as setup."""
        rows = [r for r in run.read_metrics() if r.get("step", 0) >= first_step]
        for key in STEP_PHASES:
            self.add(key.removeprefix("time/"), sum(r.get(key, 0.0) for r in rows))
        self.add("training setup and checkpoints", wall_s - sum(r.get(k, 0.0) for r in rows for k in STEP_PHASES))

    def add_evaluations(self, results, wall_s: float) -> None:
        """Results this grid produced (dated after it started), per benchmark; their engine starts apart."""
        fresh = [r for r in results if datetime.datetime.fromisoformat(r["date"]).timestamp() >= self.started - 1]
        engine = sum(r.get("engine_start_seconds") or 0.0 for r in fresh)
        self.add("eval engine start", engine)
        for r in fresh:
            self.add(f"eval {r['benchmark']}", r["seconds"] - (r.get("engine_start_seconds") or 0.0))
        self.add("eval other (loading, judges)", wall_s - sum(r["seconds"] for r in fresh))

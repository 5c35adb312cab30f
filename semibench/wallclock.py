"""Where a grid's wall clock went, and how much is left.

`WallSplit`: engine starts, generation, reward, training steps, the runs' other time, and evaluation per
benchmark; the grid prints it at its end, so the slow phase is measured, not guessed. `GridClock`: the
grid's time left, each remaining step and evaluation at the measured cost of its kind (the progress ETA).
"""

from __future__ import annotations

import datetime
import statistics
import time
from dataclasses import dataclass, field

from semibench.runs import RunDir

STEP_PHASES = ("time/sync", "time/generate", "time/reward", "time/train")


def made_since(results, epoch: float) -> list[dict]:
    """The evaluation results dated after `epoch` (made by this grid, not found on disk)."""
    return [r for r in results if datetime.datetime.fromisoformat(r["date"]).timestamp() >= epoch - 1]


@dataclass
class WallSplit:
    """Where a grid's wall clock went, in seconds: engine starts, generation, reward, training steps,
    the training runs' other time (model loading, checkpoints), and evaluation per benchmark."""

    started: float = field(default_factory=time.time)  # wall-clock epoch: results dated before it are not this grid's
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(0.0, seconds)

    def add_training(self, run: RunDir, first_step: int, wall_s: float) -> float:
        """A train() call: its steps' phases from metrics.jsonl, the rest of its wall as setup (returned)."""
        rows = [r for r in run.read_metrics() if r.get("step", 0) >= first_step]
        for key in STEP_PHASES:
            self.add(key.removeprefix("time/"), sum(r.get(key, 0.0) for r in rows))
        setup_s = wall_s - sum(r.get(k, 0.0) for r in rows for k in STEP_PHASES)
        self.add("training setup and checkpoints", setup_s)
        return max(0.0, setup_s)

    def add_evaluations(self, results, wall_s: float) -> None:
        """Results this grid produced (dated after it started), per benchmark; their engine starts apart."""
        fresh = made_since(results, self.started)
        engine = sum(r.get("engine_start_seconds") or 0.0 for r in fresh)
        self.add("eval engine start", engine)
        for r in fresh:
            self.add(f"eval {r['benchmark']}", r["seconds"] - (r.get("engine_start_seconds") or 0.0))
        self.add("eval other (loading, judges)", wall_s - sum(r["seconds"] for r in fresh))


@dataclass
class RunWork:
    """One run of a grid as its time left is reckoned: its steps, then its evaluations."""

    arm: str  # runs of one arm step at the same cost (`grid.arm_of`)
    steps: int
    evaluations: tuple[str, ...]  # one benchmark name per evaluation, validation checkpoints included
    modelled_step_s: float  # the preset's model of a step, for an arm nothing has measured yet
    steps_done: int = 0
    evaluated: bool = False


@dataclass
class GridClock:
    """Seconds left in a grid: every unfinished run's steps and evaluations, each at its measured cost.

    A rate over steps alone read low: the later arms step slower (online generation is a small call per
    step), and the last run's evaluation comes after its last step. Here a step costs the mean step of
    its arm's finished runs; an arm without one costs its model times the median measured/modelled ratio
    of the arms that have; an evaluation costs the median measured evaluation of its benchmark (0 until one
    is measured); a run not started yet also pays the median measured setup (loading, checkpoints).
    """

    runs: list[RunWork]
    step_s: dict[str, list[float]] = field(default_factory=dict)  # arm -> measured step seconds
    eval_s: dict[str, list[float]] = field(default_factory=dict)  # benchmark -> measured evaluation seconds
    setup_s: list[float] = field(default_factory=list)  # per training run: its wall less its steps
    running_steps: list[float] = field(default_factory=list)  # the training run's steps so far
    evaluating: int | None = None  # the run whose evaluation is running, since `evaluating_since` (monotonic)
    evaluating_since: float = 0.0

    def stepped(self, run: int, seconds: float) -> None:
        self.runs[run].steps_done += 1
        self.running_steps.append(seconds)

    def trained(self, run: int, setup_seconds: float) -> None:
        """A run's training is over: its steps now measure its arm (not before: a window's generate call
        lands on its first step, so a run's first steps say little of its mean)."""
        self.runs[run].steps_done = self.runs[run].steps
        self.step_s.setdefault(self.runs[run].arm, []).extend(self.running_steps)
        self.running_steps = []
        self.setup_s.append(max(0.0, setup_seconds))

    def start_evaluating(self, run: int, now: float) -> None:
        self.runs[run].steps_done = self.runs[run].steps
        self.evaluating, self.evaluating_since = run, now

    def measured(self, results) -> None:
        """Evaluation results (their JSON dicts): each benchmark's seconds, its engine start apart."""
        for r in results:
            self.eval_s.setdefault(r["benchmark"], []).append(r["seconds"] - (r.get("engine_start_seconds") or 0.0))

    def evaluated(self, run: int) -> None:
        self.runs[run].evaluated, self.evaluating = True, None

    def step_cost(self, run: RunWork) -> float:
        # The mean, not the median: a window's one generate call lands on its first step, and the
        # steps after it generate nothing (offline: 1 step in 16 holds all the generation).
        if self.step_s.get(run.arm):
            return statistics.fmean(self.step_s[run.arm])
        modelled = {r.arm: r.modelled_step_s for r in self.runs}
        # list(): the progress view's thread asks while the grid's thread records (a copy is atomic under the GIL)
        ratios = [statistics.fmean(s) / modelled[arm] for arm, s in list(self.step_s.items()) if s and modelled.get(arm)]
        return run.modelled_step_s * (statistics.median(ratios) if ratios else 1.0)

    def eval_cost(self, run: RunWork) -> float:
        return sum(statistics.median(self.eval_s[b]) for b in run.evaluations if self.eval_s.get(b))

    def seconds_left(self, now: float) -> float:
        setup = statistics.median(self.setup_s) if self.setup_s else 0.0
        left = 0.0
        for i, run in enumerate(self.runs):
            if run.evaluated:
                continue
            left += (run.steps - run.steps_done) * self.step_cost(run) + (setup if run.steps_done == 0 else 0.0)
            spent = now - self.evaluating_since if i == self.evaluating else 0.0
            left += max(0.0, self.eval_cost(run) - spent)
        return left

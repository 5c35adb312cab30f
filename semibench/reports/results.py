"""The read side of the run-directory contract: what plots, tables and the leaderboard see of a runs tree.

They read files only (config.json, metrics.jsonl, eval/<checkpoint>/<bench>.json), never trainer
internals, so they work on runs made by any version, machine or launcher. Only finished artefacts
are read: a run's metrics are read whether or not it is DONE (a plot of a live run is useful); an
eval JSON counts once it exists (it is written atomically), and tables and leaderboards take a run's
scores at one checkpoint, `Run.report_step`: the one `semibench select` recorded in selected.json (the
paper picks by a validation score), else the final one (`train.steps`).

A "seed" row is a directory holding `seed.json` instead of `config.json`: the base model evaluated
before any training (the tables' first row).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semibench.config import ConfigError, RunConfig, regime_label
from semibench.runs import RunDir, atomic_write_json, is_done

SEED_FILE = "seed.json"
STEP_DIR = re.compile(r"step_(\d+)$")


# What rewarded a run's IF prompts, said under every table that has such runs: a verifiable reward is
# not the paper's reward model, and a reader comparing with the paper must see which one trained.
IF_REWARD_NOTES = {
    "constraints": "verifiable IFEval-type constraints on synthetic requests, checked by lm-eval's IFEval code (not the paper's "
                   "non-verifiable reward model, Athene-RM-8B, which `--preset paper` uses; `--set reward.if_reward=judge` trains on a judge)",
    "judge": "an LLM judge scoring each answer (`reward.judge_model`; not the paper's Athene-RM-8B)",
    "reward_model": "a reward model (`reward.reward_model`; the paper's is Athene-RM-8B)",
}


@dataclass
class Run:
    path: Path
    config: RunConfig | None  # None for a seed row
    base_model: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    evals: dict[int, dict[str, dict]] = field(default_factory=dict)  # checkpoint step -> result key -> eval JSON
    done: bool = False
    selected: dict[str, Any] | None = None  # selected.json: {"step", "by", "score"} when a validation score picked the checkpoint

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def is_seed(self) -> bool:
        return self.config is None

    @property
    def report_step(self) -> int:
        """The checkpoint tables and leaderboards show: the selected one, else the final one (0: a seed row)."""
        if self.config is None:
            return 0
        return self.selected["step"] if self.selected else self.config.train.steps

    @property
    def regime(self) -> str:
        return "seed" if self.config is None else regime_label(self.config.train.sync_every)

    def updates(self, until_step: int | None = None) -> tuple[int, int]:
        """(optimizer updates taken, steps skipped) before `until_step`: a step with no valid pair or
        group takes no update but counts as a step, so two runs of N steps can differ in updates."""
        rows = [m for m in self.metrics if until_step is None or m["step"] < until_step]
        skipped = sum(1 for m in rows if m.get("skipped"))
        return len(rows) - skipped, skipped


def result_key(result: dict) -> str:
    """Column identity of an eval result: the benchmark, plus the judge for judged ones.

    Scores from different judges must never share a column, so the judge is part of the key.
    """
    judge = result.get("judge")
    return f"{result['benchmark']}@{judge}" if judge else result["benchmark"]


def read_evals(eval_root: Path) -> dict[int, dict[str, dict]]:
    """eval/step_N/*.json -> {N: {result_key: result}}; a seed row's eval/*.json is step 0."""
    out: dict[int, dict[str, dict]] = {}
    if not eval_root.is_dir():
        return out
    for path in sorted(eval_root.rglob("*.json")):
        match = STEP_DIR.match(path.parent.name)
        step = int(match.group(1)) if match else 0
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as exc:  # written atomically by semibench: someone else's file, or edited
            raise ConfigError(f"{path} is not valid JSON ({exc}); delete it and re-run `semibench eval` on that checkpoint") from None
        if "benchmark" in result and "score" in result:
            out.setdefault(step, {})[result_key(result)] = result
    return out


def read_run(path: Path) -> Run | None:
    """One run (or seed row) directory; None if it is neither."""
    path = Path(path)
    run = RunDir.at(path)
    if run.config_path.exists():
        cfg = run.read_config()
        selected = json.loads(run.selection_path.read_text()) if run.selection_path.is_file() else None
        return Run(path, cfg, cfg.model.name, run.read_metrics(), read_evals(run.evals), is_done(path), selected)
    if (path / SEED_FILE).exists():
        seed = json.loads((path / SEED_FILE).read_text())
        return Run(path, None, seed["model"], [], read_evals(run.evals), True)
    return None


def read_runs(root: Path) -> list[Run]:
    """Every run and seed row directly under `root`, sorted by directory name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no runs directory {root}; pass the --out of `semibench train` or `semibench grid`")
    runs = [read_run(p) for p in sorted(root.iterdir()) if p.is_dir()]
    return [r for r in runs if r is not None]


@dataclass(frozen=True)
class Selection:
    run: Run
    key: str  # the result key that picked (a benchmark, or benchmark@judge)
    results: dict[int, dict]  # step -> that benchmark's eval JSON, every evaluated checkpoint
    best_step: int

    @property
    def checkpoint(self) -> Path:
        return RunDir.at(self.run.path).checkpoint(self.best_step)

    def record(self) -> Path:
        """Write runs/<id>/selected.json, so tables and leaderboards show this checkpoint and say why."""
        path = RunDir.at(self.run.path).selection_path
        atomic_write_json(path, {"step": self.best_step, "by": self.key, "score": self.results[self.best_step]["score"]})
        return path


def select_checkpoint(run_dir: Path, by: str) -> Selection:
    """The run's evaluated checkpoint with the highest `by` score: how the paper picked its checkpoints
    (math by NuminaMath validation accuracy, chat by length-normalised reward on 470 WildChat prompts).

    Every score semibench reports is higher-is-better; ties go to the earlier checkpoint. Checkpoints
    evaluated under different settings (sampling, data, reward model) are not compared.
    """
    run = read_run(run_dir)
    if run is None or run.is_seed:
        raise ConfigError(f"{run_dir} is not a run directory (no config.json); pass runs/<id>")
    keys = sorted({k for evals in run.evals.values() for k in evals if k == by or k.startswith(by + "@")})
    if not keys:
        raise ConfigError(f"no checkpoint of {run_dir} is evaluated on {by}; run `semibench eval {run_dir}/checkpoints/step_N "
                          f"--benchmarks {by}` on each checkpoint first")
    if len(keys) > 1:
        raise ConfigError(f"{by} was judged by several judges; pass --by one of {', '.join(keys)}")
    key = keys[0]
    results = {step: evals[key] for step, evals in sorted(run.evals.items()) if key in evals and evals[key]["score"] is not None}
    if not results:
        raise ConfigError(f"no checkpoint of {run_dir} has a {key} score")
    records = [r.get("settings") or {} for r in results.values()]
    differ = sorted({k for r in records for k in r if any(other.get(k) != r.get(k) for other in records)})
    if differ:
        raise ConfigError(f"the checkpoints of {run_dir} were evaluated on {key} with different {', '.join(differ)}; "
                          "re-evaluate them alike before selecting")
    best = max(results, key=lambda step: (results[step]["score"], -step))
    return Selection(run, key, results, best)

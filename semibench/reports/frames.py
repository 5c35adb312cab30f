"""A runs tree as pandas DataFrames: the Python API (`import semibench`; docs/api.md).

    semibench.read_runs(path)      one row per run: run_id, task, objective, s, regime, seed, preset, status, commit, ...
    semibench.read_metrics(path)   tidy per-step metrics: run_id, step, metric, value, wall_s, tokens
    semibench.read_evals(path)     per checkpoint and benchmark: score, se_items, ..., the seed model as step 0, `selected`
    semibench.compare(a, b)        `semibench compare A B --json`, one row per benchmark
    semibench.verdicts(path)       `semibench verdicts PATH --json`, one row per comparison

Each reads the files the CLI writes through the readers the CLI's own reports use (`results.read_runs`,
`Run.report_step`, `compare.compare_evals`, `verdicts.verdict_rows`), so a notebook sees the numbers the
tables and figures show. They only read: nothing under `path` is written or changed. Each takes its path
explicitly; none falls back to the current directory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from semibench.reports.compare import compare_evals
from semibench.reports.plots import TIME_KEYS, cumulative_before, validation_band
from semibench.reports.results import Run, read_runs as _read_runs
from semibench.reports.verdicts import COLUMNS as VERDICT_COLUMNS, verdict_rows
from semibench.runs import RunDir

RUN_COLUMNS = ["run_id", "task", "objective", "s", "regime", "seed", "preset", "status", "commit", "model", "steps", "steps_done", "path"]
METRIC_COLUMNS = ["run_id", "step", "metric", "value", "wall_s", "tokens"]
EVAL_COLUMNS = ["run_id", "step", "benchmark", "score", "se_items", "stderr", "ci_low", "ci_high", "n", "samples_per_prompt", "judge",
                "primary_metric", "selected", "selected_by", "seed_row", "wall_s", "tokens", "date", "commit"]
TOKENS_KEY = "generated_tokens"


def read_runs(path: str | Path) -> pd.DataFrame:
    """One row per trained run under `path` (a runs root; seed rows are in `read_evals`, at step 0).

    `s` is the sync interval as a float (inf: offline), so it sorts; `status` is done or unfinished; `commit`
    is the git commit of the code that finished the run (summary.json; None for unfinished runs and runs
    from before it was recorded); `steps_done` counts metrics rows."""
    rows = []
    for run in _trained(path):
        cfg = run.config
        summary = RunDir.at(run.path).summary_path
        rows.append({"run_id": run.id, "task": cfg.task.name, "objective": cfg.loss.objective,
                     "s": math.inf if cfg.train.sync_every is None else float(cfg.train.sync_every), "regime": run.regime,
                     "seed": cfg.train.seed, "preset": cfg.preset, "status": "done" if run.done else "unfinished",
                     "commit": json.loads(summary.read_text()).get("git_commit") if summary.is_file() else None,
                     "model": cfg.model.name, "steps": cfg.train.steps, "steps_done": len(run.metrics), "path": str(run.path)})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Every numeric metrics.jsonl value of every run, one row each (run_id, step, metric, value), with the
    training cost up to the end of that step: `wall_s` (time/sync + generate + reward + train summed over
    steps <= step; evaluation excluded) and `tokens` (generated_tokens summed likewise; NaN where not logged)."""
    frames = []
    for run in _trained(path):
        if not run.metrics:
            continue
        wide = pd.DataFrame(run.metrics).sort_values("step", kind="stable")
        wide["wall_s"] = wide.reindex(columns=TIME_KEYS).sum(axis=1, skipna=False).cumsum()
        wide["tokens"] = wide[TOKENS_KEY].cumsum() if TOKENS_KEY in wide else float("nan")
        values = [c for c in wide.columns if c not in ("step", "wall_s", "tokens") and pd.api.types.is_numeric_dtype(wide[c])]
        tidy = wide.melt(id_vars=["step", "wall_s", "tokens"], value_vars=values, var_name="metric").dropna(subset=["value"])
        frames.append(tidy.assign(run_id=run.id))
    if not frames:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    out = pd.concat(frames, ignore_index=True)[METRIC_COLUMNS]
    return out.sort_values(["run_id", "metric", "step"], kind="stable", ignore_index=True)


def read_evals(path: str | Path) -> pd.DataFrame:
    """One row per run, evaluated checkpoint and benchmark (a judged one's `benchmark` carries its judge, as
    the tables' columns: `alpaca_eval@openai:gpt-4o`). The run's seed model (the grid's seed row of its base
    model) is its step 0, `seed_row` True. `selected` marks the checkpoint the tables and leaderboard show
    (`semibench select`'s choice, `selected_by` its benchmark; else the final one, `selected_by` "final").
    `ci_low`/`ci_high`: the 95% band the cost figure draws; `wall_s`/`tokens`: the training cost before
    the checkpoint (metrics rows with step < its step), as that figure's x axes."""
    runs = _read_runs(_root(path))
    seeds = {r.base_model: r.evals.get(0, {}) for r in runs if r.is_seed}
    rows = []
    for run in (r for r in runs if not r.is_seed):
        points = {step: (results, False) for step, results in run.evals.items()}
        if 0 not in points and seeds.get(run.base_model):
            points[0] = (seeds[run.base_model], True)
        by_step = {row["step"]: row for row in run.metrics}
        for step, (results, seed_row) in sorted(points.items()):
            for key, result in sorted(results.items()):
                rows.append(_eval_row(run, step, key, result, seed_row, by_step))
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def compare(a: str | Path, b: str | Path, benchmarks: list[str] | None = None) -> pd.DataFrame:
    """`semibench compare A B`: A and B paired item by item, one row per benchmark (delta, ci_lower, ci_upper,
    p_value, mde, verdict, ...). A and B: eval, run or checkpoint directories, as the CLI takes them."""
    return pd.DataFrame(compare_evals(Path(a), Path(b), benchmarks))


def verdicts(path: str | Path) -> pd.DataFrame:
    """`semibench verdicts PATH`: every comparison the grid was built for, paired, seed-aware and Holm-adjusted
    per (task, benchmark); the CSV's columns first."""
    rows = verdict_rows(_root(path))
    frame = pd.DataFrame(rows)
    return frame[[c for c in VERDICT_COLUMNS if c in frame] + [c for c in frame if c not in VERDICT_COLUMNS]] if rows else pd.DataFrame(columns=VERDICT_COLUMNS)


def _root(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no runs directory {root}; pass the --out of `semibench train` or `semibench grid`")
    return root


def _trained(path: str | Path) -> list[Run]:
    return [r for r in _read_runs(_root(path)) if not r.is_seed]


def _eval_row(run: Run, step: int, key: str, result: dict, seed_row: bool, by_step: dict[int, dict]) -> dict:
    low, high = validation_band(result) if result.get("score") is not None else (None, None)
    selected = step == run.report_step
    return {"run_id": run.id, "step": step, "benchmark": key, "score": result.get("score"), "se_items": result.get("se_items"),
            "stderr": result.get("stderr"), "ci_low": low, "ci_high": high, "n": result.get("n"),
            "samples_per_prompt": result.get("samples_per_prompt"), "judge": result.get("judge"), "primary_metric": result.get("primary_metric"),
            "selected": selected, "selected_by": (run.selected["by"] if run.selected else "final") if selected else None, "seed_row": seed_row,
            "wall_s": cumulative_before(by_step, step, TIME_KEYS), "tokens": cumulative_before(by_step, step, [TOKENS_KEY]),
            "date": result.get("date"), "commit": (result.get("versions") or {}).get("git_commit")}

"""The comparisons a grid was built to make, each paired and seed-aware: `runs/tables/verdicts.md` + `.csv`.

For every benchmark the runs scored: each regime against the seed model, the regimes of one
objective against each other, and online DPO against GRPO, within a task. Runs that differ only in
`train.seed` form one arm: their per-item scores stack to [training seeds, items, samples] and
`semibench.stats.compare_scores` bootstraps seeds as well as items. Reads eval files only.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from semibench.config import to_json
from semibench.reports.compare import benchmarks_in, item_scores
from semibench.reports.results import Run, read_runs
from semibench.reports.tables import method_label
from semibench.runs import RunDir, atomic_write_text
from semibench.stats import compare_scores, verdict

COLUMNS = ["task", "benchmark", "a", "b", "delta", "ci_lower", "ci_upper", "p_value", "mde", "n_items", "seeds_a", "seeds_b", "verdict", "note"]


@dataclass
class Arm:
    label: str
    task: str  # "" for the seed model
    objective: str
    sync_every: int | None
    eval_dirs: list[Path]  # one per training seed


def arms(runs: list[Run]) -> list[Arm]:
    """Runs grouped by their config without the training seed; the seed model is its own arm."""
    groups: dict[str, Arm] = {}
    for run in runs:
        if run.is_seed:
            if (run.path / "eval").is_dir():  # a seed row's eval dir holds the results themselves
                groups[run.id] = Arm(method_label(run), "", "", None, [run.path / "eval"])
            continue
        final = RunDir.at(run.path).eval_dir(run.report_step)  # the checkpoint the tables show
        if not run.done or not final.is_dir():
            continue
        cfg = run.config
        key = to_json(replace(cfg, train=replace(cfg.train, seed=0)))
        arm = groups.setdefault(key, Arm(method_label(run), cfg.task.name, cfg.loss.objective, cfg.train.sync_every, []))
        arm.eval_dirs.append(final)
    return list(groups.values())


def planned_pairs(all_arms: list[Arm]) -> list[tuple[Arm, Arm]]:
    """(A, B) pairs, A the more online or the trained side."""
    seeds = [a for a in all_arms if not a.task]
    trained = [a for a in all_arms if a.task]
    pairs = [(a, s) for a in trained for s in seeds]
    order = lambda a: -1e18 if a.sync_every is None else -a.sync_every  # noqa: E731  offline first, online last
    for x, y in itertools.combinations(trained, 2):
        if x.task != y.task:
            continue
        if x.objective == y.objective:
            pairs.append((x, y) if order(x) > order(y) else (y, x))
        elif {x.objective, y.objective} == {"dpo", "grpo"} and x.sync_every == y.sync_every == 1:
            pairs.append((x, y) if x.objective == "grpo" else (y, x))
    return pairs


def _stacked(arm: Arm, bench: str) -> dict[str, list[list[float]]] | None:
    """Item identity -> per-seed sample scores, when every seed of the arm scored the same items."""
    per_seed = []
    for eval_dir in arm.eval_dirs:
        if not (eval_dir / f"{bench}.samples.jsonl").is_file():
            return None
        per_seed.append(item_scores(eval_dir, bench))
    keys = per_seed[0].keys()
    if any(s.keys() != keys for s in per_seed):
        return None
    return {k: [s[k] for s in per_seed] for k in keys}


def compare_arms(a: Arm, b: Arm, bench: str, seed: int = 0) -> dict[str, Any] | None:
    scores_a, scores_b = _stacked(a, bench), _stacked(b, bench)
    if scores_a is None or scores_b is None:
        return None
    row = {"task": a.task or b.task, "benchmark": bench, "a": a.label, "b": b.label, "seeds_a": len(a.eval_dirs), "seeds_b": len(b.eval_dirs)}
    if scores_a.keys() != scores_b.keys():
        return row | {"verdict": "not compared", "note": "the two sides scored different items"}
    keys = sorted(scores_a)
    # {item: [seeds][samples]} -> [seeds, items, samples], items in one order on both sides
    a_scores, b_scores = (np.array([scores[k] for k in keys], dtype=float).transpose(1, 0, 2) for scores in (scores_a, scores_b))
    result = compare_scores(a_scores, b_scores, seed=seed)
    note = "1 training seed: seed-to-seed variance not measured" if max(row["seeds_a"], row["seeds_b"]) == 1 else result["method"]
    return row | {k: result[k] for k in ("delta", "ci_lower", "ci_upper", "p_value", "mde", "n_items")} | {"verdict": verdict(result, "A", "B"), "note": note}


def verdict_rows(runs_root: Path, seed: int = 0) -> list[dict[str, Any]]:
    all_arms = arms(read_runs(runs_root))
    rows = []
    for a, b in planned_pairs(all_arms):
        benches = sorted({bench for d in a.eval_dirs + b.eval_dirs for bench in benchmarks_in(d)})
        for bench in benches:
            row = compare_arms(a, b, bench, seed)
            if row is not None:
                rows.append(row)
    return sorted(rows, key=lambda r: (r["task"], r["benchmark"]))  # stable: the planned order within a benchmark


def _fmt(value: Any, spec: str = "+.2f") -> str:
    return "" if value is None else format(value, spec) if isinstance(value, float) else str(value)


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["### Verdicts: paired, per item", "",
             "| task | benchmark | A | B | A − B | 95% CI | p | MDE | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"[{_fmt(r.get('ci_lower'))}, {_fmt(r.get('ci_upper'))}]" if r.get("ci_lower") is not None else "–"
        lines.append(f"| {r['task']} | {r['benchmark']} | {r['a']} | {r['b']} | {_fmt(r.get('delta'))} | {ci} | "
                     f"{_fmt(r.get('p_value'), '.3g')} | {_fmt(r.get('mde'), '.2f')} | {r['verdict']} |")
    notes = sorted({r["note"] for r in rows if r.get("note")})
    lines += ["", "Points (x 100). 95% CI: paired bootstrap over items (samples averaged per item first; with several training "
              "seeds, items then seeds); p: paired t-test (bootstrap with several seeds); MDE: minimum detectable effect, 80% power, "
              "alpha 0.05. A verdict needs the CI to exclude 0. " + " ".join(f"Note: {n}." for n in notes)]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: (f"{r[c]:.4f}" if isinstance(r.get(c), float) else r.get(c, "")) for c in COLUMNS})
    return buffer.getvalue()


def write_verdicts(runs_root: Path, out_dir: Path) -> dict[str, Path]:
    rows = verdict_rows(runs_root)
    if not rows:
        return {}
    atomic_write_text(Path(out_dir) / "verdicts.md", to_markdown(rows))
    atomic_write_text(Path(out_dir) / "verdicts.csv", to_csv(rows))
    return {"verdicts": Path(out_dir) / "verdicts.md"}

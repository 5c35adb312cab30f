"""Where a grid's signal was spent: per arm, how often the reward gave the objective something to learn
from (`frac_valid_prompts`) and how far training moved each benchmark from the seed model.

    runs/tables/signal.md + .csv, printed at the end of `semibench grid`

`frac_valid_prompts` is the share of a step's prompts whose samples did not all score alike (DPO
needs a pair, GRPO a non-zero advantage), averaged over the arm's steps and training seeds, and per
prompt kind on the mixed task. "Trained − seed" is the mean over the arm's training seeds of its
reported checkpoint's score minus the seed model's, with the SD over those seeds beside it: a
description, not a test (the verdicts test it, seed-aware and Holm-adjusted).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from statistics import fmean, stdev

from semibench.reports.results import Run, read_runs
from semibench.reports.tables import arm_key, method_label
from semibench.runs import atomic_write_text

FRAC_KEYS = ("frac_valid_prompts", "frac_valid_prompts/math", "frac_valid_prompts/if")


def arm_signal(runs: list[Run]) -> tuple[list[str], list[dict]]:
    """(benchmarks, one row per trained arm): label, task, seeds, mean frac_valid_prompts (overall and per
    kind), and per benchmark the trained − seed deltas of its seeds."""
    seed_scores = {r.base_model: r.evals.get(0, {}) for r in runs if r.is_seed}
    arms: dict[str, list[Run]] = {}
    for run in runs:
        if not run.is_seed and run.metrics:
            arms.setdefault(arm_key(run), []).append(run)
    benches = sorted({b for members in arms.values() for r in members for b in r.evals.get(r.report_step, {})
                      if b in seed_scores.get(r.base_model, {})})
    rows = []
    for members in arms.values():
        first = members[0]
        row = {"arm": method_label(first), "task": first.config.task.name, "seeds": len(members)}
        for key in FRAC_KEYS:
            per_run = [fmean(m[key] for m in r.metrics if key in m) for r in members if any(key in m for m in r.metrics)]
            row[key] = fmean(per_run) if per_run else None
        for bench in benches:
            row[bench] = [r.evals[r.report_step][bench]["score"] - seed_scores[r.base_model][bench]["score"]
                          for r in members if bench in r.evals.get(r.report_step, {})]
        rows.append(row)
    return benches, rows


def _delta_cell(deltas: list[float]) -> str:
    if not deltas:
        return "–"
    return f"{fmean(deltas):+.1f} (SD {stdev(deltas):.1f})" if len(deltas) > 1 else f"{deltas[0]:+.1f} (1 seed)"


def to_markdown(benches: list[str], rows: list[dict]) -> str:
    kinds = [k for k in FRAC_KEYS[1:] if any(r[k] is not None for r in rows)]
    headers = ["arm", "task", "seeds", "frac_valid_prompts", *kinds, *(f"{b}: trained − seed" for b in benches)]
    lines = ["### Signal per arm", "", "| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
    for r in rows:
        fracs = ["–" if r[k] is None else f"{r[k]:.2f}" for k in ("frac_valid_prompts", *kinds)]
        lines.append("| " + " | ".join([r["arm"], r["task"], str(r["seeds"]), *fracs, *(_delta_cell(r[b]) for b in benches)]) + " |")
    note = ("frac_valid_prompts: the share of a step's prompts whose samples did not all score alike (a DPO pair or a non-zero GRPO "
            "advantage), mean over steps and training seeds. Trained − seed: points, mean over the arm's training seeds of its "
            "reported checkpoint minus the seed model, (SD over those seeds); a description: the verdicts table tests it.")
    return "\n".join(lines) + "\n\n" + note + "\n"


def to_csv(benches: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["arm", "task", "seeds", *FRAC_KEYS, *(f"{b}_delta_mean" for b in benches), *(f"{b}_delta_sd" for b in benches)])
    for r in rows:
        fracs = ["" if r[k] is None else f"{r[k]:.4f}" for k in FRAC_KEYS]
        means = ["" if not r[b] else f"{fmean(r[b]):.4f}" for b in benches]
        sds = ["" if len(r[b]) < 2 else f"{stdev(r[b]):.4f}" for b in benches]
        writer.writerow([r["arm"], r["task"], r["seeds"], *fracs, *means, *sds])
    return buffer.getvalue()


def write_signal(runs_root: Path, out_dir: Path) -> Path | None:
    """runs/tables/signal.md and .csv; None when no trained run has metrics yet."""
    benches, rows = arm_signal(read_runs(runs_root))
    if not rows:
        return None
    atomic_write_text(Path(out_dir) / "signal.csv", to_csv(benches, rows))
    atomic_write_text(Path(out_dir) / "signal.md", to_markdown(benches, rows))
    return Path(out_dir) / "signal.md"

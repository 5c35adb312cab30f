"""Eval JSON across runs -> deterministic leaderboard CSVs (one per preset) and their schema README.

Deterministic means byte-identical output for the same runs: a fixed column order (identity
columns, then each benchmark's score columns in BENCHMARK_ORDER, then provenance), rows sorted
by a fixed key, every number printed with a fixed number of decimals, and no wall-clock value
(the `date` is the evaluation's own date, read from its JSON).

A row is one final checkpoint under one set of eval sampling settings. Judged benchmarks get one
column group per judge (`alpaca_eval@local:smollm2`), so scores from different judges never
share a column.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from semibench.benchmarks import BENCHMARKS
from semibench.reports.results import IF_REWARD_NOTES, Run, read_runs
from semibench.runs import atomic_write_text

IDENTITY = ["run_id", "base_model", "preset", "task", "objective", "sync_every", "regime", "ref_sync", "steps", "num_updates", "skipped_steps", "seed", "checkpoint_step", "selected_by",
            "if_reward"]
SAMPLING = ["eval_samples_per_prompt", "eval_temperature", "eval_top_p", "eval_max_new_tokens", "eval_limit"]
PROVENANCE = ["judges", "semibench_version", "git_commit", "date"]
SCORE_SUFFIXES = ["", "_se_items", "_sd_seeds", "_stderr", "_ci_lower", "_ci_upper"]
BENCHMARK_ORDER = list(BENCHMARKS)
REGIME_ORDER = {"seed": 0, "offline": 1, "semi-online": 2, "online": 3}
DECIMALS = 2

SCHEMA = {
    "run_id": "run directory name (hash of the resolved config; `seed-<model>` for the untrained base model)",
    "base_model": "the model training started from (`model.name`)",
    "preset": "config preset of the run",
    "task": "training task: math | if | mixed (empty for the seed row)",
    "objective": "dpo | grpo | group_dpo | group_dpo_grpo",
    "sync_every": "generator sync interval s in optimizer steps (`inf` = never)",
    "regime": "label of sync_every: offline (inf), semi-online (s > 1), online (s = 1); `seed` = no training",
    "ref_sync": "whether the reference model was re-synced with the generator",
    "steps": "training steps of the run",
    "num_updates": "optimizer updates taken up to the evaluated checkpoint",
    "skipped_steps": "steps up to the evaluated checkpoint with no valid pair or group, so no update",
    "seed": "training seed",
    "checkpoint_step": "the evaluated checkpoint: the run's final one, or the one selected_by picked",
    "selected_by": "the validation score that picked checkpoint_step (`semibench select`, the paper's protocol); empty: the final checkpoint",
    "if_reward": "what rewarded the instruction-following prompts: " + "; ".join(f"`{k}`: {v}" for k, v in IF_REWARD_NOTES.items())
                 + "; empty for math-only runs and the seed row",
    "<bench>": "score in percent (primary metric, see the eval JSON's `metrics` for the rest); wildchat_valid: length-normalised reward per token, 6 decimals",
    "<bench>_se_items": "standard error over items in percent (each item's samples averaged first): which items were drawn; empty where the score is not a mean over items",
    "<bench>_sd_seeds": "standard deviation over sampling seeds in percent (sample j of every item is seed j); empty with one sample per item",
    "<bench>_stderr": "the evaluator's own standard error in percent: over sampling seeds when N > 1 (the paper's), else over items; empty when a CI is given instead",
    "<bench>_ci_lower / _ci_upper": "confidence interval bounds in percent (ArenaHard bootstrap: v0.1 95%, v2.0 upstream's 5-95%)",
    "<bench>@<judge>": "judged benchmarks: one column group per judge, never mixed",
    "arena_hard": "Arena-Hard v0.1 (gpt-4-0314 baseline): Bradley-Terry win rate, 95% CI, no style control",
    "arena_hard_v2": "Arena-Hard v2.0 hard prompts vs o3-mini-2025-01-31, style-controlled (length + markdown), 5-95% interval: upstream's headline",
    "arena_hard_v2_style_control / _hard_prompt_plain / _creative_writing / _creative_writing_plain": "the features controlled (`length,markdown`); hard prompts without style control; creative writing (vs gemini-2.0-flash-001) with and without",
    "eval_samples_per_prompt": "samples per prompt N (score = mean over them)",
    "eval_temperature / eval_top_p / eval_max_new_tokens": "eval sampling settings (temperature 0 = greedy)",
    "eval_limit": "prompts per benchmark when limited (empty = the full set)",
    "judges": "every judge used in the row, `;`-separated",
    "semibench_version / git_commit": "the code that ran the evaluation",
    "date": "latest evaluation date in the row (from the eval JSON)",
}


def _number(value, decimals: int = DECIMALS) -> str:
    if value is None or value == "":
        return ""
    return f"{float(value):.{decimals}f}"


def _sampling_signature(result: dict) -> tuple:
    s = result.get("sampling") or {}
    return (result.get("samples_per_prompt"), s.get("temperature"), s.get("top_p"), s.get("max_new_tokens"), result.get("limit"))


def _benchmark_rank(key: str) -> tuple:
    bench, _, judge = key.partition("@")
    return (BENCHMARK_ORDER.index(bench) if bench in BENCHMARK_ORDER else len(BENCHMARK_ORDER), bench, judge)


def rows_for(run: Run) -> list[dict]:
    """One row per eval sampling signature of the run's reported checkpoint (none if it has no eval there)."""
    step = run.report_step
    results = run.evals.get(step, {})
    by_signature: dict[tuple, dict[str, dict]] = {}
    for key, result in results.items():
        by_signature.setdefault(_sampling_signature(result), {})[key] = result
    rows = []
    for signature, group in sorted(by_signature.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        row = _identity(run, step)
        row.update(dict(zip(SAMPLING, (_plain(x) for x in signature))))
        for key, result in group.items():
            decimals = BENCHMARKS[result["benchmark"]].decimals if result["benchmark"] in BENCHMARKS else DECIMALS
            row[key] = _number(result["score"], decimals)
            for field in ("se_items", "sd_seeds", "stderr", "ci_lower", "ci_upper"):
                row[f"{key}_{field}"] = _number(result.get(field), decimals)
            for name in _extra_metrics(key):  # e.g. Arena-Hard v2.0's style control and its other scores
                value = (result.get("metrics") or {}).get(name)
                row[f"{key}_{name}"] = value if isinstance(value, str) else _number(value, decimals)
        versions = [r.get("versions") or {} for r in group.values()]
        row["judges"] = ";".join(sorted({r["judge"] for r in group.values() if r.get("judge")}))
        # `or ""`: an installed (not cloned) semibench records no git commit (None)
        row["semibench_version"] = ";".join(sorted({v.get("semibench") or "" for v in versions} - {""}))
        row["git_commit"] = ";".join(sorted({v.get("git_commit") or "" for v in versions} - {""}))
        row["date"] = max((r.get("date") or "" for r in group.values()), default="")
        row["_keys"] = sorted(group)
        rows.append(row)
    return rows


def _extra_metrics(key: str) -> tuple[str, ...]:
    bench = key.partition("@")[0]
    return BENCHMARKS[bench].leaderboard_metrics if bench in BENCHMARKS else ()


def _plain(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _identity(run: Run, step: int) -> dict:
    if run.is_seed:
        return {"run_id": run.id, "base_model": run.base_model, "preset": "", "task": "", "objective": "", "sync_every": "",
                "regime": "seed", "ref_sync": "", "steps": "0", "num_updates": "0", "skipped_steps": "0", "seed": "", "checkpoint_step": "0",
                "selected_by": "", "if_reward": ""}
    cfg = run.config
    return {
        "run_id": run.id,
        "base_model": run.base_model,
        "preset": cfg.preset,
        "task": cfg.task.name,
        "objective": cfg.loss.objective,
        "sync_every": "inf" if cfg.train.sync_every is None else str(cfg.train.sync_every),
        "regime": run.regime,
        "ref_sync": str(cfg.train.ref_sync).lower(),
        "steps": str(cfg.train.steps),
        **dict(zip(("num_updates", "skipped_steps"), map(str, run.updates(step)))),
        "seed": str(cfg.train.seed),
        "checkpoint_step": str(step),
        "selected_by": run.selected["by"] if run.selected else "",
        "if_reward": cfg.reward.if_reward if cfg.task.name != "math" else "",
    }


def _sort_key(row: dict) -> tuple:
    s = row["sync_every"]
    # Within a regime, larger s first (further from online), then seed and id for a total order.
    sync_rank = -1e18 if s == "inf" else -float(s) if s else 0.0
    seed = int(row["seed"]) if row["seed"] else -1  # numerically: seed 2 before seed 10
    return (row["task"], row["objective"], REGIME_ORDER.get(row["regime"], 9), sync_rank, seed, row["run_id"], row["eval_temperature"])


def to_csv(rows: list[dict]) -> str:
    keys = sorted({k for r in rows for k in r["_keys"]}, key=_benchmark_rank)
    columns = IDENTITY + [k + suffix for k in keys for suffix in SCORE_SUFFIXES + [f"_{m}" for m in _extra_metrics(k)]] + SAMPLING + PROVENANCE
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=_sort_key):
        writer.writerow({c: row.get(c, "") for c in columns})
    return buffer.getvalue()


def schema_markdown(files: dict[str, int]) -> str:
    lines = [
        "# Leaderboards",
        "",
        "Generated by `semibench leaderboard <runs> --out leaderboards/` from the runs' eval JSON; never edit by hand.",
        "Re-running on the same runs gives byte-identical files.",
        "",
        "| file | rows |",
        "|---|---|",
        *[f"| `{name}` | {count} |" for name, count in sorted(files.items())],
        "",
        "## Columns",
        "",
        "One row per evaluated final checkpoint and eval sampling setting; rows sorted by task, objective,",
        f"regime (seed, offline, semi-online by decreasing s, online), seed and run id. Numbers have {DECIMALS} decimals.",
        "",
        "| column | meaning |",
        "|---|---|",
        *[f"| `{name}` | {meaning} |" for name, meaning in SCHEMA.items()],
        "",
    ]
    return "\n".join(lines)


def write_leaderboards(runs_root: Path, out_dir: Path) -> dict[str, Path]:
    """Write `<out_dir>/<preset>.csv` for each preset with evaluated runs, plus README.md; returns the CSV paths.

    The seed rows of a base model go into every preset file whose runs start from that model.
    """
    runs = read_runs(runs_root)
    trained = [r for r in runs if not r.is_seed]
    seeds = [r for r in runs if r.is_seed]
    by_preset: dict[str, list[dict]] = {}
    for run in trained:
        rows = rows_for(run)
        if rows:
            by_preset.setdefault(run.config.preset, []).extend(rows)
    for preset, rows in by_preset.items():
        models = {r["base_model"] for r in rows}
        rows += [row for seed in seeds if seed.base_model in models for row in rows_for(seed)]
    written = {}
    for preset, rows in sorted(by_preset.items()):
        path = Path(out_dir) / f"{preset}.csv"
        atomic_write_text(path, to_csv(rows))
        written[preset] = path
    if written:
        atomic_write_text(Path(out_dir) / "README.md", schema_markdown({p.name: len(by_preset[k]) for k, p in written.items()}))
    return written

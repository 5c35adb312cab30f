"""The paper's Tables 1, 2, 3 and 5 laid out from our runs' eval JSON (markdown + CSV).

paper.md §2: Table 1 verifiable (Math500, NuminaMath test, AMC23), Table 2 non-verifiable
(AlpacaEval 2.0 LC win rate, ArenaHard with 95% CI), Table 3 training-task mix (both kinds of
benchmark), Table 5 GRPO group size. Each starts with the seed-model row. "NuminaMath" is
`numina_test`, the paper's own held-out split; runs on procedural math have their held-out
procedural math (`math_heldout`) beside it. A column whose benchmark was not evaluated is left
out, a missing cell is "–". Cells read like the paper:
`58.9 (1.2)` with a standard error, `60.1 (-1.8, +1.6)` with a CI.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from semibench.benchmarks import BENCHMARKS
from semibench.reports.results import IF_REWARD_NOTES, Run, read_runs
from semibench.runs import atomic_write_text

# The paper's column order (Tables 1-2), with the registry's titles.
MATH_COLUMNS = [(b, BENCHMARKS[b].title) for b in ("math500_paper", "math500", "numina_test", "math_heldout", "gsm8k", "amc23")]
CHAT_COLUMNS = [(b, BENCHMARKS[b].title) for b in ("alpaca_eval", "arena_hard", "arena_hard_v2", "ifeval", "if_heldout")]


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    select: Callable[[Run], bool]  # which trained runs are rows (the seed row is always first)
    columns: list[tuple[str, str]]  # (benchmark, header)
    label: Callable[[Run], str]


def method_label(run: Run) -> str:
    """`Semi-online DPO (s=10)`, `GRPO (n=8)` (online GRPO is the paper's plain GRPO), `Offline DPO (s=∞)`."""
    if run.is_seed:
        return f"Seed ({run.base_model})"
    cfg = run.config
    objective = {"dpo": "DPO", "grpo": "GRPO", "group_dpo": "GroupDPO", "group_dpo_grpo": "GroupDPO+GRPO"}[cfg.loss.objective]
    s = cfg.train.sync_every
    if cfg.loss.objective == "grpo" and s == 1:
        return f"GRPO (n={cfg.sampling.samples_per_prompt})"
    regime = run.regime.capitalize()
    return f"{regime} {objective} (s={'∞' if s is None else s})"


def _with_task(run: Run) -> str:
    return f"{method_label(run)} on {run.config.task.name}"


TABLES = [
    TableSpec("table1", "Table 1: verifiable task (math)", lambda r: r.config.task.name == "math", MATH_COLUMNS, method_label),
    TableSpec("table2", "Table 2: non-verifiable task (instruction following)", lambda r: r.config.task.name == "if", CHAT_COLUMNS, method_label),
    TableSpec("table3", "Table 3: training task mix", lambda r: True, MATH_COLUMNS + CHAT_COLUMNS, _with_task),
    TableSpec("table5", "Table 5: GRPO group size (math)", lambda r: r.config.task.name == "math" and r.config.loss.objective == "grpo", MATH_COLUMNS, method_label),
]


def format_cell(result: dict | None) -> str:
    if result is None:
        return "–"
    score = f"{result['score']:.1f}"
    if result.get("ci_lower") is not None and result.get("ci_upper") is not None:
        return f"{score} ({result['ci_lower'] - result['score']:+.1f}, {result['ci_upper'] - result['score']:+.1f})"
    se = result.get("se_items") if result.get("se_items") is not None else result.get("stderr")
    return f"{score} ({se:.1f})" if se is not None else score


def _final(run: Run) -> dict[str, dict]:
    """The reported checkpoint's results: the selected one, else the final one."""
    return run.evals.get(run.report_step, {})


def build(spec: TableSpec, runs: list[Run]) -> tuple[list[str], list[dict]] | None:
    """Column headers and rows (cells keyed by header, plus raw numbers) or None when no run fits."""
    trained = [r for r in runs if not r.is_seed and spec.select(r) and _final(r)]
    if not trained:
        return None
    models = {r.base_model for r in trained}
    rows_runs = [r for r in runs if r.is_seed and r.base_model in models and _final(r)] + sorted(trained, key=run_order)
    # One column per benchmark and judge present in the selected rows, in the spec's order.
    keys_present = {k for r in rows_runs for k in _final(r)}
    columns = []  # (result key, header)
    for bench, header in spec.columns:
        for key in sorted(k for k in keys_present if k == bench or k.startswith(bench + "@")):
            judge = key.partition("@")[2]
            columns.append((key, f"{header} [{judge}]" if judge else header))
    rows = []
    for run in rows_runs:
        results = _final(run)
        updates, skipped = run.updates(None if run.is_seed else run.report_step)
        label = spec.label(run) if not run.is_seed else method_label(run)
        if run.selected:  # say which checkpoint, as the paper's tables come from selected ones
            label += f" [step {run.selected['step']} by {run.selected['by']}]"
        row = {"Method": label, "run_id": run.id, "arm": run.id if run.is_seed else arm_key(run),
               "Updates": "–" if run.is_seed else f"{updates}/{updates + skipped}"}
        for key, header in columns:
            result = results.get(key)
            row[header] = format_cell(result)
            row[f"{header}|raw"] = result
        rows.append(row)
    return [header for _, header in columns], rows


def run_order(run: Run) -> tuple:
    """Task, DPO before the rest, offline -> semi-online (larger s first) -> online, group size, seed."""
    cfg = run.config
    s = cfg.train.sync_every
    regime = {"offline": 0, "semi-online": 1, "online": 2}[run.regime]
    return (cfg.task.name, cfg.loss.objective != "dpo", cfg.loss.objective, regime, -(s or 0), cfg.sampling.samples_per_prompt, cfg.train.seed, run.id)


def arm_key(run: Run) -> str:
    """Runs that differ only in their training seed are one arm: one row of the markdown tables. The key is
    the run id at seed 0, so `log` (where metrics are reported, not part of the id) never splits an arm."""
    from dataclasses import replace

    from semibench.runs import run_id

    cfg = run.config
    return run_id(replace(cfg, train=replace(cfg.train, seed=0)))


def arm_rows(headers: list[str], rows: list[dict]) -> list[dict]:
    """One row per arm, in first-seen order: an arm of several training seeds reads `mean (SD s, n seeds)`
    over its seeds' scores; a single run keeps its own cell (its uncertainty over items)."""
    from statistics import fmean, stdev

    arms: dict[str, list[dict]] = {}
    for row in rows:
        arms.setdefault(row["arm"], []).append(row)
    out = []
    for members in arms.values():
        if len(members) == 1:
            out.append(members[0])
            continue
        merged = {"Method": members[0]["Method"], "Updates": " ".join(dict.fromkeys(m["Updates"] for m in members))}
        for h in headers:
            scores = [m[f"{h}|raw"]["score"] for m in members if m[f"{h}|raw"]]
            merged[h] = "–" if not scores else (f"{fmean(scores):.1f} (SD {stdev(scores):.1f}, {len(scores)} seeds)" if len(scores) > 1
                                                else f"{scores[0]:.1f} (1 seed)")
        out.append(merged)
    return out


def if_reward_note(runs: list[Run]) -> str:
    """One sentence naming what rewarded the IF prompts of `runs` ('' when none trained on IF prompts)."""
    kinds = sorted({r.config.reward.if_reward for r in runs if not r.is_seed and r.config.task.name != "math"})
    if not kinds:
        return ""
    return "IF prompts rewarded by " + "; by ".join(f"`{k}`: {IF_REWARD_NOTES.get(k, k)}" for k in kinds) + "."


def to_markdown(title: str, headers: list[str], rows: list[dict], if_reward: str = "") -> str:
    lines = [f"### {title}", "", "| Method | Updates | " + " | ".join(headers) + " |", "|---" * (len(headers) + 2) + "|"]
    lines += ["| " + " | ".join([row["Method"], row["Updates"]] + [row[h] for h in headers]) + " |" for row in arm_rows(headers, rows)]
    note = ("Updates: optimizer updates taken / steps (a step with no valid pair or group takes none). "
            "An arm trained with several training seeds is one row: the mean of its seeds' scores and (SD s, n seeds), the "
            "standard deviation over those seeds, which is the spread the verdicts test against; the CSV has one row per seed. "
            "A single run's (x): the standard error over items (se_items: each item's samples averaged first), the uncertainty of which items "
            "were drawn; where a score is not a mean over items, its own SE (AlpacaEval LC: alpaca-eval's; wildchat_valid: delta method). "
            "(lo, hi): a 95% CI (Arena-Hard: its bootstrap). The paper's (x) is of this size (Math500 1.2-1.6 over 500 items); "
            "the spread over sampling seeds, sd_seeds in the CSV, is far smaller and leaves out the items.")
    return "\n".join(lines) + "\n\n" + (if_reward + " " if if_reward else "") + note + "\n"


def to_csv(headers: list[str], rows: list[dict]) -> str:
    fields = ["method", "run_id", "updates"] + [f"{h}{suffix}" for h in headers for suffix in ("", " se_items", " sd_seeds", " stderr", " ci_lower", " ci_upper")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        values = [row["Method"], row["run_id"], row["Updates"]]
        for h in headers:
            raw = row[f"{h}|raw"] or {}
            values += ["" if raw.get(k) is None else f"{raw[k]:.4f}" for k in ("score", "se_items", "sd_seeds", "stderr", "ci_lower", "ci_upper")]
        writer.writerow(values)
    return buffer.getvalue()


def write_tables(runs_root: Path, out_dir: Path) -> dict[str, Path]:
    """Write `<name>.md` and `<name>.csv` for each table that has runs, plus `tables.md` with all of them."""
    runs = read_runs(runs_root)
    written, markdown = {}, []
    for spec in TABLES:
        built = build(spec, runs)
        if built is None:
            continue
        headers, rows = built
        md = to_markdown(spec.title, headers, rows, if_reward_note([r for r in runs if not r.is_seed and spec.select(r)]))
        atomic_write_text(Path(out_dir) / f"{spec.name}.md", md)
        atomic_write_text(Path(out_dir) / f"{spec.name}.csv", to_csv(headers, rows))
        written[spec.name] = Path(out_dir) / f"{spec.name}.md"
        markdown.append(md)
    if markdown:
        atomic_write_text(Path(out_dir) / "tables.md", "\n".join(markdown))
    return written

"""Figures from metrics.jsonl and eval JSON only: training dynamics per task and the paper's figures.

Every figure is a PNG plus a CSV of exactly the plotted values (figure, panel, run, label, step,
value); `figures.md` lists each figure with the runs it drew. The paper's figures
(paper.md §3) are drawn only when the runs they compare exist; each spec below says which runs
those are. Per-step training metrics are noisy (a few prompts per step on CPU presets), so lines
show a trailing mean with the raw values faint behind them; the CSV holds the raw values.

Over 400 lines with the cost curves and the staleness histogram; those two (figures of their own,
with their own CSV columns) are the part to move to a module of their own next.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from semibench.reports.results import Run, read_runs
from semibench.reports.tables import method_label, run_order
from semibench.runs import atomic_path, atomic_write_text

VALID = "valid/reward"  # held-out math accuracy (%) of evaluated checkpoints, from eval JSON
VALID_BENCHMARK = "math_heldout"

# metric -> axis label (units in brackets)
LABELS = {
    "reward": "train reward (mean over samples)",
    "reward/math": "train reward, math (accuracy)",
    "reward/if": "train reward, IF (judge or reward model)",
    VALID: "held-out math accuracy [%]",
    "logit_entropy": "logit entropy [nats/token]",
    "rollout_length": "rollout length [tokens]",
    "chosen_length": "chosen length [tokens]",
    "rejected_length": "rejected length [tokens]",
    "chosen_logp": "chosen log-prob [nats/seq]",
    "rejected_logp": "rejected log-prob [nats/seq]",
    "kl": "KL to reference [nats/token]",
    "mismatch_kl": "generator-trainer KL [nats/token]",
    "mismatch_kl_engine": "generator vs trainer, same weights: engine KL [nats/token]",
    "mismatch_kl_lag": "window weights vs policy: lag KL [nats/token]",
    "is_ess": "importance-weight ESS / n [fraction]",
    "staleness": "staleness [steps]",
    "frac_valid_prompts": "prompts with signal [fraction]",
}
TIME_KEYS = ["time/sync", "time/generate", "time/reward", "time/train"]
DYNAMICS_PANELS = ["reward", VALID, "logit_entropy", "rollout_length", "chosen_length", "rejected_length",
                   "chosen_logp", "rejected_logp", "kl", "mismatch_kl", "mismatch_kl_engine", "mismatch_kl_lag", "is_ess",
                   "staleness", "frac_valid_prompts"]


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    select: Callable[[Run], bool]
    label: Callable[[Run], str]
    panels: list[str]
    # The factor the figure is about: drawn only when the runs hold two values of it (a label that
    # differs in s alone must not make an "NLL term" figure without an NLL run). None: any runs.
    varies: Callable[[object], object] | None = None


def _cfg(pred):
    return lambda r: not r.is_seed and pred(r.config)


def _online_dpo_math(c) -> bool:
    return c.task.name == "math" and c.loss.objective == "dpo" and c.train.sync_every == 1


PAPER_FIGURES = [
    FigureSpec("fig2_ref_sync", "Fig. 2: online DPO on math, reference synced vs fixed",
               _cfg(_online_dpo_math), lambda r: "ref sync" if r.config.train.ref_sync else "no ref sync",
               ["rollout_length", VALID], varies=lambda c: c.train.ref_sync),
    FigureSpec("fig3_regimes", "Fig. 3: entropy and length by regime (math)",
               _cfg(lambda c: c.task.name == "math" and c.loss.objective in ("dpo", "grpo") and c.loss.entropy_coef == 0 and c.loss.nll_coef == 0),
               method_label, ["logit_entropy", "rollout_length"], varies=lambda c: (c.loss.objective, c.train.sync_every)),
    FigureSpec("fig6_entropy_reg", "Fig. 6: entropy regulariser, semi-online DPO (math)",
               _cfg(lambda c: c.task.name == "math" and c.loss.objective == "dpo" and (c.train.sync_every or 0) > 1),
               lambda r: f"entropy coef {r.config.loss.entropy_coef:g}, s={r.config.train.sync_every}", ["logit_entropy", VALID],
               varies=lambda c: c.loss.entropy_coef),
    FigureSpec("fig7_task_entropy", "Fig. 7: online DPO without reference sync, math vs IF",
               _cfg(lambda c: c.loss.objective == "dpo" and c.train.sync_every == 1 and not c.train.ref_sync and c.task.name in ("math", "if")),
               lambda r: f"{r.config.task.name}", ["logit_entropy", "rollout_length"], varies=lambda c: c.task.name),
    FigureSpec("fig8_group_dpo", "Fig. 8: GroupDPO, GroupDPO + α·GRPO and semi-online DPO (math)",
               _cfg(lambda c: c.task.name == "math" and (c.loss.objective.startswith("group_dpo") or (c.loss.objective == "dpo" and (c.train.sync_every or 0) > 1))),
               lambda r: method_label(r) + (f", α={r.config.loss.grpo_alpha:g}" if r.config.loss.objective == "group_dpo_grpo" else ""),
               [VALID, "logit_entropy"], varies=lambda c: c.loss.objective.startswith("group_dpo")),
    FigureSpec("fig9b_pair_lengths", "Fig. 9b: chosen vs rejected length, online DPO on math",
               _cfg(_online_dpo_math), lambda r: "ref sync" if r.config.train.ref_sync else "no ref sync",
               ["chosen_length", "rejected_length"]),
    FigureSpec("fig10_nll", "Fig. 10: NLL term on the chosen response (math, DPO)",
               _cfg(lambda c: c.task.name == "math" and c.loss.objective == "dpo" and c.train.sync_every is not None),
               lambda r: f"{method_label(r)}, NLL {r.config.loss.nll_coef:g}", [VALID, "logit_entropy"], varies=lambda c: c.loss.nll_coef),
]


def series(run: Run, metric: str, seeds: list[Run]) -> list[tuple[int, float]]:
    """(step, value) points of one metric; VALID comes from evaluated checkpoints, starting at the seed model."""
    if metric == VALID:
        points = [(step, res[VALID_BENCHMARK]["score"]) for step, res in sorted(run.evals.items()) if VALID_BENCHMARK in res]
        if points and points[0][0] > 0:
            start = [s.evals[0][VALID_BENCHMARK]["score"] for s in seeds if s.base_model == run.base_model and VALID_BENCHMARK in s.evals.get(0, {})]
            points = [(0, start[0])] + points if start else points
        return points
    return [(row["step"], float(row[metric])) for row in run.metrics if metric in row and row[metric] is not None]


def trailing_mean(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def _draw(name: str, title: str, runs: list[Run], labels: list[str], panels: list[str], seeds: list[Run], path: Path) -> list[list]:
    """Draw one multi-panel figure; returns the plotted rows for its CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in panels if any(series(r, p, seeds) for r in runs)]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows + 0.9), squeeze=False, layout="constrained")
    colors = {label: plt.cm.tab10(i % 10) for i, label in enumerate(dict.fromkeys(labels))}
    plotted = []
    for ax, metric in zip(axes.flat, panels):
        for run, label in zip(runs, labels):
            points = series(run, metric, seeds)
            if not points:
                continue
            steps, values = [p[0] for p in points], [p[1] for p in points]
            plotted += [[name, metric, run.id, label, s, v] for s, v in points]
            if metric == VALID or len(points) < 8:
                ax.plot(steps, values, marker="o", ms=3, color=colors[label], label=label)
            else:
                ax.plot(steps, values, color=colors[label], alpha=0.25, lw=0.8)
                ax.plot(steps, trailing_mean(values, max(3, len(points) // 10)), color=colors[label], lw=1.8, label=label)
        ax.set_title(LABELS.get(metric, metric), fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(4, max(1, len(names))), fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return plotted


def _draw_time_split(name: str, title: str, runs: list[Run], labels: list[str], path: Path) -> list[list]:
    """Mean seconds per step in sync / generate / reward / train (step 0 excluded), one stacked bar per run."""
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(runs) + 2), 4.2), layout="constrained")
    plotted, bottoms = [], [0.0] * len(runs)
    for key in TIME_KEYS:
        heights = []
        for i, run in enumerate(runs):
            values = [row[key] for row in run.metrics[1:] or run.metrics if key in row]  # step 0 pays warm-up
            # The mean, not the median: a pipelined run waits for rollouts on one step of each
            # chunk only, and its median wait would be 0 s though the wait is real time.
            heights.append(statistics.fmean(values) if values else 0.0)
            plotted.append([name, key, run.id, labels[i], "mean", heights[-1]])
        bars = ax.bar(range(len(runs)), heights, bottom=bottoms, label=key.removeprefix("time/"))
        ax.bar_label(bars, labels=[f"{h:.1f}" if h >= 0.5 else "" for h in heights], label_type="center", fontsize=8)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(range(len(runs)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("mean seconds per step, step 0 excluded [s]")
    ax.set_ylim(top=max(bottoms, default=1.0) * 1.18 or 1.0)  # headroom for the legend
    ax.legend(fontsize=8, ncols=4, loc="upper left")
    ax.set_title(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return plotted


def _write_staleness_figures(trained: list[Run], out_dir: Path, drawn: dict[str, list[str]]) -> list[str]:
    """staleness_<task>.png + .csv: per run (one panel each), the pairs or groups it trained at each
    staleness (step - generator version). A step's count is its prompts with signal, one pair (DPO) or
    group (GRPO, GroupDPO) each: frac_valid_prompts x prompts_per_step. CSV: the step column holds
    the staleness, value the count. Records the figures in `drawn`; returns their figures.md lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = []
    for task in sorted({r.config.task.name for r in trained}):
        group = [r for r in trained if r.config.task.name == task and any("staleness" in row for row in r.metrics)]
        if not group:
            continue
        name, title = f"staleness_{task}", f"Staleness of the trained pairs and groups, task {task}"
        labels = _unique_labels(group, method_label)
        columns = min(3, len(group))
        fig, axes = plt.subplots(math.ceil(len(group) / columns), columns, figsize=(4.6 * columns, 3.2 * math.ceil(len(group) / columns) + 0.7),
                                 squeeze=False, layout="constrained")
        plotted = []
        for i, (ax, run, label) in enumerate(zip(axes.flat, group, labels)):
            counts: dict[int, float] = {}
            for row in run.metrics:
                if "staleness" in row:
                    k = int(row["staleness"])
                    counts[k] = counts.get(k, 0) + round(row.get("frac_valid_prompts", 0.0) * run.config.train.prompts_per_step)
            xs = sorted(counts)
            plotted += [[name, "pairs_or_groups", run.id, label, x, counts[x]] for x in xs]
            ax.bar(xs, [counts[x] for x in xs], width=0.8 if len(xs) <= 60 else 1.0, color=plt.cm.tab10(i % 10))
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("staleness [steps]")
            ax.set_ylabel("pairs or groups trained")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3, axis="y")
        for ax in list(axes.flat)[len(group) :]:
            ax.axis("off")
        fig.suptitle(title, fontsize=12)
        with atomic_path(out_dir / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        atomic_write_text(out_dir / f"{name}.csv", _csv(plotted))
        drawn[name] = [r.id for r in group]
        index += [f"## {title}", "", f"![{name}]({name}.png) — data: `{name}.csv` (step: the staleness; value: pairs or groups)", "",
                  "Runs: " + ", ".join(f"`{r.id}` ({l})" for r, l in zip(group, labels)), ""]
    return index


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["figure", "panel", "run_id", "label", "step", "value"])
    writer.writerows(rows)
    return buffer.getvalue()


# The cost figure: held-out math accuracy against steps, training seconds and generated tokens.
COST_PANELS = {"step": "optimizer step", "seconds": "training wall-clock [s]", "tokens": "generated tokens"}
COST_COLUMNS = ["figure", "panel", "run_id", "label", "step", "value", "x", "ci_low", "ci_high"]
COST_CAPTION = ("Band: 95% CI over items (`ci_items`, the t-interval over the held-out problems; where a result lacks it, "
                "score ± 1.96 · `se_items`, else ± 1.96 · the evaluator's `stderr`, else no band). Training wall-clock: "
                "`time/sync` + `time/generate` + `time/reward` + `time/train` summed over the steps before the checkpoint "
                "(evaluation excluded); tokens: `generated_tokens` summed likewise. Step 0 is the seed model.")


@dataclass(frozen=True)
class CostPoint:
    """One evaluated checkpoint of a run: its held-out math score and what reaching it cost."""
    step: int
    seconds: float | None  # None: metrics.jsonl lacks a row or a time/* key for a step before this one
    tokens: float | None  # None: likewise for generated_tokens (runs from before it was logged)
    score: float
    ci_low: float | None
    ci_high: float | None


def validation_band(result: dict) -> tuple[float | None, float | None]:
    """The 95% interval of one eval result, in its units: `ci_items`, else score ± 1.96·se_items, else ± 1.96·stderr, else none."""
    if result.get("ci_items") is not None:
        low, high = result["ci_items"]
        return float(low), float(high)
    for key in ("se_items", "stderr"):
        if result.get(key) is not None:
            return result["score"] - 1.96 * result[key], result["score"] + 1.96 * result[key]
    return None, None


def cumulative_before(by_step: dict[int, dict], step: int, keys: list[str]) -> float | None:
    """`keys` summed over the metric rows before `step`; None where a row or key is missing, or the run never logged them."""
    rows = [by_step.get(i) for i in range(step)]
    logged = any(all(row.get(k) is not None for k in keys) for row in by_step.values())
    if not logged or any(row is None or any(row.get(k) is None for k in keys) for row in rows):
        return None
    return float(sum(sum(row[k] for k in keys) for row in rows))


def _checkpoint_results(run: Run) -> list[tuple[int, dict]]:
    return [(step, res[VALID_BENCHMARK]) for step, res in sorted(run.evals.items())
            if VALID_BENCHMARK in res and res[VALID_BENCHMARK].get("score") is not None]


def validation_costs(run: Run, seeds: list[Run]) -> list[CostPoint]:
    """The run's held-out math checkpoints with their cost, starting at the seed model (step 0, no cost)
    when its seed row was evaluated. Checkpoint step_N comes after N steps: metric rows with step < N."""
    results = _checkpoint_results(run)
    if results and results[0][0] > 0:
        start = [s.evals[0][VALID_BENCHMARK] for s in seeds
                 if s.base_model == run.base_model and (s.evals.get(0, {}).get(VALID_BENCHMARK) or {}).get("score") is not None]
        results = [(0, start[0])] + results if start else results
    by_step = {row["step"]: row for row in run.metrics}
    points = []
    for step, result in results:
        low, high = validation_band(result)
        points.append(CostPoint(step, cumulative_before(by_step, step, TIME_KEYS), cumulative_before(by_step, step, ["generated_tokens"]),
                                float(result["score"]), low, high))
    return points


def _draw_cost(name: str, title: str, runs: list[Run], labels: list[str], seeds: list[Run], path: Path) -> list[list]:
    """Held-out math accuracy against steps, training seconds and generated tokens, one line per run with its
    95% band; returns the plotted rows for its CSV (COST_COLUMNS)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COST_PANELS), figsize=(15.6, 4.9), sharey=True, squeeze=False, layout="constrained")
    colors = {label: plt.cm.tab10(i % 10) for i, label in enumerate(dict.fromkeys(labels))}
    plotted = []
    for run, label in zip(runs, labels):
        points = validation_costs(run, seeds)
        for ax, panel in zip(axes.flat, COST_PANELS):
            shown = [(getattr(p, panel), p) for p in points if getattr(p, panel) is not None]
            if not shown:
                continue
            xs, ys = [x for x, _ in shown], [p.score for _, p in shown]
            plotted += [[name, panel, run.id, label, p.step, p.score, x, p.ci_low, p.ci_high] for x, p in shown]
            ax.plot(xs, ys, marker="o", ms=4, color=colors[label], label=label)
            has_band = [p.ci_low is not None for _, p in shown]
            if any(has_band):
                ax.fill_between(xs, [p.ci_low if p.ci_low is not None else p.score for _, p in shown],
                                [p.ci_high if p.ci_high is not None else p.score for _, p in shown],
                                where=has_band, color=colors[label], alpha=0.15, lw=0)
    for i, (ax, panel) in enumerate(zip(axes.flat, COST_PANELS)):
        ax.set_xlabel(COST_PANELS[panel])
        ax.set_title(f"against {COST_PANELS[panel].split(' [')[0]}", fontsize=10)
        if panel == "step":
            ax.xaxis.get_major_locator().set_params(integer=True)
        if not ax.has_data():
            ax.text(0.5, 0.5, f"no {'generated_tokens' if panel == 'tokens' else 'time/*'} in metrics.jsonl",
                    transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.4")
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel(LABELS[VALID])
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(4, max(1, len(names))), fontsize=9, frameon=False)
    fig.suptitle(f"{title} (band: 95% CI over items)", fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return plotted


def _write_cost_figures(trained: list[Run], seeds: list[Run], out_dir: Path, drawn: dict[str, list[str]]) -> list[str]:
    """cost_<task>.png + .csv for each task where some run has ≥ 2 evaluated held-out math checkpoints;
    records them in `drawn` and returns their figures.md lines."""
    index = []
    for task in sorted({r.config.task.name for r in trained}):
        group = [r for r in trained if r.config.task.name == task]
        if not any(len(_checkpoint_results(r)) >= 2 for r in group):
            continue  # one point per run is no curve
        name, title = f"cost_{task}", f"Held-out math against training cost, task {task}"
        labels = _unique_labels(group, method_label)
        with atomic_path(out_dir / f"{name}.png") as tmp:
            plotted = _draw_cost(name, title, group, labels, seeds, tmp)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([COST_COLUMNS] + plotted)
        atomic_write_text(out_dir / f"{name}.csv", buffer.getvalue())
        drawn[name] = [r.id for r in group]
        index += [f"## {title}", "", f"![{name}]({name}.png) — data: `{name}.csv` (x, ci_low, ci_high: each panel's x and the band)", "",
                  COST_CAPTION, "", "Runs: " + ", ".join(f"`{r.id}` ({l})" for r, l in zip(group, labels)), ""]
    return index


def write_plots(runs_root: Path, out_dir: Path) -> dict[str, list[str]]:
    """Draw every figure the runs support into `out_dir`; returns figure name -> the run ids it drew."""
    runs = read_runs(runs_root)
    seeds = [r for r in runs if r.is_seed]
    trained = sorted((r for r in runs if not r.is_seed and r.metrics), key=run_order)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, list[str]] = {}
    figures: list[tuple[str, str, list[Run], list[str], list[str] | None]] = []
    for task in sorted({r.config.task.name for r in trained}):
        group = [r for r in trained if r.config.task.name == task]
        labels = _unique_labels(group, method_label)
        panels = DYNAMICS_PANELS + (["reward/math", "reward/if"] if task == "mixed" else [])
        figures.append((f"dynamics_{task}", f"Training dynamics, task {task}", group, labels, panels))
        figures.append((f"time_{task}", f"Where a step's time goes, task {task}", group, labels, None))
    for spec in PAPER_FIGURES:
        group = [r for r in trained if spec.select(r)]
        if group and (spec.varies is None or len({spec.varies(r.config) for r in group}) >= 2):
            figures.append((spec.name, spec.title, group, _unique_labels(group, spec.label), spec.panels))
    index = ["# Figures", "", "Generated by `semibench plot`; each PNG has a CSV of its plotted values.", ""]
    for name, title, group, labels, panels in figures:
        if panels is not None and not any(series(r, p, seeds) for r in group for p in panels):
            continue  # nothing to draw (e.g. runs without metrics of those panels)
        png = out_dir / f"{name}.png"
        with atomic_path(png) as tmp:
            plotted = _draw_time_split(name, title, group, labels, tmp) if panels is None else _draw(name, title, group, labels, panels, seeds, tmp)
        atomic_write_text(out_dir / f"{name}.csv", _csv(plotted))
        drawn[name] = [r.id for r in group]
        index += [f"## {title}", "", f"![{name}]({name}.png) — data: `{name}.csv`", "", "Runs: " + ", ".join(f"`{r.id}` ({l})" for r, l in zip(group, labels)), ""]
    index += _write_staleness_figures(trained, out_dir, drawn)
    index += _write_cost_figures(trained, seeds, out_dir, drawn)
    atomic_write_text(out_dir / "figures.md", "\n".join(index))
    return drawn


def _unique_labels(runs: list[Run], label: Callable[[Run], str]) -> list[str]:
    """Labels, with the seed appended when several seeds of one configuration would share a label."""
    labels = [label(r) for r in runs]
    return [f"{l}, seed {r.config.train.seed}" if labels.count(l) > 1 else l for r, l in zip(runs, labels)]
